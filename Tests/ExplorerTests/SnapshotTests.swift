@testable import Explorer
import EngineAPI
import Foundation
import Storage
import Terminal
import XCTest

/// Every screen rendered to text at two sizes, as plain text and with its styles, compared with
/// the files in Snapshots/. After a deliberate change: `LOUPE_UPDATE_SNAPSHOTS=1 swift test …`
/// rewrites them; review the diff before committing.
final class SnapshotTests: XCTestCase {
    static let sizes = [(80, 24), (120, 36)]
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Snapshots")

    func check(_ name: String, site: DictionarySite = .mlp, _ make: (inout Harness) -> Void, file: StaticString = #filePath, line: UInt = #line) {
        for (w, h) in Self.sizes {
            for color in [true, false] {
                var harness = Harness(width: w, height: h, mode: color ? .full : .none, site: site)
                make(&harness)
                let canvas = harness.app.render(palette: harness.palette)
                XCTAssertEqual(canvas.width, w)
                XCTAssertEqual(canvas.height, h)
                let stem = "\(name)-\(w)x\(h)"
                compare(canvas.text, to: stem + (color ? "" : "-nocolor") + ".txt", file: file, line: line)
                compare(canvas.styledText, to: stem + (color ? "" : "-nocolor") + ".styled.txt", file: file, line: line)
            }
        }
    }

    func compare(_ actual: String, to fileName: String, file: StaticString, line: UInt) {
        let url = Self.directory.appendingPathComponent(fileName)
        let update = ProcessInfo.processInfo.environment["LOUPE_UPDATE_SNAPSHOTS"] == "1"
        guard !update, let expected = try? String(contentsOf: url, encoding: .utf8) else {
            try? FileManager.default.createDirectory(at: Self.directory, withIntermediateDirectories: true)
            try? (actual + "\n").write(to: url, atomically: true, encoding: .utf8)
            if !update { XCTFail("recorded a new snapshot \(fileName); check it and run again", file: file, line: line) }
            return
        }
        if expected != actual + "\n" {
            let a = actual.split(separator: "\n", omittingEmptySubsequences: false)
            let e = expected.dropLast().split(separator: "\n", omittingEmptySubsequences: false)
            let first = zip(a, e).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(a.count, e.count)
            XCTFail("""
                \(fileName) differs from the snapshot at line \(first + 1):
                expected: \(first < e.count ? String(e[first]) : "<end>")
                actual:   \(first < a.count ? String(a[first]) : "<end>")
                """, file: file, line: line)
        }
    }

    func testLatentsList() { check("latents") { _ in } }

    func testLatentsSortedFilteredAndSelected() {
        check("latents-filtered") { h in
            h.press(.char("s"), .char("s"))
            h.press(.char("f"))
            h.type("bridge")
            h.press(.enter, .char("j"), .char("j"))
        }
    }

    func testLatent() { check("latent") { h in h.press(.char("j"), .enter, .char("j"), .char("l"), .char("l")) } }

    func testLatentRawTokensAndNeighbours() { check("latent-raw") { h in h.press(.enter, .char("r"), .tab, .char("j")) } }

    func testLatentEditing() {
        check("latent-editing") { h in
            h.press(.enter, .char("e"))
            h.type("fires on bridges")
            h.press(.ctrlLeft)
        }
    }

    func testHistory() {
        check("history") { h in
            h.press(.enter, .char("e")); h.type("first"); h.press(.enter)
            h.press(.char("e"), .ctrl("u")); h.type("second"); h.press(.enter)
            h.press(.char("H"))
        }
    }

    func testContextLab() {
        check("lab") { h in
            h.press(.char("3"))
            h.type("the bridge over the river and the tunnel")
            h.press(.enter, .char("l"), .char("l"), .char("j"))
        }
    }

    /// The lab's interventions: steered beside unsteered, the ablation heatmap, the ranking at a token.
    func testContextLabSteering() {
        check("lab-steer") { h in
            h.press(.char("3"))
            h.type("the bridge over the river and the tunnel")
            h.press(.enter, .char("l"), .char("S"))
        }
    }

    func testContextLabAblation() {
        check("lab-ablate") { h in
            h.press(.char("3"))
            h.type("the bridge over the river and the tunnel")
            h.press(.enter, .char("l"), .char("a"), .char("l"), .char("l"))
        }
    }

    func testContextLabRanking() {
        check("lab-rank") { h in
            h.press(.char("3"))
            h.type("the bridge over the river and the tunnel")
            h.press(.enter, .char("l"), .char("l"), .char("w"), .char("j"))
        }
    }

    func testContextLabPatching() {
        check("lab-patch") { h in
            h.press(.char("3"))
            h.type("the bridge over the river and the tunnel")
            h.press(.enter, .char("l"), .char("p"), .ctrl("u"))
            h.type("the tunnel over the river and the bridge")
            h.press(.enter, .char("l"))
        }
    }

    func testLatentWithSimulation() {
        check("latent-simulated") { h in
            h.press(.enter, .char("e")); h.type("one"); h.press(.enter)
            h.press(.char("e"), .ctrl("u")); h.type("bridges over rivers"); h.press(.enter)
            h.press(.char("G"))
        }
    }

    func testHelp() { check("help") { h in h.press(.char("?")) } }

    func testRewriteWithoutAReport() {
        check("rewrite-none") { h in
            h.engine.rewrite = nil
            h.press(.char("4"))
        }
    }

    func testRewrite() { check("rewrite") { h in h.press(.char("4"), .char("k"), .char("]"), .char("l")) } }

    /// A residual SAE's workspace: the header, the list and the Rewrite screen name it ("SAE", layers.2).
    func testResidualSAE() {
        check("residual-latents", site: .residual) { _ in }
        check("residual-rewrite", site: .residual) { h in h.press(.char("4"), .char("k"), .char("]"), .char("l")) }
        check("residual-rewrite-none", site: .residual) { h in
            h.engine.rewrite = nil
            h.press(.char("4"))
        }
    }

    func testWelcome() {
        for (w, h) in Self.sizes {
            var harness = Harness(width: w, height: h, hasWorkspace: false)
            compare(harness.screen, to: "welcome-\(w)x\(h).txt", file: #filePath, line: #line)
            harness.press(.char("b"))
            XCTAssertEqual(harness.app.state.screen, .latents, "building ends on the list")
        }
    }

    func testTooSmall() {
        var h = Harness(width: 59, height: 15)
        XCTAssertTrue(h.screen.contains("at least 60×15"))
        XCTAssertTrue(h.screen.contains("59×15"))
        h.resize(60, 15)
        XCTAssertTrue(h.screen.contains("Latents"))
        compare(h.screen, to: "latents-60x15.txt", file: #filePath, line: #line)
    }
}
