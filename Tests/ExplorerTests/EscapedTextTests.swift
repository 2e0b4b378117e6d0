import EngineAPI
@testable import Explorer
import Foundation
import Storage
import Terminal
import XCTest

/// An imported explanation holding a clear-screen escape is drawn with the escape shown as text
/// (`\x1B[2J`), in the list and on the latent's screen: no cell of the frame holds a control character.
final class EscapedTextTests: XCTestCase {
    func testImportedExplanationWithAClearScreenEscapeIsDrawnAsText() {
        var h = Harness()
        let latent = h.app.state.list.rows[0]
        let text = "\u{1B}[2J\u{1B}[Hcleared \u{9B}31m red"
        for r in h.app.apply(.saved(ExplanationVersion(id: 1, latent: latent, text: text, source: "import", time: Date(timeIntervalSince1970: 1_790_000_000)))) {
            h.engine.send(r)
        }
        h.settle()
        func check(_ screen: String) {
            let frame = h.app.render(palette: h.palette)
            XCTAssertFalse(frame.cells.contains { $0.text.unicodeScalars.contains { VisibleText.isControl($0) } }, "\(screen): a control character in a cell")
            XCTAssertTrue(frame.text.contains(#"\x1B[2J\x1B[Hcleared \x9B31m"#), "\(screen):\n\(frame.text)")
        }
        check("list")
        h.press(.enter)
        XCTAssertEqual(h.app.state.latent?.latent, latent)
        check("latent")
    }
}
