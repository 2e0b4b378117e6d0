import Foundation
import Formats
import Tokenizer

/// A corpus cut into fixed token windows, with a held-out split that training never sees.
///
/// Documents (whole `.txt` files, or the `text` field of each line of a `.jsonl` file) are
/// tokenized as plain text (special-token strings in them stay text), joined by the model's
/// end-of-text token, and the stream is cut into consecutive windows of `windowLength` tokens.
/// Every `heldOutEvery`-th window (counting from 0) is held out.
public struct Corpus: Sendable {
    public let windowLength: Int
    public let heldOutEvery: Int
    /// windows × windowLength token ids, row-major.
    public let tokens: [Int32]
    public var windowCount: Int { tokens.count / windowLength }

    public init(windowLength: Int, heldOutEvery: Int, tokens: [Int32]) {
        precondition(windowLength > 0 && tokens.count % windowLength == 0)
        self.windowLength = windowLength
        self.heldOutEvery = heldOutEvery
        self.tokens = tokens
    }

    public func isHeldOut(_ window: Int) -> Bool { window % heldOutEvery == 0 }

    public var trainingWindows: [Int] { (0..<windowCount).filter { !isHeldOut($0) } }
    public var heldOutWindows: [Int] { (0..<windowCount).filter { isHeldOut($0) } }

    public func window(_ w: Int) -> [Int] { tokens[w * windowLength..<(w + 1) * windowLength].map(Int.init) }

    /// Reads and tokenizes `files` until `maxWindows` windows are filled (all of them if nil).
    public static func build(files: [String], tokenizer: BPETokenizer, windowLength: Int = 64, heldOutEvery: Int = 20,
                             maxWindows: Int? = nil, progress: (String) -> Void = { _ in }) throws -> Corpus {
        let separator = tokenizer.id(of: "<|endoftext|>") ?? tokenizer.eosId
        var stream: [Int32] = []
        let limit = maxWindows.map { $0 * windowLength }
        outer: for file in files {
            for document in try documents(in: file) {
                let ids = tokenizer.encode(document, parseSpecial: false)
                stream.append(contentsOf: ids.map(Int32.init))
                if let separator { stream.append(Int32(separator)) }
                if let limit, stream.count >= limit { break outer }
            }
            progress("tokenized \(file): \(stream.count) tokens so far")
        }
        let usable = min(stream.count / windowLength * windowLength, limit ?? .max)
        guard usable > 0 else {
            throw WorkspaceError.corpusTooShort(files: files, windowLength: windowLength)
        }
        return Corpus(windowLength: windowLength, heldOutEvery: heldOutEvery, tokens: Array(stream[0..<usable]))
    }

    /// The documents of one file: a `.jsonl` file gives one per line (its `text` field), any other
    /// file is one document of UTF-8 text.
    public static func documents(in file: String) throws -> [String] {
        guard let data = FileManager.default.contents(atPath: file) else {
            throw WorkspaceError.unreadableCorpus(path: file)
        }
        guard file.hasSuffix(".jsonl") else { return [String(decoding: data, as: UTF8.self)] }
        var docs: [String] = []
        for (n, line) in String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            if line.trimmingCharacters(in: .whitespaces).isEmpty { continue }
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
                throw WorkspaceError.badCorpusLine(path: file, line: n + 1, reason: "not a JSON object")
            }
            guard let text = object["text"] as? String else {
                throw WorkspaceError.badCorpusLine(path: file, line: n + 1, reason: "no \"text\" string field")
            }
            docs.append(text)
        }
        return docs
    }

    // MARK: storage

    /// Writes `tokens.bin` (u32 little-endian, windows × length) and `corpus.json` into `directory`.
    public func save(to directory: URL, sources: [String]) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let bytes = tokens.map { UInt32(bitPattern: $0).littleEndian }.withUnsafeBytes { Data($0) }
        try bytes.write(to: directory.appendingPathComponent("tokens.bin"), options: .atomic)
        let meta = CorpusMeta(sources: sources, windowLength: windowLength, heldOutEvery: heldOutEvery,
                              windows: windowCount, tokens: tokens.count)
        try JSONFile.write(meta, to: directory.appendingPathComponent("corpus.json"))
    }

    public static func load(from directory: URL) throws -> (Corpus, CorpusMeta) {
        let metaURL = directory.appendingPathComponent("corpus.json")
        let meta = try JSONFile.read(CorpusMeta.self, from: metaURL)
        try meta.check(path: metaURL.path)
        let url = directory.appendingPathComponent("tokens.bin")
        // tokens ≤ Limits.corpusTokens (checked above), so tokens × 4 cannot wrap.
        guard let data = FileManager.default.contents(atPath: url.path), data.count == meta.tokens * 4 else {
            throw WorkspaceError.badCorpusTokens(path: url.path, tokens: meta.tokens)
        }
        let tokens = data.withUnsafeBytes { raw in (0..<meta.tokens).map { Int32(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) } }
        return (Corpus(windowLength: meta.windowLength, heldOutEvery: meta.heldOutEvery, tokens: tokens), meta)
    }
}

/// `corpus.json`: where the corpus came from and how it was cut.
public struct CorpusMeta: Codable, Equatable, Sendable {
    public var sources: [String]
    public var windowLength: Int
    public var heldOutEvery: Int
    public var windows: Int
    public var tokens: Int

    public init(sources: [String], windowLength: Int, heldOutEvery: Int, windows: Int, tokens: Int) {
        self.sources = sources; self.windowLength = windowLength; self.heldOutEvery = heldOutEvery; self.windows = windows; self.tokens = tokens
    }

    enum CodingKeys: String, CodingKey {
        case sources, windowLength = "window_length", heldOutEvery = "held_out_every", windows, tokens
    }

    /// Every field within what `Corpus` needs (a window length and held-out stride to divide by,
    /// a token count whose byte size cannot wrap, windows × length = tokens), before anything is read.
    public func check(path: String) throws {
        func bad(_ field: String, _ reason: String) -> WorkspaceError { .badField(path: path, field: field, reason: reason) }
        guard (1...Limits.windowLength).contains(windowLength) else { throw bad("window_length", "is \(windowLength), expected 1…\(Limits.windowLength)") }
        guard heldOutEvery >= 1 else { throw bad("held_out_every", "is \(heldOutEvery), expected at least 1") }
        guard (0...Limits.corpusTokens).contains(tokens) else { throw bad("tokens", "is \(tokens), expected 0…\(Limits.corpusTokens)") }
        guard tokens % windowLength == 0, windows == tokens / windowLength else {
            throw bad("windows", "is \(windows), but \(tokens) tokens make \(tokens / windowLength) windows of \(windowLength)")
        }
    }
}
