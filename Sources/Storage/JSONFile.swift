import Foundation
import Tokenizer

/// Reading and atomically writing JSON files with readable formatting.
public enum JSONFile {
    public static func write<T: Encodable>(_ value: T, to url: URL) throws {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try e.encode(value).write(to: url, options: .atomic)
    }

    public static func read<T: Decodable>(_ type: T.Type, from url: URL) throws -> T {
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw WorkspaceError.unreadable(path: url.path)
        }
        do { return try JSONDecoder().decode(T.self, from: data) } catch {
            throw WorkspaceError.invalidJSON(path: url.path, reason: reason(error))
        }
    }

    /// One line saying what a decoding error is and where: "field 'k': expected Int", not the
    /// multi-field dump `"\(error)"` prints.
    public static func reason(_ error: Error) -> String {
        func at(_ c: DecodingError.Context) -> String {
            let path = c.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
            return path.isEmpty ? "" : "field '\(path)': "
        }
        switch error {
        case let DecodingError.keyNotFound(key, c): return at(c) + "required field '\(key.stringValue)' is missing"
        case let DecodingError.typeMismatch(type, c): return at(c) + "expected \(type)"
        case let DecodingError.valueNotFound(type, c): return at(c) + "expected \(type), found null"
        case let DecodingError.dataCorrupted(c):
            let detail = (c.underlyingError as NSError?)?.localizedDescription ?? c.debugDescription
            return at(c) + String(detail.prefix(120)).replacingOccurrences(of: "\n", with: " ")
        default: return String("\(error)".prefix(120)).replacingOccurrences(of: "\n", with: " ")
        }
    }

    /// A JSON string literal: quotes, backslashes and control characters (C0, DEL and C1) escaped.
    public static func quote(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where u.value < 0x20 || (u.value >= 0x7F && u.value < 0xA0): out += String(format: "\\u%04x", u.value)
            default: out.unicodeScalars.append(u)
            }
        }
        return out + "\""
    }
}
