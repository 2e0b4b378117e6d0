import Foundation

/// A `--latents SPEC` that does not parse or names latents the workspace lacks.
public enum LatentSelectionError: Error, Equatable, CustomStringConvertible {
    /// An empty (or blank) spec.
    case empty
    /// A comma-separated part that is not N, N-M, topN or all.
    case badPart(String)
    /// A range N-M with N > M.
    case backwards(String)
    /// A latent past the workspace's 0..<count.
    case noLatent(Int, count: Int)

    public var description: String {
        switch self {
        case .empty: return "--latents is empty; give e.g. 0-99,150,top500 or all"
        case let .badPart(part): return "--latents: '\(part)' is not N, N-M, topN or all (e.g. 0-99,150,top500)"
        case let .backwards(part): return "--latents: the range '\(part)' runs backwards"
        case let .noLatent(latent, count): return "--latents: latent \(latent) does not exist (this workspace has latents 0…\(count - 1))"
        }
    }
}
