/// Training settings. Defaults follow sparsify's `TrainConfig` with `optimizer="adam"`
/// (sparsify/config.py, sparsify/trainer.py) except where a comment says otherwise.
public struct TrainerOptions: Codable, Equatable, Sendable {
    /// Peak learning rate; nil uses sparsify's Adam default 2e-4 / √(M / 2¹⁴) (3.77e-4 for M = 4608).
    public var learningRate: Float?
    /// Linear warm-up steps from 0 to the peak, then linear decay to 0 at `totalSteps` (transformers'
    /// `get_linear_schedule_with_warmup`, as sparsify uses). nil: min(1000, totalSteps / 10) — sparsify's
    /// 1000 would be half of a ~2000-step run here.
    public var warmupSteps: Int?
    /// Rows (tokens) per batch that callers should feed `step` (the trainer accepts any count).
    public var batchRows: Int
    /// Weight of the AuxK loss. sparsify's default is 0 (AuxK off); Loupe uses Gao et al.'s 1/32.
    public var auxkAlpha: Float
    /// A latent is dead once it has not fired for more than this many tokens. sparsify's default is
    /// 10M tokens for runs of billions of tokens; a Loupe run sees about 2M tokens, so the default
    /// here is 100k (an average latent of a 4608 × k=32 coder fires ~700 times in 100k tokens).
    public var deadThresholdTokens: Int
    /// Adam β₁, β₂ and ε (torch.optim.Adam defaults; sparsify passes none).
    public var beta1: Float
    public var beta2: Float
    public var eps: Float
    /// Set b_enc = −W_enc·mean(x) and b_dec = mean(y) from the first batch, as sparsify's trainer
    /// does at step 0 for transcoders (turn off when fine-tuning a loaded checkpoint).
    public var initializeBiasesFromFirstBatch: Bool
    /// Also backpropagate the AuxK loss into the encoder rows of the selected dead latents (Gao et
    /// al.). sparsify does not: its fused encoder's backward drops the pre-activation gradient, so
    /// AuxK only trains W_dec and b_dec. Default false (sparsify's behaviour).
    public var auxkTrainsEncoder: Bool
    /// Seed for `Transcoder(config:seed:)` when the trainer builds the transcoder itself.
    public var seed: UInt64

    public init(learningRate: Float? = nil, warmupSteps: Int? = nil, batchRows: Int = 1024, auxkAlpha: Float = 1.0 / 32,
                deadThresholdTokens: Int = 100_000, beta1: Float = 0.9, beta2: Float = 0.999, eps: Float = 1e-8,
                initializeBiasesFromFirstBatch: Bool = true, auxkTrainsEncoder: Bool = false, seed: UInt64 = 0) {
        self.learningRate = learningRate
        self.warmupSteps = warmupSteps
        self.batchRows = batchRows
        self.auxkAlpha = auxkAlpha
        self.deadThresholdTokens = deadThresholdTokens
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self.initializeBiasesFromFirstBatch = initializeBiasesFromFirstBatch
        self.auxkTrainsEncoder = auxkTrainsEncoder
        self.seed = seed
    }

    /// sparsify's default Adam learning rate for `latents` latents: 2e-4 / √(latents / 2¹⁴).
    public static func defaultLearningRate(latents: Int) -> Float {
        Float(2e-4 / (Double(latents) / 16384).squareRoot())
    }

    /// The learning rate of optimizer step `step` (0-based): peak·step/warmup during warm-up, then
    /// peak·(total − step)/(total − warmup), floored at 0. Step 0 has rate 0, as in sparsify.
    public func learningRate(step: Int, totalSteps: Int, latents: Int) -> Float {
        let peak = learningRate ?? TrainerOptions.defaultLearningRate(latents: latents)
        let warm = warmupSteps ?? min(1000, totalSteps / 10)
        if step < warm { return peak * Float(step) / Float(max(1, warm)) }
        return peak * max(0, Float(totalSteps - step) / Float(max(1, totalSteps - warm)))
    }
}

/// What one training step measured (on the batch, before the update).
public struct StepStats: Equatable, Sendable {
    /// Fraction of variance unexplained, Σ‖y − ŷ‖² / Σ‖y − mean(y)‖².
    public var fvu: Float
    /// The AuxK loss (unweighted; 0 when no latent is dead or auxkAlpha is 0).
    public var auxk: Float
    /// Fraction of latents counted dead for this step.
    public var deadFraction: Float
    /// The learning rate the step applied.
    public var learningRate: Float
}
