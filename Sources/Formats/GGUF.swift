/// GGUF, llama.cpp's model file, versions 2 and 3. All integers little-endian.
///
///     u32  magic "GGUF" (0x46554747)
///     u32  version (2 or 3)
///     u64  tensor_count
///     u64  kv_count
///     kv_count × { string key; u32 value_type; value }
///     tensor_count × { string name; u32 n_dims; u64 dims[n_dims] (innermost first);
///                      u32 ggml_type; u64 offset (from the start of the data section) }
///     padding to `general.alignment` (default 32)
///     data section: each tensor at its offset, which is a multiple of the alignment
///
///     string = u64 length + UTF-8 bytes (no terminator)
///     value_type: 0 u8, 1 i8, 2 u16, 3 i16, 4 u32, 5 i32, 6 f32, 7 bool (u8), 8 string,
///                 9 array (u32 element type, u64 count, elements), 10 u64, 11 i64, 12 f64
///
/// Everything is checked when the file is opened: every string, array and tensor lies inside
/// the file, every tensor's byte size follows from its type and shape. After that, tensor data is
/// read straight from the memory map.

/// One metadata value.
public enum GGUFValue: Equatable, Sendable {
    case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16), uint32(UInt32), int32(Int32)
    case float32(Float), bool(Bool), string(String), array([GGUFValue])
    case uint64(UInt64), int64(Int64), float64(Double)

    /// The value as an integer, if it is one of the integer types.
    public var int: Int? {
        switch self {
        case let .uint8(v): return Int(v)
        case let .int8(v): return Int(v)
        case let .uint16(v): return Int(v)
        case let .int16(v): return Int(v)
        case let .uint32(v): return Int(v)
        case let .int32(v): return Int(v)
        case let .uint64(v): return v <= UInt64(Int.max) ? Int(v) : nil
        case let .int64(v): return Int(v)
        default: return nil
        }
    }

    public var double: Double? {
        switch self {
        case let .float32(v): return Double(v)
        case let .float64(v): return v
        default: return int.map(Double.init)
        }
    }

    public var string: String? { if case let .string(s) = self { return s } else { return nil } }
    public var bool: Bool? { if case let .bool(b) = self { return b } else { return nil } }
    public var array: [GGUFValue]? { if case let .array(a) = self { return a } else { return nil } }
}

/// Where one tensor lies and what it holds.
public struct GGUFTensorInfo: Equatable, Sendable {
    public let name: String
    /// Dimensions innermost first, as stored (a [n][k] matrix is listed as [k, n]).
    public let dims: [Int]
    public let type: GGMLType
    /// Byte offset from the start of the file.
    public let fileOffset: Int
    public let byteCount: Int
    public var elementCount: Int { dims.reduce(1, *) }
}

/// An opened, fully checked GGUF file.
public final class GGUFFile: @unchecked Sendable {
    public let path: String
    public let version: UInt32
    public let metadata: [String: GGUFValue]
    /// Metadata keys in file order.
    public let keys: [String]
    public let tensors: [GGUFTensorInfo]
    public let alignment: Int
    private let file: MappedFile
    private let tensorIndex: [String: Int]

    public init(path: String) throws {
        file = try MappedFile(path: path)
        self.path = path
        var c = ByteCursor(file.bytes, file: path)
        let magic = try c.read(UInt32.self, "magic")
        guard magic == 0x4655_4747 else {
            throw FormatError.badMagic(file: path, found: String(format32: magic))
        }
        version = try c.read(UInt32.self, "version")
        guard version == 2 || version == 3 else { throw FormatError.unsupportedVersion(file: path, version: version) }
        let tensorCount = try c.readCount("tensor count", minElementSize: 24)
        let kvCount = try c.readCount("metadata count", minElementSize: 12)
        for (what, n) in [("tensor count", tensorCount), ("metadata count", kvCount)] where n > Limits.ggufEntries {
            throw FormatError.tooLarge(file: path, field: what, value: "\(n)", limit: "\(Limits.ggufEntries)")
        }

        var metadata: [String: GGUFValue] = [:]
        var keys: [String] = []
        for i in 0..<kvCount {
            let key = try Self.readString(&c, what: "metadata key #\(i)", limit: Limits.keyBytes)
            let type = try c.read(UInt32.self, "type of '\(key)'")
            let value = try Self.readValue(&c, type: type, key: key)
            guard metadata.updateValue(value, forKey: key) == nil else { throw FormatError.duplicateKey(file: path, key: key) }
            keys.append(key)
        }
        self.metadata = metadata
        self.keys = keys

        // Absent means llama.cpp's 32; present, it must be an integer power of two (a string, a
        // float or a u64 past Int.max is refused, not replaced by the default).
        var alignment = 32
        if let v = metadata["general.alignment"] {
            guard let a = v.int, a > 0, a <= Limits.alignment, a & (a - 1) == 0 else {
                throw FormatError.badAlignment(file: path, alignment: v.summary)
            }
            alignment = a
        }
        self.alignment = alignment

        var raw: [(name: String, dims: [Int], type: UInt32, offset: UInt64)] = []
        for i in 0..<tensorCount {
            let name = try Self.readString(&c, what: "tensor name #\(i)", limit: Limits.keyBytes)
            let nDims = try c.read(UInt32.self, "dimension count of '\(name)'")
            guard nDims >= 1, nDims <= 4 else {
                throw FormatError.badTensorShape(file: path, tensor: name, reason: "\(nDims) dimensions")
            }
            var dims: [Int] = []
            for d in 0..<Int(nDims) {
                let n = try c.read(UInt64.self, "dimension \(d) of '\(name)'")
                guard n >= 1, n <= UInt64(Limits.tensorDim) else {
                    throw FormatError.badTensorShape(file: path, tensor: name, reason: "dimension \(d) is \(n)")
                }
                dims.append(Int(n))
            }
            let type = try c.read(UInt32.self, "type of '\(name)'")
            let offset = try c.read(UInt64.self, "offset of '\(name)'")
            raw.append((name, dims, type, offset))
        }
        let dataStart = (c.offset + alignment - 1) / alignment * alignment

        var tensors: [GGUFTensorInfo] = []
        var index: [String: Int] = [:]
        for t in raw {
            guard let type = GGMLType(rawValue: t.type), type.isSupported else {
                throw FormatError.unsupportedTensorType(file: path, tensor: t.name, type: GGMLType(rawValue: t.type)?.name ?? "#\(t.type)")
            }
            guard let count = Limits.product(t.dims), count <= Limits.tensorElements else {
                throw FormatError.badTensorShape(file: path, tensor: t.name,
                                                 reason: "\(t.dims) is more than \(Limits.tensorElements) elements")
            }
            guard t.dims[0] % type.blockSize == 0 else {
                throw FormatError.badTensorShape(file: path, tensor: t.name,
                                                 reason: "\(t.dims) does not fit \(type.name) blocks of \(type.blockSize)")
            }
            // count ≤ 2^40 and a block is at most 34 bytes, so this cannot overflow; the end is checked.
            let bytes = count / type.blockSize * type.blockBytes
            guard t.offset % UInt64(alignment) == 0, t.offset < UInt64(file.bytes.count),
                  let start = Limits.sum(dataStart, Int(t.offset)), let end = Limits.sum(start, bytes), end <= file.bytes.count else {
                throw FormatError.tensorOutOfBounds(file: path, tensor: t.name, offset: dataStart + Int(min(t.offset, 1 << 50)),
                                                    bytes: bytes, available: file.bytes.count)
            }
            guard index.updateValue(tensors.count, forKey: t.name) == nil else {
                throw FormatError.badTensorShape(file: path, tensor: t.name, reason: "name appears twice")
            }
            tensors.append(GGUFTensorInfo(name: t.name, dims: t.dims, type: type, fileOffset: dataStart + Int(t.offset), byteCount: bytes))
        }
        self.tensors = tensors
        self.tensorIndex = index
    }

    public func tensor(_ name: String) -> GGUFTensorInfo? { tensorIndex[name].map { tensors[$0] } }

    /// The raw bytes of a tensor, straight from the memory map.
    public func data(of info: GGUFTensorInfo) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: file.bytes[info.fileOffset..<info.fileOffset + info.byteCount])
    }

    /// Dequantizes a whole tensor into `out` (elementCount floats), checking its shape first.
    /// `shape` is innermost first, as in the file.
    public func dequantize(_ name: String, shape: [Int], into out: UnsafeMutablePointer<Float>) throws {
        guard let info = tensor(name) else { throw FormatError.missingTensor(file: path, tensor: name) }
        guard info.dims == shape else { throw FormatError.tensorShapeMismatch(file: path, tensor: name, expected: shape, found: info.dims) }
        Dequantize.run(info.type, data(of: info), count: info.elementCount, into: out)
        // Loaded once: the quantized pages need not stay resident beside the fp32 copy.
        file.release(info.fileOffset..<info.fileOffset + info.byteCount)
    }

    // MARK: typed metadata access

    public func int(_ key: String) throws -> Int {
        guard let v = metadata[key] else { throw FormatError.missingKey(file: path, key: key) }
        guard let i = v.int else { throw FormatError.wrongValueType(file: path, key: key, expected: "an integer") }
        return i
    }

    public func float(_ key: String) throws -> Float {
        guard let v = metadata[key] else { throw FormatError.missingKey(file: path, key: key) }
        guard let d = v.double else { throw FormatError.wrongValueType(file: path, key: key, expected: "a number") }
        return Float(d)
    }

    public func string(_ key: String) throws -> String {
        guard let v = metadata[key] else { throw FormatError.missingKey(file: path, key: key) }
        guard let s = v.string else { throw FormatError.wrongValueType(file: path, key: key, expected: "a string") }
        return s
    }

    public func strings(_ key: String) throws -> [String] {
        guard let v = metadata[key] else { throw FormatError.missingKey(file: path, key: key) }
        guard let a = v.array else { throw FormatError.wrongValueType(file: path, key: key, expected: "an array of strings") }
        return try a.map { guard let s = $0.string else { throw FormatError.wrongValueType(file: path, key: key, expected: "an array of strings") }; return s }
    }

    public func ints(_ key: String) throws -> [Int] {
        guard let v = metadata[key] else { throw FormatError.missingKey(file: path, key: key) }
        guard let a = v.array else { throw FormatError.wrongValueType(file: path, key: key, expected: "an array of integers") }
        return try a.map { guard let i = $0.int else { throw FormatError.wrongValueType(file: path, key: key, expected: "an array of integers") }; return i }
    }

    // MARK: parsing

    private static func readString(_ c: inout ByteCursor, what: String, limit: Int) throws -> String {
        let n = try c.readCount("length of \(what)")
        guard n <= limit else { throw FormatError.tooLarge(file: c.file, field: "length of \(what)", value: "\(n)", limit: "\(limit)") }
        let raw = try c.take(n, what)
        guard let s = String(validating: raw, as: UTF8.self) else { throw FormatError.badString(file: c.file, key: what) }
        return s
    }

    private static func readValue(_ c: inout ByteCursor, type: UInt32, key: String, depth: Int = 0) throws -> GGUFValue {
        switch type {
        case 0: return .uint8(try c.read(UInt8.self, key))
        case 1: return .int8(try c.read(Int8.self, key))
        case 2: return .uint16(try c.read(UInt16.self, key))
        case 3: return .int16(try c.read(Int16.self, key))
        case 4: return .uint32(try c.read(UInt32.self, key))
        case 5: return .int32(try c.read(Int32.self, key))
        case 6: return .float32(try c.readFloat(key))
        case 7:
            let b = try c.read(UInt8.self, key)
            guard b <= 1 else { throw FormatError.wrongValueType(file: c.file, key: key, expected: "a bool (0 or 1)") }
            return .bool(b == 1)
        case 8:
            let n = try c.readCount("length of '\(key)'")
            guard n <= Limits.stringBytes else {
                throw FormatError.tooLarge(file: c.file, field: "length of '\(key)'", value: "\(n)", limit: "\(Limits.stringBytes)")
            }
            guard let s = String(validating: try c.take(n, key), as: UTF8.self) else { throw FormatError.badString(file: c.file, key: key) }
            return .string(s)
        case 9:
            guard depth < 4 else { throw FormatError.badValueType(file: c.file, key: key, type: type) }
            let elementType = try c.read(UInt32.self, "element type of '\(key)'")
            // Each element takes at least its fixed size (a string its 8-byte length), so the count is
            // bounded by the bytes left before anything is reserved.
            let n = try c.readCount("length of '\(key)'", minElementSize: Self.minimumSize(of: elementType))
            guard n <= Limits.arrayElements else {
                throw FormatError.tooLarge(file: c.file, field: "length of '\(key)'", value: "\(n)", limit: "\(Limits.arrayElements)")
            }
            var values: [GGUFValue] = []
            values.reserveCapacity(n)
            for _ in 0..<n { values.append(try readValue(&c, type: elementType, key: key, depth: depth + 1)) }
            return .array(values)
        case 10: return .uint64(try c.read(UInt64.self, key))
        case 11: return .int64(try c.read(Int64.self, key))
        case 12: return .float64(try c.readDouble(key))
        default: throw FormatError.badValueType(file: c.file, key: key, type: type)
        }
    }
}

extension GGUFFile {
    /// The fewest bytes one value of a GGUF type takes (unknown types: 1; they are refused when read).
    static func minimumSize(of type: UInt32) -> Int {
        switch type {
        case 0, 1, 7: return 1
        case 2, 3: return 2
        case 4, 5, 6: return 4
        case 8, 10, 11, 12: return 8
        case 9: return 12
        default: return 1
        }
    }
}

extension GGUFValue {
    /// A short description of the value for an error message (strings cut to 40 characters).
    public var summary: String {
        switch self {
        case let .string(s): return "the string \"\(s.prefix(40))\""
        case let .array(a): return "an array of \(a.count)"
        case let .bool(b): return "the bool \(b)"
        case let .float32(f): return "the float \(f)"
        case let .float64(f): return "the float \(f)"
        case let .uint64(v): return "\(v)"
        default: return int.map { "\($0)" } ?? "\(self)"
        }
    }
}

extension String {
    /// Four bytes as printable characters, e.g. "GGUF" or "\u{0}\u{0}..".
    init(format32 v: UInt32) {
        let bytes = (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) }
        self = bytes.map { (32..<127).contains($0) ? String(UnicodeScalar($0)) : "." }.joined()
    }
}
