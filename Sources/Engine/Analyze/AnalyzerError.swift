import Foundation

/// What the context analyzer refuses: a workspace without a transcoder, tokens the model lacks.
public enum AnalyzerError: Error, Equatable, CustomStringConvertible {
    /// A workspace without a trained transcoder.
    case noTranscoder(workspace: String)
    /// A token id outside the model's vocabulary.
    case tokenOutOfVocabulary(Int, vocabulary: Int)

    public var description: String {
        switch self {
        case let .noTranscoder(workspace): return "\(workspace) has no transcoder yet; run `loupe train` or `loupe build`"
        case let .tokenOutOfVocabulary(token, vocabulary): return "token id \(token) is outside the model's vocabulary of \(vocabulary)"
        }
    }
}
