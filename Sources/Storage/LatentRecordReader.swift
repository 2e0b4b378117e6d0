import Foundation

/// A latent's record from the cache, keeping the last few decoded block files, so latents read
/// in order (scoring, training, explaining) or around one (the explorer) decode each block once.
/// One thread at a time.
public final class LatentRecordReader: @unchecked Sendable {
    public let cache: LatentCache
    private let keep: Int
    private var blocks: [(file: String, records: [LatentRecord])] = []

    public init(cache: LatentCache, keep: Int = 3) {
        self.cache = cache
        self.keep = max(1, keep)
    }

    public func record(_ latent: Int) throws -> LatentRecord {
        guard latent >= 0 && latent < cache.manifest.latents else { throw WorkspaceError.noLatent(latent, count: cache.manifest.latents) }
        let file = cache.manifest.files[latent / cache.manifest.blockSize]
        if let i = blocks.firstIndex(where: { $0.file == file }) {
            blocks.append(blocks.remove(at: i))
        } else {
            blocks.append((file, try cache.records(in: file)))
            if blocks.count > keep { blocks.removeFirst() }
        }
        guard let r = blocks.last!.records.first(where: { $0.latent == latent }) else { return try cache.record(latent) }
        return r
    }
}
