import Kernels

/// Keys and values of every layer for the positions run so far. Running more tokens appends;
/// `truncate(to:)` rewinds, so a shared prompt prefix is computed once and reused: run the
/// prefix, note `length`, then for each continuation truncate back to it and run the rest.
public final class KVCache: @unchecked Sendable {
    /// Positions the cache can hold.
    public let capacity: Int
    /// Positions filled (the next token runs at this position).
    public private(set) var length = 0
    /// Per layer, [capacity × kvDim].
    let keys: [FloatBuffer]
    let values: [FloatBuffer]
    let kvDim: Int

    public init(config: LlamaConfig, capacity: Int) {
        self.capacity = capacity
        kvDim = config.kvDim
        keys = (0..<config.layers).map { _ in FloatBuffer(count: capacity * config.kvDim) }
        values = (0..<config.layers).map { _ in FloatBuffer(count: capacity * config.kvDim) }
    }

    /// Forgets every position from `n` on.
    public func truncate(to n: Int) {
        precondition(n >= 0 && n <= length, "cannot truncate a cache of \(length) positions to \(n)")
        length = n
    }

    /// Makes this cache hold the first `n` positions of `other` (a shared prefix), so a batch of
    /// continuations can each run against their own copy.
    public func copyPrefix(of other: KVCache, length n: Int) {
        precondition(other.kvDim == kvDim && other.keys.count == keys.count, "caches of different models")
        precondition(n <= other.length && n <= capacity, "prefix of \(n) positions does not fit")
        for l in 0..<keys.count {
            keys[l].pointer.update(from: other.keys[l].pointer, count: n * kvDim)
            values[l].pointer.update(from: other.values[l].pointer, count: n * kvDim)
        }
        length = n
    }

    func advance(by n: Int) { length += n }
}
