import Foundation

/// Causal grouped-query attention over a KV cache.
/// Legend: g = kv head, h = query head, t = query row, j = key position, d = head-dim index,
/// L = keys visible to a query block, Lp = L padded to 32, kt = keys transposed in panels [g][j/32][d][j%32], sc = scores / probabilities.
public enum Attention {
    /// Query rows per work item (all query heads of one kv head share the item's transposed keys).
    static let queryBlock = 16
    /// Up to this many queries (decode), scores read the key cache directly instead of transposing it.
    static let directQueries = 4

    /// Causal GQA. q: [T][heads·headDim] (row stride ldq); keys/values: caches [position][kvHeads·headDim]
    /// (row stride ldkv) holding positions 0..<(past+T), the T new ones already written. Query row t sits at
    /// position past+t and attends to keys 0...past+t; head h uses kv head h / (heads/kvHeads). Scale 1/√headDim,
    /// fp32 softmax with the max subtracted. out: [T][heads·headDim] (row stride ldo). For more than
    /// `directQueries` queries the keys are first transposed into 32-key panels (once per call); work is split
    /// over kv heads × query blocks, all query heads of a kv head together. Scratch comes from a reusable pool.
    public static func causal(q: UnsafePointer<Float>, ldq: Int, keys: UnsafePointer<Float>, values: UnsafePointer<Float>, ldkv: Int,
                              out: UnsafeMutablePointer<Float>, ldo: Int, queries T: Int, past: Int, heads: Int, kvHeads: Int, headDim: Int) {
        precondition(kvHeads > 0 && heads % kvHeads == 0, "heads must be a multiple of kvHeads")
        if T <= 0 { return }
        if headDim % 16 != 0 {
            causalReference(q: q, ldq: ldq, keys: keys, values: values, ldkv: ldkv, out: out, ldo: ldo,
                            queries: T, past: past, heads: heads, kvHeads: kvHeads, headDim: headDim)
            return
        }
        let blocks = (T + queryBlock - 1) / queryBlock
        let n = past + T, ldt = (n + 31) / 32 * 32
        let serial = heads * n * T * headDim < 1 << 16
        let direct = T <= directQueries
        Scratch.with(direct ? 0 : kvHeads * headDim * ldt) { kt in
            let chunks = ldt / 32
            let transpose = { (item: Int) in
                let g = item / chunks, j0 = item % chunks * 32
                let dst = kt + g * headDim * ldt + j0 * headDim
                let end = min(j0 + 32, n)
                for j in j0..<end {
                    let k = keys + j * ldkv + g * headDim
                    for d in 0..<headDim { dst[d * 32 + j - j0] = k[d] }
                }
                for d in 0..<headDim { (dst + d * 32 + end - j0).update(repeating: 0, count: j0 + 32 - end) }
            }
            let attend = { (item: Int) in
                let g = item % kvHeads, b = blocks - 1 - item / kvHeads  // biggest (latest) blocks first
                let t0 = b * queryBlock, t1 = min(T, t0 + queryBlock)
                block(q: q, ldq: ldq, keys: keys, kt: direct ? nil : UnsafePointer(kt + g * headDim * ldt), values: values,
                      ldkv: ldkv, out: out, ldo: ldo, rows: t0..<t1, past: past, heads: heads, kvHeads: kvHeads, g: g, headDim: headDim)
            }
            if serial {
                if !direct { for item in 0..<(kvHeads * chunks) { transpose(item) } }
                for item in 0..<(kvHeads * blocks) { attend(item) }
            } else {
                if !direct { Parallel.forEach(kvHeads * chunks, transpose) }
                Parallel.forEach(kvHeads * blocks, attend)
            }
        }
    }

    /// One work item: query rows `rows` of every query head that reads kv head g. Scores come from the
    /// transposed key panels at kt, or (kt == nil, few queries) straight from the key cache.
    static func block(q: UnsafePointer<Float>, ldq: Int, keys: UnsafePointer<Float>, kt: UnsafePointer<Float>?,
                      values: UnsafePointer<Float>, ldkv: Int, out: UnsafeMutablePointer<Float>, ldo: Int, rows: Range<Int>,
                      past: Int, heads: Int, kvHeads: Int, g: Int, headDim: Int) {
        let group = heads / kvHeads, nq = rows.count
        let L = past + rows.upperBound, Lp = (L + 31) / 32 * 32
        let R = group * nq
        let scale = 1 / Float(headDim).squareRoot()
        Scratch.with(R * Lp) { sc in
            func qRow(_ r: Int) -> UnsafePointer<Float> { q + (rows.lowerBound + r % nq) * ldq + (g * group + r / nq) * headDim }
            func oRow(_ r: Int) -> UnsafeMutablePointer<Float> { out + (rows.lowerBound + r % nq) * ldo + (g * group + r / nq) * headDim }
            func visible(_ r: Int) -> Int { past + rows.lowerBound + r % nq + 1 }
            var r = 0
            while r < R {
                let r0 = r, r1 = min(r + 1, R - 1), r2 = min(r + 2, R - 1), r3 = min(r + 3, R - 1)
                if let kt {
                    scores4(kt, Lp, headDim, scale, qRow(r0), qRow(r1), qRow(r2), qRow(r3),
                            sc + r0 * Lp, sc + r1 * Lp, sc + r2 * Lp, sc + r3 * Lp)
                } else {
                    let k = keys + g * headDim
                    scoresDirect(k, ldkv, L, Lp, headDim, scale, qRow(r0), sc + r0 * Lp)
                    if r1 != r0 { scoresDirect(k, ldkv, L, Lp, headDim, scale, qRow(r1), sc + r1 * Lp) }
                    if r2 != r1 { scoresDirect(k, ldkv, L, Lp, headDim, scale, qRow(r2), sc + r2 * Lp) }
                    if r3 != r2 { scoresDirect(k, ldkv, L, Lp, headDim, scale, qRow(r3), sc + r3 * Lp) }
                }
                let i0 = softmax(sc + r0 * Lp, visible(r0), Lp)
                let i1 = r1 == r0 ? i0 : softmax(sc + r1 * Lp, visible(r1), Lp)
                let i2 = r2 == r1 ? i1 : softmax(sc + r2 * Lp, visible(r2), Lp)
                let i3 = r3 == r2 ? i2 : softmax(sc + r3 * Lp, visible(r3), Lp)
                let n = max(max(visible(r0), visible(r1)), max(visible(r2), visible(r3)))
                weighted4(values + g * headDim, ldkv, n, headDim, sc + r0 * Lp, sc + r1 * Lp, sc + r2 * Lp, sc + r3 * Lp,
                          (i0, i1, i2, i3), oRow(r0), oRow(r1), oRow(r2), oRow(r3))
                r += 4
            }
        }
    }

    /// s_i[j] = scale · q_i · k_j for 4 query rows and j in 0..<Lp (Lp a multiple of 32), from kt = K in transposed 32-key panels.
    @inline(__always)
    static func scores4(_ kt: UnsafePointer<Float>, _ Lp: Int, _ dim: Int, _ scale: Float,
                        _ q0: UnsafePointer<Float>, _ q1: UnsafePointer<Float>, _ q2: UnsafePointer<Float>, _ q3: UnsafePointer<Float>,
                        _ s0: UnsafeMutablePointer<Float>, _ s1: UnsafeMutablePointer<Float>,
                        _ s2: UnsafeMutablePointer<Float>, _ s3: UnsafeMutablePointer<Float>) {
        var j = 0
        while j < Lp {
            var a0 = V(), b0 = V(), a1 = V(), b1 = V(), a2 = V(), b2 = V(), a3 = V(), b3 = V()
            for d in 0..<dim {
                let k0 = load(kt + j * dim + d * 32), k1 = load(kt + j * dim + d * 32 + 16)
                let x0 = V(repeating: q0[d]), x1 = V(repeating: q1[d]), x2 = V(repeating: q2[d]), x3 = V(repeating: q3[d])
                a0 = madd(a0, x0, k0); b0 = madd(b0, x0, k1)
                a1 = madd(a1, x1, k0); b1 = madd(b1, x1, k1)
                a2 = madd(a2, x2, k0); b2 = madd(b2, x2, k1)
                a3 = madd(a3, x3, k0); b3 = madd(b3, x3, k1)
            }
            storeU(a0 * scale, s0 + j); storeU(b0 * scale, s0 + j + 16)
            storeU(a1 * scale, s1 + j); storeU(b1 * scale, s1 + j + 16)
            storeU(a2 * scale, s2 + j); storeU(b2 * scale, s2 + j + 16)
            storeU(a3 * scale, s3 + j); storeU(b3 * scale, s3 + j + 16)
            j += 32
        }
    }

    /// s[j] = scale · q · k_j for j in 0..<Lp straight from the cache (row stride ldk); rows past L − 1 repeat
    /// row L − 1 (masked later). Each key's 16-lane partial products are folded into one lane by `fold`.
    @inline(always)
    static func scoresDirect(_ k: UnsafePointer<Float>, _ ldk: Int, _ L: Int, _ Lp: Int, _ dim: Int, _ scale: Float,
                             _ q: UnsafePointer<Float>, _ s: UnsafeMutablePointer<Float>) {
        var j = 0
        while j < Lp {
            let p0 = fold(dot(q, k, ldk, j, L, dim), dot(q, k, ldk, j + 1, L, dim))
            let p1 = fold(dot(q, k, ldk, j + 2, L, dim), dot(q, k, ldk, j + 3, L, dim))
            let p2 = fold(dot(q, k, ldk, j + 4, L, dim), dot(q, k, ldk, j + 5, L, dim))
            let p3 = fold(dot(q, k, ldk, j + 6, L, dim), dot(q, k, ldk, j + 7, L, dim))
            let p4 = fold(dot(q, k, ldk, j + 8, L, dim), dot(q, k, ldk, j + 9, L, dim))
            let p5 = fold(dot(q, k, ldk, j + 10, L, dim), dot(q, k, ldk, j + 11, L, dim))
            let p6 = fold(dot(q, k, ldk, j + 12, L, dim), dot(q, k, ldk, j + 13, L, dim))
            let p7 = fold(dot(q, k, ldk, j + 14, L, dim), dot(q, k, ldk, j + 15, L, dim))
            let all = fold(fold(fold(p0, p1), fold(p2, p3)), fold(fold(p4, p5), fold(p6, p7)))
            storeU(all * scale, s + j)
            j += 16
        }
    }

    /// 16 lane-wise partial sums of q · k_j over `dim` (a multiple of 16) elements, j clamped to L − 1.
    @inline(always)
    static func dot(_ q: UnsafePointer<Float>, _ keys: UnsafePointer<Float>, _ ldk: Int, _ j: Int, _ L: Int, _ dim: Int) -> V {
        let k = keys + min(j, L - 1) * ldk
        var a = V()
        var c = 0
        while c < dim {
            a = madd(a, loadU(q + c), loadU(k + c))
            c += 16
        }
        return a
    }

    /// Pairwise-adds neighbouring lanes of a and of b: [a₀+a₁, a₂+a₃, …, b₁₄+b₁₅]. Keys laid out contiguously
    /// in a and b stay contiguous, each with half as many partial sums.
    @inline(always)
    static func fold(_ a: V, _ b: V) -> V {
        V(lowHalf: a.evenHalf + a.oddHalf, highHalf: b.evenHalf + b.oddHalf)
    }

    /// In place: s[j] ← exp(s[j] − max) for j < n, 0 for n ≤ j < Lp; returns 1 / Σ. Call once per row.
    static func softmax(_ s: UnsafeMutablePointer<Float>, _ n: Int, _ Lp: Int) -> Float {
        let mx = Ops.max(s, count: n)
        let m = V(repeating: mx)
        var acc = V()
        var j = 0
        while j + 16 <= n {
            let e = Ops.fastExp(loadU(s + j) - m)
            storeU(e, s + j)
            acc += e
            j += 16
        }
        var sum = acc.sum()
        if j < n {
            let e = Ops.fastExp(loadU(s + j) - m)
            for i in 0..<(n - j) {
                s[j + i] = e[i]
                sum += e[i]
            }
        }
        (s + n).update(repeating: 0, count: Lp - n)
        return 1 / sum
    }

    /// o_i = inv_i · Σ_{j<n} p_i[j] · v_j for 4 rows, v_j = values + j·ldv (headDim floats).
    @inline(__always)
    static func weighted4(_ v: UnsafePointer<Float>, _ ldv: Int, _ n: Int, _ dim: Int,
                          _ p0: UnsafePointer<Float>, _ p1: UnsafePointer<Float>, _ p2: UnsafePointer<Float>, _ p3: UnsafePointer<Float>,
                          _ inv: (Float, Float, Float, Float),
                          _ o0: UnsafeMutablePointer<Float>, _ o1: UnsafeMutablePointer<Float>,
                          _ o2: UnsafeMutablePointer<Float>, _ o3: UnsafeMutablePointer<Float>) {
        var d = 0
        while d < dim {
            var a0 = V(), a1 = V(), a2 = V(), a3 = V()
            for j in 0..<n {
                let x = loadU(v + j * ldv + d)
                a0 = madd(a0, V(repeating: p0[j]), x)
                a1 = madd(a1, V(repeating: p1[j]), x)
                a2 = madd(a2, V(repeating: p2[j]), x)
                a3 = madd(a3, V(repeating: p3[j]), x)
            }
            storeU(a0 * inv.0, o0 + d)
            storeU(a1 * inv.1, o1 + d)
            storeU(a2 * inv.2, o2 + d)
            storeU(a3 * inv.3, o3 + d)
            d += 16
        }
    }

    /// Plain-loop twin of `causal` (same parameters and layout).
    public static func causalReference(q: UnsafePointer<Float>, ldq: Int, keys: UnsafePointer<Float>, values: UnsafePointer<Float>, ldkv: Int,
                                       out: UnsafeMutablePointer<Float>, ldo: Int, queries T: Int, past: Int, heads: Int, kvHeads: Int, headDim: Int) {
        let group = heads / kvHeads
        let scale = 1 / Float(headDim).squareRoot()
        var p = [Float](repeating: 0, count: past + T)
        for t in 0..<T {
            for h in 0..<heads {
                let g = h / group, n = past + t + 1
                let qr = q + t * ldq + h * headDim
                var mx = -Float.infinity
                for j in 0..<n {
                    var s: Float = 0
                    for d in 0..<headDim { s += qr[d] * keys[j * ldkv + g * headDim + d] }
                    p[j] = s * scale
                    mx = max(mx, p[j])
                }
                var sum: Float = 0
                for j in 0..<n { p[j] = Foundation.exp(p[j] - mx); sum += p[j] }
                for d in 0..<headDim {
                    var o: Float = 0
                    for j in 0..<n { o += p[j] * values[j * ldkv + g * headDim + d] }
                    out[t * ldo + h * headDim + d] = o / sum
                }
            }
        }
    }
}
