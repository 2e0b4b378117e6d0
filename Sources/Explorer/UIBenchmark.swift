import EngineAPI
import Storage
import Foundation
import Terminal

/// `loupe bench ui`: how fast the explorer answers, on a real workspace with the live engine.
///
/// Startup-to-first-frame runs from the process's start (from /proc/self/stat) to the first
/// frame drawn, and to the first frame that shows the list's rows. Key-to-frame is, for each key
/// of a fixed script a user might type (moves, pages, sorts, a filter typed letter by letter,
/// search, opening latents, token cursor moves, raw mode, help, theme changes), the time from the
/// key to its frame being on the terminal: the app's reaction, the events that arrived, the render
/// and the terminal update. Engine round trips (a latent's record arriving) are reported apart.
public enum UIBenchmark {
    public struct Report: Sendable {
        public var firstFrame: Double
        /// The list's rows on screen (token texts may still be loading).
        public var firstRowsFrame: Double
        /// The list complete, with its top tokens.
        public var firstListFrame: Double
        public var keyLatencies: [Double]
        public var latentOpen: [Double]
        public var onTerminal: Bool
        public var width: Int
        public var height: Int
        public var latents: Int

        public func percentile(_ p: Double, of xs: [Double]) -> Double {
            guard !xs.isEmpty else { return .nan }
            // Nearest rank.
            let s = xs.sorted()
            let rank = Int((p / 100 * Double(s.count)).rounded(.up))
            return s[min(max(rank - 1, 0), s.count - 1)]
        }
    }

    /// Seconds since this process started.
    static func processAge() -> Double? {
        guard let stat = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // Field 22 (starttime) is the 20th after the command name; in clock ticks since boot.
        guard fields.count > 19, let ticks = Double(fields[19]) else { return nil }
        let hz = Double(sysconf(Int32(_SC_CLK_TCK)))
        var t = timespec()
        clock_gettime(CLOCK_BOOTTIME, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9 - ticks / hz
    }

    /// The key script: (key, repeat count).
    static let script: [(Key, Int)] = [
        (.char("j"), 60), (.pageDown, 10), (.char("k"), 20), (.pageUp, 5), (.char("G"), 1), (.char("g"), 1),
        (.char("s"), 5), (.char("S"), 2), (.char("f"), 1), (.char("o"), 1), (.char("f"), 1), (.enter, 1),
        (.char("f"), 1), (.ctrl("u"), 1), (.enter, 1), (.char("/"), 1), (.char("t"), 1), (.char("h"), 1), (.char("e"), 1),
        (.enter, 1), (.char("n"), 10), (.char("t"), 2), (.char("?"), 1), (.char("j"), 3), (.escape, 1),
    ]

    static let latentScript: [(Key, Int)] = [
        (.char("j"), 15), (.char("l"), 30), (.char("h"), 10), (.char("r"), 2), (.tab, 1), (.char("j"), 3), (.tab, 1),
        (.char("G"), 1), (.char("g"), 1), (.pageDown, 3),
    ]

    public static func run(workspace: Workspace, engine: any EngineClient, onTerminal: Bool, width: Int = 120, height: Int = 40,
                           latentsToOpen: Int = 12) throws -> Report {
        let screen = onTerminal ? try TerminalScreen() : nil
        defer { screen?.close() }
        let size: (width: Int, height: Int) = screen?.size ?? (width: width, height: height)
        var state = AppState(width: size.width, height: size.height, workspacePath: workspace.directory.path,
                             themes: Theme.available().isEmpty ? ["fallback"] : Theme.available())
        state.noColor = screen?.colorMode == TerminalScreen.ColorMode.none
        var app = App(state: state)
        var themes = ThemeCache()
        let mode = screen?.colorMode ?? .full
        func frame() {
            let canvas = app.render(palette: themes.palette(app.state, mode: mode))
            screen?.draw(canvas)
        }
        func pump() -> Bool {
            var any = false
            for e in engine.drain() { for r in app.apply(e) { engine.send(r) }; any = true }
            return any
        }
        let age0 = processAge() ?? 0, t0 = Clock.now
        for r in App.startRequests { engine.send(r) }
        frame()
        let firstFrame = age0 + Clock.now - t0
        var firstListFrame = Double.nan, firstRowsFrame = Double.nan
        let deadline = Clock.now + 30
        while Clock.now < deadline {
            if pump() {
                frame()
                if !app.state.list.rows.isEmpty && firstRowsFrame.isNaN { firstRowsFrame = age0 + Clock.now - t0 }
                if !app.state.list.rows.isEmpty && app.state.vocabulary != nil { firstListFrame = age0 + Clock.now - t0; break }
                if app.state.message?.isError == true || app.state.missingWorkspace {
                    throw UIBenchmarkError.didNotOpen(workspace: workspace.directory.path, message: app.state.message?.text)
                }
            } else { usleep(200) }
        }
        guard !app.state.list.rows.isEmpty else { throw UIBenchmarkError.openTimedOut(seconds: 30) }

        var latencies: [Double] = []
        func press(_ key: Key) {
            let t = Clock.now
            for r in app.handle(key, now: t) { engine.send(r) }
            _ = pump()
            frame()
            latencies.append(Clock.now - t)
        }
        for (key, n) in script { for _ in 0..<n { press(key) } }

        // Open latents one after another: the key's frame, then the engine's answer.
        var opens: [Double] = []
        app.state.list.sort = SortColumn.density
        app.rebuildRows(keeping: Int?.none)
        for i in 0..<latentsToOpen {
            app.state.list.selected = i * 7 % max(app.state.list.rows.count, 1)
            let t = Clock.now
            press(.enter)
            let latent = app.state.latent?.latent
            while app.state.latent?.record?.latent != latent && Clock.now - t < 10 {
                if pump() { frame() } else { usleep(100) }
            }
            opens.append(Clock.now - t)
            for (key, n) in latentScript { for _ in 0..<n { press(key) } }
            press(.char("q"))
        }
        return Report(firstFrame: firstFrame, firstRowsFrame: firstRowsFrame, firstListFrame: firstListFrame, keyLatencies: latencies, latentOpen: opens,
                      onTerminal: screen != nil, width: size.width, height: size.height, latents: app.state.summaries.count)
    }
}
