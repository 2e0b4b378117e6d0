// Small kernels for the sparse parts of the transcoder. Legend: p = one row of pre-activations,
// b = encoder bias, n = row length, k = how many to keep, ix/vx = kept indices/values,
// w = a weight row, x/y = vectors of length d, a = scalar coefficient, V = 16 fp32 lanes.

typealias V = SIMD16<Float>

@inline(__always) func loadV(_ p: UnsafePointer<Float>) -> V { UnsafeRawPointer(p).loadUnaligned(as: V.self) }
@inline(__always) func storeV(_ v: V, _ p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: V.self) }

/// y[0..<d] += a · x[0..<d]
@inline(__always) func axpy(_ a: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ d: Int) {
    let av = V(repeating: a)
    var i = 0
    while i + 16 <= d {
        storeV(loadV(y + i).addingProduct(av, loadV(x + i)), y + i)
        i += 16
    }
    while i < d { y[i] += a * x[i]; i += 1 }
}

/// Σ x[i]·y[i] over 0..<d, with two vector accumulators.
@inline(__always) func dot(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ d: Int) -> Float {
    var s0 = V(), s1 = V()
    var i = 0
    while i + 32 <= d {
        s0 = s0.addingProduct(loadV(x + i), loadV(y + i))
        s1 = s1.addingProduct(loadV(x + i + 16), loadV(y + i + 16))
        i += 32
    }
    if i + 16 <= d {
        s0 = s0.addingProduct(loadV(x + i), loadV(y + i))
        i += 16
    }
    var s = (s0 + s1).sum()
    while i < d { s += x[i] * y[i]; i += 1 }
    return s
}

/// A min-heap of (value, index) of fixed capacity whose root is the worst kept entry: the
/// smallest value, and among equal values the largest index (so earlier indices win ties).
struct SelectHeap {
    let ix: UnsafeMutablePointer<Int32>
    let vx: UnsafeMutablePointer<Float>
    let k: Int
    var count = 0

    @inline(__always) func worse(_ a: Int, _ b: Int) -> Bool {
        vx[a] < vx[b] || (vx[a] == vx[b] && ix[a] > ix[b])
    }

    @inline(__always) func swapAt(_ a: Int, _ b: Int) {
        let (v, i) = (vx[a], ix[a])
        vx[a] = vx[b]; ix[a] = ix[b]
        vx[b] = v; ix[b] = i
    }

    /// The value an entry must beat (strictly, since later entries have larger indices) once full.
    @inline(__always) var threshold: Float { count < k ? -.infinity : vx[0] }

    /// Offers (v, i); i must be larger than every index offered before.
    @inline(__always) mutating func offer(_ v: Float, _ i: Int32) {
        if count < k {
            var c = count
            vx[c] = v; ix[c] = i
            count += 1
            while c > 0 {
                let parent = (c - 1) / 2
                if !worse(c, parent) { break }
                swapAt(c, parent)
                c = parent
            }
        } else if v > vx[0] {
            vx[0] = v; ix[0] = i
            siftDown(0, count)
        }
    }

    @inline(__always) func siftDown(_ start: Int, _ end: Int) {
        var c = start
        while true {
            let l = 2 * c + 1
            if l >= end { return }
            var m = l
            if l + 1 < end && worse(l + 1, l) { m = l + 1 }
            if !worse(m, c) { return }
            swapAt(m, c)
            c = m
        }
    }

    /// Heap-sorts in place: best first (value descending, index ascending on ties).
    func sortDescending() {
        var end = count
        while end > 1 {
            swapAt(0, end - 1)
            end -= 1
            siftDown(0, end)
        }
    }
}

enum Select {
    /// p[j] = max(p[j] + b[j], 0) for j in 0..<n (b may be nil), then the k largest as (ix, vx),
    /// sorted by value descending, ties to the lower index. Requires k ≤ n.
    static func reluTopK(_ p: UnsafeMutablePointer<Float>, _ b: UnsafePointer<Float>?, _ n: Int, _ k: Int,
                         _ ix: UnsafeMutablePointer<Int32>, _ vx: UnsafeMutablePointer<Float>) {
        var h = SelectHeap(ix: ix, vx: vx, k: k)
        let zero = V()
        var j = 0
        while j + 16 <= n {
            var v = loadV(p + j)
            if let b { v += loadV(b + j) }
            v = v.replacing(with: zero, where: v .< zero)
            storeV(v, p + j)
            let t = h.threshold
            if any(v .> V(repeating: t)) || h.count < k {
                for l in 0..<16 where h.count < k || v[l] > h.threshold { h.offer(v[l], Int32(j + l)) }
            }
            j += 16
        }
        while j < n {
            let v = max(p[j] + (b?[j] ?? 0), 0)
            p[j] = v
            h.offer(v, Int32(j))
            j += 1
        }
        h.sortDescending()
    }

    /// JumpReLU: p[j] = p[j] + b[j] where that exceeds t[j] (and 0), else 0; then the k largest as
    /// `reluTopK` picks them.
    static func jumpReLUTopK(_ p: UnsafeMutablePointer<Float>, _ b: UnsafePointer<Float>?, _ t: UnsafePointer<Float>, _ n: Int, _ k: Int,
                             _ ix: UnsafeMutablePointer<Int32>, _ vx: UnsafeMutablePointer<Float>) {
        for j in 0..<n {
            let v = p[j] + (b?[j] ?? 0)
            p[j] = v > t[j] && v > 0 ? v : 0
        }
        reluTopK(p, nil, n, k, ix, vx)
    }

    /// groupmax: p[j] = max(p[j] + b[j], 0), then per group g of n/k consecutive latents its
    /// maximum (first on ties) as (ix, vx), sorted by value descending.
    static func reluGroupMax(_ p: UnsafeMutablePointer<Float>, _ b: UnsafePointer<Float>?, _ n: Int, _ k: Int,
                             _ ix: UnsafeMutablePointer<Int32>, _ vx: UnsafeMutablePointer<Float>) {
        let g = n / k
        for j in 0..<n { p[j] = max(p[j] + (b?[j] ?? 0), 0) }
        for q in 0..<k {
            var best = q * g
            for j in (q * g)..<((q + 1) * g) where p[j] > p[best] { best = j }
            ix[q] = Int32(best)
            vx[q] = p[best]
        }
        let order = (0..<k).sorted { vx[$0] > vx[$1] || (vx[$0] == vx[$1] && ix[$0] < ix[$1]) }
        let (si, sv) = (order.map { ix[$0] }, order.map { vx[$0] })
        for q in 0..<k { ix[q] = si[q]; vx[q] = sv[q] }
    }

    /// The k largest of p[cand[0..<n]] (candidate indices ascending) as (ix, vx), sorted
    /// descending; returns how many were kept (min(k, n)).
    static func topKOf(_ p: UnsafePointer<Float>, _ cand: UnsafePointer<Int32>, _ n: Int, _ k: Int,
                       _ ix: UnsafeMutablePointer<Int32>, _ vx: UnsafeMutablePointer<Float>) -> Int {
        var h = SelectHeap(ix: ix, vx: vx, k: k)
        for c in 0..<n {
            let j = cand[c]
            let v = p[Int(j)]
            if h.count < k || v > h.threshold { h.offer(v, j) }
        }
        h.sortDescending()
        return h.count
    }
}
