import Foundation
import LoupeTestSupport
import XCTest

/// A key storm on the real `loupe` binary in tmux (as `EndToEndTests`): 10,000 random keys —
/// escape sequences, function keys, bracketed pastes (some cut short), mouse reports, control keys
/// (Ctrl-Z suspends, and the test resumes it as `fg` would; Ctrl-C and q/Q quit, and the test starts
/// it again), UTF-8 — in batches, with resizes between 20×5 and 300×100. After every batch the
/// program must still run or have quit cleanly; at checkpoints the screen, once still, must equal
/// the screen after Ctrl-L (a full repaint: no garbage left by an incremental update); at the end
/// every explanation saved before the storm is still in the log, and every line of the log parses
/// with increasing ids. Seeded: `LOUPE_STORM_SEED=N` replays a run; the seed is in every failure.
final class StormTests: XCTestCase {
    var dir: URL!
    var fixture: TinyWorkspace { TinyWorkspace(directory: dir) }
    var driver: TmuxDriver?
    var binary: URL { BuildProducts.executable("loupe") }

    override func setUpWithError() throws {
        guard FileManager.default.isExecutableFile(atPath: binary.path) else { throw XCTSkip("no loupe binary beside the tests at \(binary.path)") }
        guard let tmux = TmuxDriver.find() else { throw XCTSkip("tmux is not installed; the storm test needs it") }
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-storm-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        driver = try TmuxDriver(executable: tmux, directory: dir)
        try fixture.build(arguments: ["--tokens", "4096", "--latents", "64", "--k", "4", "--layer", "1", "--eval-windows", "4", "--batch", "256"])
    }

    override func tearDownWithError() throws {
        driver?.kill()
        if let dir { try? FileManager.default.removeItem(at: dir) }
    }

    var command: [String] {
        ["env", "-u", "NO_COLOR", "TERM=tmux-256color", "LANG=C.UTF-8", "LC_ALL=C.UTF-8",
         binary.path, "open", fixture.workspace, "--model", fixture.model, "--no-explain"]
    }

    func testTenThousandRandomKeysWithResizes() throws {
        let seed = ProcessInfo.processInfo.environment["LOUPE_STORM_SEED"].flatMap { UInt64($0) } ?? UInt64.random(in: 1...999_999)
        let tmux = try XCTUnwrap(driver)
        let t0 = Date()
        try tmux.start(command, width: 100, height: 30)
        try tmux.wait(for: "the latents list") { $0.contains("density") && $0.contains("· 64 latents") }

        // Three explanations saved before the storm, which it must not lose.
        var saved: [String] = []
        for i in 0..<3 {
            let text = "storm keeps \(i) ✓"
            try tmux.press(":")
            try tmux.type(String(i))
            try tmux.press("Enter")
            try tmux.wait(for: "latent \(i)'s screen") { $0.contains("Latent \(i) ·") && $0.contains("e writes one") }
            try tmux.press("e")
            try tmux.wait(for: "the editor") { $0.contains("Enter save · Esc cancel") }
            try tmux.type(text)
            try tmux.press("Enter")
            try tmux.wait(for: "explanation \(i) saved") { $0.contains(text + "  v\(i + 1) · user") }
            try tmux.press("1")
            try tmux.wait(for: "the list again") { $0.contains("density") }
            saved.append(text)
        }

        var rng = SeededRNG(seed: seed)
        var storm = Storm()
        let keysWanted = 10_000, batch = 40
        var sent = 0, resizes = 0, quits = 0, suspends = 0, checkpoints = 0, batches = 0
        var recent: [String] = []
        func context() -> String { "seed \(seed) (LOUPE_STORM_SEED=\(seed) replays it), after \(sent) keys; last keys: \(recent.suffix(12))" }

        while sent < keysWanted {
            var bytes: [UInt8] = []
            var names: [String] = []
            for _ in 0..<min(batch, keysWanted - sent) {
                let key = storm.key(&rng)
                bytes += key.bytes
                names.append(key.name)
                if key.name == "C-z" { suspends += 1 }
            }
            sent += names.count
            recent = Array((recent + names).suffix(40))
            batches += 1
            let delivered = try tmux.send(bytes: bytes)
            guard delivered == 0 else { return XCTFail("tmux could not deliver keys (its pane is gone); \(context())") }
            // Ctrl-Z stopped it: continue it as a shell's `fg` does.
            if names.contains("C-z") {
                usleep(100_000)
                let pane = Int32(try tmux.format("#{pane_pid}")) ?? 0
                if pane > 0 { kill(-pane, SIGCONT) }
            }
            if batches % 10 == 0 {
                let w = Int.random(in: 20...300, using: &rng), h = Int.random(in: 5...100, using: &rng)
                try tmux.resize(width: w, height: h)
                resizes += 1
            }
            // Quit (q on the list, Q, Ctrl-C): it must have exited cleanly; start it again.
            if let status = tmux.exitStatus() {
                XCTAssertEqual(status, 0, "loupe exited with status \(status); \(context())\n\((try? tmux.screen()) ?? "")")
                if status != 0 { return }
                quits += 1
                try tmux.resize(width: 100, height: 30)
                try tmux.respawn(command)
                try tmux.wait(for: "the list after a restart (\(context()))", timeout: 20) { $0.contains("density") }
            }
            if batches % 25 == 0 {
                checkpoints += 1
                try checkRepaint(tmux, context())
                guard try checkAlive(tmux, context()) else { return }
            }
        }
        // Back to a usable size and the list, then quit.
        try tmux.resize(width: 100, height: 30)
        let pane = Int32(try tmux.format("#{pane_pid}")) ?? 0
        if pane > 0 { kill(-pane, SIGCONT) }
        let settled = try still(tmux)
        if let status = tmux.exitStatus() {
            XCTAssertEqual(status, 0, "loupe exited with status \(status); \(context())\n\(settled)")
        } else {
            guard try checkAlive(tmux, context()) else { return }
            usleep(1_200_000)  // a paste left open ends after its 1 s wait
            // Esc, Esc, Q, apart (Esc then Q at once would be Alt-Q).
            for key: UInt8 in [0x1B, 0x1B, 0x51] {
                try tmux.send(bytes: [key])
                usleep(500_000)
            }
            do {
                let status = try tmux.waitForExit(timeout: 20)
                XCTAssertEqual(status, 0, "loupe did not quit cleanly at the end; \(context())\n\(tmux.lastScreen)")
            } catch {
                XCTFail("Esc, Esc, Q did not quit; \(context())\n\(Self.diagnose(try tmux.programPID()))")
                throw error
            }
        }

        // The log: every line parses, ids increase, and nothing saved before the storm is lost.
        let log = try String(contentsOfFile: fixture.workspace + "/explanations/log.jsonl", encoding: .utf8)
        var ids: [Int] = [], texts: [String] = []
        for (i, line) in log.split(separator: "\n").enumerated() {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let id = object["id"] as? Int, let text = object["text"] as? String else {
                XCTFail("log line \(i + 1) does not parse: \(line.debugDescription); \(context())")
                continue
            }
            ids.append(id)
            texts.append(text)
        }
        XCTAssertEqual(ids, ids.sorted(), "ids out of order; \(context())")
        XCTAssertEqual(Set(ids).count, ids.count, "an id repeats; \(context())")
        for text in saved { XCTAssertTrue(texts.contains(text), "\(text.debugDescription) is gone from the log; \(context())") }
        print("storm: seed \(seed), \(sent) keys in \(batches) batches, \(resizes) resizes (20×5…300×100), \(suspends) Ctrl-Z, \(quits) quits restarted, "
              + "\(checkpoints) repaint checks, \(ids.count) log lines (\(saved.count) saved before) — \(String(format: "%.1f", Date().timeIntervalSince(t0))) s")
    }

    /// Waits until the screen holds still, then repaints it with Ctrl-L and waits again: the two
    /// must be equal but for the status line (which a key may clear).
    func checkRepaint(_ tmux: TmuxDriver, _ context: String) throws {
        let before = try still(tmux)
        guard tmux.exitStatus() == nil else { return }
        try tmux.send(bytes: [0x0C])
        let after = try still(tmux)
        guard tmux.exitStatus() == nil else { return }
        let a = before.split(separator: "\n", omittingEmptySubsequences: false).dropLast(2)
        let b = after.split(separator: "\n", omittingEmptySubsequences: false).dropLast(2)
        if a != b {
            let row = zip(a, b).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(a.count, b.count)
            XCTFail("the screen before a repaint differs from the repainted one at row \(row); \(context)\nbefore:\n\(before)\nafter:\n\(after)")
        }
    }

    /// Whether the explorer still reads keys. An idle one waits for a key 25 ms at a time, so its
    /// main thread sleeps and wakes about 40 times a second; a stuck one (a deadlock, or a loop that
    /// never ends) does not, and its screen — a stale frame — would pass every other check. Called
    /// once the screen is still (both callers have just waited for it), over up to five 1 s spans
    /// (a burst of engine results may keep it busy for one). Fails with the threads' stacks when
    /// it is stuck.
    func checkAlive(_ tmux: TmuxDriver, _ context: String) throws -> Bool {
        guard let pid = try tmux.programPID() else { return true }
        for _ in 0..<5 {
            guard let wakeups = TmuxDriver.mainThreadWakeups(pid, over: 1) else { return true }
            if wakeups >= 10 { return true }
        }
        XCTFail("loupe has stopped reading keys (its main thread has not waited for one in 5 s); \(context)\n\(Self.diagnose(pid))")
        return false
    }

    /// What a stuck explorer is doing: each thread's state and, from gdb where it is installed,
    /// the main thread's stack (all threads' stacks are printed to the test's output).
    static func diagnose(_ pid: pid_t?) -> String {
        guard let pid else { return "no loupe process runs in the pane" }
        var lines: [String] = []
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
        // Whether the terminal still has the program in front (a program in a background group
        // of its terminal cannot read it) and in which modes.
        if let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
           let fields = stat.split(separator: ")").last?.split(separator: " "), fields.count > 5 {
            lines.append("process group \(fields[2]), session \(fields[3]), terminal's foreground group \(fields[5])")
        }
        for tid in tasks.sorted(by: { (Int($0) ?? 0) < (Int($1) ?? 0) }) {
            let stat = (try? String(contentsOfFile: "/proc/\(pid)/task/\(tid)/stat", encoding: .utf8)) ?? ""
            let wchan = (try? String(contentsOfFile: "/proc/\(pid)/task/\(tid)/wchan", encoding: .utf8)) ?? "?"
            // After the command's closing parenthesis: state, …, utime (14th field), stime (15th).
            let fields = stat.split(separator: ")").last.map { $0.split(separator: " ") } ?? []
            let state = fields.first.map(String.init) ?? "?"
            let cpu = fields.count > 12 ? (Int(fields[11]) ?? 0) + (Int(fields[12]) ?? 0) : 0
            // The system call it is in (number and arguments; "running" when in none).
            let syscall = ((try? String(contentsOfFile: "/proc/\(pid)/task/\(tid)/syscall", encoding: .utf8)) ?? "?")
                .split(separator: " ").prefix(4).joined(separator: " ").trimmingCharacters(in: .whitespacesAndNewlines)
            lines.append("thread \(tid): state \(state), wchan \(wchan), cpu \(cpu) ticks, syscall \(syscall)")
        }
        let gdb = ["/usr/bin/gdb", "/usr/local/bin/gdb"].first { FileManager.default.isExecutableFile(atPath: $0) }
        guard let gdb else { return (lines + ["(no gdb here for the stacks)"]).joined(separator: "\n") }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/timeout")
        p.arguments = ["60", gdb, "-p", String(pid), "-batch", "-nx", "-ex", "set pagination off", "-ex", "thread apply all bt 40"]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        guard (try? p.run()) != nil else { return lines.joined(separator: "\n") }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        print("gdb on the stuck loupe (pid \(pid)):\n\(text)")
        // The main thread's frames ("Thread 1 …" up to the next thread), function names only.
        let main = text.components(separatedBy: "\nThread ").first { $0.hasPrefix("1 ") || $0.contains("(LWP \(pid))") } ?? ""
        let frames = main.split(separator: "\n").filter { $0.hasPrefix("#") }.prefix(24).map { frame -> String in
            let f = frame.replacingOccurrences(of: #" \(.*$"#, with: "", options: .regularExpression)
            return "  " + f.replacingOccurrences(of: #"0x[0-9a-f]+ in "#, with: "", options: .regularExpression)
        }
        return (lines + ["main thread's stack:"] + demangled(frames)).joined(separator: "\n")
    }

    /// Swift's symbols in `lines` in their short readable form, by the toolchain's swift-demangle
    /// where it is on the PATH; else as they are.
    static func demangled(_ lines: [String]) -> [String] {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        guard let tool = path.split(separator: ":").map({ $0 + "/swift-demangle" }).first(where: { FileManager.default.isExecutableFile(atPath: $0) })
        else { return lines }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: tool)
        p.arguments = ["--simplified"]
        let input = Pipe(), output = Pipe()
        p.standardInput = input
        p.standardOutput = output
        guard (try? p.run()) != nil else { return lines }
        input.fileHandleForWriting.write(Data(lines.joined(separator: "\n").utf8))
        try? input.fileHandleForWriting.close()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        let out = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        return out.count >= lines.count ? Array(out.prefix(lines.count)) : lines
    }

    /// The screen once it has not changed for 1.5 s (at most 30 s: saves start simulations whose
    /// results arrive for a while).
    func still(_ tmux: TmuxDriver) throws -> String {
        var last = try tmux.screen()
        var since = Date()
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            usleep(250_000)
            let now = try tmux.screen()
            if now != last { last = now; since = Date() }
            if Date().timeIntervalSince(since) >= 1.5 && !now.contains("loading…") { return now }
        }
        return last
    }
}

/// The storm's keys: raw bytes as a terminal sends them, and a short name for failure messages.
struct Storm {
    struct Key { var bytes: [UInt8]; var name: String }

    mutating func key(_ rng: inout SeededRNG) -> Key {
        func esc(_ s: String) -> [UInt8] { [0x1B] + Array(s.utf8) }
        let roll = Int.random(in: 0..<100, using: &rng)
        switch roll {
        case 0..<30:
            // Printable ASCII; q and Q (which quit) rarer than the rest.
            var c = UInt8.random(in: 0x20...0x7E, using: &rng)
            if (c == UInt8(ascii: "q") || c == UInt8(ascii: "Q")) && Int.random(in: 0..<8, using: &rng) > 0 { c = UInt8(ascii: "j") }
            return Key(bytes: [c], name: String(UnicodeScalar(c)))
        case 30..<38:
            let s = ["é", "✓", "日本", "🙂", "e\u{301}", "👩‍💻", "\u{202E}", "ß"].randomElement(using: &rng)!
            return Key(bytes: Array(s.utf8), name: s)
        case 38..<55:
            let s = ["[A", "[B", "[C", "[D", "[H", "[F", "[1~", "[2~", "[3~", "[4~", "[5~", "[6~", "OP", "OQ", "OR", "OS",
                     "[15~", "[17~", "[18~", "[19~", "[20~", "[21~", "[23~", "[24~", "[1;5C", "[1;5D", "[1;2A", "[1;3B",
                     "b", "f", "[Z", "", "[", "[999;", "]0;title\u{07}", "[?1049l", "O", "[1;9X"].randomElement(using: &rng)!
            return Key(bytes: esc(s), name: "ESC" + s)
        case 55..<63:
            // Control keys: Tab, Enter, Backspace, Ctrl-A…, Ctrl-C (quit), Ctrl-Z (suspend), NUL.
            let c = [0x09, 0x0D, 0x7F, 0x08, 0x01, 0x03, 0x05, 0x0B, 0x15, 0x17, 0x19, 0x1A, 0x00, 0x0C, 0x04, 0x0E, 0x10]
                .randomElement(using: &rng)!
            if c == 0x03 && Int.random(in: 0..<4, using: &rng) > 0 { return Key(bytes: [0x09], name: "Tab") }
            return Key(bytes: [UInt8(c)], name: c == 0x1A ? "C-z" : c == 0x03 ? "C-c" : String(format: "0x%02x", c))
        case 63..<75:
            // Mouse: SGR reports (press, release, wheel, drag) anywhere up to 300×100, some X10.
            let b = [0, 1, 2, 32, 64, 65, 35].randomElement(using: &rng)!
            let x = Int.random(in: 1...300, using: &rng), y = Int.random(in: 1...100, using: &rng)
            if Int.random(in: 0..<5, using: &rng) == 0 {
                return Key(bytes: esc("[M") + [UInt8(32 + b % 64), UInt8(32 + min(x, 223)), UInt8(32 + min(y, 223))], name: "X10 mouse")
            }
            let up = Bool.random(using: &rng)
            return Key(bytes: esc("[<\(b);\(x);\(y)\(up ? "m" : "M")"), name: "mouse \(b) \(x),\(y)")
        case 75..<80:
            // Bracketed paste of random text (newlines, tabs, escapes inside); now and then cut short.
            var text = ""
            for _ in 0..<Int.random(in: 0...40, using: &rng) {
                text += ["a", "b", " ", "\n", "\t", "✓", "\u{1B}[31m", "q", "1", "\u{7F}"].randomElement(using: &rng)!
            }
            let closed = Int.random(in: 0..<10, using: &rng) > 0
            return Key(bytes: esc("[200~") + Array(text.utf8) + (closed ? esc("[201~") : []), name: closed ? "paste" : "unclosed paste")
        case 80..<99:
            // Screen keys and the editor: 1–4, e, Enter, Esc, H, r, /, :, s, f, d, [, ].
            let s = ["1", "2", "3", "4", "e", "\r", "\u{1B}", "H", "r", "/", ":", "s", "f", "d", "[", "]", "?", "l", "h", "n"]
                .randomElement(using: &rng)!
            return Key(bytes: Array(s.utf8), name: s.debugDescription)
        default:
            // Write and save: e, a few characters, Enter (on a latent's screen this saves a version).
            var text = "e"
            for _ in 0..<Int.random(in: 1...6, using: &rng) { text += ["x", "y", " ", "✓", "7"].randomElement(using: &rng)! }
            return Key(bytes: Array((text + "\r").utf8), name: "edit+save")
        }
    }
}
