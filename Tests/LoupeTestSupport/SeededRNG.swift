import Foundation
import Kernels

/// The tests' seeded generator (Loupe's SplitMix64), so every run sees the same numbers.
public typealias SeededRNG = SplitMix64

extension SplitMix64 {
    /// A standard normal value (Box–Muller on two 53-bit uniforms).
    public mutating func normal() -> Float {
        let u = max(unit(), 1e-300), v = unit()
        return Float((-2 * log(u)).squareRoot() * cos(2 * Double.pi * v))
    }
}
