import EngineAPI
import Storage
import Foundation
import Terminal

/// Draws a bordered box and returns its inner rectangle.
func drawBox(_ c: inout Canvas, width: Int, height: Int, title: String, palette: Palette) -> Rect {
    let w = min(width, c.width - 2), h = min(height, c.height - 2)
    let x = (c.width - w) / 2, y = max(1, (c.height - h) / 2)
    let border = palette.style(.border), fillStyle = palette.style(.text)
    c.fill(x: x, y: y, width: w, height: h, style: fillStyle)
    c.put("┌" + String(repeating: "─", count: w - 2) + "┐", x: x, y: y, style: border)
    for row in y + 1..<y + h - 1 {
        c.put("│", x: x, y: row, style: border)
        c.put("│", x: x + w - 1, y: row, style: border)
    }
    c.put("└" + String(repeating: "─", count: w - 2) + "┘", x: x, y: y + h - 1, style: border)
    c.put(" \(title) ", x: x + 2, y: y, style: palette.style(.accent), maxWidth: w - 4)
    return Rect(x: x + 2, y: y + 1, width: w - 4, height: h - 2)
}

/// `?`: every key binding, generated from the binding table: this screen's first, then the ones
/// that work everywhere, then the other screens'.
enum HelpOverlay {
    static func lines(_ state: AppState) -> [(String, String, Bool)] {
        let current = state.context
        let others = [.global] + BindingContext.allCases.filter { ![current, .global, .welcome, .history].contains($0) }
        var out: [(String, String, Bool)] = []
        for context in [current] + others {
            let bindings = KeyBindings.all.filter { $0.context == context }
            guard !bindings.isEmpty else { continue }
            if !out.isEmpty { out.append(("", "", false)) }
            out.append((context.rawValue + (context == current && context != .global ? " (this screen)" : ""), "", true))
            for b in bindings { out.append((b.keys.map(\.label).joined(separator: " "), b.help, false)) }
        }
        out.append(("", "", false))
        out.append(("Editing", "", true))
        out.append(("← → Home End", "move; Ctrl-←/→ or Alt-b/f by word", false))
        out.append(("Backspace Del", "delete; Ctrl-W word, Ctrl-U to start, Ctrl-K to end", false))
        out.append(("Ctrl-Z Ctrl-Y", "undo, redo", false))
        out.append(("Mouse", "wheel scrolls; click selects; double-click opens; right-click goes back", false))
        return out
    }

    static func render(_ state: AppState, into c: inout Canvas, palette: Palette) {
        let inner = drawBox(&c, width: 76, height: c.height - 2, title: "Keys — any other key closes, j/k scroll", palette: palette)
        let all = lines(state)
        let scroll = min(state.helpScroll, max(0, all.count - inner.height))
        for (row, (keys, help, heading)) in all.dropFirst(scroll).prefix(inner.height).enumerated() {
            let y = inner.y + row
            if heading {
                c.put(keys, x: inner.x, y: y, style: palette.style(.accent), maxWidth: inner.width)
            } else {
                c.put(keys, x: inner.x + 1, y: y, style: palette.style(.text).with(bold: true), maxWidth: 18)
                c.put(help, x: inner.x + 20, y: y, style: palette.style(.text), maxWidth: inner.width - 20)
            }
        }
    }
}

/// `H`: every saved version of a latent's explanation, newest first; Enter reverts.
enum HistoryOverlay {
    static func render(_ h: HistoryState, _ state: AppState, into c: inout Canvas, palette: Palette) {
        let inner = drawBox(&c, width: c.width - 6, height: min(c.height - 2, h.versions.count + 4),
                            title: "Latent \(h.latent): \(h.versions.count) saved version\(h.versions.count == 1 ? "" : "s") — Enter reverts, Esc closes",
                            palette: palette)
        let current = state.explanations[h.latent]?.id
        let first = max(0, h.selected - inner.height + 1)
        for (row, i) in (first..<min(h.versions.count, first + inner.height)).enumerated() {
            let v = h.versions[i]
            let selected = i == h.selected
            let style = selected ? palette.style(.selection) : palette.style(.text)
            if selected { c.fill(x: inner.x, y: inner.y + row, width: inner.width, height: 1, style: style) }
            let source = v.source.rawValue + String(repeating: " ", count: max(0, 8 - v.source.rawValue.count))
            let head = "v\(v.id)".padding(toLength: 6, withPad: " ", startingAt: 0) + LatentScreen.timeStamp(v.time) + " " + source + (v.id == current ? "● " : "  ")
            let x = c.put(head, x: inner.x, y: inner.y + row, style: style.with(dim: !selected))
            c.put(v.text, x: x, y: inner.y + row, style: style, maxWidth: inner.x + inner.width - x)
        }
    }
}
