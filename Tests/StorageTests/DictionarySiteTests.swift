import Foundation
import XCTest
@testable import Storage

/// The dictionary's site in `workspace.json` and the activation store's columns: written and read
/// back, and absent (files written before residual SAEs) read as an MLP transcoder with two columns.
final class DictionarySiteTests: XCTestCase {
    func testAManifestWithoutASiteIsAnMLPTranscoder() throws {
        let old = """
        {"format_version": 1, "model": "m.gguf", "layer": 15, "latents": 4608, "k": 32, "transcoder_source": "trained",
         "corpus_sources": ["c"], "train_tokens": 100, "held_out_tokens": 10, "window_length": 64, "steps": {},
         "evaluation": {"fvu": 0.2, "dead_fraction": 0.01, "ce_base": 4.4, "ce_transcoder": 4.5, "ce_zero_ablation": 4.6, "tokens": 64}}
        """
        let m = try JSONDecoder().decode(WorkspaceManifest.self, from: Data(old.utf8))
        XCTAssertEqual(m.site, .mlp)
        XCTAssertEqual(m.hookpoint, "layers.15.mlp")
        XCTAssertNil(m.evaluation?.ceMeanAblation)
        XCTAssertNil(m.evaluation?.lossRecoveredVsMean)
        XCTAssertEqual(try XCTUnwrap(m.evaluation).lossRecovered, 0.5, accuracy: 1e-9)

        var residual = m
        residual.site = .residual
        residual.evaluation?.ceMeanAblation = 4.7
        let back = try JSONDecoder().decode(WorkspaceManifest.self, from: JSONEncoder().encode(residual))
        XCTAssertEqual(back, residual)
        XCTAssertEqual(back.hookpoint, "layers.15")
        XCTAssertEqual(try XCTUnwrap(back.evaluation?.lossRecoveredVsMean), (4.7 - 4.5) / (4.7 - 4.4), accuracy: 1e-9)
        // A site Loupe does not know is an error, not an MLP.
        let unknown = old.replacingOccurrences(of: "\"k\": 32,", with: "\"k\": 32, \"site\": \"attention\",")
        XCTAssertThrowsError(try JSONDecoder().decode(WorkspaceManifest.self, from: Data(unknown.utf8)))
    }

    func testSitesNameTheirKindAndHookpoint() {
        XCTAssertEqual(DictionarySite.mlp.title(layer: 15), "transcoder · MLP of layer 15 (layers.15.mlp)")
        XCTAssertEqual(DictionarySite.residual.title(layer: 15), "SAE · residual stream after layer 15 (layers.15)")
        XCTAssertTrue(DictionarySite.residual.reconstructsInput && DictionarySite.residual.skipsFirstPosition)
        XCTAssertFalse(DictionarySite.mlp.reconstructsInput || DictionarySite.mlp.skipsFirstPosition)
    }

    func testAnActivationStoreWithoutColumnsHoldsTwo() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-columns-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let two = try ActivationStore(directory: dir, name: "old", layer: 1, dim: 4, windowLength: 2, windows: [0, 1])
        // Rewrite its manifest as the code before `columns` wrote it, and a shard of 2 windows × 2 rows × (4 + 4) fp16.
        var json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: two.manifestURL)) as? [String: Any])
        json["columns"] = nil
        try JSONSerialization.data(withJSONObject: json).write(to: two.manifestURL)
        let values = (0..<32).map { Float16(Float($0)) }
        try values.withUnsafeBytes { try Data($0).write(to: dir.appendingPathComponent(two.manifest.shards[0].file)) }
        let reopened = try ActivationStore(directory: dir, name: "old", layer: 1, dim: 4, windowLength: 2, windows: [0, 1])
        XCTAssertEqual(reopened.manifest.columns, 2)
        XCTAssertTrue(reopened.isComplete, "the old shard is kept")
        let (x, y) = try reopened.read(reopened.manifest.shards[0])
        XCTAssertEqual(x.array, [0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27])
        XCTAssertEqual(y.array, [4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31])

        // One column: the input alone, and the target is the same buffer.
        let one = try ActivationStore(directory: dir, name: "sae", layer: 1, dim: 4, windowLength: 2, windows: [0, 1], columns: 1)
        try values[0..<16].withUnsafeBytes { try Data($0).write(to: dir.appendingPathComponent(one.manifest.shards[0].file)) }
        XCTAssertTrue(one.isComplete)
        let (x1, y1) = try one.read(one.manifest.shards[0])
        XCTAssertEqual(x1.array, (0..<16).map(Float.init))
        XCTAssertTrue(x1 === y1)
    }
}
