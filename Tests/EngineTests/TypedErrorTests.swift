import Foundation
import XCTest
@testable import Engine
@testable import Storage

/// The typed errors: code throws the case that names the problem, and each case's message keeps
/// the wording (and the "what to do") it had as a plain message.
final class TypedErrorTests: XCTestCase {
    func testThrownCasesCarryTheirData() throws {
        XCTAssertThrowsError(try LatentSelection.parse(" ")) { XCTAssertEqual($0 as? LatentSelectionError, .empty) }
        XCTAssertThrowsError(try LatentSelection.parse("1,top0")) { XCTAssertEqual($0 as? LatentSelectionError, .badPart("top0")) }
        XCTAssertThrowsError(try LatentSelection.parse("4-2")) { XCTAssertEqual($0 as? LatentSelectionError, .backwards("4-2")) }
        XCTAssertThrowsError(try LatentSelection.resolve("0-7", counts: [1, 1, 1])) {
            XCTAssertEqual($0 as? LatentSelectionError, .noLatent(7, count: 3))
        }
        XCTAssertThrowsError(try ExplainerPrompt.parse("{x}", file: "u.txt", required: [])) {
            XCTAssertEqual($0 as? ExplainerError, .unknownPlaceholder(path: "u.txt", name: "x", allowed: []))
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("typed-errors-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("c.jsonl").path
        try Data("{\"text\": \"a\"}\n[1]\n".utf8).write(to: URL(fileURLWithPath: file))
        XCTAssertThrowsError(try Corpus.documents(in: file)) {
            XCTAssertEqual($0 as? WorkspaceError, .badCorpusLine(path: file, line: 2, reason: "not a JSON object"))
        }
        let absent = dir.appendingPathComponent("absent.json")
        XCTAssertThrowsError(try JSONFile.read([String: String].self, from: absent)) {
            XCTAssertEqual($0 as? WorkspaceError, .unreadable(path: absent.path))
        }
    }

    func testMessagesKeepTheirWording() {
        XCTAssertEqual(LatentSelectionError.noLatent(7, count: 3).description,
                       "--latents: latent 7 does not exist (this workspace has latents 0…2)")
        XCTAssertEqual(ExplanationStoreError.noLatent(12, count: 10, file: "x.json", key: "12").description,
                       "x.json: key \"12\": latent 12 does not exist (this workspace has latents 0…9)")
        XCTAssertEqual(ExplanationStoreError.noLatent(-1, count: nil, file: "d/l_latent-1.txt", key: nil).description,
                       "d/l_latent-1.txt: latent -1 does not exist")
        XCTAssertEqual(LogError.cannotRead(path: "/w/scores.jsonl", reason: nil).description, "cannot read /w/scores.jsonl")
        XCTAssertEqual(LogError.cannotLock(path: "/w/e.jsonl", reason: "Bad file descriptor").description,
                       "cannot lock /w/e.jsonl: Bad file descriptor")
        XCTAssertEqual(WorkspaceError.badHeldOutIndex(path: "h.bin", reason: "has inconsistent offsets").description,
                       "h.bin has inconsistent offsets; delete it and it is rebuilt")
        XCTAssertEqual(SimulatorError.serverTimedOut(url: "http://h:1/", seconds: 60).description, "http://h:1/ did not answer within 60 s")
        XCTAssertEqual(RewriteError.tooManyWindows(available: 4).description,
                       "the workspace has 4 held-out windows; ask for at most that many")
        XCTAssertEqual(BuildError.layerOutOfRange(40, layers: 30).description, "--layer 40 is outside the model's layers 0…29")
    }
}
