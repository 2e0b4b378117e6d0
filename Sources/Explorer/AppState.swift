import EngineAPI
import Storage
import Terminal

public enum ScreenKind: String, Sendable { case welcome, latents, latent, lab, rewrite }

/// The list's columns, in the order `s` cycles them.
public enum SortColumn: String, CaseIterable, Sendable { case id, density, max, score, lossDelta, explanation }

/// The Latents screen: which rows show, in what order, and which is selected.
public struct ListState: Sendable {
    public var sort: SortColumn = .density
    public var descending = true
    public var filter = ""
    public var hideDead = false
    public var search = ""
    /// Latent ids in display order (after filter and sort).
    public var rows: [Int] = []
    public var selected = 0
    public var top = 0
}

/// The Latent screen.
public struct LatentState: Sendable {
    public enum Focus: Sendable { case windows, neighbours }
    public var latent: Int
    public var record: LatentRecord?
    public var focus: Focus = .windows
    public var window = 0
    public var token: Int?
    public var neighbour = 0
    /// First document line shown.
    public var scroll = 0
    /// The explanation being edited, if any.
    public var editor: LineEditor?
    /// The windows laid out as token lines, for `flowsKey` (width, raw, vocabulary size); kept so
    /// moving the cursor does not lay out every window again.
    var flows: [TokenFlow] = []
    var flowsKey: [Int] = []
    /// The latest simulation of the current explanation, the previous version's scores, and
    /// whether a simulation is running.
    public var simulation: SimulationRecord?
    public var scores: LatentScores?
    public var previousScores: LatentScores?
    public var simulating = false
    /// The simulation's scores are shown; its loss delta is still being measured.
    public var measuringLoss = false
    /// The LLM is writing this latent's first explanation.
    public var explaining = false

    public init(latent: Int) { self.latent = latent }
}

/// The Context lab.
public struct LabState: Sendable {
    public var editor = LineEditor("", keepsNewlines: true)
    public var editing = true
    public var analysis: ContextAnalysis?
    /// The id of the last text sent for analysis, and of the one shown.
    public var requested = 0
    public var shown = 0
    /// When the text last changed (for running the analysis after a pause in typing).
    public var changedAt: Double?
    public var token = 0
    /// Index into the selected token's latents.
    public var choice = 0
    /// The latent whose heat is drawn over the text.
    public var latent: Int?
    /// That latent simulated on the text (activation units), when asked for with `s`.
    public var simulated: [Float]?
    public var simulatedLatent: Int?
    /// Steering, ablation and ranking of the chosen latent on the text (InterveneActions.swift).
    public var intervention = InterventionState()
}

/// The Rewrite screen: the last partial-rewrite report and what is selected in it.
public struct RewriteState: Sendable {
    /// The report; nil until the engine answered (`loaded`) or when none was run yet.
    public var report: RewriteReport?
    /// Whether the report was asked for, and whether the answer came.
    public var requested = false
    public var loaded = false
    /// The selected setting (an index into the report's results) and the first table row shown.
    public var setting = 0
    public var top = 0
    /// The window drawn as a heatmap, the token cursor in it, and which of the token's culprits
    /// Enter opens.
    public var window = 0
    public var token = 0
    public var culprit = 0
}

/// A one-line prompt in the status line.
public struct Prompt: Sendable {
    public enum Kind: Sendable, Equatable { case filter, search, jump, labLatent, corruptedText, export, importFile, confirmQuit, confirmRewrite }
    public var kind: Kind
    public var editor: LineEditor

    public var label: String {
        switch kind {
        case .filter: return "filter: "
        case .search: return "/"
        case .jump: return "latent id: "
        case .labLatent: return "latent to steer, ablate and draw (id): "
        case .corruptedText: return "corrupted text (as many tokens as the lab's): "
        case .export: return "export explanations to: "
        case .importFile: return "import explanations from: "
        case .confirmQuit: return "An explanation is being edited. Quit and keep it as a draft? (y/n) "
        case .confirmRewrite: return "Run the partial rewrite again (long; cached simulations are reused)? (y/n) "
        }
    }

    /// A yes/no question: any key answers it, and it shows no text cursor.
    public var isConfirmation: Bool { kind == .confirmQuit || kind == .confirmRewrite }
}

/// The history overlay of one latent's explanation.
public struct HistoryState: Sendable {
    public var latent: Int
    public var versions: [ExplanationVersion]
    public var selected: Int
}

/// A message in the status line.
public struct Message: Equatable, Sendable {
    public var text: String
    public var isError: Bool
}

/// Everything the interface shows: a value. Keys and engine events change it (App); screens
/// are drawn from it.
public struct AppState: Sendable {
    public var width: Int
    public var height: Int
    public var screen: ScreenKind = .latents
    public var previous: [ScreenKind] = []
    public var workspacePath: String
    public var info: WorkspaceInfo?
    public var summaries: [LatentSummary] = []
    public var vocabulary: Vocabulary?
    public var explanations: [Int: ExplanationVersion] = [:] {
        didSet { loweredExplanations = explanations.mapValues { $0.text.lowercased() } }
    }
    /// The explanations lowercased, for search and filter.
    public private(set) var loweredExplanations: [Int: String] = [:]
    /// Latest scores of each latent's current explanation.
    public var scores: [Int: LatentScores] = [:]
    /// Unsaved explanation edits, kept when an edit is cancelled or the latent is left.
    public var drafts: [Int: String] = [:]
    public var list = ListState()
    public var latent: LatentState?
    public var lab = LabState()
    public var rewrite = RewriteState()
    public var prompt: Prompt?
    public var history: HistoryState?
    public var showHelp = false
    public var helpScroll = 0
    public var job: JobProgress?
    public var message: Message?
    public var loading = true
    public var missingWorkspace = false
    public var raw = false
    /// The terminal shows no colour (NO_COLOR or a monochrome terminal): heat gets intensity rows.
    public var noColor = false
    public var themes: [String]
    public var themeIndex = 0
    public var quit = false
    /// Latents opened without an explanation get one from the LLM explainer.
    public var autoExplain = true

    public init(width: Int, height: Int, workspacePath: String, themes: [String] = ["dark"], themeIndex: Int = 0) {
        self.width = width
        self.height = height
        self.workspacePath = workspacePath
        self.themes = themes.isEmpty ? ["dark"] : themes
        self.themeIndex = themeIndex
    }

    public var themeName: String { themes[themeIndex % themes.count] }

    /// Whether keys go to a text editor (the explanation, the lab's text, a prompt).
    public var isEditing: Bool {
        prompt != nil || (screen == .latent && latent?.editor != nil) || (screen == .lab && lab.editing)
    }

    /// The bindings that apply now.
    public var context: BindingContext {
        if history != nil { return .history }
        switch screen {
        case .welcome: return .welcome
        case .latents: return .latents
        case .latent: return .latent
        case .lab: return .lab
        case .rewrite: return .rewrite
        }
    }

    public func summary(_ latent: Int) -> LatentSummary? {
        latent >= 0 && latent < summaries.count && summaries[latent].latent == latent
            ? summaries[latent] : summaries.first { $0.latent == latent }
    }
}
