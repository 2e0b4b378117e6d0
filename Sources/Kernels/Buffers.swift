import Dispatch
import Foundation
import Synchronization

/// 64-byte-aligned, zero-initialised fp32 storage, freed on deinit.
public final class FloatBuffer: @unchecked Sendable {
    /// Number of floats.
    public let count: Int
    /// Start of the storage (64-byte aligned).
    public let pointer: UnsafeMutablePointer<Float>

    /// Allocates `count` zeroed floats (at least one cache line, so `pointer` is always valid).
    public init(count: Int) {
        precondition(count >= 0, "FloatBuffer count must be non-negative")
        self.count = count
        let bytes = max(64, (count * MemoryLayout<Float>.stride + 63) & ~63)
        let raw = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        raw.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
        pointer = raw.bindMemory(to: Float.self, capacity: bytes / 4)
    }

    deinit { UnsafeMutableRawPointer(pointer).deallocate() }

    /// Element access through the raw pointer: not bounds-checked in any build, so callers index within the buffer.
    public subscript(i: Int) -> Float {
        get { pointer[i] }
        set { pointer[i] = newValue }
    }

    /// A copy of the contents, for tests.
    public var array: [Float] { Array(UnsafeBufferPointer(start: pointer, count: count)) }
}

/// Fork-join over the machine's cores with a settable thread count.
public enum Parallel {
    /// Number of threads `forEach` spreads work over (default: active processor count).
    public nonisolated(unsafe) static var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    /// The helper threads, one fewer than the machine's cores, started on first use.
    static let pool = WorkerPool(helpers: max(ProcessInfo.processInfo.activeProcessorCount, 2) - 1)

    /// Runs `body(i)` for every i in 0..<count, spread over `threads` threads (the caller and up to
    /// threads − 1 helpers of `WorkerPool`); returns when all are done. Items are handed out dynamically,
    /// so uneven items balance themselves. Called while the pool is busy (from inside a body, or by a
    /// second thread at the same time), it runs the items on the calling thread.
    public static func forEach(_ count: Int, _ body: (Int) -> Void) {
        let nt = min(max(threads, 1), count)
        if nt <= 1 || !pool.run(count, threads: nt, body) {
            for i in 0..<count { body(i) }
        }
    }
}

/// A pool of reusable scratch buffers, so kernels allocate only until the pool has warmed up.
enum Scratch {
    private static let pool = Mutex<[FloatBuffer]>([])
    /// Buffers kept when idle; beyond this the smallest are released.
    private static let keep = 16

    /// Borrows a buffer of at least `count` floats (best fit from the pool) for the duration of `body`.
    static func with<R>(_ count: Int, _ body: (UnsafeMutablePointer<Float>) -> R) -> R {
        let found: FloatBuffer? = pool.withLock { list in
            var best: Int? = nil
            for (i, b) in list.enumerated() where b.count >= count && (best == nil || b.count < list[best!].count) { best = i }
            return best.map { list.remove(at: $0) }
        }
        let buf = found ?? FloatBuffer(count: count)
        defer {
            pool.withLock { list in
                list.append(buf)
                if list.count > keep, let i = list.indices.min(by: { list[$0].count < list[$1].count }) { list.remove(at: i) }
            }
        }
        return body(buf.pointer)
    }
}
