import Foundation

/// A workspace folder: everything built for one (model, layer, corpus) — the corpus windows, the
/// stored activations, the transcoder and the latent cache — with `workspace.json` recording
/// what was asked for, which steps are done, their timings and the evaluation.
///
///     workspace.json                     WorkspaceManifest (below)
///     corpus/tokens.bin, corpus.json     the windows (Corpus)
///     activations/{train,heldout}-*.f16  MLP input/output pairs of the layer (ActivationStore)
///     training/                          the trainer's latest checkpoint (resumable)
///     transcoder/layers.<L>.mlp/         the transcoder, sparsify's cfg.json + sae.safetensors
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
    public func transcoderDirectory(layer: Int) -> URL {
        directory.appendingPathComponent("transcoder/\(WorkspaceManifest.hookpoint(layer: layer))", isDirectory: true)
    }

    public var exists: Bool { FileManager.default.fileExists(atPath: manifestURL.path) }

    /// Whether the latent cache is finished (its `cache.json` is written last).
    public var hasCache: Bool { FileManager.default.fileExists(atPath: cacheDirectory.appendingPathComponent(LatentCache.manifestName).path) }

    public func load() throws -> WorkspaceManifest {
        guard exists else {
            throw WorkspaceError.noWorkspace(directory.path)
        }
        return try JSONFile.read(WorkspaceManifest.self, from: manifestURL)
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
        public var tokens: Int

        public init(fvu: Double, deadFraction: Double, ceBase: Double, ceTranscoder: Double, ceZeroAblation: Double, tokens: Int) {
            self.fvu = fvu; self.deadFraction = deadFraction; self.ceBase = ceBase; self.ceTranscoder = ceTranscoder; self.ceZeroAblation = ceZeroAblation; self.tokens = tokens
        }
        /// (CE_zero − CE_transcoder) / (CE_zero − CE_base).
        public var lossRecovered: Double { (ceZeroAblation - ceTranscoder) / (ceZeroAblation - ceBase) }

        enum CodingKeys: String, CodingKey {
            case fvu, deadFraction = "dead_fraction", ceBase = "ce_base", ceTranscoder = "ce_transcoder",
                 ceZeroAblation = "ce_zero_ablation", tokens
        }
    }

    public var formatVersion = 1
    public var model: String
    public var layer: Int
    public var latents: Int
    public var k: Int
    /// Where the transcoder came from: "trained" or the directory of a user's checkpoint.
    public var transcoderSource: String
    public var corpusSources: [String]
    public var trainTokens: Int
    public var heldOutTokens: Int
    public var windowLength: Int
    public var steps: [String: Step] = [:]
    public var evaluation: Evaluation?

    public init(model: String, layer: Int, latents: Int, k: Int, transcoderSource: String, corpusSources: [String], trainTokens: Int, heldOutTokens: Int, windowLength: Int, steps: [String: Step] = [:], evaluation: Evaluation? = nil) {
        self.model = model; self.layer = layer; self.latents = latents; self.k = k; self.transcoderSource = transcoderSource; self.corpusSources = corpusSources; self.trainTokens = trainTokens; self.heldOutTokens = heldOutTokens; self.windowLength = windowLength; self.steps = steps; self.evaluation = evaluation
    }

    public static func hookpoint(layer: Int) -> String { "layers.\(layer).mlp" }

    public func isDone(_ step: String) -> Bool { steps[step]?.done ?? false }

    enum CodingKeys: String, CodingKey {
        case formatVersion = "format_version", model, layer, latents, k, transcoderSource = "transcoder_source",
             corpusSources = "corpus_sources", trainTokens = "train_tokens", heldOutTokens = "held_out_tokens",
             windowLength = "window_length", steps, evaluation
    }
}
