import Foundation

/// `<workspace>/rewrite/simulations.jsonl`: the rewrite's simulations, cached per (latent,
/// explanation version, backend, mode) and context (corpus window, start, length), so a rerun or
/// an interrupted experiment reuses every simulation already made. One line per simulate call:
///
///     {"latent": 12, "version": 5031, "backend": "local …", "mode": "all",
///      "windows": [{"window": 40, "start": 0, "length": 32, "expected": [0.12, …]}, …]}
///
/// with the expected digits (0…9, to 0.001) before calibration, which the experiment applies.
/// Append-only UTF-8, each line ended by "\n" and fsynced; a torn last line (a crash mid-write)
/// is ignored and the next append first ends it, as in the other logs. A damaged line (torn,
/// unparsable, a negative latent, or a window whose values do not match its length) is skipped
/// on its own, never hiding the lines after it (`AppendOnly.DamagedLines`): counted in
/// `skippedLines`, the first named in `warning`; its simulations are simply made again.
public final class RewriteSimulationCache: @unchecked Sendable {
    public struct Key: Hashable, Codable, Sendable {
        public var latent: Int
        public var version: Int
        public var backend: String
        public var mode: SimulatorKind

        public init(latent: Int, version: Int, backend: String, mode: SimulatorKind) {
            self.latent = latent; self.version = version; self.backend = backend; self.mode = mode
        }
    }

    public struct Context: Hashable, Codable, Sendable {
        public var window: Int
        public var start: Int
        public var length: Int

        public init(window: Int, start: Int, length: Int) {
            self.window = window; self.start = start; self.length = length
        }
    }

    struct Line: Codable {
        struct Window: Codable {
            var window: Int
            var start: Int
            var length: Int
            var expected: [Float]
        }
        var latent: Int
        var version: Int
        var backend: String
        var mode: SimulatorKind
        var windows: [Window]
    }

    public let url: URL
    private var entries: [Key: [Context: [Float]]] = [:]
    private var damaged = AppendOnly.DamagedLines()

    /// Lines that could not be read and were skipped.
    public var skippedLines: Int { damaged.count }

    /// 1-based line numbers of the first damaged lines (at most 10), in file order.
    public var damagedLines: [Int] { damaged.first }

    /// One line naming the cache's first damaged line, or nil when every line was read.
    public var warning: String? { damaged.warning(path: url.path) }

    public convenience init(workspace: Workspace) throws {
        try self.init(url: workspace.rewriteDirectory.appendingPathComponent("simulations.jsonl"))
    }

    /// Reads what is cached (nothing when the file does not exist).
    public init(url: URL) throws {
        self.url = url
        guard let tail = try AppendOnly.readLines(url.path, after: 0) else { return }
        let decoder = JSONDecoder()
        for (line, number) in zip(tail.lines, tail.numbers) {
            guard let l = try? decoder.decode(Line.self, from: line), l.latent >= 0,
                  l.windows.allSatisfy({ $0.expected.count == $0.length }) else { damaged.damaged(at: number); continue }
            let key = Key(latent: l.latent, version: l.version, backend: l.backend, mode: l.mode)
            for w in l.windows {
                entries[key, default: [:]][Context(window: w.window, start: w.start, length: w.length)] = w.expected
            }
        }
        damaged.read(tail)
    }

    public func expected(_ key: Key, _ context: Context) -> [Float]? { entries[key]?[context] }

    /// Appends one simulate call's results and keeps them.
    public func append(_ key: Key, _ results: [(Context, [Float])]) throws {
        guard !results.isEmpty else { return }
        let line = Line(latent: key.latent, version: key.version, backend: key.backend, mode: key.mode,
                        windows: results.map { .init(window: $0.0.window, start: $0.0.start, length: $0.0.length,
                                                     expected: $0.1.map { ($0 * 1000).rounded() / 1000 }) })
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let bytes = Array(try encoder.encode(line)) + [UInt8(ascii: "\n")]
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        let fd = try AppendOnly.openAppend(url.path)
        defer { close(fd) }
        guard flock(fd, LOCK_EX) == 0 else { throw LogError.cannotLock(path: url.path, reason: LogError.systemReason) }
        _ = try AppendOnly.endLine(fd, path: url.path)
        try AppendOnly.writeAll(fd, bytes, path: url.path)
        guard fsync(fd) == 0 else { throw LogError.cannotSync(path: url.path, reason: LogError.systemReason) }
        for (c, e) in results { entries[key, default: [:]][c] = e.map { ($0 * 1000).rounded() / 1000 } }
    }
}
