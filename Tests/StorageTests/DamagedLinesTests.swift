import Foundation
@testable import Storage
import XCTest

/// The score store and the rewrite's simulation cache follow the explanation log's rule for a
/// damaged line (`AppendOnly.DamagedLines`): it is skipped on its own, the lines after it are read,
/// and one warning names the file and the first damaged line. The lines are the 47801cc fixture's.
final class DamagedLinesTests: XCTestCase {
    var fixture: URL {
        Bundle.module.resourceURL!.appendingPathComponent("Fixtures/\(CompatibilityTests.fixtureName)/workspace", isDirectory: true)
    }
    var temp: URL!

    override func setUpWithError() throws {
        temp = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-damaged-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: temp, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        if let temp { try? FileManager.default.removeItem(at: temp) }
    }

    func lines(_ path: String) throws -> [String] {
        try String(contentsOf: fixture.appendingPathComponent(path), encoding: .utf8).split(separator: "\n").map(String.init)
    }

    func write(_ lines: [String], to url: URL) throws {
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: url)
    }

    func testScoreStoreSkipsEachDamagedLineAloneAndNamesTheFirst() throws {
        let good = try lines("explanations/scores.jsonl")
        XCTAssertGreaterThanOrEqual(good.count, 6)
        let clean = temp.appendingPathComponent("clean")
        try write(good, to: clean.appendingPathComponent("scores.jsonl"))
        let expected = try ScoreStore(directory: clean)
        XCTAssertEqual(expected.all.count, good.count)
        XCTAssertNil(expected.warning)

        var damaged = good
        damaged.insert("{\"backend\":\"local\",\"lat", at: 2)                                    // line 3: torn
        damaged.insert(good[4].replacingOccurrences(of: "\"latent\":", with: "\"latent\":-"), at: 5)  // line 6: negative latent
        let dir = temp.appendingPathComponent("damaged")
        try write(damaged, to: dir.appendingPathComponent("scores.jsonl"))
        let store = try ScoreStore(directory: dir)
        XCTAssertEqual(store.all, expected.all, "every good line is read, those after a damaged one included")
        XCTAssertEqual(store.skippedLines, 2)
        XCTAssertEqual(store.damagedLines, [3, 6])
        XCTAssertEqual(store.warning, "\(store.scoresURL.path): line 3 and 1 more damaged and skipped; every other line was read (fix or delete the line to silence this)")

        // Lines appended later are numbered where they are in the file.
        let handle = try FileHandle(forWritingTo: store.scoresURL)
        try handle.seekToEnd()
        try handle.write(contentsOf: Data("not json\n\(good[0])\n".utf8))
        try handle.close()
        try store.refresh()
        XCTAssertEqual(store.damagedLines, [3, 6, damaged.count + 1])
        XCTAssertEqual(store.all.count, good.count + 1)
    }

    func testRewriteCacheSkipsEachDamagedLineAloneAndNamesTheFirst() throws {
        let good = try lines("rewrite/simulations.jsonl")
        XCTAssertGreaterThanOrEqual(good.count, 4)
        let clean = try RewriteSimulationCache(url: {
            let url = temp.appendingPathComponent("clean/simulations.jsonl"); try write(good, to: url); return url
        }())
        XCTAssertNil(clean.warning)

        var damaged = good
        damaged[1] = String(good[1].prefix(30))                                                  // line 2: torn
        damaged[2] = good[2].replacingOccurrences(of: "\"length\":", with: "\"length\":9")         // line 3: values ≠ length
        let url = temp.appendingPathComponent("damaged/simulations.jsonl")
        try write(damaged, to: url)
        let cache = try RewriteSimulationCache(url: url)
        XCTAssertEqual(cache.skippedLines, 2)
        XCTAssertEqual(cache.damagedLines, [2, 3])
        XCTAssertEqual(cache.warning, "\(url.path): line 2 and 1 more damaged and skipped; every other line was read (fix or delete the line to silence this)")

        // The lines after the damaged ones are all there; the damaged ones' simulations are not.
        struct Entry: Decodable {
            struct Window: Decodable { var window: Int, start: Int, length: Int, expected: [Float] }
            var latent: Int, version: Int, backend: String, mode: SimulatorKind, windows: [Window]
        }
        for (i, line) in good.enumerated() {
            let e = try JSONDecoder().decode(Entry.self, from: Data(line.utf8))
            let key = RewriteSimulationCache.Key(latent: e.latent, version: e.version, backend: e.backend, mode: e.mode)
            for w in e.windows {
                let context = RewriteSimulationCache.Context(window: w.window, start: w.start, length: w.length)
                XCTAssertEqual(clean.expected(key, context), w.expected)
                if i == 1 || i == 2 { XCTAssertNil(cache.expected(key, context), "line \(i + 1)") } else {
                    XCTAssertEqual(cache.expected(key, context), w.expected, "line \(i + 1)")
                }
            }
        }
    }

    func testOneRuleCountsAcrossTails() throws {
        var d = AppendOnly.DamagedLines()
        XCTAssertNil(d.warning(path: "/x"))
        let url = temp.appendingPathComponent("log.jsonl")
        try Data("a\n\nb\n".utf8).write(to: url)
        let first = try XCTUnwrap(AppendOnly.readLines(url.path, after: 0))
        XCTAssertEqual(first.numbers, [0, 2], "a blank line is counted but not returned")
        d.damaged(at: first.numbers[1])
        d.read(first)
        let handle = try FileHandle(forWritingTo: url)
        try handle.seekToEnd()
        try handle.write(contentsOf: Data("c\nd\n".utf8))
        try handle.close()
        let second = try XCTUnwrap(AppendOnly.readLines(url.path, after: first.end))
        d.damaged(at: second.numbers[1])
        d.read(second)
        XCTAssertEqual(d.first, [3, 5])
        XCTAssertEqual(d.count, 2)
        XCTAssertEqual(d.warning(path: "/x"), "/x: line 3 and 1 more damaged and skipped; every other line was read (fix or delete the line to silence this)")
        for _ in 0..<20 { d.damaged(at: 0) }
        XCTAssertEqual(d.first.count, 10, "only the first few are named")
        XCTAssertEqual(d.count, 22)
        d.reset()
        XCTAssertEqual(d, AppendOnly.DamagedLines())
    }
}
