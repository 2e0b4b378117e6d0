import Foundation
import Storage
import Tokenizer

/// A simulator prompt template: the text files `data/prompts/simulator-all.txt` and
/// `simulator-last.txt`, which a user can edit.
///
/// Format (the files' comment headers say the same): lines starting with `#` before the first
/// message are comments; a message starts with a line `=== system`, `=== user` or `=== assistant`
/// and runs to the next one (trailing blank lines dropped). Before the first message, a line
/// `placeholder: TEXT` sets what fills an all-at-once row where its digit would be (default
/// "unknown"). Two placeholders, each exactly once:
/// `{{explanation}}`, then `{{context}}`, which must sit in the last message. Everything before
/// `{{context}}` is the shared prefix of every prompt made for one explanation.
public struct SimulatorTemplate: Equatable, Sendable {
    public struct Message: Equatable, Sendable {
        public var role: String
        public var content: String
    }

    public static let roles = ["system", "user", "assistant"]
    public static let explanationPlaceholder = "{{explanation}}"
    public static let contextPlaceholder = "{{context}}"

    public let messages: [Message]
    /// What an all-at-once row holds in place of its digit.
    public let placeholder: String
    /// The file it was read from, or "built-in".
    public let source: String

    /// `simulator-all.txt` or `simulator-last.txt`.
    public static func fileName(_ mode: SimulationMode) -> String { "simulator-\(mode.rawValue).txt" }

    /// `data/prompts`.
    public static var directory: URL { Paths.dataDirectory.appendingPathComponent("prompts", isDirectory: true) }

    /// Reads the mode's template from `directory`; the built-in copy only when the file is missing.
    public static func load(_ mode: SimulationMode, directory: URL = directory) throws -> SimulatorTemplate {
        let url = directory.appendingPathComponent(fileName(mode))
        guard FileManager.default.fileExists(atPath: url.path) else {
            return try SimulatorTemplate(parsing: builtIn(mode), source: "built-in")
        }
        guard let data = FileManager.default.contents(atPath: url.path), let text = String(data: data, encoding: .utf8) else {
            throw SimulatorError.unreadableTemplate(path: url.path)
        }
        return try SimulatorTemplate(parsing: text, source: url.path)
    }

    /// Parses and checks a template; errors name `source` and the line or placeholder at fault.
    public init(parsing text: String, source: String) throws {
        func fail(_ why: String) -> SimulatorError { .badTemplate(source: source, reason: why) }
        var messages: [Message] = []
        var placeholder = "unknown"
        var lines: [Substring] = []
        func close() {
            guard !messages.isEmpty else { return }
            while let last = lines.last, last.allSatisfy(\.isWhitespace) { lines.removeLast() }
            messages[messages.count - 1].content = lines.joined(separator: "\n")
            lines = []
        }
        let text = text.replacingOccurrences(of: "\r\n", with: "\n")
        for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            if line.hasPrefix("=== ") {
                let role = line.dropFirst(4).trimmingCharacters(in: .whitespaces)
                guard Self.roles.contains(role) else { throw fail("line \(n + 1): unknown role '\(role)' (use system, user or assistant)") }
                close()
                messages.append(Message(role: role, content: ""))
            } else if messages.isEmpty && line.hasPrefix("placeholder:") {
                placeholder = line.dropFirst("placeholder:".count).trimmingCharacters(in: .whitespaces)
                guard !placeholder.isEmpty, !placeholder.contains("\t") else { throw fail("line \(n + 1): the placeholder must be some text without tabs") }
            } else if messages.isEmpty {
                guard line.hasPrefix("#") || line.allSatisfy(\.isWhitespace) else {
                    throw fail("line \(n + 1) is neither a # comment, a placeholder: setting nor a message header (=== system, === user, === assistant)")
                }
            } else {
                lines.append(line)
            }
        }
        close()
        guard !messages.isEmpty else { throw fail("no messages (start one with a line '=== system' or '=== user')") }
        let all = messages.map(\.content).joined(separator: "\n")
        for p in [Self.explanationPlaceholder, Self.contextPlaceholder] {
            let count = all.components(separatedBy: p).count - 1
            guard count == 1 else { throw fail(count == 0 ? "the placeholder \(p) is missing" : "the placeholder \(p) appears \(count) times, not once") }
        }
        if let unknown = all.matches(of: /\{\{[^}]*\}\}/).map({ String($0.output) }).first(where: { $0 != Self.explanationPlaceholder && $0 != Self.contextPlaceholder }) {
            throw fail("unknown placeholder \(unknown) (there are {{explanation}} and {{context}})")
        }
        guard messages.last!.content.contains(Self.contextPlaceholder) else { throw fail("{{context}} must be in the last message") }
        guard all.range(of: Self.explanationPlaceholder)!.lowerBound < all.range(of: Self.contextPlaceholder)!.lowerBound else {
            throw fail("{{explanation}} must come before {{context}}, which starts the per-context part")
        }
        self.messages = messages
        self.placeholder = placeholder
        self.source = source
    }
}

/// A template made ready for one explanation and one model: the shared prefix as tokens, and the
/// per-context suffixes.
///
/// The prompt of a context is `prefix + suffix` in token space. The messages are written with the
/// model's chat template (ChatML for SmolLM2; without one, ChatML with no default system prompt);
/// a last assistant message stays open (the model writes there), any other last message is closed
/// and followed by the assistant's turn. Context text is tokenized without special tokens, so a
/// `<|endoftext|>` inside a context reads as plain text.
///
/// - All at once: the suffix holds one row per token, `token\tPLACEHOLDER\n` (newlines, tabs and carriage
///   returns inside a token escaped as `\n`, `\t`, `\r`); each row's tab is a readout: the logits
///   there predict that token's digit. The row is tokenized as its text, then the tab token, the
///   placeholder and the newline token, so a readout is always at a tab.
/// - Last token: one suffix per position, the context up to that token with it marked
///   `<<like this>>` (leading whitespace outside the marks), then the rest of the template; the
///   readout is the suffix's last token.
public struct SimulatorPrompt: Sendable {
    /// One context's part of a prompt.
    public struct Suffix: Equatable, Sendable {
        public var text: String
        public var tokens: [Int]
        /// Indices in `tokens` whose next-token logits give a digit, one per simulated token.
        public var readouts: [Int]
    }

    public let mode: SimulationMode
    public let prefixText: String
    public let prefix: [Int]
    /// The template's text after `{{context}}`, with the end of the chat turn.
    public let tailText: String
    let tail: [Int]
    let tokenizer: BPETokenizer
    /// What fills a row in place of its digit (the template's `placeholder:`).
    public let placeholder: String
    let tab: Int, newline: Int
    let placeholderTokens: [Int]

    /// Fills `template` with `explanation` (trimmed, its newlines turned into spaces) and
    /// tokenizes the prefix. Throws if the tokenizer has no single token for a tab or a newline.
    public init(template: SimulatorTemplate, mode: SimulationMode, explanation: String, tokenizer: BPETokenizer,
                chat: ChatTemplate?) throws {
        let sentinel = "\u{1}CONTEXT\u{1}"
        var messages = template.messages.map { (role: $0.role, content: $0.content) }
        let last = messages.count - 1
        messages[last].content = messages[last].content.replacingOccurrences(of: SimulatorTemplate.contextPlaceholder, with: sentinel)
        let chat = chat ?? ChatTemplate(defaultSystemPrompt: nil)
        let text = messages[last].role == "assistant"
            ? chat.format(Array(messages.dropLast()), addGenerationPrompt: true) + messages[last].content
            : chat.format(messages, addGenerationPrompt: true)
        let parts = text.components(separatedBy: sentinel)
        precondition(parts.count == 2, "the template was checked to hold {{context}} once")
        let flat = explanation.trimmingCharacters(in: .whitespacesAndNewlines)
            .split(whereSeparator: \.isNewline).joined(separator: " ")
        prefixText = parts[0].replacingOccurrences(of: SimulatorTemplate.explanationPlaceholder, with: flat)
        tailText = parts[1]
        self.mode = mode
        self.tokenizer = tokenizer
        prefix = tokenizer.encode(prefixText)
        tail = tailText.isEmpty ? [] : tokenizer.encode(tailText)
        func single(_ s: String, _ name: String) throws -> Int {
            let ids = tokenizer.encode(s, parseSpecial: false)
            guard ids.count == 1 else { throw SimulatorError.noSingleToken(name: name) }
            return ids[0]
        }
        tab = try single("\t", "tab")
        newline = try single("\n", "newline")
        placeholder = template.placeholder
        placeholderTokens = tokenizer.encode(placeholder, parseSpecial: false)
    }

    /// The whole prompt's text for one suffix (for display; the tokens are `prefix + suffix.tokens`).
    public func text(_ suffix: Suffix) -> String { prefixText + suffix.text }

    /// Every suffix of a context: one for all at once, one per token for the last-token layout.
    public func suffixes(_ context: SimulationContext) -> [Suffix] {
        switch mode {
        case .allAtOnce: return context.tokens.isEmpty ? [] : [rows(context)]
        case .lastToken: return context.texts.indices.map { judging(context, position: $0) }
        }
    }

    /// All at once: one row per token, each read at its tab.
    public func rows(_ context: SimulationContext) -> Suffix {
        var s = Suffix(text: "", tokens: [], readouts: [])
        for t in context.texts {
            let shown = Self.escaped(t)
            s.text += shown + "\t" + placeholder + "\n"
            if !shown.isEmpty { s.tokens += tokenizer.encode(shown, parseSpecial: false) }
            s.readouts.append(s.tokens.count)
            s.tokens += [tab] + placeholderTokens + [newline]
        }
        s.text += tailText
        s.tokens += tail
        return s
    }

    /// Last token: the context up to `position`, that token marked, then the template's tail.
    public func judging(_ context: SimulationContext, position: Int) -> Suffix {
        let text = Self.marked(context.texts, position: position)
        let tokens = tokenizer.encode(text, parseSpecial: false) + tail
        return Suffix(text: text + tailText, tokens: tokens, readouts: [tokens.count - 1])
    }

    /// The texts up to `position`, that one written `<<like this>>` with its leading whitespace
    /// before the marks (a token of whitespace alone is marked whole).
    public static func marked(_ texts: [String], position: Int) -> String {
        let token = texts[position]
        let body = token.drop(while: \.isWhitespace)
        let lead = body.isEmpty ? "" : token.prefix(token.count - body.count)
        return texts[..<position].joined() + lead + "<<" + (body.isEmpty ? token[...] : body) + ">>"
    }

    /// A token's text as a row shows it: newlines, tabs and carriage returns as backslash escapes.
    public static func escaped(_ text: String) -> String {
        var out = ""
        for c in text.unicodeScalars {
            switch c {
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }
}



extension SimulatorTemplate {
    /// The shipped templates (`data/prompts/`), used only when the file is missing; a test keeps
    /// them equal to the files.
    public static func builtIn(_ mode: SimulationMode) -> String {
        switch mode {
        case .allAtOnce: return builtInAll
        case .lastToken: return builtInLast
        }
    }

    static let builtInAll =
        """
        # Loupe's simulator prompt, "all at once" layout (`loupe simulate --mode all`).
        #
        # Edit freely: Loupe reads this file each time it simulates (a missing file falls back to the
        # built-in copy in Sources/Engine/Simulate/SimulatorPrompt.swift). Lines starting with '#' before the first
        # message are comments. A message starts with a line "=== system", "=== user" or "=== assistant"
        # and runs to the next such line; Loupe writes the messages in the simulator model's chat format
        # (ChatML for SmolLM2-135M-Instruct).
        #
        # Placeholders, each exactly once, {{explanation}} before {{context}}:
        #   {{explanation}}  the explanation being simulated.
        #   {{context}}      the text to simulate, one token per row: the token, a tab, the placeholder
        #                    and a newline (a newline, tab or carriage return inside a token is written
        #                    \\n, \\t, \\r). A token's activation is the expected digit the model predicts
        #                    right after its tab, so one forward pass reads every row. It must be in the
        #                    last message, which is the assistant's and is left open: the rows are where
        #                    the model writes.
        # Everything before {{context}} is the shared prefix: it is computed once per explanation and
        # reused (through the KV cache) for every context, so keep the context-specific part after it.
        # End the text just before {{context}} with a newline, not a space, so the context's first token
        # is tokenized as it would be in running text.
        #
        # "placeholder: TEXT" (before the first message) sets what fills the rows in place of the digits
        # the model has not written; without it, "unknown" (OpenAI's and delphi's choice). "0" is used
        # here: with SmolLM2-135M-Instruct, "unknown" rows left too little probability on digits (mean
        # 0.06) and no signal, while "0" rows kept ~0.9 on digits and a right explanation correlated
        # better than a wrong one on 8 of 8 single-word latents of the demo workspace.
        #
        # The example rows are "token<TAB>digit": keep the tab characters. simulator-last.txt has the same
        # instructions, examples and explanation wording in the "last token" layout; change both alike so
        # the two modes stay comparable.
        placeholder: 0
        === system
        You predict how strongly a feature of a language model responds to each token of a text.
        === user
        A feature responds to particular tokens of a text and stays silent on the others, which are most tokens. From the explanation of a feature, give its activation on a token as one digit: 0 when it is silent, up to 9 when it is as strong as it gets.

        Write each token of the text on its own line, then a tab, then its activation.

        Explanation: fires on " dog", " dogs" (90% of activations)
        === assistant
        The\t0
         farmer\t0
         fed\t0
         the\t0
         dog\t9
         and\t0
         the\t0
         two\t0
         cats\t0
        .\t0
        === user
        Explanation: fires on "," (95% of activations), mostly after a word
        === assistant
        Yes\t0
        ,\t9
         sir\t0
        ,\t9
         we\t0
         came\t0
         home\t0
        .\t0
        === user
        Explanation: the word "river"
        === assistant
        The\t0
         old\t0
         river\t9
         was\t0
         cold\t0
         and\t0
         deep\t0
        .\t0
        === user
        Explanation: {{explanation}}
        === assistant
        {{context}}

        """

    static let builtInLast =
        """
        # Loupe's simulator prompt, "last token" layout (`loupe simulate --mode last`, the paper's protocol).
        #
        # Edit freely: Loupe reads this file each time it simulates (a missing file falls back to the
        # built-in copy in Sources/Engine/Simulate/SimulatorPrompt.swift). Lines starting with '#' before the first
        # message are comments. A message starts with a line "=== system", "=== user" or "=== assistant"
        # and runs to the next such line; Loupe writes the messages in the simulator model's chat format
        # (ChatML for SmolLM2-135M-Instruct).
        #
        # Placeholders, each exactly once, {{explanation}} before {{context}}:
        #   {{explanation}}  the explanation being simulated.
        #   {{context}}      the text up to the judged token, which is marked <<like this>> (leading
        #                    whitespace stays outside the marks). One prompt per token of a context; the
        #                    token's activation is the expected digit the model predicts next, where the
        #                    prompt ends. It must be in the last message; a user message is closed and
        #                    followed by the assistant's turn, where the model answers.
        # Everything before {{context}} is the shared prefix: it is computed once per explanation and
        # reused (through the KV cache) for every context, so keep the context-specific part after it.
        # End the text just before {{context}} with a newline, not a space, so the context's first token
        # is tokenized as it would be in running text.
        #
        # simulator-all.txt has the same instructions, examples and explanation wording in the
        # "all at once" layout; change both alike so the two modes stay comparable.
        === system
        You predict how strongly a feature of a language model responds to each token of a text.
        === user
        A feature responds to particular tokens of a text and stays silent on the others, which are most tokens. From the explanation of a feature, give its activation on a token as one digit: 0 when it is silent, up to 9 when it is as strong as it gets.

        The last token of the text is marked <<like this>>: answer with its activation.

        Explanation: fires on " dog", " dogs" (90% of activations)
        Text:
        The farmer fed the <<dog>>
        === assistant
        9
        === user
        Explanation: fires on " dog", " dogs" (90% of activations)
        Text:
        The farmer <<fed>>
        === assistant
        0
        === user
        Explanation: fires on "," (95% of activations), mostly after a word
        Text:
        Yes<<,>>
        === assistant
        9
        === user
        Explanation: fires on "," (95% of activations), mostly after a word
        Text:
        Yes, <<sir>>
        === assistant
        0
        === user
        Explanation: the word "river"
        Text:
        The old <<river>>
        === assistant
        9
        === user
        Explanation: the word "river"
        Text:
        The old river <<was>>
        === assistant
        0
        === user
        Explanation: {{explanation}}
        Text:
        {{context}}

        """
}
