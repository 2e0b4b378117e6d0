import Foundation
import LoupeTestSupport
import XCTest
@testable import Storage

/// kill -9 at scale: two `loupe-save-loop` processes save into one explanation log while the test
/// SIGKILLs one of them at random moments and starts a fresh one in its place, until 1,000 saves
/// have been acknowledged. Then every acknowledged save is in the log with its id and text, every
/// line parses but at most one torn line per kill (which the store skips), no id or text appears
/// twice, ids increase down the file, and the next save follows the last id.
final class KillAtScaleTests: XCTestCase {
    func testThousandSavesFromTwoProcessesUnderRandomKills() throws {
        let binary = BuildProducts.executable("loupe-save-loop")
        guard FileManager.default.isExecutableFile(atPath: binary.path) else { throw XCTSkip("no loupe-save-loop beside the tests") }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-kill9-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let seed = ProcessInfo.processInfo.environment["LOUPE_KILL_SEED"].flatMap { UInt64($0) } ?? UInt64.random(in: 1...999_999)
        var rng = SeededRNG(seed: seed)
        let t0 = Date()

        struct Writer { var process: Process; var output: Pipe; var tag: String }
        var writers: [Writer?] = [nil, nil]
        var acknowledged: [Int: String] = [:]
        var kills = 0, started = 0
        func spawn(_ slot: Int) throws {
            let p = Process(), out = Pipe()
            p.executableURL = binary
            let tag = "w\(slot)-\(started)"
            p.arguments = [dir.path, tag]
            p.standardOutput = out
            p.standardError = FileHandle.nullDevice
            try p.run()
            started += 1
            writers[slot] = Writer(process: p, output: out, tag: tag)
        }
        /// Kills the writer in `slot` and collects what it acknowledged (whole lines only).
        func reap(_ slot: Int) {
            guard let w = writers[slot] else { return }
            kill(w.process.processIdentifier, SIGKILL)
            w.process.waitUntilExit()
            XCTAssertEqual(w.process.terminationReason, .uncaughtSignal, "\(w.tag) ended by itself (seed \(seed))")
            kills += 1
            let data = w.output.fileHandleForReading.readDataToEndOfFile()
            for line in data.split(separator: UInt8(ascii: "\n")) {
                let parts = String(decoding: line, as: UTF8.self).split(separator: "\t", maxSplits: 1)
                guard parts.count == 2, let id = Int(parts[0]) else { XCTFail("bad acknowledgement \(line)"); continue }
                XCTAssertNil(acknowledged[id], "id \(id) acknowledged twice (seed \(seed))")
                acknowledged[id] = String(parts[1])
            }
            writers[slot] = nil
        }

        try spawn(0)
        try spawn(1)
        while acknowledged.count < 1_000 {
            usleep(UInt32.random(in: 5_000...60_000, using: &rng))
            let slot = Int.random(in: 0...1, using: &rng)
            reap(slot)
            try spawn(slot)
            XCTAssertLessThan(Date().timeIntervalSince(t0), 300, "too slow (seed \(seed))")
            if Date().timeIntervalSince(t0) > 300 { break }
        }
        reap(0)
        reap(1)

        // The log, line by line: parsed, torn (at most one per kill), ids increasing, nothing twice.
        let log = try Data(contentsOf: dir.appendingPathComponent("log.jsonl"))
        var parsed: [ExplanationVersion] = [], torn = 0
        for line in log.split(separator: UInt8(ascii: "\n")) {
            if let v = try? JSONDecoder().decode(ExplanationVersion.self, from: Data(line)) { parsed.append(v) } else { torn += 1 }
        }
        XCTAssertLessThanOrEqual(torn, kills, "seed \(seed)")
        XCTAssertEqual(parsed.map(\.id), Array(1...parsed.count), "ids 1, 2, 3 … down the file (seed \(seed))")
        XCTAssertEqual(Set(parsed.map(\.text)).count, parsed.count, "a text saved twice (seed \(seed))")
        let store = try ExplanationStore(directory: dir)
        XCTAssertEqual(store.skippedLines, torn, "the store skips exactly the torn lines")
        let stored = Dictionary(uniqueKeysWithValues: (0..<5).flatMap(store.history).map { ($0.id, $0.text) })
        XCTAssertEqual(stored.count, parsed.count)
        var lost = 0
        for (id, text) in acknowledged where stored[id] != text { lost += 1 }
        XCTAssertEqual(lost, 0, "acknowledged saves missing or changed (seed \(seed))")
        XCTAssertEqual(try store.save(latent: 0, text: "after the storm").id, parsed.count + 1)
        print("kill -9 at scale: seed \(seed), \(acknowledged.count) saves acknowledged by \(started) processes, \(kills) SIGKILLs, "
              + "\(parsed.count) log lines verified (\(parsed.count - acknowledged.count) written but killed before the acknowledgement), "
              + "\(torn) torn lines skipped — \(String(format: "%.1f", Date().timeIntervalSince(t0))) s")
    }
}
