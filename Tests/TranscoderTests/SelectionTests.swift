import Foundation
import Kernels
import LoupeTestSupport
import XCTest
@testable import Transcoder

final class SelectionTests: XCTestCase {
    /// The vectorised ReLU + top-k against a full sort, on rows with ties, negatives and a ragged tail.
    func testTopKMatchesSort() {
        var rng = SeededRNG(seed: 9)
        for (n, k) in [(37, 5), (4608, 32), (100, 100), (64, 1)] {
            for _ in 0..<20 {
                let row = (0..<n).map { _ in Float(Int(rng.next() % 41) - 20) / 4 }
                let bias = (0..<n).map { _ in Float(Int(rng.next() % 3) - 1) / 4 }
                var p = row
                var ix = [Int32](repeating: -1, count: k), vx = [Float](repeating: -1, count: k)
                Select.reluTopK(&p, bias, n, k, &ix, &vx)
                let r = (0..<n).map { max(row[$0] + bias[$0], 0) }
                XCTAssertEqual(p, r)
                let want = (0..<n).sorted { r[$0] > r[$1] || (r[$0] == r[$1] && $0 < $1) }.prefix(k)
                XCTAssertEqual(ix.map(Int.init), Array(want), "n \(n) k \(k)")
                XCTAssertEqual(vx, want.map { r[$0] })
            }
        }
    }

    /// JumpReLU + top-k against the plain definition: ReLU(p + b)·[p + b > t], then a full sort.
    func testJumpReLUTopKMatchesDefinition() {
        var rng = SeededRNG(seed: 11)
        for (n, k) in [(37, 5), (300, 300), (64, 1)] {
            for _ in 0..<20 {
                let row = (0..<n).map { _ in Float(Int(rng.next() % 41) - 20) / 4 }
                let bias = (0..<n).map { _ in Float(Int(rng.next() % 3) - 1) / 4 }
                let theta = (0..<n).map { _ in Float(Int(rng.next() % 9)) / 4 }
                var p = row
                var ix = [Int32](repeating: -1, count: k), vx = [Float](repeating: -1, count: k)
                Select.jumpReLUTopK(&p, bias, theta, n, k, &ix, &vx)
                let r = (0..<n).map { j in row[j] + bias[j] > theta[j] ? max(row[j] + bias[j], 0) : 0 }
                XCTAssertEqual(p, r)
                let want = (0..<n).sorted { r[$0] > r[$1] || (r[$0] == r[$1] && $0 < $1) }.prefix(k)
                XCTAssertEqual(ix.map(Int.init), Array(want), "n \(n) k \(k)")
                XCTAssertEqual(vx, want.map { r[$0] })
            }
        }
    }

    func testGroupMaxTakesEachGroupsMaximum() {
        let p0: [Float] = [0.1, 0.5, -1, 0.2, 3, 0.3, 0.2, 0.4, 0.9]
        var p = p0
        var ix = [Int32](repeating: 0, count: 3), vx = [Float](repeating: 0, count: 3)
        Select.reluGroupMax(&p, nil, 9, 3, &ix, &vx)
        XCTAssertEqual(ix, [4, 8, 1])
        XCTAssertEqual(vx, [3, 0.9, 0.5])
    }

    /// Chunked encoding (rows > 256) agrees with the single-pass path that also returns pre-activations.
    func testEncodeChunksAgree() {
        var rng = SeededRNG(seed: 10)
        let t = Transcoder(config: TranscoderConfig(dIn: 24, numLatents: 96, k: 6), seed: 2)
        let rows = 600
        let x = normalBuffer(rows * 24, &rng)
        var i1 = [Int32](repeating: 0, count: rows * 6), v1 = [Float](repeating: 0, count: rows * 6)
        var i2 = i1, v2 = v1, pre = [Float](repeating: -1, count: rows * 96)
        t.encode(x.pointer, rows: rows, indices: &i1, values: &v1)
        t.encode(x.pointer, rows: rows, indices: &i2, values: &v2, preActivations: &pre)
        XCTAssertEqual(i1, i2)
        XCTAssertEqual(v1, v2)
        XCTAssertEqual(pre.min(), 0)
        XCTAssertEqual(v1[599 * 6], pre[(599 * 96)..<(600 * 96)].max())
    }
}
