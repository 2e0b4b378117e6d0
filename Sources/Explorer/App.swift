import EngineAPI
import Storage
import Foundation
import Terminal

/// The explorer's logic: keys and engine events in, a new state and engine requests out. Pure
/// (no terminal, no engine), so every behaviour can be scripted in tests; the run loop owns the I/O.
public struct App: Sendable {
    public var state: AppState

    public init(state: AppState) { self.state = state }

    /// The first requests to send when the explorer starts.
    public static let startRequests: [EngineRequest] = [.open]

    // MARK: keys

    /// Handles a key; returns what to ask of the engine.
    public mutating func handle(_ key: Key, now: Double = 0) -> [EngineRequest] {
        defer { refreshFlows() }
        if case .resize = key {
            clampList()
            clampRewrite()
            if var l = state.latent {
                l.scroll = max(0, min(l.scroll, LatentScreen.maxScroll(l, state, width: state.width)))
                state.latent = l
            }
            return []
        }
        if state.quit { return [] }
        if state.showHelp { return handleHelp(key) }
        if state.prompt != nil { return handlePrompt(key) }
        if state.history != nil, let out = handleHistory(key) { return out }
        if state.screen == .latent, state.latent?.editor != nil { return handleExplanationEditor(key) }
        if state.screen == .lab, state.lab.editing, let out = handleLabEditor(key, now: now) { return out }
        if case .mouse(let m) = key { return handleMouse(m) }
        guard let action = KeyBindings.action(for: key, in: state.context) else { return [] }
        return perform(action)
    }

    mutating func perform(_ action: Action) -> [EngineRequest] {
        state.message = nil
        switch action {
        case .quit:
            if let l = state.latent, let editor = l.editor, editor.text != (state.explanations[l.latent]?.text ?? "") {
                state.prompt = Prompt(kind: .confirmQuit, editor: LineEditor())
                return []
            }
            state.quit = true
        case .help: state.showHelp = true; state.helpScroll = 0
        case .cycleTheme:
            state.themeIndex = (state.themeIndex + 1) % state.themes.count
            state.message = Message(text: "theme: \(state.themeName)", isError: false)
        case .cancelJob:
            if state.job != nil { return [.cancel] }
            return perform(.back)
        case .back:
            if state.history != nil { state.history = nil; return [] }
            if let last = state.previous.popLast() { state.screen = last; return [] }
            if state.screen == .latents || state.screen == .welcome { state.quit = true } else { state.screen = .latents }
        case .showLatents: go(to: .latents)
        case .showLatent:
            if state.latent != nil { go(to: .latent) } else { state.message = Message(text: "no latent opened yet", isError: false) }
        case .showLab:
            go(to: .lab)
            // A text kept from the last run is analysed when the lab is first shown.
            if state.lab.analysis == nil && !state.lab.editor.isEmpty && state.lab.requested == state.lab.shown {
                return analyzeLab()
            }
        case .showRewrite: return showRewrite()
        case .build:
            state.missingWorkspace = false
            state.message = Message(text: "building the workspace — Esc stops it (what is done is kept; run again to resume)", isError: false)
            return [.build]
        default:
            switch state.screen {
            case .latents: return performList(action)
            case .latent: return performLatent(action)
            case .lab: return performLab(action)
            case .rewrite: return performRewrite(action)
            case .welcome: return []
            }
        }
        return []
    }

    mutating func go(to screen: ScreenKind) {
        guard screen != state.screen else { return }
        state.previous.append(state.screen)
        if state.previous.count > 50 { state.previous.removeFirst() }
        state.screen = screen
    }

    // MARK: list

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

    mutating func open(latent: Int) -> [EngineRequest] {
        if let info = state.info, latent < 0 || latent >= info.latents {
            state.message = Message(text: "no latent \(latent) (this workspace has 0…\(info.latents - 1))", isError: true)
            return []
        }
        if let current = state.latent, let editor = current.editor { state.drafts[current.latent] = editor.text }
        state.latent = LatentState(latent: latent)
        go(to: .latent)
        return [.latent(latent)]
    }

    // MARK: latent

    mutating func performLatent(_ action: Action) -> [EngineRequest] {
        guard var l = state.latent else { return [] }
        let windows = l.record?.windows ?? []
        let width = state.width
        switch action {
        case .down:
            if l.focus == .neighbours { l.neighbour += 1 } else { l.window += 1; l.token = nil }
        case .up:
            if l.focus == .neighbours { l.neighbour -= 1 } else { l.window -= 1; l.token = nil }
        case .pageDown: l.scroll += state.height - 4; l.window = LatentScreen.firstWindow(atOrBelow: l.scroll, l, state, width: width)
        case .pageUp: l.scroll -= state.height - 4; l.window = LatentScreen.firstWindow(atOrBelow: max(l.scroll, 0), l, state, width: width)
        case .top: l.window = 0; l.scroll = 0; l.token = nil
        case .bottom: l.window = windows.count - 1; l.token = nil
        case .tokenLeft: l.token = max(0, (l.token ?? windows[safe: l.window]?.focus ?? 0) - 1)
        case .tokenRight: l.token = (l.token ?? windows[safe: l.window]?.focus ?? 0) + 1
        case .tokenFirst: l.token = 0
        case .tokenLast: l.token = (windows[safe: l.window]?.tokens.count ?? 1) - 1
        case .focusNext: l.focus = l.focus == .windows ? .neighbours : .windows
        case .toggleRaw: state.raw.toggle()
        case .open:
            if l.focus == .neighbours, let record = l.record, record.neighbours.indices.contains(l.neighbour) {
                state.latent = l
                return open(latent: record.neighbours[l.neighbour].latent)
            }
        case .edit:
            let text = state.drafts[l.latent] ?? state.explanations[l.latent]?.text ?? ""
            l.editor = LineEditor(text)
            if state.drafts[l.latent] != nil { state.message = Message(text: "restored your unsaved draft", isError: false) }
        case .history:
            state.latent = l
            return [.history(latent: l.latent)]
        case .nextLatent, .previousLatent:
            let rows = state.list.rows
            guard let i = rows.firstIndex(of: l.latent) ?? (rows.isEmpty ? nil : 0) else { return [] }
            let j = min(max(i + (action == .nextLatent ? 1 : -1), 0), rows.count - 1)
            state.list.selected = j
            clampList()
            state.latent = l
            state.previous.removeAll { $0 == .latent }
            let out = open(latent: rows[j])
            if state.previous.last == .latent { state.previous.removeLast() }
            return out
        case .jump: state.latent = l; state.prompt = Prompt(kind: .jump, editor: LineEditor("")); return []
        case .simulate:
            guard state.explanations[l.latent] != nil else {
                state.message = Message(text: "latent \(l.latent) has no explanation to simulate yet (e writes one)", isError: false)
                return []
            }
            l.simulating = true
            state.latent = l
            return [.simulate(latent: l.latent)]
        default: break
        }
        if let record = l.record {
            l.window = min(max(l.window, 0), max(record.windows.count - 1, 0))
            l.neighbour = min(max(l.neighbour, 0), max(record.neighbours.count - 1, 0))
            if let t = l.token { l.token = min(max(t, 0), max((record.windows[safe: l.window]?.tokens.count ?? 1) - 1, 0)) }
        }
        if [.down, .up, .top, .bottom].contains(action) && l.focus == .windows {
            l.scroll = LatentScreen.scroll(toShowWindow: l.window, l, state, width: width)
        }
        l.scroll = max(0, min(l.scroll, LatentScreen.maxScroll(l, state, width: width)))
        state.latent = l
        return []
    }

    mutating func handleExplanationEditor(_ key: Key) -> [EngineRequest] {
        guard var l = state.latent, var editor = l.editor else { return [] }
        switch key {
        case .enter:
            l.editor = nil
            state.latent = l
            state.drafts[l.latent] = nil
            let text = editor.text.trimmingCharacters(in: .whitespacesAndNewlines)
            if text == (state.explanations[l.latent]?.text ?? "") {
                state.message = Message(text: "explanation unchanged", isError: false)
                return []
            }
            state.message = Message(text: "saving…", isError: false)
            return [.saveExplanation(latent: l.latent, text: text)]
        case .escape:
            l.editor = nil
            let saved = state.explanations[l.latent]?.text ?? ""
            if editor.text != saved {
                state.drafts[l.latent] = editor.text
                state.message = Message(text: "edit cancelled; your text is kept as a draft (e restores it)", isError: false)
            }
            state.latent = l
            return []
        case .ctrl("c"):
            state.latent = l
            return perform(.quit)
        default:
            editor.handle(key)
            l.editor = editor
            state.latent = l
            return []
        }
    }

    // MARK: lab

    mutating func performLab(_ action: Action) -> [EngineRequest] {
        var lab = state.lab
        let count = lab.analysis?.tokens.count ?? 0
        switch action {
        case .editText: lab.editing = true
        case .tokenLeft: lab.token -= 1; lab.choice = 0
        case .tokenRight: lab.token += 1; lab.choice = 0
        case .top: lab.token = 0; lab.choice = 0
        case .bottom: lab.token = count - 1; lab.choice = 0
        case .down: lab.choice += 1
        case .up: lab.choice -= 1
        case .toggleRaw: state.raw.toggle()
        case .open:
            state.lab = lab
            if let latent = lab.latent { return open(latent: latent) }
            return []
        case .simulate:
            state.lab = lab
            guard let latent = lab.latent, lab.analysis != nil else { return [] }
            guard state.explanations[latent] != nil else {
                state.message = Message(text: "latent \(latent) has no explanation to simulate (open it with Enter, e writes one)", isError: false)
                return []
            }
            state.message = Message(text: "simulating latent \(latent) on the text…", isError: false)
            return [.simulateText(id: lab.shown, latent: latent, text: lab.editor.text)]
        default: break
        }
        lab.token = min(max(lab.token, 0), max(count - 1, 0))
        let choices = lab.analysis.map { $0.codes[safe: lab.token]?.count ?? 0 } ?? 0
        lab.choice = min(max(lab.choice, 0), max(choices - 1, 0))
        if let a = lab.analysis, let code = a.codes[safe: lab.token]?[safe: lab.choice] { lab.latent = code.latent }
        state.lab = lab
        return []
    }

    mutating func handleLabEditor(_ key: Key, now: Double) -> [EngineRequest]? {
        var lab = state.lab
        switch key {
        case .enter:
            lab.editing = false
            state.lab = lab
            return analyzeLab()
        case .escape, .tab:
            lab.editing = false
            state.lab = lab
            return []
        case .ctrl("c"): return perform(.quit)
        case .mouse: return nil
        default:
            let before = lab.editor.text
            guard lab.editor.handle(key) else { return nil }
            if lab.editor.text != before { lab.changedAt = now }
            state.lab = lab
            return []
        }
    }

    mutating func analyzeLab() -> [EngineRequest] {
        state.lab.changedAt = nil
        state.lab.requested += 1
        return [.analyze(id: state.lab.requested, text: state.lab.editor.text)]
    }

    /// Time passing: runs the lab's analysis once typing pauses. Call every frame.
    public mutating func tick(now: Double) -> [EngineRequest] {
        if let changed = state.lab.changedAt, now - changed >= 0.4 { return analyzeLab() }
        return []
    }

    // MARK: prompts, overlays

    mutating func handlePrompt(_ key: Key) -> [EngineRequest] {
        guard var p = state.prompt else { return [] }
        if p.isConfirmation {
            state.prompt = nil
            guard key == .char("y") || key == .char("Y") else { return [] }
            if p.kind == .confirmRewrite { return runRewrite(confirmed: true) }
            if let l = state.latent, let e = l.editor { state.drafts[l.latent] = e.text }
            state.quit = true
            return []
        }
        switch key {
        case .escape, .ctrl("c"):
            state.prompt = nil
            return []
        case .enter:
            state.prompt = nil
            let text = p.editor.text.trimmingCharacters(in: .whitespaces)
            switch p.kind {
            case .filter:
                state.list.filter = text
                rebuildRows(keeping: currentListLatent)
            case .search:
                state.list.search = text
                findMatch(text, from: state.list.selected, forward: true)
            case .jump:
                guard let id = Int(text) else {
                    state.message = Message(text: "“\(text)” is not a latent id", isError: true)
                    return []
                }
                if let i = state.list.rows.firstIndex(of: id) { state.list.selected = i; clampList() }
                return open(latent: id)
            case .export: return text.isEmpty ? [] : [.exportExplanations(path: text)]
            case .importFile: return text.isEmpty ? [] : [.importExplanations(path: text)]
            case .confirmQuit, .confirmRewrite: break
            }
            return []
        default:
            p.editor.handle(key)
            state.prompt = p
            if p.kind == .filter {
                // The list filters as you type.
                state.list.filter = p.editor.text
                rebuildRows(keeping: currentListLatent)
            } else if p.kind == .search {
                findMatch(p.editor.text, from: state.list.selected, forward: true)
                if state.message?.isError == true && p.editor.text.isEmpty { state.message = nil }
            }
            return []
        }
    }

    mutating func handleHelp(_ key: Key) -> [EngineRequest] {
        switch KeyBindings.action(for: key, in: .global) {
        case .down: state.helpScroll += 1
        case .up: state.helpScroll = max(0, state.helpScroll - 1)
        case .pageDown: state.helpScroll += state.height - 4
        case .pageUp: state.helpScroll = max(0, state.helpScroll - state.height + 4)
        case .quit: state.quit = true
        default: state.showHelp = false
        }
        return []
    }

    mutating func handleHistory(_ key: Key) -> [EngineRequest]? {
        guard var h = state.history else { return nil }
        switch KeyBindings.action(for: key, in: .history) {
        case .down: h.selected = min(h.selected + 1, max(h.versions.count - 1, 0))
        case .up: h.selected = max(h.selected - 1, 0)
        case .top: h.selected = 0
        case .bottom: h.selected = max(h.versions.count - 1, 0)
        case .open:
            state.history = nil
            guard let v = h.versions[safe: h.selected] else { return [] }
            if v.id == state.explanations[h.latent]?.id {
                state.message = Message(text: "that is the current version", isError: false)
                return []
            }
            return [.revertExplanation(latent: h.latent, versionID: v.id)]
        case .back, .cancelJob: state.history = nil
        case .quit: state.quit = true
        default: return []
        }
        if state.history != nil { state.history = h }
        return []
    }

    mutating func handleMouse(_ m: Mouse) -> [EngineRequest] {
        switch m.kind {
        case .wheelDown: return perform(.down) + perform(.down) + perform(.down)
        case .wheelUp: return perform(.up) + perform(.up) + perform(.up)
        case .rightClick: return perform(.back)
        case .click, .doubleClick:
            if m.y == 0 { return clickTab(m.x) }
            if state.screen == .rewrite { return clickRewrite(m) }
            if state.screen == .latents {
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
            if state.screen == .latent, var l = state.latent,
               let hit = LatentScreen.hit(x: m.x, y: m.y, l, state, width: state.width) {
                switch hit {
                case .token(let window, let token): l.window = window; l.token = token; l.focus = .windows; state.latent = l
                case .neighbour(let i):
                    l.neighbour = i; l.focus = .neighbours; state.latent = l
                    if m.kind == .doubleClick { return perform(.open) }
                }
            }
            return []
        }
    }

    mutating func clickTab(_ x: Int) -> [EngineRequest] {
        for (screen, range) in TitleBar.tabRanges(state) where range.contains(x) {
            switch screen {
            case .latents: return perform(.showLatents)
            case .latent: return perform(.showLatent)
            case .lab: return perform(.showLab)
            case .rewrite: return perform(.showRewrite)
            case .welcome: return []
            }
        }
        return []
    }

    // MARK: engine events

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
                let personal = state.explanations[record.latent].map { !$0.source.isMachine } ?? false
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

    /// Lays the open latent's windows out again when the width, raw mode or token texts changed.
    mutating func refreshFlows() {
        guard var l = state.latent else { return }
        let key = LatentScreen.flowsKey(state, width: state.width)
        guard l.flowsKey != key else { return }
        l.flows = LatentScreen.flows(l, state, width: state.width)
        l.flowsKey = key
        state.latent = l
    }

    // MARK: drawing

    /// The frame for the current state.
    public func render(palette: Palette) -> Canvas {
        Frame.render(state, palette: palette)
    }
}

extension Array {
    subscript(safe i: Int) -> Element? { indices.contains(i) ? self[i] : nil }
}
