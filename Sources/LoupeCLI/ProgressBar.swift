import Engine
import Foundation
import Storage

/// Progress on stderr: a bar with rate and ETA redrawn in place on a terminal, a line every few
/// seconds otherwise. Ctrl-C asks the build to stop at the next safe point (what is done is kept).
final class ProgressBar: ProgressReporter, @unchecked Sendable {
    private var step = ""
    private var total = 0
    private var unit = ""
    private var started = 0.0
    private var lastDraw = 0.0
    private var rate = ProgressRate()
    private let interactive = isatty(STDERR_FILENO) != 0
    private let quiet: Bool

    nonisolated(unsafe) static var interrupted = false

    init(quiet: Bool = false) {
        self.quiet = quiet
        signal(SIGINT) { _ in
            if ProgressBar.interrupted { exit(130) }
            ProgressBar.interrupted = true
        }
    }

    var shouldStop: Bool { ProgressBar.interrupted }

    func begin(_ step: String, total: Int, unit: String) {
        self.step = step
        self.total = total
        self.unit = unit
        started = Clock.now
        lastDraw = 0
        rate = ProgressRate()
    }

    func advance(_ done: Int, detail: String) {
        let now = Clock.now
        rate.record(done, at: now)
        guard !quiet, now - lastDraw >= (interactive ? 0.1 : 5) || done == total else { return }
        lastDraw = now
        let fraction = total > 0 ? min(1, Double(done) / Double(total)) : 0
        let perSecond = rate.rate(done: done, at: now)
        let eta = rate.eta(done: done, total: total, at: now) ?? .infinity
        let width = 24
        let filled = Int(fraction * Double(width))
        let bar = String(repeating: "█", count: filled) + String(repeating: "░", count: width - filled)
        let rateText = String(format: perSecond < 10 ? "%.2f" : "%.0f", perSecond)
        let line = String(format: "%@ %@ %5.1f%% %d/%d %@ %@ %@/s ETA %@  %@", step, bar, fraction * 100, done, total, unit,
                          rateText, unit, Self.duration(eta), detail)
        Console.status(line, after: interactive ? "\r\u{1B}[K" : "", newline: !interactive)
    }

    func end(_ step: String, summary: String) {
        guard !quiet else { return }
        let line = "\(step): done in \(Self.duration(Clock.now - started)) — \(summary)"
        Console.status(line, after: interactive ? "\r\u{1B}[K" : "")
    }

    func note(_ message: String) {
        guard !quiet else { return }
        Console.status("loupe: " + message, after: interactive ? "\r\u{1B}[K" : "")
    }

    static func duration(_ s: Double) -> String {
        guard s.isFinite else { return "?" }
        let t = Int(s.rounded())
        return t >= 3600 ? String(format: "%dh%02dm", t / 3600, t / 60 % 60) : String(format: "%d:%02d", t / 60, t % 60)
    }
}
