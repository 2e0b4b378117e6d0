import Foundation
import XCTest

/// A private tmux server (its own socket, no user configuration) holding one session whose pane
/// runs a program: send it keys, read its screen back, wait for what should appear.
///
/// The server reads a small config: no status line, so the pane is the whole window.
final class TmuxDriver {
    let executable: String
    let socket: String
    let session = "loupe-e2e"
    let config: URL
    /// The last screen read, for failure messages.
    private(set) var lastScreen = ""
    /// The server's socket file, known once it runs (tmux leaves it behind when killed).
    private var socketPath: String?

    /// tmux's path on PATH, nil when it is not installed.
    static func find() -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        return path.split(separator: ":").map { "\($0)/tmux" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    init(executable: String, directory: URL) throws {
        self.executable = executable
        socket = "loupe-e2e-\(getpid())-\(UUID().uuidString.prefix(8))"
        config = directory.appendingPathComponent("tmux.conf")
        try """
        set -g status off
        set -g history-limit 200
        """.write(to: config, atomically: true, encoding: .utf8)
    }

    var environment: [String: String] {
        var env = ProcessInfo.processInfo.environment
        env["TMUX"] = nil
        env["LANG"] = "C.UTF-8"
        env["LC_ALL"] = "C.UTF-8"
        return env
    }

    /// Runs one tmux command on this server; returns its exit status and standard output.
    @discardableResult
    func tmux(_ args: [String]) throws -> (status: Int32, output: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = ["-u", "-L", socket, "-f", config.path] + args
        p.environment = environment
        p.standardInput = FileHandle.nullDevice
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        let errors = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        if p.terminationStatus != 0 {
            FileHandle.standardError.write("tmux \(args.joined(separator: " ")): \(String(decoding: errors, as: UTF8.self))".data(using: .utf8)!)
        }
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// Runs a tmux command that starts the server, which forks off and lives on. Not through
    /// `Process`: on Linux it learns of a child's exit when a descriptor it gives the child closes,
    /// and the server would inherit that descriptor and hold it open. Here the command gets
    /// /dev/null for its standard streams, no other descriptor (glibc skips closing one that is
    /// no longer open) and default signal handling, and is waited for directly.
    func startServer(_ args: [String]) throws -> Int32 {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for fd: Int32 in 0...2 { posix_spawn_file_actions_addopen(&actions, fd, "/dev/null", fd == 0 ? O_RDONLY : O_WRONLY, 0) }
        let open = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        for fd in open.compactMap({ Int32($0) }) where fd > 2 { posix_spawn_file_actions_addclose(&actions, fd) }
        let argv = ([executable, "-u", "-L", socket, "-f", config.path] + args).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { (argv + envp).forEach { free($0) } }
        // Signals as a fresh process has them: none blocked, every one at its default action.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t(), all = sigset_t()
        sigemptyset(&none)
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        guard rc == 0 else { throw DriverError("could not run \(executable): \(String(cString: strerror(rc)))") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return status & 0x7f == 0 ? (status >> 8) & 0xff : -1
    }

    /// Starts the server and the session, `width`×`height`, running `command` (see `wrapped`).
    func start(_ command: [String], width: Int, height: Int) throws {
        let status = try startServer(["new-session", "-d", "-s", session, "-x", String(width), "-y", String(height), "-c", folder.path, "--"]
                                     + wrapped(command))
        guard status == 0 else { throw DriverError("tmux new-session failed with status \(status)") }
        socketPath = try format("#{socket_path}")
    }

    /// Runs `command` again in the session's pane, ending what runs there.
    func respawn(_ command: [String]) throws {
        let r = try tmux(["respawn-pane", "-k", "-t", session, "-c", folder.path, "--"] + wrapped(command))
        guard r.status == 0 else { throw DriverError("tmux respawn-pane failed with status \(r.status)") }
    }

    /// Programs started so far; each run's exit line names its number.
    private var runs = 0

    /// What the shell writes on the screen when the current run's program exits, before the status.
    private var exitMarker: String { "[run \(runs) exited with status " }

    /// The test's own folder, where the pane's program runs: a path it is given relative (a key
    /// storm can type one into the export prompt) lands there, not in the checkout.
    private var folder: URL { config.deletingLastPathComponent() }

    /// The file the shell writes run `run`'s exit status to.
    private func statusFile(_ run: Int) -> URL { folder.appendingPathComponent("run-\(run).status") }

    /// `command` under a shell that clears the screen, runs it, turns the terminal's signal keys
    /// and echo off (so keys that arrive after the program quit, a key storm's Ctrl-C, neither end
    /// the pane nor scroll the status away), writes the exit status on the screen and to a file
    /// (`exitStatus()`) and keeps the pane open; until then the shell outlives a Ctrl-C by a trap
    /// (which the program does not inherit). (Not tmux's own `pane_dead_status`: tmux can miss the
    /// exit of a pane's process when it lands while tmux runs libutempter's helper, which sets
    /// SIGCHLD to its default for the time; the pane then never dies.)
    private func wrapped(_ command: [String]) -> [String] {
        runs += 1
        let file = statusFile(runs).path
        // stty again if a Ctrl-C ended it; the status by the shell's own echo (no command a
        // Ctrl-C could end; the reader takes an empty file for "not yet").
        return ["sh", "-c", "trap : INT QUIT; printf '\\033[H\\033[2J'; \"$@\"; s=$?; "
                + "for i in 1 2 3 4 5 6 7 8; do stty -isig -echo 2>/dev/null && break; done; "
                + "echo \"\(exitMarker)$s]\"; echo $s > '\(file)'; exec sleep 3600", "sh"] + command
    }

    /// The current run's exit status (128 + N for signal N) once its program has exited, else nil.
    /// Read from the shell's file, not the screen, where later resizes may wrap the line or push it
    /// into the history.
    func exitStatus() -> Int32? {
        guard let text = try? String(contentsOf: statusFile(runs), encoding: .utf8) else { return nil }
        return Int32(text.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// Key names as tmux spells them ("Enter", "Escape", "Q").
    func press(_ keys: String...) throws { try tmux(["send-keys", "-t", session] + keys) }

    /// Text typed literally, character by character (UTF-8 as is).
    func type(_ text: String) throws { try tmux(["send-keys", "-t", session, "-l", text]) }

    /// Raw bytes, as a terminal would pass them on (escape sequences unparsed); tmux's status,
    /// non-zero once the pane is gone.
    @discardableResult
    func send(bytes: [UInt8]) throws -> Int32 {
        try tmux(["send-keys", "-t", session, "-H"] + bytes.map { String(format: "%02x", $0) }).status
    }

    /// A string's UTF-8 bytes, raw (see `send(bytes:)`).
    func send(raw text: String) throws { try send(bytes: Array(text.utf8)) }

    func resize(width: Int, height: Int) throws {
        try tmux(["resize-window", "-t", session, "-x", String(width), "-y", String(height)])
    }

    /// The screen as text; with `escapes`, with the SGR sequences of its attributes and colours.
    func screen(escapes: Bool = false) throws -> String {
        let text = try tmux(["capture-pane", "-p", "-t", session] + (escapes ? ["-e"] : [])).output
        lastScreen = text
        return text
    }

    /// A tmux format of the pane, e.g. `#{alternate_on}`.
    func format(_ f: String) throws -> String {
        try tmux(["display-message", "-p", "-t", session, f]).output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Polls the screen until `condition` holds; after `timeout` seconds fails the test, showing
    /// the last screen, and throws.
    @discardableResult
    func wait(for what: String, timeout: Double = 10, file: StaticString = #filePath, line: UInt = #line,
              _ condition: (String) -> Bool) throws -> String {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            let s = try screen()
            if condition(s) { return s }
            if Date() > deadline {
                XCTFail("timed out after \(timeout) s waiting for \(what); the screen:\n\(s)", file: file, line: line)
                throw DriverError("timed out waiting for \(what)")
            }
            usleep(50_000)
        }
    }

    /// Waits for the pane's program to exit; returns its exit status (128 + N for signal N). The
    /// screen it left is in `lastScreen`.
    func waitForExit(timeout: Double = 10, file: StaticString = #filePath, line: UInt = #line) throws -> Int32 {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            if let status = exitStatus() {
                _ = try? screen()
                return status
            }
            if Date() > deadline {
                let s = (try? screen()) ?? lastScreen
                XCTFail("timed out after \(timeout) s waiting for the program to exit; the screen:\n\(s)", file: file, line: line)
                throw DriverError("timed out waiting for the program to exit")
            }
            usleep(50_000)
        }
    }

    /// The program in the pane (the wrapping shell's child; `env` execs it), or nil when none runs.
    func programPID() throws -> pid_t? {
        let pane = Int32(try format("#{pane_pid}")) ?? 0
        guard pane > 0, let children = try? String(contentsOfFile: "/proc/\(pane)/task/\(pane)/children", encoding: .utf8) else { return nil }
        return children.split(separator: " ").compactMap { Int32($0) }.first
    }

    /// How often `pid`'s main thread went to sleep and woke over `seconds` (its voluntary context
    /// switches, from /proc); nil once the process is gone. An idle explorer waits for a key 25 ms
    /// at a time, about 40 a second; one stuck in a blocking call, or spinning, none.
    static func mainThreadWakeups(_ pid: pid_t, over seconds: Double) -> Int? {
        func count() -> Int? {
            guard let status = try? String(contentsOfFile: "/proc/\(pid)/task/\(pid)/status", encoding: .utf8),
                  let line = status.split(separator: "\n").first(where: { $0.hasPrefix("voluntary_ctxt_switches:") }) else { return nil }
            return Int(line.dropFirst("voluntary_ctxt_switches:".count).trimmingCharacters(in: .whitespaces))
        }
        guard let before = count() else { return nil }
        usleep(useconds_t(seconds * 1_000_000))
        return count().map { $0 - before }
    }

    /// Ends the server and whatever still runs in it.
    func kill() {
        _ = try? tmux(["kill-server"])
        if let socketPath, !socketPath.isEmpty { unlink(socketPath) }
    }

    struct DriverError: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }
}

/// What SGR escape sequences (as `capture-pane -e` writes them) switch on.
struct Attributes: Equatable {
    var colour = false, bold = false, underline = false

    /// Reads every `ESC [ … m` in `text`. 38/48 (256-colour and RGB), 30–37, 40–47, 90–97 and
    /// 100–107 are colours; 39 and 49 (the default colours, which tmux always writes) are not.
    init(of text: String) {
        for match in text.matches(of: #/\x1B\[([0-9;]*)m/#) {
            var parts = match.1.split(separator: ";", omittingEmptySubsequences: false).map { Int($0) ?? 0 }[...]
            while let p = parts.popFirst() {
                switch p {
                case 38, 48:
                    // 38;5;N or 38;2;R;G;B: skip the colour's own numbers.
                    colour = true
                    parts = parts.dropFirst(parts.first == 2 ? 4 : 2)
                case 30...37, 40...47, 90...97, 100...107: colour = true
                case 1: bold = true
                case 4: underline = true
                default: break
                }
            }
        }
    }
}
