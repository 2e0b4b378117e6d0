/// Matrix multiplication y = x·Wᵀ against weights packed by `PackedMatrix`.
public enum Gemm {
    /// Rows of x per block: their k-slices stay in L2 while every panel of the thread passes by.
    static let mc = 256
    /// Upper bound on the k-block length (a W micro-panel strip kc × nr stays in L1 across the slices).
    static let kcMax = 256

    /// y[m×n] = x[m×k]·Wᵀ (y += … when accumulate). x has row stride ldx, y has row stride ldy.
    /// Multithreaded over `Parallel.threads`; m ≤ 3 takes a streaming GEMV path, one row at a time.
    /// `kernel` picks the register tile (tests run each; the default is the one this build targets).
    public static func matmul(x: UnsafePointer<Float>, ldx: Int, m: Int, w: PackedMatrix,
                              y: UnsafeMutablePointer<Float>, ldy: Int, accumulate: Bool = false,
                              kernel: GemmKernel = .native) {
        switch kernel {
        case .tile8x48:
            matmul(Tile8x48.self, Row48<SIMD16<Float>>.self, x: x, ldx: ldx, m: m, w: w, y: y, ldy: ldy, accumulate: accumulate)
        case .tile6x16:
            matmul(Tile6x2<SIMD8<Float>>.self, Row48<SIMD8<Float>>.self, x: x, ldx: ldx, m: m, w: w, y: y, ldy: ldy, accumulate: accumulate)
        case .tile6x8:
            matmul(Tile6x2<SIMD4<Float>>.self, Row48<SIMD4<Float>>.self, x: x, ldx: ldx, m: m, w: w, y: y, ldy: ldy, accumulate: accumulate)
        }
    }

    @inline(__always)
    static func matmul<T: GemmTile, S: SIMD>(_ tile: T.Type, _ row: Row48<S>.Type, x: UnsafePointer<Float>, ldx: Int, m: Int,
                                             w: PackedMatrix, y: UnsafeMutablePointer<Float>, ldy: Int, accumulate: Bool)
    where S.Scalar == Float {
        let n = w.rows, k = w.cols
        if m <= 0 || n == 0 { return }
        if k == 0 {
            if !accumulate { for i in 0..<m { (y + i * ldy).update(repeating: 0, count: n) } }
            return
        }
        if m <= 3 {
            for i in 0..<m { gemv(row, x: x + i * ldx, w: w, y: y + i * ldy, accumulate: accumulate) }
            return
        }
        let mr = T.mr
        let slices = (m + mr - 1) / mr
        let work = m * n * k
        let nt = work < 1 << 18 ? 1 : max(1, Parallel.threads)
        let splitN = w.panels >= 2 * nt || (w.panels >= nt && (n >= m || slices < 2 * nt))
        let tasks = min(nt, splitN ? w.panels : slices)
        Parallel.forEach(tasks) { t in
            var p0 = 0, p1 = w.panels, r0 = 0, r1 = m
            if splitN {
                p0 = t * w.panels / tasks
                p1 = (t + 1) * w.panels / tasks
            } else {
                r0 = t * slices / tasks * mr
                r1 = min(m, (t + 1) * slices / tasks * mr)
            }
            block(T.self, x: x, ldx: ldx, rows: r0..<r1, w: w, panels: p0..<p1, y: y, ldy: ldy, accumulate: accumulate)
        }
    }

    /// One thread's share: rows × panels, blocked over m (mc) and k (≤ kcMax, balanced). Full
    /// slices of mr rows read x in place; a ragged last slice is copied into zero-padded scratch
    /// first. Order per m block: panel strip (T.nr of the panel's columns), k block, slice — so the
    /// strip's kc × nr block of W stays in L1 while every slice passes it, and each output tile is
    /// finished while it is in cache.
    @inline(__always)
    static func block<T: GemmTile>(_ t: T.Type, x: UnsafePointer<Float>, ldx: Int, rows: Range<Int>, w: PackedMatrix,
                                   panels: Range<Int>, y: UnsafeMutablePointer<Float>, ldy: Int, accumulate: Bool) {
        let mr = T.mr, nr = T.nr, pw = PackedMatrix.nr
        let n = w.rows, k = w.cols
        let kBlocks = (k + kcMax - 1) / kcMax
        let kc = (k + kBlocks - 1) / kBlocks
        Scratch.with(mr * k + mr * nr) { edge in
            let tile = edge + mr * k
            var mb = rows.lowerBound
            while mb < rows.upperBound {
                let ml = min(mc, rows.upperBound - mb)
                let full = ml / mr * mr
                if full < ml {
                    edge.update(repeating: 0, count: mr * k)
                    for i in 0..<(ml - full) { (edge + i * k).update(from: x + (mb + full + i) * ldx, count: k) }
                }
                for p in panels {
                    var q = 0
                    while q < pw && p * pw + q < n {
                        let col = p * pw + q
                        let nc = min(nr, n - col)
                        var kb = 0
                        while kb < k {
                            let kl = min(kc, k - kb)
                            let b = w.panel(p) + kb * pw + q
                            let add = accumulate || kb > 0
                            var s = 0
                            while s < ml {
                                let rc = min(mr, ml - s)
                                let a = rc == mr ? x + (mb + s) * ldx + kb : UnsafePointer(edge + kb)
                                let lda = rc == mr ? ldx : k
                                let c = y + (mb + s) * ldy + col
                                if rc == mr && nc == nr {
                                    T.tile(kl, a, lda, b, pw, c, ldy, add)
                                } else {
                                    T.tile(kl, a, lda, b, pw, tile, nr, false)
                                    for i in 0..<rc {
                                        for j in 0..<nc {
                                            let v = tile[i * nr + j]
                                            c[i * ldy + j] = add ? c[i * ldy + j] + v : v
                                        }
                                    }
                                }
                                s += mr
                            }
                            kb += kl
                        }
                        q += nr
                    }
                }
                mb += ml
            }
        }
    }

    /// One row of x: each W panel streamed once; panels split over the threads.
    @inline(__always)
    static func gemv<S: SIMD>(_ row: Row48<S>.Type, x: UnsafePointer<Float>, w: PackedMatrix, y: UnsafeMutablePointer<Float>,
                              accumulate: Bool) where S.Scalar == Float {
        let nr = PackedMatrix.nr
        let n = w.rows, k = w.cols
        let nt = n * k < 1 << 17 ? 1 : min(max(1, Parallel.threads), w.panels)
        Parallel.forEach(nt) { t in
            Scratch.with(nr) { tmp in
                for p in (t * w.panels / nt)..<((t + 1) * w.panels / nt) {
                    let nc = min(nr, n - p * nr)
                    if nc == nr {
                        Row48<S>.row(k, x, w.panel(p), y + p * nr, accumulate)
                    } else {
                        Row48<S>.row(k, x, w.panel(p), tmp, false)
                        for j in 0..<nc { y[p * nr + j] = accumulate ? y[p * nr + j] + tmp[j] : tmp[j] }
                    }
                }
            }
        }
    }

    /// Plain triple-loop twin on an unpacked row-major W[n][k].
    public static func matmulReference(x: UnsafePointer<Float>, ldx: Int, m: Int, w: UnsafePointer<Float>, n: Int, k: Int,
                                       y: UnsafeMutablePointer<Float>, ldy: Int, accumulate: Bool = false) {
        for i in 0..<m {
            for j in 0..<n {
                var s: Float = 0
                for kk in 0..<k { s += x[i * ldx + kk] * w[j * k + kk] }
                y[i * ldy + j] = accumulate ? y[i * ldy + j] + s : s
            }
        }
    }
}
