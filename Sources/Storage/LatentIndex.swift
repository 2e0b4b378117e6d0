import Foundation
import Kernels

/// What the explorer's list shows for one latent.
public struct LatentSummary: Equatable, Sendable {
    public var latent: Int
    /// Training tokens it fires on.
    public var count: Int
    /// count / the cache's training tokens.
    public var density: Double
    public var max: Float
    /// Mean activation where it fires.
    public var mean: Float
    /// Up to `LatentIndex.topTokenCount` distinct token ids, most frequent first (ties: first seen
    /// first), taken at the activating (focus) position of the latent's top windows (kind 0).
    public var topTokens: [Int]

    public init(latent: Int, count: Int, density: Double, max: Float, mean: Float, topTokens: [Int]) {
        self.latent = latent
        self.count = count
        self.density = density
        self.max = max
        self.mean = mean
        self.topTokens = topTokens
    }
}

/// `cache/index.bin`: every latent's summary in one small file, so the explorer starts without
/// reading the ~100 MB of latent records. Little-endian:
///
///     offset 0   4 bytes   magic "LPIX"
///            4   u32       format version (1)
///            8   u32       latent count N (must equal cache.json's)
///           12   u32       T, top-token slots per latent (5)
///           16   N records of 16 + 4·T bytes, latent i at 16 + i·(16 + 4·T):
///                u32 firing count, f32 max, f32 mean, u32 n ≤ T top tokens in use,
///                T × u32 token ids (the first n meaningful, the rest 0)
///
/// Density is not stored: it is count / cache.json's train_tokens. The index is derived data: it is
/// rebuilt from the records when missing or stale (another latent count, or older than cache.json);
/// a file with the wrong magic, version or size is reported, naming it.
public enum LatentIndex {
    public static let fileName = "index.bin"
    public static let topTokenCount = 5
    static let magic: [UInt8] = Array("LPIX".utf8)
    static let version: UInt32 = 1
    static let headerSize = 16
    static var recordSize: Int { 16 + 4 * topTokenCount }

    /// The summaries of every latent, in latent order: read from `index.bin`, built first if it is
    /// missing or stale.
    public static func load(cache: LatentCache) throws -> [LatentSummary] {
        let url = cache.directory.appendingPathComponent(fileName)
        if !isStale(url, cache: cache), let data = FileManager.default.contents(atPath: url.path) {
            let otherCount = data.count >= headerSize && Array(data.prefix(4)) == magic
                && data.withUnsafeBytes({ u32($0, 8) }) != UInt32(cache.manifest.latents)
            if !otherCount { return try decode(data, manifest: cache.manifest, file: url.path) }
        }
        let built = try summaries(cache: cache)
        // A workspace that cannot be written to still opens; the index is made again next time.
        try? encode(built).write(to: url, options: .atomic)
        return built
    }

    /// Builds the summaries from the cache's records and writes `index.bin` (temporary name, then rename).
    @discardableResult
    public static func build(cache: LatentCache) throws -> [LatentSummary] {
        let s = try summaries(cache: cache)
        try encode(s).write(to: cache.directory.appendingPathComponent(fileName), options: .atomic)
        return s
    }

    /// Every latent's summary from the records, block files read in parallel.
    static func summaries(cache: LatentCache) throws -> [LatentSummary] {
        let files = cache.manifest.files
        let parts = Slots<Result<[LatentSummary], Error>>(count: files.count)
        Parallel.forEach(files.count) { i in
            parts.set(i, Result { try cache.records(in: files[i]).map { summary($0, trainTokens: cache.manifest.trainTokens) } })
        }
        let summaries = try parts.values.flatMap { try $0.get() }
        for (i, s) in summaries.enumerated() where s.latent != i {
            throw WorkspaceError.cacheOutOfOrder(directory: cache.directory.path, found: s.latent, expected: i)
        }
        guard summaries.count == cache.manifest.latents else {
            throw WorkspaceError.cacheIncomplete(directory: cache.directory.path, found: summaries.count, expected: cache.manifest.latents)
        }
        return summaries
    }

    /// One record's summary.
    public static func summary(_ r: LatentRecord, trainTokens: Int) -> LatentSummary {
        var counts: [Int: Int] = [:], order: [Int] = []
        for w in r.windows where w.kind == 0 && w.focus < w.tokens.count {
            let t = w.tokens[w.focus]
            if counts[t] == nil { order.append(t) }
            counts[t, default: 0] += 1
        }
        // A stable sort keeps first-seen order among equal counts.
        let top = order.enumerated().sorted { a, b in
            counts[a.element]! != counts[b.element]! ? counts[a.element]! > counts[b.element]! : a.offset < b.offset
        }.prefix(topTokenCount).map(\.element)
        return LatentSummary(latent: r.latent, count: r.count, density: Double(r.count) / Double(Swift.max(trainTokens, 1)),
                             max: r.max, mean: r.mean, topTokens: Array(top))
    }

    static func isStale(_ url: URL, cache: LatentCache) -> Bool {
        let fm = FileManager.default
        guard let index = (try? fm.attributesOfItem(atPath: url.path))?[.modificationDate] as? Date else { return true }
        let manifestURL = cache.directory.appendingPathComponent(LatentCache.manifestName)
        guard let manifest = (try? fm.attributesOfItem(atPath: manifestURL.path))?[.modificationDate] as? Date else { return false }
        return index < manifest
    }

    static func encode(_ summaries: [LatentSummary]) -> Data {
        var bytes = [UInt8]()
        bytes.reserveCapacity(headerSize + summaries.count * recordSize)
        func put(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
        bytes += magic
        put(version); put(UInt32(summaries.count)); put(UInt32(topTokenCount))
        for s in summaries {
            put(UInt32(truncatingIfNeeded: s.count)); put(s.max.bitPattern); put(s.mean.bitPattern)
            put(UInt32(s.topTokens.count))
            for j in 0..<topTokenCount { put(j < s.topTokens.count ? UInt32(truncatingIfNeeded: s.topTokens[j]) : 0) }
        }
        return Data(bytes)
    }

    static func u32(_ raw: UnsafeRawBufferPointer, _ offset: Int) -> UInt32 {
        UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }

    /// Checks the header and size, then reads every summary.
    static func decode(_ data: Data, manifest: CacheManifest, file: String) throws -> [LatentSummary] {
        try data.withUnsafeBytes { raw -> [LatentSummary] in
            func bad(_ reason: String) -> WorkspaceError { .badLatentIndex(path: file, reason: reason) }
            guard raw.count >= headerSize, Array(raw.prefix(4)) == magic else { throw bad("is not a Loupe latent index") }
            guard u32(raw, 4) == version else { throw bad("has index format version \(u32(raw, 4)), not \(version)") }
            let n = Int(u32(raw, 8)), slots = Int(u32(raw, 12))
            guard n == manifest.latents else { throw bad("indexes \(n) latents, but the cache has \(manifest.latents)") }
            guard slots == topTokenCount, raw.count == headerSize + n * recordSize else {
                throw bad("has \(raw.count) bytes, not the \(headerSize + n * recordSize) of \(n) latents")
            }
            let tokens = Double(Swift.max(manifest.trainTokens, 1))
            var out: [LatentSummary] = []
            out.reserveCapacity(n)
            for i in 0..<n {
                let o = headerSize + i * recordSize
                let count = Int(u32(raw, o)), used = Int(u32(raw, o + 12))
                guard used <= slots else { throw bad("has a corrupt record of latent \(i)") }
                out.append(LatentSummary(latent: i, count: count, density: Double(count) / tokens,
                                         max: Float(bitPattern: u32(raw, o + 4)), mean: Float(bitPattern: u32(raw, o + 8)),
                                         topTokens: (0..<used).map { Int(u32(raw, o + 16 + 4 * $0)) }))
            }
            return out
        }
    }
}
