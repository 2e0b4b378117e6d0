import Kernels
import LoupeTestSupport

/// A buffer of `count` uniform values in `range`.
func randomBuffer(_ count: Int, _ rng: inout SeededRNG, in range: ClosedRange<Float> = -1...1) -> FloatBuffer {
    let b = FloatBuffer(count: count)
    for i in 0..<count { b[i] = Float.random(in: range, using: &rng) }
    return b
}

/// A copy of a buffer.
func copy(_ b: FloatBuffer) -> FloatBuffer {
    let c = FloatBuffer(count: b.count)
    c.pointer.update(from: b.pointer, count: b.count)
    return c
}

/// max |a[i] − b[i]| and max |b[i]| over the first `count` elements.
func maxDiff(_ a: FloatBuffer, _ b: FloatBuffer, count: Int? = nil) -> (diff: Float, magnitude: Float) {
    var d: Float = 0, m: Float = 0
    for i in 0..<(count ?? a.count) {
        d = max(d, abs(a[i] - b[i]))
        m = max(m, abs(b[i]))
        if a[i].isNaN != b[i].isNaN { d = .infinity }
    }
    return (d, m)
}
