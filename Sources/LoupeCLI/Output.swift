import Foundation
import Storage
import Terminal

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
/// Whatever it prints passes `VisibleText.escape` first: text from files, servers or the user can
/// hold ESC and other control characters, which are shown as `\x1B`, never sent to the terminal.
/// Results keep their line breaks and tabs; a progress line or an error is one line, so a newline
/// in it is shown too.
public enum Console {
    public static func print(_ line: String) {
        FileHandle.standardOutput.write((VisibleText.escape(line, keep: ["\n", "\t"]) + "\n").data(using: .utf8)!)
    }

    public static func write(_ text: String) {
        FileHandle.standardOutput.write(VisibleText.escape(text, keep: ["\n", "\t"]).data(using: .utf8)!)
    }

    /// A progress line on stderr (overwritten in place on a terminal).
    public static func progress(_ line: String) {
        FileHandle.standardError.write(("loupe: " + VisibleText.escape(line) + "\n").data(using: .utf8)!)
    }

    public static func error(_ message: String) {
        FileHandle.standardError.write(("loupe: error: " + VisibleText.escape(message) + "\n").data(using: .utf8)!)
    }

    /// `line` on stderr after the terminal sequence `control` (ours: "\r\u{1B}[K" clears the line
    /// a progress bar is redrawn on), the line itself escaped.
    public static func status(_ line: String, after control: String = "", newline: Bool = true) {
        FileHandle.standardError.write((control + VisibleText.escape(line) + (newline ? "\n" : "")).data(using: .utf8)!)
    }
}
