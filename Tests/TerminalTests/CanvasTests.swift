import XCTest
@testable import Terminal

final class CanvasTests: XCTestCase {
    let bold = Style(bold: true)
    let red = Style(fg: .index(196))

    func testPutClipsToTheCanvas() {
        var c = Canvas(width: 5, height: 2)
        XCTAssertEqual(c.put("abcdefg", x: 0, y: 0), 5)
        XCTAssertEqual(c.put("wxyz", x: -2, y: 1), 2)
        XCTAssertEqual(c.put("nope", x: 0, y: 2), 0)
        XCTAssertEqual(c.put("nope", x: 0, y: -1), 0)
        XCTAssertEqual(c.text, "abcde\nyz")
    }

    func testPutHonoursMaxWidthAndShowsControlCharacters() {
        var c = Canvas(width: 8, height: 1)
        XCTAssertEqual(c.put("abcdef", x: 1, y: 0, maxWidth: 3), 4)
        XCTAssertEqual(c.text, " abc")
        var wide = Canvas(width: 16, height: 1)
        wide.put("x\ty\u{7}z", x: 0, y: 0)
        XCTAssertEqual(wide.text, #"x\x09y\x07z"#)
    }

    func testWideCharactersTakeTwoCellsAndNeverOverflowTheRightEdge() {
        var c = Canvas(width: 5, height: 1)
        XCTAssertEqual(c.put("ab漢", x: 0, y: 0), 4)
        XCTAssertEqual(c[2, 0].text, "漢")
        XCTAssertEqual(c[3, 0].text, "")
        XCTAssertEqual(c.put("字", x: 4, y: 0), 4)        // would need columns 4 and 5
        XCTAssertEqual(c[4, 0].text, " ")
        XCTAssertEqual(c.text, "ab漢")
        var m = Canvas(width: 6, height: 1)
        XCTAssertEqual(m.put("漢字", x: 0, y: 0, maxWidth: 3), 2)
        XCTAssertEqual(m.text, "漢")
    }

    func testOverwritingHalfOfAWideCharacterBlanksTheOtherHalf() {
        var c = Canvas(width: 4, height: 1)
        c.put("漢字", x: 0, y: 0)
        c.put("x", x: 1, y: 0)                          // right half of 漢
        XCTAssertEqual(c.text, " x字")
        XCTAssertEqual((0..<4).map { c[$0, 0].text }, [" ", "x", "字", ""])
        c.put("y", x: 2, y: 0)                          // left half of 字
        XCTAssertEqual((0..<4).map { c[$0, 0].text }, [" ", "x", "y", " "])
        c.put("漢", x: 1, y: 0)
        c.put("😀", x: 2, y: 0)                         // over 漢's right half
        XCTAssertEqual((0..<4).map { c[$0, 0].text }, [" ", " ", "😀", ""])
    }

    func testCombiningMarksStayWithTheirBase() {
        var c = Canvas(width: 4, height: 1)
        XCTAssertEqual(c.put("e\u{301}a", x: 0, y: 0), 2)
        XCTAssertEqual(c[0, 0].text, "e\u{301}")
        XCTAssertEqual(c.text, "e\u{301}a")
    }

    func testTextTrimsTrailingSpaces() {
        var c = Canvas(width: 6, height: 3)
        c.put("hi", x: 0, y: 0)
        c.put("x", x: 5, y: 2)
        XCTAssertEqual(c.text, "hi\n\n     x")
    }

    func testStyledTextListsStylesByLetter() {
        var c = Canvas(width: 5, height: 2)
        c.put("ab", x: 0, y: 0, style: bold)
        c.put("漢", x: 3, y: 0, style: red)
        c.put("c", x: 1, y: 1, style: bold)
        XCTAssertEqual(c.styledText.components(separatedBy: "\n"), [
            "ab 漢", "aa.bb",
            " c   ", ".a...",
            "-- styles --", "a = bold", "b = fg=196",
        ])
    }

    func testFillAndRestyle() {
        var c = Canvas(width: 4, height: 3)
        c.put("abcd", x: 0, y: 0)
        c.put("efgh", x: 0, y: 1)
        c.fill(x: 1, y: 0, width: 2, height: 1, style: red)
        XCTAssertEqual(c.text, "a  d\nefgh\n")
        XCTAssertEqual(c[1, 0].style, red)
        c.fill(x: -1, y: 1, width: 3, height: 5, style: bold, clear: false)
        XCTAssertEqual(c.text, "a  d\nefgh\n")
        XCTAssertEqual([c[0, 1].style, c[1, 1].style, c[2, 1].style], [bold, bold, .plain])
        XCTAssertEqual(c[1, 2].style, bold)
        c.restyle(x: 2, y: 1, width: 10) { $0.with(reverse: true) }
        XCTAssertEqual(c[1, 1].style, bold)
        XCTAssertEqual(c[2, 1].style, Style(reverse: true))
        XCTAssertEqual(c[3, 1].style, Style(reverse: true))
        c.restyle(x: 0, y: 7, width: 4) { _ in red }             // off the canvas: nothing
        c.fill(x: 0, y: 0, width: 0, height: 3, style: red)
        XCTAssertEqual(c.text, "a  d\nefgh\n")
    }

    func testCursorAndEquality() {
        var c = Canvas(width: 3, height: 2)
        XCTAssertNil(c.cursor)
        c.cursor = (2, 1)
        XCTAssertEqual(c.cursor?.x, 2)
        XCTAssertEqual(c.cursor?.y, 1)
        var d = Canvas(width: 3, height: 2)
        XCTAssertNotEqual(c, d)
        d.cursor = (2, 1)
        XCTAssertEqual(c, d)
        c.cursor = nil
        XCTAssertNil(c.cursor)
        XCTAssertEqual(Canvas(width: -3, height: 2).width, 0)
    }
}
