import Engine
import Formats
import Foundation
import Storage
import Tokenizer

/// `loupe explain`: explain many latents with the LLM or the lexical explainer, resumably (the
/// explainers and the skipping rules are in Sources/Engine/Explain/).
enum ExplainCommand {
    static func run(_ a: inout Arguments) throws {
        let json = a.flag("--json")
        let redo = a.flag("--redo")
        let showPrompt = a.flag("--show-prompt")
        let ws = try WorkspaceCommands.workspace(&a)
        let spec = try a.option("--latents") ?? "all"
        let kind = try a.option("--explainer") ?? "llm"
        let explainerModel = try a.option("--explainer-model")
        let candidates = try a.int("--candidates", default: 1, range: 1...16)
        let temperature = try a.double("--temperature", default: 0.8)
        let reportHeldOut = a.flag("--report-heldout")
        let searchKind = candidates > 1 || a.has("--simulator") ? try SimulateCommand.simulatorKind(&a, workspace: ws) : nil
        let rest = try a.positionals()
        guard rest.isEmpty else { throw UserError("explain: unexpected '\(rest[0])'; choose latents with --latents SPEC") }
        guard kind == "llm" || kind == "lexical" else { throw UserError("explain: --explainer takes llm or lexical, not '\(kind)'") }
        if kind == "lexical" && explainerModel != nil { throw UserError("explain: --explainer-model belongs to --explainer llm") }
        if kind == "lexical" && candidates > 1 { throw UserError("explain: --candidates belongs to --explainer llm") }
        guard temperature > 0 && temperature <= 5 else { throw UserError("explain: --temperature takes a number in (0, 5], not \(temperature)") }

        let service = EngineService(workspace: ws, notice: Console.progress)
        let latents: [Int]
        do { latents = try LatentSelection.resolve(spec, counts: try service.counts()) } catch let e as LatentSelectionError { throw UserError("explain: " + e.description) }
        let store = try service.explanations()

        // The windows hold the workspace model's token ids; the explainer may be another model.
        let basePath = try service.resolvedModelPath()
        let explainer: Explainer
        var heldOut: (evaluator: Evaluator, simulator: SimulatorBackend, kind: SimulatorKind)?
        var comparisons: [(chosen: Double?, greedy: Double?, lexical: Double?, chosenOrigin: String)] = []
        if kind == "lexical" {
            explainer = LexicalExplainer(vocabulary: TokenVocabulary(tokenizer: try BPETokenizer(gguf: GGUFFile(path: basePath))))
        } else {
            let prompt = try ExplainerPrompt.load()
            let session = try Session(modelPath: explainerModel ?? basePath, progress: Console.progress)
            let base = explainerModel == nil ? session.tokenizer : try BPETokenizer(gguf: GGUFFile(path: basePath))
            let llm = try LLMExplainer(session: session, vocabulary: TokenVocabulary(tokenizer: base), prompt: prompt)
            if let searchKind, candidates > 1 {
                // The simulator runs the workspace's model (the explainer may be another one).
                let simSession = explainerModel == nil ? session : try Session(modelPath: basePath, batch: LocalSimulator.batchRows, progress: Console.progress)
                let search = SearchingExplainer(llm: llm, lexical: LexicalExplainer(vocabulary: TokenVocabulary(tokenizer: base)),
                                                simulator: try Simulators.make(searchKind, workspace: ws, session: simSession), kind: searchKind)
                search.candidates = candidates
                search.temperature = Float(temperature)
                explainer = search
                if reportHeldOut { heldOut = (try Evaluator(workspace: ws, tokenizer: base), search.simulator, searchKind) }
            } else {
                explainer = llm
            }
        }

        let reporter = ProgressBar()
        let clearLine = isatty(STDERR_FILENO) != 0 && isatty(STDOUT_FILENO) != 0
        let summary = try ExplainJob.run(latents: latents, explainer: explainer, records: service.record, store: store, redo: redo, reporter: reporter) { latent, text in
            guard !json else { return }
            if clearLine { Console.status("", after: "\r\u{1B}[K", newline: false) }
            if showPrompt, let llm = explainer as? LLMExplainer, let r = try? service.record(latent) {
                Console.print("--- latent \(latent) prompt (\(llm.lastPromptTokens) tokens) ---\n" + llm.promptText(r) + "\n---")
            }
            if let search = explainer as? SearchingExplainer {
                let c = search.lastCandidates
                func r(_ x: Double?) -> String { x.map { String(format: "%+.2f", $0) } ?? "  – " }
                Console.print(String(format: "%6d  ", latent) + text + "  [\(c[0].origin), training r \(r(c[0].trainingPearson)); "
                              + c.dropFirst().map { "\($0.origin) \(r($0.trainingPearson))" }.joined(separator: ", ") + "]")
            } else {
                Console.print(String(format: "%6d  ", latent) + text)
            }
            // The held-out comparison, for reporting only (the choice never sees these windows).
            if let h = heldOut, let search = explainer as? SearchingExplainer {
                func r(_ t: String) -> Double? {
                    guard let (set, _, sim) = try? h.evaluator.simulateSet(latent: latent, text: t, backend: h.simulator, kind: h.kind, calibration: .none)
                    else { return nil }
                    return Detection.pearson(sim.flatMap { $0 }, set.flatMap(\.activations))
                }
                let c = search.lastCandidates
                let greedy = c.first { $0.origin == "greedy" }!, lexical = c.first { $0.origin == "lexical" }!
                comparisons.append((r(c[0].text), r(greedy.text), r(lexical.text), c[0].origin))
            }
        }
        report(summary, json: json)
        if !comparisons.isEmpty {
            let full = comparisons.compactMap { x -> (Double, Double, Double, String)? in
                guard let a = x.chosen, let b = x.greedy, let c = x.lexical else { return nil }
                return (a, b, c, x.chosenOrigin)
            }
            func mean(_ xs: [Double]) -> Double { xs.isEmpty ? 0 : xs.reduce(0, +) / Double(xs.count) }
            let wins = Dictionary(grouping: full, by: { $0.3.hasPrefix("sample") ? "sample" : $0.3 }).mapValues(\.count)
            Console.print(String(format: "held-out r (uncalibrated, %d latents): chosen %.3f, first LLM answer (greedy) %.3f, lexical %.3f; chosen: ",
                                 full.count, mean(full.map(\.0)), mean(full.map(\.1)), mean(full.map(\.2)))
                          + wins.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
        }
        if summary.stopped { throw UserError("interrupted; every explanation made so far is saved — run the same command again to continue") }
    }

    static func report(_ s: ExplainJob.Summary, json: Bool) {
        let perLatent = s.explained > 0 ? s.seconds / Double(s.explained) : 0
        if json {
            Console.print(JSON.object([("explained", .int(s.explained)), ("skipped", .int(s.skipped)), ("seconds", .number(s.seconds)),
                                       ("source", .string(s.source.rawValue)), ("seconds_per_latent", .number(perLatent)),
                                       ("already_explained", .int(s.done)), ("kept_personal", .int(s.personal)),
                                       ("never_fire", .int(s.dead)), ("stopped", .bool(s.stopped))]).text)
            return
        }
        var parts = ["\(s.explained) latents explained (\(s.source)) in \(ProgressBar.duration(s.seconds))"
            + (s.explained > 0 ? String(format: ", %.3f s per latent", perLatent) : "")]
        if s.done > 0 { parts.append("\(s.done) already had a \(s.source) explanation (--redo redoes them)") }
        if s.personal > 0 { parts.append("\(s.personal) kept their user's own explanation") }
        if s.dead > 0 { parts.append("\(s.dead) never fire") }
        Console.print(parts.joined(separator: "; "))
    }
}
