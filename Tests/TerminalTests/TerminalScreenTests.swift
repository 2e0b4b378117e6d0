import Foundation
import XCTest
@testable import Terminal

final class TerminalScreenTests: XCTestCase {
    /// Without a terminal the screen refuses with a message instead of letting ncurses exit.
    func testOpeningWithoutATerminalThrowsAMessage() throws {
        guard isatty(STDIN_FILENO) == 0 || isatty(STDOUT_FILENO) == 0 else { throw XCTSkip("running in a terminal") }
        XCTAssertThrowsError(try TerminalScreen()) { error in
            XCTAssertTrue("\(error)".contains("interactive terminal"), "\(error)")
        }
    }

    func testLibraryVersionNamesNcurses() {
        XCTAssertTrue(Terminal.libraryVersion.hasPrefix("ncurses"), Terminal.libraryVersion)
    }
}
