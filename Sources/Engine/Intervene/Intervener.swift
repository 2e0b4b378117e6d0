import EngineAPI
import Foundation
import Kernels
import Model
import Storage
import Tokenizer
import Transcoder

/// Interventions on the dictionary's latents through its splice at `layer` (`DictionaryHook`): into
/// the model's MLP for a transcoder, into the residual stream leaving the layer for a residual SAE
/// (there y below is that residual, and a sequence's first position is left alone).
///
/// What an intervention replaces: at each position the layer's MLP output y becomes
///
///     y' = y + Σ_j (v_j − z_j)·W_dec[j]
///
/// where z is the transcoder's top-k code of the MLP input at that position (z_j = 0 for a latent
/// not among the k) and v_j the value an edit sets latent j to. That is the transcoder's
/// reconstruction with the edited code plus its error term (y − reconstruction), kept: the other
/// latents keep their values (no new top-k), and a latent set to its own value (v_j = z_j) adds
/// exactly nothing, so the untouched splice is the base model bit for bit. Every run, edited or not,
/// goes through the same hook, so "no edit" and "the latent's own value" give identical floats.
public final class Intervener: @unchecked Sendable {
    public let model: LlamaModel
    public let tokenizer: BPETokenizer
    public let transcoder: Transcoder
    public let layer: Int
    public let site: DictionarySite

    public init(model: LlamaModel, tokenizer: BPETokenizer, transcoder: Transcoder, layer: Int, site: DictionarySite = .mlp) throws {
        try Splice.check(model: model, transcoder: transcoder, layer: layer)
        self.model = model
        self.tokenizer = tokenizer
        self.transcoder = transcoder
        self.layer = layer
        self.site = site
    }

    public convenience init(analyzer: ContextAnalyzer) throws {
        try self.init(model: analyzer.model, tokenizer: analyzer.tokenizer, transcoder: analyzer.transcoder, layer: analyzer.layer,
                      site: analyzer.site)
    }

    // MARK: the hook

    /// One position's top-k code (k entries; a zero value is not active).
    public struct Code {
        public let indices: [Int32]
        public let values: [Float]

        public func value(of latent: Int) -> Float {
            for (i, v) in zip(indices, values) where Int(i) == latent { return v }
            return 0
        }

        public var active: [LatentActivation] {
            zip(indices, values).filter { $0.1 > 0 }.map { LatentActivation(latent: Int($0.0), value: $0.1) }
        }
    }

    /// New values for some latents at absolute `position`, given that position's code (empty: none).
    public typealias Edit = (_ position: Int, _ code: Code) -> [(latent: Int, value: Float)]

    /// No latent changed: the base model through the same hook.
    public static var none: Edit { { _, _ in [] } }

    /// Latent `latent` set to `value(position, code)` from `from` on (nil: left alone).
    public static func setting(_ latent: Int, from: Int = 0, _ value: @escaping (Int, Code) -> Float?) -> Edit {
        { position, code in
            guard position >= from, let v = value(position, code) else { return [] }
            return [(latent, v)]
        }
    }

    /// A forward-pass hook at `layer` applying `edit`; `codes(position, code)` sees each position's
    /// code before the edit. One sequence per forward pass (positions are the cache's).
    func hook(_ edit: @escaping Edit, codes: ((Int, Code) -> Void)? = nil) -> LayerHook {
        hook([edit], rowsPerSequence: Int.max, codes: codes)
    }

    /// The same for sequences of `rowsPerSequence` rows each, run together from the same position:
    /// sequence i's rows get `edits[i]`.
    func hook(_ edits: [Edit], rowsPerSequence: Int, codes: ((Int, Code) -> Void)? = nil) -> LayerHook {
        let d = transcoder.d, k = transcoder.config.k, tc = transcoder
        let input = InputBox()
        return DictionaryHook(site: site).replacing(input: { v in input.rows = Array(UnsafeBufferPointer(start: v.pointer, count: v.rows * d)) }) { y in
            precondition(input.rows.count == y.rows * d, "the dictionary's input of the same chunk")
            var ix = [Int32](repeating: 0, count: y.rows * k), vx = [Float](repeating: 0, count: y.rows * k)
            tc.encode(input.rows, rows: y.rows, indices: &ix, values: &vx)
            for r in 0..<y.rows {
                let code = Code(indices: Array(ix[r * k..<(r + 1) * k]), values: Array(vx[r * k..<(r + 1) * k]))
                let position = y.firstPosition + r % rowsPerSequence
                codes?(position, code)
                let out = y.pointer + r * d
                for (latent, value) in edits[r / rowsPerSequence](position, code) {
                    let delta = value - code.value(of: latent)
                    guard delta != 0 else { continue }
                    let row = tc.decoderWeight.pointer + latent * d
                    for i in 0..<d { out[i] += delta * row[i] }
                }
            }
        }
    }

    private final class InputBox: @unchecked Sendable { var rows: [Float] = [] }

    // MARK: runs

    /// Throws unless `latent` is one of the transcoder's.
    public func check(latent: Int) throws {
        guard latent >= 0 && latent < transcoder.m else { throw InterveneError.latentOutOfRange(latent, latents: transcoder.m) }
    }

    /// Every position's logits (tokens.count × vocab, row-major) with `edit` applied, and each
    /// position's code before it.
    public func logits(_ tokens: [Int], edit: @escaping Edit = Intervener.none,
                       finalResidual: ((ActivationView) -> Void)? = nil) throws -> (logits: [Float], codes: [Code]) {
        try run(tokens, from: 0, cache: model.makeCache(capacity: max(tokens.count, 1)), edit: edit, finalResidual: finalResidual)
    }

    /// Runs `tokens[start...]` against `cache`, which holds the first `start` positions: the logits
    /// of those rows ((count − start) × vocab) with `edit` applied, and their codes before it.
    /// Positions before the first one an edit changes are the same in an edited run, so it can
    /// start from a truncated copy of the unedited run's cache.
    func run(_ tokens: [Int], from start: Int, cache: KVCache, edit: @escaping Edit,
             finalResidual: ((ActivationView) -> Void)? = nil) throws -> (logits: [Float], codes: [Code]) {
        guard !tokens.isEmpty else { throw InterveneError.emptyText }
        guard tokens.count <= model.config.contextLength else {
            throw InterveneError.textTooLong(tokens: tokens.count, context: model.config.contextLength)
        }
        precondition(cache.length == start && start < tokens.count, "the cache holds the positions before start")
        let v = model.config.vocabSize, n = tokens.count - start
        var out = [Float](repeating: 0, count: n * v)
        var codes = [Code?](repeating: nil, count: n)
        let hooks = ForwardHooks(layers: [layer: hook(edit) { codes[$0 - start] = $1 }], finalResidual: finalResidual)
        try model.forward(Array(tokens[start...]), cache: cache, logits: .all, hooks: hooks) { first, l, rows in
            out.withUnsafeMutableBufferPointer { (o: inout UnsafeMutableBufferPointer<Float>) in
                (o.baseAddress! + first * v).update(from: l.baseAddress!, count: rows * v)
            }
        }
        return (out, codes.map { $0! })
    }

    /// Log-softmax of one row of `logits` (vocab wide).
    static func logSoftmax(_ logits: [Float], row: Int, vocab: Int) -> [Float] {
        logits.withUnsafeBufferPointer { p in
            let base = p.baseAddress! + row * vocab
            let lse = Ops.logSumExp(base, count: vocab)
            return (0..<vocab).map { base[$0] - lse }
        }
    }

    // MARK: ablate

    /// `latent` set to `value` at every token of `tokens`: per token the change of the actual next
    /// token's log-probability and KL(base ‖ ablated) of the next-token distribution.
    public func ablate(_ tokens: [Int], latent: Int, mode: AblationMode, value: Float,
                       shouldStop: () -> Bool = { false }) throws -> AblationResult {
        try check(latent: latent)
        let n = tokens.count, v = model.config.vocabSize
        let cache = model.makeCache(capacity: n)
        let base = try run(tokens, from: 0, cache: cache, edit: Self.none)
        if shouldStop() { throw CancellationError() }
        // Until the latent's code differs from the value the ablated run is the base run.
        let first = base.codes.firstIndex { $0.value(of: latent) != value } ?? n
        var ablated = (logits: base.logits, codes: base.codes)
        if first < n {
            cache.truncate(to: first)
            let rest = try run(tokens, from: first, cache: cache, edit: Self.setting(latent) { _, _ in value })
            ablated.logits.replaceSubrange(first * v..<n * v, with: rest.logits)
        }
        var delta: [Float] = [], kl: [Float] = []
        for t in 0..<(tokens.count - 1) {
            let p = Self.logSoftmax(base.logits, row: t, vocab: v), q = Self.logSoftmax(ablated.logits, row: t, vocab: v)
            delta.append(q[tokens[t + 1]] - p[tokens[t + 1]])
            var sum = 0.0
            for i in 0..<v where p[i] > -60 { sum += Double(exp(p[i])) * Double(p[i] - q[i]) }
            kl.append(Float(max(sum, 0)))
        }
        return AblationResult(latent: latent, mode: mode, value: value, tokens: tokens, tokenTexts: tokens.map(tokenizer.display),
                              activations: base.codes.map { $0.value(of: latent) }, deltaLogProb: delta, kl: kl)
    }

    // MARK: rank

    /// ∂logit_target/∂r of the final norm and unembedding at residual `r`: with σ = √(mean r² + ε)
    /// and u = g ⊙ U[target], it is u/σ − r·(r·u)/(d·σ³).
    public func logitGradient(residual r: [Float], target: Int) -> [Float] {
        let d = r.count
        var u = [Float](repeating: 0, count: d)
        u.withUnsafeMutableBufferPointer { model.weights.unembedding.copyRow(target, into: $0.baseAddress!) }
        let g = model.weights.outputNorm.pointer
        var ms = 0.0, ru = 0.0
        for i in 0..<d {
            u[i] *= g[i]
            ms += Double(r[i]) * Double(r[i])
            ru += Double(r[i]) * Double(u[i])
        }
        let sigma = (ms / Double(d) + Double(model.config.normEps)).squareRoot()
        return (0..<d).map { i in Float(Double(u[i]) / sigma - Double(r[i]) * ru / (Double(d) * sigma * sigma * sigma)) }
    }

    /// The latents active at `position` ranked by their direct effect on the logit of `target`
    /// (default: the actual next token, or the model's top prediction at the last token), with the
    /// exact effect of zeroing each of the first `exact` at that token alone.
    public func rank(_ all: [Int], position: Int, target: Int? = nil, exact: Int = 5,
                     shouldStop: () -> Bool = { false }) throws -> LatentRanking {
        guard position >= 0 && position < all.count else { throw InterveneError.positionOutOfRange(position, tokens: all.count) }
        let tokens = Array(all[...position]), d = model.config.dim, v = model.config.vocabSize
        var residual = [Float](repeating: 0, count: d)
        let cache = model.makeCache(capacity: tokens.count)
        let base = try run(tokens, from: 0, cache: cache, edit: Self.none, finalResidual: { view in
            if view.firstPosition <= position && position < view.firstPosition + view.rows {
                residual = Array(view.row(position - view.firstPosition))
            }
        })
        let y = target ?? (position + 1 < all.count ? all[position + 1]
            : base.logits.withUnsafeBufferPointer { Ops.argmax($0.baseAddress! + position * v, count: v) })
        guard y >= 0 && y < v else { throw InterveneError.tokenOutOfRange(y, vocabulary: v) }
        let gradient = logitGradient(residual: residual, target: y)
        var ranked = base.codes[position].active.map { a -> RankedLatent in
            let row = transcoder.decoderWeight.pointer + a.latent * d
            var s: Float = 0
            for i in 0..<d { s += row[i] * gradient[i] }
            return RankedLatent(latent: a.latent, activation: a.value, direct: a.value * s)
        }
        ranked.sort { abs($0.direct) > abs($1.direct) }
        let logit = base.logits[position * v + y]
        // Zeroing a latent at the last token alone changes that token only: each exact effect reruns
        // it against the cache of the tokens before, as does the reference it is measured from.
        func lastLogit(_ edit: @escaping Edit) throws -> Float {
            cache.truncate(to: position)
            return try run(tokens, from: position, cache: cache, edit: edit).logits[y]
        }
        let reference = ranked.isEmpty || exact == 0 ? logit : try lastLogit(Self.none)
        for i in 0..<min(exact, ranked.count) {
            if shouldStop() { throw CancellationError() }
            ranked[i].exact = reference - (try lastLogit(Self.setting(ranked[i].latent, from: position) { _, _ in 0 }))
        }
        return LatentRanking(tokens: all, position: position, target: y, targetText: tokenizer.display(y), logit: logit, latents: ranked)
    }

    // MARK: steer

    /// Generates from `prompt` twice, token by token together: unsteered (no edit) and with `edit`
    /// (`settings.from` on: prompt positions before it are left alone), each until a stop token or
    /// `maxTokens`. `onStep` sees both lists after every step.
    public func steer(prompt: [Int], edit: @escaping Edit, settings: SteerSettings, stops: Set<Int>,
                      shouldStop: () -> Bool = { false }, onStep: ([Int], [Int]) -> Void) throws -> (unsteered: [Int], steered: [Int]) {
        guard !prompt.isEmpty else { throw InterveneError.emptyText }
        let capacity = min(prompt.count + settings.maxTokens, model.config.contextLength)
        guard prompt.count < capacity else { throw InterveneError.textTooLong(tokens: prompt.count, context: model.config.contextLength) }
        let from = settings.from
        let edits: [Edit] = [Self.none, { p, c in p >= from ? edit(p, c) : [] }]
        let caches = [model.makeCache(capacity: capacity), model.makeCache(capacity: capacity)]
        var samplers = [Sampler(temperature: settings.temperature, seed: settings.seed), Sampler(temperature: settings.temperature, seed: settings.seed)]
        var out: [[Int]] = [[], []], input = [prompt, prompt], running = [true, true]
        func take(_ side: Int, _ logits: [Float]) {
            let next = samplers[side].pick(logits)
            if stops.contains(next) { running[side] = false; return }
            out[side].append(next)
            input[side] = [next]
            if out[side].count >= settings.maxTokens || caches[side].length + 1 > caches[side].capacity { running[side] = false }
        }
        while running.contains(true) {
            if shouldStop() { throw CancellationError() }
            if running[0] && running[1] && 2 * input[0].count <= model.batch {
                // In step: both sequences in one forward pass and one chunk (the weights are read once), the edit on
                // the second's rows.
                var logits: [[Float]] = [[], []]
                try model.forward(batch: input, caches: caches, logits: .last,
                                  hooks: ForwardHooks(layers: [layer: hook(edits, rowsPerSequence: input[0].count)])) { n, _, l, _ in
                    logits[n] = Array(l)
                }
                take(0, logits[0])
                take(1, logits[1])
            } else {
                for side in 0..<2 where running[side] {
                    var logits: [Float] = []
                    try model.forward(input[side], cache: caches[side], logits: .last,
                                      hooks: ForwardHooks(layers: [layer: hook(edits[side])])) { _, l, _ in logits = Array(l) }
                    take(side, logits)
                }
            }
            onStep(out[0], out[1])
        }
        return (out[0], out[1])
    }
}

extension Intervener {
    /// The clean run's `latent` (nil: its whole code) patched into the corrupted run at each token
    /// in turn; per token, log p(clean's top next token) after the last token.
    public func patch(clean: [Int], corrupted: [Int], latent: Int?, shouldStop: () -> Bool = { false },
                      progress: (Int, Int) -> Void = { _, _ in }) throws -> PatchResult {
        if let latent { try check(latent: latent) }
        guard clean.count == corrupted.count else { throw InterveneError.lengthsDiffer(clean: clean.count, corrupted: corrupted.count) }
        let v = model.config.vocabSize, last = clean.count - 1
        let cleanRun = try logits(clean), corruptedRun = try logits(corrupted)
        let target = cleanRun.logits.withUnsafeBufferPointer { Ops.argmax($0.baseAddress! + last * v, count: v) }
        func logProb(_ l: [Float]) -> Float { Self.logSoftmax(l, row: last, vocab: v)[target] }
        var patched: [Float] = []
        for t in 0..<clean.count {
            if shouldStop() { throw CancellationError() }
            progress(t, clean.count)
            let source = cleanRun.codes[t]
            let edit: Edit = { p, code in
                guard p == t else { return [] }
                if let latent { return [(latent, source.value(of: latent))] }
                let latents = Set(source.active.map(\.latent) + code.active.map(\.latent))
                return latents.sorted().map { ($0, source.value(of: $0)) }
            }
            patched.append(logProb(try logits(corrupted, edit: edit).logits))
        }
        return PatchResult(latent: latent, clean: clean, corrupted: corrupted, cleanTexts: clean.map(tokenizer.display),
                           corruptedTexts: corrupted.map(tokenizer.display), target: target, targetText: tokenizer.display(target),
                           cleanLogProb: logProb(cleanRun.logits), corruptedLogProb: logProb(corruptedRun.logits), patchedLogProb: patched)
    }
}

/// What an intervention cannot do; each says what to do instead.
public enum InterveneError: Error, Equatable, CustomStringConvertible {
    case latentOutOfRange(Int, latents: Int)
    case emptyText
    case textTooLong(tokens: Int, context: Int)
    case positionOutOfRange(Int, tokens: Int)
    case tokenOutOfRange(Int, vocabulary: Int)
    case lengthsDiffer(clean: Int, corrupted: Int)
    case noChatTemplate
    case tooShort(tokens: Int)

    public var description: String {
        switch self {
        case let .latentOutOfRange(l, n): return "latent \(l) does not exist: the transcoder has latents 0..<\(n)"
        case .emptyText: return "the text is empty; give some text to run"
        case let .textTooLong(t, c): return "the text has \(t) tokens, more than the model's context of \(c); shorten it"
        case let .positionOutOfRange(p, t): return "token \(p) is outside the text's \(t) tokens (0..<\(t)); pick a token inside it (--at, --from)"
        case let .tokenOutOfRange(id, v): return "token id \(id) is outside the vocabulary (0..<\(v)); pick another --target"
        case let .lengthsDiffer(a, b):
            return "the clean text has \(a) tokens and the corrupted one \(b); patching needs texts of the same length in tokens"
        case .noChatTemplate: return "this model has no ChatML chat template; run without --chat"
        case let .tooShort(t): return "the text has \(t) token(s); at least 2 are needed to predict one"
        }
    }
}
