import Formats

/// The blueprint of a Llama-architecture model, read from GGUF metadata (`<arch>.…` keys) and
/// checked before any weight is touched.
public struct LlamaConfig: Equatable, Sendable {
    public var layers: Int
    public var dim: Int
    public var ffnDim: Int
    public var heads: Int
    public var kvHeads: Int
    public var vocabSize: Int
    public var contextLength: Int
    public var ropeBase: Float
    public var normEps: Float

    public var headDim: Int { dim / heads }
    public var kvDim: Int { kvHeads * headDim }

    public init(layers: Int, dim: Int, ffnDim: Int, heads: Int, kvHeads: Int, vocabSize: Int,
                contextLength: Int, ropeBase: Float = 10_000, normEps: Float = 1e-5) {
        self.layers = layers
        self.dim = dim
        self.ffnDim = ffnDim
        self.heads = heads
        self.kvHeads = kvHeads
        self.vocabSize = vocabSize
        self.contextLength = contextLength
        self.ropeBase = ropeBase
        self.normEps = normEps
    }

    /// Reads and checks the `llama.*` keys of a GGUF file.
    public init(gguf f: GGUFFile) throws {
        let arch = try f.string("general.architecture")
        guard arch == "llama" else {
            throw FormatError.wrongValueType(file: f.path, key: "general.architecture", expected: "\"llama\" (found \"\(arch)\"; Loupe runs Llama-family models)")
        }
        let vocab: Int
        if let v = f.metadata["llama.vocab_size"]?.int { vocab = v } else { vocab = try f.strings("tokenizer.ggml.tokens").count }
        self.init(layers: try f.int("llama.block_count"), dim: try f.int("llama.embedding_length"),
                  ffnDim: try f.int("llama.feed_forward_length"), heads: try f.int("llama.attention.head_count"),
                  kvHeads: try f.metadata["llama.attention.head_count_kv"]?.int ?? f.int("llama.attention.head_count"),
                  vocabSize: vocab, contextLength: try f.int("llama.context_length"),
                  ropeBase: (f.metadata["llama.rope.freq_base"]?.double).map(Float.init) ?? 10_000,
                  normEps: try f.float("llama.attention.layer_norm_rms_epsilon"))
        if let ropeDims = f.metadata["llama.rope.dimension_count"]?.int, ropeDims != headDim {
            throw FormatError.wrongValueType(file: f.path, key: "llama.rope.dimension_count", expected: "equal to the head size \(headDim) (partial RoPE is not supported)")
        }
        try check(file: f.path)
    }

    /// Shapes that the rest of the engine relies on.
    public func check(file: String) throws {
        func bad(_ key: String, _ why: String) -> FormatError { .wrongValueType(file: file, key: key, expected: why) }
        // Limits first, so no size below is computed from a value no real model has.
        for (key, value, limit) in [("llama.block_count", layers, Limits.layers), ("llama.embedding_length", dim, Limits.modelDim),
                                    ("llama.feed_forward_length", ffnDim, Limits.ffnDim), ("llama.attention.head_count", heads, Limits.heads),
                                    ("llama.attention.head_count_kv", kvHeads, Limits.heads), ("llama.vocab_size", vocabSize, Limits.vocabSize),
                                    ("llama.context_length", contextLength, Limits.contextLength)] where value > limit {
            throw bad(key, "at most \(limit) (found \(value))")
        }
        guard layers >= 1 else { throw bad("llama.block_count", "at least 1") }
        guard dim >= 1, heads >= 1, dim % heads == 0 else { throw bad("llama.embedding_length", "a multiple of the head count \(heads)") }
        guard headDim % 2 == 0 else { throw bad("llama.attention.head_count", "giving an even head size (RoPE rotates pairs)") }
        guard kvHeads >= 1, heads % kvHeads == 0 else { throw bad("llama.attention.head_count_kv", "a divisor of the head count \(heads)") }
        guard ffnDim >= 1 else { throw bad("llama.feed_forward_length", "at least 1") }
        guard vocabSize >= 1 else { throw bad("llama.vocab_size", "at least 1") }
        guard contextLength >= 1 else { throw bad("llama.context_length", "at least 1") }
        guard normEps > 0, normEps.isFinite else { throw bad("llama.attention.layer_norm_rms_epsilon", "positive") }
        guard ropeBase > 0, ropeBase.isFinite else { throw bad("llama.rope.freq_base", "positive") }
    }
}
