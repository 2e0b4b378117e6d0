import Formats
import Foundation

/// A latent cache written by EleutherAI's delphi (`LatentCache.save_splits` and `save_config` in
/// `delphi/latents/cache.py`), read as delphi's `TensorBuffer.load` reads it.
///
///     <results>/latents/<hookpoint>/config.json         CacheConfig + "model_name" (cache_ctx_len, n_tokens, …)
///     <results>/latents/<hookpoint>/<start>_<end>.safetensors   latents start…end (end inclusive), each with
///         locations    [N, 3] uint16 or uint32 (int64 in older caches): sequence, position, latent − start
///         activations  [N] float16 (float32 in older caches): the latent's value there (non-zero, |a| > 1e-5)
///         tokens       [sequences, ctx_len] int64: every cached sequence (the same in every split; optional)
///
/// Sequences are delphi's batches in order (batch b, row i → sequence b·batch_size + i). The number
/// of latents is not stored: it is the last split's end + 1 (splits are contiguous from 0).
public struct DelphiCache {
    public struct Split: Equatable, Sendable {
        public let start: Int
        /// Inclusive, as delphi names the file.
        public let end: Int
        public let file: URL
    }

    /// One non-zero activation: latent (absolute), sequence, position, value.
    public struct Entry: Equatable, Sendable {
        public let latent: Int
        public let sequence: Int
        public let position: Int
        public let value: Float
    }

    /// The fields of `config.json` the import uses (delphi's CacheConfig and the model's name).
    public struct Config: Decodable, Sendable {
        public var modelName: String?
        public var cacheContextLength: Int?
        public var datasetRepo: String?
        public var nTokens: Int?
        enum CodingKeys: String, CodingKey {
            case modelName = "model_name", cacheContextLength = "cache_ctx_len", datasetRepo = "dataset_repo", nTokens = "n_tokens"
        }
    }

    /// `latents/<hookpoint>`.
    public let directory: URL
    public let hookpoint: String
    public let config: Config
    public let splits: [Split]
    public var latents: Int { (splits.last?.end ?? -1) + 1 }

    /// The hookpoint folders of a delphi results folder (or of its `latents/` folder).
    public static func hookpoints(in results: URL) -> [String] {
        let latents = latentsDirectory(results)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: latents.path)) ?? []
        return names.filter { FileManager.default.fileExists(atPath: latents.appendingPathComponent($0).appendingPathComponent("config.json").path) }.sorted()
    }

    static func latentsDirectory(_ results: URL) -> URL {
        let inner = results.appendingPathComponent("latents", isDirectory: true)
        return FileManager.default.fileExists(atPath: inner.path) ? inner : results
    }

    /// Opens `hookpoint` of a results folder (`DIR/latents/<hookpoint>` or `DIR/<hookpoint>`); with
    /// one hookpoint in the folder it may be left out.
    public init(results: URL, hookpoint asked: String?) throws {
        let root = Self.latentsDirectory(results)
        let found = Self.hookpoints(in: results)
        guard let hookpoint = asked ?? (found.count == 1 ? found[0] : nil) else {
            throw found.isEmpty ? DelphiError.noCache(path: root.path)
                : DelphiError.whichHookpoint(path: root.path, found: found)
        }
        let directory = root.appendingPathComponent(hookpoint, isDirectory: true)
        guard found.contains(hookpoint) else { throw DelphiError.noHookpoint(path: directory.path, found: found) }
        self.directory = directory
        self.hookpoint = hookpoint
        let configURL = directory.appendingPathComponent("config.json")
        do {
            config = try JSONDecoder().decode(Config.self, from: try Data(contentsOf: configURL))
        } catch {
            throw DelphiError.badConfig(path: configURL.path, reason: "\(error)")
        }
        var splits: [Split] = []
        for name in try FileManager.default.contentsOfDirectory(atPath: directory.path) where name.hasSuffix(".safetensors") {
            let parts = name.dropLast(".safetensors".count).split(separator: "_")
            guard parts.count == 2, let start = Int(parts[0]), let end = Int(parts[1]), start >= 0, end >= start else {
                throw DelphiError.badSplitName(path: directory.appendingPathComponent(name).path)
            }
            splits.append(Split(start: start, end: end, file: directory.appendingPathComponent(name)))
        }
        splits.sort { $0.start < $1.start }
        guard !splits.isEmpty else { throw DelphiError.noSplits(path: directory.path) }
        var next = 0
        for s in splits {
            guard s.start == next else { throw DelphiError.splitGap(path: s.file.path, expected: next) }
            next = s.end + 1
        }
        self.splits = splits
    }

    /// The cached sequences, `[sequences][ctx_len]` as one row-major array, from the first split
    /// that has them (every split written by `save_splits` holds the same `tokens`).
    public func tokens() throws -> (sequences: Int, length: Int, ids: [Int32]) {
        for s in splits {
            let f = try SafetensorsFile(path: s.file.path)
            guard let info = f.tensors["tokens"] else { continue }
            guard info.shape.count == 2, info.shape[0] > 0, info.shape[1] > 0 else {
                throw DelphiError.badTensor(path: s.file.path, tensor: "tokens", reason: "shape \(info.shape), expected [sequences, ctx_len]")
            }
            let id = try Self.integerReader(f, info)
            let ids = try (0..<info.elementCount).map { i -> Int32 in
                let v = id(i)
                guard v >= 0 && v <= Int(Int32.max) else {
                    throw DelphiError.badTensor(path: s.file.path, tensor: "tokens", reason: "holds the id \(v)")
                }
                return Int32(v)
            }
            if let ctx = config.cacheContextLength, ctx != info.shape[1] {
                throw DelphiError.badTensor(path: s.file.path, tensor: "tokens",
                                            reason: "has \(info.shape[1]) tokens a sequence, config.json's cache_ctx_len says \(ctx)")
            }
            return (info.shape[0], info.shape[1], ids)
        }
        throw DelphiError.noTokens(path: directory.path)
    }

    /// The non-zero activations of one split, checked against `sequences` × `length` and the split's
    /// latent range, in file order (`forEachEntry` collected).
    public func entries(of split: Split, sequences: Int, length: Int) throws -> [Entry] {
        var out: [Entry] = []
        try forEachEntry(of: split, sequences: sequences, length: length) { out.append($0) }
        return out
    }

    /// Each activation of one split in file order, each row checked against `sequences` × `length`
    /// and the split's latent range before `body` sees it. Read from the mapped file as it goes:
    /// nothing the size of the split is allocated, so a cache of many GB is read in bounded memory.
    public func forEachEntry(of split: Split, sequences: Int, length: Int, _ body: (Entry) throws -> Void) throws {
        let f = try SafetensorsFile(path: split.file.path)
        guard let loc = f.tensors["locations"] else { throw DelphiError.missingTensor(path: split.file.path, tensor: "locations") }
        guard let act = f.tensors["activations"] else { throw DelphiError.missingTensor(path: split.file.path, tensor: "activations") }
        guard loc.shape.count == 2, loc.shape[1] == 3 else {
            throw DelphiError.badTensor(path: split.file.path, tensor: "locations", reason: "shape \(loc.shape), expected [N, 3]")
        }
        let n = loc.shape[0]
        guard act.shape == [n] else {
            throw DelphiError.badTensor(path: split.file.path, tensor: "activations", reason: "shape \(act.shape), expected [\(n)] (one value per location)")
        }
        let raw = f.data(of: act)
        let value: (Int) -> Float
        switch act.dtype {
        case .f16: value = { Float(Float16(bitPattern: UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self)))) }
        case .bf16: value = { Float(bitPattern: UInt32(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self))) << 16) }
        case .f32: value = { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) }
        default: throw DelphiError.badTensor(path: split.file.path, tensor: "activations", reason: "dtype \(act.dtype.rawValue), expected F16, BF16 or F32")
        }
        let l = try Self.integerReader(f, loc)
        for i in 0..<n {
            let s = l(3 * i), p = l(3 * i + 1), m = split.start &+ l(3 * i + 2)
            guard s >= 0 && s < sequences, p >= 0 && p < length, m >= split.start && m <= split.end else {
                throw DelphiError.badTensor(path: split.file.path, tensor: "locations",
                                            reason: "row \(i) is [\(s), \(p), \(l(3 * i + 2))], outside \(sequences) sequences × \(length) positions and latents \(split.start)…\(split.end)")
            }
            try body(Entry(latent: m, sequence: s, position: p, value: value(i)))
        }
    }

    /// Element i of an integer tensor (any of safetensors' integer types) as Int, read in place
    /// (valid while `f` is open; a u64 past Int.max reads as negative, which every caller refuses).
    static func integerReader(_ f: SafetensorsFile, _ info: SafetensorsFile.TensorInfo) throws -> (Int) -> Int {
        let raw = f.data(of: info)
        func read<T: FixedWidthInteger>(_: T.Type) -> (Int) -> Int {
            { Int(truncatingIfNeeded: T(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * MemoryLayout<T>.size, as: T.self))) }
        }
        switch info.dtype {
        case .u8: return read(UInt8.self)
        case .u16: return read(UInt16.self)
        case .u32: return read(UInt32.self)
        case .u64: return read(UInt64.self)
        case .i16: return read(Int16.self)
        case .i32: return read(Int32.self)
        case .i64: return read(Int64.self)
        default: throw DelphiError.badTensor(path: f.path, tensor: info.name, reason: "dtype \(info.dtype.rawValue), expected an integer type")
        }
    }
}

/// A delphi cache that cannot be imported; each says which file and field, and what to do.
public enum DelphiError: Error, Equatable, CustomStringConvertible {
    case noCache(path: String)
    case whichHookpoint(path: String, found: [String])
    case noHookpoint(path: String, found: [String])
    case badConfig(path: String, reason: String)
    case badSplitName(path: String)
    case noSplits(path: String)
    case splitGap(path: String, expected: Int)
    case noTokens(path: String)
    case missingTensor(path: String, tensor: String)
    case badTensor(path: String, tensor: String, reason: String)
    case tokenOutsideVocabulary(path: String, id: Int, vocabulary: Int, modelName: String?)
    case noLayer(hookpoint: String)
    case tooFewSequences(path: String, sequences: Int, heldOutEvery: Int)
    case workspaceExists(path: String)
    case tooManyLatentsPerToken(path: String, found: Int, limit: Int)
    case exportOfImport(path: String, source: String)
    case exportExists(path: String)
    case nothingToExport(path: String)
    case cannotWrite(path: String, reason: String)

    public var description: String {
        switch self {
        case let .noCache(path): return "\(path) holds no delphi cache (no <hookpoint>/config.json); give delphi's results folder or its latents/ folder"
        case let .whichHookpoint(path, found): return "\(path) holds several hookpoints (\(found.joined(separator: ", "))); name one with --hookpoint"
        case let .noHookpoint(path, found): return "\(path) is not a delphi hookpoint folder with a config.json; found: \(found.isEmpty ? "none" : found.joined(separator: ", "))"
        case let .badConfig(path, reason): return "\(path) does not read as delphi's cache config: \(reason)"
        case let .badSplitName(path): return "\(path): a split is named <start>_<end>.safetensors (delphi's save_splits); rename or remove this file"
        case let .noSplits(path): return "\(path) has no <start>_<end>.safetensors split; run delphi's cache step first"
        case let .splitGap(path, expected): return "\(path): the splits must cover the latents from 0 without gaps; the next split should start at \(expected)"
        case let .noTokens(path): return "\(path): no split holds 'tokens' (delphi saves them unless save_tokens=False); Loupe needs the cached text"
        case let .missingTensor(path, tensor): return "\(path) lacks the tensor '\(tensor)' of delphi's cache"
        case let .badTensor(path, tensor, reason): return "\(path) tensor '\(tensor)' \(reason)"
        case let .tokenOutsideVocabulary(path, id, vocabulary, modelName):
            return "\(path) tensor 'tokens' holds the id \(id), past the workspace model's vocabulary of \(vocabulary): the cache must be made with the workspace model's tokenizer (config.json model_name: \(modelName ?? "none")); pass that model with --model"
        case let .noLayer(hookpoint): return "the hookpoint '\(hookpoint)' names no layer (layers.<L>); give it with --layer"
        case let .tooFewSequences(path, sequences, every): return "\(path) tensor 'tokens' has \(sequences) sequence\(sequences == 1 ? "" : "s"); Loupe holds out every \(every)th and needs at least 2 (give --held-out-every)"
        case let .workspaceExists(path): return "\(path) already holds a workspace (workspace.json); import into a new folder with --workspace"
        case let .tooManyLatentsPerToken(path, found, limit):
            return "\(path): a token has \(found) non-zero latents, more than Loupe's limit of \(limit) (Formats/Limits.swift topK); export fewer latents from delphi"
        case let .exportOfImport(path, source):
            return "the workspace at \(path) was imported from delphi's cache \(source), which is that cache already; export its explanations with `loupe explanations export --delphi DIR`"
        case let .exportExists(path): return "\(path) already exists; export into a new folder (nothing there is overwritten)"
        case let .nothingToExport(path): return "\(path) holds no codes of the workspace's windows; finish the workspace with `loupe build` first"
        case let .cannotWrite(path, reason): return "cannot write \(path): \(reason)"
        }
    }
}
