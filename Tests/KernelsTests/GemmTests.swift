import XCTest
import Kernels
import LoupeTestSupport

final class GemmTests: XCTestCase {
    /// Runs packed matmul and the reference on the same random data; returns (max diff, tolerance).
    private func compare(m: Int, n: Int, k: Int, ldx: Int, ldy: Int, accumulate: Bool, kernel: GemmKernel = .native,
                         _ rng: inout SeededRNG) -> (Float, Float) {
        let x = randomBuffer(max(1, m * ldx), &rng), w = randomBuffer(n * k, &rng)
        let y = randomBuffer(max(1, m * ldy), &rng), yRef = copy(y)
        let packed = PackedMatrix(rowMajor: w.pointer, rows: n, cols: k)
        Gemm.matmul(x: x.pointer, ldx: ldx, m: m, w: packed, y: y.pointer, ldy: ldy, accumulate: accumulate, kernel: kernel)
        Gemm.matmulReference(x: x.pointer, ldx: ldx, m: m, w: w.pointer, n: n, k: k, y: yRef.pointer, ldy: ldy,
                             accumulate: accumulate)
        let (d, mag) = maxDiff(y, yRef)
        return (d, 1e-5 * Float(k).squareRoot() * max(1, mag))
    }

    /// Every register tile (each is plain Swift SIMD, so this machine runs all of them; `native`
    /// is the one its build uses) against the reference.
    func testMatmulMatchesReferenceOverAwkwardShapes() {
        print("Gemm: compiled for \(InstructionSet.summary)")
        for kernel in GemmKernel.allCases {
            var rng = SeededRNG(seed: 42)
            var worst: Float = 0
            for m in [1, 2, 5, 6, 13, 255] {
                for n in [1, 15, 17, 31, 33, 192, 577] {
                    for k in [1, 7, 64, 576] {
                        let padded = (m + n + k) % 3 == 0
                        let (d, tol) = compare(m: m, n: n, k: k, ldx: k + (padded ? 5 : 0), ldy: n + (padded ? 3 : 0),
                                               accumulate: false, kernel: kernel, &rng)
                        worst = max(worst, d)
                        XCTAssertLessThanOrEqual(d, tol, "\(kernel) m=\(m) n=\(n) k=\(k)")
                    }
                }
            }
            print("Gemm \(kernel) awkward shapes: max abs diff \(worst)")
        }
    }

    func testMatmulAcrossBlocksAndThreadSplits() {
        var rng = SeededRNG(seed: 7)
        var worst: Float = 0
        for (m, n, k) in [(300, 100, 1000), (17, 96, 1536), (256, 192, 576), (520, 49, 300), (8, 2000, 64), (9, 48, 577)] {
            for threads in [1, 2, 3] {
                Parallel.threads = threads
                for kernel in GemmKernel.allCases {
                    let (d, tol) = compare(m: m, n: n, k: k, ldx: k, ldy: n, accumulate: false, kernel: kernel, &rng)
                    worst = max(worst, d)
                    XCTAssertLessThanOrEqual(d, tol, "\(kernel) m=\(m) n=\(n) k=\(k) threads=\(threads)")
                }
            }
        }
        Parallel.threads = ProcessInfo.processInfo.activeProcessorCount
        print("Gemm blocked shapes: max abs diff \(worst)")
    }

    func testAccumulateAddsToExistingOutput() {
        var rng = SeededRNG(seed: 3)
        for (m, n, k) in [(1, 577, 64), (13, 33, 576), (64, 96, 130)] {
            for kernel in GemmKernel.allCases {
                let (d, tol) = compare(m: m, n: n, k: k, ldx: k, ldy: n, accumulate: true, kernel: kernel, &rng)
                XCTAssertLessThanOrEqual(d, tol, "\(kernel) accumulate m=\(m) n=\(n) k=\(k)")
            }
            let x = randomBuffer(m * k, &rng), w = randomBuffer(n * k, &rng)
            let packed = PackedMatrix(rowMajor: w.pointer, rows: n, cols: k)
            let base = randomBuffer(m * n, &rng), sum = copy(base), product = FloatBuffer(count: m * n)
            Gemm.matmul(x: x.pointer, ldx: k, m: m, w: packed, y: sum.pointer, ldy: n, accumulate: true)
            Gemm.matmul(x: x.pointer, ldx: k, m: m, w: packed, y: product.pointer, ldy: n)
            for i in 0..<m * n { product[i] += base[i] }
            let (d2, _) = maxDiff(sum, product)
            print("Gemm accumulate m=\(m) n=\(n) k=\(k): max abs diff \(d2) vs y + x·Wᵀ")
            XCTAssertLessThanOrEqual(d2, 1e-5, "accumulate must add x·Wᵀ to y")
        }
    }

    func testPackedCopyRowRoundTrips() {
        var rng = SeededRNG(seed: 11)
        let n = 100, k = 37
        let w = randomBuffer(n * k, &rng)
        let packed = PackedMatrix(rowMajor: w.pointer, rows: n, cols: k)
        let row = FloatBuffer(count: k)
        for r in [0, 1, 47, 48, 99] {
            packed.copyRow(r, into: row.pointer)
            for c in 0..<k { XCTAssertEqual(row[c], w[r * k + c], "row \(r) col \(c)") }
        }
    }

    func testFloatBufferIsAlignedAndZeroed() {
        for count in [0, 1, 17, 1000] {
            let b = FloatBuffer(count: count)
            XCTAssertEqual(Int(bitPattern: b.pointer) % 64, 0)
            XCTAssertEqual(b.array, [Float](repeating: 0, count: count))
        }
    }

    func testParallelForEachVisitsEveryIndexOnce() {
        for threads in [1, 2, 5] {
            Parallel.threads = threads
            for count in [0, 1, 2, 7, 100] {
                let hits = FloatBuffer(count: max(count, 1))
                Parallel.forEach(count) { i in hits.pointer[i] += 1 }
                XCTAssertEqual(Array(hits.array.prefix(count)), [Float](repeating: 1, count: count))
            }
        }
        Parallel.threads = ProcessInfo.processInfo.activeProcessorCount
    }

    /// The pool's jobs back to back (helpers spinning), after a pause long enough for them to park,
    /// nested inside a body (run on the caller) and from two threads at once (one gets the pool, the
    /// other runs its items itself): every index exactly once, every time.
    func testParallelForEachNestedConcurrentAndAfterParking() {
        Parallel.threads = 2
        defer { Parallel.threads = ProcessInfo.processInfo.activeProcessorCount }
        @Sendable func check(_ count: Int, inner: Int = 0) -> Bool {
            let hits = FloatBuffer(count: max(count * max(inner, 1), 1))
            Parallel.forEach(count) { i in
                if inner == 0 { hits.pointer[i] += 1; return }
                Parallel.forEach(inner) { j in hits.pointer[i * inner + j] += 1 }
            }
            return hits.array.prefix(count * max(inner, 1)).allSatisfy { $0 == 1 }
        }
        for round in 0..<2000 { XCTAssertTrue(check(1 + round % 9), "round \(round)") }
        usleep(5_000)  // past WorkerPool.spinNanoseconds: the helpers park
        XCTAssertTrue(check(64))
        XCTAssertTrue(check(8, inner: 16))
        let results = Slots<Bool>(count: 2)
        DispatchQueue.concurrentPerform(iterations: 2) { t in
            var ok = true
            for round in 0..<500 { ok = ok && check(3 + (round + t) % 11) }
            results.set(t, ok)
        }
        XCTAssertEqual(results.values, [true, true])
    }
}
