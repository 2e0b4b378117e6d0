import Terminal

/// A one-line text editor: cursor movement, word jumps, home/end, delete, paste, undo/redo.
/// Enter and Esc are left to the caller (save / cancel). Newlines (from a paste) are kept when
/// `keepsNewlines`, shown as "↵", otherwise turned into spaces.
public struct LineEditor: Equatable, Sendable {
    public private(set) var characters: [Character]
    public private(set) var cursor: Int
    public var keepsNewlines: Bool
    private var undoStack: [Snapshot] = []
    private var redoStack: [Snapshot] = []
    /// Consecutive typing joins one undo step until a space, a jump or another kind of edit.
    private var typing = false

    private struct Snapshot: Equatable, Sendable { var characters: [Character]; var cursor: Int }

    public init(_ text: String = "", keepsNewlines: Bool = false) {
        characters = Array(text)
        cursor = characters.count
        self.keepsNewlines = keepsNewlines
    }

    public var text: String { String(characters) }
    public var isEmpty: Bool { characters.isEmpty }

    /// Applies a key; false when the key is not an editing key (the caller handles it).
    @discardableResult
    public mutating func handle(_ key: Key) -> Bool {
        switch key {
        case .char(let c): insert(String(c), typed: true)
        case .paste(let s): insert(s, typed: false)
        case .tab: insert(" ", typed: true)
        case .left, .ctrl("b"): move(to: cursor - 1)
        case .right, .ctrl("f"): move(to: cursor + 1)
        case .home, .ctrl("a"): move(to: 0)
        case .end, .ctrl("e"): move(to: characters.count)
        case .ctrlLeft, .alt("b"): move(to: wordStart(before: cursor))
        case .ctrlRight, .alt("f"): move(to: wordEnd(after: cursor))
        case .backspace, .ctrl("h"): delete(cursor - 1..<cursor)
        case .delete, .ctrl("d"): delete(cursor..<cursor + 1)
        case .ctrl("w"), .alt("\u{7f}"): delete(wordStart(before: cursor)..<cursor)
        case .alt("d"): delete(cursor..<wordEnd(after: cursor))
        case .ctrl("u"): delete(0..<cursor)
        case .ctrl("k"): delete(cursor..<characters.count)
        case .ctrl("z"), .ctrl("_"): undo()
        case .ctrl("y"), .alt("z"): redo()
        default: return false
        }
        return true
    }

    public mutating func setText(_ text: String) {
        checkpoint()
        characters = Array(text)
        cursor = characters.count
    }

    mutating func insert(_ s: String, typed: Bool) {
        var chars = Array(s.replacingOccurrences(of: "\r\n", with: "\n").replacingOccurrences(of: "\r", with: "\n"))
        if !keepsNewlines { chars = chars.map { $0 == "\n" || $0 == "\t" ? " " : $0 } }
        chars = chars.filter { $0 == "\n" || !($0.asciiValue.map { $0 < 0x20 || $0 == 0x7f } ?? false) }
        guard !chars.isEmpty else { return }
        if !(typed && typing) || chars == [" "] { checkpoint() }
        characters.insert(contentsOf: chars, at: cursor)
        cursor += chars.count
        typing = typed && chars != [" "]
    }

    mutating func delete(_ range: Range<Int>) {
        let r = max(0, range.lowerBound)..<min(characters.count, range.upperBound)
        guard !r.isEmpty else { return }
        checkpoint()
        characters.removeSubrange(r)
        cursor = r.lowerBound
    }

    mutating func move(to position: Int) {
        cursor = min(max(position, 0), characters.count)
        typing = false
    }

    mutating func checkpoint() {
        undoStack.append(Snapshot(characters: characters, cursor: cursor))
        if undoStack.count > 200 { undoStack.removeFirst() }
        redoStack.removeAll()
        typing = false
    }

    public mutating func undo() {
        guard let s = undoStack.popLast() else { return }
        redoStack.append(Snapshot(characters: characters, cursor: cursor))
        characters = s.characters
        cursor = s.cursor
        typing = false
    }

    public mutating func redo() {
        guard let s = redoStack.popLast() else { return }
        undoStack.append(Snapshot(characters: characters, cursor: cursor))
        characters = s.characters
        cursor = s.cursor
        typing = false
    }

    static func isWord(_ c: Character) -> Bool { c.isLetter || c.isNumber || c == "_" }

    func wordStart(before i: Int) -> Int {
        var j = i
        while j > 0 && !Self.isWord(characters[j - 1]) { j -= 1 }
        while j > 0 && Self.isWord(characters[j - 1]) { j -= 1 }
        return j
    }

    func wordEnd(after i: Int) -> Int {
        var j = i
        while j < characters.count && !Self.isWord(characters[j]) { j += 1 }
        while j < characters.count && Self.isWord(characters[j]) { j += 1 }
        return j
    }

    /// The part of the text to show in `width` columns, scrolled so the cursor is visible, and
    /// the cursor's column in it.
    public func visible(width: Int) -> (text: String, cursorColumn: Int) {
        guard width > 1 else { return ("", 0) }
        let shown = characters.map { $0 == "\n" ? "↵" : $0 }
        let widths = shown.map(DisplayWidth.of)
        // Start as late as needed so the cursor (plus one column for it) fits.
        var start = 0
        var used = widths[..<cursor].reduce(0, +) + 1
        while used > width && start < cursor { used -= widths[start]; start += 1 }
        var text = "", col = 0, cursorColumn = 0
        for i in start..<shown.count {
            if i == cursor { cursorColumn = col }
            if col + widths[i] > width { break }
            text.append(shown[i])
            col += widths[i]
        }
        if cursor == shown.count { cursorColumn = col }
        return (text, cursorColumn)
    }
}
