import Foundation
import Formats
import LoupeTestSupport
import Model
import Transcoder
import XCTest
@testable import Engine
import EngineAPI
@testable import Storage

/// The context lab's analysis: a tiny random model and transcoder written by the test (codes equal
/// encoding the MLP input captured by a separate full forward pass), and the demo workspace if it is
/// built (the analysis of a corpus window reproduces the activations the latent cache stored).
final class ContextAnalysisTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-context-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    /// 48 letters plus "ab" and "abc" (merges "a b", "ab c"), as a byte-level BPE vocabulary.
    static let vocabulary = ToyVocabulary.letters.tokens

    /// A random 3-layer Llama of 50 tokens with a tokenizer, as a GGUF file.
    func writeTinyModel() throws -> String {
        let path = dir.appendingPathComponent("tiny.gguf").path
        try TinyLlama(layers: 3, dim: 32, ffnDim: 48, contextLength: 64, seed: 11).write(to: path)
        return path
    }

    /// A workspace with a random transcoder (96 latents, k 6) on layer 1.
    func writeWorkspace() throws -> Workspace {
        let ws = Workspace(directory: dir.appendingPathComponent("workspace"))
        try ws.save(WorkspaceManifest(model: "tiny", layer: 1, latents: 96, k: 6, transcoderSource: "trained", corpusSources: [],
                                      trainTokens: 0, heldOutTokens: 0, windowLength: 16))
        let tc = Transcoder(config: TranscoderConfig(dIn: 32, numLatents: 96, k: 6, skipConnection: true, transcode: true), seed: 5)
        try tc.save(directory: ws.transcoderDirectory(layer: 1, site: .mlp).path)
        return ws
    }

    /// The reference: a separate forward pass through every layer with the logits, capturing the
    /// layer's MLP input, then the transcoder's encode on those rows.
    func referenceCodes(_ model: LlamaModel, _ tc: Transcoder, layer: Int, tokens: [Int]) throws -> [[LatentActivation]] {
        let d = model.config.dim, k = tc.config.k
        var x = [Float](repeating: 0, count: tokens.count * d)
        var hook = LayerHook()
        hook.mlpInput = { v in
            for t in 0..<v.rows { for i in 0..<d { x[(v.firstPosition + t) * d + i] = v.row(t)[i] } }
        }
        try model.forward(tokens, cache: model.makeCache(), logits: .all, hooks: ForwardHooks(layers: [layer: hook])) { _, _, _ in }
        var idx = [Int32](repeating: 0, count: tokens.count * k), val = [Float](repeating: 0, count: tokens.count * k)
        tc.encode(x, rows: tokens.count, indices: &idx, values: &val)
        return (0..<tokens.count).map { t in
            (0..<k).filter { val[t * k + $0] > 0 }.map { LatentActivation(latent: Int(idx[t * k + $0]), value: val[t * k + $0]) }
        }
    }

    /// The largest difference between two codings' activations of any latent at any token.
    func codeDifference(_ a: [[LatentActivation]], _ b: [[LatentActivation]]) -> Float {
        guard a.count == b.count else { return .infinity }
        var worst: Float = 0
        for (x, y) in zip(a, b) {
            for latent in Set(x.map(\.latent) + y.map(\.latent)) {
                let u = x.first { $0.latent == latent }?.value ?? 0, v = y.first { $0.latent == latent }?.value ?? 0
                worst = max(worst, abs(u - v))
            }
        }
        return worst
    }

    func testCodesEqualAFullForwardWithHooks() throws {
        let session = try Session(modelPath: try writeTinyModel())
        let ws = try writeWorkspace()
        let analyzer = try ContextAnalyzer(session: session, workspace: ws)
        XCTAssertEqual(analyzer.layer, 1)
        // Longer than one chunk of the model's batch (256) needs a longer context; use a small batch instead.
        let small = try ContextAnalyzer(model: LlamaModel(gguf: GGUFFile(path: session.path), batch: 7), tokenizer: session.tokenizer,
                                        transcoder: analyzer.transcoder, layer: 1)
        let text = "abcabd the quick brown fox JUMPS over abc"
        let a = try analyzer.analyze(text)
        XCTAssertEqual(a.tokens, session.tokenizer.encode(text))
        XCTAssertEqual(a.tokens.first, Self.vocabulary.firstIndex(of: "abc"), "merged, and no BOS")
        XCTAssertEqual(a.tokenTexts, a.tokens.map(session.tokenizer.display))
        XCTAssertFalse(a.truncated)
        let reference = try referenceCodes(session.model, analyzer.transcoder, layer: 1, tokens: a.tokens)
        XCTAssertEqual(a.codes, reference)
        let chunked = try small.analyze(text)
        XCTAssertEqual(chunked.tokens, a.tokens)
        XCTAssertLessThan(codeDifference(chunked.codes, a.codes), 1e-4, "chunked forward (7 tokens a chunk) gives the same codes")
        for row in a.codes {
            XCTAssertEqual(row.map(\.value), row.map(\.value).sorted(by: >))
            XCTAssertFalse(row.isEmpty)
        }
        // activations(of:) reads the codes back per token.
        let latent = a.codes[3][0].latent
        let acts = a.activations(of: latent)
        XCTAssertEqual(acts.count, a.tokens.count)
        XCTAssertEqual(acts[3], a.codes[3][0].value)
        for (t, row) in a.codes.enumerated() { XCTAssertEqual(acts[t], row.first { $0.latent == latent }?.value ?? 0) }
    }

    func testEmptyTruncatedAndBadInput() throws {
        let session = try Session(modelPath: try writeTinyModel())
        let analyzer = try ContextAnalyzer(session: session, workspace: try writeWorkspace())
        XCTAssertEqual(try analyzer.analyze(""), .empty)
        let text = String(repeating: "hello world ", count: 20)
        let cut = try analyzer.analyze(text, maxTokens: 10)
        XCTAssertTrue(cut.truncated)
        XCTAssertEqual(cut.tokens, Array(session.tokenizer.encode(text).prefix(10)))
        XCTAssertEqual(cut.codes.count, 10)
        // Causal: the first ten tokens analysed alone give the same codes as in the longer text.
        XCTAssertEqual(try analyzer.analyze(tokens: Array(session.tokenizer.encode(text).prefix(40)), maxTokens: 40).codes.prefix(10),
                       cut.codes.prefix(10))
        // More than the model's context (64) is cut to it.
        let long = try analyzer.analyze(text + text, maxTokens: 1024)
        XCTAssertTrue(long.truncated)
        XCTAssertEqual(long.tokens.count, 64)
        XCTAssertThrowsError(try analyzer.analyze(tokens: [1, 2, 99]))

        let other = Workspace(directory: dir.appendingPathComponent("empty"))
        try other.save(WorkspaceManifest(model: "tiny", layer: 1, latents: 96, k: 6, transcoderSource: "trained", corpusSources: [],
                                         trainTokens: 0, heldOutTokens: 0, windowLength: 16))
        XCTAssertThrowsError(try ContextAnalyzer(session: session, workspace: other)) { XCTAssertTrue("\($0)".contains("no transcoder"), "\($0)") }
        let wide = Transcoder(config: TranscoderConfig(dIn: 48, numLatents: 96, k: 6), seed: 1)
        XCTAssertThrowsError(try ContextAnalyzer(model: session.model, tokenizer: session.tokenizer, transcoder: wide, layer: 1))
        XCTAssertThrowsError(try ContextAnalyzer(model: session.model, tokenizer: session.tokenizer, transcoder: wide, layer: 3))
    }

    /// On the demo workspace: a latent's top window, analysed from its corpus window, fires where the
    /// cache says, as strongly (within fp16 storage of the activations and codes).
    func testDemoWorkspaceReproducesTheLatentCache() throws {
        let ws = Workspace.defaultDirectory
        let workspace = Workspace(directory: ws)
        guard FileManager.default.fileExists(atPath: ModelFetch.defaultPath.path),
              FileManager.default.fileExists(atPath: ws.appendingPathComponent("cache/cache.json").path) else {
            throw XCTSkip("no demo model and workspace")
        }
        let session = try Session(modelPath: ModelFetch.defaultPath.path)
        let analyzer = try ContextAnalyzer(session: session, workspace: workspace)
        let cache = try LatentCache(directory: workspace.cacheDirectory)
        let corpus = try Corpus.load(from: workspace.corpusDirectory).0
        var worst: Float = 0
        for latent in [0, 1000, 2345, 4000] {
            let r = try cache.record(latent)
            guard let w = r.windows.first(where: { $0.kind == 0 }) else { continue }
            let tokens = corpus.window(w.corpusWindow)
            XCTAssertEqual(Array(tokens[w.start..<w.start + w.tokens.count]), w.tokens)
            let a = try analyzer.analyze(tokens: tokens)
            let acts = Array(a.activations(of: latent)[w.start..<w.start + w.tokens.count])
            XCTAssertGreaterThan(acts[w.focus], 0)
            let diff = zip(acts, w.activations).map { abs($0 - $1) }.max()! / max(r.max, 1e-6)
            worst = max(worst, diff)
            XCTAssertLessThan(diff, 0.05, "latent \(latent): \(acts) vs cached \(w.activations)")
            // And the codes equal a separate full forward with hooks on the same tokens.
            XCTAssertEqual(a.codes, try referenceCodes(session.model, analyzer.transcoder, layer: analyzer.layer, tokens: tokens))
        }
        print(String(format: "context analysis vs latent cache, 4 top windows: max |difference| %.4f of the latent's max", worst))
    }
}
