import Engine
import Foundation
import Storage
import Transcoder

/// `loupe rewrite`: the partial rewrite on the workspace (Sources/Storage/RewriteReport.swift and
/// RewriteExperiment.swift): a table of every setting with its CE, the delta over the base model
/// and its bootstrap interval, and whether it can be told apart from zero ablation. Resumable:
/// simulations are cached, so Ctrl-C and the same command again continue. `--per-latent` instead
/// fills in the per-latent loss delta of every latest score that lacks one.
enum RewriteCommand {
    static func run(_ a: inout Arguments) throws {
        let json = a.flag("--json")
        let perLatent = a.flag("--per-latent")
        let modelPath = try a.option("--model")
        let ws = try WorkspaceCommands.workspace(&a)
        var options = RewriteOptions()
        if let text = try a.option("--fractions") {
            let values = text.split(separator: ",").map { Double($0.trimmingCharacters(in: .whitespaces)) }
            guard !values.isEmpty, values.allSatisfy({ $0 != nil && $0! > 0 && $0! <= 1 }) else {
                throw UserError("--fractions takes numbers in (0, 1] separated by commas, e.g. 0.01,0.1,1; not '\(text)'")
            }
            options.fractions = values.map { $0! }
        }
        if let text = try a.option("--select") {
            guard text == "both" || RewriteSelection(rawValue: text) != nil else { throw UserError("--select takes score, random or both, not '\(text)'") }
            options.selections = text == "both" ? RewriteSelection.allCases : [RewriteSelection(rawValue: text)!]
        }
        if let text = try a.option("--calibration") {
            guard text == "both" || Calibration(rawValue: text) != nil else { throw UserError("--calibration takes none, quantile or both, not '\(text)'") }
            options.calibrations = text == "both" ? Calibration.allCases : [Calibration(rawValue: text)!]
        }
        let windows = try a.option("--windows").map { t -> Int in
            guard let n = Int(t), n >= 1 else { throw UserError("rewrite: --windows takes a whole number ≥ 1, not '\(t)'") }
            return n
        }
        options.length = try a.int("--length", default: options.length, range: 2...4096)
        let kind = try SimulateCommand.simulatorKind(&a, workspace: ws)
        options.mode = kind
        options.windows = windows ?? RewriteOptions.defaultWindows(for: kind)
        let rest = try a.positionals()
        guard rest.isEmpty else { throw UserError("rewrite: unexpected '\(rest[0])'") }

        let service = EngineService(workspace: ws, modelPath: modelPath, notice: Console.progress)
        _ = try service.cache()
        if perLatent { return try fillLatentDeltas(service, json: json) }

        let reporter = ProgressBar(quiet: json)
        var stage = ""
        let report: RewriteReport
        do {
            report = try service.rewrite(options, progress: { p in
                if p.stage != stage {
                    if !stage.isEmpty { reporter.end(stage, summary: "done") }
                    stage = p.stage
                    reporter.begin(p.stage, total: p.total, unit: p.stage == "simulate" ? "latents" : "settings")
                }
                reporter.advance(p.done, detail: p.detail)
            }, shouldStop: { reporter.shouldStop })
        } catch is CancellationError {
            Console.print("stopped; the simulations so far are kept: run the same command again to continue")
            return
        }
        reporter.end(stage, summary: "done")
        if json {
            Console.print(reportJSON(report, path: RewriteReport.url(ws).path).text)
        } else {
            for line in table(report) { Console.print(line) }
        }
    }

    /// The table `loupe rewrite` prints, then its method and timing lines.
    static func table(_ r: RewriteReport) -> [String] {
        let tokens = r.windows.reduce(0) { $0 + $1.tokens.count - 1 }
        let site = r.dictionarySite
        var lines = ["dictionary: \(site.title(layer: r.layer))",
                     "setting                   latents      CE  Δ vs base [95% interval]        Δ vs zero abl. [95% interval]    ≠ zero abl.   "
                     + "Δ vs latents off [95% interval]  < latents off"]
        for x in r.results {
            let vsZero = x.setting.kind == .zeroAblation || x.setting.kind == .base ? "" :
                String(format: "%+.4f [%+.4f, %+.4f]", x.vsZero, x.vsZeroLow, x.vsZeroHigh)
            let differs = x.setting.kind == .zeroAblation || x.setting.kind == .base ? "" : (x.distinguishableFromZero ? (x.vsZero < 0 ? "yes, better" : "yes, worse") : "no")
            let latents = x.setting.kind == .simulated ? String(x.latents) : ""
            lines.append(SimulateCommand.pad(r.label(x.setting), 24) + String(repeating: " ", count: max(0, 8 - latents.count)) + latents
                         + String(format: "  %6.4f  ", x.ce)
                         + SimulateCommand.pad(x.setting.kind == .base ? "" : String(format: "%+.4f [%+.4f, %+.4f]", x.delta, x.deltaLow, x.deltaHigh), 30)
                         + "  " + SimulateCommand.pad(vsZero, 31) + "  " + SimulateCommand.pad(differs, 12)
                         + (x.vsLatentsOff.map { v in
                             "  " + SimulateCommand.pad(String(format: "%+.4f [%+.4f, %+.4f]", v, x.vsLatentsOffLow ?? .nan, x.vsLatentsOffHigh ?? .nan), 31)
                                 + "  " + (x.beatsLatentsOff == true ? "yes" : "no")
                         } ?? ""))
        }
        let t = r.timing
        lines.append("method: \(r.windows.count) held-out windows of \(r.options.length) tokens (\(tokens) predicted tokens), at the fractions 0, 1/2, 1/4, 3/4, … of the held-out split; "
                     + "\(site.place(layer: r.layer)) replaced by the \(site.kind)'s output\(site.skipsFirstPosition ? " (each window's first position kept)" : ""); fractions of the \(r.population) latents with an explanation (\(r.scored) with a score rank first under 'score', "
                     + "the rest in random order); simulator \(r.backend), mode \(r.options.mode); intervals: \(r.options.bootstrap) bootstrap resamples of the windows, "
                     + "2.5–97.5th percentiles; zero and mean ablation set \(site.ablated) to 0 or to its mean over these windows; latents off keeps only the \(site.kind)'s "
                     + "\(site.reconstructsInput ? "decoder bias" : "skip path and decoder bias").")
        let simRate = t.simulationSeconds > 0 ? Double(t.predictions) / t.simulationSeconds : 0
        let forwardRate = t.forwardSeconds > 0 ? Double(t.forwardTokens) / t.forwardSeconds : 0
        lines.append("time: \(ProgressBar.duration(t.totalSeconds)) total; simulation \(ProgressBar.duration(t.simulationSeconds)) "
                     + "(\(t.latentsSimulated) latents simulated, \(t.latentsReused) reused from the cache, \(t.predictions) predictions, "
                     + String(format: "%.1f", simRate) + " per s); forward passes \(ProgressBar.duration(t.forwardSeconds)) "
                     + "(\(t.forwardTokens) tokens, " + String(format: "%.0f", forwardRate) + " per s)")
        return lines
    }

    static func settingJSON(_ x: RewriteResult) -> JSON {
        func n(_ x: Double) -> JSON { x.isFinite ? .number(x) : .null }
        func n(_ x: Double?) -> JSON { x.map(n) ?? .null }
        var pairs: [(String, JSON)] = [("setting", .string(x.setting.label)), ("kind", .string(x.setting.kind.rawValue))]
        pairs.append(("fraction", x.setting.fraction.map { .number($0) } ?? .null))
        pairs.append(("selection", x.setting.selection.map { .string($0.rawValue) } ?? .null))
        pairs.append(("calibration", x.setting.calibration.map { .string($0.rawValue) } ?? .null))
        pairs += [("latents", .int(x.latents)), ("ce", n(x.ce)), ("delta", n(x.delta)), ("delta_low", n(x.deltaLow)), ("delta_high", n(x.deltaHigh))]
        pairs += [("vs_zero", n(x.vsZero)), ("vs_zero_low", n(x.vsZeroLow)), ("vs_zero_high", n(x.vsZeroHigh))]
        pairs.append(("distinguishable_from_zero_ablation", .bool(x.distinguishableFromZero)))
        pairs += [("vs_latents_off", n(x.vsLatentsOff)), ("vs_latents_off_low", n(x.vsLatentsOffLow)), ("vs_latents_off_high", n(x.vsLatentsOffHigh))]
        pairs.append(("beats_latents_off", x.beatsLatentsOff.map { .bool($0) } ?? .null))
        return .object(pairs)
    }

    static func reportJSON(_ r: RewriteReport, path: String) -> JSON {
        func n(_ x: Double) -> JSON { x.isFinite ? .number(x) : .null }
        return .object([
            ("windows", .int(r.windows.count)), ("length", .int(r.options.length)), ("population", .int(r.population)), ("scored", .int(r.scored)),
            ("backend", .string(r.backend)), ("mode", .string(r.options.mode.storedMode)), ("layer", .int(r.layer)),
            ("kind", .string(r.dictionarySite.kind)), ("site", .string(r.dictionarySite.rawValue)),
            ("hookpoint", .string(r.dictionarySite.hookpoint(layer: r.layer))), ("bootstrap", .int(r.options.bootstrap)),
            ("settings", .array(r.results.map(settingJSON))),
            ("timing", .object([("total_seconds", n(r.timing.totalSeconds)), ("simulation_seconds", n(r.timing.simulationSeconds)),
                                ("latents_simulated", .int(r.timing.latentsSimulated)), ("latents_reused", .int(r.timing.latentsReused)),
                                ("predictions", .int(r.timing.predictions)), ("forward_seconds", n(r.timing.forwardSeconds)),
                                ("forward_tokens", .int(r.timing.forwardTokens))])),
            ("report", .string(path)),
        ])
    }

    /// For every latent's latest score of its current explanation without a loss delta: the delta
    /// of replacing just that latent by its stored simulation on its scoring windows.
    static func fillLatentDeltas(_ service: EngineService, json: Bool) throws {
        let current = try service.explanations().allCurrent()
        let scores = try service.scores()
        let splice = try service.splice()
        let todo = current.keys.sorted().compactMap { l -> LatentScores? in
            guard let s = scores.history(latent: l).last(where: { $0.version == current[l]!.id }), s.lossDelta == nil else { return nil }
            return s
        }
        let reporter = ProgressBar(quiet: json)
        reporter.begin("loss deltas", total: todo.count, unit: "latents")
        var done = 0, missing = 0
        for s in todo {
            if reporter.shouldStop { Console.print("stopped; run the same command again to continue"); return }
            guard let sim = scores.simulation(for: s) else { missing += 1; continue }
            var updated = s
            updated.lossDelta = try splice.singleLatentDelta(latent: s.latent, windows: sim.windows.map(\.tokens), values: sim.windows.map(\.simulated))
            try scores.update(updated)
            done += 1
            reporter.advance(done, detail: String(format: "latent %d Δ %+.4f", s.latent, updated.lossDelta!))
        }
        reporter.end("loss deltas", summary: "\(done) latents")
        let deltas = current.keys.compactMap { l in scores.history(latent: l).last(where: { $0.version == current[l]!.id })?.lossDelta }
        let mean = deltas.isEmpty ? 0 : deltas.reduce(0, +) / Double(deltas.count)
        if json {
            Console.print(JSON.object([("computed", .int(done)), ("without_simulation", .int(missing)), ("latents_with_delta", .int(deltas.count)),
                                       ("mean_delta", .number(mean)), ("hurting", .int(deltas.filter { $0 > 0 }.count))]).text)
        } else {
            Console.print(String(format: "%d loss deltas computed (%d scores had no stored simulation); %d latents have one, mean %+.5f nats, %d hurt (Δ > 0)",
                                 done, missing, deltas.count, mean, deltas.filter { $0 > 0 }.count))
        }
    }
}
