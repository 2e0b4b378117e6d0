import Foundation
import Storage

/// What the explorer knows of the open workspace (a value; the engine sends it once opened).
public struct WorkspaceInfo: Equatable, Sendable {
    public var path: String
    public var name: String
    public var model: String
    public var layer: Int
    /// What the dictionary reads and writes (an MLP transcoder or a residual-stream SAE).
    public var site: DictionarySite
    public var latents: Int
    public var k: Int
    public var trainTokens: Int
    public var fvu: Double?
    public var lossRecovered: Double?

    public init(path: String, name: String, model: String, layer: Int, latents: Int, k: Int, trainTokens: Int,
                fvu: Double? = nil, lossRecovered: Double? = nil, site: DictionarySite = .mlp) {
        self.path = path; self.name = name; self.model = model; self.layer = layer; self.site = site; self.latents = latents; self.k = k
        self.trainTokens = trainTokens; self.fvu = fvu; self.lossRecovered = lossRecovered
    }
}

/// Every token's text, as decoded bytes (invalid UTF-8 already made safe), and which are special.
public struct Vocabulary: Sendable {
    public var texts: [String]
    public var special: Set<Int>

    /// The texts lowercased, for search and filter.
    public var lowercased: [String]

    public init(texts: [String], special: Set<Int>) {
        self.texts = texts
        self.special = special
        lowercased = texts.map { $0.lowercased() }
    }

    public func text(_ id: Int) -> String { id >= 0 && id < texts.count ? texts[id] : "<\(id)>" }
}

/// A long job the engine is running, for the status line.
public struct JobProgress: Equatable, Sendable {
    public var title: String
    public var done: Double
    public var total: Double
    public var unit: String
    /// Seconds left, when the rate is known.
    public var eta: Double?
    public var detail: String

    public init(title: String, done: Double, total: Double, unit: String = "", eta: Double? = nil, detail: String = "") {
        self.title = title; self.done = done; self.total = total; self.unit = unit; self.eta = eta; self.detail = detail
    }

    public var fraction: Double { total > 0 ? min(1, max(0, done / total)) : 0 }
}

/// What the interface asks of the engine. Requests never block the interface: answers come back
/// later as events.
public enum EngineRequest: Equatable, Sendable {
    /// Open the workspace: info, latent summaries, explanations, the vocabulary.
    case open
    /// Build the workspace (the first-run path), then open it.
    case build
    case latent(Int)
    /// Run model + transcoder on a text; `id` tells answers to old texts apart.
    case analyze(id: Int, text: String)
    case saveExplanation(latent: Int, text: String)
    case revertExplanation(latent: Int, versionID: Int)
    case history(latent: Int)
    /// Explain a latent that has no explanation yet with the LLM explainer (saved with source "llm").
    case explain(latent: Int)
    /// Simulate the latent's current explanation on its held-out scoring windows and score it.
    case simulate(latent: Int)
    /// Simulate a latent on the lab's text (`id` as for `analyze`).
    case simulateText(id: Int, latent: Int, text: String)
    case exportExplanations(path: String)
    case importExplanations(path: String)
    /// Read the workspace's last partial-rewrite report (`rewrite/report.json`).
    case rewriteReport
    /// Run the partial rewrite (long: progress with ETA, Esc cancels, simulations are kept so a
    /// new run resumes), then answer with its report.
    case runRewrite(RewriteOptions)
    /// Generate from the lab's text steered by a latent beside the unsteered model, streaming
    /// (`id` as for `analyze`).
    case steer(id: Int, text: String, SteerSettings)
    /// Ablate a latent on the lab's text.
    case ablate(id: Int, text: String, latent: Int, mode: AblationMode)
    /// Rank the latents at one token of the lab's text by direct effect on its next token's logit.
    case rank(id: Int, text: String, position: Int)
    /// Patch a latent (nil: the whole dictionary code) from the clean text's run into the
    /// corrupted text's at each token in turn (`id` as for `analyze`, the clean text the lab's).
    case patch(id: Int, clean: String, corrupted: String, latent: Int?)
    /// Stop the running job at its next safe point.
    case cancel
}

/// What the engine tells the interface.
public enum EngineEvent: Sendable {
    case opened(WorkspaceInfo, [LatentSummary])
    case vocabulary(Vocabulary)
    case explanations([Int: ExplanationVersion])
    /// There is no workspace there yet.
    case missingWorkspace(path: String)
    case latent(LatentRecord)
    case analysis(id: Int, ContextAnalysis)
    case saved(ExplanationVersion)
    /// An `explain` request ended without a new explanation (the latent had one from the LLM already).
    case explained(latent: Int)
    case history(latent: Int, [ExplanationVersion])
    /// Per latent, the latest scores of its current explanation (the list's score column).
    case scores([Int: LatentScores])
    /// A latent's simulation: its scores, the previous explanation version's (to compare), and
    /// the windows with true and simulated activations.
    case simulation(latent: Int, scores: LatentScores, previous: LatentScores?, record: SimulationRecord?)
    /// The scores just shown are in; the latent's loss delta is being measured and a second
    /// `.simulation` with it follows.
    case measuringLoss(latent: Int)
    /// The lab's text simulated for one latent, per token in activation units.
    case textSimulation(id: Int, latent: Int, simulated: [Float])
    /// Steered beside unsteered generations so far (again after every token; `done` at the end).
    case steered(id: Int, SteerResult)
    case ablation(id: Int, AblationResult)
    case ranking(id: Int, LatentRanking)
    /// A patch sweep, with the corrupted text it was asked for.
    case patched(id: Int, corrupted: String, PatchResult)
    /// The workspace's partial-rewrite report, or nil when none was run yet.
    case rewrite(RewriteReport?)
    /// The running job's progress, or nil when the engine is idle again.
    case progress(JobProgress?)
    case notice(String)
    case failure(String)
}

/// The interface's handle on the engine: it sends requests and collects events, never waiting.
/// `EngineThread` (in Engine) runs the real one, an `EngineService`, on its own thread; tests use a deterministic fake.
public protocol EngineClient: AnyObject, Sendable {
    func send(_ request: EngineRequest)
    /// Events that arrived since the last call, oldest first.
    func drain() -> [EngineEvent]
}
