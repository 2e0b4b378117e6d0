import Engine
import Explorer
import Foundation
import Storage
import Terminal

/// `loupe` and `loupe open DIR`: the ncurses explorer.
enum ExplorerCommand {
    static func open(_ a: inout Arguments) throws {
        let theme = try a.option("--theme")
        let modelPath = try a.option("--model")
        let noColor = a.flag("--no-color")
        let noExplain = a.flag("--no-explain")
        let named = try a.option("--workspace")
        let rest = try a.positionals()
        guard rest.count <= 1 else { throw UserError("open: give one workspace folder, not \(rest.count)") }
        let directory = rest.first ?? named
        let workspace = directory.map { Workspace(directory: URL(fileURLWithPath: $0, isDirectory: true)) } ?? Workspace(directory: Workspace.defaultDirectory)
        guard Terminal.isInteractive && isatty(STDIN_FILENO) != 0 else {
            throw UserError("the explorer needs an interactive terminal; for scripts use `loupe info`, `loupe latent ID` (with --json)")
        }
        if directory != nil && !workspace.exists {
            throw UserError("no workspace at \(workspace.directory.path) (it has no workspace.json); build one with `loupe build --workspace \(workspace.directory.path)`")
        }
        // Fetch the model before the screen takes over, so its progress shows on the console.
        if modelPath == nil { try ModelFetch.ensureDefault(progress: Console.progress) }
        let engine = EngineThread(workspace: workspace, modelPath: modelPath)
        defer { engine.stop() }
        try Explorer.run(Explorer.Options(workspace: workspace, theme: theme, colorMode: noColor ? TerminalScreen.ColorMode.none : nil, autoExplain: !noExplain),
                         engine: engine)
    }
}
