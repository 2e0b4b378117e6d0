import Foundation
@testable import LoupeCLI
import Terminal
import XCTest

/// The table of commands against what is made from it (`loupe help`, the dispatch) and against
/// README.md's command table, which is written by hand.
final class CommandTableTests: XCTestCase {
    /// Each form as a user types it: `loupe` and the synopsis.
    let forms = CommandSpec.all.flatMap { spec in spec.forms.map { "loupe " + $0.synopsis } }

    /// The rows of the README's table under "## Command line", checked to be one table.
    func readmeRows() throws -> [String] {
        let readme = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("README.md")
        let text = try String(contentsOf: readme, encoding: .utf8)
        let lines = text.components(separatedBy: "\n")
        let start = try XCTUnwrap(lines.firstIndex(of: "## Command line"), "README.md has no '## Command line' section")
        let sectionEnd = lines[(start + 1)...].firstIndex { $0.hasPrefix("## ") } ?? lines.count
        let section = Array(lines[start..<sectionEnd])
        let first = try XCTUnwrap(section.firstIndex { $0.hasPrefix("|") }, "the Command line section has no table")
        let end = section[first...].firstIndex { !$0.hasPrefix("|") } ?? section.count
        if let stray = section[end...].first(where: { $0.hasPrefix("|") }) {
            XCTFail("the command table is split: a blank or other line comes before \(stray.prefix(70))…")
        }
        XCTAssertTrue(section[first + 1].hasPrefix("|---"), "the command table's header is not followed by its separator")
        return Array(section[(first + 2)..<end])
    }

    /// The invocations in a row's first cell: its code spans (`\|` is a `|` inside a cell).
    func invocations(_ row: String) -> [String] {
        let cells = row.replacingOccurrences(of: "\\|", with: "\u{0}").split(separator: "|", omittingEmptySubsequences: false)
        guard cells.count > 2 else { return [] }
        let cell = cells[1].replacingOccurrences(of: "\u{0}", with: "|")
        return cell.split(separator: "`", omittingEmptySubsequences: false).enumerated()
            .filter { $0.offset % 2 == 1 }.map { normalized(String($0.element)) }
    }

    func normalized(_ text: String) -> String { text.split(whereSeparator: \.isWhitespace).joined(separator: " ") }

    func testReadmeTableHasEveryCommandAndNoOther() throws {
        let rows = try readmeRows()
        var readme: [String] = []
        for row in rows {
            let found = invocations(row)
            XCTAssertFalse(found.isEmpty, "a README command row names no command: \(row.prefix(80))")
            readme += found
        }
        let table = forms.map(normalized)
        XCTAssertEqual(Set(readme).count, readme.count, "the README lists a command twice")
        XCTAssertEqual(table.filter { !readme.contains($0) }, [], "in `loupe help` but not in README.md's command table")
        XCTAssertEqual(readme.filter { !table.contains($0) }, [], "in README.md's command table but not in `loupe help` (Sources/LoupeCLI/Commands.swift)")
    }

    func testUsageShowsEveryFormWithin120Columns() {
        let usage = LoupeCLI.usage
        for line in usage.components(separatedBy: "\n") {
            XCTAssertLessThanOrEqual(DisplayWidth.of(line), 120, "too wide: \(line)")
        }
        let flat = normalized(usage)
        for form in forms { XCTAssertTrue(flat.contains(normalized(form)), "`loupe help` does not show \(form)") }
        for note in CommandSpec.notes { XCTAssertTrue(flat.contains(normalized(note))) }
    }

    func testEachCommandIsNamedOnceAndEachFormSaysWhatItDoes() {
        let words = CommandSpec.all.flatMap { [$0.name] + $0.aliases }
        XCTAssertEqual(Set(words).count, words.count, "two commands answer to the same word")
        for spec in CommandSpec.all {
            for form in spec.forms {
                XCTAssertFalse(form.summary.isEmpty, "\(form.synopsis) has no summary")
                // The explorer on the default workspace is the one form without a command word.
                let word = form.synopsis.split(separator: " ").first.map(String.init) ?? ""
                XCTAssertTrue(word == spec.name || (spec.name == "open" && word.hasPrefix("[")), "\(form.synopsis) is listed under \(spec.name)")
            }
        }
    }

    func testDispatchFindsCommandsByNameOrAlias() {
        XCTAssertEqual(CommandSpec.named("train-simulator")?.name, "train-simulator")
        XCTAssertEqual(CommandSpec.named("-h")?.name, "help")
        XCTAssertEqual(CommandSpec.named("--help")?.name, "help")
        XCTAssertNil(CommandSpec.named("frobnicate"))
        XCTAssertEqual(LoupeCLI.run(["frobnicate"]), 1)
    }
}
