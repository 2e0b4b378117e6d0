import Kernels
import Model
import Storage
import Transcoder

/// What a latent's decoder direction does downstream: the tokens it promotes and suppresses
/// through the final norm's gain and the unembedding, and its nearest latents by decoder cosine.
struct LogitEffects {
    let transcoder: Transcoder
    let model: LlamaModel
    /// Unit-norm decoder rows, packed, for cosines of a block against all latents.
    let unitDecoder: PackedMatrix

    init(transcoder: Transcoder, model: LlamaModel) {
        self.transcoder = transcoder
        self.model = model
        let (M, d) = (transcoder.m, transcoder.d)
        let unit = FloatBuffer(count: M * d)
        for m in 0..<M {
            let row = transcoder.decoderWeight.pointer + m * d
            var ss: Float = 0
            for i in 0..<d { ss += row[i] * row[i] }
            let inv = ss > 0 ? 1 / ss.squareRoot() : 0
            for i in 0..<d { unit.pointer[m * d + i] = row[i] * inv }
        }
        unitDecoder = PackedMatrix(rowMajor: unit.pointer, rows: M, cols: d)
    }

    /// Per latent, the `count` highest and lowest logits of W_U · (g ⊙ W_dec[latent]).
    func top(latents: [Int], count: Int) -> (promoted: [[(Int, Float)]], suppressed: [[(Int, Float)]]) {
        let d = transcoder.d, V = model.config.vocabSize
        let x = FloatBuffer(count: latents.count * d)
        let gain = model.weights.outputNorm.pointer
        for (i, m) in latents.enumerated() {
            for j in 0..<d { x.pointer[i * d + j] = transcoder.decoderWeight.pointer[m * d + j] * gain[j] }
        }
        let logits = FloatBuffer(count: latents.count * V)
        Gemm.matmul(x: x.pointer, ldx: d, m: latents.count, w: model.weights.unembedding, y: logits.pointer, ldy: V)
        var up: [[(Int, Float)]] = [], down: [[(Int, Float)]] = []
        for i in latents.indices {
            let row = UnsafeBufferPointer(start: logits.pointer + i * V, count: V)
            up.append(Self.extremes(row, count: count, highest: true))
            down.append(Self.extremes(row, count: count, highest: false))
        }
        return (up, down)
    }

    /// Per latent, the `count` other latents whose decoder rows have the highest cosine with its own.
    func neighbours(latents: [Int], count: Int) -> [[(Int, Float)]] {
        let (M, d) = (transcoder.m, transcoder.d)
        let x = FloatBuffer(count: latents.count * d)
        for (i, m) in latents.enumerated() { unitDecoder.copyRow(m, into: x.pointer + i * d) }
        let cos = FloatBuffer(count: latents.count * M)
        Gemm.matmul(x: x.pointer, ldx: d, m: latents.count, w: unitDecoder, y: cos.pointer, ldy: M)
        return latents.enumerated().map { i, m in
            cos.pointer[i * M + m] = -.infinity
            return Self.extremes(UnsafeBufferPointer(start: cos.pointer + i * M, count: M), count: count, highest: true)
        }
    }

    /// The `count` largest (or smallest) values with their indices, best first.
    static func extremes(_ v: UnsafeBufferPointer<Float>, count: Int, highest: Bool) -> [(Int, Float)] {
        var best: [(Int, Float)] = []
        for (i, x) in v.enumerated() {
            let better = { (a: Float, b: Float) in highest ? a > b : a < b }
            if best.count < count || better(x, best[best.count - 1].1) {
                let at = best.firstIndex { better(x, $0.1) } ?? best.count
                best.insert((i, x), at: at)
                if best.count > count { best.removeLast() }
            }
        }
        return best
    }
}
