import EngineAPI
import Storage
import Foundation
import Terminal

/// The explorer's one run loop: read a key (or time out), let the app react, collect what the
/// engine finished, draw the frame if anything changed. The engine never runs on this thread.
public enum Explorer {
    public struct Options {
        public var workspace: Workspace
        public var theme: String?
        public var colorMode: TerminalScreen.ColorMode?
        /// Explain latents opened without an explanation with the LLM (in the background).
        public var autoExplain: Bool

        public init(workspace: Workspace, theme: String? = nil, colorMode: TerminalScreen.ColorMode? = nil,
                    autoExplain: Bool = true) {
            self.workspace = workspace; self.theme = theme; self.colorMode = colorMode
            self.autoExplain = autoExplain
        }
    }

    /// Opens the explorer on a terminal until the user quits; `engine` answers its requests.
    public static func run(_ options: Options, engine: any EngineClient) throws {
        let names = Theme.available()
        if let wanted = options.theme, !names.contains(wanted) {
            throw ThemeError.noTheme(name: wanted, directory: Theme.directory.path, known: names)
        }
        let screen = try TerminalScreen(colorMode: options.colorMode)
        defer { screen.close() }
        var app = makeApp(options, screen: screen, themes: names)
        var themes = ThemeCache()
        for r in App.startRequests { engine.send(r) }
        screen.draw(app.render(palette: themes.palette(app.state, mode: screen.colorMode)))
        while !app.state.quit {
            var dirty = false
            if let key = screen.readKey(timeout: 25) {
                // Terminal-level keys: Ctrl-L repaints, Ctrl-Z (outside an editor) suspends to the shell.
                if key == .ctrl("l") { screen.invalidate() }
                if key == .ctrl("z") && !app.state.isEditing {
                    screen.suspend()
                    let size = screen.size
                    app.state.width = size.width
                    app.state.height = size.height
                }
                if key == .resize {
                    let size = screen.size
                    app.state.width = size.width
                    app.state.height = size.height
                }
                for r in app.handle(key, now: Clock.now) { engine.send(r) }
                dirty = true
            }
            for event in engine.drain() {
                for r in app.apply(event) { engine.send(r) }
                dirty = true
            }
            let ticked = app.tick(now: Clock.now)
            for r in ticked { engine.send(r) }
            if dirty || !ticked.isEmpty {
                screen.draw(app.render(palette: themes.palette(app.state, mode: screen.colorMode)))
                if let error = themes.lastError { app.state.message = Message(text: error, isError: true); themes.lastError = nil }
            }
        }
        Drafts.save(app.state, workspace: options.workspace)
    }

    static func makeApp(_ options: Options, screen: TerminalScreen, themes names: [String]) -> App {
        let size = screen.size
        let index = options.theme.flatMap { names.firstIndex(of: $0) } ?? 0
        var state = AppState(width: size.width, height: size.height, workspacePath: options.workspace.directory.path,
                             themes: names.isEmpty ? ["fallback"] : names, themeIndex: index)
        state.noColor = screen.colorMode == .none
        state.autoExplain = options.autoExplain
        Drafts.load(into: &state, workspace: options.workspace)
        return App(state: state)
    }
}

/// Themes read once each; a broken theme file falls back to the built-in one with a message.
struct ThemeCache {
    var loaded: [String: Theme] = [:]
    var lastError: String?

    mutating func palette(_ state: AppState, mode: TerminalScreen.ColorMode) -> Palette {
        let name = state.themeName
        if let t = loaded[name] { return Palette(theme: t, mode: mode) }
        let theme: Theme
        if name == "fallback" { theme = .fallback } else {
            do { theme = try Theme.load(name) } catch {
                lastError = "\(error) — using the built-in theme"
                theme = .fallback
            }
        }
        loaded[name] = theme
        return Palette(theme: theme, mode: mode)
    }
}

/// Unsaved explanation edits and the lab's text, kept across runs in `explanations/drafts.json`
/// (written whole to a temporary file and renamed).
enum Drafts {
    struct File: Codable { var explanations: [String: String]; var lab: String }

    static func url(_ workspace: Workspace) -> URL {
        workspace.draftsURL
    }

    static func load(into state: inout AppState, workspace: Workspace) {
        guard let data = FileManager.default.contents(atPath: url(workspace).path),
              let file = try? JSONDecoder().decode(File.self, from: data) else { return }
        for (k, v) in file.explanations { if let id = Int(k) { state.drafts[id] = v } }
        state.lab.editor = LineEditor(file.lab, keepsNewlines: true)
        if !file.lab.isEmpty { state.lab.editing = false }
    }

    static func save(_ state: AppState, workspace: Workspace) {
        var drafts = state.drafts
        if let l = state.latent, let e = l.editor, e.text != (state.explanations[l.latent]?.text ?? "") { drafts[l.latent] = e.text }
        let file = File(explanations: Dictionary(uniqueKeysWithValues: drafts.map { (String($0.key), $0.value) }), lab: state.lab.editor.text)
        let target = url(workspace)
        guard workspace.exists || !drafts.isEmpty || !file.lab.isEmpty else { return }
        try? FileManager.default.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        guard let data = try? encoder.encode(file) else { return }
        let temp = target.appendingPathExtension("tmp")
        if FileManager.default.createFile(atPath: temp.path, contents: data) { _ = rename(temp.path, target.path) }
    }
}
