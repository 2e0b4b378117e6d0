import Engine
import Foundation
import Storage

/// `loupe train-simulator`: the trained simulator's heads from the workspace's own explanations
/// and cache windows (Sources/Engine/Simulate/SimulatorTrainer.swift), saved to `simulator/`. Resumable:
/// Ctrl-C saves the statistics gathered, the same command continues.
enum TrainSimulatorCommand {
    static func run(_ a: inout Arguments) throws {
        let json = a.flag("--json")
        let detectionOnly = a.flag("--detection-only")
        let modelPath = try a.option("--model")
        let ws = try WorkspaceCommands.workspace(&a)
        var o = SimulatorTrainingOptions()
        if let text = try a.option("--layers") {
            let layers = text.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !layers.isEmpty, layers.count == text.split(separator: ",").count else {
                throw UserError("train-simulator: --layers takes comma-separated layer numbers such as 21,29, not '\(text)'")
            }
            o.layers = layers.sorted()
        }
        o.folds = try a.int("--folds", default: o.folds, range: 3...20)
        o.topWindows = try a.int("--top-windows", default: o.topWindows, range: 0...40)
        o.quantileWindows = try a.int("--quantile-windows", default: o.quantileWindows, range: 0...10)
        o.randomWindows = try a.int("--random-windows", default: o.randomWindows, range: 0...20)
        if let cap = try a.option("--max-latents") {
            guard let n = Int(cap), n >= 10 else { throw UserError("train-simulator: --max-latents takes a number ≥ 10, not '\(cap)'") }
            o.maxLatents = n
        }
        let rest = try a.positionals()
        guard rest.isEmpty else { throw UserError("train-simulator: unexpected '\(rest[0])'") }
        let service = EngineService(workspace: ws, modelPath: modelPath, notice: Console.progress)
        _ = try service.cache()
        let trainer = try SimulatorTrainer(workspace: ws, session: try service.session(), options: o)
        let reporter = ProgressBar(quiet: json)
        var begun = false
        let config: TrainedSimulatorConfig
        do {
            if detectionOnly {
                config = try trainer.redoDetection(progress: { done, total in
                    if !begun { reporter.begin("detection thresholds", total: total, unit: "explanations"); begun = true }
                    reporter.advance(done, detail: "")
                }, shouldStop: { reporter.shouldStop })
            } else {
                (config, _) = try trainer.run(progress: { done, total, detail in
                    if !begun { reporter.begin("train-simulator", total: total, unit: "explanations"); begun = true }
                    reporter.advance(done, detail: detail)
                }, note: { reporter.note($0) }, shouldStop: { reporter.shouldStop })
            }
        } catch is CancellationError {
            throw UserError(detectionOnly ? "train-simulator: interrupted; the heads and their thresholds are unchanged"
                            : "train-simulator: interrupted; the statistics gathered so far are kept — run the same command again to continue")
        }
        guard let t = config.training else { throw UserError("train-simulator: \(ws.simulatorConfigURL.path) has no training block; train anew") }
        reporter.end(detectionOnly ? "detection thresholds" : "train-simulator", summary: "\(t.examples) explanations of \(t.latents) latents")
        let oof = t.outOfFoldPearson.compactMap { $0 }
        if json {
            Console.print(JSON.object([
                ("directory", .string(ws.simulatorDirectory.path)), ("latents", .int(t.latents)), ("examples", .int(t.examples)),
                ("windows", .int(t.windows)), ("tokens", .int(t.tokens)), ("seconds", .number(t.seconds)),
                ("layers", .array(config.layers.map { .int($0) })), ("features", .int(config.featureCount)), ("folds", .int(config.folds)),
                ("alphas", .array(t.alphas.map { .number($0) })),
                ("out_of_fold_pearson", .array(t.outOfFoldPearson.map { $0.map { .number($0) } ?? .null })),
                ("detection", t.detection.map { .array($0.map { .number($0) }) } ?? .null),
                ("detection_balanced_accuracy", t.detectionBalancedAccuracy.map { .array($0.map { $0.map { .number($0) } ?? .null }) } ?? .null),
            ]).text)
            return
        }
        Console.print("trained simulator in \(ws.simulatorDirectory.path): \(t.examples) explanations of \(t.latents) latents, "
                      + "\(t.windows) windows, \(t.tokens) tokens, \(ProgressBar.duration(t.seconds))")
        Console.print("reads layers \(config.layers.map(String.init).joined(separator: ", ")) (\(config.featureCount) features); "
                      + "\(config.folds) heads, each fitted without its fold's latents; penalties "
                      + t.alphas.map { String(format: "%g", $0) }.joined(separator: ", "))
        Console.print("out-of-fold Pearson r per token (training windows, before clamping): "
                      + t.outOfFoldPearson.map { $0.map { String(format: "%.3f", $0) } ?? "–" }.joined(separator: ", ")
                      + (oof.isEmpty ? "" : String(format: "; mean %.3f", oof.reduce(0, +) / Double(oof.count))))
        if let d = t.detection {
            Console.print("detected (calibration none) when a window's prediction passes "
                          + d.map { String(format: "%.2f", $0) }.joined(separator: ", ") + " of the latent's max (per head, chosen on the other folds); "
                          + "balanced accuracy on each head's own fold: "
                          + (t.detectionBalancedAccuracy ?? []).map { $0.map { String(format: "%.3f", $0) } ?? "–" }.joined(separator: ", "))
        }
        Console.print("score with it: loupe score --simulator trained (held-out windows, with controls)")
    }
}
