import Engine
import Explorer
import Foundation
import Storage
import Terminal

/// `loupe bench ui`: runs the explorer's `UIBenchmark` (startup-to-first-frame and key-to-frame latency on a real
/// workspace) and prints its figures with the method.
enum UIBenchCommand {
    static func run(_ a: inout Arguments, json: Bool) throws {
        let modelPath = try a.option("--model")
        let named = try a.option("--workspace")
        let headless = a.flag("--headless")
        let rest = try a.positionals()
        guard rest == ["ui"] else { throw UserError("bench ui: unexpected \(rest.dropFirst().joined(separator: " "))") }
        let workspace = named.map { Workspace(directory: URL(fileURLWithPath: $0, isDirectory: true)) } ?? Workspace(directory: Workspace.defaultDirectory)
        guard workspace.exists else { throw UserError("no workspace at \(workspace.directory.path); build it with `loupe build` first") }
        let terminal = !headless && Terminal.isInteractive && isatty(STDIN_FILENO) != 0
        let engine = EngineThread(workspace: workspace, modelPath: modelPath)
        defer { engine.stop() }
        let r = try UIBenchmark.run(workspace: workspace, engine: engine, onTerminal: terminal)
        let ms = { (x: Double) in x * 1000 }
        let keys = r.keyLatencies, opens = r.latentOpen
        let method = "\(keys.count) scripted keys (moves, pages, sorts, a typed filter, search, help, themes, token cursor, raw mode) "
            + "on \(r.latents) latents, each timed from the key to its frame " + (r.onTerminal ? "drawn on this \(r.width)×\(r.height) terminal through ncurses" : "rendered at \(r.width)×\(r.height) (headless: no terminal output)")
            + "; first frame from the process start (/proc/self/stat); latent opens from Enter to the engine's record drawn"
        if json {
            Console.print(JSON.object([
                ("first_frame_ms", .number(ms(r.firstFrame))), ("first_rows_frame_ms", .number(ms(r.firstRowsFrame))), ("first_list_frame_ms", .number(ms(r.firstListFrame))),
                ("key_to_frame_p50_ms", .number(ms(r.percentile(50, of: keys)))), ("key_to_frame_p99_ms", .number(ms(r.percentile(99, of: keys)))),
                ("key_to_frame_max_ms", .number(ms(keys.max() ?? 0))), ("keys", .number(Double(keys.count))),
                ("latent_open_median_ms", .number(ms(r.percentile(50, of: opens)))), ("latent_open_max_ms", .number(ms(opens.max() ?? 0))),
                ("terminal", .bool(r.onTerminal)), ("width", .number(Double(r.width))), ("height", .number(Double(r.height))),
                ("method", .string(method)),
            ]).text)
        } else {
            Console.print(String(format: "first frame:        %.1f ms after the process started (target < 300 ms)", ms(r.firstFrame)))
            Console.print(String(format: "first list frame:   %.1f ms with the rows, %.1f ms with their top tokens (the tokenizer read)", ms(r.firstRowsFrame), ms(r.firstListFrame)))
            Console.print(String(format: "key to frame:       p50 %.2f ms, p99 %.2f ms, max %.2f ms over %d keys (target p99 < 16 ms)",
                                 ms(r.percentile(50, of: keys)), ms(r.percentile(99, of: keys)), ms(keys.max() ?? 0), keys.count))
            Console.print(String(format: "open a latent:      median %.1f ms, max %.1f ms from Enter to its windows on screen (%d latents)",
                                 ms(r.percentile(50, of: opens)), ms(opens.max() ?? 0), opens.count))
            Console.print("method: " + method)
        }
    }
}
