import Formats
import Kernels

/// Errors a forward pass can meet with bad input (the model itself was checked at load).
public enum ModelError: Error, Equatable, CustomStringConvertible {
    case tokenOutOfRange(id: Int, vocabSize: Int)
    case contextFull(needed: Int, capacity: Int)
    case emptyInput

    public var description: String {
        switch self {
        case let .tokenOutOfRange(id, v): return "token id \(id) is outside the vocabulary (0..<\(v))"
        case let .contextFull(needed, capacity): return "the input needs \(needed) positions but the cache holds \(capacity)"
        case .emptyInput: return "no tokens to run"
        }
    }
}

/// A Llama-architecture transformer: RMSNorm, RoPE on adjacent pairs (GGUF's order), grouped-query
/// causal attention, SwiGLU MLP, optionally tied embeddings.
///
/// Not reentrant: one forward pass at a time (it owns its scratch buffers). The engine keeps it
/// behind a single worker.
public final class LlamaModel: @unchecked Sendable {
    public let config: LlamaConfig
    public let weights: LlamaWeights
    /// Tokens per chunk of a forward pass (the GEMMs' m); longer inputs run in several chunks.
    public let batch: Int
    /// RoPE angles for the positions runs have needed so far: `Limits.ropePositionsAtLoad` (or the
    /// context, if shorter) at load, grown by `check` when a run reaches past it — never sized from
    /// `context_length` alone, which a damaged file can set to anything up to `Limits.contextLength`.
    private var rope: RopeTable
    private let state: RunState

    public init(config: LlamaConfig, weights: LlamaWeights, batch: Int = 256) {
        self.config = config
        self.weights = weights
        self.batch = batch
        rope = RopeTable(headDim: config.headDim, base: Double(config.ropeBase),
                         maxPositions: min(config.contextLength, Limits.ropePositionsAtLoad))
        state = RunState(config: config, batch: batch)
    }

    /// Loads a GGUF file: config, then every weight (checked, dequantized, packed).
    public convenience init(gguf: GGUFFile, batch: Int = 256) throws {
        let config = try LlamaConfig(gguf: gguf)
        self.init(config: config, weights: try LlamaWeights(gguf: gguf, config: config), batch: batch)
    }

    /// A cache for this model, by default as long as its context.
    public func makeCache(capacity: Int? = nil) -> KVCache {
        KVCache(config: config, capacity: min(capacity ?? config.contextLength, config.contextLength))
    }

    /// Runs `tokens` at positions `cache.length…`, appending them to the cache.
    /// `onLogits(firstRow, logits, rows)` receives each chunk's logits (`rows × vocab`, row r being
    /// the token at index firstRow + r of `tokens`) for `.all`, or only the last token's for `.last`.
    public func forward(_ tokens: [Int], cache: KVCache, logits request: LogitsRequest = .last, hooks: ForwardHooks? = nil,
                        onLogits: ((Int, UnsafeBufferPointer<Float>, Int) -> Void)? = nil) throws {
        try run(tokens, cache: cache, rows: request.rows(count: tokens.count), hooks: hooks) { rows, logits in
            onLogits?(rows.first!, logits, rows.count)
        }
    }

    /// Runs `tokens` as `forward(_:cache:logits:)` does, computing logits only at `rows` (indices into
    /// `tokens`, strictly increasing): `onLogits(row, logits)` receives each one's `vocab` logits, in order.
    /// The final layer's attention output and MLP run for those rows alone unless a hook watches that layer.
    public func forward(_ tokens: [Int], cache: KVCache, logitsAt rows: [Int], hooks: ForwardHooks? = nil,
                        onLogits: (Int, UnsafeBufferPointer<Float>) -> Void) throws {
        checkRows(rows, count: tokens.count)
        try run(tokens, cache: cache, rows: rows, hooks: hooks) { rows, logits in
            for (k, row) in rows.enumerated() { onLogits(row, logitsRow(logits, k)) }
        }
    }

    /// Runs independent sequences together, each appending to its own cache (which may already
    /// hold a prefix, e.g. copied from a shared one). Their tokens share the GEMMs; attention stays
    /// within each sequence. Each sequence must fit in one chunk (`batch` tokens).
    /// `onLogits(sequence, firstRow, logits, rows)` as in `forward`, per sequence.
    /// Hooks see the rows of a chunk's sequences concatenated in order.
    public func forward(batch sequences: [[Int]], caches: [KVCache], logits request: LogitsRequest = .last, hooks: ForwardHooks? = nil,
                        onLogits: ((Int, Int, UnsafeBufferPointer<Float>, Int) -> Void)? = nil) throws {
        try run(batch: sequences, caches: caches, rows: sequences.map { request.rows(count: $0.count) }, hooks: hooks) { n, rows, logits in
            onLogits?(n, rows.first!, logits, rows.count)
        }
    }

    /// Runs independent sequences together as `forward(batch:caches:logits:)` does, computing logits only
    /// at `rows[n]` of sequence n (indices into it, strictly increasing): `onLogits(sequence, row, logits)`
    /// receives each one's `vocab` logits, in order. The final layer runs as in `forward(_:cache:logitsAt:)`.
    public func forward(batch sequences: [[Int]], caches: [KVCache], logitsAt rows: [[Int]], hooks: ForwardHooks? = nil,
                        onLogits: (Int, Int, UnsafeBufferPointer<Float>) -> Void) throws {
        precondition(sequences.count == rows.count, "one list of rows per sequence")
        for (seq, r) in zip(sequences, rows) { checkRows(r, count: seq.count) }
        try run(batch: sequences, caches: caches, rows: rows, hooks: hooks) { n, rows, logits in
            for (k, row) in rows.enumerated() { onLogits(n, row, logitsRow(logits, k)) }
        }
    }

    /// The last token's logits.
    public func lastLogits(_ tokens: [Int], cache: KVCache) throws -> [Float] {
        var result: [Float] = []
        try forward(tokens, cache: cache, logits: .last) { _, l, _ in result = Array(l) }
        return result
    }

    /// Per-position next-token cross-entropy (nats) of `tokens` from a fresh cache:
    /// element t is −log p(tokens[t+1] | tokens[...t]); there are tokens.count − 1 of them.
    public func crossEntropies(_ tokens: [Int], hooks: ForwardHooks? = nil) throws -> [Float] {
        let cache = makeCache(capacity: tokens.count)
        var ce = [Float](repeating: 0, count: max(tokens.count - 1, 0))
        try forward(tokens, cache: cache, logits: .all, hooks: hooks) { first, logits, rows in
            self.crossEntropies(logits, rows: rows, tokens: tokens, firstRow: first, into: &ce)
        }
        return ce
    }

    /// Per-position cross-entropies of several independent sequences run together.
    public func crossEntropies(batch sequences: [[Int]], hooks: ForwardHooks? = nil) throws -> [[Float]] {
        var ce = sequences.map { [Float](repeating: 0, count: max($0.count - 1, 0)) }
        let caches = sequences.map { makeCache(capacity: $0.count) }
        try forward(batch: sequences, caches: caches, logits: .all, hooks: hooks) { n, first, logits, rows in
            self.crossEntropies(logits, rows: rows, tokens: sequences[n], firstRow: first, into: &ce[n])
        }
        return ce
    }

    private func crossEntropies(_ logits: UnsafeBufferPointer<Float>, rows: Int, tokens: [Int], firstRow: Int, into ce: inout [Float]) {
        let v = config.vocabSize
        for r in 0..<rows where firstRow + r + 1 < tokens.count {
            let row = logits.baseAddress! + r * v
            ce[firstRow + r] = Ops.logSumExp(row, count: v) - row[tokens[firstRow + r + 1]]
        }
    }

    /// The chunked pass of one sequence: `deliver(rows, logits)` receives, per chunk holding any of
    /// `rows`, those rows (indices into `tokens`) and their logits (`rows.count × vocab`).
    private func run(_ tokens: [Int], cache: KVCache, rows: [Int], hooks: ForwardHooks?,
                     deliver: (ArraySlice<Int>, UnsafeBufferPointer<Float>) -> Void) throws {
        try check([tokens], [cache])
        var start = 0, next = 0  // rows[next...] lie in this chunk or later ones
        while start < tokens.count {
            let end = min(start + batch, tokens.count)
            let first = next
            while next < rows.count && rows[next] < end { next += 1 }
            let chunkRows = rows[first..<next]
            if let logits = runChunk([Segment(tokens: tokens[start..<end], cache: cache)], logitRows: [chunkRows.map { $0 - start }], hooks: hooks) {
                deliver(chunkRows, logits)
            }
            start = end
        }
    }

    /// The batched pass: `deliver(sequence, rows, logits)` receives, per sequence with any, its `rows`
    /// and their logits (`rows.count × vocab`).
    private func run(batch sequences: [[Int]], caches: [KVCache], rows: [[Int]], hooks: ForwardHooks?,
                     deliver: (Int, [Int], UnsafeBufferPointer<Float>) -> Void) throws {
        precondition(sequences.count == caches.count, "one cache per sequence")
        try check(sequences, caches)
        if let long = sequences.first(where: { $0.count > batch }) {
            throw ModelError.contextFull(needed: long.count, capacity: batch)
        }
        let v = config.vocabSize
        var i = 0
        while i < sequences.count {
            var j = i, count = 0
            while j < sequences.count && count + sequences[j].count <= batch { count += sequences[j].count; j += 1 }
            let segments = (i..<j).map { Segment(tokens: sequences[$0][...], cache: caches[$0]) }
            if let logits = runChunk(segments, logitRows: Array(rows[i..<j]), hooks: hooks) {
                var row = 0
                for n in i..<j where !rows[n].isEmpty {
                    deliver(n, rows[n], UnsafeBufferPointer(rebasing: logits[row * v..<(row + rows[n].count) * v]))
                    row += rows[n].count
                }
            }
            i = j
        }
    }

    /// Row k of `rows × vocab` logits.
    private func logitsRow(_ logits: UnsafeBufferPointer<Float>, _ k: Int) -> UnsafeBufferPointer<Float> {
        UnsafeBufferPointer(rebasing: logits[k * config.vocabSize..<(k + 1) * config.vocabSize])
    }

    private func checkRows(_ rows: [Int], count: Int) {
        precondition(rows.allSatisfy { (0..<count).contains($0) } && zip(rows, rows.dropFirst()).allSatisfy { $0 < $1 },
                     "rows must be strictly increasing indices into the sequence")
    }

    private func check(_ sequences: [[Int]], _ caches: [KVCache]) throws {
        for (tokens, cache) in zip(sequences, caches) {
            guard !tokens.isEmpty else { throw ModelError.emptyInput }
            if let bad = tokens.first(where: { $0 < 0 || $0 >= config.vocabSize }) {
                throw ModelError.tokenOutOfRange(id: bad, vocabSize: config.vocabSize)
            }
            let needed = cache.length + tokens.count
            guard needed <= min(cache.capacity, config.contextLength) else {
                throw ModelError.contextFull(needed: needed, capacity: min(cache.capacity, config.contextLength))
            }
            if needed > rope.maxPositions {
                rope = RopeTable(headDim: config.headDim, base: Double(config.ropeBase),
                                 maxPositions: min(config.contextLength, max(needed, 2 * rope.maxPositions)))
            }
        }
    }

    // MARK: the forward pass, top to bottom

    /// Tokens of one sequence within a chunk, appended to its cache.
    private struct Segment {
        let tokens: ArraySlice<Int>
        let cache: KVCache
    }

    /// One chunk: the segments' tokens stacked as rows, every layer, then the logits of `logitRows`
    /// (per segment, strictly increasing indices into its tokens), `wanted × vocab` in segment order.
    /// Nil when none are wanted or the hooks stop early.
    private func runChunk(_ segments: [Segment], logitRows: [[Int]], hooks: ForwardHooks?) -> UnsafeBufferPointer<Float>? {
        let c = config, s = state, w = weights
        let T = segments.reduce(0) { $0 + $1.tokens.count }
        let wanted = logitRows.reduce(0) { $0 + $1.count }
        let p0 = segments[0].cache.length
        let (d, hd, kvd, ff) = (c.dim, c.headDim, c.kvDim, c.ffnDim)
        let qkvw = d + 2 * kvd
        let x = s.x.pointer, xb = s.xb.pointer, qkv = s.qkv.pointer, gu = s.gateUp.pointer, h = s.hidden.pointer

        var firstRows: [Int] = []
        var t = 0
        for seg in segments {
            firstRows.append(t)
            for id in seg.tokens { w.embedding.copyRow(id, into: x + t * d); t += 1 }
        }
        let starts = zip(firstRows, segments).map { SequenceStart(row: $0, position: $1.cache.length) }

        let lastLayer = min(hooks?.stopAfterLayer ?? (c.layers - 1), c.layers - 1)
        // Past the final layer's attention only the wanted rows matter: unless a hook watches that layer, its
        // attention output, o-proj and MLP run for those rows alone (keys and values are still cached for every row).
        let trimLast = wanted < T && lastLayer == c.layers - 1 && hooks?.layers[lastLayer] == nil && hooks?.finalResidual == nil
        var rows = T
        for l in 0...lastLayer {
            let lw = w.layers[l]
            let hook = hooks?.layers[l]
            let trim = trimLast && l == lastLayer
            hook?.residual?(ActivationView(pointer: x, rows: T, dim: d, firstPosition: p0, starts: starts))

            // Attention: x += Wo · attn(rope(q), rope(k), v), each segment against its own cache.
            Ops.rmsNorm(x, weight: lw.attentionNorm.pointer, out: xb, rows: T, dim: d, eps: c.normEps)
            Gemm.matmul(x: xb, ldx: d, m: T, w: lw.qkv, y: qkv, ldy: qkvw)
            var kept = 0
            for (seg, (r0, chosen)) in zip(segments, zip(firstRows, logitRows)) {
                let n = seg.tokens.count, past = seg.cache.length
                let q = qkv + r0 * qkvw
                Ops.rope(q, rows: n, stride: qkvw, heads: c.heads, headDim: hd, startPosition: past, table: rope)
                Ops.rope(q + d, rows: n, stride: qkvw, heads: c.kvHeads, headDim: hd, startPosition: past, table: rope)
                let keys = seg.cache.keys[l].pointer, values = seg.cache.values[l].pointer
                for i in 0..<n {
                    (keys + (past + i) * kvd).update(from: q + i * qkvw + d, count: kvd)
                    (values + (past + i) * kvd).update(from: q + i * qkvw + d + kvd, count: kvd)
                }
                if trim {
                    // Each run of consecutive chosen rows becomes rows kept… of xb / x (kept ≤ their rows, so moving forward is safe).
                    for run in Self.runs(chosen) {
                        Attention.causal(q: q + run.lowerBound * qkvw, ldq: qkvw, keys: keys, values: values, ldkv: kvd, out: xb + kept * d, ldo: d,
                                         queries: run.count, past: past + run.lowerBound, heads: c.heads, kvHeads: c.kvHeads, headDim: hd)
                        (x + kept * d).update(from: x + (r0 + run.lowerBound) * d, count: run.count * d)
                        kept += run.count
                    }
                } else {
                    Attention.causal(q: q, ldq: qkvw, keys: keys, values: values, ldkv: kvd, out: xb + r0 * d, ldo: d,
                                     queries: n, past: past, heads: c.heads, kvHeads: c.kvHeads, headDim: hd)
                }
            }
            if trim { rows = wanted }
            Gemm.matmul(x: xb, ldx: d, m: rows, w: lw.output, y: x, ldy: d, accumulate: true)

            // MLP: x += W_down · (silu(W_gate · n) ⊙ (W_up · n)), n = rmsnorm(x)
            Ops.rmsNorm(x, weight: lw.ffnNorm.pointer, out: xb, rows: rows, dim: d, eps: c.normEps)
            hook?.mlpInput?(ActivationView(pointer: xb, rows: rows, dim: d, firstPosition: p0, starts: starts))
            Gemm.matmul(x: xb, ldx: d, m: rows, w: lw.gateUp, y: gu, ldy: 2 * ff)
            Parallel.forEach(min(rows, 8)) { part in
                for t in stride(from: part, to: rows, by: min(rows, 8)) {
                    Ops.swiglu(gate: gu + t * 2 * ff, up: gu + t * 2 * ff + ff, out: h + t * ff, count: ff)
                }
            }
            if let hook, hook.touchesMLPOutput {
                let y = s.mlpOut.pointer
                Gemm.matmul(x: h, ldx: ff, m: rows, w: lw.down, y: y, ldy: d)
                hook.replaceMLPOutput?(MutableActivationView(pointer: y, rows: rows, dim: d, firstPosition: p0, starts: starts))
                hook.mlpOutput?(ActivationView(pointer: y, rows: rows, dim: d, firstPosition: p0, starts: starts))
                Ops.add(x, y, count: rows * d)
            } else {
                Gemm.matmul(x: h, ldx: ff, m: rows, w: lw.down, y: x, ldy: d, accumulate: true)
            }
            // The residual stream leaving the layer (a hooked layer is never trimmed, so rows == T).
            hook?.replaceResidualOutput?(MutableActivationView(pointer: x, rows: rows, dim: d, firstPosition: p0, starts: starts))
            hook?.residualOutput?(ActivationView(pointer: x, rows: rows, dim: d, firstPosition: p0, starts: starts))
        }
        for seg in segments { seg.cache.advance(by: seg.tokens.count) }
        if lastLayer == c.layers - 1 { hooks?.finalResidual?(ActivationView(pointer: x, rows: rows, dim: d, firstPosition: p0)) }
        guard lastLayer == c.layers - 1, wanted > 0 else { return nil }

        // Final norm and unembedding of the wanted rows: x holds just those after a trimmed final layer
        // (or when every row is wanted); otherwise they are gathered.
        if rows == wanted {
            Ops.rmsNorm(x, weight: w.outputNorm.pointer, out: xb, rows: wanted, dim: d, eps: c.normEps)
        } else {
            var k = 0
            for (r0, chosen) in zip(firstRows, logitRows) {
                for r in chosen {
                    Ops.rmsNorm(x + (r0 + r) * d, weight: w.outputNorm.pointer, out: xb + k * d, rows: 1, dim: d, eps: c.normEps)
                    k += 1
                }
            }
        }
        let logits = s.logits(rows: wanted)
        Gemm.matmul(x: xb, ldx: d, m: wanted, w: w.unembedding, y: logits, ldy: c.vocabSize)
        return UnsafeBufferPointer(start: logits, count: wanted * c.vocabSize)
    }

    /// Strictly increasing indices as runs of consecutive ones: [0, 1, 2, 5, 7, 8] → [0..<3, 5..<6, 7..<9].
    private static func runs(_ indices: [Int]) -> [Range<Int>] {
        var runs: [Range<Int>] = []
        for i in indices {
            if let last = runs.last, last.upperBound == i {
                runs[runs.count - 1] = last.lowerBound..<i + 1
            } else {
                runs.append(i..<i + 1)
            }
        }
        return runs
    }
}

/// Every scratch buffer of a forward pass, sized for one chunk of `batch` tokens.
final class RunState: @unchecked Sendable {
    let batch: Int
    let vocab: Int
    let x: FloatBuffer        // [batch × dim] residual stream
    let xb: FloatBuffer       // [batch × dim] normed input / attention output
    let qkv: FloatBuffer      // [batch × (dim + 2·kvDim)] q | k | v
    let gateUp: FloatBuffer   // [batch × 2·ffnDim] gate | up
    let hidden: FloatBuffer   // [batch × ffnDim] silu(gate) ⊙ up
    let mlpOut: FloatBuffer   // [batch × dim] MLP output, when a hook reads or replaces it
    private var logitsBuffer: FloatBuffer? // [rows × vocab], grown on demand

    init(config c: LlamaConfig, batch: Int) {
        self.batch = batch
        vocab = c.vocabSize
        x = FloatBuffer(count: batch * c.dim)
        xb = FloatBuffer(count: batch * c.dim)
        qkv = FloatBuffer(count: batch * (c.dim + 2 * c.kvDim))
        gateUp = FloatBuffer(count: batch * 2 * c.ffnDim)
        hidden = FloatBuffer(count: batch * c.ffnDim)
        mlpOut = FloatBuffer(count: batch * c.dim)
    }

    func logits(rows: Int) -> UnsafeMutablePointer<Float> {
        if let b = logitsBuffer, b.count >= rows * vocab { return b.pointer }
        let b = FloatBuffer(count: rows * vocab)
        logitsBuffer = b
        return b.pointer
    }
}
