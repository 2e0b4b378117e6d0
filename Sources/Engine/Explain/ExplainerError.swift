import Foundation

/// What keeps the LLM explainer from running: a prompt file it cannot use, a model without ChatML.
public enum ExplainerError: Error, Equatable, CustomStringConvertible {
    /// A prompt file that is not UTF-8 text.
    case unreadablePrompt(path: String)
    /// A prompt file with only comments.
    case emptyPrompt(path: String)
    /// A placeholder the file does not take (`allowed`: those it does).
    case unknownPlaceholder(path: String, name: String, allowed: [String])
    /// A required placeholder the file lacks.
    case missingPlaceholder(path: String, name: String)
    /// A model without `<|im_start|>` and `<|im_end|>`.
    case noChatML
    /// A system prompt that leaves no room in the model's context.
    case systemPromptTooLong(tokens: Int, context: Int)

    public var description: String {
        switch self {
        case let .unreadablePrompt(path): return "cannot read the prompt file \(path) as UTF-8 text"
        case let .emptyPrompt(path): return "the prompt file \(path) is empty (only comments)"
        case let .unknownPlaceholder(path, name, allowed):
            let takes = allowed.isEmpty ? "it takes no placeholders" : "it takes " + allowed.map { "{\($0)}" }.joined(separator: ", ")
            return "the prompt file \(path) has an unknown placeholder {\(name)}; \(takes)"
        case let .missingPlaceholder(path, name): return "the prompt file \(path) lacks the placeholder {\(name)}, where the examples go"
        case .noChatML:
            return "the explainer model has no ChatML tokens (<|im_start|>, <|im_end|>); give an instruct model that uses ChatML"
        case let .systemPromptTooLong(tokens, context):
            return "the explainer's system prompt is \(tokens) tokens, too long for the model's context of \(context)"
        }
    }
}
