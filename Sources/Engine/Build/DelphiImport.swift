import Formats
import Foundation
import Kernels
import Storage

/// A delphi latent cache (DelphiCache) made into a Loupe workspace the explorer opens.
///
/// What maps onto what:
/// - delphi's `tokens` [sequences, ctx_len] become the corpus, one window a sequence
///   (`window_length` = ctx_len); every `heldOutEvery`-th sequence (from 0) is held out, as a
///   built corpus is. The ids must be the workspace model's: it is checked against its vocabulary.
/// - the activations of the training sequences make the latent records (`cache/latents-*.bin`,
///   the same statistics, top and quantile windows as `loupe cache`), those of the held-out
///   sequences `cache/codes/heldout-00000.bin`, so `loupe score` finds its held-out windows.
///   `k` is the most latents any token has in delphi's cache (delphi keeps every non-zero value).
/// - not there: the dictionary. Promoted/suppressed tokens and neighbours stay empty, and whatever
///   needs the decoder (loss deltas, the partial rewrite, the lab's reconstruction) says the
///   workspace has no transcoder.
public struct DelphiImport {
    public var heldOutEvery = 20
    public var displayLength = 32
    public var blockSize = 256
    /// Another layer than the one the hookpoint names.
    public var layer: Int?

    public let cache: DelphiCache

    public init(cache: DelphiCache) { self.cache = cache }

    /// The layer: `layer`, else the hookpoint's `layers.<L>`.
    public func resolvedLayer() throws -> Int {
        if let layer { return layer }
        guard let m = cache.hookpoint.firstMatch(of: #/(?:^|\.)(?:layers|h|blocks)\.(\d+)(?:\.|$)/#), let l = Int(m.1) else {
            throw DelphiError.noLayer(hookpoint: cache.hookpoint)
        }
        return l
    }

    /// The delphi hookpoint a workspace was imported from (its `transcoder_source` is `delphi:<…/latents/<hookpoint>>`):
    /// the module delphi names its explanation and score files by. Nil for a workspace built by Loupe.
    public static func hookpoint(of manifest: WorkspaceManifest) -> String? {
        guard manifest.transcoderSource.hasPrefix(sourcePrefix) else { return nil }
        return URL(fileURLWithPath: String(manifest.transcoderSource.dropFirst(sourcePrefix.count))).lastPathComponent
    }

    static let sourcePrefix = "delphi:"

    /// Writes `workspace` (which must not hold one yet): corpus, cache and `workspace.json`, the
    /// manifest last, so an interrupted import leaves no workspace that seems whole.
    @discardableResult
    public func run(into workspace: Workspace, modelPath: String, vocabularySize: Int, reporter: ProgressReporter) throws -> WorkspaceManifest {
        guard !workspace.exists else { throw DelphiError.workspaceExists(path: workspace.directory.path) }
        let layer = try resolvedLayer()
        let t0 = Date()
        let (sequences, L, ids) = try cache.tokens()
        if let bad = ids.first(where: { Int($0) >= vocabularySize }) {
            throw DelphiError.tokenOutsideVocabulary(path: cache.splits[0].file.path, id: Int(bad), vocabulary: vocabularySize, modelName: cache.config.modelName)
        }
        guard sequences >= 2 && sequences > (sequences + heldOutEvery - 1) / heldOutEvery else {
            throw DelphiError.tooFewSequences(path: cache.splits[0].file.path, sequences: sequences, heldOutEvery: heldOutEvery)
        }
        let corpus = Corpus(windowLength: L, heldOutEvery: heldOutEvery, tokens: ids)
        try corpus.save(to: workspace.corpusDirectory, sources: [Self.sourcePrefix + cache.directory.path])

        // Every token's latents, read from the mapped splits twice (bounded memory: no split and no
        // per-token list is held): first how many each token has, which gives k; then into k slots
        // a token, straight into the training or held-out rows it belongs to.
        let train = corpus.trainingWindows, held = corpus.heldOutWindows
        var slot = [Int](repeating: 0, count: sequences)  // per sequence: its row block in train or held
        for (i, w) in train.enumerated() { slot[w] = i }
        for (i, w) in held.enumerated() { slot[w] = i }
        reporter.begin("import", total: 2 * cache.splits.count, unit: "passes over splits")
        var filled = [Int32](repeating: 0, count: sequences * L)
        for (n, split) in cache.splits.enumerated() {
            if reporter.shouldStop { throw CancellationError() }
            try cache.forEachEntry(of: split, sequences: sequences, length: L) { e in
                if e.value > 0 { filled[e.sequence * L + e.position] += 1 }
            }
            reporter.advance(n + 1, detail: split.file.lastPathComponent)
        }
        let k = max(1, Int(filled.max() ?? 1))
        guard k <= Limits.topK else {
            throw DelphiError.tooManyLatentsPerToken(path: cache.directory.path, found: k, limit: Limits.topK)
        }
        var trainCodes = (indices: [UInt32](repeating: 0, count: train.count * L * k), values: [Float16](repeating: 0, count: train.count * L * k))
        var heldCodes = (indices: [UInt32](repeating: 0, count: held.count * L * k), values: [Float16](repeating: 0, count: held.count * L * k))
        for i in filled.indices { filled[i] = 0 }
        for (n, split) in cache.splits.enumerated() {
            if reporter.shouldStop { throw CancellationError() }
            try cache.forEachEntry(of: split, sequences: sequences, length: L) { e in
                guard e.value > 0 else { return }
                let token = e.sequence * L + e.position
                guard Int(filled[token]) < k else {
                    throw DelphiError.badTensor(path: split.file.path, tensor: "locations", reason: "changed while it was read; import again")
                }
                let at = (slot[e.sequence] * L + e.position) * k + Int(filled[token])
                if corpus.isHeldOut(e.sequence) {
                    heldCodes.indices[at] = UInt32(e.latent); heldCodes.values[at] = Float16(e.value)
                } else {
                    trainCodes.indices[at] = UInt32(e.latent); trainCodes.values[at] = Float16(e.value)
                }
                filled[token] += 1
            }
            reporter.advance(cache.splits.count + n + 1, detail: split.file.lastPathComponent)
        }
        // Each token's latents by value, descending (ties: lower latent first), as `loupe cache` stores them.
        func sortRows(_ c: inout (indices: [UInt32], values: [Float16]), windows: [Int]) {
            for (i, w) in windows.enumerated() {
                for p in 0..<L where filled[w * L + p] > 1 {
                    let base = (i * L + p) * k, n = Int(filled[w * L + p])
                    var row: [(latent: UInt32, value: Float16)] = (0..<n).map { (c.indices[base + $0], c.values[base + $0]) }
                    row.sort { (a: (latent: UInt32, value: Float16), b: (latent: UInt32, value: Float16)) -> Bool in
                        a.value > b.value || (a.value == b.value && a.latent < b.latent)
                    }
                    for j in 0..<n { c.indices[base + j] = row[j].latent; c.values[base + j] = row[j].value }
                }
            }
        }
        sortRows(&trainCodes, windows: train)
        sortRows(&heldCodes, windows: held)
        filled = []
        reporter.end("import", summary: "\(cache.latents) latents, \(sequences) sequences of \(L) tokens, up to \(k) latents a token")

        // Held-out codes in `loupe cache`'s layout: per row k × u32 index then k × f16 value.
        let cacheDirectory = workspace.cacheDirectory
        try FileManager.default.createDirectory(at: cacheDirectory.appendingPathComponent("codes", isDirectory: true), withIntermediateDirectories: true)
        var data = Data(capacity: held.count * L * k * 6)
        for r in 0..<held.count * L {
            heldCodes.indices[r * k..<(r + 1) * k].withUnsafeBytes { data.append(contentsOf: $0) }
            heldCodes.values[r * k..<(r + 1) * k].withUnsafeBytes { data.append(contentsOf: $0) }
        }
        try data.write(to: cacheDirectory.appendingPathComponent("codes/heldout-00000.bin"), options: .atomic)

        // The records, as `loupe cache` makes them.
        let M = cache.latents, display = min(displayLength, L)
        let maker = RecordMaker(displayLength: display, topWindows: 40, quantileBins: 10, windowsPerBin: 4, histogramBins: 32,
                                quantiles: 101, seed: 7, corpus: corpus)
        var rng = SplitMix64(seed: maker.seed)
        let pool = (0..<200).map { _ in [held[Int(rng.next() % UInt64(held.count))], Int(rng.next() % UInt64(L - display + 1))] }
        let files = stride(from: 0, to: M, by: blockSize).map { String(format: "latents-%05d.bin", $0 / blockSize) }
        let manifest = CacheManifest(latents: M, k: k, blockSize: blockSize, displayLength: display, histogramBins: maker.histogramBins,
                                     quantiles: maker.quantiles, trainTokens: train.count * L, randomPool: pool, files: files)
        let lists = InvertedIndex(indices: trainCodes.indices, values: trainCodes.values, latents: M, k: k)
        let allCodes = (indices: trainCodes.indices, values: trainCodes.values, windows: train)
        reporter.begin("records", total: files.count, unit: "blocks")
        for (b, file) in files.enumerated() {
            if reporter.shouldStop { throw CancellationError() }
            let latents = Array(b * blockSize..<min((b + 1) * blockSize, M))
            let parts = Slots<Data>(count: latents.count)
            Parallel.forEach(latents.count) { i in
                let record = maker.make(latent: latents[i], lists: lists, codes: allCodes, k: k, L: L, promoted: [], suppressed: [], neighbours: [])
                parts.set(i, LatentRecordCoding.encode(record, manifest: manifest))
            }
            var block = Data()
            for part in parts.values { block.append(part) }
            try block.write(to: cacheDirectory.appendingPathComponent(file), options: .atomic)
            reporter.advance(b + 1, detail: file)
        }
        try JSONFile.write(manifest, to: cacheDirectory.appendingPathComponent(LatentCache.manifestName))
        let fired = (0..<M).filter { !lists.entries(of: $0).isEmpty }.count
        reporter.end("records", summary: "\(fired) of \(M) latents fire on the \(train.count * L) training tokens")

        let seconds = Date().timeIntervalSince(t0)
        var m = WorkspaceManifest(model: modelPath, layer: layer, latents: M, k: k, transcoderSource: Self.sourcePrefix + cache.directory.path,
                                  corpusSources: [Self.sourcePrefix + cache.directory.path], trainTokens: train.count * L,
                                  heldOutTokens: held.count * L, windowLength: L)
        m.steps[Builder.Step.corpus.rawValue] = .init(done: true, seconds: 0, tokens: sequences * L)
        m.steps[Builder.Step.cache.rawValue] = .init(done: true, seconds: seconds, tokens: train.count * L)
        try workspace.save(m)
        return m
    }
}

extension Workspace {
    /// Whether the workspace holds its dictionary (a workspace imported from delphi does not).
    public func hasTranscoder(_ manifest: WorkspaceManifest) -> Bool {
        FileManager.default.fileExists(atPath: transcoderDirectory(manifest).appendingPathComponent("cfg.json").path)
    }
}
