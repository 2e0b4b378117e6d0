import Foundation

/// NumPy's `.npz`: a zip archive of `.npy` arrays (Gemma Scope's `params.npz` is one).
///
/// Zip (PKWARE APPNOTE), the parts read here, all little-endian:
///
///     local header   u32 0x04034b50, u16 version, u16 flags, u16 method (0 stored, 8 deflate),
///                    u16 time, u16 date, u32 crc32, u32 csize, u32 usize, u16 nameLen, u16 extraLen,
///                    name, extra, then the entry's bytes
///     central entry  u32 0x02014b50, u16 made, u16 needed, u16 flags, u16 method, u16 time, u16 date,
///                    u32 crc32, u32 csize, u32 usize, u16 nameLen, u16 extraLen, u16 commentLen,
///                    u16 disk, u16 internal, u32 external, u32 localOffset, name, extra, comment
///     end record     u32 0x06054b50, u16 disk, u16 cdDisk, u16 entriesHere, u16 entries,
///                    u32 cdSize, u32 cdOffset, u16 commentLen, comment      (the last 22+ bytes)
///     zip64          a field 0x0001 in an entry's extra holds, in this order, u64 usize, u64 csize,
///                    u64 localOffset for each of those stored as 0xFFFFFFFF; a zip64 end record
///                    (0x06064b50, found through its locator 0x07064b50 just before the end record)
///                    holds u64 entries, cdSize and cdOffset. numpy's `savez` writes every entry as
///                    zip64 (`force_zip64=True`).
///
/// `.npy` (numpy/lib/format.py): "\x93NUMPY", u8 major, u8 minor, u16 (v1) or u32 (v2, v3) header
/// length, an ASCII Python dict {'descr': '<f4', 'fortran_order': False, 'shape': (a, b), } padded
/// with spaces and a newline, then the array's bytes in C order.
///
/// Only stored (uncompressed) entries are read: `np.savez` stores, `np.savez_compressed` deflates,
/// and a deflated entry is an error that says to re-save with `np.savez`. CRCs are not checked;
/// every offset and size is checked against the file before use.
public final class NPZFile: @unchecked Sendable {
    public struct ArrayInfo: Equatable, Sendable {
        /// The array's name (the entry's name less ".npy").
        public let name: String
        /// numpy's dtype string, e.g. "<f4".
        public let descr: String
        public let shape: [Int]
        /// Byte offset of the array's data from the start of the file.
        public let fileOffset: Int
        public let byteCount: Int
        public var elementCount: Int { shape.reduce(1, *) }
    }

    public let path: String
    public let arrays: [String: ArrayInfo]
    private let file: MappedFile

    public init(path: String) throws {
        file = try MappedFile(path: path)
        self.path = path
        let bytes = file.bytes
        func fail(_ reason: String) -> FormatError { .badHeader(file: path, reason: reason) }
        func u16(_ o: Int) -> Int { Int(UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: o, as: UInt16.self))) }
        func u32(_ o: Int) -> Int { Int(UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: o, as: UInt32.self))) }
        func u64(_ o: Int) throws -> Int {
            let v = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: o, as: UInt64.self))
            guard v < 1 << 48 else { throw fail("a zip64 size or offset \(v) is beyond any file") }
            return Int(v)
        }

        // The end record: its signature in the last 22 + 65535 bytes, searched from the end.
        guard bytes.count >= 22 else { throw FormatError.truncated(file: path, reading: "the zip end record") }
        var eocd = -1
        var o = bytes.count - 22
        while o >= max(0, bytes.count - 22 - 65535) {
            if u32(o) == 0x0605_4b50 { eocd = o; break }
            o -= 1
        }
        guard eocd >= 0 else { throw fail("not a zip archive (no end-of-central-directory record); an .npz is written by np.savez") }
        var entries = u16(eocd + 10), cdSize = u32(eocd + 12), cdOffset = u32(eocd + 16)
        if eocd >= 20, u32(eocd - 20) == 0x0706_4b50 {
            let z = try u64(eocd - 20 + 8)
            guard z + 56 <= bytes.count, u32(z) == 0x0606_4b50 else { throw fail("zip64 end record missing at offset \(z)") }
            entries = try u64(z + 32)
            cdSize = try u64(z + 40)
            cdOffset = try u64(z + 48)
        }
        guard cdOffset <= bytes.count, cdSize <= bytes.count - cdOffset else {
            throw FormatError.truncated(file: path, reading: "the zip central directory (\(cdSize) bytes at \(cdOffset))")
        }

        var arrays: [String: ArrayInfo] = [:]
        var p = cdOffset
        for _ in 0..<entries {
            guard p + 46 <= cdOffset + cdSize, u32(p) == 0x0201_4b50 else { throw fail("bad central directory entry at offset \(p)") }
            let method = u16(p + 10)
            var csize = u32(p + 20), usize = u32(p + 24)
            let nameLen = u16(p + 28), extraLen = u16(p + 30), commentLen = u16(p + 32)
            var local = u32(p + 42)
            guard p + 46 + nameLen + extraLen + commentLen <= cdOffset + cdSize else { throw FormatError.truncated(file: path, reading: "a central directory entry") }
            let name = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[(p + 46)..<(p + 46 + nameLen)]), as: UTF8.self)
            // zip64 sizes and offset, when the 32-bit fields say so.
            var e = p + 46 + nameLen
            let extraEnd = e + extraLen
            while e + 4 <= extraEnd {
                let id = u16(e), size = u16(e + 2)
                guard e + 4 + size <= extraEnd else { break }
                if id == 0x0001 {
                    var f = e + 4
                    if usize == 0xFFFF_FFFF, f + 8 <= e + 4 + size { usize = try u64(f); f += 8 }
                    if csize == 0xFFFF_FFFF, f + 8 <= e + 4 + size { csize = try u64(f); f += 8 }
                    if local == 0xFFFF_FFFF, f + 8 <= e + 4 + size { local = try u64(f); f += 8 }
                }
                e += 4 + size
            }
            p = extraEnd + commentLen
            guard name.hasSuffix(".npy") else { continue }
            let arrayName = String(name.dropLast(4))
            guard method == 0 else {
                throw FormatError.unsupportedTensorType(file: path, tensor: arrayName,
                                                        type: "zip method \(method) (compressed; re-save with np.savez, not np.savez_compressed)")
            }
            guard local + 30 <= bytes.count, u32(local) == 0x0403_4b50 else { throw fail("entry '\(name)': no local header at offset \(local)") }
            let start = local + 30 + u16(local + 26) + u16(local + 28)
            guard start <= bytes.count, csize <= bytes.count - start, csize == usize else {
                throw FormatError.tensorOutOfBounds(file: path, tensor: arrayName, offset: start, bytes: csize, available: bytes.count)
            }
            arrays[arrayName] = try Self.npyHeader(UnsafeRawBufferPointer(rebasing: bytes[start..<(start + csize)]),
                                                   name: arrayName, base: start, file: path)
        }
        self.arrays = arrays
    }

    /// Parses one `.npy` member's header; its data must fill the rest of the member exactly.
    static func npyHeader(_ b: UnsafeRawBufferPointer, name: String, base: Int, file: String) throws -> ArrayInfo {
        func bad(_ reason: String) -> FormatError { .badTensorShape(file: file, tensor: name, reason: reason) }
        guard b.count >= 10, b[0] == 0x93, Array(b[1..<6]) == Array("NUMPY".utf8) else { throw bad("not an .npy array (no \\x93NUMPY magic)") }
        let major = b[6]
        let (lenSize, headerLen): (Int, Int)
        switch major {
        case 1: (lenSize, headerLen) = (2, Int(b[8]) | Int(b[9]) << 8)
        case 2, 3:
            guard b.count >= 12 else { throw bad("truncated .npy header") }
            (lenSize, headerLen) = (4, Int(b[8]) | Int(b[9]) << 8 | Int(b[10]) << 16 | Int(b[11]) << 24)
        default: throw bad(".npy version \(major) is not 1, 2 or 3")
        }
        let dataStart = 8 + lenSize + headerLen
        guard dataStart <= b.count else { throw bad("truncated .npy header") }
        let header = String(decoding: UnsafeRawBufferPointer(rebasing: b[(8 + lenSize)..<dataStart]), as: UTF8.self)
        func value(_ key: String) -> Substring? {
            guard let r = header.range(of: "'\(key)':") else { return nil }
            return header[r.upperBound...].drop { $0 == " " }
        }
        guard let d = value("descr"), d.first == "'", let close = d.dropFirst().firstIndex(of: "'") else { throw bad("no 'descr' in the .npy header") }
        let descr = String(d[d.index(after: d.startIndex)..<close])
        if let f = value("fortran_order"), f.hasPrefix("True") { throw bad("Fortran-ordered arrays are not supported (save a C-ordered array)") }
        guard let s = value("shape"), s.first == "(", let end = s.firstIndex(of: ")") else { throw bad("no 'shape' in the .npy header") }
        let dims = s[s.index(after: s.startIndex)..<end].split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        var shape: [Int] = []
        for dim in dims {
            guard let v = Int(dim), v >= 0, v < 1 << 40 else { throw bad("shape entry '\(dim)'") }
            shape.append(v)
        }
        guard let size = elementSize(descr) else {
            throw FormatError.unsupportedTensorType(file: file, tensor: name, type: "numpy '\(descr)' (need <f4, <f2 or <f8)")
        }
        let bytes = shape.reduce(size, *)
        guard dataStart + bytes == b.count else { throw bad("\(shape) of \(descr) needs \(bytes) bytes, the entry holds \(b.count - dataStart)") }
        return ArrayInfo(name: name, descr: descr, shape: shape, fileOffset: base + dataStart, byteCount: bytes)
    }

    static func elementSize(_ descr: String) -> Int? {
        switch descr { case "<f4": 4; case "<f2": 2; case "<f8": 8; default: nil }
    }

    /// Reads a floating-point array (<f4, <f2 or <f8) as fp32, checking its shape when given.
    public func floats(_ name: String, shape: [Int]? = nil) throws -> [Float] {
        guard let info = arrays[name] else { throw FormatError.missingTensor(file: path, tensor: name) }
        if let shape, shape != info.shape { throw FormatError.tensorShapeMismatch(file: path, tensor: name, expected: shape, found: info.shape) }
        let raw = UnsafeRawBufferPointer(rebasing: file.bytes[info.fileOffset..<(info.fileOffset + info.byteCount)])
        let n = info.elementCount
        switch info.descr {
        case "<f8": return (0..<n).map { Float(Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * $0, as: UInt64.self)))) }
        case "<f2":
            return [Float](unsafeUninitializedCapacity: n) { buf, c in
                Dequantize.run(.f16, raw, count: n, into: buf.baseAddress!)
                c = n
            }
        default: return (0..<n).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) }
        }
    }

    /// Writes float32 arrays as `np.savez` does: a stored (uncompressed) zip of `<name>.npy` entries,
    /// each a version 1.0 `.npy` with its header padded to 64 bytes. Written to a temporary name and
    /// renamed into place.
    public static func write(_ arrays: [(name: String, shape: [Int], values: [Float])], to path: String) throws {
        var out = Data(), central = Data()
        func le<T: FixedWidthInteger>(_ v: T, _ d: inout Data) { withUnsafeBytes(of: v.littleEndian) { d.append(contentsOf: $0) } }
        for a in arrays {
            precondition(a.shape.reduce(1, *) == a.values.count, "shape \(a.shape) does not match \(a.values.count) values of '\(a.name)'")
            let dims = a.shape.map(String.init).joined(separator: ", ") + (a.shape.count == 1 ? "," : "")
            var header = "{'descr': '<f4', 'fortran_order': False, 'shape': (\(dims)), }"
            while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }
            header += "\n"
            var member = Data([0x93] + Array("NUMPY".utf8) + [1, 0])
            le(UInt16(header.utf8.count), &member)
            member.append(contentsOf: Array(header.utf8))
            a.values.withUnsafeBytes { member.append(contentsOf: $0) }
            guard out.count + member.count < 0xFFFF_FFFF else { throw FormatError.badHeader(file: path, reason: "over 4 GiB (zip64 writing is not supported)") }
            let name = Array((a.name + ".npy").utf8), crc = CRC32.of(member), offset = out.count
            // Local header, then the member.
            le(UInt32(0x0403_4b50), &out); le(UInt16(20), &out); le(UInt16(0), &out); le(UInt16(0), &out)
            le(UInt16(0), &out); le(UInt16(0x21), &out); le(crc, &out)
            le(UInt32(member.count), &out); le(UInt32(member.count), &out)
            le(UInt16(name.count), &out); le(UInt16(0), &out)
            out.append(contentsOf: name)
            out.append(member)
            // Its central directory entry.
            le(UInt32(0x0201_4b50), &central); le(UInt16(20), &central); le(UInt16(20), &central); le(UInt16(0), &central)
            le(UInt16(0), &central); le(UInt16(0), &central); le(UInt16(0x21), &central); le(crc, &central)
            le(UInt32(member.count), &central); le(UInt32(member.count), &central)
            le(UInt16(name.count), &central); le(UInt16(0), &central); le(UInt16(0), &central)
            le(UInt16(0), &central); le(UInt16(0), &central); le(UInt32(0), &central); le(UInt32(offset), &central)
            central.append(contentsOf: name)
        }
        let cdOffset = out.count
        out.append(central)
        le(UInt32(0x0605_4b50), &out); le(UInt16(0), &out); le(UInt16(0), &out)
        le(UInt16(arrays.count), &out); le(UInt16(arrays.count), &out)
        le(UInt32(central.count), &out); le(UInt32(cdOffset), &out); le(UInt16(0), &out)
        try out.write(to: URL(fileURLWithPath: path), options: .atomic)
    }
}

/// CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320), as zip stores it.
enum CRC32 {
    static let table: [UInt32] = (0..<256).map { i in
        var c = UInt32(i)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    static func of(_ data: Data) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in data { c = table[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        return c ^ 0xFFFF_FFFF
    }
}
