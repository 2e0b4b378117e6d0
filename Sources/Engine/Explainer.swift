import Foundation
import Kernels
import Model
import Tokenizer

/// Explainers turn a latent's cached windows into a one-line natural-language explanation
/// (the paper's step 3). Two interchangeable ones:
///
/// - `LexicalExplainer` (source "lexical"): model-free, a precise description from statistics of
///   the activating tokens and the token before them. Deterministic, well under 1 ms a latent.
/// - `LLMExplainer` (source "llm"): an instruct model reads quantile-sampled windows with the
///   activating tokens marked `<<like this>>` and their activations scaled 0–10, and answers in one
///   line, greedily. The prompts are the user-editable files in `data/prompts/` (`ExplainerPrompt`).
///
/// `ExplainJob` runs either over a selection of latents (`LatentSelection`), saving each
/// explanation to the workspace's `ExplanationStore` as soon as it is made.
public protocol Explainer: AnyObject {
    /// The source its explanations are saved with: "llm" or "lexical".
    var source: String { get }
    /// A one-line explanation of the latent from its cached windows.
    func explain(_ record: LatentRecord) throws -> String
}

// MARK: - the base model's tokens

/// The base model's tokens as bytes: the windows of a latent hold its token ids, explanations need
/// their text. Special tokens are their text, e.g. `<|endoftext|>`.
public struct TokenVocabulary: Sendable {
    private let table: [[UInt8]]

    /// Token `i` is `tokens[i]` (UTF-8).
    public init(strings: [String]) { table = strings.map { Array($0.utf8) } }

    /// The tokenizer's tokens.
    public init(tokenizer: BPETokenizer) { table = (0..<tokenizer.count).map(tokenizer.tokenBytes) }

    /// The token's bytes (empty for an id outside the vocabulary).
    public func bytes(_ id: Int) -> [UInt8] { id >= 0 && id < table.count ? table[id] : [] }

    /// The text of tokens decoded together (bytes that are not UTF-8 become U+FFFD).
    public func text<S: Sequence>(_ ids: S) -> String where S.Element == Int {
        String(decoding: ids.flatMap(bytes), as: UTF8.self)
    }

    public func text(_ id: Int) -> String { text([id]) }
}

// MARK: - the lexical explainer

/// A model-free baseline: which tokens the latent fires on, weighted by activation, what comes
/// right before them, and its strongest token, e.g.
///
///     fires on " bridge", " tunnel", " pier" (62% of activations), mostly after " the" / " a"; strongest on " bridge"
///
/// The statistics are over the record's windows (top and quantile-sampled): every window's chosen
/// (focus) token, and every other token whose activation is at least `threshold` × the latent's
/// max; a corpus position seen in several windows counts once. Each counts with its activation as
/// weight. "% of activations" is the listed tokens' share of that total weight. Tokens are quoted
/// with their leading space visible (`\n` and `\t` escaped). Deterministic: ties break by text.
public final class LexicalExplainer: Explainer {
    public let source = "lexical"
    public let vocabulary: TokenVocabulary
    /// Non-focus tokens count when their activation is at least this fraction of the latent's max.
    public var threshold: Float = 0.3

    public init(vocabulary: TokenVocabulary) { self.vocabulary = vocabulary }

    /// One activating position: its token's text, the text of the token before it (nil at a window's start), its activation.
    struct Event { var token: String; var left: String?; var activation: Float }

    public func explain(_ record: LatentRecord) -> String {
        let events = self.events(record)
        let total = events.reduce(Float(0)) { $0 + $1.activation }
        guard total > 0 else { return "never fires on the corpus" }
        let tokens = Self.ranked(events.map { ($0.token, $0.activation) })
        func share(_ w: Float) -> Int { Int((w / total * 100).rounded()) }

        // The tokens: as many as it takes to reach 80% of the weight, at most 5, each with ≥ 4%.
        // Below half the weight, at least three are named, "and many others" after them.
        var listed: [(String, Float)] = []
        for t in tokens where listed.count < 5 && t.1 / total >= 0.04 {
            listed.append(t)
            if listed.reduce(0, { $0 + $1.1 }) / total >= 0.8 { break }
        }
        var text: String
        if listed.reduce(0, { $0 + $1.1 }) / total >= 0.5 {
            text = "fires on " + listed.map { Self.quote($0.0) }.joined(separator: ", ")
        } else {
            if listed.count < 3 { listed = Array(tokens.prefix(3)) }
            // The tokens lead, so the visible start of a list column tells latents apart.
            text = "fires on " + listed.map { Self.quote($0.0) }.joined(separator: ", ") + " and many others"
        }
        let listedWeight = listed.reduce(0) { $0 + $1.1 }
        text += " (\(share(listedWeight))% of activations"
        if listedWeight / total < 0.6, let (name, w) = Self.dominantClass(tokens), w / total >= 0.6 {
            text += "; \(name): \(share(w))%"
        }
        text += ")"

        // The left context, if a few tokens account for a good part of it.
        let lefts = events.compactMap { e in e.left.map { ($0, e.activation) } }
        let leftTotal = lefts.reduce(Float(0)) { $0 + $1.1 }
        if leftTotal > 0 {
            let common = Self.ranked(lefts).prefix(3).filter { $0.1 / leftTotal >= 0.15 }
            let covered = common.reduce(0) { $0 + $1.1 } / leftTotal
            if covered >= 0.25 {
                text += (covered >= 0.5 ? ", mostly after " : ", often after ") + common.map { Self.quote($0.0) }.joined(separator: " / ")
            }
        }

        let strongest = events.max { a, b in a.activation != b.activation ? a.activation < b.activation : a.token > b.token }!.token
        if !(listed.count == 1 && listed[0].0 == strongest) { text += "; strongest on " + Self.quote(strongest) }
        return text
    }

    /// The activating positions of the record's windows (see the type's comment).
    func events(_ record: LatentRecord) -> [Event] {
        var seen = Set<Int>()
        var texts: [Int: String] = [:]
        func text(_ id: Int) -> String {
            if let t = texts[id] { return t }
            let t = vocabulary.text(id)
            texts[id] = t
            return t
        }
        var out: [Event] = []
        let floor = threshold * record.max
        for w in record.windows {
            for (i, a) in w.activations.enumerated() where a > 0 && (i == w.focus || a >= floor) && i < w.tokens.count {
                guard seen.insert(w.corpusWindow << 20 | (w.start + i)).inserted else { continue }
                out.append(Event(token: text(w.tokens[i]), left: i > 0 ? text(w.tokens[i - 1]) : nil, activation: a))
            }
        }
        return out
    }

    /// Texts by total weight, heaviest first, ties by text.
    static func ranked(_ items: [(String, Float)]) -> [(String, Float)] {
        var weights: [String: Float] = [:]
        for (t, w) in items { weights[t, default: 0] += w }
        return weights.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }.map { ($0.key, $0.value) }
    }

    /// The kind of token holding the most weight: numbers, punctuation, capitalized words, line
    /// breaks or word pieces (no leading space), from each token text's total weight.
    static func dominantClass(_ tokens: [(String, Float)]) -> (String, Float)? {
        var weights: [String: Float] = [:]
        for (token, weight) in tokens {
            let t = token.trimmingCharacters(in: .whitespaces)
            let name: String?
            if token.contains("\n") && t.trimmingCharacters(in: .newlines).isEmpty { name = "line breaks" }
            else if t.isEmpty { name = nil }
            else if t.allSatisfy({ $0.isNumber || $0 == "," || $0 == "." }) && t.contains(where: \.isNumber) { name = "numbers" }
            else if t.allSatisfy({ $0.isPunctuation || $0.isSymbol }) { name = "punctuation" }
            else if t.first!.isUppercase { name = "capitalized words" }
            else if token.first!.isLetter { name = "word pieces" }
            else { name = nil }
            if let name { weights[name, default: 0] += weight }
        }
        return weights.max { $0.value != $1.value ? $0.value < $1.value : $0.key > $1.key }.map { ($0.key, $0.value) }
    }

    /// A token in double quotes, its spaces kept and `"`, `\`, newlines and tabs escaped.
    public static func quote(_ token: String) -> String {
        var out = "\""
        for c in token {
            switch c {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default: out.append(c)
            }
        }
        return out + "\""
    }
}

// MARK: - the LLM explainer's prompt

/// The LLM explainer's prompt: a system message (the same for every latent, so its KV cache is
/// computed once), a user message holding the examples, and how the model's answer begins.
///
/// Files, read from `Paths.dataDirectory/prompts/` (a built-in copy is used only when a file is
/// missing): `explainer-system.txt`, `explainer-user.txt` and `explainer-answer.txt`. Lines
/// starting with `#` are comments and dropped; the rest, trimmed, is the text. Placeholders: the
/// user message must hold `{examples}` (the formatted windows); the others take none. An unknown
/// `{name}` or a missing `{examples}` is an error naming the file. The answer start may be empty
/// (a file of comments only): the model then answers freely, up to a newline. When it ends inside
/// a double quote (an odd number of `"`), the answer ends where the model closes the quote.
public struct ExplainerPrompt: Equatable, Sendable {
    public var system: String
    public var user: String
    /// The start of the model's answer, which it continues.
    public var answer: String

    public static let systemFile = "explainer-system.txt"
    public static let userFile = "explainer-user.txt"
    public static let answerFile = "explainer-answer.txt"
    public static var defaultDirectory: URL { Paths.dataDirectory.appendingPathComponent("prompts", isDirectory: true) }

    /// The prompts Loupe ships (the same text as the files in `data/prompts/`), tuned for
    /// SmolLM2-135M-Instruct: free answers from it drift into loops ("the activation of the
    /// activation of…"), while completing `…fires on the word "` it names a marked token.
    public static let builtIn = ExplainerPrompt(
        system: """
        You explain what a neuron in a language model detects. In each example, the tokens where it fires \
        are marked <<like this>>; the list after the example gives its activation on them, from 1 (weak) \
        to 10 (strong). Say what the marked tokens have in common and what comes just before them. \
        Answer in one short line.
        """,
        user: """
        {examples}

        What does the neuron detect? Answer in one short line.
        """,
        answer: "The neuron fires on the word \"")

    public init(system: String, user: String, answer: String = "") {
        self.system = system
        self.user = user
        self.answer = answer
    }

    /// Reads the files from `directory`; a missing file falls back to the built-in text.
    public static func load(from directory: URL = defaultDirectory) throws -> ExplainerPrompt {
        func read(_ name: String, builtIn: String, required: [String], allowEmpty: Bool = false) throws -> String {
            let url = directory.appendingPathComponent(name)
            guard FileManager.default.fileExists(atPath: url.path) else { return builtIn }
            guard let data = FileManager.default.contents(atPath: url.path), let text = String(data: data, encoding: .utf8) else {
                throw EngineError("cannot read the prompt file \(url.path) as UTF-8 text")
            }
            return try parse(text, file: url.path, required: required, allowEmpty: allowEmpty)
        }
        return ExplainerPrompt(system: try read(systemFile, builtIn: builtIn.system, required: []),
                               user: try read(userFile, builtIn: builtIn.user, required: ["examples"]),
                               answer: try read(answerFile, builtIn: builtIn.answer, required: [], allowEmpty: true))
    }

    /// A prompt file's text: comment lines dropped, trimmed, placeholders checked.
    public static func parse(_ text: String, file: String, required: [String], allowEmpty: Bool = false) throws -> String {
        let body = text.split(separator: "\n", omittingEmptySubsequences: false)
            .filter { !$0.hasPrefix("#") }.joined(separator: "\n").trimmingCharacters(in: .whitespacesAndNewlines)
        guard !body.isEmpty || allowEmpty else { throw EngineError("the prompt file \(file) is empty (only comments)") }
        let found = placeholders(in: body)
        if let unknown = found.first(where: { !required.contains($0) }) {
            let allowed = required.isEmpty ? "it takes no placeholders" : "it takes " + required.map { "{\($0)}" }.joined(separator: ", ")
            throw EngineError("the prompt file \(file) has an unknown placeholder {\(unknown)}; \(allowed)")
        }
        if let missing = required.first(where: { !found.contains($0) }) {
            throw EngineError("the prompt file \(file) lacks the placeholder {\(missing)}, where the examples go")
        }
        return body
    }

    /// Whether the answer start leaves a double quote open.
    public var answerOpensQuote: Bool { answer.filter { $0 == "\"" }.count % 2 == 1 }

    /// Every `{name}` (letters, digits, underscores) in the text.
    static func placeholders(in text: String) -> [String] {
        var out: [String] = []
        var rest = text[...]
        while let open = rest.firstIndex(of: "{") {
            let after = rest[rest.index(after: open)...]
            guard let close = after.firstIndex(of: "}") else { break }
            let name = after[..<close]
            if !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) { out.append(String(name)) }
            rest = after
        }
        return out
    }

    /// The user message with the examples filled in.
    public func userMessage(examples: String) -> String { user.replacingOccurrences(of: "{examples}", with: examples) }
}

/// How the LLM explainer picks and shows a latent's windows.
public struct ExampleOptions: Equatable, Sendable {
    /// Top-activating windows shown first.
    public var topWindows = 3
    /// Quantile-sampled windows after them, one per quantile bin from the highest down, then round again.
    public var quantileWindows = 10
    /// Tokens kept before and after each window's chosen token.
    public var before = 12
    public var after = 4
    /// Tokens are marked when their activation is at least this fraction of the example's highest.
    public var markThreshold: Float = 0.3
    /// At most this many marked tokens are listed on an example's Activations line.
    public var listed = 6

    public init() {}
}

/// The examples block of the prompt, in the paper's format:
///
///     Example 1: … crossed the <<bridge>> at dawn
///     Activations: ("bridge", 10)
///
/// Adjacent marked tokens share one `<<…>>`; leading spaces stay outside the marks; newlines show
/// as `\n`; `<|…|>` of special tokens become `<…>` so the explainer's tokenizer reads them as text.
/// Activations are scaled to 0–10 of the latent's max (rounded; a firing token shows at least 1).
public enum ExplainerExamples {
    /// The windows to show, in order: top windows, then quantile bins from the highest down. A
    /// window chosen for a corpus position already shown is left out.
    public static func select(_ record: LatentRecord, options: ExampleOptions = ExampleOptions()) -> [LatentWindow] {
        var seen = Set<[Int]>()
        let usable = record.windows.filter { $0.focus < $0.tokens.count && seen.insert([$0.corpusWindow, $0.start + $0.focus]).inserted }
        let top = usable.filter { $0.kind == 0 }.prefix(options.topWindows)
        var bins = (1...10).reversed().map { bin in usable.filter { $0.kind == bin } }
        var sampled: [LatentWindow] = []
        while sampled.count < options.quantileWindows && bins.contains(where: { !$0.isEmpty }) {
            for i in bins.indices where !bins[i].isEmpty && sampled.count < options.quantileWindows {
                sampled.append(bins[i].removeFirst())
            }
        }
        return Array(top) + sampled
    }

    /// A latent activation on the 0–10 scale.
    public static func scale(_ a: Float, max: Float) -> Int {
        guard a > 0, max > 0 else { return 0 }
        return Swift.max(1, Swift.min(10, Int((a / max * 10).rounded())))
    }

    /// One example: its text line with marks, then its Activations line.
    public static func format(_ w: LatentWindow, number: Int, latentMax: Float, vocabulary: TokenVocabulary,
                              options: ExampleOptions = ExampleOptions()) -> String {
        let range = Swift.max(0, w.focus - options.before)..<Swift.min(w.tokens.count, w.focus + options.after + 1)
        let peak = range.map { w.activations[$0] }.max() ?? 0
        let marked = range.map { i in w.activations[i] > 0 && (i == w.focus || w.activations[i] >= options.markThreshold * peak) }
        var line = "", listed: [String] = []
        var i = range.lowerBound
        while i < range.upperBound {
            var j = i
            while j < range.upperBound && marked[j - range.lowerBound] == marked[i - range.lowerBound] { j += 1 }
            let text = clean(vocabulary.text(w.tokens[i..<j]))
            if marked[i - range.lowerBound] {
                let body = text.drop { $0 == " " }
                line += String(repeating: " ", count: text.count - body.count) + "<<" + body + ">>"
                for k in i..<j where listed.count < options.listed {
                    let token = clean(vocabulary.text(w.tokens[k])).trimmingCharacters(in: .whitespaces)
                    listed.append("(\(LexicalExplainer.quote(token)), \(scale(w.activations[k], max: latentMax)))")
                }
            } else {
                line += text
            }
            i = j
        }
        return "Example \(number): \(line.trimmingCharacters(in: .whitespaces))\nActivations: \(listed.joined(separator: ", "))"
    }

    /// The examples block for the given windows, numbered from 1, separated by blank lines.
    public static func block(_ windows: [LatentWindow], latentMax: Float, vocabulary: TokenVocabulary,
                             options: ExampleOptions = ExampleOptions()) -> String {
        windows.enumerated().map { format($1, number: $0 + 1, latentMax: latentMax, vocabulary: vocabulary, options: options) }
            .joined(separator: "\n\n")
    }

    /// Window text as one prompt line: newlines, carriage returns and tabs escaped, special-token pipes dropped.
    static func clean(_ s: String) -> String {
        s.replacingOccurrences(of: "\n", with: "\\n").replacingOccurrences(of: "\r", with: "\\r")
            .replacingOccurrences(of: "\t", with: " ").replacingOccurrences(of: "<|", with: "<").replacingOccurrences(of: "|>", with: ">")
    }
}

// MARK: - the LLM explainer

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
    public let source = "llm"
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
            throw EngineError("the explainer model has no ChatML tokens (<|im_start|>, <|im_end|>); give an instruct model that uses ChatML")
        }
        self.model = model
        self.tokenizer = tokenizer
        self.chat = chat ?? ChatTemplate(defaultSystemPrompt: nil)
        self.vocabulary = vocabulary
        self.prompt = prompt
        fallback = LexicalExplainer(vocabulary: vocabulary)
        stops = Set([end, tokenizer.eosId, tokenizer.id(of: "<|endoftext|>")].compactMap { $0 })
        prefix = tokenizer.encode(Self.systemText(prompt.system))
        cache = model.makeCache()
        guard prefix.count + 64 < cache.capacity else {
            throw EngineError("the explainer's system prompt is \(prefix.count) tokens, too long for the model's context of \(cache.capacity)")
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

/// `--latents SPEC`: comma-separated items, each `N`, `N-M` (inclusive), `topN` (the N latents
/// that fire most often, most first) or `all` (every latent that fires, in id order). The result
/// keeps the items' order without repeats.
public enum LatentSelection {
    public enum Item: Equatable, Sendable {
        case range(ClosedRange<Int>)
        case top(Int)
        case all
    }

    public static func parse(_ spec: String) throws -> [Item] {
        let parts = spec.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        guard !spec.trimmingCharacters(in: .whitespaces).isEmpty else { throw EngineError("--latents is empty; give e.g. 0-99,150,top500 or all") }
        return try parts.map { part in
            let bad = EngineError("--latents: '\(part)' is not N, N-M, topN or all (e.g. 0-99,150,top500)")
            if part == "all" { return .all }
            if part.hasPrefix("top") {
                guard let n = Int(part.dropFirst(3)), n > 0 else { throw bad }
                return .top(n)
            }
            let ends = part.split(separator: "-", omittingEmptySubsequences: false)
            guard (1...2).contains(ends.count), ends.allSatisfy({ !$0.isEmpty && $0.allSatisfy(\.isASCII) }),
                  let a = Int(ends[0]), let b = Int(ends[ends.count - 1]), a >= 0 else { throw bad }
            guard a <= b else { throw EngineError("--latents: the range '\(part)' runs backwards") }
            return .range(a...b)
        }
    }

    /// The latents an item list names, given every latent's firing count.
    public static func resolve(_ items: [Item], counts: [Int]) throws -> [Int] {
        var seen = Set<Int>(), out: [Int] = []
        func add(_ ids: some Sequence<Int>) { for i in ids where seen.insert(i).inserted { out.append(i) } }
        for item in items {
            switch item {
            case let .range(r):
                guard r.upperBound < counts.count else {
                    throw EngineError("--latents: latent \(r.upperBound) does not exist (this workspace has latents 0…\(counts.count - 1))")
                }
                add(r)
            case let .top(n):
                add(counts.indices.filter { counts[$0] > 0 }.sorted { counts[$0] != counts[$1] ? counts[$0] > counts[$1] : $0 < $1 }.prefix(n))
            case .all:
                add(counts.indices.filter { counts[$0] > 0 })
            }
        }
        return out
    }

    public static func resolve(_ spec: String, counts: [Int]) throws -> [Int] { try resolve(parse(spec), counts: counts) }
}

// MARK: - the bulk run

/// Runs an explainer over many latents, resumably.
///
/// Per latent, from its history in the store:
/// - its last version came from a person (any source but "llm" and "lexical": "user", "import",
///   "revert", or a cleared explanation) → kept: bulk explainers never replace a person's own
///   explanation, not even with `redo`;
/// - it already has a version from this explainer's source → skipped (so a stopped run resumes),
///   unless `redo`;
/// - otherwise it is explained and saved at once (becoming current, also over the other
///   explainer's version, which stays in the history).
/// Latents that never fire are skipped. `reporter.shouldStop` is polled between latents.
public enum ExplainJob {
    /// Sources written by bulk explainers; every other source is a person's.
    public static let machineSources: Set<String> = ["llm", "lexical"]

    public enum Decision: Equatable, Sendable { case explain, done, personal }

    public static func decision(history: [ExplanationVersion], source: String, redo: Bool) -> Decision {
        if let last = history.last, !machineSources.contains(last.source) { return .personal }
        if !redo && history.contains(where: { $0.source == source }) { return .done }
        return .explain
    }

    public struct Summary: Equatable, Sendable {
        public var source: String
        public var explained = 0
        /// Had this source's explanation already.
        public var done = 0
        /// Kept a person's explanation.
        public var personal = 0
        /// Never fire.
        public var dead = 0
        public var seconds = 0.0
        /// Stopped before the end (the rest is left for the next run).
        public var stopped = false
        public var skipped: Int { done + personal + dead }
    }

    /// Explains `latents` in order; `onExplained(latent, text)` sees each explanation once saved.
    public static func run(latents: [Int], explainer: Explainer, records: (Int) throws -> LatentRecord, store: ExplanationStore,
                           redo: Bool, reporter: BuildReporter, onExplained: (Int, String) -> Void = { _, _ in }) throws -> Summary {
        let start = Clock.now
        var summary = Summary(source: explainer.source)
        var todo: [Int] = []
        for latent in latents {
            switch decision(history: store.history(latent), source: explainer.source, redo: redo) {
            case .explain: todo.append(latent)
            case .done: summary.done += 1
            case .personal: summary.personal += 1
            }
        }
        let step = "explain (\(explainer.source))"
        reporter.begin(step, total: todo.count, unit: "latents")
        for (i, latent) in todo.enumerated() {
            if reporter.shouldStop { summary.stopped = true; break }
            let record = try records(latent)
            if record.count == 0 || record.windows.isEmpty {
                summary.dead += 1
            } else {
                let text = try explainer.explain(record)
                try store.save(latent: latent, text: text, source: explainer.source)
                summary.explained += 1
                onExplained(latent, text)
            }
            reporter.advance(i + 1, detail: "latent \(latent)")
        }
        summary.seconds = Clock.now - start
        let rate = summary.explained > 0 ? String(format: ", %.3f s per latent", summary.seconds / Double(summary.explained)) : ""
        reporter.end(step, summary: "\(summary.explained) explained\(rate)" + (summary.stopped ? " (stopped; run again to continue)" : ""))
        return summary
    }

    /// As above, reading records from the latent cache (the last few block files decoded are kept).
    public static func run(latents: [Int], explainer: Explainer, cache: LatentCache, store: ExplanationStore, redo: Bool,
                           reporter: BuildReporter, onExplained: (Int, String) -> Void = { _, _ in }) throws -> Summary {
        var blocks: [(file: String, records: [LatentRecord])] = []
        let records = { (latent: Int) throws -> LatentRecord in
            guard latent >= 0 && latent < cache.manifest.latents else { return try cache.record(latent) }
            let file = cache.manifest.files[latent / cache.manifest.blockSize]
            if let i = blocks.firstIndex(where: { $0.file == file }) {
                let block = blocks.remove(at: i)
                blocks.append(block)
            } else {
                blocks.append((file, try cache.records(in: file)))
                if blocks.count > 4 { blocks.removeFirst() }
            }
            guard let r = blocks.last!.records.first(where: { $0.latent == latent }) else { return try cache.record(latent) }
            return r
        }
        return try run(latents: latents, explainer: explainer, records: records, store: store, redo: redo, reporter: reporter,
                       onExplained: onExplained)
    }
}
