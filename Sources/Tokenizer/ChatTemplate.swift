import Formats

/// The ChatML prompt format, as SmolLM2's Jinja chat template writes it.
///
/// Each message becomes `<|im_start|>ROLE\nCONTENT<|im_end|>\n`. When the first message is not a
/// system message, the template's default system message comes first; a generation prompt
/// `<|im_start|>assistant\n` may follow. Only the template's default system prompt is read from
/// it: the rest of the format is fixed.
public struct ChatTemplate: Sendable, Equatable {
    /// The system message inserted when the conversation does not start with one, if any.
    public let defaultSystemPrompt: String?

    /// A ChatML template with the given default system prompt (nil: none is inserted).
    public init(defaultSystemPrompt: String?) {
        self.defaultSystemPrompt = defaultSystemPrompt
    }

    /// Reads a Jinja chat template. Throws `TokenizerError` unless it is ChatML (it must use
    /// `<|im_start|>` and `<|im_end|>`). A literal `<|im_start|>system\n…<|im_end|>` in it is
    /// taken as the default system prompt.
    public init(jinja template: String) throws {
        guard template.contains("<|im_start|>"), template.contains("<|im_end|>") else {
            throw TokenizerError("the chat template is not ChatML (it never writes <|im_start|> and <|im_end|>)")
        }
        defaultSystemPrompt = Self.defaultSystem(in: template)
    }

    /// Reads `tokenizer.chat_template` from a GGUF model (a missing key throws `FormatError`).
    public init(gguf f: GGUFFile) throws {
        do {
            try self.init(jinja: try f.string("tokenizer.chat_template"))
        } catch let e as TokenizerError {
            throw TokenizerError("\(f.path): \(e.message)")
        }
    }

    /// The prompt text for `messages`, ending with `<|im_start|>assistant\n` when
    /// `addGenerationPrompt` is set — character for character what the Jinja template renders.
    public func format(_ messages: [(role: String, content: String)], addGenerationPrompt: Bool) -> String {
        var out = ""
        if let system = defaultSystemPrompt, let first = messages.first, first.role != "system" {
            out += "<|im_start|>system\n\(system)<|im_end|>\n"
        }
        for m in messages {
            out += "<|im_start|>\(m.role)\n\(m.content)<|im_end|>\n"
        }
        if addGenerationPrompt { out += "<|im_start|>assistant\n" }
        return out
    }

    /// The text between a literal `<|im_start|>system` + newline and the next `<|im_end|>`, with
    /// the newline written either as a character or as the Jinja escape `\n`.
    static func defaultSystem(in template: String) -> String? {
        for opener in ["<|im_start|>system\n", "<|im_start|>system\\n"] {
            guard let start = template.range(of: opener) else { continue }
            guard let end = template.range(of: "<|im_end|>", range: start.upperBound..<template.endIndex) else { return nil }
            let body = String(template[start.upperBound..<end.lowerBound])
            // A system block built from a message's content is no default prompt.
            if ["{{", "{%", "message[", "message."].contains(where: body.contains) { return nil }
            return unescape(body)
        }
        return nil
    }

    /// Undoes the backslash escapes a Jinja string literal may hold.
    static func unescape(_ s: String) -> String {
        var out = ""
        var escaped = false
        for c in s {
            if escaped {
                switch c {
                case "n": out.append("\n")
                case "t": out.append("\t")
                case "r": out.append("\r")
                default: out.append(c)
                }
                escaped = false
            } else if c == "\\" {
                escaped = true
            } else {
                out.append(c)
            }
        }
        return out
    }
}
