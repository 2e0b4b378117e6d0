/// GPT-2's reversible map between bytes and printable Unicode scalars.
///
/// Byte-level BPE vocabularies never hold raw bytes: every byte is spelled as a printable scalar
/// (printable Latin-1 bytes stand for themselves, the other 68 bytes map to U+0100 and up, so a
/// space is 'Ġ' U+0120 and a newline 'Ċ' U+010A). Tokens and merges are strings of such scalars.
enum ByteLevel {
    /// `scalar[b]` is the printable scalar that spells byte `b`.
    static let scalar: [Unicode.Scalar] = {
        var table = [Unicode.Scalar](repeating: " ", count: 256)
        var next: UInt32 = 256
        for b in 0..<256 {
            if (0x21...0x7E).contains(b) || (0xA1...0xAC).contains(b) || (0xAE...0xFF).contains(b) {
                table[b] = Unicode.Scalar(UInt32(b))!
            } else {
                table[b] = Unicode.Scalar(next)!
                next += 1
            }
        }
        return table
    }()

    /// The byte a printable scalar spells, or nil if the scalar is not part of the map.
    static func byte(for s: Unicode.Scalar) -> UInt8? {
        let v = s.value
        if v < 256 {
            return scalar[Int(v)] == s ? UInt8(v) : nil
        }
        return reverse[v]
    }

    /// Scalars at or above U+0100 back to their bytes.
    private static let reverse: [UInt32: UInt8] = {
        var map: [UInt32: UInt8] = [:]
        for b in 0..<256 where scalar[b].value >= 256 { map[scalar[b].value] = UInt8(b) }
        return map
    }()

    /// The byte-level spelling of `bytes`, e.g. `[0x20, 0x61]` → "Ġa".
    static func encode<S: Sequence>(_ bytes: S) -> String where S.Element == UInt8 {
        var s = String.UnicodeScalarView()
        for b in bytes { s.append(scalar[Int(b)]) }
        return String(s)
    }

    /// The bytes a byte-level string spells, or nil if some scalar is outside the map.
    static func decode(_ token: String) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(token.unicodeScalars.count)
        for s in token.unicodeScalars {
            guard let b = byte(for: s) else { return nil }
            out.append(b)
        }
        return out
    }
}

/// Renders token bytes for people: visible whitespace, hex for what cannot be shown.
enum TokenDisplay {
    /// Spaces become `·`, newlines `↵`, tabs `→`; other control bytes and bytes that do not form
    /// valid UTF-8 on their own become `<0xAB>`; everything else is shown as itself.
    static func render(_ bytes: [UInt8]) -> String {
        var out = ""
        var i = 0
        while i < bytes.count {
            guard let (scalar, length) = decodeScalar(bytes, at: i) else {
                out += hex(bytes[i])
                i += 1
                continue
            }
            switch scalar.value {
            case 0x20: out += "·"
            case 0x0A: out += "↵"
            case 0x09: out += "→"
            case 0..<0x20, 0x7F: out += hex(UInt8(scalar.value))
            default: out.unicodeScalars.append(scalar)
            }
            i += length
        }
        return out
    }

    static func hex(_ b: UInt8) -> String {
        let digits = Array("0123456789ABCDEF")
        return "<0x\(digits[Int(b >> 4)])\(digits[Int(b & 15)])>"
    }

    /// One well-formed UTF-8 scalar starting at `i` (shortest form, no surrogates), with its length.
    static func decodeScalar(_ bytes: [UInt8], at i: Int) -> (Unicode.Scalar, Int)? {
        let b0 = bytes[i]
        if b0 < 0x80 { return (Unicode.Scalar(b0), 1) }
        let length: Int
        let minimum: UInt32
        var value: UInt32
        switch b0 {
        case 0xC2...0xDF: length = 2; minimum = 0x80; value = UInt32(b0 & 0x1F)
        case 0xE0...0xEF: length = 3; minimum = 0x800; value = UInt32(b0 & 0x0F)
        case 0xF0...0xF4: length = 4; minimum = 0x10000; value = UInt32(b0 & 0x07)
        default: return nil
        }
        guard i + length <= bytes.count else { return nil }
        for k in 1..<length {
            let b = bytes[i + k]
            guard b & 0xC0 == 0x80 else { return nil }
            value = value << 6 | UInt32(b & 0x3F)
        }
        guard value >= minimum, let s = Unicode.Scalar(value) else { return nil }
        return (s, length)
    }
}
