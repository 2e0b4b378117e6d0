import Foundation
import Kernels
import LoupeTestSupport
import XCTest
@testable import Transcoder

/// Throughput at the real shapes (M = 4608, d = 576, k = 32, skip on, 1024-row batches) on random
/// data. Runs a few steps in release builds (skipped in debug, where it takes minutes); set
/// LOUPE_TC_BENCH=<steps> for a longer timed run.
final class TrainerBenchmarkTests: XCTestCase {
    func testRealShapeSteps() throws {
        #if DEBUG
        throw XCTSkip("the real-shape benchmark runs in release builds")
        #else
        measureTraining()
        #endif
    }

    func measureTraining() {
        let steps = Int(ProcessInfo.processInfo.environment["LOUPE_TC_BENCH"] ?? "") ?? 4
        let d = 576, rows = 1024
        let cfg = TranscoderConfig(dIn: d, numLatents: 4608, k: 32, skipConnection: true)
        let t = Transcoder(config: cfg, seed: 1)
        var rng = SeededRNG(seed: 5)
        let x = normalBuffer(rows * d, &rng), y = normalBuffer(rows * d, &rng)
        var opts = TrainerOptions(warmupSteps: 0, deadThresholdTokens: 2048)
        opts.auxkAlpha = 1.0 / 32
        let trainer = TranscoderTrainer(transcoder: t, options: opts, totalSteps: 10_000)
        var first: StepStats? = nil, last: StepStats? = nil
        let start = Date()
        for i in 0..<steps {
            let s = trainer.step(x: x.pointer, y: y.pointer, rows: rows)
            if i == 0 { first = s }
            last = s
        }
        let secs = Date().timeIntervalSince(start)
        print(String(format: "transcoder train: %d steps of %d rows in %.2f s: %.2f steps/s, %.0f tokens/s (fvu %.4f → %.4f, dead %.3f, auxk %.4f)",
                     steps, rows, secs, Double(steps) / secs, Double(steps * rows) / secs,
                     first!.fvu, last!.fvu, last!.deadFraction, last!.auxk))
        XCTAssertEqual(Double(first!.fvu), 1.0, accuracy: 0.01, "zero decoder + mean-initialised b_dec explains nothing")
        XCTAssertLessThan(last!.fvu, first!.fvu)

        let tick = Date()
        for i in 0..<steps {
            for j in stride(from: 0, to: 4608, by: 2) { trainer.tokensSinceFired[j] = 1 << 40 }
            let s = trainer.step(x: x.pointer, y: y.pointer, rows: rows)
            if i == 0 { XCTAssertGreaterThanOrEqual(s.deadFraction, 0.5) }
        }
        let secsDead = Date().timeIntervalSince(tick)
        print(String(format: "  with half the latents dead (AuxK k_aux = 288): %.2f steps/s, %.0f tokens/s",
                     Double(steps) / secsDead, Double(steps * rows) / secsDead))
    }
}
