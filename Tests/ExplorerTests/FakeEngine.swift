@testable import Engine
import EngineAPI
@testable import Storage
import Explorer
import Foundation
import Storage

/// A deterministic engine for scripted tests: everything is made up from the latent id, requests
/// are answered in order when the test drains, and nothing touches a disk or a model.
final class FakeEngine: EngineClient, @unchecked Sendable {
    var requests: [EngineRequest] = []
    private var pending: [EngineRequest] = []
    var saved: [ExplanationVersion] = []
    var hasWorkspace = true
    /// Whether `.explain` answers (off by default so screens show latents without explanations).
    var explainsOnOpen = false
    /// What `.rewriteReport` answers: nil as when no experiment was run; `.runRewrite` makes one.
    var rewrite: RewriteReport? = FakeEngine.rewriteReport()
    let latents: Int
    static let words = [" the", " bridge", " river", "\n", " of", " tunnel", " 東京", " 🚀", "<|im_end|>", " pier", " and", ","]

    /// The workspace's dictionary: an MLP transcoder, or a residual SAE (its rewrite report says so too).
    let site: DictionarySite

    init(latents: Int = 40, site: DictionarySite = .mlp) {
        self.latents = latents
        self.site = site
        if site != .mlp { rewrite?.site = site }
    }

    func send(_ request: EngineRequest) {
        requests.append(request)
        pending.append(request)
    }

    func drain() -> [EngineEvent] {
        let work = pending
        pending = []
        return work.flatMap(answer)
    }

    static let vocabulary = Vocabulary(texts: words, special: [8])

    static func summary(_ i: Int, latents: Int) -> LatentSummary {
        let count = i % 7 == 3 ? 0 : (i * 37) % 101 * 10
        return LatentSummary(latent: i, count: count, density: Double(count) / 100_000, max: count == 0 ? 0 : Float((i * 13) % 17 + 1) / 2,
                             mean: Float(i % 5) / 4, topTokens: count == 0 ? [] : [i % 12, (i + 1) % 12, (i + 5) % 12])
    }

    static func record(_ i: Int) -> LatentRecord {
        let s = summary(i, latents: 40)
        var windows: [LatentWindow] = []
        if s.count > 0 {
            for w in 0..<6 {
                let tokens = (0..<24).map { (i + w * 3 + $0 * 5) % 12 }
                let focus = (w * 7 + i) % 24
                let acts = (0..<24).map { t -> Float in
                    t == focus ? s.max * Float(6 - w) / 6 : (t % 4 == w % 4 ? s.max * Float((t % 5)) / 10 : 0)
                }
                windows.append(LatentWindow(corpusWindow: i * 10 + w, start: w, focus: focus, kind: w < 3 ? 0 : w - 2,
                                            tokens: tokens, activations: acts))
            }
        }
        return LatentRecord(latent: i, count: s.count, max: s.max, mean: s.mean,
                            histogram: (0..<32).map { b in s.count == 0 ? 0 : max(0, 40 - abs(b - 8) * 4) },
                            quantiles: (0..<101).map { Float($0) / 100 * s.max },
                            promoted: (0..<10).map { (id: ($0 + i) % 12, logit: Float(10 - $0) / 4) },
                            suppressed: (0..<10).map { (id: ($0 * 5 + i) % 12, logit: -Float(10 - $0) / 5) },
                            neighbours: (1...8).map { (latent: (i + $0 * 3) % 40, cosine: Float(9 - $0) / 10) },
                            windows: windows)
    }

    static func scores(_ latent: Int, version: Int) -> LatentScores {
        LatentScores(latent: latent, version: version, source: "user", mode: .promptedAll, calibration: .quantile, backend: "fake",
                     pearson: Double(version) / 10 + 0.3, sensitivity: 0.8, specificity: 0.6, balancedAccuracy: 0.7, windows: 2, tokens: 24, seconds: 0.1,
                     lossDelta: 0.0042 - Double(version) * 0.0011)
    }

    static func simulation(_ latent: Int, version: Int) -> SimulationRecord {
        let windows = (0..<2).map { w -> SimulationRecord.Window in
            let tokens = (0..<12).map { (latent + w + $0 * 5) % 12 }
            let acts = (0..<12).map { w == 0 && $0 % 4 == 1 ? Float($0) / 3 : 0 }
            let simulated = (0..<12).map { $0 % 3 == 1 ? Float($0) / 4 : 0 }
            let outcomes = zip(acts, simulated).map { TokenOutcome(fires: $0 > 0, predicted: $1 > 0) }
            return SimulationRecord.Window(corpusWindow: w, start: 0, focus: w == 0 ? 1 : nil, tokens: tokens, activations: acts,
                                           expected: simulated.map { $0 * 2 }, simulated: simulated, outcomes: outcomes)
        }
        return SimulationRecord(latent: latent, key: ScoreKey(version: version, mode: .promptedAll, calibration: .quantile, backend: "fake"), windows: windows)
    }

    static func analysis(_ text: String) -> ContextAnalysis {
        let words = text.split(separator: " ", omittingEmptySubsequences: false).map { " " + $0 }
        let tokens = words.map { w in FakeEngine.words.firstIndex(of: w) ?? (w.count % 12) }
        let codes = tokens.enumerated().map { (p, t) in
            (0..<4).map { j in LatentActivation(latent: (t * 3 + j * 7 + p) % 40, value: Float(4 - j) * 0.75 + Float(p % 3) * 0.1) }
        }
        return ContextAnalysis(tokens: tokens, tokenTexts: tokens.map { FakeEngine.words[$0] }, codes: codes, truncated: false)
    }

    private func answer(_ request: EngineRequest) -> [EngineEvent] {
        switch request {
        case .open:
            guard hasWorkspace else { return [.missingWorkspace(path: "/tmp/fake")] }
            let info = WorkspaceInfo(path: "/tmp/fake", name: "fake", model: "tiny", layer: 2, latents: latents, k: 4, trainTokens: 100_000,
                                     fvu: 0.2, lossRecovered: 0.9, site: site)
            let current = Dictionary(grouping: saved, by: \.latent).compactMapValues(\.last)
            return [.opened(info, (0..<latents).map { Self.summary($0, latents: latents) }), .explanations(current),
                    .vocabulary(Self.vocabulary)]
        case .latent(let i): return [.latent(Self.record(i))]
        case .analyze(let id, let text): return [.analysis(id: id, Self.analysis(text))]
        case .saveExplanation(let latent, let text):
            let v = ExplanationVersion(id: saved.count + 1, latent: latent, text: text, source: "user",
                                       time: Date(timeIntervalSince1970: 1_790_000_000 + Double(saved.count) * 60))
            saved.append(v)
            return [.saved(v)]
        case .revertExplanation(let latent, let id):
            guard let old = saved.first(where: { $0.id == id }) else { return [.failure("no version \(id)")] }
            let v = ExplanationVersion(id: saved.count + 1, latent: latent, text: old.text, source: "revert",
                                       time: Date(timeIntervalSince1970: 1_790_000_000 + Double(saved.count) * 60))
            saved.append(v)
            return [.saved(v)]
        case .history(let latent): return [.history(latent: latent, saved.filter { $0.latent == latent })]
        case .build:
            hasWorkspace = true
            return [.progress(JobProgress(title: "activations", done: 30, total: 100, unit: "tokens", eta: 75)),
                    .progress(nil)] + answer(.open)
        case .explain(let latent):
            guard explainsOnOpen else { return [] }
            if saved.contains(where: { $0.latent == latent && $0.source == "llm" }) { return [.explained(latent: latent)] }
            let v = ExplanationVersion(id: saved.count + 1, latent: latent, text: "words about \(FakeEngine.words[latent % 12])", source: "llm",
                                       time: Date(timeIntervalSince1970: 1_790_000_000 + Double(saved.count) * 60))
            saved.append(v)
            return [.saved(v)]
        case .simulate(let latent):
            guard let version = saved.last(where: { $0.latent == latent }) else { return [.failure("no explanation")] }
            return [.simulation(latent: latent, scores: Self.scores(latent, version: version.id), previous: version.id > 1 ? Self.scores(latent, version: version.id - 1) : nil,
                                record: Self.simulation(latent, version: version.id))]
        case .simulateText(let id, let latent, let text):
            return [.textSimulation(id: id, latent: latent, simulated: Self.analysis(text).tokens.enumerated().map { Float(($0.offset + latent) % 3) })]
        case .exportExplanations(let path): return [.notice("exported to \(path)")]
        case .importExplanations(let path): return [.notice("imported from \(path)")]
        case .rewriteReport: return [.rewrite(rewrite)]
        case .runRewrite:
            let report = Self.rewriteReport()
            rewrite = report
            return [.progress(JobProgress(title: "rewrite: simulate", done: 3, total: 12, unit: "latents", eta: 40)),
                    .progress(JobProgress(title: "rewrite: forward", done: 9, total: 17, unit: "settings", eta: 2)),
                    .progress(nil), .rewrite(report), .notice("rewrite done: \(report.results.count) settings on \(report.windows.count) windows")]
        case .steer(let id, let text, let settings): return Self.steer(id: id, text: text, settings)
        case .ablate(let id, let text, let latent, let mode):
            let a = Self.analysis(text)
            let acts = a.activations(of: latent)
            let n = a.tokens.count
            let delta = (0..<max(n - 1, 0)).map { t in -Float((t * 7 + latent) % 5) / 4 + (t % 4 == 3 ? 0.3 : 0) }
            return [.ablation(id: id, AblationResult(latent: latent, mode: mode, value: mode == .zero ? 0 : 0.25, tokens: a.tokens,
                                                     tokenTexts: a.tokenTexts, activations: acts, deltaLogProb: delta,
                                                     kl: delta.map { abs($0) / 3 }))]
        case .rank(let id, let text, let position):
            let a = Self.analysis(text)
            let latents = (a.codes[safe: position] ?? []).enumerated().map { i, code in
                RankedLatent(latent: code.latent, activation: code.value, direct: Float(4 - i) * 0.5 * (i % 2 == 0 ? 1 : -1),
                             exact: i < 2 ? Float(4 - i) * 0.45 * (i % 2 == 0 ? 1 : -1) : nil)
            }
            let target = a.tokens[safe: position + 1] ?? 0
            return [.ranking(id: id, LatentRanking(tokens: a.tokens, position: position, target: target, targetText: FakeEngine.words[target],
                                                   logit: 7.5, latents: latents))]
        case .patch(let id, let clean, let corrupted, let latent):
            let a = Self.analysis(clean), b = Self.analysis(corrupted)
            guard a.tokens.count == b.tokens.count else {
                return [.failure("the clean text has \(a.tokens.count) tokens and the corrupted one \(b.tokens.count); patching needs texts of the same length in tokens")]
            }
            // The clean prediction comes back where the texts differ, more with the whole code.
            let patched = zip(a.tokens, b.tokens).enumerated().map { t, pair in
                pair.0 == pair.1 ? -4 : -4 + Float(latent == nil ? 3 : 1 + (t % 3)) * 0.75
            }
            return [.progress(JobProgress(title: "patching", done: 0, total: Double(a.tokens.count), unit: "tokens")),
                    .patched(id: id, corrupted: corrupted, PatchResult(latent: latent, clean: a.tokens, corrupted: b.tokens, cleanTexts: a.tokenTexts,
                                                                        corruptedTexts: b.tokenTexts, target: 2, targetText: FakeEngine.words[2],
                                                                        cleanLogProb: -1, corruptedLogProb: -4, patchedLogProb: patched)),
                    .progress(nil)]
        case .cancel: return [.progress(nil)]
        }
    }

    /// Two streamed steps, then the finished generations: the steered one says the latent's word.
    static func steer(id: Int, text: String, _ settings: SteerSettings) -> [EngineEvent] {
        let value = settings.value.value(max: summary(settings.latent, latents: 40).max)
        let unsteered = [" the", " river", " and", " the", " pier"], steered = [" the", " bridge", " bridge", " tunnel", " bridge"]
        func step(_ n: Int, done: Bool) -> EngineEvent {
            .steered(id: id, SteerResult(settings: settings, value: value, promptTokens: analysis(text).tokens.count,
                                         unsteered: (0..<n).map { $0 }, steered: (0..<n).map { $0 + 1 },
                                         unsteeredText: unsteered.prefix(n).joined(), steeredText: steered.prefix(n).joined(), done: done,
                                         firstTokenSeconds: 0.25))
        }
        return [.progress(JobProgress(title: "steering latent \(settings.latent)", done: 0, total: 5, unit: "tokens")),
                step(1, done: false), step(2, done: false), step(5, done: true), .progress(nil)]
    }
}
