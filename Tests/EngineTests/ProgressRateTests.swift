import XCTest
@testable import Engine

/// `ProgressRate`, the one rate and ETA behind the CLI's bar and the explorer's status line.
final class ProgressRateTests: XCTestCase {
    func testWorkSkippedOnResumeIsNotSpeed() {
        var r = ProgressRate()
        r.record(500, at: 100)          // a resumed job reports 500 done at once
        XCTAssertNil(r.eta(done: 500, total: 1000, at: 100.2), "no rate before half a second")
        r.record(510, at: 102)
        XCTAssertEqual(r.rate(done: 510, at: 102), 5, accuracy: 1e-9, "10 units in 2 s, not 510")
        XCTAssertEqual(try XCTUnwrap(r.eta(done: 510, total: 1000, at: 102)), 98, accuracy: 1e-9)
    }

    func testTheRateFollowsTheLastHalfMinute() {
        var r = ProgressRate()
        for t in 0..<60 { r.record(t < 30 ? t * 10 : 300 + (t - 30), at: Double(t)) }   // 10/s, then 1/s
        XCTAssertEqual(r.rate(done: 329, at: 59), 1, accuracy: 0.05, "the first half minute's pace is forgotten")
        XCTAssertEqual(r.eta(done: 1000, total: 1000, at: 59), 0, "done: nothing left")
        var stalled = ProgressRate()
        stalled.record(3, at: 0); stalled.record(3, at: 5)
        XCTAssertNil(stalled.eta(done: 3, total: 10, at: 5), "no progress: no ETA rather than infinity")
    }
}
