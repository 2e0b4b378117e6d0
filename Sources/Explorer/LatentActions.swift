import EngineAPI
import Storage
import Foundation
import Terminal

/// The Latent screen's keys and clicks: windows, token cursor, neighbours, the explanation editor.
extension App {
    /// Shows `latent` on the Latent screen and asks for its record; an unsaved edit of the open one is kept as a draft.
    mutating func open(latent: Int) -> [EngineRequest] {
        if let info = state.info, latent < 0 || latent >= info.latents {
            state.message = Message(text: "no latent \(latent) (this workspace has 0…\(info.latents - 1))", isError: true)
            return []
        }
        if let current = state.latent, let editor = current.editor { state.drafts[current.latent] = editor.text }
        state.latent = LatentState(latent: latent)
        go(to: .latent)
        return [.latent(latent)]
    }

    mutating func performLatent(_ action: Action) -> [EngineRequest] {
        guard var l = state.latent else { return [] }
        let windows = l.record?.windows ?? []
        let width = state.width
        switch action {
        case .down:
            if l.focus == .neighbours { l.neighbour += 1 } else { l.window += 1; l.token = nil }
        case .up:
            if l.focus == .neighbours { l.neighbour -= 1 } else { l.window -= 1; l.token = nil }
        case .pageDown: l.scroll += state.height - 4; l.window = LatentScreen.firstWindow(atOrBelow: l.scroll, l, state, width: width)
        case .pageUp: l.scroll -= state.height - 4; l.window = LatentScreen.firstWindow(atOrBelow: max(l.scroll, 0), l, state, width: width)
        case .top: l.window = 0; l.scroll = 0; l.token = nil
        case .bottom: l.window = windows.count - 1; l.token = nil
        case .tokenLeft: l.token = max(0, (l.token ?? windows[safe: l.window]?.focus ?? 0) - 1)
        case .tokenRight: l.token = (l.token ?? windows[safe: l.window]?.focus ?? 0) + 1
        case .tokenFirst: l.token = 0
        case .tokenLast: l.token = (windows[safe: l.window]?.tokens.count ?? 1) - 1
        case .focusNext: l.focus = l.focus == .windows ? .neighbours : .windows
        case .toggleRaw: state.raw.toggle()
        case .open:
            if l.focus == .neighbours, let record = l.record, record.neighbours.indices.contains(l.neighbour) {
                state.latent = l
                return open(latent: record.neighbours[l.neighbour].latent)
            }
        case .edit:
            let text = state.drafts[l.latent] ?? state.explanations[l.latent]?.text ?? ""
            l.editor = LineEditor(text)
            if state.drafts[l.latent] != nil { state.message = Message(text: "restored your unsaved draft", isError: false) }
        case .history:
            state.latent = l
            return [.history(latent: l.latent)]
        case .nextLatent, .previousLatent:
            let rows = state.list.rows
            guard let i = rows.firstIndex(of: l.latent) ?? (rows.isEmpty ? nil : 0) else { return [] }
            let j = min(max(i + (action == .nextLatent ? 1 : -1), 0), rows.count - 1)
            state.list.selected = j
            clampList()
            state.latent = l
            state.previous.removeAll { $0 == .latent }
            let out = open(latent: rows[j])
            if state.previous.last == .latent { state.previous.removeLast() }
            return out
        case .jump: state.latent = l; state.prompt = Prompt(kind: .jump, editor: LineEditor("")); return []
        case .simulate:
            guard state.explanations[l.latent] != nil else {
                state.message = Message(text: "latent \(l.latent) has no explanation to simulate yet (e writes one)", isError: false)
                return []
            }
            l.simulating = true
            state.latent = l
            return [.simulate(latent: l.latent)]
        default: break
        }
        if let record = l.record {
            l.window = min(max(l.window, 0), max(record.windows.count - 1, 0))
            l.neighbour = min(max(l.neighbour, 0), max(record.neighbours.count - 1, 0))
            if let t = l.token { l.token = min(max(t, 0), max((record.windows[safe: l.window]?.tokens.count ?? 1) - 1, 0)) }
        }
        if [.down, .up, .top, .bottom].contains(action) && l.focus == .windows {
            l.scroll = LatentScreen.scroll(toShowWindow: l.window, l, state, width: width)
        }
        l.scroll = max(0, min(l.scroll, LatentScreen.maxScroll(l, state, width: width)))
        state.latent = l
        return []
    }

    mutating func handleExplanationEditor(_ key: Key) -> [EngineRequest] {
        guard var l = state.latent, var editor = l.editor else { return [] }
        switch key {
        case .enter:
            l.editor = nil
            state.latent = l
            state.drafts[l.latent] = nil
            let text = editor.text.trimmingCharacters(in: .whitespacesAndNewlines)
            if text == (state.explanations[l.latent]?.text ?? "") {
                state.message = Message(text: "explanation unchanged", isError: false)
                return []
            }
            state.message = Message(text: "saving…", isError: false)
            return [.saveExplanation(latent: l.latent, text: text)]
        case .escape:
            l.editor = nil
            let saved = state.explanations[l.latent]?.text ?? ""
            if editor.text != saved {
                state.drafts[l.latent] = editor.text
                state.message = Message(text: "edit cancelled; your text is kept as a draft (e restores it)", isError: false)
            }
            state.latent = l
            return []
        case .ctrl("c"):
            state.latent = l
            return perform(.quit)
        default:
            editor.handle(key)
            l.editor = editor
            state.latent = l
            return []
        }
    }

    /// A click on the latent: a token moves the cursor there, a neighbour selects it (a double click opens it).
    mutating func clickLatent(_ m: Mouse) -> [EngineRequest] {
        guard var l = state.latent, let hit = LatentScreen.hit(x: m.x, y: m.y, l, state, width: state.width) else { return [] }
        switch hit {
        case .token(let window, let token): l.window = window; l.token = token; l.focus = .windows; state.latent = l
        case .neighbour(let i):
            l.neighbour = i; l.focus = .neighbours; state.latent = l
            if m.kind == .doubleClick { return perform(.open) }
        }
        return []
    }

    /// Lays the open latent's windows out again when the width, raw mode or token texts changed.
    mutating func refreshFlows() {
        guard var l = state.latent else { return }
        let key = LatentScreen.flowsKey(state, width: state.width)
        guard l.flowsKey != key else { return }
        l.flows = LatentScreen.flows(l, state, width: state.width)
        l.flowsKey = key
        state.latent = l
    }
}
