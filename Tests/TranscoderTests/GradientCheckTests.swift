import Foundation
import Kernels
import LoupeTestSupport
import XCTest
@testable import Transcoder

/// The trainer's analytic gradients of FVU + α·AuxK against central differences of an independent
/// Double-precision forward, on a tiny transcoder (d = 8, M = 24, k = 3, skip connection).
final class GradientCheckTests: XCTestCase {
    let d = 8, m = 24, k = 3, rows = 6

    /// The loss in Double: sparsify's forward with e detached in AuxK. With `frozenAux`, AuxK's
    /// activations are those constants (sparsify's encoder passes AuxK no gradient).
    func loss(_ p: [String: [Double]], x: [Double], y: [Double], dead: [Int], alpha: Double,
              e0: [Double]?, frozenAux: [[Double]]?) -> (loss: Double, e: [Double], aux: [[Double]]) {
        let (wE, bE, wD, bD, wS) = (p["encoder.weight"]!, p["encoder.bias"]!, p["W_dec"]!, p["b_dec"]!, p["W_skip"]!)
        var mean = [Double](repeating: 0, count: d)
        for b in 0..<rows { for i in 0..<d { mean[i] += y[b * d + i] / Double(rows) } }
        var total = 0.0, l2 = 0.0, auxSum = 0.0
        var eAll = [Double](), auxActs = [[Double]]()
        let kAux = min(d / 2, dead.count), scale = min(Double(dead.count) / Double(d / 2), 1)
        for b in 0..<rows {
            let xb = Array(x[(b * d)..<(b * d + d)])
            let pre = (0..<m).map { j in max(0, bE[j] + (0..<d).reduce(0.0) { $0 + wE[j * d + $1] * xb[$1] }) }
            let top = (0..<m).sorted { pre[$0] > pre[$1] }.prefix(k)
            var yh = bD
            for j in top { for i in 0..<d { yh[i] += pre[j] * wD[j * d + i] } }
            for i in 0..<d { for jj in 0..<d { yh[i] += wS[i * d + jj] * xb[jj] } }
            for i in 0..<d {
                let e = y[b * d + i] - yh[i]
                eAll.append(e)
                l2 += e * e
                total += (y[b * d + i] - mean[i]) * (y[b * d + i] - mean[i])
            }
            guard kAux > 0 else { continue }
            let auxIdx = dead.sorted { pre[$0] > pre[$1] }.prefix(kAux)
            let acts = frozenAux?[b] ?? auxIdx.map { pre[$0] }
            auxActs.append(acts)
            var eh = bD
            for (s, j) in auxIdx.enumerated() { for i in 0..<d { eh[i] += acts[s] * wD[j * d + i] } }
            let eb = e0 ?? eAll
            for i in 0..<d { auxSum += (eh[i] - eb[b * d + i]) * (eh[i] - eb[b * d + i]) }
        }
        return (l2 / total + alpha * scale * auxSum / total, eAll, auxActs)
    }

    func check(auxkTrainsEncoder: Bool) throws {
        var rng = SeededRNG(seed: 11)
        let t = Transcoder(config: TranscoderConfig(dIn: d, numLatents: m, k: k, skipConnection: true), seed: 3)
        for (_, _, buf) in t.namedParameters { for i in 0..<buf.count { buf[i] = 0.4 * rng.normal() } }
        for j in 0..<m { t.encoderBias[j] += 1.5 }
        t.parametersDidChange()
        let x = normalBuffer(rows * d, &rng), y = normalBuffer(rows * d, &rng)
        let alpha: Float = 0.5
        let trainer = TranscoderTrainer(transcoder: t, options: TrainerOptions(auxkAlpha: alpha, deadThresholdTokens: 100,
                                                                               auxkTrainsEncoder: auxkTrainsEncoder), totalSteps: 10)
        let dead = [2, 5, 7, 11, 19, 23]
        for j in dead { trainer.tokensSinceFired[j] = 1000 }
        let stats = trainer.computeGradients(x: x.pointer, y: y.pointer, rows: rows)
        XCTAssertEqual(stats.dead, dead.count)
        XCTAssertGreaterThan(stats.auxk, 0)

        var analytic: [String: [Float]] = [:]
        var gE = [Float](repeating: 0, count: m * d), gD = gE, gB = [Float](repeating: 0, count: m)
        for j in 0..<m { gB[j] = trainer.latentGradient(j, x: x.pointer, enc: &gE[j * d], dec: &gD[j * d]) }
        var gBias = [Float](repeating: 0, count: d), gSkip = [Float](repeating: 0, count: d * d)
        trainer.denseGradients(x: x.pointer, rows: rows, bias: &gBias, skip: &gSkip)
        analytic = ["encoder.weight": gE, "encoder.bias": gB, "W_dec": gD, "b_dec": gBias, "W_skip": gSkip]

        var p: [String: [Double]] = [:]
        for (name, _, buf) in t.namedParameters { p[name] = buf.array.map(Double.init) }
        let xd = x.array.map(Double.init), yd = y.array.map(Double.init)
        let base = loss(p, x: xd, y: yd, dead: dead, alpha: Double(alpha), e0: nil, frozenAux: nil)
        XCTAssertEqual(Double(stats.fvu) + Double(alpha) * Double(stats.auxk), base.loss, accuracy: 1e-5)
        let frozen = auxkTrainsEncoder ? nil : base.aux
        let h = 1e-5
        var checked = 0, auxOnly = 0
        for (name, values) in p {
            for i in values.indices {
                var q = p
                q[name]![i] += h
                let up = loss(q, x: xd, y: yd, dead: dead, alpha: Double(alpha), e0: base.e, frozenAux: frozen).loss
                q[name]![i] -= 2 * h
                let down = loss(q, x: xd, y: yd, dead: dead, alpha: Double(alpha), e0: base.e, frozenAux: frozen).loss
                let fd = (up - down) / (2 * h)
                let a = Double(analytic[name]![i])
                XCTAssertEqual(a, fd, accuracy: 2e-5 + 1e-3 * abs(fd), "\(name)[\(i)]")
                checked += 1
                if name == "W_dec", dead.contains(i / d), abs(fd) > 1e-4 { auxOnly += 1 }
            }
        }
        XCTAssertEqual(checked, 2 * m * d + m + d + d * d)
        XCTAssertGreaterThan(auxOnly, 0, "AuxK reaches the dead latents' decoder rows")
    }

    func testSparsifyGradients() throws { try check(auxkTrainsEncoder: false) }

    func testGradientsWithAuxKIntoEncoder() throws { try check(auxkTrainsEncoder: true) }
}
