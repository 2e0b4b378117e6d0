import Foundation
import XCTest
@testable import Engine
@testable import Storage
@testable import Tokenizer

final class CorpusTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-corpus-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    /// A byte-level tokenizer with no merges: one token per byte, plus an end-of-text token.
    func byteTokenizer() throws -> BPETokenizer {
        let bytes = (0..<256).map { ByteLevel.encode([UInt8($0)]) }
        return try BPETokenizer(tokens: bytes + ["<|endoftext|>"], tokenTypes: Array(repeating: 1, count: 256) + [3], merges: [],
                                preTokenizer: "gpt2", bosId: nil, eosId: 256, addBOS: false)
    }

    func write(_ name: String, _ text: String) throws -> String {
        let url = dir.appendingPathComponent(name)
        try text.write(to: url, atomically: true, encoding: .utf8)
        return url.path
    }

    func testWindowsSplitAndRoundTrip() throws {
        let a = try write("a.txt", String(repeating: "abcdefgh", count: 20))
        let b = try write("b.jsonl", #"{"text": "hello world"}"# + "\n\n" + #"{"text": "<|endoftext|> stays text", "id": 3}"# + "\n")
        let corpus = try Corpus.build(files: [a, b], tokenizer: try byteTokenizer(), windowLength: 16, heldOutEvery: 4)
        // 160 bytes + separator, 11 + separator, 30 + separator = 204 tokens → 12 windows of 16.
        XCTAssertEqual(corpus.windowCount, 12)
        XCTAssertEqual(corpus.heldOutWindows, [0, 4, 8])
        XCTAssertEqual(corpus.trainingWindows.count, 9)
        XCTAssertEqual(Set(corpus.heldOutWindows).intersection(corpus.trainingWindows), [])
        XCTAssertEqual(corpus.window(0).prefix(3), [97, 98, 99])
        XCTAssertEqual(corpus.tokens[160], 256, "documents are separated by the end-of-text token")
        XCTAssertFalse(corpus.tokens[173...].prefix(13).contains(256), "special-token text inside a document stays text")
        try corpus.save(to: dir.appendingPathComponent("c"), sources: [a, b])
        let (back, meta) = try Corpus.load(from: dir.appendingPathComponent("c"))
        XCTAssertEqual(back.tokens, corpus.tokens)
        XCTAssertEqual(meta.windows, 12)
        XCTAssertEqual(meta.sources, [a, b])

        let limited = try Corpus.build(files: [a, b], tokenizer: try byteTokenizer(), windowLength: 16, heldOutEvery: 4, maxWindows: 5)
        XCTAssertEqual(limited.windowCount, 5)
    }

    func testBadJSONLNamesTheLine() throws {
        let f = try write("bad.jsonl", #"{"text": "ok"}"# + "\n" + #"{"body": "no text"}"# + "\n")
        XCTAssertThrowsError(try Corpus.documents(in: f)) { XCTAssertTrue("\($0)".contains("bad.jsonl:2"), "\($0)") }
        let g = try write("worse.jsonl", "not json\n")
        XCTAssertThrowsError(try Corpus.documents(in: g)) { XCTAssertTrue("\($0)".contains("worse.jsonl:1"), "\($0)") }
        XCTAssertThrowsError(try Corpus.documents(in: dir.appendingPathComponent("absent.txt").path))
    }

    func testTooSmallCorpusIsAnError() throws {
        let f = try write("tiny.txt", "short")
        XCTAssertThrowsError(try Corpus.build(files: [f], tokenizer: try byteTokenizer(), windowLength: 64)) {
            XCTAssertTrue("\($0)".contains("fewer than 64 tokens"), "\($0)")
        }
    }

    func testInterleavingFollowsShares() {
        let out = CorpusFetch.interleave([["a1", "a2", "a3", "a4"], ["b1", "b2"]])
        XCTAssertEqual(out, ["a1", "b1", "a2", "a3", "b2", "a4"])
    }
}
