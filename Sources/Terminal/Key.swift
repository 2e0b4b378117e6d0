/// A key press, mouse event or terminal change, as the terminal layer decodes it.
public enum Key: Hashable, Sendable {
    case char(Character)
    /// Ctrl with a letter, e.g. `.ctrl("s")`.
    case ctrl(Character)
    /// Alt (Meta) with a character, e.g. `.alt("b")`.
    case alt(Character)
    case up, down, left, right
    case ctrlLeft, ctrlRight
    case pageUp, pageDown, home, end
    case enter, escape, backspace, delete, tab, backTab
    case function(Int)
    /// A bracketed paste's whole text.
    case paste(String)
    case mouse(Mouse)
    /// The terminal changed size; read the new size from the terminal.
    case resize

    /// How the help overlay names the key.
    public var label: String {
        switch self {
        case .char(" "): return "Space"
        case .char(let c): return String(c)
        case .ctrl(let c): return "Ctrl-" + c.uppercased()
        case .alt(let c): return "Alt-" + String(c)
        case .up: return "↑"
        case .down: return "↓"
        case .left: return "←"
        case .right: return "→"
        case .ctrlLeft: return "Ctrl-←"
        case .ctrlRight: return "Ctrl-→"
        case .pageUp: return "PgUp"
        case .pageDown: return "PgDn"
        case .home: return "Home"
        case .end: return "End"
        case .enter: return "Enter"
        case .escape: return "Esc"
        case .backspace: return "Backspace"
        case .delete: return "Del"
        case .tab: return "Tab"
        case .backTab: return "Shift-Tab"
        case .function(let n): return "F\(n)"
        case .paste: return "paste"
        case .mouse: return "mouse"
        case .resize: return "resize"
        }
    }
}

/// A mouse event at a cell.
public struct Mouse: Hashable, Sendable {
    public enum Kind: Hashable, Sendable { case click, doubleClick, rightClick, wheelUp, wheelDown }
    public var kind: Kind
    public var x: Int
    public var y: Int

    public init(_ kind: Kind, x: Int, y: Int) { self.kind = kind; self.x = x; self.y = y }
}
