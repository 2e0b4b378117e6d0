import CNcursesw
import Foundation

/// Why the terminal could not be opened, in words for the user.
public struct TerminalError: Error, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// The real terminal, through ncurses: a full-screen session that draws `Canvas` frames and reads
/// `Key`s. One is open at a time; use it from one thread only (ncurses is not thread-safe).
///
/// Input is in raw mode, not cbreak: Ctrl-C, Ctrl-Z, Ctrl-S, Ctrl-Q and Ctrl-\ arrive as keys
/// (`.ctrl("c")` …) instead of signals or flow control, so the app quits cleanly on its own terms.
/// Mouse reporting (click, right click, wheel) and bracketed paste are on; holding Shift selects
/// text the ordinary way. The terminal is restored by `close()`, on deinit, at exit, and on
/// SIGTERM, SIGHUP, SIGINT and crash signals (which then go on to their previous handler).
public final class TerminalScreen {
    /// How many colours to use: none (attributes only), the 8 basic ones, or all 256.
    public enum ColorMode: String, Sendable {
        case none, basic, full

        var rank: Int { self == .none ? 0 : self == .basic ? 1 : 2 }
    }

    /// The colours in use: what was asked for, but never more than the terminal has.
    public private(set) var colorMode: ColorMode

    /// The terminal's size in cells.
    public var size: (width: Int, height: Int) {
        isOpen ? (Int(loupe_cols()), Int(loupe_lines())) : (0, 0)
    }

    private var screen: OpaquePointer?
    private let window: UnsafeMutablePointer<WINDOW>
    private var isOpen = true
    private var decoder = KeyDecoder()
    private var clicks = DoubleClickDetector()
    private var queued: [Key] = []
    /// Key codes ncurses assigned to Ctrl-← and Ctrl-→ from terminfo's kLFT5/kRIT5 (-1: none).
    private let ctrlLeftCode: Int32, ctrlRightCode: Int32
    /// Colour pairs made so far, by (fg, bg) in ncurses numbering (-1 is the default colour).
    private var pairs: [PairColors: Int32] = [:]
    private var nextPair: Int32 = 1
    private let hasDefaultColors: Bool
    /// The frame on screen, to skip unchanged rows; nil forces a full repaint.
    private var shown: Canvas?
    private var shownSize = (width: 0, height: 0)
    private var cursorShown: Bool?
    /// One cell's text as wide characters, NUL-terminated (ncurses keeps at most CCHARW_MAX).
    private let cellText = UnsafeMutablePointer<wchar_t>.allocate(capacity: 6)

    /// Takes over the terminal. `colorMode` nil detects it: none when NO_COLOR is set, else full
    /// with 256 colours, basic with 8. Throws when standard input/output is not a terminal or
    /// TERM names no terminal ncurses knows.
    public init(colorMode: ColorMode? = nil) throws {
        guard !EmergencyRestore.active else { throw TerminalError("the terminal is already open") }
        guard isatty(STDIN_FILENO) != 0, isatty(STDOUT_FILENO) != 0 else {
            throw TerminalError("the explorer needs an interactive terminal: standard input and output must both be a terminal")
        }
        let term = ProcessInfo.processInfo.environment["TERM"] ?? ""
        guard !term.isEmpty else { throw TerminalError("TERM is not set; set it to your terminal's type, e.g. TERM=xterm-256color") }
        setlocale(LC_ALL, "")
        // Token text is UTF-8 whatever the locale says; under a non-UTF-8 locale ncurses would draw
        // every non-ASCII character as "?" or as escapes.
        if String(cString: nl_langinfo(nl_item(CODESET))) != "UTF-8" { setlocale(LC_CTYPE, "C.UTF-8") }
        guard let screen = newterm(nil, loupe_stdout(), loupe_stdin()), let window = loupe_stdscr() else {
            throw TerminalError("the terminal type TERM=\(term) is unknown to ncurses (no terminfo entry); try TERM=xterm-256color")
        }
        self.screen = screen
        self.window = window
        raw()
        noecho()
        nonl()
        keypad(window, true)
        set_escdelay(25)
        curs_set(0)
        cursorShown = false
        leaveok(window, true)

        var colors: Int32 = 0
        var defaults = false
        if has_colors() {
            start_color()
            defaults = use_default_colors() == OK
            colors = loupe_colors()
        }
        hasDefaultColors = defaults
        let supported: ColorMode = colors >= 256 ? .full : colors >= 8 ? .basic : .none
        if let asked = colorMode {
            self.colorMode = asked.rank <= supported.rank ? asked : supported
        } else {
            let noColor = ProcessInfo.processInfo.environment["NO_COLOR"] ?? ""
            self.colorMode = noColor.isEmpty ? supported : .none
        }

        // The mouse is the terminal's (`inputModesOn`) and `KeyDecoder`'s, not ncurses': after a
        // report of an event outside its mask (a release, a middle click), ncurses' mouse code
        // waits for the next byte with a blocking read, and the screen then stops updating until
        // a key comes. Its X10 key (kmous) is taken out so those bytes reach the decoder too.
        mousemask(0, nil)
        keyok(KEY_MOUSE, false)

        func code(_ capability: String, _ fallback: String) -> Int32 {
            var sequences = [fallback]
            if let s = tigetstr(capability), Int(bitPattern: s) != -1 { sequences.insert(String(cString: s), at: 0) }
            return sequences.lazy.map { key_defined($0) }.first { $0 > 0 } ?? -1
        }
        ctrlLeftCode = code("kLFT5", "\u{1B}[1;5D")
        ctrlRightCode = code("kRIT5", "\u{1B}[1;5C")

        Self.writeOut(Self.inputModesOn)
        EmergencyRestore.install()
        EmergencyRestore.active = true
    }

    deinit {
        close()
        cellText.deallocate()
    }

    /// Gives the terminal back (bracketed paste and mouse off, cursor shown, normal screen).
    /// Safe to call more than once.
    public func close() {
        guard isOpen else { return }
        isOpen = false
        EmergencyRestore.active = false
        endwin()
        Self.writeOut(Self.inputModesOff)
        if let screen { delscreen(screen) }
        screen = nil
    }

    /// Rings the terminal bell.
    public func beep() {
        if isOpen { _ = CNcursesw.beep() }
    }

    /// Stops the process as the shell's Ctrl-Z would (raw mode delivers Ctrl-Z as a key), with the
    /// terminal given back meanwhile; returns after `fg`. Draw the next frame in full: the caller
    /// should redraw (the screen is invalidated).
    public func suspend() {
        guard isOpen else { return }
        Self.writeOut(Self.inputModesOff)
        endwin()
        kill(0, SIGTSTP)
        Self.writeOut(Self.inputModesOn)
        invalidate()
        doupdate()
    }

    /// Forgets what is on screen: the next `draw` repaints every cell (after something else wrote
    /// to the terminal, or for Ctrl-L).
    public func invalidate() {
        guard isOpen else { return }
        shown = nil
        redrawwin(window)
    }

    // MARK: Drawing

    /// Puts a frame on screen. Only rows that changed since the last frame are rewritten, and
    /// ncurses sends only the cells that differ. A frame of another size than the terminal (a
    /// resize raced the render) is drawn as far as it fits, the rest of the screen blank.
    public func draw(_ canvas: Canvas) {
        guard isOpen else { return }
        let term = size
        let repaint = shown == nil || shown!.width != canvas.width || shown!.height != canvas.height || shownSize != term
        let width = min(canvas.width, term.width), height = min(canvas.height, term.height)
        if cursorShown != false && canvas.cursor == nil { curs_set(0); cursorShown = false }
        for y in 0..<max(height, 0) {
            let row = y * canvas.width..<(y + 1) * canvas.width
            if !repaint, let old = shown, old.cells[row] == canvas.cells[row] { continue }
            drawRow(canvas, y: y, width: width)
        }
        if repaint {
            if canvas.width < term.width {
                for y in 0..<max(height, 0) { wmove(window, Int32(y), Int32(canvas.width)); wclrtoeol(window) }
            }
            if canvas.height < term.height { wmove(window, Int32(canvas.height), 0); wclrtobot(window) }
        }
        shown = canvas
        shownSize = term
        if let c = canvas.cursor, c.x >= 0, c.y >= 0, c.x < term.width, c.y < term.height {
            leaveok(window, false)
            wmove(window, Int32(c.y), Int32(c.x))
            wnoutrefresh(window)
            doupdate()
            if cursorShown != true { curs_set(1); cursorShown = true }
        } else {
            leaveok(window, true)
            wnoutrefresh(window)
            doupdate()
        }
    }

    private func drawRow(_ canvas: Canvas, y: Int, width: Int) {
        var x = 0
        while x < width {
            let cell = canvas[x, y]
            let wide = x + 1 < canvas.width && canvas[x + 1, y].text.isEmpty && !cell.text.isEmpty
            if wide && x + 1 >= width {            // half a wide character fits: blank it
                put(" ", cell.style, x: x, y: y)
                x += 1
            } else if cell.text.isEmpty {          // an orphaned right half
                put(" ", cell.style, x: x, y: y)
                x += 1
            } else if wide {
                // ncurses and the terminal go by wcwidth; where it calls the character narrow
                // (text-presentation emoji), draw it narrow and blank the right half, so that
                // ncurses, the terminal and the canvas agree on every column.
                if put(cell.text, cell.style, x: x, y: y, wide: true) < 2 { put(" ", cell.style, x: x + 1, y: y) }
                x += 2
            } else {
                put(cell.text, cell.style, x: x, y: y)
                x += 1
            }
        }
    }

    /// Writes one cell's grapheme at (x, y) without moving the cursor; returns the columns it
    /// takes by wcwidth. A base character the locale cannot print becomes "?", one wcwidth calls
    /// wide in a narrow cell U+FFFD; combining marks and variation selectors ride along, except
    /// on a character drawn narrow in a wide cell; zero-width joiners are dropped (terminals do
    /// not agree on joined emoji).
    @discardableResult
    private func put(_ text: String, _ style: Style, x: Int, y: Int, wide: Bool = false) -> Int {
        let scalars = text.unicodeScalars
        guard let first = scalars.first else { return 0 }
        let base = wchar_t(bitPattern: first.value)
        var columns = Int(loupe_wcwidth(base))
        var count = 1
        if columns < 1 {
            cellText[0] = wchar_t(UInt8(ascii: "?")); columns = 1
        } else if columns == 2 && !wide {
            cellText[0] = 0xFFFD; columns = 1
        } else {
            cellText[0] = base
            if columns == 2 || !wide {
                for s in scalars.dropFirst() where count < 5 && s.value != 0x200D {
                    cellText[count] = wchar_t(bitPattern: s.value); count += 1
                }
            }
        }
        cellText[count] = 0
        var cell = cchar_t()
        if loupe_setcchar(&cell, cellText, attributes(style), pair(for: style)) != OK {
            cellText[0] = wchar_t(UInt8(ascii: "?")); cellText[1] = 0; columns = 1
            loupe_setcchar(&cell, cellText, attributes(style), pair(for: style))
        }
        mvwadd_wchnstr(window, Int32(y), Int32(x), &cell, 1)
        return columns
    }

    private func attributes(_ style: Style) -> attr_t {
        var a: attr_t = 0
        if style.bold { a |= loupe_a_bold() }
        if style.underline { a |= loupe_a_underline() }
        if style.reverse { a |= loupe_a_reverse() }
        if style.dim { a |= loupe_a_dim() }
        return a
    }

    private struct PairColors: Hashable { var fg: Int32, bg: Int32 }

    /// The colour pair for a style's colours, made on first use. When the terminal's pairs run
    /// out, the nearest existing pair (by colour distance, background first) stands in.
    private func pair(for style: Style) -> Int32 {
        guard colorMode != .none, style.fg != .none || style.bg != .none else { return 0 }
        let key = PairColors(fg: number(style.fg, isBackground: false), bg: number(style.bg, isBackground: true))
        if let p = pairs[key] { return p }
        var made: Int32 = 0
        if nextPair < loupe_color_pairs(), loupe_init_pair(nextPair, key.fg, key.bg) == OK {
            made = nextPair
            nextPair += 1
        } else {
            func distance(_ a: Int32, _ b: Int32) -> Double {
                if a == b { return 0 }
                if a < 0 || b < 0 { return 3 }
                let (p, q) = (Color.index(UInt8(a)).components, Color.index(UInt8(b)).components)
                return (p.0 - q.0) * (p.0 - q.0) + (p.1 - q.1) * (p.1 - q.1) + (p.2 - q.2) * (p.2 - q.2)
            }
            let defaultPair = PairColors(fg: hasDefaultColors ? -1 : 7, bg: hasDefaultColors ? -1 : 0)
            var best = (pair: Int32(0), cost: 2 * distance(key.bg, defaultPair.bg) + distance(key.fg, defaultPair.fg))
            for (colors, p) in pairs where p > 0 {
                let cost = 2 * distance(key.bg, colors.bg) + distance(key.fg, colors.fg)
                if cost < best.cost { best = (p, cost) }
            }
            made = best.pair
        }
        pairs[key] = made
        return made
    }

    /// ncurses' number for a colour: -1 for the default (or white on black without default colours).
    private func number(_ color: Color, isBackground: Bool) -> Int32 {
        let mapped = colorMode == .basic ? color.basic : color
        guard case .index(let i) = mapped, Int32(i) < loupe_colors() else {
            return hasDefaultColors ? -1 : isBackground ? 0 : 7
        }
        return Int32(i)
    }

    // MARK: Input

    /// The next key, waiting up to `milliseconds` (-1 waits for ever, 0 only looks); nil when none
    /// came. An escape sequence or paste already begun is waited for a little longer (up to a
    /// second for a paste). Mouse events ncurses reports but Loupe does not use are skipped.
    public func readKey(timeout milliseconds: Int) -> Key? {
        if !queued.isEmpty { return queued.removeFirst() }
        guard isOpen else { return nil }
        while true {
            let wait = decoder.waitMilliseconds ?? milliseconds
            wtimeout(window, Int32(clamping: max(wait, -1)))
            var ch: wint_t = 0
            let result = wget_wch(window, &ch)
            if result == ERR {
                guard decoder.isPending else { return nil }
                enqueue(decoder.flush())
            } else if result == KEY_CODE_YES {
                let code = Int32(bitPattern: ch)
                if decoder.isInPaste {
                    // Inside a paste keys are text (Enter a newline; others dropped), but a resize
                    // is the terminal's, not the paste's: passed on, the paste goes on.
                    if code == KEY_ENTER { enqueue(decoder.feed("\r")) }
                    if code == KEY_RESIZE, let key = functionKey(code) { enqueue([key]) }
                    if !queued.isEmpty { return queued.removeFirst() }
                    continue
                }
                if decoder.isPending { enqueue(decoder.flush()) }
                if let key = functionKey(code) { enqueue([key]) }
            } else if let scalar = Unicode.Scalar(UInt32(ch)) {
                enqueue(decoder.feed(scalar))
            }
            if !queued.isEmpty { return queued.removeFirst() }
        }
    }

    /// Queues decoded keys, telling double clicks from clicks as they arrive.
    private func enqueue(_ keys: [Key]) {
        for key in keys {
            if case .mouse(let m) = key {
                queued.append(.mouse(clicks.classify(m, at: ProcessInfo.processInfo.systemUptime)))
            } else {
                queued.append(key)
            }
        }
    }

    private func functionKey(_ code: Int32) -> Key? {
        switch code {
        case KEY_UP: return .up
        case KEY_DOWN: return .down
        case KEY_LEFT: return .left
        case KEY_RIGHT: return .right
        case KEY_PPAGE: return .pageUp
        case KEY_NPAGE: return .pageDown
        case KEY_HOME, KEY_A1: return .home
        case KEY_END, KEY_C1: return .end
        case KEY_DC: return .delete
        case KEY_BTAB: return .backTab
        case KEY_ENTER: return .enter
        case KEY_BACKSPACE: return .backspace
        case KEY_F0 + 1...KEY_F0 + 24: return .function(Int(code - KEY_F0))
        case KEY_RESIZE:
            shown = nil
            return .resize
        case ctrlLeftCode where code > 0: return .ctrlLeft
        case ctrlRightCode where code > 0: return .ctrlRight
        default: return nil
        }
    }

    // MARK: Raw output

    /// Bracketed paste, and mouse reports of button presses and releases (1000) in SGR's form
    /// (1006, any column); and their undoing.
    static let inputModesOn: StaticString = "\u{1B}[?2004h\u{1B}[?1000h\u{1B}[?1006h"
    static let inputModesOff: StaticString = "\u{1B}[?1006l\u{1B}[?1000l\u{1B}[?2004l"

    static func writeOut(_ s: StaticString) {
        _ = write(STDOUT_FILENO, s.utf8Start, s.utf8CodeUnitCount)
    }
}

/// Gives the terminal back if the process ends without `close()`: at exit, and on terminating
/// or crash signals — after which the signal goes to its previous handler (the default action,
/// ncurses' own, or Swift's crash backtracer), re-raised so it still happens.
private enum EmergencyRestore {
    nonisolated(unsafe) static var active = false
    nonisolated(unsafe) static var installed = false
    /// The handlers that were in place, by signal number.
    nonisolated(unsafe) static let previous = UnsafeMutablePointer<sigaction>.allocate(capacity: 65)
    static let signals: [Int32] = [SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGABRT, SIGILL, SIGTRAP, SIGBUS, SIGFPE, SIGSEGV]

    static func install() {
        guard !installed else { return }
        installed = true
        atexit { EmergencyRestore.restore() }
        for sig in signals {
            var action = sigaction()
            action.__sigaction_handler.sa_handler = { sig in EmergencyRestore.handle(sig) }
            sigemptyset(&action.sa_mask)
            action.sa_flags = 0
            sigaction(sig, &action, previous + Int(sig))
            // A signal the process was told to ignore (nohup) stays ignored.
            if unsafeBitCast(previous[Int(sig)].__sigaction_handler.sa_handler, to: Int.self) == 1 {
                sigaction(sig, previous + Int(sig), nil)
            }
        }
    }

    static func restore() {
        guard active else { return }
        active = false
        endwin()
        TerminalScreen.writeOut(TerminalScreen.inputModesOff)
    }

    static func handle(_ sig: Int32) {
        sigaction(sig, previous + Int(sig), nil)
        restore()
        raise(sig)
    }
}
