import Foundation
import Kernels
import Model
import Storage
import Tokenizer

/// A model-free baseline: which tokens the latent fires on, weighted by activation, what comes
/// right before them, and its strongest token, e.g.
///
///     fires on " bridge", " tunnel", " pier" (62% of activations), mostly after " the" / " a"; strongest on " bridge"
///
/// The statistics are over the record's windows (top and quantile-sampled): every window's chosen
/// (focus) token, and every other token whose activation is at least `threshold` × the latent's
/// max; a corpus position seen in several windows counts once. Each counts with its activation as
/// weight. "% of activations" is the listed tokens' share of that total weight. Tokens are quoted
/// with their leading space visible (`\n` and `\t` escaped). Deterministic: ties break by text.
public final class LexicalExplainer: Explainer {
    public let source = ExplanationSource.lexical
    public let vocabulary: TokenVocabulary
    /// Non-focus tokens count when their activation is at least this fraction of the latent's max.
    public var threshold: Float = 0.3

    public init(vocabulary: TokenVocabulary) { self.vocabulary = vocabulary }

    /// One activating position: its token's text, the text of the token before it (nil at a window's start), its activation.
    struct Event { var token: String; var left: String?; var activation: Float }

    public func explain(_ record: LatentRecord) -> String {
        let events = self.events(record)
        let total = events.reduce(Float(0)) { $0 + $1.activation }
        guard total > 0 else { return "never fires on the corpus" }
        let tokens = Self.ranked(events.map { ($0.token, $0.activation) })
        func share(_ w: Float) -> Int { Int((w / total * 100).rounded()) }

        // The tokens: as many as it takes to reach 80% of the weight, at most 5, each with ≥ 4%.
        // Below half the weight, at least three are named, "and many others" after them.
        var listed: [(String, Float)] = []
        for t in tokens where listed.count < 5 && t.1 / total >= 0.04 {
            listed.append(t)
            if listed.reduce(0, { $0 + $1.1 }) / total >= 0.8 { break }
        }
        var text: String
        if listed.reduce(0, { $0 + $1.1 }) / total >= 0.5 {
            text = "fires on " + listed.map { Self.quote($0.0) }.joined(separator: ", ")
        } else {
            if listed.count < 3 { listed = Array(tokens.prefix(3)) }
            // The tokens lead, so the visible start of a list column tells latents apart.
            text = "fires on " + listed.map { Self.quote($0.0) }.joined(separator: ", ") + " and many others"
        }
        let listedWeight = listed.reduce(0) { $0 + $1.1 }
        text += " (\(share(listedWeight))% of activations"
        if listedWeight / total < 0.6, let (name, w) = Self.dominantClass(tokens), w / total >= 0.6 {
            text += "; \(name): \(share(w))%"
        }
        text += ")"

        // The left context, if a few tokens account for a good part of it.
        let lefts = events.compactMap { e in e.left.map { ($0, e.activation) } }
        let leftTotal = lefts.reduce(Float(0)) { $0 + $1.1 }
        if leftTotal > 0 {
            let common = Self.ranked(lefts).prefix(3).filter { $0.1 / leftTotal >= 0.15 }
            let covered = common.reduce(0) { $0 + $1.1 } / leftTotal
            if covered >= 0.25 {
                text += (covered >= 0.5 ? ", mostly after " : ", often after ") + common.map { Self.quote($0.0) }.joined(separator: " / ")
            }
        }

        let strongest = events.max { a, b in a.activation != b.activation ? a.activation < b.activation : a.token > b.token }!.token
        if !(listed.count == 1 && listed[0].0 == strongest) { text += "; strongest on " + Self.quote(strongest) }
        return text
    }

    /// The activating positions of the record's windows (see the type's comment).
    func events(_ record: LatentRecord) -> [Event] {
        var seen = Set<Int>()
        var texts: [Int: String] = [:]
        func text(_ id: Int) -> String {
            if let t = texts[id] { return t }
            let t = vocabulary.text(id)
            texts[id] = t
            return t
        }
        var out: [Event] = []
        let floor = threshold * record.max
        for w in record.windows {
            for (i, a) in w.activations.enumerated() where a > 0 && (i == w.focus || a >= floor) && i < w.tokens.count {
                guard seen.insert(w.corpusWindow << 20 | (w.start + i)).inserted else { continue }
                out.append(Event(token: text(w.tokens[i]), left: i > 0 ? text(w.tokens[i - 1]) : nil, activation: a))
            }
        }
        return out
    }

    /// Texts by total weight, heaviest first, ties by text.
    static func ranked(_ items: [(String, Float)]) -> [(String, Float)] {
        var weights: [String: Float] = [:]
        for (t, w) in items { weights[t, default: 0] += w }
        return weights.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }.map { ($0.key, $0.value) }
    }

    /// The kind of token holding the most weight: numbers, punctuation, capitalized words, line
    /// breaks or word pieces (no leading space), from each token text's total weight.
    static func dominantClass(_ tokens: [(String, Float)]) -> (String, Float)? {
        var weights: [String: Float] = [:]
        for (token, weight) in tokens {
            let t = token.trimmingCharacters(in: .whitespaces)
            let name: String?
            if token.contains("\n") && t.trimmingCharacters(in: .newlines).isEmpty { name = "line breaks" }
            else if t.isEmpty { name = nil }
            else if t.allSatisfy({ $0.isNumber || $0 == "," || $0 == "." }) && t.contains(where: \.isNumber) { name = "numbers" }
            else if t.allSatisfy({ $0.isPunctuation || $0.isSymbol }) { name = "punctuation" }
            else if t.first!.isUppercase { name = "capitalized words" }
            else if token.first!.isLetter { name = "word pieces" }
            else { name = nil }
            if let name { weights[name, default: 0] += weight }
        }
        return weights.max { $0.value != $1.value ? $0.value < $1.value : $0.key > $1.key }.map { ($0.key, $0.value) }
    }

    /// A token in double quotes, its spaces kept and `"`, `\`, newlines and tabs escaped.
    public static func quote(_ token: String) -> String {
        var out = "\""
        for c in token {
            switch c {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default: out.append(c)
            }
        }
        return out + "\""
    }
}

// MARK: - the LLM explainer's prompt
