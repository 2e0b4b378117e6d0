import Storage

/// The simulator's contract (the paper's method): given an explanation and a context, predict each
/// token's activation as the expected digit E = Σ p(d)·d over the digit tokens "0"…"9" of the
/// simulator model's next-token distribution at the place where that token's activation is asked.
/// Backends: `LocalSimulator` (Loupe's own engine, the default) and `OpenAISimulator` (a server
/// speaking the OpenAI completions API with logprobs, e.g. vLLM or llama.cpp's server).

/// Predicts activations from an explanation alone.
public protocol SimulatorBackend: AnyObject, Sendable {
    /// For the status line and result files, e.g. "local SmolLM2-135M-Instruct" or the server's URL and model.
    var name: String { get }

    /// Per context, per token, the expected digit in 0…9. `shouldStop` is polled between units of
    /// work; when it returns true the backend throws `CancellationError` (the one error every job stops with).
    func simulate(explanation: String, contexts: [SimulationContext], mode: SimulationMode,
                  shouldStop: () -> Bool) throws -> [[Float]]

    /// The same for a given latent (a trained simulator reads each latent with the head of its
    /// fold); the prompted backends ignore the latent.
    func simulate(latent: Int?, explanation: String, contexts: [SimulationContext], mode: SimulationMode,
                  shouldStop: () -> Bool) throws -> [[Float]]

    /// Uncalibrated detection: the expected digit above which a token of this latent counts as
    /// predicted to fire (`Detection`). The prompted backends: 4.5, half the scale; the trained
    /// simulator: its fold head's own threshold.
    func detectionDigit(latent: Int?) -> Float

    /// Every threshold `detectionDigit` can give, for reports.
    var detectionDigits: [Float] { get }
}

public extension SimulatorBackend {
    func simulate(latent: Int?, explanation: String, contexts: [SimulationContext], mode: SimulationMode,
                  shouldStop: () -> Bool) throws -> [[Float]] {
        try simulate(explanation: explanation, contexts: contexts, mode: mode, shouldStop: shouldStop)
    }

    func detectionDigit(latent: Int?) -> Float { Detection.promptedDigit }
    var detectionDigits: [Float] { [Detection.promptedDigit] }
}
