import XCTest
@testable import Terminal

final class ColorTests: XCTestCase {
    func testRGBPicksTheNearestCubeColour() {
        XCTAssertEqual(Color.rgb(0, 0, 0), .index(16))
        XCTAssertEqual(Color.rgb(1, 1, 1), .index(231))
        XCTAssertEqual(Color.rgb(1, 0, 0), .index(196))
        XCTAssertEqual(Color.rgb(0, 1, 0), .index(46))
        XCTAssertEqual(Color.rgb(0, 0, 1), .index(21))
        XCTAssertEqual(Color.rgb(2, -1, 0.4), .index(16 + 36 * 5 + 2))   // clamped, 0.4·5 = 2
    }

    func testBasicMapping() {
        XCTAssertEqual(Color.none.basic, .none)
        XCTAssertEqual(Color.index(3).basic, .index(3))
        XCTAssertEqual(Color.index(9).basic, .index(1))      // bright red → red
        XCTAssertEqual(Color.index(196).basic, .index(1))
        XCTAssertEqual(Color.index(46).basic, .index(2))
        XCTAssertEqual(Color.index(226).basic, .index(3))    // yellow
        XCTAssertEqual(Color.index(21).basic, .index(4))
        XCTAssertEqual(Color.index(16).basic, .index(0))
        XCTAssertEqual(Color.index(231).basic, .index(7))
        XCTAssertEqual(Color.index(236).basic, .index(0))    // dark grey
        XCTAssertEqual(Color.index(250).basic, .index(7))    // light grey
        for i in 0...255 {
            guard case .index(let b) = Color.index(UInt8(i)).basic else { return XCTFail("colour \(i) lost") }
            XCTAssertLessThan(b, 8)
        }
    }

    func testLuminanceOrdering() {
        XCTAssertEqual(Color.none.luminance, 0)
        XCTAssertEqual(Color.index(16).luminance, 0)
        XCTAssertEqual(Color.index(231).luminance, 1, accuracy: 1e-9)
        let greys = (232...255).map { Color.index(UInt8($0)).luminance }
        XCTAssertEqual(greys, greys.sorted())
        XCTAssertLessThan(Color.index(21).luminance, Color.index(196).luminance)   // blue < red
        XCTAssertLessThan(Color.index(196).luminance, Color.index(46).luminance)   // red < green
        XCTAssertLessThan(Color.index(46).luminance, Color.index(226).luminance)   // green < yellow
        for level in 0..<5 {
            XCTAssertLessThan(Color.rgb(Double(level) / 5, 0, 0).luminance, Color.rgb(Double(level + 1) / 5, 0, 0).luminance)
        }
    }

    func testStyleSummaryAndWith() {
        let s = Style(fg: .index(203), bg: .index(236), bold: true)
        XCTAssertEqual(s.summary, "fg=203 bg=236 bold")
        XCTAssertEqual(Style.plain.summary, "plain")
        XCTAssertEqual(s.with(bold: false, underline: true).summary, "fg=203 bg=236 underline")
    }
}
