import Foundation
import Tokenizer

/// A problem with a corpus, workspace or cache file, with a message that says what to do.
public struct EngineError: Error, CustomStringConvertible {
    public let description: String
    public init(_ message: String) { description = message }
}

/// A workspace that lacks what was asked of it; each case says how to get it.
public enum WorkspaceError: Error, Equatable, CustomStringConvertible {
    /// No `workspace.json` in that folder.
    case noWorkspace(String)
    /// Built up to before the latent cache.
    case noCache(String)
    /// A latent id outside 0..<count.
    case noLatent(Int, count: Int)

    public var description: String {
        switch self {
        case .noWorkspace(let path): return "no workspace at \(path); build one with `loupe build --workspace \(path)`"
        case .noCache(let path): return "the workspace at \(path) has no latent cache yet; finish it with `loupe build --workspace \(path)`"
        case .noLatent(let latent, let count): return "latent \(latent) does not exist (this workspace has latents 0…\(count - 1))"
        }
    }
}
