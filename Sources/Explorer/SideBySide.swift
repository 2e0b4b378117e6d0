import Terminal

/// Two texts in columns side by side, each under its title, wrapped to half of `width`.
public enum SideBySide {
    public static func lines(left: (title: String, text: String), right: (title: String, text: String), width: Int) -> [String] {
        let column = max((width - 3) / 2, 10)
        let a = [clip(left.title, column), String(repeating: "─", count: column)] + wrap(left.text, column)
        let b = [clip(right.title, column), String(repeating: "─", count: column)] + wrap(right.text, column)
        return (0..<max(a.count, b.count)).map { i in
            let l = i < a.count ? a[i] : ""
            return l + String(repeating: " ", count: column - DisplayWidth.of(l)) + " │ " + (i < b.count ? b[i] : "")
        }
    }

    public static func clip(_ s: String, _ width: Int) -> String {
        var out = "", w = 0
        for c in s {
            let cw = DisplayWidth.of(c)
            if w + cw > width { break }
            out.append(c)
            w += cw
        }
        return out
    }

    /// `text` cut into lines of at most `width` columns, at its newlines and else at spaces.
    public static func wrap(_ text: String, _ width: Int) -> [String] {
        var out: [String] = []
        for paragraph in text.split(separator: "\n", omittingEmptySubsequences: false) {
            var line = "", w = 0
            for word in paragraph.split(separator: " ", omittingEmptySubsequences: false).map(String.init) {
                let ww = DisplayWidth.of(word)
                if w > 0 && w + 1 + ww > width { out.append(line); line = ""; w = 0 }
                var piece = w > 0 ? " " + word : word
                while DisplayWidth.of(piece) > width {
                    let head = clip(piece, width)
                    out.append(head)
                    piece = String(piece.dropFirst(head.count))
                }
                line += piece
                w += DisplayWidth.of(piece)
            }
            out.append(line)
        }
        return out
    }
}
