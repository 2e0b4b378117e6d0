import Formats
import Foundation
import EngineAPI
import Storage
import Tokenizer
import Transcoder

/// The real engine on its own thread. Requests queue up (a newer analysis or latent replaces an
/// older one still waiting); answers go into an inbox the run loop drains each frame. The model
/// is loaded only when a request needs it (the lab, a build).
public final class EngineThread: EngineClient, @unchecked Sendable {
    let workspace: Workspace
    let modelPath: String?
    let buildOptions: BuildOptions
    private let lock = NSCondition()
    private var queue: [EngineRequest] = []
    private var inbox: [EngineEvent] = []
    private var stopping = false
    private var cancelled = false
    private var thread: Thread?

    // Owned by the engine thread only.
    private var cache: LatentCache?
    private var blocks: [(file: String, records: [LatentRecord])] = []
    private var store: ExplanationStore?
    private var session: Session?
    private var analyzer: ContextAnalyzer?
    private var tokenizer: BPETokenizer?
    private var evaluator: Evaluator?
    private var scoreStore: ScoreStore?
    private var simulator: SimulatorBackend?
    private var llmExplainer: LLMExplainer?
    private var splice: Splice?
    /// How the explorer simulates: the workspace's trained simulator when it has one (else the
    /// prompted all-at-once one), quantile-calibrated.
    let simulatorKind: SimulatorKind
    let calibration = Calibration.quantile
    /// Per explained latent, the latent whose explanation is its shuffled control (made on first use).
    private var partners: [Int: Int]?

    public init(workspace: Workspace, modelPath: String? = nil, buildOptions: BuildOptions = BuildOptions()) {
        self.workspace = workspace
        self.modelPath = modelPath
        self.buildOptions = buildOptions
        simulatorKind = Simulators.defaultKind(for: workspace)
        let t = Thread { [weak self] in self?.loop() }
        t.name = "loupe-engine"
        t.stackSize = 8 << 20
        thread = t
        t.start()
    }

    deinit { stop() }

    public func stop() {
        lock.lock()
        stopping = true
        cancelled = true
        lock.signal()
        lock.unlock()
    }

    public func send(_ request: EngineRequest) {
        lock.lock()
        defer { lock.signal(); lock.unlock() }
        switch request {
        case .cancel:
            cancelled = true
        case .analyze:
            queue.removeAll { if case .analyze = $0 { return true } else { return false } }
            queue.append(request)
        case .latent:
            queue.removeAll { if case .latent = $0 { return true } else { return false } }
            queue.append(request)
        default:
            queue.append(request)
        }
    }

    public func drain() -> [EngineEvent] {
        lock.lock()
        defer { lock.unlock() }
        let out = inbox
        inbox.removeAll()
        return out
    }

    func post(_ event: EngineEvent) {
        lock.lock()
        inbox.append(event)
        lock.unlock()
    }

    var isCancelled: Bool {
        lock.lock()
        defer { lock.unlock() }
        return cancelled
    }

    private func loop() {
        while true {
            lock.lock()
            while queue.isEmpty && !stopping { lock.wait() }
            if stopping { lock.unlock(); return }
            let request = queue.removeFirst()
            cancelled = false
            lock.unlock()
            do {
                try handle(request)
            } catch {
                post(.progress(nil))
                post(.failure(String(describing: error)))
            }
        }
    }

    private func handle(_ request: EngineRequest) throws {
        switch request {
        case .open: try open()
        case .build: try build()
        case .latent(let id):
            post(.latent(try record(id)))
            if let stored = try storedSimulation(id) { post(stored) }
        case .explain(let latent): try explain(latent)
        case .simulate(let latent): try simulate(latent)
        case .simulateText(let id, let latent, let text): try simulateText(id: id, latent: latent, text: text)
        case .analyze(let id, let text):
            if analyzer == nil {
                post(.progress(JobProgress(title: "loading the model", done: 0, total: 1)))
                analyzer = try ContextAnalyzer(session: try loadSession(), workspace: workspace)
                post(.progress(nil))
            }
            post(.analysis(id: id, try analyzer!.analyze(text)))
        case .saveExplanation(let latent, let text):
            post(.saved(try explanations().save(latent: latent, text: text, source: "user")))
        case .revertExplanation(let latent, let versionID):
            let v = try explanations().revert(latent: latent, to: versionID)
            post(.saved(v))
            post(.notice("latent \(latent): reverted to the text of version \(versionID) (saved as version \(v.id))"))
        case .history(let latent):
            post(.history(latent: latent, try explanations().history(latent)))
        case .exportExplanations(let path):
            let url = URL(fileURLWithPath: (path as NSString).expandingTildeInPath)
            let n = try explanations().exportJSON(to: url)
            post(.notice("exported \(n) explanation\(n == 1 ? "" : "s") to \(url.path)"))
        case .importExplanations(let path):
            let url = URL(fileURLWithPath: (path as NSString).expandingTildeInPath)
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir) else {
                throw EngineError("\(url.path) does not exist; give a JSON file ({\"<latent id>\": \"text\"}) or a delphi explanations folder")
            }
            let store = try explanations()
            let n = isDir.boolValue ? try store.importDelphi(from: url) : try store.importJSON(from: url)
            post(.explanations(store.allCurrent()))
            post(.notice("imported \(n) explanation\(n == 1 ? "" : "s") from \(url.path)"))
        case .rewriteReport: post(.rewrite(try RewriteReport.load(workspace)))
        case .runRewrite(let options): try runRewrite(options)
        case .cancel: break
        }
    }

    private func open() throws {
        guard workspace.exists else {
            post(.missingWorkspace(path: workspace.directory.path))
            return
        }
        let manifest = try workspace.load()
        guard FileManager.default.fileExists(atPath: workspace.cacheDirectory.appendingPathComponent("cache.json").path) else {
            throw EngineError("the workspace at \(workspace.directory.path) has no latent cache yet; finish it with `loupe build --workspace \(workspace.directory.path)`")
        }
        let cache = try LatentCache(directory: workspace.cacheDirectory)
        self.cache = cache
        let summaries = try LatentIndex.load(cache: cache)
        let info = WorkspaceInfo(path: workspace.directory.path, name: workspace.directory.lastPathComponent, model: manifest.model,
                                 layer: manifest.layer, latents: manifest.latents, k: manifest.k, trainTokens: manifest.trainTokens,
                                 fvu: manifest.evaluation?.fvu, lossRecovered: manifest.evaluation?.lossRecovered)
        post(.opened(info, summaries))
        let current = try explanations().allCurrent()
        post(.explanations(current))
        post(.vocabulary(try vocabulary(manifest)))
        var latest: [Int: LatentScores] = [:]
        let store = try scores()
        for (latent, version) in current {
            if let s = store.latest(latent: latent, mode: simulatorKind, calibration: calibration), s.version == version.id {
                latest[latent] = s
            }
        }
        if !latest.isEmpty { post(.scores(latest)) }
    }

    private func scores() throws -> ScoreStore {
        if let scoreStore { return scoreStore }
        let s = try ScoreStore(workspace: workspace)
        scoreStore = s
        return s
    }

    /// The stored simulation of the latent's current explanation, if it was simulated before.
    private func storedSimulation(_ latent: Int) throws -> EngineEvent? {
        guard let version = try explanations().current(latent) else { return nil }
        let store = try scores()
        guard let s = store.latest(latent: latent, mode: simulatorKind, calibration: calibration), s.version == version.id else {
            return nil
        }
        return .simulation(latent: latent, scores: s, previous: store.previous(of: s), record: store.simulation(for: s))
    }

    private func localSimulator() throws -> SimulatorBackend {
        if let simulator { return simulator }
        post(.progress(JobProgress(title: "loading the simulator model", done: 0, total: 1)))
        let s = try Simulators.make(simulatorKind, workspace: workspace, session: try loadSession())
        simulator = s
        return s
    }

    private func scoringEvaluator() throws -> Evaluator {
        if let evaluator { return evaluator }
        let e = try Evaluator(workspace: workspace, tokenizer: try loadSession().tokenizer)
        evaluator = e
        return e
    }

    /// The LLM explainer's explanation of a latent opened without one, cached in the store (the
    /// bulk explainers' rule: it becomes current over a lexical one, never over a person's; if a
    /// person saved meanwhile, nothing is written).
    private func explain(_ latent: Int) throws {
        let store = try explanations()
        let before = store.current(latent)
        guard !store.history(latent).contains(where: { $0.source == "llm" }),
              before == nil || before?.source == "lexical" else {
            post(.explained(latent: latent))
            return
        }
        if llmExplainer == nil {
            let session = try loadSession()
            llmExplainer = try LLMExplainer(session: session, vocabulary: TokenVocabulary(tokenizer: session.tokenizer),
                                            prompt: try ExplainerPrompt.load())
        }
        post(.progress(JobProgress(title: "explaining latent \(latent)", done: 0, total: 1)))
        defer { post(.progress(nil)) }
        let text = try llmExplainer!.explain(try record(latent))
        guard !isCancelled, store.current(latent)?.id == before?.id, !text.isEmpty else {
            post(.explained(latent: latent))
            return
        }
        post(.saved(try store.save(latent: latent, text: text, source: "llm")))
    }

    private func simulate(_ latent: Int) throws {
        guard let version = try explanations().current(latent) else {
            throw EngineError("latent \(latent) has no explanation to simulate")
        }
        let simulator = try localSimulator()
        let evaluator = try scoringEvaluator()
        post(.progress(JobProgress(title: "simulating latent \(latent)", done: 0, total: 1)))
        defer { post(.progress(nil)) }
        do {
            var (result, record) = try evaluator.evaluate(latent: latent, explanation: version, backend: simulator, kind: simulatorKind,
                                                          calibration: calibration, shouldStop: { [weak self] in self?.isCancelled ?? true })
            // The scores go on screen at once; the controls and the loss delta (about a second more)
            // follow with the stored result.
            let store = try scores()
            post(.simulation(latent: latent, scores: result, previous: store.previous(of: result), record: record))
            post(.measuringLoss(latent: latent))
            let partner = try shuffledPartner(latent)
            result.controls = try evaluator.controls(latent: latent, own: version.text, shuffled: partner, backend: simulator, kind: simulatorKind,
                                                     calibration: calibration, shouldStop: { [weak self] in self?.isCancelled ?? true })
            result.lossDelta = try loadSplice().singleLatentDelta(latent: latent, windows: record.windows.map(\.tokens),
                                                                  values: record.windows.map(\.simulated))
            let stored = try store.append(result, simulation: record)
            post(.simulation(latent: latent, scores: stored, previous: store.previous(of: stored), record: record))
        } catch is SimulationCancelled {
            post(.notice("simulation of latent \(latent) cancelled"))
            if let stored = try storedSimulation(latent) { post(stored) } else {
                post(.failure("simulation of latent \(latent) cancelled; s runs it again"))
            }
        }
    }

    /// The shuffled control's explanation for a latent (`ShuffledPartners`, over the current explanations).
    private func shuffledPartner(_ latent: Int) throws -> (latent: Int, text: String)? {
        let current = try explanations().allCurrent()
        if partners == nil || partners?[latent] == nil, let cache {
            partners = ShuffledPartners.make(texts: current.mapValues(\.text), counts: try LatentIndex.load(cache: cache).map(\.count))
        }
        return partners?[latent].flatMap { p in current[p].map { (p, $0.text) } }
    }

    /// Model and transcoder spliced at the workspace's layer (loss deltas, the rewrite).
    private func loadSplice() throws -> Splice {
        if let splice { return splice }
        let manifest = try workspace.load()
        let transcoder = try Transcoder.load(directory: workspace.transcoderDirectory(layer: manifest.layer).path)
        let s = try Splice(model: try loadSession().model, transcoder: transcoder, layer: manifest.layer)
        splice = s
        return s
    }

    private func runRewrite(_ asked: RewriteOptions) throws {
        // The explorer's simulator runs it, whatever the last report used.
        var options = asked
        if asked.mode != simulatorKind && asked.windows == RewriteOptions.defaultWindows {
            options.windows = RewriteOptions.defaultWindows(for: simulatorKind)
        }
        options.mode = simulatorKind
        let session = try loadSession()
        let tokenizer = session.tokenizer
        let experiment = try RewriteExperiment(workspace: workspace, splice: try loadSplice(), backend: try localSimulator(),
                                               tokenText: { String(decoding: tokenizer.tokenBytes($0), as: UTF8.self) }, options: options)
        defer { post(.progress(nil)) }
        var stageStart = (stage: "", time: Clock.now, done: 0)
        do {
            let report = try experiment.run(progress: { [weak self] p in
                if p.stage != stageStart.stage { stageStart = (p.stage, Clock.now, p.done) }
                let elapsed = Clock.now - stageStart.time, done = p.done - stageStart.done
                let eta = done > 0 && elapsed > 1 ? elapsed / Double(done) * Double(p.total - p.done) : nil
                self?.post(.progress(JobProgress(title: "rewrite: \(p.stage)", done: Double(p.done), total: Double(p.total),
                                                 unit: p.stage == "simulate" ? "latents" : "settings", eta: eta, detail: p.detail)))
            }, shouldStop: { [weak self] in self?.isCancelled ?? true })
            post(.rewrite(report))
            post(.notice("rewrite done: \(report.results.count) settings on \(report.windows.count) windows"))
        } catch is SimulationCancelled {
            post(.notice("rewrite stopped; its simulations are kept, so running it again continues"))
        } catch is CancellationError {
            post(.notice("rewrite stopped; running it again continues"))
        }
    }

    private func simulateText(id: Int, latent: Int, text: String) throws {
        guard let version = try explanations().current(latent) else { throw EngineError("latent \(latent) has no explanation to simulate") }
        let simulator = try localSimulator()
        let tokenizer = try loadSession().tokenizer
        let ids = Array(tokenizer.encode(text).prefix(1024))
        // Contexts of at most 64 tokens, like the scoring windows.
        let contexts = stride(from: 0, to: ids.count, by: 64).map { start -> SimulationContext in
            let chunk = Array(ids[start..<min(start + 64, ids.count)])
            return SimulationContext(tokens: chunk, texts: chunk.map { String(decoding: tokenizer.tokenBytes($0), as: UTF8.self) })
        }
        post(.progress(JobProgress(title: "simulating latent \(latent) on the text", done: 0, total: 1)))
        defer { post(.progress(nil)) }
        let expected = try simulator.simulate(latent: latent, explanation: version.text, contexts: contexts, mode: simulatorKind.promptMode,
                                              shouldStop: { [weak self] in self?.isCancelled ?? true })
        let record = try self.record(latent)
        let simulated = calibration.apply(expected, record: record, trainTokens: cache?.manifest.trainTokens ?? 1)
        post(.textSimulation(id: id, latent: latent, simulated: simulated.flatMap { $0 }))
    }

    private func explanations() throws -> ExplanationStore {
        if let store { return store }
        let s = try ExplanationStore(workspace: workspace)
        store = s
        return s
    }

    private func resolvedModelPath(_ manifest: WorkspaceManifest?) throws -> String {
        let recorded = manifest.flatMap { $0.model == ModelFetch.defaultPath.path ? nil : $0.model }
        return try ModelFetch.resolve(modelPath ?? recorded, progress: { [weak self] in self?.post(.notice($0)) })
    }

    /// The tokenizer alone, read from the GGUF's metadata (fast; the weights stay unread).
    private func vocabulary(_ manifest: WorkspaceManifest) throws -> Vocabulary {
        let tokenizer: BPETokenizer
        if let session { tokenizer = session.tokenizer } else {
            tokenizer = try BPETokenizer(gguf: try GGUFFile(path: try resolvedModelPath(manifest)))
        }
        var texts: [String] = []
        texts.reserveCapacity(tokenizer.count)
        var special = Set<Int>()
        for id in 0..<tokenizer.count {
            if tokenizer.isSpecial(id) {
                special.insert(id)
                texts.append(tokenizer.tokenString(id))
            } else {
                // Bytes that are not UTF-8 on their own (part of a character) show as <0xAB>.
                let bytes = tokenizer.tokenBytes(id)
                texts.append(String(validating: bytes, as: UTF8.self) ?? tokenizer.display(id))
            }
        }
        return Vocabulary(texts: texts, special: special)
    }

    private func loadSession() throws -> Session {
        if let session { return session }
        let s = try Session(modelPath: try resolvedModelPath(try? workspace.load()), batch: LocalSimulator.batchRows)
        session = s
        return s
    }

    /// A latent's record; the last few decoded block files are kept.
    private func record(_ latent: Int) throws -> LatentRecord {
        guard let cache else { throw EngineError("the workspace is not open") }
        guard latent >= 0 && latent < cache.manifest.latents else {
            throw EngineError("latent \(latent) does not exist (0…\(cache.manifest.latents - 1))")
        }
        let file = cache.manifest.files[latent / cache.manifest.blockSize]
        if let hit = blocks.first(where: { $0.file == file }), let r = hit.records.first(where: { $0.latent == latent }) { return r }
        let records = try cache.records(in: file)
        blocks.append((file, records))
        if blocks.count > 3 { blocks.removeFirst() }
        guard let r = records.first(where: { $0.latent == latent }) else { return try cache.record(latent) }
        return r
    }

    private func build() throws {
        let reporter = Reporter(engine: self)
        let session = try loadSession()
        let builder = Builder(workspace: workspace, model: session.model, tokenizer: session.tokenizer,
                              modelPath: session.path, options: buildOptions, reporter: reporter)
        _ = try builder.run()
        post(.progress(nil))
        if isCancelled {
            post(.notice("build stopped; what is done is kept — b (or `loupe build`) resumes it"))
            post(.missingWorkspace(path: workspace.directory.path))
            return
        }
        post(.notice("workspace built"))
        try open()
    }

    /// Build progress → status-line events (at most ~10 a second), with a rate-based ETA.
    final class Reporter: BuildReporter {
        weak var engine: EngineThread?
        var step = "", total = 0, unit = ""
        var samples: [(Double, Int)] = []
        var last = 0.0

        init(engine: EngineThread) { self.engine = engine }

        var shouldStop: Bool { engine?.isCancelled ?? true }

        func begin(_ step: String, total: Int, unit: String) {
            self.step = step; self.total = total; self.unit = unit; samples = []
            engine?.post(.progress(JobProgress(title: step, done: 0, total: Double(total), unit: unit)))
        }

        func advance(_ done: Int, detail: String) {
            let now = Clock.now
            if samples.isEmpty || now - samples[samples.count - 1].0 >= 1 { samples.append((now, done)) }
            if samples.count > 30 { samples.removeFirst() }
            guard now - last >= 0.1 || done == total else { return }
            last = now
            let (t0, d0) = samples[0]
            let rate = now - t0 > 0.5 ? Double(done - d0) / (now - t0) : 0
            engine?.post(.progress(JobProgress(title: step, done: Double(done), total: Double(total), unit: unit,
                                               eta: rate > 0 ? Double(total - done) / rate : nil, detail: detail)))
        }

        func end(_ step: String, summary: String) { engine?.post(.notice("\(step): \(summary)")) }

        func note(_ message: String) { engine?.post(.notice(message)) }
    }
}
