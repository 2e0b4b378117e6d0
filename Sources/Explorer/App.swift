import EngineAPI
import Storage
import Foundation
import Terminal

/// The explorer's logic: keys and engine events in, a new state and engine requests out. Pure
/// (no terminal, no engine), so every behaviour can be scripted in tests; the run loop owns the I/O.
/// This file routes keys and clicks; each screen's actions are in its `…Actions.swift`, engine events in EngineEvents.swift.
public struct App: Sendable {
    public var state: AppState

    public init(state: AppState) { self.state = state }

    /// The first requests to send when the explorer starts.
    public static let startRequests: [EngineRequest] = [.open]

    // MARK: keys

    /// Handles a key; returns what to ask of the engine.
    public mutating func handle(_ key: Key, now: Double = 0) -> [EngineRequest] {
        defer { refreshFlows() }
        if case .resize = key {
            clampList()
            clampRewrite()
            if var l = state.latent {
                l.scroll = max(0, min(l.scroll, LatentScreen.maxScroll(l, state, width: state.width)))
                state.latent = l
            }
            return []
        }
        if state.quit { return [] }
        // Ctrl-L repaints (the run loop invalidates the screen) and changes nothing else: an open
        // help overlay stays open, a line being edited keeps its text.
        if key == .ctrl("l") { return [] }
        if state.showHelp { return handleHelp(key) }
        if state.prompt != nil { return handlePrompt(key) }
        if state.history != nil, let out = handleHistory(key) { return out }
        if state.screen == .latent, state.latent?.editor != nil { return handleExplanationEditor(key) }
        if state.screen == .lab, state.lab.editing, let out = handleLabEditor(key, now: now) { return out }
        if case .mouse(let m) = key { return handleMouse(m) }
        guard let action = KeyBindings.action(for: key, in: state.context) else { return [] }
        return perform(action)
    }

    mutating func perform(_ action: Action) -> [EngineRequest] {
        state.message = nil
        switch action {
        case .quit:
            if let l = state.latent, let editor = l.editor, editor.text != (state.explanations[l.latent]?.text ?? "") {
                state.prompt = Prompt(kind: .confirmQuit, editor: LineEditor())
                return []
            }
            state.quit = true
        case .help: state.showHelp = true; state.helpScroll = 0
        case .cycleTheme:
            state.themeIndex = (state.themeIndex + 1) % state.themes.count
            state.message = Message(text: "theme: \(state.themeName)", isError: false)
        case .cancelJob:
            if state.job != nil { return [.cancel] }
            return perform(.back)
        case .back:
            if state.history != nil { state.history = nil; return [] }
            if let last = state.previous.popLast() { state.screen = last; return [] }
            if state.screen == .latents || state.screen == .welcome { state.quit = true } else { state.screen = .latents }
        case .showLatents: go(to: .latents)
        case .showLatent:
            if state.latent != nil { go(to: .latent) } else { state.message = Message(text: "no latent opened yet", isError: false) }
        case .showLab:
            go(to: .lab)
            // A text kept from the last run is analysed when the lab is first shown.
            if state.lab.analysis == nil && !state.lab.editor.isEmpty && state.lab.requested == state.lab.shown {
                return analyzeLab()
            }
        case .showRewrite: return showRewrite()
        case .build:
            state.missingWorkspace = false
            state.message = Message(text: "building the workspace — Esc stops it (what is done is kept; run again to resume)", isError: false)
            return [.build]
        default:
            switch state.screen {
            case .latents: return performList(action)
            case .latent: return performLatent(action)
            case .lab: return performLab(action)
            case .rewrite: return performRewrite(action)
            case .welcome: return []
            }
        }
        return []
    }

    mutating func go(to screen: ScreenKind) {
        guard screen != state.screen else { return }
        state.previous.append(state.screen)
        if state.previous.count > 50 { state.previous.removeFirst() }
        state.screen = screen
    }

    // MARK: mouse

    mutating func handleMouse(_ m: Mouse) -> [EngineRequest] {
        switch m.kind {
        case .wheelDown: return perform(.down) + perform(.down) + perform(.down)
        case .wheelUp: return perform(.up) + perform(.up) + perform(.up)
        case .rightClick: return perform(.back)
        case .click, .doubleClick:
            if m.y == 0 { return clickTab(m.x) }
            switch state.screen {
            case .latents: return clickList(m)
            case .latent: return clickLatent(m)
            case .rewrite: return clickRewrite(m)
            case .lab, .welcome: return []
            }
        }
    }

    mutating func clickTab(_ x: Int) -> [EngineRequest] {
        for (screen, range) in TitleBar.tabRanges(state) where range.contains(x) {
            switch screen {
            case .latents: return perform(.showLatents)
            case .latent: return perform(.showLatent)
            case .lab: return perform(.showLab)
            case .rewrite: return perform(.showRewrite)
            case .welcome: return []
            }
        }
        return []
    }

    // MARK: drawing

    /// The frame for the current state.
    public func render(palette: Palette) -> Canvas {
        Frame.render(state, palette: palette)
    }
}

extension Array {
    subscript(safe i: Int) -> Element? { indices.contains(i) ? self[i] : nil }
}
