import Foundation
import Kernels
@testable import Transcoder

/// SplitMix64 for test data; `normal` is Box–Muller.
struct TestRNG {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func uniform() -> Double { Double(next() >> 11) * 0x1p-53 }
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
