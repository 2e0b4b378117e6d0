import EngineAPI
import Storage
import Foundation
import Terminal

/// The list of every latent: id, density, max activation, score, loss delta and explanation (or
/// its top tokens until one exists); sorted, filtered, searched. Draws only the visible rows, so
/// it stays instant with tens of thousands of latents.
enum LatentsScreen {
    /// (column, x, width, heading); the last column takes the rest of the line.
    static let columns: [(SortColumn, Int, Int, String)] = [
        (.id, 1, 6, "id"), (.density, 8, 9, "density"), (.max, 18, 7, "max"), (.score, 26, 6, "score"), (.lossDelta, 33, 8, "Δloss"),
        (.explanation, 42, 0, "explanation  (top tokens, dim, until one is written)"),
    ]

    static func column(at x: Int, width: Int) -> SortColumn? {
        for (i, (col, cx, cw, _)) in columns.enumerated() {
            let end = i == columns.count - 1 ? width : cx + cw
            if x >= cx && x < end { return col }
        }
        return nil
    }

    /// The latent ids to show, filtered and sorted as the list state says.
    static func rows(_ state: AppState) -> [Int] {
        let l = state.list
        let query = l.filter.trimmingCharacters(in: .whitespaces)
        var ids = state.summaries.compactMap { s -> Int? in
            if l.hideDead && s.count == 0 { return nil }
            if !query.isEmpty && !matches(state, latent: s.latent, query: query) { return nil }
            return s.latent
        }
        let summaries = state.summaries
        let byID = summaries.count > 0 && summaries.enumerated().allSatisfy { $0.offset == $0.element.latent }
        func summary(_ id: Int) -> LatentSummary { byID ? summaries[id] : state.summary(id)! }
        let descending = l.descending
        func ordered<T: Comparable>(_ a: T, _ b: T, _ ia: Int, _ ib: Int) -> Bool {
            a == b ? ia < ib : (descending ? a > b : a < b)
        }
        switch l.sort {
        case .id: ids.sort { descending ? $0 > $1 : $0 < $1 }
        case .density: ids.sort { ordered(summary($0).count, summary($1).count, $0, $1) }
        case .max: ids.sort { ordered(summary($0).max, summary($1).max, $0, $1) }
        case .score, .lossDelta:
            // Latents with a value (Pearson r, or the loss delta of simulating just them) first; the rest after them, by id.
            let scores = state.scores
            let value: (Int) -> Double? = l.sort == .score ? { scores[$0]?.pearson } : { scores[$0]?.lossDelta }
            ids.sort { a, b in
                switch (value(a), value(b)) {
                case let (x?, y?): return ordered(x, y, a, b)
                case (.some, nil): return true
                case (nil, .some): return false
                default: return a < b
                }
            }
        case .explanation:
            // Explained latents first, alphabetically; the rest by id.
            let ex = state.explanations
            ids.sort { a, b in
                switch (ex[a]?.text.lowercased(), ex[b]?.text.lowercased()) {
                case let (x?, y?): return x == y ? a < b : (descending ? x > y : x < y)
                case (.some, nil): return true
                case (nil, .some): return false
                default: return a < b
                }
            }
        }
        return ids
    }

    /// Whether a latent's explanation or top tokens contain `query` (case-insensitive), or its id is `query`.
    static func matches(_ state: AppState, latent: Int, query: String) -> Bool {
        let q = query.lowercased()
        if let n = Int(q), n == latent { return true }
        if let e = state.loweredExplanations[latent], contains(e, q) { return true }
        if let v = state.vocabulary, let s = state.summary(latent) {
            return s.topTokens.contains { $0 >= 0 && $0 < v.lowercased.count && contains(v.lowercased[$0], q) }
        }
        return false
    }

    /// Substring test on UTF-8 bytes (Foundation's `contains` is far slower, and this runs per latent per key).
    static func contains(_ haystack: String, _ needle: String) -> Bool {
        var h = haystack, n = needle
        return h.withUTF8 { hb in
            n.withUTF8 { nb in
                guard nb.count > 0 else { return true }
                guard hb.count >= nb.count else { return false }
                let first = nb[0]
                for i in 0...(hb.count - nb.count) where hb[i] == first {
                    var j = 1
                    while j < nb.count && hb[i + j] == nb[j] { j += 1 }
                    if j == nb.count { return true }
                }
                return false
            }
        }
    }

    static func topTokens(_ s: LatentSummary, _ v: Vocabulary?) -> String {
        guard let v else { return "" }
        return s.topTokens.map { TokenText.shown(v.text($0), raw: true) }.joined(separator: "  ")
    }

    static func render(_ state: AppState, into c: inout Canvas, in r: Rect, palette: Palette) {
        let header = palette.style(.header)
        c.fill(x: r.x, y: r.y, width: r.width, height: 1, style: header)
        for (i, (col, x, w, title)) in columns.enumerated() {
            let mark = state.list.sort == col ? (state.list.descending ? "▼" : "▲") : ""
            let label = i == columns.count - 1 ? title + " " + mark : String(repeating: " ", count: max(0, w - DisplayWidth.of(title + mark))) + title + mark
            c.put(label, x: x, y: r.y, style: header, maxWidth: i == columns.count - 1 ? r.width - x : w)
        }
        let listTop = r.y + 1, visible = r.height - 1
        if state.loading && state.summaries.isEmpty {
            c.put("opening the workspace…", x: 2, y: listTop + 1, style: palette.style(.dim))
            return
        }
        let rows = state.list.rows
        if rows.isEmpty {
            let why = state.summaries.isEmpty ? "this workspace has no latent cache yet (run `loupe cache`)"
                : "no latent matches the filter “\(state.list.filter)” (f changes it)"
            c.put(why, x: 2, y: listTop + 1, style: palette.style(.dim), maxWidth: r.width - 4)
            return
        }
        let top = min(max(state.list.top, 0), max(rows.count - visible, 0))
        let explX = columns[columns.count - 1].1
        for row in 0..<min(visible, rows.count - top) {
            let index = top + row
            let y = listTop + row
            guard let s = state.summary(rows[index]) else { continue }
            let selected = index == state.list.selected
            let base = selected ? palette.style(.selection) : palette.style(.text)
            if selected { c.fill(x: r.x, y: y, width: r.width, height: 1, style: base) }
            func right(_ text: String, _ x: Int, _ w: Int, _ style: Style) {
                c.put(String(repeating: " ", count: max(0, w - DisplayWidth.of(text))) + text, x: x, y: y, style: style, maxWidth: w)
            }
            let dead = s.count == 0
            let dim = selected ? base : palette.style(.dim)
            right(String(s.latent), columns[0].1, columns[0].2, base)
            right(Format.percent(s.density), columns[1].1, columns[1].2, dead ? dim : base)
            right(dead ? "—" : Format.value(s.max), columns[2].1, columns[2].2, dead ? dim : base)
            if let r = state.scores[s.latent]?.pearson { right(String(format: "%.2f", r), columns[3].1, columns[3].2, base) }
            else { right("—", columns[3].1, columns[3].2, dim) }
            if let d = state.scores[s.latent]?.lossDelta { right(Format.nats(d), columns[4].1, columns[4].2, base) }
            else { right("—", columns[4].1, columns[4].2, dim) }
            let room = r.width - explX - 1
            if let e = state.explanations[s.latent] {
                c.put(DisplayWidth.fit(e.text, columns: room), x: explX, y: y, style: base)
            } else if dead {
                c.put("never fires on the training tokens", x: explX, y: y, style: dim, maxWidth: room)
            } else {
                c.put(DisplayWidth.fit(topTokens(s, state.vocabulary), columns: room), x: explX, y: y, style: dim)
            }
        }
        // A scroll indicator on the right edge.
        if rows.count > visible {
            let pos = listTop + Int(Double(top) / Double(max(rows.count - visible, 1)) * Double(visible - 1))
            c.put("▐", x: r.width - 1, y: pos, style: palette.style(.border))
        }
    }
}
