import Foundation
import LoupeTestSupport
import XCTest

/// The real `loupe` binary in tmux, on a workspace built in setUp (by `loupe build`) from a tiny
/// random model the test writes: keys go in with `send-keys`, the screen comes back with
/// `capture-pane` and is polled until what should show does.
final class EndToEndTests: XCTestCase {
    var dir: URL!
    var fixture: TinyWorkspace { TinyWorkspace(directory: dir) }
    var model: String { fixture.model }
    var workspace: String { fixture.workspace }
    var driver: TmuxDriver?

    /// `loupe`, built beside the test bundle.
    var binary: URL { BuildProducts.executable("loupe") }

    override func setUpWithError() throws {
        guard FileManager.default.isExecutableFile(atPath: binary.path) else {
            throw XCTSkip("no loupe binary beside the tests at \(binary.path) (build with --build-tests)")
        }
        guard let tmux = TmuxDriver.find() else { throw XCTSkip("tmux is not installed; the end-to-end explorer tests need it") }
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-e2e-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        driver = try TmuxDriver(executable: tmux, directory: dir)
        // 64 latents (k 4) on layer 1 of 2, a few thousand tokens.
        try fixture.build(arguments: ["--tokens", "4096", "--latents", "64", "--k", "4", "--layer", "1",
                                          "--eval-windows", "4", "--batch", "256"])
    }

    override func tearDownWithError() throws {
        driver?.kill()
        if let dir { try? FileManager.default.removeItem(at: dir) }
    }

    /// `loupe open` as a user starts it in a 256-colour tmux, plus extra environment and flags.
    func openCommand(environment: [String] = [], flags: [String] = []) -> [String] {
        ["env", "-u", "NO_COLOR", "TERM=tmux-256color", "LANG=C.UTF-8", "LC_ALL=C.UTF-8"] + environment
            // --no-explain: the tiny model's own LLM explanation would race the one the test types.
            + [binary.path, "open", workspace, "--model", model, "--no-explain"] + flags
    }

    /// The list has drawn its rows: the heading, the title's latent count, and a row with a density.
    static func showsList(_ s: String) -> Bool {
        s.contains("density") && s.contains("· 64 latents") && s.contains(#/(?m)^\s+\d+\s+\d[\d.]*%/#)
    }

    /// The latent whose screen is showing (with its record loaded), if one is.
    static func latentShown(_ s: String) -> Int? {
        s.firstMatch(of: #/Latent (\d+) ·/#).flatMap { Int($0.1) }
    }

    func testListLatentEditSaveQuitReopen() throws {
        let t0 = Date()
        let tmux = try XCTUnwrap(driver)
        let explanation = "fires after commas — test ✓"
        try tmux.start(openCommand(), width: 100, height: 30)
        try tmux.wait(for: "the latents list", Self.showsList)

        try tmux.press("Enter")
        let latentScreen = try tmux.wait(for: "a latent's screen") { Self.latentShown($0) != nil && $0.contains("(none yet — e writes one)") }
        let id = try XCTUnwrap(Self.latentShown(latentScreen))

        try tmux.press("e")
        try tmux.wait(for: "the explanation editor") { $0.contains("Enter save · Esc cancel") }
        try tmux.type(explanation)
        try tmux.wait(for: "the typed text") { $0.contains(explanation) }
        try tmux.press("Enter")
        // Saved: the status line says so — or already that the re-simulation that follows a save
        // finished (the tiny model is quick; its context of 1024 holds the simulator's prompts, so no
        // error replaces the message) — and the screen shows the text as version 1, by the user.
        try tmux.wait(for: "the saved explanation") {
            ($0.contains("saved explanation of latent \(id) (version 1)") || $0.contains("simulated latent \(id)"))
                && $0.contains(explanation + "  v1 · user")
        }

        try tmux.press("Q")
        XCTAssertEqual(try tmux.waitForExit(), 0, "loupe exits cleanly on Q; it left:\n\(tmux.lastScreen)")
        XCTAssertEqual(try tmux.format("#{alternate_on} #{cursor_flag}"), "0 1", "the terminal is back on its normal screen, cursor shown")

        let log = try String(contentsOfFile: workspace + "/explanations/log.jsonl", encoding: .utf8)
        let lines = log.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        XCTAssertEqual(lines.count, 1, "one version in the log:\n\(log)")
        XCTAssertEqual(lines.first?["latent"] as? Int, id)
        XCTAssertEqual(lines.first?["text"] as? String, explanation)
        XCTAssertEqual(lines.first?["source"] as? String, "user")

        // Reopened, the list shows the explanation in its row (the order is deterministic, so it is the first row).
        try tmux.respawn(openCommand())
        try tmux.wait(for: "the list with the saved explanation") { Self.showsList($0) && $0.contains(explanation) }

        // Too small a terminal gets a message; back to full size, the list is drawn again.
        try tmux.resize(width: 50, height: 12)
        try tmux.wait(for: "the too-small message") { $0.contains("at least 60×15") && $0.contains("this one is 50×12") }
        try tmux.resize(width: 100, height: 30)
        try tmux.wait(for: "the list after resizing back") { Self.showsList($0) && $0.contains(explanation) && !$0.contains("at least 60×15") }

        // Jump to the latent by id: the explanation is on its screen.
        try tmux.press(":")
        try tmux.type(String(id))
        try tmux.press("Enter")
        try tmux.wait(for: "latent \(id) with its explanation") { Self.latentShown($0) == id && $0.contains(explanation + "  v1 · user") }

        try tmux.press("Q")
        XCTAssertEqual(try tmux.waitForExit(), 0, "loupe exits cleanly on Q; it left:\n\(tmux.lastScreen)")
        print("end-to-end explorer session: \(String(format: "%.1f", Date().timeIntervalSince(t0))) s after the build")
    }

    /// A resize while a bracketed paste is open (here one never closed) reaches the app: once the
    /// paste ends, the list is laid out for the new size, its key line on the last row.
    func testResizeDuringAPasteIsNotLost() throws {
        let tmux = try XCTUnwrap(driver)
        try tmux.start(openCommand(), width: 100, height: 30)
        try tmux.wait(for: "the latents list", Self.showsList)
        try tmux.send(raw: "\u{1B}[200~abc")
        usleep(200_000)
        try tmux.resize(width: 120, height: 40)
        try tmux.wait(for: "the list drawn for 120×40 after the paste's 1 s wait", timeout: 10) { s in
            let rows = s.split(separator: "\n", omittingEmptySubsequences: false)
            return rows.count >= 40 && rows[39].contains("q quit") && Self.showsList(s)
        }
        usleep(1_500_000)  // the paste over (until then Q is pasted text)
        try tmux.press("Q")
        XCTAssertEqual(try tmux.waitForExit(), 0, "loupe exits on Q once the paste is over; it left:\n\(tmux.lastScreen)")
    }

    /// The mouse as a terminal reports it: SGR mode is on while the explorer runs; a report ncurses
    /// would not have composed into an event (a middle click, in X10's form) leaves it waiting
    /// for keys as before, not in a read that blocks until the next byte; a double click on a row
    /// opens its latent; on exit the terminal's mouse modes are off again.
    func testTheMouseThroughTheTerminal() throws {
        let tmux = try XCTUnwrap(driver)
        try tmux.start(openCommand(), width: 100, height: 30)
        try tmux.wait(for: "the latents list", Self.showsList)
        XCTAssertEqual(try tmux.format("#{mouse_standard_flag} #{mouse_sgr_flag}"), "1 1", "button reports, SGR form")
        try tmux.send(raw: "\u{1B}[M!00\u{1B}[M#00")
        usleep(300_000)
        let pid = try XCTUnwrap(try tmux.programPID())
        XCTAssertGreaterThanOrEqual(TmuxDriver.mainThreadWakeups(pid, over: 1) ?? 0, 10, "still waiting for keys 25 ms at a time")
        let list = try tmux.screen().split(separator: "\n")
        let second = try XCTUnwrap(list[3].split(separator: " ").first.flatMap { Int($0) }, "the list's second row: \(list[3])")
        try tmux.send(raw: "\u{1B}[<0;10;4M\u{1B}[<0;10;4m\u{1B}[<0;10;4M\u{1B}[<0;10;4m")
        try tmux.wait(for: "latent \(second) opened by a double click") { Self.latentShown($0) == second }
        try tmux.press("Q")
        XCTAssertEqual(try tmux.waitForExit(), 0)
        XCTAssertEqual(try tmux.format("#{mouse_standard_flag} #{mouse_sgr_flag} #{alternate_on}"), "0 0 0", "the terminal's modes are undone")
    }

    /// NO_COLOR (and --no-color) draw with attributes only; the same screens in a 256-colour run have colours.
    func testNoColorUsesAttributesOnly() throws {
        let tmux = try XCTUnwrap(driver)
        let runs: [(String, [String], [String], Bool)] = [
            ("default", [], [], true), ("NO_COLOR=1", ["NO_COLOR=1"], [], false), ("--no-color", [], ["--no-color"], false),
        ]
        for (i, (name, environment, flags, coloured)) in runs.enumerated() {
            if i == 0 {
                try tmux.start(openCommand(environment: environment, flags: flags), width: 100, height: 30)
            } else {
                try tmux.respawn(openCommand(environment: environment, flags: flags))
            }
            try tmux.wait(for: "the list (\(name))", Self.showsList)
            let list = try tmux.screen(escapes: true)
            try tmux.press("Enter")
            try tmux.wait(for: "a latent (\(name))") { Self.latentShown($0) != nil }
            let latent = try tmux.screen(escapes: true)
            for (screen, text) in [("list", list), ("latent", latent)] {
                let a = Attributes(of: text)
                XCTAssertEqual(a.colour, coloured, "\(name), \(screen) screen: colours \(coloured ? "expected" : "found"):\n\(text.debugDescription)")
                XCTAssertTrue(a.bold || a.underline, "\(name), \(screen) screen: neither bold nor underline")
            }
            try tmux.press("Q")
            XCTAssertEqual(try tmux.waitForExit(), 0, "\(name): loupe exits cleanly on Q; it left:\n\(tmux.lastScreen)")
        }
    }
}
