import Foundation
import Kernels

/// Trains a `Transcoder` on (x, y) rows with sparsify's loss and Adam (sparsify/trainer.py,
/// sparse_coder.py `forward`, fused_encoder.py):
///
///     loss = FVU + auxkAlpha · AuxK,   FVU = Σ‖e‖² / T,  e = y − ŷ,  T = Σ‖y − mean(y)‖²
///     AuxK = scale · Σ‖ê − e‖² / T,   ê = Σ_{dead top k_aux} a_j·W_dec[j] + b_dec,  e detached,
///            k_aux = min(d/2, #dead), scale = min(#dead / (d/2), 1)
///
/// Gradients reach only the selected latents' rows: W_dec[j] gets z_j·∂L/∂ŷ, W_enc[j] and b_enc[j]
/// get ∂L/∂z_j = W_dec[j]·∂L/∂ŷ (sparsify passes it straight through, without ReLU's mask). The
/// update is torch's Adam over every parameter, and W_dec is neither renormalised nor projected
/// (sparsify does both only for autoencoders).
public final class TranscoderTrainer: @unchecked Sendable {
    /// The model being trained (its parameters change with every step).
    public let transcoder: Transcoder
    public let options: TrainerOptions
    /// Length of the learning-rate schedule.
    public let totalSteps: Int
    /// Optimizer steps taken so far.
    public internal(set) var stepCount = 0
    /// Per latent, tokens seen since it last fired (was among a row's top k).
    public internal(set) var tokensSinceFired: [Int]
    /// Adam first and second moments, one pair per parameter, in `namedParameters` order.
    let moments: [(m: FloatBuffer, v: FloatBuffer)]
    var work = Workspace(rows: 0, d: 0, m: 0, k: 0)

    /// A trainer for `transcoder` over a schedule of `totalSteps` steps. Requires a transcoder (transcode = true).
    public init(transcoder: Transcoder, options: TrainerOptions = TrainerOptions(), totalSteps: Int) {
        precondition(transcoder.config.transcode, "TranscoderTrainer trains transcoders (transcode = true)")
        precondition(!transcoder.config.multiTopK, "Multi-TopK is not supported")
        self.transcoder = transcoder
        self.options = options
        self.totalSteps = totalSteps
        tokensSinceFired = Array(repeating: 0, count: transcoder.m)
        moments = transcoder.namedParameters.map { (FloatBuffer(count: $0.buffer.count), FloatBuffer(count: $0.buffer.count)) }
    }

    /// A trainer for a fresh `Transcoder(config: config, seed: options.seed)`.
    public convenience init(config: TranscoderConfig, options: TrainerOptions = TrainerOptions(), totalSteps: Int) {
        self.init(transcoder: Transcoder(config: config, seed: options.seed), options: options, totalSteps: totalSteps)
    }

    /// Latents counted dead now (more than `deadThresholdTokens` since they last fired), ascending.
    public var deadLatents: [Int32] {
        (0..<transcoder.m).compactMap { tokensSinceFired[$0] > options.deadThresholdTokens ? Int32($0) : nil }
    }

    /// One Adam step on `rows` rows of inputs x and targets y (row-major rows × d each).
    /// Returns the batch's FVU, AuxK and dead fraction as measured before the update.
    @discardableResult
    public func step(x: UnsafePointer<Float>, y: UnsafePointer<Float>, rows: Int) -> StepStats {
        precondition(rows > 1, "a step needs at least two rows (FVU divides by their variance)")
        let t = transcoder, d = t.d
        if stepCount == 0 && options.initializeBiasesFromFirstBatch {
            let mx: UnsafeMutablePointer<Float> = columnMeans(x, rows: rows, d: d)
            let my: UnsafeMutablePointer<Float> = columnMeans(y, rows: rows, d: d)
            for j in 0..<t.m { t.encoderBias[j] = -dot(t.encoderWeight.pointer + j * d, mx, d) }
            t.decoderBias.pointer.update(from: my, count: d)
            mx.deallocate(); my.deallocate()
            t.parametersDidChange()
        }
        let loss = computeGradients(x: x, y: y, rows: rows)
        let lr = options.learningRate(step: stepCount, totalSteps: totalSteps, latents: t.m)
        applyAdam(x: x, rows: rows, lr: lr)
        for j in 0..<t.m { tokensSinceFired[j] += rows }
        for e in 0..<(rows * t.config.k) { tokensSinceFired[Int(work.ix[e])] = 0 }
        stepCount += 1
        return StepStats(fvu: loss.fvu, auxk: loss.auxk, deadFraction: Float(loss.dead) / Float(t.m), learningRate: lr)
    }

    /// Forward pass and ∂(FVU + α·AuxK)/∂ŷ, ∂/∂ê, ∂/∂z for the batch into `work`; the per-latent
    /// gradient rows come from `latentGradient`. Parameters are not changed.
    func computeGradients(x: UnsafePointer<Float>, y: UnsafePointer<Float>, rows: Int) -> (fvu: Float, auxk: Float, dead: Int) {
        let t = transcoder, d = t.d, m = t.m, k = t.config.k
        let dead = deadLatents
        let auxOn = options.auxkAlpha > 0 && !dead.isEmpty
        let kAux = auxOn ? min(d / 2, dead.count) : 0
        let scale = auxOn ? min(Float(dead.count) / Float(d / 2), 1) : 0
        if work.rows < rows || work.kAux < kAux { work = Workspace(rows: max(rows, work.rows), d: d, m: m, k: k, kAux: max(kAux, d / 2)) }
        let w = work
        w.kAuxUsed = kAux
        t.encodeChunk(x, rows: rows, pre: w.pre, indices: w.ix, values: w.vx)
        t.decode(indices: w.ix, values: w.vx, rows: rows, x: x, into: w.yhat)

        let my: UnsafeMutablePointer<Double> = columnMeans(y, rows: rows, d: d)
        defer { my.deallocate() }
        Parallel.forEach(rows) { b in
            var v = 0.0, s = 0.0
            for i in 0..<d {
                let c = Double(y[b * d + i]) - my[i]
                v += c * c
                let e = y[b * d + i] - w.yhat[b * d + i]
                w.e[b * d + i] = e
                s += Double(e) * Double(e)
            }
            w.rowStats[3 * b] = v
            w.rowStats[3 * b + 1] = s
        }
        var total = 0.0, l2 = 0.0
        for b in 0..<rows { total += w.rowStats[3 * b]; l2 += w.rowStats[3 * b + 1] }
        let c = Float(-2 / total), ch = Float(2 / total) * scale * options.auxkAlpha
        let wd = UnsafePointer(t.decoderWeight.pointer), bd = UnsafePointer(t.decoderBias.pointer)
        let auxEnc = options.auxkTrainsEncoder
        dead.withUnsafeBufferPointer { deadList in
            Parallel.forEach(rows) { b in
                let g = w.g + b * d, e = w.e + b * d
                for i in 0..<d { g[i] = c * e[i] }
                for s in 0..<k { w.dz[b * k + s] = dot(wd + Int(w.ix[b * k + s]) * d, g, d) }
                w.rowStats[3 * b + 2] = 0
                guard kAux > 0 else { return }
                let ai = w.auxIx + b * kAux, av = w.auxVx + b * kAux, h = w.h + b * d
                _ = Select.topKOf(w.pre + b * m, deadList.baseAddress!, deadList.count, kAux, ai, av)
                h.update(from: bd, count: d)
                for s in 0..<kAux where av[s] != 0 { axpy(av[s], wd + Int(ai[s]) * d, h, d) }
                var r2 = 0.0
                for i in 0..<d {
                    let r = h[i] - e[i]
                    r2 += Double(r) * Double(r)
                    h[i] = ch * r
                }
                w.rowStats[3 * b + 2] = r2
                for s in 0..<kAux { w.auxDz[b * kAux + s] = auxEnc && av[s] > 0 ? dot(wd + Int(ai[s]) * d, h, d) : 0 }
            }
        }
        var aux = 0.0
        for b in 0..<rows { aux += w.rowStats[3 * b + 2] }
        w.buildLatentLists(rows: rows, m: m, k: k)
        return (Float(l2 / total), kAux > 0 ? Float(Double(scale) * aux / total) : 0, dead.count)
    }

    /// Latent j's gradient rows: ∂L/∂W_enc[j] into `enc`, ∂L/∂W_dec[j] into `dec` (d each); returns ∂L/∂b_enc[j].
    @inline(__always)
    func latentGradient(_ j: Int, x: UnsafePointer<Float>, enc: UnsafeMutablePointer<Float>, dec: UnsafeMutablePointer<Float>) -> Float {
        let w = work, d = transcoder.d, k = transcoder.config.k, kAux = w.kAuxUsed, main = w.mainEntries
        enc.update(repeating: 0, count: d)
        dec.update(repeating: 0, count: d)
        var gb: Float = 0
        for q in Int(w.start[j])..<Int(w.start[j + 1]) {
            let e = Int(w.entries[q])
            if e < main {
                let b = e / k, dz = w.dz[e]
                axpy(w.vx[e], w.g + b * d, dec, d)
                axpy(dz, x + b * d, enc, d)
                gb += dz
            } else {
                let a = e - main, b = a / kAux, dz = w.auxDz[a]
                axpy(w.auxVx[a], w.h + b * d, dec, d)
                if dz != 0 { axpy(dz, x + b * d, enc, d); gb += dz }
            }
        }
        return gb
    }

    /// ∂L/∂b_dec into `out` (d) and ∂L/∂W_skip into `skip` (d × d) when there is one.
    func denseGradients(x: UnsafePointer<Float>, rows: Int, bias out: UnsafeMutablePointer<Float>, skip: UnsafeMutablePointer<Float>?) {
        let w = work, d = transcoder.d
        out.update(repeating: 0, count: d)
        for b in 0..<rows {
            axpy(1, w.g + b * d, out, d)
            if w.kAuxUsed > 0 { axpy(1, w.h + b * d, out, d) }
        }
        guard let skip else { return }
        Parallel.forEach(2) { half in
            let (src, dst) = half == 0 ? (UnsafePointer(w.g), w.gT) : (x, w.xT)
            for b in 0..<rows { for i in 0..<d { dst[i * rows + b] = src[b * d + i] } }
        }
        let xt = PackedMatrix(rowMajor: w.xT, rows: d, cols: rows)
        Gemm.matmul(x: w.gT, ldx: rows, m: d, w: xt, y: skip, ldy: d)
    }

    /// torch.optim.Adam on every parameter with the gradients of the last `computeGradients`.
    func applyAdam(x: UnsafePointer<Float>, rows: Int, lr: Float) {
        let t = transcoder, d = t.d, m = t.m
        let n = Double(stepCount + 1)
        let adam = AdamStep(lr: lr, beta1: options.beta1, beta2: options.beta2, eps: options.eps,
                            bc1: Float(1 - pow(Double(options.beta1), n)), bc2: Float(1 - pow(Double(options.beta2), n)))
        let (mEnc, mEncB, mDec) = (moments[0], moments[1], moments[2])
        let chunk = 64
        Parallel.forEach((m + chunk - 1) / chunk) { c in
            let buf = UnsafeMutablePointer<Float>.allocate(capacity: 2 * d)
            defer { buf.deallocate() }
            for j in (c * chunk)..<min(m, (c + 1) * chunk) {
                let gb = latentGradient(j, x: x, enc: buf, dec: buf + d)
                adam.update(t.encoderWeight.pointer + j * d, mEnc.m.pointer + j * d, mEnc.v.pointer + j * d, buf, d)
                adam.update(t.decoderWeight.pointer + j * d, mDec.m.pointer + j * d, mDec.v.pointer + j * d, buf + d, d)
                var g = gb
                adam.update(t.encoderBias.pointer + j, mEncB.m.pointer + j, mEncB.v.pointer + j, &g, 1)
            }
        }
        let gBias = UnsafeMutablePointer<Float>.allocate(capacity: d)
        defer { gBias.deallocate() }
        denseGradients(x: x, rows: rows, bias: gBias, skip: t.skipWeight == nil ? nil : work.gSkip)
        adam.update(t.decoderBias.pointer, moments[3].m.pointer, moments[3].v.pointer, gBias, d)
        if let s = t.skipWeight {
            let (ms, vs, gs) = (moments[4].m.pointer, moments[4].v.pointer, work.gSkip)
            Parallel.forEach(d) { i in adam.update(s.pointer + i * d, ms + i * d, vs + i * d, gs + i * d, d) }
        }
        t.parametersDidChange()
    }
}

/// Column means of a rows × d matrix, accumulated in Double (caller deallocates).
func columnMeans(_ a: UnsafePointer<Float>, rows: Int, d: Int) -> UnsafeMutablePointer<Double> {
    let out = UnsafeMutablePointer<Double>.allocate(capacity: d)
    out.initialize(repeating: 0, count: d)
    for b in 0..<rows { for i in 0..<d { out[i] += Double(a[b * d + i]) } }
    for i in 0..<d { out[i] /= Double(rows) }
    return out
}

/// A column-means overload that returns Float (for dot products with weights).
func columnMeans(_ a: UnsafePointer<Float>, rows: Int, d: Int) -> UnsafeMutablePointer<Float> {
    let m: UnsafeMutablePointer<Double> = columnMeans(a, rows: rows, d: d)
    defer { m.deallocate() }
    let out = UnsafeMutablePointer<Float>.allocate(capacity: d)
    for i in 0..<d { out[i] = Float(m[i]) }
    return out
}
