/// A tokenizer that cannot be built from the vocabulary, merges or settings it was given.
/// The message names the token, merge or setting at fault.
public struct TokenizerError: Error, Equatable, CustomStringConvertible {
    /// What is wrong, in a sentence a user can act on.
    public let message: String

    /// Makes an error carrying `message`.
    public init(_ message: String) { self.message = message }

    public var description: String { message }
}
