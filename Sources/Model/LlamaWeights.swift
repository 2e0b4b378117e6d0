import Formats
import Kernels

/// One transformer block's weights, dequantized to fp32 and packed for the GEMM at load.
public struct LlamaLayerWeights: @unchecked Sendable {
    /// [dim] RMSNorm gain before attention.
    public let attentionNorm: FloatBuffer
    /// [(dim + 2·kvDim) × dim]: the q, k and v projections stacked, so one GEMM makes all three.
    /// q and k rows are in GGUF's order (pairs adjacent for RoPE).
    public let qkv: PackedMatrix
    /// [dim × dim] attention output projection.
    public let output: PackedMatrix
    /// [dim] RMSNorm gain before the MLP.
    public let ffnNorm: FloatBuffer
    /// [2·ffnDim × dim]: gate rows then up rows, so one GEMM makes both.
    public let gateUp: PackedMatrix
    /// [dim × ffnDim] MLP down projection.
    public let down: PackedMatrix
}

/// Every weight of the model, read-only after load.
public struct LlamaWeights: @unchecked Sendable {
    /// [vocab × dim] token embeddings; also the output projection when the model ties them.
    public let embedding: PackedMatrix
    /// [vocab × dim] output projection (the embedding itself when tied).
    public let unembedding: PackedMatrix
    public let layers: [LlamaLayerWeights]
    /// [dim] final RMSNorm gain.
    public let outputNorm: FloatBuffer

    public init(embedding: PackedMatrix, unembedding: PackedMatrix, layers: [LlamaLayerWeights], outputNorm: FloatBuffer) {
        self.embedding = embedding
        self.unembedding = unembedding
        self.layers = layers
        self.outputNorm = outputNorm
    }

    /// Loads and checks every tensor named by llama.cpp's convention (`token_embd`, `blk.N.attn_q`, …),
    /// each shape checked against the config; layers load in parallel.
    public init(gguf f: GGUFFile, config c: LlamaConfig) throws {
        let (d, kv, ff) = (c.dim, c.kvDim, c.ffnDim)
        for name in ["token_embd.weight", "output_norm.weight"] where f.tensor(name) == nil {
            throw FormatError.missingTensor(file: f.path, tensor: name)
        }
        // Check every shape before the (parallel) loading starts, so errors are reported cleanly.
        // Each is checked as it is named, never collected first: a damaged `block_count` stops at
        // the first layer the file lacks (and is at most `Limits.layers`, checked with the config).
        func expect(_ name: String, _ shape: [Int]) throws {
            guard let info = f.tensor(name) else { throw FormatError.missingTensor(file: f.path, tensor: name) }
            guard info.dims == shape else { throw FormatError.tensorShapeMismatch(file: f.path, tensor: name, expected: shape, found: info.dims) }
        }
        try expect("token_embd.weight", [d, c.vocabSize])
        try expect("output_norm.weight", [d])
        if f.tensor("output.weight") != nil { try expect("output.weight", [d, c.vocabSize]) }
        for l in 0..<c.layers {
            let p = "blk.\(l)."
            for (name, shape) in [("attn_norm.weight", [d]), ("attn_q.weight", [d, d]), ("attn_k.weight", [d, kv]),
                                  ("attn_v.weight", [d, kv]), ("attn_output.weight", [d, d]), ("ffn_norm.weight", [d]),
                                  ("ffn_gate.weight", [d, ff]), ("ffn_up.weight", [d, ff]), ("ffn_down.weight", [ff, d])] {
                try expect(p + name, shape)
            }
        }

        // Shapes are checked above, so the loads below cannot fail.
        func vector(_ name: String, _ n: Int) -> FloatBuffer {
            let b = FloatBuffer(count: n)
            try! f.dequantize(name, shape: [n], into: b.pointer)
            return b
        }
        /// Stacks the named [rows_i × cols] matrices into one and packs it.
        func packed(_ parts: [(String, Int)], cols: Int) -> PackedMatrix {
            let rows = parts.reduce(0) { $0 + $1.1 }
            let tmp = FloatBuffer(count: rows * cols)
            var r = 0
            for (name, n) in parts {
                try! f.dequantize(name, shape: [cols, n], into: tmp.pointer + r * cols)
                r += n
            }
            return PackedMatrix(rowMajor: tmp.pointer, rows: rows, cols: cols)
        }

        let slots = Slots<LlamaLayerWeights>(count: c.layers)
        Parallel.forEach(c.layers) { l in
            let p = "blk.\(l)."
            slots.set(l, LlamaLayerWeights(
                attentionNorm: vector(p + "attn_norm.weight", d),
                qkv: packed([(p + "attn_q.weight", d), (p + "attn_k.weight", kv), (p + "attn_v.weight", kv)], cols: d),
                output: packed([(p + "attn_output.weight", d)], cols: d),
                ffnNorm: vector(p + "ffn_norm.weight", d),
                gateUp: packed([(p + "ffn_gate.weight", ff), (p + "ffn_up.weight", ff)], cols: d),
                down: packed([(p + "ffn_down.weight", d)], cols: ff)))
        }
        layers = slots.values
        embedding = packed([("token_embd.weight", c.vocabSize)], cols: d)
        unembedding = f.tensor("output.weight") == nil ? embedding : packed([("output.weight", c.vocabSize)], cols: d)
        outputNorm = vector("output_norm.weight", d)
    }
}
