import Foundation
import LoupeTestSupport
import Tokenizer
import XCTest
@testable import Formats
import Foundation
@testable import Model
import XCTest

/// Logits of chosen rows only (`forward(…logitsAt:)`) equal the same rows of `.all`, for one sequence
/// run in several chunks and for a batch of sequences on a shared prefix, on the tiny random model and
/// on the real one; the trimmed final layer still caches every row's keys and values.
///
/// Equal up to float rounding: with fewer rows a GEMM may take its GEMV path, which sums in another
/// order, so differences are measured relative to the logits' scale (the largest |logit|, at least 1).
final class SelectedLogitsTests: XCTestCase {
    let tokens = [3, 17, 42, 8, 8, 0, 49, 23, 11, 5, 30, 2, 19, 44, 7, 1, 36, 12, 9, 28, 40, 6, 33]

    /// The tiny model with a batch of 8 tokens, so inputs run in several chunks.
    func tinyModel() throws -> LlamaModel {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-tiny-\(UUID().uuidString).gguf").path
        try TinyLlama(seed: 7).write(to: path)
        defer { try? FileManager.default.removeItem(atPath: path) }
        return try LlamaModel(gguf: GGUFFile(path: path), batch: 8)
    }

    /// Every row's logits of `tokens` after `prefix`, through `.all`.
    func allLogits(_ model: LlamaModel, _ tokens: [Int], prefix: [Int] = []) throws -> [[Float]] {
        let v = model.config.vocabSize, cache = model.makeCache()
        if !prefix.isEmpty { try model.forward(prefix, cache: cache, logits: .none) }
        var rows: [[Float]] = []
        try model.forward(tokens, cache: cache, logits: .all) { _, logits, n in
            for r in 0..<n { rows.append(Array(logits[r * v..<(r + 1) * v])) }
        }
        return rows
    }

    /// max |a − b| relative to b's scale.
    func relativeDiff(_ a: UnsafeBufferPointer<Float>, _ b: [Float]) -> Float {
        maxAbsDiff(Array(a), b) / max(1, b.map(abs).max()!)
    }

    /// Runs one sequence with logits at `rows`: checks they come once each, in order, and the cache
    /// holds every token; returns the largest relative difference from the same rows of `.all`.
    func checkSequence(_ model: LlamaModel, _ tokens: [Int], rows: [Int], hooks: ForwardHooks? = nil) throws -> Float {
        let all = try allLogits(model, tokens)
        var seen: [Int] = [], worst: Float = 0
        let cache = model.makeCache()
        try model.forward(tokens, cache: cache, logitsAt: rows, hooks: hooks) { row, logits in
            XCTAssertEqual(logits.count, model.config.vocabSize)
            seen.append(row)
            worst = max(worst, relativeDiff(logits, all[row]))
        }
        XCTAssertEqual(seen, rows)
        XCTAssertEqual(cache.length, tokens.count)
        return worst
    }

    func testChosenRowsOfAChunkedSequenceEqualAllLogits() throws {
        let model = try tinyModel()
        // Chunks of 8: rows in the first and last, none in the middle one; runs of consecutive rows and
        // single ones; the first and the last row.
        for rows in [[0, 2, 3, 7, 17, 18, 22], [22], [5], Array(tokens.indices), []] {
            XCTAssertLessThan(try checkSequence(model, tokens, rows: rows), 1e-5, "rows \(rows)")
        }
        // A hook on the final layer keeps it whole: the chosen rows are gathered after it, and the hook sees every row.
        var seenRows = 0
        var hook = LayerHook()
        hook.mlpInput = { seenRows += $0.rows }
        let hooks = ForwardHooks(layers: [model.config.layers - 1: hook])
        XCTAssertLessThan(try checkSequence(model, tokens, rows: [1, 9, 10, 20], hooks: hooks), 1e-5)
        XCTAssertEqual(seenRows, tokens.count)
    }

    func testTrimmedFinalLayerStillCachesEveryRow() throws {
        let model = try tinyModel()
        let cache = model.makeCache()
        try model.forward(Array(tokens[0..<20]), cache: cache, logitsAt: [4, 12]) { _, _ in }
        let next = try model.lastLogits(Array(tokens[20...]), cache: cache)
        XCTAssertLessThan(maxAbsDiff(next, try allLogits(model, tokens).last!), 1e-4)
    }

    func testChosenRowsOfABatchEqualAllLogits() throws {
        let model = try tinyModel()
        let prefix = Array(tokens[0..<5])
        let shared = model.makeCache()
        try model.forward(prefix, cache: shared, logits: .none)
        let seqs = [Array(tokens[5..<10]), [7], Array(tokens[10..<16]), Array(tokens[1..<4]), Array(tokens[16..<23])]
        let rows = [[0, 2, 4], [0], [], [1, 2], [0, 1, 2, 5]]
        let caches = seqs.map { _ in model.makeCache(capacity: prefix.count + 8) }
        caches.forEach { $0.copyPrefix(of: shared, length: prefix.count) }
        let all = try seqs.map { try allLogits(model, $0, prefix: prefix) }
        var seen = seqs.map { _ in [Int]() }
        var worst: Float = 0
        try model.forward(batch: seqs, caches: caches, logitsAt: rows) { n, row, logits in
            seen[n].append(row)
            worst = max(worst, relativeDiff(logits, all[n][row]))
        }
        XCTAssertEqual(seen, rows)
        XCTAssertEqual(caches.map(\.length), seqs.map { prefix.count + $0.count })
        print("tiny model, batch of \(seqs.count) on a shared prefix: chosen rows vs .all, max relative |Δ| = \(worst)")
        XCTAssertLessThan(worst, 1e-5)
    }

    func testChosenRowsEqualAllLogitsOnTheRealModel() throws {
        guard let path = try? RealModel.path() else { throw XCTSkip("the model is not in data/models and could not be fetched") }
        let gguf = try GGUFFile(path: path)
        let model = try LlamaModel(gguf: gguf, batch: 32)
        let text = "The farmer fed the dog before sunrise, then walked the long road to the market in town, where he sold "
            + "eggs, cheese and a basket of apples to the baker, who paid him in silver coins and a loaf of bread. "
            + "On the way home it began to rain, so he waited under the old oak tree until the clouds had passed."
        let ids = try BPETokenizer(gguf: gguf).encode(text)
        XCTAssertGreaterThan(ids.count, 2 * model.batch, "the sequence runs in several chunks")
        // Every fourth row, as the simulator's tabs, and runs of consecutive ones.
        let single = try checkSequence(model, ids, rows: Array(stride(from: 1, to: ids.count, by: 4)) + [ids.count - 1])
        let runs = try checkSequence(model, ids, rows: ids.indices.filter { $0 % 8 < 3 })

        let seqs = [Array(ids[0..<9]), Array(ids[9..<20]), Array(ids[20..<31])]
        let chosen = seqs.map { Array(stride(from: 2, to: $0.count, by: 3)) }
        let all = try seqs.map { try allLogits(model, $0) }
        var batch: Float = 0
        try model.forward(batch: seqs, caches: seqs.map { model.makeCache(capacity: $0.count) }, logitsAt: chosen) { n, row, logits in
            batch = max(batch, relativeDiff(logits, all[n][row]))
        }
        print("real model, chosen rows vs .all, max relative |Δ|: \(single) and \(runs) (\(ids.count) tokens in chunks of \(model.batch)), \(batch) (batch of \(seqs.count))")
        XCTAssertLessThan(single, 1e-5)
        XCTAssertLessThan(runs, 1e-5)
        XCTAssertLessThan(batch, 1e-5)
    }
}
