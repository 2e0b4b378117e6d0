import Foundation
import Storage

/// What an explanation says about tokens in so many words: the strings it quotes and the words it
/// uses, and per token of a context whether the token is one of them. The trained simulator reads
/// these beside the model's hidden states; the *lexical match* control is the first of them alone.
///
/// - Quoted strings: every `"…"` in the explanation (`\"`, `\\`, `\n`, `\t`, `\r` escapes read as
///   the lexical explainer writes them), normalised: whitespace trimmed, lowercased.
/// - Words: the explanation's runs of letters and digits, lowercased, without the words every
///   explanation template uses ("fires", "on", "tokens", …, `templateWords`).
/// A token matches a string when its text, trimmed and lowercased, equals it.
public struct ExplanationMatch: Equatable, Sendable {
    public let quoted: [String]
    public let quotedSet: Set<String>
    public let words: Set<String>

    /// The words of the explainers' own phrasing, which say nothing about a particular latent.
    public static let templateWords: Set<String> = [
        "fires", "fire", "firing", "on", "many", "different", "tokens", "token", "most", "often", "mostly", "after", "before",
        "of", "activations", "activation", "strongest", "the", "a", "an", "and", "or", "in", "word", "words", "is", "it",
        "this", "that", "feature", "latent", "text", "such", "as", "like", "to", "with", "when", "are", "for", "by",
        "others", "other", "among",
    ]

    /// The features it gives each token, in this order (`features(texts:)`).
    public static let featureNames = ["quoted", "first_quoted", "after_quoted", "word", "part_of_quoted"]

    public init(explanation: String) {
        var quoted: [String] = []
        var current: String?
        var escape = false
        for c in explanation {
            guard var s = current else {
                if c == "\"" { current = "" }
                continue
            }
            if escape {
                switch c {
                case "n": s.append("\n")
                case "t": s.append("\t")
                case "r": s.append("\r")
                default: s.append(c)
                }
                escape = false
                current = s
            } else if c == "\\" {
                escape = true
            } else if c == "\"" {
                let n = Self.normalise(s)
                if !n.isEmpty || !s.isEmpty { quoted.append(n.isEmpty ? s : n) }
                current = nil
            } else {
                s.append(c)
                current = s
            }
        }
        self.quoted = quoted
        quotedSet = Set(quoted)
        var words = Set<String>()
        var word = ""
        for c in explanation.lowercased() + " " {
            if c.isLetter || c.isNumber { word.append(c); continue }
            if !word.isEmpty, !Self.templateWords.contains(word) { words.insert(word) }
            word = ""
        }
        self.words = words
    }

    /// A token's text as it is compared: whitespace trimmed, lowercased (a token of only
    /// whitespace keeps its text, so `"\n"` can be quoted and matched).
    public static func normalise(_ text: String) -> String {
        let t = text.trimmingCharacters(in: .whitespaces).lowercased()
        return t.isEmpty ? text : t
    }

    /// Per token, `featureNames.count` values in 0…1: quoted (the token is a quoted string),
    /// first_quoted (it is the first one, the explainers' most frequent), after_quoted (the token
    /// before it is quoted), word (it is one of the explanation's words), part_of_quoted (3+
    /// characters, inside a quoted string or holding one).
    public func features(texts: [String]) -> [[Float]] {
        let normal = texts.map(Self.normalise)
        let first = quoted.first
        return normal.indices.map { t in
            let n = normal[t]
            let isQuoted = quotedSet.contains(n)
            let part = n.count >= 3 && !isQuoted && quoted.contains { $0.count >= 3 && ($0.contains(n) || n.contains($0)) }
            return [isQuoted ? 1 : 0, n == first ? 1 : 0, t > 0 && quotedSet.contains(normal[t - 1]) ? 1 : 0,
                    words.contains(n) ? 1 : 0, part ? 1 : 0]
        }
    }

    /// The lexical-match prediction of each token: 1 where it is a quoted string (or, for an
    /// explanation that quotes nothing, one of its words), else 0.
    public func lexicalMatch(texts: [String]) -> [Float] {
        texts.map { t in
            let n = Self.normalise(t)
            return (quoted.isEmpty ? words.contains(n) : quotedSet.contains(n)) ? 1 : 0
        }
    }
}

/// The model-free control: fires (expected digit 9) on the tokens the explanation quotes, nowhere
/// else (`ExplanationMatch.lexicalMatch`). Instant; a simulator that cannot beat it is not reading
/// the explanation any better than a string match does.
public final class LexicalMatchSimulator: SimulatorBackend, @unchecked Sendable {
    public let name = "lexical match"

    public init() {}

    public func simulate(explanation: String, contexts: [SimulationContext], mode: SimulationMode,
                         shouldStop: () -> Bool) throws -> [[Float]] {
        let match = ExplanationMatch(explanation: explanation)
        return contexts.map { match.lexicalMatch(texts: $0.texts).map { $0 * 9 } }
    }
}
