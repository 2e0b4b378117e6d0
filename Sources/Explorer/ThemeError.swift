import Foundation

/// A theme file that does not parse, or a theme that is not there. `at` is `file:line`.
public enum ThemeError: Error, Equatable, CustomStringConvertible {
    /// A line that is not `key = value`.
    case notKeyValue(at: String, line: String)
    /// A key that is neither name, heat, heat8 nor a role (`known`: the keys there are).
    case unknownKey(at: String, key: String, known: [String])
    /// A role the file leaves unset.
    case roleNotSet(file: String, role: String)
    /// `heat` with fewer than 2 colours.
    case tooFewHeatColours(file: String)
    /// A word that is not a colour (`names`: the named colours).
    case notAColour(at: String, word: String, names: [String])
    /// `on` without a colour after it.
    case onWithoutColour(at: String)
    /// An attribute other than bold, underline, reverse, dim.
    case unknownAttribute(at: String, word: String)
    /// No `<name>.theme` in the themes folder (`known`: the themes there are).
    case noTheme(name: String, directory: String, known: [String])

    public var description: String {
        switch self {
        case let .notKeyValue(at, line): return "\(at): expected `key = value`, got `\(line)`"
        case let .unknownKey(at, key, known): return "\(at): unknown key `\(key)` (known: \(known.joined(separator: ", ")))"
        case let .roleNotSet(file, role): return "\(file): role `\(role)` is not set"
        case let .tooFewHeatColours(file): return "\(file): `heat` needs at least 2 colours"
        case let .notAColour(at, word, names): return "\(at): `\(word)` is not a colour (0–255, default, or \(names.joined(separator: "/")))"
        case let .onWithoutColour(at): return "\(at): `on` needs a colour"
        case let .unknownAttribute(at, word): return "\(at): unknown attribute `\(word)` (bold, underline, reverse, dim)"
        case let .noTheme(name, directory, known):
            return "no theme `\(name)` in \(directory)" + (known.isEmpty ? "" : " (themes: \(known.joined(separator: ", ")))")
        }
    }
}
