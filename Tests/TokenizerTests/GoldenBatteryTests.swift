import Foundation
import Formats
import LoupeTestSupport
import XCTest
@testable import Tokenizer
import XCTest

/// Checks the tokenizer read from the real SmolLM2 GGUF against Hugging Face's ids on the
/// battery written by Tests/Scripts/golden/make_tokenizer_battery.py.
final class GoldenBatteryTests: XCTestCase {
    struct Battery: Decodable {
        struct Case: Decodable {
            let text: String
            let ids: [Int]
            /// False where the text holds bytes the vocabulary has no token for (they are dropped).
            let round_trip: Bool
        }
        let source: String
        let cases: [Case]
    }

    /// The real model's GGUF, fetched on first use like every model test (CI starts without it).
    func loadModel() throws -> GGUFFile {
        try GGUFFile(path: RealModel.path())
    }

    func loadBattery() throws -> Battery {
        let url = try XCTUnwrap(Bundle.module.url(forResource: "tokenizer_battery", withExtension: "json", subdirectory: "Golden"))
        return try JSONDecoder().decode(Battery.self, from: Data(contentsOf: url))
    }

    func testBatteryMatchesHuggingFace() throws {
        let tokenizer = try BPETokenizer(gguf: try loadModel())
        let battery = try loadBattery()
        XCTAssertGreaterThanOrEqual(battery.cases.count, 40)
        var exact = 0
        for c in battery.cases {
            let ids = tokenizer.encode(c.text)
            if ids == c.ids {
                exact += 1
            } else {
                let at = zip(ids, c.ids).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(ids.count, c.ids.count)
                func show(_ list: [Int]) -> String {
                    at < list.count ? "\(list[at]) '\(tokenizer.display(list[at]))'" : "end"
                }
                XCTFail("\(c.text.debugDescription): first mismatch at token \(at): got \(show(ids)), expected \(show(c.ids))\n got \(ids)\n exp \(c.ids)")
            }
            if c.round_trip {
                XCTAssertEqual(tokenizer.decode(ids), Array(c.text.utf8), "round trip of \(c.text.debugDescription)")
                XCTAssertEqual(tokenizer.decodeText(ids), c.text)
            } else {
                let kept = c.text.utf8.filter { tokenizer.id(of: String(ByteLevel.scalar[Int($0)])) != nil }
                XCTAssertLessThan(kept.count, c.text.utf8.count)
                XCTAssertEqual(tokenizer.decode(ids), kept, "round trip less tokenless bytes of \(c.text.debugDescription)")
            }
        }
        print("tokenizer battery: \(exact)/\(battery.cases.count) exact")
    }

    func testModelVocabulary() throws {
        let f = try loadModel()
        let tokenizer = try BPETokenizer(gguf: f)
        XCTAssertEqual(tokenizer.count, 49152)
        XCTAssertEqual(tokenizer.bosId, 1)
        XCTAssertEqual(tokenizer.eosId, 2)
        XCTAssertEqual(tokenizer.id(of: "<|im_end|>"), 2)
        XCTAssertTrue(tokenizer.isSpecial(2))
        XCTAssertFalse(tokenizer.isSpecial(tokenizer.id(of: "Ġthe")!))
        XCTAssertEqual(tokenizer.tokenString(tokenizer.id(of: "Ġthe")!), "Ġthe")
        XCTAssertEqual(tokenizer.display(tokenizer.id(of: "Ġthe")!), "·the")
        XCTAssertEqual(tokenizer.display(2), "<|im_end|>")
        XCTAssertEqual(tokenizer.encode("<|im_end|>", parseSpecial: false).contains(2), false)

        let template = try ChatTemplate(gguf: f)
        XCTAssertEqual(template.defaultSystemPrompt, "You are a helpful AI assistant named SmolLM, trained by Hugging Face")
    }

    /// Measures throughput on a text named by LOUPE_TOKENIZER_BENCH (skipped when unset).
    func testThroughput() throws {
        guard let path = ProcessInfo.processInfo.environment["LOUPE_TOKENIZER_BENCH"] else {
            throw XCTSkip("set LOUPE_TOKENIZER_BENCH to a text file to measure tokens per second")
        }
        let tokenizer = try BPETokenizer(gguf: try loadModel())
        let text = String(decoding: try Data(contentsOf: URL(fileURLWithPath: path)), as: UTF8.self)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        for pass in ["cold", "warm"] {
            let start = Date()
            var tokens = 0
            for line in lines { tokens += tokenizer.encode(line + "\n").count }
            let seconds = Date().timeIntervalSince(start)
            print("tokenizer \(pass): \(text.utf8.count) bytes, \(tokens) tokens in \(String(format: "%.3f", seconds)) s = \(Int(Double(tokens) / seconds)) tokens/s")
        }
    }
}
