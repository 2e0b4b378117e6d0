import Foundation

/// A failed read or write of an append-only log (explanations, scores, simulations), with the
/// system's reason where it gave one.
public enum LogError: Error, Equatable, CustomStringConvertible {
    case cannotOpen(path: String, reason: String)
    case cannotLock(path: String, reason: String)
    case cannotWrite(path: String, reason: String)
    case cannotSync(path: String, reason: String)
    case cannotStat(path: String)
    case cannotRead(path: String, reason: String?)
    /// The log did not hold, after an append, what was appended.
    case notReadBack(path: String)
    /// Every id up to 2^53 is taken (only a damaged line can claim one that large).
    case idsExhausted(path: String)

    public var description: String {
        switch self {
        case let .cannotOpen(path, reason): return "cannot open \(path) for writing: \(reason)"
        case let .cannotLock(path, reason): return "cannot lock \(path): \(reason)"
        case let .cannotWrite(path, reason): return "cannot write \(path): \(reason)"
        case let .cannotSync(path, reason): return "cannot sync \(path): \(reason)"
        case let .cannotStat(path): return "cannot stat \(path)"
        case let .cannotRead(path, reason?): return "cannot read \(path): \(reason)"
        case let .cannotRead(path, nil): return "cannot read \(path)"
        case let .idsExhausted(path): return "\(path): a line claims the largest id (2^53), so no new one is left; delete that damaged line"
        case let .notReadBack(path): return "\(path) did not read back as written; it may have been changed by another program"
        }
    }

    /// The text of the current `errno` (read it right after the failing call).
    static var systemReason: String { String(cString: strerror(errno)) }
}
