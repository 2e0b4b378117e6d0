import Foundation
import Kernels
import Tokenizer

/// Scoring an explanation (the paper's step 7): simulate the latent from its explanation on
/// held-out windows and compare with the true activations.
///
/// The scoring set of a latent comes from held-out text only — the explainer saw the cache's
/// windows, which come from training text:
/// - activating windows: up to `activating` display-length windows around held-out tokens where
///   the latent fires, one drawn from each of `activating` equal-count bins of its held-out
///   activations (lowest first), so the set spans its range, not only its top; the chosen token
///   sits where the explainer's windows put it (3/4 of the way in), no corpus window twice;
/// - random windows: `random` windows of the cache's random pool (held-out text) on which the
///   latent does not fire, falling back to ones where it does for a latent that fires everywhere.
/// Both are drawn with a generator seeded by (seed, latent), so a latent's set never changes.
///
/// Metrics, over every token of the set, simulated (calibrated, activation units) against true:
/// - Pearson correlation; nil when the true activations are constant (nothing to correlate with),
///   0 when the simulation is constant but the truth is not (the explanation carries no signal).
/// - Detection, per window: it *fires* when its true maximum is > 0; it is *predicted to fire*
///   when some token's prediction passes `Detection.threshold`: expected digit E > 4.5 uncalibrated
///   (the simulated value is above half the latent's max), simulated value > 0 with quantile
///   calibration (the simulation ranks in the latent's firing fraction — so only about density ×
///   tokens of the set can be predicted to fire, as the paper's calibration intends). Sensitivity = fired windows
///   predicted to fire / fired windows; specificity = quiet windows predicted quiet / quiet windows
///   (the paper's diagnosis: low specificity, i.e. false positives); balanced accuracy = their mean.
///   Each is nil when its class is empty. The same test per token gives `TokenOutcome`, the false
///   positives and negatives the explorer highlights.
public struct ScoringWindow: Equatable, Sendable {
    public var corpusWindow: Int
    public var start: Int
    /// Index in `tokens` of the firing token it was drawn for; nil for a random window.
    public var focus: Int?
    public var tokens: [Int]
    public var texts: [String]
    /// True activations of the latent.
    public var activations: [Float]

    public var isActivating: Bool { focus != nil }
    public var context: SimulationContext { SimulationContext(tokens: tokens, texts: texts) }
}

/// Sizes of a scoring set.
public struct ScoringOptions: Equatable, Sendable {
    public var activating = 5
    public var random = 5
    public var seed: UInt64 = 11

    public init(activating: Int = 5, random: Int = 5, seed: UInt64 = 11) {
        self.activating = activating
        self.random = random
        self.seed = seed
    }
}

/// Per token: does the latent fire (true > 0) and is it predicted to (see `Detection`).
public enum TokenOutcome: String, Codable, Sendable {
    case truePositive = "tp", falsePositive = "fp", falseNegative = "fn", trueNegative = "tn"

    public init(fires: Bool, predicted: Bool) {
        switch (fires, predicted) {
        case (true, true): self = .truePositive
        case (false, true): self = .falsePositive
        case (true, false): self = .falseNegative
        case (false, false): self = .trueNegative
        }
    }
}

/// The metrics (definitions at the top of this file).
public enum Detection {
    /// Whether one token is predicted to fire, from its expected digit and calibrated value.
    public static func predicted(expected: Float, simulated: Float, calibration: Calibration) -> Bool {
        switch calibration {
        case .none: return expected > 4.5
        case .quantile: return simulated > 0
        }
    }

    /// A one-line statement of the threshold, for reports.
    public static func threshold(_ calibration: Calibration) -> String {
        switch calibration {
        case .none: return "expected digit > 4.5"
        case .quantile: return "calibrated activation > 0"
        }
    }

    /// Pearson correlation of x and y (equal lengths); nil if y is constant or there are fewer than
    /// two values, 0 if only x is constant.
    public static func pearson(_ x: [Float], _ y: [Float]) -> Double? {
        precondition(x.count == y.count, "pearson: lengths differ")
        let n = Double(x.count)
        guard x.count >= 2 else { return nil }
        let mx = x.reduce(0.0) { $0 + Double($1) } / n, my = y.reduce(0.0) { $0 + Double($1) } / n
        var sxy = 0.0, sxx = 0.0, syy = 0.0
        for i in x.indices {
            let dx = Double(x[i]) - mx, dy = Double(y[i]) - my
            sxy += dx * dy; sxx += dx * dx; syy += dy * dy
        }
        guard syy > 0 else { return nil }
        guard sxx > 0 else { return 0 }
        return max(-1, min(1, sxy / (sxx * syy).squareRoot()))
    }

    /// Sensitivity, specificity and balanced accuracy of per-window (fires, predicted) pairs.
    public static func rates(_ windows: [(fires: Bool, predicted: Bool)]) -> (sensitivity: Double?, specificity: Double?, balanced: Double?) {
        let positives = windows.filter(\.fires), negatives = windows.filter { !$0.fires }
        let sensitivity = positives.isEmpty ? nil : Double(positives.filter(\.predicted).count) / Double(positives.count)
        let specificity = negatives.isEmpty ? nil : Double(negatives.filter { !$0.predicted }.count) / Double(negatives.count)
        let balanced = sensitivity.flatMap { s in specificity.map { (s + $0) / 2 } }
        return (sensitivity, specificity, balanced)
    }
}

/// A latent's scores for one explanation version and one simulation setting.
public struct LatentScores: Codable, Equatable, Sendable {
    public var latent: Int
    /// The ExplanationVersion id scored.
    public var version: Int
    /// The version's source ("llm", "lexical", "user", …), so results can be compared by explainer.
    public var source: String
    public var mode: String
    public var calibration: String
    public var backend: String
    public var pearson: Double?
    public var sensitivity: Double?
    public var specificity: Double?
    public var balancedAccuracy: Double?
    public var windows: Int
    public var tokens: Int
    public var seconds: Double
    /// The loss delta of replacing just this latent by its simulation on its scoring windows (mean
    /// next-token cross-entropy minus the transcoder's, nats; `Splice.singleLatentDelta`); nil
    /// where it was not computed.
    public var lossDelta: Double?
    /// Byte offset of this result's SimulationRecord line in `simulations.jsonl` (set by ScoreStore).
    public var simulationOffset: Int?
    /// The controls measured with this score, where they were (`loupe score`, the explorer).
    public var controls: ControlScores?

    public var key: ScoreKey { ScoreKey(version: version, mode: mode, calibration: calibration, backend: backend) }

    enum CodingKeys: String, CodingKey {
        case latent, version, source, mode, calibration, backend, pearson, sensitivity, specificity,
             balancedAccuracy = "balanced_accuracy", windows, tokens, seconds, lossDelta = "loss_delta", simulationOffset = "simulation_offset",
             controls
    }
}

/// What tells a score that reads the explanation from one that does not, on the same scoring set
/// and with the same simulator and calibration (Pearson r each):
/// - shuffled: simulated from another latent's explanation, one of similar density
///   (`ShuffledPartners`); *explanation sensitivity* = r(own) − r(shuffled);
/// - token prior: simulated from an empty explanation (all it can know is which tokens fire in general);
/// - lexical match: the model-free `LexicalMatchSimulator` on the own explanation.
public struct ControlScores: Codable, Equatable, Sendable {
    public var shuffled: Double?
    public var shuffledLatent: Int?
    public var tokenPrior: Double?
    public var lexicalMatch: Double?

    public init(shuffled: Double?, shuffledLatent: Int?, tokenPrior: Double?, lexicalMatch: Double?) {
        self.shuffled = shuffled
        self.shuffledLatent = shuffledLatent
        self.tokenPrior = tokenPrior
        self.lexicalMatch = lexicalMatch
    }

    /// r(own) − r(shuffled).
    public func sensitivity(own: Double?) -> Double? { own.flatMap { o in shuffled.map { o - $0 } } }

    enum CodingKeys: String, CodingKey {
        case shuffled, shuffledLatent = "shuffled_latent", tokenPrior = "token_prior", lexicalMatch = "lexical_match"
    }
}

/// Mean and median of the own r and of each control over the scores that have all of them (a
/// control is nil where its simulation was constant on a constant truth, or was not measured).
public struct ControlSummary: Equatable, Sendable {
    public var latents = 0
    public var own = (0.0, 0.0), shuffled = (0.0, 0.0), tokenPrior = (0.0, 0.0), lexicalMatch = (0.0, 0.0), sensitivity = (0.0, 0.0)

    public init(_ scores: [LatentScores]) {
        let full = scores.compactMap { s -> (Double, Double, Double, Double)? in
            guard let c = s.controls, let o = s.pearson, let sh = c.shuffled, let p = c.tokenPrior, let l = c.lexicalMatch else { return nil }
            return (o, sh, p, l)
        }
        latents = full.count
        guard !full.isEmpty else { return }
        func mm(_ xs: [Double]) -> (Double, Double) {
            let s = xs.sorted()
            let median = s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
            return (s.reduce(0, +) / Double(s.count), median)
        }
        own = mm(full.map(\.0)); shuffled = mm(full.map(\.1)); tokenPrior = mm(full.map(\.2)); lexicalMatch = mm(full.map(\.3))
        sensitivity = mm(full.map { $0.0 - $0.1 })
    }

    public static func == (a: ControlSummary, b: ControlSummary) -> Bool {
        a.latents == b.latents && a.own == b.own && a.shuffled == b.shuffled && a.tokenPrior == b.tokenPrior
            && a.lexicalMatch == b.lexicalMatch && a.sensitivity == b.sensitivity
    }
}

/// For each explained latent, the one whose explanation is its shuffled control: the next latent
/// in order of firing count (the previous for the last) whose explanation text differs.
public enum ShuffledPartners {
    public static func make(texts: [Int: String], counts: [Int]) -> [Int: Int] {
        let order = texts.keys.sorted { (counts[safe: $0] ?? 0, $0) < (counts[safe: $1] ?? 0, $1) }
        var out: [Int: Int] = [:]
        for (i, m) in order.enumerated() {
            let after = order[(i + 1)...].first { texts[$0] != texts[m] }
            let before = order[..<i].reversed().first { texts[$0] != texts[m] }
            if let p = after ?? before { out[m] = p }
        }
        return out
    }
}

extension Array {
    subscript(safe i: Int) -> Element? { i >= 0 && i < count ? self[i] : nil }
}

/// What a score belongs to: an explanation version simulated one way.
public struct ScoreKey: Hashable, Codable, Sendable {
    public var version: Int
    public var mode: String
    public var calibration: String
    public var backend: String

    public init(version: Int, mode: String, calibration: String, backend: String) {
        self.version = version
        self.mode = mode
        self.calibration = calibration
        self.backend = backend
    }
}

/// The scoring windows with true and simulated activations per token, for the explorer.
public struct SimulationRecord: Codable, Equatable, Sendable {
    public struct Window: Codable, Equatable, Sendable {
        public var corpusWindow: Int
        public var start: Int
        public var focus: Int?
        public var tokens: [Int]
        public var activations: [Float]
        /// Expected digits 0…9 from the simulator.
        public var expected: [Float]
        /// Calibrated, in activation units.
        public var simulated: [Float]
        public var outcomes: [TokenOutcome]

        enum CodingKeys: String, CodingKey { case corpusWindow = "window", start, focus, tokens, activations, expected, simulated, outcomes }
    }

    public var latent: Int
    public var key: ScoreKey
    public var windows: [Window]
}

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
    /// The last block of latent records read (scoring runs through latents in order).
    private var block: (file: String, records: [LatentRecord])?

    /// Opens the workspace's cache and corpus and loads (or builds, once) its held-out index.
    public convenience init(workspace: Workspace, tokenizer: BPETokenizer, options: ScoringOptions = ScoringOptions()) throws {
        try self.init(workspace: workspace, tokenText: { String(decoding: tokenizer.tokenBytes($0), as: UTF8.self) }, options: options)
    }

    public init(workspace: Workspace, tokenText: @escaping (Int) -> String, options: ScoringOptions = ScoringOptions()) throws {
        cache = try LatentCache(directory: workspace.cacheDirectory)
        corpus = try Corpus.load(from: workspace.corpusDirectory).0
        index = try HeldOutIndex.load(cache: cache, corpus: corpus)
        self.tokenText = tokenText
        self.options = options
        var position = [Int32](repeating: -1, count: corpus.windowCount)
        for (i, w) in corpus.heldOutWindows.enumerated() { position[w] = Int32(i) }
        heldPosition = position
    }

    /// The latent's cache record (its block file is kept, so latents in order read each block once).
    public func record(_ latent: Int) throws -> LatentRecord {
        guard latent >= 0 && latent < cache.manifest.latents else { return try cache.record(latent) }
        let file = cache.manifest.files[latent / cache.manifest.blockSize]
        if block?.file != file { block = (file, try cache.records(in: file)) }
        return try block!.records.first { $0.latent == latent } ?? cache.record(latent)
    }

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
    /// `SimulationCancelled` when `shouldStop` says so.
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
        let key = ScoreKey(version: explanation.id, mode: kind.storedMode, calibration: calibration.rawValue, backend: backend.name)
        return Self.score(latent: latent, source: explanation.source, key: key, set: set, expected: expected, simulated: simulated,
                          calibration: calibration, seconds: Clock.now - started)
    }

    /// The latent's scoring set simulated from `text`: expected digits and calibrated values.
    public func simulateSet(latent: Int, text: String, backend: SimulatorBackend, kind: SimulatorKind, calibration: Calibration,
                            shouldStop: () -> Bool = { false }) throws -> (set: [ScoringWindow], expected: [[Float]], simulated: [[Float]]) {
        let set = try scoringSet(latent: latent)
        let record = try record(latent)
        let expected = set.isEmpty ? [] : try backend.simulate(latent: latent, explanation: text, contexts: set.map(\.context),
                                                               mode: kind.promptMode, shouldStop: shouldStop)
        guard expected.count == set.count, zip(expected, set).allSatisfy({ $0.count == $1.tokens.count }) else {
            throw EngineError("simulator \(backend.name) returned predictions of the wrong shape for latent \(latent)")
        }
        guard expected.allSatisfy({ $0.allSatisfy { $0.isFinite && $0 >= -0.001 && $0 <= 9.001 } }) else {
            throw EngineError("simulator \(backend.name) returned expected digits outside 0…9 for latent \(latent)")
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
    public static func score(latent: Int, source: String, key: ScoreKey, set: [ScoringWindow], expected: [[Float]],
                             simulated: [[Float]], calibration: Calibration, seconds: Double) -> (LatentScores, SimulationRecord) {
        var windows: [SimulationRecord.Window] = []
        var detection: [(fires: Bool, predicted: Bool)] = []
        for (i, w) in set.enumerated() {
            let predicted = w.tokens.indices.map { Detection.predicted(expected: expected[i][$0], simulated: simulated[i][$0], calibration: calibration) }
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

/// `cache/heldout-index.bin`: for each latent, the held-out tokens where it fires and its values
/// there, so scoring sets are drawn without rescanning the codes. Built once from
/// `codes/heldout-*.bin` (read in name order: rows run through the corpus's held-out windows in
/// order, `windowLength` per window). Little-endian:
///
///     offset 0   4 bytes   magic "LPHO"
///            4   u32       format version (1)
///            8   u32       latent count N (must equal cache.json's)
///           12   u32       held-out rows R (must equal the codes files' and the corpus's)
///           16   u32       entries E
///           20   (N + 1) × u32 offsets: latent m's entries are [offsets[m], offsets[m+1])
///                E × u32 row, then E × f32 value (rows ascending within a latent)
///
/// Derived data: rebuilt when missing or stale (older than a codes file, another N or R); a file
/// with the wrong magic, version or inconsistent sizes is reported, naming it.
public struct HeldOutIndex: Sendable {
    public static let fileName = "heldout-index.bin"
    static let magic: [UInt8] = Array("LPHO".utf8)
    static let version: UInt32 = 1

    public let rows: Int
    let offsets: [UInt32]
    let entryRows: [UInt32]
    let values: [Float]

    public var latents: Int { offsets.count - 1 }

    /// The held-out rows where the latent fires, with its values, rows ascending.
    public func entries(of latent: Int) -> [(row: Int, value: Float)] {
        (Int(offsets[latent])..<Int(offsets[latent + 1])).map { (Int(entryRows[$0]), values[$0]) }
    }

    /// Reads `heldout-index.bin`, building it first if it is missing or stale.
    public static func load(cache: LatentCache, corpus: Corpus) throws -> HeldOutIndex {
        let url = cache.directory.appendingPathComponent(fileName)
        let codes = try codeFiles(cache)
        let rows = try codes.reduce(0) { n, url in
            let size = (try? FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int) ?? 0
            guard size % (cache.manifest.k * 6) == 0 else {
                throw EngineError("\(url.path) is not a whole number of \(cache.manifest.k)-latent rows; run `loupe cache` again")
            }
            return n + size / (cache.manifest.k * 6)
        }
        guard rows == corpus.heldOutWindows.count * corpus.windowLength else {
            throw EngineError("the held-out codes in \(cache.directory.path)/codes hold \(rows) tokens, the corpus \(corpus.heldOutWindows.count * corpus.windowLength); run `loupe cache` again")
        }
        func modified(_ u: URL) -> Date { (try? FileManager.default.attributesOfItem(atPath: u.path)[.modificationDate] as? Date) ?? .distantFuture }
        let fresh = FileManager.default.fileExists(atPath: url.path) && codes.allSatisfy { modified($0) <= modified(url) }
        if fresh, let data = FileManager.default.contents(atPath: url.path) {
            let index = try decode(data, file: url.path)
            if index.latents == cache.manifest.latents && index.rows == rows { return index }
        }
        let index = try build(codes: codes, latents: cache.manifest.latents, k: cache.manifest.k, rows: rows)
        // A read-only workspace still scores; the index is built again next time.
        try? index.encoded().write(to: url, options: .atomic)
        return index
    }

    static func codeFiles(_ cache: LatentCache) throws -> [URL] {
        let dir = cache.directory.appendingPathComponent("codes", isDirectory: true)
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? [])
            .filter { $0.hasPrefix("heldout-") && $0.hasSuffix(".bin") }.sorted()
        guard !names.isEmpty else { throw EngineError("\(dir.path) has no held-out codes (heldout-*.bin); run `loupe cache` again") }
        return names.map { dir.appendingPathComponent($0) }
    }

    /// Counting sort of every (row, latent, value > 0) of the codes files by latent.
    static func build(codes: [URL], latents: Int, k: Int, rows: Int) throws -> HeldOutIndex {
        var indices: [UInt32] = [], vals: [Float16] = []
        indices.reserveCapacity(rows * k)
        vals.reserveCapacity(rows * k)
        for url in codes {
            guard let data = FileManager.default.contents(atPath: url.path) else { throw EngineError("cannot read \(url.path)") }
            data.withUnsafeBytes { raw in
                for r in 0..<data.count / (k * 6) {
                    let base = r * k * 6
                    for j in 0..<k { indices.append(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: base + 4 * j, as: UInt32.self))) }
                    for j in 0..<k { vals.append(Float16(bitPattern: UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: base + 4 * k + 2 * j, as: UInt16.self)))) }
                }
            }
        }
        var offsets = [UInt32](repeating: 0, count: latents + 1)
        for (i, m) in indices.enumerated() where vals[i] > 0 {
            guard Int(m) < latents else { throw EngineError("held-out codes name latent \(m), but the cache has \(latents); run `loupe cache` again") }
            offsets[Int(m) + 1] += 1
        }
        for m in 0..<latents { offsets[m + 1] += offsets[m] }
        var next = offsets
        var entryRows = [UInt32](repeating: 0, count: Int(offsets[latents]))
        var values = [Float](repeating: 0, count: Int(offsets[latents]))
        for (i, m) in indices.enumerated() where vals[i] > 0 {
            let slot = Int(next[Int(m)])
            entryRows[slot] = UInt32(i / k)
            values[slot] = Float(vals[i])
            next[Int(m)] += 1
        }
        return HeldOutIndex(rows: rows, offsets: offsets, entryRows: entryRows, values: values)
    }

    func encoded() -> Data {
        var d = Data(Self.magic)
        for v in [Self.version, UInt32(latents), UInt32(rows), UInt32(entryRows.count)] { withUnsafeBytes(of: v.littleEndian) { d.append(contentsOf: $0) } }
        offsets.map(\.littleEndian).withUnsafeBytes { d.append(contentsOf: $0) }
        entryRows.map(\.littleEndian).withUnsafeBytes { d.append(contentsOf: $0) }
        values.map { $0.bitPattern.littleEndian }.withUnsafeBytes { d.append(contentsOf: $0) }
        return d
    }

    static func decode(_ data: Data, file: String) throws -> HeldOutIndex {
        func bad(_ why: String) -> EngineError { EngineError("\(file) \(why); delete it and it is rebuilt") }
        guard data.count >= 20, Array(data.prefix(4)) == magic else { throw bad("is not a held-out index (bad magic)") }
        return try data.withUnsafeBytes { raw in
            func u32(_ o: Int) -> UInt32 { UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: o, as: UInt32.self)) }
            guard u32(4) == version else { throw bad("has format version \(u32(4)), not \(version)") }
            let n = Int(u32(8)), rows = Int(u32(12)), e = Int(u32(16))
            guard data.count == 20 + 4 * (n + 1) + 8 * e else { throw bad("has \(data.count) bytes, not the \(20 + 4 * (n + 1) + 8 * e) its header implies") }
            let offsets = (0...n).map { u32(20 + 4 * $0) }
            guard offsets.first == 0, Int(offsets.last!) == e, zip(offsets, offsets.dropFirst()).allSatisfy({ $0 <= $1 }) else {
                throw bad("has inconsistent offsets")
            }
            let rowBase = 20 + 4 * (n + 1), valueBase = rowBase + 4 * e
            let entryRows = (0..<e).map { u32(rowBase + 4 * $0) }
            guard entryRows.allSatisfy({ Int($0) < rows }) else { throw bad("names a row past its \(rows) rows") }
            let values = (0..<e).map { Float(bitPattern: u32(valueBase + 4 * $0)) }
            return HeldOutIndex(rows: rows, offsets: offsets, entryRows: entryRows, values: values)
        }
    }
}
