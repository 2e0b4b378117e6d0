/// Results written by parallel workers, one slot each: a raw buffer, so workers writing
/// different slots never race on a copy-on-write check.
public final class Slots<T>: @unchecked Sendable {
    private let slots: UnsafeMutablePointer<T?>
    public let count: Int

    public init(count: Int) {
        self.count = count
        slots = .allocate(capacity: count)
        slots.initialize(repeating: nil, count: count)
    }

    deinit {
        slots.deinitialize(count: count)
        slots.deallocate()
    }

    public func set(_ i: Int, _ value: T) { slots[i] = value }

    /// Every slot's value; all must have been set.
    public var values: [T] { (0..<count).map { slots[$0]! } }
}
