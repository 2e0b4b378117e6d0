import EngineAPI
import Foundation
import Storage
import Terminal

/// The Context lab's intervention modes, drawn below its text box: steering (unsteered | steered
/// generations side by side), ablation (the text coloured by how much the latent helps predict
/// each next token, the tokens it helps most beside it) and ranking (the latents at the cursor's
/// token by direct effect on the next token's logit).
enum InterveneScreen {
    /// The lab's status line in an intervention mode.
    static func status(_ state: AppState) -> String? {
        let iv = state.lab.intervention
        let latent = iv.latent.map(String.init) ?? "?"
        switch iv.mode {
        case .activations: return nil
        case .steer:
            let value = iv.absolute ? String(format: "to %g", iv.value) : String(format: "at %g× its max", iv.scale)
            let from = iv.fromCursor && !iv.chat ? "from token \(state.lab.token + 1)" : "from token 1"
            let how = iv.sampled ? String(format: "sampled T %g seed %llu", InterventionState.temperature, InterventionState.seed) : "greedy"
            return "steering latent \(latent) \(value) \(from), \(how)" + (iv.chat ? " in the chat template" : "")
                + " · v back to activations"
        case .ablate:
            return "latent \(latent) \(iv.ablationMode.rawValue)-ablated · warm: the latent helps predict the next token, cool: it hurts · m zero/mean · v back"
        case .rank:
            return "latents at token \(state.lab.token + 1) by direct effect on the next token's logit (exact: zeroed there) · Enter opens · v back"
        case .patch:
            let what = iv.patchWhole ? "the whole code" : "latent \(latent)"
            return "\(what) patched clean → corrupted at each token · warm: the clean prediction comes back · o latent/whole · P corrupted text · v back"
        }
    }

    static func hints(_ state: AppState) -> String? {
        switch state.lab.intervention.mode {
        case .activations: return nil
        case .steer: return "S again · +/- value · A abs · f from · T sample · c chat · Esc stop · v back"
        case .ablate: return "h/l token · m zero/mean · S steer · w rank · v activations · q back"
        case .rank: return "h/l token · j/k latent · Enter open · a ablate · v activations · q back"
        case .patch: return "h/l token · o latent/whole code · P corrupted text · a ablate · v activations · q back"
        }
    }

    static func render(_ state: AppState, _ a: ContextAnalysis, into c: inout Canvas, in r: Rect, palette: Palette) {
        switch state.lab.intervention.mode {
        case .activations: return
        case .steer: renderSteer(state, into: &c, in: r, palette: palette)
        case .ablate: renderAblation(state, a, into: &c, in: r, palette: palette)
        case .rank: renderRanking(state, a, into: &c, in: r, palette: palette)
        case .patch: renderPatch(state, a, into: &c, in: r, palette: palette)
        }
    }

    static func renderSteer(_ state: AppState, into c: inout Canvas, in r: Rect, palette: Palette) {
        let iv = state.lab.intervention, dim = palette.style(.dim)
        guard let result = iv.steer else {
            c.put(state.job != nil ? " generating…" : " S generates (stopped or not run yet)", x: 0, y: r.y, style: dim, maxWidth: r.width)
            return
        }
        let s = result.settings
        let title = String(format: "steered: latent %d = %.3g (%@)", s.latent, result.value, s.value.label)
            + (s.from > 0 ? " from token \(s.from + 1)" : "")
        let lines = SideBySide.lines(left: ("unsteered (the base model)", result.unsteeredText), right: (title, result.steeredText), width: r.width - 2)
        let column = max((r.width - 2 - 3) / 2, 10)
        for (i, line) in lines.prefix(r.height - 1).enumerated() {
            let style = i < 2 ? palette.style(.header) : palette.style(.text)
            c.put(line, x: 1, y: r.y + i, style: style, maxWidth: r.width - 2)
            if i >= 2 { c.put("│", x: 1 + column + 1, y: r.y + i, style: palette.style(.border)) }
        }
        let how = s.temperature > 0 ? String(format: "sampled at T %g, seed %llu · ", s.temperature, s.seed) : "greedy · "
        let foot = how + (result.done ? "done" + (result.firstTokenSeconds.map { String(format: " · first tokens after %.2f s", $0) } ?? "")
            : "generating… (Esc stops)")
        c.put(" " + foot, x: 0, y: r.maxY - 1, style: dim, maxWidth: r.width)
    }

    /// The text as a token flow with a side pane: the shared layout of ablation and ranking.
    static func flow(_ state: AppState, _ a: ContextAnalysis, into c: inout Canvas, in r: Rect, palette: Palette,
                     styleOf: (Int) -> Style) -> (sx: Int, side: Int) {
        let side = ContextLabScreen.sideWidth(r.width)
        let flowWidth = r.width - side - 3
        let texts = a.tokens.map { state.vocabulary?.text($0) ?? "#\($0)" }
        let flow = TokenFlow(texts: texts, width: flowWidth, raw: state.raw)
        let cursorLine = flow.position(of: state.lab.token)?.line ?? 0
        let first = max(0, cursorLine - r.height + 1)
        for (row, line) in (first..<min(flow.lines.count, first + r.height)).enumerated() {
            flow.draw(line: line, into: &c, x: 1, y: r.y + row, width: flowWidth, palette: palette, styleOf: styleOf, marked: nil,
                      cursor: state.lab.token, special: { state.vocabulary?.special.contains(a.tokens[$0]) ?? false }, raw: state.raw)
        }
        let sx = r.width - side
        for y in r.y..<r.maxY { c.put("│", x: sx - 2, y: y, style: palette.style(.border)) }
        return (sx, side)
    }

    static func shown(_ state: AppState, _ id: Int) -> String { TokenText.shown(state.vocabulary?.text(id) ?? "#\(id)", raw: true) }

    static func renderAblation(_ state: AppState, _ a: ContextAnalysis, into c: inout Canvas, in r: Rect, palette: Palette) {
        let iv = state.lab.intervention, dim = palette.style(.dim), text = palette.style(.text)
        guard let result = iv.ablation(of: iv.latent), result.tokens == a.tokens else {
            c.put(state.job != nil ? " ablating…" : " a ablates the chosen latent", x: 0, y: r.y, style: dim, maxWidth: r.width)
            return
        }
        let scale = Double(max(result.deltaLogProb.map { abs($0) }.max() ?? 0, 1e-6))
        // Warm where ablating makes the next token less likely (the latent helps), cool where more.
        let change = { (t: Int) -> Double in t < result.deltaLogProb.count ? -Double(result.deltaLogProb[t]) / scale : 0 }
        let (sx, side) = flow(state, a, into: &c, in: r, palette: palette) { palette.diverging(change($0)) }
        let t = min(state.lab.token, a.tokens.count - 1)
        var y = r.y
        c.put("token \(t + 1) “\(shown(state, a.tokens[t]))”", x: sx, y: y, style: palette.style(.accent), maxWidth: side - 1)
        y += 1
        c.put("activation " + Format.value(result.activations[t]), x: sx, y: y, style: text, maxWidth: side - 1)
        y += 1
        if t < result.deltaLogProb.count {
            c.put("→ “\(shown(state, a.tokens[t + 1]))”", x: sx, y: y, style: text, maxWidth: side - 1)
            c.put(String(format: "Δlog p %+.4f · KL %.4f", result.deltaLogProb[t], result.kl[t]), x: sx, y: y + 1, style: text, maxWidth: side - 1)
        } else {
            c.put("the last token: it predicts nothing here", x: sx, y: y, style: dim, maxWidth: side - 1)
        }
        y += 3
        c.put("helps most: log p lost, token → next", x: sx, y: y, style: palette.style(.header), maxWidth: side - 1)
        y += 1
        let helped = result.helped(max(0, r.maxY - y))
        for p in helped {
            c.put(String(format: "%3d %6.3f ", p + 1, -result.deltaLogProb[p]) + "\(shown(state, a.tokens[p]))→\(shown(state, a.tokens[p + 1]))",
                  x: sx, y: y, style: p == t ? palette.style(.selection) : text, maxWidth: side - 1)
            y += 1
        }
        if helped.isEmpty { c.put("no token's prediction gets worse without it", x: sx, y: y, style: dim, maxWidth: side - 1) }
    }

    static func renderRanking(_ state: AppState, _ a: ContextAnalysis, into c: inout Canvas, in r: Rect, palette: Palette) {
        let iv = state.lab.intervention, dim = palette.style(.dim), text = palette.style(.text)
        let (sx, side) = flow(state, a, into: &c, in: r, palette: palette) { _ in text }
        let t = min(state.lab.token, a.tokens.count - 1)
        guard let ranking = iv.rankings[t] else {
            c.put(state.job != nil ? "ranking…" : "w ranks the latents here", x: sx, y: r.y, style: dim, maxWidth: side - 1)
            return
        }
        c.put(String(format: "token %d → “%@” logit %.2f", t + 1, ranking.targetText, ranking.logit) + (t + 1 < a.tokens.count ? "" : " (top prediction)"),
              x: sx, y: r.y, style: palette.style(.accent), maxWidth: side - 1)
        c.put("latent   act  direct   exact  explanation", x: sx, y: r.y + 1, style: palette.style(.header), maxWidth: side - 1)
        let rows = max(0, r.maxY - r.y - 2)
        let first = max(0, iv.rankChoice - rows + 1)
        for (row, i) in (first..<min(ranking.latents.count, first + rows)).enumerated() {
            let l = ranking.latents[i]
            let style = i == iv.rankChoice ? palette.style(.selection) : text
            let what = state.explanations[l.latent]?.text ?? state.summary(l.latent).map { LatentsScreen.topTokens($0, state.vocabulary) } ?? ""
            let line = Format.pad(String(l.latent), 6) + String(format: " %5.2f %+7.3f ", l.activation, l.direct)
                + (l.exact.map { String(format: "%+7.3f", $0) } ?? "      ·") + "  " + what
            if i == iv.rankChoice { c.fill(x: sx, y: r.y + 2 + row, width: side - 1, height: 1, style: style) }
            c.put(line, x: sx, y: r.y + 2 + row, style: style, maxWidth: side - 1)
        }
        if ranking.latents.isEmpty { c.put("no latent fires here", x: sx, y: r.y + 2, style: dim) }
    }

    /// The clean text coloured by how much of the clean prediction at its last token comes back
    /// when the latent (or the whole code) is patched in at each token; the best tokens beside it.
    static func renderPatch(_ state: AppState, _ a: ContextAnalysis, into c: inout Canvas, in r: Rect, palette: Palette) {
        let iv = state.lab.intervention, dim = palette.style(.dim), text = palette.style(.text)
        guard let result = iv.patch, result.clean == a.tokens else {
            let corrupted = iv.corrupted.map { "corrupted: “\($0)” · " } ?? ""
            c.put(" " + corrupted + (state.job != nil ? "patching…" : "p patches the chosen latent, P types the corrupted text"),
                  x: 0, y: r.y, style: dim, maxWidth: r.width)
            return
        }
        let recovered = result.recovered
        let (sx, side) = flow(state, a, into: &c, in: r, palette: palette) { t in palette.diverging(t < recovered.count ? Double(recovered[t]) : 0) }
        let t = min(state.lab.token, a.tokens.count - 1)
        var y = r.y
        c.put("corrupted: " + (iv.corrupted ?? ""), x: sx, y: y, style: dim, maxWidth: side - 1)
        y += 1
        c.put(String(format: "log p(“%@”) at the end: clean %.3f, corrupted %.3f", result.targetText, result.cleanLogProb, result.corruptedLogProb),
              x: sx, y: y, style: text, maxWidth: side - 1)
        y += 2
        c.put("token \(t + 1) “\(shown(state, result.clean[t]))” in place of “\(shown(state, result.corrupted[t]))”",
              x: sx, y: y, style: palette.style(.accent), maxWidth: side - 1)
        y += 1
        if t < recovered.count {
            c.put(String(format: "recovered %.3f · patched log p %.4f", recovered[t], result.patchedLogProb[t]), x: sx, y: y, style: text, maxWidth: side - 1)
        }
        y += 2
        c.put("recovers most: fraction, token", x: sx, y: y, style: palette.style(.header), maxWidth: side - 1)
        y += 1
        let best = recovered.indices.sorted { recovered[$0] > recovered[$1] }.prefix(max(0, r.maxY - y))
        for p in best {
            c.put(String(format: "%3d %6.3f ", p + 1, recovered[p]) + shown(state, result.clean[p]),
                  x: sx, y: y, style: p == t ? palette.style(.selection) : text, maxWidth: side - 1)
            y += 1
        }
    }
}
