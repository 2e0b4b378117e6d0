import Kernels

/// Training a sparse autoencoder (transcode = false) with `TranscoderTrainer`.
///
/// sparsify's autoencoder encodes x − b_dec: pre = W_enc·(x − b_dec) + b_enc. With the bias folded
/// into the encoder's, b_enc′ = b_enc − W_enc·b_dec, that is W_enc·x + b_enc′ — a transcoder whose
/// target is its own input. The trainer trains that form (same gradients for every parameter but
/// b_dec, which then reaches the output only, as a transcoder's does), and `asAutoencoder` unfolds
/// the bias when it is saved, so the file is sparsify's SAE and every reader encodes the same codes.
/// Unlike sparsify's autoencoder training, decoder rows are not renormalised after each step.
extension Transcoder {
    /// A fresh autoencoder in the trainer's (transcoder) form: sparsify's autoencoder initialisation —
    /// W_dec a copy of W_enc with unit-norm rows — no skip path.
    public static func autoencoderForTraining(dIn: Int, latents: Int, k: Int, seed: UInt64) -> Transcoder {
        let sae = Transcoder(config: TranscoderConfig(dIn: dIn, numLatents: latents, expansionFactor: max(1, latents / dIn), k: k,
                                                      skipConnection: false, transcode: false), seed: seed)
        return sae.withEncoderBiasFolded(transcode: true)
    }

    /// This dictionary, trained in transcoder form with its input as target, as sparsify's autoencoder
    /// (transcode = false, b_enc + W_enc·b_dec): the same codes and outputs on every input.
    public func asAutoencoder() -> Transcoder {
        precondition(config.transcode && !config.skipConnection, "an autoencoder is trained as a transcoder without a skip path")
        return withEncoderBiasFolded(transcode: false)
    }

    /// A copy with `transcode` set and the encoder bias moved between the two forms (b_enc ∓ W_enc·b_dec).
    private func withEncoderBiasFolded(transcode: Bool) -> Transcoder {
        var c = config
        c.transcode = transcode
        let out = Transcoder(config: c, seed: 0)
        out.encoderWeight.pointer.update(from: encoderWeight.pointer, count: m * d)
        out.decoderWeight.pointer.update(from: decoderWeight.pointer, count: m * d)
        out.decoderBias.pointer.update(from: decoderBias.pointer, count: d)
        if let t = threshold, let o = out.threshold { o.pointer.update(from: t.pointer, count: m) }
        let sign: Float = transcode ? -1 : 1
        for j in 0..<m {
            var s: Float = 0
            let w = encoderWeight.pointer + j * d
            for i in 0..<d { s += w[i] * decoderBias.pointer[i] }
            out.encoderBias.pointer[j] = encoderBias.pointer[j] + sign * s
        }
        out.parametersDidChange()
        return out
    }
}
