import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Storage

/// A workspace's latent activations written as EleutherAI delphi's latent cache (the layout
/// DelphiCache reads: `LatentCache.save_splits` and `save_config`), with its explanations as
/// delphi's explanation files, so delphi's `LatentDataset` loads the cache and its scorers score
/// Loupe's explanations:
///
///     <DIR>/latents/<module>/<start>_<end>.safetensors   locations [N, 3] u16 (u32 when a sequence or
///                                                         latent − start passes 2^16), activations [N]
///                                                         f16, tokens [sequences, ctx_len] i64
///     <DIR>/latents/<module>/config.json                  CacheConfig fields + model_name
///     <DIR>/explanations/<module>_latent<N>.txt           the current explanations (orjson.dumps)
///
/// The sequences are the corpus windows that have codes (`cache/codes/`, the k latents of every
/// token of the training and held-out windows), in window order, so `loupe import delphi` of the
/// export holds out the same windows and rebuilds the same records. Within a split the rows run as
/// delphi's do: by sequence, position, then latent. Splits divide the latents as delphi's
/// `_generate_split_indices` does; one split's rows are in memory at a time (about 20 bytes a row
/// while it is written), and the codes are read a window at a time (`pread`), so memory is bounded
/// by the split, not the cache.
///
/// Ctrl-C safe: everything is written under `<DIR>.partial` and renamed to DIR at the end.
public struct DelphiExport {
    public var splits = 5
    /// More splits are used when one would hold more rows than this (the memory bound).
    public var maxRowsPerSplit = 1 << 25
    /// Only these latents' activations (nil: all). The splits still cover every latent, so ids stay absolute.
    public var latents: Set<Int>?
    /// delphi's name for the hookpoint (its files are named by it).
    public var module: String
    public var modelName = "HuggingFaceTB/SmolLM2-135M-Instruct"

    public let workspace: Workspace

    public init(workspace: Workspace, module: String) {
        self.workspace = workspace
        self.module = module
    }

    public struct Summary: Equatable, Sendable {
        public var latents: Int
        public var sequences: Int
        public var contextLength: Int
        public var splits: [String]
        public var rows: Int
        public var explanations: Int
    }

    /// Where codes of one window are: which mapped codes file, and its first row there.
    private struct Source { var file: Int; var row: Int }

    /// Latent ranges [start, end] as `torch.linspace(0, width, n + 1).long()` makes them.
    public static func splitRanges(width: Int, count: Int) -> [(start: Int, end: Int)] {
        let n = max(1, min(count, width))
        let step = Float(width) / Float(n)
        let bounds = (0...n).map { i -> Int in
            // torch's linspace kernel: from the start for the first half, from the end for the rest.
            i < (n + 1) / 2 ? Int(Float(i) * step) : Int(Float(width) - step * Float(n - i))
        }
        return (0..<n).map { (bounds[$0], bounds[$0 + 1] - 1) }
    }

    @discardableResult
    public func run(into results: URL, reporter: ProgressReporter) throws -> Summary {
        let manifest = try workspace.load()
        if DelphiImport.hookpoint(of: manifest) != nil {
            throw DelphiError.exportOfImport(path: workspace.directory.path, source: String(manifest.transcoderSource.dropFirst(DelphiImport.sourcePrefix.count)))
        }
        guard !FileManager.default.fileExists(atPath: results.path) else { throw DelphiError.exportExists(path: results.path) }
        let (corpus, _) = try Corpus.load(from: workspace.corpusDirectory)
        let L = corpus.windowLength, k = manifest.k, M = manifest.latents

        // Every window with codes, and where its rows are.
        var files: [Int32] = [], sources: [Int: Source] = [:]
        defer { for fd in files { close(fd) } }
        let codes = workspace.cacheDirectory.appendingPathComponent("codes", isDirectory: true)
        for name in ["train", "heldout"] {
            let url = workspace.activationsDirectory.appendingPathComponent("\(name).json")
            guard FileManager.default.fileExists(atPath: url.path) else { continue }
            let store = try JSONFile.read(ActivationStore.Manifest.self, from: url)
            for shard in store.shards {
                let file = codes.appendingPathComponent(shard.file.replacingOccurrences(of: ".f16", with: ".bin"))
                let fd = open(file.path, O_RDONLY | O_CLOEXEC)
                var st = stat()
                guard fd >= 0 else { throw WorkspaceError.incompleteCodes(path: file.path) }
                files.append(fd)
                guard fstat(fd, &st) == 0, Int(st.st_size) == shard.windows.count * L * k * 6 else { throw WorkspaceError.incompleteCodes(path: file.path) }
                for (i, w) in shard.windows.enumerated() where w >= 0 && w < corpus.windowCount {
                    sources[w] = Source(file: files.count - 1, row: i * L)
                }
            }
        }
        let windows = sources.keys.sorted()
        guard !windows.isEmpty else { throw DelphiError.nothingToExport(path: codes.path) }

        let partial = URL(fileURLWithPath: results.path + ".partial", isDirectory: true)
        try? FileManager.default.removeItem(at: partial)
        do {
            return try write(into: partial, then: results, corpus: corpus, windows: windows, sources: sources, files: files,
                             latents: M, k: k, reporter: reporter)
        } catch {
            try? FileManager.default.removeItem(at: partial)  // interrupted or failed: nothing half-written is left
            throw error
        }
    }

    /// The files under `partial`, renamed to `results` when all are written.
    private func write(into partial: URL, then results: URL, corpus: Corpus, windows: [Int], sources: [Int: Source], files: [Int32],
                       latents M: Int, k: Int, reporter: ProgressReporter) throws -> Summary {
        let L = corpus.windowLength
        let moduleDirectory = partial.appendingPathComponent("latents/\(module)", isDirectory: true)
        try FileManager.default.createDirectory(at: moduleDirectory, withIntermediateDirectories: true)

        var tokens = [Int64](repeating: 0, count: windows.count * L)
        for (s, w) in windows.enumerated() {
            for p in 0..<L { tokens[s * L + p] = Int64(corpus.tokens[w * L + p]) }
        }
        let estimate = windows.count * L * k
        let count = max(splits, (estimate + maxRowsPerSplit - 1) / maxRowsPerSplit)
        let ranges = Self.splitRanges(width: M, count: count)
        reporter.begin("export", total: ranges.count * windows.count, unit: "sequences")
        var names: [String] = [], rows = 0
        var buffer = [UInt8](repeating: 0, count: L * k * 6)  // one window's codes
        for (n, range) in ranges.enumerated() {
            var locations: [UInt32] = [], values: [Float16] = []
            var token: [(latent: UInt32, value: Float16)] = []
            for (s, w) in windows.enumerated() {
                if s % 256 == 0 {
                    if reporter.shouldStop { throw CancellationError() }
                    reporter.advance(n * windows.count + s, detail: "latents \(range.start)…\(range.end)")
                }
                let source = sources[w]!
                let got = buffer.withUnsafeMutableBytes { pread(files[source.file], $0.baseAddress!, $0.count, off_t(source.row * k * 6)) }
                guard got == buffer.count else { throw WorkspaceError.incompleteCodes(path: "cache/codes (window \(w))") }
                buffer.withUnsafeBytes { raw in
                    for p in 0..<L {
                        let base = p * k * 6
                        token.removeAll(keepingCapacity: true)
                        for j in 0..<k {
                            let latent = Int(raw.loadUnaligned(fromByteOffset: base + 4 * j, as: UInt32.self))
                            let value = raw.loadUnaligned(fromByteOffset: base + 4 * k + 2 * j, as: Float16.self)
                            guard latent >= range.start, latent <= range.end, value != 0, latents?.contains(latent) ?? true else { continue }
                            token.append((UInt32(latent), value))
                        }
                        token.sort { $0.latent < $1.latent }
                        for t in token {
                            locations.append(UInt32(s))
                            locations.append(UInt32(p))
                            locations.append(t.latent - UInt32(range.start))
                            values.append(t.value)
                        }
                    }
                }
            }
            let name = "\(range.start)_\(range.end).safetensors"
            try Self.writeSplit(locations: locations, values: values, tokens: tokens, sequences: windows.count, length: L,
                                to: moduleDirectory.appendingPathComponent(name))
            names.append(name)
            rows += values.count
        }
        reporter.advance(ranges.count * windows.count, detail: "")
        reporter.end("export", summary: "\(rows) activations of \(M) latents on \(windows.count) sequences of \(L) tokens in \(ranges.count) splits")

        // delphi's CacheConfig.to_dict() and model_name, as save_config writes them.
        let config: [String: Any] = ["dataset_repo": "loupe workspace \(workspace.directory.path)", "dataset_split": "train[:1%]",
                                     "dataset_name": "", "dataset_column": "text", "batch_size": 32, "cache_ctx_len": L,
                                     "n_tokens": windows.count * L, "n_splits": ranges.count, "model_name": modelName]
        try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys])
            .write(to: moduleDirectory.appendingPathComponent("config.json"))
        let explained = try ExplanationStore(workspace: workspace).exportDelphi(to: partial.appendingPathComponent("explanations", isDirectory: true),
                                                                                  module: module)
        guard rename(partial.path, results.path) == 0 else {
            throw DelphiError.cannotWrite(path: results.path, reason: String(cString: strerror(errno)))
        }
        return Summary(latents: M, sequences: windows.count, contextLength: L, splits: names, rows: rows, explanations: explained)
    }

    /// One split file as safetensors: `locations` (u16 when every sequence and latent − start fits,
    /// as delphi stores them, else u32), `activations` f16, `tokens` i64; written then renamed.
    static func writeSplit(locations: [UInt32], values: [Float16], tokens: [Int64], sequences: Int, length: Int, to url: URL) throws {
        let narrow = sequences < 1 << 16 && stride(from: 2, to: locations.count, by: 3).allSatisfy { locations[$0] < 1 << 16 }
        let n = values.count
        let locationBytes = n * 3 * (narrow ? 2 : 4), valueBytes = n * 2, tokenBytes = tokens.count * 8
        let header: [String: Any] = [
            "locations": ["dtype": narrow ? "U16" : "U32", "shape": [n, 3], "data_offsets": [0, locationBytes]],
            "activations": ["dtype": "F16", "shape": [n], "data_offsets": [locationBytes, locationBytes + valueBytes]],
            "tokens": ["dtype": "I64", "shape": [sequences, length], "data_offsets": [locationBytes + valueBytes, locationBytes + valueBytes + tokenBytes]],
        ]
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while json.count % 8 != 0 { json.append(0x20) }
        let temporary = url.path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw DelphiError.cannotWrite(path: temporary, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        // Straight from the arrays (little-endian hosts, as every Loupe file is): no copy of a tensor.
        func put(_ bytes: UnsafeRawBufferPointer) throws {
            var done = 0
            while done < bytes.count {
                let n = Glibc.write(fd, bytes.baseAddress! + done, bytes.count - done)
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { throw DelphiError.cannotWrite(path: temporary, reason: String(cString: strerror(errno))) }
                done += n
            }
        }
        try withUnsafeBytes(of: UInt64(json.count).littleEndian) { try put($0) }
        try json.withUnsafeBytes { try put($0) }
        if narrow {
            try locations.map { UInt16(truncatingIfNeeded: $0) }.withUnsafeBytes { try put($0) }
        } else {
            try locations.withUnsafeBytes { try put($0) }
        }
        try values.withUnsafeBytes { try put($0) }
        try tokens.withUnsafeBytes { try put($0) }
        guard rename(temporary, url.path) == 0 else { throw DelphiError.cannotWrite(path: url.path, reason: String(cString: strerror(errno))) }
    }
}
