import Foundation
import XCTest
@testable import Engine
@testable import Storage

/// Scoring: the metrics on hand-made arrays, the held-out index and scoring sets on a tiny workspace
/// written by the test (values worked out by hand), and the score store's round trip and torn lines.
final class ScoringTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-scoring-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    // MARK: metrics

    func testPearson() throws {
        XCTAssertEqual(try XCTUnwrap(Detection.pearson([1, 2, 3, 4], [2, 4, 6, 8])), 1, accuracy: 1e-12)
        XCTAssertEqual(try XCTUnwrap(Detection.pearson([1, 2, 3, 4], [8, 6, 4, 2])), -1, accuracy: 1e-12)
        // x = 1 2 3, y = 1 3 2: deviations (−1 0 1), (−1 1 0): 1 / √(2·2) = 0.5.
        XCTAssertEqual(try XCTUnwrap(Detection.pearson([1, 2, 3], [1, 3, 2])), 0.5, accuracy: 1e-12)
        XCTAssertEqual(Detection.pearson([4, 4, 4], [0, 1, 2]), 0, "a constant prediction carries no signal")
        XCTAssertNil(Detection.pearson([0, 1, 2], [5, 5, 5]), "nothing to correlate with")
        XCTAssertNil(Detection.pearson([1], [1]))
    }

    func testRates() throws {
        let r = Detection.rates([(true, true), (true, false), (true, true), (false, true), (false, false), (false, false), (false, false)])
        XCTAssertEqual(try XCTUnwrap(r.sensitivity), 2.0 / 3, accuracy: 1e-12)
        XCTAssertEqual(try XCTUnwrap(r.specificity), 3.0 / 4, accuracy: 1e-12)
        XCTAssertEqual(try XCTUnwrap(r.balanced), 17.0 / 24, accuracy: 1e-12)
        let onlyQuiet = Detection.rates([(false, true), (false, false)])
        XCTAssertNil(onlyQuiet.sensitivity)
        XCTAssertEqual(onlyQuiet.specificity, 0.5)
        XCTAssertNil(onlyQuiet.balanced)
    }

    func testTheBackendsDetectionDigitDecidesWhatIsPredictedToFire() {
        func w(_ acts: [Float]) -> ScoringWindow {
            ScoringWindow(corpusWindow: 0, start: 0, focus: nil, tokens: [1, 2], texts: ["a", "b"], activations: acts)
        }
        let set = [w([0, 2]), w([1, 0]), w([0, 0]), w([0, 0])]
        let expected: [[Float]] = [[0, 3], [2.5, 0], [1, 0], [2.2, 0]]
        let key = ScoreKey(version: 1, mode: .trained, calibration: .none, backend: "test")
        func rates(_ digit: Float) -> [Double?] {
            let s = Evaluator.score(latent: 0, source: "lexical", key: key, set: set, expected: expected, simulated: expected,
                                    calibration: .none, detectionDigit: digit, seconds: 0).0
            return [s.sensitivity, s.specificity]
        }
        XCTAssertEqual(rates(4.5), [0, 1], "half the scale: no window passes")
        XCTAssertEqual(rates(2), [1, 0.5], "a head's own 2.0: both firing windows and the quiet 2.2 one")
        XCTAssertEqual(rates(2.3), [1, 1])
        XCTAssertEqual(Detection.threshold(.none), "expected digit > 4.5")
        XCTAssertEqual(Detection.threshold(.none, digits: [1.8, 2.7]), "expected digit > each head's own threshold (1.80–2.70, chosen out of fold)")
        XCTAssertTrue(Detection.predicted(expected: 9, simulated: 0, calibration: .none, digit: 8.9))
        XCTAssertFalse(Detection.predicted(expected: 2, simulated: 0, calibration: .quantile, digit: 1), "quantile ignores the digit")
    }

    func testScoreOfAHandMadeSimulation() throws {
        func w(_ acts: [Float]) -> ScoringWindow {
            ScoringWindow(corpusWindow: 0, start: 0, focus: nil, tokens: [1, 2], texts: ["a", "b"], activations: acts)
        }
        let set = [w([0, 2]), w([1, 0]), w([0, 0]), w([0, 0])]
        let expected: [[Float]] = [[0, 9], [0, 0], [6, 0], [4, 0]]
        let simulated = Calibration.none.apply(expected, distribution: ActivationDistribution(zeroFraction: 0.5, quantiles: [1, 9], max: 9))
        XCTAssertEqual(simulated, expected, "uncalibrated with max 9: E/9·9")
        let key = ScoreKey(version: 7, mode: .promptedAll, calibration: .none, backend: "test")
        let (s, record) = Evaluator.score(latent: 3, source: "user", key: key, set: set, expected: expected, simulated: simulated,
                                          calibration: .none, seconds: 0.25)
        // Windows: fires+predicted, fires+missed, quiet+predicted (6 > 4.5), quiet+quiet (4 ≤ 4.5).
        XCTAssertEqual(s.sensitivity, 0.5)
        XCTAssertEqual(s.specificity, 0.5)
        XCTAssertEqual(s.balancedAccuracy, 0.5)
        // x = 0 9 0 0 6 0 4 0, y = 0 2 1 0 0 0 0 0: Sxy = 18 − 8·(19/8)(3/8), Sxx = 133 − 19²/8, Syy = 5 − 9/8.
        XCTAssertEqual(try XCTUnwrap(s.pearson), 10.875 / (87.875 * 3.875).squareRoot(), accuracy: 1e-9)
        XCTAssertEqual([s.windows, s.tokens, s.latent, s.version], [4, 8, 3, 7])
        XCTAssertEqual(s.key, key)
        XCTAssertEqual(record.windows.map(\.outcomes), [[.trueNegative, .truePositive], [.falseNegative, .trueNegative],
                                                       [.falsePositive, .trueNegative], [.trueNegative, .trueNegative]])
        XCTAssertFalse(Detection.predicted(expected: 9, simulated: 0, calibration: .quantile), "quantile: only the calibrated value counts")
        XCTAssertTrue(Detection.predicted(expected: 1, simulated: 0.1, calibration: .quantile))
    }

    // MARK: a tiny workspace

    /// 6 windows of 8 tokens (token id 100 + 8·window + position), every 2nd held out (0, 2, 4); k = 2,
    /// 3 latents, display length 4. Held-out rows 0…23: latent 1 fires 0.25 on every row; latent 0 fires
    /// 1.0 on row 5, 0.5 on row 6 (window 0), 2.0 on row 10 (window 2, position 2), 3.0 on row 23
    /// (window 4, position 7); latent 2 never fires.
    func makeWorkspace(pool: [[Int]] = [[0, 0], [2, 4], [4, 0], [4, 4], [1, 0]]) throws -> Workspace {
        let ws = Workspace(directory: dir.appendingPathComponent("ws"))
        let corpus = Corpus(windowLength: 8, heldOutEvery: 2, tokens: (0..<48).map { Int32(100 + $0) })
        try corpus.save(to: ws.corpusDirectory, sources: ["test"])
        let codes = ws.cacheDirectory.appendingPathComponent("codes")
        try FileManager.default.createDirectory(at: codes, withIntermediateDirectories: true)
        let fires: [Int: Float] = [5: 1.0, 6: 0.5, 10: 2.0, 23: 3.0]
        var data = Data()
        for row in 0..<24 {
            let (second, value): (UInt32, Float) = fires[row].map { (0, $0) } ?? (2, 0)
            for i in [UInt32(1), second] { withUnsafeBytes(of: i.littleEndian) { data.append(contentsOf: $0) } }
            for v in [Float16(0.25), Float16(value)] { withUnsafeBytes(of: v.bitPattern.littleEndian) { data.append(contentsOf: $0) } }
        }
        try data.write(to: codes.appendingPathComponent("heldout-00000.bin"))
        let m = CacheManifest(latents: 3, k: 2, blockSize: 4, displayLength: 4, histogramBins: 2, quantiles: 3, trainTokens: 100,
                              randomPool: pool, files: ["latents-00000.bin"])
        var block = Data()
        for latent in 0..<3 {
            block.append(LatentRecordCoding.encode(LatentRecord(latent: latent, count: 10, max: 3, mean: 1, histogram: [5, 5], quantiles: [0.5, 1, 3],
                                                                promoted: [], suppressed: [], neighbours: [], windows: []), manifest: m))
        }
        try block.write(to: ws.cacheDirectory.appendingPathComponent("latents-00000.bin"))
        try JSONFile.write(m, to: ws.cacheDirectory.appendingPathComponent("cache.json"))
        return ws
    }

    func evaluator(_ ws: Workspace, _ options: ScoringOptions = ScoringOptions()) throws -> Evaluator {
        try Evaluator(workspace: ws, tokenText: { "t\($0)" }, options: options)
    }

    func testHeldOutIndexIsBuiltOnceAndChecked() throws {
        let ws = try makeWorkspace()
        let e = try evaluator(ws)
        XCTAssertEqual(e.index.rows, 24)
        XCTAssertEqual(e.index.entries(of: 0).map(\.row), [5, 6, 10, 23])
        XCTAssertEqual(e.index.entries(of: 0).map(\.value), [1.0, 0.5, 2.0, 3.0])
        XCTAssertEqual(e.index.entries(of: 1).map(\.row), Array(0..<24))
        XCTAssertTrue(e.index.entries(of: 2).isEmpty)
        let url = ws.cacheDirectory.appendingPathComponent(HeldOutIndex.fileName)
        let size = try FileManager.default.attributesOfItem(atPath: url.path)[.size] as! Int
        XCTAssertEqual(size, 20 + 4 * 4 + 8 * 28)
        let reloaded = try HeldOutIndex.load(cache: e.cache, corpus: e.corpus)
        XCTAssertEqual(reloaded.entries(of: 0).map(\.row), [5, 6, 10, 23])

        var bad = try Data(contentsOf: url)
        bad[0] = UInt8(ascii: "X")
        try bad.write(to: url)
        XCTAssertThrowsError(try HeldOutIndex.load(cache: e.cache, corpus: e.corpus)) { error in
            XCTAssertTrue("\(error)".contains(url.path), "\(error)")
        }
        // Older than a codes file: stale, rebuilt.
        try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSinceNow: -60)], ofItemAtPath: url.path)
        XCTAssertEqual(try HeldOutIndex.load(cache: e.cache, corpus: e.corpus).entries(of: 0).count, 4)
        XCTAssertEqual(Array(try Data(contentsOf: url).prefix(4)), Array("LPHO".utf8))
    }

    func testScoringSetIsHeldOutFiringAndDeterministic() throws {
        let ws = try makeWorkspace()
        let e = try evaluator(ws)
        let set = try e.scoringSet(latent: 0)
        XCTAssertEqual(try e.scoringSet(latent: 0), set, "same seed, same set")
        // 4 firing tokens in 5 bins: bin 0 is empty, bin 2's token (row 5) shares window 0 with bin 1's (row 6).
        let activating = set.filter(\.isActivating)
        XCTAssertEqual(activating.map(\.corpusWindow), [0, 2, 4])
        XCTAssertEqual(activating.map(\.start), [3, 0, 4])
        XCTAssertEqual(activating.map(\.focus), [3, 2, 3])
        XCTAssertEqual(activating.map(\.activations), [[0, 0, 1, 0.5], [0, 0, 2, 0], [0, 0, 0, 3]])
        // The pool's training window (1) is dropped; windows where latent 0 is quiet come first.
        let random = set.filter { !$0.isActivating }
        XCTAssertEqual(random.count, 4)
        XCTAssertEqual(random.prefix(3).map { $0.activations.max()! }, [0, 0, 0])
        XCTAssertEqual(random.last.map { [$0.corpusWindow, $0.start] }, [4, 4])
        for w in set {
            XCTAssertTrue(e.corpus.isHeldOut(w.corpusWindow))
            XCTAssertEqual(w.tokens, (w.start..<w.start + 4).map { 100 + 8 * w.corpusWindow + $0 })
            XCTAssertEqual(w.texts, w.tokens.map { "t\($0)" })
            if let f = w.focus { XCTAssertGreaterThan(w.activations[f], 0) }
        }
        // A latent that fires everywhere still gets random windows; one that never fires gets only those.
        XCTAssertEqual(try e.scoringSet(latent: 1).filter { !$0.isActivating }.count, 4)
        XCTAssertEqual(try e.scoringSet(latent: 2).map(\.isActivating), [false, false, false, false])
        let fewer = try evaluator(ws, ScoringOptions(activating: 2, random: 1)).scoringSet(latent: 0)
        XCTAssertEqual(fewer.map(\.isActivating), [true, true, false])
        XCTAssertThrowsError(try e.scoringSet(latent: 3))
    }

    func testEvaluateWithAFakeSimulatorAndStoreIt() throws {
        let ws = try makeWorkspace()
        let e = try evaluator(ws)
        let explanation = ExplanationVersion(id: 4, latent: 0, text: "odd tokens", source: "lexical", time: Date())
        let (scores, record) = try e.evaluate(latent: 0, explanation: explanation, backend: OddTokens(), mode: .allAtOnce, calibration: .none)
        XCTAssertEqual(scores.key, ScoreKey(version: 4, mode: .promptedAll, calibration: .none, backend: "odd tokens"))
        XCTAssertEqual(scores.source, "lexical")
        XCTAssertEqual(scores.windows, 7)
        XCTAssertEqual(record.windows.map(\.expected), record.windows.map { $0.tokens.map { $0 % 2 == 1 ? 9 : 0 } })
        XCTAssertEqual(record.windows[0].simulated, record.windows[0].expected.map { $0 / 9 * 3 })
        XCTAssertEqual(scores.sensitivity, 1)
        XCTAssertEqual(scores.specificity, 0, "every window has an odd token")

        let store = try ScoreStore(workspace: ws)
        let stored = try store.append(scores, simulation: record)
        XCTAssertEqual(stored.simulationOffset, 0)
        XCTAssertEqual(store.simulation(for: stored), record)
        XCTAssertThrowsError(try e.evaluate(latent: 0, explanation: explanation, backend: OddTokens(), mode: .allAtOnce,
                                            calibration: .none, shouldStop: { true }))
    }

    /// On the demo workspace: the activating windows' true values, read from the held-out index,
    /// equal the model + transcoder run afresh on their corpus windows (so held-out rows map to the
    /// right windows and positions), and random windows are held-out text.
    func testDemoWorkspaceScoringSetsMatchAFreshForward() throws {
        let dir = Workspace.defaultDirectory
        guard FileManager.default.fileExists(atPath: ModelFetch.defaultPath.path),
              FileManager.default.fileExists(atPath: dir.appendingPathComponent("cache/cache.json").path) else {
            throw XCTSkip("no demo model and workspace")
        }
        let ws = Workspace(directory: dir)
        let session = try Session(modelPath: ModelFetch.defaultPath.path)
        var t0 = Date()
        let e = try Evaluator(workspace: ws, tokenizer: session.tokenizer)
        let openSeconds = Date().timeIntervalSince(t0)
        let analyzer = try ContextAnalyzer(session: session, workspace: ws)
        var worst: Float = 0, checked = 0
        for latent in [100, 103, 1000, 2345, 4000] {
            let set = try e.scoringSet(latent: latent)
            for w in set {
                XCTAssertTrue(e.corpus.isHeldOut(w.corpusWindow))
                XCTAssertEqual(w.tokens, Array(e.corpus.window(w.corpusWindow)[w.start..<w.start + w.tokens.count]))
            }
            for w in set.filter(\.isActivating).prefix(2) {
                let fresh = try analyzer.analyze(tokens: e.corpus.window(w.corpusWindow)).activations(of: latent)
                let acts = Array(fresh[w.start..<w.start + w.tokens.count])
                XCTAssertGreaterThan(acts[w.focus!], 0, "latent \(latent) window \(w.corpusWindow)")
                let diff = zip(acts, w.activations).map { abs($0 - $1) }.max()! / max(try e.record(latent).max, 1e-6)
                XCTAssertLessThan(diff, 0.05, "latent \(latent): \(acts) vs \(w.activations)")
                worst = max(worst, diff)
                checked += 1
            }
        }
        XCTAssertGreaterThan(checked, 4)
        t0 = Date()
        for latent in 0..<500 { _ = try e.scoringSet(latent: latent) }
        print(String(format: "demo scoring sets: evaluator opened in %.2f s; 500 scoring sets in %.2f s; %d activating windows vs a fresh forward: max |difference| %.4f of the latent's max",
                     openSeconds, Date().timeIntervalSince(t0), checked, worst))
    }

    // MARK: the store

    func result(latent: Int, version: Int, pearson: Double?, mode: SimulatorKind = .promptedAll) -> (LatentScores, SimulationRecord) {
        let key = ScoreKey(version: version, mode: mode, calibration: .quantile, backend: "local test")
        let s = LatentScores(latent: latent, version: version, source: "llm", mode: mode, calibration: .quantile, backend: "local test",
                             pearson: pearson, sensitivity: 1, specificity: 0.25, balancedAccuracy: 0.625, windows: 1, tokens: 2, seconds: 1.5)
        let w = SimulationRecord.Window(corpusWindow: 20, start: 3, focus: 1, tokens: [5, 6], activations: [0, 1.5], expected: [0.25, 7.5],
                                        simulated: [0, 1.25], outcomes: [.trueNegative, .truePositive])
        return (s, SimulationRecord(latent: latent, key: key, windows: [w]))
    }

    func testStoreRoundTripLatestAndPrevious() throws {
        let store = try ScoreStore(directory: dir)
        let a = result(latent: 3, version: 1, pearson: 0.25), b = result(latent: 3, version: 2, pearson: 0.5)
        let c = result(latent: 4, version: 3, pearson: nil), d = result(latent: 3, version: 2, pearson: 0.75, mode: .promptedLast)
        for r in [a, b, c, d] { try store.append(r.0, simulation: r.1) }
        let reopened = try ScoreStore(directory: dir)
        XCTAssertEqual(reopened.all.count, 4)
        XCTAssertEqual(reopened.latest(latent: 3)?.pearson, 0.75)
        XCTAssertEqual(reopened.latest(latent: 3, mode: .promptedAll)?.pearson, 0.5)
        XCTAssertNil(reopened.latest(latent: 4)?.pearson)
        XCTAssertEqual(reopened.scores(forVersion: 2).map(\.mode), [.promptedAll, .promptedLast])
        let newest = try XCTUnwrap(reopened.latest(latent: 3, mode: .promptedAll))
        XCTAssertEqual(reopened.previous(of: newest)?.version, 1)
        XCTAssertNil(reopened.previous(of: try XCTUnwrap(reopened.latest(latent: 3, mode: .promptedLast))))
        for (s, r) in zip(reopened.all, [a, b, c, d]) {
            var expected = r.0
            expected.simulationOffset = s.simulationOffset
            XCTAssertEqual(s, expected)
            XCTAssertEqual(reopened.simulation(for: s), r.1)
        }
        // Scored again (--redo): the last line wins.
        let redo = result(latent: 3, version: 2, pearson: 0.625)
        try store.append(redo.0, simulation: redo.1)
        XCTAssertEqual(store.scores(for: redo.0.key)?.pearson, 0.625)
        XCTAssertEqual(store.history(latent: 3).count, 4)
    }

    func testTornLinesAreIgnoredAndNeverMerge() throws {
        let store = try ScoreStore(directory: dir)
        let a = result(latent: 1, version: 1, pearson: 0.5)
        try store.append(a.0, simulation: a.1)
        // A crash mid-append: both files end in a torn line.
        for url in [store.scoresURL, store.simulationsURL] {
            let h = try FileHandle(forWritingTo: url)
            try h.seekToEnd()
            try h.write(contentsOf: Data("{\"latent\":1,\"vers".utf8))
            try h.close()
        }
        let reopened = try ScoreStore(directory: dir)
        XCTAssertEqual(reopened.all.count, 1)
        XCTAssertEqual(reopened.skippedLines, 0, "an unterminated tail waits")
        let b = result(latent: 2, version: 2, pearson: 0.75)
        let stored = try reopened.append(b.0, simulation: b.1)
        XCTAssertEqual(reopened.skippedLines, 1, "the torn bytes became their own line")
        XCTAssertEqual(reopened.all.map(\.latent), [1, 2])
        XCTAssertEqual(reopened.simulation(for: stored), b.1)
        XCTAssertEqual(reopened.simulation(for: reopened.all[0]), a.1)
        let again = try ScoreStore(directory: dir)
        XCTAssertEqual(again.all.map(\.pearson), [0.5, 0.75])
        XCTAssertEqual(again.skippedLines, 1)
        // A score whose simulation line is gone still reads; its simulation does not.
        var lost = stored
        lost.simulationOffset = 5
        XCTAssertNil(again.simulation(for: lost))
    }
}

/// Predicts 9 on odd token ids, 0 elsewhere.
private final class OddTokens: SimulatorBackend, @unchecked Sendable {
    let name = "odd tokens"
    func simulate(explanation: String, contexts: [SimulationContext], mode: SimulationMode, shouldStop: () -> Bool) throws -> [[Float]] {
        if shouldStop() { throw CancellationError() }
        return contexts.map { $0.tokens.map { $0 % 2 == 1 ? 9 : 0 } }
    }
}
