import Foundation
import Kernels
@testable import Transcoder

/// SplitMix64 for test data; `normal` is Box–Muller.
typealias TestRNG = SplitMix64

extension SplitMix64 {
    mutating func uniform() -> Double { unit() }
    mutating func normal() -> Float {
        let u = max(uniform(), 1e-300), v = uniform()
        return Float((-2 * log(u)).squareRoot() * cos(2 * Double.pi * v))
    }
}

/// A buffer of `count` standard-normal values scaled by `scale`.
func normalBuffer(_ count: Int, _ rng: inout TestRNG, scale: Float = 1) -> FloatBuffer {
    let b = FloatBuffer(count: count)
    for i in 0..<count { b[i] = scale * rng.normal() }
    return b
}

/// A fresh temporary directory path (not created).
func temporaryPath(_ name: String) -> String {
    (NSTemporaryDirectory() as NSString).appendingPathComponent("loupe-tc-\(name)-\(UInt32.random(in: 0...UInt32.max))")
}
