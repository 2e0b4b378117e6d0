import Foundation
import Kernels
import Model
import Storage
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
    var source: ExplanationSource { get }
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
