import Foundation
import Kernels
import Model
import Storage
import Tokenizer

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
                throw ExplainerError.unreadablePrompt(path: url.path)
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
        guard !body.isEmpty || allowEmpty else { throw ExplainerError.emptyPrompt(path: file) }
        let found = placeholders(in: body)
        if let unknown = found.first(where: { !required.contains($0) }) {
            throw ExplainerError.unknownPlaceholder(path: file, name: unknown, allowed: required)
        }
        if let missing = required.first(where: { !found.contains($0) }) {
            throw ExplainerError.missingPlaceholder(path: file, name: missing)
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
