import Foundation
import Kernels
import Storage
import Tokenizer

/// Builds scoring sets and scores explanations in one workspace; holds the corpus, the cache and
/// the held-out index. One thread at a time.
public final class Evaluator: @unchecked Sendable {
    public let cache: LatentCache
    public let corpus: Corpus
    public let index: HeldOutIndex
    public var options: ScoringOptions
    let tokenText: (Int) -> String
    /// Corpus window → its place among the held-out windows (-1 for training windows).
    let heldPosition: [Int32]
    /// Latent records, a block file decoded once while scoring runs through latents in order.
    private let records: LatentRecordReader

    /// Opens the workspace's cache and corpus and loads (or builds, once) its held-out index.
    public convenience init(workspace: Workspace, tokenizer: BPETokenizer, options: ScoringOptions = ScoringOptions()) throws {
        try self.init(workspace: workspace, tokenText: { String(decoding: tokenizer.tokenBytes($0), as: UTF8.self) }, options: options)
    }

    public init(workspace: Workspace, tokenText: @escaping (Int) -> String, options: ScoringOptions = ScoringOptions()) throws {
        cache = try LatentCache(directory: workspace.cacheDirectory)
        records = LatentRecordReader(cache: cache, keep: 1)
        corpus = try Corpus.load(from: workspace.corpusDirectory).0
        index = try HeldOutIndex.load(cache: cache, corpus: corpus)
        self.tokenText = tokenText
        self.options = options
        var position = [Int32](repeating: -1, count: corpus.windowCount)
        for (i, w) in corpus.heldOutWindows.enumerated() { position[w] = Int32(i) }
        heldPosition = position
    }

    /// The latent's cache record (its block file is kept, so latents in order read each block once).
    public func record(_ latent: Int) throws -> LatentRecord { try records.record(latent) }

    /// The latent's scoring set (definition at the top of this file).
    public func scoringSet(latent: Int) throws -> [ScoringWindow] {
        guard latent >= 0 && latent < cache.manifest.latents else { _ = try cache.record(latent); return [] }
        let L = corpus.windowLength, D = min(cache.manifest.displayLength, L)
        let heldWindows = corpus.heldOutWindows
        let entries = index.entries(of: latent)
        var value: [Int: Float] = [:]
        for e in entries { value[e.row] = e.value }
        var rng = SplitMix64(seed: options.seed ^ (UInt64(latent) &* 0x9E37_79B9_7F4A_7C15))

        func window(held h: Int, start: Int, focus: Int?) -> ScoringWindow {
            let w = heldWindows[h]
            let tokens = (start..<start + D).map { Int(corpus.tokens[w * L + $0]) }
            return ScoringWindow(corpusWindow: w, start: start, focus: focus, tokens: tokens, texts: tokens.map(tokenText),
                                 activations: (start..<start + D).map { value[h * L + $0] ?? 0 })
        }

        var out: [ScoringWindow] = []
        var used = Set<Int>()
        let ascending = entries.sorted { $0.value < $1.value || ($0.value == $1.value && $0.row < $1.row) }
        let bins = options.activating
        for b in 0..<bins {
            let lo = ascending.count * b / bins, hi = ascending.count * (b + 1) / bins
            guard hi > lo else { continue }
            for _ in 0..<8 {
                let row = ascending[lo + Int(rng.next() % UInt64(hi - lo))].row
                guard used.insert(row / L).inserted else { continue }
                let pos = row % L, start = min(max(pos - D * 3 / 4, 0), L - D)
                out.append(window(held: row / L, start: start, focus: pos - start))
                break
            }
        }

        var pool = cache.manifest.randomPool.compactMap { p -> (held: Int, start: Int)? in
            guard p.count == 2, p[0] >= 0, p[0] < heldPosition.count, heldPosition[p[0]] >= 0, p[1] >= 0, p[1] + D <= L else { return nil }
            return (Int(heldPosition[p[0]]), p[1])
        }
        pool.shuffle(using: &rng)
        let quiet = pool.filter { p in (p.start..<p.start + D).allSatisfy { value[p.held * L + $0] == nil } }
        let loud = pool.filter { p in (p.start..<p.start + D).contains { value[p.held * L + $0] != nil } }
        for p in (quiet + loud).prefix(options.random) { out.append(window(held: p.held, start: p.start, focus: nil)) }
        return out
    }

    /// Simulates the explanation on the latent's scoring set and scores it. Throws
    /// `CancellationError` when `shouldStop` says so.
    public func evaluate(latent: Int, explanation: ExplanationVersion, backend: SimulatorBackend, mode: SimulationMode,
                         calibration: Calibration, shouldStop: () -> Bool = { false }) throws -> (LatentScores, SimulationRecord) {
        try evaluate(latent: latent, explanation: explanation, backend: backend, kind: SimulatorKind(prompted: mode),
                     calibration: calibration, shouldStop: shouldStop)
    }

    /// The same with any simulator kind (the trained one reads each latent with its fold's head).
    public func evaluate(latent: Int, explanation: ExplanationVersion, backend: SimulatorBackend, kind: SimulatorKind,
                         calibration: Calibration, shouldStop: () -> Bool = { false }) throws -> (LatentScores, SimulationRecord) {
        let started = Clock.now
        let (set, expected, simulated) = try simulateSet(latent: latent, text: explanation.text, backend: backend, kind: kind,
                                                         calibration: calibration, shouldStop: shouldStop)
        let key = ScoreKey(version: explanation.id, mode: kind, calibration: calibration, backend: backend.name)
        return Self.score(latent: latent, source: explanation.source, key: key, set: set, expected: expected, simulated: simulated,
                          calibration: calibration, detectionDigit: backend.detectionDigit(latent: latent), seconds: Clock.now - started)
    }

    /// The latent's scoring set simulated from `text`: expected digits and calibrated values.
    public func simulateSet(latent: Int, text: String, backend: SimulatorBackend, kind: SimulatorKind, calibration: Calibration,
                            shouldStop: () -> Bool = { false }) throws -> (set: [ScoringWindow], expected: [[Float]], simulated: [[Float]]) {
        let set = try scoringSet(latent: latent)
        let record = try record(latent)
        let expected = set.isEmpty ? [] : try backend.simulate(latent: latent, explanation: text, contexts: set.map(\.context),
                                                               mode: kind.promptMode, shouldStop: shouldStop)
        guard expected.count == set.count, zip(expected, set).allSatisfy({ $0.count == $1.tokens.count }) else {
            throw SimulatorError.wrongShape(simulator: backend.name, latent: latent)
        }
        guard expected.allSatisfy({ $0.allSatisfy { $0.isFinite && $0 >= -0.001 && $0 <= 9.001 } }) else {
            throw SimulatorError.digitsOutOfRange(simulator: backend.name, latent: latent)
        }
        return (set, expected, calibration.apply(expected, record: record, trainTokens: cache.manifest.trainTokens))
    }

    /// The controls of a score (`ControlScores`): the same scoring set simulated from another
    /// latent's explanation, from an empty one, and by the model-free lexical match of the own.
    public func controls(latent: Int, own: String, shuffled: (latent: Int, text: String)?, backend: SimulatorBackend, kind: SimulatorKind,
                         calibration: Calibration, shouldStop: () -> Bool = { false }) throws -> ControlScores {
        func r(_ text: String, _ b: SimulatorBackend) throws -> Double? {
            let (set, _, simulated) = try simulateSet(latent: latent, text: text, backend: b, kind: kind, calibration: calibration, shouldStop: shouldStop)
            return Detection.pearson(simulated.flatMap { $0 }, set.flatMap(\.activations))
        }
        return ControlScores(shuffled: try shuffled.flatMap { try r($0.text, backend) }, shuffledLatent: shuffled?.latent,
                             tokenPrior: try r("", backend), lexicalMatch: try r(own, LexicalMatchSimulator()))
    }

    /// The metrics of a simulated scoring set (pure; `evaluate` without the simulator).
    public static func score(latent: Int, source: ExplanationSource, key: ScoreKey, set: [ScoringWindow], expected: [[Float]],
                             simulated: [[Float]], calibration: Calibration, detectionDigit: Float = Detection.promptedDigit,
                             seconds: Double) -> (LatentScores, SimulationRecord) {
        var windows: [SimulationRecord.Window] = []
        var detection: [(fires: Bool, predicted: Bool)] = []
        for (i, w) in set.enumerated() {
            let predicted = w.tokens.indices.map { Detection.predicted(expected: expected[i][$0], simulated: simulated[i][$0], calibration: calibration,
                                                                        digit: detectionDigit) }
            let outcomes = w.tokens.indices.map { TokenOutcome(fires: w.activations[$0] > 0, predicted: predicted[$0]) }
            detection.append((w.activations.contains { $0 > 0 }, predicted.contains(true)))
            windows.append(.init(corpusWindow: w.corpusWindow, start: w.start, focus: w.focus, tokens: w.tokens, activations: w.activations,
                                 expected: expected[i], simulated: simulated[i], outcomes: outcomes))
        }
        let rates = Detection.rates(detection)
        let scores = LatentScores(latent: latent, version: key.version, source: source, mode: key.mode, calibration: key.calibration,
                                  backend: key.backend, pearson: Detection.pearson(simulated.flatMap { $0 }, set.flatMap(\.activations)),
                                  sensitivity: rates.sensitivity, specificity: rates.specificity, balancedAccuracy: rates.balanced,
                                  windows: set.count, tokens: set.reduce(0) { $0 + $1.tokens.count }, seconds: seconds)
        return (scores, SimulationRecord(latent: latent, key: key, windows: windows))
    }
}
