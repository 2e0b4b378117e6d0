@testable import Engine
import Foundation
import Storage
import XCTest

/// A cache written by delphi's own code (Tests/Scripts/fixtures/make_delphi_fixture.py: LatentCache
/// over a tiny random Llama and a random sparsify transcoder, 64 latents in 2 splits, 40 sequences
/// of 24 SmolLM2 tokens) imported into a workspace: its records against what delphi's
/// LatentDataset reads back (Fixtures/delphi/expected.json).
final class DelphiImportTests: XCTestCase {
    static let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/delphi")
    static let vocabulary = 49152

    private final class Quiet: ProgressReporter {
        var steps: [String] = []
        func begin(_ step: String, total: Int, unit: String) { steps.append(step) }
        func advance(_ done: Int, detail: String) {}
        func end(_ step: String, summary: String) {}
        func note(_ message: String) {}
        var shouldStop: Bool { false }
    }

    struct Expected: Decodable {
        struct Summary: Decodable { var count: Int; var max: Float; var top: [[Double]] }
        struct PerLatent: Decodable { var all: Summary; var train: Summary }
        var hookpoint: String
        var latents: Int
        var ctx_len: Int
        var sequences: Int
        var held_out_every: Int
        var tokens: [[Int]]
        var per_latent: [String: PerLatent]
        var explanations: [String: String]
    }

    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-delphi-\(UUID().uuidString)")
    }

    override func tearDownWithError() throws {
        if let dir { try? FileManager.default.removeItem(at: dir) }
    }

    func expected() throws -> Expected {
        try JSONDecoder().decode(Expected.self, from: Data(contentsOf: Self.fixture.appendingPathComponent("expected.json")))
    }

    func testReadsDelphisLayout() throws {
        let e = try expected()
        let cache = try DelphiCache(results: Self.fixture.appendingPathComponent("results"), hookpoint: nil)
        XCTAssertEqual(cache.hookpoint, e.hookpoint)
        XCTAssertEqual(cache.latents, e.latents)
        XCTAssertEqual(cache.splits.map(\.start), [0, 32])
        XCTAssertEqual(cache.splits.map(\.end), [31, 63])
        XCTAssertEqual(cache.config.cacheContextLength, e.ctx_len)
        XCTAssertEqual(try DelphiImport(cache: cache).resolvedLayer(), 1)
        let tokens = try cache.tokens()
        XCTAssertEqual(tokens.sequences, e.sequences)
        XCTAssertEqual(tokens.length, e.ctx_len)
        XCTAssertEqual(tokens.ids.map(Int.init), e.tokens.flatMap { $0 })
        // Every entry delphi stored, counted per latent, over both splits.
        var counts = [Int](repeating: 0, count: cache.latents)
        for split in cache.splits {
            for entry in try cache.entries(of: split, sequences: tokens.sequences, length: tokens.length) { counts[entry.latent] += 1 }
        }
        for m in 0..<e.latents { XCTAssertEqual(counts[m], e.per_latent[String(m)]?.all.count ?? 0, "latent \(m)") }
        XCTAssertGreaterThan(e.per_latent.count, 10, "the fixture has latents that fire")
    }

    func testImportedRecordsAreDelphis() throws {
        let e = try expected()
        let cache = try DelphiCache(results: Self.fixture.appendingPathComponent("results"), hookpoint: e.hookpoint)
        let ws = Workspace(directory: dir)
        let reporter = Quiet()
        let m = try DelphiImport(cache: cache).run(into: ws, modelPath: "/models/smol.gguf", vocabularySize: Self.vocabulary, reporter: reporter)
        XCTAssertEqual(reporter.steps, ["import", "records"])
        XCTAssertEqual(m.layer, 1)
        XCTAssertEqual(m.latents, e.latents)
        XCTAssertEqual(m.windowLength, e.ctx_len)
        let held = (0..<e.sequences).filter { $0 % e.held_out_every == 0 }
        XCTAssertEqual(m.heldOutTokens, held.count * e.ctx_len)
        XCTAssertEqual(m.trainTokens, (e.sequences - held.count) * e.ctx_len)
        XCTAssertEqual(try ws.load(), m, "workspace.json is written")
        XCTAssertTrue(ws.hasCache)

        let (corpus, _) = try Corpus.load(from: ws.corpusDirectory)
        XCTAssertEqual(corpus.tokens.map(Int.init), e.tokens.flatMap { $0 })
        let lc = try LatentCache(directory: ws.cacheDirectory)
        XCTAssertEqual(lc.manifest.latents, e.latents)
        XCTAssertEqual(lc.manifest.trainTokens, m.trainTokens)
        var compared = 0
        for latent in 0..<e.latents {
            let r = try lc.record(latent)
            XCTAssertTrue(r.promoted.isEmpty && r.suppressed.isEmpty && r.neighbours.isEmpty, "no dictionary, no logit effects or neighbours")
            guard let x = e.per_latent[String(latent)]?.train, x.count > 0 else {
                XCTAssertEqual(r.count, 0, "latent \(latent) never fires on the training sequences in delphi's cache")
                XCTAssertTrue(r.windows.isEmpty)
                continue
            }
            XCTAssertEqual(r.count, x.count, "latent \(latent): firing count")
            XCTAssertEqual(r.max, x.max, "latent \(latent): max (float16 in both)")
            // Loupe keeps one top window a sequence: delphi's top activations, first per sequence.
            var sequences: [Int] = [], firstOf: [Int: (pos: Int, value: Float)] = [:]
            for t in x.top where firstOf[Int(t[0])] == nil {
                sequences.append(Int(t[0]))
                firstOf[Int(t[0])] = (Int(t[1]), Float(t[2]))
            }
            let tops = r.windows.filter { $0.kind == 0 }
            XCTAssertEqual(Array(tops.prefix(sequences.count).map(\.corpusWindow)), Array(sequences.prefix(tops.count)), "latent \(latent): top sequences")
            for w in tops.prefix(sequences.count) {
                let want = try XCTUnwrap(firstOf[w.corpusWindow])
                XCTAssertEqual(w.start + w.focus, want.pos, "latent \(latent): activating position in sequence \(w.corpusWindow)")
                XCTAssertEqual(w.activations[w.focus], want.value, "latent \(latent): value at the activating token")
                XCTAssertEqual(w.tokens, Array(e.tokens[w.corpusWindow][w.start..<w.start + lc.manifest.displayLength]))
                XCTAssertFalse(corpus.isHeldOut(w.corpusWindow), "a record's window is never held out")
            }
            compared += 1
        }
        XCTAssertGreaterThan(compared, 10)

        // The held-out sequences' activations: what scoring draws from.
        let index = try HeldOutIndex.load(cache: lc, corpus: corpus)
        for latent in 0..<e.latents {
            let p = e.per_latent[String(latent)]
            XCTAssertEqual(index.entries(of: latent).count, (p?.all.count ?? 0) - (p?.train.count ?? 0), "latent \(latent): held-out entries")
        }
        // And the explorer's list.
        let summaries = try LatentIndex.load(cache: lc)
        XCTAssertEqual(summaries.count, e.latents)
        XCTAssertEqual(summaries.map(\.count), (0..<e.latents).map { e.per_latent[String($0)]?.train.count ?? 0 })
    }

    /// delphi's explanation files (written by its explainer_postprocess) imported, and exported back
    /// byte for byte as delphi writes them, under the hookpoint the cache came from.
    func testExplanationsBothWaysWithDelphisFiles() throws {
        let e = try expected()
        let results = Self.fixture.appendingPathComponent("results")
        let ws = Workspace(directory: dir.appendingPathComponent("ws"))
        try DelphiImport(cache: try DelphiCache(results: results, hookpoint: nil)).run(into: ws, modelPath: "m", vocabularySize: Self.vocabulary, reporter: Quiet())
        let store = try ExplanationStore(workspace: ws)
        XCTAssertEqual(try store.importDelphi(from: results.appendingPathComponent("explanations")), e.explanations.count)
        XCTAssertEqual(store.allCurrent().mapValues(\.text), Dictionary(uniqueKeysWithValues: e.explanations.map { (Int($0.key)!, $0.value) }))
        let module = try XCTUnwrap(DelphiImport.hookpoint(of: try ws.load()))
        XCTAssertEqual(module, e.hookpoint)
        let out = dir.appendingPathComponent("export")
        XCTAssertEqual(try store.exportDelphi(to: out, module: module), e.explanations.count)
        for latent in e.explanations.keys {
            let name = "\(e.hookpoint)_latent\(latent).txt"
            XCTAssertEqual(try Data(contentsOf: out.appendingPathComponent(name)),
                           try Data(contentsOf: results.appendingPathComponent("explanations").appendingPathComponent(name)), name)
        }
    }

    func testErrorsNameTheFileAndField() throws {
        let results = Self.fixture.appendingPathComponent("results")
        let cache = try DelphiCache(results: results, hookpoint: nil)
        // Token ids past the model's vocabulary: made with another tokenizer.
        XCTAssertThrowsError(try DelphiImport(cache: cache).run(into: Workspace(directory: dir), modelPath: "m", vocabularySize: 100, reporter: Quiet())) {
            let text = "\($0)"
            XCTAssertTrue(text.contains("0_31.safetensors") && text.contains("'tokens'") && text.contains("tokenizer"), text)
            XCTAssertTrue(text.contains("HuggingFaceTB/SmolLM2-135M-Instruct"), text)
        }
        XCTAssertFalse(Workspace(directory: dir).exists, "no workspace.json after a failed import")
        XCTAssertThrowsError(try DelphiCache(results: results, hookpoint: "layers.9.mlp")) {
            XCTAssertTrue("\($0)".contains("model.layers.1.mlp"), "names what is there: \($0)")
        }
        XCTAssertThrowsError(try DelphiCache(results: dir, hookpoint: nil)) {
            XCTAssertTrue("\($0)".contains("no delphi cache"), "\($0)")
        }
        // A split whose locations point past the tokens.
        let broken = dir.appendingPathComponent("broken/latents/layers.3.mlp")
        try FileManager.default.createDirectory(at: broken, withIntermediateDirectories: true)
        let source = results.appendingPathComponent("latents/model.layers.1.mlp")
        try FileManager.default.copyItem(at: source.appendingPathComponent("config.json"), to: broken.appendingPathComponent("config.json"))
        try FileManager.default.copyItem(at: source.appendingPathComponent("0_31.safetensors"), to: broken.appendingPathComponent("0_31.safetensors"))
        let one = try DelphiCache(results: dir.appendingPathComponent("broken"), hookpoint: nil)
        XCTAssertEqual(try DelphiImport(cache: one).resolvedLayer(), 3)
        XCTAssertThrowsError(try one.entries(of: one.splits[0], sequences: 2, length: 24)) {
            XCTAssertTrue("\($0)".contains("0_31.safetensors tensor 'locations'"), "\($0)")
        }
    }
}
