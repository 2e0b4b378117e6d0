import EngineAPI
import Storage
import Foundation
import Terminal

/// A colour theme, read from a `themes/NAME.theme` file:
///
///     # comment
///     name      = dark
///     text      = 252                 a role: FG [on BG] [bold] [underline] [reverse] [dim]
///     selection = 231 on 238 bold     colours are xterm numbers 0–255, "default", or a basic name
///     heat      = 236 52 88 … 226     the heatmap scale, lowest → highest, 256-colour terminals
///     heat8     = black blue … yellow the same on 8-colour terminals
///
/// Every role must be given (the loader names a missing one); `heat` needs at least 2 steps.
public struct Theme: Equatable, Sendable {
    public enum Role: String, CaseIterable, Sendable {
        case text, dim, accent, title, tab, selection, header, status, error, good, bad, special, marker, border, cursor
    }

    public var name: String
    public var roles: [Role: Style]
    public var heat: [Color]
    public var heat8: [Color]

    /// Parses a theme file's text; `file` names it in errors.
    public init(text: String, file: String) throws {
        var roles: [Role: Style] = [:]
        var name = (file as NSString).lastPathComponent.replacingOccurrences(of: ".theme", with: "")
        var heat: [Color] = [], heat8: [Color] = []
        for (n, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false)[0].trimmingCharacters(in: .whitespaces)
            if line.isEmpty { continue }
            let parts = line.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2 else { throw ThemeError.notKeyValue(at: "\(file):\(n + 1)", line: line) }
            let (key, value) = (parts[0], parts[1])
            let at = "\(file):\(n + 1)"
            switch key {
            case "name": name = value
            case "heat": heat = try value.split(separator: " ").map { try Self.color(String($0), at: at) }
            case "heat8": heat8 = try value.split(separator: " ").map { try Self.color(String($0), at: at) }
            default:
                guard let role = Role(rawValue: key) else {
                    throw ThemeError.unknownKey(at: at, key: key, known: ["name", "heat", "heat8"] + Role.allCases.map(\.rawValue))
                }
                roles[role] = try Self.style(value, at: at)
            }
        }
        if let missing = Role.allCases.first(where: { roles[$0] == nil }) {
            throw ThemeError.roleNotSet(file: file, role: missing.rawValue)
        }
        guard heat.count >= 2 else { throw ThemeError.tooFewHeatColours(file: file) }
        self.name = name
        self.roles = roles
        self.heat = heat
        self.heat8 = heat8.count >= 2 ? heat8 : heat.map(\.basic)
    }

    static let basicNames = ["black", "red", "green", "yellow", "blue", "magenta", "cyan", "white"]

    static func color(_ word: String, at: String) throws -> Color {
        if word == "default" { return .none }
        if let i = basicNames.firstIndex(of: word) { return .index(UInt8(i)) }
        guard let n = Int(word), (0...255).contains(n) else {
            throw ThemeError.notAColour(at: at, word: word, names: basicNames)
        }
        return .index(UInt8(n))
    }

    static func style(_ spec: String, at: String) throws -> Style {
        var style = Style()
        var words = spec.split(separator: " ").map(String.init)[...]
        let flags = ["bold", "underline", "reverse", "dim"]
        if let first = words.first, !flags.contains(first) { style.fg = try color(first, at: at); words = words.dropFirst() }
        if words.first == "on" {
            words = words.dropFirst()
            guard let bg = words.first else { throw ThemeError.onWithoutColour(at: at) }
            style.bg = try color(bg, at: at)
            words = words.dropFirst()
        }
        for w in words {
            switch w {
            case "bold": style.bold = true
            case "underline": style.underline = true
            case "reverse": style.reverse = true
            case "dim": style.dim = true
            default: throw ThemeError.unknownAttribute(at: at, word: String(w))
            }
        }
        return style
    }

    /// The folder themes are read from: `$LOUPE_THEMES`, else `themes/` beside the data folder.
    public static var directory: URL {
        if let env = ProcessInfo.processInfo.environment["LOUPE_THEMES"], !env.isEmpty { return URL(fileURLWithPath: env) }
        return Paths.dataDirectory.deletingLastPathComponent().appendingPathComponent("themes", isDirectory: true)
    }

    /// The theme files there, by name, in a stable order (dark first).
    public static func available(in dir: URL = directory) -> [String] {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? [])
            .filter { $0.hasSuffix(".theme") }.map { String($0.dropLast(6)) }.sorted()
        return names.contains("dark") ? ["dark"] + names.filter { $0 != "dark" } : names
    }

    public static func load(_ name: String, from dir: URL = directory) throws -> Theme {
        let url = dir.appendingPathComponent(name + ".theme")
        guard let text = try? String(contentsOf: url, encoding: .utf8) else {
            let known = available(in: dir)
            throw ThemeError.noTheme(name: name, directory: dir.path, known: known)
        }
        return try Theme(text: text, file: url.path)
    }

    /// Used when no theme files can be found (e.g. the binary was copied elsewhere).
    public static let fallback = try! Theme(text: """
        name = fallback
        text = default
        dim = 244
        accent = 75
        title = 231 on 24 bold
        tab = 250 on 24
        selection = 231 on 238 bold
        header = 250 on 236 bold
        status = 252 on 236
        error = 203 bold
        good = 114
        bad = 203
        special = 177
        marker = bold underline
        border = 240
        cursor = reverse
        heat = 236 52 88 124 160 196 202 208 214 220 226
        heat8 = black blue magenta red yellow
        """, file: "fallback")
}

/// A theme as it can be shown on this terminal: 256 colours, 8, or none (NO_COLOR).
public struct Palette: Sendable {
    public var theme: Theme
    public var mode: TerminalScreen.ColorMode

    public init(theme: Theme, mode: TerminalScreen.ColorMode) { self.theme = theme; self.mode = mode }

    public var hasColor: Bool { mode != .none }

    public func style(_ role: Theme.Role) -> Style {
        let s = theme.roles[role] ?? .plain
        switch mode {
        case .full: return s
        case .basic: return s.with(fg: s.fg.basic, bg: s.bg.basic)
        case .none:
            // Without colour, roles that rely on a background become reverse video or bold.
            let reverse = s.reverse || (s.bg != .none && [.selection, .title, .status, .cursor].contains(role))
            let bold = s.bold || [.header, .error, .accent].contains(role)
            return Style(bold: bold, underline: s.underline || role == .tab, reverse: reverse, dim: s.dim || role == .dim)
        }
    }

    /// The style of a token whose activation is `fraction` (0…1) of the scale's maximum: background
    /// heat with readable text. Without colour, heat shows as bold (strong) or underline (weak).
    public func heat(_ fraction: Double) -> Style {
        let f = fraction.isFinite ? min(max(fraction, 0), 1) : 0
        switch mode {
        case .none:
            if f <= 0 { return .plain }
            return Style(bold: f >= 0.5, underline: f < 0.5 || f >= 0.999)
        case .full, .basic:
            let scale = mode == .full ? theme.heat : theme.heat8
            if f <= 0 { return style(.text) }
            let i = min(scale.count - 1, 1 + Int(f * Double(scale.count - 1) - 1e-9))
            let bg = scale[max(i, 1)]
            let fg: Color = bg.luminance > 0.45 ? .index(16) : .index(mode == .full ? 255 : 7)
            return Style(fg: mode == .full ? fg : fg.basic, bg: bg)
        }
    }

    /// Changes smaller than this fraction of the scale are not coloured.
    public static let divergingFloor = 0.05

    /// The style of a token whose loss changed by `fraction` (−1…1) of the scale: a warm (orange)
    /// background where it got worse, a cool (blue) one where it got better, none near 0. The ramps
    /// start from the theme's first heat colour (its background end), so they suit dark and light
    /// themes; orange and blue stay apart under the common colour-vision deficiencies. Without
    /// colour, worse shows as heat does (underline, bold) and better as plain text: the intensity
    /// row (`divergingIntensity`) tells them apart.
    public func diverging(_ fraction: Double) -> Style {
        let f = fraction.isFinite ? min(max(fraction, -1), 1) : 0
        guard abs(f) >= Self.divergingFloor else { return mode == .none ? .plain : style(.text) }
        switch mode {
        case .none: return f > 0 ? heat(f) : .plain
        case .basic:
            let hue: Color = .index(f > 0 ? 1 : 4)
            return abs(f) < 0.5 ? style(.text).with(fg: hue, bold: true) : Style(fg: .index(7), bg: hue)
        case .full:
            let (nr, ng, nb) = theme.heat[0].components
            let (er, eg, eb) = f > 0 ? (1.0, 0.45, 0.0) : (0.1, 0.45, 1.0)
            // The faintest coloured step already stands out from the background.
            let t = 0.25 + 0.75 * abs(f)
            let bg = Color.rgb(nr + (er - nr) * t, ng + (eg - ng) * t, nb + (eb - nb) * t)
            return Style(fg: bg.luminance > 0.45 ? .index(16) : .index(255), bg: bg)
        }
    }

    /// A character for a signed change, for NO_COLOR rows: " ▁▂▃▄▅▆▇█" rising where it got worse,
    /// "▔" or "▀" hanging where it got better.
    public static func divergingIntensity(_ fraction: Double) -> Character {
        let f = fraction.isFinite ? min(max(fraction, -1), 1) : 0
        if abs(f) < divergingFloor { return " " }
        return f > 0 ? intensity(f) : (f > -0.5 ? "▔" : "▀")
    }

    /// A character for an activation level, for NO_COLOR intensity rows: " ▁▂▃▄▅▆▇█".
    public static func intensity(_ fraction: Double) -> Character {
        let steps = Array(" ▁▂▃▄▅▆▇█")
        let f = fraction.isFinite ? min(max(fraction, 0), 1) : 0
        return f <= 0 ? " " : steps[max(1, Int((f * 8).rounded()))]
    }
}
