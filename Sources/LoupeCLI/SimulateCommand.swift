import Engine
import Foundation
import Kernels
import Model
import Storage
import Tokenizer

/// `loupe simulate`: a latent's explanation simulated on its cache windows or on any text, per
/// token beside the true activation; `loupe bench simulate`: all at once + prefix cache against the
/// last-token protocol on the same latents, contexts and model.
enum SimulateCommand {
    static func run(_ a: inout Arguments) throws {
        let json = a.flag("--json")
        let modelPath = try a.option("--model")
        let ws = try WorkspaceCommands.workspace(&a)
        guard let latentText = try a.option("--latent") else { throw UserError("simulate: give --latent N (see `loupe help`)") }
        guard let latent = Int(latentText) else { throw UserError("simulate: --latent takes a latent id, not '\(latentText)'") }
        let text = try a.option("--text")
        let windowCount = try a.int("--windows", default: 5, range: 1...80)
        let kind = try simulatorKind(&a, workspace: ws)
        let given = try a.option("--explanation")
        let calibration = try self.calibration(&a)
        let rest = try a.positionals()
        guard rest.isEmpty else { throw UserError("simulate: unexpected \(rest.joined(separator: " ")); quote the text of --text or --explanation") }

        let service = EngineService(workspace: ws, modelPath: modelPath, notice: Console.progress)
        let record = try service.record(latent)
        let explanation: (text: String, label: String)
        if let given {
            explanation = (given, "given")
        } else if let v = try service.explanations().current(latent), !v.text.isEmpty {
            explanation = (v.text, "version #\(v.id), \(v.source)")
        } else {
            throw UserError("latent \(latent) has no explanation; write one with `loupe explanations set \(latent) TEXT` or run `loupe explain` (or pass --explanation TEXT)")
        }
        let session = try service.session()
        let backend = try service.simulator(kind)

        var items: [(context: SimulationContext, truth: [Float]?, window: LatentWindow?)] = []
        if let text {
            let ids = session.tokenizer.encode(text)
            guard !ids.isEmpty else { throw UserError("simulate: --text is empty") }
            // The true activations need the workspace's transcoder; without one they are left out.
            let truth = (try? service.analyzer())
                .flatMap { try? $0.analyze(tokens: ids, maxTokens: ids.count).activations(of: latent) }
            items.append((context(ids, session.tokenizer), truth?.count == ids.count ? truth : nil, nil))
        } else {
            let windows = pick(record, count: windowCount)
            guard !windows.isEmpty else { throw UserError("latent \(latent) has no cache windows (it never fires); simulate it on --text TEXT") }
            items = windows.map { (context($0.tokens, session.tokenizer), $0.activations, $0) }
        }

        let started = Clock.now
        let out: LocalSimulator.Output
        if let prompted = backend as? LocalSimulator {
            out = try prompted.run(explanation: explanation.text, contexts: items.map(\.context), mode: kind.promptMode)
        } else {
            // The trained simulator reads one position per token; it has no digit distribution.
            let expected = try backend.simulate(latent: latent, explanation: explanation.text, contexts: items.map(\.context),
                                                mode: kind.promptMode, shouldStop: { false })
            out = LocalSimulator.Output(expected: expected, digitMass: expected.map { $0.map { _ in 1 } }, prefixTokens: 0,
                                        suffixTokens: items.reduce(0) { $0 + $1.context.tokens.count }, batches: 1)
        }
        let seconds = Clock.now - started
        let simulated = calibration.apply(out.expected, record: record, trainTokens: try service.cache().manifest.trainTokens)
        let truths = items.compactMap(\.truth)
        let pearson = truths.count == items.count ? Detection.pearson(simulated.flatMap { $0 }, truths.flatMap { $0 }) : nil
        let tokens = items.reduce(0) { $0 + $1.context.tokens.count }

        if json {
            let windows: [JSON] = items.enumerated().map { i, item in
                var pairs: [(String, JSON)] = []
                if let w = item.window {
                    pairs += [("corpus_window", .int(w.corpusWindow)), ("start", .int(w.start)), ("focus", .int(w.focus)), ("kind", .int(w.kind))]
                }
                pairs += [("tokens", .array(item.context.texts.map { .string($0) })), ("ids", .array(item.context.tokens.map { .int($0) }))]
                if let t = item.truth { pairs.append(("true", numbers(t))) }
                pairs += [("expected", numbers(out.expected[i])), ("simulated", numbers(simulated[i])), ("digit_mass", numbers(out.digitMass[i]))]
                return .object(pairs)
            }
            Console.print(JSON.object([
                ("latent", .int(latent)), ("explanation", .string(explanation.text)), ("simulator", .string(kind.rawValue)),
                ("mode", .string(kind.storedMode)), ("calibration", .string(calibration.rawValue)), ("backend", .string(backend.name)), ("windows", .array(windows)),
                ("pearson", pearson.map { .number($0) } ?? .null), ("tokens", .int(tokens)), ("seconds", .number(seconds)),
                ("prefix_tokens", .int(out.prefixTokens)), ("suffix_tokens", .int(out.suffixTokens)),
            ]).text)
            return
        }
        Console.print("latent \(latent): \"\(explanation.text)\" (\(explanation.label))")
        Console.print(String(format: "%@ (--simulator %@), calibration %@: %d tokens in %.1f s", backend.name, kind.rawValue, calibration.rawValue, tokens, seconds))
        for (i, item) in items.enumerated() {
            if let w = item.window {
                Console.print("window \(i + 1): corpus window \(w.corpusWindow), " + (w.kind == 0 ? "top" : "quantile bin \(w.kind)"))
            }
            Console.print("  token              true  simulated  expected digit (mass on digits)")
            for t in item.context.tokens.indices {
                let shown = session.tokenizer.display(item.context.tokens[t])
                let truth = item.truth.map { String(format: "%8.3f", $0[t]) } ?? "       –"
                Console.print(String(format: "  %@ %@   %8.3f   %4.2f (%.2f)", pad(shown, 16), truth, simulated[i][t], out.expected[i][t], out.digitMass[i][t]))
            }
        }
        if let pearson { Console.print(String(format: "Pearson r (simulated vs true, every token): %.3f", pearson)) }
    }

    // MARK: bench

    static func bench(_ a: inout Arguments, json: Bool, modelPath: String?) throws {
        let ws = try WorkspaceCommands.workspace(&a)
        let latentCount = try a.int("--latents", default: 8, range: 1...10_000)
        let windowCount = try a.int("--windows", default: 10, range: 1...80)
        let sample = try a.int("--uncached-prompts", default: 16, range: 0...10_000)
        let what = try a.positionals()
        guard what == ["simulate"] else { throw UserError("bench simulate: unexpected \(what.dropFirst().joined(separator: " "))") }

        let service = EngineService(workspace: ws, modelPath: modelPath, notice: Console.progress)
        let store = try service.explanations()
        let summaries = try service.summaries()
        let live = summaries.filter { $0.count > 0 }.map(\.latent)
        guard !live.isEmpty else { throw UserError("bench simulate: no latent of \(ws.directory.path) fires") }
        // Evenly spaced over the latents that fire, so the set does not depend on explanations written.
        let ids = (0..<min(latentCount, live.count)).map { live[$0 * live.count / min(latentCount, live.count)] }
        let cacheManifest = try service.cache().manifest
        let session = try service.session()
        let simulator = try LocalSimulator(session: session)

        struct Case { let latent: Int; let explanation: String; let source: String; let record: LatentRecord; let contexts: [SimulationContext]; let truth: [[Float]] }
        var cases: [Case] = []
        for id in ids {
            let r = try service.record(id)
            let windows = pick(r, count: windowCount)
            let current = store.current(id).flatMap { $0.text.isEmpty ? nil : $0 }
            let explanation = current?.text ?? lexical(summaries[id].topTokens, session.tokenizer)
            cases.append(Case(latent: id, explanation: explanation, source: current?.source.rawValue ?? "lexical (bench)", record: r,
                              contexts: windows.map { context($0.tokens, session.tokenizer) }, truth: windows.map(\.activations)))
        }
        let predictions = cases.reduce(0) { $0 + $1.contexts.reduce(0) { $0 + $1.tokens.count } }
        guard predictions > 0 else { throw UserError("bench simulate: the chosen latents have no cache windows") }

        // Warm-up: page the weights in and size the scratch buffers.
        _ = try simulator.run(explanation: cases[0].explanation, contexts: Array(cases[0].contexts.prefix(1)), mode: .allAtOnce)

        struct Measured { var seconds = 0.0; var expected: [[[Float]]] = []; var mass: [Float] = []; var prefix = 0; var suffix = 0; var batches = 0 }
        func measure(_ mode: SimulationMode) throws -> Measured {
            var m = Measured()
            for (i, c) in cases.enumerated() {
                Console.progress("bench simulate: \(mode == .allAtOnce ? "all at once" : "last token"), latent \(c.latent) (\(i + 1) of \(cases.count))")
                let t0 = Clock.now
                let out = try simulator.run(explanation: c.explanation, contexts: c.contexts, mode: mode)
                m.seconds += Clock.now - t0
                m.expected.append(out.expected)
                m.mass += out.digitMass.flatMap { $0 }
                m.prefix += out.prefixTokens
                m.suffix += out.suffixTokens
                m.batches += out.batches
            }
            return m
        }
        let all = try measure(.allAtOnce)
        let last = try measure(.lastToken)

        // The trained simulator on the same latents and windows, when the workspace has one: one
        // position per prediction, each latent read by its fold's head.
        var trained: (name: String, seconds: Double, expected: [[[Float]]])?
        if ws.hasTrainedSimulator {
            let t = try TrainedSimulator(workspace: ws, session: session)
            _ = try t.simulate(latent: cases[0].latent, explanation: cases[0].explanation, contexts: Array(cases[0].contexts.prefix(1)),
                               mode: .allAtOnce, shouldStop: { false })
            var seconds = 0.0, expected: [[[Float]]] = []
            for (i, c) in cases.enumerated() {
                Console.progress("bench simulate: trained, latent \(c.latent) (\(i + 1) of \(cases.count))")
                let t0 = Clock.now
                expected.append(try t.simulate(latent: c.latent, explanation: c.explanation, contexts: c.contexts, mode: .allAtOnce, shouldStop: { false }))
                seconds += Clock.now - t0
            }
            trained = (t.name, seconds, expected)
        }

        // The paper's cost: every last-token prompt whole, from an empty cache, one at a time; timed
        // on a sample spread over the latents (its digits are the cached ones, checked here too).
        var uncached = (seconds: 0.0, prompts: 0, tokens: 0, maxDifference: Float(0))
        let perLatent = (sample + cases.count - 1) / max(cases.count, 1)
        for (i, c) in cases.enumerated() where sample > 0 && uncached.prompts < sample {
            Console.progress("bench simulate: last token without the prefix cache, latent \(c.latent)")
            let n = min(perLatent, sample - uncached.prompts)
            let t0 = Clock.now
            let out = try simulator.runUncached(explanation: c.explanation, contexts: c.contexts, mode: .lastToken, limit: n)
            uncached.seconds += Clock.now - t0
            uncached.prompts += n
            uncached.tokens += out.prefixTokens * n + out.suffixTokens
            var left = n
            for (w, row) in out.expected.enumerated() where left > 0 {
                for t in row.indices where left > 0 {
                    uncached.maxDifference = max(uncached.maxDifference, abs(row[t] - last.expected[i][w][t]))
                    left -= 1
                }
            }
        }

        func correlations(_ m: Measured) -> [Double?] { correlations(m.expected) }
        func correlations(_ expected: [[[Float]]]) -> [Double?] {
            cases.enumerated().map { i, c in
                let sim = Calibration.none.apply(expected[i], record: c.record, trainTokens: cacheManifest.trainTokens)
                return Detection.pearson(sim.flatMap { $0 }, c.truth.flatMap { $0 })
            }
        }
        func mean(_ xs: [Double?]) -> Double? {
            let v = xs.compactMap { $0 }
            return v.isEmpty ? nil : v.reduce(0, +) / Double(v.count)
        }
        let rAll = correlations(all), rLast = correlations(last)
        let rTrained = trained.map { correlations($0.expected) }
        let ppsTrained = trained.map { Double(predictions) / $0.seconds }
        let ppsAll = Double(predictions) / all.seconds, ppsLast = Double(predictions) / last.seconds
        let ppsUncached = uncached.prompts > 0 ? Double(uncached.prompts) / uncached.seconds : nil
        let massAll = all.mass.reduce(0, +) / Float(all.mass.count), massLast = last.mass.reduce(0, +) / Float(last.mass.count)
        let windowsUsed = cases.reduce(0) { $0 + $1.contexts.count }
        let explained = cases.filter { !$0.source.hasPrefix("lexical (bench)") }.count
        let method = "\(cases.count) latents (evenly spaced over the \(live.count) that fire), \(windowsUsed) cache windows of "
            + "\(cacheManifest.displayLength) tokens (per latent up to \(windowCount): one per activation-quantile bin, highest first, then top windows), "
            + "\(predictions) predictions per mode; explanations: \(explained) current, \(cases.count - explained) lexical from the top tokens; "
            + "model \(simulator.name), \(Parallel.threads) threads, after one warm-up call. "
            + "All at once: one prompt per window, logits computed only at the rows' tabs, prefix run once per latent from where it differs from the previous latent's, "
            + "suffixes batched up to \(simulator.maxSequencesPerBatch) prompts / \(session.model.batch) rows. "
            + "Last token: one prompt per token, same prefix cache and batching, last-position logits. "
            + "Times are wall clock per latent summed, prompts and prefix passes included. "
            + "Without prefix cache: \(uncached.prompts) last-token prompts run whole from an empty cache one at a time (the paper's cost per prediction). "
            + (trained.map { "Trained: \($0.name), one forward pass per window over its prompt prefix (run once per latent) and the window as running text, "
                + "one position per prediction, residual stream read at the head's layers, each latent by the head of its fold. " } ?? "No trained simulator in the workspace (`loupe train-simulator`). ")
            + "Correlation: per latent, Pearson r of E/9·max against the true activation over every token of its windows; mean over latents."
        if json {
            func latentJSON(_ i: Int) -> JSON {
                .object([("latent", .int(cases[i].latent)), ("explanation", .string(cases[i].explanation)), ("source", .string(cases[i].source)),
                         ("pearson_all", rAll[i].map { .number($0) } ?? .null), ("pearson_last", rLast[i].map { .number($0) } ?? .null)])
            }
            Console.print(JSON.object([
                ("model", .string(simulator.name)), ("latents", .array(cases.indices.map(latentJSON))), ("windows", .int(windowsUsed)),
                ("predictions", .int(predictions)),
                ("all_at_once", .object([("seconds", .number(all.seconds)), ("predictions_per_s", .number(ppsAll)),
                                         ("pearson_mean", mean(rAll).map { .number($0) } ?? .null), ("digit_mass_mean", .number(Double(massAll))),
                                         ("prefix_tokens", .int(all.prefix)), ("suffix_tokens", .int(all.suffix)), ("batches", .int(all.batches))])),
                ("last_token", .object([("seconds", .number(last.seconds)), ("predictions_per_s", .number(ppsLast)),
                                        ("pearson_mean", mean(rLast).map { .number($0) } ?? .null), ("digit_mass_mean", .number(Double(massLast))),
                                        ("prefix_tokens", .int(last.prefix)), ("suffix_tokens", .int(last.suffix)), ("batches", .int(last.batches))])),
                ("last_token_uncached", .object([("prompts", .int(uncached.prompts)), ("seconds", .number(uncached.seconds)),
                                                 ("predictions_per_s", ppsUncached.map { .number($0) } ?? .null), ("tokens", .int(uncached.tokens)),
                                                 ("max_expected_difference", .number(Double(uncached.maxDifference)))])),
                ("trained", trained.map { t in
                    JSON.object([("model", .string(t.name)), ("seconds", .number(t.seconds)), ("predictions_per_s", .number(ppsTrained!)),
                                 ("pearson_mean", mean(rTrained!).map { .number($0) } ?? .null),
                                 ("speedup_vs_all_at_once", .number(ppsTrained! / ppsAll))])
                } ?? .null),
                ("speedup", .number(ppsAll / ppsLast)),
                ("speedup_vs_uncached", ppsUncached.map { .number(ppsAll / $0) } ?? .null),
                ("method", .string(method)),
            ]).text)
            return
        }
        func r(_ x: Double?) -> String { x.map { String(format: "%.3f", $0) } ?? "–" }
        Console.print(String(format: "all at once + prefix cache: %7.1f predictions/s (%.1f s), mean Pearson r %@, mean digit mass %.2f",
                             ppsAll, all.seconds, r(mean(rAll)), massAll))
        Console.print(String(format: "last token + prefix cache: %7.1f predictions/s (%.1f s), mean Pearson r %@, mean digit mass %.2f",
                             ppsLast, last.seconds, r(mean(rLast)), massLast))
        if let ppsUncached {
            Console.print(String(format: "last token, whole prompts: %7.1f predictions/s (%d prompts, %.1f s; digits within %.1e of the cached ones)",
                                 ppsUncached, uncached.prompts, uncached.seconds, uncached.maxDifference))
        }
        if let trained, let ppsTrained, let rTrained {
            Console.print(String(format: "trained, one position each: %7.1f predictions/s (%.1f s), mean Pearson r %@; %.1f× the predictions/s of all at once",
                                 ppsTrained, trained.seconds, r(mean(rTrained)), ppsTrained / ppsAll))
        }
        Console.print(String(format: "speed-up of all at once: %.1f× over last token with the prefix cache", ppsAll / ppsLast)
                      + (ppsUncached.map { String(format: ", %.0f× over whole last-token prompts", ppsAll / $0) } ?? ""))
        Console.print("per latent (Pearson r all / last" + (rTrained == nil ? "" : " / trained") + "): "
                      + cases.indices.map { i in "\(cases[i].latent) \(r(rAll[i]))/\(r(rLast[i]))" + (rTrained.map { "/" + r($0[i]) } ?? "") }.joined(separator: ", "))
        Console.print("method: " + method)
    }

    // MARK: shared pieces

    static func mode(_ a: inout Arguments) throws -> SimulationMode {
        guard let text = try a.option("--mode") else { return .allAtOnce }
        guard let m = SimulationMode(rawValue: text) else { throw UserError("--mode takes all or last, not '\(text)'") }
        return m
    }

    /// `--simulator trained|prompted-all|prompted-last` (the older `--mode all|last` picks a prompted
    /// one); without either, the workspace's trained simulator if it has one.
    static func simulatorKind(_ a: inout Arguments, workspace: Workspace) throws -> SimulatorKind {
        let mode = try a.option("--mode")
        if let text = try a.option("--simulator") {
            guard let k = SimulatorKind(argument: text) else { throw UserError("--simulator takes \(SimulatorKind.argumentList), not '\(text)'") }
            if mode != nil { throw UserError("give --simulator or --mode, not both") }
            return k
        }
        if let mode {
            guard let m = SimulationMode(rawValue: mode) else { throw UserError("--mode takes all or last, not '\(mode)'") }
            return SimulatorKind(prompted: m)
        }
        return Simulators.defaultKind(for: workspace)
    }

    static func calibration(_ a: inout Arguments) throws -> Calibration {
        guard let text = try a.option("--calibration") else { return .none }
        guard let c = Calibration(rawValue: text) else { throw UserError("--calibration takes none or quantile, not '\(text)'") }
        return c
    }

    /// The workspace's model unless --model says otherwise (the default model is fetched on first use).
    static func context(_ ids: [Int], _ tokenizer: BPETokenizer) -> SimulationContext {
        SimulationContext(tokens: ids, texts: ids.map { String(decoding: tokenizer.tokenBytes($0), as: UTF8.self) })
    }

    /// Up to `count` cache windows spread over the latent's range: one from each quantile bin,
    /// highest first, then top windows.
    static func pick(_ r: LatentRecord, count: Int) -> [LatentWindow] {
        var chosen: [LatentWindow] = []
        for bin in stride(from: 10, through: 1, by: -1) where chosen.count < count {
            if let w = r.windows.first(where: { $0.kind == bin }) { chosen.append(w) }
        }
        for w in r.windows where w.kind == 0 && chosen.count < count { chosen.append(w) }
        return chosen
    }

    /// A plain lexical explanation from a latent's most frequent top tokens, for latents without one.
    static func lexical(_ top: [Int], _ tokenizer: BPETokenizer) -> String {
        let shown = top.prefix(4).map { "'" + SimulatorPrompt.escaped(String(decoding: tokenizer.tokenBytes($0), as: UTF8.self)) + "'" }
        return shown.isEmpty ? "nothing in particular" : "fires on " + shown.joined(separator: ", ")
    }

    static func numbers(_ xs: [Float]) -> JSON { .array(xs.map { .number(Double($0)) }) }

    static func pad(_ s: String, _ width: Int) -> String {
        s.count >= width ? String(s.prefix(width)) : s + String(repeating: " ", count: width - s.count)
    }
}
