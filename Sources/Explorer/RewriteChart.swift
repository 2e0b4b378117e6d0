import EngineAPI
import Storage
import Foundation
import Terminal

/// The Rewrite screen's chart: cross-entropy (y) against the fraction of explained latents
/// simulated (x: the report's fractions, equally spaced), one series of points per selection ×
/// calibration, and the base model, the transcoder and the ablations as labelled horizontal lines.
/// Its rows: the legend, the plot, the x axis, the fractions.
enum RewriteChart {
    /// The simulated settings of one selection and calibration, drawn with one glyph and colour.
    struct Series: Equatable {
        var selection: RewriteSelection
        var calibration: Calibration

        /// Filled for best-scored first, hollow for random; circles uncalibrated, triangles quantile.
        var glyph: Character {
            let quantile = calibration == .quantile
            return selection == .score ? (quantile ? "▲" : "●") : (quantile ? "△" : "○")
        }

        var role: Theme.Role {
            let quantile = calibration == .quantile
            return selection == .score ? (quantile ? .special : .accent) : (quantile ? .bad : .good)
        }

        var label: String { "\(selection.rawValue) \(calibration.rawValue)" }
    }

    /// Rows besides the plot: legend, axis, fractions.
    static let frameRows = 3

    /// The series present, in the report's order.
    static func series(_ report: RewriteReport) -> [Series] {
        var out: [Series] = []
        for r in report.results where r.setting.kind == .simulated {
            let s = Series(selection: r.setting.selection ?? .score, calibration: r.setting.calibration ?? .none)
            if !out.contains(s) { out.append(s) }
        }
        return out
    }

    /// The simulated fractions, ascending: the x positions.
    static func fractions(_ report: RewriteReport) -> [Double] {
        Array(Set(report.results.compactMap { $0.setting.kind == .simulated ? $0.setting.fraction : nil })).sorted()
    }

    /// A setting's mark in the chart and the table: its series' glyph, or a dotted line for a reference.
    static func mark(_ setting: RewriteSetting) -> (String, Theme.Role) {
        guard setting.kind == .simulated else { return ("┄", .border) }
        let s = Series(selection: setting.selection ?? .score, calibration: setting.calibration ?? .none)
        return (String(s.glyph), s.role)
    }

    static func render(_ report: RewriteReport, selected: Int, into c: inout Canvas, in r: Rect, palette: Palette) {
        let all = series(report), xs = fractions(report)
        let text = palette.style(.text), dim = palette.style(.dim)

        // Legend.
        var x = c.put(" CE (nats)", x: r.x, y: r.y, style: dim) + 3
        for s in all {
            guard x + 2 + DisplayWidth.of(s.label) <= r.x + r.width else { break }
            c.put(String(s.glyph), x: x, y: r.y, style: palette.style(s.role).with(bold: true))
            x = c.put(" " + s.label, x: x + 1, y: r.y, style: text) + 3
        }

        // Geometry: y labels, the axis, the plot, the reference labels on the right.
        let plotTop = r.y + 1, plotRows = max(1, r.height - frameRows)
        let axisY = plotTop + plotRows
        let axisX = r.x + 7
        let rightWidth = min(22, max(12, r.width / 4))
        let x0 = axisX + 1, x1 = max(x0 + 1, r.x + r.width - rightWidth - 1)
        let values = report.results.map(\.ce).filter(\.isFinite)
        var lo = values.min() ?? 0, hi = values.max() ?? 1
        if hi - lo < 1e-9 { lo -= 0.5; hi += 0.5 }
        func row(_ v: Double) -> Int {
            plotRows == 1 ? plotTop : plotTop + Int(((hi - min(max(v, lo), hi)) / (hi - lo) * Double(plotRows - 1)).rounded())
        }

        // Y axis with its ticks: top, bottom, and the middle when there is room.
        let ticks = plotRows >= 5 ? [0, plotRows / 2, plotRows - 1] : plotRows > 1 ? [0, plotRows - 1] : [0]
        let digits = hi - lo < 0.05 ? "%.3f" : "%.2f"
        for i in 0..<plotRows {
            let isTick = ticks.contains(i)
            if isTick {
                let v = plotRows == 1 ? hi : hi - Double(i) / Double(plotRows - 1) * (hi - lo)
                c.put(Format.pad(String(format: digits, v), 6), x: r.x, y: plotTop + i, style: dim)
            }
            c.put(isTick ? "┤" : "│", x: axisX, y: plotTop + i, style: palette.style(.border))
        }

        // X axis: a tick under each fraction's slot, its label below when there is room.
        let slot = Double(x1 - x0) / Double(max(xs.count, 1))
        func centre(_ i: Int) -> Int { x0 + Int(slot * (Double(i) + 0.5)) }
        c.put("└" + String(repeating: "─", count: x1 - x0), x: axisX, y: axisY, style: palette.style(.border))
        var labelEnd = x0 - 1
        for i in xs.indices {
            c.put("┬", x: centre(i), y: axisY, style: palette.style(.border))
            let label = RewriteSetting.fractionText(xs[i])
            let lx = centre(i) - DisplayWidth.of(label) / 2
            if lx > labelEnd { labelEnd = c.put(label, x: lx, y: axisY + 1, style: dim) }
        }
        c.put("fraction simulated", x: x1 + 1, y: axisY + 1, style: dim, maxWidth: r.x + r.width - x1 - 1)

        // Reference lines, labelled on the right (a label whose row is taken moves to the nearest free one).
        var labelRows = Set<Int>()
        for (i, result) in report.results.enumerated() where result.setting.kind != .simulated && result.ce.isFinite {
            let y = row(result.ce)
            let style = i == selected ? palette.style(.accent) : palette.style(.border)
            c.put(String(repeating: "┄", count: x1 - x0), x: x0, y: y, style: style)
            let free = (0..<plotRows).flatMap { [y + $0, y - $0] }.first { $0 >= plotTop && $0 < axisY && !labelRows.contains($0) }
            guard let ly = free else { continue }
            labelRows.insert(ly)
            // A label moved off its line points at it.
            let arrow = ly < y ? "↓ " : ly > y ? "↑ " : ""
            c.put(arrow + report.label(result.setting) + " " + String(format: digits, result.ce), x: x1 + 1, y: ly,
                  style: i == selected ? palette.style(.accent) : dim, maxWidth: r.x + r.width - x1 - 1)
        }

        // The points, spread around their fraction's tick when the slot is wide enough; the selected one reversed.
        let spread = slot >= Double(all.count + 1)
        func point(_ i: Int) {
            let result = report.results[i]
            guard result.setting.kind == .simulated, result.ce.isFinite, let f = result.setting.fraction,
                  let xi = xs.firstIndex(of: f) else { return }
            let s = Series(selection: result.setting.selection ?? .score, calibration: result.setting.calibration ?? .none)
            let si = all.firstIndex(of: s) ?? 0
            let px = centre(xi) + (spread ? si - all.count / 2 : 0)
            let style = palette.style(s.role).with(bold: true)
            c.put(String(s.glyph), x: px, y: row(result.ce), style: i == selected ? style.with(reverse: true) : style)
        }
        for i in report.results.indices where i != selected { point(i) }
        if report.results.indices.contains(selected) { point(selected) }
    }
}
