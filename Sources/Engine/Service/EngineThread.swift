import EngineAPI
import Foundation
import Storage

/// The engine on its own thread, for the explorer: requests queue up (a newer analysis or latent
/// replaces an older one still waiting) and run one at a time on an `EngineService`; answers go
/// into an inbox the run loop drains each frame. The model loads only when a request needs it.
public final class EngineThread: EngineClient, @unchecked Sendable {
    let service: EngineService
    let buildOptions: BuildOptions
    private let lock = NSCondition()
    private var queue: [EngineRequest] = []
    private var inbox: [EngineEvent] = []
    private var stopping = false
    private var cancelled = false
    private var thread: Thread?

    /// How the explorer simulates: the workspace's trained simulator when it has one (else the
    /// prompted all-at-once one; asked each time, so a simulator trained meanwhile is used),
    /// quantile-calibrated.
    var simulatorKind: SimulatorKind { Simulators.defaultKind(for: workspace) }
    let calibration = Calibration.quantile
    /// Per explained latent, the shuffled control's explanation (made on first use).
    private var partners: [Int: (latent: Int, text: String)]?

    public init(workspace: Workspace, modelPath: String? = nil, buildOptions: BuildOptions = BuildOptions()) {
        service = EngineService(workspace: workspace, modelPath: modelPath)
        self.buildOptions = buildOptions
        service.notice = { [weak self] in self?.post(.notice($0)) }
        let t = Thread { [weak self] in self?.loop() }
        t.name = "loupe-engine"
        t.stackSize = 8 << 20
        thread = t
        t.start()
    }

    deinit { stop() }

    var workspace: Workspace { service.workspace }

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
        case .rank:
            queue.removeAll { if case .rank = $0 { return true } else { return false } }
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

    /// Shows `title` on the status line while `body` loads something.
    private func loading<T>(_ title: String, _ body: () throws -> T) rethrows -> T {
        post(.progress(JobProgress(title: title, done: 0, total: 1)))
        defer { post(.progress(nil)) }
        return try body()
    }

    private func handle(_ request: EngineRequest) throws {
        let shouldStop: () -> Bool = { [weak self] in self?.isCancelled ?? true }
        switch request {
        case .open: try open()
        case .build: try build()
        case .latent(let id):
            post(.latent(try service.record(id)))
            if let stored = try storedSimulation(id) { post(stored) }
        case .explain(let latent):
            let saved = try loading("explaining latent \(latent)") { try service.explainIfMissing(latent, shouldStop: shouldStop) }
            post(saved.map { .saved($0) } ?? .explained(latent: latent))
        case .simulate(let latent): try simulate(latent)
        case .simulateText(let id, let latent, let text):
            let version = try service.currentExplanation(latent)
            _ = try loading("loading the simulator model") { try service.simulator(simulatorKind) }
            let simulated = try loading("simulating latent \(latent) on the text") {
                try service.simulate(latent: latent, explanation: version.text, text: text, kind: simulatorKind, calibration: calibration,
                                     shouldStop: shouldStop)
            }
            post(.textSimulation(id: id, latent: latent, simulated: simulated))
        case .analyze(let id, let text):
            let analyzer = try loading("loading the model") { try service.analyzer() }
            post(.analysis(id: id, try analyzer.analyze(text)))
        case .saveExplanation(let latent, let text):
            post(.saved(try service.explanations().save(latent: latent, text: text, source: .user)))
        case .revertExplanation(let latent, let versionID):
            let v = try service.explanations().revert(latent: latent, to: versionID)
            post(.saved(v))
            post(.notice("latent \(latent): reverted to the text of version \(versionID) (saved as version \(v.id))"))
        case .history(let latent):
            post(.history(latent: latent, try service.explanations().history(latent)))
        case .exportExplanations(let path):
            let url = URL(fileURLWithPath: (path as NSString).expandingTildeInPath)
            let n = try service.explanations().exportJSON(to: url)
            post(.notice("exported \(n) explanation\(n == 1 ? "" : "s") to \(url.path)"))
        case .importExplanations(let path):
            let expanded = (path as NSString).expandingTildeInPath
            let n = try service.explanations().importFile(at: expanded)
            post(.explanations(try service.explanations().allCurrent()))
            post(.notice("imported \(n) explanation\(n == 1 ? "" : "s") from \(expanded)"))
        case .rewriteReport: post(.rewrite(try RewriteReport.load(workspace)))
        case .runRewrite(let options): try runRewrite(options)
        case .steer, .ablate, .rank, .patch: try intervene(request, shouldStop: shouldStop)
        case .cancel: break
        }
    }

    private func open() throws {
        guard workspace.exists else {
            post(.missingWorkspace(path: workspace.directory.path))
            return
        }
        let manifest = try service.manifest()
        let summaries = try service.summaries()
        let info = WorkspaceInfo(path: workspace.directory.path, name: workspace.directory.lastPathComponent, model: manifest.model,
                                 layer: manifest.layer, latents: manifest.latents, k: manifest.k, trainTokens: manifest.trainTokens,
                                 fvu: manifest.evaluation?.fvu, lossRecovered: manifest.evaluation?.lossRecovered, site: manifest.site)
        post(.opened(info, summaries))
        let current = try service.explanations().allCurrent()
        post(.explanations(current))
        post(.vocabulary(Vocabulary(tokenizer: try service.tokenizer())))
        let store = try service.scores()
        let latest = current.compactMapValues { version in
            store.latest(latent: version.latent, mode: simulatorKind, calibration: calibration).flatMap { $0.version == version.id ? $0 : nil }
        }
        if !latest.isEmpty { post(.scores(latest)) }
    }

    /// The stored simulation of the latent's current explanation, if it was simulated before.
    private func storedSimulation(_ latent: Int) throws -> EngineEvent? {
        guard let version = try service.explanations().current(latent) else { return nil }
        let store = try service.scores()
        guard let s = store.latest(latent: latent, mode: simulatorKind, calibration: calibration), s.version == version.id else {
            return nil
        }
        return .simulation(latent: latent, scores: s, previous: store.previous(of: s), record: store.simulation(for: s))
    }

    private func simulate(_ latent: Int) throws {
        let version = try service.currentExplanation(latent)
        let simulator = try loading("loading the simulator model") { try service.simulator(simulatorKind) }
        if partners == nil { partners = try service.shuffledPartners(try service.explanations().allCurrent()) }
        post(.progress(JobProgress(title: "simulating latent \(latent)", done: 0, total: 1)))
        defer { post(.progress(nil)) }
        do {
            let store = try service.scores()
            // The scores go on screen at once; the controls and the loss delta (about a second more)
            // follow with the stored result.
            let stored = try service.score(latent: latent, version: version, backend: simulator, kind: simulatorKind, calibration: calibration,
                                           partner: partners?[latent], shouldStop: { [weak self] in self?.isCancelled ?? true }) { scores, record in
                post(.simulation(latent: latent, scores: scores, previous: store.previous(of: scores), record: record))
                post(.measuringLoss(latent: latent))
            }
            post(.simulation(latent: latent, scores: stored.scores, previous: store.previous(of: stored.scores), record: stored.record))
        } catch is CancellationError {
            post(.notice("simulation of latent \(latent) cancelled"))
            if let stored = try storedSimulation(latent) { post(stored) } else {
                post(.failure("simulation of latent \(latent) cancelled; s runs it again"))
            }
        }
    }

    private func runRewrite(_ asked: RewriteOptions) throws {
        // The explorer's simulator runs it, whatever the last report used.
        var options = asked
        if asked.mode != simulatorKind && asked.windows == RewriteOptions.defaultWindows {
            options.windows = RewriteOptions.defaultWindows(for: simulatorKind)
        }
        options.mode = simulatorKind
        defer { post(.progress(nil)) }
        var stage = "", rate = ProgressRate()
        do {
            let report = try service.rewrite(options, progress: { [weak self] p in
                if p.stage != stage { (stage, rate) = (p.stage, ProgressRate()) }
                let now = Clock.now
                rate.record(p.done, at: now)
                let eta = rate.eta(done: p.done, total: p.total, at: now)
                self?.post(.progress(JobProgress(title: "rewrite: \(p.stage)", done: Double(p.done), total: Double(p.total),
                                                 unit: p.stage == "simulate" ? "latents" : "settings", eta: eta, detail: p.detail)))
            }, shouldStop: { [weak self] in self?.isCancelled ?? true })
            post(.rewrite(report))
            post(.notice("rewrite done: \(report.results.count) settings on \(report.windows.count) windows"))
        } catch is CancellationError {
            post(.notice("rewrite stopped; its simulations are kept, so running it again continues"))
        }
    }

    private func build() throws {
        let reporter = Reporter(engine: self)
        let session = try service.session()
        let builder = Builder(workspace: workspace, model: session.model, tokenizer: session.tokenizer,
                              modelPath: session.path, options: buildOptions, reporter: reporter)
        do {
            _ = try builder.run()
            if !isCancelled && buildOptions.explainAndTrainSimulator {
                service.reopen()
                try service.finishBuild(reporter: reporter)
            }
        } catch is CancellationError {
            // Esc: said below, like a stop between steps.
        }
        post(.progress(nil))
        if isCancelled {
            post(.notice("build stopped — press b to resume (what is done is kept; `loupe build` resumes it too)"))
            post(.missingWorkspace(path: workspace.directory.path))
            return
        }
        post(.notice("workspace built"))
        service.reopen()
        try open()
    }

    /// Build progress → status-line events (at most ~10 a second), with `ProgressRate`'s ETA.
    final class Reporter: ProgressReporter {
        weak var engine: EngineThread?
        var step = "", total = 0, unit = ""
        var rate = ProgressRate()
        var last = 0.0

        init(engine: EngineThread) { self.engine = engine }

        var shouldStop: Bool { engine?.isCancelled ?? true }

        func begin(_ step: String, total: Int, unit: String) {
            self.step = step; self.total = total; self.unit = unit; rate = ProgressRate()
            engine?.post(.progress(JobProgress(title: step, done: 0, total: Double(total), unit: unit)))
        }

        func advance(_ done: Int, detail: String) {
            let now = Clock.now
            rate.record(done, at: now)
            guard now - last >= 0.1 || done == total else { return }
            last = now
            engine?.post(.progress(JobProgress(title: step, done: Double(done), total: Double(total), unit: unit,
                                               eta: rate.eta(done: done, total: total, at: now), detail: detail)))
        }

        func end(_ step: String, summary: String) { engine?.post(.notice("\(step): \(summary)")) }

        func note(_ message: String) { engine?.post(.notice(message)) }
    }
}
