import Foundation
import Kernels
import Storage
import Transcoder

/// Runs the partial rewrite (settings and report in Rewrite.swift) on a workspace:
/// 1. windows: `options.windows` held-out corpus windows spread over the held-out split (see
///    `windows`), their first `options.length` tokens;
/// 2. simulate: every latent some setting replaces (with f = 1, every latent that has an
///    explanation) on every window, through the simulation cache (reused across runs, so an
///    interrupted experiment resumes where it stopped);
/// 3. forward: the windows once up to the splice, then the whole model once per setting.
/// The calibrations apply to the same simulations; the selections only order the latents.
public final class RewriteExperiment {
    public struct Progress: Sendable {
        /// "simulate" or "forward".
        public var stage: String
        public var done: Int
        public var total: Int
        public var detail: String
    }

    public let workspace: Workspace
    public let splice: Splice
    public let backend: SimulatorBackend
    public let options: RewriteOptions
    let tokenText: (Int) -> String
    /// Told, once per run, each log with damaged lines (explanations, scores, the simulation cache).
    public var notice: (String) -> Void = { _ in }

    public init(workspace: Workspace, splice: Splice, backend: SimulatorBackend, tokenText: @escaping (Int) -> String,
                options: RewriteOptions) throws {
        guard !options.fractions.isEmpty, options.fractions.allSatisfy({ $0 > 0 && $0 <= 1 }) else {
            throw RewriteError.badFractions
        }
        guard options.windows >= 1 else { throw RewriteError.noWindows }
        guard options.length >= 2 else { throw RewriteError.windowsTooShort }
        guard !options.selections.isEmpty, !options.calibrations.isEmpty else {
            throw RewriteError.nothingChosen
        }
        self.workspace = workspace
        self.splice = splice
        self.backend = backend
        self.tokenText = tokenText
        self.options = options
    }

    /// The experiment's windows: held-out windows at the fractions 0, 1/2, 1/4, 3/4, 1/8, 5/8, …
    /// of the held-out split (the van der Corput sequence), the first `options.windows` of them in
    /// corpus order. So the windows of a smaller experiment are among a larger one's, and a run with
    /// more windows reuses every simulation already cached.
    public static func windows(corpus: Corpus, options: RewriteOptions) throws -> [RewriteWindow] {
        let held = corpus.heldOutWindows
        guard options.length <= corpus.windowLength else {
            throw RewriteError.windowsTooLong(length: options.length, corpusLength: corpus.windowLength)
        }
        guard options.windows <= held.count else {
            throw RewriteError.tooManyWindows(available: held.count)
        }
        var chosen: [Int] = [], seen = Set<Int>(), i = 0
        while chosen.count < options.windows {
            var x = 0.0, f = 0.5, n = i
            while n > 0 { if n & 1 == 1 { x += f }; f /= 2; n >>= 1 }
            let h = min(Int(x * Double(held.count)), held.count - 1)
            if seen.insert(h).inserted { chosen.append(h) }
            i += 1
        }
        return chosen.sorted().map { h in
            RewriteWindow(corpusWindow: held[h], start: 0, tokens: Array(corpus.window(held[h]).prefix(options.length)))
        }
    }

    /// Latents in the order a selection replaces them.
    public static func ranking(_ selection: RewriteSelection, population: [Int], score: [Int: Double], seed: UInt64) -> [Int] {
        var rng = SplitMix64(seed: seed ^ (selection == .score ? 0x5C0E : 0x7A4D))
        switch selection {
        case .random:
            var order = population
            order.shuffle(using: &rng)
            return order
        case .score:
            let scored = population.filter { score[$0] != nil }.sorted { (score[$0]!, -$0) > (score[$1]!, -$1) }
            var rest = population.filter { score[$0] == nil }
            rest.shuffle(using: &rng)
            return scored + rest
        }
    }

    /// How many latents a fraction of the population is (at least one).
    public static func count(_ fraction: Double, of population: Int) -> Int {
        min(population, max(1, Int((fraction * Double(population)).rounded())))
    }

    public func run(progress: (Progress) -> Void = { _ in }, shouldStop: () -> Bool = { false }) throws -> RewriteReport {
        let started = Clock.now
        let manifest = try workspace.load()
        let corpus = try Corpus.load(from: workspace.corpusDirectory).0
        let cache = try LatentCache(directory: workspace.cacheDirectory)
        let explanations = try ExplanationStore(workspace: workspace)
        let current = explanations.allCurrent()
        let scores = try ScoreStore(workspace: workspace)
        let windows = try Self.windows(corpus: corpus, options: options)
        let kind = options.mode
        let m = splice.transcoder.m
        let population = current.keys.filter { $0 >= 0 && $0 < m }.sorted()
        guard !population.isEmpty else {
            throw RewriteError.noExplanations
        }

        // Ranking by score: the Pearson r of the current version's latest score (any setting).
        var score: [Int: Double] = [:]
        for l in population {
            if let s = scores.history(latent: l).last(where: { $0.version == current[l]!.id && $0.pearson != nil }) { score[l] = s.pearson }
        }
        let rankings = Dictionary(uniqueKeysWithValues: options.selections.map {
            ($0, Self.ranking($0, population: population, score: score, seed: options.seed))
        })
        let most = Self.count(options.fractions.max()!, of: population.count)
        let needed = Set(rankings.values.flatMap { $0.prefix(most) }).sorted()

        // Simulate (through the cache).
        let simCache = try RewriteSimulationCache(workspace: workspace)
        for warning in [explanations.warning, scores.warning, simCache.warning].compactMap({ $0 }) { notice(warning) }
        let contexts = windows.map { RewriteSimulationCache.Context(window: $0.corpusWindow, start: $0.start, length: $0.tokens.count) }
        let simContexts = windows.map { SimulationContext(tokens: $0.tokens, texts: $0.tokens.map(tokenText)) }
        var expected: [Int: [[Float]]] = [:]
        var simulated = 0, reused = 0, predictions = 0, simSeconds = 0.0
        progress(Progress(stage: "simulate", done: 0, total: needed.count, detail: "\(needed.count) latents × \(windows.count) windows"))
        for (i, latent) in needed.enumerated() {
            if shouldStop() { throw CancellationError() }
            let version = current[latent]!
            let key = RewriteSimulationCache.Key(latent: latent, version: version.id, backend: backend.name, mode: kind)
            let missing = contexts.indices.filter { simCache.expected(key, contexts[$0]) == nil }
            if missing.isEmpty {
                reused += 1
            } else {
                let t0 = Clock.now
                let out = try backend.simulate(latent: latent, explanation: version.text, contexts: missing.map { simContexts[$0] }, mode: kind.promptMode,
                                               shouldStop: shouldStop)
                guard out.count == missing.count, zip(out, missing).allSatisfy({ $0.count == simContexts[$1].tokens.count }),
                      out.allSatisfy({ $0.allSatisfy { $0.isFinite && $0 >= -0.001 && $0 <= 9.001 } }) else {
                    throw SimulatorError.badPredictions(simulator: backend.name, latent: latent)
                }
                try simCache.append(key, zip(missing, out).map { (contexts[$0], $1) })
                simSeconds += Clock.now - t0
                simulated += 1
                predictions += out.reduce(0) { $0 + $1.count }
            }
            expected[latent] = contexts.map { simCache.expected(key, $0)! }
            progress(Progress(stage: "simulate", done: i + 1, total: needed.count, detail: "latent \(latent)"))
        }

        // Forward passes.
        let forwardStarted = Clock.now
        let settingsCount = 5 + options.calibrations.count * options.selections.count * options.fractions.count
        progress(Progress(stage: "forward", done: 0, total: settingsCount + 1, detail: "up to the splice"))
        let p = try splice.prepare(windows.map(\.tokens), shouldStop: shouldStop)
        var forwardTokens = p.rows
        func ce(_ r: Splice.Replacement?) throws -> [[Float]] {
            forwardTokens += p.rows
            return try splice.crossEntropies(p, replacement: r, shouldStop: shouldStop)
        }
        var done = 1
        func step(_ label: String) { done += 1; progress(Progress(stage: "forward", done: done, total: settingsCount + 1, detail: label)) }
        let resamples = RewriteStatistics.resamples(windows: windows.count, count: options.bootstrap, seed: options.seed)
        let base = try ce(nil); step("base")
        let zero = try ce(Splice.constant([Float](repeating: 0, count: splice.model.config.dim))); step("zero ablation")
        var results: [RewriteResult] = [
            RewriteStatistics.result(RewriteSetting(kind: .base), latents: 0, tokenCE: base, base: base, zero: zero, resamples: resamples),
        ]
        let transcoderCE = try ce(splice.transcoderReplacement(p)); step("transcoder")
        results.append(RewriteStatistics.result(RewriteSetting(kind: .transcoder), latents: 0, tokenCE: transcoderCE, base: base, zero: zero, resamples: resamples))
        results.append(RewriteStatistics.result(RewriteSetting(kind: .zeroAblation), latents: 0, tokenCE: zero, base: base, zero: zero, resamples: resamples))
        let meanCE = try ce(Splice.constant(splice.meanOutput(p))); step("mean ablation")
        results.append(RewriteStatistics.result(RewriteSetting(kind: .meanAblation), latents: 0, tokenCE: meanCE, base: base, zero: zero, resamples: resamples))
        let k = splice.transcoder.config.k
        let latentsOffCE = try ce { first, rows, y in
            let none = (indices: [Int32](repeating: 0, count: rows * k), values: [Float](repeating: 0, count: rows * k))
            self.splice.decode(p, first: first, rows: rows, codes: none, into: y)
        }
        step("latents off")
        results.append(RewriteStatistics.result(RewriteSetting(kind: .latentsOff), latents: 0, tokenCE: latentsOffCE, base: base, zero: zero,
                                                resamples: resamples))

        // The transcoder's own codes per row, to tell which latents a setting moved.
        let trueDense = FloatBuffer(count: p.rows * m)
        trueDense.pointer.update(from: p.dense.pointer, count: p.rows * m)
        let trueCodes = splice.codes(trueDense.pointer, rows: p.rows)
        let norms = splice.transcoder.decoderNorms()
        let records = Dictionary(uniqueKeysWithValues: try cache.allRecords().map { ($0.latent, $0) })

        for calibration in options.calibrations {
            // Per latent, its calibrated simulated values in row order.
            var values: [Int: [Float]] = [:]
            for latent in needed {
                guard let record = records[latent] else { continue }
                values[latent] = calibration.apply(expected[latent]!, record: record, trainTokens: cache.manifest.trainTokens).flatMap { $0 }
            }
            for selection in options.selections {
                for fraction in options.fractions {
                    let chosen = Array(rankings[selection]!.prefix(Self.count(fraction, of: population.count)))
                    let columns = chosen.compactMap { l in values[l].map { (l, $0) } }
                    var culprits = [[RewriteCulprit]](repeating: [], count: p.rows)
                    let tokenCE = try ce { first, rows, y in
                        let dense = FloatBuffer(count: rows * m)
                        dense.pointer.update(from: p.dense.pointer + first * m, count: rows * m)
                        for (latent, v) in columns { for r in 0..<rows { dense.pointer[r * m + latent] = v[first + r] } }
                        let codes = self.splice.codes(dense.pointer, rows: rows)
                        self.splice.decode(p, first: first, rows: rows, codes: codes, into: y)
                        // Which latents moved the output, against the transcoder's own codes.
                        for r in 0..<rows {
                            var moved: [Int: (sim: Float, tru: Float)] = [:]
                            for s in 0..<k {
                                let ti = Int(trueCodes.indices[(first + r) * k + s]), tv = trueCodes.values[(first + r) * k + s]
                                if tv != 0 { moved[ti, default: (0, 0)].tru = tv }
                                let si = Int(codes.indices[r * k + s]), sv = codes.values[r * k + s]
                                if sv != 0 { moved[si, default: (0, 0)].sim = sv }
                            }
                            culprits[first + r] = moved.map { RewriteCulprit(latent: $0.key, simulated: $0.value.sim, true: $0.value.tru,
                                                                              size: abs($0.value.sim - $0.value.tru) * norms[$0.key]) }
                                .filter { $0.size > 0 }
                                .sorted { ($0.size, -$0.latent) > ($1.size, -$1.latent) }
                                .prefix(3).map { $0 }
                        }
                    }
                    let perWindow = windows.indices.map { w in (0..<windows[w].tokens.count - 1).map { culprits[p.rowStart[w] + $0] } }
                    let setting = RewriteSetting.simulated(fraction, selection, calibration)
                    var result = RewriteStatistics.result(setting, latents: chosen.count, tokenCE: tokenCE, base: base, zero: zero,
                                                          resamples: resamples, culprits: perWindow)
                    let vsOff = RewriteStatistics.interval(tokenCE, minus: latentsOffCE, resamples: resamples)
                    result.vsLatentsOff = RewriteStatistics.mean(tokenCE) - RewriteStatistics.mean(latentsOffCE)
                    (result.vsLatentsOffLow, result.vsLatentsOffHigh) = (vsOff.low, vsOff.high)
                    results.append(result)
                    step(setting.label)
                }
            }
        }
        let report = RewriteReport(
            created: LogTime.format(Date()), options: options, backend: backend.name, layer: manifest.layer, site: splice.site,
            population: population.count, scored: score.count, windows: windows, results: results,
            timing: .init(simulationSeconds: simSeconds, latentsSimulated: simulated, latentsReused: reused, predictions: predictions,
                          forwardSeconds: Clock.now - forwardStarted, forwardTokens: forwardTokens, totalSeconds: Clock.now - started))
        try report.save(workspace)
        return report
    }
}
