import EngineAPI
import Storage
import Foundation
import Terminal

/// The Rewrite screen's keys and the engine's answers about the experiment.
extension App {
    /// Shows the screen; the first time, asks the engine for the last report.
    mutating func showRewrite() -> [EngineRequest] {
        go(to: .rewrite)
        guard !state.rewrite.requested else { return [] }
        state.rewrite.requested = true
        return [.rewriteReport]
    }

    /// Runs the experiment again with the last report's options (the default one the first time);
    /// a run that would replace a report asks first.
    mutating func runRewrite(confirmed: Bool) -> [EngineRequest] {
        if let job = state.job {
            state.message = Message(text: "the engine is busy (\(job.title)); Esc stops it", isError: true)
            return []
        }
        if state.rewrite.report != nil && !confirmed {
            state.prompt = Prompt(kind: .confirmRewrite, editor: LineEditor())
            return []
        }
        state.message = Message(text: "running the partial rewrite — Esc stops it; a new run resumes from its cached simulations", isError: false)
        return [.runRewrite(state.rewrite.report?.options ?? RewriteOptions())]
    }

    mutating func performRewrite(_ action: Action) -> [EngineRequest] {
        if action == .runRewrite { return runRewrite(confirmed: false) }
        guard let report = state.rewrite.report else { return [] }
        var rw = state.rewrite
        let page = max(1, RewriteScreen.layout(state, report: report).tableRows)
        let tokens = report.windows[safe: rw.window]?.tokens.count ?? 0
        switch action {
        case .down: rw.setting += 1
        case .up: rw.setting -= 1
        case .pageDown: rw.setting += page; rw.top += page
        case .pageUp: rw.setting -= page; rw.top -= page
        case .top: rw.setting = 0
        case .bottom: rw.setting = report.results.count - 1
        case .nextWindow: rw.window += 1
        case .previousWindow: rw.window -= 1
        case .tokenLeft: rw.token -= 1
        case .tokenRight: rw.token += 1
        case .tokenFirst: rw.token = 0
        case .tokenLast: rw.token = tokens - 1
        case .nextCulprit:
            let count = RewriteScreen.culprits(report, rw).count
            rw.culprit = count == 0 ? 0 : (rw.culprit + 1) % count
            state.rewrite = rw
            return []
        case .open:
            let culprits = RewriteScreen.culprits(report, rw)
            guard let culprit = culprits[safe: min(rw.culprit, culprits.count - 1)] else {
                state.message = Message(text: "no culprit at this token to open", isError: false)
                return []
            }
            return open(latent: culprit.latent)
        default: return []
        }
        rw.culprit = 0
        state.rewrite = rw
        clampRewrite()
        return []
    }

    /// Keeps the selection, window and token inside the report, and the selected row in view.
    mutating func clampRewrite() {
        guard let report = state.rewrite.report else { return }
        var rw = state.rewrite
        rw.setting = min(max(rw.setting, 0), max(report.results.count - 1, 0))
        rw.window = min(max(rw.window, 0), max(report.windows.count - 1, 0))
        rw.token = min(max(rw.token, 0), max((report.windows[safe: rw.window]?.tokens.count ?? 1) - 1, 0))
        let rows = max(1, RewriteScreen.layout(state, report: report).tableRows)
        rw.top = min(max(rw.top, 0), max(report.results.count - rows, 0))
        if rw.setting < rw.top { rw.top = rw.setting }
        if rw.setting >= rw.top + rows { rw.top = rw.setting - rows + 1 }
        state.rewrite = rw
    }

    /// A report arrived (or there is none): the previous selection is kept when the new report has
    /// that setting, else the largest simulated fraction is selected with the cursor on the token
    /// whose loss it raised most.
    mutating func applyRewrite(_ report: RewriteReport?) {
        let kept = state.rewrite.report?.results[safe: state.rewrite.setting]?.setting
        state.rewrite.loaded = true
        state.rewrite.report = report
        guard let report else { return }
        if let kept, let i = report.results.firstIndex(where: { $0.setting == kept }) {
            state.rewrite.setting = i
        } else {
            let setting = RewriteScreen.defaultSetting(report)
            let deltas = RewriteScreen.deltas(report, setting: setting)
            state.rewrite.setting = setting
            state.rewrite.window = 0
            state.rewrite.token = deltas.first.flatMap { d in d.indices.max { d[$0] < d[$1] } } ?? 0
            state.rewrite.culprit = 0
        }
        clampRewrite()
    }

    mutating func clickRewrite(_ m: Mouse) -> [EngineRequest] {
        switch RewriteScreen.hit(x: m.x, y: m.y, state) {
        case .setting(let i):
            state.rewrite.setting = i
            state.rewrite.culprit = 0
        case .token(let t):
            state.rewrite.token = t
            state.rewrite.culprit = 0
            if m.kind == .doubleClick { clampRewrite(); return performRewrite(.open) }
        case nil: return []
        }
        clampRewrite()
        return []
    }
}
