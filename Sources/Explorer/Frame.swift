import Foundation
import Terminal

/// The whole frame: title bar, the current screen, overlays, status line — or a clear message
/// when the terminal is too small.
enum Frame {
    static let minimumWidth = 60
    static let minimumHeight = 15

    static func render(_ state: AppState, palette: Palette) -> Canvas {
        var c = Canvas(width: state.width, height: state.height, style: palette.style(.text))
        guard state.width >= minimumWidth && state.height >= minimumHeight else {
            let lines = ["Loupe needs a terminal of at least \(minimumWidth)×\(minimumHeight);",
                         "this one is \(state.width)×\(state.height). Enlarge it, or press Q to quit."]
            for (i, line) in lines.enumerated() {
                var y = state.height / 2 - 1 + i
                y = min(max(y, 0), state.height - 1)
                let (text, w) = DisplayWidth.prefix(line, columns: state.width)
                c.put(String(text), x: max(0, (state.width - w) / 2), y: y, style: palette.style(.text))
            }
            return c
        }
        TitleBar.render(state, into: &c, palette: palette)
        let body = Rect(x: 0, y: 1, width: state.width, height: state.height - 2)
        switch state.screen {
        case .welcome: WelcomeScreen.render(state, into: &c, in: body, palette: palette)
        case .latents: LatentsScreen.render(state, into: &c, in: body, palette: palette)
        case .latent: LatentScreen.render(state, into: &c, in: body, palette: palette)
        case .lab: ContextLabScreen.render(state, into: &c, in: body, palette: palette)
        case .rewrite: RewriteScreen.render(state, into: &c, in: body, palette: palette)
        }
        if let h = state.history { HistoryOverlay.render(h, state, into: &c, palette: palette) }
        if state.showHelp { HelpOverlay.render(state, into: &c, palette: palette) }
        StatusLine.render(state, into: &c, palette: palette)
        return c
    }
}

/// A rectangle of the canvas.
struct Rect: Equatable {
    var x, y, width, height: Int
    var maxY: Int { y + height }
}

enum TitleBar {
    static func tabs(_ state: AppState) -> [(ScreenKind, String)] {
        var out: [(ScreenKind, String)] = [(.latents, "1 Latents")]
        out.append((.latent, state.latent.map { "2 Latent \($0.latent)" } ?? "2 Latent"))
        out.append((.lab, "3 Lab"))
        out.append((.rewrite, "4 Rewrite"))
        return out
    }

    /// What comes before the tabs: the workspace, shortened when the tabs would not fit after it.
    static func prefix(_ state: AppState) -> String {
        guard let info = state.info else { return " Loupe │ \(state.loading ? "opening…" : "no workspace") │ " }
        let tabsWidth = tabs(state).reduce(-1) { $0 + DisplayWidth.of($1.1) + 3 }
        // The dictionary's kind and hookpoint, in words where there is room: "transcoder · MLP of layer 15 (layers.15.mlp)".
        let hook = info.site.hookpoint(layer: info.layer)
        let candidates = [" Loupe │ \(info.name) · \(info.site.title(layer: info.layer)) · \(info.latents) latents │ ",
                          " Loupe │ \(info.name) · \(info.site.kind) \(hook) · \(info.latents) latents │ ",
                          " Loupe │ \(info.name) · \(hook) · \(info.latents) latents │ ",
                          " Loupe │ \(info.name) · \(info.site.kind) \(hook) │ ", " Loupe │ \(info.name) · \(hook) │ ", " Loupe │ \(info.name) │ "]
        return candidates.first { DisplayWidth.of($0) + tabsWidth <= state.width } ?? " Loupe │ "
    }

    /// Columns of each tab, for mouse clicks.
    static func tabRanges(_ state: AppState) -> [(ScreenKind, Range<Int>)] {
        var x = DisplayWidth.of(prefix(state))
        var out: [(ScreenKind, Range<Int>)] = []
        for (screen, label) in tabs(state) {
            let w = DisplayWidth.of(label) + 2
            out.append((screen, x..<x + w))
            x += w + 1
        }
        return out
    }

    static func render(_ state: AppState, into c: inout Canvas, palette: Palette) {
        let title = palette.style(.title)
        c.fill(x: 0, y: 0, width: c.width, height: 1, style: title)
        var x = c.put(prefix(state), x: 0, y: 0, style: title)
        for (screen, label) in tabs(state) {
            let selected = screen == state.screen
            let style = selected ? palette.style(.selection) : palette.style(.tab)
            x = c.put(" \(label) ", x: x, y: 0, style: style) + 1
        }
        let right = " theme \(state.themeName) · ? help "
        let rw = DisplayWidth.of(right)
        if x + rw <= c.width { c.put(right, x: c.width - rw, y: 0, style: title) }
    }
}

enum StatusLine {
    static func hints(_ state: AppState) -> String {
        if state.history != nil { return "j/k choose · Enter revert · Esc close" }
        switch state.screen {
        case .welcome: return "b build the demo workspace · q quit"
        case .latents: return "Enter open · / search · f filter · s sort · : jump · ? help · q quit"
        case .latent:
            if state.latent?.editor != nil { return "Enter save · Esc cancel · Ctrl-Z undo · Alt-b/f word · Ctrl-A/E home/end" }
            return "e edit · H history · h/l token · j/k window · Tab neighbours · r raw · q back"
        case .lab:
            return state.lab.editing ? "type or paste text · Enter run · Tab/Esc leave the editor"
                : InterveneScreen.hints(state) ?? "h/l token · j/k latent · Enter open · S steer · a ablate · w rank · e edit text · q back"
        case .rewrite:
            return state.rewrite.report == nil ? "r run the experiment · ? help · q back"
                : "j/k setting · [ ] window · h/l token · Tab/Enter culprit · r rerun · q back"
        }
    }

    static func render(_ state: AppState, into c: inout Canvas, palette: Palette) {
        let y = c.height - 1
        let base = palette.style(.status)
        c.fill(x: 0, y: y, width: c.width, height: 1, style: base)
        if let p = state.prompt {
            let x = c.put(p.label, x: 0, y: y, style: base.with(bold: true))
            let (text, cursor) = p.editor.visible(width: max(c.width - x - 1, 2))
            c.put(text, x: x, y: y, style: base)
            if !p.isConfirmation { c.cursor = (x + cursor, y) }
            return
        }
        // Right: the engine's job.
        var right = ""
        if let job = state.job {
            let bar = progressBar(job.fraction, width: 12)
            var s = " \(job.title) \(bar) \(String(format: "%3.0f%%", job.fraction * 100))"
            if let eta = job.eta { s += " ETA " + duration(eta) }
            right = s + " · Esc stops "
        } else if state.loading {
            right = " opening workspace… "
        }
        let rw = min(DisplayWidth.of(right), c.width / 2)
        if rw > 0 { c.put(right, x: c.width - rw, y: y, style: base.with(bold: true), maxWidth: rw) }
        let left: String
        var style = base
        if let m = state.message {
            left = " " + m.text
            if m.isError { style = palette.style(.error).with(bg: base.bg) }
        } else {
            left = " " + hints(state)
            style = base
        }
        c.put(DisplayWidth.fit(left, columns: c.width - rw - 1), x: 0, y: y, style: style)
    }

    static func progressBar(_ fraction: Double, width: Int) -> String {
        let filled = Int((fraction * Double(width)).rounded(.down))
        return String(repeating: "█", count: filled) + String(repeating: "░", count: max(0, width - filled))
    }

    static func duration(_ s: Double) -> String {
        guard s.isFinite && s >= 0 else { return "?" }
        let t = Int(s.rounded())
        return t >= 3600 ? String(format: "%dh%02dm", t / 3600, t / 60 % 60) : String(format: "%d:%02d", t / 60, t % 60)
    }
}

/// Number formatting shared by the screens.
enum Format {
    static func percent(_ x: Double) -> String {
        if x == 0 { return "0%" }
        if x < 0.0001 { return String(format: "%.4f%%", x * 100) }
        return String(format: x < 0.01 ? "%.3f%%" : "%.2f%%", x * 100)
    }

    /// A loss difference in nats, signed, with digits enough for single-latent deltas.
    static func nats(_ x: Double) -> String {
        guard x.isFinite else { return "—" }
        let a = abs(x)
        return String(format: a >= 0.1 ? "%+.3f" : a >= 0.001 || a == 0 ? "%+.4f" : "%+.5f", x)
    }

    /// `text` broken into lines of at most `width` columns at spaces (a word wider than a line is cut).
    static func wrap(_ text: String, width: Int) -> [String] {
        var lines: [String] = [], line = ""
        for word in text.split(separator: " ") {
            let candidate = line.isEmpty ? String(word) : line + " " + word
            if DisplayWidth.of(candidate) <= width { line = candidate; continue }
            if !line.isEmpty { lines.append(line) }
            line = String(DisplayWidth.prefix(String(word), columns: max(width, 1)).text)
        }
        return line.isEmpty ? lines : lines + [line]
    }

    static func value(_ x: Float) -> String { String(format: abs(x) >= 100 ? "%.0f" : abs(x) >= 10 ? "%.1f" : "%.2f", x) }

    /// `text` right-aligned in `width` columns.
    static func pad(_ text: String, _ width: Int) -> String {
        String(repeating: " ", count: max(0, width - DisplayWidth.of(text))) + text
    }

    static func grouped(_ n: Int) -> String {
        let s = String(n)
        var out = ""
        for (i, ch) in s.reversed().enumerated() {
            if i > 0 && i % 3 == 0 { out.append(",") }
            out.append(ch)
        }
        return String(out.reversed())
    }
}
