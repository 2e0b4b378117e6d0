import Foundation
import Tokenizer

/// A workspace that lacks what was asked of it, or whose files are missing, unreadable or
/// inconsistent; each case says how to get or repair it.
public enum WorkspaceError: Error, Equatable, CustomStringConvertible {
    /// No `workspace.json` in that folder.
    case noWorkspace(String)
    /// Built up to before the latent cache.
    case noCache(String)
    /// A latent id outside 0..<count.
    case noLatent(Int, count: Int)

    // MARK: files
    /// A file that is missing or cannot be read.
    case unreadable(path: String)
    /// A JSON file that does not decode as what it should hold.
    case invalidJSON(path: String, reason: String)

    // MARK: corpus
    /// A corpus source file that cannot be read.
    case unreadableCorpus(path: String)
    /// A line of a `.jsonl` corpus file (counted from 1) that is not a document.
    case badCorpusLine(path: String, line: Int, reason: String)
    /// Corpus files that together hold less than one window.
    case corpusTooShort(files: [String], windowLength: Int)
    /// `tokens.bin` missing or not of the size `corpus.json` says.
    case badCorpusTokens(path: String, tokens: Int)

    // MARK: activations and codes
    /// An activation shard not (fully) written.
    case incompleteShard(path: String)
    /// A latent codes file missing or shorter than its shard.
    case incompleteCodes(path: String)

    // MARK: latent cache
    /// A block file of the latent cache that is missing.
    case missingCacheFile(path: String)
    /// A block file of the latent cache that ends early.
    case truncatedCacheFile(path: String)
    /// A block file of the latent cache without the record of a latent it should hold.
    case cacheFileLacksLatent(path: String, latent: Int)
    /// The cache's records out of order: `found` where `expected` belongs.
    case cacheOutOfOrder(directory: String, found: Int, expected: Int)
    /// The cache holds fewer (or more) records than its manifest's latents.
    case cacheIncomplete(directory: String, found: Int, expected: Int)
    /// The latent index file (a derived file, rebuilt when deleted) is not usable.
    case badLatentIndex(path: String, reason: String)

    // MARK: held-out codes and index
    /// A held-out codes file that is not a whole number of rows.
    case heldOutPartialRows(path: String, k: Int)
    /// The held-out codes do not cover the corpus's held-out windows.
    case heldOutRowCount(directory: String, rows: Int, expected: Int)
    /// No `heldout-*.bin` in the codes folder.
    case noHeldOutCodes(directory: String)
    /// The held-out codes name a latent past the cache's.
    case heldOutLatentOutOfRange(latent: Int, count: Int)
    /// The held-out index file (a derived file, rebuilt when deleted) is not usable.
    case badHeldOutIndex(path: String, reason: String)

    // MARK: rewrite
    /// A stored rewrite report that does not decode.
    case unreadableRewriteReport(path: String, reason: String)

    // MARK: any workspace file
    /// A field of a workspace file outside what it can be (a size past `Limits`, 0 where a divisor
    /// is needed, a count that disagrees with another field or the bytes present).
    case badField(path: String, field: String, reason: String)

    public var description: String {
        switch self {
        case .noWorkspace(let path): return "no workspace at \(path); build one with `loupe build --workspace \(path)`"
        case .noCache(let path): return "the workspace at \(path) has no latent cache yet; finish it with `loupe build --workspace \(path)`"
        case .noLatent(let latent, let count):
            return count > 0 ? "latent \(latent) does not exist (this workspace has latents 0…\(count - 1))"
                             : "latent \(latent) does not exist (this workspace has no latents)"
        case let .unreadable(path): return "cannot read \(path)"
        case let .invalidJSON(path, reason): return "\(path) is not valid: \(reason)"
        case let .unreadableCorpus(path): return "cannot read corpus file \(path)"
        case let .badCorpusLine(path, line, reason): return "\(path):\(line): \(reason)"
        case let .corpusTooShort(files, windowLength):
            return "the corpus (\(files.joined(separator: ", "))) has fewer than \(windowLength) tokens"
        case let .badCorpusTokens(path, tokens):
            return "\(path) is missing or does not hold the \(tokens) tokens corpus.json lists; rebuild with `loupe build`"
        case let .incompleteShard(path): return "activation shard \(path) is missing or incomplete; run `loupe build` again to redo it"
        case let .incompleteCodes(path): return "latent codes \(path) are missing or incomplete; run `loupe cache` again"
        case let .missingCacheFile(path): return "\(path) is missing; run `loupe cache` to rebuild it"
        case let .truncatedCacheFile(path): return "\(path) is truncated; delete it and run `loupe cache` again"
        case let .cacheFileLacksLatent(path, latent): return "\(path) lacks latent \(latent); delete it and run `loupe cache` again"
        case let .cacheOutOfOrder(directory, found, expected):
            return "the latent cache in \(directory) has latent \(found) where \(expected) belongs; run `loupe cache` again"
        case let .cacheIncomplete(directory, found, expected):
            return "the latent cache in \(directory) holds \(found) of \(expected) latents; run `loupe cache` again"
        case let .badLatentIndex(path, reason): return "\(path) \(reason); delete it and Loupe rebuilds it from the latent cache"
        case let .heldOutPartialRows(path, k): return "\(path) is not a whole number of \(k)-latent rows; run `loupe cache` again"
        case let .heldOutRowCount(directory, rows, expected):
            return "the held-out codes in \(directory)/codes hold \(rows) tokens, the corpus \(expected); run `loupe cache` again"
        case let .noHeldOutCodes(directory): return "\(directory) has no held-out codes (heldout-*.bin); run `loupe cache` again"
        case let .heldOutLatentOutOfRange(latent, count):
            return "held-out codes name latent \(latent), but the cache has \(count); run `loupe cache` again"
        case let .badHeldOutIndex(path, reason): return "\(path) \(reason); delete it and it is rebuilt"
        case let .badField(path, field, reason):
            return "\(path): field '\(field)' \(reason); the file is damaged — run `loupe build` again to rewrite it"
        case let .unreadableRewriteReport(path, reason): return "\(path) cannot be read (\(reason)); run `loupe rewrite` again to rewrite it"
        }
    }
}
