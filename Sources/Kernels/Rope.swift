import Foundation

/// Precomputed RoPE angles: cos/sin of θ = position · base^(−2i/headDim) for i in 0..<headDim/2,
/// computed in Double and stored as Float, [position][i].
public final class RopeTable: @unchecked Sendable {
    /// Head dimension the table was built for.
    public let headDim: Int
    /// Frequency base (10000 for Llama, 100000 for SmolLM2).
    public let base: Double
    /// Positions covered, 0..<maxPositions.
    public let maxPositions: Int
    let cosines: FloatBuffer
    let sines: FloatBuffer

    /// Builds the table for positions 0..<maxPositions.
    public init(headDim: Int, base: Double, maxPositions: Int) {
        precondition(headDim > 0 && headDim % 2 == 0, "RoPE head dimension must be even")
        self.headDim = headDim
        self.base = base
        self.maxPositions = maxPositions
        let half = headDim / 2
        cosines = FloatBuffer(count: maxPositions * half)
        sines = FloatBuffer(count: maxPositions * half)
        for i in 0..<half {
            let freq = Foundation.pow(base, -2.0 * Double(i) / Double(headDim))
            for p in 0..<maxPositions {
                let theta = Double(p) * freq
                cosines[p * half + i] = Float(Foundation.cos(theta))
                sines[p * half + i] = Float(Foundation.sin(theta))
            }
        }
    }
}

extension Ops {
    /// Adjacent-pair RoPE (llama.cpp "normal" mode, GGUF-permuted q/k rows), in place. For row t at
    /// position startPosition + t, each head h and pair i: (x[2i], x[2i+1]) ← (x0·cosθ − x1·sinθ, x0·sinθ + x1·cosθ).
    /// Rows hold heads·headDim floats with row stride `stride`. Legend: c, s = cos θ, sin θ; x0, x1 = the pair.
    public static func rope(_ x: UnsafeMutablePointer<Float>, rows: Int, stride: Int, heads: Int, headDim: Int,
                            startPosition: Int, table: RopeTable) {
        precondition(table.headDim == headDim, "RoPE table built for another head dimension")
        precondition(startPosition >= 0 && startPosition + rows <= table.maxPositions, "position beyond RoPE table")
        let half = headDim / 2
        for t in 0..<rows {
            let c = table.cosines.pointer + (startPosition + t) * half
            let s = table.sines.pointer + (startPosition + t) * half
            for h in 0..<heads {
                let v = x + t * stride + h * headDim
                for i in 0..<half {
                    let x0 = v[2 * i], x1 = v[2 * i + 1]
                    v[2 * i] = x0 * c[i] - x1 * s[i]
                    v[2 * i + 1] = x0 * s[i] + x1 * c[i]
                }
            }
        }
    }

    /// Plain-loop twin of `rope`; computes each angle in Double from `table.base` directly (the table's values are unused).
    public static func ropeReference(_ x: UnsafeMutablePointer<Float>, rows: Int, stride: Int, heads: Int, headDim: Int,
                                     startPosition: Int, table: RopeTable) {
        let base = table.base
        for t in 0..<rows {
            for h in 0..<heads {
                for i in 0..<headDim / 2 {
                    let theta = Double(startPosition + t) * Foundation.pow(base, -2.0 * Double(i) / Double(headDim))
                    let c = Float(Foundation.cos(theta)), s = Float(Foundation.sin(theta))
                    let p = x + t * stride + h * headDim + 2 * i
                    let x0 = p[0], x1 = p[1]
                    p[0] = x0 * c - x1 * s
                    p[1] = x0 * s + x1 * c
                }
            }
        }
    }
}
