import Foundation
import Kernels
import LoupeTestSupport
import XCTest
@testable import Engine
@testable import Storage
@testable import Formats
@testable import Model
import Transcoder

/// The partial rewrite's splice on a tiny random model and transcoder: a perfect simulator gives
/// the transcoder's loss, an all-zero one at f = 1 the transcoder without latents, zero ablation
/// matches the plain-loop reference forward, and the bootstrap statistics behave.
final class RewriteTests: XCTestCase {
    var tiny = TinyLlama(seed: 5)
    var model: LlamaModel!
    var transcoder: Transcoder!
    var splice: Splice!
    let layer = 1
    // Three windows (the middle one longer); a batch of 16 rows puts them in two groups.
    let windows = [[3, 17, 42, 8, 8, 0, 49, 23], [11, 5, 30, 2, 19, 44, 7, 1, 36, 12], [9, 28, 40, 6, 33, 21]]

    override func setUpWithError() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-rewrite-\(UUID().uuidString).gguf").path
        try tiny.write(to: path)
        defer { try? FileManager.default.removeItem(atPath: path) }
        model = try LlamaModel(gguf: GGUFFile(path: path), batch: 16)
        transcoder = Transcoder(config: TranscoderConfig(dIn: 64, numLatents: 48, k: 4), seed: 3)
        // A transcoder starts with a zero decoder: give it random rows, and a non-zero decoder bias
        // so "no latents" differs from zero ablation.
        var rng = SeededRNG(seed: 9)
        for i in 0..<transcoder.m * transcoder.d { transcoder.decoderWeight[i] = 0.3 * rng.normal() }
        for j in 0..<transcoder.d { transcoder.decoderBias[j] = 0.05 * Float((j % 7) - 3) }
        transcoder.parametersDidChange()
        splice = try Splice(model: model, transcoder: transcoder, layer: layer, site: .mlp)
    }

    /// Cross-entropy of each next token from the reference logits, the MLP output of `layer`
    /// replaced by `output(window, position)`.
    func referenceCE(_ tokens: [Int], output: @escaping (Int) -> [Float]) -> [Float] {
        let logits = tiny.referenceLogits(tokens) { l, t, y in if l == self.layer { y = output(t) } }
        return (0..<tokens.count - 1).map { t in
            let row = logits[t], m = row.max()!
            return m + log(row.reduce(0) { $0 + exp($1 - m) }) - row[tokens[t + 1]]
        }
    }

    func maxDiff(_ a: [[Float]], _ b: [[Float]]) -> Float {
        XCTAssertEqual(a.map(\.count), b.map(\.count))
        return zip(a, b).reduce(0) { max($0, maxAbsDiff($1.0, $1.1)) }
    }

    func testPerfectSimulatorGivesTheTranscodersLoss() throws {
        let p = try splice.prepare(windows)
        XCTAssertEqual(p.rows, 24)
        let m = transcoder.m
        // The "simulator" returns each latent's true activation: its top-k code (0 where not selected).
        let trueDense = FloatBuffer(count: p.rows * m)
        trueDense.pointer.update(from: p.dense.pointer, count: p.rows * m)
        let codes = splice.codes(trueDense.pointer, rows: p.rows)
        var truth = [Float](repeating: 0, count: p.rows * m)
        let k = transcoder.config.k
        for r in 0..<p.rows { for s in 0..<k { truth[r * m + Int(codes.indices[r * k + s])] = codes.values[r * k + s] } }
        XCTAssertGreaterThan(truth.filter { $0 > 0 }.count, p.rows, "latents fire")

        let spliced = try splice.crossEntropies(p, replacement: splice.transcoderReplacement(p))
        for fraction in [0.25, 1.0] {
            let chosen = Array(0..<Int(Double(m) * fraction))
            let rewritten = try splice.crossEntropies(p, replacement: splice.replacement(p) { first, rows, dense in
                for r in 0..<rows { for j in chosen { dense[r * m + j] = truth[(first + r) * m + j] } }
            })
            XCTAssertEqual(rewritten, spliced, "f = \(fraction): true activations in, the transcoder's loss out")
        }
        let base = try splice.crossEntropies(p, replacement: nil)
        XCTAssertGreaterThan(maxDiff(base, spliced), 1e-3, "the splice changes the loss (else the test shows nothing)")
    }

    func testAllZeroSimulatorIsTheTranscoderWithoutLatents() throws {
        let p = try splice.prepare(windows)
        let m = transcoder.m
        let zeroed = try splice.crossEntropies(p, replacement: splice.replacement(p) { _, rows, dense in
            dense.update(repeating: 0, count: rows * m)
        })
        // No latents: the decoder bias alone, at every position, in the reference forward.
        let bias = Array(UnsafeBufferPointer(start: transcoder.decoderBias.pointer, count: transcoder.d))
        let reference = windows.map { referenceCE($0) { _ in bias } }
        XCTAssertLessThan(maxDiff(zeroed, reference), 2e-3)
        XCTAssertEqual(zeroed, try splice.crossEntropies(p, replacement: Splice.constant(bias)))
    }

    func testZeroAblationMatchesTheReference() throws {
        let p = try splice.prepare(windows)
        let zero = try splice.crossEntropies(p, replacement: Splice.constant([Float](repeating: 0, count: 64)))
        let reference = windows.map { referenceCE($0) { _ in [Float](repeating: 0, count: 64) } }
        XCTAssertLessThan(maxDiff(zero, reference), 2e-3)
        // And the base model (no replacement) matches the reference without an override.
        let base = try splice.crossEntropies(p, replacement: nil)
        let plain = windows.map { w -> [Float] in
            let logits = tiny.referenceLogits(w)
            return (0..<w.count - 1).map { t in
                let row = logits[t], mx = row.max()!
                return mx + log(row.reduce(0) { $0 + exp($1 - mx) }) - row[w[t + 1]]
            }
        }
        XCTAssertLessThan(maxDiff(base, plain), 2e-3)
        XCTAssertGreaterThan(maxDiff(zero, base), 1e-2, "ablating the MLP changes the loss")
    }

    func testPreparedInputsAreTheMLPsOwn() throws {
        let p = try splice.prepare(windows)
        // Putting the captured MLP output back reproduces the base model exactly.
        let d = model.config.dim
        let own = try splice.crossEntropies(p) { first, rows, y in y.update(from: p.output.pointer + first * d, count: rows * d) }
        XCTAssertEqual(own, try splice.crossEntropies(p, replacement: nil))
        XCTAssertEqual(p.place(ofRow: 0).window, 0)
        XCTAssertEqual(p.place(ofRow: 8).window, 1)
        XCTAssertEqual(p.place(ofRow: 8).position, 0)
        XCTAssertEqual(p.place(ofRow: 23).window, 2)
        XCTAssertEqual(p.place(ofRow: 23).position, 5)
    }

    func testSingleLatentDelta() throws {
        let p = try splice.prepare(windows)
        let m = transcoder.m, k = transcoder.config.k
        let dense = FloatBuffer(count: p.rows * m)
        dense.pointer.update(from: p.dense.pointer, count: p.rows * m)
        let codes = splice.codes(dense.pointer, rows: p.rows)
        // The latent that fires most often, with its true codes: no change.
        var counts = [Int](repeating: 0, count: m)
        for i in codes.indices.prefix(p.rows * k) { counts[Int(i)] += 1 }
        let latent = counts.indices.max { counts[$0] < counts[$1] }!
        func truth(_ r: Int) -> Float { (0..<k).first { codes.indices[r * k + $0] == Int32(latent) }.map { codes.values[r * k + $0] } ?? 0 }
        let values = windows.indices.map { w in (0..<windows[w].count).map { truth(p.rowStart[w] + $0) } }
        XCTAssertEqual(try splice.singleLatentDelta(latent: latent, windows: windows, values: values), 0)
        // Firing it hard everywhere changes the loss.
        let loud = windows.map { $0.map { _ in Float(50) } }
        XCTAssertNotEqual(try splice.singleLatentDelta(latent: latent, windows: windows, values: loud), 0)
        XCTAssertThrowsError(try splice.singleLatentDelta(latent: latent, windows: windows, values: [[1]]))
        XCTAssertThrowsError(try splice.singleLatentDelta(latent: m, windows: windows, values: values))
    }

    func testBootstrapStatistics() {
        let a: [[Float]] = [[1, 1], [2, 2], [3, 3], [4, 4]]
        let b: [[Float]] = [[0, 0], [0, 0], [0, 0], [0, 0]]
        XCTAssertEqual(RewriteStatistics.mean(a), 2.5)
        XCTAssertEqual(RewriteStatistics.windowMeans(a), [1, 2, 3, 4])
        let resamples = RewriteStatistics.resamples(windows: 4, count: 2000, seed: 1)
        XCTAssertEqual(resamples.count, 2000)
        XCTAssertTrue(resamples.allSatisfy { $0.count == 4 && $0.allSatisfy { (0..<4).contains($0) } })
        let ci = RewriteStatistics.interval(a, minus: b, resamples: resamples)
        XCTAssertLessThan(ci.low, 2.5)
        XCTAssertGreaterThan(ci.high, 2.5)
        XCTAssertGreaterThanOrEqual(ci.low, 1)
        XCTAssertLessThanOrEqual(ci.high, 4)
        // Identical settings: a zero-width interval at 0; a constant shift: exactly that shift.
        XCTAssertEqual(RewriteStatistics.interval(a, minus: a, resamples: resamples).low, 0)
        let shifted = a.map { $0.map { $0 + 0.5 } }
        let s = RewriteStatistics.interval(shifted, minus: a, resamples: resamples)
        XCTAssertEqual(s.low, 0.5, accuracy: 1e-9)
        XCTAssertEqual(s.high, 0.5, accuracy: 1e-9)
        let r = RewriteStatistics.result(.simulated(0.1, .score, .none), latents: 3, tokenCE: shifted, base: a, zero: a, resamples: resamples)
        XCTAssertEqual(r.delta, 0.5, accuracy: 1e-9)
        XCTAssertTrue(r.distinguishableFromZero)
        XCTAssertEqual(r.setting.label, "f=0.10 score none")
    }

    func testRankings() {
        let population = [1, 2, 3, 4, 5, 6]
        let score: [Int: Double] = [4: 0.9, 2: 0.1, 6: 0.5]
        let ranked = RewriteExperiment.ranking(.score, population: population, score: score, seed: 1)
        XCTAssertEqual(Array(ranked.prefix(3)), [4, 6, 2])
        XCTAssertEqual(Set(ranked.suffix(3)), [1, 3, 5])
        let random = RewriteExperiment.ranking(.random, population: population, score: score, seed: 1)
        XCTAssertEqual(Set(random), Set(population))
        XCTAssertEqual(random, RewriteExperiment.ranking(.random, population: population, score: score, seed: 1), "seeded")
        XCTAssertEqual(RewriteExperiment.count(0.01, of: 4568), 46)
        XCTAssertEqual(RewriteExperiment.count(0.0001, of: 10), 1)
        XCTAssertEqual(RewriteExperiment.count(1, of: 10), 10)
    }
}

/// The whole experiment (`RewriteExperiment.run`) on a hand-made workspace around the tiny model:
/// windows, the simulation cache and its reuse, calibration, the settings and the report file.
final class RewriteExperimentTests: XCTestCase {
    var tiny = TinyLlama(seed: 5)
    var dir: URL!
    var splice: Splice!
    let layer = 1, latents = 48, k = 4, windowLength = 12

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-rewrite-ws-\(UUID().uuidString)")
        let ws = Workspace(directory: dir)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let path = dir.appendingPathComponent("tiny.gguf").path
        try tiny.write(to: path)
        let model = try LlamaModel(gguf: GGUFFile(path: path), batch: 32)
        let transcoder = Transcoder(config: TranscoderConfig(dIn: 64, numLatents: latents, k: k), seed: 3)
        var rng = SeededRNG(seed: 9)
        for i in 0..<latents * 64 { transcoder.decoderWeight[i] = 0.3 * rng.normal() }
        for j in 0..<64 { transcoder.decoderBias[j] = 0.05 * Float((j % 7) - 3) }
        transcoder.parametersDidChange()
        try transcoder.save(directory: ws.transcoderDirectory(layer: layer, site: .mlp).path)
        splice = try Splice(model: model, transcoder: transcoder, layer: layer, site: .mlp)

        // 8 windows of 12 random tokens, every 2nd held out.
        let corpus = Corpus(windowLength: windowLength, heldOutEvery: 2, tokens: (0..<8 * windowLength).map { _ in Int32(rng.next() % 50) })
        try corpus.save(to: ws.corpusDirectory, sources: ["test"])
        // Cache records: each latent's max is what calibration "none" scales by.
        let m = CacheManifest(latents: latents, k: k, blockSize: latents, displayLength: 8, histogramBins: 2, quantiles: 3, trainTokens: 100,
                              randomPool: [], files: ["latents-00000.bin"])
        var block = Data()
        for l in 0..<latents {
            block.append(LatentRecordCoding.encode(LatentRecord(latent: l, count: 10, max: 4, mean: 1, histogram: [5, 5], quantiles: [0.5, 1, 4],
                                                                promoted: [], suppressed: [], neighbours: [], windows: []), manifest: m))
        }
        try FileManager.default.createDirectory(at: ws.cacheDirectory, withIntermediateDirectories: true)
        try block.write(to: ws.cacheDirectory.appendingPathComponent("latents-00000.bin"))
        try JSONFile.write(m, to: ws.cacheDirectory.appendingPathComponent("cache.json"))
        try ws.save(WorkspaceManifest(model: path, layer: layer, latents: latents, k: k, transcoderSource: "test", corpusSources: ["test"],
                                      trainTokens: 100, heldOutTokens: 4 * windowLength, windowLength: windowLength))
        let store = try ExplanationStore(workspace: ws)
        for l in 0..<latents where l != 7 { _ = try store.save(latent: l, text: "latent \(l)", source: "lexical") }
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    /// Answers with fixed expected digits per (latent, token position in the experiment's rows).
    final class TableSimulator: SimulatorBackend, @unchecked Sendable {
        let name = "table"
        let digits: (_ latent: Int, _ context: SimulationContext) -> [Float]
        var calls = 0
        init(_ digits: @escaping (Int, SimulationContext) -> [Float]) { self.digits = digits }
        func simulate(explanation: String, contexts: [SimulationContext], mode: SimulationMode, shouldStop: () -> Bool) throws -> [[Float]] {
            calls += 1
            let latent = Int(explanation.split(separator: " ").last!)!
            return contexts.map { digits(latent, $0) }
        }
    }

    func run(_ backend: SimulatorBackend, fractions: [Double] = [0.5, 1], calibrations: [Calibration] = [.none]) throws -> RewriteReport {
        let options = RewriteOptions(fractions: fractions, calibrations: calibrations, windows: 3, length: 8, bootstrap: 200)
        return try RewriteExperiment(workspace: Workspace(directory: dir), splice: splice, backend: backend, tokenText: { "t\($0)" },
                                     options: options).run()
    }

    func testPerfectAndZeroSimulatorsThroughTheExperiment() throws {
        // True codes of every window token, to build the perfect simulator's digits (E = 9·z/max, max 4).
        let corpus = try Corpus.load(from: Workspace(directory: dir).corpusDirectory).0
        let windows = try RewriteExperiment.windows(corpus: corpus, options: RewriteOptions(windows: 3, length: 8))
        // Held-out windows are 0, 2, 4, 6 (every 2nd); the first 3 of the fractions 0, 1/2, 1/4, 3/4.
        XCTAssertEqual(windows.map(\.corpusWindow), [0, 2, 4])
        XCTAssertEqual(try RewriteExperiment.windows(corpus: corpus, options: RewriteOptions(windows: 4, length: 8)).map(\.corpusWindow), [0, 2, 4, 6])
        XCTAssertEqual(try RewriteExperiment.windows(corpus: corpus, options: RewriteOptions(windows: 2, length: 8)).map(\.corpusWindow), [0, 4],
                       "a smaller experiment's windows are among a larger one's")
        let p = try splice.prepare(windows.map(\.tokens))
        let dense = FloatBuffer(count: p.rows * latents)
        dense.pointer.update(from: p.dense.pointer, count: p.rows * latents)
        let codes = splice.codes(dense.pointer, rows: p.rows)
        func truth(_ latent: Int, _ context: SimulationContext) -> [Float] {
            let w = windows.firstIndex { $0.tokens == context.tokens }!
            return (0..<context.tokens.count).map { t in
                let r = p.rowStart[w] + t
                return (0..<k).first { codes.indices[r * k + $0] == Int32(latent) }.map { codes.values[r * k + $0] / 4 * 9 } ?? 0
            }
        }
        XCTAssertTrue(windows.indices.contains { w in (0..<latents).contains { truth($0, SimulationContext(tokens: windows[w].tokens, texts: windows[w].tokens.map { "t\($0)" })).contains { $0 > 0 } } })

        let perfect = TableSimulator(truth)
        let report = try run(perfect)
        XCTAssertEqual(report.population, latents - 1, "latent 7 has no explanation")
        XCTAssertEqual(report.timing.latentsSimulated, latents - 1)
        let transcoder = report.result(RewriteSetting(kind: .transcoder))!
        let base = report.result(RewriteSetting(kind: .base))!
        let zero = report.result(RewriteSetting(kind: .zeroAblation))!
        XCTAssertEqual(base.delta, 0)
        XCTAssertEqual(zero.vsZero, 0)
        for selection in RewriteSelection.allCases {
            let full = report.result(.simulated(1, selection, .none))!
            XCTAssertEqual(full.latents, latents - 1)
            // Latent 7 keeps its own value, and digits are stored to 0.001: equal up to that rounding.
            XCTAssertEqual(full.ce, transcoder.ce, accuracy: 2e-4, "perfect simulator, f = 1, \(selection)")
            XCTAssertEqual(report.result(.simulated(0.5, selection, .none))!.ce, transcoder.ce, accuracy: 2e-4)
        }
        XCTAssertNotEqual(transcoder.ce, base.ce)
        // The report file reads back; a second run reuses every simulation.
        XCTAssertEqual(try RewriteReport.load(Workspace(directory: dir)), report)
        let calls = perfect.calls
        let again = try run(perfect)
        XCTAssertEqual(perfect.calls, calls, "nothing simulated again")
        XCTAssertEqual(again.timing.latentsReused, latents - 1)
        XCTAssertEqual(again.result(.simulated(1, .score, .none))!.ce, report.result(.simulated(1, .score, .none))!.ce)
    }

    func testAllZeroSimulatorAtFullFractionIsTheTranscoderWithoutLatents() throws {
        // A different backend name keys a fresh cache entry; with every latent explained but 7, which
        // keeps its true value: compare against the transcoder with only latent 7 left.
        let report = try run(TableSimulator { _, c in [Float](repeating: 0, count: c.tokens.count) }, fractions: [1], calibrations: [.none, .quantile])
        let p = try splice.prepare(report.windows.map(\.tokens))
        let onlySeven = try splice.crossEntropies(p, replacement: splice.replacement(p) { _, rows, dense in
            for r in 0..<rows { for j in 0..<self.latents where j != 7 { dense[r * self.latents + j] = 0 } }
        })
        for calibration: Calibration in [.none, .quantile] {
            let full = report.result(.simulated(1, .random, calibration))!
            XCTAssertEqual(full.ce, RewriteStatistics.mean(onlySeven), accuracy: 1e-6, calibration.rawValue)
            XCTAssertEqual(full.tokenCE, onlySeven)
            // Culprits name latents the simulation switched off, with their true codes.
            let named = full.culprits!.flatMap { $0.flatMap { $0 } }
            XCTAssertFalse(named.isEmpty)
            XCTAssertTrue(named.allSatisfy { $0.simulated == 0 && $0.true > 0 && $0.latent != 7 })
        }
        XCTAssertLessThan(report.result(.simulated(1, .random, .none))!.deltaLow, report.result(.simulated(1, .random, .none))!.deltaHigh + 1e-12)
    }

    func testLatentsOffIsTheSkipPathAloneAndSimulatedSettingsAreComparedWithIt() throws {
        let report = try run(TableSimulator { _, c in [Float](repeating: 0, count: c.tokens.count) }, fractions: [1], calibrations: [.none])
        let p = try splice.prepare(report.windows.map(\.tokens))
        let allOff = try splice.crossEntropies(p, replacement: splice.replacement(p) { _, rows, dense in
            for i in 0..<(rows * self.latents) { dense[i] = 0 }
        })
        let off = try XCTUnwrap(report.result(RewriteSetting(kind: .latentsOff)))
        XCTAssertEqual(off.tokenCE, allOff, "every code 0: the skip path and the decoder bias alone")
        XCTAssertNotEqual(off.ce, report.result(RewriteSetting(kind: .transcoder))!.ce)
        XCTAssertNotEqual(off.ce, report.result(RewriteSetting(kind: .zeroAblation))!.ce, "the skip path is not the zero output")
        XCTAssertNil(off.vsLatentsOff, "only simulated settings are compared with the control")
        // The zero simulator leaves only latent 7 (unexplained) on: its difference from the control is latent 7's.
        let full = try XCTUnwrap(report.result(.simulated(1, .score, .none)))
        let vs = try XCTUnwrap(full.vsLatentsOff)
        XCTAssertEqual(vs, full.ce - off.ce, accuracy: 1e-9)
        XCTAssertLessThanOrEqual(try XCTUnwrap(full.vsLatentsOffLow), vs + 1e-9)
        XCTAssertGreaterThanOrEqual(try XCTUnwrap(full.vsLatentsOffHigh), vs - 1e-9)
        XCTAssertEqual(full.beatsLatentsOff, full.vsLatentsOffHigh! < 0)
        XCTAssertEqual(try RewriteReport.load(Workspace(directory: dir)), report, "the control's fields read back")
    }
}
