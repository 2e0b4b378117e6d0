import XCTest
@testable import Terminal

final class DisplayWidthTests: XCTestCase {
    func testSingleCharacters() {
        XCTAssertEqual(DisplayWidth.of(Character("a")), 1)
        XCTAssertEqual(DisplayWidth.of(Character("é")), 1)
        XCTAssertEqual(DisplayWidth.of(Character("漢")), 2)
        XCTAssertEqual(DisplayWidth.of(Character("한")), 2)
        XCTAssertEqual(DisplayWidth.of(Character("Ａ")), 2)             // fullwidth A
        XCTAssertEqual(DisplayWidth.of(Character("😀")), 2)
        XCTAssertEqual(DisplayWidth.of(Character("👍🏽")), 2)            // with a skin-tone modifier
        XCTAssertEqual(DisplayWidth.of(Character("❤")), 1)              // text presentation
        XCTAssertEqual(DisplayWidth.of(Character("❤\u{FE0F}")), 2)      // emoji presentation
        XCTAssertEqual(DisplayWidth.of(Character("e\u{301}")), 1)       // e + combining acute
    }

    func testZeroWidthScalars() {
        XCTAssertEqual(DisplayWidth.of(Unicode.Scalar(0x301)!), 0)      // combining acute
        XCTAssertEqual(DisplayWidth.of(Unicode.Scalar(0x200B)!), 0)     // zero-width space
        XCTAssertEqual(DisplayWidth.of(Unicode.Scalar(0x200D)!), 0)     // zero-width joiner
        XCTAssertEqual(DisplayWidth.of(Unicode.Scalar(0x07)!), 0)       // BEL
        XCTAssertEqual(DisplayWidth.of(Unicode.Scalar(0x0A)!), 0)
    }

    func testStrings() {
        XCTAssertEqual(DisplayWidth.of(""), 0)
        XCTAssertEqual(DisplayWidth.of("abc"), 3)
        XCTAssertEqual(DisplayWidth.of("a漢b"), 4)
        XCTAssertEqual(DisplayWidth.of("cafe\u{301}"), 4)
        XCTAssertEqual(DisplayWidth.of("😀❤\u{FE0F}x"), 5)
    }

    func testPrefixStopsBeforeAWideCharacterThatWouldBeCut() {
        XCTAssertEqual(DisplayWidth.prefix("a漢b", columns: 2).text, "a")
        XCTAssertEqual(DisplayWidth.prefix("a漢b", columns: 2).width, 1)
        XCTAssertEqual(DisplayWidth.prefix("a漢b", columns: 3).text, "a漢")
        XCTAssertEqual(DisplayWidth.prefix("漢字", columns: 3).text, "漢")
        XCTAssertEqual(DisplayWidth.prefix("漢字", columns: 0).text, "")
        XCTAssertEqual(DisplayWidth.prefix("abc", columns: 10).width, 3)
        XCTAssertEqual(DisplayWidth.prefix("e\u{301}x", columns: 1).text, "e\u{301}")
    }

    func testFitPadsOrCutsWithAnEllipsis() {
        XCTAssertEqual(DisplayWidth.fit("ab", columns: 4), "ab  ")
        XCTAssertEqual(DisplayWidth.fit("abcd", columns: 4), "abcd")
        XCTAssertEqual(DisplayWidth.fit("abcdef", columns: 3), "ab…")
        XCTAssertEqual(DisplayWidth.fit("abc", columns: 0), "")
        // The wide character that would straddle the cut is dropped and the gap padded.
        XCTAssertEqual(DisplayWidth.fit("漢字abc", columns: 4), "漢… ")
        XCTAssertEqual(DisplayWidth.fit("a漢字", columns: 4), "a漢…")
        XCTAssertEqual(DisplayWidth.fit("😀😀😀", columns: 4), "😀… ")
        for columns in 1...8 {
            XCTAssertEqual(DisplayWidth.of(DisplayWidth.fit("漢a字b😀c", columns: columns)), columns)
        }
    }
}
