import Foundation
import LoupeTestSupport
import XCTest

/// The real `loupe` binary, run as a user runs it, on the real model.
final class CommandLineTests: XCTestCase {
    typealias Result = LoupeBinary.Result

    func loupe(_ args: String...) throws -> Result { try loupe(args) }

    func loupe(_ args: [String]) throws -> Result {
        guard LoupeBinary.exists else { throw XCTSkip("no loupe binary beside the tests at \(BuildProducts.executable("loupe").path)") }
        return try LoupeBinary.run(args)
    }

    func json(_ r: Result) throws -> [String: Any] {
        XCTAssertEqual(r.status, 0, r.stderr)
        return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], r.stdout)
    }

    override func setUpWithError() throws {
        // Fetch (or verify) once, so the commands below only load.
        let r = try loupe("fetch", "--json")
        XCTAssertEqual(r.status, 0, r.stderr)
    }

    func testTokenizeJSON() throws {
        let j = try json(try loupe("tokenize", "--json", "Hello, world! <|im_end|>"))
        XCTAssertEqual(j["ids"] as? [Int], [19556, 28, 905, 17, 216, 2])
        XCTAssertEqual(j["tokens"] as? [String], ["Hello", ",", " world", "!", " ", "<|im_end|>"])
    }

    func testLossJSONMatchesTheGoldenParagraph() throws {
        let text = "It was a bright cold day in April, and the clocks were striking thirteen. The wind swept little "
            + "eddies of dust and torn paper into spirals along the pavement, and though the sun was shining "
            + "and the sky a harsh blue, there seemed to be no colour in anything except the posters that were "
            + "plastered everywhere."
        let j = try json(try loupe("loss", "--json", "--text", text))
        XCTAssertEqual(j["tokens"] as? Int, 64)
        XCTAssertEqual(try XCTUnwrap(j["mean_ce"] as? Double), 3.766898, accuracy: 1e-3)
    }

    func testNextJSON() throws {
        let j = try json(try loupe("next", "--json", "--top", "3", "The capital of France is"))
        let top = try XCTUnwrap(j["top"] as? [[String: Any]])
        XCTAssertEqual(top.count, 3)
        XCTAssertEqual(top.first?["token"] as? String, " Paris")
        let logits = top.compactMap { $0["logit"] as? Double }
        XCTAssertEqual(logits, logits.sorted(by: >))
    }

    func testGenerateJSONIsGreedyAndDeterministic() throws {
        let a = try json(try loupe("generate", "--json", "--max-tokens", "6", "The capital of France is"))
        let b = try json(try loupe("generate", "--json", "--max-tokens", "6", "The capital of France is"))
        XCTAssertEqual(a["ids"] as? [Int], b["ids"] as? [Int])
        XCTAssertEqual((a["ids"] as? [Int])?.count, 6)
        XCTAssertTrue((a["text"] as? String ?? "").contains("Paris"))
    }

    func testErrorsAreOneLineWithExitStatusOne() throws {
        for args in [["tokenize", "--bogus", "x"], ["loss"], ["next", "--top", "zero", "x"], ["frobnicate"],
                     ["tokenize", "--model", "/nonexistent.gguf", "x"]] {
            let r = try loupe(args)
            XCTAssertEqual(r.status, 1, "\(args)")
            let lines = r.stderr.split(separator: "\n").filter { $0.contains("error") }
            XCTAssertEqual(lines.count, 1, "\(args): \(r.stderr)")
        }
        let bad = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-notgguf-\(UUID().uuidString)").path
        try Data("this is not a model".utf8).write(to: URL(fileURLWithPath: bad))
        defer { try? FileManager.default.removeItem(atPath: bad) }
        let r = try loupe("next", "--model", bad, "hello")
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("not a GGUF file"), r.stderr)
    }
}
