import Engine
import Terminal
import Transcoder

/// One `loupe` command: the word that selects it, the ways to call it (each with what it does) and what
/// runs it. `loupe help` and the dispatch are both made from `CommandSpec.all`; a test checks README.md's
/// command table against it.
struct CommandSpec: Sendable {
    /// One way to call a command: what follows `loupe` and what it does (each line wrapped when printed).
    struct Form: Sendable {
        var synopsis: String
        var summary: [String]
    }

    var name: String
    var aliases: [String]
    var forms: [Form]
    var run: @Sendable (inout Arguments) throws -> Void

    init(_ name: String, aliases: [String] = [], _ forms: [Form], run: @escaping @Sendable (inout Arguments) throws -> Void) {
        self.name = name
        self.aliases = aliases
        self.forms = forms
        self.run = run
    }

    /// The command `word` selects.
    static func named(_ word: String) -> CommandSpec? { all.first { $0.name == word || $0.aliases.contains(word) } }

    /// Every command, in the order `loupe help` lists them.
    static let all: [CommandSpec] = [
        CommandSpec("open", [
            Form(synopsis: "[--theme NAME] [--no-color] [--no-explain]",
                 summary: ["open the explorer on the default workspace (offers to build it)",
                           "--no-explain: no LLM explanation for latents opened without one"]),
            Form(synopsis: "open DIR [--theme NAME] [--no-color] [--no-explain]", summary: ["open the explorer on another workspace"]),
        ]) { try ExplorerCommand.open(&$0) },
        CommandSpec("fetch", [
            Form(synopsis: "fetch", summary: ["get SmolLM2-135M-Instruct into data/models (idempotent)"]),
        ]) { try LoupeCLI.fetch(&$0) },
        CommandSpec("tokenize", [
            Form(synopsis: "tokenize TEXT", summary: [#"→ {"ids": [...], "tokens": [...]}"#]),
        ]) { try ModelCommands.tokenize(&$0) },
        CommandSpec("loss", [
            Form(synopsis: "loss (--text TEXT | --file F)", summary: [#"→ {"tokens": N, "mean_ce": X}"#]),
        ]) { try ModelCommands.loss(&$0) },
        CommandSpec("next", [
            Form(synopsis: "next [--top N] TEXT", summary: [#"→ {"top": [{"id", "token", "logit"}, ...]}"#]),
        ]) { try ModelCommands.next(&$0) },
        CommandSpec("generate", [
            Form(synopsis: "generate [--chat] [--max-tokens N] [--temperature T] [--seed S] TEXT",
                 summary: ["continue TEXT, greedy unless --temperature > 0; --chat: in the model's chat template"]),
        ]) { try ModelCommands.generate(&$0) },
        CommandSpec("bench", [
            Form(synopsis: "bench forward [--tokens 256] [--runs 7] [--threads N]",
                 summary: ["prefill throughput of the model: tokens/s and GFLOP/s"]),
            Form(synopsis: "bench kernels [--runs 7] [--rounds 3] [--threads N] [--python PATH]",
                 summary: ["Loupe's GEMM beside numpy's sgemm (OpenBLAS) on the model's and transcoder's shapes"]),
            Form(synopsis: "bench ui [--workspace DIR] [--headless]",
                 summary: ["the explorer's first frame and key-to-frame latency (run in a terminal to include ncurses)"]),
            Form(synopsis: "bench simulate [--latents 8] [--windows 10] [--uncached-prompts 16] [--workspace DIR]",
                 summary: ["prompted all at once vs last token vs trained: predictions/s, speed-up, correlation"]),
        ]) { try BenchCommand.run(&$0) },
        CommandSpec("build", [
            Form(synopsis: "build [--corpus F]… [--layer 15] [--site mlp|residual] [--latents 4608] [--k 32] [--tokens 2000000] [--transcoder DIR] [--dictionary DIR|FILE] [--workspace DIR] "
                     + "[--epochs 3] [--lr 3e-3] [--batch 1024] [--auxk-alpha 0.03125] [--dead-threshold 100000] [--no-skip] [--no-simulator]",
                 summary: ["fetch, corpus, activations, training, latent cache, evaluation, then lexical explanations and the trained simulator",
                           "(--no-simulator: stop after the evaluation); resumable; --site residual: an SAE on the residual stream after the layer",
                           "instead of a transcoder of its MLP; --dictionary: use a transcoder or residual SAE in any format below instead of training"]),
        ]) { try WorkspaceCommands.build(&$0, steps: Builder.Step.allCases) },
        CommandSpec("train", [
            Form(synopsis: "train …", summary: ["the steps up to training alone (with what they need first); same options as build"]),
        ]) { try WorkspaceCommands.build(&$0, steps: [.corpus, .activations, .train]) },
        CommandSpec("cache", [
            Form(synopsis: "cache …", summary: ["the steps up to the latent cache alone (with what they need first); same options as build"]),
        ]) { try WorkspaceCommands.build(&$0, steps: [.corpus, .activations, .train, .cache]) },
        CommandSpec("info", [
            Form(synopsis: "info [--workspace DIR]",
                 summary: ["the workspace summary: model, layer, FVU, dead latents, CEs, loss recovered"]),
            Form(synopsis: "info --dictionary DIR|FILE [--layer L] [--model PATH]",
                 summary: ["describe a dictionary without building (format, kind, hookpoint, d_in, latents, activation), checked against the model"]),
        ]) { try WorkspaceCommands.info(&$0) },
        CommandSpec("import", [
            Form(synopsis: "import delphi DIR [--hookpoint H] [--layer L] [--held-out-every 20] [--workspace DIR]",
                 summary: ["a latent cache made by EleutherAI's delphi (DIR/latents/<hookpoint>/<start>_<end>.safetensors)",
                           "as a new workspace the explorer opens; its tokens must be the model's tokenizer's"]),
        ]) { try ImportCommand.run(&$0) },
        CommandSpec("export", [
            Form(synopsis: "export delphi DIR [--latents SPEC] [--splits 5] [--module M] [--model-name NAME] [--workspace DIR]",
                 summary: ["the workspace's latent cache and explanations in delphi's layout (the inverse of `import delphi`),",
                           "so delphi's LatentDataset loads them and its scorers score Loupe's explanations"]),
        ]) { try ExportCommand.run(&$0) },
        CommandSpec("latent", [
            Form(synopsis: "latent ID [--windows 10] [--workspace DIR]",
                 summary: ["a latent's statistics, logit effects, neighbours and top windows"]),
        ]) { try WorkspaceCommands.latent(&$0) },
        CommandSpec("explanations", [
            Form(synopsis: "explanations show LATENT [--workspace DIR]", summary: ["a latent's current explanation and every saved version"]),
            Form(synopsis: "explanations set LATENT TEXT [--workspace DIR]", summary: ["save a new version of a latent's explanation"]),
            Form(synopsis: "explanations export [FILE] [--delphi DIR [--module M]] [--workspace DIR]",
                 summary: [#"the workspace's explanations as JSON {"latent": "text"} or delphi files"#]),
            Form(synopsis: "explanations import FILE|DIR [--module M] [--workspace DIR]",
                 summary: ["explanations from such a JSON file or delphi folder"]),
        ]) { try ExplanationCommands.run(&$0) },
        CommandSpec("explain", [
            Form(synopsis: "explain [--latents SPEC] [--explainer llm|lexical] [--explainer-model PATH] [--redo] [--show-prompt] [--workspace DIR] "
                     + "[--candidates N [--temperature 0.8] [--simulator KIND] [--report-heldout]]",
                 summary: [
                     "explain latents in bulk, resumably; SPEC e.g. 0-99,150,top500 or all (default);",
                     "latents whose latest explanation is a person's own (user, import, revert) are never replaced;",
                     "--candidates: N LLM answers and the lexical one, the best simulated on training windows wins",
                 ]),
        ]) { try ExplainCommand.run(&$0) },
        CommandSpec("train-simulator", [
            Form(synopsis: "train-simulator [--max-latents N] [--layers 8,14,20] [--folds 5] [--top-windows 2] [--quantile-windows 3] "
                     + "[--random-windows 2] [--workspace DIR]",
                 summary: ["train the simulator's readout on the workspace's explanations, cross-fitted over folds of latents"]),
            Form(synopsis: "train-simulator --detection-only [--workspace DIR]",
                 summary: ["choose the trained simulator's detection thresholds anew (one per head, out of fold), keeping its heads"]),
        ]) { try TrainSimulatorCommand.run(&$0) },
        CommandSpec("simulate", [
            Form(synopsis: "simulate --latent N [--text TEXT | --windows 5] [--simulator KIND] [--explanation TEXT] [--calibration none|quantile] "
                     + "[--workspace DIR]",
                 summary: ["simulate a latent from its explanation: per token true vs simulated activation"]),
        ]) { try SimulateCommand.run(&$0) },
        CommandSpec("score", [
            Form(synopsis: "score [--latents SPEC] [--source lexical|llm|user] [--simulator KIND] [--calibration none|quantile] "
                     + "[--simulator-url URL --simulator-model NAME] [--no-loss-delta] [--no-controls] [--redo] [--workspace DIR]",
                 summary: ["score current explanations on held-out text (Pearson, detection) beside their controls "
                     + "(shuffled explanation, token prior, lexical match), resumably; per-source summary"]),
        ]) { try ScoreCommand.run(&$0) },
        CommandSpec("rewrite", [
            Form(synopsis: "rewrite [--fractions 0.01,0.05,0.1,0.2,0.4,0.6,0.8,1] [--select score|random|both] [--calibration none|quantile|both] "
                     + "[--windows N] [--length 32] [--simulator KIND] [--workspace DIR]",
                 summary: [
                     "partial rewrite: CE of base, transcoder, zero/mean ablation and simulated latents, with bootstrap intervals;",
                     "--windows: 9 with the trained simulator, 3 with a prompted one",
                 ]),
            Form(synopsis: "rewrite --per-latent [--workspace DIR]",
                 summary: ["loss delta of replacing each scored latent alone by its simulation"]),
        ]) { try RewriteCommand.run(&$0) },
        CommandSpec("steer", [
            Form(synopsis: "steer --latent N [--scale 5 | --value V] [--from I] [--tokens 40] [--chat] [--temperature T] [--seed S] "
                     + "[--workspace DIR] TEXT",
                 summary: ["generate with a latent's code set (× its max activation, or to V) from prompt token I on, "
                     + "beside the unsteered model; streams both side by side"]),
        ]) { try InterveneCommands.steer(&$0) },
        CommandSpec("ablate", [
            Form(synopsis: "ablate --latent N [--mean] [--top 8] [--workspace DIR] TEXT",
                 summary: ["zero- (or mean-) ablate a latent on TEXT: per token Δlog p of the next token and KL; the tokens it helps most"]),
        ]) { try InterveneCommands.ablate(&$0) },
        CommandSpec("rank", [
            Form(synopsis: "rank [--at I] [--target TOKEN] [--exact 5] [--top 20] [--workspace DIR] TEXT",
                 summary: ["the latents at token I (default: the last) ranked by direct effect on the next token's logit, "
                     + "the first few also zeroed exactly"]),
        ]) { try InterveneCommands.rank(&$0) },
        CommandSpec("patch", [
            Form(synopsis: "patch [--latent N] --clean TEXT --corrupted TEXT [--workspace DIR]",
                 summary: ["patch a latent (or the whole code) from the clean run into the corrupted one at each token: "
                     + "how much of the clean prediction comes back"]),
        ]) { try InterveneCommands.patch(&$0) },
        CommandSpec("help", aliases: ["--help", "-h"], [
            Form(synopsis: "help", summary: ["this list"]),
        ]) { _ in Console.print(LoupeCLI.usage) },
    ]

    /// What `loupe help` prints around the commands.
    static let title = "loupe — explore the sparse latents of a language model in the terminal"
    static let notes = [
        "Dictionaries (--dictionary, info --dictionary), detected by their files: " + DictionaryFormat.helpLines.joined(separator: "; ") + ".",
        "KIND is trained, prompted-all or prompted-last (--mode all|last: the prompted ones); without it, the workspace's trained "
            + "simulator if `loupe train-simulator` made one, else prompted-all.",
        "Every command but the explorer takes --json: one JSON object on stdout instead of text.",
        "Every model command takes --model PATH to use another Llama-family GGUF file; without it the "
            + "default model is fetched on first use. Progress and errors go to stderr, results to stdout.",
    ]
}

/// `loupe help`: each form's synopsis with its summary beside it from column 47 where both fit on one
/// line, else the summary under it, indented; everything wrapped to 120 columns.
enum Usage {
    static let width = 120
    static let summaryColumn = 47
    static let summaryIndent = "      "

    static func text(_ commands: [CommandSpec]) -> String {
        var lines = [CommandSpec.title, "", "USAGE"]
        for form in commands.flatMap(\.forms) {
            let words = synopsisWords(form.synopsis)
            // Continuation lines of a synopsis start under its first option.
            let command = words.first.map { $0.hasPrefix("[") ? "" : $0 + " " } ?? ""
            let synopsis = wrap(words, first: "  loupe ", indent: 8 + DisplayWidth.of(command))
            if synopsis.count == 1, form.summary.count == 1, DisplayWidth.of(synopsis[0]) < summaryColumn - 1,
               summaryColumn + DisplayWidth.of(form.summary[0]) <= width {
                lines.append(synopsis[0] + String(repeating: " ", count: summaryColumn - DisplayWidth.of(synopsis[0])) + form.summary[0])
            } else {
                lines += synopsis + form.summary.flatMap { wrap(words: $0, first: summaryIndent, indent: summaryIndent.count) }
            }
        }
        lines.append("")
        for note in CommandSpec.notes { lines += wrap(words: note, first: "", indent: 0) }
        return lines.joined(separator: "\n")
    }

    /// `text` cut at its spaces and wrapped.
    static func wrap(words text: String, first: String, indent: Int) -> [String] {
        wrap(text.split(separator: " ").map(String.init), first: first, indent: indent)
    }

    /// The synopsis cut at the spaces outside brackets, so an option stays with its value.
    static func synopsisWords(_ synopsis: String) -> [String] {
        var words: [String] = [], word = "", depth = 0
        for c in synopsis {
            if c == "[" || c == "(" { depth += 1 }
            if c == "]" || c == ")" { depth -= 1 }
            if c == " " && depth == 0 {
                words.append(word)
                word = ""
            } else {
                word.append(c)
            }
        }
        return words + [word]
    }

    /// Words filled into lines of at most `width` columns; the first line starts with `first`, the
    /// others with `indent` spaces. A word longer than a line gets a line of its own.
    static func wrap(_ words: [String], first: String, indent: Int) -> [String] {
        var lines: [String] = [], line = first, empty = true
        for word in words {
            if !empty && DisplayWidth.of(line) + 1 + DisplayWidth.of(word) > width {
                lines.append(line)
                line = String(repeating: " ", count: indent)
                empty = true
            }
            line += (empty ? "" : " ") + word
            empty = false
        }
        return lines + [line]
    }
}
