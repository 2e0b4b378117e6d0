/// ggml tensor types and their block layouts. Loupe reads the six listed as supported and
/// dequantizes them once, at load, into fp32.
///
///     F32   1 weight in 4 bytes
///     F16   1 weight in 2 bytes (IEEE half)
///     BF16  1 weight in 2 bytes (upper half of an fp32)
///     Q8_0  32 weights in 34 bytes: f16 d, i8 q[32]           w = d·q
///     Q4_0  32 weights in 18 bytes: f16 d, u8 qs[16]          w = d·(nibble − 8)
///     Q4_1  32 weights in 20 bytes: f16 d, f16 m, u8 qs[16]   w = d·nibble + m
///     (in Q4_*, weight j < 16 is the low nibble of qs[j], weight j + 16 its high nibble)
public enum GGMLType: UInt32, Sendable, CaseIterable {
    case f32 = 0, f16 = 1, q4_0 = 2, q4_1 = 3, q5_0 = 6, q5_1 = 7, q8_0 = 8, q8_1 = 9
    case q2_K = 10, q3_K = 11, q4_K = 12, q5_K = 13, q6_K = 14, q8_K = 15
    case bf16 = 30

    public var name: String {
        switch self {
        case .f32: return "F32"
        case .f16: return "F16"
        case .bf16: return "BF16"
        case .q4_0: return "Q4_0"
        case .q4_1: return "Q4_1"
        case .q5_0: return "Q5_0"
        case .q5_1: return "Q5_1"
        case .q8_0: return "Q8_0"
        case .q8_1: return "Q8_1"
        case .q2_K: return "Q2_K"
        case .q3_K: return "Q3_K"
        case .q4_K: return "Q4_K"
        case .q5_K: return "Q5_K"
        case .q6_K: return "Q6_K"
        case .q8_K: return "Q8_K"
        }
    }

    public var isSupported: Bool { [.f32, .f16, .bf16, .q8_0, .q4_0, .q4_1].contains(self) }

    /// Weights per block.
    public var blockSize: Int {
        switch self {
        case .f32, .f16, .bf16: return 1
        case .q2_K, .q3_K, .q4_K, .q5_K, .q6_K, .q8_K: return 256
        default: return 32
        }
    }

    /// Bytes per block (supported types; the others are never sized).
    public var blockBytes: Int {
        switch self {
        case .f32: return 4
        case .f16, .bf16: return 2
        case .q8_0: return 34
        case .q4_0: return 18
        case .q4_1: return 20
        default: return 0
        }
    }
}

/// Turns stored blocks into fp32 weights.
public enum Dequantize {
    /// Dequantizes `count` weights (a multiple of the type's block size) from `src` into `out`.
    /// `src` must hold at least count / blockSize · blockBytes bytes (checked by the caller at load).
    public static func run(_ type: GGMLType, _ src: UnsafeRawBufferPointer, count: Int, into out: UnsafeMutablePointer<Float>) {
        precondition(type.isSupported && count % type.blockSize == 0 && src.count >= count / type.blockSize * type.blockBytes)
        guard count > 0, let p = src.baseAddress else { return }
        switch type {
        case .f32:
            for i in 0..<count { out[i] = p.loadUnaligned(fromByteOffset: 4 * i, as: Float.self) }
        case .f16:
            for i in 0..<count { out[i] = half(p, 2 * i) }
        case .bf16:
            for i in 0..<count { out[i] = Float(bitPattern: UInt32(p.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) << 16) }
        case .q8_0:
            for b in 0..<count / 32 {
                let blk = p + 34 * b, o = out + 32 * b
                let d = half(blk, 0)
                for j in 0..<32 { o[j] = d * Float(blk.load(fromByteOffset: 2 + j, as: Int8.self)) }
            }
        case .q4_0:
            for b in 0..<count / 32 {
                let blk = p + 18 * b, o = out + 32 * b
                let d = half(blk, 0)
                for j in 0..<16 {
                    let q = blk.load(fromByteOffset: 2 + j, as: UInt8.self)
                    o[j] = d * Float(Int(q & 0xF) - 8)
                    o[j + 16] = d * Float(Int(q >> 4) - 8)
                }
            }
        case .q4_1:
            for b in 0..<count / 32 {
                let blk = p + 20 * b, o = out + 32 * b
                let d = half(blk, 0), m = half(blk, 2)
                for j in 0..<16 {
                    let q = blk.load(fromByteOffset: 4 + j, as: UInt8.self)
                    o[j] = d * Float(q & 0xF) + m
                    o[j + 16] = d * Float(q >> 4) + m
                }
            }
        default:
            preconditionFailure("unsupported type \(type.name)")
        }
    }

    @inline(__always)
    static func half(_ p: UnsafeRawPointer, _ offset: Int) -> Float {
        Float(Float16(bitPattern: p.loadUnaligned(fromByteOffset: offset, as: UInt16.self)))
    }
}
