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
