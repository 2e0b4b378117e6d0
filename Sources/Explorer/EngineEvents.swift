import EngineAPI
import Storage
import Foundation
import Terminal

/// The engine's answers applied to the state.
extension App {
    /// Applies an engine event; may ask for more.
    public mutating func apply(_ event: EngineEvent) -> [EngineRequest] {
        defer { refreshFlows() }
        switch event {
        case .opened(let info, let summaries):
            state.info = info
            state.summaries = summaries
            state.loading = false
            state.missingWorkspace = false
            if state.screen == .welcome { state.screen = .latents }
            rebuildRows(keeping: currentListLatent)
        case .vocabulary(let v):
            state.vocabulary = v
            if !state.list.filter.isEmpty { rebuildRows(keeping: currentListLatent) }
        case .explanations(let e):
            state.explanations = e
            if state.list.sort == .explanation || !state.list.filter.isEmpty { rebuildRows(keeping: currentListLatent) }
        case .missingWorkspace:
            state.loading = false
            state.missingWorkspace = true
            state.screen = .welcome
        case .latent(let record):
            if state.latent?.latent == record.latent {
                state.latent?.record = record
                state.latent?.window = 0
                state.latent?.scroll = 0
                // A latent opened without an LLM explanation gets one in the background (the engine skips it when it
                // has one already; a person's explanation is never replaced).
                let personal = !ExplanationSource.machineMayReplace(state.explanations[record.latent])
                if state.autoExplain && !personal && state.drafts[record.latent] == nil && record.count > 0 {
                    state.latent?.explaining = true
                    return [.explain(latent: record.latent)]
                }
            }
        case .analysis(let id, let analysis):
            guard id >= state.lab.shown else { break }
            state.lab.shown = id
            state.lab.analysis = analysis
            state.lab.simulated = nil
            state.lab.intervention.forgetResults()
            state.lab.token = min(state.lab.token, max(analysis.tokens.count - 1, 0))
            state.lab.choice = 0
            if let first = analysis.codes[safe: state.lab.token]?.first, state.lab.latent == nil { state.lab.latent = first.latent }
            if analysis.truncated { state.message = Message(text: "the text was cut to the first \(analysis.tokens.count) tokens", isError: false) }
        case .saved(let version):
            state.explanations[version.latent] = version
            state.drafts[version.latent] = nil
            state.scores[version.latent] = nil
            state.message = Message(text: "saved explanation of latent \(version.latent) (version \(version.id)); simulating it…", isError: false)
            if state.list.sort == .explanation || !state.list.filter.isEmpty { rebuildRows(keeping: currentListLatent) }
            // A saved explanation is simulated again at once, in the background.
            if state.latent?.latent == version.latent { state.latent?.simulating = true; state.latent?.explaining = false }
            return [.simulate(latent: version.latent)]
        case .explained(let latent):
            if state.latent?.latent == latent { state.latent?.explaining = false }
        case .scores(let scores):
            state.scores.merge(scores) { _, new in new }
            if state.list.sort == .score || state.list.sort == .lossDelta { rebuildRows(keeping: currentListLatent) }
        case .simulation(let latent, let scores, let previous, let record):
            if scores.version == state.explanations[latent]?.id { state.scores[latent] = scores }
            if state.latent?.latent == latent {
                if state.latent?.simulating == true {
                    state.message = Message(text: "simulated latent \(latent): r \(scores.pearson.map { String(format: "%.2f", $0) } ?? "—")", isError: false)
                }
                state.latent?.scores = scores
                state.latent?.previousScores = previous
                state.latent?.simulation = record
                state.latent?.simulating = false
                state.latent?.measuringLoss = false
                state.latent?.explaining = false
            }
        case .measuringLoss(let latent):
            if state.latent?.latent == latent { state.latent?.measuringLoss = true }
        case .textSimulation(let id, let latent, let simulated):
            guard id == state.lab.shown else { break }
            state.lab.simulated = simulated
            state.lab.simulatedLatent = latent
            state.message = nil
        case .history(let latent, let versions):
            if versions.isEmpty {
                state.message = Message(text: "latent \(latent) has no saved explanation yet (e writes one)", isError: false)
            } else {
                state.history = HistoryState(latent: latent, versions: versions.reversed(), selected: 0)
            }
        case .steered, .ablation, .ranking, .patched:
            return applyIntervention(event)
        case .rewrite(let report):
            applyRewrite(report)
        case .progress(let p):
            state.job = p
        case .notice(let text):
            state.message = Message(text: text, isError: false)
        case .failure(let text):
            state.message = Message(text: text, isError: true)
            state.loading = false
            state.latent?.simulating = false
        }
        return []
    }
}
