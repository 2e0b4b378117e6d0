import Foundation
import Kernels
import Model
import Storage
import Tokenizer

/// Runs an explainer over many latents, resumably.
///
/// Per latent, from its history in the store:
/// - its last version came from a person (`ExplanationSource.isMachine` is false: "user", "import",
///   "revert", or a cleared explanation) → kept: bulk explainers never replace a person's own
///   explanation, not even with `redo`;
/// - it already has a version from this explainer's source → skipped (so a stopped run resumes),
///   unless `redo`;
/// - otherwise it is explained and saved at once (becoming current, also over the other
///   explainer's version, which stays in the history).
/// Latents that never fire are skipped. `reporter.shouldStop` is polled between latents.
public enum ExplainJob {
    public enum Decision: Equatable, Sendable { case explain, done, personal }

    public static func decision(history: [ExplanationVersion], source: ExplanationSource, redo: Bool) -> Decision {
        if !ExplanationSource.machineMayReplace(history.last) { return .personal }
        if !redo && history.contains(where: { $0.source == source }) { return .done }
        return .explain
    }

    public struct Summary: Equatable, Sendable {
        public var source: ExplanationSource
        public var explained = 0
        /// Had this source's explanation already.
        public var done = 0
        /// Kept a person's explanation.
        public var personal = 0
        /// Never fire.
        public var dead = 0
        public var seconds = 0.0
        /// Stopped before the end (the rest is left for the next run).
        public var stopped = false
        public var skipped: Int { done + personal + dead }
    }

    /// Explains `latents` in order; `onExplained(latent, text)` sees each explanation once saved.
    public static func run(latents: [Int], explainer: Explainer, records: (Int) throws -> LatentRecord, store: ExplanationStore,
                           redo: Bool, reporter: ProgressReporter, onExplained: (Int, String) -> Void = { _, _ in }) throws -> Summary {
        let start = Clock.now
        var summary = Summary(source: explainer.source)
        var todo: [Int] = []
        for latent in latents {
            switch decision(history: store.history(latent), source: explainer.source, redo: redo) {
            case .explain: todo.append(latent)
            case .done: summary.done += 1
            case .personal: summary.personal += 1
            }
        }
        let step = "explain (\(explainer.source))"
        reporter.begin(step, total: todo.count, unit: "latents")
        for (i, latent) in todo.enumerated() {
            if reporter.shouldStop { summary.stopped = true; break }
            let record = try records(latent)
            if record.count == 0 || record.windows.isEmpty {
                summary.dead += 1
            } else {
                let text = try explainer.explain(record)
                try store.save(latent: latent, text: text, source: explainer.source)
                summary.explained += 1
                onExplained(latent, text)
            }
            reporter.advance(i + 1, detail: "latent \(latent)")
        }
        summary.seconds = Clock.now - start
        let rate = summary.explained > 0 ? String(format: ", %.3f s per latent", summary.seconds / Double(summary.explained)) : ""
        reporter.end(step, summary: "\(summary.explained) explained\(rate)" + (summary.stopped ? " (stopped; run again to continue)" : ""))
        return summary
    }
}
