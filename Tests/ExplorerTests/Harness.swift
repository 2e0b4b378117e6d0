import Engine
@testable import Explorer
import EngineAPI
import Foundation
import Storage
import Terminal
import XCTest

/// Drives the app as the run loop does — keys in, engine events back — over the fake engine.
struct Harness {
    var app: App
    let engine: FakeEngine
    var palette: Palette

    init(width: Int = 100, height: Int = 30, latents: Int = 40, hasWorkspace: Bool = true, mode: TerminalScreen.ColorMode = .full,
         site: DictionarySite = .mlp) {
        engine = FakeEngine(latents: latents, site: site)
        engine.hasWorkspace = hasWorkspace
        var state = AppState(width: width, height: height, workspacePath: "/tmp/fake", themes: ["dark", "light"])
        state.noColor = mode == .none
        // The LLM explainer on open is tested on its own; elsewhere latents stay unexplained until a test writes one.
        state.autoExplain = false
        app = App(state: state)
        palette = Palette(theme: Theme.fallback, mode: mode)
        for r in App.startRequests { engine.send(r) }
        settle()
    }

    /// Delivers engine answers until there are none.
    mutating func settle() {
        var rounds = 0
        while true {
            let events = engine.drain()
            if events.isEmpty || rounds > 20 { return }
            for e in events { for r in app.apply(e) { engine.send(r) } }
            rounds += 1
        }
    }

    mutating func press(_ keys: Key..., now: Double = 0) { press(keys, now: now) }

    mutating func press(_ keys: [Key], now: Double = 0) {
        for k in keys {
            for r in app.handle(k, now: now) { engine.send(r) }
            settle()
        }
    }

    mutating func type(_ text: String) { press(text.map { Key.char($0) }) }

    mutating func resize(_ width: Int, _ height: Int) {
        app.state.width = width
        app.state.height = height
        press(.resize)
    }

    var screen: String { app.render(palette: palette).text }
    var styled: String { app.render(palette: palette).styledText }
}
