import Engine
import Formats
import Foundation
import Model
import Storage
import Terminal
import Tokenizer

/// The `loupe` command: dispatch to subcommands, print one-line errors, return the exit status.
public enum LoupeCLI {
    public static let usage = """
    loupe — explore the sparse latents of a language model in the terminal

    USAGE
      loupe [--theme NAME] [--no-color]           open the explorer on the default workspace (offers to build it)
      loupe open DIR [--theme NAME] [--no-color]   open the explorer on another workspace (--no-explain: no LLM
                                                   explanation for latents opened without one)
      loupe fetch [--json]                         get SmolLM2-135M-Instruct into data/models (idempotent)
      loupe tokenize [--json] TEXT                 → {"ids": [...], "tokens": [...]}
      loupe loss [--json] (--text TEXT | --file F) → {"tokens": N, "mean_ce": X}
      loupe next [--json] [--top N] TEXT           → {"top": [{"id", "token", "logit"}, ...]}
      loupe generate [--json] [--chat] [--max-tokens N] [--temperature T] [--seed S] TEXT
      loupe bench forward [--tokens 256] [--runs 7] [--threads N] [--json]
      loupe bench kernels [--runs 7] [--rounds 3] [--threads N] [--python PATH] [--json]
                                                   Loupe's GEMM beside numpy's sgemm (OpenBLAS) on the model's and transcoder's shapes
      loupe build [--corpus F]... [--layer 15] [--latents 4608] [--k 32] [--tokens 2000000] [--transcoder DIR] [--workspace DIR] [--json]
                  [--epochs 3] [--lr 3e-3] [--batch 1024] [--auxk-alpha 0.03125] [--dead-threshold 100000] [--no-skip]
      loupe train … / loupe cache …                the steps alone (with what they need first); same options as build
      loupe info [--json] [--workspace DIR]        the workspace summary: model, layer, FVU, dead latents, CEs, loss recovered
      loupe latent ID [--json] [--windows 10]      a latent's statistics, logit effects, neighbours and top windows
      loupe explanations show LATENT | set LATENT TEXT | export [FILE] [--delphi DIR [--module M]] | import FILE|DIR [--module M]
                                                   a workspace's explanations: history, JSON {"latent": "text"} or delphi files
      loupe explain [--latents SPEC] [--explainer llm|lexical] [--explainer-model PATH] [--redo] [--show-prompt] [--workspace DIR] [--json]
                    [--candidates N [--temperature 0.8] [--simulator KIND] [--report-heldout]]
                                                   explain latents in bulk, resumably; SPEC e.g. 0-99,150,top500 or all (default);
                                                   latents whose latest explanation is a person's own (user, import, revert) are never replaced;
                                                   --candidates: N LLM answers and the lexical one, the best simulated on training windows wins
      loupe train-simulator [--max-latents N] [--layers 8,14,20] [--folds 5] [--top-windows 2] [--quantile-windows 3] [--random-windows 2] [--workspace DIR] [--json]
                                                   train the simulator's readout on the workspace's explanations, cross-fitted over folds of latents
      loupe simulate --latent N [--text TEXT | --windows 5] [--simulator KIND] [--explanation TEXT] [--calibration none|quantile] [--workspace DIR] [--json]
                                                   simulate a latent from its explanation: per token true vs simulated activation
      loupe bench simulate [--latents 8] [--windows 10] [--uncached-prompts 16] [--workspace DIR] [--json]
                                                   prompted all at once vs last token vs trained: predictions/s, speed-up, correlation
      loupe score [--latents SPEC] [--source lexical|llm|user] [--simulator KIND] [--calibration none|quantile] [--simulator-url URL --simulator-model NAME] [--no-loss-delta] [--no-controls] [--redo] [--workspace DIR] [--json]
                                                   score current explanations on held-out text (Pearson, detection) beside their controls
                                                   (shuffled explanation, token prior, lexical match), resumably; per-source summary
      loupe rewrite [--fractions 0.01,…,1] [--select score|random|both] [--calibration none|quantile|both] [--windows 3] [--length 32] [--simulator KIND] [--json]
                                                   partial rewrite: CE of base, transcoder, zero/mean ablation and simulated latents, with bootstrap intervals
      loupe rewrite --per-latent [--workspace DIR]   loss delta of replacing each scored latent alone by its simulation
      loupe help

    KIND is trained, prompted-all or prompted-last (--mode all|last: the prompted ones); without it, the workspace's trained
    simulator if `loupe train-simulator` made one, else prompted-all.
    Every model command takes --model PATH to use another Llama-family GGUF file; without it the
    default model is fetched on first use. Progress and errors go to stderr, results to stdout.
    """

    /// Runs one command line (without the program name) and returns the exit status.
    public static func run(_ arguments: [String]) -> Int32 {
        guard let name = arguments.first, !name.hasPrefix("--") || name == "--help" else {
            // No command: the explorer, on a terminal; elsewhere (scripts, CI) set up and show the usage.
            var a = Arguments(arguments, command: "loupe")
            do {
                if Terminal.isInteractive && isatty(STDIN_FILENO) != 0 { try ExplorerCommand.open(&a); return 0 }
                try ModelFetch.ensureDefault(progress: Console.progress)
            } catch {
                Console.error(describe(error))
                return 1
            }
            Console.print(usage)
            return 0
        }
        var a = Arguments(Array(arguments.dropFirst()), command: name)
        do {
            switch name {
            case "open": try ExplorerCommand.open(&a)
            case "help", "--help", "-h": Console.print(usage)
            case "fetch": try fetch(&a)
            case "tokenize": try ModelCommands.tokenize(&a)
            case "loss": try ModelCommands.loss(&a)
            case "next": try ModelCommands.next(&a)
            case "generate": try ModelCommands.generate(&a)
            case "bench": try BenchCommand.run(&a)
            case "build": try WorkspaceCommands.build(&a, steps: Builder.Step.allCases)
            case "train": try WorkspaceCommands.build(&a, steps: [.corpus, .activations, .train])
            case "cache": try WorkspaceCommands.build(&a, steps: [.corpus, .activations, .train, .cache])
            case "info": try WorkspaceCommands.info(&a)
            case "latent": try WorkspaceCommands.latent(&a)
            case "explanations": try ExplanationCommands.run(&a)
            case "simulate": try SimulateCommand.run(&a)
            case "explain": try ExplainCommand.run(&a)
            case "score": try ScoreCommand.run(&a)
            case "train-simulator": try TrainSimulatorCommand.run(&a)
            case "rewrite": try RewriteCommand.run(&a)
            default: throw UserError("unknown command '\(name)'; run `loupe help` for the list")
            }
            return 0
        } catch {
            Console.error(describe(error))
            return 1
        }
    }

    /// One line for any error: user errors and format errors already say what to do.
    static func describe(_ error: Error) -> String {
        switch error {
        case let e as UserError: return e.message
        case let e as CustomStringConvertible: return e.description
        default: return "\(error)"
        }
    }

    static func fetch(_ a: inout Arguments) throws {
        let json = a.flag("--json")
        _ = try a.positionals()
        let url = try ModelFetch.ensureDefault(progress: Console.progress)
        if json {
            Console.print(JSON.object([("path", .string(url.path)), ("sha256", .string(ModelFetch.sha256))]).text)
        } else {
            Console.print(url.path)
        }
    }
}
