import Foundation

/// What the rewrite experiment and its splice refuse: options out of range, a workspace without
/// explanations, a transcoder that does not fit the model, windows that do not fit its batch.
public enum RewriteError: Error, Equatable, CustomStringConvertible {
    /// Fractions empty or outside (0, 1].
    case badFractions
    /// Fewer than one window asked for.
    case noWindows
    /// Windows shorter than 2 tokens.
    case windowsTooShort
    /// No selection or no calibration chosen.
    case nothingChosen
    /// Windows longer than the corpus's.
    case windowsTooLong(length: Int, corpusLength: Int)
    /// More windows than the workspace holds out.
    case tooManyWindows(available: Int)
    /// No latent has an explanation.
    case noExplanations
    /// A layer outside the model's 0..<layers.
    case layerOutOfRange(Int, layers: Int)
    /// A transcoder of another width than the model.
    case widthMismatch(transcoder: Int, model: Int)
    /// A window that is empty or longer than the model's batch.
    case windowDoesNotFit(tokens: Int, batch: Int)
    /// A latent outside the transcoder's 0..<latents.
    case latentOutOfRange(Int, latents: Int)
    /// Simulated values not one per window token.
    case valuesMismatch(latent: Int)

    public var description: String {
        switch self {
        case .badFractions: return "fractions must lie in (0, 1], e.g. 0.01,0.1,1"
        case .noWindows: return "the experiment needs at least 1 window"
        case .windowsTooShort: return "windows need at least 2 tokens (one prediction)"
        case .nothingChosen: return "choose at least one selection (score, random) and calibration (none, quantile)"
        case let .windowsTooLong(length, corpusLength):
            return "windows of \(length) tokens are longer than the corpus's \(corpusLength)-token windows"
        case let .tooManyWindows(available): return "the workspace has \(available) held-out windows; ask for at most that many"
        case .noExplanations:
            return "no latent has an explanation yet; write them with `loupe explain` (the lexical explainer takes seconds)"
        case let .layerOutOfRange(layer, layers): return "layer \(layer) is outside the model's layers 0…\(layers - 1)"
        case let .widthMismatch(transcoder, model):
            return "the transcoder takes inputs of size \(transcoder), but the model's hidden size is \(model)"
        case let .windowDoesNotFit(tokens, batch):
            return "a window of \(tokens) tokens does not fit the model's batch of \(batch) (windows must hold 1…\(batch) tokens)"
        case let .latentOutOfRange(latent, latents): return "latent \(latent) is outside the transcoder's \(latents)"
        case let .valuesMismatch(latent): return "one simulated value per window token is needed for latent \(latent)'s loss delta"
        }
    }
}
