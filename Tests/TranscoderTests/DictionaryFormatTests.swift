import Foundation
import Formats
import Kernels
import XCTest
@testable import Transcoder

/// Dictionaries written by SAELens, numpy (Gemma Scope's layout) and circuit-tracer, and the codes each
/// library computed (Tests/Scripts/fixtures/make_dictionary_fixtures.py): Loupe's codes and outputs
/// equal the library's, and what Loupe writes reads back the same.
final class DictionaryFormatTests: XCTestCase {
    /// (golden name, path under Fixtures/dictionaries, format, kind, activation, layer, skip)
    static let cases: [(name: String, path: String, format: DictionaryFormat, kind: DictionaryDescription.Kind,
                        activation: String, layer: Int, skip: Bool)] = [
        ("saelens_standard", "saelens_standard", .saeLens, .sae, "relu", 3, false),
        ("saelens_topk", "saelens_topk", .saeLens, .sae, "topk", 3, false),
        ("saelens_jumprelu", "saelens_jumprelu", .saeLens, .sae, "jumprelu", 3, false),
        ("saelens_skip_transcoder", "saelens_skip_transcoder", .saeLens, .transcoder, "relu", 3, true),
        ("saelens_jumprelu_transcoder", "saelens_jumprelu_transcoder", .saeLens, .transcoder, "jumprelu", 3, false),
        ("gemmascope_res", "gemma-scope-tiny-res/layer_3/width_64", .gemmaScope, .sae, "jumprelu", 3, false),
        ("gemmascope_transcoder", "gemma-scope-tiny-transcoders/layer_3/width_64/params.npz", .gemmaScope, .transcoder, "jumprelu", 3, false),
        ("gemmascope2_transcoder", "gemma-scope-2-tiny/layer_3_transcoder", .gemmaScope, .transcoder, "jumprelu", 3, true),
        ("circuit_tracer_3", "circuit_tracer/layer_3.safetensors", .circuitTracer, .transcoder, "jumprelu", 3, true),
        ("circuit_tracer_4", "circuit_tracer/layer_4.safetensors", .circuitTracer, .transcoder, "relu", 4, false),
    ]

    func fixture(_ name: String) throws -> String {
        let dir = try XCTUnwrap(Bundle.module.resourcePath)
        return (dir as NSString).appendingPathComponent("Fixtures/dictionaries/\(name)")
    }

    func golden() throws -> (x: [Float], rows: Int, io: SafetensorsFile) {
        let io = try SafetensorsFile(path: fixture("dictionary_io.safetensors"))
        let rows = try XCTUnwrap(io.tensors["x"]).shape[0]
        return (try io.floats("x", shape: [rows, 16]), rows, io)
    }

    /// Loupe's codes and outputs against the library's, within 1e-5, for `t`.
    func assertMatches(_ t: Transcoder, _ name: String, _ g: (x: [Float], rows: Int, io: SafetensorsFile),
                       file: StaticString = #filePath, line: UInt = #line) throws {
        let codes = try g.io.floats("codes_\(name)", shape: [g.rows, t.m])
        let out = try g.io.floats("out_\(name)", shape: [g.rows, t.d])
        let z = t.codes(g.x, rows: g.rows)
        var y = [Float](repeating: 0, count: g.rows * t.d)
        t.forward(g.x, rows: g.rows, into: &y)
        let dz = zip(z, codes).map { abs($0 - $1) }.max()!, dy = zip(y, out).map { abs($0 - $1) }.max()!
        print("\(name): max |codes − library| \(dz), max |out − library| \(dy)")
        XCTAssertLessThan(dz, 1e-5, "\(name) codes", file: file, line: line)
        XCTAssertLessThan(dy, 1e-5, "\(name) outputs", file: file, line: line)
        XCTAssertEqual(zip(z, codes).filter { ($0 != 0) != ($1 != 0) }.count, 0, "\(name): the same latents fire", file: file, line: line)
        XCTAssertGreaterThan(codes.filter { $0 != 0 }.count, g.rows, "\(name): fixture codes are not trivially sparse", file: file, line: line)
    }

    func testEachLibrarysCodesWithin1e5() throws {
        let g = try golden()
        for c in Self.cases {
            let (t, d) = try Dictionaries.load(fixture(c.path))
            XCTAssertEqual(d.format, c.format, c.name)
            XCTAssertEqual(d.kind, c.kind, c.name)
            XCTAssertEqual(d.activation, c.activation, c.name)
            XCTAssertEqual(d.layer, c.layer, c.name)
            XCTAssertEqual(d.skipConnection, c.skip, c.name)
            XCTAssertEqual([d.dIn, d.latents], [16, 64], c.name)
            XCTAssertEqual(t.config.transcode, c.kind == .transcoder, c.name)
            try assertMatches(t, c.name, g)
        }
    }

    /// sparsify's folder (the existing fixture) is detected and loads as `Transcoder.load` does.
    func testSparsifyFolderThroughDictionaries() throws {
        let dir = try XCTUnwrap(Bundle.module.resourcePath) + "/Fixtures/sparsify_tc"
        XCTAssertEqual(try Dictionaries.detect(dir), .sparsify)
        let (t, d) = try Dictionaries.load(dir)
        XCTAssertEqual([d.dIn, d.latents, d.k], [16, 64, 4])
        XCTAssertEqual(d.kind, .transcoder)
        XCTAssertTrue(d.skipConnection)
        XCTAssertEqual(t.encoderWeight.array, try Transcoder.load(directory: dir).encoderWeight.array)
    }

    func testDescriptionsNameHookpointAndSite() throws {
        let s = try Dictionaries.describe(fixture("saelens_topk"))
        XCTAssertEqual(s.k, 4)
        XCTAssertEqual(s.site, .residual)
        XCTAssertEqual(s.hookpoint, "blocks.3.hook_resid_post")
        let t = try Dictionaries.describe(fixture("saelens_skip_transcoder"))
        XCTAssertEqual(t.hookpoint, "blocks.3.ln2.hook_normalized → blocks.3.hook_mlp_out")
        XCTAssertEqual(t.architecture, "skip_transcoder")
        let g2 = try Dictionaries.describe(fixture("gemma-scope-2-tiny/layer_3_transcoder"))
        XCTAssertEqual(g2.hookpoint, "model.layers.3.pre_feedforward_layernorm.output → model.layers.3.post_feedforward_layernorm.output")
        XCTAssertTrue(s.summary.contains("SAELens SAE (topk): topk k=4, 64 latents, d_in 16"), s.summary)
    }

    /// A ReLU/JumpReLU dictionary loaded with `keep` keeps that many latents per token, the largest.
    func testKeepCapsActiveLatents() throws {
        let g = try golden()
        let (t, _) = try Dictionaries.load(fixture("circuit_tracer/layer_4.safetensors"), keep: 8)
        XCTAssertEqual(t.config.k, 8)
        let full = try g.io.floats("codes_circuit_tracer_4", shape: [g.rows, 64])
        let z = t.codes(g.x, rows: g.rows)
        for r in 0..<g.rows {
            let want = full[(r * 64)..<((r + 1) * 64)].sorted(by: >).prefix(8)
            XCTAssertEqual(z[(r * 64)..<((r + 1) * 64)].filter { $0 != 0 }.sorted(by: >), Array(want))
        }
    }

    /// Every dictionary written back in its own format by Loupe reads back with the same codes; with
    /// LOUPE_DICT_EXPORT_DIR set the exports stay there for the fixture script's --check-exports.
    func testExportsForTheLibraries() throws {
        let g = try golden()
        let keepDir = ProcessInfo.processInfo.environment["LOUPE_DICT_EXPORT_DIR"]
        let root = keepDir ?? temporaryPath("dict-export")
        defer { if keepDir == nil { try? FileManager.default.removeItem(atPath: root) } }
        for c in Self.cases {
            let (t, _) = try Dictionaries.load(fixture(c.path))
            // Gemma Scope's npz files carry no site: the folder names it, as the releases' do.
            let folder = (root as NSString).appendingPathComponent(c.name)
            let target = c.name == "gemmascope_res" ? ((root as NSString).appendingPathComponent("gemma-scope-loupe-res/layer_3") as String)
                : c.name == "gemmascope_transcoder" ? ((root as NSString).appendingPathComponent("gemma-scope-loupe-transcoders/layer_3") as String) : folder
            try Dictionaries.write(t, as: c.format, to: target, layer: c.layer)
            if target != folder { try FileManager.default.createSymbolicLink(atPath: folder, withDestinationPath: target) }
            let back = c.format == .circuitTracer ? (target as NSString).appendingPathComponent("layer_\(c.layer).safetensors") : target
            let (u, d) = try Dictionaries.load(back)
            XCTAssertEqual(d.format, c.format, c.name)
            XCTAssertEqual(d.kind, c.kind, c.name)
            XCTAssertEqual(d.layer, c.layer, c.name)
            try assertMatches(u, c.name, g)
        }
    }

    func testFormatsThatCannotHoldADictionarySaySo() throws {
        let topkTranscoder = Transcoder(config: TranscoderConfig(dIn: 16, numLatents: 64, k: 4, skipConnection: true), seed: 1)
        for f in [DictionaryFormat.saeLens, .gemmaScope, .circuitTracer] {
            XCTAssertThrowsError(try Dictionaries.write(topkTranscoder, as: f, to: temporaryPath("x"), layer: 3)) { e in
                XCTAssertTrue("\(e)".contains("topk"), "\(e)")
            }
        }
    }

    func testMismatchesAreOneLineNamingFileAndField() throws {
        let sae = try Dictionaries.describe(fixture("saelens_standard"))
        XCTAssertThrowsError(try sae.check(modelWidth: 576, layers: 30, buildable: true, layer: nil)) { e in
            XCTAssertEqual("\(e)", "\(sae.configFile): d_in is 16, expected 576, the model's hidden size")
        }
        // An SAE on the residual stream after its layer (hook_resid_post) is buildable; one at another site is not.
        XCTAssertTrue(sae.buildable, sae.hookpoint)
        XCTAssertNoThrow(try sae.check(modelWidth: 16, layers: 30, buildable: true, layer: 3))
        var pre = sae
        pre.hookpoint = "blocks.3.hook_resid_pre"
        XCTAssertFalse(pre.buildable)
        var mlpOut = sae
        (mlpOut.site, mlpOut.hookpoint) = (.mlpOutput, "blocks.3.hook_mlp_out")
        XCTAssertThrowsError(try mlpOut.check(modelWidth: 16, layers: 30, buildable: true, layer: nil)) { e in
            XCTAssertTrue("\(e)".hasPrefix("\(sae.configFile): architecture is an SAE on the MLP output (blocks.3.hook_mlp_out), expected a transcoder of an MLP or an SAE on the residual stream"), "\(e)")
            XCTAssertFalse("\(e)".contains("\n"))
        }
        let tc = try Dictionaries.describe(fixture("circuit_tracer/layer_4.safetensors"))
        XCTAssertNoThrow(try tc.check(modelWidth: 16, layers: 30, buildable: true, layer: 4))
        XCTAssertThrowsError(try tc.check(modelWidth: 16, layers: 30, buildable: true, layer: 15)) { e in
            XCTAssertTrue("\(e)".contains("layer_4.safetensors: path is layer 4"), "\(e)")
        }
        XCTAssertThrowsError(try tc.check(modelWidth: 16, layers: 4, buildable: false, layer: nil)) { e in
            XCTAssertTrue("\(e)".contains("layer is 4, expected 0…3"), "\(e)")
        }
        for e in [try? mlpOut.check(modelWidth: 1, layers: 1, buildable: false, layer: nil)] { XCTAssertNil(e) }
    }

    func testUnknownAndBrokenDictionaries() throws {
        let dir = temporaryPath("dict-bad")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        XCTAssertThrowsError(try Dictionaries.detect(dir)) { e in XCTAssertTrue("\(e)".contains("not a dictionary Loupe knows"), "\(e)") }
        XCTAssertThrowsError(try Dictionaries.detect(fixture("circuit_tracer"))) { e in
            XCTAssertTrue("\(e)".contains("circuit-tracer's 2 per-layer files; give one of them, e.g. ") && "\(e)".hasSuffix("layer_3.safetensors)"), "\(e)")
        }
        XCTAssertThrowsError(try Dictionaries.detect(fixture(""))) { e in
            XCTAssertTrue("\(e)".contains("a folder of 5 dictionaries; give one of them"), "\(e)")
        }
        // An SAELens config with an architecture Loupe does not read, and one that normalises at run time.
        let sl = (dir as NSString).appendingPathComponent("sl")
        try FileManager.default.copyItem(atPath: fixture("saelens_standard"), toPath: sl)
        let cfgPath = (sl as NSString).appendingPathComponent("cfg.json")
        var cfg = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: cfgPath))) as? [String: Any])
        cfg["architecture"] = "gated"
        try JSONSerialization.data(withJSONObject: cfg).write(to: URL(fileURLWithPath: cfgPath))
        XCTAssertThrowsError(try Dictionaries.describe(sl)) { e in XCTAssertTrue("\(e)".hasPrefix("\(cfgPath): architecture: 'gated'"), "\(e)") }
        cfg["architecture"] = "standard"
        cfg["normalize_activations"] = "layer_norm"
        try JSONSerialization.data(withJSONObject: cfg).write(to: URL(fileURLWithPath: cfgPath))
        XCTAssertThrowsError(try Dictionaries.describe(sl)) { e in XCTAssertTrue("\(e)".contains("normalize_activations: 'layer_norm'"), "\(e)") }
        // A wrong d_sae: the tensor's shape is named.
        cfg["normalize_activations"] = "none"
        cfg["d_sae"] = 65
        try JSONSerialization.data(withJSONObject: cfg).write(to: URL(fileURLWithPath: cfgPath))
        XCTAssertThrowsError(try Dictionaries.load(sl)) { e in XCTAssertTrue("\(e)".contains("tensor 'W_enc' has shape [16, 64], expected [16, 65]"), "\(e)") }
        // A Gemma Scope npz whose path names no release.
        let npz = (dir as NSString).appendingPathComponent("params.npz")
        try FileManager.default.copyItem(atPath: fixture("gemma-scope-tiny-res/layer_3/width_64/params.npz"), toPath: npz)
        XCTAssertThrowsError(try Dictionaries.describe(npz)) { e in XCTAssertTrue("\(e)".contains("params.npz: path: the path names no Gemma Scope release"), "\(e)") }
    }
}
