@testable import Engine
import Foundation
import Kernels
@testable import Storage
import XCTest

/// `loupe export delphi`: a workspace's codes written as delphi's latent cache. A synthetic
/// workspace (40 windows of 16 tokens, 48 latents, k 4, seeded codes) is exported; the export reads
/// back with Loupe's reader as the same activations, imports back as the same per-latent records,
/// and matches what delphi's own LatentDataset read from it (Fixtures/delphi-export/expected.json,
/// made by Tests/Scripts/fixtures/check_delphi_export.py from this test's export).
final class DelphiExportTests: XCTestCase {
    static let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/delphi-export")
    static let (L, windows, M, k, heldOutEvery) = (16, 40, 48, 4, 20)
    static let module = "model.layers.3.mlp"

    private final class Quiet: ProgressReporter {
        var steps: [String] = [], last = 0, total = 0
        var stopAfter: Int?
        func begin(_ step: String, total: Int, unit: String) { steps.append(step); self.total = total }
        func advance(_ done: Int, detail: String) { last = done }
        func end(_ step: String, summary: String) {}
        func note(_ message: String) {}
        var shouldStop: Bool { stopAfter.map { last >= $0 } ?? false }
    }

    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-delphi-export-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        if let dir { try? FileManager.default.removeItem(at: dir) }
    }

    /// Per token row, k (latent, value) slots, value descending, unused slots (0, 0).
    typealias Codes = [[(latent: UInt32, value: Float16)]]

    /// The synthetic workspace: corpus, codes of every window (train and held-out shards, as the
    /// build names them), activation manifests, workspace.json and two explanations.
    func makeWorkspace() throws -> (Workspace, Corpus, codes: [Int: Codes]) {
        let (L, W, M, k) = (Self.L, Self.windows, Self.M, Self.k)
        var rng = SplitMix64(seed: 15)
        let tokens = (0..<W * L).map { _ in Int32(rng.next() % 49152) }
        let corpus = Corpus(windowLength: L, heldOutEvery: Self.heldOutEvery, tokens: tokens)
        let ws = Workspace(directory: dir.appendingPathComponent("ws"))
        try corpus.save(to: ws.corpusDirectory, sources: ["synthetic"])
        var codes: [Int: Codes] = [:]
        for w in 0..<W {
            codes[w] = (0..<L).map { _ in
                let n = Int(rng.next() % UInt64(k + 1))
                var picked: [UInt32] = []
                while picked.count < n {
                    // Skewed to low ids, with latents in both halves (both splits).
                    let m = UInt32((rng.next() % UInt64(M)) * (rng.next() % UInt64(M)) / UInt64(M - 1))
                    if !picked.contains(m) { picked.append(m) }
                }
                var slots = picked.map { (latent: $0, value: Float16(Float(rng.next() % 4000 + 1) / 500)) }
                slots.sort { $0.value > $1.value || ($0.value == $1.value && $0.latent < $1.latent) }
                return slots + Array(repeating: (latent: 0, value: 0), count: k - n)
            }
        }
        codes[3]![5] = [(47, 9.5), (24, 7.25), (1, 3), (0, 0.5)]  // a full row, and the last latent
        let codesDirectory = ws.cacheDirectory.appendingPathComponent("codes", isDirectory: true)
        try FileManager.default.createDirectory(at: codesDirectory, withIntermediateDirectories: true)
        for (name, list) in [("train", corpus.trainingWindows), ("heldout", corpus.heldOutWindows)] {
            var data = Data()
            for w in list {
                for row in codes[w]! {
                    for s in row { withUnsafeBytes(of: s.latent.littleEndian) { data.append(contentsOf: $0) } }
                    for s in row { withUnsafeBytes(of: s.value) { data.append(contentsOf: $0) } }
                }
            }
            try data.write(to: codesDirectory.appendingPathComponent("\(name)-00000.bin"))
            try FileManager.default.createDirectory(at: ws.activationsDirectory, withIntermediateDirectories: true)
            try JSONFile.write(ActivationStore.Manifest(layer: 3, dim: 8, windowLength: L, columns: 2, shards: [.init(file: "\(name)-00000.f16", windows: list)]),
                               to: ws.activationsDirectory.appendingPathComponent("\(name).json"))
        }
        try ws.save(WorkspaceManifest(model: "m", layer: 3, latents: M, k: k, transcoderSource: "trained", corpusSources: ["synthetic"],
                                      trainTokens: corpus.trainingWindows.count * L, heldOutTokens: corpus.heldOutWindows.count * L, windowLength: L))
        let store = try ExplanationStore(workspace: ws)
        try store.save(latent: 5, text: "the fifth, \"quoted\" ✓")
        try store.save(latent: 40, text: "forty\nlines")
        return (ws, corpus, codes)
    }

    func export(_ ws: Workspace, splits: Int = 2, to results: URL) throws -> DelphiExport.Summary {
        var job = DelphiExport(workspace: ws, module: Self.module)
        job.splits = splits
        return try job.run(into: results, reporter: Quiet())
    }

    /// A safetensors file's header (u64 length, then JSON).
    static func header(_ url: URL) throws -> [String: [String: Any]] {
        let data = try Data(contentsOf: url)
        let n = Int(data.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        return try XCTUnwrap(JSONSerialization.jsonObject(with: data[8..<8 + n]) as? [String: [String: Any]])
    }

    func testSplitsAreDelphis() {
        // torch.linspace(0, width, n + 1).long(), then end − 1.
        XCTAssertEqual(DelphiExport.splitRanges(width: 64, count: 2).map { [$0.start, $0.end] }, [[0, 31], [32, 63]])
        // What torch 2 printed for the same widths (float32 linspace, truncated).
        XCTAssertEqual(DelphiExport.splitRanges(width: 4608, count: 5).map { [$0.start, $0.end] },
                       [[0, 920], [921, 1842], [1843, 2763], [2764, 3685], [3686, 4607]])
        XCTAssertEqual(DelphiExport.splitRanges(width: 10, count: 3).map { [$0.start, $0.end] }, [[0, 2], [3, 5], [6, 9]])
        XCTAssertEqual(DelphiExport.splitRanges(width: 100_003, count: 7).map { [$0.start, $0.end] },
                       [[0, 14285], [14286, 28571], [28572, 42857], [42858, 57143], [57144, 71429], [71430, 85715], [85716, 100002]])
    }

    func testExportReadsBackAsTheSameActivations() throws {
        let (ws, corpus, codes) = try makeWorkspace()
        let results = dir.appendingPathComponent("results")
        let summary = try export(ws, to: results)
        XCTAssertEqual(summary.splits, ["0_23.safetensors", "24_47.safetensors"])
        XCTAssertEqual(summary.sequences, Self.windows)
        XCTAssertEqual(summary.explanations, 2)
        XCTAssertFalse(FileManager.default.fileExists(atPath: results.path + ".partial"))
        if let keep = ProcessInfo.processInfo.environment["LOUPE_DELPHI_EXPORT_DIR"] {
            try? FileManager.default.removeItem(atPath: keep)
            try FileManager.default.copyItem(at: results, to: URL(fileURLWithPath: keep))
        }

        let cache = try DelphiCache(results: results, hookpoint: nil)
        XCTAssertEqual(cache.hookpoint, Self.module)
        XCTAssertEqual(cache.latents, Self.M)
        XCTAssertEqual(cache.config.cacheContextLength, Self.L)
        let t = try cache.tokens()
        XCTAssertEqual([t.sequences, t.length], [Self.windows, Self.L])
        XCTAssertEqual(t.ids, corpus.tokens)
        var read: [DelphiCache.Entry] = []
        for split in cache.splits {
            XCTAssertEqual(try Self.header(split.file)["locations"]?["dtype"] as? String, "U16", "as delphi stores small splits")
            read += try cache.entries(of: split, sequences: t.sequences, length: t.length)
        }
        // delphi's order: split by split, then sequence, position, latent.
        var want: [DelphiCache.Entry] = []
        for range in [0...23, 24...47] {
            for w in 0..<Self.windows {
                for p in 0..<Self.L {
                    for s in codes[w]![p].filter({ $0.value != 0 && range.contains(Int($0.latent)) }).sorted(by: { $0.latent < $1.latent }) {
                        want.append(.init(latent: Int(s.latent), sequence: w, position: p, value: Float(s.value)))
                    }
                }
            }
        }
        XCTAssertEqual(read.count, summary.rows)
        XCTAssertEqual(read, want)
        XCTAssertGreaterThan(want.filter { $0.latent >= 24 }.count, 20, "both splits hold activations")
        XCTAssertEqual(try String(contentsOf: results.appendingPathComponent("explanations/\(Self.module)_latent40.txt"), encoding: .utf8), #""forty\nlines""#)
    }

    /// `--latents SPEC`: only those latents' activations, in splits that still cover every latent.
    func testLatentsKeepsOnlyThoseActivationsWithAbsoluteIds() throws {
        let (ws, _, codes) = try makeWorkspace()
        var job = DelphiExport(workspace: ws, module: Self.module)
        job.splits = 2
        job.latents = [1, 40]
        let results = dir.appendingPathComponent("some")
        let summary = try job.run(into: results, reporter: Quiet())
        XCTAssertEqual(summary.splits, ["0_23.safetensors", "24_47.safetensors"])
        let cache = try DelphiCache(results: results, hookpoint: nil)
        var read: [Int: Int] = [:]
        for split in cache.splits {
            for e in try cache.entries(of: split, sequences: Self.windows, length: Self.L) { read[e.latent, default: 0] += 1 }
        }
        let want = [1, 40].map { m in codes.values.reduce(0) { $0 + $1.reduce(0) { $0 + $1.filter { Int($0.latent) == m && $0.value != 0 }.count } } }
        XCTAssertEqual(read, [1: want[0], 40: want[1]])
        XCTAssertGreaterThan(want.min()!, 0)
    }

    /// Export, then `loupe import delphi`: the same corpus, held-out codes and per-latent records
    /// as the workspace's own codes make.
    func testRoundTripGivesTheSameRecords() throws {
        let (ws, corpus, codes) = try makeWorkspace()
        let results = dir.appendingPathComponent("results")
        _ = try export(ws, to: results)
        let back = Workspace(directory: dir.appendingPathComponent("back"))
        var job = DelphiImport(cache: try DelphiCache(results: results, hookpoint: nil))
        job.heldOutEvery = Self.heldOutEvery
        let m = try job.run(into: back, modelPath: "m", vocabularySize: 49152, reporter: Quiet())
        XCTAssertEqual([m.layer, m.latents, m.k, m.windowLength, m.trainTokens, m.heldOutTokens],
                       [3, Self.M, Self.k, Self.L, corpus.trainingWindows.count * Self.L, corpus.heldOutWindows.count * Self.L])
        XCTAssertEqual(try Corpus.load(from: back.corpusDirectory).0.tokens, corpus.tokens)
        XCTAssertEqual(try Data(contentsOf: back.cacheDirectory.appendingPathComponent("codes/heldout-00000.bin")),
                       try Data(contentsOf: ws.cacheDirectory.appendingPathComponent("codes/heldout-00000.bin")), "held-out codes")

        // The records the workspace's own training codes make, with the import's settings.
        let train = corpus.trainingWindows
        let rows = train.flatMap { codes[$0]! }
        let indices = rows.flatMap { $0.map(\.latent) }, values = rows.flatMap { $0.map(\.value) }
        let lists = InvertedIndex(indices: indices, values: values, latents: Self.M, k: Self.k)
        let maker = RecordMaker(displayLength: Self.L, topWindows: 40, quantileBins: 10, windowsPerBin: 4, histogramBins: 32,
                                quantiles: 101, seed: 7, corpus: corpus)
        let imported = try LatentCache(directory: back.cacheDirectory)
        var firing = 0
        for latent in 0..<Self.M {
            let want = maker.make(latent: latent, lists: lists, codes: (indices, values, train), k: Self.k, L: Self.L, promoted: [], suppressed: [], neighbours: [])
            XCTAssertEqual(try imported.record(latent), want, "latent \(latent)")
            if want.count > 0 { firing += 1 }
        }
        XCTAssertGreaterThan(firing, 30)
    }

    /// What delphi's LatentDataset read from this export (check_delphi_export.py), against the
    /// workspace's codes counted here.
    func testDelphiReadsWhatLoupeWrote() throws {
        struct Expected: Decodable {
            struct Latent: Decodable { var count: Int; var max: Double; var top: [[Double]] }
            var latents: Int, sequences: Int, ctx_len: Int, rows: Int
            var edges: [[Int]]
            var first_tokens: [Int]
            var per_latent: [String: Latent]
            var records: Int
            var explanations: [String: String]
        }
        let e = try JSONDecoder().decode(Expected.self, from: Data(contentsOf: Self.fixture.appendingPathComponent("expected.json")))
        let (ws, corpus, codes) = try makeWorkspace()
        let summary = try export(ws, to: dir.appendingPathComponent("results"))
        XCTAssertEqual([e.latents, e.sequences, e.ctx_len, e.rows], [Self.M, Self.windows, Self.L, summary.rows])
        XCTAssertEqual(e.edges, [[0, 23], [24, 47]])
        XCTAssertEqual(e.first_tokens, corpus.window(0))
        var perLatent: [Int: [(seq: Int, pos: Int, value: Float)]] = [:]
        for w in 0..<Self.windows {
            for p in 0..<Self.L {
                for s in codes[w]![p] where s.value != 0 { perLatent[Int(s.latent), default: []].append((w, p, Float(s.value))) }
            }
        }
        XCTAssertEqual(Set(e.per_latent.keys), Set(perLatent.keys.map(String.init)))
        for (latent, rows) in perLatent {
            let d = try XCTUnwrap(e.per_latent[String(latent)])
            let sorted = rows.sorted { ($0.value, -$0.seq, -$0.pos) > ($1.value, -$1.seq, -$1.pos) }
            XCTAssertEqual(d.count, rows.count, "latent \(latent)")
            XCTAssertEqual(Float(d.max), sorted[0].value, "latent \(latent)")
            XCTAssertEqual(d.top.map { [Int($0[0]), Int($0[1])] }, sorted.prefix(d.top.count).map { [$0.seq, $0.pos] }, "latent \(latent)")
            XCTAssertEqual(d.top.map { Float($0[2]) }, sorted.prefix(d.top.count).map(\.value), "latent \(latent)")
        }
        XCTAssertGreaterThan(e.records, 0, "delphi built latent records from the export")
        XCTAssertEqual(e.explanations, ["5": "the fifth, \"quoted\" ✓", "40": "forty\nlines"])
    }

    func testRefusesAnImportAnExistingFolderAndStopsCleanly() throws {
        let (ws, _, _) = try makeWorkspace()
        let results = dir.appendingPathComponent("results")
        try FileManager.default.createDirectory(at: results, withIntermediateDirectories: true)
        XCTAssertThrowsError(try export(ws, to: results)) { XCTAssertEqual($0 as? DelphiError, .exportExists(path: results.path)) }
        try FileManager.default.removeItem(at: results)

        // Ctrl-C: nothing at DIR, and the next run starts over.
        let reporter = Quiet()
        reporter.stopAfter = 0
        var job = DelphiExport(workspace: ws, module: Self.module)
        job.splits = 2
        XCTAssertThrowsError(try job.run(into: results, reporter: reporter)) { XCTAssertTrue($0 is CancellationError, "\($0)") }
        XCTAssertFalse(FileManager.default.fileExists(atPath: results.path))
        XCTAssertFalse(FileManager.default.fileExists(atPath: results.path + ".partial"), "the partial folder is removed")
        XCTAssertEqual(try export(ws, to: results).splits.count, 2)

        // A workspace imported from delphi is that cache already.
        let back = Workspace(directory: dir.appendingPathComponent("back"))
        _ = try DelphiImport(cache: try DelphiCache(results: results, hookpoint: nil)).run(into: back, modelPath: "m", vocabularySize: 49152, reporter: Quiet())
        XCTAssertThrowsError(try export(back, to: dir.appendingPathComponent("again"))) {
            XCTAssertTrue("\($0)".contains("imported from delphi") && "\($0)".contains("explanations export --delphi"), "\($0)")
        }
    }
}
