/// One terminal cell: a grapheme (empty for the right half of a wide character) and its style.
public struct Cell: Equatable, Sendable {
    public var text: String
    public var style: Style

    public init(_ text: String = " ", style: Style = .plain) { self.text = text; self.style = style }
}

/// A frame: what the screen should show, cell by cell. Screens draw into a Canvas (pure, no
/// terminal), the terminal layer puts it on screen, and tests compare it as text.
public struct Canvas: Equatable, Sendable {
    public let width: Int
    public let height: Int
    public private(set) var cells: [Cell]
    /// Where the terminal cursor should sit (a line editor), or nil to hide it.
    public var cursor: (x: Int, y: Int)? {
        get { cursorX < 0 ? nil : (cursorX, cursorY) }
        set { cursorX = newValue?.x ?? -1; cursorY = newValue?.y ?? -1 }
    }
    private var cursorX = -1, cursorY = -1

    public init(width: Int, height: Int, style: Style = .plain) {
        self.width = max(width, 0)
        self.height = max(height, 0)
        cells = Array(repeating: Cell(" ", style: style), count: self.width * self.height)
    }

    public subscript(x: Int, y: Int) -> Cell {
        get { cells[y * width + x] }
        set { cells[y * width + x] = newValue }
    }

    /// Writes `text` from column `x` of row `y`, clipped to the canvas and to `maxWidth` columns;
    /// returns the column after the last one written. Control characters (ESC, C0, DEL, C1) are
    /// drawn as text (`VisibleText`: `\x1B`), so nothing drawn can reach the terminal as a command.
    @discardableResult
    public mutating func put(_ text: String, x: Int, y: Int, style: Style = .plain, maxWidth: Int? = nil) -> Int {
        guard y >= 0 && y < height else { return x }
        let limit = min(width, maxWidth.map { x + max($0, 0) } ?? width)
        var col = x
        for ch in VisibleText.escape(text) {
            let w = DisplayWidth.of(ch)
            if w == 0 { continue }
            if col + w > limit { break }
            if col >= 0 {
                // Overwriting half of a wide character blanks its other half.
                if self[col, y].text.isEmpty && col > 0 { self[col - 1, y] = Cell(" ", style: self[col - 1, y].style) }
                self[col, y] = Cell(String(ch), style: style)
                if w == 2 { self[col + 1, y] = Cell("", style: style) }
                if col + w < width && self[col + w, y].text.isEmpty { self[col + w, y] = Cell(" ", style: self[col + w, y].style) }
            }
            col += w
        }
        return col
    }

    /// Paints `style` over a rectangle, keeping the text (or blanking it when `clear`).
    public mutating func fill(x: Int, y: Int, width w: Int, height h: Int, style: Style, clear: Bool = true) {
        for row in max(y, 0)..<min(y + h, height) where w > 0 {
            for col in max(x, 0)..<min(x + w, width) {
                self[col, row] = clear ? Cell(" ", style: style) : Cell(self[col, row].text, style: style)
            }
        }
    }

    /// Changes the style of existing cells (e.g. to highlight a selected row).
    public mutating func restyle(x: Int, y: Int, width w: Int, _ change: (Style) -> Style) {
        guard y >= 0 && y < height else { return }
        for col in max(x, 0)..<min(x + w, width) { self[col, y].style = change(self[col, y].style) }
    }

    /// The rows as plain text, trailing spaces removed: what a snapshot compares.
    public var text: String {
        (0..<height).map { row in
            var line = ""
            for col in 0..<width { line += self[col, row].text }
            while line.hasSuffix(" ") { line.removeLast() }
            return line
        }.joined(separator: "\n")
    }

    /// The rows with their styles: each text row is followed by a row of style letters, one per
    /// column ("." for plain), and a legend lists what each letter means. For attribute snapshots.
    public var styledText: String {
        var letters: [Style: Character] = [.plain: "."]
        var legend: [String] = []
        let alphabet = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
        var out: [String] = []
        for row in 0..<height {
            var line = "", marks = ""
            for col in 0..<width {
                let cell = self[col, row]
                line += cell.text
                let letter: Character
                if let l = letters[cell.style] { letter = l } else {
                    letter = letters.count - 1 < alphabet.count ? alphabet[letters.count - 1] : "?"
                    letters[cell.style] = letter
                    legend.append("\(letter) = \(cell.style.summary)")
                }
                marks.append(letter)
            }
            out.append(line)
            out.append(marks)
        }
        return (out + ["-- styles --"] + legend).joined(separator: "\n")
    }
}
