import Foundation
import Kernels
import Model
import Storage
import Tokenizer

/// Asks an instruct model (ChatML) for a one-line explanation from the latent's examples, greedily.
///
/// The prompt is `ExplainerPrompt`'s system message, then the user message with the examples of
/// `ExplainerExamples`, dropping the last (lowest-quantile) examples until the whole prompt fits in
/// `maxPromptTokens`; the assistant turn starts with the prompt's answer start. The system
/// message's keys and values are computed once and reused for every latent (the KV cache is rewound
/// to it). Generation stops at `<|im_end|>`, an end-of-text token, a newline after some text, the
/// closing quote when the answer start opened one, or `maxNewTokens`; the answer start plus what was
/// generated is cleaned by `ExplanationCleaner`. An answer with nothing generated in it falls back
/// to the lexical explanation with a note saying so.
///
/// The windows hold the base model's token ids: they are turned into text with `vocabulary` (the
/// base model's tokens) and the text is tokenized with the explainer model's own tokenizer, so any
/// Llama-family chat model can explain.
public final class LLMExplainer: Explainer {
    public let source = ExplanationSource.llm
    public let model: LlamaModel
    public let tokenizer: BPETokenizer
    public let vocabulary: TokenVocabulary
    public let prompt: ExplainerPrompt
    public var options = ExampleOptions()
    public var maxPromptTokens = 700
    public var maxNewTokens = 40
    /// The last explanation's prompt length and generated tokens (for rates and reports).
    public private(set) var lastPromptTokens = 0
    public private(set) var lastGeneratedTokens = 0

    private let chat: ChatTemplate
    private let fallback: LexicalExplainer
    private let stops: Set<Int>
    private let cache: KVCache
    /// The system message's tokens; the cache holds them once `prefixReady`.
    private let prefix: [Int]
    private var prefixReady = false

    public convenience init(session: Session, vocabulary: TokenVocabulary, prompt: ExplainerPrompt) throws {
        try self.init(model: session.model, tokenizer: session.tokenizer, chat: session.chat, vocabulary: vocabulary, prompt: prompt)
    }

    /// `chat` nil: plain ChatML, if the tokenizer has `<|im_start|>` and `<|im_end|>`.
    public init(model: LlamaModel, tokenizer: BPETokenizer, chat: ChatTemplate?, vocabulary: TokenVocabulary, prompt: ExplainerPrompt) throws {
        guard let end = tokenizer.id(of: "<|im_end|>"), tokenizer.id(of: "<|im_start|>") != nil else {
            throw ExplainerError.noChatML
        }
        self.model = model
        self.tokenizer = tokenizer
        self.chat = chat ?? ChatTemplate(defaultSystemPrompt: nil)
        self.vocabulary = vocabulary
        self.prompt = prompt
        fallback = LexicalExplainer(vocabulary: vocabulary)
        stops = Set([end, tokenizer.eosId, tokenizer.id(of: "<|endoftext|>")].compactMap { $0 })
        prefix = tokenizer.encode(Self.systemText(prompt.system))
        // The explainer's prompts are a few thousand tokens: a cache of the model's whole context would
        // be sized by `context_length` alone (up to 2^24 positions in a damaged file).
        cache = model.makeCache(capacity: min(model.config.contextLength, 8192))
        guard prefix.count + 64 < cache.capacity else {
            throw ExplainerError.systemPromptTooLong(tokens: prefix.count, context: cache.capacity)
        }
    }

    /// The system turn exactly as the chat template writes it; a special token ends it, so its
    /// tokens are the same whether it is tokenized alone or with the rest.
    static func systemText(_ system: String) -> String { "<|im_start|>system\n\(system)<|im_end|>\n" }

    /// The prompt after the system turn: the user message with as many examples as fit, and the generation prompt.
    public func userTurn(_ record: LatentRecord) -> (text: String, tokens: [Int], examples: Int) {
        let windows = ExplainerExamples.select(record, options: options)
        var n = windows.count
        while true {
            let block = ExplainerExamples.block(Array(windows.prefix(n)), latentMax: record.max, vocabulary: vocabulary, options: options)
            let full = chat.format([(role: "system", content: prompt.system), (role: "user", content: prompt.userMessage(examples: block))],
                                   addGenerationPrompt: true) + prompt.answer
            let text = String(full.dropFirst(Self.systemText(prompt.system).count))
            let tokens = tokenizer.encode(text)
            if n <= 1 || prefix.count + tokens.count <= maxPromptTokens { return (text, tokens, n) }
            n -= 1
        }
    }

    /// The whole prompt text for a latent (for `--show-prompt` and tests).
    public func promptText(_ record: LatentRecord) -> String { Self.systemText(prompt.system) + userTurn(record).text }

    public func explain(_ record: LatentRecord) throws -> String { try explain(record, temperature: 0, seed: 0) }

    /// With `temperature` > 0 each token is sampled from softmax(logits / temperature) by a
    /// generator seeded with `seed` (the same seed, the same answer); 0 is greedy.
    public func explain(_ record: LatentRecord, temperature: Float, seed: UInt64) throws -> String {
        guard record.max > 0, !record.windows.isEmpty else { return fallback.explain(record) }
        var rng = SplitMix64(seed: seed)
        if !prefixReady {
            cache.truncate(to: 0)
            try model.forward(prefix, cache: cache, logits: .none)
            prefixReady = true
        }
        cache.truncate(to: prefix.count)
        var input = userTurn(record).tokens
        input = Array(input.suffix(cache.capacity - prefix.count - 1))
        lastPromptTokens = prefix.count + input.count
        var generated: [Int] = []
        var written = ""
        let quoted = prompt.answerOpensQuote
        for _ in 0..<maxNewTokens {
            guard cache.length + input.count <= cache.capacity else { break }
            let logits = try model.lastLogits(input, cache: cache)
            let next = temperature > 0 ? Self.sample(logits, temperature: temperature, rng: &rng)
                : logits.withUnsafeBufferPointer { Ops.argmax($0.baseAddress!, count: $0.count) }
            if stops.contains(next) { break }
            generated.append(next)
            written = tokenizer.decodeText(generated)
            if quoted, let close = written.firstIndex(of: "\"") {
                written = String(written[...close])
                break
            }
            if written.drop(while: { $0.isWhitespace }).contains("\n") { break }
            input = [next]
        }
        lastGeneratedTokens = generated.count
        var body = written.split(separator: "\n", omittingEmptySubsequences: true).first.map(String.init) ?? ""
        if quoted {
            body = body.hasSuffix("\"") ? String(body.dropLast()) : body
            body = body.trimmingCharacters(in: .whitespaces).isEmpty ? "" : body + "\""
        }
        let cleaned = body.trimmingCharacters(in: .whitespaces).isEmpty ? "" : ExplanationCleaner.clean(prompt.answer + body)
        return cleaned.isEmpty ? fallback.explain(record) + " [lexical fallback: the model's answer was empty]" : cleaned
    }
}

extension LLMExplainer {
    /// A token drawn from softmax(logits / temperature).
    static func sample(_ logits: [Float], temperature: Float, rng: inout SplitMix64) -> Int {
        let top = logits.max() ?? 0
        var weights = logits.map { exp(($0 - top) / temperature) }
        let total = weights.reduce(0, +)
        var u = Float(rng.unit()) * total
        for i in weights.indices {
            u -= weights[i]
            if u <= 0 { return i }
        }
        weights.removeAll()
        return logits.count - 1
    }
}

/// Makes a model's answer one clean line: the first non-empty line, without labels such as
/// "Explanation:" or "[EXPLANATION]:", surrounding quotes, `**` or `<<`/`>>` marks.
public enum ExplanationCleaner {
    static let labels = ["[explanation]:", "explanation:", "answer:", "output:", "the explanation is:", "the neuron detects",
                         "this neuron detects", "the neuron fires on", "this neuron fires on"].sorted { $0.count > $1.count }

    public static func clean(_ raw: String) -> String {
        var s = raw.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.first { !$0.isEmpty } ?? ""
        s = s.replacingOccurrences(of: "<<", with: "").replacingOccurrences(of: ">>", with: "").replacingOccurrences(of: "**", with: "")
        var changed = true
        while changed {
            changed = false
            s = s.trimmingCharacters(in: .whitespaces)
            for label in labels where s.lowercased().hasPrefix(label) {
                s = String(s.dropFirst(label.count)).trimmingCharacters(in: CharacterSet(charactersIn: " :-–"))
                changed = true
                break
            }
            for (open, close) in [("\"", "\""), ("'", "'"), ("“", "”"), ("`", "`")]
            where s.count >= open.count + close.count && s.hasPrefix(open) && s.hasSuffix(close)
                && !s.dropFirst(open.count).dropLast(close.count).contains(close) {
                s = String(s.dropFirst(open.count).dropLast(close.count))
                changed = true
            }
        }
        return s.split(whereSeparator: \.isWhitespace).joined(separator: " ")
    }
}

// MARK: - which latents
