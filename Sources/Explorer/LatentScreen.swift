import EngineAPI
import Storage
import Foundation
import Terminal

/// One latent: statistics, explanation (edited in place), histogram, logit effects, neighbours,
/// and its top and quantile-sampled windows as per-token heatmaps with a token cursor.
enum LatentScreen {
    /// A line of the scrolling part: a heading, or a line of a window's tokens (or its intensity row).
    enum DocLine: Equatable {
        case heading(String)
        case tokens(window: Int, line: Int)
        case intensity(window: Int, line: Int)
        /// A held-out simulation window's tokens (true heat), and its simulated values below.
        case simTokens(window: Int, line: Int)
        case simBars(window: Int, line: Int)
        case simTrue(window: Int, line: Int)
    }

    struct Layout {
        var header: Int
        var docTop: Int
        var docHeight: Int
        var doc: [DocLine]
        var flows: [TokenFlow]
        /// First doc line of each window.
        var windowStart: [Int]
        var windowEnd: [Int]
    }

    static let gutter = 7

    /// Header rows, the rule under them included: title, explanation, [simulation], [loss delta],
    /// histogram, promotes + suppresses (or one logits row when short), neighbours, rule.
    static func headerLines(height: Int) -> Int {
        6 + (height >= 24 ? 1 : 0) + (hasSimulationLine(height: height) ? 1 : 0) + (hasLossLine(height: height) ? 1 : 0)
    }

    static func hasSimulationLine(height: Int) -> Bool { height >= 18 }

    static func hasLossLine(height: Int) -> Bool { height >= 20 }

    static func texts(_ w: LatentWindow, _ v: Vocabulary?) -> [String] {
        w.tokens.map { v?.text($0) ?? "#\($0)" }
    }

    static func flowsKey(_ state: AppState, width: Int) -> [Int] {
        [width, state.raw ? 1 : 0, state.vocabulary?.texts.count ?? 0, state.latent?.latent ?? -1, state.latent?.record?.windows.count ?? -1,
         state.latent?.simulation?.windows.count ?? -1, state.latent?.simulation?.key.version ?? -1]
    }

    /// Every window laid out as token lines (the slow part of a layout).
    static func flows(_ l: LatentState, _ state: AppState, width: Int) -> [TokenFlow] {
        if l.flowsKey == flowsKey(state, width: width) { return l.flows }
        let windows = (l.record?.windows.map(\.tokens) ?? []) + (l.simulation?.windows.map(\.tokens) ?? [])
        return windows.map {
            TokenFlow(texts: $0.map { state.vocabulary?.text($0) ?? "#\($0)" }, width: width - gutter - 1, raw: state.raw, breakOnNewline: false)
        }
    }

    static func layout(_ l: LatentState, _ state: AppState, width: Int) -> Layout {
        let bodyTop = 1, bodyHeight = state.height - 2
        let header = headerLines(height: state.height)
        var doc: [DocLine] = []
        let flows = Self.flows(l, state, width: width)
        var starts: [Int] = [], ends: [Int] = []
        let windows = l.record?.windows ?? []
        let noColor = state.noColor
        for (i, w) in windows.enumerated() {
            if i == 0 && w.kind == 0 { doc.append(.heading("top-activating windows")) }
            if w.kind > 0 && (i == 0 || windows[i - 1].kind == 0) {
                doc.append(.heading("quantile-sampled windows (q1 weakest … q10 strongest)"))
            }
            let flow = flows[i]
            starts.append(doc.count)
            for line in flow.lines.indices {
                doc.append(.tokens(window: i, line: line))
                if noColor { doc.append(.intensity(window: i, line: line)) }
            }
            ends.append(doc.count)
        }
        if let sim = l.simulation, !sim.windows.isEmpty, flows.count == windows.count + sim.windows.count {
            doc.append(.heading("held-out windows: true activation as heat, simulated ▁…█ below (bold red = wrong about firing)"))
            for (i, _) in sim.windows.enumerated() {
                let flow = flows[windows.count + i]
                for line in flow.lines.indices {
                    doc.append(.simTokens(window: i, line: line))
                    if noColor { doc.append(.simTrue(window: i, line: line)) }
                    doc.append(.simBars(window: i, line: line))
                }
            }
        }
        return Layout(header: header, docTop: bodyTop + header, docHeight: max(1, bodyHeight - header - 1), doc: doc,
                      flows: flows, windowStart: starts, windowEnd: ends)
    }

    static func scroll(toShowWindow i: Int, _ l: LatentState, _ state: AppState, width: Int) -> Int {
        let lay = layout(l, state, width: width)
        guard lay.windowStart.indices.contains(i) else { return l.scroll }
        var s = l.scroll
        let start = i == 0 ? 0 : lay.windowStart[i], end = lay.windowEnd[i]
        if start < s { s = start }
        if end > s + lay.docHeight { s = min(start, end - lay.docHeight) }
        return max(s, 0)
    }

    static func maxScroll(_ l: LatentState, _ state: AppState, width: Int) -> Int {
        let lay = layout(l, state, width: width)
        return max(0, lay.doc.count - lay.docHeight)
    }

    static func firstWindow(atOrBelow line: Int, _ l: LatentState, _ state: AppState, width: Int) -> Int {
        let lay = layout(l, state, width: width)
        return lay.windowStart.firstIndex { $0 >= line } ?? max(lay.windowStart.count - 1, 0)
    }

    enum Hit: Equatable { case token(window: Int, token: Int), neighbour(Int) }

    static func hit(x: Int, y: Int, _ l: LatentState, _ state: AppState, width: Int) -> Hit? {
        let lay = layout(l, state, width: width)
        if y == 1 + neighbourRow(state), let record = l.record {
            for (i, r) in neighbourRanges(record).enumerated() where r.contains(x) { return .neighbour(i) }
            return nil
        }
        let docLine = y - lay.docTop + l.scroll
        guard y >= lay.docTop, y < lay.docTop + lay.docHeight, lay.doc.indices.contains(docLine) else { return nil }
        if case .tokens(let w, let line) = lay.doc[docLine], let t = lay.flows[w].token(atLine: line, x: x - gutter) {
            return .token(window: w, token: t)
        }
        return nil
    }

    static func neighbourRow(_ state: AppState) -> Int { headerLines(height: state.height) - 2 }

    static let neighbourLabel = "neighbours  "

    static func neighbourRanges(_ r: LatentRecord) -> [Range<Int>] {
        var x = 1 + neighbourLabel.count
        return r.neighbours.map { n in
            let w = neighbourText(n).count
            defer { x += w + 2 }
            return x..<x + w
        }
    }

    static func neighbourText(_ n: (latent: Int, cosine: Float)) -> String { String(format: "%d (%.2f)", n.latent, n.cosine) }

    static func render(_ state: AppState, into c: inout Canvas, in r: Rect, palette: Palette) {
        guard let l = state.latent else { return }
        let text = palette.style(.text), dim = palette.style(.dim), accent = palette.style(.accent)
        var y = r.y
        guard let record = l.record else {
            c.put("Latent \(l.latent)", x: 1, y: y, style: accent)
            c.put("loading…", x: 1, y: y + 2, style: dim)
            return
        }
        let summaryText = state.summary(l.latent).map { " fires on \(Format.percent($0.density)) of training tokens (\(Format.grouped($0.count)))" }
            ?? " fires on \(Format.grouped(record.count)) training tokens"
        var x = c.put("Latent \(l.latent)", x: 1, y: y, style: accent)
        x = c.put(" ·" + summaryText + " · max \(Format.value(record.max)) · mean \(Format.value(record.mean))", x: x, y: y, style: text, maxWidth: r.width - x)
        y += 1

        // Explanation, or its editor in place.
        x = c.put("explanation ", x: 1, y: y, style: dim)
        if let editor = l.editor {
            let room = r.width - x - 1
            c.fill(x: x, y: y, width: room, height: 1, style: palette.style(.selection))
            let (shown, cursor) = editor.visible(width: room)
            c.put(shown, x: x, y: y, style: palette.style(.selection))
            c.cursor = (x + cursor, y)
        } else if let e = state.explanations[l.latent] {
            let stamp = "  v\(e.id) · \(e.source) · " + timeStamp(e.time)
            let room = r.width - x - 1
            let sw = DisplayWidth.of(stamp)
            let textRoom = sw + 20 < room ? room - sw : room
            let end = c.put(DisplayWidth.fit(e.text, columns: min(DisplayWidth.of(e.text), textRoom)), x: x, y: y, style: text.with(bold: true))
            if textRoom < room { c.put(stamp + (l.explaining ? " · the LLM is explaining it…" : ""), x: end, y: y, style: dim, maxWidth: r.width - end - 1) }
        } else {
            let hint = state.drafts[l.latent] != nil ? "(an unsaved draft — e to continue it)"
                : l.explaining ? "(the LLM explainer is writing one… — e writes your own)" : "(none yet — e writes one)"
            c.put(hint, x: x, y: y, style: dim)
        }
        y += 1

        if hasSimulationLine(height: state.height) {
            x = c.put("simulation  ", x: 1, y: y, style: dim)
            for (part, role) in simulationSummary(l, state) {
                x = c.put(part, x: x, y: y, style: palette.style(role), maxWidth: r.width - x - 1)
            }
            y += 1
        }
        if hasLossLine(height: state.height) {
            x = c.put("loss Δ      ", x: 1, y: y, style: dim)
            for (part, role) in lossSummary(l, width: r.width - x - 1) {
                x = c.put(part, x: x, y: y, style: palette.style(role), maxWidth: r.width - x - 1)
            }
            y += 1
        }

        // Histogram of the non-zero activations, 0 … max.
        x = c.put("histogram   ", x: 1, y: y, style: dim)
        let peak = max(record.histogram.max() ?? 1, 1)
        let bars = Array(" ▁▂▃▄▅▆▇█")
        let hist = String(record.histogram.map { $0 == 0 ? " " : bars[max(1, Int((Double($0) / Double(peak) * 8).rounded()))] })
        x = c.put(hist, x: x, y: y, style: accent, maxWidth: r.width - x)
        c.put("  0 … \(Format.value(record.max)), tallest bar \(Format.grouped(peak))", x: x, y: y, style: dim, maxWidth: r.width - x)
        y += 1

        func tokenList(_ items: [(id: Int, logit: Float)]) -> String {
            items.map { TokenText.shown(state.vocabulary?.text($0.id) ?? "#\($0.id)", raw: true) + String(format: " %+.2f", $0.logit) }
                .joined(separator: "  ")
        }
        if state.height >= 24 {
            x = c.put("promotes    ", x: 1, y: y, style: dim)
            c.put(tokenList(record.promoted), x: x, y: y, style: palette.style(.good), maxWidth: r.width - x - 1)
            y += 1
            x = c.put("suppresses  ", x: 1, y: y, style: dim)
            c.put(tokenList(record.suppressed), x: x, y: y, style: palette.style(.bad), maxWidth: r.width - x - 1)
            y += 1
        } else {
            x = c.put("logits      ↑ ", x: 1, y: y, style: dim)
            let half = (r.width - x) / 2
            c.put(tokenList(record.promoted), x: x, y: y, style: palette.style(.good), maxWidth: half - 3)
            x = c.put("↓ ", x: x + half - 1, y: y, style: dim)
            c.put(tokenList(record.suppressed), x: x, y: y, style: palette.style(.bad), maxWidth: r.width - x - 1)
            y += 1
        }

        // Neighbours (by decoder direction), selectable.
        c.put(neighbourLabel, x: 1, y: y, style: dim)
        for (i, (n, range)) in zip(record.neighbours, neighbourRanges(record)).enumerated() where range.upperBound < r.width {
            let selected = l.focus == .neighbours && i == l.neighbour
            c.put(neighbourText(n), x: range.lowerBound, y: y, style: selected ? palette.style(.selection) : text.with(underline: l.focus == .neighbours))
        }
        y += 1

        // The rule above the windows carries what the token under the cursor is.
        let lay = layout(l, state, width: r.width)
        c.put(String(repeating: "─", count: r.width), x: 0, y: y, style: palette.style(.border))
        if let w = record.windows[safe: l.window] {
            let t = min(l.token ?? w.focus, w.tokens.count - 1)
            let tokenText = TokenText.shown(state.vocabulary?.text(w.tokens[t]) ?? "#\(w.tokens[t])", raw: true)
            let a = w.activations[t]
            let kind = w.kind == 0 ? "top" : "q\(w.kind)"
            let info = " window \(l.window + 1)/\(record.windows.count) (\(kind)) · token \(t + 1) “\(tokenText)” id \(w.tokens[t]) · "
                + (a > 0 ? "activation \(Format.value(a)) (\(Int((a / max(record.max, 1e-9) * 100).rounded()))% of max)" : "does not fire") + " "
            c.put(info, x: 2, y: y, style: text, maxWidth: r.width - 4)
        }

        // The windows, scrolled.
        let maxValue = Double(max(record.max, 1e-9))
        let special = { (w: Int) in { (t: Int) in state.vocabulary?.special.contains(record.windows[w].tokens[t]) ?? false } }
        for row in 0..<lay.docHeight {
            let i = l.scroll + row
            guard lay.doc.indices.contains(i) else { break }
            let yy = lay.docTop + row
            switch lay.doc[i] {
            case .heading(let h):
                c.put("  " + h, x: 0, y: yy, style: dim.with(bold: true), maxWidth: r.width)
            case .tokens(let wi, let line):
                let w = record.windows[wi]
                let selected = wi == l.window && l.focus == .windows
                if line == 0 {
                    let label = w.kind == 0 ? "#\(wi + 1)" : "q\(w.kind)"
                    c.put((selected ? "▶" : " ") + Format.pad(label, gutter - 2), x: 0, y: yy, style: selected ? accent : dim, maxWidth: gutter - 1)
                } else if selected {
                    c.put("│", x: 0, y: yy, style: accent)
                }
                lay.flows[wi].draw(line: line, into: &c, x: gutter, y: yy, width: r.width - gutter - 1, palette: palette,
                                   heat: { Double(w.activations[$0]) / maxValue }, marked: w.focus,
                                   cursor: selected ? (l.token ?? w.focus) : nil, special: special(wi), raw: state.raw)
            case .intensity(let wi, let line):
                let w = record.windows[wi]
                lay.flows[wi].drawIntensity(line: line, into: &c, x: gutter, y: yy, width: r.width - gutter - 1, style: dim,
                                            heat: { Double(w.activations[$0]) / maxValue })
            case .simTokens(let wi, let line):
                guard let w = l.simulation?.windows[wi] else { break }
                if line == 0 { c.put(w.focus == nil ? " rand" : " fires", x: 0, y: yy, style: dim, maxWidth: gutter - 1) }
                lay.flows[record.windows.count + wi].draw(line: line, into: &c, x: gutter, y: yy, width: r.width - gutter - 1, palette: palette,
                                   heat: { Double(w.activations[$0]) / maxValue }, marked: nil, cursor: nil,
                                   special: { state.vocabulary?.special.contains(w.tokens[$0]) ?? false }, raw: state.raw)
            case .simTrue(let wi, let line):
                guard let w = l.simulation?.windows[wi] else { break }
                lay.flows[record.windows.count + wi].drawIntensity(line: line, into: &c, x: gutter, y: yy, width: r.width - gutter - 1,
                                                                   style: dim, heat: { Double(w.activations[$0]) / maxValue })
            case .simBars(let wi, let line):
                guard let w = l.simulation?.windows[wi] else { break }
                if line == 0 { c.put(" sim", x: 0, y: yy, style: dim, maxWidth: gutter - 1) }
                let good = palette.style(.accent), bad = palette.style(.bad).with(bold: true, underline: !palette.hasColor)
                lay.flows[record.windows.count + wi].drawIntensity(
                    line: line, into: &c, x: gutter, y: yy, width: r.width - gutter - 1,
                    styleOf: { t in w.outcomes.indices.contains(t) && (w.outcomes[t] == .falsePositive || w.outcomes[t] == .falseNegative) ? bad : good },
                    heat: { Double(w.simulated[$0]) / maxValue }, blank: "·")
            }
        }
        if record.windows.isEmpty {
            c.put("  this latent never fired on the training tokens, so it has no windows", x: 0, y: lay.docTop, style: dim)
        }
    }

    /// The simulation line: scores of the current explanation, and how they compare with the
    /// previous version's (better or worse), named with the explainer that wrote it — for an LLM
    /// explanation, usually the lexical one it replaced, so the two explainers compare at a glance.
    static func simulationSummary(_ l: LatentState, _ state: AppState) -> [(String, Theme.Role)] {
        if l.simulating { return [("simulating the explanation on held-out windows…", .accent)] }
        guard let s = l.scores else {
            return [(state.explanations[l.latent] == nil ? "needs an explanation (e writes one)" : "not simulated yet — s simulates", .dim)]
        }
        func f(_ x: Double?) -> String { x.map { String(format: "%.2f", $0) } ?? "—" }
        var parts: [(String, Theme.Role)] = [("v\(s.version): r \(f(s.pearson))", .text)]
        if let p = l.previousScores, let now = s.pearson, let before = p.pearson {
            let was = "\(f(before)) (v\(p.version) \(p.source))"
            parts.append((now >= before ? " ↑ from \(was)" : " ↓ from \(was)", now >= before ? .good : .bad))
        }
        if let c = s.controls {
            // What the r means: the same windows from another latent's explanation, from none, and by string match.
            parts.append((" · controls: shuffled \(f(c.shuffled)) · prior \(f(c.tokenPrior)) · lexical \(f(c.lexicalMatch))", .dim))
        }
        parts.append((" · bal. acc \(f(s.balancedAccuracy)) · sens \(f(s.sensitivity)) · spec \(f(s.specificity)) · \(s.mode), \(s.calibration)", .text))
        return parts
    }

    /// The loss delta line: what replacing just this latent by its simulation on its scoring
    /// windows does to the next-token loss, and how that compares with the previous version's
    /// (lower is better: positive means the explanation misses something the latent does). The
    /// explanation of the number is shortened where `width` has no room for it.
    static func lossSummary(_ l: LatentState, width: Int) -> [(String, Theme.Role)] {
        if l.simulating || l.measuringLoss { return [("measuring: this latent alone replaced by its simulation on its windows…", .dim)] }
        guard let s = l.scores else { return [("—", .dim)] }
        guard let delta = s.lossDelta else { return [("not measured for this score (s measures it; `loupe rewrite --per-latent` fills in every latent)", .dim)] }
        var parts: [(String, Theme.Role)] = [("\(Format.nats(delta)) nats", .text)]
        if let p = l.previousScores, let before = p.lossDelta {
            let was = "\(Format.nats(before)) (v\(p.version) \(p.source))"
            parts.append((delta <= before ? " ↓ from \(was)" : " ↑ from \(was)", delta <= before ? .good : .bad))
        }
        let used = parts.reduce(0) { $0 + DisplayWidth.of($1.0) }
        let about = " · this latent alone replaced by its simulation on its windows"
        parts.append((used + DisplayWidth.of(about) <= width ? about : " (only this latent simulated)", .dim))
        return parts
    }

    static func timeStamp(_ d: Date) -> String {
        let f = DateFormatter()
        f.dateFormat = "yyyy-MM-dd HH:mm"
        f.timeZone = TimeZone(identifier: "UTC")
        return f.string(from: d) + " UTC"
    }
}
