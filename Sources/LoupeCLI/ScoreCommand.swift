import Engine
import Formats
import Foundation
import Storage
import Tokenizer

/// `loupe score`: simulate each chosen latent's current explanation on its held-out scoring set and
/// store the scores (the set, the metrics and the store are described in Sources/Storage/Scores.swift,
/// Sources/Engine/Score/Evaluator.swift and Sources/Storage/ScoreStore.swift). Resumable: a latent already scored for its current version with the same
/// mode, calibration and backend is skipped unless --redo. Ctrl-C stops after the latent in hand.
enum ScoreCommand {
    static func run(_ a: inout Arguments) throws {
        let json = a.flag("--json")
        let redo = a.flag("--redo")
        let modelPath = try a.option("--model")
        let ws = try WorkspaceCommands.workspace(&a)
        let spec = try a.option("--latents") ?? "all"
        let calibration = try SimulateCommand.calibration(&a)
        let url = try a.option("--simulator-url")
        let serverModel = try a.option("--simulator-model")
        let source = try a.option("--source").map(ExplanationSource.init(rawValue:))
        let lossDelta = !a.flag("--no-loss-delta")
        let withControls = !a.flag("--no-controls")
        let kind = url != nil && !a.has("--simulator") && !a.has("--mode") ? .promptedAll : try SimulateCommand.simulatorKind(&a, workspace: ws)
        let rest = try a.positionals()
        guard rest.isEmpty else { throw UserError("score: unexpected '\(rest[0])'; choose latents with --latents SPEC") }
        if serverModel != nil && url == nil { throw UserError("score: --simulator-model goes with --simulator-url URL") }

        let service = EngineService(workspace: ws, modelPath: modelPath, notice: Console.progress)
        let counts = try service.counts()
        let chosen: [Int]
        do { chosen = try LatentSelection.resolve(spec, counts: counts) } catch let e as LatentSelectionError { throw UserError("score: " + e.description) }
        let store = try service.explanations()
        let current = source.map { store.allLatest(source: $0) } ?? store.allCurrent()
        let latents = chosen.filter { current[$0] != nil }
        guard !latents.isEmpty else {
            if let source {
                throw UserError("score: none of the \(chosen.count) latents chosen has an explanation from '\(source)'; write them with `loupe explain --explainer \(source)`")
            }
            throw UserError("score: none of the \(chosen.count) latents chosen has an explanation; write them with `loupe explain` or `loupe explanations set`")
        }

        // The workspace's model always runs locally: it is the model the loss deltas splice into.
        let backend: SimulatorBackend
        if let url {
            guard let serverModel else { throw UserError("score: --simulator-url needs --simulator-model NAME (the model the server serves)") }
            guard kind != .trained else { throw UserError("score: a --simulator-url server runs the prompted protocol; use --simulator prompted-all or prompted-last with it") }
            let path = try service.resolvedModelPath()
            backend = try OpenAISimulator(url: url, model: serverModel, tokenizer: try service.session().tokenizer,
                                          chat: try? ChatTemplate(gguf: GGUFFile(path: path)))
        } else {
            backend = try service.simulator(kind)
        }
        // The shuffled control reads another latent's explanation of the same kind (the set scored).
        let partners = try service.shuffledPartners(current)
        let scores = try service.scores()
        func key(_ latent: Int) -> ScoreKey {
            ScoreKey(version: current[latent]!.id, mode: kind, calibration: calibration, backend: backend.name)
        }
        let todo = latents.filter { redo || scores.scores(for: key($0)) == nil }

        let reporter = ProgressBar(quiet: json)
        let clearLine = isatty(STDERR_FILENO) != 0 && isatty(STDOUT_FILENO) != 0
        let started = Clock.now
        var scored = 0, stopped = false
        reporter.begin("score", total: todo.count, unit: "latents")
        for latent in todo {
            if reporter.shouldStop { stopped = true; break }
            let result: (scores: LatentScores, record: SimulationRecord)
            do {
                result = try service.score(latent: latent, version: current[latent]!, backend: backend, kind: kind, calibration: calibration,
                                           partner: partners[latent], extras: .init(controls: withControls, lossDelta: lossDelta),
                                           shouldStop: { reporter.shouldStop })
            } catch is CancellationError { stopped = true; break }
            scored += 1
            reporter.advance(scored, detail: "latent \(latent) r=\(number(result.scores.pearson))")
            if !json {
                if clearLine { Console.status("", after: "\r\u{1B}[K", newline: false) }
                Console.print(line(result.scores, text: current[latent]!.text))
            }
        }
        let seconds = Clock.now - started
        if !stopped { reporter.end("score", summary: "\(scored) latents scored") }

        // The table covers every chosen latent scored with these settings, from this run or before.
        let results = latents.compactMap { scores.scores(for: key($0)) }
        let groups = Dictionary(grouping: results, by: \.source.rawValue).sorted { $0.key < $1.key }.map { (source: $0.key, results: $0.value) }
        let perLatent = scored > 0 ? seconds / Double(scored) : 0
        if json {
            Console.print(JSON.object([
                ("scored", .int(scored)), ("already_scored", .int(latents.count - todo.count)),
                ("without_explanation", .int(chosen.count - latents.count)), ("stopped", .bool(stopped)),
                ("seconds", .number(seconds)), ("seconds_per_latent", .number(perLatent)),
                ("simulator", .string(kind.rawValue)), ("mode", .string(kind.storedMode)), ("calibration", .string(calibration.rawValue)), ("backend", .string(backend.name)),
                ("detection_threshold", .string(Detection.threshold(calibration, digits: backend.detectionDigits))),
                ("all", summaryJSON(results)),
                ("controls", controlsJSON(results)),
                ("by_source", .object(groups.map { ($0.source, summaryJSON($0.results)) })),
            ]).text)
            return
        }
        var notes = ["\(scored) latents scored in \(ProgressBar.duration(seconds))" + (scored > 0 ? String(format: " (%.2f s per latent)", perLatent) : "")]
        if latents.count > todo.count { notes.append("\(latents.count - todo.count) already scored (--redo redoes them)") }
        if chosen.count > latents.count { notes.append("\(chosen.count - latents.count) have no explanation") }
        Console.print(notes.joined(separator: "; "))
        Console.print("\(backend.name) (--simulator \(kind.rawValue)), calibration \(calibration.rawValue); predicted to fire: \(Detection.threshold(calibration, digits: backend.detectionDigits))")
        Console.print("source      latents  pearson  balanced acc  sensitivity  specificity")
        for g in groups + (groups.count > 1 ? [(source: "all", results: results)] : []) {
            let m = means(g.results)
            Console.print(SimulateCommand.pad(g.source, 11) + String(format: " %7d", g.results.count) + "  " + [m.pearson, m.balanced, m.sensitivity, m.specificity]
                .enumerated().map { SimulateCommand.pad(number($1), [7, 12, 11, 11][$0]) }.joined(separator: "  "))
        }
        printControls(groups + (groups.count > 1 ? [(source: "all", results: results)] : []))
        if stopped { Console.print("stopped; run the same command again to continue") }
    }

    /// The controls beside the own explanation's r, per source (definitions in `ControlScores`).
    static func printControls(_ groups: [(source: String, results: [LatentScores])]) {
        let rows = groups.map { g in (g.source, ControlSummary(g.results)) }.filter { $0.1.latents > 0 }
        guard !rows.isEmpty else {
            Console.print("controls: none measured for these scores (they were made with --no-controls or before controls existed; --redo measures them)")
            return
        }
        Console.print("controls (Pearson r mean / median over latents with every control; sensitivity = own − shuffled):")
        Console.print("source      latents  own            shuffled        token prior     lexical match   sensitivity")
        for (source, c) in rows {
            func mm(_ x: (Double, Double)) -> String { SimulateCommand.pad(String(format: "%+.3f / %+.3f", x.0, x.1), 15) }
            Console.print(SimulateCommand.pad(source, 11) + String(format: " %7d  ", c.latents)
                          + [c.own, c.shuffled, c.tokenPrior, c.lexicalMatch, c.sensitivity].map(mm).joined(separator: " "))
        }
    }

    static func controlsJSON(_ results: [LatentScores]) -> JSON {
        let c = ControlSummary(results)
        func pair(_ x: (Double, Double)) -> JSON { c.latents > 0 ? .object([("mean", .number(x.0)), ("median", .number(x.1))]) : .null }
        return .object([("latents", .int(c.latents)), ("own", pair(c.own)), ("shuffled", pair(c.shuffled)), ("token_prior", pair(c.tokenPrior)),
                        ("lexical_match", pair(c.lexicalMatch)), ("sensitivity", pair(c.sensitivity))])
    }

    /// One latent's result line: id, scores, explanation.
    static func line(_ s: LatentScores, text: String) -> String {
        String(format: "%6d  r %@  bal.acc %@  sens %@  spec %@  Δloss %@  ", s.latent, number(s.pearson), number(s.balancedAccuracy),
               number(s.sensitivity), number(s.specificity), s.lossDelta.map { String(format: "%+.4f", $0) } ?? "   –   ") + text
    }

    static func number(_ x: Double?) -> String { x.map { String(format: "%5.3f", $0) } ?? "  –  " }

    /// Means over the results where each metric is defined.
    static func means(_ results: [LatentScores]) -> (pearson: Double?, sensitivity: Double?, specificity: Double?, balanced: Double?) {
        func mean(_ xs: [Double?]) -> Double? {
            let v = xs.compactMap { $0 }
            return v.isEmpty ? nil : v.reduce(0, +) / Double(v.count)
        }
        return (mean(results.map(\.pearson)), mean(results.map(\.sensitivity)), mean(results.map(\.specificity)), mean(results.map(\.balancedAccuracy)))
    }

    static func summaryJSON(_ results: [LatentScores]) -> JSON {
        let m = means(results)
        func value(_ x: Double?) -> JSON { x.map { .number($0) } ?? .null }
        return .object([("latents", .int(results.count)), ("pearson", value(m.pearson)), ("balanced_accuracy", value(m.balanced)),
                        ("sensitivity", value(m.sensitivity)), ("specificity", value(m.specificity))])
    }
}
