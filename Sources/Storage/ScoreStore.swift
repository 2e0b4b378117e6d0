import Foundation

/// Scores of explanations, every result kept, in the workspace's `explanations/` folder:
///
///     scores.jsonl        one LatentScores per line (JSON, keys as in LatentScores.CodingKeys)
///     simulations.jsonl   one SimulationRecord per line: the scoring windows with true, expected and
///                         simulated values per token (the last two to 0.001); a score's
///                         `simulation_offset` is its line's byte offset here, so the explorer
///                         reads one line without scanning
///
/// Both are append-only UTF-8, each line ended by "\n". A result is appended under an exclusive
/// `flock` on scores.jsonl: the simulation line first, then the score line pointing at it, each one
/// `write()` then `fsync`. A crash can only leave a last line torn (unterminated): reading ignores
/// it and the next append first ends it with "\n", so it never merges into a good line. A damaged
/// line of scores.jsonl (torn, unparsable, a negative latent) is skipped on its own, never hiding
/// the lines after it, as in the explanation log (`AppendOnly.DamagedLines`): counted in
/// `skippedLines`, the first named in `warning`, which the command line and the explorer show.
/// A score whose simulation line is missing or unreadable still counts; `simulation(for:)` then
/// returns nil.
///
/// A result is keyed by (explanation version id, mode, calibration, backend); scoring the same key
/// again (`loupe score --redo`) appends a new line, and the last one wins.
public final class ScoreStore: @unchecked Sendable {
    public let directory: URL
    public var scoresURL: URL { directory.appendingPathComponent("scores.jsonl") }
    public var simulationsURL: URL { directory.appendingPathComponent("simulations.jsonl") }

    private let lock = NSLock()
    private var results: [LatentScores] = []
    private var byLatent: [Int: [Int]] = [:]
    private var byKey: [ScoreKey: Int] = [:]
    private var consumed: UInt64 = 0
    private var damaged = AppendOnly.DamagedLines()

    public convenience init(workspace: Workspace) throws {
        try self.init(directory: workspace.explanationsDirectory)
    }

    /// Opens the store in an explanations folder (created on the first append).
    public init(directory: URL) throws {
        self.directory = directory
        try lock.withLock { try readNewLines() }
    }

    /// Lines of scores.jsonl that could not be read and were skipped.
    public var skippedLines: Int { lock.withLock { damaged.count } }

    /// 1-based line numbers of the first damaged lines of scores.jsonl (at most 10), in file order.
    public var damagedLines: [Int] { lock.withLock { damaged.first } }

    /// One line naming scores.jsonl's first damaged line, or nil when every line was read.
    public var warning: String? { lock.withLock { damaged.warning(path: scoresURL.path) } }

    /// Reads results other processes have appended since.
    public func refresh() throws { try lock.withLock { try readNewLines() } }

    /// Every result, oldest first.
    public var all: [LatentScores] { lock.withLock { results } }

    /// The last result stored under the key.
    public func scores(for key: ScoreKey) -> LatentScores? { lock.withLock { byKey[key].map { results[$0] } } }

    /// Every result of one explanation version (one per setting; the last of each), oldest first.
    public func scores(forVersion version: Int) -> [LatentScores] {
        lock.withLock { byKey.filter { $0.key.version == version }.values.sorted().map { results[$0] } }
    }

    /// The latent's results, oldest first (repeats of a key included).
    public func history(latent: Int) -> [LatentScores] { lock.withLock { (byLatent[latent] ?? []).map { results[$0] } } }

    /// The latent's most recent result, optionally of one setting only.
    public func latest(latent: Int, mode: SimulatorKind? = nil, calibration: Calibration? = nil, backend: String? = nil) -> LatentScores? {
        history(latent: latent).last { s in
            (mode == nil || s.mode == mode) && (calibration == nil || s.calibration == calibration) && (backend == nil || s.backend == backend)
        }
    }

    /// The result the explorer compares a new one with: the latest result of an earlier explanation
    /// version of the same latent, simulated the same way.
    public func previous(of s: LatentScores) -> LatentScores? {
        history(latent: s.latent).last { $0.version < s.version && $0.mode == s.mode && $0.calibration == s.calibration && $0.backend == s.backend }
    }

    /// The simulated windows of a stored result; nil if its simulation line is missing or torn.
    public func simulation(for s: LatentScores) -> SimulationRecord? {
        guard let offset = s.simulationOffset, let handle = FileHandle(forReadingAtPath: simulationsURL.path) else { return nil }
        defer { try? handle.close() }
        var line = Data()
        do {
            try handle.seek(toOffset: UInt64(offset))
            while true {
                guard let chunk = try handle.read(upToCount: 1 << 16), !chunk.isEmpty else { return nil }
                if let nl = chunk.firstIndex(of: UInt8(ascii: "\n")) {
                    line.append(chunk[chunk.startIndex..<nl])
                    break
                }
                line.append(chunk)
            }
        } catch { return nil }
        guard let r = try? JSONDecoder().decode(SimulationRecord.self, from: line), r.latent == s.latent, r.key == s.key else { return nil }
        return r
    }

    /// Appends a corrected copy of a stored result (e.g. with its loss delta), pointing at the same
    /// simulation line; it becomes the latest under its key.
    @discardableResult
    public func update(_ scores: LatentScores) throws -> LatentScores {
        try lock.withLock {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            let fd = try AppendOnly.openAppend(scoresURL.path)
            defer { close(fd) }
            guard flock(fd, LOCK_EX) == 0 else { throw LogError.cannotLock(path: scoresURL.path, reason: LogError.systemReason) }
            return try appendScoreLine(fd, scores)
        }
    }

    /// Appends one result (simulation line, then score line) and returns the score as stored.
    @discardableResult
    public func append(_ scores: LatentScores, simulation: SimulationRecord) throws -> LatentScores {
        try lock.withLock {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            let scoresFD = try AppendOnly.openAppend(scoresURL.path)
            defer { close(scoresFD) }
            guard flock(scoresFD, LOCK_EX) == 0 else { throw LogError.cannotLock(path: scoresURL.path, reason: LogError.systemReason) }
            let simFD = try AppendOnly.openAppend(simulationsURL.path)
            defer { close(simFD) }
            let simEnd = try AppendOnly.endLine(simFD, path: simulationsURL.path)
            var stored = scores
            stored.simulationOffset = Int(simEnd)
            try AppendOnly.writeAll(simFD, Array(try Self.encoder.encode(Self.rounded(simulation))) + [UInt8(ascii: "\n")], path: simulationsURL.path)
            guard fsync(simFD) == 0 else { throw LogError.cannotSync(path: simulationsURL.path, reason: LogError.systemReason) }
            return try appendScoreLine(scoresFD, stored)
        }
    }

    /// Under the lock and the flock on scores.jsonl (`fd`): the score line written, synced and read back.
    private func appendScoreLine(_ fd: Int32, _ scores: LatentScores) throws -> LatentScores {
        try readNewLines()
        _ = try AppendOnly.endLine(fd, path: scoresURL.path)
        try readNewLines()
        try AppendOnly.writeAll(fd, Array(try Self.encoder.encode(scores)) + [UInt8(ascii: "\n")], path: scoresURL.path)
        guard fsync(fd) == 0 else { throw LogError.cannotSync(path: scoresURL.path, reason: LogError.systemReason) }
        let before = results.count
        try readNewLines()
        guard results.count == before + 1 else {
            throw LogError.notReadBack(path: scoresURL.path)
        }
        return results[before]
    }

    static var encoder: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes, .sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return encoder
    }

    /// Expected digits and simulated values kept to 0.001 (a third of the line's size).
    static func rounded(_ r: SimulationRecord) -> SimulationRecord {
        var r = r
        func round(_ xs: [Float]) -> [Float] { xs.map { ($0 * 1000).rounded() / 1000 } }
        for i in r.windows.indices {
            r.windows[i].expected = round(r.windows[i].expected)
            r.windows[i].simulated = round(r.windows[i].simulated)
        }
        return r
    }

    // MARK: the files

    /// Parses the complete lines of scores.jsonl after `consumed` (caller holds `lock`); an
    /// unterminated tail waits. A file shorter than what was read is read again from the start.
    private func readNewLines() throws {
        guard let tail = try AppendOnly.readLines(scoresURL.path, after: consumed) else { return }
        if tail.restart { results = []; byLatent = [:]; byKey = [:]; damaged.reset() }
        consumed = tail.end
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        for (line, number) in zip(tail.lines, tail.numbers) {
            guard let s = try? decoder.decode(LatentScores.self, from: Data(line)), s.latent >= 0 else { damaged.damaged(at: number); continue }
            byLatent[s.latent, default: []].append(results.count)
            byKey[s.key] = results.count
            results.append(s)
        }
        damaged.read(tail)
    }
}
