import Foundation

/// Writes GGUF v3 files (the layout is documented in GGUF.swift). Loupe uses it for tiny test
/// models and fixtures; tensors are given as raw bytes of their type, or as fp32 values.
public struct GGUFWriter {
    private var metadata: [(String, GGUFValue)] = []
    private var tensors: [(name: String, dims: [Int], type: GGMLType, bytes: [UInt8])] = []
    public var alignment = 32

    public init() {}

    public mutating func set(_ key: String, _ value: GGUFValue) { metadata.append((key, value)) }

    /// Adds a tensor from its stored bytes; `dims` innermost first.
    public mutating func addTensor(_ name: String, dims: [Int], type: GGMLType, bytes: [UInt8]) {
        tensors.append((name, dims, type, bytes))
    }

    /// Adds an F32 tensor; `dims` innermost first (a row-major [n][k] matrix is [k, n]).
    public mutating func addTensor(_ name: String, dims: [Int], values: [Float]) {
        precondition(dims.reduce(1, *) == values.count, "\(name): \(dims) does not hold \(values.count) values")
        addTensor(name, dims: dims, type: .f32, bytes: values.withUnsafeBytes { Array($0) })
    }

    /// The whole file as bytes.
    public func bytes() -> [UInt8] {
        var out: [UInt8] = []
        func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { out += $0 } }
        func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { out += $0 } }
        func string(_ s: String) { u64(UInt64(s.utf8.count)); out += Array(s.utf8) }
        func typeCode(_ v: GGUFValue) -> UInt32 {
            switch v {
            case .uint8: return 0
            case .int8: return 1
            case .uint16: return 2
            case .int16: return 3
            case .uint32: return 4
            case .int32: return 5
            case .float32: return 6
            case .bool: return 7
            case .string: return 8
            case .array: return 9
            case .uint64: return 10
            case .int64: return 11
            case .float64: return 12
            }
        }
        func value(_ v: GGUFValue) {
            switch v {
            case let .uint8(x): out.append(x)
            case let .int8(x): out.append(UInt8(bitPattern: x))
            case let .uint16(x): withUnsafeBytes(of: x.littleEndian) { out += $0 }
            case let .int16(x): withUnsafeBytes(of: x.littleEndian) { out += $0 }
            case let .uint32(x): u32(x)
            case let .int32(x): withUnsafeBytes(of: x.littleEndian) { out += $0 }
            case let .float32(x): u32(x.bitPattern)
            case let .bool(x): out.append(x ? 1 : 0)
            case let .string(s): string(s)
            case let .array(items):
                u32(items.first.map(typeCode) ?? 4)
                u64(UInt64(items.count))
                items.forEach(value)
            case let .uint64(x): u64(x)
            case let .int64(x): withUnsafeBytes(of: x.littleEndian) { out += $0 }
            case let .float64(x): u64(x.bitPattern)
            }
        }

        u32(0x4655_4747)
        u32(3)
        u64(UInt64(tensors.count))
        let meta = alignment == 32 ? metadata : metadata + [("general.alignment", .uint32(UInt32(alignment)))]
        u64(UInt64(meta.count))
        for (k, v) in meta { string(k); u32(typeCode(v)); value(v) }
        var offset = 0
        for t in tensors {
            string(t.name)
            u32(UInt32(t.dims.count))
            t.dims.forEach { u64(UInt64($0)) }
            u32(t.type.rawValue)
            u64(UInt64(offset))
            offset += (t.bytes.count + alignment - 1) / alignment * alignment
        }
        while out.count % alignment != 0 { out.append(0) }
        for t in tensors {
            out += t.bytes
            while out.count % alignment != 0 { out.append(0) }
        }
        return out
    }

    public func write(to path: String) throws {
        try Data(bytes()).write(to: URL(fileURLWithPath: path), options: .atomic)
    }
}
