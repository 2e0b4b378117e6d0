import Foundation
import Storage

/// A problem the user can fix, with a message that says how. Printed as one line, exit status 1.
public struct UserError: Error, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// JSON values with keys kept in the order written, so `--json` output is stable.
public indirect enum JSON: Equatable {
    case object([(String, JSON)])
    case array([JSON])
    case string(String)
    case int(Int)
    case number(Double)
    case bool(Bool)
    case null

    public static func == (a: JSON, b: JSON) -> Bool { a.text == b.text }

    /// Compact, single-line serialisation.
    public var text: String {
        switch self {
        case let .object(pairs): return "{" + pairs.map { "\(JSONFile.quote($0.0)): \($0.1.text)" }.joined(separator: ", ") + "}"
        case let .array(items): return "[" + items.map(\.text).joined(separator: ", ") + "]"
        case let .string(s): return JSONFile.quote(s)
        case let .int(i): return String(i)
        case let .number(d): return d.isFinite ? "\(d)" : "null"
        case let .bool(b): return b ? "true" : "false"
        case .null: return "null"
        }
    }
}

/// All user-visible text goes through here: results to stdout, progress and errors to stderr.
public enum Console {
    public static func print(_ line: String) {
        FileHandle.standardOutput.write((line + "\n").data(using: .utf8)!)
    }

    public static func write(_ text: String) {
        FileHandle.standardOutput.write(text.data(using: .utf8)!)
    }

    /// A progress line on stderr (overwritten in place on a terminal).
    public static func progress(_ line: String) {
        FileHandle.standardError.write(("loupe: " + line + "\n").data(using: .utf8)!)
    }

    public static func error(_ message: String) {
        FileHandle.standardError.write(("loupe: error: " + message + "\n").data(using: .utf8)!)
    }
}
