import Formats
import Foundation
import Model

/// A tiny random Llama with a toy tokenizer, written to a GGUF file by the test itself, and a
/// plain-loop reference forward pass over the same weights (independent of Loupe's kernels).
/// The weights are random: nothing here is meant to be meaningful, only deterministic.
public struct TinyLlama {
    public let config: LlamaConfig
    public let vocabulary: ToyVocabulary
    /// Row-major [n][k] weights by GGUF name.
    public var tensors: [String: [Float]] = [:]

    public init(layers: Int = 2, dim: Int = 64, ffnDim: Int = 96, heads: Int = 4, kvHeads: Int = 2, contextLength: Int = 80,
                vocabulary: ToyVocabulary = .letters, seed: UInt64) {
        let c = LlamaConfig(layers: layers, dim: dim, ffnDim: ffnDim, heads: heads, kvHeads: kvHeads, vocabSize: vocabulary.count,
                            contextLength: contextLength, ropeBase: 10_000, normEps: 1e-5)
        config = c
        self.vocabulary = vocabulary
        var rng = SeededRNG(seed: seed)
        func random(_ n: Int, scale: Float) -> [Float] { (0..<n).map { _ in rng.normal() * scale } }
        func gains() -> [Float] { (0..<c.dim).map { _ in 1 + 0.1 * rng.normal() } }
        tensors["token_embd.weight"] = random(c.vocabSize * c.dim, scale: 1)
        tensors["output_norm.weight"] = gains()
        for l in 0..<c.layers {
            let p = "blk.\(l)."
            tensors[p + "attn_norm.weight"] = gains()
            tensors[p + "ffn_norm.weight"] = gains()
            tensors[p + "attn_q.weight"] = random(c.dim * c.dim, scale: 0.3)
            tensors[p + "attn_k.weight"] = random(c.kvDim * c.dim, scale: 0.3)
            tensors[p + "attn_v.weight"] = random(c.kvDim * c.dim, scale: 0.15)
            tensors[p + "attn_output.weight"] = random(c.dim * c.dim, scale: 0.15)
            tensors[p + "ffn_gate.weight"] = random(c.ffnDim * c.dim, scale: 0.15)
            tensors[p + "ffn_up.weight"] = random(c.ffnDim * c.dim, scale: 0.15)
            tensors[p + "ffn_down.weight"] = random(c.dim * c.ffnDim, scale: 0.1)
        }
    }

    /// GGUF dims (innermost first) of each tensor.
    func dims(_ name: String) -> [Int] {
        let c = config
        switch name.split(separator: ".").dropLast().last! {
        case "token_embd": return [c.dim, c.vocabSize]
        case "output_norm", "attn_norm", "ffn_norm": return [c.dim]
        case "attn_q", "attn_output": return [c.dim, c.dim]
        case "attn_k", "attn_v": return [c.dim, c.kvDim]
        case "ffn_gate", "ffn_up": return [c.dim, c.ffnDim]
        default: return [c.ffnDim, c.dim]
        }
    }

    /// Writes the model with its tokenizer (no BOS added; `<|endoftext|>` is BOS and EOS where the vocabulary has it).
    public func write(to path: String) throws {
        var w = GGUFWriter()
        let c = config, v = vocabulary
        w.set("general.architecture", .string("llama"))
        w.set("llama.block_count", .uint32(UInt32(c.layers)))
        w.set("llama.embedding_length", .uint32(UInt32(c.dim)))
        w.set("llama.feed_forward_length", .uint32(UInt32(c.ffnDim)))
        w.set("llama.attention.head_count", .uint32(UInt32(c.heads)))
        w.set("llama.attention.head_count_kv", .uint32(UInt32(c.kvHeads)))
        w.set("llama.context_length", .uint32(UInt32(c.contextLength)))
        w.set("llama.vocab_size", .uint32(UInt32(c.vocabSize)))
        w.set("llama.rope.freq_base", .float32(c.ropeBase))
        w.set("llama.attention.layer_norm_rms_epsilon", .float32(c.normEps))
        w.set("tokenizer.ggml.model", .string("gpt2"))
        w.set("tokenizer.ggml.pre", .string("gpt2"))
        w.set("tokenizer.ggml.tokens", .array(v.tokens.map { .string($0) }))
        w.set("tokenizer.ggml.token_type", .array(v.types.map { .int32(Int32($0)) }))
        w.set("tokenizer.ggml.merges", .array(v.merges.map { .string($0) }))
        if let end = v.id(of: "<|endoftext|>") {
            w.set("tokenizer.ggml.bos_token_id", .uint32(UInt32(end)))
            w.set("tokenizer.ggml.eos_token_id", .uint32(UInt32(end)))
        }
        w.set("tokenizer.ggml.add_bos_token", .bool(false))
        for name in tensors.keys.sorted() { w.addTensor(name, dims: dims(name), values: tensors[name]!) }
        try w.write(to: path)
    }

    /// Logits of every position, by plain loops. `mlpOverride(layer, position, output)` may change an MLP output,
    /// `residualOverride(layer, position, residual)` the residual stream leaving a layer (or just read it).
    public func referenceLogits(_ tokens: [Int], mlpOverride: ((Int, Int, inout [Float]) -> Void)? = nil,
                                residualOverride: ((Int, Int, inout [Float]) -> Void)? = nil) -> [[Float]] {
        let c = config, d = c.dim, hd = c.headDim
        func matvec(_ w: [Float], _ x: [Float], rows: Int) -> [Float] {
            (0..<rows).map { r in (0..<x.count).reduce(Float(0)) { $0 + w[r * x.count + $1] * x[$1] } }
        }
        func norm(_ x: [Float], _ g: [Float]) -> [Float] {
            let ms = x.reduce(Float(0)) { $0 + $1 * $1 } / Float(x.count)
            let s = 1 / (ms + c.normEps).squareRoot()
            return zip(x, g).map { $0 * s * $1 }
        }
        func rope(_ v: inout [Float], heads: Int, pos: Int) {
            for h in 0..<heads {
                for i in 0..<hd / 2 {
                    let theta = Double(pos) * pow(Double(c.ropeBase), -2 * Double(i) / Double(hd))
                    let (a, b) = (v[h * hd + 2 * i], v[h * hd + 2 * i + 1])
                    let (cs, sn) = (Float(cos(theta)), Float(sin(theta)))
                    v[h * hd + 2 * i] = a * cs - b * sn
                    v[h * hd + 2 * i + 1] = a * sn + b * cs
                }
            }
        }
        var xs = tokens.map { Array(tensors["token_embd.weight"]![$0 * d..<($0 + 1) * d]) }
        for l in 0..<c.layers {
            let p = "blk.\(l)."
            var ks: [[Float]] = [], vs: [[Float]] = [], qs: [[Float]] = []
            for (t, x) in xs.enumerated() {
                let n = norm(x, tensors[p + "attn_norm.weight"]!)
                var q = matvec(tensors[p + "attn_q.weight"]!, n, rows: d)
                var k = matvec(tensors[p + "attn_k.weight"]!, n, rows: c.kvDim)
                rope(&q, heads: c.heads, pos: t)
                rope(&k, heads: c.kvHeads, pos: t)
                qs.append(q); ks.append(k); vs.append(matvec(tensors[p + "attn_v.weight"]!, n, rows: c.kvDim))
            }
            for t in 0..<xs.count {
                var att = [Float](repeating: 0, count: d)
                for h in 0..<c.heads {
                    let kvh = h / (c.heads / c.kvHeads)
                    var scores = (0...t).map { s in
                        (0..<hd).reduce(Float(0)) { $0 + qs[t][h * hd + $1] * ks[s][kvh * hd + $1] } / Float(hd).squareRoot()
                    }
                    let m = scores.max()!
                    scores = scores.map { exp($0 - m) }
                    let z = scores.reduce(0, +)
                    for s in 0...t { for i in 0..<hd { att[h * hd + i] += scores[s] / z * vs[s][kvh * hd + i] } }
                }
                let o = matvec(tensors[p + "attn_output.weight"]!, att, rows: d)
                for i in 0..<d { xs[t][i] += o[i] }
                let n = norm(xs[t], tensors[p + "ffn_norm.weight"]!)
                let g = matvec(tensors[p + "ffn_gate.weight"]!, n, rows: c.ffnDim)
                let u = matvec(tensors[p + "ffn_up.weight"]!, n, rows: c.ffnDim)
                let hidden = zip(g, u).map { $0 / (1 + exp(-$0)) * $1 }
                var y = matvec(tensors[p + "ffn_down.weight"]!, hidden, rows: d)
                mlpOverride?(l, t, &y)
                for i in 0..<d { xs[t][i] += y[i] }
            }
            if let residualOverride { for t in 0..<xs.count { residualOverride(l, t, &xs[t]) } }
        }
        return xs.map { matvec(tensors["token_embd.weight"]!, norm($0, tensors["output_norm.weight"]!), rows: c.vocabSize) }
    }
}

/// max |a[i] − b[i]|.
public func maxAbsDiff(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count)
    return zip(a, b).reduce(Float(0)) { max($0, abs($1.0 - $1.1)) }
}
