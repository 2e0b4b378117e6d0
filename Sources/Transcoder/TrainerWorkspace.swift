import Foundation
import Kernels

/// Scratch for one training step, sized for up to `rows` rows (reallocated only when a batch grows).
/// Legend: B = rows, d = width, M = latents, k = top k, kAux = AuxK's k.
final class Workspace: @unchecked Sendable {
    let rows: Int, kAux: Int
    /// AuxK's k for the current step (0 when AuxK is off).
    var kAuxUsed = 0
    /// Entries [0, mainEntries) of the latent lists are top-k slots b·k + s; later ones AuxK slots.
    var mainEntries = 0
    private let owned: [FloatBuffer]
    /// ReLU'd pre-activations [B×M]; ŷ, e = y − ŷ, g = ∂L/∂ŷ, h = ∂L/∂ê [B×d].
    let pre, yhat, e, g, h: UnsafeMutablePointer<Float>
    /// Top-k values and ∂L/∂z [B×k]; AuxK values and ∂L/∂a [B×kAux].
    let vx, dz, auxVx, auxDz: UnsafeMutablePointer<Float>
    /// gᵀ and xᵀ [d×B] and ∂L/∂W_skip [d×d] for the skip gradient GEMM.
    let gT, xT, gSkip: UnsafeMutablePointer<Float>
    let ix, auxIx: UnsafeMutablePointer<Int32>
    /// Per row: Σ(y − ȳ)², Σe², Σ(ê − e)².
    let rowStats: UnsafeMutablePointer<Double>
    /// CSR lists of the slots that selected each latent: entries[start[j]..<start[j+1]].
    let start, entries: UnsafeMutablePointer<Int32>

    init(rows: Int, d: Int, m: Int, k: Int, kAux: Int = 0) {
        self.rows = rows
        self.kAux = kAux
        var bufs: [FloatBuffer] = []
        func floats(_ n: Int) -> UnsafeMutablePointer<Float> {
            let b = FloatBuffer(count: n)
            bufs.append(b)
            return b.pointer
        }
        pre = floats(rows * m)
        yhat = floats(rows * d); e = floats(rows * d); g = floats(rows * d); h = floats(rows * d)
        vx = floats(rows * k); dz = floats(rows * k); auxVx = floats(rows * kAux); auxDz = floats(rows * kAux)
        gT = floats(d * rows); xT = floats(d * rows); gSkip = floats(d * d)
        ix = .allocate(capacity: max(1, rows * k))
        auxIx = .allocate(capacity: max(1, rows * kAux))
        rowStats = .allocate(capacity: max(1, 3 * rows))
        start = .allocate(capacity: m + 1)
        entries = .allocate(capacity: max(1, rows * (k + kAux)))
        owned = bufs
    }

    deinit {
        ix.deallocate(); auxIx.deallocate(); rowStats.deallocate(); start.deallocate(); entries.deallocate()
    }

    /// Counting sort of the batch's slots by latent: top-k slots first, then AuxK slots with a ≠ 0,
    /// each in slot order, so every latent's gradient sums in a fixed order.
    func buildLatentLists(rows: Int, m: Int, k: Int) {
        let main = rows * k, aux = rows * kAuxUsed
        mainEntries = main
        start.update(repeating: 0, count: m + 1)
        for s in 0..<main { start[Int(ix[s]) + 1] += 1 }
        for s in 0..<aux where auxVx[s] != 0 { start[Int(auxIx[s]) + 1] += 1 }
        for j in 0..<m { start[j + 1] += start[j] }
        let fill = UnsafeMutablePointer<Int32>.allocate(capacity: m)
        defer { fill.deallocate() }
        fill.update(from: start, count: m)
        for s in 0..<main {
            let j = Int(ix[s])
            entries[Int(fill[j])] = Int32(s)
            fill[j] += 1
        }
        for s in 0..<aux where auxVx[s] != 0 {
            let j = Int(auxIx[s])
            entries[Int(fill[j])] = Int32(main + s)
            fill[j] += 1
        }
    }
}

/// One Adam update with fixed rate and bias corrections, as torch.optim.Adam computes it:
///
///     m ← m + (1−β₁)(g − m);  v ← β₂v + (1−β₂)g²;  p ← p − (lr/bc₁)·m / (√v/√bc₂ + ε)
///
/// Legend: p = parameters, m/v = moments, g = gradient, n = count, bc = 1 − βᵗ.
struct AdamStep: Sendable {
    let lr, beta1, beta2, eps, bc1, bc2: Float

    func update(_ p: UnsafeMutablePointer<Float>, _ m: UnsafeMutablePointer<Float>, _ v: UnsafeMutablePointer<Float>,
                _ g: UnsafePointer<Float>, _ n: Int) {
        let a1 = 1 - beta1, b2 = beta2, a2 = 1 - beta2, step = lr / bc1, rbc = 1 / bc2.squareRoot()
        var i = 0
        while i + 16 <= n {
            let gv = loadV(g + i)
            var mv = loadV(m + i), vv = loadV(v + i)
            mv = mv.addingProduct(V(repeating: a1), gv - mv)
            vv = vv * b2 + (gv * gv) * a2
            let den = vv.squareRoot() * rbc + eps
            storeV(mv, m + i)
            storeV(vv, v + i)
            storeV(loadV(p + i) - step * mv / den, p + i)
            i += 16
        }
        while i < n {
            m[i] = m[i] + a1 * (g[i] - m[i])
            v[i] = v[i] * b2 + g[i] * g[i] * a2
            p[i] -= step * m[i] / (v[i].squareRoot() * rbc + eps)
            i += 1
        }
    }
}
