import Foundation
import Kernels
import LoupeTestSupport
import XCTest
@testable import Engine
@testable import Formats
@testable import Model
@testable import Storage
import Tokenizer
import Transcoder

/// An SAE on the residual stream leaving layer 1 of the tiny model, built as a user builds one
/// (`loupe build --site residual`), checked against the plain-loop reference forward: the site is
/// recorded, only the input is stored, the cache's codes are the SAE's encode of the residual, and
/// the splice, its ablations and "latents off" replace that residual (never at a window's first
/// position) exactly as defined.
final class ResidualSAETests: XCTestCase {
    static let layer = 1
    /// The model `TinyWorkspace` writes.
    nonisolated(unsafe) static let tiny = TinyLlama(ffnDim: 128, contextLength: 1024, vocabulary: .bytes, seed: 7)
    nonisolated(unsafe) static var built: TinyWorkspace?

    var tw: TinyWorkspace!
    var ws: Workspace { Workspace(directory: URL(fileURLWithPath: tw.workspace, isDirectory: true)) }

    override func setUpWithError() throws {
        if Self.built == nil {
            let t = TinyWorkspace(directory: FileManager.default.temporaryDirectory.appendingPathComponent("loupe-residual-\(UUID().uuidString)"))
            try FileManager.default.createDirectory(at: t.directory, withIntermediateDirectories: true)
            try t.build(arguments: ["--site", "residual", "--layer", "\(Self.layer)", "--tokens", "4096", "--latents", "128", "--k", "8",
                                    "--eval-windows", "4"])
            Self.built = t
        }
        tw = Self.built
    }

    override class func tearDown() {
        if let t = built { try? FileManager.default.removeItem(at: t.directory) }
        built = nil
    }

    func sae() throws -> Transcoder { try Transcoder.load(directory: ws.transcoderDirectory(try ws.load()).path) }

    /// The reference residual leaving `layer`, per position, of `tokens`.
    func referenceResidual(_ tokens: [Int]) -> [[Float]] {
        var out = [[Float]](repeating: [], count: tokens.count)
        _ = Self.tiny.referenceLogits(tokens, residualOverride: { l, t, x in if l == Self.layer { out[t] = x } })
        return out
    }

    /// Per-token next-token cross-entropy of the reference with the residual leaving `layer` at
    /// positions ≥ 1 replaced by `replace(position, residual)`.
    func referenceCE(_ tokens: [Int], replace: @escaping (Int, [Float]) -> [Float]) -> [Float] {
        let logits = Self.tiny.referenceLogits(tokens, residualOverride: { l, t, x in if l == Self.layer && t >= 1 { x = replace(t, x) } })
        return (0..<tokens.count - 1).map { t in
            let row = logits[t], m = row.max()!
            return m + log(row.reduce(0) { $0 + exp($1 - m) }) - row[tokens[t + 1]]
        }
    }

    func maxDiff(_ a: [[Float]], _ b: [[Float]]) -> Float {
        XCTAssertEqual(a.map(\.count), b.map(\.count))
        return zip(a, b).reduce(0) { max($0, maxAbsDiff($1.0, $1.1)) }
    }

    func testTheBuildRecordsTheSiteAndStoresOnlyTheInput() throws {
        let m = try ws.load()
        XCTAssertEqual(m.site, .residual)
        XCTAssertEqual(m.hookpoint, "layers.1")
        XCTAssertEqual(m.site.title(layer: m.layer), "SAE · residual stream after layer 1 (layers.1)")
        let raw = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: ws.manifestURL)) as? [String: Any])
        XCTAssertEqual(raw["site"] as? String, "residual")
        let t = try sae()
        XCTAssertFalse(t.config.transcode, "saved as sparsify's autoencoder")
        XCTAssertFalse(t.config.skipConnection)
        XCTAssertTrue(FileManager.default.fileExists(atPath: ws.directory.appendingPathComponent("transcoder/layers.1/sae.safetensors").path))
        // One column: the residual alone, half a transcoder's store.
        let corpus = try Corpus.load(from: ws.corpusDirectory).0
        let store = try ActivationStore(directory: ws.activationsDirectory, name: "train", layer: 1, dim: 64, windowLength: corpus.windowLength,
                                        windows: corpus.trainingWindows, columns: 1)
        XCTAssertEqual(store.manifest.columns, 1)
        XCTAssertTrue(store.isComplete, "the build's plan is the one reopened (else it would have been replanned)")
        let shard = store.manifest.shards[0]
        let bytes = try FileManager.default.attributesOfItem(atPath: ws.activationsDirectory.appendingPathComponent(shard.file).path)[.size] as? Int
        XCTAssertEqual(bytes, shard.windows.count * corpus.windowLength * 64 * 2)
        // Stored rows are the reference residual (fp16).
        let (x, y) = try store.read(shard)
        XCTAssertTrue(x === y, "an SAE's target is its input")
        let ref = referenceResidual(corpus.window(shard.windows[0]))
        let stored = Array(UnsafeBufferPointer(start: x.pointer, count: corpus.windowLength * 64))
        let worst = zip(stored, ref.flatMap { $0 }).map { abs($0 - $1) / max(1, abs($1)) }.max()!
        XCTAssertLessThan(worst, 2e-3, "fp16 of the reference residual")
        let e = try XCTUnwrap(m.evaluation)
        XCTAssertNotNil(e.ceMeanAblation)
        XCTAssertTrue(e.fvu > 0 && e.fvu < 1, "trained: \(e.fvu)")
        let typical = try XCTUnwrap(e.fvuTypical), outliers = try XCTUnwrap(e.outlierPositions)
        XCTAssertTrue(typical > 0 && typical.isFinite, "\(typical)")
        if outliers == 0 { XCTAssertEqual(typical, e.fvu, accuracy: 1e-12, "no outliers: the same positions, the same FVU") }
        XCTAssertGreaterThan(abs(e.ceZeroAblation - e.ceBase), 1e-2, "zeroing the residual changes the loss")
        XCTAssertNotEqual(e.ceMeanAblation, e.ceZeroAblation)
    }

    func testCacheCodesAreTheSAEsEncodeOfTheResidual() throws {
        let t = try sae(), k = t.config.k
        let corpus = try Corpus.load(from: ws.corpusDirectory).0
        let w = corpus.trainingWindows[0], L = corpus.windowLength
        // The cache's codes of the first training window (codes/train-00000.bin: k int32 then k fp16 per row).
        let data = try Data(contentsOf: ws.cacheDirectory.appendingPathComponent("codes/train-00000.bin"))
        // The SAE's encode of the reference residual rounded to fp16, as the store holds it.
        let ref = referenceResidual(corpus.window(w)).flatMap { $0 }.map { Float(Float16($0)) }
        var ix = [Int32](repeating: 0, count: L * k), vx = [Float](repeating: 0, count: L * k)
        t.encode(ref, rows: L, indices: &ix, values: &vx)
        var worst: Float = 0, compared = 0
        data.withUnsafeBytes { raw in
            for r in 0..<L {
                let base = r * k * 6
                var cached: [Int: Float] = [:]
                for j in 0..<k {
                    let v = Float(raw.loadUnaligned(fromByteOffset: base + 4 * k + 2 * j, as: Float16.self))
                    if v > 0 { cached[Int(raw.loadUnaligned(fromByteOffset: base + 4 * j, as: Int32.self))] = v }
                }
                if r == 0 {
                    XCTAssertTrue(cached.isEmpty, "a window's first position has no code")
                    continue
                }
                var expected: [Int: Float] = [:]
                for j in 0..<k where vx[r * k + j] > 0 { expected[Int(ix[r * k + j])] = vx[r * k + j] }
                XCTAssertEqual(Set(cached.keys), Set(expected.keys), "row \(r)")
                for (l, v) in expected { worst = max(worst, abs((cached[l] ?? 0) - v) / max(1, v)); compared += 1 }
            }
        }
        XCTAssertGreaterThan(compared, L, "latents fire")
        XCTAssertLessThan(worst, 2e-3, "the codes are stored as fp16")

        // The lab reads the residual live (fp32): its codes are the SAE's encode of the reference residual.
        let model = try LlamaModel(gguf: GGUFFile(path: tw.model))
        let analyzer = try ContextAnalyzer(model: model, tokenizer: try BPETokenizer(gguf: GGUFFile(path: tw.model)), transcoder: t,
                                           layer: Self.layer, site: .residual)
        let a = try analyzer.analyze(tokens: corpus.window(w))
        let exact = referenceResidual(corpus.window(w)).flatMap { $0 }
        t.encode(exact, rows: L, indices: &ix, values: &vx)
        XCTAssertTrue(a.codes[0].isEmpty, "the lab gives the first position no code either")
        var live: Float = 0
        for r in 1..<L {
            let got = Dictionary(uniqueKeysWithValues: a.codes[r].map { ($0.latent, $0.value) })
            for j in 0..<k where vx[r * k + j] > 0 { live = max(live, abs((got[Int(ix[r * k + j])] ?? 0) - vx[r * k + j])) }
        }
        print("residual SAE: max |cached code − encode(reference)| = \(worst) (relative, fp16), |lab code − encode(reference)| = \(live)")
        XCTAssertLessThan(live, 1e-5)
    }

    /// The tiny SAE spliced at its layer, and the first 20 tokens of 3 held-out windows run up to it.
    func residualSplice() throws -> (Transcoder, Splice, [[Int]], Splice.Prepared) {
        let t = try sae()
        let model = try LlamaModel(gguf: GGUFFile(path: tw.model), batch: 64)
        let splice = try Splice(model: model, transcoder: t, layer: Self.layer, site: .residual)
        let corpus = try Corpus.load(from: ws.corpusDirectory).0
        let windows = corpus.heldOutWindows.prefix(3).map { Array(corpus.window($0).prefix(20)) }
        return (t, splice, windows, try splice.prepare(windows))
    }

    func testSpliceWithTheTrueCodeIsTheSAEsReconstruction() throws {
        let (t, splice, windows, p) = try residualSplice()
        XCTAssertEqual(p.input.array, p.output.array, "an SAE reads and writes the same residual")
        let spliced = try splice.crossEntropies(p, replacement: splice.transcoderReplacement(p))
        let byHand = windows.map { w in
            referenceCE(w) { _, x in
                var y = [Float](repeating: 0, count: 64)
                t.forward(x, rows: 1, into: &y)
                return y
            }
        }
        let worst = maxDiff(spliced, byHand)
        print("residual SAE splice: max |CE − CE with the reconstruction spliced by hand| = \(worst)")
        XCTAssertLessThan(worst, 2e-3)
        let base = try splice.crossEntropies(p, replacement: nil)
        XCTAssertGreaterThan(maxDiff(base, spliced), 1e-3, "the splice changes the loss")
    }

    func testAblationsAndLatentsOffAreAsDefined() throws {
        let (t, splice, windows, p) = try residualSplice()

        // Zero ablation: the residual leaving the layer set to 0 at every position but the first.
        let zero = try splice.crossEntropies(p, replacement: Splice.constant([Float](repeating: 0, count: 64)))
        XCTAssertLessThan(maxDiff(zero, windows.map { referenceCE($0) { _, _ in [Float](repeating: 0, count: 64) } }), 2e-3)

        // Mean ablation: its mean over the windows' tokens but each first position, computed by hand.
        var mean = [Double](repeating: 0, count: 64), n = 0
        for w in windows { for x in referenceResidual(w).dropFirst() { for i in 0..<64 { mean[i] += Double(x[i]) }; n += 1 } }
        let handMean = mean.map { Float($0 / Double(n)) }
        XCTAssertLessThan(maxAbsDiff(splice.meanOutput(p), handMean), 1e-3)
        let meanCE = try splice.crossEntropies(p, replacement: Splice.constant(splice.meanOutput(p)))
        XCTAssertLessThan(maxDiff(meanCE, windows.map { referenceCE($0) { _, _ in handMean } }), 2e-3)

        // Latents off: the decoder bias alone.
        let bias = t.decoderBias.array
        let off = try splice.crossEntropies(p) { first, rows, y in
            let k = t.config.k
            splice.decode(p, first: first, rows: rows, codes: ([Int32](repeating: 0, count: rows * k), [Float](repeating: 0, count: rows * k)), into: y)
        }
        XCTAssertLessThan(maxDiff(off, windows.map { referenceCE($0) { _, _ in bias } }), 2e-3)

        let base = try splice.crossEntropies(p, replacement: nil)
        XCTAssertGreaterThan(maxDiff(zero, base), 1e-2)
        XCTAssertGreaterThan(maxDiff(meanCE, zero), 1e-3, "mean and zero ablation differ")
    }

    func testFVUSumsAndWhatOutliersDoToThem() {
        let rows: [[Float]] = [[1, 0], [-1, 0], [0, 1], [0, -1]]
        var zero = FVUSums(dim: 2), exact = FVUSums(dim: 2), half = FVUSums(dim: 2)
        for y in rows {
            zero.add(y, [0, 0])
            exact.add(y, y)
            half.add(y, y.map { $0 / 2 })
        }
        XCTAssertEqual(zero.fvu, 1, accuracy: 1e-12, "predicting the mean (0) explains nothing")
        XCTAssertEqual(exact.fvu, 0, accuracy: 1e-12)
        XCTAssertEqual(half.fvu, 0.25, accuracy: 1e-12)
        // One huge, well reconstructed row swamps the variance: the FVU looks near perfect.
        var withSink = half
        XCTAssertEqual(withSink.add([1000, 3], [1000, 3]), 1_000_009, "add returns the row's ‖y‖²")
        XCTAssertEqual(FVUSums.squaredNorm([1000, 3], dim: 2), 1_000_009)
        XCTAssertLessThan(withSink.fvu, 0.001)
    }
}
