import Foundation
import Formats

/// A tiny random Llama with a real byte-level BPE tokenizer, written to a GGUF file by the test
/// itself: enough for `loupe build` to tokenize English, train a transcoder and cache latents in
/// seconds, and for `loupe open` to show them. The weights are random; nothing here is meant to
/// be meaningful, only deterministic.
///
/// The vocabulary: the 256 byte tokens (id = byte) spelled in GPT-2's byte-to-unicode alphabet,
/// then the results of `merges` in order, then three control tokens (`<|endoftext|>` ends each
/// corpus document).
enum TinyFixture {
    /// A context of 1024 holds the explanation simulator's prompts (about 720 tokens).
    static let layers = 2, dim = 64, ffnDim = 128, heads = 4, kvHeads = 2, contextLength = 1024

    /// Merges of frequent English pairs, in rank order, in byte-level spelling ("Ġ" is a space).
    static let merges = [
        "Ġ t", "h e", "Ġt he", "Ġ a", "i n", "e r", "o n", "a n", "r e", "e n", "Ġ s", "Ġ o", "a t", "o r",
        "e s", "Ġ w", "Ġa n", "Ġan d", "Ġ c", "i s", "e d", "Ġ p", "i t", "a l", "Ġ f", "Ġo f", "Ġt h",
        "Ġth at", "Ġ n", "Ġ d", "i on", "Ġ l", "Ġ i", "Ġi n", "Ġ b", "Ġ h", "Ġ m", "o u", "l l", "in g",
    ]
    static let specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

    /// GPT-2's printable spelling of each byte: printable Latin-1 bytes stand for themselves, the
    /// other 68 take U+0100 onwards in byte order (so a space is "Ġ", a newline "Ċ").
    static let byteScalars: [Unicode.Scalar] = {
        var next: UInt32 = 256
        return (0..<256).map { b in
            if (0x21...0x7E).contains(b) || (0xA1...0xAC).contains(b) || (0xAE...0xFF).contains(b) { return Unicode.Scalar(UInt32(b))! }
            defer { next += 1 }
            return Unicode.Scalar(next)!
        }
    }()

    /// (tokens, GGUF token types): bytes, merge results, control tokens.
    static func vocabulary() -> ([String], [Int]) {
        var tokens = byteScalars.map { String($0) }
        for merge in merges {
            let parts = merge.split(separator: " ").map(String.init)
            precondition(parts.count == 2 && tokens.contains(parts[0]) && tokens.contains(parts[1]), "merge \(merge) needs both parts first")
            if !tokens.contains(parts[0] + parts[1]) { tokens.append(parts[0] + parts[1]) }
        }
        let normal = tokens.count
        tokens += specials
        return (tokens, Array(repeating: 1, count: normal) + Array(repeating: 3, count: specials.count))
    }

    /// Writes the model to `path`.
    static func writeModel(to path: String, seed: UInt64 = 7) throws {
        var rng = Generator(state: seed)
        let (tokens, types) = vocabulary()
        let vocab = tokens.count
        let kvDim = dim / heads * kvHeads
        var w = GGUFWriter()
        w.set("general.architecture", .string("llama"))
        w.set("general.name", .string("loupe-e2e-tiny"))
        w.set("llama.block_count", .uint32(UInt32(layers)))
        w.set("llama.embedding_length", .uint32(UInt32(dim)))
        w.set("llama.feed_forward_length", .uint32(UInt32(ffnDim)))
        w.set("llama.attention.head_count", .uint32(UInt32(heads)))
        w.set("llama.attention.head_count_kv", .uint32(UInt32(kvHeads)))
        w.set("llama.context_length", .uint32(UInt32(contextLength)))
        w.set("llama.vocab_size", .uint32(UInt32(vocab)))
        w.set("llama.rope.freq_base", .float32(10_000))
        w.set("llama.attention.layer_norm_rms_epsilon", .float32(1e-5))
        w.set("tokenizer.ggml.model", .string("gpt2"))
        w.set("tokenizer.ggml.pre", .string("gpt2"))
        w.set("tokenizer.ggml.tokens", .array(tokens.map { .string($0) }))
        w.set("tokenizer.ggml.token_type", .array(types.map { .int32(Int32($0)) }))
        w.set("tokenizer.ggml.merges", .array(merges.map { .string($0) }))
        w.set("tokenizer.ggml.bos_token_id", .uint32(UInt32(vocab - 3)))
        w.set("tokenizer.ggml.eos_token_id", .uint32(UInt32(vocab - 3)))
        w.set("tokenizer.ggml.add_bos_token", .bool(false))

        func random(_ n: Int, scale: Float) -> [Float] { (0..<n).map { _ in rng.normal() * scale } }
        func gains() -> [Float] { (0..<dim).map { _ in 1 + 0.1 * rng.normal() } }
        // GGUF dims are innermost first: a [rows × cols] matrix is written as [cols, rows].
        w.addTensor("token_embd.weight", dims: [dim, vocab], values: random(vocab * dim, scale: 1))
        w.addTensor("output_norm.weight", dims: [dim], values: gains())
        for l in 0..<layers {
            let p = "blk.\(l)."
            w.addTensor(p + "attn_norm.weight", dims: [dim], values: gains())
            w.addTensor(p + "attn_q.weight", dims: [dim, dim], values: random(dim * dim, scale: 0.3))
            w.addTensor(p + "attn_k.weight", dims: [dim, kvDim], values: random(kvDim * dim, scale: 0.3))
            w.addTensor(p + "attn_v.weight", dims: [dim, kvDim], values: random(kvDim * dim, scale: 0.15))
            w.addTensor(p + "attn_output.weight", dims: [dim, dim], values: random(dim * dim, scale: 0.15))
            w.addTensor(p + "ffn_norm.weight", dims: [dim], values: gains())
            w.addTensor(p + "ffn_gate.weight", dims: [dim, ffnDim], values: random(ffnDim * dim, scale: 0.15))
            w.addTensor(p + "ffn_up.weight", dims: [dim, ffnDim], values: random(ffnDim * dim, scale: 0.15))
            w.addTensor(p + "ffn_down.weight", dims: [ffnDim, dim], values: random(dim * ffnDim, scale: 0.1))
        }
        try w.write(to: path)
    }

    /// Public-domain prose (the Gettysburg Address and the Preamble), numbered so windows differ.
    static func writeCorpus(to path: String, copies: Int = 12) throws {
        let text = """
        Four score and seven years ago our fathers brought forth on this continent, a new nation, conceived in Liberty, \
        and dedicated to the proposition that all men are created equal. Now we are engaged in a great civil war, testing \
        whether that nation, or any nation so conceived and so dedicated, can long endure. We are met on a great battle-field \
        of that war. We have come to dedicate a portion of that field, as a final resting place for those who here gave their \
        lives that that nation might live. It is altogether fitting and proper that we should do this.
        We the People of the United States, in Order to form a more perfect Union, establish Justice, insure domestic \
        Tranquility, provide for the common defence, promote the general Welfare, and secure the Blessings of Liberty to \
        ourselves and our Posterity, do ordain and establish this Constitution for the United States of America.
        """
        try (1...copies).map { "Copy \($0).\n" + text }.joined(separator: "\n\n").write(toFile: path, atomically: true, encoding: .utf8)
    }

    /// SplitMix64 with a Box–Muller normal: deterministic weights without depending on Kernels.
    struct Generator {
        var state: UInt64

        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }

        mutating func uniform() -> Float { Float(next() >> 40) / Float(1 << 24) }

        mutating func normal() -> Float {
            let u = max(uniform(), 1e-7), v = uniform()
            return (-2 * log(u)).squareRoot() * cos(2 * .pi * v)
        }
    }
}
