@testable import Engine
import Foundation
import Storage
import XCTest

/// The engine tells of damaged lines in the logs it opens, once each, through `notice`: the CLI
/// prints it (`loupe score`, `loupe rewrite`, …) and the explorer shows it on the status line.
final class DamagedLogWarningTests: XCTestCase {
    func testServiceTellsOfEachDamagedLogOnceWhenItOpensIt() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-damaged-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let ws = Workspace(directory: dir)
        let good = try ExplanationStore(workspace: ws)
        try good.save(latent: 1, text: "one")
        try good.save(latent: 2, text: "two")
        var log = try String(contentsOf: good.logURL, encoding: .utf8).split(separator: "\n").map(String.init)
        log.insert("{\"id\":9,\"lat", at: 1)
        try Data((log.joined(separator: "\n") + "\n").utf8).write(to: good.logURL)
        try Data("not a score\n\n{\"also\": \"not\"}\n".utf8).write(to: ws.explanationsDirectory.appendingPathComponent("scores.jsonl"))

        final class Heard: @unchecked Sendable { var lines: [String] = [] }
        let heard = Heard()
        let service = EngineService(workspace: ws, notice: { heard.lines.append($0) })
        XCTAssertEqual(try service.explanations().allCurrent().mapValues(\.text), [1: "one", 2: "two"], "the line after the damaged one is read")
        _ = try service.explanations()
        _ = try service.scores()
        _ = try service.scores()
        XCTAssertEqual(heard.lines, [
            "\(good.logURL.path): line 2 damaged and skipped; every other line was read (fix or delete the line to silence this)",
            "\(ws.explanationsDirectory.appendingPathComponent("scores.jsonl").path): line 1 and 1 more damaged and skipped; every other line was read (fix or delete the line to silence this)",
        ])
    }
}
