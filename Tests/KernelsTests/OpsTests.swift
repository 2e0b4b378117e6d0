import Foundation
import XCTest
import Kernels
import LoupeTestSupport

final class OpsTests: XCTestCase {
    func testFastExpRelativeError() {
        var worst = 0.0
        var x: Float = -87
        while x <= 88 {
            let v = Ops.exp(SIMD16(repeating: x) + SIMD16(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15) * 1e-4)
            for l in 0..<16 {
                let xl = Double(x + Float(l) * 1e-4)
                let e = Foundation.exp(xl)
                worst = max(worst, abs(Double(v[l]) - e) / e)
            }
            x += 0.0137
        }
        print("fastExp: max relative error \(worst)")
        XCTAssertLessThan(worst, 1e-6)
        let edge = Ops.exp(SIMD16(repeating: -200))
        XCTAssertEqual(edge.max(), 0)
        XCTAssertTrue(Ops.exp(SIMD16(repeating: 200)).min().isFinite)
    }

    func testRmsNormMatchesReference() {
        var rng = SeededRNG(seed: 5)
        var worst: Float = 0
        for dim in [1, 7, 16, 17, 33, 576, 577] {
            for rows in [1, 3, 13] {
                let x = randomBuffer(rows * dim, &rng, in: -3...3), w = randomBuffer(dim, &rng)
                let out = FloatBuffer(count: rows * dim), ref = FloatBuffer(count: rows * dim)
                Ops.rmsNorm(x.pointer, weight: w.pointer, out: out.pointer, rows: rows, dim: dim, eps: 1e-5)
                Ops.rmsNormReference(x.pointer, weight: w.pointer, out: ref.pointer, rows: rows, dim: dim, eps: 1e-5)
                let (d, mag) = maxDiff(out, ref)
                worst = max(worst, d)
                XCTAssertLessThanOrEqual(d, 2e-6 * max(1, mag), "rows=\(rows) dim=\(dim)")
                Ops.rmsNorm(x.pointer, weight: w.pointer, out: x.pointer, rows: rows, dim: dim, eps: 1e-5)
                XCTAssertEqual(x.array, out.array, "in-place rmsNorm must match out-of-place")
            }
        }
        print("rmsNorm: max abs diff \(worst)")
    }

    func testRopeMatchesReference() {
        var rng = SeededRNG(seed: 9)
        let table = RopeTable(headDim: 64, base: 100_000, maxPositions: 4096)
        var worst: Float = 0
        for (rows, heads, start, extra) in [(1, 9, 0, 0), (1, 3, 4000, 0), (13, 9, 7, 5), (255, 3, 100, 0)] {
            let stride = heads * 64 + extra
            let x = randomBuffer(rows * stride, &rng, in: -2...2), ref = copy(x)
            Ops.rope(x.pointer, rows: rows, stride: stride, heads: heads, headDim: 64, startPosition: start, table: table)
            Ops.ropeReference(ref.pointer, rows: rows, stride: stride, heads: heads, headDim: 64, startPosition: start, table: table)
            let (d, _) = maxDiff(x, ref)
            worst = max(worst, d)
            XCTAssertLessThanOrEqual(d, 1e-5, "rows=\(rows) heads=\(heads) start=\(start)")
        }
        let x = FloatBuffer(count: 4)
        x[0] = 1; x[2] = 1
        Ops.rope(x.pointer, rows: 1, stride: 4, heads: 1, headDim: 4, startPosition: 1,
                 table: RopeTable(headDim: 4, base: 10_000, maxPositions: 2))
        XCTAssertEqual(x[0], Float(cos(1.0)), accuracy: 1e-7)
        XCTAssertEqual(x[1], Float(sin(1.0)), accuracy: 1e-7)
        XCTAssertEqual(x[3], Float(sin(0.01)), accuracy: 1e-7)
        print("rope: max abs diff \(worst)")
    }

    func testSwigluMatchesReference() {
        var rng = SeededRNG(seed: 13)
        var worst: Float = 0
        for count in [1, 15, 16, 17, 1000, 1536] {
            let g = randomBuffer(count, &rng, in: -20...20), u = randomBuffer(count, &rng, in: -3...3)
            if count > 4 { g[0] = -100; g[1] = 100; g[2] = 0; g[3] = -88.5 }
            let out = FloatBuffer(count: count), ref = FloatBuffer(count: count)
            Ops.swiglu(gate: g.pointer, up: u.pointer, out: out.pointer, count: count)
            Ops.swigluReference(gate: g.pointer, up: u.pointer, out: ref.pointer, count: count)
            for i in 0..<count {
                let e = abs(out[i] - ref[i]) / max(abs(ref[i]), 1e-6)
                worst = max(worst, e)
                XCTAssertLessThanOrEqual(e, 2e-6, "count=\(count) i=\(i) gate=\(g[i])")
            }
        }
        print("swiglu: max relative diff \(worst)")
    }

    func testAddMatchesReference() {
        var rng = SeededRNG(seed: 17)
        for count in [1, 16, 33, 576] {
            let a = randomBuffer(count, &rng), b = randomBuffer(count, &rng), ref = copy(a)
            Ops.add(a.pointer, b.pointer, count: count)
            Ops.addReference(ref.pointer, b.pointer, count: count)
            XCTAssertEqual(a.array, ref.array, "count=\(count)")
        }
    }

    func testLogSumExpAndArgmax() {
        var rng = SeededRNG(seed: 19)
        var worst: Float = 0
        for count in [1, 5, 16, 17, 1000, 49152] {
            let x = randomBuffer(count, &rng, in: -5...5)
            let fast = Ops.logSumExp(x.pointer, count: count), ref = Ops.logSumExpReference(x.pointer, count: count)
            worst = max(worst, abs(fast - ref))
            XCTAssertEqual(fast, ref, accuracy: 2e-6 * max(1, abs(ref)), "count=\(count)")
            XCTAssertEqual(Ops.argmax(x.pointer, count: count), Ops.argmaxReference(x.pointer, count: count))
            let top = count / 2
            x[top] = 1000
            XCTAssertEqual(Ops.argmax(x.pointer, count: count), top)
            XCTAssertEqual(Ops.logSumExp(x.pointer, count: count), 1000, accuracy: 1e-3)
            if count > 3 {
                x[1] = 1000
                XCTAssertEqual(Ops.argmax(x.pointer, count: count), 1, "ties resolve to the first index")
            }
        }
        print("logSumExp: max abs diff \(worst)")
    }
}
