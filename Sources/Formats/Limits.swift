/// Every limit Loupe puts on a size read from a file, in one place. A value past one of these is
/// refused with a typed error naming the file and field *before* anything is allocated for it,
/// however the file got that way. Each limit is far above the largest real value (cited), so no
/// real model, dictionary or workspace is ever refused; they exist so that a damaged or hostile
/// file gives an error instead of a multi-terabyte allocation, a wrapped size or a trap.
///
/// Sizes are also checked against the bytes actually present (a tensor must lie inside its file);
/// these limits bound what the bytes present cannot (a context length, a latent count in cfg.json).
public enum Limits {
    /// Tokens of context. Largest public Llama: Llama 4 Scout, 10,485,760 (10M); SmolLM2: 8,192.
    public static let contextLength = 1 << 24
    /// RoPE positions built at load; longer runs grow the table to what they need (up to `contextLength`).
    public static let ropePositionsAtLoad = 4096
    /// Transformer blocks. Largest public Llama: Llama 3.1 405B, 126; SmolLM2-135M: 30.
    public static let layers = 1024
    /// Hidden size d_model. Largest public Llama: 405B, 16,384; SmolLM2-135M: 576.
    public static let modelDim = 1 << 17
    /// MLP width. Largest public Llama: 405B, 53,248.
    public static let ffnDim = 1 << 20
    /// Attention heads. Largest public Llama: 405B, 128.
    public static let heads = 1 << 12
    /// Vocabulary. Largest public models: Gemma 3, 262,144; Llama 3, 128,256; SmolLM2: 49,152.
    public static let vocabSize = 1 << 22
    /// Bytes of one tokenizer token or merge string. Real ones are a few dozen bytes.
    public static let tokenBytes = 1 << 16
    /// Bytes of one GGUF metadata key name (llama.cpp's longest are under 64).
    public static let keyBytes = 1 << 16
    /// Bytes of one GGUF metadata string (a chat template is a few KB; the largest seen ~50 KB).
    public static let stringBytes = 1 << 26
    /// Elements of one GGUF metadata array (the token list: `vocabSize`; merges ~ 280,000 for Gemma 3).
    public static let arrayElements = 1 << 24
    /// Metadata keys and tensors in one GGUF file (a 126-layer Llama has ~1,150 tensors, ~40 keys).
    public static let ggufEntries = 1 << 20
    /// One tensor dimension, and the elements of one tensor. Largest real tensor: Gemma 3's
    /// 262,144 × 5,376 embedding (1.4 × 10^9 elements); a 2^40-element tensor is 4 TB in fp32.
    public static let tensorDim = 1 << 40
    public static let tensorElements = 1 << 40
    /// Bytes of a safetensors JSON header (huggingface/safetensors refuses > 100 MB).
    public static let safetensorsHeader = 100_000_000
    /// GGUF `general.alignment` (llama.cpp uses 32; any power of two up to this is accepted).
    public static let alignment = 1 << 16
    /// Dictionary input width d_in: `modelDim`. Latents of one dictionary: the largest published
    /// are OpenAI's 16M-latent GPT-4 SAE and Gemma Scope's 1M-width ones (2^24 = 16,777,216).
    public static let latents = 1 << 24
    /// Active latents per token k (sparsify's default 32; published TopK dictionaries use ≤ 256).
    public static let topK = 1 << 12
    /// Tokens in a workspace corpus: 2^34 ≈ 1.7 × 10^10, beyond any corpus Loupe's build makes
    /// (the demo's is 2 × 10^5) and above The Pile's 3 × 10^11 tokens / 16.
    public static let corpusTokens = 1 << 34
    /// Tokens per corpus window (the build's default is 64; a window is at most a context).
    public static let windowLength = contextLength
    /// Tokens shown per example window in the latent cache (the build's default is 32).
    public static let displayLength = 1 << 12
    /// Histogram bins and quantiles of one latent record (the build writes 20 and 10).
    public static let recordBins = 1 << 12

    /// `a × b`, or nil when it overflows `Int` or either is negative.
    @inlinable public static func product(_ a: Int, _ b: Int) -> Int? {
        guard a >= 0, b >= 0 else { return nil }
        let (p, o) = a.multipliedReportingOverflow(by: b)
        return o ? nil : p
    }

    /// The product of `values` (1 for none), or nil when it overflows `Int` or any is negative.
    @inlinable public static func product(_ values: [Int]) -> Int? {
        var p = 1
        for v in values { guard let q = product(p, v) else { return nil }; p = q }
        return p
    }

    /// `a + b`, or nil when it overflows `Int` or either is negative.
    @inlinable public static func sum(_ a: Int, _ b: Int) -> Int? {
        guard a >= 0, b >= 0 else { return nil }
        let (s, o) = a.addingReportingOverflow(b)
        return o ? nil : s
    }
}
