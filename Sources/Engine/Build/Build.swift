import Foundation
import Kernels
import Model
import Storage
import Tokenizer
import Transcoder

/// What `loupe build` makes and how.
public struct BuildOptions: Sendable {
    /// Corpus files; nil for the default demo corpus (fetched on first use).
    public var corpusFiles: [String]?
    /// Layer 15 is the middle of SmolLM2-135M's 30, as the paper took layer 6 of Pythia-160m's 12:
    /// past the token-level features of early layers, before the output-specific ones of late layers.
    public var layer = 15
    /// What the dictionary reads and writes: the layer's MLP (a transcoder, the default) or the residual
    /// stream leaving the layer (an SAE, `loupe build --site residual`).
    public var site: DictionarySite = .mlp
    public var latents = 4608
    public var k = 32
    /// Training tokens (the held-out split comes on top: one window in `heldOutEvery`).
    public var trainTokens = 2_000_000
    public var windowLength = 64
    public var heldOutEvery = 20
    /// Held-out windows for the cross-entropy evaluation.
    public var evalWindows = 256
    /// Adds the linear skip path ŷ += W_skip·x (a "skip transcoder", as in the paper). With it the
    /// demo reaches FVU ≈ 0.25 after one pass where it stays near 0.37 without. Never for an SAE
    /// (a skip path from its input to its own reconstruction would learn the identity).
    public var skipConnection = true
    /// Passes over the training tokens (three take the demo's held-out FVU below 0.2).
    public var epochs = 3
    /// A sparsify checkpoint directory to use instead of training.
    public var transcoderDirectory: String?
    /// A transcoder in any format Loupe reads (`Dictionaries`, Transcoder/Formats) to use instead of
    /// training; ReLU and JumpReLU ones keep the `k` largest active latents per token.
    public var dictionaryPath: String?
    /// After the cache, lexical explanations and the trained simulator (`EngineService.finishBuild`).
    public var explainAndTrainSimulator = true
    /// sparsify's Adam settings, except two: AuxK also trains the encoder rows of dead latents (as in
    /// Gao et al.), so that it revives them — sparsify's fused encoder drops that gradient; and the
    /// learning rate is 3e-3 rather than sparsify's 2e-4/√(M/2¹⁴) = 3.8e-4, which is tuned for runs of
    /// billions of tokens: over ~6k steps it left 66% of latents dead and FVU near 0.5.
    public var trainer = TrainerOptions(learningRate: 3e-3, auxkTrainsEncoder: true)

    public init() {}
}

/// `loupe build`: corpus → activations → dictionary (a transcoder of the MLP or an SAE of the
/// residual stream, `BuildOptions.site`) → latent cache → evaluation, each step resumable and
/// recorded in `workspace.json`.
public final class Builder {
    public let workspace: Workspace
    public let model: LlamaModel
    public let tokenizer: BPETokenizer
    public let modelPath: String
    public let options: BuildOptions
    let reporter: ProgressReporter

    public init(workspace: Workspace, model: LlamaModel, tokenizer: BPETokenizer, modelPath: String, options: BuildOptions, reporter: ProgressReporter) {
        self.workspace = workspace
        self.model = model
        self.tokenizer = tokenizer
        self.modelPath = modelPath
        self.options = options
        self.reporter = reporter
    }

    public enum Step: String, CaseIterable, Sendable { case corpus, activations, train, cache, evaluate }

    /// Runs the given steps (all by default) and returns the final manifest.
    @discardableResult
    public func run(_ steps: [Step] = Step.allCases) throws -> WorkspaceManifest {
        guard options.layer >= 0 && options.layer < model.config.layers else {
            throw BuildError.layerOutOfRange(options.layer, layers: model.config.layers)
        }
        var manifest = try openManifest()
        for step in steps {
            if manifest.isDone(step.rawValue) && step != .evaluate { continue }
            let t0 = Date()
            let tokens: Int
            switch step {
            case .corpus: tokens = try buildCorpus(&manifest)
            case .activations: tokens = try buildActivations()
            case .train: tokens = try train()
            case .cache: tokens = try buildCache()
            case .evaluate: tokens = try evaluate(&manifest)
            }
            manifest.steps[step.rawValue] = .init(done: true, seconds: Date().timeIntervalSince(t0), tokens: tokens)
            try workspace.save(manifest)
        }
        return manifest
    }

    /// The manifest for these options: the existing one if it matches, else a fresh one (a
    /// workspace built with other settings is not mixed with this one).
    func openManifest() throws -> WorkspaceManifest {
        let sources = options.corpusFiles ?? ["default demo corpus: " + CorpusFetch.description]
        let fresh = WorkspaceManifest(model: modelPath, layer: options.layer, latents: options.latents, k: options.k, site: options.site,
                                      transcoderSource: try transcoderSource(), corpusSources: sources,
                                      trainTokens: 0, heldOutTokens: 0, windowLength: options.windowLength)
        if workspace.exists, let old = try? workspace.load() {
            if old.model == fresh.model && old.layer == fresh.layer && old.latents == fresh.latents && old.k == fresh.k && old.site == fresh.site
                && old.transcoderSource == fresh.transcoderSource && old.corpusSources == fresh.corpusSources {
                return old
            }
            throw BuildError.otherSettings(workspace: workspace.directory.path, layer: old.layer, latents: old.latents, k: old.k,
                                           site: old.site.title(layer: old.layer))
        }
        try workspace.save(fresh)
        return fresh
    }

    /// What the workspace records as its transcoder's source: "trained", a sparsify folder, or "<format>: <path>".
    func transcoderSource() throws -> String {
        if let p = options.dictionaryPath { return "\(try Dictionaries.detect(p).title): \(p)" }
        return options.transcoderDirectory ?? "trained"
    }

    // MARK: steps

    func buildCorpus(_ m: inout WorkspaceManifest) throws -> Int {
        reporter.begin("corpus", total: 0, unit: "files")
        let files = try options.corpusFiles ?? CorpusFetch.ensureDefault(progress: reporter.note)
        let windows = (options.trainTokens / options.windowLength) * options.heldOutEvery / (options.heldOutEvery - 1) + 1
        let corpus = try Corpus.build(files: files, tokenizer: tokenizer, windowLength: options.windowLength,
                                      heldOutEvery: options.heldOutEvery, maxWindows: windows, progress: reporter.note)
        try corpus.save(to: workspace.corpusDirectory, sources: files)
        m.trainTokens = corpus.trainingWindows.count * corpus.windowLength
        m.heldOutTokens = corpus.heldOutWindows.count * corpus.windowLength
        if m.trainTokens < options.trainTokens {
            reporter.note("the corpus holds \(m.trainTokens) training tokens, fewer than the \(options.trainTokens) asked for")
        }
        reporter.end("corpus", summary: "\(corpus.windowCount) windows of \(corpus.windowLength) tokens (\(m.trainTokens) train, \(m.heldOutTokens) held out)")
        return corpus.tokens.count
    }

    func corpus() throws -> Corpus { try Corpus.load(from: workspace.corpusDirectory).0 }

    func stores(_ corpus: Corpus) throws -> (train: ActivationStore, heldOut: ActivationStore) {
        let dir = workspace.activationsDirectory, columns = options.site.reconstructsInput ? 1 : 2
        return (try ActivationStore(directory: dir, name: "train", layer: options.layer, dim: model.config.dim,
                                    windowLength: corpus.windowLength, windows: corpus.trainingWindows, columns: columns),
                try ActivationStore(directory: dir, name: "heldout", layer: options.layer, dim: model.config.dim,
                                    windowLength: corpus.windowLength, windows: corpus.heldOutWindows, columns: columns))
    }

    func buildActivations() throws -> Int {
        let corpus = try corpus()
        let (train, held) = try stores(corpus)
        let total = train.rowCount + held.rowCount
        reporter.begin("activations", total: total, unit: "tokens")
        try train.fill(model: model, corpus: corpus, site: options.site, progress: { done, _ in reporter.advance(done, detail: "layer \(options.layer), train split") },
                       shouldStop: { reporter.shouldStop })
        try held.fill(model: model, corpus: corpus, site: options.site, progress: { done, _ in reporter.advance(train.rowCount + done, detail: "held-out split") },
                      shouldStop: { reporter.shouldStop })
        reporter.end("activations", summary: "\(total) tokens through layers 0…\(options.layer)")
        return total
    }

    func train() throws -> Int {
        let target = workspace.transcoderDirectory(layer: options.layer, site: options.site)
        if let path = options.dictionaryPath {
            let (t, d) = try Dictionaries.load(path, keep: options.k)
            try d.check(modelWidth: model.config.dim, layers: model.config.layers, buildable: true, layer: options.layer)
            guard (d.kind == .sae) == options.site.reconstructsInput else {
                throw BuildError.otherSite(source: d.configFile, found: d.kind == .sae ? "an SAE" : "a transcoder", site: options.site.title(layer: options.layer))
            }
            try t.save(directory: target.path)
            reporter.note("using the \(d.summary)" + (d.k == nil ? "; keeping each token's \(t.config.k) largest latents (--k)" : ""))
            return 0
        }
        if let source = options.transcoderDirectory {
            let t = try Transcoder.load(directory: source)
            guard t.d == model.config.dim else {
                throw BuildError.transcoderWidth(source: source, transcoder: t.d, model: model.config.dim)
            }
            guard t.config.transcode != options.site.reconstructsInput else {
                throw BuildError.otherSite(source: (source as NSString).appendingPathComponent("cfg.json"),
                                           found: t.config.transcode ? "a transcoder" : "an SAE", site: options.site.title(layer: options.layer))
            }
            try t.save(directory: target.path)
            reporter.note("using the transcoder from \(source) (\(t.m) latents, k \(t.config.k))")
            return 0
        }
        let corpus = try corpus()
        let store = try stores(corpus).train
        let batch = options.trainer.batchRows
        let plan = TrainingPlan(store: store, batchRows: batch, seed: options.trainer.seed, epochs: options.epochs,
                                skipFirstPositions: options.site.skipsFirstPosition)
        let state = workspace.trainingDirectory.path
        let trainer: TranscoderTrainer
        if FileManager.default.fileExists(atPath: (state as NSString).appendingPathComponent("trainer.json")) {
            trainer = try TranscoderTrainer.resume(directory: state)
            reporter.note("resuming training at step \(trainer.stepCount) of \(trainer.totalSteps)")
        } else if options.site.reconstructsInput {
            // An SAE trains in transcoder form with its input as target (Autoencoder.swift).
            trainer = TranscoderTrainer(transcoder: Transcoder.autoencoderForTraining(dIn: model.config.dim, latents: options.latents,
                                                                                      k: options.k, seed: options.trainer.seed),
                                        options: options.trainer, totalSteps: plan.steps)
        } else {
            let config = TranscoderConfig(dIn: model.config.dim, numLatents: options.latents, expansionFactor: options.latents / model.config.dim,
                                          k: options.k, skipConnection: options.skipConnection, transcode: true)
            trainer = TranscoderTrainer(transcoder: Transcoder(config: config, seed: options.trainer.seed), options: options.trainer,
                                        totalSteps: plan.steps)
        }
        reporter.begin("train", total: plan.steps, unit: "steps")
        var loaded: (shard: Int, x: FloatBuffer, y: FloatBuffer)?
        var recent: [StepStats] = []
        while trainer.stepCount < plan.steps {
            if reporter.shouldStop {
                try trainer.saveState(directory: state)
                throw CancellationError()
            }
            let b = plan.batch(trainer.stepCount)
            if loaded?.shard != b.shard {
                let (x, y) = try store.read(store.manifest.shards[b.shard])
                loaded = (b.shard, x, y)
            }
            let (x, y) = plan.gather(b, from: loaded!.x, loaded!.y, dim: model.config.dim)
            let stats = trainer.step(x: x.pointer, y: y.pointer, rows: b.rows.count)
            recent.append(stats)
            if recent.count > 50 { recent.removeFirst() }
            let fvu = recent.reduce(0) { $0 + $1.fvu } / Float(recent.count)
            reporter.advance(trainer.stepCount, detail: String(format: "FVU %.3f  dead %.1f%%  lr %.1e", fvu, stats.deadFraction * 100, stats.learningRate))
            if trainer.stepCount % 250 == 0 { try trainer.saveState(directory: state) }
        }
        try (options.site.reconstructsInput ? trainer.transcoder.asAutoencoder() : trainer.transcoder).save(directory: target.path)
        try trainer.saveState(directory: state)
        reporter.end("train", summary: "\(plan.steps) steps of \(batch) tokens")
        return plan.steps * batch
    }

    func transcoder() throws -> Transcoder {
        try Transcoder.load(directory: workspace.transcoderDirectory(layer: options.layer, site: options.site).path)
    }

    func buildCache() throws -> Int {
        let corpus = try corpus()
        let (train, held) = try stores(corpus)
        let tc = try transcoder()
        var builder = LatentCacheBuilder(directory: workspace.cacheDirectory, transcoder: tc, corpus: corpus)
        builder.skipFirstPositions = options.site.skipsFirstPosition
        reporter.begin("encode", total: train.rowCount + held.rowCount, unit: "tokens")
        try builder.encode(train, progress: { d, _ in reporter.advance(d, detail: "train split") }, shouldStop: { reporter.shouldStop })
        try builder.encode(held, progress: { d, _ in reporter.advance(train.rowCount + d, detail: "held-out split") }, shouldStop: { reporter.shouldStop })
        reporter.end("encode", summary: "\(train.rowCount + held.rowCount) tokens encoded")
        reporter.begin("cache", total: (tc.m + builder.blockSize - 1) / builder.blockSize, unit: "blocks")
        _ = try builder.aggregate(train: train, heldOut: held, model: model,
                                  progress: { d, _ in reporter.advance(d, detail: "latent statistics and windows") },
                                  shouldStop: { reporter.shouldStop })
        try LatentIndex.build(cache: LatentCache(directory: workspace.cacheDirectory))
        reporter.end("cache", summary: "\(tc.m) latents")
        return train.rowCount + held.rowCount
    }

    /// FVU of what the dictionary reconstructs on every held-out token (a residual SAE: all but each
    /// window's first position), the dead fraction, and the cross-entropy on the first `evalWindows`
    /// held-out windows of the base model, the dictionary spliced in, and what it writes zero- and
    /// mean-ablated (the mean over the held-out tokens the FVU counts).
    func evaluate(_ m: inout WorkspaceManifest) throws -> Int {
        let corpus = try corpus()
        let held = try stores(corpus).heldOut
        let tc = try transcoder()
        let d = model.config.dim, L = corpus.windowLength, skipFirst = options.site.skipsFirstPosition
        reporter.begin("evaluate", total: held.manifest.shards.count + 4, unit: "parts")
        // FVU over every held-out token the dictionary covers, and again without the outlier
        // positions (target norm past Evaluation.outlierFactor × the median norm of the first shard).
        var all = FVUSums(dim: d), typical = FVUSums(dim: d), outliers = 0
        var limit = Double.infinity
        for (i, shard) in held.manifest.shards.enumerated() {
            let (x, y) = try held.read(shard)
            let rows = shard.windows.count * L
            let yhat = FloatBuffer(count: rows * d)
            tc.forward(x.pointer, rows: rows, into: yhat.pointer)
            let counted = (0..<rows).filter { !(skipFirst && $0 % L == 0) }
            if i == 0, !counted.isEmpty {
                let squaredNorms = counted.map { FVUSums.squaredNorm(y.pointer + $0 * d, dim: d) }
                let median = squaredNorms.sorted()[squaredNorms.count / 2]
                limit = median * WorkspaceManifest.Evaluation.outlierFactor * WorkspaceManifest.Evaluation.outlierFactor
            }
            for r in counted {
                let norm = all.add(y.pointer + r * d, yhat.pointer + r * d)
                if norm <= limit { typical.add(y.pointer + r * d, yhat.pointer + r * d) } else { outliers += 1 }
            }
            reporter.advance(i + 1, detail: "FVU on held-out tokens")
        }
        let n = all.count
        let mean = all.sum.map { Float($0 / Double(max(n, 1))) }
        // Cross-entropy of base, spliced and ablated models on the first held-out windows.
        let windows = Array(corpus.heldOutWindows.prefix(options.evalWindows)).map { corpus.window($0) }
        var ce: [Double] = []
        let coupling = DictionaryHook(site: options.site)
        for (i, mode) in ["base", "dictionary", "zero", "mean"].enumerated() {
            var hooks: ForwardHooks?
            if mode != "base" {
                var captured: FloatBuffer?
                let hook = coupling.replacing(input: { v in
                    let b = FloatBuffer(count: v.rows * v.dim)
                    b.pointer.update(from: v.pointer, count: v.rows * v.dim)
                    captured = b
                }, replace: { v in
                    switch mode {
                    case "zero": v.pointer.update(repeating: 0, count: v.rows * v.dim)
                    case "mean": for r in 0..<v.rows { (v.pointer + r * d).update(from: mean, count: d) }
                    default: tc.forward(captured!.pointer, rows: v.rows, into: v.pointer)
                    }
                })
                hooks = ForwardHooks(layers: [options.layer: hook])
            }
            var total = 0.0, count = 0
            for start in stride(from: 0, to: windows.count, by: 16) {
                if reporter.shouldStop { throw CancellationError() }
                for row in try model.crossEntropies(batch: Array(windows[start..<min(start + 16, windows.count)]), hooks: hooks) {
                    total += row.reduce(0.0) { $0 + Double($1) }
                    count += row.count
                }
            }
            ce.append(total / Double(count))
            reporter.advance(held.manifest.shards.count + i + 1, detail: "cross-entropy: \(mode)")
        }
        let dead = try LatentCache(directory: workspace.cacheDirectory).allRecords().filter { $0.count == 0 }.count
        m.evaluation = .init(fvu: all.fvu, deadFraction: Double(dead) / Double(tc.m), ceBase: ce[0], ceTranscoder: ce[1],
                             ceZeroAblation: ce[2], ceMeanAblation: ce[3], tokens: windows.count * L,
                             fvuTypical: typical.fvu, outlierPositions: outliers)
        reporter.end("evaluate", summary: String(format: "FVU %.3f, dead %.1f%%, loss recovered %.3f (vs mean ablation %.3f)", m.evaluation!.fvu,
                                                  m.evaluation!.deadFraction * 100, m.evaluation!.lossRecovered,
                                                  m.evaluation!.lossRecoveredVsMean ?? .nan))
        return n + 4 * windows.count * L
    }
}

/// Running sums for a fraction of variance unexplained: Σ‖y − ŷ‖² over Σ‖y − ȳ‖².
struct FVUSums {
    var sse = 0.0, sumSq = 0.0, count = 0
    var sum: [Double]

    init(dim: Int) { sum = [Double](repeating: 0, count: dim) }

    /// Adds one row; returns its target's squared norm ‖y‖².
    @discardableResult
    mutating func add(_ y: UnsafePointer<Float>, _ yhat: UnsafePointer<Float>) -> Double {
        var rowSq = 0.0
        for j in sum.indices {
            let e = Double(y[j] - yhat[j]), v = Double(y[j])
            sse += e * e
            sum[j] += v
            rowSq += v * v
        }
        sumSq += rowSq
        count += 1
        return rowSq
    }

    /// ‖y‖² of one row, summed in Double as `add` sums it.
    static func squaredNorm(_ y: UnsafePointer<Float>, dim: Int) -> Double {
        (0..<dim).reduce(0.0) { $0 + Double(y[$1]) * Double(y[$1]) }
    }

    var fvu: Double { sse / (sumSq - sum.reduce(0) { $0 + $1 * $1 } / Double(max(count, 1))) }
}

/// The order training reads the stored activations: per epoch, shards in a seeded random order,
/// rows within each shard shuffled, `batchRows` rows a step. Step s always reads the same rows, so a
/// resumed run continues exactly where it stopped.
struct TrainingPlan {
    struct Batch { let shard: Int; let rows: ArraySlice<Int> }
    let batches: [Batch]
    var steps: Int { batches.count }

    /// `skipFirstPositions`: leave out each window's first row (a residual SAE's, `DictionarySite.skipsFirstPosition`).
    init(store: ActivationStore, batchRows: Int, seed: UInt64, epochs: Int = 1, skipFirstPositions: Bool = false) {
        var rng = SplitMix64(seed: seed ^ 0x5EED)
        var batches: [Batch] = []
        for _ in 0..<epochs {
            var order = Array(store.manifest.shards.indices)
            order.shuffle(using: &rng)
            for s in order {
                let L = store.manifest.windowLength
                var rows = Array(0..<store.manifest.shards[s].windows.count * L)
                if skipFirstPositions { rows.removeAll { $0 % L == 0 } }
                rows.shuffle(using: &rng)
                for start in stride(from: 0, to: rows.count - batchRows + 1, by: batchRows) {
                    batches.append(Batch(shard: s, rows: rows[start..<start + batchRows]))
                }
            }
        }
        self.batches = batches
    }

    func batch(_ step: Int) -> Batch { batches[step] }

    func gather(_ b: Batch, from x: FloatBuffer, _ y: FloatBuffer, dim d: Int) -> (FloatBuffer, FloatBuffer) {
        let bx = FloatBuffer(count: b.rows.count * d), by = FloatBuffer(count: b.rows.count * d)
        for (i, r) in b.rows.enumerated() {
            (bx.pointer + i * d).update(from: x.pointer + r * d, count: d)
            (by.pointer + i * d).update(from: y.pointer + r * d, count: d)
        }
        return (bx, by)
    }
}
