import Terminal
import XCTest

final class VisibleTextTests: XCTestCase {
    func testControlCharactersAreShownAsHex() {
        XCTAssertEqual(VisibleText.escape("a\u{1B}]0;t\u{07}b"), #"a\x1B]0;t\x07b"#)
        XCTAssertEqual(VisibleText.escape("\u{0}\u{7F}\u{9B}\u{85}"), #"\x00\x7F\x9B\x85"#)
        XCTAssertEqual(VisibleText.escape("line\nnext\tcol"), #"line\x0Anext\x09col"#)
        XCTAssertEqual(VisibleText.escape("line\nnext\tcol", keep: ["\n", "\t"]), "line\nnext\tcol")
        XCTAssertEqual(VisibleText.escape("\r\n", keep: ["\n"]), "\\x0D\n")
        // Printable text, wide and combined characters pass unchanged (U+00A0 is the first after C1).
        let plain = "héllo ✓ 日本 👩‍💻 e\u{301} \u{A0}"
        XCTAssertEqual(VisibleText.escape(plain), plain)
    }

    func testCanvasDrawsControlsAsText() {
        var c = Canvas(width: 20, height: 1)
        let end = c.put("a\u{1B}[2Jb", x: 0, y: 0)
        XCTAssertEqual(c.text, #"a\x1B[2Jb"#)
        XCTAssertEqual(end, 9)
        XCTAssertFalse(c.cells.contains { $0.text.unicodeScalars.contains { VisibleText.isControl($0) } })
    }
}
