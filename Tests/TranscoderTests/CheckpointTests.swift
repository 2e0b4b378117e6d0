import Foundation
import Formats
import Kernels
import LoupeTestSupport
import XCTest
@testable import Transcoder

final class CheckpointTests: XCTestCase {
    let cfg = TranscoderConfig(dIn: 16, numLatents: 48, k: 5, skipConnection: true)

    /// A transcoder with every parameter random (so a lost or swapped tensor shows).
    func randomTranscoder(seed: UInt64) -> Transcoder {
        var rng = SeededRNG(seed: seed)
        let t = Transcoder(config: cfg, seed: seed)
        for (_, _, buf) in t.namedParameters { for i in 0..<buf.count { buf[i] = 0.3 * rng.normal() } }
        t.parametersDidChange()
        return t
    }

    func bits(_ b: FloatBuffer) -> [UInt32] { b.array.map(\.bitPattern) }

    func testSaveLoadIsBitIdentical() throws {
        let t = randomTranscoder(seed: 1)
        let dir = temporaryPath("save")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try t.save(directory: dir)
        try t.save(directory: dir)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir).sorted(), ["cfg.json", "sae.safetensors"])
        let u = try Transcoder.load(directory: dir)
        XCTAssertEqual(u.config, t.config)
        for (a, b) in zip(t.namedParameters, u.namedParameters) {
            XCTAssertEqual(a.name, b.name)
            XCTAssertEqual(bits(a.buffer), bits(b.buffer), a.name)
        }
        var rng = SeededRNG(seed: 2)
        let x = normalBuffer(10 * 16, &rng)
        let y1 = FloatBuffer(count: 160), y2 = FloatBuffer(count: 160)
        t.forward(x.pointer, rows: 10, into: y1.pointer)
        u.forward(x.pointer, rows: 10, into: y2.pointer)
        XCTAssertEqual(bits(y1), bits(y2))
        XCTAssertGreaterThan(y1.array.map(abs).max()!, 0.1)
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/cfg.json"))) as! [String: Any]
        XCTAssertEqual(Set(json.keys), ["activation", "d_in", "expansion_factor", "k", "multi_topk", "normalize_decoder",
                                        "num_latents", "skip_connection", "transcode"])
    }

    /// A trainer's state whose cfg.json says transcode=false (the trainer's precondition, which
    /// -O keeps) is a one-line error naming the key, not a trap.
    func testResumeOfAnAutoencoderStateIsATypedError() throws {
        let a = TranscoderTrainer(transcoder: Transcoder(config: cfg, seed: 4), options: TrainerOptions(), totalSteps: 10)
        let dir = temporaryPath("state-autoencoder")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try a.saveState(directory: dir)
        let url = URL(fileURLWithPath: dir + "/cfg.json")
        var json = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        json["transcode"] = false
        try JSONSerialization.data(withJSONObject: json).write(to: url)
        XCTAssertThrowsError(try TranscoderTrainer.resume(directory: dir)) {
            XCTAssertEqual($0 as? TranscoderError, .badConfig(file: dir + "/cfg.json", key: "transcode",
                                                              reason: "must be true for a trainer's state (Loupe trains transcoders)"))
        }
    }

    func testResumeContinuesIdentically() throws {
        var rng = SeededRNG(seed: 3)
        let rows = 8
        let batches = (0..<6).map { _ in (normalBuffer(rows * 16, &rng), normalBuffer(rows * 16, &rng)) }
        let opts = TrainerOptions(warmupSteps: 2, auxkAlpha: 0.25, deadThresholdTokens: 10)
        let a = TranscoderTrainer(transcoder: Transcoder(config: cfg, seed: 4), options: opts, totalSteps: 10)
        for (x, y) in batches.prefix(4) { a.step(x: x.pointer, y: y.pointer, rows: rows) }
        XCTAssertGreaterThan(a.deadLatents.count, 0, "some latents are dead, so AuxK state matters")
        let dir = temporaryPath("state")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try a.saveState(directory: dir)
        let b = try TranscoderTrainer.resume(directory: dir)
        XCTAssertEqual(b.stepCount, 4)
        XCTAssertEqual(b.options, opts)
        XCTAssertEqual(b.tokensSinceFired, a.tokensSinceFired)
        for (x, y) in batches.suffix(2) {
            let sa = a.step(x: x.pointer, y: y.pointer, rows: rows), sb = b.step(x: x.pointer, y: y.pointer, rows: rows)
            XCTAssertEqual(sa, sb)
            XCTAssertGreaterThan(sa.auxk, 0)
            XCTAssertGreaterThan(sa.learningRate, 0)
        }
        for (p, q) in zip(a.transcoder.namedParameters, b.transcoder.namedParameters) {
            XCTAssertEqual(bits(p.buffer), bits(q.buffer), p.name)
        }
        for (p, q) in zip(a.moments, b.moments) {
            XCTAssertEqual(bits(p.m), bits(q.m))
            XCTAssertEqual(bits(p.v), bits(q.v))
        }
    }

    /// Saves a good checkpoint, lets `damage` edit it, and returns the load error's message.
    func loadError(_ damage: (String) throws -> Void) throws -> String {
        let dir = temporaryPath("bad")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try randomTranscoder(seed: 5).save(directory: dir)
        try damage(dir)
        do {
            _ = try Transcoder.load(directory: dir)
            XCTFail("loaded a damaged checkpoint")
            return ""
        } catch {
            return "\(error)"
        }
    }

    func rewriteTensors(_ dir: String, _ edit: (inout [(name: String, shape: [Int], values: [Float])]) -> Void) throws {
        let f = try SafetensorsFile(path: dir + "/sae.safetensors")
        var list: [(name: String, shape: [Int], values: [Float])] = try f.tensors.keys.sorted().map { ($0, f.tensors[$0]!.shape, try f.floats($0)) }
        edit(&list)
        try SafetensorsFile.write(list, to: dir + "/sae.safetensors")
    }

    func rewriteConfig(_ dir: String, _ edit: (inout [String: Any]) -> Void) throws {
        let url = URL(fileURLWithPath: dir + "/cfg.json")
        var json = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        edit(&json)
        try JSONSerialization.data(withJSONObject: json).write(to: url)
    }

    func testDamagedCheckpointsNameTheirFault() throws {
        var msg = try loadError { dir in try rewriteTensors(dir) { $0.removeAll { $0.name == "W_dec" } } }
        XCTAssertTrue(msg.contains("sae.safetensors") && msg.contains("'W_dec' is missing"), msg)

        msg = try loadError { dir in
            try rewriteTensors(dir) { l in
                let i = l.firstIndex { $0.name == "encoder.weight" }!
                l[i] = (l[i].name, [16, 48], l[i].values)
            }
        }
        XCTAssertTrue(msg.contains("'encoder.weight' has shape [16, 48], expected [48, 16]"), msg)

        msg = try loadError { dir in try rewriteConfig(dir) { $0["skip_connection"] = false } }
        XCTAssertTrue(msg.contains("unexpected tensor 'W_skip'"), msg)

        msg = try loadError { dir in try rewriteConfig(dir) { $0.removeValue(forKey: "d_in") } }
        XCTAssertTrue(msg.contains("cfg.json") && msg.contains("'d_in'") && msg.contains("missing"), msg)

        msg = try loadError { dir in try rewriteConfig(dir) { $0["k"] = "five" } }
        XCTAssertTrue(msg.contains("cfg.json: key 'k'"), msg)

        msg = try loadError { dir in try rewriteConfig(dir) { $0["k"] = 100 } }
        XCTAssertTrue(msg.contains("key 'k': must be in 1...48, got 100"), msg)

        msg = try loadError { dir in try rewriteConfig(dir) { $0["activation"] = "gelu" } }
        XCTAssertTrue(msg.contains("key 'activation'"), msg)

        msg = try loadError { dir in try Data("{not json".utf8).write(to: URL(fileURLWithPath: dir + "/cfg.json")) }
        XCTAssertTrue(msg.contains("cfg.json") && msg.contains("not a JSON object"), msg)

        msg = try loadError { dir in
            let url = URL(fileURLWithPath: dir + "/sae.safetensors")
            try Data(contentsOf: url).prefix(100).write(to: url)
        }
        XCTAssertTrue(msg.contains("sae.safetensors"), msg)
    }

    func testConfigToleratesExtraKeysAndUsesSparsifyDefaults() throws {
        let dir = temporaryPath("cfg")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/cfg.json"
        try Data(#"{"d_in": 8, "transcode": true, "some_future_field": [1, 2], "expansion_factor": 4}"#.utf8)
            .write(to: URL(fileURLWithPath: path))
        let c = try TranscoderConfig.read(path: path)
        XCTAssertEqual(c.latents, 32)
        XCTAssertEqual(c.k, 32)
        XCTAssertEqual(c.activation, "topk")
        XCTAssertTrue(c.normalizeDecoder)
        XCTAssertFalse(c.skipConnection)
    }
}
