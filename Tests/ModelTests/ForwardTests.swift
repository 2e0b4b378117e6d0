import Foundation
import LoupeTestSupport
import XCTest
@testable import Formats
@testable import Model

final class ForwardTests: XCTestCase {
    var tiny = TinyLlama(seed: 42)
    var model: LlamaModel!
    let tokens = [3, 17, 42, 8, 8, 0, 49, 23, 11, 5, 30, 2, 19, 44, 7, 1, 36, 12, 9, 28, 40, 6, 33]

    override func setUpWithError() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-tiny-\(UUID().uuidString).gguf").path
        try tiny.write(to: path)
        defer { try? FileManager.default.removeItem(atPath: path) }
        // A small batch so the test also covers inputs run in several chunks.
        model = try LlamaModel(gguf: GGUFFile(path: path), batch: 8)
    }

    func allLogits(_ tokens: [Int], hooks: ForwardHooks? = nil) throws -> [[Float]] {
        var rows: [[Float]] = []
        let v = model.config.vocabSize
        try model.forward(tokens, cache: model.makeCache(), logits: .all, hooks: hooks) { first, logits, n in
            XCTAssertEqual(first, rows.count)
            for r in 0..<n { rows.append(Array(logits[r * v..<(r + 1) * v])) }
        }
        return rows
    }

    func testConfigIsReadFromMetadata() {
        XCTAssertEqual(model.config, tiny.config)
    }

    func testAllPositionsMatchThePlainReference() throws {
        let ours = try allLogits(tokens)
        let ref = tiny.referenceLogits(tokens)
        XCTAssertEqual(ours.count, tokens.count)
        var worst: Float = 0
        for t in 0..<tokens.count { worst = max(worst, maxAbsDiff(ours[t], ref[t])) }
        print("tiny model: max |logit − reference| over \(tokens.count) positions = \(worst)")
        XCTAssertLessThan(worst, 1e-3)
        XCTAssertGreaterThan(ref.flatMap { $0 }.map(abs).max()!, 1, "the reference logits are not trivial")
    }

    func testIncrementalDecodeEqualsFullPrefill() throws {
        let full = try allLogits(tokens)
        let cache = model.makeCache()
        _ = try model.lastLogits(Array(tokens[0..<10]), cache: cache)
        for t in 10..<tokens.count {
            let step = try model.lastLogits([tokens[t]], cache: cache)
            XCTAssertLessThan(maxAbsDiff(step, full[t]), 1e-4, "position \(t)")
        }
        XCTAssertEqual(cache.length, tokens.count)
    }

    func testSharedPrefixIsReusedThroughTheCache() throws {
        let prefix = Array(tokens[0..<12])
        let cache = model.makeCache()
        _ = try model.lastLogits(prefix, cache: cache)
        for tail in [[4, 9, 13], [21], [7, 7, 7, 7, 7, 7, 7, 7, 7, 7]] {
            cache.truncate(to: prefix.count)
            let reused = try model.lastLogits(tail, cache: cache)
            let fresh = try model.lastLogits(prefix + tail, cache: model.makeCache())
            XCTAssertLessThan(maxAbsDiff(reused, fresh), 1e-4)
        }
    }

    func testBatchedSequencesEqualSeparateRuns() throws {
        let seqs = [Array(tokens[0..<5]), Array(tokens[3..<10]), [7], Array(tokens[10..<16]), Array(tokens[1..<4])]
        // Batch of 8 rows: the sequences are spread over several chunks.
        var got = seqs.map { _ in [[Float]]() }
        try model.forward(batch: seqs, caches: seqs.map { model.makeCache(capacity: $0.count) }, logits: .all) { n, first, logits, rows in
            XCTAssertEqual(first, 0)
            for r in 0..<rows { got[n].append(Array(logits[r * 50..<(r + 1) * 50])) }
        }
        for (n, seq) in seqs.enumerated() {
            let ref = tiny.referenceLogits(seq)
            XCTAssertEqual(got[n].count, seq.count)
            for t in 0..<seq.count { XCTAssertLessThan(maxAbsDiff(got[n][t], ref[t]), 1e-3, "sequence \(n) position \(t)") }
        }
        let ce = try model.crossEntropies(batch: seqs)
        for (n, seq) in seqs.enumerated() { XCTAssertLessThan(maxAbsDiff(ce[n], try model.crossEntropies(seq)), 1e-4) }

        // Continuations of a shared prefix, each on its own copy of the prefix cache, last logits only.
        let prefix = Array(tokens[0..<6])
        let shared = model.makeCache()
        _ = try model.lastLogits(prefix, cache: shared)
        let tails = [[4, 9], [21, 3, 3], [13]]
        let caches = tails.map { _ in model.makeCache(capacity: 12) }
        caches.forEach { $0.copyPrefix(of: shared, length: prefix.count) }
        var last = [[Float]](repeating: [], count: tails.count)
        try model.forward(batch: tails, caches: caches, logits: .last) { n, first, logits, rows in
            XCTAssertEqual(rows, 1)
            XCTAssertEqual(first, tails[n].count - 1)
            last[n] = Array(logits)
        }
        for (n, tail) in tails.enumerated() {
            XCTAssertLessThan(maxAbsDiff(last[n], tiny.referenceLogits(prefix + tail).last!), 1e-3)
        }
    }

    func testHooksReadAndReplaceTheMLPOutput() throws {
        var captured: [Float] = []
        var inputs: [Float] = []
        var residuals = 0
        var read = LayerHook()
        read.residual = { residuals += $0.rows }
        read.mlpInput = { v in inputs += Array(UnsafeBufferPointer(start: v.pointer, count: v.rows * v.dim)) }
        read.mlpOutput = { v in captured += Array(UnsafeBufferPointer(start: v.pointer, count: v.rows * v.dim)) }
        let plain = try allLogits(tokens)
        let hooked = try allLogits(tokens, hooks: ForwardHooks(layers: [1: read]))
        XCTAssertLessThan(maxAbsDiff(plain.flatMap { $0 }, hooked.flatMap { $0 }), 1e-5, "reading changes nothing")
        XCTAssertEqual(captured.count, tokens.count * model.config.dim)
        XCTAssertEqual(inputs.count, tokens.count * model.config.dim)
        XCTAssertEqual(residuals, tokens.count)

        // Replacing the MLP output by itself changes nothing; by zeros it matches the reference with that MLP ablated.
        var offset = 0
        var same = LayerHook()
        same.replaceMLPOutput = { v in
            for i in 0..<v.rows * v.dim { v.pointer[i] = captured[offset + i] }
            offset += v.rows * v.dim
        }
        XCTAssertLessThan(maxAbsDiff(plain.flatMap { $0 }, try allLogits(tokens, hooks: ForwardHooks(layers: [1: same])).flatMap { $0 }), 1e-5)
        var zero = LayerHook()
        zero.replaceMLPOutput = { v in v.pointer.update(repeating: 0, count: v.rows * v.dim) }
        let ablated = try allLogits(tokens, hooks: ForwardHooks(layers: [0: zero]))
        let refAblated = tiny.referenceLogits(tokens) { layer, _, y in if layer == 0 { y = y.map { _ in 0 } } }
        XCTAssertLessThan(maxAbsDiff(ablated.flatMap { $0 }, refAblated.flatMap { $0 }), 1e-3)
        XCTAssertGreaterThan(maxAbsDiff(ablated.flatMap { $0 }, plain.flatMap { $0 }), 1e-2, "ablation has an effect")
    }

    func testHooksReadAndReplaceTheResidualLeavingALayer() throws {
        // Read: the residual stream leaving layer 0, every position, against the plain reference's.
        var read = LayerHook(), captured: [Float] = [], firstRows: [Int] = []
        read.residualOutput = { v in
            captured += Array(UnsafeBufferPointer(start: v.pointer, count: v.rows * v.dim))
            firstRows += v.firstPositionRows.map { $0 + v.firstPosition }
        }
        var expected: [[Float]] = Array(repeating: [], count: tokens.count)
        let plainRef = tiny.referenceLogits(tokens, residualOverride: { l, t, x in if l == 0 { expected[t] = x } })
        let plain = try allLogits(tokens)
        let hooked = try allLogits(tokens, hooks: ForwardHooks(layers: [0: read]))
        XCTAssertLessThan(maxAbsDiff(plain.flatMap { $0 }, hooked.flatMap { $0 }), 1e-5, "reading changes nothing")
        XCTAssertLessThan(maxAbsDiff(plain.flatMap { $0 }, plainRef.flatMap { $0 }), 1e-3)
        let worst = maxAbsDiff(captured, expected.flatMap { $0 })
        print("tiny model: max |residual after layer 0 − reference| = \(worst)")
        XCTAssertLessThan(worst, 1e-5)
        XCTAssertGreaterThan(expected.flatMap { $0 }.map(abs).max()!, 0.1, "the reference residual is not trivial")
        XCTAssertEqual(firstRows, [0], "the 8-row chunks of one sequence: only the first holds position 0")

        // Replace: the residual halved from position 2 on matches the reference with the same edit, and
        // the chunks' rows are at the positions the views say.
        var halve = LayerHook()
        halve.replaceResidualOutput = { v in
            for r in 0..<v.rows where v.firstPosition + r >= 2 { for i in 0..<v.dim { v.row(r)[i] *= 0.5 } }
        }
        let edited = try allLogits(tokens, hooks: ForwardHooks(layers: [0: halve]))
        let refEdited = tiny.referenceLogits(tokens, residualOverride: { l, t, x in if l == 0 && t >= 2 { x = x.map { $0 * 0.5 } } })
        XCTAssertLessThan(maxAbsDiff(edited.flatMap { $0 }, refEdited.flatMap { $0 }), 1e-3)
        XCTAssertGreaterThan(maxAbsDiff(edited.flatMap { $0 }, plain.flatMap { $0 }), 1e-2, "the replacement has an effect")
        XCTAssertLessThan(maxAbsDiff(Array(edited[0..<2].joined()), Array(plain[0..<2].joined())), 1e-5, "positions before the edit are untouched")

        // A batch of sequences: each one's first row is reported as position 0.
        var starts: [SequenceStart] = []
        var batchHook = LayerHook()
        batchHook.residualOutput = { v in starts += v.starts }
        let seqs = [Array(tokens[0..<3]), Array(tokens[3..<5]), Array(tokens[5..<8])]
        try model.forward(batch: seqs, caches: seqs.map { model.makeCache(capacity: $0.count) }, logits: .none,
                          hooks: ForwardHooks(layers: [1: batchHook])) { _, _, _, _ in }
        XCTAssertEqual(starts, [SequenceStart(row: 0, position: 0), SequenceStart(row: 3, position: 0), SequenceStart(row: 5, position: 0)])
    }

    func testStopAfterLayerRunsOnlyThatFar() throws {
        var early: [Float] = [], late = 0
        var h0 = LayerHook(), h1 = LayerHook()
        h0.mlpInput = { v in early += Array(UnsafeBufferPointer(start: v.pointer, count: v.rows * v.dim)) }
        h1.residual = { _ in late += 1 }
        var got = false
        try model.forward(tokens, cache: model.makeCache(), logits: .all,
                          hooks: ForwardHooks(layers: [0: h0, 1: h1], stopAfterLayer: 0)) { _, _, _ in got = true }
        XCTAssertFalse(got, "no logits after an early stop")
        XCTAssertEqual(late, 0)
        XCTAssertEqual(early.count, tokens.count * model.config.dim)
    }

    func testBadInputIsAnError() throws {
        XCTAssertThrowsError(try model.lastLogits([1, 50], cache: model.makeCache())) {
            XCTAssertEqual($0 as? ModelError, .tokenOutOfRange(id: 50, vocabSize: 50))
        }
        XCTAssertThrowsError(try model.lastLogits([], cache: model.makeCache()))
        XCTAssertThrowsError(try model.lastLogits(Array(repeating: 1, count: 5), cache: model.makeCache(capacity: 4))) {
            XCTAssertEqual($0 as? ModelError, .contextFull(needed: 5, capacity: 4))
        }
    }

    func testCrossEntropyIsLogSoftmaxOfTheNextToken() throws {
        let ce = try model.crossEntropies(tokens)
        let ref = tiny.referenceLogits(tokens)
        XCTAssertEqual(ce.count, tokens.count - 1)
        for t in 0..<tokens.count - 1 {
            let m = ref[t].max()!
            let lse = m + log(ref[t].reduce(Float(0)) { $0 + exp($1 - m) })
            XCTAssertEqual(ce[t], lse - ref[t][tokens[t + 1]], accuracy: 1e-3)
        }
    }

    func testMissingAndMisshapenTensorsAreNamed() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-bad-\(UUID().uuidString).gguf").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        var t = tiny
        t.tensors["blk.1.ffn_up.weight"] = nil
        try t.write(to: path)
        XCTAssertThrowsError(try LlamaModel(gguf: GGUFFile(path: path))) { XCTAssertTrue("\($0)".contains("blk.1.ffn_up.weight"), "\($0)") }
    }
}
