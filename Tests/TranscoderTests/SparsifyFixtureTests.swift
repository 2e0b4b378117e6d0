import Foundation
import Formats
import Kernels
import XCTest
@testable import Transcoder

/// Loupe against a checkpoint written the way sparsify writes one, and outputs computed with
/// sparsify's forward (Tests/Scripts/fixtures/make_sparsify_fixture.py).
final class SparsifyFixtureTests: XCTestCase {
    func fixture(_ name: String) throws -> String {
        let dir = try XCTUnwrap(Bundle.module.resourcePath)
        return ((dir as NSString).appendingPathComponent("Fixtures") as NSString).appendingPathComponent(name)
    }

    func testConfigFieldsAreSparsifys() throws {
        let cfg = try TranscoderConfig.read(path: fixture("sparsify_tc/cfg.json"))
        XCTAssertEqual(cfg, TranscoderConfig(dIn: 16, numLatents: 64, expansionFactor: 32, k: 4, activation: "topk",
                                             normalizeDecoder: true, multiTopK: false, skipConnection: true, transcode: true))
        XCTAssertEqual(cfg.latents, 64)
    }

    func testOutputsMatchSparsifyReference() throws {
        let t = try Transcoder.load(directory: fixture("sparsify_tc"))
        let io = try SafetensorsFile(path: fixture("sparsify_io.safetensors"))
        let x = try io.floats("x", shape: [32, 16])
        let pre = try io.floats("pre_acts", shape: [32, 64])
        let acts = try io.floats("top_acts", shape: [32, 4])
        let out = try io.floats("sae_out", shape: [32, 16])
        let idxInfo = try XCTUnwrap(io.tensors["top_indices"])
        XCTAssertEqual(idxInfo.dtype, .i64)
        let idx = io.data(of: idxInfo).withMemoryRebound(to: Int64.self) { Array($0) }
        XCTAssertNotNil(t.skipWeight)

        var ix = [Int32](repeating: -1, count: 32 * 4), vx = [Float](repeating: 0, count: 32 * 4)
        var p = [Float](repeating: 0, count: 32 * 64), y = [Float](repeating: 0, count: 32 * 16)
        t.encode(x, rows: 32, indices: &ix, values: &vx, preActivations: &p)
        XCTAssertEqual(ix.map(Int64.init), idx)
        for i in 0..<vx.count { XCTAssertEqual(vx[i], acts[i], accuracy: 1e-5, "top_acts[\(i)]") }
        for i in 0..<p.count { XCTAssertEqual(p[i], pre[i], accuracy: 1e-5, "pre_acts[\(i)]") }
        t.forward(x, rows: 32, into: &y)
        for i in 0..<y.count { XCTAssertEqual(y[i], out[i], accuracy: 1e-5, "sae_out[\(i)]") }
        XCTAssertGreaterThan(out.map(abs).max()!, 1, "fixture outputs are not trivially small")
    }
}
