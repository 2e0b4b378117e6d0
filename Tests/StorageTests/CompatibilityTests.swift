import Foundation
@testable import Storage
import XCTest

/// A workspace written by the code before the Storage → EngineAPI → Engine restructuring (commit
/// 47801cc; see Fixtures/workspace-47801cc/README.md) opens unchanged with today's Storage, and
/// reads back what the old `loupe` printed about it (the golden files beside it). Numbers are
/// compared exactly: the old JSON printed each value at full (shortest round-trip) precision.
final class CompatibilityTests: XCTestCase {
    static let fixtureName = "workspace-47801cc"

    var fixture: URL { Bundle.module.resourceURL!.appendingPathComponent("Fixtures/\(Self.fixtureName)", isDirectory: true) }
    var temp: URL!
    var ws: Workspace!

    /// A copy of the fixture in a temporary folder, so loading may rebuild derived files freely.
    override func setUpWithError() throws {
        temp = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-compat-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: temp, withIntermediateDirectories: true)
        let dir = temp.appendingPathComponent("workspace", isDirectory: true)
        try FileManager.default.copyItem(at: fixture.appendingPathComponent("workspace"), to: dir)
        ws = Workspace(directory: dir)
    }

    override func tearDownWithError() throws {
        if let temp { try? FileManager.default.removeItem(at: temp) }
    }

    /// A golden file, its machine placeholders filled in for this copy.
    func golden(_ name: String) throws -> [String: Any] {
        let text = try String(contentsOf: fixture.appendingPathComponent("golden/\(name)"), encoding: .utf8)
            .replacingOccurrences(of: "{workspace}", with: ws.directory.path)
        return try XCTUnwrap(try ExactJSON.parse(Data(text.utf8)) as? [String: Any], name)
    }

    /// A JSON number (or null) as a Double.
    func number(_ any: Any?, file: StaticString = #filePath, line: UInt = #line) -> Double? {
        if any == nil || any is NSNull { return nil }
        if let i = any as? Int { return Double(i) }
        guard let d = any as? Double else { XCTFail("not a number: \(String(describing: any))", file: file, line: line); return nil }
        return d
    }

    func numbers(_ any: Any?) -> [Double] { (any as? [Any] ?? []).map { number($0) ?? .nan } }

    /// The raw lines of one of the workspace's JSONL files, as the old code wrote them.
    func jsonLines(_ relative: String) throws -> [[String: Any]] {
        let text = try String(contentsOf: ws.directory.appendingPathComponent(relative), encoding: .utf8)
        return try text.split(separator: "\n").map { try XCTUnwrap(try ExactJSON.parse(Data($0.utf8)) as? [String: Any]) }
    }

    func testManifestMatchesInfo() throws {
        let m = try ws.load()
        let info = try golden("info.json")
        XCTAssertEqual(m.formatVersion, 1)
        XCTAssertEqual(m.model, info["model"] as? String)
        XCTAssertEqual(m.model, "{data}/models/SmolLM2-135M-Instruct.Q4_1.gguf")
        XCTAssertEqual(m.layer, info["layer"] as? Int)
        // Written before residual SAEs: no "site", so an MLP transcoder.
        XCTAssertEqual(m.site, .mlp)
        XCTAssertEqual(m.hookpoint, info["hookpoint"] as? String)
        XCTAssertEqual(m.latents, info["latents"] as? Int)
        XCTAssertEqual(m.k, info["k"] as? Int)
        XCTAssertEqual(m.transcoderSource, info["transcoder"] as? String)
        XCTAssertEqual(m.corpusSources, info["corpus"] as? [String])
        XCTAssertEqual(m.trainTokens, info["train_tokens"] as? Int)
        XCTAssertEqual(m.heldOutTokens, info["held_out_tokens"] as? Int)
        XCTAssertEqual(m.windowLength, 64)
        let e = try XCTUnwrap(m.evaluation)
        XCTAssertEqual(e.fvu, number(info["fvu"]))
        XCTAssertEqual(e.deadFraction, number(info["dead_fraction"]))
        XCTAssertEqual(e.ceBase, number(info["ce_base"]))
        XCTAssertEqual(e.ceTranscoder, number(info["ce_transcoder"]))
        XCTAssertEqual(e.ceZeroAblation, number(info["ce_zero_ablation"]))
        XCTAssertEqual(e.lossRecovered, number(info["loss_recovered"]))
        XCTAssertEqual(e.tokens, info["eval_tokens"] as? Int)
        let steps = try XCTUnwrap(info["steps"] as? [String: [String: Any]])
        XCTAssertEqual(Set(steps.keys), Set(m.steps.keys))
        for (name, s) in steps {
            let step = try XCTUnwrap(m.steps[name], name)
            XCTAssertEqual(step.done, s["done"] as? Bool, name)
            XCTAssertEqual(step.seconds, number(s["seconds"]), name)
            XCTAssertEqual(step.tokens, s["tokens"] as? Int, name)
            XCTAssertEqual(step.tokensPerSecond, number(s["tokens_per_s"]), name)
            XCTAssertTrue(m.isDone(name), name)
        }
        XCTAssertTrue(ws.hasCache)
    }

    func testCorpusMatchesTheManifest() throws {
        let m = try ws.load()
        let (corpus, meta) = try Corpus.load(from: ws.corpusDirectory)
        XCTAssertEqual(meta.sources, m.corpusSources)
        XCTAssertEqual(corpus.windowLength, m.windowLength)
        XCTAssertEqual(corpus.trainingWindows.count * corpus.windowLength, m.trainTokens)
        XCTAssertEqual(corpus.heldOutWindows.count * corpus.windowLength, m.heldOutTokens)
        XCTAssertEqual(meta.tokens, corpus.tokens.count)
    }

    func testLatentRecordsMatchLatentJSON() throws {
        let m = try ws.load()
        let cache = try LatentCache(directory: ws.cacheDirectory)
        XCTAssertEqual(cache.manifest.latents, m.latents)
        XCTAssertEqual(cache.manifest.k, m.k)
        XCTAssertEqual(try cache.allRecords().map(\.latent), Array(0..<m.latents))
        for latent in [3, 5] {
            let g = try golden("latent-\(latent).json")
            let r = try cache.record(latent)
            XCTAssertEqual(r.latent, g["latent"] as? Int)
            XCTAssertEqual(r.count, g["count"] as? Int)
            XCTAssertEqual(Double(r.count) / Double(max(cache.manifest.trainTokens, 1)), number(g["density"]))
            XCTAssertEqual(Double(r.max), number(g["max"]))
            XCTAssertEqual(Double(r.mean), number(g["mean"]))
            XCTAssertEqual(r.histogram, g["histogram"] as? [Int])
            XCTAssertEqual(r.quantiles.map(Double.init), numbers(g["quantiles"]))
            for (key, pairs) in [("promoted", r.promoted), ("suppressed", r.suppressed)] {
                let list = try XCTUnwrap(g[key] as? [[String: Any]])
                XCTAssertEqual(pairs.map(\.id), list.map { $0["id"] as? Int ?? -1 }, key)
                XCTAssertEqual(pairs.map { Double($0.logit) }, list.map { number($0["logit"]) ?? .nan }, key)
            }
            let neighbours = try XCTUnwrap(g["neighbours"] as? [[String: Any]])
            XCTAssertEqual(r.neighbours.map(\.latent), neighbours.map { $0["latent"] as? Int ?? -1 })
            XCTAssertEqual(r.neighbours.map { Double($0.cosine) }, neighbours.map { number($0["cosine"]) ?? .nan })
            // `latent --json` shows the first 10 windows of each kind (0: top, > 0: quantile windows).
            for (key, windows) in [("top_windows", r.windows.filter { $0.kind == 0 }), ("quantile_windows", r.windows.filter { $0.kind > 0 })] {
                let list = try XCTUnwrap(g[key] as? [[String: Any]])
                XCTAssertFalse(list.isEmpty, key)
                XCTAssertEqual(list.count, min(windows.count, 10), key)
                for (w, j) in zip(windows, list) {
                    XCTAssertEqual(w.corpusWindow, j["corpus_window"] as? Int)
                    XCTAssertEqual(w.start, j["start"] as? Int)
                    XCTAssertEqual(w.focus, j["focus"] as? Int)
                    XCTAssertEqual(w.kind, j["kind"] as? Int)
                    XCTAssertEqual(w.tokens, j["ids"] as? [Int])
                    XCTAssertEqual(w.activations.map(Double.init), numbers(j["activations"]))
                }
            }
        }
    }

    func testLatentIndexReadsTheOldFileAndAgreesWithTheRecords() throws {
        let cache = try LatentCache(directory: ws.cacheDirectory)
        // The committed index.bin, decoded as it is (load() may rebuild it: a checkout's file times
        // need not leave it newer than cache.json).
        let file = fixture.appendingPathComponent("workspace/cache/\(LatentIndex.fileName)")
        let old = try LatentIndex.decode(try Data(contentsOf: file), manifest: cache.manifest, file: file.path)
        let rebuilt = try LatentIndex.summaries(cache: cache)
        XCTAssertEqual(old, rebuilt)
        XCTAssertEqual(try LatentIndex.load(cache: cache), rebuilt)
        for latent in [3, 5] {
            let g = try golden("latent-\(latent).json")
            let s = old[latent]
            XCTAssertEqual(s.latent, latent)
            XCTAssertEqual(s.count, g["count"] as? Int)
            XCTAssertEqual(s.density, number(g["density"]))
            XCTAssertEqual(Double(s.max), number(g["max"]))
            XCTAssertEqual(Double(s.mean), number(g["mean"]))
        }
    }

    func testHeldOutIndexReadsTheOldFileAndAgreesWithTheCodes() throws {
        let m = try ws.load()
        let cache = try LatentCache(directory: ws.cacheDirectory)
        let (corpus, _) = try Corpus.load(from: ws.corpusDirectory)
        let file = fixture.appendingPathComponent("workspace/cache/\(HeldOutIndex.fileName)")
        let old = try HeldOutIndex.decode(try Data(contentsOf: file), file: file.path)
        let loaded = try HeldOutIndex.load(cache: cache, corpus: corpus)
        let rebuilt = try HeldOutIndex.build(codes: try HeldOutIndex.codeFiles(cache), latents: m.latents, k: m.k, rows: m.heldOutTokens)
        for index in [old, loaded] {
            XCTAssertEqual(index.rows, m.heldOutTokens)
            XCTAssertEqual(index.latents, m.latents)
        }
        var entries = 0
        for latent in 0..<m.latents {
            let expected = rebuilt.entries(of: latent)
            entries += expected.count
            for index in [old, loaded] {
                let got = index.entries(of: latent)
                XCTAssertEqual(got.map(\.row), expected.map(\.row), "latent \(latent)")
                XCTAssertEqual(got.map(\.value), expected.map(\.value), "latent \(latent)")
            }
        }
        XCTAssertGreaterThan(entries, 0)
    }

    func testExplanationsMatchShowAndExport() throws {
        let m = try ws.load()
        let store = try ExplanationStore(workspace: ws)
        XCTAssertEqual(store.skippedLines, 0)
        // Every latent has a lexical explanation; latent 3's current one is a person's.
        let current = store.allCurrent()
        XCTAssertEqual(current.count, m.latents)
        XCTAssertEqual(store.allLatest(source: .lexical).count, m.latents)
        XCTAssertEqual(current[3]?.source, .user)
        XCTAssertEqual(store.history(3).map(\.source), [.lexical, .user])
        XCTAssertTrue(current.filter { $0.key != 3 }.values.allSatisfy { $0.source == .lexical && $0.source.isMachine })
        XCTAssertFalse(ExplanationSource.machineMayReplace(current[3]))

        let export = try XCTUnwrap(try ExactJSON.parse(Data(contentsOf: fixture.appendingPathComponent("golden/explanations-export.json"))) as? [String: String])
        XCTAssertEqual(export, Dictionary(uniqueKeysWithValues: current.map { (String($0.key), $0.value.text) }))

        for latent in [3, 5] {
            let g = try golden("explanations-show-\(latent).json")
            XCTAssertEqual(g["latent"] as? Int, latent)
            XCTAssertEqual(store.current(latent)?.text, g["current"] as? String)
            let history = try XCTUnwrap(g["history"] as? [[String: Any]])
            let versions = store.history(latent)
            XCTAssertEqual(versions.count, history.count)
            for (v, h) in zip(versions, history) {
                XCTAssertEqual(v.id, h["id"] as? Int)
                XCTAssertEqual(v.latent, h["latent"] as? Int)
                XCTAssertEqual(v.text, h["text"] as? String)
                XCTAssertEqual(v.source.rawValue, h["source"] as? String)
                XCTAssertEqual(v.timestamp, h["time"] as? String)
            }
        }
    }

    func testScoresDecodeWithTheirEnums() throws {
        let store = try ScoreStore(workspace: ws)
        let explanations = try ExplanationStore(workspace: ws)
        XCTAssertEqual(store.skippedLines, 0)
        let lines = try jsonLines("explanations/scores.jsonl")
        let all = store.all
        XCTAssertEqual(all.map(\.latent), Array(0..<8))
        XCTAssertEqual(all.count, lines.count)
        for (s, line) in zip(all, lines) {
            // Stored "all" and "none": the prompted simulator, all tokens at once, uncalibrated.
            XCTAssertEqual(line["mode"] as? String, "all")
            XCTAssertEqual(s.mode, .promptedAll)
            XCTAssertEqual(line["calibration"] as? String, "none")
            XCTAssertEqual(s.calibration, Calibration.none)
            XCTAssertEqual(s.source, s.latent == 3 ? .user : .lexical)
            XCTAssertEqual(s.source.rawValue, line["source"] as? String)
            XCTAssertEqual(s.version, explanations.current(s.latent)?.id)
            XCTAssertEqual(s.backend, line["backend"] as? String)
            XCTAssertEqual(s.pearson, number(line["pearson"]))
            XCTAssertEqual(s.sensitivity, number(line["sensitivity"]))
            XCTAssertEqual(s.specificity, number(line["specificity"]))
            XCTAssertEqual(s.balancedAccuracy, number(line["balanced_accuracy"]))
            XCTAssertEqual(s.windows, line["windows"] as? Int)
            XCTAssertEqual(s.tokens, line["tokens"] as? Int)
            XCTAssertEqual(s.seconds, number(line["seconds"]))
            XCTAssertEqual(s.lossDelta, number(line["loss_delta"]))
            XCTAssertNotNil(s.lossDelta)
            XCTAssertEqual(s.simulationOffset, line["simulation_offset"] as? Int)
            let c = try XCTUnwrap(s.controls), lc = try XCTUnwrap(line["controls"] as? [String: Any])
            XCTAssertEqual(c.shuffled, number(lc["shuffled"]))
            XCTAssertEqual(c.shuffledLatent, lc["shuffled_latent"] as? Int)
            XCTAssertEqual(c.tokenPrior, number(lc["token_prior"]))
            XCTAssertEqual(c.lexicalMatch, number(lc["lexical_match"]))
            XCTAssertEqual(store.scores(for: s.key), s)
            XCTAssertEqual(store.latest(latent: s.latent, mode: .promptedAll, calibration: Calibration.none), s)
            let sim = try XCTUnwrap(store.simulation(for: s), "latent \(s.latent)")
            XCTAssertEqual(sim.latent, s.latent)
            XCTAssertEqual(sim.key, s.key)
        }
        // What `loupe score --json` printed: means over all scored explanations and per source.
        let printed = try golden("score.json")
        func mean(_ xs: [Double?]) -> Double? {
            let v = xs.compactMap { $0 }
            return v.isEmpty ? nil : v.reduce(0, +) / Double(v.count)
        }
        func check(_ summary: [String: Any], _ scores: [LatentScores], _ what: String) {
            XCTAssertEqual(summary["latents"] as? Int, scores.count, what)
            XCTAssertEqual(number(summary["pearson"]), mean(scores.map(\.pearson)), what)
            XCTAssertEqual(number(summary["balanced_accuracy"]), mean(scores.map(\.balancedAccuracy)), what)
            XCTAssertEqual(number(summary["sensitivity"]), mean(scores.map(\.sensitivity)), what)
            XCTAssertEqual(number(summary["specificity"]), mean(scores.map(\.specificity)), what)
        }
        check(try XCTUnwrap(printed["all"] as? [String: Any]), all, "all")
        let bySource = try XCTUnwrap(printed["by_source"] as? [String: [String: Any]])
        XCTAssertEqual(Set(bySource.keys), ["lexical", "user"])
        for (source, summary) in bySource {
            check(summary, all.filter { $0.source == ExplanationSource(rawValue: source) }, source)
        }
    }

    func testRewriteReportMatchesRewriteJSON() throws {
        let report = try XCTUnwrap(try RewriteReport.load(ws))
        let g = try golden("rewrite.json")
        XCTAssertEqual(g["report"] as? String, RewriteReport.url(ws).path)
        XCTAssertEqual(report.formatVersion, 1)
        XCTAssertEqual(report.layer, g["layer"] as? Int)
        XCTAssertEqual(report.backend, g["backend"] as? String)
        XCTAssertEqual(report.population, g["population"] as? Int)
        XCTAssertEqual(report.scored, g["scored"] as? Int)
        XCTAssertEqual(report.windows.count, g["windows"] as? Int)
        XCTAssertEqual(report.options.length, g["length"] as? Int)
        XCTAssertEqual(report.options.bootstrap, g["bootstrap"] as? Int)
        // Stored as the strings "all" and ["none"]; read as the enums.
        XCTAssertEqual(g["mode"] as? String, "all")
        XCTAssertEqual(report.options.mode, .promptedAll)
        XCTAssertEqual(report.options.calibrations, [Calibration.none])
        XCTAssertEqual(report.options.selections, [.score])
        XCTAssertEqual(report.options.fractions, [0.25])
        XCTAssertEqual(report.options.windows, 1)
        let settings = try XCTUnwrap(g["settings"] as? [[String: Any]])
        XCTAssertEqual(report.results.count, settings.count)
        for (r, j) in zip(report.results, settings) {
            let label = r.setting.label
            XCTAssertEqual(label, j["setting"] as? String)
            XCTAssertEqual(r.setting.kind.rawValue, j["kind"] as? String, label)
            XCTAssertEqual(r.setting.fraction, number(j["fraction"]), label)
            XCTAssertEqual(r.setting.selection?.rawValue, j["selection"] as? String, label)
            XCTAssertEqual(r.setting.calibration?.rawValue, j["calibration"] as? String, label)
            XCTAssertEqual(r.latents, j["latents"] as? Int, label)
            func finite(_ x: Double) -> Double? { x.isFinite ? x : nil }
            XCTAssertEqual(finite(r.ce), number(j["ce"]), label)
            XCTAssertEqual(finite(r.delta), number(j["delta"]), label)
            XCTAssertEqual(finite(r.deltaLow), number(j["delta_low"]), label)
            XCTAssertEqual(finite(r.deltaHigh), number(j["delta_high"]), label)
            XCTAssertEqual(finite(r.vsZero), number(j["vs_zero"]), label)
            XCTAssertEqual(finite(r.vsZeroLow), number(j["vs_zero_low"]), label)
            XCTAssertEqual(finite(r.vsZeroHigh), number(j["vs_zero_high"]), label)
            XCTAssertEqual(r.distinguishableFromZero, j["distinguishable_from_zero_ablation"] as? Bool, label)
        }
        XCTAssertTrue(report.results.contains { $0.setting == .simulated(0.25, .score, Calibration.none) })
        // Its simulations (mode stored as "all"), keyed with the enums, give the stored digits.
        let cache = try RewriteSimulationCache(workspace: ws)
        XCTAssertEqual(cache.skippedLines, 0)
        let lines = try jsonLines("rewrite/simulations.jsonl")
        XCTAssertEqual(lines.count, report.timing.latentsSimulated)
        for line in lines {
            XCTAssertEqual(line["mode"] as? String, "all")
            let key = RewriteSimulationCache.Key(latent: try XCTUnwrap(line["latent"] as? Int), version: try XCTUnwrap(line["version"] as? Int),
                                                 backend: try XCTUnwrap(line["backend"] as? String), mode: .promptedAll)
            for w in try XCTUnwrap(line["windows"] as? [[String: Any]]) {
                let context = RewriteSimulationCache.Context(window: try XCTUnwrap(w["window"] as? Int), start: try XCTUnwrap(w["start"] as? Int),
                                                             length: try XCTUnwrap(w["length"] as? Int))
                XCTAssertEqual(cache.expected(key, context).map { $0.map(Double.init) }, numbers(w["expected"]).map(Float.init).map(Double.init))
            }
        }
        let t = try XCTUnwrap(g["timing"] as? [String: Any])
        XCTAssertEqual(report.timing.totalSeconds, number(t["total_seconds"]))
        XCTAssertEqual(report.timing.simulationSeconds, number(t["simulation_seconds"]))
        XCTAssertEqual(report.timing.latentsSimulated, t["latents_simulated"] as? Int)
        XCTAssertEqual(report.timing.latentsReused, t["latents_reused"] as? Int)
        XCTAssertEqual(report.timing.predictions, t["predictions"] as? Int)
        XCTAssertEqual(report.timing.forwardSeconds, number(t["forward_seconds"]))
        XCTAssertEqual(report.timing.forwardTokens, t["forward_tokens"] as? Int)
    }
}

/// JSON read into Any (String, Int, Double, Bool, NSNull, [Any], [String: Any]) with every number
/// parsed exactly: JSONSerialization on Linux can miss the nearest Double by an ulp, JSONDecoder
/// does not. A number that reads as an Int is an Int, else a Double.
enum ExactJSON: Decodable {
    case object([String: ExactJSON]), array([ExactJSON]), string(String), int(Int), double(Double), bool(Bool), null

    init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null
        } else if let b = try? c.decode(Bool.self) { self = .bool(b)
        } else if let i = try? c.decode(Int.self) { self = .int(i)
        } else if let d = try? c.decode(Double.self) { self = .double(d)
        } else if let s = try? c.decode(String.self) { self = .string(s)
        } else if let a = try? c.decode([ExactJSON].self) { self = .array(a)
        } else { self = .object(try c.decode([String: ExactJSON].self)) }
    }

    var value: Any {
        switch self {
        case .object(let o): return o.mapValues(\.value)
        case .array(let a): return a.map(\.value)
        case .string(let s): return s
        case .int(let i): return i
        case .double(let d): return d
        case .bool(let b): return b
        case .null: return NSNull()
        }
    }

    static func parse(_ data: Data) throws -> Any { try JSONDecoder().decode(ExactJSON.self, from: data).value }
}
