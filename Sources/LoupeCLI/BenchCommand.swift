import Engine
import Foundation
import Kernels
import Model
import Storage

/// `loupe bench forward`: prefill throughput with its method printed beside the figure.
enum BenchCommand {
    /// Plain English prose, repeated as needed to reach the requested length.
    static let text = """
    The old lighthouse stood at the edge of the harbour, its white paint peeling after a century of storms. \
    Every evening the keeper climbed the ninety-two steps, trimmed the wick, and watched the fishing boats \
    come home across the grey water. In winter the wind rattled the windows so hard that he wrote his log \
    by the light of the lamp itself, noting the ships that passed, the weather, and the price of coal. \
    Years later, when the light was automated, the town turned the keeper's cottage into a small museum, \
    and children still press their faces to the glass to see the great lens turning slowly above them.
    """

    static func run(_ a: inout Arguments) throws {
        let json = a.flag("--json")
        let modelPath = try a.option("--model")
        let tokens = try a.int("--tokens", default: 256, range: 1...8192)
        let runs = try a.int("--runs", default: 7, range: 1...1000)
        let threads = try a.int("--threads", default: Parallel.threads, range: 1...256)
        if a.peekFirst == "ui" { return try UIBenchCommand.run(&a, json: json) }
        if a.peekFirst == "simulate" { Parallel.threads = threads; return try SimulateCommand.bench(&a, json: json, modelPath: modelPath) }
        if a.peekFirst == "kernels" { return try KernelBench.run(&a, json: json, threads: threads, runs: runs) }
        let what = try a.positionals()
        guard what == ["forward"] else {
            throw UserError("bench: say what to measure: `loupe bench forward`, `loupe bench kernels`, `loupe bench ui` or `loupe bench simulate` (got \(what))")
        }
        Parallel.threads = threads

        let s = try Session(modelPath: modelPath, batch: min(tokens, 512), progress: Console.progress)
        var ids = s.tokenizer.encode(text)
        while ids.count < tokens { ids += ids }
        ids = Array(ids.prefix(tokens))
        let cache = s.model.makeCache(capacity: tokens)

        func once() throws -> Double {
            cache.truncate(to: 0)
            let t0 = Clock.now
            try s.model.forward(ids, cache: cache, logits: .last)
            return Clock.now - t0
        }
        _ = try once()  // warm-up: page in weights, size scratch buffers
        var times: [Double] = []
        for _ in 0..<runs { times.append(try once()) }
        times.sort()
        let median = times[times.count / 2]
        let flops = forwardFlops(s.model.config, tokens: tokens)
        let tokPerSec = Double(tokens) / median
        let gflops = flops / median / 1e9
        let peak = Memory.residentMB(peak: true)
        let method = "prefill of \(tokens) tokens from an empty cache, last-position logits only; \(threads) threads; kernels for \(InstructionSet.summary); "
            + "1 warm-up then \(runs) runs, median reported; FLOPs counted as 2·m·n·k of every matmul plus attention"
        if json {
            Console.print(JSON.object([
                ("model", .string(s.path)), ("isa", .string(InstructionSet.compiled.rawValue)), ("gemm_kernel", .string(GemmKernel.native.rawValue)),
                ("tokens", .int(tokens)), ("threads", .int(threads)), ("runs", .int(runs)),
                ("median_s", .number(median)), ("min_s", .number(times.first!)), ("max_s", .number(times.last!)),
                ("tokens_per_s", .number(tokPerSec)), ("gflops_per_s", .number(gflops)),
                ("load_s", .number(s.loadSeconds)), ("peak_rss_mb", .number(peak)), ("method", .string(method)),
                ("ids", .array(ids.map { .int($0) })),
            ]).text)
        } else {
            Console.print(String(format: "prefill: %.1f tokens/s (median %.1f ms, min %.1f, max %.1f), %.1f GFLOP/s",
                                 tokPerSec, median * 1e3, times.first! * 1e3, times.last! * 1e3, gflops))
            Console.print(String(format: "model load: %.2f s; peak resident memory: %.0f MB", s.loadSeconds, peak))
            Console.print("method: " + method)
        }
    }

    /// Floating-point operations of one prefill of `tokens` tokens with last-position logits.
    static func forwardFlops(_ c: LlamaConfig, tokens n: Int) -> Double {
        let T = Double(n), d = Double(c.dim), kv = Double(c.kvDim), ff = Double(c.ffnDim)
        let perTokenPerLayer = 2 * (d * (d + 2 * kv) + d * d + d * 2 * ff + ff * d)
        // scores and weighted values: each query attends to (t + 1) keys, 2 FLOPs per multiply-add.
        let attention = 4 * Double(c.heads * c.headDim) * T * (T + 1) / 2
        return Double(c.layers) * (T * perTokenPerLayer + attention) + 2 * d * Double(c.vocabSize)
    }
}
