import Foundation
import Kernels
import Tokenizer

/// `cache/heldout-index.bin`: for each latent, the held-out tokens where it fires and its values
/// there, so scoring sets are drawn without rescanning the codes. Built once from
/// `codes/heldout-*.bin` (read in name order: rows run through the corpus's held-out windows in
/// order, `windowLength` per window). Little-endian:
///
///     offset 0   4 bytes   magic "LPHO"
///            4   u32       format version (1)
///            8   u32       latent count N (must equal cache.json's)
///           12   u32       held-out rows R (must equal the codes files' and the corpus's)
///           16   u32       entries E
///           20   (N + 1) × u32 offsets: latent m's entries are [offsets[m], offsets[m+1])
///                E × u32 row, then E × f32 value (rows ascending within a latent)
///
/// Derived data: rebuilt when missing or stale (older than a codes file, another N or R); a file
/// with the wrong magic, version or inconsistent sizes is reported, naming it.
public struct HeldOutIndex: Sendable {
    public static let fileName = "heldout-index.bin"
    static let magic: [UInt8] = Array("LPHO".utf8)
    static let version: UInt32 = 1

    public let rows: Int
    let offsets: [UInt32]
    let entryRows: [UInt32]
    let values: [Float]

    public var latents: Int { offsets.count - 1 }

    /// The held-out rows where the latent fires, with its values, rows ascending.
    public func entries(of latent: Int) -> [(row: Int, value: Float)] {
        (Int(offsets[latent])..<Int(offsets[latent + 1])).map { (Int(entryRows[$0]), values[$0]) }
    }

    /// Reads `heldout-index.bin`, building it first if it is missing or stale.
    public static func load(cache: LatentCache, corpus: Corpus) throws -> HeldOutIndex {
        let url = cache.directory.appendingPathComponent(fileName)
        let codes = try codeFiles(cache)
        let rows = try codes.reduce(0) { n, url in
            let size = (try? FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int) ?? 0
            guard size % (cache.manifest.k * 6) == 0 else {
                throw WorkspaceError.heldOutPartialRows(path: url.path, k: cache.manifest.k)
            }
            return n + size / (cache.manifest.k * 6)
        }
        guard rows == corpus.heldOutWindows.count * corpus.windowLength else {
            throw WorkspaceError.heldOutRowCount(directory: cache.directory.path, rows: rows, expected: corpus.heldOutWindows.count * corpus.windowLength)
        }
        func modified(_ u: URL) -> Date { (try? FileManager.default.attributesOfItem(atPath: u.path)[.modificationDate] as? Date) ?? .distantFuture }
        let fresh = FileManager.default.fileExists(atPath: url.path) && codes.allSatisfy { modified($0) <= modified(url) }
        if fresh, let data = FileManager.default.contents(atPath: url.path) {
            let index = try decode(data, file: url.path)
            if index.latents == cache.manifest.latents && index.rows == rows { return index }
        }
        let index = try build(codes: codes, latents: cache.manifest.latents, k: cache.manifest.k, rows: rows)
        // A read-only workspace still scores; the index is built again next time.
        try? index.encoded().write(to: url, options: .atomic)
        return index
    }

    static func codeFiles(_ cache: LatentCache) throws -> [URL] {
        let dir = cache.directory.appendingPathComponent("codes", isDirectory: true)
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? [])
            .filter { $0.hasPrefix("heldout-") && $0.hasSuffix(".bin") }.sorted()
        guard !names.isEmpty else { throw WorkspaceError.noHeldOutCodes(directory: dir.path) }
        return names.map { dir.appendingPathComponent($0) }
    }

    /// Counting sort of every (row, latent, value > 0) of the codes files by latent.
    static func build(codes: [URL], latents: Int, k: Int, rows: Int) throws -> HeldOutIndex {
        var indices: [UInt32] = [], vals: [Float16] = []
        indices.reserveCapacity(rows * k)
        vals.reserveCapacity(rows * k)
        for url in codes {
            guard let data = FileManager.default.contents(atPath: url.path) else { throw WorkspaceError.unreadable(path: url.path) }
            data.withUnsafeBytes { raw in
                for r in 0..<data.count / (k * 6) {
                    let base = r * k * 6
                    for j in 0..<k { indices.append(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: base + 4 * j, as: UInt32.self))) }
                    for j in 0..<k { vals.append(Float16(bitPattern: UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: base + 4 * k + 2 * j, as: UInt16.self)))) }
                }
            }
        }
        var offsets = [UInt32](repeating: 0, count: latents + 1)
        for (i, m) in indices.enumerated() where vals[i] > 0 {
            guard Int(m) < latents else { throw WorkspaceError.heldOutLatentOutOfRange(latent: Int(m), count: latents) }
            offsets[Int(m) + 1] += 1
        }
        for m in 0..<latents { offsets[m + 1] += offsets[m] }
        var next = offsets
        var entryRows = [UInt32](repeating: 0, count: Int(offsets[latents]))
        var values = [Float](repeating: 0, count: Int(offsets[latents]))
        for (i, m) in indices.enumerated() where vals[i] > 0 {
            let slot = Int(next[Int(m)])
            entryRows[slot] = UInt32(i / k)
            values[slot] = Float(vals[i])
            next[Int(m)] += 1
        }
        return HeldOutIndex(rows: rows, offsets: offsets, entryRows: entryRows, values: values)
    }

    func encoded() -> Data {
        var d = Data(Self.magic)
        for v in [Self.version, UInt32(latents), UInt32(rows), UInt32(entryRows.count)] { withUnsafeBytes(of: v.littleEndian) { d.append(contentsOf: $0) } }
        offsets.map(\.littleEndian).withUnsafeBytes { d.append(contentsOf: $0) }
        entryRows.map(\.littleEndian).withUnsafeBytes { d.append(contentsOf: $0) }
        values.map { $0.bitPattern.littleEndian }.withUnsafeBytes { d.append(contentsOf: $0) }
        return d
    }

    static func decode(_ data: Data, file: String) throws -> HeldOutIndex {
        func bad(_ why: String) -> WorkspaceError { .badHeldOutIndex(path: file, reason: why) }
        guard data.count >= 20, Array(data.prefix(4)) == magic else { throw bad("is not a held-out index (bad magic)") }
        return try data.withUnsafeBytes { raw in
            func u32(_ o: Int) -> UInt32 { UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: o, as: UInt32.self)) }
            guard u32(4) == version else { throw bad("has format version \(u32(4)), not \(version)") }
            let n = Int(u32(8)), rows = Int(u32(12)), e = Int(u32(16))
            guard data.count == 20 + 4 * (n + 1) + 8 * e else { throw bad("has \(data.count) bytes, not the \(20 + 4 * (n + 1) + 8 * e) its header implies") }
            let offsets = (0...n).map { u32(20 + 4 * $0) }
            guard offsets.first == 0, Int(offsets.last!) == e, zip(offsets, offsets.dropFirst()).allSatisfy({ $0 <= $1 }) else {
                throw bad("has inconsistent offsets")
            }
            let rowBase = 20 + 4 * (n + 1), valueBase = rowBase + 4 * e
            let entryRows = (0..<e).map { u32(rowBase + 4 * $0) }
            guard entryRows.allSatisfy({ Int($0) < rows }) else { throw bad("names a row past its \(rows) rows") }
            let values = (0..<e).map { Float(bitPattern: u32(valueBase + 4 * $0)) }
            return HeldOutIndex(rows: rows, offsets: offsets, entryRows: entryRows, values: values)
        }
    }
}
