import Foundation
import Kernels
import Storage
import Tokenizer

/// What `loupe train-simulator` trains on and how.
public struct SimulatorTrainingOptions: Equatable, Sendable, Codable {
    /// The residual stream entering these layers is read; nil for `defaultLayers`.
    public var layers: [Int]?
    public var folds = 5
    public var foldSeed: UInt64 = 0x51_4D55_4C41
    /// Training windows per example, from the latent cache (training text): the top ones, one from
    /// each of this many quantile bins, and random training windows (mostly where it is silent).
    public var topWindows = 2
    public var quantileWindows = 3
    public var randomWindows = 2
    /// At most this many latents (evenly spaced over those with an explanation); nil for all.
    public var maxLatents: Int?
    public var seed: UInt64 = 17
    public var prompt = TrainedSimulatorConfig.defaultPrompt

    public init() {}

    /// At 4/15, 7/15 and 2/3 of the depth (8, 14, 20 of SmolLM2-135M's 30): the model runs only up to
    /// the last of them, so two thirds of it, and the last third's cost is saved on every prediction.
    public static func defaultLayers(depth: Int) -> [Int] {
        Array(Set([depth * 4 / 15, depth * 7 / 15, depth * 2 / 3].map { min(max($0, 0), depth - 1) })).sorted()
    }

    enum CodingKeys: String, CodingKey {
        case layers, folds, foldSeed = "fold_seed", topWindows = "top_windows", quantileWindows = "quantile_windows",
             randomWindows = "random_windows", maxLatents = "max_latents", seed, prompt
    }
}

/// One training example: a latent, one explanation version of it, its windows and targets
/// (activation / the latent's max, per token).
public struct SimulatorExample: Sendable {
    public var latent: Int
    public var version: ExplanationVersion
    public var contexts: [SimulationContext]
    public var targets: [[Float]]
}

/// Trains the trained simulator's heads: every example's windows read by the frozen model
/// (`HiddenStateReader`), the rows' ridge statistics kept per fold of latents, one head per fold
/// fitted on the other folds (`CrossFit`). Checkpointed (`simulator/training/`): an interrupted run
/// continues after the last example saved.
public final class SimulatorTrainer {
    public let workspace: Workspace
    public let session: Session
    public let options: SimulatorTrainingOptions
    let cache: LatentCache
    let corpus: Corpus

    public init(workspace: Workspace, session: Session, options: SimulatorTrainingOptions) throws {
        self.workspace = workspace
        self.session = session
        self.options = options
        guard options.folds >= 3 else { throw SimulatorError.tooFewFolds(options.folds) }
        cache = try LatentCache(directory: workspace.cacheDirectory)
        corpus = try Corpus.load(from: workspace.corpusDirectory).0
    }

    /// The same workspace, cache and corpus (already read) under other options.
    private init(_ other: SimulatorTrainer, options: SimulatorTrainingOptions) {
        workspace = other.workspace
        session = other.session
        self.options = options
        cache = other.cache
        corpus = other.corpus
    }

    /// The explanation versions to train on: per latent that fires, the newest of each machine
    /// explainer and its current one, distinct texts only.
    public func versions(store: ExplanationStore, counts: [Int]) -> [ExplanationVersion] {
        let current = store.allCurrent()
        var byLatent: [Int: [ExplanationVersion]] = [:]
        for source: ExplanationSource in [.lexical, .llm] {
            for (m, v) in store.allLatest(source: source) { byLatent[m, default: []].append(v) }
        }
        for (m, v) in current { byLatent[m, default: []].append(v) }
        var latents = byLatent.keys.filter { counts[safe: $0].map { $0 > 0 } ?? false }.sorted()
        if let cap = options.maxLatents, cap < latents.count {
            // Latents explained more than one way first (they teach the head to read both styles),
            // then the rest evenly spaced.
            let several = latents.filter { Set(byLatent[$0]!.map(\.text)).count > 1 }.prefix(cap)
            let rest = latents.filter { !several.contains($0) }
            let room = cap - several.count
            latents = (Array(several) + (0..<room).map { rest[$0 * rest.count / max(room, 1)] }).sorted()
        }
        return latents.flatMap { m -> [ExplanationVersion] in
            var seen = Set<String>()
            return byLatent[m]!.sorted { $0.id < $1.id }.filter { !$0.text.isEmpty && seen.insert($0.text).inserted }
        }
    }

    /// Random windows of training text with every token's codes, shared by all latents as negatives.
    struct NegativePool {
        var tokens: [[Int]] = []
        /// Per window, per token: latent → value.
        var codes: [[[Int: Float]]] = []
    }

    func negativePool(count: Int) throws -> NegativePool {
        var pool = NegativePool()
        guard count > 0 else { return pool }
        let manifestURL = workspace.activationsDirectory.appendingPathComponent("train.json")
        guard let manifest = try? JSONFile.read(ActivationStore.Manifest.self, from: manifestURL), !manifest.shards.isEmpty else {
            return pool
        }
        let L = manifest.windowLength, D = cache.manifest.displayLength, k = cache.manifest.k
        var rng = SplitMix64(seed: options.seed)
        var picks: [(shard: Int, window: Int, start: Int)] = []
        for _ in 0..<count {
            let s = Int(rng.next() % UInt64(manifest.shards.count))
            picks.append((s, Int(rng.next() % UInt64(manifest.shards[s].windows.count)), Int(rng.next() % UInt64(L - D + 1))))
        }
        for (s, group) in Dictionary(grouping: picks, by: \.shard).sorted(by: { $0.key < $1.key }) {
            let shard = manifest.shards[s]
            let url = workspace.cacheDirectory.appendingPathComponent("codes/" + shard.file.replacingOccurrences(of: ".f16", with: ".bin"))
            guard let data = FileManager.default.contents(atPath: url.path), data.count == shard.windows.count * L * k * 6 else {
                throw WorkspaceError.incompleteCodes(path: url.path)
            }
            for p in group {
                let w = shard.windows[p.window]
                pool.tokens.append((p.start..<p.start + D).map { Int(corpus.tokens[w * L + $0]) })
                pool.codes.append(data.withUnsafeBytes { raw in
                    (p.start..<p.start + D).map { t in
                        let base = (p.window * L + t) * k * 6
                        var row: [Int: Float] = [:]
                        for j in 0..<k {
                            let m = Int(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: base + 4 * j, as: UInt32.self)))
                            let v = Float(Float16(bitPattern: UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: base + 4 * k + 2 * j, as: UInt16.self))))
                            if v > 0 { row[m] = v }
                        }
                        return row
                    }
                })
            }
        }
        return pool
    }

    /// An example's windows: the first top window and others drawn from the top ones, one per drawn
    /// quantile bin, and random pool windows, seeded by (seed, latent, version).
    func example(_ version: ExplanationVersion, record: LatentRecord, pool: NegativePool, text: (Int) -> String) -> SimulatorExample {
        var rng = SplitMix64(seed: options.seed ^ (UInt64(version.latent) &* 0x9E37_79B9_7F4A_7C15) ^ UInt64(version.id))
        let top = record.windows.filter { $0.kind == 0 }
        var chosen: [LatentWindow] = []
        if let first = top.first { chosen.append(first) }
        var rest = Array(top.dropFirst())
        rest.shuffle(using: &rng)
        chosen += rest.prefix(max(0, options.topWindows - 1))
        var bins = Array(Set(record.windows.map(\.kind).filter { $0 > 0 })).sorted()
        bins.shuffle(using: &rng)
        for b in bins.prefix(options.quantileWindows) {
            let inBin = record.windows.filter { $0.kind == b }
            chosen.append(inBin[Int(rng.next() % UInt64(inBin.count))])
        }
        let scale = record.max > 0 ? 1 / record.max : 0
        var contexts = chosen.map { SimulationContext(tokens: $0.tokens, texts: $0.tokens.map(text)) }
        var targets = chosen.map { $0.activations.map { $0 * scale } }
        if !pool.tokens.isEmpty {
            for _ in 0..<options.randomWindows {
                let i = Int(rng.next() % UInt64(pool.tokens.count))
                contexts.append(SimulationContext(tokens: pool.tokens[i], texts: pool.tokens[i].map(text)))
                targets.append(pool.codes[i].map { ($0[version.latent] ?? 0) * scale })
            }
        }
        return SimulatorExample(latent: version.latent, version: version, contexts: contexts, targets: targets)
    }

    /// Adds an example's rows (its windows read from its explanation) to one fold's statistics.
    public static func accumulate(_ ex: SimulatorExample, reader: HiddenStateReader, into stats: inout RidgeStatistics,
                                  shouldStop: () -> Bool = { false }) throws {
        let F = reader.featureCount
        let x = try reader.features(explanation: ex.version.text, contexts: ex.contexts, shouldStop: shouldStop)
        let rows = ex.contexts.reduce(0) { $0 + $1.tokens.count }
        var flat = [Float](), y = [Float]()
        flat.reserveCapacity(rows * F)
        for (c, feats) in x.enumerated() { flat += feats; y += ex.targets[c] }
        flat.withUnsafeBufferPointer { xp in
            y.withUnsafeBufferPointer { yp in stats.add(xp.baseAddress!, rows: rows, y: yp.baseAddress!) }
        }
    }

    /// One head per fold, fitted on the other folds (`CrossFit.head`), with its penalty and its
    /// out-of-fold Pearson r on its own fold's rows.
    public static func fitHeads(_ folds: [RidgeStatistics], shouldStop: () -> Bool = { false }) throws
        -> (heads: [RidgeHead], alphas: [Double], outOfFold: [Double?]) {
        var heads: [RidgeHead] = [], alphas: [Double] = [], oof: [Double?] = []
        for f in folds.indices {
            if shouldStop() { throw CancellationError() }
            let (h, a) = try CrossFit.head(for: f, folds: folds)
            heads.append(h)
            alphas.append(a)
            oof.append(folds[f].pearson(h))
        }
        return (heads, alphas, oof)
    }

    /// A memoized token id → text.
    static func tokenTexts(_ tokenizer: BPETokenizer) -> (Int) -> String {
        var texts: [Int: String] = [:]
        return { id in
            if let t = texts[id] { return t }
            let t = String(decoding: tokenizer.tokenBytes(id), as: UTF8.self)
            texts[id] = t
            return t
        }
    }

    /// One window of a training example for choosing a detection threshold: the fold of its latent,
    /// its largest prediction (clamped, a fraction of the latent's max) and whether it fires.
    public struct DetectionWindow: Equatable, Sendable {
        public var fold: Int
        public var maxPrediction: Float
        public var fires: Bool
        public init(fold: Int, maxPrediction: Float, fires: Bool) { self.fold = fold; self.maxPrediction = maxPrediction; self.fires = fires }
    }

    /// Per head f, the threshold t on 0.02, 0.04 … 0.98 that maximizes the balanced accuracy of
    /// "the window's largest prediction > t" against "the window fires" over the windows of the
    /// *other* folds (ties: the t nearest 0.5), and that balanced accuracy on head f's own fold's
    /// windows at it (nil where a class is empty). A latent's own windows never choose the
    /// threshold that reads it.
    public static func chooseDetection(_ windows: [DetectionWindow], folds: Int) -> (thresholds: [Float], balancedAccuracy: [Double?]) {
        let grid = (1...49).map { Float($0) / 50 }
        func balanced(_ ws: [DetectionWindow], _ t: Float) -> Double? {
            Detection.rates(ws.map { ($0.fires, $0.maxPrediction > t) }).balanced
        }
        var thresholds: [Float] = [], accuracy: [Double?] = []
        for f in 0..<folds {
            let others = windows.filter { $0.fold != f }, own = windows.filter { $0.fold == f }
            var best: (t: Float, ba: Double) = (0.5, -1)
            for t in grid {
                guard let ba = balanced(others, t) else { continue }
                if ba > best.ba + 1e-12 || (abs(ba - best.ba) <= 1e-12 && abs(t - 0.5) < abs(best.t - 0.5)) { best = (t, ba) }
            }
            thresholds.append(best.t)
            accuracy.append(balanced(own, best.t))
        }
        return (thresholds, accuracy)
    }

    /// Each head's uncalibrated detection threshold (`TrainedSimulator.detection`), chosen on up to
    /// `examples` of the training examples (evenly spaced), each read by the head of its own fold
    /// (fitted without it): `chooseDetection`. About a third of a second per example on 2 AVX2 cores.
    public func detectionThresholds(versions: [ExplanationVersion], reader: HiddenStateReader, heads: [RidgeHead], examples: Int = 300,
                                    progress: (Int, Int) -> Void = { _, _ in }, shouldStop: () -> Bool) throws
        -> (thresholds: [Float], balancedAccuracy: [Double?]) {
        let picked = versions.count <= examples ? versions : (0..<examples).map { versions[$0 * versions.count / examples] }
        let pool = try negativePool(count: options.randomWindows > 0 ? 256 : 0)
        let text = Self.tokenTexts(session.tokenizer)
        let records = LatentRecordReader(cache: cache, keep: 1)
        let F = reader.featureCount
        var windows: [DetectionWindow] = []
        for (i, v) in picked.enumerated() {
            if shouldStop() { throw CancellationError() }
            let f = TrainedSimulatorConfig.fold(latent: v.latent, folds: options.folds, seed: options.foldSeed)
            let ex = example(v, record: try records.record(v.latent), pool: pool, text: text)
            let x = try reader.features(explanation: v.text, contexts: ex.contexts, shouldStop: shouldStop)
            for (c, feats) in x.enumerated() {
                let top = feats.withUnsafeBufferPointer { p in
                    ex.contexts[c].tokens.indices.map { min(1, max(0, heads[f].predict(p.baseAddress! + $0 * F))) }.max() ?? 0
                }
                windows.append(DetectionWindow(fold: f, maxPrediction: top, fires: ex.targets[c].contains { $0 > 0 }))
            }
            progress(i + 1, picked.count)
        }
        return Self.chooseDetection(windows, folds: options.folds)
    }

    /// Chooses the detection thresholds of the workspace's trained simulator anew (the heads stay
    /// as they are), on the explanation versions it was trained on, and saves them in its head
    /// file; for a simulator trained before thresholds existed.
    public func redoDetection(progress: (Int, Int) -> Void, shouldStop: () -> Bool) throws -> TrainedSimulatorConfig {
        // The thresholds there are replaced, so not read (a damaged one is what this mends).
        let simulator = try TrainedSimulator(workspace: workspace, session: session, readingDetection: false)
        var config = simulator.config
        // Read the examples as the simulator was trained: its folds and windows, not this run's options.
        var o = options
        o.folds = config.folds
        o.foldSeed = config.foldSeed
        if let t = config.training { (o.topWindows, o.quantileWindows, o.randomWindows) = (t.topWindows, t.quantileWindows, t.randomWindows) }
        let trainer = SimulatorTrainer(self, options: o)
        let store = try ExplanationStore(workspace: workspace)
        let byLatent = Dictionary(grouping: config.explanations, by: \.latent)
        let versions = byLatent.keys.sorted().flatMap { m in
            store.history(m).filter { v in byLatent[m]!.contains { $0.version == v.id } }
        }
        guard versions.count >= o.folds * 2 else { throw SimulatorError.tooFewExplanations(versions.count) }
        let detection = try trainer.detectionThresholds(versions: versions, reader: simulator.reader, heads: simulator.heads,
                                                progress: progress, shouldStop: shouldStop)
        config.training?.detection = detection.thresholds.map(Double.init)
        config.training?.detectionBalancedAccuracy = detection.balancedAccuracy
        try TrainedSimulator.save(config: config, heads: simulator.heads, detection: detection.thresholds, to: workspace)
        return config
    }

    /// Trains (or continues) and saves the simulator; returns its config and heads.
    public func run(progress: (Int, Int, String) -> Void, note: (String) -> Void = { _ in },
                    shouldStop: () -> Bool) throws -> (TrainedSimulatorConfig, [RidgeHead]) {
        let started = Clock.now
        let store = try ExplanationStore(workspace: workspace)
        let counts = try LatentIndex.load(cache: cache).map(\.count)
        let versions = self.versions(store: store, counts: counts)
        guard versions.count >= options.folds * 2 else {
            throw SimulatorError.tooFewExplanations(versions.count)
        }
        let layers = options.layers ?? SimulatorTrainingOptions.defaultLayers(depth: session.model.config.layers)
        let reader = try HiddenStateReader(session: session, layers: layers, prompt: options.prompt)
        let F = reader.featureCount
        let pool = try negativePool(count: options.randomWindows > 0 ? 256 : 0)
        let tokenizer = session.tokenizer
        let text = Self.tokenTexts(tokenizer)
        let fold = { (m: Int) in TrainedSimulatorConfig.fold(latent: m, folds: self.options.folds, seed: self.options.foldSeed) }

        var checkpoint = try TrainingCheckpoint.load(workspace: workspace, options: options, versions: versions.map(\.id), dim: F)
            ?? TrainingCheckpoint(options: options, versions: versions.map(\.id), done: 0, windows: 0,
                                  folds: (0..<options.folds).map { _ in RidgeStatistics(dim: F) })
        if checkpoint.done > 0 { note("continuing from example \(checkpoint.done) of \(versions.count)") }
        var lastSave = Clock.now
        let records = LatentRecordReader(cache: cache, keep: 1)
        func record(_ m: Int) throws -> LatentRecord { try records.record(m) }
        progress(checkpoint.done, versions.count, "")
        var i = checkpoint.done
        while i < versions.count {
            if shouldStop() {
                try checkpoint.save(workspace: workspace)
                throw CancellationError()
            }
            let v = versions[i]
            let ex = example(v, record: try record(v.latent), pool: pool, text: text)
            try Self.accumulate(ex, reader: reader, into: &checkpoint.folds[fold(v.latent)], shouldStop: shouldStop)
            checkpoint.windows += ex.contexts.count
            i += 1
            checkpoint.done = i
            progress(i, versions.count, "latent \(v.latent) (\(v.source))")
            if Clock.now - lastSave > 120 {
                try checkpoint.save(workspace: workspace)
                lastSave = Clock.now
            }
        }
        try checkpoint.save(workspace: workspace)

        note("fitting \(options.folds) heads of \(F) weights (penalty cross-validated within each head's folds)")
        let (heads, alphas, oof) = try Self.fitHeads(checkpoint.folds, shouldStop: shouldStop)
        note("choosing each head's detection threshold on the other folds' training windows")
        let detection = try detectionThresholds(versions: versions, reader: reader, heads: heads, shouldStop: shouldStop)
        let config = TrainedSimulatorConfig(
            model: URL(fileURLWithPath: session.path).lastPathComponent, vocabSize: tokenizer.count, modelDim: session.model.config.dim,
            layers: layers, prompt: options.prompt, matchFeatures: ExplanationMatch.featureNames, folds: options.folds,
            foldSeed: options.foldSeed,
            training: .init(latents: Set(versions.map(\.latent)).count, examples: versions.count, windows: checkpoint.windows,
                            tokens: Int(checkpoint.folds.reduce(0) { $0 + $1.count }), seconds: Clock.now - started,
                            topWindows: options.topWindows, quantileWindows: options.quantileWindows, randomWindows: options.randomWindows,
                            alphas: alphas, outOfFoldPearson: oof, detection: detection.thresholds.map(Double.init),
                            detectionBalancedAccuracy: detection.balancedAccuracy),
            explanations: versions.map { .init(latent: $0.latent, version: $0.id, source: $0.source) })
        try TrainedSimulator.save(config: config, heads: heads, detection: detection.thresholds, to: workspace)
        return (config, heads)
    }
}

extension RidgeStatistics {
    /// Pearson r of the head's (unclamped) predictions with the targets over these rows.
    public func pearson(_ head: RidgeHead) -> Double? {
        guard count >= 2 else { return nil }
        let d = dim, w = head.weight.map(Double.init), b = Double(head.bias)
        var wS = 0.0, wXY = 0.0, wGw = 0.0
        for i in 0..<d { wS += w[i] * sum[i]; wXY += w[i] * sumXY[i] }
        for i in 0..<d where w[i] != 0 {
            var row = 0.0
            for j in 0..<d where w[j] != 0 { row += gram[i <= j ? i * d + j : j * d + i] * w[j] }
            wGw += w[i] * row
        }
        let sp = wS + count * b, spy = wXY + b * sumY, spp = wGw + 2 * b * wS + count * b * b
        let cov = spy / count - sp / count * sumY / count
        let vp = spp / count - (sp / count) * (sp / count), vy = sumYY / count - (sumY / count) * (sumY / count)
        guard vp > 0, vy > 0 else { return nil }
        return cov / (vp * vy).squareRoot()
    }
}

/// `simulator/training/`: the statistics gathered so far and which examples they hold.
///
///     progress.json   {"options": …, "versions": [ids in order], "done": N, "windows": W, "stats": "stats-N.bin"}
///     stats-N.bin     the statistics of the first N examples, per fold: f64 count, sumY, sumYY, then D × f64 sum, D × f64 sumXY, D×D × f64 Gram
struct TrainingCheckpoint {
    struct Progress: Codable {
        var options: SimulatorTrainingOptions
        var versions: [Int]
        var done: Int
        var windows: Int
        /// The statistics file holding exactly the first `done` examples.
        var stats: String
    }

    var options: SimulatorTrainingOptions
    var versions: [Int]
    var done: Int
    var windows: Int
    var folds: [RidgeStatistics]

    static func directory(_ ws: Workspace) -> URL { ws.simulatorDirectory.appendingPathComponent("training", isDirectory: true) }

    /// The checkpoint if it belongs to the same options and examples (in order); nil otherwise.
    static func load(workspace: Workspace, options: SimulatorTrainingOptions, versions: [Int], dim: Int) throws -> TrainingCheckpoint? {
        let dir = directory(workspace)
        guard let progress = try? JSONFile.read(Progress.self, from: dir.appendingPathComponent("progress.json")),
              progress.options == options, progress.done <= versions.count, Array(versions.prefix(progress.done)) == Array(progress.versions.prefix(progress.done)),
              let data = FileManager.default.contents(atPath: dir.appendingPathComponent(progress.stats).path),
              data.count == options.folds * 8 * (3 + 2 * dim + dim * dim) else { return nil }
        var folds: [RidgeStatistics] = []
        data.withUnsafeBytes { raw in
            var o = 0
            func next() -> Double { defer { o += 8 }; return Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: o, as: UInt64.self))) }
            for _ in 0..<options.folds {
                var s = RidgeStatistics(dim: dim)
                s.count = next(); s.sumY = next(); s.sumYY = next()
                for i in 0..<dim { s.sum[i] = next() }
                for i in 0..<dim { s.sumXY[i] = next() }
                for i in 0..<dim * dim { s.gram[i] = next() }
                folds.append(s)
            }
        }
        return TrainingCheckpoint(options: options, versions: versions, done: progress.done, windows: progress.windows, folds: folds)
    }

    func save(workspace: Workspace) throws {
        let dir = Self.directory(workspace)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        var data = Data()
        func put(_ x: Double) { withUnsafeBytes(of: x.bitPattern.littleEndian) { data.append(contentsOf: $0) } }
        for s in folds {
            data.reserveCapacity(folds.count * 8 * (3 + 2 * s.dim + s.dim * s.dim))
            put(s.count); put(s.sumY); put(s.sumYY)
            s.sum.forEach(put); s.sumXY.forEach(put); s.gram.forEach(put)
        }
        // Statistics first, then the progress naming them, then the old statistics go: a run killed
        // anywhere leaves a progress file whose statistics match it.
        let name = "stats-\(done).bin"
        try data.write(to: dir.appendingPathComponent(name), options: .atomic)
        try JSONFile.write(Progress(options: options, versions: versions, done: done, windows: windows, stats: name),
                           to: dir.appendingPathComponent("progress.json"))
        for old in (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? [] where old.hasPrefix("stats-") && old != name {
            try? FileManager.default.removeItem(at: dir.appendingPathComponent(old))
        }
    }
}
