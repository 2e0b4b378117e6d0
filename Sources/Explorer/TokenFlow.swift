import Terminal

/// How token text is shown, and how a run of tokens wraps into lines.
enum TokenText {
    /// A token's text for the screen. Normal: newlines as "↵", tabs as "⇥", other control
    /// characters as "�". Raw: also spaces as "·"; special tokens keep their name either way.
    static func shown(_ text: String, raw: Bool) -> String {
        // Fast path: nothing to replace.
        if !text.isEmpty && text.utf8.allSatisfy({ $0 >= 0x20 && $0 != 0x7f && !(raw && $0 == 0x20) }) { return text }
        var out = ""
        for ch in text {
            switch ch {
            case "\n", "\r\n": out += "↵"
            case "\t": out += "⇥"
            case " " where raw: out += "·"
            default:
                if let a = ch.asciiValue, a < 0x20 || a == 0x7f { out += "�" } else { out.append(ch) }
            }
        }
        return out.isEmpty ? (raw ? "∅" : "") : out
    }
}

/// Tokens laid out as wrapped lines of text, remembering where each token went.
struct TokenFlow: Equatable {
    struct Piece: Equatable {
        var token: Int
        var x: Int
        var text: String
    }

    /// Each line's pieces, x relative to the flow's left edge.
    var lines: [[Piece]]

    /// Lays out `texts` in `width` columns. In raw mode a separator column sits between tokens
    /// so their boundaries show; a token wider than a line is cut. A newline token ends its line
    /// unless `breakOnNewline` is false.
    init(texts: [String], width: Int, raw: Bool, breakOnNewline: Bool = true) {
        var lines: [[Piece]] = [[]]
        var x = 0
        let width = max(width, 4)
        for (i, t) in texts.enumerated() {
            var s = TokenText.shown(t, raw: raw)
            var w = DisplayWidth.of(s)
            if w > width { s = String(DisplayWidth.prefix(s, columns: width - 1).text) + "…"; w = DisplayWidth.of(s) }
            let gap = raw && x > 0 ? 1 : 0
            if x + gap + w > width && x > 0 {
                lines.append([])
                x = 0
            }
            let start = x + (raw && x > 0 ? 1 : 0)
            lines[lines.count - 1].append(Piece(token: i, x: start, text: s))
            x = start + w
            if breakOnNewline && !raw && t.hasSuffix("\n") && i < texts.count - 1 {
                lines.append([])
                x = 0
            }
        }
        self.lines = lines
    }

    /// The line and piece of token `i`.
    func position(of token: Int) -> (line: Int, piece: Piece)? {
        for (l, pieces) in lines.enumerated() {
            if let p = pieces.first(where: { $0.token == token }) { return (l, p) }
        }
        return nil
    }

    /// The token drawn at column `x` of line `line`.
    func token(atLine line: Int, x: Int) -> Int? {
        guard lines.indices.contains(line) else { return nil }
        return lines[line].first { x >= $0.x && x < $0.x + max(DisplayWidth.of($0.text), 1) }?.token
    }

    /// Draws line `line` at (x, y): each token in its heat style; the cursor token reversed, the
    /// marked (max) token in the marker style. Without colour, `intensityRow` gets the levels.
    func draw(line: Int, into c: inout Canvas, x: Int, y: Int, width: Int, palette: Palette,
              heat: (Int) -> Double, marked: Int?, cursor: Int?, special: (Int) -> Bool, raw: Bool) {
        draw(line: line, into: &c, x: x, y: y, width: width, palette: palette, styleOf: { palette.heat(heat($0)) },
             marked: marked, cursor: cursor, special: special, raw: raw)
    }

    /// The same with any style per token (e.g. a diverging scale).
    func draw(line: Int, into c: inout Canvas, x: Int, y: Int, width: Int, palette: Palette,
              styleOf: (Int) -> Style, marked: Int?, cursor: Int?, special: (Int) -> Bool, raw: Bool) {
        guard lines.indices.contains(line) else { return }
        for p in lines[line] {
            var style = styleOf(p.token)
            if special(p.token) { style = style.with(fg: palette.style(.special).fg, bold: true) }
            if p.token == marked {
                let m = palette.style(.marker)
                style = style.with(bold: m.bold || style.bold, underline: m.underline || style.underline, reverse: m.reverse ? true : nil)
            }
            if p.token == cursor { style = style.with(reverse: !style.reverse) }
            if raw && p.x > 0 { c.put("▏", x: x + p.x - 1, y: y, style: palette.style(.border), maxWidth: 1) }
            c.put(p.text, x: x + p.x, y: y, style: style, maxWidth: max(0, width - p.x))
        }
    }

    /// Without colour: a row of intensity characters under line `line`.
    func drawIntensity(line: Int, into c: inout Canvas, x: Int, y: Int, width: Int, style: Style, heat: (Int) -> Double) {
        drawIntensity(line: line, into: &c, x: x, y: y, width: width, styleOf: { _ in style }, heat: heat)
    }

    /// The same with a style per token (e.g. simulated values, wrong ones marked).
    func drawIntensity(line: Int, into c: inout Canvas, x: Int, y: Int, width: Int, styleOf: (Int) -> Style,
                       heat: (Int) -> Double, blank: Character = " ") {
        drawGlyphs(line: line, into: &c, x: x, y: y, width: width, styleOf: styleOf) { t in
            let level = Palette.intensity(heat(t))
            return level == " " ? blank : level
        }
    }

    /// A row under line `line` with one character per token, repeated across the token's width.
    func drawGlyphs(line: Int, into c: inout Canvas, x: Int, y: Int, width: Int, styleOf: (Int) -> Style, glyph: (Int) -> Character) {
        guard lines.indices.contains(line) else { return }
        for p in lines[line] {
            let w = max(DisplayWidth.of(p.text), 1)
            c.put(String(repeating: String(glyph(p.token)), count: w), x: x + p.x, y: y, style: styleOf(p.token), maxWidth: max(0, width - p.x))
        }
    }
}
