import Foundation
import Kernels
import Model
import Storage
import Transcoder

/// The dictionary spliced into the model at its site, for the partial rewrite: a transcoder in place
/// of one layer's MLP, or a residual SAE's reconstruction in place of the residual stream leaving
/// the layer (`DictionarySite`, `DictionaryHook`). The same windows run under several settings
/// (base model, dictionary, ablations, simulated latents), each a different value of what the
/// dictionary writes, and each gives per-token next-token cross-entropies.
///
/// What the model computes before the splice does not depend on the setting, so `prepare` runs
/// the windows once up to the layer and keeps, per token, the dictionary's input x (the MLP's
/// input after its RMSNorm, or the residual stream), the model's own value of what it writes (the
/// MLP output, or that same residual), and the dense pre-activations ReLU(W_enc·x + b_enc). A
/// setting is then a function from those to the written value (`Replacement`), and
/// `crossEntropies` runs the whole model with it. Codes come from `codes`: the dense values (some
/// columns replaced) through the dictionary's own top-k, decoded with its skip path if it has one.
/// A residual SAE never replaces a sequence's first position (`DictionarySite.skipsFirstPosition`).
public final class Splice: @unchecked Sendable {
    public let model: LlamaModel
    public let transcoder: Transcoder
    public let layer: Int
    public let site: DictionarySite
    var dictionaryHook: DictionaryHook { DictionaryHook(site: site) }

    public init(model: LlamaModel, transcoder: Transcoder, layer: Int, site: DictionarySite) throws {
        try Self.check(model: model, transcoder: transcoder, layer: layer)
        self.model = model
        self.transcoder = transcoder
        self.layer = layer
        self.site = site
    }

    /// Throws unless the transcoder fits the MLP of the model's layer.
    static func check(model: LlamaModel, transcoder: Transcoder, layer: Int) throws {
        guard layer >= 0 && layer < model.config.layers else {
            throw RewriteError.layerOutOfRange(layer, layers: model.config.layers)
        }
        guard transcoder.d == model.config.dim else {
            throw RewriteError.widthMismatch(transcoder: transcoder.d, model: model.config.dim)
        }
    }

    /// Everything up to the splice, for a list of windows; rows run through the windows in order.
    public struct Prepared: @unchecked Sendable {
        public let windows: [[Int]]
        /// First row of each window.
        public let rowStart: [Int]
        public let rows: Int
        /// rows × d: the dictionary's input (the MLP's normed input, or the residual stream).
        public let input: FloatBuffer
        /// rows × d: the model's own value of what the dictionary writes (the MLP's output, or the
        /// residual stream: for an SAE the same values as `input`).
        public let output: FloatBuffer
        /// rows × M: ReLU(W_enc·x + b_enc).
        public let dense: FloatBuffer

        /// The window and position of a row.
        public func place(ofRow r: Int) -> (window: Int, position: Int) {
            var w = 0
            while w + 1 < rowStart.count && rowStart[w + 1] <= r { w += 1 }
            return (w, r - rowStart[w])
        }
    }

    /// Rows `first..<first + rows` of what the dictionary writes under a setting, into `y` (rows × d).
    public typealias Replacement = (_ first: Int, _ rows: Int, _ y: UnsafeMutablePointer<Float>) -> Void

    /// Windows grouped so each group is one chunk of the model's batch (the hooks then see a
    /// group's rows in one call).
    func groups(_ windows: [[Int]]) throws -> [Range<Int>] {
        var out: [Range<Int>] = [], start = 0, rows = 0
        for (i, w) in windows.enumerated() {
            guard !w.isEmpty, w.count <= model.batch else {
                throw RewriteError.windowDoesNotFit(tokens: w.count, batch: model.batch)
            }
            if rows + w.count > model.batch { out.append(start..<i); start = i; rows = 0 }
            rows += w.count
        }
        if start < windows.count { out.append(start..<windows.count) }
        return out
    }

    /// Runs the windows up to the layer and keeps what every setting needs.
    public func prepare(_ windows: [[Int]], shouldStop: () -> Bool = { false }) throws -> Prepared {
        let d = model.config.dim, m = transcoder.m
        var rowStart: [Int] = [], rows = 0
        for w in windows { rowStart.append(rows); rows += w.count }
        let input = FloatBuffer(count: rows * d), output = FloatBuffer(count: rows * d), dense = FloatBuffer(count: rows * m)
        for g in try groups(windows) {
            if shouldStop() { throw CancellationError() }
            let r0 = rowStart[g.lowerBound]
            let groupRows = g.reduce(0) { $0 + windows[$1].count }
            let hook = dictionaryHook.reading(input: { v in
                precondition(v.rows == groupRows, "one chunk per group")
                (input.pointer + r0 * d).update(from: v.pointer, count: v.rows * d)
            }, target: { v in (output.pointer + r0 * d).update(from: v.pointer, count: v.rows * d) })
            let sequences = Array(windows[g])
            try model.forward(batch: sequences, caches: sequences.map { model.makeCache(capacity: $0.count) }, logits: .none,
                              hooks: ForwardHooks(layers: [layer: hook], stopAfterLayer: layer)) { _, _, _, _ in }
        }
        let k = transcoder.config.k
        let ix = [Int32](repeating: 0, count: max(rows * k, 1)), vx = [Float](repeating: 0, count: max(rows * k, 1))
        var ixm = ix, vxm = vx
        ixm.withUnsafeMutableBufferPointer { i in
            vxm.withUnsafeMutableBufferPointer { v in
                transcoder.encode(input.pointer, rows: rows, indices: i.baseAddress!, values: v.baseAddress!, preActivations: dense.pointer)
            }
        }
        return Prepared(windows: windows, rowStart: rowStart, rows: rows, input: input, output: output, dense: dense)
    }

    /// Per window, per position t (0..<count − 1), the cross-entropy of token t + 1; what the
    /// dictionary writes at the layer replaced by `replacement` (nil: the base model).
    public func crossEntropies(_ p: Prepared, replacement: Replacement?, shouldStop: () -> Bool = { false }) throws -> [[Float]] {
        var out: [[Float]] = []
        for g in try groups(p.windows) {
            if shouldStop() { throw CancellationError() }
            var hooks: ForwardHooks?
            if let replacement {
                let r0 = p.rowStart[g.lowerBound]
                let groupRows = g.reduce(0) { $0 + p.windows[$1].count }
                let hook = self.dictionaryHook.replacing { v in
                    precondition(v.rows == groupRows, "one chunk per group")
                    replacement(r0, v.rows, v.pointer)
                }
                hooks = ForwardHooks(layers: [layer: hook])
            }
            out += try model.crossEntropies(batch: Array(p.windows[g]), hooks: hooks)
        }
        return out
    }

    /// Top-k codes of rows `first..<first + rows` from dense values `dense` (rows × M, the rows'
    /// own; overwritten), as (indices, values), rows × k each.
    public func codes(_ dense: UnsafeMutablePointer<Float>, rows: Int) -> (indices: [Int32], values: [Float]) {
        let k = transcoder.config.k
        var ix = [Int32](repeating: 0, count: max(rows * k, 1)), vx = [Float](repeating: 0, count: max(rows * k, 1))
        ix.withUnsafeMutableBufferPointer { i in
            vx.withUnsafeMutableBufferPointer { v in transcoder.select(dense, rows: rows, indices: i.baseAddress!, values: v.baseAddress!) }
        }
        return (ix, vx)
    }

    /// The transcoder's output for rows `first..<first + rows` of `p` from codes, into `y`.
    public func decode(_ p: Prepared, first: Int, rows: Int, codes: (indices: [Int32], values: [Float]), into y: UnsafeMutablePointer<Float>) {
        codes.indices.withUnsafeBufferPointer { i in
            codes.values.withUnsafeBufferPointer { v in
                transcoder.decode(indices: i.baseAddress!, values: v.baseAddress!, rows: rows, x: p.input.pointer + first * transcoder.d, into: y)
            }
        }
    }

    /// The transcoder as is.
    public func transcoderReplacement(_ p: Prepared) -> Replacement {
        { first, rows, y in
            let m = self.transcoder.m
            let dense = FloatBuffer(count: rows * m)
            dense.pointer.update(from: p.dense.pointer + first * m, count: rows * m)
            self.decode(p, first: first, rows: rows, codes: self.codes(dense.pointer, rows: rows), into: y)
        }
    }

    /// Dense values with some latents' columns replaced: `values(first, rows, dense)` edits rows
    /// `first..<first + rows` (a rows × M copy of the true pre-activations) in place; then top-k
    /// and decode.
    public func replacement(_ p: Prepared, editing values: @escaping (_ first: Int, _ rows: Int, _ dense: UnsafeMutablePointer<Float>) -> Void) -> Replacement {
        { first, rows, y in
            let m = self.transcoder.m
            let dense = FloatBuffer(count: rows * m)
            dense.pointer.update(from: p.dense.pointer + first * m, count: rows * m)
            values(first, rows, dense.pointer)
            self.decode(p, first: first, rows: rows, codes: self.codes(dense.pointer, rows: rows), into: y)
        }
    }

    /// The loss delta of one latent's simulation on its windows: the mean next-token
    /// cross-entropy with only that latent's encoder value replaced by `values` (per window, per
    /// token), minus with the transcoder as is. Positive: the simulation hurts.
    public func singleLatentDelta(latent: Int, windows: [[Int]], values: [[Float]], shouldStop: () -> Bool = { false }) throws -> Double {
        guard latent >= 0 && latent < transcoder.m else { throw RewriteError.latentOutOfRange(latent, latents: transcoder.m) }
        guard values.count == windows.count, zip(values, windows).allSatisfy({ $0.count == $1.count }) else {
            throw RewriteError.valuesMismatch(latent: latent)
        }
        let p = try prepare(windows, shouldStop: shouldStop)
        let flat = values.flatMap { $0 }, m = transcoder.m
        let spliced = try crossEntropies(p, replacement: transcoderReplacement(p), shouldStop: shouldStop)
        let replaced = try crossEntropies(p, replacement: replacement(p) { first, rows, dense in
            for r in 0..<rows { dense[r * m + latent] = flat[first + r] }
        }, shouldStop: shouldStop)
        return RewriteStatistics.mean(replaced) - RewriteStatistics.mean(spliced)
    }

    /// A fixed vector at every position (zeros: zero ablation; the mean output: mean ablation); a
    /// residual SAE's splice still keeps each sequence's first position.
    public static func constant(_ vector: [Float]) -> Replacement {
        { _, rows, y in
            for r in 0..<rows { (y + r * vector.count).update(from: vector, count: vector.count) }
        }
    }

    /// The mean of the model's own value of what the dictionary writes (the MLP output, or the
    /// residual stream) over every prepared row it replaces (a residual SAE's: all but first positions).
    public func meanOutput(_ p: Prepared) -> [Float] {
        let d = model.config.dim
        var mean = [Double](repeating: 0, count: d), n = 0
        for r in 0..<p.rows where !(site.skipsFirstPosition && p.place(ofRow: r).position == 0) {
            for j in 0..<d { mean[j] += Double(p.output.pointer[r * d + j]) }
            n += 1
        }
        return mean.map { Float($0 / Double(max(n, 1))) }
    }
}
