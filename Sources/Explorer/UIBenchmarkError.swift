import Foundation

/// Why `loupe bench ui` could not measure: the workspace did not open.
public enum UIBenchmarkError: Error, Equatable, CustomStringConvertible {
    /// The explorer showed an error (`message`, nil when it only found no workspace).
    case didNotOpen(workspace: String, message: String?)
    /// The latent list did not fill within the deadline.
    case openTimedOut(seconds: Int)

    public var description: String {
        switch self {
        case let .didNotOpen(workspace, message):
            return "the workspace did not open: \(message ?? "no workspace at \(workspace); run `loupe build`")"
        case let .openTimedOut(seconds): return "the workspace did not open within \(seconds) s"
        }
    }
}
