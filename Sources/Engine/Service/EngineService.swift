import EngineAPI
import Formats
import Foundation
import Model
import Storage
import Tokenizer
import Transcoder

/// One open workspace and everything loaded for it, and every job that runs on it: the command
/// line and the explorer (through `EngineThread`) both go through here, so each rule lives once —
/// the cache is required in one place, the model, transcoder and simulators load once and lazily,
/// a person's explanation is never replaced by a machine's, and a score is always evaluated →
/// controls → loss delta → stored in that order. One thread at a time.
public final class EngineService: @unchecked Sendable {
    public let workspace: Workspace
    /// `--model`: another GGUF file than the workspace's (nil: the workspace's, fetched on first use).
    public let modelPath: String?
    /// Notices while something is fetched or loaded (the CLI prints them; the explorer shows them).
    public var notice: (String) -> Void

    private var manifestValue: WorkspaceManifest?
    private var cacheValue: LatentCache?
    private var summariesValue: [LatentSummary]?
    private var records: LatentRecordReader?
    private var explanationStore: ExplanationStore?
    private var scoreStore: ScoreStore?
    private var sessionValue: Session?
    private var simulators: [SimulatorKind: SimulatorBackend] = [:]
    private var evaluatorValue: Evaluator?
    private var spliceValue: Splice?
    private var analyzerValue: ContextAnalyzer?
    private var llmExplainerValue: LLMExplainer?

    /// `session`: a model already loaded for this workspace (the build's), used instead of loading one.
    public init(workspace: Workspace, modelPath: String? = nil, session: Session? = nil, notice: @escaping (String) -> Void = { _ in }) {
        self.workspace = workspace
        self.modelPath = modelPath
        self.sessionValue = session
        self.notice = notice
    }

    // MARK: what is on disk

    /// Forgets what was read of the workspace (after a build rewrote it).
    public func reopen() {
        manifestValue = nil
        cacheValue = nil
        summariesValue = nil
        records = nil
        evaluatorValue = nil
        spliceValue = nil
        analyzerValue = nil
        simulators = [:]
    }

    /// `slot`'s value, made by `make` the first time.
    private func cached<T>(_ slot: inout T?, _ make: () throws -> T) rethrows -> T {
        if let value = slot { return value }
        let value = try make()
        slot = value
        return value
    }

    public func manifest() throws -> WorkspaceManifest { try cached(&manifestValue) { try workspace.load() } }

    /// The latent cache; a workspace without one says how to finish it.
    public func cache() throws -> LatentCache {
        try cached(&cacheValue) {
            _ = try manifest()
            guard workspace.hasCache else { throw WorkspaceError.noCache(workspace.directory.path) }
            return try LatentCache(directory: workspace.cacheDirectory)
        }
    }

    /// Every latent's summary (the latent index), read once.
    public func summaries() throws -> [LatentSummary] { try cached(&summariesValue) { try LatentIndex.load(cache: try cache()) } }

    /// Every latent's firing count on the training tokens, in latent order.
    public func counts() throws -> [Int] { try summaries().map(\.count) }

    /// A latent's record; the last few decoded block files are kept.
    public func record(_ latent: Int) throws -> LatentRecord {
        try cached(&records) { LatentRecordReader(cache: try cache()) }.record(latent)
    }

    /// The explanation log, opened once; a damaged line's warning goes to `notice` when it is opened.
    public func explanations() throws -> ExplanationStore {
        try cached(&explanationStore) {
            let store = try ExplanationStore(workspace: workspace)
            if let warning = store.warning { notice(warning) }
            return store
        }
    }

    /// The score store, opened once; a damaged line's warning goes to `notice` when it is opened.
    public func scores() throws -> ScoreStore {
        try cached(&scoreStore) {
            let store = try ScoreStore(workspace: workspace)
            if let warning = store.warning { notice(warning) }
            return store
        }
    }

    // MARK: what runs the model

    /// The workspace's model path (or `--model`'s), fetched on first use.
    public func resolvedModelPath() throws -> String {
        let recorded = (try? manifest()).flatMap { $0.model == ModelFetch.defaultPath.path ? nil : $0.model }
        return try ModelFetch.resolve(modelPath ?? recorded, progress: notice)
    }

    /// The workspace's model, loaded once, with rows enough for the simulators' batches.
    public func session() throws -> Session {
        try cached(&sessionValue) { try Session(modelPath: try resolvedModelPath(), batch: LocalSimulator.batchRows, progress: notice) }
    }

    /// The tokenizer: the loaded model's, else read from the GGUF's metadata alone (fast).
    public func tokenizer() throws -> BPETokenizer {
        if let sessionValue { return sessionValue.tokenizer }
        return try BPETokenizer(gguf: try GGUFFile(path: try resolvedModelPath()))
    }

    /// The simulator of that kind, made once (`Simulators.make`).
    public func simulator(_ kind: SimulatorKind) throws -> SimulatorBackend {
        try cached(&simulators[kind]) { try Simulators.make(kind, workspace: workspace, session: try session()) }
    }

    public func evaluator() throws -> Evaluator {
        try cached(&evaluatorValue) { try Evaluator(workspace: workspace, tokenizer: try session().tokenizer) }
    }

    /// Model and dictionary spliced at the workspace's layer and site (loss deltas, the rewrite).
    public func splice() throws -> Splice {
        try cached(&spliceValue) {
            let m = try manifest()
            guard workspace.hasTranscoder(m) else { throw ServiceError.noTranscoder(path: workspace.transcoderDirectory(m).path) }
            let transcoder = try Transcoder.load(directory: workspace.transcoderDirectory(m).path)
            return try Splice(model: try session().model, transcoder: transcoder, layer: m.layer, site: m.site)
        }
    }

    /// Model + transcoder on any text (the lab).
    public func analyzer() throws -> ContextAnalyzer { try cached(&analyzerValue) { try ContextAnalyzer(session: try session(), workspace: workspace) } }

    /// Token text as the model's bytes decode (scoring windows, the rewrite's culprits).
    public func tokenText() throws -> (Int) -> String {
        let tokenizer = try session().tokenizer
        return { String(decoding: tokenizer.tokenBytes($0), as: UTF8.self) }
    }

    // MARK: explanations

    /// The latent's current explanation, which a simulation needs (a cleared one simulates as the
    /// token prior).
    public func currentExplanation(_ latent: Int) throws -> ExplanationVersion {
        guard let v = try explanations().current(latent) else { throw ServiceError.noExplanation(latent: latent) }
        return v
    }

    /// The LLM explainer's explanation of a latent that has none from it yet, saved with source
    /// `.llm` — unless a person's explanation is current (`ExplanationSource.machineMayReplace`)
    /// or one was saved meanwhile. Nil when nothing was written.
    public func explainIfMissing(_ latent: Int, shouldStop: () -> Bool) throws -> ExplanationVersion? {
        let store = try explanations()
        let before = store.current(latent)
        guard !store.history(latent).contains(where: { $0.source == .llm }), ExplanationSource.machineMayReplace(before) else { return nil }
        let explainer = try cached(&llmExplainerValue) {
            let session = try session()
            return try LLMExplainer(session: session, vocabulary: TokenVocabulary(tokenizer: session.tokenizer), prompt: try ExplainerPrompt.load())
        }
        let text = try explainer.explain(try record(latent))
        guard !shouldStop(), store.current(latent)?.id == before?.id, !text.isEmpty else { return nil }
        return try store.save(latent: latent, text: text, source: .llm)
    }

    /// What a fresh build still needs for its scores to mean something on first open: lexical
    /// explanations for the latents that have none (model-free, seconds), then the trained simulator
    /// when the workspace has none (`SimulatorTrainer` on at most `simulatorLatents` explanations,
    /// minutes). Both resume where they stopped; a person's explanation is never touched.
    public func finishBuild(reporter: ProgressReporter, simulatorLatents: Int = 1200) throws {
        let store = try explanations()
        let unexplained = (0..<(try cache().manifest.latents)).filter { store.current($0) == nil }
        if !unexplained.isEmpty {
            let lexical = LexicalExplainer(vocabulary: TokenVocabulary(tokenizer: try tokenizer()))
            _ = try ExplainJob.run(latents: unexplained, explainer: lexical, records: record, store: store, redo: false, reporter: reporter)
        }
        guard !workspace.hasTrainedSimulator, !store.allCurrent().isEmpty, !reporter.shouldStop else { return }
        var options = SimulatorTrainingOptions()
        options.maxLatents = simulatorLatents
        reporter.note("training the simulator on the explanations (--max-latents \(simulatorLatents); `loupe train-simulator` for other settings)")
        var begun = false
        do {
            _ = try SimulatorTrainer(workspace: workspace, session: try session(), options: options).run(progress: { done, total, detail in
                if !begun { reporter.begin("train-simulator", total: total, unit: "explanations"); begun = true }
                reporter.advance(done, detail: detail)
            }, note: reporter.note, shouldStop: { reporter.shouldStop })
        } catch let error where !(error is CancellationError) {
            // The workspace is whole without it (the prompted simulator stands in); say why and go on.
            reporter.note("the simulator was not trained: \(error); `loupe train-simulator` tries again")
            return
        }
        reporter.end("train-simulator", summary: "saved to \(workspace.simulatorDirectory.path)")
        simulators = [:]
    }

    // MARK: scoring

    /// Per explained latent, the latent whose explanation is its shuffled control, over `current`.
    public func shuffledPartners(_ current: [Int: ExplanationVersion]) throws -> [Int: (latent: Int, text: String)] {
        ShuffledPartners.make(texts: current.mapValues(\.text), counts: try counts())
            .compactMapValues { p in current[p].map { (p, $0.text) } }
    }

    /// What a score measures besides its own r.
    public struct ScoreExtras: Sendable {
        public var controls: Bool
        public var lossDelta: Bool
        public init(controls: Bool = true, lossDelta: Bool = true) { self.controls = controls; self.lossDelta = lossDelta }
    }

    /// Scores one explanation version: simulate it on the latent's held-out scoring set, then (as
    /// asked) the controls with `partner`'s explanation as the shuffled one, then the loss delta of
    /// splicing the simulation in, then store it. `shown` sees the scores as soon as they exist
    /// (before the controls and the delta). Throws `CancellationError` when
    /// stopped; nothing is stored then.
    @discardableResult
    public func score(latent: Int, version: ExplanationVersion, backend: SimulatorBackend, kind: SimulatorKind, calibration: Calibration,
                      partner: (latent: Int, text: String)?, extras: ScoreExtras = ScoreExtras(), shouldStop: @escaping () -> Bool,
                      shown: (LatentScores, SimulationRecord) -> Void = { _, _ in }) throws -> (scores: LatentScores, record: SimulationRecord) {
        let evaluator = try evaluator()
        var (result, record) = try evaluator.evaluate(latent: latent, explanation: version, backend: backend, kind: kind,
                                                      calibration: calibration, shouldStop: shouldStop)
        shown(result, record)
        if extras.controls {
            result.controls = try evaluator.controls(latent: latent, own: version.text, shuffled: partner, backend: backend, kind: kind,
                                                     calibration: calibration, shouldStop: shouldStop)
        }
        // A workspace imported from delphi has no dictionary to splice: its scores carry no loss delta.
        if extras.lossDelta, workspace.hasTranscoder(try manifest()) {
            result.lossDelta = try splice().singleLatentDelta(latent: latent, windows: record.windows.map(\.tokens),
                                                              values: record.windows.map(\.simulated), shouldStop: shouldStop)
        }
        let stored = try scores().append(result, simulation: record)
        return (stored, record)
    }

    /// A latent simulated on any text, per token in activation units (contexts of at most 64
    /// tokens, like the scoring windows; the text's first 1024 tokens).
    public func simulate(latent: Int, explanation: String, text: String, kind: SimulatorKind, calibration: Calibration,
                         shouldStop: @escaping () -> Bool) throws -> [Float] {
        let simulator = try simulator(kind)
        let ids = Array(try session().tokenizer.encode(text).prefix(1024))
        let tokenText = try tokenText()
        let contexts = stride(from: 0, to: ids.count, by: 64).map { start -> SimulationContext in
            let chunk = Array(ids[start..<min(start + 64, ids.count)])
            return SimulationContext(tokens: chunk, texts: chunk.map(tokenText))
        }
        let expected = try simulator.simulate(latent: latent, explanation: explanation, contexts: contexts, mode: kind.promptMode, shouldStop: shouldStop)
        return calibration.apply(expected, record: try record(latent), trainTokens: try cache().manifest.trainTokens).flatMap { $0 }
    }

    // MARK: the rewrite

    /// The partial rewrite with `options.mode`'s simulator (`RewriteExperiment`).
    public func rewrite(_ options: RewriteOptions, progress: @escaping (RewriteExperiment.Progress) -> Void,
                        shouldStop: @escaping () -> Bool) throws -> RewriteReport {
        let experiment = try RewriteExperiment(workspace: workspace, splice: try splice(), backend: try simulator(options.mode),
                                               tokenText: try tokenText(), options: options)
        experiment.notice = notice
        return try experiment.run(progress: progress, shouldStop: shouldStop)
    }
}

/// What a job asked of the service cannot do; each says what to do instead.
public enum ServiceError: Error, Equatable, CustomStringConvertible {
    case noExplanation(latent: Int)
    /// Splicing asked of a workspace without its dictionary (one imported from delphi).
    case noTranscoder(path: String)

    public var description: String {
        switch self {
        case .noTranscoder(let path):
            return "\(path) has no cfg.json: this workspace holds latents without their dictionary (imported from delphi), so loss deltas, the rewrite and the lab's reconstruction cannot run"
        case .noExplanation(let latent):
            return "latent \(latent) has no explanation to simulate; write one (e in the explorer, `loupe explanations set \(latent) TEXT`) or run `loupe explain`"
        }
    }
}

public extension Vocabulary {
    /// Every token's text for the explorer: special tokens by name; bytes that are not UTF-8 on
    /// their own (part of a character) as <0xAB>.
    init(tokenizer: BPETokenizer) {
        var texts: [String] = []
        texts.reserveCapacity(tokenizer.count)
        var special = Set<Int>()
        for id in 0..<tokenizer.count {
            if tokenizer.isSpecial(id) {
                special.insert(id)
                texts.append(tokenizer.tokenString(id))
            } else {
                texts.append(String(validating: tokenizer.tokenBytes(id), as: UTF8.self) ?? tokenizer.display(id))
            }
        }
        self.init(texts: texts, special: special)
    }
}
