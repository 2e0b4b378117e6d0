import Foundation
import Kernels
import LoupeTestSupport
import Tokenizer
import XCTest
@testable import Engine
@testable import Storage

/// The trained simulator: its kernels against their plain twins (the Gram block, ridge from
/// sufficient statistics against a direct fit), the explanation's match features, cross-fitting
/// that keeps a latent's own data out of its fold's head, and on a tiny random model written by
/// the test, heads trained on synthetic latents with exact lexical explanations.
final class TrainedSimulatorTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-trained-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    func randomRows(_ rows: Int, _ d: Int, seed: UInt64) -> [Float] {
        var g = SeededRNG(seed: seed)
        return (0..<rows * d).map { _ in g.uniform(-1, 1) }
    }

    // MARK: kernels and ridge

    func testGramBlockEqualsThePlainLoop() {
        for (rows, d) in [(1, 1), (7, 5), (33, 37), (64, 70), (100, 133)] {
            let x = randomRows(rows, d, seed: UInt64(rows * 1000 + d))
            var fast = [Float](repeating: 0.5, count: d * d), plain = fast
            x.withUnsafeBufferPointer { xp in
                fast.withUnsafeMutableBufferPointer { Gram.accumulate(xp.baseAddress!, rows: rows, dim: d, into: $0.baseAddress!) }
                plain.withUnsafeMutableBufferPointer { Gram.accumulateReference(xp.baseAddress!, rows: rows, dim: d, into: $0.baseAddress!) }
            }
            for i in 0..<d {
                for j in i..<d { XCTAssertEqual(fast[i * d + j], plain[i * d + j], accuracy: 1e-4 * Float(rows), "rows \(rows) d \(d) at \(i),\(j)") }
                for j in 0..<i { XCTAssertEqual(fast[i * d + j], 0.5, "the lower triangle is left alone") }
            }
        }
    }

    func testRidgeFromStatisticsRecoversALinearModel() throws {
        let (rows, d) = (600, 6)
        let x = randomRows(rows, d, seed: 3)
        let w: [Float] = [0.5, -1, 2, 0, 0.25, -0.75]
        var g = SeededRNG(seed: 4)
        let y = (0..<rows).map { r in (0..<d).reduce(Float(0.3)) { $0 + w[$1] * x[r * d + $1] } + g.uniform(-0.01, 0.01) }
        var s = RidgeStatistics(dim: d)
        x.withUnsafeBufferPointer { xp in y.withUnsafeBufferPointer { s.add(xp.baseAddress!, rows: rows, y: $0.baseAddress!) } }
        let head = try s.solve(alpha: 1e-6)
        for i in 0..<d { XCTAssertEqual(head.weight[i], w[i], accuracy: 0.01) }
        XCTAssertEqual(head.bias, 0.3, accuracy: 0.01)
        // The error from the statistics equals the error summed over the rows.
        let direct = (0..<rows).reduce(0.0) { e, r in
            let p = x.withUnsafeBufferPointer { head.predict($0.baseAddress! + r * d) }
            return e + Double((p - y[r]) * (p - y[r]))
        }
        // (From sums of squares: exact up to cancellation against Σy².)
        XCTAssertEqual(s.squaredError(head), direct, accuracy: 1e-6 * s.sumYY)
        XCTAssertGreaterThan(s.pearson(head) ?? 0, 0.999)
        // A constant feature gets no weight and does not break the solve.
        var c = RidgeStatistics(dim: 2)
        let xc: [Float] = (0..<50).flatMap { [Float($0), 1] }, yc = (0..<50).map { Float($0) * 2 }
        xc.withUnsafeBufferPointer { xp in yc.withUnsafeBufferPointer { c.add(xp.baseAddress!, rows: 50, y: $0.baseAddress!) } }
        let hc = try c.solve(alpha: 1e-6)
        XCTAssertEqual(hc.weight[1], 0)
        XCTAssertEqual(hc.weight[0], 2, accuracy: 1e-3)
    }

    func testCholeskySolvesASymmetricSystem() throws {
        let a: [Double] = [4, 2, 0.6, 2, 5, 1, 0.6, 1, 3]
        let x = try Cholesky.solve(a, [1, 2, 3], dim: 3)
        for i in 0..<3 { XCTAssertEqual((0..<3).reduce(0.0) { $0 + a[i * 3 + $1] * x[$1] }, Double(i + 1), accuracy: 1e-12) }
        XCTAssertThrowsError(try Cholesky.solve([1, 2, 2, 1], [1, 1], dim: 2))
    }

    func testCrossFitHeadNeverSeesItsOwnFold() throws {
        let d = 4, folds = 4
        func stats(_ seed: UInt64) -> RidgeStatistics {
            let x = randomRows(80, d, seed: seed)
            let y = (0..<80).map { r in x[r * d] - x[r * d + 2] }
            var s = RidgeStatistics(dim: d)
            x.withUnsafeBufferPointer { xp in y.withUnsafeBufferPointer { s.add(xp.baseAddress!, rows: 80, y: $0.baseAddress!) } }
            return s
        }
        let base = (0..<folds).map { stats(UInt64($0 + 10)) }
        var changed = base
        changed[2] = stats(99)  // fold 2's data replaced
        for f in 0..<folds {
            let a = try CrossFit.head(for: f, folds: base), b = try CrossFit.head(for: f, folds: changed)
            if f == 2 {
                XCTAssertEqual(a.head, b.head, "head 2 must not depend on fold 2's rows")
                XCTAssertEqual(a.alpha, b.alpha, "nor its penalty")
            } else {
                XCTAssertNotEqual(a.head, b.head, "the other heads do read fold 2")
            }
        }
    }

    // MARK: explanation match

    func testMatchFeaturesReadQuotesAndWords() {
        let m = ExplanationMatch(explanation: #"fires on " bridge", " Tunnel", "\n" (62% of activations), mostly after " the"; about rivers"#)
        XCTAssertEqual(m.quoted, ["bridge", "tunnel", "\n", "the"])
        XCTAssertTrue(m.words.contains("rivers"))
        XCTAssertFalse(m.words.contains("fires"), "template words are left out")
        let f = m.features(texts: [" the", " Bridge", " over", " rivers", "\n", " tunnels"])
        XCTAssertEqual(f.map { $0[0] }, [1, 1, 0, 0, 1, 0], "quoted")
        XCTAssertEqual(f.map { $0[1] }, [0, 1, 0, 0, 0, 0], "first quoted")
        XCTAssertEqual(f.map { $0[2] }, [0, 1, 1, 0, 0, 1], "after a quoted token")
        XCTAssertEqual(f.map { $0[3] }, [0, 1, 0, 1, 0, 0], "a word of the explanation (quoted words count)")
        XCTAssertEqual(f.map { $0[4] }, [0, 0, 0, 0, 0, 1], "part of a quoted string")
        XCTAssertEqual(m.lexicalMatch(texts: [" the", " river", "Bridge"]), [1, 0, 1])
        XCTAssertEqual(ExplanationMatch(explanation: "the word river").lexicalMatch(texts: [" River", " the"]), [1, 0],
                       "without quotes, the explanation's words")
    }

    // MARK: on a tiny model

    /// 36 synthetic latents, latent m firing (1) exactly on the token of letter or digit m, each
    /// explained exactly as the lexical explainer would; contexts drawn from those 36 tokens.
    struct Synthetic {
        let session: Session
        let reader: HiddenStateReader
        let ids: [Int]
        let texts: [String]
        var config: TrainedSimulatorConfig

        func explanation(_ m: Int) -> String { "fires on " + LexicalExplainer.quote(texts[m]) }

        func contexts(_ m: Int, count: Int, seed: UInt64) -> (contexts: [SimulationContext], truth: [[Float]]) {
            var g = SeededRNG(seed: seed)
            var out: [SimulationContext] = [], truth: [[Float]] = []
            for _ in 0..<count {
                var picks = (0..<24).map { _ in Int(g.next() % UInt64(ids.count)) }
                picks[Int(g.next() % 24)] = m
                out.append(SimulationContext(tokens: picks.map { ids[$0] }, texts: picks.map { texts[$0] }))
                truth.append(picks.map { $0 == m ? 1 : 0 })
            }
            return (out, truth)
        }

        func example(_ m: Int, seed: UInt64) -> SimulatorExample {
            let (c, t) = contexts(m, count: 4, seed: seed)
            return SimulatorExample(latent: m, version: ExplanationVersion(id: m + 1, latent: m, text: explanation(m), source: "lexical", time: Date()),
                                    contexts: c, targets: t)
        }

        /// Fold statistics of the examples of `latents` (`garble`: latent whose targets are scrambled).
        func train(_ latents: [Int], garble: Int? = nil) throws -> [RidgeHead] {
            var folds = (0..<config.folds).map { _ in RidgeStatistics(dim: reader.featureCount) }
            for m in latents {
                var ex = example(m, seed: UInt64(m) + 100)
                if m == garble { ex.targets = ex.targets.map { $0.map { 1 - $0 } } }
                try SimulatorTrainer.accumulate(ex, reader: reader, into: &folds[config.fold(latent: m)])
            }
            return try SimulatorTrainer.fitHeads(folds).heads
        }
    }

    func synthetic() throws -> Synthetic {
        let path = try TinySimulatorModel.write(to: dir)
        let session = try Session(modelPath: path)
        let chars = Array("abcdefghijklmnopqrstuvwxyz0123456789")
        let ids = chars.map { session.tokenizer.encode(String($0), parseSpecial: false)[0] }
        let texts = ids.map { String(decoding: session.tokenizer.tokenBytes($0), as: UTF8.self) }
        let config = TrainedSimulatorConfig(model: "tiny.gguf", vocabSize: session.tokenizer.count, modelDim: session.model.config.dim,
                                            layers: [0, 1], prompt: TrainedSimulatorConfig.defaultPrompt,
                                            matchFeatures: ExplanationMatch.featureNames, folds: 4, foldSeed: 5, training: nil, explanations: [])
        return Synthetic(session: session, reader: try HiddenStateReader(session: session, layers: [0, 1], prompt: config.prompt),
                         ids: ids, texts: texts, config: config)
    }

    func testHeadsTrainedOnExactLexicalExplanationsReadThemOnHeldOutLatents() throws {
        let s = try synthetic()
        let latents = Array(0..<36)
        XCTAssertEqual(Set(latents.map(s.config.fold(latent:))).count, 4, "every fold holds latents")
        let heads = try s.train(latents)
        let simulator = try TrainedSimulator(config: s.config, heads: heads, session: s.session, tag: "test")
        var own: [Double] = [], shuffled: [Double] = []
        for m in latents {
            // Fresh contexts, each latent read by the head of its fold, which never saw it.
            let (contexts, truth) = s.contexts(m, count: 3, seed: UInt64(m) + 5000)
            func r(_ text: String) throws -> Double {
                let e = try simulator.simulate(latent: m, explanation: text, contexts: contexts, mode: .allAtOnce, shouldStop: { false })
                XCTAssertTrue(e.joined().allSatisfy { $0 >= 0 && $0 <= 9 })
                return Detection.pearson(e.flatMap { $0 }, truth.flatMap { $0 }) ?? 0
            }
            own.append(try r(s.explanation(m)))
            shuffled.append(try r(s.explanation((m + 7) % 36)))
        }
        let meanOwn = own.reduce(0, +) / 36, meanShuffled = shuffled.reduce(0, +) / 36
        XCTAssertGreaterThan(meanOwn, 0.9, "own explanations: \(own)")
        XCTAssertLessThan(abs(meanShuffled), 0.1, "shuffled explanations: \(shuffled)")
        XCTAssertGreaterThan(own.min()!, 0.6)
    }

    func testALatentsOwnDataNeverReachesTheHeadThatReadsIt() throws {
        let s = try synthetic()
        let latents = Array(0..<24)
        let m = 5, f = s.config.fold(latent: m)
        let with = try s.train(latents), without = try s.train(latents.filter { $0 != m }), garbled = try s.train(latents, garble: m)
        XCTAssertEqual(with[f], without[f], "the head that reads latent \(m) is the same whether or not its data were there")
        XCTAssertEqual(with[f], garbled[f])
        XCTAssertNotEqual(with[(f + 1) % 4], garbled[(f + 1) % 4], "the other folds' heads were trained on it")
        // And the backend reads latent m with that head.
        let (contexts, _) = s.contexts(m, count: 2, seed: 77)
        func predict(_ heads: [RidgeHead]) throws -> [[Float]] {
            try TrainedSimulator(config: s.config, heads: heads, session: s.session, tag: "t")
                .simulate(latent: m, explanation: s.explanation(m), contexts: contexts, mode: .allAtOnce, shouldStop: { false })
        }
        XCTAssertEqual(try predict(with), try predict(garbled))
        var swapped = with
        swapped[f] = with[(f + 1) % 4]
        XCTAssertNotEqual(try predict(with), try predict(swapped), "the prediction depends on head \(f)")
    }

    func testEachHeadsDetectionThresholdIsChosenOnTheOtherFoldsOnly() {
        // Folds 1-3: firing windows predict 0.3 or more, quiet ones 0.15 or less; fold 0 is odd
        // (fires only above 0.9). Any t in [0.15, 0.3) separates the others perfectly; ties go to the
        // t nearest 0.5, so 0.28.
        var windows: [SimulatorTrainer.DetectionWindow] = []
        for f in 1...3 {
            for p: Float in [0.3, 0.5, 0.8] { windows.append(.init(fold: f, maxPrediction: p, fires: true)) }
            for p: Float in [0.05, 0.1, 0.15] { windows.append(.init(fold: f, maxPrediction: p, fires: false)) }
        }
        let odd = (0..<10).flatMap { _ -> [SimulatorTrainer.DetectionWindow] in
            [.init(fold: 0, maxPrediction: 0.95, fires: true), .init(fold: 0, maxPrediction: 0.6, fires: false)]
        }
        let (t, ba) = SimulatorTrainer.chooseDetection(windows + odd, folds: 4)
        XCTAssertEqual(t[0], 0.28, accuracy: 1e-6, "fold 0's threshold comes from folds 1-3 alone")
        XCTAssertEqual(try XCTUnwrap(ba[0]), 0.5, "on fold 0 itself, 0.28 calls every window firing")
        XCTAssertEqual(t[1], 0.6, accuracy: 1e-6, "fold 1's threshold reads fold 0's 20 windows: 0.6 reaches balanced accuracy 0.875")
        // Changing fold 0's own windows never moves its threshold, but moves the others'.
        let flipped = odd.map { SimulatorTrainer.DetectionWindow(fold: 0, maxPrediction: $0.maxPrediction, fires: !$0.fires) }
        let (t2, _) = SimulatorTrainer.chooseDetection(windows + flipped, folds: 4)
        XCTAssertEqual(t2[0], t[0])
        XCTAssertEqual(t2[1], 0.28, accuracy: 1e-6, "with fold 0 flipped, fold 1's threshold goes back to the others' gap")
        XCTAssertEqual(SimulatorTrainer.chooseDetection([], folds: 2).thresholds, [0.5, 0.5], "nothing to choose on: half the max")
    }

    func testTheDetectionThresholdsTravelInTheHeadFile() throws {
        let s = try synthetic()
        let heads = try s.train(Array(0..<12))
        let ws = Workspace(directory: dir.appendingPathComponent("ws-detection"))
        try TrainedSimulator.save(config: s.config, heads: heads, to: ws)
        let old = try TrainedSimulator(workspace: ws, session: s.session)
        XCTAssertEqual(old.detection, [0.5, 0.5, 0.5, 0.5], "a head file without thresholds: half the max, as before")
        XCTAssertEqual(old.detectionDigit(latent: 3), 4.5)
        let detection: [Float] = [0.2, 0.24, 0.3, 0.36]
        try TrainedSimulator.save(config: s.config, heads: heads, detection: detection, to: ws)
        let loaded = try TrainedSimulator(workspace: ws, session: s.session)
        XCTAssertEqual(loaded.detection, detection)
        for m in 0..<12 { XCTAssertEqual(loaded.detectionDigit(latent: m), 9 * detection[s.config.fold(latent: m)], accuracy: 1e-6) }
        XCTAssertNotEqual(loaded.name, old.name, "new thresholds, new tag: scores made with the old ones are redone")
        XCTAssertThrowsError(try TrainedSimulator(config: s.config, heads: heads, detection: [0.2, 1.5, 0.3, 0.3], session: s.session, tag: "x")) {
            XCTAssertEqual("\($0)", "trained simulator: fold1.detection is 1.5, not a fraction between 0 and 1; set it again with `loupe train-simulator --detection-only`")
        }
        XCTAssertThrowsError(try TrainedSimulator(config: s.config, heads: heads, detection: [0.2, 0.3], session: s.session, tag: "x")) {
            XCTAssertEqual("\($0)", "trained simulator: 2 detection thresholds for 4 heads; set them again with `loupe train-simulator --detection-only`")
        }
    }

    func testTrainedSimulatorRoundTripsThroughTheWorkspace() throws {
        let s = try synthetic()
        let heads = try s.train(Array(0..<12))
        let ws = Workspace(directory: dir.appendingPathComponent("ws"))
        try TrainedSimulator.save(config: s.config, heads: heads, to: ws)
        XCTAssertTrue(ws.hasTrainedSimulator)
        XCTAssertEqual(Simulators.defaultKind(for: ws), .trained)
        let loaded = try TrainedSimulator(workspace: ws, session: s.session)
        XCTAssertEqual(loaded.heads, heads)
        XCTAssertTrue(loaded.name.hasPrefix("trained tiny "))
        var wrong = s.config
        wrong.vocabSize += 1
        XCTAssertThrowsError(try TrainedSimulator(config: wrong, heads: heads, session: s.session, tag: "x")) { e in
            XCTAssertTrue("\(e)".contains("train it again"), "\(e)")
        }
        XCTAssertEqual(SimulatorKind(argument: "all"), .promptedAll)
        XCTAssertEqual(SimulatorKind(storedMode: "last"), .promptedLast)
        XCTAssertNil(SimulatorKind(argument: "digits"))
    }
}
