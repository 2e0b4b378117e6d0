import EngineAPI
import Storage
import Foundation
import Terminal

/// Type or paste any text; the engine runs the model and transcoder on it. Left: the text as a
/// heatmap of the chosen latent. Right: the latents active on the token under the cursor.
enum ContextLabScreen {
    static func sideWidth(_ width: Int) -> Int { min(48, max(26, width / 3)) }

    static func render(_ state: AppState, into c: inout Canvas, in r: Rect, palette: Palette) {
        let lab = state.lab
        let text = palette.style(.text), dim = palette.style(.dim), accent = palette.style(.accent)
        let x = c.put(" text ", x: 0, y: r.y, style: accent)
        let room = r.width - x - 1
        let boxStyle = lab.editing ? palette.style(.selection) : palette.style(.header)
        c.fill(x: x, y: r.y, width: room, height: 1, style: boxStyle)
        let (shown, cursor) = lab.editor.visible(width: room)
        if lab.editor.isEmpty && !lab.editing {
            c.put("(empty — e to type, or paste)", x: x, y: r.y, style: boxStyle.with(dim: true))
        } else {
            c.put(shown, x: x, y: r.y, style: boxStyle)
        }
        if lab.editing { c.cursor = (x + cursor, r.y) }

        let status: String
        if lab.requested > lab.shown { status = "analysing…" }
        else if lab.analysis != nil, let mode = InterveneScreen.status(state) { status = mode }
        else if let a = lab.analysis {
            status = a.tokens.isEmpty ? "no tokens" : "\(a.tokens.count) tokens" + (lab.latent.map { " · heat of latent \($0)" } ?? "")
                + (lab.simulated != nil && lab.simulatedLatent == lab.latent ? " · bars: simulated from its explanation (bold red = wrong about firing)" : " · s simulates it")
        }
        else { status = lab.editing ? "type or paste text, then Enter (or pause) to run the model and \(state.info?.site.kind ?? "transcoder") on it" : "e to type a text" }
        c.put(" " + status, x: 0, y: r.y + 1, style: dim, maxWidth: r.width)
        c.put(String(repeating: "─", count: r.width), x: 0, y: r.y + 2, style: palette.style(.border))
        guard let a = lab.analysis, !a.tokens.isEmpty else { return }
        if lab.intervention.mode != .activations {
            InterveneScreen.render(state, a, into: &c, in: Rect(x: r.x, y: r.y + 3, width: r.width, height: r.maxY - r.y - 3), palette: palette)
            return
        }

        let side = sideWidth(r.width)
        let flowWidth = r.width - side - 3
        let texts = a.tokens.map { state.vocabulary?.text($0) ?? "#\($0)" }
        let flow = TokenFlow(texts: texts, width: flowWidth, raw: state.raw)
        let values = lab.latent.map { a.activations(of: $0) } ?? Array(repeating: 0, count: a.tokens.count)
        // The first position is special to the model (hundreds of latents fire there on any text):
        // it is drawn without heat and left out of the scale and the mark; the side pane says so.
        let scale = Double(max(lab.latent.flatMap { state.summary($0)?.max } ?? 0, values.dropFirst().max() ?? 0, 1e-9))
        let heat = { (t: Int) -> Double in t == 0 ? 0 : Double(values[t]) / scale }
        let top = r.y + 3, height = r.maxY - top
        let simulated = lab.simulatedLatent == lab.latent ? lab.simulated.flatMap { $0.count == values.count ? $0 : nil } : nil
        let rowsPerLine = 1 + (state.noColor ? 1 : 0) + (simulated == nil ? 0 : 1)
        let cursorLine = flow.position(of: lab.token)?.line ?? 0
        let visibleLines = max(1, height / rowsPerLine)
        let firstLine = max(0, cursorLine - visibleLines + 1)
        for (row, line) in (firstLine..<min(flow.lines.count, firstLine + visibleLines)).enumerated() {
            let y = top + row * rowsPerLine
            flow.draw(line: line, into: &c, x: 1, y: y, width: flowWidth, palette: palette,
                      heat: heat, marked: values.indices.dropFirst().max { values[$0] < values[$1] }.flatMap { values[$0] > 0 ? $0 : nil },
                      cursor: lab.editing ? nil : lab.token, special: { state.vocabulary?.special.contains(a.tokens[$0]) ?? false }, raw: state.raw)
            if state.noColor {
                flow.drawIntensity(line: line, into: &c, x: 1, y: y + 1, width: flowWidth, style: dim, heat: heat)
            }
            if let simulated {
                // The explanation's simulation of the same latent, as bars under the true heat.
                flow.drawIntensity(line: line, into: &c, x: 1, y: y + rowsPerLine - 1, width: flowWidth, styleOf: { t in
                    (simulated[t] > 0) != (values[t] > 0) ? palette.style(.bad).with(bold: true) : palette.style(.accent)
                }, heat: { Double(simulated[$0]) / scale }, blank: "·")
            }
        }

        // Side pane: the token under the cursor and its latents.
        let sx = r.width - side
        for y in top..<r.maxY { c.put("│", x: sx - 2, y: y, style: palette.style(.border)) }
        let t = min(lab.token, a.tokens.count - 1)
        c.put("token \(t + 1) “\(TokenText.shown(texts[t], raw: true))”" + (t == 0 ? " · first position: special to the model, not to this token" : ""),
              x: sx, y: top, style: accent, maxWidth: side - 1)
        c.put("latent  value  explanation", x: sx, y: top + 1, style: palette.style(.header), maxWidth: side - 1)
        let codes = a.codes[safe: t] ?? []
        let listRows = max(0, r.maxY - top - 2)
        let first = max(0, lab.choice - listRows + 1)
        for (row, i) in (first..<min(codes.count, first + listRows)).enumerated() {
            let code = codes[i]
            let y = top + 2 + row
            let selected = i == lab.choice && !lab.editing
            let style = selected ? palette.style(.selection) : text
            if selected { c.fill(x: sx, y: y, width: side - 1, height: 1, style: style) }
            let what = state.explanations[code.latent]?.text
                ?? state.summary(code.latent).map { LatentsScreen.topTokens($0, state.vocabulary) } ?? ""
            let line = Format.pad(String(code.latent), 6) + " " + Format.pad(Format.value(code.value), 6) + "  " + what
            c.put(line, x: sx, y: y, style: style, maxWidth: side - 1)
        }
        if codes.isEmpty { c.put("no latent fires here", x: sx, y: top + 2, style: dim) }
    }
}
