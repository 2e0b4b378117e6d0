import Formats
import Foundation

/// A workspace folder: everything built for one (model, layer, corpus) — the corpus windows, the
/// stored activations, the transcoder and the latent cache — with `workspace.json` recording
/// what was asked for, which steps are done, their timings and the evaluation.
///
///     workspace.json                     WorkspaceManifest (below)
///     corpus/tokens.bin, corpus.json     the windows (Corpus)
///     activations/{train,heldout}-*.f16  the dictionary's input (and target) rows (ActivationStore)
///     training/                          the trainer's latest checkpoint (resumable)
///     transcoder/<hookpoint>/            the dictionary, sparsify's cfg.json + sae.safetensors
///                                        (layers.<L>.mlp for a transcoder, layers.<L> for a residual SAE)
///     cache/                             the latent cache (LatentCache)
public struct Workspace: Sendable {
    public let directory: URL

    public init(directory: URL) { self.directory = directory }

    public static var defaultDirectory: URL {
        Paths.dataDirectory.appendingPathComponent("workspaces/default", isDirectory: true)
    }

    public var manifestURL: URL { directory.appendingPathComponent("workspace.json") }
    public var corpusDirectory: URL { directory.appendingPathComponent("corpus", isDirectory: true) }
    public var activationsDirectory: URL { directory.appendingPathComponent("activations", isDirectory: true) }
    public var trainingDirectory: URL { directory.appendingPathComponent("training", isDirectory: true) }
    public var cacheDirectory: URL { directory.appendingPathComponent("cache", isDirectory: true) }
    /// The explanation log and the score store (ExplanationStore, ScoreStore), and the explorer's drafts.
    public var explanationsDirectory: URL { directory.appendingPathComponent("explanations", isDirectory: true) }
    public var draftsURL: URL { explanationsDirectory.appendingPathComponent("drafts.json") }
    /// The partial rewrite's report and its cached simulations.
    public var rewriteDirectory: URL { directory.appendingPathComponent("rewrite", isDirectory: true) }
    /// The trained simulator (TrainedSimulatorConfig) and its training statistics.
    public var simulatorDirectory: URL { directory.appendingPathComponent("simulator", isDirectory: true) }
    /// The dictionary's folder: `transcoder/<hookpoint>/`.
    public func transcoderDirectory(layer: Int, site: DictionarySite) -> URL {
        directory.appendingPathComponent("transcoder/\(site.hookpoint(layer: layer))", isDirectory: true)
    }

    /// The folder of the dictionary `manifest` describes.
    public func transcoderDirectory(_ manifest: WorkspaceManifest) -> URL { transcoderDirectory(layer: manifest.layer, site: manifest.site) }

    public var exists: Bool { FileManager.default.fileExists(atPath: manifestURL.path) }

    /// Whether the latent cache is finished (its `cache.json` is written last).
    public var hasCache: Bool { FileManager.default.fileExists(atPath: cacheDirectory.appendingPathComponent(LatentCache.manifestName).path) }

    public func load() throws -> WorkspaceManifest {
        guard exists else {
            throw WorkspaceError.noWorkspace(directory.path)
        }
        let m = try JSONFile.read(WorkspaceManifest.self, from: manifestURL)
        try m.check(path: manifestURL.path)
        return m
    }

    public func save(_ m: WorkspaceManifest) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try JSONFile.write(m, to: manifestURL)
    }
}

/// `workspace.json`.
public struct WorkspaceManifest: Codable, Equatable, Sendable {
    public struct Step: Codable, Equatable, Sendable {
        public var done: Bool
        public var seconds: Double
        /// Tokens this step processed (0 where not meaningful).
        public var tokens: Int

        public init(done: Bool, seconds: Double, tokens: Int) {
            self.done = done; self.seconds = seconds; self.tokens = tokens
        }
        public var tokensPerSecond: Double { seconds > 0 ? Double(tokens) / seconds : 0 }

        enum CodingKeys: String, CodingKey { case done, seconds, tokens }
    }

    /// Measured on held-out text.
    public struct Evaluation: Codable, Equatable, Sendable {
        /// Fraction of the variance of the MLP output the transcoder leaves unexplained.
        public var fvu: Double
        /// Fraction of latents that never fired on the training tokens.
        public var deadFraction: Double
        public var ceBase: Double
        public var ceTranscoder: Double
        public var ceZeroAblation: Double
        /// What the dictionary writes set to its mean over the held-out tokens; absent in workspaces
        /// evaluated before residual SAEs.
        public var ceMeanAblation: Double?
        public var tokens: Int
        /// The FVU without the positions whose target norm passes `Evaluation.outlierFactor` × the
        /// median norm (on the residual stream: attention-sink-sized positions, a handful that hold
        /// most of the variance and make `fvu` look near perfect), and how many positions those were.
        /// Absent in workspaces evaluated before.
        public var fvuTypical: Double?
        public var outlierPositions: Int?

        /// A position is an outlier when its target's norm passes this many times the median norm.
        public static let outlierFactor = 10.0

        public init(fvu: Double, deadFraction: Double, ceBase: Double, ceTranscoder: Double, ceZeroAblation: Double, ceMeanAblation: Double? = nil, tokens: Int,
                    fvuTypical: Double? = nil, outlierPositions: Int? = nil) {
            self.fvu = fvu; self.deadFraction = deadFraction; self.ceBase = ceBase; self.ceTranscoder = ceTranscoder; self.ceZeroAblation = ceZeroAblation
            self.ceMeanAblation = ceMeanAblation; self.tokens = tokens; self.fvuTypical = fvuTypical; self.outlierPositions = outlierPositions
        }
        /// (CE_zero − CE_transcoder) / (CE_zero − CE_base).
        public var lossRecovered: Double { (ceZeroAblation - ceTranscoder) / (ceZeroAblation - ceBase) }
        /// (CE_mean − CE_transcoder) / (CE_mean − CE_base).
        public var lossRecoveredVsMean: Double? { ceMeanAblation.map { ($0 - ceTranscoder) / ($0 - ceBase) } }

        enum CodingKeys: String, CodingKey {
            case fvu, deadFraction = "dead_fraction", ceBase = "ce_base", ceTranscoder = "ce_transcoder",
                 ceZeroAblation = "ce_zero_ablation", ceMeanAblation = "ce_mean_ablation", tokens, fvuTypical = "fvu_typical",
                 outlierPositions = "outlier_positions"
        }
    }

    public var formatVersion = 1
    public var model: String
    public var layer: Int
    public var latents: Int
    public var k: Int
    /// What the dictionary reads and writes (an MLP transcoder or a residual-stream SAE); `"site"` in
    /// the file, absent from workspaces written before residual SAEs, which hold MLP transcoders.
    public var site: DictionarySite = .mlp
    /// Where the transcoder came from: "trained" or the directory of a user's checkpoint.
    public var transcoderSource: String
    public var corpusSources: [String]
    public var trainTokens: Int
    public var heldOutTokens: Int
    public var windowLength: Int
    public var steps: [String: Step] = [:]
    public var evaluation: Evaluation?

    public init(model: String, layer: Int, latents: Int, k: Int, site: DictionarySite = .mlp, transcoderSource: String, corpusSources: [String], trainTokens: Int, heldOutTokens: Int, windowLength: Int, steps: [String: Step] = [:], evaluation: Evaluation? = nil) {
        self.model = model; self.layer = layer; self.latents = latents; self.k = k; self.site = site; self.transcoderSource = transcoderSource; self.corpusSources = corpusSources; self.trainTokens = trainTokens; self.heldOutTokens = heldOutTokens; self.windowLength = windowLength; self.steps = steps; self.evaluation = evaluation
    }

    /// The dictionary's hookpoint (`layers.L.mlp`, `layers.L`).
    public var hookpoint: String { site.hookpoint(layer: layer) }

    public func isDone(_ step: String) -> Bool { steps[step]?.done ?? false }

    /// Every number checked against `Limits` and the others (`WorkspaceError.badField` naming the
    /// file and field), so what reads the manifest can trust it: 0 ≤ layer < Limits.layers,
    /// 1 ≤ k ≤ latents, window_length ≥ 1, token counts ≥ 0, evaluation numbers finite.
    public func check(path: String) throws {
        func bad(_ field: String, _ reason: String) -> WorkspaceError { .badField(path: path, field: field, reason: reason) }
        func within(_ field: String, _ v: Int, _ r: ClosedRange<Int>) throws {
            guard r.contains(v) else { throw bad(field, "is \(v), expected \(r.lowerBound)…\(r.upperBound)") }
        }
        func finite(_ field: String, _ v: Double, atMost high: Double? = nil) throws {
            guard v.isFinite, v >= 0, v <= (high ?? .greatestFiniteMagnitude) else {
                throw bad(field, "is \(v), expected " + (high.map { "a number in 0…\($0)" } ?? "a finite number ≥ 0"))
            }
        }
        guard formatVersion == 1 else { throw bad("format_version", "is \(formatVersion), expected 1") }
        try within("layer", layer, 0...(Limits.layers - 1))
        try within("latents", latents, 1...Limits.latents)
        try within("k", k, 1...min(latents, Limits.topK))
        try within("window_length", windowLength, 1...Limits.windowLength)
        try within("train_tokens", trainTokens, 0...Limits.corpusTokens)
        try within("held_out_tokens", heldOutTokens, 0...Limits.corpusTokens)
        for (name, step) in steps.sorted(by: { $0.key < $1.key }) {
            try within("steps.\(name.prefix(40)).tokens", step.tokens, 0...Int.max)
            try finite("steps.\(name.prefix(40)).seconds", step.seconds)
        }
        if let e = evaluation {
            try finite("evaluation.fvu", e.fvu)
            try finite("evaluation.dead_fraction", e.deadFraction, atMost: 1)
            try finite("evaluation.ce_base", e.ceBase)
            try finite("evaluation.ce_transcoder", e.ceTranscoder)
            try finite("evaluation.ce_zero_ablation", e.ceZeroAblation)
            if let v = e.ceMeanAblation { try finite("evaluation.ce_mean_ablation", v) }
            if let v = e.fvuTypical { try finite("evaluation.fvu_typical", v) }
            if let v = e.outlierPositions { try within("evaluation.outlier_positions", v, 0...Limits.corpusTokens) }
            try within("evaluation.tokens", e.tokens, 0...Limits.corpusTokens)
        }
    }

    enum CodingKeys: String, CodingKey {
        case formatVersion = "format_version", model, layer, latents, k, site, transcoderSource = "transcoder_source",
             corpusSources = "corpus_sources", trainTokens = "train_tokens", heldOutTokens = "held_out_tokens",
             windowLength = "window_length", steps, evaluation
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        formatVersion = try c.decode(Int.self, forKey: .formatVersion)
        model = try c.decode(String.self, forKey: .model)
        layer = try c.decode(Int.self, forKey: .layer)
        latents = try c.decode(Int.self, forKey: .latents)
        k = try c.decode(Int.self, forKey: .k)
        site = try c.decodeIfPresent(DictionarySite.self, forKey: .site) ?? .mlp
        transcoderSource = try c.decode(String.self, forKey: .transcoderSource)
        corpusSources = try c.decode([String].self, forKey: .corpusSources)
        trainTokens = try c.decode(Int.self, forKey: .trainTokens)
        heldOutTokens = try c.decode(Int.self, forKey: .heldOutTokens)
        windowLength = try c.decode(Int.self, forKey: .windowLength)
        steps = try c.decode([String: Step].self, forKey: .steps)
        evaluation = try c.decodeIfPresent(Evaluation.self, forKey: .evaluation)
    }
}
