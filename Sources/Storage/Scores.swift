import Foundation
import Kernels
import Tokenizer

/// Scoring an explanation (the paper's step 7): simulate the latent from its explanation on
/// held-out windows and compare with the true activations.
///
/// The scoring set of a latent comes from held-out text only — the explainer saw the cache's
/// windows, which come from training text:
/// - activating windows: up to `activating` display-length windows around held-out tokens where
///   the latent fires, one drawn from each of `activating` equal-count bins of its held-out
///   activations (lowest first), so the set spans its range, not only its top; the chosen token
///   sits where the explainer's windows put it (3/4 of the way in), no corpus window twice;
/// - random windows: `random` windows of the cache's random pool (held-out text) on which the
///   latent does not fire, falling back to ones where it does for a latent that fires everywhere.
/// Both are drawn with a generator seeded by (seed, latent), so a latent's set never changes.
///
/// Metrics, over every token of the set, simulated (calibrated, activation units) against true:
/// - Pearson correlation; nil when the true activations are constant (nothing to correlate with),
///   0 when the simulation is constant but the truth is not (the explanation carries no signal).
/// - Detection, per window: it *fires* when its true maximum is > 0; it is *predicted to fire*
///   when some token's prediction passes `Detection.threshold`: uncalibrated, expected digit E > the
///   backend's detection digit (4.5 for the prompted simulators: the simulated value is above half
///   the latent's max; the trained simulator's heads each carry a threshold chosen out of fold,
///   `SimulatorTrainer.detectionThresholds`), simulated value > 0 with quantile
///   calibration (the simulation ranks in the latent's firing fraction — so only about density ×
///   tokens of the set can be predicted to fire, as the paper's calibration intends). Sensitivity = fired windows
///   predicted to fire / fired windows; specificity = quiet windows predicted quiet / quiet windows
///   (the paper's diagnosis: low specificity, i.e. false positives); balanced accuracy = their mean.
///   Each is nil when its class is empty. The same test per token gives `TokenOutcome`, the false
///   positives and negatives the explorer highlights.
public struct ScoringWindow: Equatable, Sendable {
    public var corpusWindow: Int
    public var start: Int
    /// Index in `tokens` of the firing token it was drawn for; nil for a random window.
    public var focus: Int?
    public var tokens: [Int]
    public var texts: [String]
    /// True activations of the latent.
    public var activations: [Float]

    public init(corpusWindow: Int, start: Int, focus: Int?, tokens: [Int], texts: [String], activations: [Float]) {
        self.corpusWindow = corpusWindow; self.start = start; self.focus = focus; self.tokens = tokens; self.texts = texts; self.activations = activations
    }

    public var isActivating: Bool { focus != nil }
    public var context: SimulationContext { SimulationContext(tokens: tokens, texts: texts) }
}

/// Sizes of a scoring set.
public struct ScoringOptions: Equatable, Sendable {
    public var activating = 5
    public var random = 5
    public var seed: UInt64 = 11

    public init(activating: Int = 5, random: Int = 5, seed: UInt64 = 11) {
        self.activating = activating
        self.random = random
        self.seed = seed
    }
}

/// Per token: does the latent fire (true > 0) and is it predicted to (see `Detection`).
public enum TokenOutcome: String, Codable, Sendable {
    case truePositive = "tp", falsePositive = "fp", falseNegative = "fn", trueNegative = "tn"

    public init(fires: Bool, predicted: Bool) {
        switch (fires, predicted) {
        case (true, true): self = .truePositive
        case (false, true): self = .falsePositive
        case (true, false): self = .falseNegative
        case (false, false): self = .trueNegative
        }
    }
}

/// The metrics (definitions at the top of this file).
public enum Detection {
    /// The prompted simulators' uncalibrated threshold: half of the digit scale.
    public static let promptedDigit: Float = 4.5

    /// Whether one token is predicted to fire, from its expected digit and calibrated value;
    /// `digit` is the backend's uncalibrated threshold (`SimulatorBackend.detectionDigit`).
    public static func predicted(expected: Float, simulated: Float, calibration: Calibration, digit: Float = promptedDigit) -> Bool {
        switch calibration {
        case .none: return expected > digit
        case .quantile: return simulated > 0
        }
    }

    /// A one-line statement of the threshold, for reports; `digits` are the backend's uncalibrated
    /// thresholds (one per head of a trained simulator).
    public static func threshold(_ calibration: Calibration, digits: [Float] = [promptedDigit]) -> String {
        switch calibration {
        case .none:
            let lo = digits.min() ?? promptedDigit, hi = digits.max() ?? promptedDigit
            return lo == hi ? String(format: "expected digit > %.2g", lo)
                : String(format: "expected digit > each head's own threshold (%.2f–%.2f, chosen out of fold)", lo, hi)
        case .quantile: return "calibrated activation > 0"
        }
    }

    /// Pearson correlation of x and y (equal lengths); nil if y is constant or there are fewer than
    /// two values, 0 if only x is constant.
    public static func pearson(_ x: [Float], _ y: [Float]) -> Double? {
        precondition(x.count == y.count, "pearson: lengths differ")
        let n = Double(x.count)
        guard x.count >= 2 else { return nil }
        let mx = x.reduce(0.0) { $0 + Double($1) } / n, my = y.reduce(0.0) { $0 + Double($1) } / n
        var sxy = 0.0, sxx = 0.0, syy = 0.0
        for i in x.indices {
            let dx = Double(x[i]) - mx, dy = Double(y[i]) - my
            sxy += dx * dy; sxx += dx * dx; syy += dy * dy
        }
        guard syy > 0 else { return nil }
        guard sxx > 0 else { return 0 }
        return max(-1, min(1, sxy / (sxx * syy).squareRoot()))
    }

    /// Sensitivity, specificity and balanced accuracy of per-window (fires, predicted) pairs.
    public static func rates(_ windows: [(fires: Bool, predicted: Bool)]) -> (sensitivity: Double?, specificity: Double?, balanced: Double?) {
        let positives = windows.filter(\.fires), negatives = windows.filter { !$0.fires }
        let sensitivity = positives.isEmpty ? nil : Double(positives.filter(\.predicted).count) / Double(positives.count)
        let specificity = negatives.isEmpty ? nil : Double(negatives.filter { !$0.predicted }.count) / Double(negatives.count)
        let balanced = sensitivity.flatMap { s in specificity.map { (s + $0) / 2 } }
        return (sensitivity, specificity, balanced)
    }
}

/// A latent's scores for one explanation version and one simulation setting.
public struct LatentScores: Codable, Equatable, Sendable {
    public var latent: Int
    /// The ExplanationVersion id scored.
    public var version: Int
    /// The version's source ("llm", "lexical", "user", …), so results can be compared by explainer.
    public var source: ExplanationSource
    public var mode: SimulatorKind
    public var calibration: Calibration
    public var backend: String
    public var pearson: Double?
    public var sensitivity: Double?
    public var specificity: Double?
    public var balancedAccuracy: Double?
    public var windows: Int
    public var tokens: Int
    public var seconds: Double
    /// The loss delta of replacing just this latent by its simulation on its scoring windows (mean
    /// next-token cross-entropy minus the transcoder's, nats; `Splice.singleLatentDelta`); nil
    /// where it was not computed.
    public var lossDelta: Double?
    /// Byte offset of this result's SimulationRecord line in `simulations.jsonl` (set by ScoreStore).
    public var simulationOffset: Int?
    /// The controls measured with this score, where they were (`loupe score`, the explorer).
    public var controls: ControlScores?

    public init(latent: Int, version: Int, source: ExplanationSource, mode: SimulatorKind, calibration: Calibration, backend: String, pearson: Double?, sensitivity: Double?, specificity: Double?, balancedAccuracy: Double?, windows: Int, tokens: Int, seconds: Double, lossDelta: Double? = nil, simulationOffset: Int? = nil, controls: ControlScores? = nil) {
        self.latent = latent; self.version = version; self.source = source; self.mode = mode; self.calibration = calibration; self.backend = backend; self.pearson = pearson; self.sensitivity = sensitivity; self.specificity = specificity; self.balancedAccuracy = balancedAccuracy; self.windows = windows; self.tokens = tokens; self.seconds = seconds; self.lossDelta = lossDelta; self.simulationOffset = simulationOffset; self.controls = controls
    }

    public var key: ScoreKey { ScoreKey(version: version, mode: mode, calibration: calibration, backend: backend) }

    enum CodingKeys: String, CodingKey {
        case latent, version, source, mode, calibration, backend, pearson, sensitivity, specificity,
             balancedAccuracy = "balanced_accuracy", windows, tokens, seconds, lossDelta = "loss_delta", simulationOffset = "simulation_offset",
             controls
    }
}

/// What tells a score that reads the explanation from one that does not, on the same scoring set
/// and with the same simulator and calibration (Pearson r each):
/// - shuffled: simulated from another latent's explanation, one of similar density
///   (`ShuffledPartners`); *explanation sensitivity* = r(own) − r(shuffled);
/// - token prior: simulated from an empty explanation (all it can know is which tokens fire in general);
/// - lexical match: the model-free `LexicalMatchSimulator` on the own explanation.
public struct ControlScores: Codable, Equatable, Sendable {
    public var shuffled: Double?
    public var shuffledLatent: Int?
    public var tokenPrior: Double?
    public var lexicalMatch: Double?

    public init(shuffled: Double?, shuffledLatent: Int?, tokenPrior: Double?, lexicalMatch: Double?) {
        self.shuffled = shuffled
        self.shuffledLatent = shuffledLatent
        self.tokenPrior = tokenPrior
        self.lexicalMatch = lexicalMatch
    }

    /// r(own) − r(shuffled).
    public func sensitivity(own: Double?) -> Double? { own.flatMap { o in shuffled.map { o - $0 } } }

    enum CodingKeys: String, CodingKey {
        case shuffled, shuffledLatent = "shuffled_latent", tokenPrior = "token_prior", lexicalMatch = "lexical_match"
    }
}

/// Mean and median of the own r and of each control over the scores that have all of them (a
/// control is nil where its simulation was constant on a constant truth, or was not measured).
public struct ControlSummary: Equatable, Sendable {
    public var latents = 0
    public var own = (0.0, 0.0), shuffled = (0.0, 0.0), tokenPrior = (0.0, 0.0), lexicalMatch = (0.0, 0.0), sensitivity = (0.0, 0.0)

    public init(_ scores: [LatentScores]) {
        let full = scores.compactMap { s -> (Double, Double, Double, Double)? in
            guard let c = s.controls, let o = s.pearson, let sh = c.shuffled, let p = c.tokenPrior, let l = c.lexicalMatch else { return nil }
            return (o, sh, p, l)
        }
        latents = full.count
        guard !full.isEmpty else { return }
        func mm(_ xs: [Double]) -> (Double, Double) {
            let s = xs.sorted()
            let median = s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
            return (s.reduce(0, +) / Double(s.count), median)
        }
        own = mm(full.map(\.0)); shuffled = mm(full.map(\.1)); tokenPrior = mm(full.map(\.2)); lexicalMatch = mm(full.map(\.3))
        sensitivity = mm(full.map { $0.0 - $0.1 })
    }

    public static func == (a: ControlSummary, b: ControlSummary) -> Bool {
        a.latents == b.latents && a.own == b.own && a.shuffled == b.shuffled && a.tokenPrior == b.tokenPrior
            && a.lexicalMatch == b.lexicalMatch && a.sensitivity == b.sensitivity
    }
}
