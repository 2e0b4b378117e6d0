import EngineAPI
import Foundation
import Storage
import Terminal

/// The Context lab's interventions on the chosen latent: what is shown and what is cached for
/// the current text (results are kept per latent and setting, rankings per token, so moving the
/// cursor or coming back to a setting asks nothing of the engine).
public struct InterventionState: Sendable {
    public enum Mode: Sendable, Equatable { case activations, steer, ablate, rank, patch }
    public var mode: Mode = .activations
    /// The latent steered or ablated (the side pane's choice when asked; moving the cursor keeps it).
    public var latent: Int?
    /// Steering: the value as a multiple of the latent's max activation, and the chat template.
    public var scale: Float = 5
    public var chat = false
    /// Steering to `value` itself instead of scale × max (A; +/- step whichever is used).
    public var absolute = false
    public var value: Float = 10
    /// Steering from the cursor's token on (f) instead of the first token.
    public var fromCursor = false
    /// Sampled generation (T) at `Self.temperature` with `Self.seed`, else greedy.
    public var sampled = false
    public static let temperature: Float = 0.8
    public static let seed: UInt64 = 42
    public var tokens = 40
    public var steer: SteerResult?
    /// Steered generations by their settings for the current text, and the settings shown.
    public var steers: [String: SteerResult] = [:]
    public var steerShown: String?
    public var ablationMode: AblationMode = .zero
    /// Ablations by "latent/mode" for the current text.
    public var ablations: [String: AblationResult] = [:]
    /// Rankings by token for the current text, and the ranked latent Enter opens.
    public var rankings: [Int: LatentRanking] = [:]
    public var rankChoice = 0
    /// Patching: the corrupted text (kept when the clean text changes: nothing typed is lost), and
    /// whether the whole dictionary code is patched instead of the chosen latent.
    public var corrupted: String?
    public var patchWhole = false
    /// Patch sweeps by "corrupted text/latent or whole" for the current (clean) text.
    public var patches: [String: PatchResult] = [:]
    /// Asked of the engine and not answered yet.
    public var waiting = false

    public init() {}

    static func steerKey(_ s: SteerSettings) -> String {
        "\(s.latent)/\(s.value.label)/\(s.from)/\(s.maxTokens)/\(s.temperature)/\(s.seed)/\(s.chat)"
    }

    /// The steering settings the lab's options make for `latent`, the cursor on `token` (in the
    /// chat template the text's tokens are not the prompt's, so steering starts at the first token).
    func steerSettings(_ latent: Int, token: Int) -> SteerSettings {
        SteerSettings(latent: latent, value: absolute ? .absolute(value) : .timesMax(scale), from: fromCursor && !chat ? token : 0, maxTokens: tokens,
                      temperature: sampled ? Self.temperature : 0, seed: sampled ? Self.seed : 0, chat: chat)
    }
    static func patchKey(_ corrupted: String, _ latent: Int?) -> String { corrupted + "\u{1}" + (latent.map(String.init) ?? "whole") }
    static func ablationKey(_ latent: Int, _ mode: AblationMode) -> String { "\(latent)/\(mode.rawValue)" }

    /// A new text: nothing computed on the old one applies.
    mutating func forgetResults() {
        steers = [:]
        ablations = [:]
        rankings = [:]
        patches = [:]
        steer = nil
        if mode != .activations { mode = .activations }
        waiting = false
    }

    /// The latent a patch acts on: nil for the whole code.
    var patchLatent: Int? { patchWhole ? nil : latent }
    var patch: PatchResult? { corrupted.flatMap { patches[Self.patchKey($0, patchLatent)] } }

    func ablation(of latent: Int?) -> AblationResult? { latent.flatMap { ablations[Self.ablationKey($0, ablationMode)] } }
}

extension App {
    /// The lab's intervention keys, and the keys whose meaning a mode changes; nil: not one of them.
    mutating func performIntervention(_ action: Action) -> [EngineRequest]? {
        var iv = state.lab.intervention
        let lab = state.lab
        switch action {
        case .jump:
            state.prompt = Prompt(kind: .labLatent, editor: LineEditor(""))
            return []
        case .steer: return steer(fresh: true)
        case .scaleUp, .scaleDown:
            let step: Float = action == .scaleUp ? 1 : -1
            if iv.absolute { iv.value += step } else { iv.scale += step }
            state.lab.intervention = iv
            state.message = Message(text: iv.absolute ? String(format: "steering to the value %g — S generates", iv.value)
                                        : String(format: "steering scale %g× max — S generates", iv.scale), isError: false)
            return iv.mode == .steer ? steer(iv.latent) : []
        case .toggleAbsolute:
            iv.absolute.toggle()
            state.lab.intervention = iv
            state.message = Message(text: iv.absolute ? String(format: "steering to the value %g (+/- step it)", iv.value)
                                        : String(format: "steering to %g× the latent's max (+/- step it)", iv.scale), isError: false)
            return iv.mode == .steer ? steer(iv.latent) : []
        case .toggleFromCursor:
            iv.fromCursor.toggle()
            state.lab.intervention = iv
            state.message = Message(text: !iv.fromCursor ? "steering from the first token on"
                                        : iv.chat ? "steering from the cursor's token works on the raw text: c leaves the chat template"
                                        : "steering from the cursor's token (token \(lab.token + 1)) on", isError: false)
            return iv.mode == .steer ? steer(iv.latent) : []
        case .toggleSampling:
            iv.sampled.toggle()
            state.lab.intervention = iv
            state.message = Message(text: iv.sampled ? String(format: "sampling at temperature %g, seed %llu (the same draws for both runs)",
                                                              InterventionState.temperature, InterventionState.seed) : "greedy generation", isError: false)
            return iv.mode == .steer ? steer(iv.latent) : []
        case .toggleChat:
            iv.chat.toggle()
            state.lab.intervention = iv
            state.message = Message(text: iv.chat ? "steering in the chat template" : "steering on the raw text", isError: false)
            return iv.mode == .steer ? steer(iv.latent) : []
        case .ablate: return ablate()
        case .toggleAblationMode:
            iv.ablationMode = iv.ablationMode == .zero ? .mean : .zero
            state.lab.intervention = iv
            return ablate(iv.mode == .ablate ? iv.latent : nil)
        case .patch: return patch()
        case .editCorrupted:
            editCorrupted()
            return []
        case .togglePatchWhole:
            iv.patchWhole.toggle()
            state.lab.intervention = iv
            state.message = Message(text: iv.patchWhole ? "patching the whole dictionary code" : "patching the chosen latent", isError: false)
            return iv.mode == .patch ? patch(iv.latent) : []
        case .rankLatents:
            iv.mode = .rank
            iv.rankChoice = 0
            state.lab.intervention = iv
            return rank()
        case .showActivations:
            iv.mode = .activations
            state.lab.intervention = iv
            return []
        default: break
        }
        guard iv.mode == .rank, lab.analysis != nil else { return nil }
        switch action {
        case .down, .up:
            let count = iv.rankings[lab.token]?.latents.count ?? 0
            iv.rankChoice = min(max(iv.rankChoice + (action == .down ? 1 : -1), 0), max(count - 1, 0))
            state.lab.intervention = iv
            return []
        case .open:
            guard let ranked = iv.rankings[lab.token]?.latents[safe: iv.rankChoice] else { return [] }
            return open(latent: ranked.latent)
        case .tokenLeft, .tokenRight, .top, .bottom:
            // The token moves as elsewhere in the lab, then its ranking is shown (or asked for).
            return nil
        default: return nil
        }
    }

    /// After a token move in rank mode: the new token's ranking.
    mutating func rankAfterMove() -> [EngineRequest] {
        guard state.lab.intervention.mode == .rank else { return [] }
        state.lab.intervention.rankChoice = 0
        return rank()
    }

    /// The latent the lab's interventions act on, with a message when there is none.
    func interventionLatent() -> Int? { state.lab.analysis == nil ? nil : state.lab.latent }

    /// Steers `chosen` (default: the side pane's latent); `fresh` generates again even when this
    /// setting was run before (S), otherwise the kept generation is shown (+/-, c).
    mutating func steer(_ chosen: Int? = nil, fresh: Bool = false) -> [EngineRequest] {
        guard let latent = chosen ?? interventionLatent() else {
            state.message = Message(text: "run a text first (e), then pick a latent (j/k or :)", isError: false)
            return []
        }
        var iv = state.lab.intervention
        iv.mode = .steer
        iv.latent = latent
        let settings = iv.steerSettings(latent, token: state.lab.token)
        let key = InterventionState.steerKey(settings)
        iv.steerShown = key
        if !fresh, let cached = iv.steers[key] {
            iv.steer = cached
            state.lab.intervention = iv
            return []
        }
        iv.steer = nil
        iv.waiting = true
        state.lab.intervention = iv
        return [.steer(id: state.lab.shown, text: state.lab.editor.text, settings)]
    }

    /// Ablates `chosen` (default: the side pane's latent).
    mutating func ablate(_ chosen: Int? = nil) -> [EngineRequest] {
        guard let latent = chosen ?? interventionLatent() else {
            state.message = Message(text: "run a text first (e), then pick a latent (j/k or :)", isError: false)
            return []
        }
        state.lab.intervention.mode = .ablate
        state.lab.intervention.latent = latent
        if state.lab.intervention.ablation(of: latent) != nil { return [] }
        state.lab.intervention.waiting = true
        return [.ablate(id: state.lab.shown, text: state.lab.editor.text, latent: latent, mode: state.lab.intervention.ablationMode)]
    }

    /// The corrupted text's prompt, holding the last one (or the lab's text, to change a word of).
    mutating func editCorrupted() {
        state.prompt = Prompt(kind: .corruptedText, editor: LineEditor(state.lab.intervention.corrupted ?? state.lab.editor.text))
    }

    /// The prompt's answer: the corrupted text, then the patch sweep on it.
    mutating func setCorrupted(_ text: String) -> [EngineRequest] {
        guard !text.trimmingCharacters(in: .whitespaces).isEmpty else {
            state.message = Message(text: "the corrupted text is empty; P types one with as many tokens as the lab's", isError: true)
            return []
        }
        state.lab.intervention.corrupted = text
        return patch(state.lab.intervention.mode == .patch ? state.lab.intervention.latent : nil)
    }

    /// Patches `chosen` (default: the side pane's latent; the whole code with `o`) from the lab's
    /// text into the corrupted one, asking for the corrupted text first when there is none.
    mutating func patch(_ chosen: Int? = nil) -> [EngineRequest] {
        guard let latent = chosen ?? interventionLatent() else {
            state.message = Message(text: "run a text first (e), then pick a latent (j/k or :)", isError: false)
            return []
        }
        guard let corrupted = state.lab.intervention.corrupted else {
            editCorrupted()
            return []
        }
        var iv = state.lab.intervention
        iv.mode = .patch
        iv.latent = latent
        let cached = iv.patch != nil
        if !cached { iv.waiting = true }
        state.lab.intervention = iv
        return cached ? [] : [.patch(id: state.lab.shown, clean: state.lab.editor.text, corrupted: corrupted, latent: iv.patchLatent)]
    }

    mutating func rank() -> [EngineRequest] {
        guard let a = state.lab.analysis, !a.tokens.isEmpty else { return [] }
        let t = state.lab.token
        if state.lab.intervention.rankings[t] != nil { return [] }
        state.lab.intervention.waiting = true
        return [.rank(id: state.lab.shown, text: state.lab.editor.text, position: t)]
    }

    /// The `:` prompt's answer in the lab: the latent to draw, steer and ablate.
    mutating func chooseLabLatent(_ text: String) -> [EngineRequest] {
        guard let id = Int(text), id >= 0, state.info.map({ id < $0.latents }) ?? true else {
            state.message = Message(text: "“\(text)” is not a latent id" + (state.info.map { " (0–\($0.latents - 1))" } ?? ""), isError: true)
            return []
        }
        state.lab.latent = id
        switch state.lab.intervention.mode {
        case .steer: return steer(fresh: true)
        case .ablate: return ablate()
        case .patch: return patch()
        case .activations, .rank: return []
        }
    }

    /// An intervention's answer, kept for its text and shown if it is what the lab shows now.
    mutating func applyIntervention(_ event: EngineEvent) -> [EngineRequest] {
        var iv = state.lab.intervention
        switch event {
        case .steered(let id, let result):
            guard id == state.lab.shown else { return [] }
            let key = InterventionState.steerKey(result.settings)
            if result.done { iv.steers[key] = result; iv.waiting = false }
            if iv.steerShown == key { iv.steer = result }
        case .ablation(let id, let result):
            guard id == state.lab.shown else { return [] }
            iv.ablations[InterventionState.ablationKey(result.latent, result.mode)] = result
            iv.waiting = false
        case .patched(let id, let corrupted, let result):
            guard id == state.lab.shown else { return [] }
            iv.patches[InterventionState.patchKey(corrupted, result.latent)] = result
            iv.waiting = false
        case .ranking(let id, let ranking):
            guard id == state.lab.shown else { return [] }
            iv.rankings[ranking.position] = ranking
            iv.waiting = false
        default: break
        }
        state.lab.intervention = iv
        return []
    }
}
