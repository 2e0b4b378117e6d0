import Foundation
import Kernels

/// The partial rewrite (../shared/PAPER.md, step 6): on held-out windows, the next-token loss of
/// the base model, of the transcoder spliced in, of the MLP output zero- and mean-ablated, and of
/// the transcoder with a fraction f of its latents' encoder values replaced by their simulations
/// (the latents chosen best-scored first or at random; uncalibrated or quantile-normalized). Only
/// the chosen latents' values change; the top k is taken again, decoded (with the skip path) and
/// patched in at every position. `RewriteExperiment` runs it; this file holds its settings and
/// its report (`<workspace>/rewrite/report.json`).

/// How the latents to replace are picked.
public enum RewriteSelection: String, Codable, CaseIterable, Sendable {
    /// Best explanation first: by the Pearson r of the current explanation's latest score;
    /// latents without a score follow, in a seeded random order.
    case score
    /// A seeded random order.
    case random
}

/// What `loupe rewrite` runs.
public struct RewriteOptions: Codable, Equatable, Sendable {
    public static let defaultFractions: [Double] = [0.01, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0]
    public static let defaultWindows = 3
    /// With the trained simulator (one position per prediction, ~3× cheaper than prompted rows),
    /// the default covers 3× the tokens in about the same time.
    public static func defaultWindows(for kind: SimulatorKind) -> Int { kind == .trained ? 9 : defaultWindows }

    public var fractions: [Double]
    public var selections: [RewriteSelection]
    public var calibrations: [Calibration]
    /// Held-out windows, spread over the held-out split (`RewriteExperiment.windows`).
    public var windows: Int
    /// Tokens per window (the paper's contexts are 32 tokens).
    public var length: Int
    /// The simulator (stored as `SimulatorKind.storedMode`: "trained", or the prompted "all" / "last").
    public var mode: SimulatorKind
    public var seed: UInt64
    /// Bootstrap resamples of the windows.
    public var bootstrap: Int

    public init(fractions: [Double] = defaultFractions, selections: [RewriteSelection] = RewriteSelection.allCases,
                calibrations: [Calibration] = Calibration.allCases, windows: Int = defaultWindows, length: Int = 32,
                mode: SimulatorKind = .promptedAll, seed: UInt64 = 7, bootstrap: Int = 2000) {
        self.fractions = fractions
        self.selections = selections
        self.calibrations = calibrations
        self.windows = windows
        self.length = length
        self.mode = mode
        self.seed = seed
        self.bootstrap = bootstrap
    }
}

/// One setting of the experiment.
public struct RewriteSetting: Codable, Hashable, Sendable {
    public enum Kind: String, Codable, Sendable {
        case base, transcoder, zeroAblation = "zero_ablation", meanAblation = "mean_ablation"
        /// The transcoder with every latent's code 0: only its skip path (W_skip·x) and b_dec. The
        /// control a simulated setting must beat to show its latents add anything.
        case latentsOff = "latents_off"
        case simulated
    }
    public var kind: Kind
    public var fraction: Double?
    public var selection: RewriteSelection?
    public var calibration: Calibration?

    public init(kind: Kind, fraction: Double? = nil, selection: RewriteSelection? = nil, calibration: Calibration? = nil) {
        self.kind = kind
        self.fraction = fraction
        self.selection = selection
        self.calibration = calibration
    }

    public static func simulated(_ fraction: Double, _ selection: RewriteSelection, _ calibration: Calibration) -> RewriteSetting {
        RewriteSetting(kind: .simulated, fraction: fraction, selection: selection, calibration: calibration)
    }

    /// "base", "transcoder", "zero ablation", "mean ablation", "latents off", "f=0.10 score quantile".
    public var label: String {
        switch kind {
        case .base: return "base"
        case .transcoder: return "transcoder"
        case .zeroAblation: return "zero ablation"
        case .meanAblation: return "mean ablation"
        case .latentsOff: return "latents off"
        case .simulated:
            return "f=" + Self.fractionText(fraction ?? 0) + " \(selection?.rawValue ?? "?") \(calibration?.rawValue ?? "?")"
        }
    }

    /// 0.01 → "0.01", 0.1 → "0.10", 1 → "1.00".
    public static func fractionText(_ f: Double) -> String {
        f < 0.01 ? String(format: "%.3f", f) : String(format: "%.2f", f)
    }
}

/// A latent whose simulation moved the MLP output at a token: its code there under the setting
/// (`simulated`, after the top k) and under the transcoder (`true`), and the size of the
/// difference it writes, |simulated − true|·‖W_dec[latent]‖.
public struct RewriteCulprit: Codable, Equatable, Sendable {
    public var latent: Int
    public var simulated: Float
    public var `true`: Float
    public var size: Float

    public init(latent: Int, simulated: Float, true value: Float, size: Float) {
        self.latent = latent
        self.simulated = simulated
        self.true = value
        self.size = size
    }
}

/// A setting's outcome.
public struct RewriteResult: Codable, Equatable, Sendable {
    public var setting: RewriteSetting
    /// Latents whose values were replaced (simulated settings).
    public var latents: Int
    /// Mean next-token cross-entropy over every predicted token (nats).
    public var ce: Double
    /// ce − the base model's, with its bootstrap 95% interval over windows.
    public var delta: Double
    public var deltaLow: Double
    public var deltaHigh: Double
    /// ce − zero ablation's, with its bootstrap 95% interval (paired over the same resamples);
    /// the setting is distinguishable from zero ablation when the interval excludes 0.
    public var vsZero: Double
    public var vsZeroLow: Double
    public var vsZeroHigh: Double
    /// Simulated settings: ce − the latents-off control's, with its paired bootstrap 95% interval
    /// (nil in reports made before the control existed).
    public var vsLatentsOff: Double?
    public var vsLatentsOffLow: Double?
    public var vsLatentsOffHigh: Double?
    /// Per window, per position t: the cross-entropy of predicting token t + 1.
    public var tokenCE: [[Float]]
    /// Simulated settings: per window, per position, the latents that moved the output most there
    /// (largest first, up to 3).
    public var culprits: [[[RewriteCulprit]]]?

    public init(setting: RewriteSetting, latents: Int, ce: Double, delta: Double, deltaLow: Double, deltaHigh: Double, vsZero: Double, vsZeroLow: Double, vsZeroHigh: Double, tokenCE: [[Float]], culprits: [[[RewriteCulprit]]]? = nil) {
        self.setting = setting; self.latents = latents; self.ce = ce; self.delta = delta; self.deltaLow = deltaLow; self.deltaHigh = deltaHigh; self.vsZero = vsZero; self.vsZeroLow = vsZeroLow; self.vsZeroHigh = vsZeroHigh; self.tokenCE = tokenCE; self.culprits = culprits
    }

    public var distinguishableFromZero: Bool { vsZeroLow > 0 || vsZeroHigh < 0 }

    /// Whether the simulated latents lower the loss below the skip path alone (the interval lies below 0).
    public var beatsLatentsOff: Bool? { vsLatentsOffHigh.map { $0 < 0 } }

    /// The report's coders convert keys to and from snake case; "tokenCe" is how "token_ce" comes back.
    enum CodingKeys: String, CodingKey {
        case setting, latents, ce, delta, deltaLow, deltaHigh, vsZero, vsZeroLow, vsZeroHigh, vsLatentsOff, vsLatentsOffLow, vsLatentsOffHigh
        case tokenCE = "tokenCe", culprits
    }
}

/// A window of the experiment.
public struct RewriteWindow: Codable, Equatable, Sendable {
    public var corpusWindow: Int
    public var start: Int
    public var tokens: [Int]

    public init(corpusWindow: Int, start: Int, tokens: [Int]) {
        self.corpusWindow = corpusWindow; self.start = start; self.tokens = tokens
    }
}

/// `rewrite/report.json`: everything `loupe rewrite` printed and the explorer's Rewrite screen draws.
public struct RewriteReport: Codable, Equatable, Sendable {
    public struct Timing: Codable, Equatable, Sendable {
        /// Simulating latents on the windows (this run's; reused ones cost nothing).
        public var simulationSeconds: Double
        public var latentsSimulated: Int
        public var latentsReused: Int
        public var predictions: Int
        /// Running the model: once to the splice, then once per setting.
        public var forwardSeconds: Double
        public var forwardTokens: Int
        public var totalSeconds: Double

        public init(simulationSeconds: Double, latentsSimulated: Int, latentsReused: Int, predictions: Int, forwardSeconds: Double, forwardTokens: Int, totalSeconds: Double) {
            self.simulationSeconds = simulationSeconds; self.latentsSimulated = latentsSimulated; self.latentsReused = latentsReused; self.predictions = predictions; self.forwardSeconds = forwardSeconds; self.forwardTokens = forwardTokens; self.totalSeconds = totalSeconds
        }
    }

    public var formatVersion = 1
    public var created: String
    public var options: RewriteOptions
    public var backend: String
    public var layer: Int
    /// What the dictionary spliced reads and writes; absent in reports made before residual SAEs (an MLP transcoder).
    public var site: DictionarySite?
    /// Latents with an explanation (the population the fractions are of).
    public var population: Int
    /// Of those, latents whose current explanation has a score (ranked first by `score`).
    public var scored: Int
    public var windows: [RewriteWindow]
    public var results: [RewriteResult]
    public var timing: Timing

    public init(created: String, options: RewriteOptions, backend: String, layer: Int, site: DictionarySite? = nil, population: Int, scored: Int, windows: [RewriteWindow], results: [RewriteResult], timing: Timing) {
        self.created = created; self.options = options; self.backend = backend; self.layer = layer; self.site = site; self.population = population; self.scored = scored; self.windows = windows; self.results = results; self.timing = timing
    }

    public func result(_ setting: RewriteSetting) -> RewriteResult? { results.first { $0.setting == setting } }

    /// `site`, an MLP transcoder when the report does not say.
    public var dictionarySite: DictionarySite { site ?? .mlp }

    /// A setting's label in this report: the dictionary as is is "transcoder" or "SAE".
    public func label(_ setting: RewriteSetting) -> String { setting.kind == .transcoder ? dictionarySite.kind : setting.label }

    static let fileName = "report.json"

    public static func url(_ workspace: Workspace) -> URL {
        workspace.rewriteDirectory.appendingPathComponent(fileName)
    }

    /// The workspace's last report; nil when there is none.
    public static func load(_ workspace: Workspace) throws -> RewriteReport? {
        let url = url(workspace)
        guard let data = FileManager.default.contents(atPath: url.path) else { return nil }
        do { return try decoder.decode(RewriteReport.self, from: data) } catch {
            throw WorkspaceError.unreadableRewriteReport(path: url.path, reason: JSONFile.reason(error))
        }
    }

    /// Writes the report atomically (a temporary file renamed over the old one).
    public func save(_ workspace: Workspace) throws {
        let url = Self.url(workspace)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Self.encoder.encode(self).write(to: url, options: .atomic)
    }

    static var encoder: JSONEncoder {
        let e = JSONEncoder()
        e.keyEncodingStrategy = .convertToSnakeCase
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        e.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return e
    }

    static var decoder: JSONDecoder {
        let d = JSONDecoder()
        d.keyDecodingStrategy = .convertFromSnakeCase
        d.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return d
    }
}

/// The statistics of the report: means per window and bootstrap intervals over windows.
public enum RewriteStatistics {
    /// Mean of each window's token values.
    public static func windowMeans(_ tokenCE: [[Float]]) -> [Double] {
        tokenCE.map { w in w.isEmpty ? 0 : w.reduce(0.0) { $0 + Double($1) } / Double(w.count) }
    }

    /// Mean over all tokens (windows weighted by their token counts).
    public static func mean(_ tokenCE: [[Float]]) -> Double {
        let n = tokenCE.reduce(0) { $0 + $1.count }
        return n == 0 ? 0 : tokenCE.reduce(0.0) { $0 + $1.reduce(0.0) { $0 + Double($1) } } / Double(n)
    }

    /// `count` resamples of `windows` indices with replacement (the same ones for every setting,
    /// so differences are paired).
    public static func resamples(windows: Int, count: Int, seed: UInt64) -> [[Int]] {
        var rng = SplitMix64(seed: seed ^ 0xB007)
        return (0..<count).map { _ in (0..<windows).map { _ in Int(rng.next() % UInt64(max(windows, 1))) } }
    }

    /// The 2.5% and 97.5% percentiles of the mean difference a − b over the resamples (per-window
    /// token sums and counts, so each resample's mean is over its tokens).
    public static func interval(_ a: [[Float]], minus b: [[Float]], resamples: [[Int]]) -> (low: Double, high: Double) {
        let sums = zip(a, b).map { zip($0, $1).reduce(0.0) { $0 + Double($1.0) - Double($1.1) } }
        let counts = a.map(\.count)
        var means = resamples.map { r -> Double in
            let n = r.reduce(0) { $0 + counts[$1] }
            return n == 0 ? 0 : r.reduce(0.0) { $0 + sums[$1] } / Double(n)
        }
        guard !means.isEmpty else { return (.nan, .nan) }
        means.sort()
        func percentile(_ p: Double) -> Double {
            let x = p * Double(means.count - 1)
            let i = Int(x), f = x - Double(i)
            return i + 1 < means.count ? means[i] * (1 - f) + means[i + 1] * f : means[i]
        }
        return (percentile(0.025), percentile(0.975))
    }

    /// A result from a setting's token cross-entropies and the base and zero-ablation ones.
    public static func result(_ setting: RewriteSetting, latents: Int, tokenCE: [[Float]], base: [[Float]], zero: [[Float]],
                              resamples: [[Int]], culprits: [[[RewriteCulprit]]]? = nil) -> RewriteResult {
        let ce = mean(tokenCE)
        let d = interval(tokenCE, minus: base, resamples: resamples)
        let z = interval(tokenCE, minus: zero, resamples: resamples)
        return RewriteResult(setting: setting, latents: latents, ce: ce, delta: ce - mean(base), deltaLow: d.low, deltaHigh: d.high,
                             vsZero: ce - mean(zero), vsZeroLow: z.low, vsZeroHigh: z.high, tokenCE: tokenCE, culprits: culprits)
    }
}
