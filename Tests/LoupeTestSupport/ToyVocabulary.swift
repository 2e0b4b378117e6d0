/// A byte-level BPE vocabulary for the tiny test models: byte tokens spelled in GPT-2's alphabet,
/// then the results of `merges` in order, then control tokens. Two sizes: `bytes` (all 256 bytes,
/// id = byte, English merges, the ChatML tokens) and `letters` (50 tokens, ids below 50 only).
public struct ToyVocabulary: Sendable {
    public private(set) var tokens: [String]
    /// GGUF token types: 1 normal, 3 control.
    public let types: [Int]
    public let merges: [String]

    /// `<|endoftext|>` ends each corpus document; the other two frame ChatML turns.
    public static let specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

    /// All 256 bytes, frequent English pairs (and "dog", "xample") as merges, and `specials`.
    public static let bytes = ToyVocabulary(bytes: Array(0..<256), merges: [
        "Ġ t", "h e", "Ġt he", "Ġ a", "i n", "e r", "o n", "a n", "r e", "e n", "Ġ s", "Ġ o", "a t", "o r",
        "e s", "Ġ w", "Ġa n", "Ġan d", "Ġ c", "i s", "e d", "Ġ p", "i t", "a l", "Ġ f", "Ġo f", "Ġt h",
        "Ġth at", "Ġ n", "Ġ d", "i on", "Ġ l", "Ġ i", "Ġi n", "Ġ b", "Ġ h", "Ġ m", "o u", "l l", "in g",
        "o g", "Ġd og", "x a", "xa m", "xam p", "l e",
    ], specials: specials)

    /// 48 letters, "ab" and "abc": 50 tokens and no control tokens.
    public static let letters = ToyVocabulary(bytes: Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUV".utf8).map(Int.init),
                                              merges: ["a b", "ab c"], specials: [])

    /// GPT-2's printable spelling of each byte: printable Latin-1 bytes stand for themselves, the
    /// other 68 take U+0100 onwards in byte order (so a space is "Ġ", a newline "Ċ").
    static let byteScalars: [Unicode.Scalar] = {
        var next: UInt32 = 256
        return (0..<256).map { b in
            if (0x21...0x7E).contains(b) || (0xA1...0xAC).contains(b) || (0xAE...0xFF).contains(b) { return Unicode.Scalar(UInt32(b))! }
            defer { next += 1 }
            return Unicode.Scalar(next)!
        }
    }()

    init(bytes: [Int], merges: [String], specials: [String]) {
        var tokens = bytes.map { String(Self.byteScalars[$0]) }
        for merge in merges {
            let parts = merge.split(separator: " ").map(String.init)
            precondition(parts.count == 2 && tokens.contains(parts[0]) && tokens.contains(parts[1]), "merge \(merge) needs both parts first")
            if !tokens.contains(parts[0] + parts[1]) { tokens.append(parts[0] + parts[1]) }
        }
        self.types = Array(repeating: 1, count: tokens.count) + Array(repeating: 3, count: specials.count)
        self.tokens = tokens + specials
        self.merges = merges
    }

    public var count: Int { tokens.count }

    /// The id of a control token, if this vocabulary has it.
    func id(of special: String) -> Int? { types.indices.first { types[$0] == 3 && tokens[$0] == special } }

    /// This vocabulary with token `id` spelled `text` instead (e.g. to lose a single-token digit).
    public func respelling(_ id: Int, as text: String) -> ToyVocabulary {
        var v = self
        v.tokens[id] = text
        return v
    }
}
