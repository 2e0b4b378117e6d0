import Foundation

/// Natural-language explanations of latents, every version kept.
///
/// The log, `<workspace>/explanations/log.jsonl`: append-only UTF-8, one JSON object per line,
/// oldest first, each line ended by "\n":
///
///     {"id":7,"latent":42,"text":"the word \"the\" after a comma","source":"user","time":"2025-06-01T12:00:00.123Z"}
///
///     id       the version's number, unique in the file: each save takes the largest id in the
///              file + 1 (so ids increase down an undamaged file, and a later save never reuses
///              one even after a damaged line); at most 2^53
///     latent   the latent's index in the workspace's transcoder
///     text     the explanation (trimmed); "" records that the explanation was cleared
///     source   who wrote it: "user", "import", "revert", "lexical", "llm", …
///     time     when it was saved, ISO-8601 UTC with milliseconds
///
/// A latent's current explanation is its last line. Saving is one `write()` of the whole line on
/// an O_APPEND descriptor, then `fsync`, under an exclusive `flock` (so two processes never
/// interleave or reuse ids: each reads what the other appended before it writes). A crash at any
/// moment can only leave the last line torn — unterminated — which reading ignores; before the
/// next append the file is ended with "\n", so the torn bytes become a line of their own and never
/// merge into a good one: skipped and counted in `skippedLines` (or, if the crash fell just before
/// the newline, a whole version, read like any other).
///
/// Versions are ordered by their place in the file (the file is only ever appended to, so that is
/// the order they were saved in), not by id. A damaged line — unparsable, an id outside 1…2^53, a
/// negative latent, or an id an earlier line already has — is skipped on its own: it never hides
/// the lines after it (a single id corrupted from 2 to 900 costs that one version at most, and
/// keeps it if the rest of the line is whole). The first damaged line is named in `warning`,
/// which the command line prints once.
///
/// Interchange formats:
///
/// - JSON (`exportJSON`/`importJSON`): one object of current explanations keyed by latent id
///   in decimal, `{"12": "text", "40": "text"}`, keys sorted.
/// - delphi (EleutherAI's auto-interpretability pipeline; `importDelphi`/`exportDelphi`): a
///   folder holding one file per latent, named `<module>_latent<N>.txt` (delphi's `Latent.__repr__`,
///   e.g. `layers.15.mlp_latent42.txt`), whose content is the explanation as one JSON string
///   (`orjson.dumps(explanation)`: `"the word \"the\""`, UTF-8, no trailing newline).
public struct ExplanationVersion: Equatable, Sendable, Codable {
    public var id: Int
    public var latent: Int
    public var text: String
    public var source: ExplanationSource
    public var time: Date

    public init(id: Int, latent: Int, text: String, source: ExplanationSource, time: Date) {
        self.id = id
        self.latent = latent
        self.text = text
        self.source = source
        self.time = time
    }

    enum CodingKeys: String, CodingKey { case id, latent, text, source, time }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(Int.self, forKey: .id)
        latent = try c.decode(Int.self, forKey: .latent)
        text = try c.decode(String.self, forKey: .text)
        source = try c.decode(ExplanationSource.self, forKey: .source)
        let stamp = try c.decode(String.self, forKey: .time)
        guard let t = LogTime.parse(stamp) else {
            throw DecodingError.dataCorruptedError(forKey: .time, in: c, debugDescription: "not an ISO-8601 time: \(stamp)")
        }
        time = t
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(latent, forKey: .latent)
        try c.encode(text, forKey: .text)
        try c.encode(source, forKey: .source)
        try c.encode(LogTime.format(time), forKey: .time)
    }

    /// `time` as the log spells it: ISO-8601 UTC with milliseconds.
    public var timestamp: String { LogTime.format(time) }

    /// The log line, fields in the documented order, ended by "\n".
    var logLine: String {
        "{\"id\":\(id),\"latent\":\(latent),\"text\":\(JSONFile.quote(text)),\"source\":\(JSONFile.quote(source.rawValue)),"
            + "\"time\":\"\(LogTime.format(time))\"}\n"
    }
}

/// The per-workspace store of explanations (format above). Reads are served from memory; every
/// method is safe to call from any thread.
public final class ExplanationStore: @unchecked Sendable {
    /// The explanations folder.
    public let directory: URL
    /// When known, only latents 0..<latents are accepted.
    public let latents: Int?
    public var logURL: URL { directory.appendingPathComponent("log.jsonl") }

    private let lock = NSLock()
    /// The whole log in id order, and per latent the indices of its versions.
    private var versions: [ExplanationVersion] = []
    private var byLatent: [Int: [Int]] = [:]
    /// Bytes of the log read so far: up to and including its last "\n".
    private var consumed: UInt64 = 0
    /// The damaged lines skipped (AppendOnly's rule), and the ids in use.
    private var damaged = AppendOnly.DamagedLines()
    private var ids = Set<Int>()
    private var maxIDRead = 0

    /// Opens the store of a workspace (latent ids are checked against its manifest, if built).
    public convenience init(workspace: Workspace) throws {
        try self.init(directory: workspace.explanationsDirectory,
                      latents: (try? workspace.load())?.latents)
    }

    /// Opens the store in an explanations folder (created on the first save).
    public init(directory: URL, latents: Int? = nil) throws {
        self.directory = directory
        self.latents = latents
        try lock.withLock { try readNewLines() }
    }

    /// Lines of the log that could not be read and were skipped.
    public var skippedLines: Int { lock.withLock { damaged.count } }

    /// 1-based line numbers of the first damaged lines (at most 10), in file order.
    public var damagedLines: [Int] { lock.withLock { damaged.first } }

    /// One line naming the first damaged line of the log, or nil when every line was read.
    public var warning: String? { lock.withLock { damaged.warning(path: logURL.path) } }

    /// Reads lines other processes have appended since the store was opened.
    public func refresh() throws { try lock.withLock { try readNewLines() } }

    /// The latent's current explanation; nil if it has none or it was cleared.
    public func current(_ latent: Int) -> ExplanationVersion? {
        lock.withLock {
            guard let last = byLatent[latent]?.last, !versions[last].text.isEmpty else { return nil }
            return versions[last]
        }
    }

    /// Every version of the latent's explanation, oldest first.
    public func history(_ latent: Int) -> [ExplanationVersion] {
        lock.withLock { (byLatent[latent] ?? []).map { versions[$0] } }
    }

    /// The current explanation of every latent that has one.
    public func allCurrent() -> [Int: ExplanationVersion] {
        lock.withLock {
            var out: [Int: ExplanationVersion] = [:]
            for (latent, list) in byLatent where !versions[list.last!].text.isEmpty { out[latent] = versions[list.last!] }
            return out
        }
    }

    /// Every latent's newest non-empty version written by `source` ("lexical", "llm", "user", …), whether
    /// or not it is the current one: how one explainer's explanations are scored side by side with another's.
    public func allLatest(source: ExplanationSource) -> [Int: ExplanationVersion] {
        lock.withLock {
            var out: [Int: ExplanationVersion] = [:]
            for (latent, list) in byLatent {
                if let i = list.last(where: { versions[$0].source == source && !versions[$0].text.isEmpty }) { out[latent] = versions[i] }
            }
            return out
        }
    }

    /// Saves a new version (text trimmed of surrounding whitespace and newlines). Saving the text the
    /// latent already has is a no-op that returns its last version. Saving "" clears the
    /// explanation (an error if the latent never had one).
    @discardableResult
    public func save(latent: Int, text: String, source: ExplanationSource = .user) throws -> ExplanationVersion {
        try checkLatent(latent)
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        return try lock.withLock {
            try readNewLines()
            if let last = byLatent[latent]?.last, versions[last].text == trimmed { return versions[last] }
            if trimmed.isEmpty && byLatent[latent] == nil {
                throw ExplanationStoreError.nothingToClear(latent: latent)
            }
            return try append([(latent, trimmed, source)])[0]
        }
    }

    /// Makes an earlier version current again by appending a copy of it with source "revert"
    /// (a no-op if its text is already current).
    @discardableResult
    public func revert(latent: Int, to id: Int) throws -> ExplanationVersion {
        try lock.withLock {
            try readNewLines()
            guard let list = byLatent[latent], let old = list.map({ versions[$0] }).first(where: { $0.id == id }) else {
                throw ExplanationStoreError.noVersion(latent: latent, id: id)
            }
            if versions[list.last!].text == old.text { return versions[list.last!] }
            return try append([(latent, old.text, .revert)])[0]
        }
    }

    // MARK: interchange

    /// Writes `{"<latent>": "text", …}` of every current explanation (keys sorted) and returns how many.
    public func exportJSON(to url: URL) throws -> Int {
        let all = allCurrent()
        var object: [String: String] = [:]
        for (latent, v) in all { object[String(latent)] = v.text }
        try JSONFile.write(object, to: url)
        return all.count
    }

    /// Imports `path`: a JSON file (`importJSON`) or a delphi explanations folder (`importDelphi`).
    public func importFile(at path: String, module: String? = nil) throws -> Int {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { throw ExplanationStoreError.noImportFile(path: path) }
        let url = URL(fileURLWithPath: path, isDirectory: isDirectory.boolValue)
        return try isDirectory.boolValue ? importDelphi(from: url, module: module) : importJSON(from: url)
    }

    /// Reads `{"<latent>": "text", …}` and saves every explanation that differs from the current
    /// one, with source "import", in one append. Empty texts are skipped. Returns how many were saved.
    public func importJSON(from url: URL) throws -> Int {
        guard let data = FileManager.default.contents(atPath: url.path) else { throw ExplanationStoreError.unreadable(path: url.path) }
        let object: [String: String]
        do { object = try JSONDecoder().decode([String: String].self, from: data) } catch {
            throw ExplanationStoreError.notLatentTexts(path: url.path, reason: Self.reason(error))
        }
        var entries: [Int: String] = [:]
        for key in object.keys.sorted() {
            guard let latent = Int(key), latent >= 0 else {
                throw ExplanationStoreError.badKey(path: url.path, key: key)
            }
            guard entries[latent] == nil else { throw ExplanationStoreError.repeatedKey(path: url.path, key: key, latent: latent) }
            try checkLatent(latent, file: url.path, key: key)
            entries[latent] = object[key]!
        }
        return try saveAll(entries, source: .imported)
    }

    /// Reads a delphi explanations folder (`<module>_latent<N>.txt`, each a JSON string) and saves
    /// every explanation that differs from the current one, with source "import". With `module`
    /// nil the folder must hold one module's files. Returns how many were saved.
    public func importDelphi(from directory: URL, module: String? = nil) throws -> Int {
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: directory.path) } catch {
            throw ExplanationStoreError.unreadableFolder(path: directory.path)
        }
        var byModule: [String: [(latent: Int, file: String)]] = [:]
        for name in names {
            guard let (m, latent) = Self.delphiName(name) else { continue }
            byModule[m, default: []].append((latent, name))
        }
        guard !byModule.isEmpty else {
            throw ExplanationStoreError.noDelphiFiles(path: directory.path)
        }
        let chosen: String
        if let module {
            guard byModule[module] != nil else {
                throw ExplanationStoreError.noModule(path: directory.path, module: module, modules: byModule.keys.sorted())
            }
            chosen = module
        } else {
            guard byModule.count == 1 else {
                throw ExplanationStoreError.severalModules(path: directory.path, modules: byModule.keys.sorted())
            }
            chosen = byModule.keys.first!
        }
        var entries: [Int: String] = [:]
        for (latent, file) in byModule[chosen]! {
            let url = directory.appendingPathComponent(file)
            try checkLatent(latent, file: url.path)
            guard let data = FileManager.default.contents(atPath: url.path) else { throw ExplanationStoreError.unreadable(path: url.path) }
            do { entries[latent] = try JSONDecoder().decode(String.self, from: data) } catch {
                throw ExplanationStoreError.notJSONString(path: url.path, reason: Self.reason(error))
            }
        }
        return try saveAll(entries, source: .imported)
    }

    /// Writes every current explanation as delphi does: `<module>_latent<N>.txt` holding the text as
    /// one JSON string. Files of the same module for latents without an explanation now are removed,
    /// so the folder mirrors the store; other files are left alone. Returns how many files were written.
    public func exportDelphi(to directory: URL, module: String) throws -> Int {
        guard !module.isEmpty, !module.contains("/") else { throw ExplanationStoreError.badModuleName(module) }
        let fm = FileManager.default
        try fm.createDirectory(at: directory, withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        let all = allCurrent()
        for (latent, v) in all {
            try encoder.encode(v.text).write(to: directory.appendingPathComponent("\(module)_latent\(latent).txt"), options: .atomic)
        }
        for name in try fm.contentsOfDirectory(atPath: directory.path) {
            if let (m, latent) = Self.delphiName(name), m == module, all[latent] == nil {
                try fm.removeItem(at: directory.appendingPathComponent(name))
            }
        }
        return all.count
    }

    /// (module, latent) of a delphi file name `<module>_latent<N>.txt`.
    static func delphiName(_ name: String) -> (String, Int)? {
        guard name.hasSuffix(".txt"), let r = name.range(of: "_latent", options: .backwards) else { return nil }
        let digits = name[r.upperBound..<name.index(name.endIndex, offsetBy: -4)]
        guard !digits.isEmpty, digits.allSatisfy(\.isASCII), let latent = Int(digits), latent >= 0 else { return nil }
        let module = String(name[..<r.lowerBound])
        return module.isEmpty ? nil : (module, latent)
    }

    // MARK: the log

    func checkLatent(_ latent: Int, file: String? = nil, key: String? = nil) throws {
        let range = latents.map { 0..<$0 } ?? 0..<Int.max
        guard range.contains(latent) else {
            throw ExplanationStoreError.noLatent(latent, count: latents, file: file, key: key)
        }
    }

    /// Saves the entries whose trimmed text is non-empty and differs from the latent's last one.
    private func saveAll(_ entries: [Int: String], source: ExplanationSource) throws -> Int {
        try lock.withLock {
            try readNewLines()
            var pending: [(Int, String, ExplanationSource)] = []
            for latent in entries.keys.sorted() {
                let text = entries[latent]!.trimmingCharacters(in: .whitespacesAndNewlines)
                if text.isEmpty { continue }
                if let last = byLatent[latent]?.last, versions[last].text == text { continue }
                pending.append((latent, text, source))
            }
            return pending.isEmpty ? 0 : try append(pending).count
        }
    }

    /// The largest id a line may carry (2^53, where JSON numbers stop being exact in other tools):
    /// a damaged line with a larger one is skipped like any other, so the next id never wraps.
    static let maxID = 1 << 53

    /// Appends versions (caller holds `lock`): under an exclusive flock, reads what others appended,
    /// terminates a torn last line, writes every line in one write() and fsyncs. Returns the new versions.
    private func append(_ entries: [(latent: Int, text: String, source: ExplanationSource)]) throws -> [ExplanationVersion] {
        let path = logURL.path
        let created = !FileManager.default.fileExists(atPath: path)
        if created { try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true) }
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw LogError.cannotOpen(path: path, reason: LogError.systemReason) }
        defer { close(fd) }
        guard flock(fd, LOCK_EX) == 0 else { throw LogError.cannotLock(path: path, reason: LogError.systemReason) }
        try readNewLines()
        if fileSize(path) > consumed {
            try AppendOnly.writeAll(fd, Array("\n".utf8), path: path)
            try readNewLines()
        }
        let now = LogTime.now()
        // The largest id in the file + 1: fresh even when a damaged line carries a larger id than
        // the lines after it. Ids stop at 2^53, so the next one never wraps.
        var id = maxIDRead + 1
        guard id + entries.count - 1 <= Self.maxID else { throw LogError.idsExhausted(path: path) }
        var written: [ExplanationVersion] = []
        var bytes: [UInt8] = []
        for e in entries {
            let v = ExplanationVersion(id: id, latent: e.latent, text: e.text, source: e.source, time: now)
            written.append(v)
            bytes += Array(v.logLine.utf8)
            id += 1
        }
        try AppendOnly.writeAll(fd, bytes, path: path)
        guard fsync(fd) == 0 else { throw LogError.cannotSync(path: path, reason: LogError.systemReason) }
        if created {
            let dfd = open(directory.path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            if dfd >= 0 { _ = fsync(dfd); close(dfd) }
        }
        // Acknowledged only once read back from the file as written.
        let before = versions.count
        try readNewLines()
        let read = Array(versions[before...])
        guard read.count == written.count,
              zip(read, written).allSatisfy({ $0.id == $1.id && $0.latent == $1.latent && $0.text == $1.text && $0.source == $1.source }) else {
            throw LogError.notReadBack(path: path)
        }
        return read
    }

    private func fileSize(_ path: String) -> UInt64 {
        var st = stat()
        return stat(path, &st) == 0 ? UInt64(st.st_size) : 0
    }

    /// Parses the complete lines after `consumed` (caller holds `lock`). An unterminated tail is left
    /// for later. A file shorter than what was read (replaced or truncated) is read again from the start.
    private func readNewLines() throws {
        guard let tail = try AppendOnly.readLines(logURL.path, after: consumed) else { return }
        if tail.restart { versions = []; byLatent = [:]; damaged.reset(); ids = []; maxIDRead = 0 }
        consumed = tail.end
        for (parsed, number) in zip(Self.decode(tail.lines), tail.numbers) {
            // Each line stands alone: a damaged one is skipped without affecting those after it.
            guard let v = parsed, (1...Self.maxID).contains(v.id), v.latent >= 0, ids.insert(v.id).inserted else {
                damaged.damaged(at: number)
                continue
            }
            maxIDRead = max(maxIDRead, v.id)
            byLatent[v.latent, default: []].append(versions.count)
            versions.append(v)
        }
        damaged.read(tail)
    }

    /// Decodes lines, all at once as one JSON array when every line is good, else one by one.
    static func decode(_ lines: [Data.SubSequence]) -> [ExplanationVersion?] {
        let decoder = JSONDecoder()
        var array = Data("[".utf8)
        for (i, line) in lines.enumerated() {
            if i > 0 { array.append(UInt8(ascii: ",")) }
            array.append(contentsOf: line)
        }
        array.append(UInt8(ascii: "]"))
        if let all = try? decoder.decode([ExplanationVersion].self, from: array), all.count == lines.count { return all }
        return lines.map { try? decoder.decode(ExplanationVersion.self, from: Data($0)) }
    }

    static func reason(_ error: Error) -> String {
        switch error {
        case DecodingError.dataCorrupted(let c), DecodingError.typeMismatch(_, let c), DecodingError.valueNotFound(_, let c):
            return c.underlyingError.map { "\($0.localizedDescription)" } ?? c.debugDescription
        default: return "\(error)"
        }
    }
}
