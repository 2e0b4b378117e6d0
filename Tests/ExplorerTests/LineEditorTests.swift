@testable import Explorer
import EngineAPI
import Terminal
import XCTest

final class LineEditorTests: XCTestCase {
    func testMovementWordsAndDeletion() {
        var e = LineEditor("fires on bridges")
        e.handle(.ctrlLeft)
        XCTAssertEqual(e.cursor, 9)
        e.handle(.alt("b"))
        XCTAssertEqual(e.cursor, 6)
        e.handle(.ctrl("w"))
        XCTAssertEqual(e.text, "on bridges")
        e.handle(.end)
        e.handle(.ctrl("w"))
        XCTAssertEqual(e.text, "on ")
        e.handle(.home)
        e.handle(.delete)
        XCTAssertEqual(e.text, "n ")
        e.handle(.ctrl("k"))
        XCTAssertEqual(e.text, "")
    }

    func testUndoGroupsTypingByWordAndRedo() {
        var e = LineEditor()
        for c in "the bridge" { e.handle(.char(c)) }
        e.undo()
        XCTAssertEqual(e.text, "the ")
        e.undo()
        XCTAssertEqual(e.text, "the")
        e.undo()
        XCTAssertEqual(e.text, "")
        e.redo()
        XCTAssertEqual(e.text, "the")
    }

    func testPasteKeepsOrFlattensNewlines() {
        var flat = LineEditor()
        flat.handle(.paste("a\nb\tc\u{7}"))
        XCTAssertEqual(flat.text, "a b c")
        var lab = LineEditor("", keepsNewlines: true)
        lab.handle(.paste("a\r\nb"))
        XCTAssertEqual(lab.text, "a\nb")
        XCTAssertEqual(lab.visible(width: 10).text, "a↵b")
    }

    func testVisibleScrollsToTheCursorWithWideCharacters() {
        var e = LineEditor("東京東京東京abc")
        var (text, col) = e.visible(width: 8)
        XCTAssertLessThanOrEqual(DisplayWidth.of(text), 8)
        XCTAssertEqual(col, DisplayWidth.of(text))
        XCTAssertTrue(text.hasSuffix("abc"))
        e.handle(.home)
        (text, col) = e.visible(width: 8)
        XCTAssertEqual(col, 0)
        XCTAssertTrue(text.hasPrefix("東京"))
    }
}
