import Foundation
import Kernels
import Model
import Storage
import Tokenizer

/// Loupe's own simulator backend: the session's model reads a `SimulatorPrompt` and the activation
/// of a token is the expected digit of its next-token distribution at the readout.
///
/// How the work is shared:
/// 1. The prompt's prefix (instructions, examples, explanation) runs once per `simulate` call into
///    a prefix cache, and only from the first token where it differs from the previous call's
///    prefix: the part before the explanation is the same for every latent, so it runs once.
/// 2. Each prompt's suffix runs in a cache slot that holds a copy of that prefix; a slot is copied
///    once and afterwards rewound to the prefix (`truncate`) for the next suffix, since a forward
///    pass only appends.
/// 3. Suffixes run batched (`forward(batch:caches:)`): consecutive prompts whose suffixes fit in one
///    chunk of the model's batch share the GEMMs; a suffix longer than a chunk runs alone, chunked.
/// Logits are computed only at each suffix's readouts (`forward(…logitsAt:)`): the rows at the tabs all
/// at once, the last row for last token. `shouldStop` is polled before every batch.
///
/// The model is not reentrant: calls are serialised here, and nothing else may run the session's
/// model meanwhile (the engine keeps both on its one worker).
public final class LocalSimulator: SimulatorBackend, @unchecked Sendable {
    public let session: Session
    /// "local <model file name>".
    public let name: String
    /// Token ids of "0"…"9" in the simulator's vocabulary, in digit order.
    public let digitIds: [Int]
    /// Where the templates are read from, at every call (so an edited file applies at once).
    public let promptDirectory: URL
    /// Most prompts run in one batched forward pass (each holds a cache slot of prefix + suffix).
    public var maxSequencesPerBatch = 16
    /// The model batch (rows per forward chunk) the simulating commands open their session with: a
    /// latent's 10 scoring windows then run in 2 passes rather than 10, which measured 11% faster per
    /// latent than 256 rows on the demo workspace (`loupe score`, 10 latents, 2 threads).
    public static let batchRows = 1024
    private let lock = NSLock()
    /// The last prefix run and the suffixes' slots (see `run`).
    private let prompts = PromptCache()

    /// Finds the digit tokens; throws unless each of "0"…"9" is a single token.
    public init(session: Session, promptDirectory: URL = SimulatorTemplate.directory) throws {
        self.session = session
        self.promptDirectory = promptDirectory
        let file = URL(fileURLWithPath: session.path).lastPathComponent
        name = "local " + (file.hasSuffix(".gguf") ? String(file.dropLast(5)) : file)
        digitIds = try (0...9).map { d in
            let ids = session.tokenizer.encode(String(d), parseSpecial: false)
            guard ids.count == 1 else {
                throw SimulatorError.digitNotSingleToken(model: session.path, digit: d, ids: ids)
            }
            return ids[0]
        }
    }

    /// What one simulation read, per context and token.
    public struct Output: Sendable {
        /// Expected digit 0…9.
        public var expected: [[Float]]
        /// Probability mass the full next-token distribution put on the ten digits (a diagnostic:
        /// low mass means the model did not expect a digit there).
        public var digitMass: [[Float]]
        /// Prefix tokens run (those not shared with the previous call's prefix), and suffix tokens.
        public var prefixTokens: Int
        public var suffixTokens: Int
        /// Batched forward passes over suffixes.
        public var batches: Int

        public init(expected: [[Float]], digitMass: [[Float]], prefixTokens: Int, suffixTokens: Int, batches: Int) {
            self.expected = expected
            self.digitMass = digitMass
            self.prefixTokens = prefixTokens
            self.suffixTokens = suffixTokens
            self.batches = batches
        }
    }

    public func simulate(explanation: String, contexts: [SimulationContext], mode: SimulationMode,
                         shouldStop: () -> Bool) throws -> [[Float]] {
        try run(explanation: explanation, contexts: contexts, mode: mode, shouldStop: shouldStop).expected
    }

    /// The prompt this simulator builds for an explanation (templates read now).
    public func prompt(explanation: String, mode: SimulationMode) throws -> SimulatorPrompt {
        try SimulatorPrompt(template: SimulatorTemplate.load(mode, directory: promptDirectory), mode: mode,
                            explanation: explanation, tokenizer: session.tokenizer, chat: session.chat)
    }

    /// Simulates with the prefix cache and batching, keeping the diagnostics.
    public func run(explanation: String, contexts: [SimulationContext], mode: SimulationMode,
                    shouldStop: () -> Bool = { false }) throws -> Output {
        try lock.withLock {
            let prompt = try prompt(explanation: explanation, mode: mode)
            let jobs = Self.jobs(prompt, contexts)
            var out = Self.emptyOutput(contexts, prefixTokens: prompt.prefix.count)
            guard !jobs.isEmpty else { return out }
            let model = session.model, p = prompt.prefix.count
            let longest = jobs.map(\.suffix.tokens.count).max()!
            guard p + longest <= model.config.contextLength else {
                throw SimulatorError.promptTooLong(positions: p + longest, context: model.config.contextLength)
            }
            out.prefixTokens = try prompts.prepare(prompt.prefix, suffix: longest, model: model)
            let slot = { (i: Int) in self.prompts.slot(i, model: model) }
            var j = 0
            while j < jobs.count {
                if shouldStop() { throw CancellationError() }
                var end = j, rows = 0
                while end < jobs.count, end - j < maxSequencesPerBatch, rows + jobs[end].suffix.tokens.count <= model.batch {
                    rows += jobs[end].suffix.tokens.count
                    end += 1
                }
                if end == j {
                    // Longer than a chunk: alone, through the chunked single-sequence forward.
                    let job = jobs[j]
                    try model.forward(job.suffix.tokens, cache: slot(0), logitsAt: job.suffix.readouts) { row, logits in
                        self.read(job, row: row, logits: logits, into: &out)
                    }
                    end = j + 1
                } else {
                    let batch = Array(jobs[j..<end])
                    try model.forward(batch: batch.map(\.suffix.tokens), caches: batch.indices.map(slot),
                                      logitsAt: batch.map(\.suffix.readouts)) { n, row, logits in
                        self.read(batch[n], row: row, logits: logits, into: &out)
                    }
                }
                out.suffixTokens += jobs[j..<end].reduce(0) { $0 + $1.suffix.tokens.count }
                out.batches += 1
                j = end
            }
            return out
        }
    }

    /// The reference path: every full prompt (prefix + suffix) from an empty cache, one at a time,
    /// all logits. Slow; for the equivalence test and the bench's cost of the paper's protocol.
    public func runUncached(explanation: String, contexts: [SimulationContext], mode: SimulationMode,
                            limit: Int = .max, shouldStop: () -> Bool = { false }) throws -> Output {
        try lock.withLock {
            let prompt = try prompt(explanation: explanation, mode: mode)
            var out = Self.emptyOutput(contexts, prefixTokens: prompt.prefix.count)
            let p = prompt.prefix.count
            for job in Self.jobs(prompt, contexts).prefix(limit) {
                if shouldStop() { throw CancellationError() }
                let tokens = prompt.prefix + job.suffix.tokens
                let cache = session.model.makeCache(capacity: tokens.count)
                let shifted = Job(context: job.context, positions: job.positions,
                                  suffix: .init(text: job.suffix.text, tokens: tokens, readouts: job.suffix.readouts.map { $0 + p }))
                try session.model.forward(tokens, cache: cache, logits: .all) { first, logits, rows in
                    self.read(shifted, first: first, logits: logits, rows: rows, into: &out)
                }
                out.suffixTokens += job.suffix.tokens.count
                out.batches += 1
            }
            return out
        }
    }

    /// Expected digit (the distribution renormalised over the ten digit tokens: Σ_d d·softmax(l_digits)_d)
    /// and the raw probability mass the full softmax puts on the digits, from one row of logits.
    public static func readout(_ logits: UnsafePointer<Float>, vocabSize: Int, digits: [Int]) -> (expected: Float, mass: Float) {
        var top = -Float.infinity
        for id in digits { top = max(top, logits[id]) }
        var z: Float = 0, e: Float = 0
        for (d, id) in digits.enumerated() {
            let w = exp(logits[id] - top)
            z += w
            e += w * Float(d)
        }
        let mass = exp(top - Ops.logSumExp(logits, count: vocabSize)) * z
        return (e / z, mass)
    }

    // MARK: prompts to run

    /// One prompt to run: a suffix, and which tokens of which context its readouts give.
    struct Job {
        let context: Int
        let positions: [Int]
        let suffix: SimulatorPrompt.Suffix
    }

    static func jobs(_ prompt: SimulatorPrompt, _ contexts: [SimulationContext]) -> [Job] {
        var jobs: [Job] = []
        for (c, context) in contexts.enumerated() {
            switch prompt.mode {
            case .allAtOnce:
                if !context.tokens.isEmpty { jobs.append(Job(context: c, positions: Array(context.tokens.indices), suffix: prompt.rows(context))) }
            case .lastToken:
                for t in context.tokens.indices { jobs.append(Job(context: c, positions: [t], suffix: prompt.judging(context, position: t))) }
            }
        }
        return jobs
    }

    static func emptyOutput(_ contexts: [SimulationContext], prefixTokens: Int) -> Output {
        let zeros = contexts.map { [Float](repeating: 0, count: $0.tokens.count) }
        return Output(expected: zeros, digitMass: zeros, prefixTokens: prefixTokens, suffixTokens: 0, batches: 0)
    }

    /// Reads the job's readouts that fall in rows first..<first + rows of `logits`.
    private func read(_ job: Job, first: Int, logits: UnsafeBufferPointer<Float>, rows: Int, into out: inout Output) {
        let v = session.model.config.vocabSize
        for readout in job.suffix.readouts where readout >= first && readout < first + rows {
            read(job, row: readout, logits: UnsafeBufferPointer(rebasing: logits[(readout - first) * v..<(readout - first + 1) * v]), into: &out)
        }
    }

    /// Reads the job's readout at `row` from that row's logits.
    private func read(_ job: Job, row: Int, logits: UnsafeBufferPointer<Float>, into out: inout Output) {
        let position = job.positions[job.suffix.readouts.firstIndex(of: row)!]
        let r = Self.readout(logits.baseAddress!, vocabSize: logits.count, digits: digitIds)
        out.expected[job.context][position] = r.expected
        out.digitMass[job.context][position] = r.mass
    }
}
