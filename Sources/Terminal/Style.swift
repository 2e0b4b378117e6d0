/// A colour as the screens ask for it: the terminal's default, or one of the 256 xterm colours
/// (0–7 basic, 8–15 bright, 16–231 the 6×6×6 cube, 232–255 greys). The terminal layer maps it
/// down on 8-colour terminals and drops it under NO_COLOR.
public enum Color: Hashable, Sendable {
    case none
    case index(UInt8)

    /// The nearest cube colour to an RGB triple with components in 0…1.
    public static func rgb(_ r: Double, _ g: Double, _ b: Double) -> Color {
        func level(_ v: Double) -> Int { Int((min(max(v, 0), 1) * 5).rounded()) }
        return .index(UInt8(16 + 36 * level(r) + 6 * level(g) + level(b)))
    }

    /// The nearest of the 8 basic colours (for 8-colour terminals).
    public var basic: Color {
        guard case .index(let i) = self else { return .none }
        let (r, g, b) = components
        if i < 16 { return .index(i % 8) }
        let bit = { (v: Double) in v >= 0.5 ? 1 : 0 }
        return .index(UInt8(bit(r) | bit(g) << 1 | bit(b) << 2))
    }

    /// Approximate RGB components (0…1) of an xterm colour; used to map down and to judge brightness.
    public var components: (Double, Double, Double) {
        guard case .index(let i) = self else { return (0, 0, 0) }
        switch Int(i) {
        case 0..<16:
            let v = i >= 8 ? 1.0 : 0.5
            if i == 7 { return (0.75, 0.75, 0.75) }
            if i == 8 { return (0.5, 0.5, 0.5) }
            return (Double(i & 1) * v, Double((i >> 1) & 1) * v, Double((i >> 2) & 1) * v)
        case 16..<232:
            let c = Int(i) - 16
            let step = { (n: Int) in n == 0 ? 0.0 : (55.0 + 40.0 * Double(n)) / 255.0 }
            return (step(c / 36), step((c / 6) % 6), step(c % 6))
        default:
            let g = (8.0 + 10.0 * Double(Int(i) - 232)) / 255.0
            return (g, g, g)
        }
    }

    /// Relative luminance in 0…1 (to pick readable text over a heat background).
    public var luminance: Double {
        let (r, g, b) = components
        return 0.2126 * r + 0.7152 * g + 0.0722 * b
    }
}

/// How a run of text is drawn.
public struct Style: Hashable, Sendable {
    public var fg: Color
    public var bg: Color
    public var bold: Bool
    public var underline: Bool
    public var reverse: Bool
    public var dim: Bool

    public init(fg: Color = .none, bg: Color = .none, bold: Bool = false, underline: Bool = false,
                reverse: Bool = false, dim: Bool = false) {
        self.fg = fg; self.bg = bg; self.bold = bold; self.underline = underline; self.reverse = reverse; self.dim = dim
    }

    public static let plain = Style()

    public func with(fg: Color? = nil, bg: Color? = nil, bold: Bool? = nil, underline: Bool? = nil,
                     reverse: Bool? = nil, dim: Bool? = nil) -> Style {
        Style(fg: fg ?? self.fg, bg: bg ?? self.bg, bold: bold ?? self.bold, underline: underline ?? self.underline,
              reverse: reverse ?? self.reverse, dim: dim ?? self.dim)
    }

    /// A short stable description for attribute snapshots, e.g. "fg=203 bg=236 bold".
    public var summary: String {
        var parts: [String] = []
        if case .index(let i) = fg { parts.append("fg=\(i)") }
        if case .index(let i) = bg { parts.append("bg=\(i)") }
        if bold { parts.append("bold") }
        if underline { parts.append("underline") }
        if reverse { parts.append("reverse") }
        if dim { parts.append("dim") }
        return parts.isEmpty ? "plain" : parts.joined(separator: " ")
    }
}
