import Foundation
import LoupeTestSupport
import XCTest
@testable import Engine
@testable import Storage

/// The explanation log: versions, reopening, torn and unparsable lines, a writer killed mid-save,
/// two writers on one log, and the JSON and delphi interchange formats.
final class ExplanationStoreTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-explanations-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    var logDir: URL { dir.appendingPathComponent("explanations", isDirectory: true) }
    var logURL: URL { logDir.appendingPathComponent("log.jsonl") }

    func rawLines() throws -> [String] {
        try String(contentsOf: logURL, encoding: .utf8).components(separatedBy: "\n")
    }

    func testSaveHistoryCurrentRevertAndNoOp() throws {
        let store = try ExplanationStore(directory: logDir)
        XCTAssertNil(store.current(3))
        XCTAssertEqual(store.history(3), [])
        let v1 = try store.save(latent: 3, text: "  the word \"the\"\n")
        XCTAssertEqual(v1.id, 1)
        XCTAssertEqual(v1.text, "the word \"the\"")
        XCTAssertEqual(v1.source, "user")
        let v2 = try store.save(latent: 3, text: "articles, ünïcode ✓ and a\ttab", source: "llm")
        let other = try store.save(latent: 9, text: "numbers")
        XCTAssertEqual([v2.id, other.id], [2, 3])
        XCTAssertEqual(store.current(3), v2)
        XCTAssertEqual(store.history(3), [v1, v2])

        // The same text again (after trimming) changes nothing.
        XCTAssertEqual(try store.save(latent: 3, text: "articles, ünïcode ✓ and a\ttab \n"), v2)
        XCTAssertEqual(store.history(3).count, 2)

        let reverted = try store.revert(latent: 3, to: 1)
        XCTAssertEqual(reverted.id, 4)
        XCTAssertEqual(reverted.text, v1.text)
        XCTAssertEqual(reverted.source, "revert")
        XCTAssertEqual(store.current(3), reverted)
        XCTAssertEqual(try store.revert(latent: 3, to: 1), reverted, "reverting to the current text is a no-op")
        XCTAssertThrowsError(try store.revert(latent: 3, to: 3), "version 3 belongs to latent 9")
        XCTAssertThrowsError(try store.save(latent: 5, text: "  "), "nothing to clear")

        // Saving "" clears: current becomes nil, history keeps everything.
        let cleared = try store.save(latent: 9, text: "")
        XCTAssertEqual(cleared.text, "")
        XCTAssertNil(store.current(9))
        XCTAssertEqual(store.history(9).map(\.text), ["numbers", ""])
        XCTAssertEqual(Set(store.allCurrent().keys), [3])
        XCTAssertEqual(try rawLines().count, 6, "five lines, each ended by a newline")
        XCTAssertTrue(try rawLines()[0].hasPrefix("{\"id\":1,\"latent\":3,\"text\":\"the word \\\"the\\\"\",\"source\":\"user\",\"time\":\""))
    }

    func testLatestBySourceIgnoresNewerVersionsFromOtherSources() throws {
        let store = try ExplanationStore(directory: logDir)
        let lexical = try store.save(latent: 1, text: "fires on \" the\"", source: "lexical")
        let llm = try store.save(latent: 1, text: "articles", source: "llm")
        let onlyLLM = try store.save(latent: 2, text: "numbers", source: "llm")
        let lexical3 = try store.save(latent: 3, text: "fires on \".\"", source: "lexical")
        _ = try store.save(latent: 3, text: "", source: "user")  // cleared: no current one, the lexical one stays
        XCTAssertEqual(store.allCurrent(), [1: llm, 2: onlyLLM])
        XCTAssertEqual(store.allLatest(source: "lexical"), [1: lexical, 3: lexical3])
        XCTAssertEqual(store.allLatest(source: "llm"), [1: llm, 2: onlyLLM])
        XCTAssertEqual(store.allLatest(source: "user"), [:])
    }

    func testReopenReadsTheSame() throws {
        let store = try ExplanationStore(directory: logDir)
        for i in 0..<20 { try store.save(latent: i % 4, text: "explanation \(i) — \"quoted\" \\ back\nslash") }
        try store.revert(latent: 1, to: 2)
        let again = try ExplanationStore(directory: logDir)
        XCTAssertEqual(again.skippedLines, 0)
        XCTAssertEqual(again.allCurrent(), store.allCurrent())
        for latent in 0..<4 { XCTAssertEqual(again.history(latent), store.history(latent)) }
        XCTAssertEqual(try again.save(latent: 7, text: "next").id, 22)
    }

    func testWorkspaceStoreChecksLatentIds() throws {
        let ws = Workspace(directory: dir)
        try ws.save(WorkspaceManifest(model: "m", layer: 15, latents: 10, k: 2, transcoderSource: "trained", corpusSources: [],
                                      trainTokens: 0, heldOutTokens: 0, windowLength: 64))
        let store = try ExplanationStore(workspace: ws)
        XCTAssertEqual(store.logURL, logURL)
        try store.save(latent: 9, text: "last one")
        XCTAssertThrowsError(try store.save(latent: 10, text: "too far")) { XCTAssertTrue("\($0)".contains("0…9"), "\($0)") }
        XCTAssertThrowsError(try store.save(latent: -1, text: "negative"))
    }

    /// Half a line written by hand, as a crash mid-write would leave it: ignored on open, earlier
    /// versions intact; the next save ends it with a newline first and reads back whole.
    func testTornLastLineIsIgnoredAndNeverMergesWithTheNext() throws {
        let store = try ExplanationStore(directory: logDir)
        try store.save(latent: 1, text: "first")
        try store.save(latent: 2, text: "second")
        let handle = try FileHandle(forWritingTo: logURL)
        try handle.seekToEnd()
        try handle.write(contentsOf: Data("{\"id\":3,\"latent\":1,\"text\":\"thi".utf8))
        try handle.close()

        let reopened = try ExplanationStore(directory: logDir)
        XCTAssertEqual(reopened.history(1).map(\.text), ["first"])
        XCTAssertEqual(reopened.history(2).map(\.text), ["second"])
        XCTAssertEqual(reopened.skippedLines, 0, "an unterminated tail is not a line yet")

        let v = try reopened.save(latent: 1, text: "third")
        XCTAssertEqual(v.id, 3)
        XCTAssertEqual(reopened.skippedLines, 1, "the torn line, now terminated, is skipped")
        let lines = try rawLines()
        XCTAssertEqual(lines.count, 5)
        XCTAssertEqual(lines[2], "{\"id\":3,\"latent\":1,\"text\":\"thi")
        XCTAssertEqual(lines[4], "")

        let last = try ExplanationStore(directory: logDir)
        XCTAssertEqual(last.history(1).map(\.text), ["first", "third"])
        XCTAssertEqual(last.history(1), reopened.history(1))
        XCTAssertEqual(last.skippedLines, 1)
    }

    /// A torn tail that happens to be a whole record without its newline: it becomes a version once
    /// terminated, and the next save takes the following id, so no id is ever used twice.
    func testTornTailThatParsesGetsItsOwnId() throws {
        let store = try ExplanationStore(directory: logDir)
        try store.save(latent: 1, text: "first")
        var line = try rawLines()[0]
        line = line.replacingOccurrences(of: "\"id\":1", with: "\"id\":2").replacingOccurrences(of: "first", with: "almost")
        let handle = try FileHandle(forWritingTo: logURL)
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(line.utf8))
        try handle.close()

        let reopened = try ExplanationStore(directory: logDir)
        XCTAssertEqual(reopened.history(1).map(\.text), ["first"])
        XCTAssertEqual(try reopened.save(latent: 1, text: "third").id, 3)
        XCTAssertEqual(reopened.history(1).map(\.text), ["first", "almost", "third"])
        XCTAssertEqual(try ExplanationStore(directory: logDir).history(1), reopened.history(1))
    }

    func testUnparsableAndOutOfOrderLinesAreSkippedAndCounted() throws {
        let store = try ExplanationStore(directory: logDir)
        try store.save(latent: 1, text: "a")
        try store.save(latent: 1, text: "b")
        var lines = try rawLines().filter { !$0.isEmpty }
        lines.insert("not json at all", at: 1)
        lines.append(lines[0])  // id 1 again: a repeated id is a damaged line
        lines.append("")
        try (lines.joined(separator: "\n") + "\n").write(to: logURL, atomically: true, encoding: .utf8)
        let reopened = try ExplanationStore(directory: logDir)
        XCTAssertEqual(reopened.skippedLines, 2)
        XCTAssertEqual(reopened.history(1).map(\.text), ["a", "b"])
        XCTAssertEqual(try reopened.save(latent: 1, text: "c").id, 3)
    }

    func testAnIdTooLargeIsSkippedSoTheNextSaveNeverWraps() throws {
        let store = try ExplanationStore(directory: logDir)
        try store.save(latent: 1, text: "a")
        var lines = try rawLines().filter { !$0.isEmpty }
        lines.append(lines[0].replacingOccurrences(of: #""id":1,"#, with: #""id":\#(Int.max),"#))
        try (lines.joined(separator: "\n") + "\n").write(to: logURL, atomically: true, encoding: .utf8)
        let reopened = try ExplanationStore(directory: logDir)
        XCTAssertEqual(reopened.skippedLines, 1, "an id past 2^53 is a damaged line")
        let saved = try reopened.save(latent: 1, text: "b")
        XCTAssertEqual(saved.id, 2, "the next id follows the last good one")
        XCTAssertEqual(try ExplanationStore(directory: logDir).history(1).map(\.text), ["a", "b"], "and reads back")
    }

    /// One id corrupted from 2 to 900 (issue 15: it hid every later version, 18 of 20 vanished from
    /// `show` and `export` wrote 2): every line is still read, in file order, nothing is skipped, and
    /// the next save takes an id past the largest (901), so it is fresh and reads back.
    func testOneCorruptedIdHidesNoLaterVersion() throws {
        let store = try ExplanationStore(directory: logDir)
        for i in 0..<20 { try store.save(latent: i % 5, text: "version \(i)") }
        var lines = try rawLines().filter { !$0.isEmpty }
        XCTAssertTrue(lines[1].hasPrefix(#"{"id":2,"#))
        lines[1] = lines[1].replacingOccurrences(of: #"{"id":2,"#, with: #"{"id":900,"#)
        try (lines.joined(separator: "\n") + "\n").write(to: logURL, atomically: true, encoding: .utf8)

        let reopened = try ExplanationStore(directory: logDir)
        XCTAssertEqual(reopened.skippedLines, 0)
        XCTAssertNil(reopened.warning)
        for latent in 0..<5 {
            XCTAssertEqual(reopened.history(latent).map(\.text), stride(from: latent, to: 20, by: 5).map { "version \($0)" })
        }
        XCTAssertEqual(reopened.history(1).first?.id, 900)
        let exported = dir.appendingPathComponent("all.json")
        XCTAssertEqual(try reopened.exportJSON(to: exported), 5)
        let saved = try reopened.save(latent: 3, text: "after the damage")
        XCTAssertEqual(saved.id, 901, "past the largest id in the file, never one already used")
        XCTAssertEqual(try ExplanationStore(directory: logDir).current(3)?.text, "after the damage")
    }

    /// A line that does not parse, and one that repeats an earlier id, are skipped on their own: the
    /// versions after them stay; the first damaged line is named (1-based) in the one-line warning.
    func testDamagedLinesAreNamedAndLaterLinesKept() throws {
        let store = try ExplanationStore(directory: logDir)
        for i in 0..<6 { try store.save(latent: 7, text: "v\(i)") }
        var lines = try rawLines().filter { !$0.isEmpty }
        lines[2] = "{\"id\":3,\"latent\":7,\"te\u{0}garbage"
        lines[4] = lines[4].replacingOccurrences(of: #"{"id":5,"#, with: #"{"id":2,"#)
        try (lines.joined(separator: "\n") + "\n").write(to: logURL, atomically: true, encoding: .utf8)

        let reopened = try ExplanationStore(directory: logDir)
        XCTAssertEqual(reopened.history(7).map(\.text), ["v0", "v1", "v3", "v5"])
        XCTAssertEqual(reopened.skippedLines, 2)
        XCTAssertEqual(reopened.damagedLines, [3, 5])
        let warning = try XCTUnwrap(reopened.warning)
        XCTAssertTrue(warning.contains("log.jsonl: line 3 and 1 more damaged"), warning)
        XCTAssertFalse(warning.contains("\n"))
        XCTAssertEqual(try reopened.save(latent: 7, text: "v6").id, 7)
        XCTAssertEqual(try ExplanationStore(directory: logDir).history(7).map(\.text), ["v0", "v1", "v3", "v5", "v6"])
    }

    /// Two stores on one log (as two processes would be): each reads the other's lines before it
    /// appends, so ids stay unique and increasing.
    func testTwoWritersShareTheSequence() throws {
        let a = try ExplanationStore(directory: logDir), b = try ExplanationStore(directory: logDir)
        XCTAssertEqual(try a.save(latent: 1, text: "from a").id, 1)
        XCTAssertEqual(try b.save(latent: 2, text: "from b").id, 2)
        XCTAssertEqual(try a.save(latent: 1, text: "from a again").id, 3)
        try b.refresh()
        XCTAssertEqual(b.allCurrent(), a.allCurrent())
        XCTAssertEqual(try ExplanationStore(directory: logDir).skippedLines, 0)
    }

    /// The real crash: a child process saves in a tight loop and is SIGKILLed at a random moment.
    /// Every line but possibly the last parses, and what reads back is a prefix of what it wrote.
    func testWriterKilledMidSaveLeavesAPrefix() throws {
        let binary = BuildProducts.executable("loupe-save-loop")
        guard FileManager.default.isExecutableFile(atPath: binary.path) else { throw XCTSkip("no loupe-save-loop beside the tests") }
        var rng = SystemRandomNumberGenerator()
        var total = 0
        for round in 0..<4 {
            let p = Process()
            p.executableURL = binary
            p.arguments = [logDir.path, "r\(round)"]
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            // Let it get going (this round's first save is in the log: on a loaded machine the child
            // may need a while to start), then kill it at a random moment.
            let start = Date()
            let before = (try? Data(contentsOf: logURL))?.count ?? 0
            while ((try? Data(contentsOf: logURL))?.count ?? 0) <= before && Date().timeIntervalSince(start) < 20 { usleep(2000) }
            usleep(UInt32.random(in: 20_000...300_000, using: &rng))
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            XCTAssertEqual(p.terminationReason, .uncaughtSignal)

            let lines = try rawLines()
            let decoder = JSONDecoder()
            var parsed: [ExplanationVersion] = []
            for (i, line) in lines.enumerated() where !line.isEmpty {
                if let v = try? decoder.decode(ExplanationVersion.self, from: Data(line.utf8)) {
                    parsed.append(v)
                } else {
                    XCTAssertEqual(i, lines.count - 1, "only the last line may be torn (round \(round), line \(i): \(line))")
                }
            }
            let store = try ExplanationStore(directory: logDir)
            let all = (0..<5).flatMap(store.history).sorted { $0.id < $1.id }
            XCTAssertEqual(all, parsed.filter { $0.source == "test" }.sorted { $0.id < $1.id })
            // This round's versions follow the earlier rounds', in the order the child saved them.
            let mine = all.dropFirst(total)
            XCTAssertEqual(mine.map(\.text), (0..<mine.count).map { "r\(round) save \($0)" })
            XCTAssertEqual(mine.map(\.latent), (0..<mine.count).map { $0 % 5 })
            XCTAssertGreaterThan(mine.count, 0)
            XCTAssertEqual(Array(all.map(\.id)), Array(1...all.count))
            total = all.count
            print("round \(round): the killed writer left \(mine.count) versions")
        }
        let store = try ExplanationStore(directory: logDir)
        let v = try store.save(latent: 4, text: "after the crashes")
        XCTAssertEqual(v.id, total + 1)
        XCTAssertEqual(try ExplanationStore(directory: logDir).current(4), v)
    }

    func testJSONRoundTripAndErrors() throws {
        let store = try ExplanationStore(directory: logDir)
        try store.save(latent: 2, text: "two")
        try store.save(latent: 10, text: "ten / \"slash\" ✓")
        try store.save(latent: 11, text: "cleared soon")
        try store.save(latent: 11, text: "")
        let file = dir.appendingPathComponent("out.json")
        XCTAssertEqual(try store.exportJSON(to: file), 2)
        let object = try JSONDecoder().decode([String: String].self, from: Data(contentsOf: file))
        XCTAssertEqual(object, ["2": "two", "10": "ten / \"slash\" ✓"])

        let other = try ExplanationStore(directory: dir.appendingPathComponent("other"))
        XCTAssertEqual(try other.importJSON(from: file), 2)
        XCTAssertEqual(other.allCurrent().mapValues(\.text), store.allCurrent().mapValues(\.text))
        XCTAssertEqual(other.current(10)?.source, "import")
        XCTAssertEqual(try other.importJSON(from: file), 0, "nothing changed")

        let bad = dir.appendingPathComponent("bad.json")
        try Data("{\"3\": \"ok\", \"x7\": \"bad\"}".utf8).write(to: bad)
        XCTAssertThrowsError(try other.importJSON(from: bad)) { e in
            XCTAssertTrue("\(e)".contains(bad.path) && "\(e)".contains("\"x7\""), "\(e)")
        }
        try Data("[\"not\", \"an object\"]".utf8).write(to: bad)
        XCTAssertThrowsError(try other.importJSON(from: bad)) { XCTAssertTrue("\($0)".contains(bad.path), "\($0)") }
        XCTAssertNil(other.current(3), "a bad file imports nothing")
    }

    func testDelphiRoundTripAndItsFiles() throws {
        let store = try ExplanationStore(directory: logDir)
        try store.save(latent: 0, text: "the token \"and\"")
        try store.save(latent: 42, text: "months of the year / é")
        let out = dir.appendingPathComponent("delphi/explanations", isDirectory: true)
        XCTAssertEqual(try store.exportDelphi(to: out, module: "layers.15.mlp"), 2)
        let names = try FileManager.default.contentsOfDirectory(atPath: out.path).sorted()
        XCTAssertEqual(names, ["layers.15.mlp_latent0.txt", "layers.15.mlp_latent42.txt"])
        // orjson.dumps: a JSON string, UTF-8, slashes unescaped, no newline.
        XCTAssertEqual(try String(contentsOf: out.appendingPathComponent(names[1]), encoding: .utf8), "\"months of the year / é\"")
        XCTAssertEqual(try String(contentsOf: out.appendingPathComponent(names[0]), encoding: .utf8), "\"the token \\\"and\\\"\"")

        let other = try ExplanationStore(directory: dir.appendingPathComponent("other"))
        XCTAssertEqual(try other.importDelphi(from: out), 2)
        XCTAssertEqual(other.allCurrent().mapValues(\.text), store.allCurrent().mapValues(\.text))

        // Exporting again mirrors the store: a cleared latent's file goes, other files stay.
        try Data("notes".utf8).write(to: out.appendingPathComponent("README.md"))
        try Data("\"other module\"".utf8).write(to: out.appendingPathComponent("layers.3.mlp_latent0.txt"))
        try store.save(latent: 0, text: "")
        XCTAssertEqual(try store.exportDelphi(to: out, module: "layers.15.mlp"), 1)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: out.path).sorted(),
                       ["README.md", "layers.15.mlp_latent42.txt", "layers.3.mlp_latent0.txt"])

        // A folder as delphi writes it for two hookpoints: choose one, or be told which exist.
        let mixed = dir.appendingPathComponent("mixed", isDirectory: true)
        try FileManager.default.createDirectory(at: mixed, withIntermediateDirectories: true)
        try Data("\"Unicode escapes \\u00e9 and \\n newlines\"".utf8).write(to: mixed.appendingPathComponent("layers.6.mlp_latent7.txt"))
        try Data("\"residual\"".utf8).write(to: mixed.appendingPathComponent("layers.6_latent7.txt"))
        try Data("not an explanation".utf8).write(to: mixed.appendingPathComponent("notes.md"))
        XCTAssertThrowsError(try other.importDelphi(from: mixed)) { XCTAssertTrue("\($0)".contains("layers.6, layers.6.mlp"), "\($0)") }
        XCTAssertEqual(try other.importDelphi(from: mixed, module: "layers.6.mlp"), 1)
        XCTAssertEqual(other.current(7)?.text, "Unicode escapes é and \n newlines")
        XCTAssertThrowsError(try other.importDelphi(from: mixed, module: "layers.9.mlp"))

        let broken = mixed.appendingPathComponent("layers.6_latent8.txt")
        try Data("plain text, not JSON".utf8).write(to: broken)
        XCTAssertThrowsError(try other.importDelphi(from: mixed, module: "layers.6")) { XCTAssertTrue("\($0)".contains(broken.path), "\($0)") }
    }

    func testDelphiFileNames() {
        XCTAssertTrue(ExplanationStore.delphiName("layers.15.mlp_latent42.txt")! == ("layers.15.mlp", 42))
        XCTAssertTrue(ExplanationStore.delphiName("model.layers.3_latent0.txt")! == ("model.layers.3", 0))
        XCTAssertNil(ExplanationStore.delphiName("layers.15.mlp_latent.txt"))
        XCTAssertNil(ExplanationStore.delphiName("layers.15.mlp_latent4x.txt"))
        XCTAssertNil(ExplanationStore.delphiName("_latent4.txt"))
        XCTAssertNil(ExplanationStore.delphiName("layers.15.mlp_latent4.json"))
    }
}

extension ExplanationStoreTests {
    /// Opening a long log: 30,000 versions written by one import, then read back.
    func testOpenTimeAt30kVersions() throws {
        let file = dir.appendingPathComponent("many.json")
        try JSONFile.write(Dictionary(uniqueKeysWithValues: (0..<30_000).map { (String($0), "explanation of latent \($0), with \"quotes\"") }), to: file)
        let store = try ExplanationStore(directory: logDir)
        var t = Clock.now
        XCTAssertEqual(try store.importJSON(from: file), 30_000)
        let importSeconds = Clock.now - t
        t = Clock.now
        let again = try ExplanationStore(directory: logDir)
        let openSeconds = Clock.now - t
        XCTAssertEqual(again.allCurrent().count, 30_000)
        XCTAssertEqual(again.current(29_999), store.current(29_999))
        print(String(format: "explanations log, 30000 versions: open %.0f ms, import %.0f ms", openSeconds * 1000, importSeconds * 1000))
    }
}
