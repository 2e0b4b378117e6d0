import Foundation
import Synchronization

/// The helper threads behind `Parallel.forEach`: started once, they spin for a short while after each
/// job before parking, so the hundreds of fork-joins of one forward pass (several per layer, each a
/// fraction of a millisecond) do not each pay a thread wake-up. On these VMs a wake-up costs tens of
/// microseconds, which `DispatchQueue.concurrentPerform` paid at almost every call.
///
/// One job at a time: a caller that finds the pool busy (another thread's job, or a body that itself
/// calls `forEach`) runs its items on its own thread instead, so nesting and concurrent callers are
/// safe. Items are handed out dynamically (an atomic counter); the caller takes items too and
/// returns once every helper has finished the job.
final class WorkerPool: @unchecked Sendable {
    /// Helper threads (the caller is the extra participant).
    let helpers: Int
    /// How long a helper spins for the next job before it parks.
    static let spinNanoseconds: UInt64 = 200_000

    private let busy = Atomic<Bool>(false)
    private let epoch = Atomic<Int>(0)
    private let next = Atomic<Int>(0)
    private let finished = Atomic<Int>(0)
    private let parked = NSCondition()
    private var sleepers = 0  // guarded by `parked`
    // The job, written before `epoch` is bumped (release) and read after it is seen (acquire).
    private var body: ((Int) -> Void)?
    private var count = 0
    private var participants = 0

    init(helpers: Int) {
        self.helpers = helpers
        for h in 0..<helpers {
            let thread = Thread { [unowned self] in self.helperLoop(h) }
            thread.name = "loupe-kernel-\(h + 1)"
            thread.stackSize = 4 << 20
            thread.start()
        }
    }

    /// Runs body(i) for i in 0..<count on the caller and up to `threads − 1` helpers. False (nothing run)
    /// when the pool is busy; the caller then runs the items itself.
    func run(_ count: Int, threads: Int, _ body: (Int) -> Void) -> Bool {
        guard busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else { return false }
        defer { busy.store(false, ordering: .releasing) }
        withoutActuallyEscaping(body) { escapable in
            self.body = escapable
            self.count = count
            participants = min(threads - 1, helpers)
            next.store(0, ordering: .relaxed)
            finished.store(0, ordering: .relaxed)
            epoch.wrappingAdd(1, ordering: .releasing)
            parked.lock()
            if sleepers > 0 { parked.broadcast() }
            parked.unlock()
            while true {
                let i = next.wrappingAdd(1, ordering: .relaxed).oldValue
                if i >= count { break }
                escapable(i)
            }
            while finished.load(ordering: .acquiring) < helpers {}
            self.body = nil
        }
        return true
    }

    private func helperLoop(_ index: Int) {
        var seen = 0
        while true {
            var spins = 0
            var deadline: UInt64 = 0
            while epoch.load(ordering: .acquiring) == seen {
                spins += 1
                if spins & 255 != 0 { continue }
                let now = DispatchTime.now().uptimeNanoseconds
                if deadline == 0 { deadline = now + Self.spinNanoseconds; continue }
                if now < deadline { continue }
                parked.lock()
                while epoch.load(ordering: .acquiring) == seen {
                    sleepers += 1
                    parked.wait()
                    sleepers -= 1
                }
                parked.unlock()
                break
            }
            seen = epoch.load(ordering: .acquiring)
            if index < participants, let body {
                while true {
                    let i = next.wrappingAdd(1, ordering: .relaxed).oldValue
                    if i >= count { break }
                    body(i)
                }
            }
            finished.wrappingAdd(1, ordering: .releasing)
        }
    }
}
