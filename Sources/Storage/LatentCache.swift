import Foundation
import Formats
import Kernels

/// What every latent does on the corpus: statistics, example windows, logit effects, neighbours.
///
/// Files in `cache/` (all little-endian; each written whole to a temporary name and renamed, so a
/// killed run keeps every finished file and redoes only the rest):
///
///     codes/<split>-NNNNN.bin   per token of an activation shard, its k latents: k × u32 index
///                               then k × f16 value (values sorted descending)
///     latents-NNNNN.bin         `blockSize` latents each: per latent one LatentRecord (below)
///     cache.json                CacheManifest: sizes, the files, the random pool
///
/// LatentRecord: u32 latent, u32 firing count, f32 max, f32 mean, u32 histogram[histogramBins]
/// (equal-width bins over (0, max]), f32 quantiles[quantiles] (of the non-zero activations, evenly
/// spaced ranks from min to max), 10 × (u32 id, f32 logit) promoted, 10 × (u32, f32) suppressed,
/// 8 × (u32 latent, f32 cosine) neighbours, u32 window count, then per window: u32 corpus window,
/// u16 first token in it, u8 position of the activating token, u8 kind (0 = top, 1…10 = quantile
/// bin, lowest first), displayLength × u32 token ids, displayLength × f32 activations of this latent.
public struct CacheManifest: Codable, Equatable, Sendable {
    public var formatVersion = 1
    public var latents: Int
    public var k: Int
    public var blockSize: Int
    public var displayLength: Int
    public var histogramBins: Int
    public var quantiles: Int
    public var trainTokens: Int
    /// Random display windows (corpus window, first token) from held-out text, shared by all latents as negatives.
    public var randomPool: [[Int]]
    public var files: [String]

    public init(latents: Int, k: Int, blockSize: Int, displayLength: Int, histogramBins: Int, quantiles: Int, trainTokens: Int, randomPool: [[Int]], files: [String]) {
        self.latents = latents; self.k = k; self.blockSize = blockSize; self.displayLength = displayLength; self.histogramBins = histogramBins; self.quantiles = quantiles; self.trainTokens = trainTokens; self.randomPool = randomPool; self.files = files
    }

    enum CodingKeys: String, CodingKey {
        case formatVersion = "format_version", latents, k, blockSize = "block_size", displayLength = "display_length",
             histogramBins = "histogram_bins", quantiles, trainTokens = "train_tokens", randomPool = "random_pool", files
    }

    /// Every size within `Limits` and consistent with the others (one block file per `block_size`
    /// latents; `k` and `block_size` are divisors), before a record is read or a buffer sized by them.
    public func check(path: String) throws {
        func bad(_ field: String, _ reason: String) -> WorkspaceError { .badField(path: path, field: field, reason: reason) }
        func within(_ field: String, _ v: Int, _ r: ClosedRange<Int>) throws {
            guard r.contains(v) else { throw bad(field, "is \(v), expected \(r.lowerBound)…\(r.upperBound)") }
        }
        guard formatVersion == 1 else { throw bad("format_version", "is \(formatVersion), expected 1") }
        try within("latents", latents, 1...Limits.latents)
        try within("k", k, 1...min(latents, Limits.topK))
        try within("block_size", blockSize, 1...Limits.latents)
        try within("display_length", displayLength, 1...Limits.displayLength)
        try within("histogram_bins", histogramBins, 0...Limits.recordBins)
        try within("quantiles", quantiles, 0...Limits.recordBins)
        try within("train_tokens", trainTokens, 0...Limits.corpusTokens)
        let blocks = (latents + blockSize - 1) / blockSize
        guard files.count == blocks else { throw bad("files", "lists \(files.count) files, but \(latents) latents in blocks of \(blockSize) need \(blocks)") }
        if let f = files.first(where: { $0.isEmpty || $0.contains("/") || $0 == ".." }) { throw bad("files", "names '\(f)', which is not a file in the cache folder") }
        guard randomPool.allSatisfy({ $0.count == 2 && $0[0] >= 0 && $0[1] >= 0 }) else { throw bad("random_pool", "holds an entry that is not two non-negative integers") }
    }
}

/// One example window of a latent.
public struct LatentWindow: Equatable, Sendable {
    public var corpusWindow: Int
    public var start: Int
    /// Index in `tokens` of the token the window was chosen for.
    public var focus: Int
    /// 0 for a top window, 1…10 for a quantile bin.
    public var kind: Int
    public var tokens: [Int]
    public var activations: [Float]

    public init(corpusWindow: Int, start: Int, focus: Int, kind: Int, tokens: [Int], activations: [Float]) {
        self.corpusWindow = corpusWindow; self.start = start; self.focus = focus; self.kind = kind; self.tokens = tokens; self.activations = activations
    }
}

/// Everything the cache knows about one latent.
public struct LatentRecord: Equatable, Sendable {
    public var latent: Int
    public var count: Int
    public var max: Float
    public var mean: Float
    public var histogram: [Int]
    public var quantiles: [Float]
    public var promoted: [(id: Int, logit: Float)]
    public var suppressed: [(id: Int, logit: Float)]
    public var neighbours: [(latent: Int, cosine: Float)]
    public var windows: [LatentWindow]

    public init(latent: Int, count: Int, max: Float, mean: Float, histogram: [Int], quantiles: [Float], promoted: [(id: Int, logit: Float)], suppressed: [(id: Int, logit: Float)], neighbours: [(latent: Int, cosine: Float)], windows: [LatentWindow]) {
        self.latent = latent; self.count = count; self.max = max; self.mean = mean; self.histogram = histogram; self.quantiles = quantiles; self.promoted = promoted; self.suppressed = suppressed; self.neighbours = neighbours; self.windows = windows
    }

    public static func == (a: LatentRecord, b: LatentRecord) -> Bool {
        a.latent == b.latent && a.count == b.count && a.max == b.max && a.mean == b.mean && a.histogram == b.histogram
            && a.quantiles == b.quantiles && a.windows == b.windows
            && a.promoted.map(\.id) == b.promoted.map(\.id) && a.neighbours.map(\.latent) == b.neighbours.map(\.latent)
    }
}

/// The binary form of a LatentRecord (layout in the comment at the top of this file).
public enum LatentRecordCoding {
    public static func encode(_ r: LatentRecord, manifest m: CacheManifest) -> Data {
        var d = Data()
        func u32(_ v: Int) { withUnsafeBytes(of: UInt32(truncatingIfNeeded: v).littleEndian) { d.append(contentsOf: $0) } }
        func f32(_ v: Float) { withUnsafeBytes(of: v.bitPattern.littleEndian) { d.append(contentsOf: $0) } }
        func pairs(_ p: [(Int, Float)], _ n: Int) {
            for i in 0..<n { u32(i < p.count ? p[i].0 : 0); f32(i < p.count ? p[i].1 : 0) }
        }
        u32(r.latent); u32(r.count); f32(r.max); f32(r.mean)
        for i in 0..<m.histogramBins { u32(r.histogram[i]) }
        for i in 0..<m.quantiles { f32(r.quantiles[i]) }
        pairs(r.promoted.map { ($0.id, $0.logit) }, 10)
        pairs(r.suppressed.map { ($0.id, $0.logit) }, 10)
        pairs(r.neighbours.map { ($0.latent, $0.cosine) }, 8)
        u32(r.windows.count)
        for w in r.windows {
            u32(w.corpusWindow)
            withUnsafeBytes(of: UInt16(w.start).littleEndian) { d.append(contentsOf: $0) }
            d.append(UInt8(w.focus))
            d.append(UInt8(w.kind))
            for t in w.tokens { u32(t) }
            for a in w.activations { f32(a) }
        }
        return d
    }

    /// Decodes every record of a block file; throws on a short or inconsistent file.
    static func decodeAll(_ data: Data, manifest m: CacheManifest, file: String) throws -> [LatentRecord] {
        try data.withUnsafeBytes { raw -> [LatentRecord] in
            var o = 0
            func need(_ n: Int) throws {
                guard o + n <= raw.count else { throw WorkspaceError.truncatedCacheFile(path: file) }
            }
            func u32() throws -> Int { try need(4); defer { o += 4 }; return Int(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: o, as: UInt32.self))) }
            func f32() throws -> Float { try need(4); defer { o += 4 }; return Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: o, as: UInt32.self))) }
            func pairs(_ n: Int) throws -> [(Int, Float)] { try (0..<n).map { _ in (try u32(), try f32()) } }
            var out: [LatentRecord] = []
            while o < raw.count {
                let latent = try u32(), count = try u32(), mx = try f32(), mean = try f32()
                let hist = try (0..<m.histogramBins).map { _ in try u32() }
                let q = try (0..<m.quantiles).map { _ in try f32() }
                let up = try pairs(10), down = try pairs(10), nb = try pairs(8)
                let n = try u32()
                var windows: [LatentWindow] = []
                for _ in 0..<n {
                    let w = try u32()
                    try need(4)
                    let start = Int(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: o, as: UInt16.self)))
                    let focus = Int(raw[o + 2]), kind = Int(raw[o + 3])
                    o += 4
                    let tokens = try (0..<m.displayLength).map { _ in try u32() }
                    let acts = try (0..<m.displayLength).map { _ in try f32() }
                    windows.append(LatentWindow(corpusWindow: w, start: start, focus: focus, kind: kind, tokens: tokens, activations: acts))
                }
                // Unused slots are written as (0, 0): a record made without a dictionary (imported from delphi) has none.
                func used(_ p: (Int, Float)) -> Bool { p.0 != 0 || p.1 != 0 }
                out.append(LatentRecord(latent: latent, count: count, max: mx, mean: mean, histogram: hist, quantiles: q,
                                        promoted: up.filter(used).map { (id: $0.0, logit: $0.1) },
                                        suppressed: down.filter(used).map { (id: $0.0, logit: $0.1) },
                                        neighbours: nb.filter(used).map { (latent: $0.0, cosine: $0.1) }, windows: windows))
            }
            return out
        }
    }
}

/// Reads a finished latent cache.
public struct LatentCache: Sendable {
    /// The manifest's file name in the cache folder; written last, so its presence means finished.
    public static let manifestName = "cache.json"

    public let directory: URL
    public let manifest: CacheManifest

    public init(directory: URL) throws {
        self.directory = directory
        let url = directory.appendingPathComponent(Self.manifestName)
        manifest = try JSONFile.read(CacheManifest.self, from: url)
        try manifest.check(path: url.path)
    }

    /// The record of one latent (reads its block file).
    public func record(_ latent: Int) throws -> LatentRecord {
        guard latent >= 0 && latent < manifest.latents else {
            throw WorkspaceError.noLatent(latent, count: manifest.latents)
        }
        let file = manifest.files[latent / manifest.blockSize]
        guard let r = try records(in: file).first(where: { $0.latent == latent }) else {
            throw WorkspaceError.cacheFileLacksLatent(path: directory.appendingPathComponent(file).path, latent: latent)
        }
        return r
    }

    /// Every record, block by block.
    public func allRecords() throws -> [LatentRecord] {
        try manifest.files.flatMap(records(in:))
    }

    /// The records of one block file.
    public func records(in file: String) throws -> [LatentRecord] {
        let url = directory.appendingPathComponent(file)
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw WorkspaceError.missingCacheFile(path: url.path)
        }
        return try LatentRecordCoding.decodeAll(data, manifest: manifest, file: url.path)
    }
}
