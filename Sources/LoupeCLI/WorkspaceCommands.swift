import Engine
import Foundation
import Model
import Storage
import Tokenizer

/// `loupe build`, `train`, `cache`, `info`, `latent`: the workspace from the command line.
enum WorkspaceCommands {
    static func workspace(_ a: inout Arguments) throws -> Workspace {
        Workspace(directory: try a.option("--workspace").map { URL(fileURLWithPath: $0, isDirectory: true) } ?? Workspace.defaultDirectory)
    }

    static func options(_ a: inout Arguments) throws -> BuildOptions {
        var o = BuildOptions()
        let (layerGiven, kGiven) = (a.has("--layer"), a.has("--k"))
        var corpus: [String] = []
        while let f = try a.option("--corpus") { corpus.append(f) }
        if !corpus.isEmpty {
            for f in corpus where !FileManager.default.fileExists(atPath: f) { throw UserError("corpus file \(f) does not exist") }
            o.corpusFiles = corpus
        }
        o.layer = try a.int("--layer", default: o.layer, range: 0...1000)
        let siteGiven = try a.option("--site")
        if let name = siteGiven {
            guard let site = DictionarySite(rawValue: name) else {
                throw UserError("--site takes mlp (a transcoder of the layer's MLP) or residual (an SAE on the residual stream after the layer), not '\(name)'")
            }
            o.site = site
        }
        o.latents = try a.int("--latents", default: o.latents, range: 16...1_000_000)
        o.k = try a.int("--k", default: o.k, range: 1...1024)
        o.trainTokens = try a.int("--tokens", default: o.trainTokens, range: 1024...1_000_000_000)
        o.evalWindows = try a.int("--eval-windows", default: o.evalWindows, range: 1...100_000)
        o.epochs = try a.int("--epochs", default: o.epochs, range: 1...100)
        let skipGiven = a.flag("--skip")
        if skipGiven { o.skipConnection = true }
        if a.flag("--no-skip") { o.skipConnection = false }
        if o.site == .residual {
            if skipGiven { throw UserError("--skip: an SAE has no skip path (it would learn the identity); drop --skip or --site residual") }
            o.skipConnection = false
        }
        if a.flag("--no-simulator") { o.explainAndTrainSimulator = false }
        if let lr = try a.option("--lr") {
            guard let v = Float(lr), v > 0, v < 1 else { throw UserError("--lr takes a learning rate such as 1e-3, not '\(lr)'") }
            o.trainer.learningRate = v
        }
        o.trainer.auxkAlpha = Float(try a.double("--auxk-alpha", default: Double(o.trainer.auxkAlpha)))
        o.trainer.deadThresholdTokens = try a.int("--dead-threshold", default: o.trainer.deadThresholdTokens, range: 1...Int.max)
        o.trainer.batchRows = try a.int("--batch", default: o.trainer.batchRows, range: 2...1_000_000)
        o.transcoderDirectory = try a.option("--transcoder")
        if let t = o.transcoderDirectory, !FileManager.default.fileExists(atPath: (t as NSString).appendingPathComponent("cfg.json")) {
            throw UserError("--transcoder \(t): no cfg.json there (give the folder of one hookpoint, e.g. …/layers.15.mlp)")
        }
        try DictionaryCommands.apply(&a, to: &o, layerGiven: layerGiven, kGiven: kGiven, siteGiven: siteGiven != nil)
        guard o.k < o.latents else { throw UserError("--k \(o.k) must be smaller than --latents \(o.latents)") }
        return o
    }

    /// `build` runs every step; `train` and `cache` run theirs (and what they need first).
    static func build(_ a: inout Arguments, steps: [Builder.Step]) throws {
        let json = a.flag("--json")
        let modelPath = try a.option("--model")
        let ws = try workspace(&a)
        let opts = try options(&a)
        _ = try a.positionals()
        let session = try Session(modelPath: modelPath, progress: Console.progress)
        let reporter = ProgressBar()
        let builder = Builder(workspace: ws, model: session.model, tokenizer: session.tokenizer, modelPath: session.path,
                              options: opts, reporter: reporter)
        let manifest: WorkspaceManifest
        do { manifest = try builder.run(steps) } catch is CancellationError {
            throw UserError("interrupted; everything finished so far is kept — run the same command again to resume")
        }
        // Then lexical explanations and the trained simulator, so the first scores read the explanations.
        if steps == Builder.Step.allCases && opts.explainAndTrainSimulator {
            do {
                try EngineService(workspace: ws, modelPath: modelPath, session: session, notice: Console.progress).finishBuild(reporter: reporter)
            } catch is CancellationError {
                throw UserError("interrupted; everything finished so far is kept — run the same command again to resume")
            }
            if reporter.shouldStop { throw UserError("interrupted; everything finished so far is kept — run the same command again to resume") }
        }
        if json { Console.print(infoJSON(manifest, ws).text) } else { printInfo(manifest, ws) }
    }

    static func info(_ a: inout Arguments) throws {
        let json = a.flag("--json")
        if let path = try a.option("--dictionary") { return try DictionaryCommands.info(&a, path: path, json: json) }
        let ws = try workspace(&a)
        _ = try a.positionals()
        let m = try ws.load()
        if json { Console.print(infoJSON(m, ws).text) } else { printInfo(m, ws) }
    }

    static func infoJSON(_ m: WorkspaceManifest, _ ws: Workspace) -> JSON {
        var pairs: [(String, JSON)] = [
            ("workspace", .string(ws.directory.path)), ("model", .string(m.model)), ("layer", .int(m.layer)),
            ("kind", .string(m.site.kind)), ("site", .string(m.site.rawValue)), ("dictionary", .string(m.site.title(layer: m.layer))),
            ("hookpoint", .string(m.hookpoint)), ("latents", .int(m.latents)), ("k", .int(m.k)),
            ("transcoder", .string(m.transcoderSource)), ("corpus", .array(m.corpusSources.map { .string($0) })),
            ("train_tokens", .int(m.trainTokens)), ("held_out_tokens", .int(m.heldOutTokens)),
        ]
        if let e = m.evaluation {
            pairs += [("fvu", .number(e.fvu)), ("fvu_typical", e.fvuTypical.map { .number($0) } ?? .null),
                      ("outlier_positions", e.outlierPositions.map { .int($0) } ?? .null), ("dead_fraction", .number(e.deadFraction)), ("ce_base", .number(e.ceBase)),
                      ("ce_transcoder", .number(e.ceTranscoder)), ("ce_zero_ablation", .number(e.ceZeroAblation)),
                      ("ce_mean_ablation", e.ceMeanAblation.map { .number($0) } ?? .null),
                      ("loss_recovered", .number(e.lossRecovered)), ("loss_recovered_vs_mean", e.lossRecoveredVsMean.map { .number($0) } ?? .null),
                      ("eval_tokens", .int(e.tokens))]
        }
        let steps = Builder.Step.allCases.compactMap { s -> (String, JSON)? in
            guard let st = m.steps[s.rawValue] else { return nil }
            return (s.rawValue, .object([("done", .bool(st.done)), ("seconds", .number(st.seconds)), ("tokens", .int(st.tokens)),
                                         ("tokens_per_s", .number(st.tokensPerSecond))]))
        }
        pairs.append(("steps", .object(steps)))
        return .object(pairs)
    }

    static func printInfo(_ m: WorkspaceManifest, _ ws: Workspace) {
        Console.print("workspace   \(ws.directory.path)")
        Console.print("model       \(m.model)")
        Console.print("dictionary  \(m.site.title(layer: m.layer)), \(m.latents) latents, k = \(m.k), \(m.transcoderSource)")
        Console.print("corpus      \(m.corpusSources.count == 1 ? m.corpusSources[0] : "\(m.corpusSources.count) files")")
        Console.print("tokens      \(m.trainTokens) train, \(m.heldOutTokens) held out")
        if let e = m.evaluation {
            let kind = m.site.kind, skip = m.site.skipsFirstPosition ? ", each window's first position left out" : ""
            Console.print(String(format: "FVU         %.4f (held-out tokens%@)", e.fvu, skip))
            if let typical = e.fvuTypical, let outliers = e.outlierPositions, outliers > 0 {
                Console.print(String(format: "            %.4f without the %d positions whose norm passes %.0f× the median (they hold most of the variance)",
                                     typical, outliers, WorkspaceManifest.Evaluation.outlierFactor))
            }
            Console.print(String(format: "dead        %.2f%% of latents never fire on the training tokens", e.deadFraction * 100))
            Console.print(String(format: "CE          base %.4f, %@ %.4f, zero ablation %.4f%@ (%d held-out tokens; ablated: %@)",
                                 e.ceBase, kind, e.ceTranscoder, e.ceZeroAblation,
                                 e.ceMeanAblation.map { String(format: ", mean ablation %.4f", $0) } ?? "", e.tokens, m.site.ablated))
            Console.print(String(format: "recovered   %.3f of the loss (zero − %@) / (zero − base)%@", e.lossRecovered, kind,
                                 e.lossRecoveredVsMean.map { String(format: "; %.3f against mean ablation", $0) } ?? ""))
        }
        for s in Builder.Step.allCases {
            guard let st = m.steps[s.rawValue] else { continue }
            Console.print(String(format: "step %-12@ %@ %8.1f s%@", s.rawValue, st.done ? "done" : "    ", st.seconds,
                                 st.tokens > 0 ? String(format: "  %.0f tokens/s", st.tokensPerSecond) : ""))
        }
    }

    static func latent(_ a: inout Arguments) throws {
        let json = a.flag("--json")
        let modelPath = try a.option("--model")
        let ws = try workspace(&a)
        let windows = try a.int("--windows", default: 10, range: 0...1000)
        let rest = try a.positionals()
        guard rest.count == 1, let id = Int(rest[0]) else { throw UserError("latent: give one latent id, e.g. `loupe latent 42`") }
        let service = EngineService(workspace: ws, modelPath: modelPath, notice: Console.progress)
        let cache = try service.cache()
        let r = try service.record(id)
        let tok = try service.tokenizer()
        let density = Double(r.count) / Double(max(cache.manifest.trainTokens, 1))
        if json {
            func win(_ w: LatentWindow) -> JSON {
                .object([("corpus_window", .int(w.corpusWindow)), ("start", .int(w.start)), ("focus", .int(w.focus)), ("kind", .int(w.kind)),
                         ("tokens", .array(w.tokens.map { .string(tok.decodeText([$0])) })), ("ids", .array(w.tokens.map { .int($0) })),
                         ("activations", .array(w.activations.map { .number(Double($0)) }))])
            }
            Console.print(JSON.object([
                ("latent", .int(r.latent)), ("count", .int(r.count)), ("density", .number(density)), ("max", .number(Double(r.max))),
                ("mean", .number(Double(r.mean))), ("histogram", .array(r.histogram.map { .int($0) })),
                ("quantiles", .array(r.quantiles.map { .number(Double($0)) })),
                ("promoted", .array(r.promoted.map { .object([("id", .int($0.id)), ("token", .string(tok.decodeText([$0.id]))), ("logit", .number(Double($0.logit)))]) })),
                ("suppressed", .array(r.suppressed.map { .object([("id", .int($0.id)), ("token", .string(tok.decodeText([$0.id]))), ("logit", .number(Double($0.logit)))]) })),
                ("neighbours", .array(r.neighbours.map { .object([("latent", .int($0.latent)), ("cosine", .number(Double($0.cosine)))]) })),
                ("top_windows", .array(r.windows.filter { $0.kind == 0 }.prefix(windows).map(win))),
                ("quantile_windows", .array(r.windows.filter { $0.kind > 0 }.prefix(windows).map(win))),
            ]).text)
            return
        }
        Console.print(String(format: "latent %d: fires on %d of %d training tokens (density %.5f), max %.3f, mean %.3f",
                             r.latent, r.count, cache.manifest.trainTokens, density, r.max, r.mean))
        let peak = max(r.histogram.max() ?? 1, 1)
        let bars = " ▁▂▃▄▅▆▇█"
        Console.print("histogram (0…max): " + String(r.histogram.map { bars[bars.index(bars.startIndex, offsetBy: $0 == 0 ? 0 : 1 + $0 * 7 / peak)] }))
        Console.print("promotes:   " + r.promoted.map { tok.display($0.id) + String(format: " %.2f", $0.logit) }.joined(separator: ", "))
        Console.print("suppresses: " + r.suppressed.map { tok.display($0.id) + String(format: " %.2f", $0.logit) }.joined(separator: ", "))
        Console.print("neighbours: " + r.neighbours.map { String(format: "%d (%.2f)", $0.latent, $0.cosine) }.joined(separator: ", "))
        Console.print("top windows ([[token]] = activating, (value) where the latent fires):")
        for w in r.windows.filter({ $0.kind == 0 }).prefix(windows) {
            var line = ""
            for (i, t) in w.tokens.enumerated() {
                let text = tok.display(t)
                if i == w.focus { line += "[[\(text)]]" } else { line += text }
                if w.activations[i] > 0 { line += String(format: "(%.2f)", w.activations[i]) }
            }
            Console.print("  " + line)
        }
    }
}
