import XCTest
@testable import Terminal

final class KeyDecoderTests: XCTestCase {
    func decode(_ s: String) -> [Key] { KeyDecoder.decode(s) }

    func testPlainCharacters() {
        XCTAssertEqual(decode("a漢😀 "), [.char("a"), .char("漢"), .char("😀"), .char(" ")])
        XCTAssertEqual(KeyDecoder.decode(bytes: Array("é".utf8)), [.char("é")])
    }

    func testControlCharacters() {
        XCTAssertEqual(KeyDecoder.decode(bytes: [1, 3, 19, 26, 17]),
                       [.ctrl("a"), .ctrl("c"), .ctrl("s"), .ctrl("z"), .ctrl("q")])
        XCTAssertEqual(KeyDecoder.decode(bytes: [9, 10, 13, 8, 127]), [.tab, .enter, .enter, .backspace, .backspace])
        XCTAssertEqual(KeyDecoder.decode(bytes: [0, 28, 31]), [])
    }

    func testArrowsAndEditingKeys() {
        XCTAssertEqual(decode("\u{1B}[A\u{1B}[B\u{1B}[C\u{1B}[D"), [.up, .down, .right, .left])
        XCTAssertEqual(decode("\u{1B}OA\u{1B}OB\u{1B}OC\u{1B}OD"), [.up, .down, .right, .left])
        XCTAssertEqual(decode("\u{1B}[H\u{1B}[F\u{1B}[1~\u{1B}[4~\u{1B}OH\u{1B}OF"), [.home, .end, .home, .end, .home, .end])
        XCTAssertEqual(decode("\u{1B}[5~\u{1B}[6~\u{1B}[3~\u{1B}[Z"), [.pageUp, .pageDown, .delete, .backTab])
        XCTAssertEqual(decode("\u{1B}OP\u{1B}OS\u{1B}[15~\u{1B}[17~\u{1B}[21~\u{1B}[24~"),
                       [.function(1), .function(4), .function(5), .function(6), .function(10), .function(12)])
        XCTAssertEqual(decode("\u{1B}OM"), [.enter])
    }

    func testCtrlArrowsAreWordMovesAndOtherModifiersAreDropped() {
        XCTAssertEqual(decode("\u{1B}[1;5D\u{1B}[1;5C"), [.ctrlLeft, .ctrlRight])
        XCTAssertEqual(decode("\u{1B}[1;2D\u{1B}[1;3C\u{1B}[1;5A"), [.left, .right, .up])
    }

    func testAltAndEscape() {
        XCTAssertEqual(decode("\u{1B}b"), [.alt("b")])
        XCTAssertEqual(decode("\u{1B}B\u{1B}é\u{1B} "), [.alt("B"), .alt("é"), .alt(" ")])
        XCTAssertEqual(decode("\u{1B}"), [.escape])
        XCTAssertEqual(decode("\u{1B}\u{1B}"), [.escape, .escape])
        XCTAssertEqual(decode("\u{1B}\u{1B}[A"), [.escape, .up])
        XCTAssertEqual(decode("\u{1B}["), [.alt("[")])
        XCTAssertEqual(decode("\u{1B}O"), [.alt("O")])
        XCTAssertEqual(decode("\u{1B}\r"), [.enter])          // Alt + a control key: the key
    }

    func testUnknownAndMalformedSequencesAreDropped() {
        XCTAssertEqual(decode("\u{1B}[99xa"), [.char("a")])
        XCTAssertEqual(decode("\u{1B}[2~b"), [.char("b")])   // Insert
        XCTAssertEqual(decode("\u{1B}[1;5"), [])              // cut off
        XCTAssertEqual(decode("\u{1B}[1\u{3}"), [.ctrl("c")])
        XCTAssertEqual(decode("\u{1B}[" + String(repeating: "1", count: 40) + "Ax"), [.char("x")])
    }

    func testBracketedPasteIsOneKey() {
        XCTAssertEqual(decode("\u{1B}[200~hello\r\nworld\rend\n\u{1B}[201~x"), [.paste("hello\nworld\nend\n"), .char("x")])
        XCTAssertEqual(decode("\u{1B}[200~a\tb\u{1B}[A\u{1B}c漢\u{1B}[201~"), [.paste("a\tb\u{1B}[A\u{1B}c漢")])
        XCTAssertEqual(decode("\u{1B}[200~\u{1B}[201~"), [.paste("")])
        XCTAssertEqual(decode("\u{1B}[200~cut off"), [.paste("cut off")])
    }

    func testFeedingOneCharacterAtATime() {
        var d = KeyDecoder()
        XCTAssertFalse(d.isPending)
        XCTAssertNil(d.waitMilliseconds)
        XCTAssertEqual(d.feed("\u{1B}"), [])
        XCTAssertTrue(d.isPending)
        XCTAssertEqual(d.waitMilliseconds, 5)
        XCTAssertEqual(d.feed("["), [])
        XCTAssertEqual(d.waitMilliseconds, 100)
        XCTAssertEqual(d.feed("1"), [])
        XCTAssertEqual(d.feed(";"), [])
        XCTAssertEqual(d.feed("5"), [])
        XCTAssertEqual(d.feed("C"), [.ctrlRight])
        XCTAssertFalse(d.isPending)
        for c in "\u{1B}[200~ab".unicodeScalars { XCTAssertEqual(d.feed(c), []) }
        XCTAssertTrue(d.isInPaste)
        XCTAssertEqual(d.waitMilliseconds, 1000)
        for c in "\u{1B}[201".unicodeScalars { XCTAssertEqual(d.feed(c), []) }
        XCTAssertEqual(d.feed("~"), [.paste("ab")])
        XCTAssertFalse(d.isInPaste)
        XCTAssertEqual(d.feed("\u{1B}"), [])
        XCTAssertEqual(d.flush(), [.escape])
        XCTAssertEqual(d.flush(), [])
    }

    func testSGRMouseReports() {
        XCTAssertEqual(decode("\u{1B}[<0;5;3M"), [.mouse(Mouse(.click, x: 4, y: 2))])
        XCTAssertEqual(decode("\u{1B}[<0;5;3m"), [])                  // release
        XCTAssertEqual(decode("\u{1B}[<2;1;1M"), [.mouse(Mouse(.rightClick, x: 0, y: 0))])
        XCTAssertEqual(decode("\u{1B}[<64;10;20M\u{1B}[<65;10;20M"),
                       [.mouse(Mouse(.wheelUp, x: 9, y: 19)), .mouse(Mouse(.wheelDown, x: 9, y: 19))])
        XCTAssertEqual(decode("\u{1B}[<1;1;1M\u{1B}[<32;4;4M"), [])   // middle button, motion
    }

    /// X10 reports (ESC [ M, then button, column and row, each + 32) read like SGR's; releases,
    /// the middle button and motion give nothing, and what follows decodes as usual.
    func testX10MouseReports() {
        func x10(_ b: Int, _ x: Int, _ y: Int) -> String { "\u{1B}[M" + String(UnicodeScalar(UInt8(32 + b))) + String(UnicodeScalar(UInt8(32 + x))) + String(UnicodeScalar(UInt8(32 + y))) }
        XCTAssertEqual(decode(x10(0, 5, 3)), [.mouse(Mouse(.click, x: 4, y: 2))])
        XCTAssertEqual(decode(x10(2, 1, 1) + "j"), [.mouse(Mouse(.rightClick, x: 0, y: 0)), .char("j")])
        XCTAssertEqual(decode(x10(64, 10, 20) + x10(65, 10, 20)),
                       [.mouse(Mouse(.wheelUp, x: 9, y: 19)), .mouse(Mouse(.wheelDown, x: 9, y: 19))])
        XCTAssertEqual(decode(x10(3, 5, 3) + x10(1, 5, 3) + x10(35, 5, 3) + "q"), [.char("q")], "release, middle, motion")
        XCTAssertEqual(decode("\u{1B}[M!"), [], "cut short: dropped at the flush")
    }

    func testDoubleClicks() {
        var d = DoubleClickDetector(interval: 0.4)
        let at = { (x: Int, y: Int) in Mouse(.click, x: x, y: y) }
        XCTAssertEqual(d.classify(at(3, 4), at: 10.0).kind, .click)
        XCTAssertEqual(d.classify(at(3, 4), at: 10.2).kind, .doubleClick)
        XCTAssertEqual(d.classify(at(3, 4), at: 10.3).kind, .click)       // a third click starts again
        XCTAssertEqual(d.classify(at(3, 5), at: 10.4).kind, .click)       // another cell
        XCTAssertEqual(d.classify(at(3, 5), at: 11.0).kind, .click)       // too slow
        XCTAssertEqual(d.classify(Mouse(.wheelUp, x: 3, y: 5), at: 11.1).kind, .wheelUp)
        XCTAssertEqual(d.classify(at(3, 5), at: 11.2).kind, .click)       // the wheel broke the pair
        XCTAssertEqual(d.classify(at(3, 5), at: 11.3), Mouse(.doubleClick, x: 3, y: 5))
    }

    func testKeyLabels() {
        XCTAssertEqual(Key.ctrl("c").label, "Ctrl-C")
        XCTAssertEqual(Key.alt("b").label, "Alt-b")
        XCTAssertEqual(Key.ctrlLeft.label, "Ctrl-←")
    }
}
