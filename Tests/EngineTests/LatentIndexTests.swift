import Foundation
import XCTest
@testable import Engine
@testable import Storage

/// cache/index.bin: built from a synthetic latent cache written by the test, checked against values
/// worked out by hand, reloaded, rebuilt when stale, reported when corrupt; and its load time at 30k latents.
final class LatentIndexTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-index-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    var indexURL: URL { dir.appendingPathComponent("index.bin") }

    /// A cache of `latents` random records in blocks of `blockSize`; record `r` may replace latent r.latent's.
    @discardableResult
    func writeCache(latents: Int, blockSize: Int = 4, windows: Int = 6, special: [LatentRecord] = []) throws -> [LatentRecord] {
        let files = stride(from: 0, to: latents, by: blockSize).map { String(format: "latents-%05d.bin", $0 / blockSize) }
        let m = CacheManifest(latents: latents, k: 2, blockSize: blockSize, displayLength: 4, histogramBins: 2, quantiles: 3,
                              trainTokens: 5000, randomPool: [], files: files)
        var rng = SystemRandomNumberGenerator()
        var records: [LatentRecord] = (0..<latents).map { i in
            let ws = (0..<windows).map { w in
                LatentWindow(corpusWindow: w, start: 0, focus: Int.random(in: 0..<4, using: &rng), kind: w < windows / 2 ? 0 : 1 + w % 10,
                             tokens: (0..<4).map { _ in Int.random(in: 0..<8, using: &rng) }, activations: [0, 1, 2, 3])
            }
            return LatentRecord(latent: i, count: Int.random(in: 0..<100, using: &rng), max: Float(i) + 0.5, mean: Float(i) / 4,
                                histogram: [1, 2], quantiles: [0, 1, 2], promoted: [], suppressed: [], neighbours: [], windows: ws)
        }
        for r in special { records[r.latent] = r }
        for (b, file) in files.enumerated() {
            var data = Data()
            for r in records[b * blockSize..<min((b + 1) * blockSize, latents)] { data.append(LatentRecordCoding.encode(r, manifest: m)) }
            try data.write(to: dir.appendingPathComponent(file))
        }
        try JSONFile.write(m, to: dir.appendingPathComponent("cache.json"))
        return records
    }

    func window(_ tokens: [Int], focus: Int, kind: Int) -> LatentWindow {
        LatentWindow(corpusWindow: 0, start: 0, focus: focus, kind: kind, tokens: tokens, activations: [Float](repeating: 1, count: tokens.count))
    }

    func testBuildMatchesHandComputedValues() throws {
        // Focus tokens of the top windows: 7 7 3 9 3 7 1 2 4 5 → 7 (3×), 3 (2×), then 9 1 2 in first-seen order.
        let focusTokens = [7, 7, 3, 9, 3, 7, 1, 2, 4, 5]
        var ws = focusTokens.map { window([100, $0, 101, 102], focus: 1, kind: 0) }
        ws.append(window([7, 7, 7, 7], focus: 2, kind: 3))  // a quantile window: not counted
        ws.append(window([9, 9, 9, 9], focus: 0, kind: 1))
        let special = LatentRecord(latent: 5, count: 123, max: 4.25, mean: 1.5, histogram: [3, 4], quantiles: [0.5, 1, 4.25],
                                   promoted: [], suppressed: [], neighbours: [], windows: ws)
        let few = LatentRecord(latent: 6, count: 0, max: 0, mean: 0, histogram: [0, 0], quantiles: [0, 0, 0],
                               promoted: [], suppressed: [], neighbours: [], windows: [window([1, 2, 3, 4], focus: 3, kind: 1)])
        try writeCache(latents: 10, special: [special, few])
        let summaries = try LatentIndex.build(cache: LatentCache(directory: dir))
        XCTAssertEqual(summaries.count, 10)
        XCTAssertEqual(summaries[5], LatentSummary(latent: 5, count: 123, density: 123.0 / 5000, max: 4.25, mean: 1.5, topTokens: [7, 3, 9, 1, 2]))
        XCTAssertEqual(summaries[6], LatentSummary(latent: 6, count: 0, density: 0, max: 0, mean: 0, topTokens: []))
        XCTAssertEqual(summaries.map(\.latent), Array(0..<10))
        XCTAssertTrue(FileManager.default.fileExists(atPath: indexURL.path))
    }

    func testLoadRoundTripsAndMatchesRecords() throws {
        let records = try writeCache(latents: 23, blockSize: 5)
        XCTAssertFalse(FileManager.default.fileExists(atPath: indexURL.path))
        let cache = try LatentCache(directory: dir)
        let built = try LatentIndex.load(cache: cache)  // missing: builds and writes it
        let size = try FileManager.default.attributesOfItem(atPath: indexURL.path)[.size] as! Int
        XCTAssertEqual(size, 16 + 23 * 36)
        XCTAssertEqual(try LatentIndex.load(cache: cache), built)
        for r in records {
            let s = built[r.latent]
            XCTAssertEqual([s.latent, s.count], [r.latent, r.count])
            XCTAssertEqual(s.density, Double(r.count) / 5000)
            XCTAssertEqual([s.max, s.mean], [r.max, r.mean])
            // Recount by hand: the focus tokens of the top windows, most frequent first.
            let focus = r.windows.filter { $0.kind == 0 }.map { $0.tokens[$0.focus] }
            let counts = Dictionary(focus.map { ($0, 1) }, uniquingKeysWith: +)
            XCTAssertEqual(Set(s.topTokens).count, s.topTokens.count, "distinct")
            XCTAssertEqual(s.topTokens.count, min(5, counts.count))
            XCTAssertEqual(s.topTokens.map { counts[$0]! }, s.topTokens.map { counts[$0]! }.sorted(by: >))
            XCTAssertEqual(s.topTokens.first.map { counts[$0]! }, counts.values.max())
        }
    }

    func testStaleIndexIsRebuilt() throws {
        try writeCache(latents: 8)
        let first = try LatentIndex.load(cache: LatentCache(directory: dir))
        // The cache is rebuilt with more latents: the index's count no longer matches.
        try writeCache(latents: 12)
        try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSinceNow: -60)],
                                              ofItemAtPath: dir.appendingPathComponent("cache.json").path)
        let second = try LatentIndex.load(cache: LatentCache(directory: dir))
        XCTAssertEqual(second.count, 12)
        XCTAssertNotEqual(Array(second.prefix(8)), first)
        // Same count, but cache.json is newer than the index: rebuilt from the new records.
        let records = try writeCache(latents: 12)
        try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSinceNow: -60)], ofItemAtPath: indexURL.path)
        let third = try LatentIndex.load(cache: LatentCache(directory: dir))
        XCTAssertEqual(third.map(\.count), records.map(\.count))
    }

    func testCorruptIndexIsReportedWithItsName() throws {
        try writeCache(latents: 8)
        let cache = try LatentCache(directory: dir)
        try LatentIndex.build(cache: cache)
        let good = try Data(contentsOf: indexURL)
        for (what, bad) in [("magic", Data("XXXX".utf8) + good.dropFirst(4)), ("size", good.dropLast(3)),
                            ("version", good.prefix(4) + Data([9, 0, 0, 0]) + good.dropFirst(8))] {
            try bad.write(to: indexURL)
            XCTAssertThrowsError(try LatentIndex.load(cache: cache), what) { XCTAssertTrue("\($0)".contains(indexURL.path), "\($0)") }
        }
        try good.write(to: indexURL)
        XCTAssertEqual(try LatentIndex.load(cache: cache).count, 8)
    }

    func testLoadTimeAt30kLatents() throws {
        try writeCache(latents: 30_000, blockSize: 1024, windows: 4)
        let cache = try LatentCache(directory: dir)
        var t = Clock.now
        let built = try LatentIndex.build(cache: cache)
        let buildSeconds = Clock.now - t
        var best = Double.infinity
        for _ in 0..<5 {
            t = Clock.now
            let loaded = try LatentIndex.load(cache: LatentCache(directory: dir))
            best = min(best, Clock.now - t)
            XCTAssertEqual(loaded.count, 30_000)
        }
        XCTAssertEqual(try LatentIndex.load(cache: cache), built)
        print(String(format: "index.bin, 30000 synthetic latents: load %.2f ms (best of 5, cache.json read included), build %.0f ms",
                     best * 1000, buildSeconds * 1000))
    }

    /// The demo workspace, if built: its index loads in milliseconds and agrees with the records.
    func testDemoWorkspaceIndex() throws {
        let cacheDir = Workspace.defaultDirectory.appendingPathComponent("cache")
        guard FileManager.default.fileExists(atPath: cacheDir.appendingPathComponent("cache.json").path) else {
            throw XCTSkip("no demo workspace at \(Workspace.defaultDirectory.path)")
        }
        let cache = try LatentCache(directory: cacheDir)
        var t = Clock.now
        let summaries = try LatentIndex.load(cache: cache)
        let first = Clock.now - t
        var best = Double.infinity
        for _ in 0..<5 {
            t = Clock.now
            _ = try LatentIndex.load(cache: LatentCache(directory: cacheDir))
            best = min(best, Clock.now - t)
        }
        XCTAssertEqual(summaries.count, cache.manifest.latents)
        for latent in [0, summaries.count / 2, summaries.count - 1] {
            XCTAssertEqual(summaries[latent], LatentIndex.summary(try cache.record(latent), trainTokens: cache.manifest.trainTokens))
        }
        print(String(format: "index.bin, demo workspace (%d latents): load %.2f ms (best of 5); first call %.0f ms",
                     summaries.count, best * 1000, first * 1000))
    }
}
