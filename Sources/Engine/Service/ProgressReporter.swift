/// Receives a long job's progress (a build, a bulk explanation): one step at a time, with counts
/// for a progress bar and its ETA. The CLI's ProgressBar and the explorer's EngineThread are two.
public protocol ProgressReporter: AnyObject {
    func begin(_ step: String, total: Int, unit: String)
    func advance(_ done: Int, detail: String)
    func end(_ step: String, summary: String)
    func note(_ message: String)
    /// Polled between units of work; true stops the job (what is done is kept).
    var shouldStop: Bool { get }
}

/// A job's rate and ETA from its recent progress, for every progress display (the CLI's bar, the
/// explorer's status line): one sample a second at most, the last 30 kept, so the rate follows the
/// last half minute and work skipped on resume (the first `done` reported) never counts as speed.
public struct ProgressRate: Sendable {
    private var samples: [(time: Double, done: Int)] = []

    public init() {}

    /// Notes that `done` units are finished at `now`.
    public mutating func record(_ done: Int, at now: Double) {
        if samples.isEmpty || now - samples[samples.count - 1].time >= 1 { samples.append((now, done)) }
        if samples.count > 30 { samples.removeFirst() }
    }

    /// Units per second since the oldest sample kept; 0 until half a second has passed.
    public func rate(done: Int, at now: Double) -> Double {
        guard let first = samples.first, now - first.time > 0.5 else { return 0 }
        return Double(done - first.done) / (now - first.time)
    }

    /// Seconds left at that rate; nil while the rate is unknown (or zero).
    public func eta(done: Int, total: Int, at now: Double) -> Double? {
        let r = rate(done: done, at: now)
        return r > 0 ? Double(max(0, total - done)) / r : nil
    }
}
