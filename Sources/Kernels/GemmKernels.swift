// Register-blocked micro-kernels for Gemm. Legend: a = 8 rows of x (row stride lda),
// b = packed W panel (k × NR), c = output tile (row stride ldc), s = broadcast x value, bj = W vectors.

typealias V = SIMD16<Float>

@inline(__always) func load(_ p: UnsafePointer<Float>) -> V {
    UnsafeRawPointer(p).load(as: V.self)
}

@inline(__always) func loadU(_ p: UnsafePointer<Float>) -> V {
    UnsafeRawPointer(p).loadUnaligned(as: V.self)
}

@inline(__always) func storeU(_ v: V, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: V.self)
}

/// Lane-wise max / min as a compare + blend (`pointwiseMax` is scalarised for its NaN rules).
@inline(__always) func vmax(_ a: V, _ b: V) -> V { a.replacing(with: b, where: b .> a) }
@inline(__always) func vmin(_ a: V, _ b: V) -> V { a.replacing(with: b, where: b .< a) }

/// c0..c2 += s · (b0, b1, b2)
@inline(__always) func fma3(_ c0: inout V, _ c1: inout V, _ c2: inout V, _ s: Float, _ b0: V, _ b1: V, _ b2: V) {
    let v = V(repeating: s)
    c0 = c0.addingProduct(v, b0)
    c1 = c1.addingProduct(v, b1)
    c2 = c2.addingProduct(v, b2)
}

/// Writes (add == false) or adds one 48-wide accumulator row to c.
@inline(__always) func put3(_ c0: V, _ c1: V, _ c2: V, _ c: UnsafeMutablePointer<Float>, _ add: Bool) {
    if add {
        storeU(loadU(c) + c0, c)
        storeU(loadU(c + 16) + c1, c + 16)
        storeU(loadU(c + 32) + c2, c + 32)
    } else {
        storeU(c0, c)
        storeU(c1, c + 16)
        storeU(c2, c + 32)
    }
}

enum MicroKernel {
    static let mr = 8
    static let nr = 48

    /// c[8×48] (= or +=) Σ_kk a[0..<8][kk] ⊗ b[kk][0..<48]; a rows have stride lda; 24 zmm accumulators.
    @inline(__always)
    static func tile8x48(_ kc: Int, _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>,
                         _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ add: Bool) {
        var c00 = V(), c01 = V(), c02 = V(), c10 = V(), c11 = V(), c12 = V()
        var c20 = V(), c21 = V(), c22 = V(), c30 = V(), c31 = V(), c32 = V()
        var c40 = V(), c41 = V(), c42 = V(), c50 = V(), c51 = V(), c52 = V()
        var c60 = V(), c61 = V(), c62 = V(), c70 = V(), c71 = V(), c72 = V()
        var a = a, b = b
        for _ in 0..<kc {
            let b0 = load(b), b1 = load(b + 16), b2 = load(b + 32)
            fma3(&c00, &c01, &c02, a[0], b0, b1, b2)
            fma3(&c10, &c11, &c12, a[lda], b0, b1, b2)
            fma3(&c20, &c21, &c22, a[2 * lda], b0, b1, b2)
            fma3(&c30, &c31, &c32, a[3 * lda], b0, b1, b2)
            fma3(&c40, &c41, &c42, a[4 * lda], b0, b1, b2)
            fma3(&c50, &c51, &c52, a[5 * lda], b0, b1, b2)
            fma3(&c60, &c61, &c62, a[6 * lda], b0, b1, b2)
            fma3(&c70, &c71, &c72, a[7 * lda], b0, b1, b2)
            a += 1
            b += 48
        }
        put3(c00, c01, c02, c, add)
        put3(c10, c11, c12, c + ldc, add)
        put3(c20, c21, c22, c + 2 * ldc, add)
        put3(c30, c31, c32, c + 3 * ldc, add)
        put3(c40, c41, c42, c + 4 * ldc, add)
        put3(c50, c51, c52, c + 5 * ldc, add)
        put3(c60, c61, c62, c + 6 * ldc, add)
        put3(c70, c71, c72, c + 7 * ldc, add)
    }

    /// y[0..<48] (= or +=) Σ_kk x[kk] · b[kk][0..<48], unrolled 4× over k with separate accumulators.
    @inline(__always)
    static func row1x48(_ k: Int, _ x: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
                        _ y: UnsafeMutablePointer<Float>, _ add: Bool) {
        var p0 = V(), p1 = V(), p2 = V(), q0 = V(), q1 = V(), q2 = V()
        var r0 = V(), r1 = V(), r2 = V(), s0 = V(), s1 = V(), s2 = V()
        var b = b
        var kk = 0
        while kk + 4 <= k {
            fma3(&p0, &p1, &p2, x[kk], load(b), load(b + 16), load(b + 32))
            fma3(&q0, &q1, &q2, x[kk + 1], load(b + 48), load(b + 64), load(b + 80))
            fma3(&r0, &r1, &r2, x[kk + 2], load(b + 96), load(b + 112), load(b + 128))
            fma3(&s0, &s1, &s2, x[kk + 3], load(b + 144), load(b + 160), load(b + 176))
            b += 192
            kk += 4
        }
        while kk < k {
            fma3(&p0, &p1, &p2, x[kk], load(b), load(b + 16), load(b + 32))
            b += 48
            kk += 1
        }
        put3((p0 + q0) + (r0 + s0), (p1 + q1) + (r1 + s1), (p2 + q2) + (r2 + s2), y, add)
    }
}
