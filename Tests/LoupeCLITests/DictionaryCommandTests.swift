import Foundation
import LoupeTestSupport
import Transcoder
import XCTest

/// `loupe info --dictionary` and `build --dictionary`, run as a user runs them, on a tiny model whose
/// width (16) matches the fixtures that SAELens, numpy and circuit-tracer wrote
/// (Tests/TranscoderTests/Fixtures/dictionaries), and a tiny workspace built from a dictionary.
final class DictionaryCommandTests: XCTestCase {
    var directory: URL!
    var model: String { directory.appendingPathComponent("tiny16.gguf").path }

    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("TranscoderTests/Fixtures/dictionaries")

    func fixture(_ name: String) -> String { Self.fixtures.appendingPathComponent(name).path }

    override func setUpWithError() throws {
        guard LoupeBinary.exists else { throw XCTSkip("no loupe binary beside the tests") }
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-dict-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try TinyLlama(layers: 5, dim: 16, ffnDim: 32, heads: 2, kvHeads: 1, seed: 3).write(to: model)
    }

    override func tearDown() { try? FileManager.default.removeItem(at: directory) }

    func json(_ r: LoupeBinary.Result) throws -> [String: Any] {
        XCTAssertEqual(r.status, 0, r.stderr)
        return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], r.stdout)
    }

    func testInfoDescribesEachFormat() throws {
        let expected: [(String, String, String, String, Int)] = [
            ("saelens_skip_transcoder", "saelens", "transcoder", "relu", 3),
            ("saelens_topk", "saelens", "sae", "topk", 3),
            ("gemma-scope-tiny-transcoders/layer_3/width_64", "gemmascope", "transcoder", "jumprelu", 3),
            ("gemma-scope-tiny-res/layer_3/width_64", "gemmascope", "sae", "jumprelu", 3),
            ("gemma-scope-2-tiny/layer_3_transcoder", "gemmascope", "transcoder", "jumprelu", 3),
            ("circuit_tracer/layer_4.safetensors", "circuit-tracer", "transcoder", "relu", 4),
        ]
        for (path, format, kind, activation, layer) in expected {
            let j = try json(LoupeBinary.run(["info", "--dictionary", fixture(path), "--model", model, "--json"]))
            XCTAssertEqual(j["format"] as? String, format, path)
            XCTAssertEqual(j["kind"] as? String, kind, path)
            XCTAssertEqual(j["activation"] as? String, activation, path)
            XCTAssertEqual(j["layer"] as? Int, layer, path)
            XCTAssertEqual(j["d_in"] as? Int, 16, path)
            XCTAssertEqual(j["latents"] as? Int, 64, path)
            // Transcoders of an MLP and SAEs on the residual stream after a layer (hook_resid_post) both build.
            XCTAssertEqual(j["buildable"] as? Bool, true, path)
        }
        let text = try LoupeBinary.run(["info", "--dictionary", fixture("saelens_topk"), "--model", model])
        XCTAssertTrue(text.stdout.contains("activation  topk, k = 4"), text.stdout)
        XCTAssertTrue(text.stdout.contains("usable with `loupe build --dictionary` (an SAE on the residual stream after its layer)"), text.stdout)
    }

    func testInconsistentDictionariesAreOneLineErrors() throws {
        let other = directory.appendingPathComponent("tiny32.gguf").path
        try TinyLlama(layers: 2, dim: 32, ffnDim: 32, heads: 2, kvHeads: 1, seed: 3).write(to: other)
        let cases: [([String], String)] = [
            (["info", "--dictionary", fixture("saelens_standard"), "--model", other], "saelens_standard/cfg.json: d_in is 16, expected 32, the model's hidden size"),
            (["info", "--dictionary", fixture("circuit_tracer/layer_3.safetensors"), "--model", model, "--layer", "2"],
             "layer_3.safetensors: path is layer 3 (layers.3.mlp), expected layer 2 as --layer asks"),
            (["build", "--dictionary", try mlpOutputSAE(), "--model", model, "--workspace", directory.appendingPathComponent("w").path],
             "mlp_out_sae/cfg.json: architecture is an SAE on the MLP output (blocks.3.hook_mlp_out), expected a transcoder of an MLP or an SAE on the residual stream"),
            (["build", "--dictionary", fixture("saelens_topk"), "--site", "mlp", "--model", model, "--workspace", directory.appendingPathComponent("w").path],
             "--site mlp: \(fixture("saelens_topk"))/cfg.json holds an SAE (blocks.3.hook_resid_post); drop --site"),
            (["build", "--dictionary", directory.path, "--model", model], "not a dictionary Loupe knows"),
        ]
        for (args, message) in cases {
            let r = try LoupeBinary.run(args)
            XCTAssertEqual(r.status, 1, args.joined(separator: " "))
            let errors = r.stderr.split(separator: "\n").filter { $0.hasPrefix("loupe: error:") }
            XCTAssertEqual(errors.count, 1, r.stderr)
            XCTAssertTrue(errors.first?.contains(message) == true, "\(r.stderr)\nwanted: \(message)")
        }
    }

    /// SAELens's standard SAE fixture with its hook moved to the MLP output: a site Loupe does not build.
    func mlpOutputSAE() throws -> String {
        let dir = directory.appendingPathComponent("mlp_out_sae")
        try? FileManager.default.removeItem(at: dir)
        try FileManager.default.copyItem(at: URL(fileURLWithPath: fixture("saelens_standard")), to: dir)
        let cfg = dir.appendingPathComponent("cfg.json")
        let text = try String(contentsOf: cfg, encoding: .utf8).replacingOccurrences(of: "hook_resid_post", with: "hook_mlp_out")
        try text.write(to: cfg, atomically: true, encoding: .utf8)
        return dir.path
    }

    /// SAELens's TopK SAE on `blocks.3.hook_resid_post` (the fixture SAELens itself wrote) builds a
    /// residual workspace: site, kind and hookpoint recorded and printed, the SAE stored in sparsify's
    /// layout at `transcoder/layers.3/` with the codes SAELens computes, activations of the residual
    /// alone, and the evaluation run with the residual spliced.
    func testBuildFromASAELensResidualSAE() throws {
        let wide = directory.appendingPathComponent("tiny16-bytes.gguf").path
        try TinyLlama(layers: 5, dim: 16, ffnDim: 32, heads: 2, kvHeads: 1, contextLength: 1024, vocabulary: .bytes, seed: 3).write(to: wide)
        let corpus = directory.appendingPathComponent("corpus.txt").path
        try TinyWorkspace.writeCorpus(to: corpus, copies: 12)
        let ws = directory.appendingPathComponent("w").path
        let r = try LoupeBinary.run(["build", "--dictionary", fixture("saelens_topk"), "--model", wide, "--corpus", corpus, "--workspace", ws,
                                     "--tokens", "2048", "--eval-windows", "4", "--no-simulator"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("--dictionary: found a SAELens SAE (topk)"), r.stderr)
        XCTAssertTrue(r.stdout.contains("dictionary  SAE · residual stream after layer 3 (layers.3), 64 latents, k = 4"), r.stdout)
        let info = try json(LoupeBinary.run(["info", "--workspace", ws, "--json"]))
        XCTAssertEqual(info["kind"] as? String, "SAE")
        XCTAssertEqual(info["site"] as? String, "residual")
        XCTAssertEqual(info["hookpoint"] as? String, "layers.3")
        XCTAssertEqual(info["layer"] as? Int, 3)
        XCTAssertNotNil(info["fvu"] as? Double, "the build evaluated the SAE")
        XCTAssertNotNil(info["ce_mean_ablation"] as? Double)
        let saved = try Transcoder.load(directory: URL(fileURLWithPath: ws).appendingPathComponent("transcoder/layers.3").path)
        let (original, _) = try Dictionaries.load(fixture("saelens_topk"))
        var rng = SeededRNG(seed: 4)
        let x = (0..<16 * 5).map { _ in rng.normal() }
        XCTAssertEqual(saved.codes(x, rows: 5), original.codes(x, rows: 5), "the stored SAE encodes as SAELens's")
        let activations = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: ws).appendingPathComponent("activations/train.json"))) as? [String: Any]
        XCTAssertEqual(activations?["columns"] as? Int, 1)
    }

    /// A JumpReLU skip transcoder written in circuit-tracer's layout becomes the workspace's
    /// transcoder: the build says what it found, records the source, and the saved copy encodes as
    /// the original does.
    func testBuildFromACircuitTracerTranscoder() throws {
        let tiny = TinyWorkspace(directory: directory.appendingPathComponent("tw"))
        try FileManager.default.createDirectory(at: tiny.directory, withIntermediateDirectories: true)
        // A transcoder as wide as the tiny workspace's model (64), for its last layer (1), in circuit-tracer's layout.
        let cfg = TranscoderConfig(dIn: 64, numLatents: 128, k: 128, activation: "jumprelu", skipConnection: true, transcode: true)
        let t = Transcoder(config: cfg, seed: 5)
        for j in 0..<128 { t.encoderBias[j] = 0.05 * Float(j % 7); t.threshold![j] = 0.02 * Float(j % 5) }
        for i in 0..<(128 * 64) { t.decoderWeight[i] = 0.01 * Float((i * 37) % 11 - 5) }
        t.parametersDidChange()
        let dict = directory.appendingPathComponent("ct").path
        try Dictionaries.write(t, as: .circuitTracer, to: dict, layer: 1)
        try tiny.build(arguments: ["--dictionary", (dict as NSString).appendingPathComponent("layer_1.safetensors"), "--k", "16"])
        let log = try String(contentsOf: tiny.directory.appendingPathComponent("build.log"), encoding: .utf8)
        XCTAssertTrue(log.contains("--dictionary: found a circuit-tracer transcoder (JumpReLU)"), log)
        let info = try json(LoupeBinary.run(["info", "--workspace", tiny.workspace, "--json"]))
        XCTAssertEqual(info["layer"] as? Int, 1)
        XCTAssertEqual(info["latents"] as? Int, 128)
        XCTAssertEqual(info["k"] as? Int, 16)
        XCTAssertTrue((info["transcoder"] as? String)?.hasPrefix("circuit-tracer: ") == true, "\(info)")
        XCTAssertNotNil(info["fvu"], "the build evaluated the dictionary")
        let saved = try Transcoder.load(directory: URL(fileURLWithPath: tiny.workspace).appendingPathComponent("transcoder/layers.1.mlp").path)
        XCTAssertEqual(saved.config.activation, "jumprelu")
        XCTAssertEqual(saved.config.k, 16)
        XCTAssertEqual(saved.threshold?.array, t.threshold?.array)
        XCTAssertEqual(saved.encoderWeight.array, t.encoderWeight.array)
    }
}
