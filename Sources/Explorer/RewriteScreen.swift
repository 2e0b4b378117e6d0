import EngineAPI
import Storage
import Foundation
import Terminal

/// The partial rewrite (`loupe rewrite`, or `r` here): how the next-token loss grows as more
/// latents are replaced by their explanations' simulations. Top: the chart (RewriteChart). Middle:
/// every setting with its CE, its delta over the base model with the bootstrap interval, and
/// whether it can be told apart from zero ablation. Bottom: one held-out window as a heatmap of the
/// selected setting's per-token loss change against the transcoder, and the latents that moved the
/// output at the token under the cursor (its culprits).
///
/// Positions: `tokenCE[w][t]` is the loss of predicting token t + 1, caused by the MLP outputs at
/// positions ≤ t, and `culprits[w][t]` are the latents that moved the output at t. The heatmap
/// colours token t with that loss change, so a token's colour and its culprits belong to the same
/// position: from here, the next token became harder (warm) or easier (cool) to predict. A window's
/// last token predicts nothing and stays uncoloured.
enum RewriteScreen {
    struct Layout {
        var chart: Rect
        /// The table's heading row and how many settings show under it.
        var tableTop: Int
        var tableRows: Int
        /// The rule that describes the token under the cursor; the culprits line is under it.
        var detailTop: Int
        var heatTop: Int
        var heatRows: Int
        /// The selected window's tokens, laid out.
        var flow: TokenFlow
        var rowsPerLine: Int
    }

    static let heatX = 1

    /// Splits the body between chart, table and heatmap: the heatmap gets what its window needs up
    /// to a quarter, the table half of the rest, the chart the remainder (and anything left over
    /// goes back to the heatmap).
    static func layout(_ state: AppState, report: RewriteReport) -> Layout {
        let top = 2, bottom = state.height - 1
        let rowsPerLine = state.noColor ? 2 : 1
        let flow = Self.flow(state, report: report)
        let free = max(0, bottom - top - RewriteChart.frameRows - 1 - 2)
        let heat = min(flow.lines.count * rowsPerLine, max(rowsPerLine, free / 4))
        let table = min(report.results.count, max(2, (free - heat) / 2))
        let plot = min(18, max(1, free - heat - table))
        let chart = Rect(x: 0, y: top, width: state.width, height: plot + RewriteChart.frameRows)
        let detail = chart.maxY + 1 + table
        return Layout(chart: chart, tableTop: chart.maxY, tableRows: table, detailTop: detail, heatTop: detail + 2,
                      heatRows: max(0, bottom - detail - 2), flow: flow, rowsPerLine: rowsPerLine)
    }

    static func flow(_ state: AppState, report: RewriteReport) -> TokenFlow {
        let tokens = report.windows[safe: state.rewrite.window]?.tokens ?? []
        return TokenFlow(texts: tokens.map { state.vocabulary?.text($0) ?? "#\($0)" }, width: state.width - heatX - 1,
                         raw: state.raw, breakOnNewline: false)
    }

    /// The first line of the heatmap shown: the cursor's line stays in view.
    static func firstLine(_ lay: Layout, token: Int) -> Int {
        let visible = max(1, lay.heatRows / lay.rowsPerLine)
        return max(0, (lay.flow.position(of: token)?.line ?? 0) - visible + 1)
    }

    /// The setting selected when a report arrives: the simulated one with the largest fraction.
    static func defaultSetting(_ report: RewriteReport) -> Int {
        let simulated = report.results.indices.filter { report.results[$0].setting.kind == .simulated }
        let largest = simulated.map { report.results[$0].setting.fraction ?? 0 }.max()
        return simulated.first { report.results[$0].setting.fraction == largest } ?? 0
    }

    /// Per window, per position: the setting's loss minus the transcoder's (nats).
    static func deltas(_ report: RewriteReport, setting: Int) -> [[Double]] {
        guard let result = report.results[safe: setting] else { return [] }
        let reference = report.result(RewriteSetting(kind: .transcoder))?.tokenCE ?? result.tokenCE
        return result.tokenCE.indices.map { w in
            result.tokenCE[w].indices.map { t in Double(result.tokenCE[w][t]) - Double(reference[safe: w]?[safe: t] ?? result.tokenCE[w][t]) }
        }
    }

    /// The culprits at a position of the selected setting (none for settings without simulated latents).
    static func culprits(_ report: RewriteReport, _ rw: RewriteState) -> [RewriteCulprit] {
        report.results[safe: rw.setting]?.culprits?[safe: rw.window]?[safe: rw.token] ?? []
    }

    enum Hit: Equatable { case setting(Int), token(Int) }

    static func hit(x: Int, y: Int, _ state: AppState) -> Hit? {
        guard let report = state.rewrite.report else { return nil }
        let lay = layout(state, report: report)
        let row = y - lay.tableTop - 1
        if row >= 0 && row < lay.tableRows && state.rewrite.top + row < report.results.count { return .setting(state.rewrite.top + row) }
        let offset = y - lay.heatTop
        guard offset >= 0, offset < lay.heatRows, offset % lay.rowsPerLine == 0 else { return nil }
        return lay.flow.token(atLine: firstLine(lay, token: state.rewrite.token) + offset / lay.rowsPerLine, x: x - heatX).map { .token($0) }
    }

    static func render(_ state: AppState, into c: inout Canvas, in r: Rect, palette: Palette) {
        guard let report = state.rewrite.report, !report.results.isEmpty else { return renderEmpty(state, into: &c, in: r, palette: palette) }
        let rw = state.rewrite
        let lay = layout(state, report: report)
        let length = report.windows.first?.tokens.count ?? 0
        var x = c.put(" Partial rewrite", x: 0, y: r.y, style: palette.style(.accent))
        c.put(" · \(report.dictionarySite.title(layer: report.layer)) · \(report.windows.count) windows × \(length) tokens · of \(Format.grouped(report.population))"
              + " explained latents (\(Format.grouped(report.scored)) scored) · \(report.backend) · \(report.created.prefix(16).replacingOccurrences(of: "T", with: " ")) UTC",
              x: x, y: r.y, style: palette.style(.dim), maxWidth: r.width - x - 1)
        RewriteChart.render(report, selected: rw.setting, into: &c, in: lay.chart, palette: palette)
        renderTable(report, rw, lay, into: &c, width: r.width, palette: palette)

        // The rule: the token under the cursor and its loss change.
        let text = palette.style(.text), dim = palette.style(.dim)
        c.put(String(repeating: "─", count: r.width), x: 0, y: lay.detailTop, style: palette.style(.border))
        guard let window = report.windows[safe: rw.window], !window.tokens.isEmpty else { return }
        let deltas = Self.deltas(report, setting: rw.setting)
        let scale = max(deltas.joined().map(abs).max() ?? 0, 1e-9)
        let t = min(rw.token, window.tokens.count - 1)
        func shown(_ id: Int) -> String { "“" + TokenText.shown(state.vocabulary?.text(id) ?? "#\(id)", raw: true) + "”" }
        var info = " window \(rw.window + 1)/\(report.windows.count) · token \(t + 1) \(shown(window.tokens[t])) "
        if let d = deltas[safe: rw.window]?[safe: t], let next = window.tokens[safe: t + 1] {
            let ce = report.results[rw.setting].tokenCE[rw.window][t]
            info += "→ \(shown(next)) loss \(Format.nats(d)) (\(String(format: "%.3f", ce)) vs \(report.dictionarySite.kind) \(String(format: "%.3f", Double(ce) - d))) "
        } else {
            info += "(the last: it predicts nothing) "
        }
        x = c.put(info, x: 1, y: lay.detailTop, style: text, maxWidth: r.width - 2)
        let legend = (state.noColor ? " ▁…█ worse, ▔▀ better" : " warm worse, cool better") + " · full ±\(Format.nats(scale).dropFirst()) "
        if x + 2 + DisplayWidth.of(legend) < r.width { c.put(legend, x: r.width - 1 - DisplayWidth.of(legend), y: lay.detailTop, style: dim) }

        // The culprits at the token.
        let culprits = Self.culprits(report, rw)
        let y = lay.detailTop + 1
        x = c.put(" culprits ", x: 0, y: y, style: dim)
        if report.results[rw.setting].culprits == nil {
            c.put("— only settings with simulated latents have them", x: x, y: y, style: dim, maxWidth: r.width - x - 1)
        } else if culprits.isEmpty {
            c.put(t == window.tokens.count - 1 ? "— none at the last token" : "— no latent was moved here", x: x, y: y, style: dim, maxWidth: r.width - x - 1)
        } else {
            for (i, culprit) in culprits.enumerated() {
                let item = "\(culprit.latent) sim \(Format.value(culprit.simulated)) true \(Format.value(culprit.true))"
                let style = i == rw.culprit ? palette.style(.selection) : text.with(underline: true)
                x = c.put(" " + item + " ", x: x, y: y, style: style, maxWidth: r.width - x - 1) + 1
            }
            let chosen = culprits[min(rw.culprit, culprits.count - 1)].latent
            let about = state.explanations[chosen].map { "“\($0.text)” · " } ?? ""
            c.put(about + "Enter opens it" + (culprits.count > 1 ? ", Tab the next" : ""), x: x + 1, y: y, style: dim, maxWidth: r.width - x - 2)
        }

        // The window, coloured by the loss change.
        let special = { (i: Int) in state.vocabulary?.special.contains(window.tokens[i]) ?? false }
        let change = { (i: Int) in (deltas[safe: rw.window]?[safe: i] ?? 0) / scale }
        let first = firstLine(lay, token: t)
        for (row, line) in (first..<lay.flow.lines.count).enumerated() where (row + 1) * lay.rowsPerLine <= lay.heatRows {
            let yy = lay.heatTop + row * lay.rowsPerLine
            lay.flow.draw(line: line, into: &c, x: heatX, y: yy, width: r.width - heatX - 1, palette: palette,
                          styleOf: { palette.diverging(change($0)) }, marked: nil, cursor: t, special: special, raw: state.raw)
            if state.noColor {
                lay.flow.drawGlyphs(line: line, into: &c, x: heatX, y: yy + 1, width: r.width - heatX - 1, styleOf: { _ in dim }) {
                    Palette.divergingIntensity(change($0))
                }
            }
        }
    }

    /// Every setting: its mark in the chart, label, latents replaced, CE, delta over the base model
    /// with its 95% interval, and whether its interval against zero ablation excludes 0.
    static func renderTable(_ report: RewriteReport, _ rw: RewriteState, _ lay: Layout, into c: inout Canvas, width: Int, palette: Palette) {
        let labelWidth = min(24, report.results.map { DisplayWidth.of(report.label($0.setting)) }.max() ?? 10)
        let xLatents = 3 + labelWidth, xCE = xLatents + 8, xDelta = xCE + 9, xVerdict = xDelta + 25
        let header = palette.style(.header)
        c.fill(x: 0, y: lay.tableTop, width: width, height: 1, style: header)
        c.put("setting", x: 3, y: lay.tableTop, style: header)
        c.put(Format.pad("latents", 7), x: xLatents, y: lay.tableTop, style: header)
        c.put(Format.pad("CE", 7), x: xCE, y: lay.tableTop, style: header)
        c.put("Δ vs base [95%]", x: xDelta, y: lay.tableTop, style: header, maxWidth: width - xDelta)
        c.put("≠ zero abl.", x: xVerdict, y: lay.tableTop, style: header, maxWidth: width - xVerdict)
        let position = " \(rw.setting + 1)/\(report.results.count) "
        if xVerdict + 12 + DisplayWidth.of(position) <= width {
            c.put(position, x: width - DisplayWidth.of(position), y: lay.tableTop, style: header)
        }
        for row in 0..<lay.tableRows {
            let i = rw.top + row
            guard let result = report.results[safe: i] else { break }
            let y = lay.tableTop + 1 + row
            let selected = i == rw.setting
            let base = selected ? palette.style(.selection) : palette.style(.text)
            let dim = selected ? base : palette.style(.dim)
            if selected { c.fill(x: 0, y: y, width: width, height: 1, style: base) }
            let (glyph, role) = RewriteChart.mark(result.setting)
            c.put(glyph, x: 1, y: y, style: selected ? base : palette.style(role).with(bold: true))
            c.put(report.label(result.setting), x: 3, y: y, style: base, maxWidth: labelWidth)
            let simulated = result.setting.kind == .simulated
            c.put(Format.pad(simulated ? Format.grouped(result.latents) : "—", 7), x: xLatents, y: y, style: simulated ? base : dim)
            c.put(Format.pad(String(format: "%.3f", result.ce), 7), x: xCE, y: y, style: base)
            if result.setting.kind == .base {
                c.put("(the reference)", x: xDelta, y: y, style: dim, maxWidth: width - xDelta)
            } else {
                c.put(String(format: "%+.3f ", result.delta) + interval(result.deltaLow, result.deltaHigh), x: xDelta, y: y, style: base,
                      maxWidth: width - xDelta)
            }
            let (verdict, verdictRole): (String, Theme.Role) = result.setting.kind == .zeroAblation ? ("—", .dim)
                : !result.distinguishableFromZero ? ("no", .dim) : result.vsZero < 0 ? ("yes, better", .good) : ("yes, worse", .bad)
            c.put(verdict, x: xVerdict, y: y, style: selected ? base : palette.style(verdictRole), maxWidth: width - xVerdict)
        }
        if report.results.count > lay.tableRows {
            let span = max(report.results.count - lay.tableRows, 1)
            c.put("▐", x: width - 1, y: lay.tableTop + 1 + Int(Double(rw.top) / Double(span) * Double(lay.tableRows - 1)), style: palette.style(.border))
        }
    }

    static func interval(_ low: Double, _ high: Double) -> String {
        low.isFinite && high.isFinite ? String(format: "[%+.3f, %+.3f]", low, high) : "[—]"
    }

    /// No report yet: what the experiment is and how to run it.
    static func renderEmpty(_ state: AppState, into c: inout Canvas, in r: Rect, palette: Palette) {
        let width = max(20, min(r.width - 6, 90))
        var lines: [(String, Theme.Role)] = [("Partial rewrite", .accent), ("", .text)]
        let site = state.info?.site ?? .mlp, kind = site.kind
        let about = "How much of what the latents do is in their explanations? The experiment replaces a fraction of the "
            + "\(kind)'s latents (best-scored first, or at random) by their simulations, the activations an LLM predicts "
            + "from each explanation, and measures the next-token loss on held-out windows against the base model, the "
            + "\(kind) itself and \(site.ablated) zero- or mean-ablated."
        lines += Format.wrap(about, width: width).map { ($0, .text) }
        lines.append(("", .text))
        if !state.rewrite.loaded {
            lines.append(("reading the last report…", .dim))
        } else if let job = state.job {
            lines += Format.wrap("Running (\(job.title)): progress in the status line. Esc stops it; a new run resumes from its cached simulations.",
                                 width: width).map { ($0, .accent) }
        } else {
            lines.append(("No experiment has been run in this workspace yet. Run one:", .text))
            lines += Format.wrap("r here runs the default experiment (fractions 0.01 … 1.00 of the explained latents, both selections, "
                                 + "uncalibrated and quantile-calibrated). Its progress shows in the status line; Esc stops it, and a "
                                 + "new run resumes from its cached simulations.", width: width - 2).map { ("  " + $0, .accent) }
            lines += Format.wrap("Or run `loupe rewrite` in a shell (`loupe help` lists its options), then come back to this tab.",
                                 width: width - 2).map { ("  " + $0, .dim) }
        }
        for (i, (line, role)) in lines.enumerated() where r.y + 1 + i < r.maxY {
            c.put(line, x: 3, y: r.y + 1 + i, style: palette.style(role), maxWidth: r.width - 4)
        }
    }
}
