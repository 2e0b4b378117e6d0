import Formats
import Foundation
import LoupeTestSupport
import Model
import Transcoder
import XCTest
@testable import Engine
import EngineAPI

/// Interventions through the transcoder splice on a tiny random model and transcoder written by
/// the test: the identities that must hold exactly (a latent set to its own value, clean patched
/// into clean, scale 0 = zero ablation) and the direct effect against a finite difference.
final class InterventionTests: XCTestCase {
    var dir: URL!
    var intervener: Intervener!
    let layer = 1
    /// Byte-level text for the toy letters vocabulary.
    let prompt = "abcdefgh ijk"

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-intervene-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let path = dir.appendingPathComponent("tiny.gguf").path
        try TinyLlama(layers: 3, dim: 32, ffnDim: 48, contextLength: 64, seed: 11).write(to: path)
        let session = try Session(modelPath: path)
        let transcoder = Transcoder(config: TranscoderConfig(dIn: 32, numLatents: 96, k: 6, skipConnection: true, transcode: true), seed: 5)
        // A transcoder starts with a zero decoder: give it random rows so latents do something.
        var rng = SeededRNG(seed: 9)
        for i in 0..<transcoder.m * transcoder.d { transcoder.decoderWeight[i] = 0.5 * rng.normal() }
        transcoder.parametersDidChange()
        intervener = try Intervener(model: session.model, tokenizer: session.tokenizer, transcoder: transcoder, layer: layer)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    var tokens: [Int] { intervener.tokenizer.encode(prompt) }

    /// The latent with the largest activation anywhere in `tokens`, and where.
    func strongestLatent() throws -> (latent: Int, position: Int, value: Float) {
        let codes = try intervener.logits(tokens).codes
        var best = (latent: -1, position: -1, value: Float(0))
        for (t, code) in codes.enumerated() where t > 0 {
            for a in code.active where a.value > best.value { best = (a.latent, t, a.value) }
        }
        XCTAssertGreaterThan(best.value, 0, "some latent fires")
        return best
    }

    /// Greedy continuation recomputed from scratch at every step (no cache) under `edit`.
    func greedyByRecompute(_ prompt: [Int], edit: @escaping Intervener.Edit, count: Int) throws -> [Int] {
        var ids = prompt, out: [Int] = []
        let v = intervener.model.config.vocabSize
        for _ in 0..<count {
            let l = try intervener.logits(ids, edit: edit).logits
            let next = Array(l[(ids.count - 1) * v..<ids.count * v]).enumerated().max { $0.element < $1.element }!.offset
            out.append(next)
            ids.append(next)
        }
        return out
    }

    func testUntouchedSpliceIsTheBaseModel() throws {
        let model = intervener.model, v = model.config.vocabSize
        var base = [Float](repeating: 0, count: tokens.count * v)
        try model.forward(tokens, cache: model.makeCache(capacity: tokens.count), logits: .all) { first, l, rows in
            for i in 0..<rows * v { base[first * v + i] = l[i] }
        }
        // Bit for bit: the hook adds nothing where no latent changes, and the MLP output taken
        // through the hook's buffer sums into the residual as the plain pass does.
        XCTAssertEqual(try intervener.logits(tokens).logits, base)
    }

    func testSteeringToItsOwnValueEqualsTheUnsteeredRunExactly() throws {
        let (latent, _, _) = try strongestLatent()
        let own = Intervener.setting(latent) { _, code in code.value(of: latent) }
        XCTAssertEqual(try intervener.logits(tokens, edit: own).logits, try intervener.logits(tokens).logits)
        let settings = SteerSettings(latent: latent, value: .absolute(0), maxTokens: 12)
        let run = try intervener.steer(prompt: tokens, edit: own, settings: settings, stops: []) { _, _ in }
        XCTAssertEqual(run.steered, run.unsteered)
        XCTAssertEqual(run.steered.count, 12)
        // The same latent pushed hard does change the text (so the comparison above could fail).
        let pushed = try intervener.steer(prompt: tokens, edit: Intervener.setting(latent) { _, _ in 40 }, settings: settings, stops: []) { _, _ in }
        XCTAssertEqual(pushed.unsteered, run.unsteered)
        XCTAssertNotEqual(pushed.steered, pushed.unsteered)
    }

    /// Seeded sampling (the lab's T, `loupe steer --temperature`): both runs draw the same numbers,
    /// so a latent set to its own value samples the unsteered text, and a seed repeats its text
    /// (hot, since the tiny random model's greedy choice dominates at 0.8).
    func testSeededSamplingDrawsTheSameForBothRuns() throws {
        let (latent, _, _) = try strongestLatent()
        let own = Intervener.setting(latent) { _, code in code.value(of: latent) }
        func run(_ seed: UInt64, temperature: Float = 4) throws -> (unsteered: [Int], steered: [Int]) {
            try intervener.steer(prompt: tokens, edit: own, settings: SteerSettings(latent: latent, value: .absolute(0), maxTokens: 12,
                                                                                    temperature: temperature, seed: seed),
                                 stops: []) { _, _ in }
        }
        let sampled = try run(42)
        XCTAssertEqual(sampled.steered, sampled.unsteered, "the same draws for both runs")
        XCTAssertEqual(sampled.steered.count, 12)
        XCTAssertEqual(try run(42).steered, sampled.steered, "a seed repeats its text")
        // Sampling does draw (so the comparisons above could fail): other seeds or greedy differ.
        let others = try [run(43).steered, run(44).steered, run(0, temperature: 0).steered]
        XCTAssertTrue(others.contains { $0 != sampled.steered }, "\(others) vs \(sampled.steered)")
    }

    /// A prompt too long for both runs to share one chunk runs them one after the other, with the
    /// same tokens as when they share it.
    func testSteeringAPromptLongerThanHalfABatch() throws {
        let (latent, _, _) = try strongestLatent()
        let small = try Intervener(model: LlamaModel(gguf: GGUFFile(path: dir.appendingPathComponent("tiny.gguf").path), batch: 16),
                                   tokenizer: intervener.tokenizer, transcoder: intervener.transcoder, layer: layer)
        let settings = SteerSettings(latent: latent, value: .absolute(6), maxTokens: 6)
        let edit = Intervener.setting(latent) { _, _ in 6 }
        XCTAssertGreaterThan(2 * tokens.count, 16, "the prompt does not fit twice in one chunk of 16")
        let split = try small.steer(prompt: tokens, edit: edit, settings: settings, stops: []) { _, _ in }
        let shared = try intervener.steer(prompt: tokens, edit: edit, settings: settings, stops: []) { _, _ in }
        XCTAssertEqual(split.steered, shared.steered)
        XCTAssertEqual(split.unsteered, shared.unsteered)
    }

    func testScaleZeroEqualsZeroAblation() throws {
        let (latent, position, _) = try strongestLatent()
        let value = SteerValue.timesMax(0).value(max: 3.7)
        XCTAssertEqual(value, 0)
        let zero = Intervener.setting(latent) { _, _ in 0 }
        // Steering (cached, token by token) at scale 0 = greedy decoding of the zero-ablated model recomputed from scratch.
        let steered = try intervener.steer(prompt: tokens, edit: Intervener.setting(latent) { _, _ in value },
                                           settings: SteerSettings(latent: latent, value: .timesMax(0), maxTokens: 8), stops: []) { _, _ in }
        XCTAssertEqual(steered.steered, try greedyByRecompute(tokens, edit: zero, count: 8))
        // The ablation's statistics are those of the zero-ablated logits.
        let ablation = try intervener.ablate(tokens, latent: latent, mode: .zero, value: value)
        let v = intervener.model.config.vocabSize
        let base = try intervener.logits(tokens).logits, ablated = try intervener.logits(tokens, edit: zero).logits
        for t in 0..<(tokens.count - 1) {
            let p = Intervener.logSoftmax(base, row: t, vocab: v), q = Intervener.logSoftmax(ablated, row: t, vocab: v)
            XCTAssertEqual(ablation.deltaLogProb[t], q[tokens[t + 1]] - p[tokens[t + 1]], accuracy: 1e-6)
            let kl = zip(p, q).reduce(0.0) { $0 + Double(exp($1.0)) * Double($1.0 - $1.1) }
            XCTAssertEqual(Double(ablation.kl[t]), kl, accuracy: 1e-5)
        }
        let first = ablation.activations.firstIndex { $0 > 0 }!
        XCTAssertTrue(ablation.deltaLogProb[..<first].allSatisfy { $0 == 0 }, "nothing changes before the latent first fires")
        XCTAssertGreaterThan(ablation.kl[position], 0, "ablating where it fires changes the prediction")
        XCTAssertEqual(ablation.activations[position], try intervener.logits(tokens).codes[position].value(of: latent))
    }

    func testPatchingCleanIntoCleanChangesNothing() throws {
        let (latent, _, _) = try strongestLatent()
        for which in [latent, nil] {
            let r = try intervener.patch(clean: tokens, corrupted: tokens, latent: which)
            XCTAssertEqual(r.patchedLogProb, [Float](repeating: r.cleanLogProb, count: tokens.count))
            XCTAssertEqual(r.cleanLogProb, r.corruptedLogProb)
        }
        // A corrupted last token: patching the whole code there moves the prediction; at the tokens the
        // texts share, the codes are the same and patching changes nothing.
        var corrupted = tokens
        let last = tokens.count - 1
        corrupted[last] = tokens[last] == tokens[1] ? tokens[2] : tokens[1]
        let r = try intervener.patch(clean: tokens, corrupted: corrupted, latent: nil)
        XCTAssertNotEqual(r.cleanLogProb, r.corruptedLogProb)
        XCTAssertNotEqual(r.patchedLogProb[last], r.corruptedLogProb)
        XCTAssertEqual(Array(r.patchedLogProb[..<last]), [Float](repeating: r.corruptedLogProb, count: last))
        XCTAssertThrowsError(try intervener.patch(clean: tokens, corrupted: Array(tokens.dropLast()), latent: nil))
    }

    /// The direct effect is the derivative of the logit along the latent's contribution to the
    /// final residual: a central difference with step h = 1e-3 of the logit computed in Double from
    /// the captured residual agrees within 1e-3 × the largest |direct| (float rounding; the
    /// difference's own error is O(h²)).
    func testDirectEffectMatchesAFiniteDifferenceOfTheLogit() throws {
        let position = tokens.count - 1
        let ranking = try intervener.rank(tokens, position: position, exact: 3)
        XCTAssertFalse(ranking.latents.isEmpty)
        let model = intervener.model, d = model.config.dim
        var residual = [Float](repeating: 0, count: d)
        _ = try intervener.logits(tokens, finalResidual: { view in residual = Array(view.row(position - view.firstPosition)) })
        var u = [Float](repeating: 0, count: d)
        u.withUnsafeMutableBufferPointer { model.weights.unembedding.copyRow(ranking.target, into: $0.baseAddress!) }
        let g = model.weights.outputNorm.pointer, eps = Double(model.config.normEps)
        func logit(_ r: [Double]) -> Double {
            let sigma = (r.reduce(0) { $0 + $1 * $1 } / Double(d) + eps).squareRoot()
            return (0..<d).reduce(0) { $0 + Double(u[$1]) * Double(g[$1]) * r[$1] / sigma }
        }
        XCTAssertEqual(logit(residual.map(Double.init)), Double(ranking.logit), accuracy: 1e-3, "the reference logit is the model's")
        let scale = ranking.latents.map { abs($0.direct) }.max()!
        let h = 1e-3
        for l in ranking.latents {
            let row = intervener.transcoder.decoderWeight.pointer + l.latent * d
            let plus = (0..<d).map { Double(residual[$0]) + h * Double(l.activation) * Double(row[$0]) }
            let minus = (0..<d).map { Double(residual[$0]) - h * Double(l.activation) * Double(row[$0]) }
            let fd = (logit(plus) - logit(minus)) / (2 * h)
            XCTAssertEqual(Double(l.direct), fd, accuracy: 1e-3 * Double(scale), "latent \(l.latent)")
        }
        // Ranked by |direct|, the first three with an exact ablation effect.
        XCTAssertEqual(ranking.latents.map { abs($0.direct) }, ranking.latents.map { abs($0.direct) }.sorted(by: >))
        XCTAssertEqual(ranking.latents.prefix(3).filter { $0.exact != nil }.count, min(3, ranking.latents.count))
        XCTAssertTrue(ranking.latents.dropFirst(3).allSatisfy { $0.exact == nil })
        // The exact effect (the last token rerun against the cache) is the logit's drop in a full run
        // with the latent zeroed there.
        let v = model.config.vocabSize
        let full = try intervener.logits(tokens).logits[position * v + ranking.target]
        for l in ranking.latents.prefix(3) {
            let zeroed = try intervener.logits(tokens, edit: Intervener.setting(l.latent) { p, _ in p == position ? 0 : nil }).logits
            XCTAssertEqual(try XCTUnwrap(l.exact), full - zeroed[position * v + ranking.target], accuracy: 1e-4)
        }
    }
}
