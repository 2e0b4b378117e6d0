import Foundation

/// What a steered latent's code is set to: a multiple of its largest activation in the latent
/// cache, or an absolute value.
public enum SteerValue: Equatable, Sendable {
    case timesMax(Float)
    case absolute(Float)

    /// The code value for a latent whose cache maximum is `max`.
    public func value(max: Float) -> Float {
        switch self {
        case .timesMax(let s): return s * max
        case .absolute(let v): return v
        }
    }

    public var label: String {
        switch self {
        case .timesMax(let s): return String(format: "%g× max", s)
        case .absolute(let v): return String(format: "= %g", v)
        }
    }
}

/// One steered generation: the latent, its value, where steering starts, and how to generate.
public struct SteerSettings: Equatable, Sendable {
    public var latent: Int
    public var value: SteerValue
    /// The first prompt token (0-based) whose code is set; generated tokens always are.
    public var from: Int
    public var maxTokens: Int
    /// 0: greedy; otherwise sampled with `seed` (the same draws for both runs).
    public var temperature: Float
    public var seed: UInt64
    /// Wrap the text in the model's chat template (and stop at its end-of-turn token).
    public var chat: Bool

    public init(latent: Int, value: SteerValue, from: Int = 0, maxTokens: Int = 40, temperature: Float = 0, seed: UInt64 = 0, chat: Bool = false) {
        self.latent = latent; self.value = value; self.from = from; self.maxTokens = maxTokens
        self.temperature = temperature; self.seed = seed; self.chat = chat
    }
}

/// Steered beside unsteered generations (growing while they stream). The unsteered run is the base
/// model, which is the splice with the latent untouched: the transcoder's error term is kept.
public struct SteerResult: Equatable, Sendable {
    public var settings: SteerSettings
    /// The code value the latent was set to.
    public var value: Float
    public var promptTokens: Int
    public var unsteered: [Int]
    public var steered: [Int]
    public var unsteeredText: String
    public var steeredText: String
    /// Both runs ended (stop token or length).
    public var done: Bool
    /// Seconds from the request to the first generated token of both runs.
    public var firstTokenSeconds: Double?

    public init(settings: SteerSettings, value: Float, promptTokens: Int, unsteered: [Int] = [], steered: [Int] = [],
                unsteeredText: String = "", steeredText: String = "", done: Bool = false, firstTokenSeconds: Double? = nil) {
        self.settings = settings; self.value = value; self.promptTokens = promptTokens
        self.unsteered = unsteered; self.steered = steered; self.unsteeredText = unsteeredText; self.steeredText = steeredText
        self.done = done; self.firstTokenSeconds = firstTokenSeconds
    }
}

/// What an ablated latent's code is set to at every token.
public enum AblationMode: String, Equatable, Sendable, CaseIterable {
    /// 0.
    case zero
    /// Its mean over every training token (density × mean where it fires).
    case mean
}

/// A latent ablated on a text: per token, how the prediction of the next token changed.
public struct AblationResult: Equatable, Sendable {
    public var latent: Int
    public var mode: AblationMode
    /// The value the code was set to.
    public var value: Float
    public var tokens: [Int]
    public var tokenTexts: [String]
    /// The latent's own activation at every token.
    public var activations: [Float]
    /// Per token t (all but the last), log p(token t+1) ablated − base: negative where the latent helps.
    public var deltaLogProb: [Float]
    /// Per token t (all but the last), KL(base ‖ ablated) of the next-token distribution, in nats.
    public var kl: [Float]

    public init(latent: Int, mode: AblationMode, value: Float, tokens: [Int], tokenTexts: [String], activations: [Float],
                deltaLogProb: [Float], kl: [Float]) {
        self.latent = latent; self.mode = mode; self.value = value; self.tokens = tokens; self.tokenTexts = tokenTexts
        self.activations = activations; self.deltaLogProb = deltaLogProb; self.kl = kl
    }

    /// The tokens whose next-token prediction the latent helps most (largest log-probability lost
    /// when it is ablated), at most `count`, positions in that order.
    public func helped(_ count: Int) -> [Int] {
        deltaLogProb.indices.filter { deltaLogProb[$0] < 0 }.sorted { deltaLogProb[$0] < deltaLogProb[$1] }.prefix(count).map { $0 }
    }
}

/// One latent's effect on a logit at one token.
public struct RankedLatent: Equatable, Sendable {
    public var latent: Int
    public var activation: Float
    /// activation × decoder row · ∂logit/∂(final residual): the logit it adds through the residual
    /// stream alone, the final norm linearised at this token.
    public var direct: Float
    /// The logit's drop when the latent is zeroed at this token alone (every later layer included);
    /// nil where not measured.
    public var exact: Float?

    public init(latent: Int, activation: Float, direct: Float, exact: Float? = nil) {
        self.latent = latent; self.activation = activation; self.direct = direct; self.exact = exact
    }
}

/// The latents active at one token ranked by their direct effect on one next-token logit.
public struct LatentRanking: Equatable, Sendable {
    public var tokens: [Int]
    public var position: Int
    public var target: Int
    public var targetText: String
    public var logit: Float
    /// Largest |direct| first.
    public var latents: [RankedLatent]

    public init(tokens: [Int], position: Int, target: Int, targetText: String, logit: Float, latents: [RankedLatent]) {
        self.tokens = tokens; self.position = position; self.target = target; self.targetText = targetText
        self.logit = logit; self.latents = latents
    }
}

/// A latent's value (or the whole code) patched from the clean run into the corrupted one, one
/// token at a time: how much of the clean prediction at the last token comes back.
public struct PatchResult: Equatable, Sendable {
    /// nil: the whole code was patched.
    public var latent: Int?
    public var clean: [Int]
    public var corrupted: [Int]
    public var cleanTexts: [String]
    public var corruptedTexts: [String]
    /// The clean run's top next token after the last token.
    public var target: Int
    public var targetText: String
    /// log p(target) at the last token: clean, corrupted, and patched at each token.
    public var cleanLogProb: Float
    public var corruptedLogProb: Float
    public var patchedLogProb: [Float]

    public init(latent: Int?, clean: [Int], corrupted: [Int], cleanTexts: [String], corruptedTexts: [String], target: Int,
                targetText: String, cleanLogProb: Float, corruptedLogProb: Float, patchedLogProb: [Float]) {
        self.latent = latent; self.clean = clean; self.corrupted = corrupted; self.cleanTexts = cleanTexts
        self.corruptedTexts = corruptedTexts; self.target = target; self.targetText = targetText
        self.cleanLogProb = cleanLogProb; self.corruptedLogProb = corruptedLogProb; self.patchedLogProb = patchedLogProb
    }

    /// Per token, (patched − corrupted) / (clean − corrupted): 1 where patching there brings the
    /// clean prediction back entirely (0 everywhere when the two runs predict it equally).
    public var recovered: [Float] {
        let gap = cleanLogProb - corruptedLogProb
        return patchedLogProb.map { abs(gap) > 1e-6 ? ($0 - corruptedLogProb) / gap : 0 }
    }
}
