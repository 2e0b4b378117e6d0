import Foundation
import LoupeTestSupport
import XCTest

/// Text from files reaches the terminal with its control characters shown, not acted on: a GGUF
/// key name that would set the terminal's title, in an error; a delphi explanation that would
/// clear the screen, in `explanations show`.
final class EscapingTests: XCTestCase {
    var temp: URL!

    override func setUpWithError() throws {
        guard LoupeBinary.exists else { throw XCTSkip("no loupe binary beside the tests at \(BuildProducts.executable("loupe").path)") }
        temp = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-escaping-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: temp, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        if let temp { try? FileManager.default.removeItem(at: temp) }
    }

    /// No byte a terminal acts on: C0 (but the newline ending a line), DEL, and C1 (as UTF-8).
    func assertNoControls(_ text: String, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        let bad = text.unicodeScalars.filter { ($0.value < 0x20 && $0 != "\n") || ($0.value >= 0x7F && $0.value < 0xA0) }
        XCTAssertTrue(bad.isEmpty, "\(what) holds control characters \(bad.map { String($0.value, radix: 16) }): \(text.debugDescription)", file: file, line: line)
    }

    func testGGUFKeyThatSetsTheTitleIsShownInTheError() throws {
        // GGUF v3, no tensors, one key whose name holds OSC 0 (set the window title) and whose value type is unknown.
        let key = "general.\u{1B}]0;pwned\u{07}name"
        var bytes = Array("GGUF".utf8)
        func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
        func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
        u32(3); u64(0); u64(1)
        u64(UInt64(key.utf8.count)); bytes += Array(key.utf8)
        u32(99)
        let model = temp.appendingPathComponent("title.gguf")
        try Data(bytes).write(to: model)
        let r = try LoupeBinary.run(["next", "--model", model.path, "hi"])
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains(#"metadata key 'general.\x1B]0;pwned\x07name' has unknown value type 99"#), r.stderr)
        XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, "one line: \(r.stderr)")
        assertNoControls(r.stderr, "stderr")
    }

    func testDelphiExplanationThatClearsTheScreenIsShownEscaped() throws {
        let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("StorageTests/Fixtures/workspace-47801cc/workspace", isDirectory: true)
        let workspace = temp.appendingPathComponent("workspace")
        try FileManager.default.copyItem(at: fixture, to: workspace)
        let delphi = temp.appendingPathComponent("delphi", isDirectory: true)
        try FileManager.default.createDirectory(at: delphi, withIntermediateDirectories: true)
        // delphi's files hold a JSON string: ESC [2J (clear) ESC [H (home), a C1 CSI, a BEL.
        try Data(#""\u001b[2J\u001b[Hcleared \u009b31m red \u0007 done""#.utf8).write(to: delphi.appendingPathComponent("layers.15.mlp_latent3.txt"))
        let imported = try LoupeBinary.run(["explanations", "import", delphi.path, "--workspace", workspace.path])
        XCTAssertEqual(imported.status, 0, imported.stderr)
        let shown = try LoupeBinary.run(["explanations", "show", "3", "--workspace", workspace.path])
        XCTAssertEqual(shown.status, 0, shown.stderr)
        XCTAssertTrue(shown.stdout.contains(#"\x1B[2J\x1B[Hcleared \x9B31m red \x07 done"#), shown.stdout)
        assertNoControls(shown.stdout, "explanations show")
        // --json quotes it as JSON, escapes and all.
        let json = try LoupeBinary.run(["explanations", "show", "3", "--json", "--workspace", workspace.path])
        XCTAssertTrue(json.stdout.contains(#""current": "\u001b[2J\u001b[Hcleared \u009b31m red \u0007 done""#), json.stdout)
        assertNoControls(json.stdout, "explanations show --json")
    }
}
