import Foundation
import Storage

/// Explanations chosen by simulation: the LLM explainer writes several candidates (greedy, then
/// samples at a temperature), the lexical explanation is one more, each is simulated on the
/// latent's *training* windows from the cache by a simulator that never saw the latent (the
/// trained one reads it with its fold's head), and the one whose simulation correlates best with
/// the true activations there becomes the LLM explanation. Held-out scoring stays honest: it
/// simulates on held-out windows, which the choice never looked at.
public final class SearchingExplainer: Explainer {
    public let source = ExplanationSource.llm
    public let llm: LLMExplainer
    public let lexical: LexicalExplainer
    public let simulator: SimulatorBackend
    public let kind: SimulatorKind
    /// LLM candidates per latent (the first greedy), and the sampling temperature of the others.
    public var candidates = 4
    public var temperature: Float = 0.8
    /// Training windows simulated per candidate: the top ones, then one per quantile bin, highest first.
    public var topWindows = 2
    public var binWindows = 5

    public struct Candidate: Equatable, Sendable {
        public var text: String
        /// "greedy", "sample N" or "lexical".
        public var origin: String
        /// Pearson r of its simulation on the training windows (nil where the truth is constant).
        public var trainingPearson: Double?
    }

    /// The last latent's candidates, the chosen one first.
    public private(set) var lastCandidates: [Candidate] = []

    public init(llm: LLMExplainer, lexical: LexicalExplainer, simulator: SimulatorBackend, kind: SimulatorKind) {
        self.llm = llm
        self.lexical = lexical
        self.simulator = simulator
        self.kind = kind
    }

    /// The windows a candidate is judged on (training text only).
    public func windows(_ record: LatentRecord) -> [LatentWindow] {
        var chosen = Array(record.windows.filter { $0.kind == 0 }.prefix(topWindows))
        for bin in stride(from: 10, through: 1, by: -1) where chosen.count < topWindows + binWindows {
            if let w = record.windows.first(where: { $0.kind == bin }) { chosen.append(w) }
        }
        return chosen
    }

    public func explain(_ record: LatentRecord) throws -> String {
        var texts: [(String, String)] = [(try llm.explain(record), "greedy")]
        for n in 1..<max(candidates, 1) {
            texts.append((try llm.explain(record, temperature: temperature, seed: UInt64(record.latent) << 8 | UInt64(n)), "sample \(n)"))
        }
        texts.append((lexical.explain(record), "lexical"))
        let ws = windows(record)
        let contexts = ws.map { w in SimulationContext(tokens: w.tokens, texts: w.tokens.map { lexical.vocabulary.text($0) }) }
        let truth = ws.flatMap(\.activations)
        var seen: [String: Double?] = [:]
        var out: [Candidate] = []
        for (text, origin) in texts {
            if let r = seen[text] { out.append(Candidate(text: text, origin: origin, trainingPearson: r)); continue }
            let expected = try simulator.simulate(latent: record.latent, explanation: text, contexts: contexts, mode: kind.promptMode,
                                                  shouldStop: { false })
            let r = Detection.pearson(expected.flatMap { $0 }, truth)
            seen[text] = r
            out.append(Candidate(text: text, origin: origin, trainingPearson: r))
        }
        // The best r wins; ties keep the earlier candidate (greedy first).
        let best = out.indices.max { a, b in (out[a].trainingPearson ?? -2, b) < (out[b].trainingPearson ?? -2, a) }!
        lastCandidates = [out[best]] + out.enumerated().filter { $0.offset != best }.map(\.element)
        return out[best].text
    }
}
