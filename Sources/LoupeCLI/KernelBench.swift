import Engine
import Foundation
import Kernels
import Storage

/// `loupe bench kernels`: Loupe's GEMM beside numpy's sgemm (OpenBLAS) on the model's and the
/// transcoder's shapes, the two measured alternately in one run.
enum KernelBench {
    /// SmolLM2-135M's layer products at a 256-token prefill (attention q|k|v, its output, the MLP's
    /// gate|up and down) and the demo transcoder's encoder (4,608 latents) over 256 rows.
    static let shapes: [(name: String, m: Int, n: Int, k: Int)] = [
        ("attn qkv", 256, 960, 576), ("attn out", 256, 576, 576), ("mlp gate|up", 256, 3072, 576),
        ("mlp down", 256, 576, 1536), ("mlp up (1536)", 256, 1536, 576), ("transcoder enc", 256, 4608, 576),
    ]

    static func run(_ a: inout Arguments, json: Bool, threads: Int, runs: Int) throws {
        let rounds = try a.int("--rounds", default: 3, range: 1...20)
        let python = try a.option("--python") ?? "python3"
        let what = try a.positionals()
        guard what == ["kernels"] else { throw UserError("bench kernels: unexpected \(what.dropFirst().joined(separator: " "))") }
        let script = Paths.dataDirectory.deletingLastPathComponent().appendingPathComponent("Tests/Scripts/bench/numpy_sgemm.py")
        guard FileManager.default.fileExists(atPath: script.path) else {
            throw UserError("bench kernels: \(script.path) is missing; run it from a Loupe checkout")
        }
        Parallel.threads = threads
        var loupe = Array(repeating: [Double](), count: shapes.count)
        var numpy = Array(repeating: [Double](), count: shapes.count)
        var blas = ""
        for round in 1...rounds {
            Console.progress("round \(round)/\(rounds): Loupe")
            for (i, s) in shapes.enumerated() { loupe[i].append(gflops(m: s.m, n: s.n, k: s.k, runs: runs)) }
            Console.progress("round \(round)/\(rounds): numpy")
            let reply = try numpyRound(python: python, script: script.path, threads: threads, runs: runs)
            blas = reply.blas
            for i in shapes.indices { numpy[i].append(reply.gflops[i]) }
        }
        // Each side's best round: both are medians of `runs` timings, the best round the least disturbed.
        let best = { (v: [Double]) in v.max() ?? 0 }
        let method = "y = x·Wᵀ in fp32 on \(threads) threads; each figure the median of \(runs) timings (each ≥ 20 ms of repeats) "
            + "after a warm-up; \(rounds) rounds, Loupe then numpy in each, the best round of each side reported; "
            + "GFLOP/s = 2·m·n·k / time"
        if json {
            Console.print(JSON.object([
                ("isa", .string(InstructionSet.compiled.rawValue)), ("gemm_kernel", .string(GemmKernel.native.rawValue)),
                ("threads", .int(threads)), ("blas", .string(blas)),
                ("shapes", .array(shapes.indices.map { i in
                    .object([("name", .string(shapes[i].name)), ("m", .int(shapes[i].m)), ("n", .int(shapes[i].n)), ("k", .int(shapes[i].k)),
                             ("loupe_gflops", .number(best(loupe[i]))), ("numpy_gflops", .number(best(numpy[i]))),
                             ("ratio", .number(best(loupe[i]) / best(numpy[i]))),
                             ("loupe_rounds", .array(loupe[i].map { .number($0) })), ("numpy_rounds", .array(numpy[i].map { .number($0) }))])
                })),
                ("method", .string(method)),
            ]).text)
            return
        }
        Console.print("Loupe compiled for \(InstructionSet.summary); numpy: \(blas)")
        func pad(_ s: String, _ w: Int, left: Bool = false) -> String {
            let fill = String(repeating: " ", count: max(0, w - s.count))
            return left ? s + fill : fill + s
        }
        Console.print(pad("shape", 16, left: true) + pad("m×n×k", 16) + pad("Loupe", 10) + pad("numpy", 10) + pad("ratio", 8))
        for (i, s) in shapes.enumerated() {
            Console.print(pad(s.name, 16, left: true) + pad("\(s.m)×\(s.n)×\(s.k)", 16) + pad(String(format: "%.1f", best(loupe[i])), 10)
                          + pad(String(format: "%.1f", best(numpy[i])), 10) + pad(String(format: "%.2f×", best(loupe[i]) / best(numpy[i])), 8))
        }
        Console.print("(GFLOP/s)")
        Console.print("GFLOP/s per round — Loupe: " + loupe.map { $0.map { String(format: "%.0f", $0) }.joined(separator: "/") }.joined(separator: ", ")
                      + "; numpy: " + numpy.map { $0.map { String(format: "%.0f", $0) }.joined(separator: "/") }.joined(separator: ", "))
        Console.print("method: " + method)
    }

    /// Median GFLOP/s of Loupe's Gemm on random data of one shape.
    static func gflops(m: Int, n: Int, k: Int, runs: Int) -> Double {
        var rng = SplitMix64(seed: UInt64(m * 31 + n * 7 + k))
        let x = FloatBuffer(count: m * k), w = FloatBuffer(count: n * k), y = FloatBuffer(count: m * n)
        for i in 0..<x.count { x[i] = rng.uniform(-1, 1) }
        for i in 0..<w.count { w[i] = rng.uniform(-1, 1) }
        let packed = PackedMatrix(rowMajor: w.pointer, rows: n, cols: k)
        let once = { Gemm.matmul(x: x.pointer, ldx: k, m: m, w: packed, y: y.pointer, ldy: n) }
        once()
        var reps = 1
        while true {
            let t0 = Clock.now
            for _ in 0..<reps { once() }
            if Clock.now - t0 >= 0.02 { break }
            reps *= 2
        }
        var times: [Double] = []
        for _ in 0..<runs {
            let t0 = Clock.now
            for _ in 0..<reps { once() }
            times.append((Clock.now - t0) / Double(reps))
        }
        times.sort()
        return 2 * Double(m * n * k) / times[times.count / 2] / 1e9
    }

    /// One run of the numpy script on every shape.
    static func numpyRound(python: String, script: String, threads: Int, runs: Int) throws -> (blas: String, gflops: [Double]) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = [python, script, "--threads", "\(threads)", "--runs", "\(runs)", "--shapes"] + shapes.map { "\($0.m),\($0.n),\($0.k)" }
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        do { try p.run() } catch {
            throw UserError("bench kernels: could not start \(python) (\(error.localizedDescription)); numpy is the yardstick: install python3 and numpy, or pass --python PATH")
        }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        let errText = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        guard p.terminationStatus == 0,
              let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let list = obj["shapes"] as? [[String: Any]], list.count == shapes.count else {
            let last = errText.split(separator: "\n").last.map(String.init) ?? "no output"
            throw UserError("bench kernels: the numpy side failed (\(last.prefix(160))); is numpy installed for \(python)?")
        }
        return (obj["blas"] as? String ?? "?", list.map { ($0["gflops"] as? Double) ?? 0 })
    }
}
