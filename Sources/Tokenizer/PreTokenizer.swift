/// Splits text into the pieces that BPE encodes one at a time, hand-written over Unicode scalars.
///
/// The core is GPT-2's split
/// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`; the kinds differ
/// in what runs before and after it, as in llama.cpp's `tokenizer.ggml.pre` handling.
struct PreTokenizer: Sendable {
    /// The pre-tokenizers this scanner implements, by their GGUF `tokenizer.ggml.pre` name.
    enum Kind: String, Sendable, CaseIterable {
        /// Every \p{N} scalar is its own piece, then the GPT-2 split (SmolLM, StarCoder).
        case smollm
        /// The GPT-2 split alone.
        case gpt2
        /// llama.cpp's fallback for BPE models: punctuation runs, GPT-2, number runs, digit triples.
        case `default`
    }

    let kind: Kind

    // Scalar classes, as bit flags.
    static let letter: UInt8 = 1      // \p{L}
    static let number: UInt8 = 2      // \p{N}
    static let space: UInt8 = 4       // \s (Unicode White_Space)
    static let punct: UInt8 = 8       // \p{P} or one of $+<=>^~| (only the default kind uses it)

    /// Scratch of one call: the segment's scalars, their classes and byte offsets (plus an end).
    struct Scalars {
        var values: [UInt32] = []
        var classes: [UInt8] = []
        var offsets: [Int] = []
    }

    /// Appends the byte ranges of the pieces of `bytes` (valid UTF-8) to `pieces`, in order.
    func split(_ bytes: UnsafeBufferPointer<UInt8>, scratch t: inout Scalars, into pieces: inout [Range<Int>]) {
        Self.decode(bytes, into: &t)
        let n = t.values.count
        switch kind {
        case .gpt2:
            var out: [Range<Int>] = []
            Self.gpt2(t, 0, n, into: &out)
            for r in out { pieces.append(t.offsets[r.lowerBound]..<t.offsets[r.upperBound]) }
        case .smollm:
            var out: [Range<Int>] = []
            var start = 0
            for i in 0..<n where t.classes[i] & Self.number != 0 {
                if start < i { Self.gpt2(t, start, i, into: &out) }
                out.append(i..<(i + 1))
                start = i + 1
            }
            if start < n { Self.gpt2(t, start, n, into: &out) }
            for r in out { pieces.append(t.offsets[r.lowerBound]..<t.offsets[r.upperBound]) }
        case .default:
            var stage = Self.runs(t, [0..<n], of: Self.punct)
            var next: [Range<Int>] = []
            for r in stage { Self.gpt2(t, r.lowerBound, r.upperBound, into: &next) }
            stage = Self.runs(t, next, of: Self.number)
            for r in Self.digitTriples(t, stage) { pieces.append(t.offsets[r.lowerBound]..<t.offsets[r.upperBound]) }
        }
    }

    /// The GPT-2 split of scalars `lo..<hi`; the `(?!\S)` look-ahead sees `hi` as the end of text.
    static func gpt2(_ t: Scalars, _ lo: Int, _ hi: Int, into out: inout [Range<Int>]) {
        let v = t.values, c = t.classes
        var i = lo
        while i < hi {
            if v[i] == 0x27, i + 1 < hi {  // contractions, case-sensitive: 's 't 're 've 'm 'll 'd
                let a = v[i + 1]
                if a == 0x73 || a == 0x74 || a == 0x6D || a == 0x64 {
                    out.append(i..<(i + 2)); i += 2; continue
                }
                if i + 2 < hi {
                    let b = v[i + 2]
                    if (a == 0x72 && b == 0x65) || (a == 0x76 && b == 0x65) || (a == 0x6C && b == 0x6C) {
                        out.append(i..<(i + 3)); i += 3; continue
                    }
                }
            }
            var k = i
            if v[i] == 0x20, i + 1 < hi, c[i + 1] & space == 0 { k = i + 1 }  // the optional " "
            var j = k + 1
            let ck = c[k]
            if ck & letter != 0 {
                while j < hi, c[j] & letter != 0 { j += 1 }
            } else if ck & number != 0 {
                while j < hi, c[j] & number != 0 { j += 1 }
            } else if ck & space == 0 {
                while j < hi, c[j] & (letter | number | space) == 0 { j += 1 }
            } else {
                // \s+(?!\S) keeps the run's last scalar for the next piece when a non-space
                // follows; a single space scalar before a non-space is taken by \s+.
                while j < hi, c[j] & space != 0 { j += 1 }
                if j < hi, j - i > 1 { j -= 1 }
            }
            out.append(i..<j)
            i = j
        }
    }

    /// Splits each range into maximal runs of scalars having `flag` and runs of the rest.
    static func runs(_ t: Scalars, _ ranges: [Range<Int>], of flag: UInt8) -> [Range<Int>] {
        var out: [Range<Int>] = []
        for r in ranges {
            var i = r.lowerBound
            while i < r.upperBound {
                let inside = t.classes[i] & flag != 0
                var j = i + 1
                while j < r.upperBound, (t.classes[j] & flag != 0) == inside { j += 1 }
                out.append(i..<j)
                i = j
            }
        }
        return out
    }

    /// Splits out every `[0-9][0-9][0-9]` match (left to right) of each range.
    static func digitTriples(_ t: Scalars, _ ranges: [Range<Int>]) -> [Range<Int>] {
        func isDigit(_ k: Int) -> Bool { t.values[k] >= 0x30 && t.values[k] <= 0x39 }
        var out: [Range<Int>] = []
        for r in ranges {
            var start = r.lowerBound, i = r.lowerBound
            while i + 3 <= r.upperBound {
                if isDigit(i), isDigit(i + 1), isDigit(i + 2) {
                    if start < i { out.append(start..<i) }
                    out.append(i..<(i + 3))
                    i += 3
                    start = i
                } else {
                    i += 1
                }
            }
            if start < r.upperBound { out.append(start..<r.upperBound) }
        }
        return out
    }

    /// Decodes valid UTF-8 into scalars with their classes and byte offsets.
    static func decode(_ bytes: UnsafeBufferPointer<UInt8>, into t: inout Scalars) {
        t.values.removeAll(keepingCapacity: true)
        t.classes.removeAll(keepingCapacity: true)
        t.offsets.removeAll(keepingCapacity: true)
        var i = 0
        let n = bytes.count
        while i < n {
            let b0 = bytes[i]
            t.offsets.append(i)
            if b0 < 0x80 {
                t.values.append(UInt32(b0))
                t.classes.append(asciiClass[Int(b0)])
                i += 1
                continue
            }
            var value: UInt32
            let length: Int
            if b0 >= 0xF0 { value = UInt32(b0 & 0x07); length = 4 }
            else if b0 >= 0xE0 { value = UInt32(b0 & 0x0F); length = 3 }
            else { value = UInt32(b0 & 0x1F); length = 2 }
            for k in 1..<length where i + k < n { value = value << 6 | UInt32(bytes[i + k] & 0x3F) }
            t.values.append(value)
            t.classes.append(classify(value))
            i += length
        }
        t.offsets.append(n)
    }

    static let asciiClass: [UInt8] = (0..<128).map { classify(UInt32($0)) }

    /// The class flags of one scalar, from its Unicode properties.
    static func classify(_ value: UInt32) -> UInt8 {
        guard let s = Unicode.Scalar(value) else { return 0 }
        let p = s.properties
        if p.isWhitespace { return space }
        switch p.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter:
            return letter
        case .decimalNumber, .letterNumber, .otherNumber:
            return number
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
             .initialPunctuation, .finalPunctuation, .otherPunctuation:
            return punct
        default:
            return "$+<=>^~|".unicodeScalars.contains(s) ? punct : 0
        }
    }
}
