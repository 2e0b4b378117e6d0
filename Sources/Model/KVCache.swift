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

    func advance(by n: Int) { length += n }
}
