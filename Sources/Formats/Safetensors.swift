import Foundation

/// safetensors, Hugging Face's tensor file (sparsify's transcoder checkpoints use it).
///
///     u64  N, the header's length in bytes (little-endian)
///     N    bytes of JSON: { "__metadata__": {string: string}?,
///                           "<name>": {"dtype": "F32"|"F16"|"BF16"|…, "shape": [..],
///                                      "data_offsets": [begin, end]} , … }
///     data section: each tensor at [begin, end) from the end of the header, row-major
///
/// Checked at open: the header is valid JSON of that shape, every tensor's byte range lies in
/// the data section and matches its dtype and shape.
public final class SafetensorsFile: @unchecked Sendable {
    public enum DType: String, Sendable, CaseIterable {
        case f32 = "F32", f16 = "F16", bf16 = "BF16", f64 = "F64"
        case i64 = "I64", i32 = "I32", i16 = "I16", i8 = "I8", u8 = "U8", u16 = "U16", u32 = "U32", u64 = "U64", bool = "BOOL"

        public var size: Int {
            switch self {
            case .f64, .i64, .u64: return 8
            case .f32, .i32, .u32: return 4
            case .f16, .bf16, .i16, .u16: return 2
            case .i8, .u8, .bool: return 1
            }
        }
    }

    public struct TensorInfo: Equatable, Sendable {
        public let name: String
        public let dtype: DType
        /// Row-major shape, outermost first.
        public let shape: [Int]
        /// Byte offset from the start of the file.
        public let fileOffset: Int
        public let byteCount: Int
        public var elementCount: Int { shape.reduce(1, *) }
    }

    public let path: String
    public let metadata: [String: String]
    public let tensors: [String: TensorInfo]
    private let file: MappedFile

    public init(path: String) throws {
        file = try MappedFile(path: path)
        self.path = path
        var c = ByteCursor(file.bytes, file: path)
        let n = try c.read(UInt64.self, "header length")
        guard n <= UInt64(Limits.safetensorsHeader) else {
            throw FormatError.tooLarge(file: path, field: "header length", value: "\(n)", limit: "\(Limits.safetensorsHeader)")
        }
        guard n <= UInt64(file.bytes.count - 8) else { throw FormatError.truncated(file: path, reading: "header of \(n) bytes") }
        let headerBytes = try c.take(Int(n), "header")
        let dataStart = 8 + Int(n)
        guard let json = try? JSONSerialization.jsonObject(with: Data(headerBytes)), let header = json as? [String: Any] else {
            throw FormatError.badHeader(file: path, reason: "header is not a JSON object")
        }
        var metadata: [String: String] = [:]
        var tensors: [String: TensorInfo] = [:]
        let available = file.bytes.count - dataStart
        for (name, value) in header {
            if name == "__metadata__" {
                guard let m = value as? [String: Any] else { throw FormatError.badHeader(file: path, reason: "__metadata__ is not an object") }
                for (k, v) in m { metadata[k] = (v as? String) ?? "\(v)" }
                continue
            }
            guard let t = value as? [String: Any], let dtypeName = t["dtype"] as? String,
                  let rawShape = t["shape"] as? [Any], let rawOffsets = t["data_offsets"] as? [Any] else {
                throw FormatError.badHeader(file: path, reason: "tensor '\(name)' lacks dtype, shape or data_offsets")
            }
            // Every number must be an exact non-negative integer: 32.9 or 2^70 is refused, never rounded or wrapped.
            let shape = rawShape.compactMap(Self.exactInt), offsets = rawOffsets.compactMap(Self.exactInt)
            guard shape.count == rawShape.count, shape.count <= 8, offsets.count == 2, rawOffsets.count == 2 else {
                throw FormatError.badHeader(file: path, reason: "tensor '\(name)': shape and data_offsets must be non-negative integers (two offsets)")
            }
            guard let dtype = DType(rawValue: dtypeName) else {
                throw FormatError.unsupportedTensorType(file: path, tensor: name, type: dtypeName)
            }
            guard shape.allSatisfy({ $0 <= Limits.tensorDim }), let count = Limits.product(shape), count <= Limits.tensorElements else {
                throw FormatError.badTensorShape(file: path, tensor: name, reason: "\(shape) is more than \(Limits.tensorElements) elements")
            }
            let bytes = count * dtype.size
            let (begin, end) = (offsets[0], offsets[1])
            guard end >= begin, end <= available else {
                throw FormatError.tensorOutOfBounds(file: path, tensor: name, offset: dataStart + min(begin, available), bytes: bytes,
                                                    available: file.bytes.count)
            }
            guard end - begin == bytes else {
                throw FormatError.badTensorShape(file: path, tensor: name, reason: "\(shape) of \(dtypeName) needs \(bytes) bytes, data_offsets give \(end - begin)")
            }
            tensors[name] = TensorInfo(name: name, dtype: dtype, shape: shape, fileOffset: dataStart + begin, byteCount: bytes)
        }
        self.metadata = metadata
        self.tensors = tensors
    }

    /// A JSON number that is an exact integer in 0..<2^63 (not 32.9, not -1, not 2^70).
    static func exactInt(_ value: Any) -> Int? {
        guard let n = value as? NSNumber else { return nil }
        let d = n.doubleValue
        guard d >= 0, d < 0x1p63, d.rounded(.towardZero) == d else { return nil }
        let i = n.int64Value
        return i >= 0 ? Int(i) : nil
    }

    public func data(of info: TensorInfo) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: file.bytes[info.fileOffset..<info.fileOffset + info.byteCount])
    }

    /// Reads a floating-point tensor (F32, F16 or BF16) as fp32, checking its shape when given.
    public func floats(_ name: String, shape: [Int]? = nil) throws -> [Float] {
        guard let info = tensors[name] else { throw FormatError.missingTensor(file: path, tensor: name) }
        if let shape, shape != info.shape {
            throw FormatError.tensorShapeMismatch(file: path, tensor: name, expected: shape, found: info.shape)
        }
        let type: GGMLType
        switch info.dtype {
        case .f32: type = .f32
        case .f16: type = .f16
        case .bf16: type = .bf16
        default: throw FormatError.unsupportedTensorType(file: path, tensor: name, type: info.dtype.rawValue + " (need F32, F16 or BF16)")
        }
        return [Float](unsafeUninitializedCapacity: info.elementCount) { buf, n in
            Dequantize.run(type, data(of: info), count: info.elementCount, into: buf.baseAddress!)
            n = info.elementCount
        }
    }

    /// Writes F32 tensors (row-major) with optional string metadata. The file is written to a
    /// temporary name and renamed into place, so a reader never sees half a file.
    public static func write(_ tensors: [(name: String, shape: [Int], values: [Float])], metadata: [String: String] = [:], to path: String) throws {
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var offset = 0
        for t in tensors {
            precondition(t.shape.reduce(1, *) == t.values.count, "shape \(t.shape) does not match \(t.values.count) values of '\(t.name)'")
            header[t.name] = ["dtype": "F32", "shape": t.shape, "data_offsets": [offset, offset + 4 * t.values.count]] as [String: Any]
            offset += 4 * t.values.count
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while json.count % 8 != 0 { json.append(0x20) }
        var out = Data()
        out.reserveCapacity(8 + json.count + offset)
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(json)
        for t in tensors { t.values.withUnsafeBytes { out.append(contentsOf: $0) } }
        try out.write(to: URL(fileURLWithPath: path), options: .atomic)
    }
}
