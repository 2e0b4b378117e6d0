import Terminal

/// Everything a key can do. Bindings map keys to actions per context; the help overlay is
/// generated from the same table.
public enum Action: Hashable, Sendable {
    case quit, back, help, cycleTheme, redraw, suspend, showLatents, showLatent, showLab, showRewrite, cancelJob
    case down, up, pageDown, pageUp, top, bottom, open
    case sortNext, sortReverse, filter, search, searchNext, searchPrevious, jump, toggleDead
    case tokenLeft, tokenRight, tokenFirst, tokenLast, focusNext, toggleRaw
    case edit, history, nextLatent, previousLatent
    case exportExplanations, importExplanations
    case editText, build, simulate
    case runRewrite, nextWindow, previousWindow, nextCulprit
    case steer, scaleUp, scaleDown, toggleChat, ablate, toggleAblationMode, rankLatents, showActivations
    case patch, editCorrupted, togglePatchWhole, toggleAbsolute, toggleFromCursor, toggleSampling
}

/// Where a binding applies. Screen bindings are looked up first, then global ones.
public enum BindingContext: String, CaseIterable, Sendable {
    case latents = "Latents", latent = "Latent", lab = "Context lab", rewrite = "Rewrite", history = "History", welcome = "Welcome"
    case global = "Everywhere"
}

public struct Binding: Sendable {
    public var keys: [Key]
    public var action: Action
    public var help: String
    public var context: BindingContext
}

public enum KeyBindings {
    static func b(_ context: BindingContext, _ keys: [Key], _ action: Action, _ help: String) -> Binding {
        Binding(keys: keys, action: action, help: help, context: context)
    }

    /// The whole table, in the order the help overlay shows it.
    public static let all: [Binding] = [
        b(.global, [.char("?"), .function(1)], .help, "this help"),
        b(.global, [.char("1")], .showLatents, "latents list"),
        b(.global, [.char("2")], .showLatent, "last opened latent"),
        b(.global, [.char("3"), .char("L")], .showLab, "context lab"),
        b(.global, [.char("4")], .showRewrite, "partial rewrite (explanations in place of latents)"),
        b(.global, [.char("t")], .cycleTheme, "next colour theme"),
        b(.global, [.escape], .cancelJob, "cancel the engine's job (else go back)"),
        b(.global, [.char("q")], .back, "back (quit from the list)"),
        b(.global, [.char("Q"), .ctrl("c")], .quit, "quit"),
        b(.global, [.ctrl("l")], .redraw, "repaint the screen"),
        b(.global, [.ctrl("z")], .suspend, "suspend to the shell (fg returns)"),
        b(.global, [.char("j"), .down], .down, "down"),
        b(.global, [.char("k"), .up], .up, "up"),
        b(.global, [.pageDown, .ctrl("d"), .char(" ")], .pageDown, "page down"),
        b(.global, [.pageUp, .ctrl("u")], .pageUp, "page up"),
        b(.global, [.char("g"), .home], .top, "first"),
        b(.global, [.char("G"), .end], .bottom, "last"),

        b(.latents, [.enter, .char("l"), .right], .open, "open the latent"),
        b(.latents, [.char("s")], .sortNext, "sort by the next column (or click a heading)"),
        b(.latents, [.char("S")], .sortReverse, "reverse the sort"),
        b(.latents, [.char("f")], .filter, "filter by explanation or top token"),
        b(.latents, [.char("/")], .search, "search explanations and top tokens"),
        b(.latents, [.char("n")], .searchNext, "next match"),
        b(.latents, [.char("N")], .searchPrevious, "previous match"),
        b(.latents, [.char(":"), .char("#")], .jump, "jump to a latent id"),
        b(.latents, [.char("d")], .toggleDead, "show or hide latents that never fire"),
        b(.latents, [.char("E")], .exportExplanations, "export explanations to JSON"),
        b(.latents, [.char("I")], .importExplanations, "import explanations (JSON or delphi folder)"),

        b(.latent, [.char("h"), .left], .tokenLeft, "previous token"),
        b(.latent, [.char("l"), .right], .tokenRight, "next token"),
        b(.latent, [.char("0")], .tokenFirst, "first token of the window"),
        b(.latent, [.char("$")], .tokenLast, "last token of the window"),
        b(.latent, [.tab], .focusNext, "switch between windows and neighbours"),
        b(.latent, [.enter], .open, "open the selected neighbour"),
        b(.latent, [.char("e"), .char("i")], .edit, "edit the explanation (Enter saves, Esc cancels)"),
        b(.latent, [.char("H")], .history, "explanation history (Enter reverts)"),
        b(.latent, [.char("r")], .toggleRaw, "raw tokens (· space, ↵ newline)"),
        b(.latent, [.char("s")], .simulate, "simulate the explanation again on held-out windows"),
        b(.latent, [.char("]")], .nextLatent, "next latent in the list"),
        b(.latent, [.char("[")], .previousLatent, "previous latent in the list"),
        b(.latent, [.char(":"), .char("#")], .jump, "jump to a latent id"),

        b(.lab, [.char("e"), .char("i"), .tab], .editText, "edit the text (Enter runs, Tab/Esc leaves)"),
        b(.lab, [.char("h"), .left], .tokenLeft, "previous token"),
        b(.lab, [.char("l"), .right], .tokenRight, "next token"),
        b(.lab, [.enter], .open, "open the chosen latent"),
        b(.lab, [.char("r")], .toggleRaw, "raw tokens"),
        b(.lab, [.char("s")], .simulate, "simulate the chosen latent's explanation on the text"),
        b(.lab, [.char(":"), .char("#")], .jump, "choose the latent by id"),
        b(.lab, [.char("S")], .steer, "steer: generate with the chosen latent set to scale × its max (or a value), beside the unsteered model (Esc stops)"),
        b(.lab, [.char("+"), .char("=")], .scaleUp, "steering scale (or absolute value) + 1"),
        b(.lab, [.char("-")], .scaleDown, "steering scale (or absolute value) − 1"),
        b(.lab, [.char("A")], .toggleAbsolute, "steer to an absolute value or to scale × the latent's max activation"),
        b(.lab, [.char("f")], .toggleFromCursor, "steer from the cursor's token on, or from the first token"),
        b(.lab, [.char("T")], .toggleSampling, "generate greedily, or sampled at temperature 0.8 with a fixed seed (the same draws for both runs)"),
        b(.lab, [.char("c")], .toggleChat, "steer in the chat template or on the raw text"),
        b(.lab, [.char("a")], .ablate, "ablate the chosen latent: per-token Δlog p of the next token (warm: it helps) and KL"),
        b(.lab, [.char("m")], .toggleAblationMode, "zero or mean ablation"),
        b(.lab, [.char("w")], .rankLatents, "which latents matter at the token: direct effect on the next token's logit"),
        b(.lab, [.char("p")], .patch, "patch the chosen latent from the text (clean) into a corrupted text at each token: how much of the clean prediction comes back"),
        b(.lab, [.char("P")], .editCorrupted, "edit the corrupted text (the same number of tokens; Enter patches, Esc keeps the old one)"),
        b(.lab, [.char("o")], .togglePatchWhole, "patch one latent or the whole dictionary code"),
        b(.lab, [.char("v")], .showActivations, "back to the chosen latent's activations"),

        // The heatmap colours token t by the loss of predicting token t + 1 (the culprits at t moved it).
        b(.rewrite, [.char("j"), .down], .down, "next setting (the table and the chart's highlighted point)"),
        b(.rewrite, [.char("k"), .up], .up, "previous setting"),
        b(.rewrite, [.char("]")], .nextWindow, "next window"),
        b(.rewrite, [.char("[")], .previousWindow, "previous window"),
        b(.rewrite, [.char("h"), .left], .tokenLeft, "previous token (coloured by the loss of predicting the next one)"),
        b(.rewrite, [.char("l"), .right], .tokenRight, "next token"),
        b(.rewrite, [.char("0")], .tokenFirst, "first token of the window"),
        b(.rewrite, [.char("$")], .tokenLast, "last token of the window"),
        b(.rewrite, [.tab], .nextCulprit, "next culprit at the token"),
        b(.rewrite, [.enter], .open, "open the chosen culprit latent"),
        b(.rewrite, [.char("r")], .runRewrite, "run the experiment (again); Esc stops it, a new run resumes"),

        b(.history, [.enter], .open, "revert to this version"),

        b(.welcome, [.char("b"), .enter], .build, "build the demo workspace"),
    ]

    static let index: [BindingContext: [Key: Action]] = {
        var out: [BindingContext: [Key: Action]] = [:]
        for binding in all {
            for key in binding.keys where out[binding.context]?[key] == nil { out[binding.context, default: [:]][key] = binding.action }
        }
        return out
    }()

    /// The action of `key` in `context`, falling back to the global bindings.
    public static func action(for key: Key, in context: BindingContext) -> Action? {
        index[context]?[key] ?? index[.global]?[key]
    }

    /// The first key bound to `action` (for hints in the status line).
    public static func label(of action: Action, in context: BindingContext) -> String {
        (all.first { $0.action == action && $0.context == context } ?? all.first { $0.action == action })?.keys.first?.label ?? "?"
    }
}
