import Foundation
import Kernels
import LoupeTestSupport

/// A buffer of `count` standard-normal values scaled by `scale`.
func normalBuffer(_ count: Int, _ rng: inout SeededRNG, scale: Float = 1) -> FloatBuffer {
    let b = FloatBuffer(count: count)
    for i in 0..<count { b[i] = scale * rng.normal() }
    return b
}

/// A fresh temporary directory path (not created).
func temporaryPath(_ name: String) -> String {
    (NSTemporaryDirectory() as NSString).appendingPathComponent("loupe-tc-\(name)-\(UInt32.random(in: 0...UInt32.max))")
}
