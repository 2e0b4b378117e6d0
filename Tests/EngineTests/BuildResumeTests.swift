import Foundation
import LoupeTestSupport
import XCTest
@testable import Engine
@testable import Storage

/// `loupe build` run as a user runs it, on the real model with a small corpus and transcoder:
/// killed at several points and rerun, it must end with exactly what an uninterrupted run makes.
final class BuildResumeTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-build-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    var binary: URL { BuildProducts.executable("loupe") }

    /// 60 copies of the fixture corpus.
    func corpusFile() throws -> String {
        let path = dir.appendingPathComponent("corpus.txt").path
        try TinyWorkspace.writeCorpus(to: path, copies: 60)
        return path
    }

    func arguments(_ workspace: String, _ corpus: String) -> [String] {
        ["build", "--workspace", workspace, "--corpus", corpus, "--tokens", "8192", "--latents", "256", "--k", "8", "--eval-windows", "8", "--no-simulator"]
    }

    @discardableResult
    func run(_ args: [String], killAfter seconds: Double? = nil) throws -> Int32 {
        let p = Process()
        p.executableURL = binary
        p.arguments = args
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        if let seconds {
            Thread.sleep(forTimeInterval: seconds)
            if p.isRunning { kill(p.processIdentifier, SIGKILL) }
        }
        p.waitUntilExit()
        return p.terminationStatus
    }

    func files(_ workspace: URL) throws -> [String: Data] {
        var out: [String: Data] = [:]
        let base = workspace.path
        for case let path as String in FileManager.default.enumerator(atPath: base)! {
            let full = base + "/" + path
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: full, isDirectory: &isDir), !isDir.boolValue else { continue }
            guard path.hasPrefix("transcoder/") || path.hasPrefix("cache/") || path.hasPrefix("corpus/") || path.hasPrefix("activations/") else { continue }
            out[path] = try Data(contentsOf: URL(fileURLWithPath: full))
        }
        return out
    }

    func testKilledBuildResumesToTheSameResult() throws {
        guard FileManager.default.isExecutableFile(atPath: binary.path) else { throw XCTSkip("no loupe binary beside the tests") }
        let corpus = try corpusFile()
        let a = dir.appendingPathComponent("a"), b = dir.appendingPathComponent("b")
        let t0 = Date()
        XCTAssertEqual(try run(arguments(a.path, corpus)), 0)
        let duration = Date().timeIntervalSince(t0)

        // Kill it again and again (each rerun resumes, so the kills land in later and later steps), then let it finish.
        for fraction in [0.2, 0.2, 0.25, 0.25, 0.3] { try run(arguments(b.path, corpus), killAfter: duration * fraction) }
        XCTAssertEqual(try run(arguments(b.path, corpus)), 0)

        let fa = try files(a), fb = try files(b)
        XCTAssertFalse(fa.isEmpty)
        XCTAssertEqual(Set(fa.keys), Set(fb.keys), "the same files")
        for (name, data) in fa where !name.hasSuffix(".json") { XCTAssertEqual(fb[name], data, "\(name) differs after resuming") }
        XCTAssertFalse(fb.keys.contains { $0.hasSuffix(".part") || $0.contains(".tmp") }, "no temporary files left")

        let ma = try Workspace(directory: a).load(), mb = try Workspace(directory: b).load()
        let ea = try XCTUnwrap(ma.evaluation), eb = try XCTUnwrap(mb.evaluation)
        XCTAssertEqual(ea.fvu, eb.fvu)
        XCTAssertEqual(ea.ceTranscoder, eb.ceTranscoder)
        XCTAssertEqual(ea.ceBase, eb.ceBase)
        XCTAssertGreaterThan(ea.ceZeroAblation, ea.ceBase - 1, "ablation is measured")

        // Every cached latent reads back whole.
        let cache = try LatentCache(directory: b.appendingPathComponent("cache"))
        let records = try cache.allRecords()
        XCTAssertEqual(records.map(\.latent), Array(0..<256))
        let firing = records.filter { $0.count > 0 }
        XCTAssertGreaterThan(firing.count, 128)
        for r in firing {
            XCTAssertEqual(r.histogram.reduce(0, +), r.count)
            XCTAssertEqual(r.quantiles.last, r.max)
            let top = r.windows.filter { $0.kind == 0 }
            XCTAssertFalse(top.isEmpty)
            XCTAssertEqual(top[0].activations[top[0].focus], r.max, accuracy: r.max * 1e-3, "the top window holds the maximum")
        }
    }
}
