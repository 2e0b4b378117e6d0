import Foundation
import LoupeTestSupport
import XCTest

/// A cache made by delphi's own code (Tests/EngineTests/Fixtures/delphi, made by
/// Tests/Scripts/fixtures/make_delphi_fixture.py on a tiny random model with SmolLM2's tokenizer)
/// imported with `loupe import delphi` and opened by the real `loupe` in tmux on the real model
/// (whose tokenizer the cache's token ids are).
final class DelphiExplorerTests: XCTestCase {
    static let results = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("EngineTests/Fixtures/delphi/results")
    var dir: URL!
    var driver: TmuxDriver?

    override func tearDownWithError() throws {
        driver?.kill()
        if let dir { try? FileManager.default.removeItem(at: dir) }
    }

    func testImportedDelphiCacheOpensInTheExplorer() throws {
        guard LoupeBinary.exists else { throw XCTSkip("no loupe binary beside the tests (build with --build-tests)") }
        guard let tmux = TmuxDriver.find() else { throw XCTSkip("tmux is not installed; the end-to-end explorer tests need it") }
        let model: String
        do { model = try RealModel.path() } catch { throw XCTSkip("the real model is not available: \(error)") }
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-delphi-e2e-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let workspace = dir.appendingPathComponent("ws").path

        let imported = try LoupeBinary.run(["import", "delphi", Self.results.path, "--workspace", workspace, "--model", model, "--json"])
        XCTAssertEqual(imported.status, 0, imported.stderr)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(imported.stdout.utf8)) as? [String: Any], imported.stdout)
        XCTAssertEqual(json["latents"] as? Int, 64)
        XCTAssertEqual(json["hookpoint"] as? String, "model.layers.1.mlp")
        XCTAssertEqual(json["explanations"] as? Int, 3, "delphi's explanations come along")
        // A second import into the same folder is refused, naming it.
        let again = try LoupeBinary.run(["import", "delphi", Self.results.path, "--workspace", workspace, "--model", model])
        XCTAssertEqual(again.status, 1)
        XCTAssertTrue(again.stderr.contains(workspace) && again.stderr.contains("workspace.json"), again.stderr)
        XCTAssertEqual(again.stderr.trimmingCharacters(in: .newlines).split(separator: "\n").count, 1, "one line: \(again.stderr)")

        let t = try TmuxDriver(executable: tmux, directory: dir)
        driver = t
        try t.start(["env", "-u", "NO_COLOR", "TERM=tmux-256color", "LANG=C.UTF-8", "LC_ALL=C.UTF-8",
                     BuildProducts.executable("loupe").path, "open", workspace, "--model", model, "--no-explain"], width: 100, height: 30)
        try t.wait(for: "the latents list", timeout: 60) { $0.contains("density") && $0.contains("· 64 latents") }
        try t.press("Enter")
        // The latent's screen with its top windows: the fixture's text, decoded by the model's tokenizer.
        let words = ["river", "bridge", "king", "brother", "ship", "town", "storm", "neighbour", "crossed", "watched", "road", "light"]
        let shown = try t.wait(for: "a latent's screen with its windows", timeout: 30) { s in
            s.firstMatch(of: #/Latent (\d+) ·/#) != nil && words.contains { s.contains($0) }
        }
        XCTAssertNotNil(shown.firstMatch(of: #/Latent (\d+) ·/#))
        try t.press("Q")
        XCTAssertEqual(try t.waitForExit(), 0, "loupe exits cleanly on Q; it left:\n\(t.lastScreen)")
    }
}
