import EngineAPI
import Storage
import Foundation
import Terminal

/// The Context lab's keys: the text editor, the token cursor and the latents active on it.
extension App {
    mutating func performLab(_ action: Action) -> [EngineRequest] {
        if let out = performIntervention(action) { return out }
        var lab = state.lab
        let count = lab.analysis?.tokens.count ?? 0
        switch action {
        case .editText: lab.editing = true
        case .tokenLeft: lab.token -= 1; lab.choice = 0
        case .tokenRight: lab.token += 1; lab.choice = 0
        case .top: lab.token = 0; lab.choice = 0
        case .bottom: lab.token = count - 1; lab.choice = 0
        case .down: lab.choice += 1
        case .up: lab.choice -= 1
        case .toggleRaw: state.raw.toggle()
        case .open:
            state.lab = lab
            if let latent = lab.latent { return open(latent: latent) }
            return []
        case .simulate:
            state.lab = lab
            guard let latent = lab.latent, lab.analysis != nil else { return [] }
            guard state.explanations[latent] != nil else {
                state.message = Message(text: "latent \(latent) has no explanation to simulate (open it with Enter, e writes one)", isError: false)
                return []
            }
            state.message = Message(text: "simulating latent \(latent) on the text…", isError: false)
            return [.simulateText(id: lab.shown, latent: latent, text: lab.editor.text)]
        default: break
        }
        lab.token = min(max(lab.token, 0), max(count - 1, 0))
        let choices = lab.analysis.map { $0.codes[safe: lab.token]?.count ?? 0 } ?? 0
        lab.choice = min(max(lab.choice, 0), max(choices - 1, 0))
        if let a = lab.analysis, let code = a.codes[safe: lab.token]?[safe: lab.choice] { lab.latent = code.latent }
        state.lab = lab
        return [.tokenLeft, .tokenRight, .top, .bottom].contains(action) ? rankAfterMove() : []
    }

    mutating func handleLabEditor(_ key: Key, now: Double) -> [EngineRequest]? {
        var lab = state.lab
        switch key {
        case .enter:
            lab.editing = false
            state.lab = lab
            return analyzeLab()
        case .escape, .tab:
            lab.editing = false
            state.lab = lab
            return []
        case .ctrl("c"): return perform(.quit)
        case .mouse: return nil
        default:
            let before = lab.editor.text
            guard lab.editor.handle(key) else { return nil }
            if lab.editor.text != before { lab.changedAt = now }
            state.lab = lab
            return []
        }
    }

    mutating func analyzeLab() -> [EngineRequest] {
        state.lab.changedAt = nil
        state.lab.requested += 1
        return [.analyze(id: state.lab.requested, text: state.lab.editor.text)]
    }

    /// Time passing: runs the lab's analysis once typing pauses. Call every frame.
    public mutating func tick(now: Double) -> [EngineRequest] {
        if let changed = state.lab.changedAt, now - changed >= 0.4 { return analyzeLab() }
        return []
    }
}
