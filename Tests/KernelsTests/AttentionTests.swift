import XCTest
import Kernels
import LoupeTestSupport

final class AttentionTests: XCTestCase {
    func testCausalMatchesReference() {
        var rng = SeededRNG(seed: 23)
        var worst: Float = 0
        let cases = [(1, 0, 9, 3, 64), (1, 37, 9, 3, 64), (13, 0, 9, 3, 64), (16, 5, 9, 3, 64), (17, 100, 9, 3, 64),
                     (255, 0, 9, 3, 64), (40, 3, 4, 4, 32), (5, 2, 2, 1, 16), (6, 1, 4, 2, 24), (33, 31, 6, 2, 48),
                     (3, 50, 9, 3, 64), (4, 200, 6, 2, 32), (2, 15, 9, 3, 64)]
        for (T, past, heads, kvHeads, dim) in cases {
            let ldq = heads * dim + 3, ldkv = kvHeads * dim + 5, ldo = heads * dim + 1
            let q = randomBuffer(T * ldq, &rng, in: -2...2)
            let k = randomBuffer((past + T) * ldkv, &rng, in: -2...2), v = randomBuffer((past + T) * ldkv, &rng)
            let out = randomBuffer(T * ldo, &rng), ref = copy(out)
            Attention.causal(q: q.pointer, ldq: ldq, keys: k.pointer, values: v.pointer, ldkv: ldkv, out: out.pointer, ldo: ldo,
                             queries: T, past: past, heads: heads, kvHeads: kvHeads, headDim: dim)
            Attention.causalReference(q: q.pointer, ldq: ldq, keys: k.pointer, values: v.pointer, ldkv: ldkv, out: ref.pointer,
                                      ldo: ldo, queries: T, past: past, heads: heads, kvHeads: kvHeads, headDim: dim)
            let (d, _) = maxDiff(out, ref)
            worst = max(worst, d)
            XCTAssertLessThanOrEqual(d, 1e-5, "T=\(T) past=\(past) heads=\(heads)/\(kvHeads) dim=\(dim)")
        }
        print("attention: max abs diff \(worst)")
    }

    func testFirstQueryCopiesFirstValue() {
        var rng = SeededRNG(seed: 29)
        let q = randomBuffer(2 * 64, &rng), k = randomBuffer(2 * 64, &rng), v = randomBuffer(2 * 64, &rng)
        let out = FloatBuffer(count: 2 * 64)
        Attention.causal(q: q.pointer, ldq: 64, keys: k.pointer, values: v.pointer, ldkv: 64, out: out.pointer, ldo: 64,
                         queries: 2, past: 0, heads: 1, kvHeads: 1, headDim: 64)
        for d in 0..<64 { XCTAssertEqual(out[d], v[d], accuracy: 1e-6, "position 0 sees only key 0") }
    }
}
