import Foundation
import Storage
import Tokenizer

/// One active latent at one token.
public struct LatentActivation: Equatable, Sendable {
    public var latent: Int
    public var value: Float

    public init(latent: Int, value: Float) {
        self.latent = latent
        self.value = value
    }
}

/// The transcoder's latents on every token of a text (the explorer's context lab).
public struct ContextAnalysis: Equatable, Sendable {
    public var tokens: [Int]
    /// Each token as the tokenizer displays it (`·` for spaces, `↵` for newlines).
    public var tokenTexts: [String]
    /// Per token, the transcoder's k active latents, values descending (zero values dropped).
    public var codes: [[LatentActivation]]
    /// The text had more tokens than asked for; only the first ones were analysed.
    public var truncated: Bool

    public init(tokens: [Int], tokenTexts: [String], codes: [[LatentActivation]], truncated: Bool) {
        self.tokens = tokens
        self.tokenTexts = tokenTexts
        self.codes = codes
        self.truncated = truncated
    }

    public static let empty = ContextAnalysis(tokens: [], tokenTexts: [], codes: [], truncated: false)

    /// The latent's activation at every token (0 where it is not among the k active).
    public func activations(of latent: Int) -> [Float] {
        codes.map { row in row.first(where: { $0.latent == latent })?.value ?? 0 }
    }
}
