import Foundation
import Formats
import Kernels
import LoupeTestSupport
import Tokenizer
import XCTest
@testable import Model
import XCTest

/// The real SmolLM2 against Hugging Face transformers in fp32 on the same GGUF
/// (Golden/model_golden.json, made by Tests/Scripts/golden/make_model_golden.py).
final class GoldenTests: XCTestCase {
    struct Case: Decodable {
        let text: String
        let ids: [Int]
        let mean_ce: Double
        let argmax: [Int]
        let last_logits_f32_b64: String
    }
    struct Golden: Decodable { let source: String; let cases: [Case] }

    /// The real model and its tokenizer, loaded once.
    struct Session { let model: LlamaModel; let tokenizer: BPETokenizer }
    nonisolated(unsafe) static var session: Session?

    func loadSession() throws -> Session {
        if let s = Self.session { return s }
        // Fetches the model on first use, as every command does.
        let gguf = try GGUFFile(path: RealModel.path())
        let s = try Session(model: LlamaModel(gguf: gguf), tokenizer: BPETokenizer(gguf: gguf))
        Self.session = s
        return s
    }

    func golden() throws -> Golden {
        let url = try XCTUnwrap(Bundle.module.url(forResource: "Golden/model_golden", withExtension: "json"))
        return try JSONDecoder().decode(Golden.self, from: Data(contentsOf: url))
    }

    func testMatchesTransformersFP32() throws {
        let s = try loadSession()
        let g = try golden()
        XCTAssertGreaterThanOrEqual(g.cases.count, 5)
        let v = s.model.config.vocabSize
        for (n, c) in g.cases.enumerated() {
            XCTAssertEqual(s.tokenizer.encode(c.text), c.ids, "case \(n): tokenization differs from Hugging Face")
            var argmax: [Int] = []
            var last: [Float] = []
            var ceSum = 0.0
            try s.model.forward(c.ids, cache: s.model.makeCache(capacity: c.ids.count), logits: .all) { first, logits, rows in
                for r in 0..<rows {
                    let row = logits.baseAddress! + r * v
                    argmax.append(Ops.argmax(row, count: v))
                    let t = first + r
                    if t + 1 < c.ids.count { ceSum += Double(Ops.logSumExp(row, count: v) - row[c.ids[t + 1]]) }
                    if t == c.ids.count - 1 { last = Array(UnsafeBufferPointer(start: row, count: v)) }
                }
            }
            let meanCE = ceSum / Double(c.ids.count - 1)
            let expected = Data(base64Encoded: c.last_logits_f32_b64)!.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
            let logitDiff = maxAbsDiff(last, expected)
            let mismatches = zip(argmax, c.argmax).filter { $0 != $1 }.count
            print(String(format: "golden case %d: %d tokens, mean CE %.6f vs %.6f (|Δ| %.2e), last logits max |Δ| %.2e, argmax %d/%d equal",
                         n, c.ids.count, meanCE, c.mean_ce, abs(meanCE - c.mean_ce), logitDiff, argmax.count - mismatches, argmax.count))
            XCTAssertEqual(meanCE, c.mean_ce, accuracy: 1e-3, "case \(n) mean CE")
            XCTAssertLessThan(logitDiff, 2e-3, "case \(n) last-position logits")
            XCTAssertEqual(argmax, c.argmax, "case \(n) argmax at every position")
        }
    }

    func testGreedyDecodeWithCacheMatchesPrefillArgmax() throws {
        let s = try loadSession()
        let prompt = s.tokenizer.encode("The capital of France is")
        let cache = s.model.makeCache(capacity: 64)
        var ids = prompt
        var logits = try s.model.lastLogits(prompt, cache: cache)
        for _ in 0..<8 {
            let next = logits.withUnsafeBufferPointer { Ops.argmax($0.baseAddress!, count: $0.count) }
            ids.append(next)
            logits = try s.model.lastLogits([next], cache: cache)
        }
        let fresh = try s.model.lastLogits(ids, cache: s.model.makeCache(capacity: 64))
        XCTAssertLessThan(maxAbsDiff(logits, fresh), 2e-3)
        let text = s.tokenizer.decodeText(Array(ids[prompt.count...]))
        print("greedy continuation: \(text.debugDescription)")
        XCTAssertTrue(text.contains("Paris"), text)
    }
}
