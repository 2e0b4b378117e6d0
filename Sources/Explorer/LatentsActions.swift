import EngineAPI
import Storage
import Foundation
import Terminal

/// The latents list's keys and clicks: moves, sorting, filter, search, jump, import/export.
extension App {
    var listRows: Int { max(1, state.height - 3) }

    mutating func performList(_ action: Action) -> [EngineRequest] {
        var l = state.list
        switch action {
        case .down: l.selected += 1
        case .up: l.selected -= 1
        case .pageDown: l.selected += listRows; l.top += listRows
        case .pageUp: l.selected -= listRows; l.top -= listRows
        case .top: l.selected = 0
        case .bottom: l.selected = l.rows.count - 1
        case .sortNext:
            let all = SortColumn.allCases
            l.sort = all[(all.firstIndex(of: l.sort)! + 1) % all.count]
            l.descending = l.sort != .id && l.sort != .explanation
        case .sortReverse: l.descending.toggle()
        case .toggleDead: l.hideDead.toggle()
        case .filter: state.prompt = Prompt(kind: .filter, editor: LineEditor(l.filter))
        case .search: state.prompt = Prompt(kind: .search, editor: LineEditor(""))
        case .searchNext, .searchPrevious:
            state.list = l
            findMatch(l.search, from: l.selected + (action == .searchNext ? 1 : -1), forward: action == .searchNext)
            return []
        case .jump: state.prompt = Prompt(kind: .jump, editor: LineEditor(""))
        case .exportExplanations:
            state.prompt = Prompt(kind: .export, editor: LineEditor(state.workspacePath + "/explanations.json"))
        case .importExplanations:
            state.prompt = Prompt(kind: .importFile, editor: LineEditor(""))
        case .open:
            guard l.rows.indices.contains(l.selected) else { return [] }
            return open(latent: l.rows[l.selected])
        default: break
        }
        let resort = [.sortNext, .sortReverse, .toggleDead].contains(action)
        state.list = l
        if resort { rebuildRows(keeping: currentListLatent) } else { clampList() }
        return []
    }

    var currentListLatent: Int? {
        state.list.rows.indices.contains(state.list.selected) ? state.list.rows[state.list.selected] : nil
    }

    mutating func clampList() {
        var l = state.list
        l.selected = min(max(l.selected, 0), max(l.rows.count - 1, 0))
        l.top = min(max(l.top, 0), max(l.rows.count - listRows, 0))
        if l.selected < l.top { l.top = l.selected }
        if l.selected >= l.top + listRows { l.top = l.selected - listRows + 1 }
        state.list = l
    }

    /// Recomputes the rows after the data, filter or sort changed, keeping `latent` selected if it still shows.
    mutating func rebuildRows(keeping latent: Int?) {
        state.list.rows = LatentsScreen.rows(state)
        if let latent, let i = state.list.rows.firstIndex(of: latent) { state.list.selected = i }
        clampList()
    }

    mutating func findMatch(_ query: String, from start: Int, forward: Bool) {
        guard !query.isEmpty else { return }
        let rows = state.list.rows
        guard !rows.isEmpty else { return }
        let n = rows.count
        for step in 0..<n {
            let i = ((forward ? start + step : start - step) % n + n) % n
            if LatentsScreen.matches(state, latent: rows[i], query: query) {
                state.list.selected = i
                clampList()
                if step > 0 && (forward ? i < start % n : i > start % n) {
                    state.message = Message(text: "search wrapped", isError: false)
                }
                return
            }
        }
        state.message = Message(text: "no latent matches “\(query)”", isError: true)
    }

    /// A click on the list: a heading sorts by its column, a row selects it, a double click opens it.
    mutating func clickList(_ m: Mouse) -> [EngineRequest] {
        if m.y == 1, let column = LatentsScreen.column(at: m.x, width: state.width) {
            if state.list.sort == column { state.list.descending.toggle() } else {
                state.list.sort = column
                state.list.descending = column != .id && column != .explanation
            }
            rebuildRows(keeping: currentListLatent)
            return []
        }
        let row = state.list.top + m.y - 2
        guard m.y >= 2, state.list.rows.indices.contains(row) else { return [] }
        state.list.selected = row
        clampList()
        return m.kind == .doubleClick ? perform(.open) : []
    }
}
