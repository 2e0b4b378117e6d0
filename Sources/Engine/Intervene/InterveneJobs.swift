import EngineAPI
import Foundation
import Storage

/// The interventions as jobs on the open workspace, for the CLI and the explorer alike: the value
/// a setting means (× the latent's cache maximum, its mean), the chat template and stop tokens, the
/// texts of what was generated.
extension EngineService {
    /// Model and transcoder for interventions (the lab's analyzer's).
    public func intervener() throws -> Intervener { try Intervener(analyzer: try analyzer()) }

    /// The latent's cache summary; an id outside the workspace says so.
    func summary(of latent: Int) throws -> LatentSummary {
        let all = try summaries()
        guard latent >= 0 && latent < all.count else { throw InterveneError.latentOutOfRange(latent, latents: all.count) }
        return all[latent]
    }

    /// The ablation value of `mode` for a latent: 0, or its mean over every training token.
    public func ablationValue(latent: Int, mode: AblationMode) throws -> Float {
        switch mode {
        case .zero: return 0
        case .mean:
            let s = try summary(of: latent)
            return Float(s.density) * s.mean
        }
    }

    /// Steered beside unsteered generations of `text` (in the chat template with `settings.chat`);
    /// `onStep` sees the result after every token of both runs.
    public func steer(text: String, settings: SteerSettings, shouldStop: () -> Bool = { false },
                      onStep: (SteerResult) -> Void = { _ in }) throws -> SteerResult {
        let started = Clock.now
        let value = settings.value.value(max: try summary(of: settings.latent).max)
        let intervener = try intervener()
        let session = try session(), tokenizer = session.tokenizer
        var prompt = text
        if settings.chat {
            guard let template = session.chat else { throw InterveneError.noChatTemplate }
            prompt = template.format([(role: "user", content: text)], addGenerationPrompt: true)
        }
        let ids = tokenizer.encode(prompt)
        guard settings.from >= 0 && settings.from < max(ids.count, 1) else { throw InterveneError.positionOutOfRange(settings.from, tokens: ids.count) }
        let stops = Set([tokenizer.eosId, tokenizer.id(of: "<|im_end|>"), tokenizer.id(of: "<|endoftext|>")].compactMap { $0 })
        var result = SteerResult(settings: settings, value: value, promptTokens: ids.count)
        func fill(_ a: [Int], _ b: [Int]) {
            result.unsteered = a
            result.steered = b
            result.unsteeredText = tokenizer.decodeText(a)
            result.steeredText = tokenizer.decodeText(b)
            if result.firstTokenSeconds == nil && (!a.isEmpty || !b.isEmpty) { result.firstTokenSeconds = Clock.now - started }
        }
        let out = try intervener.steer(prompt: ids, edit: Intervener.setting(settings.latent) { _, _ in value }, settings: settings,
                                       stops: stops, shouldStop: shouldStop) { a, b in
            fill(a, b)
            onStep(result)
        }
        fill(out.unsteered, out.steered)
        result.done = true
        return result
    }

    /// `latent` ablated on `text` (its first `maxTokens` tokens).
    public func ablate(text: String, latent: Int, mode: AblationMode, maxTokens: Int = 1024,
                       shouldStop: () -> Bool = { false }) throws -> AblationResult {
        let value = try ablationValue(latent: latent, mode: mode)
        let intervener = try intervener()
        let ids = Array(intervener.tokenizer.encode(text).prefix(maxTokens))
        guard ids.count >= 2 else { throw InterveneError.tooShort(tokens: ids.count) }
        return try intervener.ablate(ids, latent: latent, mode: mode, value: value, shouldStop: shouldStop)
    }

    /// The latents at token `position` of `text` ranked by direct effect on `target`'s logit.
    public func rank(text: String, position: Int, target: Int? = nil, exact: Int = 5, shouldStop: () -> Bool = { false }) throws -> LatentRanking {
        let intervener = try intervener()
        let ids = Array(intervener.tokenizer.encode(text).prefix(1024))
        guard !ids.isEmpty else { throw InterveneError.emptyText }
        return try intervener.rank(ids, position: position < 0 ? ids.count + position : position, target: target, exact: exact,
                                   shouldStop: shouldStop)
    }

    /// The clean text's latent (nil: whole code) patched into the corrupted text at each token.
    public func patch(clean: String, corrupted: String, latent: Int?, shouldStop: () -> Bool = { false },
                      progress: (Int, Int) -> Void = { _, _ in }) throws -> PatchResult {
        let intervener = try intervener()
        let a = intervener.tokenizer.encode(clean), b = intervener.tokenizer.encode(corrupted)
        guard !a.isEmpty, !b.isEmpty else { throw InterveneError.emptyText }
        return try intervener.patch(clean: a, corrupted: b, latent: latent, shouldStop: shouldStop, progress: progress)
    }
}
