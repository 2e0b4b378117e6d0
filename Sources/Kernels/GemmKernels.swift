// Register-blocked micro-kernels for Gemm, one per register file. Legend: a = mr rows of x (row
// stride lda), b = a strip of a packed W panel (k × nr, row stride ldb = PackedMatrix.nr),
// c = output tile (row stride ldc), s = broadcast x value, bj = W vectors.

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
    c0 = madd(c0, v, b0)
    c1 = madd(c1, v, b1)
    c2 = madd(c2, v, b2)
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

/// The GEMM micro-kernels, each shaped for one register file. `Gemm` runs the one the compiler
/// targets (`native`); tests run every one, since each is plain Swift SIMD that any CPU executes.
public enum GemmKernel: String, CaseIterable, Sendable {
    /// 8 × 48 tile, 24 SIMD16 accumulators: 32 zmm registers (AVX-512).
    case tile8x48
    /// 6 × 16 tile, 12 SIMD8 accumulators: 16 ymm registers (AVX2 + FMA); on NEON the same
    /// tile is 24 of its 32 q registers.
    case tile6x16
    /// 6 × 8 tile, 12 SIMD4 accumulators: 16 xmm registers (baseline x86-64 SSE2, any other CPU).
    case tile6x8

    /// The kernel for the instruction set this build was compiled for.
    public static let native: GemmKernel = {
        switch InstructionSet.compiled {
        case .avx512: return .tile8x48
        case .avx2, .neon: return .tile6x16
        case .portable: return .tile6x8
        }
    }()
}

/// A register tile: c[mr × nr] (= or +=) Σ_kk a[0..<mr][kk] ⊗ b[kk][0..<nr]. `nr` divides
/// `PackedMatrix.nr`, so a packed panel is `PackedMatrix.nr / nr` strips side by side.
protocol GemmTile {
    static var mr: Int { get }
    static var nr: Int { get }
    static func tile(_ kc: Int, _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int,
                     _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ add: Bool)
}

/// 8 × 48 with SIMD16: 24 accumulators + 3 W vectors + a broadcast = 28 of 32 zmm.
enum Tile8x48: GemmTile {
    static let mr = 8
    static let nr = 48

    @inline(__always)
    static func tile(_ kc: Int, _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int,
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
            b += ldb
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
}

/// 6 rows × 2 vectors of S: 12 accumulators + 2 W vectors + a broadcast = 15 registers, for the
/// 16-register files (SIMD8 on AVX2's ymm, SIMD4 on SSE's xmm); SIMD8 on NEON is 24 + 4 + 1 of 32.
enum Tile6x2<S: SIMD>: GemmTile where S.Scalar == Float {
    static var mr: Int { 6 }
    static var nr: Int { 2 * S.scalarCount }

    @inline(__always) static func ld(_ p: UnsafePointer<Float>) -> S { UnsafeRawPointer(p).loadUnaligned(as: S.self) }
    @inline(__always) static func st(_ v: S, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: S.self)
    }
    /// c0, c1 += s · (b0, b1)
    @inline(__always) static func fma2(_ c0: inout S, _ c1: inout S, _ s: Float, _ b0: S, _ b1: S) {
        let v = S(repeating: s)
        c0 = madd(c0, v, b0)
        c1 = madd(c1, v, b1)
    }
    @inline(__always) static func put2(_ c0: S, _ c1: S, _ c: UnsafeMutablePointer<Float>, _ add: Bool) {
        let w = S.scalarCount
        if add {
            st(ld(c) + c0, c)
            st(ld(c + w) + c1, c + w)
        } else {
            st(c0, c)
            st(c1, c + w)
        }
    }

    @inline(__always)
    static func tile(_ kc: Int, _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int,
                     _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ add: Bool) {
        let w = S.scalarCount
        var c00 = S(), c01 = S(), c10 = S(), c11 = S(), c20 = S(), c21 = S()
        var c30 = S(), c31 = S(), c40 = S(), c41 = S(), c50 = S(), c51 = S()
        var a = a, b = b
        for _ in 0..<kc {
            let b0 = ld(b), b1 = ld(b + w)
            fma2(&c00, &c01, a[0], b0, b1)
            fma2(&c10, &c11, a[lda], b0, b1)
            fma2(&c20, &c21, a[2 * lda], b0, b1)
            fma2(&c30, &c31, a[3 * lda], b0, b1)
            fma2(&c40, &c41, a[4 * lda], b0, b1)
            fma2(&c50, &c51, a[5 * lda], b0, b1)
            a += 1
            b += ldb
        }
        put2(c00, c01, c, add)
        put2(c10, c11, c + ldc, add)
        put2(c20, c21, c + 2 * ldc, add)
        put2(c30, c31, c + 3 * ldc, add)
        put2(c40, c41, c + 4 * ldc, add)
        put2(c50, c51, c + 5 * ldc, add)
    }
}

/// y[0..<48] (= or +=) Σ_kk x[kk] · b[kk][0..<48] for one row of x (the GEMV path): 48 columns
/// as 48 / S.scalarCount vectors, unrolled over k so 12 accumulators are live in the 16- and
/// 32-register files alike (SIMD16: 4 k-steps × 3; SIMD8: 2 × 6; SIMD4: 1 × 12).
enum Row48<S: SIMD> where S.Scalar == Float {
    @inline(__always)
    static func row(_ k: Int, _ x: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
                    _ y: UnsafeMutablePointer<Float>, _ add: Bool) {
        let w = S.scalarCount, vectors = 48 / w, unroll = max(1, 12 / vectors)
        // The 12 accumulators, in a fixed-size scratch buffer.
        withUnsafeTemporaryAllocation(of: S.self, capacity: 12) { acc in
            acc.initialize(repeating: S())
            var b = b
            var kk = 0
            while kk + unroll <= k {
                for u in 0..<unroll {
                    let s = S(repeating: x[kk + u])
                    for v in 0..<vectors {
                        acc[u * vectors + v] = madd(acc[u * vectors + v], s, UnsafeRawPointer(b + v * w).loadUnaligned(as: S.self))
                    }
                    b += 48
                }
                kk += unroll
            }
            while kk < k {
                let s = S(repeating: x[kk])
                for v in 0..<vectors {
                    acc[v] = madd(acc[v], s, UnsafeRawPointer(b + v * w).loadUnaligned(as: S.self))
                }
                b += 48
                kk += 1
            }
            for v in 0..<vectors {
                var sum = acc[v]
                for u in 1..<unroll { sum += acc[u * vectors + v] }
                let p = UnsafeMutableRawPointer(y + v * w)
                p.storeBytes(of: add ? p.loadUnaligned(as: S.self) + sum : sum, as: S.self)
            }
        }
    }
}
