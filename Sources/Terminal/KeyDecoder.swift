/// Turns what a terminal sends — characters, escape sequences, bracketed pastes — into `Key`s.
/// Pure (no terminal), so it is tested on byte strings. `TerminalScreen` feeds it every character
/// ncurses hands back as a character; ncurses itself decodes the keys its terminfo entry names
/// (arrows, pages, F-keys), so this decoder sees mostly Esc, Alt-combinations, bracketed paste,
/// sequences a terminfo entry lacks (Ctrl-←/→) and every mouse report (SGR, and X10's
/// `ESC [ M` plus three bytes — ncurses' own mouse decoding is off, see `TerminalScreen`).
///
/// Feed characters one at a time; when no character arrives within `waitMilliseconds`, call
/// `flush()` to finish what is pending (a lone Esc becomes `.escape`).
public struct KeyDecoder: Sendable {
    private enum State: Sendable {
        case ground
        case escape
        case csi(String)
        /// The rest of a CSI sequence too long to be one Loupe knows, skipped to its final byte.
        case overlongCSI
        case ss3
        case paste
        /// An X10 mouse report's bytes after ESC [ M (button, column, row; each + 32). Past
        /// column or row 95 a byte is ≥ 128, which ncurses' UTF-8 input mangles; only a terminal
        /// that ignores the SGR mode `TerminalScreen` asks for sends this form at all.
        case x10([UInt32])
    }

    private var state = State.ground
    /// The paste so far (kept outside `state` so appending does not copy it).
    private var pasted: [Unicode.Scalar] = []

    public init() {}

    /// Whether a sequence or paste has begun and not ended.
    public var isPending: Bool {
        if case .ground = state { return false }
        return true
    }

    /// Whether a bracketed paste has begun and not ended.
    public var isInPaste: Bool {
        if case .paste = state { return true }
        return false
    }

    /// How long to wait for the next character of a pending sequence before `flush()`; nil when
    /// nothing is pending. After Esc the rest of a sequence is normally already buffered (ncurses
    /// waited ESCDELAY for it), so a short wait tells a lone Esc apart; inside a CSI sequence or a
    /// paste the rest must come, so the wait is long enough for a slow link.
    public var waitMilliseconds: Int? {
        switch state {
        case .ground: return nil
        case .escape: return 5
        case .csi, .overlongCSI, .ss3, .x10: return 100
        case .paste: return 1000
        }
    }

    /// Feeds one character; returns the keys it completes (usually none or one).
    public mutating func feed(_ c: Unicode.Scalar) -> [Key] {
        switch state {
        case .ground:
            if c.value == 0x1B { state = .escape; return [] }
            return Self.key(for: c).map { [$0] } ?? []
        case .escape:
            switch c.value {
            case 0x5B: state = .csi(""); return []   // [
            case 0x4F: state = .ss3; return []       // O
            case 0x1B: return [.escape]              // Esc Esc: the first is a lone Esc
            case 0x20..<0x7F, 0xA0...:
                state = .ground
                return [.alt(Character(c))]
            default:                                 // Alt + a control key: the control key
                state = .ground
                return Self.key(for: c).map { [$0] } ?? []
            }
        case .csi(var params):
            switch c.value {
            case 0x20...0x3F:
                params.unicodeScalars.append(c)
                state = params.unicodeScalars.count > 32 ? .overlongCSI : .csi(params)
                return []
            case 0x40...0x7E:
                state = .ground
                if c == "~" && params == "200" { state = .paste; pasted = []; return [] }
                if c == "M" && params.isEmpty { state = .x10([]); return [] }
                return Self.csiKey(params: params, final: c).map { [$0] } ?? []
            default:                                 // malformed: drop it, decode c afresh
                state = .ground
                return feed(c)
            }
        case .overlongCSI:
            switch c.value {
            case 0x20...0x3F: return []
            case 0x40...0x7E: state = .ground; return []
            default: state = .ground; return feed(c)
            }
        case .ss3:
            state = .ground
            return Self.ss3Key(c).map { [$0] } ?? []
        case .x10(var bytes):
            bytes.append(c.value)
            guard bytes.count == 3 else { state = .x10(bytes); return [] }
            state = .ground
            return Self.x10Mouse(bytes).map { [$0] } ?? []
        case .paste:
            pasted.append(c)
            guard pasted.count >= Self.pasteEnd.count,
                  pasted.suffix(Self.pasteEnd.count).elementsEqual(Self.pasteEnd) else { return [] }
            pasted.removeLast(Self.pasteEnd.count)
            let text = Self.pasteText(pasted)
            state = .ground
            pasted = []
            return [.paste(text)]
        }
    }

    /// No more input came in time: finishes what is pending. A lone Esc is `.escape`; Esc [ and
    /// Esc O are Alt-[ and Alt-O; a cut-off CSI sequence is dropped; a paste that never ended is
    /// delivered as far as it got.
    public mutating func flush() -> [Key] {
        defer { state = .ground; pasted = [] }
        switch state {
        case .ground: return []
        case .escape: return [.escape]
        case .csi(let params): return params.isEmpty ? [.alt("[")] : []
        case .overlongCSI: return []
        case .ss3: return [.alt("O")]
        case .paste: return pasted.isEmpty ? [] : [.paste(Self.pasteText(pasted))]
        case .x10: return []
        }
    }

    /// Decodes a whole input string (feed every character, then flush): for tests.
    public static func decode(_ input: String) -> [Key] {
        var decoder = KeyDecoder()
        var keys: [Key] = []
        for c in input.unicodeScalars { keys += decoder.feed(c) }
        return keys + decoder.flush()
    }

    /// Decodes raw bytes as UTF-8 (invalid bytes become U+FFFD): for tests.
    public static func decode(bytes: [UInt8]) -> [Key] { decode(String(decoding: bytes, as: UTF8.self)) }

    /// The key for one character outside any sequence: printable characters are `.char`, 1…26 are
    /// Ctrl-letters except Tab (9), Enter (10, 13) and Backspace (8); DEL (127) is Backspace.
    /// Other control characters (NUL, 28…31, C1) give nil.
    public static func key(for c: Unicode.Scalar) -> Key? {
        switch c.value {
        case 9: return .tab
        case 10, 13: return .enter
        case 8, 0x7F: return .backspace
        case 0x1B: return .escape
        case 1...26: return .ctrl(Character(Unicode.Scalar(UInt8(0x60 + c.value))))
        case 0..<0x20, 0x80..<0xA0: return nil
        default: return .char(Character(c))
        }
    }

    private static let pasteEnd: [Unicode.Scalar] = Array("\u{1B}[201~".unicodeScalars)

    /// Paste text with line ends as "\n" (terminals send CR for a pasted newline).
    private static func pasteText(_ scalars: [Unicode.Scalar]) -> String {
        var out = String.UnicodeScalarView()
        var afterCR = false
        for c in scalars {
            if c == "\n" && afterCR { afterCR = false; continue }
            afterCR = c == "\r"
            out.append(afterCR ? "\n" : c)
        }
        return String(out)
    }

    /// ESC [ params final. Modifier 5 (Ctrl) turns ←/→ into word moves; other modifiers are ignored.
    static func csiKey(params: String, final: Unicode.Scalar) -> Key? {
        if params.hasPrefix("<") { return sgrMouse(params.dropFirst(), release: final == "m") }
        let numbers = params.split(separator: ";", omittingEmptySubsequences: false).map { Int($0) }
        let first = numbers.first.flatMap { $0 } ?? 1
        let modifier = numbers.count > 1 ? numbers[1] ?? 1 : 1
        switch final {
        case "A": return .up
        case "B": return .down
        case "C": return modifier == 5 ? .ctrlRight : .right
        case "D": return modifier == 5 ? .ctrlLeft : .left
        case "H": return .home
        case "F": return .end
        case "Z": return .backTab
        case "P", "Q", "R", "S": return .function(Int(final.value) - 0x50 + 1)
        case "~":
            switch first {
            case 1, 7: return .home
            case 4, 8: return .end
            case 3: return .delete
            case 5: return .pageUp
            case 6: return .pageDown
            case 11...15: return .function(first - 10)
            case 17...21: return .function(first - 11)
            case 23, 24: return .function(first - 12)
            default: return nil
            }
        default: return nil
        }
    }

    /// ESC O final (application-mode cursor keys, F1–F4, keypad Enter).
    static func ss3Key(_ c: Unicode.Scalar) -> Key? {
        switch c {
        case "A": return .up
        case "B": return .down
        case "C": return .right
        case "D": return .left
        case "H": return .home
        case "F": return .end
        case "M": return .enter
        case "P", "Q", "R", "S": return .function(Int(c.value) - 0x50 + 1)
        default: return nil
        }
    }

    /// An X10 mouse report's three values, each + 32 (coordinates 1-based), read as the same
    /// button code as SGR's; its release (button 3) says nothing.
    static func x10Mouse(_ bytes: [UInt32]) -> Key? {
        guard bytes.count == 3, bytes.allSatisfy({ $0 >= 32 && $0 < 0x100 }), bytes[1] > 32, bytes[2] > 32,
              (bytes[0] - 32) & 3 != 3 || (bytes[0] - 32) & 64 != 0 else { return nil }
        return sgrMouse("\(bytes[0] - 32);\(bytes[1] - 32);\(bytes[2] - 32)", release: false)
    }

    /// An SGR mouse report "b;x;y" (1-based cells). Presses of button 1 and 3 and the wheel count;
    /// releases, motion and the middle button are ignored.
    static func sgrMouse(_ params: Substring, release: Bool) -> Key? {
        let n = params.split(separator: ";").compactMap { Int($0) }
        guard n.count == 3, !release, n[0] & 32 == 0 else { return nil }
        let kind: Mouse.Kind
        if n[0] & 64 != 0 {
            kind = n[0] & 1 == 0 ? .wheelUp : .wheelDown
        } else {
            switch n[0] & 3 {
            case 0: kind = .click
            case 2: kind = .rightClick
            default: return nil
            }
        }
        return .mouse(Mouse(kind, x: n[1] - 1, y: n[2] - 1))
    }
}

/// Makes a second click on the same cell soon after the first a double click, as the clicks come
/// (click resolution that waits to see whether a second follows would delay every click).
public struct DoubleClickDetector: Sendable {
    /// The longest gap, in seconds, between the clicks of a double click.
    public var interval: Double
    private var last: (x: Int, y: Int, time: Double)?

    public init(interval: Double = 0.4) { self.interval = interval }

    /// The event as the app should see it; `time` is in seconds on any monotonic clock.
    public mutating func classify(_ mouse: Mouse, at time: Double) -> Mouse {
        guard mouse.kind == .click else { last = nil; return mouse }
        if let l = last, l.x == mouse.x, l.y == mouse.y, time - l.time <= interval {
            last = nil
            return Mouse(.doubleClick, x: mouse.x, y: mouse.y)
        }
        last = (mouse.x, mouse.y, time)
        return mouse
    }
}
