import EngineAPI
import Storage
import Foundation
import Terminal

/// Keys while an overlay is up: the one-line prompts (filter, search, jump, paths, confirmations),
/// the help and the explanation history.
extension App {
    mutating func handlePrompt(_ key: Key) -> [EngineRequest] {
        guard var p = state.prompt else { return [] }
        if p.isConfirmation {
            state.prompt = nil
            guard key == .char("y") || key == .char("Y") else { return [] }
            if p.kind == .confirmRewrite { return runRewrite(confirmed: true) }
            if let l = state.latent, let e = l.editor { state.drafts[l.latent] = e.text }
            state.quit = true
            return []
        }
        switch key {
        case .escape, .ctrl("c"):
            state.prompt = nil
            return []
        case .enter:
            state.prompt = nil
            let text = p.editor.text.trimmingCharacters(in: .whitespaces)
            switch p.kind {
            case .filter:
                state.list.filter = text
                rebuildRows(keeping: currentListLatent)
            case .search:
                state.list.search = text
                findMatch(text, from: state.list.selected, forward: true)
            case .jump:
                guard let id = Int(text) else {
                    state.message = Message(text: "“\(text)” is not a latent id", isError: true)
                    return []
                }
                if let i = state.list.rows.firstIndex(of: id) { state.list.selected = i; clampList() }
                return open(latent: id)
            case .labLatent: return chooseLabLatent(text)
            case .corruptedText: return setCorrupted(p.editor.text)
            case .export: return text.isEmpty ? [] : [.exportExplanations(path: text)]
            case .importFile: return text.isEmpty ? [] : [.importExplanations(path: text)]
            case .confirmQuit, .confirmRewrite: break
            }
            return []
        default:
            p.editor.handle(key)
            state.prompt = p
            if p.kind == .filter {
                // The list filters as you type.
                state.list.filter = p.editor.text
                rebuildRows(keeping: currentListLatent)
            } else if p.kind == .search {
                findMatch(p.editor.text, from: state.list.selected, forward: true)
                if state.message?.isError == true && p.editor.text.isEmpty { state.message = nil }
            }
            return []
        }
    }

    mutating func handleHelp(_ key: Key) -> [EngineRequest] {
        switch KeyBindings.action(for: key, in: .global) {
        case .down: state.helpScroll += 1
        case .up: state.helpScroll = max(0, state.helpScroll - 1)
        case .pageDown: state.helpScroll += state.height - 4
        case .pageUp: state.helpScroll = max(0, state.helpScroll - state.height + 4)
        case .quit: state.quit = true
        default: state.showHelp = false
        }
        return []
    }

    mutating func handleHistory(_ key: Key) -> [EngineRequest]? {
        guard var h = state.history else { return nil }
        switch KeyBindings.action(for: key, in: .history) {
        case .down: h.selected = min(h.selected + 1, max(h.versions.count - 1, 0))
        case .up: h.selected = max(h.selected - 1, 0)
        case .top: h.selected = 0
        case .bottom: h.selected = max(h.versions.count - 1, 0)
        case .open:
            state.history = nil
            guard let v = h.versions[safe: h.selected] else { return [] }
            if v.id == state.explanations[h.latent]?.id {
                state.message = Message(text: "that is the current version", isError: false)
                return []
            }
            return [.revertExplanation(latent: h.latent, versionID: v.id)]
        case .back, .cancelJob: state.history = nil
        case .quit: state.quit = true
        default: return []
        }
        if state.history != nil { state.history = h }
        return []
    }
}
