import Foundation

/// Vector kernels over rows of fp32. Each optimised kernel sits beside its plain-loop `…Reference` twin.
/// Legend: v = 16-lane vector, acc = SIMD accumulator, n = element count.
public enum Ops {
    /// out[t][i] = x[t][i] / sqrt(mean_i(x[t]²) + eps) · weight[i] for `rows` rows of length `dim`
    /// (row stride = dim). In place allowed (out == x).
    public static func rmsNorm(_ x: UnsafePointer<Float>, weight: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>,
                               rows: Int, dim: Int, eps: Float) {
        let body = dim / 16 * 16
        for t in 0..<rows {
            let r = x + t * dim, o = out + t * dim
            var a0 = V(), a1 = V()
            var i = 0
            while i + 32 <= body {
                let v0 = loadU(r + i), v1 = loadU(r + i + 16)
                a0 = madd(a0, v0, v0)
                a1 = madd(a1, v1, v1)
                i += 32
            }
            if i < body {
                let v0 = loadU(r + i)
                a0 = madd(a0, v0, v0)
            }
            var ss = (a0 + a1).sum()
            for j in body..<dim { ss += r[j] * r[j] }
            let inv = 1 / (ss / Float(dim) + eps).squareRoot()
            let s = V(repeating: inv)
            i = 0
            while i < body {
                storeU(loadU(r + i) * s * loadU(weight + i), o + i)
                i += 16
            }
            for j in body..<dim { o[j] = r[j] * inv * weight[j] }
        }
    }

    /// Plain-loop twin of `rmsNorm`.
    public static func rmsNormReference(_ x: UnsafePointer<Float>, weight: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>,
                                        rows: Int, dim: Int, eps: Float) {
        for t in 0..<rows {
            var ss: Float = 0
            for i in 0..<dim { ss += x[t * dim + i] * x[t * dim + i] }
            let inv = 1 / (ss / Float(dim) + eps).squareRoot()
            for i in 0..<dim { out[t * dim + i] = x[t * dim + i] * inv * weight[i] }
        }
    }

    /// out[i] = silu(gate[i]) · up[i] with silu(g) = g / (1 + exp(−g)); `count` elements. out may alias gate or up.
    public static func swiglu(gate: UnsafePointer<Float>, up: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>, count: Int) {
        var i = 0
        while i + 16 <= count {
            let g = loadU(gate + i)
            storeU(g / (1 + fastExp(-g)) * loadU(up + i), out + i)
            i += 16
        }
        if i < count {
            var g = V(), u = V()
            for j in i..<count { g[j - i] = gate[j]; u[j - i] = up[j] }
            let r = g / (1 + fastExp(-g)) * u
            for j in i..<count { out[j] = r[j - i] }
        }
    }

    /// Plain-loop twin of `swiglu`.
    public static func swigluReference(gate: UnsafePointer<Float>, up: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count { out[i] = gate[i] / (1 + Foundation.exp(-gate[i])) * up[i] }
    }

    /// a[i] += b[i] for `count` elements.
    public static func add(_ a: UnsafeMutablePointer<Float>, _ b: UnsafePointer<Float>, count: Int) {
        var i = 0
        while i + 16 <= count {
            storeU(loadU(a + i) + loadU(b + i), a + i)
            i += 16
        }
        while i < count { a[i] += b[i]; i += 1 }
    }

    /// Plain-loop twin of `add`.
    public static func addReference(_ a: UnsafeMutablePointer<Float>, _ b: UnsafePointer<Float>, count: Int) {
        for i in 0..<count { a[i] += b[i] }
    }

    /// log Σ exp(x[i]), computed stably (max subtracted). Returns −∞ for count == 0.
    public static func logSumExp(_ x: UnsafePointer<Float>, count: Int) -> Float {
        if count == 0 { return -.infinity }
        let mx = max(x, count: count)
        if !mx.isFinite { return mx }
        let m = V(repeating: mx)
        var acc = V()
        var i = 0
        while i + 16 <= count {
            acc += fastExp(loadU(x + i) - m)
            i += 16
        }
        var s = acc.sum()
        while i < count { s += Foundation.exp(x[i] - mx); i += 1 }
        return mx + Foundation.log(s)
    }

    /// Plain-loop twin of `logSumExp` (accumulates in Double).
    public static func logSumExpReference(_ x: UnsafePointer<Float>, count: Int) -> Float {
        if count == 0 { return -.infinity }
        var mx = -Float.infinity
        for i in 0..<count { mx = Swift.max(mx, x[i]) }
        if !mx.isFinite { return mx }
        var s = 0.0
        for i in 0..<count { s += Foundation.exp(Double(x[i] - mx)) }
        return mx + Float(Foundation.log(s))
    }

    /// Index of the largest element (the first one on ties); 0 when count == 0.
    public static func argmax(_ x: UnsafePointer<Float>, count: Int) -> Int {
        if count == 0 { return 0 }
        let mx = max(x, count: count)
        for i in 0..<count where x[i] == mx { return i }
        return argmaxReference(x, count: count)
    }

    /// Plain-loop twin of `argmax`.
    public static func argmaxReference(_ x: UnsafePointer<Float>, count: Int) -> Int {
        var best = 0
        for i in 1..<Swift.max(count, 1) where x[i] > x[best] { best = i }
        return best
    }

    /// Largest element (SIMD scan).
    @inline(__always)
    static func max(_ x: UnsafePointer<Float>, count: Int) -> Float {
        var acc = V(repeating: -.infinity)
        var i = 0
        while i + 16 <= count {
            acc = vmax(acc, loadU(x + i))
            i += 16
        }
        var mx = acc.max()
        while i < count { mx = Swift.max(mx, x[i]); i += 1 }
        return mx
    }

    /// Vector exp (see `fastExp`): relative error ≈ 1e-7; below −87.3 gives 0, above 88 saturates at e⁸⁸.
    public static func exp(_ x: SIMD16<Float>) -> SIMD16<Float> { fastExp(x) }

    /// exp on 16 lanes: 2ⁿ·p(r) with x = n·ln2 + r, |r| ≤ ln2/2, Cephes minimax polynomial (rel. error ≈ 1e-7).
    /// Inputs below −87.3 give 0; inputs above 88 saturate at e⁸⁸.
    @inline(always)
    static func fastExp(_ x: V) -> V {
        let magic = V(repeating: 12_582_912)  // 1.5·2²³: adding it rounds to an integer held in the low mantissa bits
        let xc = vmin(vmax(x, V(repeating: -87.3)), V(repeating: 88))
        let t = madd(magic, xc, V(repeating: 1.442_695_04))
        let n = t - magic
        var r = madd(xc, n, V(repeating: -0.693_359_375))  // exact: ln2's high part has 9 bits, n ≤ 8
        r = madd(r, n, V(repeating: 2.121_944_4e-4))
        var p = V(repeating: 1.987_569_15e-4)
        p = p * r + 1.398_199_950_7e-3
        p = p * r + 8.333_451_907_3e-3
        p = p * r + 4.166_579_589_4e-2
        p = p * r + 1.666_666_545_9e-1
        p = p * r + 5.000_000_120_1e-1
        let e = (p * r * r + r) + 1
        let bits = (unsafeBitCast(t, to: SIMD16<Int32>.self) &- 0x4B40_0000 &+ 127) &<< 23
        let y = e * unsafeBitCast(bits, to: V.self)
        return y.replacing(with: 0, where: x .< -87.3)
    }
}
