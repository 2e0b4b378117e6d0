import Kernels
import Synchronization

/// A TopK sparse coder in EleutherAI sparsify's conventions (sparsify/sparse_coder.py):
///
///     pre = ReLU(W_enc·x + b_enc)               (an autoencoder, transcode=false, uses x − b_dec)
///     z   = the k largest entries of pre         (activation "topk"; "groupmax": one per group;
///                                                 "relu": of all of pre; "jumprelu": of pre where
///                                                 W_enc·x + b_enc > threshold, else 0)
///     ŷ   = Σ_j z_j·W_dec[j] + b_dec (+ x·W_skipᵀ with skip_connection)
///
/// Parameters are row-major fp32: encoder W_enc [M×d] and b_enc [M], decoder W_dec [M×d] (row j is
/// latent j's output direction) and b_dec [d], and W_skip [d×d] (row i holds output i's weights).
/// After changing parameters in place call `parametersDidChange()`, which drops the packed copies.
public final class Transcoder: @unchecked Sendable {
    /// The configuration.
    public let config: TranscoderConfig
    /// d, the input and output width.
    public let d: Int
    /// M, the number of latents.
    public let m: Int
    /// `encoder.weight` [M×d].
    public let encoderWeight: FloatBuffer
    /// `encoder.bias` [M].
    public let encoderBias: FloatBuffer
    /// `W_dec` [M×d].
    public let decoderWeight: FloatBuffer
    /// `b_dec` [d].
    public let decoderBias: FloatBuffer
    /// `W_skip` [d×d], present when `config.skipConnection`.
    public let skipWeight: FloatBuffer?
    /// `threshold` [M], JumpReLU's per-latent thresholds, present when `config.activation` is "jumprelu".
    public let threshold: FloatBuffer?

    private let packed = Mutex<(encoder: PackedMatrix?, skip: PackedMatrix?, bias: FloatBuffer?)>((nil, nil, nil))

    /// A transcoder initialised as sparsify does (sparse_coder.py `__init__`): W_enc uniform in
    /// ±1/√d (nn.Linear's default; Loupe's own seeded generator, not torch's), b_enc = 0;
    /// W_dec = 0 for transcoders (for autoencoders a copy of W_enc, rows unit-norm when
    /// normalize_decoder); b_dec = 0; W_skip = 0. sparsify's trainer then sets b_enc and b_dec from
    /// the first batch, which `TranscoderTrainer` does too.
    public init(config: TranscoderConfig, seed: UInt64) {
        precondition(config.problem() == nil, "bad transcoder config: \(config.problem()!)")
        self.config = config
        d = config.dIn
        m = config.latents
        encoderWeight = FloatBuffer(count: m * d)
        encoderBias = FloatBuffer(count: m)
        decoderWeight = FloatBuffer(count: m * d)
        decoderBias = FloatBuffer(count: d)
        skipWeight = config.skipConnection ? FloatBuffer(count: d * d) : nil
        threshold = config.activation == "jumprelu" ? FloatBuffer(count: m) : nil
        var rng = SplitMix64(seed: seed)
        let bound = 1 / Float(d).squareRoot()
        for i in 0..<(m * d) { encoderWeight[i] = rng.uniform(-bound, bound) }
        if !config.transcode {
            decoderWeight.pointer.update(from: encoderWeight.pointer, count: m * d)
            if config.normalizeDecoder {
                for j in 0..<m {
                    let w = decoderWeight.pointer + j * d
                    let s = 1 / (dot(w, w, d).squareRoot() + Float.ulpOfOne)
                    for i in 0..<d { w[i] *= s }
                }
            }
        }
    }

    /// Drops the cached packed weights; call after changing any parameter in place.
    public func parametersDidChange() { packed.withLock { $0 = (nil, nil, nil) } }

    /// Packed W_enc, packed W_skip, and the effective encoder bias (b_enc − W_enc·b_dec for autoencoders).
    func packedWeights() -> (encoder: PackedMatrix, skip: PackedMatrix?, bias: UnsafePointer<Float>) {
        packed.withLock { c in
            if c.encoder == nil { c.encoder = PackedMatrix(rowMajor: encoderWeight.pointer, rows: m, cols: d) }
            if c.skip == nil, let s = skipWeight { c.skip = PackedMatrix(rowMajor: s.pointer, rows: d, cols: d) }
            if c.bias == nil {
                let b = FloatBuffer(count: m)
                for j in 0..<m {
                    b[j] = encoderBias[j] - (config.transcode ? 0 : dot(encoderWeight.pointer + j * d, decoderBias.pointer, d))
                }
                c.bias = b
            }
            return (c.encoder!, c.skip, UnsafePointer(c.bias!.pointer))
        }
    }

    /// Encodes `rows` inputs x (row-major rows × d): for each row the k latents as (indices, values),
    /// values ≥ 0 sorted descending (ties to the lower index; sparsify's torch.topk leaves the order
    /// unspecified). `indices` and `values` hold rows × k. With `preActivations` (rows × M) the
    /// dense ReLU(W_enc·x + b_enc) is written there too (sparsify's `pre_acts`; for "jumprelu", with
    /// the entries at or below their threshold set to 0).
    public func encode(_ x: UnsafePointer<Float>, rows: Int, indices: UnsafeMutablePointer<Int32>,
                       values: UnsafeMutablePointer<Float>, preActivations: UnsafeMutablePointer<Float>? = nil) {
        let chunk = preActivations == nil ? 256 : max(rows, 1)
        let scratch = preActivations == nil ? FloatBuffer(count: min(rows, chunk) * m) : nil
        var r0 = 0
        while r0 < rows {
            let n = min(chunk, rows - r0)
            let pre = preActivations.map { $0 + r0 * m } ?? scratch!.pointer
            encodeChunk(x + r0 * d, rows: n, pre: pre, indices: indices + r0 * config.k, values: values + r0 * config.k)
            r0 += n
        }
    }

    /// Dense pre-activations into `pre` (rows × M, ReLU applied) and the selection.
    func encodeChunk(_ x: UnsafePointer<Float>, rows: Int, pre: UnsafeMutablePointer<Float>,
                     indices: UnsafeMutablePointer<Int32>, values: UnsafeMutablePointer<Float>) {
        let w = packedWeights()
        Gemm.matmul(x: x, ldx: d, m: rows, w: w.encoder, y: pre, ldy: m)
        let k = config.k, m = self.m, groupMax = config.activation == "groupmax", theta = threshold.map { UnsafePointer($0.pointer) }
        Parallel.forEach(rows) { r in
            if groupMax {
                Select.reluGroupMax(pre + r * m, w.bias, m, k, indices + r * k, values + r * k)
            } else if let theta {
                Select.jumpReLUTopK(pre + r * m, w.bias, theta, m, k, indices + r * k, values + r * k)
            } else {
                Select.reluTopK(pre + r * m, w.bias, m, k, indices + r * k, values + r * k)
            }
        }
    }

    /// The activation's selection alone, on dense values the caller made (rows × M, overwritten
    /// with ReLU of themselves): for each row the k latents as (indices, values), as `encode` picks
    /// them from its pre-activations. The partial rewrite uses it on pre-activations where some
    /// latents' values were replaced by simulated ones.
    public func select(_ dense: UnsafeMutablePointer<Float>, rows: Int, indices: UnsafeMutablePointer<Int32>,
                       values: UnsafeMutablePointer<Float>) {
        let k = config.k, m = self.m, groupMax = config.activation == "groupmax", theta = threshold.map { UnsafePointer($0.pointer) }
        Parallel.forEach(rows) { r in
            if groupMax {
                Select.reluGroupMax(dense + r * m, nil, m, k, indices + r * k, values + r * k)
            } else if let theta {
                Select.jumpReLUTopK(dense + r * m, nil, theta, m, k, indices + r * k, values + r * k)
            } else {
                Select.reluTopK(dense + r * m, nil, m, k, indices + r * k, values + r * k)
            }
        }
    }

    /// ‖W_dec[j]‖ for every latent j: the size of the output a unit of latent j writes.
    public func decoderNorms() -> [Float] {
        (0..<m).map { j in dot(decoderWeight.pointer + j * d, decoderWeight.pointer + j * d, d).squareRoot() }
    }

    /// y = Σ_j values_j·W_dec[indices_j] + b_dec (+ x·W_skipᵀ) for `rows` rows of `kPerRow` latents
    /// (default k). `x` (rows × d) is required when the transcoder has a skip connection.
    public func decode(indices: UnsafePointer<Int32>, values: UnsafePointer<Float>, rows: Int, kPerRow: Int? = nil,
                       x: UnsafePointer<Float>?, into y: UnsafeMutablePointer<Float>) {
        let k = kPerRow ?? config.k, d = self.d
        let wd = UnsafePointer(decoderWeight.pointer), bd = UnsafePointer(decoderBias.pointer)
        Parallel.forEach(rows) { r in
            let out = y + r * d
            out.update(from: bd, count: d)
            for s in 0..<k {
                let a = values[r * k + s]
                if a != 0 { axpy(a, wd + Int(indices[r * k + s]) * d, out, d) }
            }
        }
        if let skip = packedWeights().skip {
            guard let x else { preconditionFailure("decode needs x for the skip connection") }
            Gemm.matmul(x: x, ldx: d, m: rows, w: skip, y: y, ldy: d, accumulate: true)
        }
    }

    /// The dense code (rows × M) for `rows` inputs x: the kept latents' values at their indices, 0
    /// elsewhere — what the library that wrote a dictionary calls its feature activations, when
    /// `k` keeps every active latent.
    public func codes(_ x: UnsafePointer<Float>, rows: Int) -> [Float] {
        let k = config.k
        var ix = [Int32](repeating: 0, count: rows * k), vx = [Float](repeating: 0, count: rows * k)
        encode(x, rows: rows, indices: &ix, values: &vx)
        var z = [Float](repeating: 0, count: rows * m)
        for r in 0..<rows {
            for s in 0..<k where vx[r * k + s] != 0 { z[r * m + Int(ix[r * k + s])] = vx[r * k + s] }
        }
        return z
    }

    /// ŷ for `rows` inputs x (rows × d) into y (rows × d): encode then decode.
    public func forward(_ x: UnsafePointer<Float>, rows: Int, into y: UnsafeMutablePointer<Float>) {
        let ix = UnsafeMutablePointer<Int32>.allocate(capacity: max(rows * config.k, 1))
        let vx = UnsafeMutablePointer<Float>.allocate(capacity: max(rows * config.k, 1))
        defer { ix.deallocate(); vx.deallocate() }
        encode(x, rows: rows, indices: ix, values: vx)
        decode(indices: ix, values: vx, rows: rows, x: x, into: y)
    }

    /// The parameters as (sparsify tensor name, shape, buffer), in save order.
    public var namedParameters: [(name: String, shape: [Int], buffer: FloatBuffer)] {
        var list: [(String, [Int], FloatBuffer)] = [
            ("encoder.weight", [m, d], encoderWeight), ("encoder.bias", [m], encoderBias),
            ("W_dec", [m, d], decoderWeight), ("b_dec", [d], decoderBias),
        ]
        if let s = skipWeight { list.append(("W_skip", [d, d], s)) }
        if let t = threshold { list.append(("threshold", [m], t)) }
        return list
    }
}

