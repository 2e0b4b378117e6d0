@testable import Engine
import EngineAPI
@testable import Storage
import Foundation

extension FakeEngine {
    static let rewriteFractions = [0.1, 0.4, 1.0]

    /// A small deterministic partial-rewrite report: 2 windows of 10 tokens from the fake
    /// vocabulary (the second with wide characters and a special token), the base model, the
    /// transcoder, both ablations, and 3 fractions × (score, random) × (none, quantile) simulated,
    /// in the engine's order. Losses are made up so that score beats random, quantile beats none,
    /// more simulated latents cost more, and some tokens get easier than with the transcoder.
    static func rewriteReport() -> RewriteReport {
        let windows = [RewriteWindow(corpusWindow: 3, start: 0, tokens: [0, 1, 4, 0, 2, 10, 0, 5, 4, 9]),
                       RewriteWindow(corpusWindow: 8, start: 32, tokens: [6, 7, 11, 0, 9, 3, 0, 1, 8, 2])]
        // Per window, per position t (predicting token t + 1).
        func ce(_ f: (Int, Int) -> Float) -> [[Float]] { windows.indices.map { w in (0..<9).map { t in f(w, t) } } }
        let base = ce { w, t in 2 + Float((t * 7 + w * 3) % 10) / 10 }
        let transcoder = ce { w, t in base[w][t] + 0.1 + Float(t % 3) / 20 }
        let zero = ce { w, t in base[w][t] + 1.5 }
        let mean = ce { w, t in base[w][t] + 0.8 }
        let resamples = RewriteStatistics.resamples(windows: windows.count, count: 200, seed: 7)
        func result(_ setting: RewriteSetting, latents: Int = 0, _ tokenCE: [[Float]], culprits: [[[RewriteCulprit]]]? = nil) -> RewriteResult {
            RewriteStatistics.result(setting, latents: latents, tokenCE: tokenCE, base: base, zero: zero, resamples: resamples, culprits: culprits)
        }
        var results = [result(RewriteSetting(kind: .base), base), result(RewriteSetting(kind: .transcoder), transcoder),
                       result(RewriteSetting(kind: .zeroAblation), zero), result(RewriteSetting(kind: .meanAblation), mean)]
        for calibration: Calibration in [.none, .quantile] {
            for selection in RewriteSelection.allCases {
                for (fi, fraction) in rewriteFractions.enumerated() {
                    let slope = Float(fraction) * (selection == .score ? 1.2 : 3) * (calibration == .quantile ? 0.6 : 1)
                    // Mostly worse, a few tokens better; the second window more so, so that some settings
                    // are worse than zero ablation and some cannot be told apart from it.
                    let tokenCE = ce { w, t in transcoder[w][t] + slope * (Float((t * 5 + w * 2) % 7 - 2) / 3 + 0.5) * (w == 0 ? 0.7 : 1.3) }
                    let culprits = windows.indices.map { w in
                        (0..<9).map { t -> [RewriteCulprit] in
                            guard t % 4 != 3 else { return [] }
                            return (0..<(1 + (t + fi) % 3)).map { j in
                                RewriteCulprit(latent: (t * 3 + w * 5 + j * 11 + fi) % 40, simulated: Float(3 - j) * 0.75,
                                               true: Float(j) * 0.5, size: Float(3 - j) * 0.4 + Float(fi) * 0.1)
                            }
                        }
                    }
                    results.append(result(.simulated(fraction, selection, calibration), latents: Int((fraction * 30).rounded(.up)), tokenCE,
                                          culprits: culprits))
                }
            }
        }
        return RewriteReport(created: "2026-02-03T04:05:06.000Z",
                             options: RewriteOptions(fractions: rewriteFractions, windows: 2, length: 10, bootstrap: 200),
                             backend: "fake", layer: 2, population: 30, scored: 18, windows: windows, results: results,
                             timing: .init(simulationSeconds: 12, latentsSimulated: 30, latentsReused: 0, predictions: 600,
                                           forwardSeconds: 3, forwardTokens: 320, totalSeconds: 15))
    }
}
