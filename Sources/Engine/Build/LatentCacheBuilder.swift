import Foundation
import Kernels
import Model
import Storage
import Transcoder

/// Builds the latent cache (layout in LatentCache.swift) from stored activations.
public struct LatentCacheBuilder {
    public var blockSize = 256
    public var displayLength = 32
    public var topWindows = 40
    public var quantileBins = 10
    public var windowsPerBin = 4
    public var histogramBins = 32
    public var quantiles = 101
    public var poolSize = 200
    public var seed: UInt64 = 7
    /// Each window's first position gets an empty code (a residual SAE's, `DictionarySite.skipsFirstPosition`):
    /// it is never counted, shown or simulated as a latent's activation.
    public var skipFirstPositions = false

    let directory: URL
    let transcoder: Transcoder
    let corpus: Corpus

    public init(directory: URL, transcoder: Transcoder, corpus: Corpus) {
        self.directory = directory
        self.transcoder = transcoder
        self.corpus = corpus
    }

    var codesDirectory: URL { directory.appendingPathComponent("codes", isDirectory: true) }

    /// Step 1: the k latents of every stored token, one codes file per activation shard.
    public func encode(_ store: ActivationStore, progress: (Int, Int) -> Void, shouldStop: () -> Bool) throws {
        try FileManager.default.createDirectory(at: codesDirectory, withIntermediateDirectories: true)
        let k = transcoder.config.k, L = store.manifest.windowLength
        var done = 0
        for shard in store.manifest.shards {
            if shouldStop() { throw CancellationError() }
            let rows = shard.windows.count * L
            let url = codesDirectory.appendingPathComponent(shard.file.replacingOccurrences(of: ".f16", with: ".bin"))
            if (try? FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int) == rows * k * 6 {
                done += rows
                progress(done, store.rowCount)
                continue
            }
            let (x, _) = try store.read(shard)
            var idx = [Int32](repeating: 0, count: rows * k)
            var val = [Float](repeating: 0, count: rows * k)
            idx.withUnsafeMutableBufferPointer { i in
                val.withUnsafeMutableBufferPointer { v in
                    transcoder.encode(x.pointer, rows: rows, indices: i.baseAddress!, values: v.baseAddress!)
                }
            }
            if skipFirstPositions {
                for r in stride(from: 0, to: rows, by: L) { for j in 0..<k { val[r * k + j] = 0 } }
            }
            var data = Data(capacity: rows * k * 6)
            for r in 0..<rows {
                idx[r * k..<(r + 1) * k].withUnsafeBytes { data.append(contentsOf: $0) }
                val[r * k..<(r + 1) * k].map { Float16($0) }.withUnsafeBytes { data.append(contentsOf: $0) }
            }
            try data.write(to: url, options: .atomic)
            done += rows
            progress(done, store.rowCount)
        }
    }

    /// Reads the codes of every shard of `store`: per token, k indices and k values.
    func loadCodes(_ store: ActivationStore) throws -> (indices: [UInt32], values: [Float16], windows: [Int]) {
        let k = transcoder.config.k, L = store.manifest.windowLength
        var indices: [UInt32] = [], values: [Float16] = [], windows: [Int] = []
        indices.reserveCapacity(store.rowCount * k)
        values.reserveCapacity(store.rowCount * k)
        for shard in store.manifest.shards {
            let url = codesDirectory.appendingPathComponent(shard.file.replacingOccurrences(of: ".f16", with: ".bin"))
            guard let data = FileManager.default.contents(atPath: url.path), data.count == shard.windows.count * L * k * 6 else {
                throw WorkspaceError.incompleteCodes(path: url.path)
            }
            data.withUnsafeBytes { raw in
                for r in 0..<shard.windows.count * L {
                    let base = r * k * 6
                    for j in 0..<k { indices.append(raw.loadUnaligned(fromByteOffset: base + 4 * j, as: UInt32.self)) }
                    for j in 0..<k { values.append(raw.loadUnaligned(fromByteOffset: base + 4 * k + 2 * j, as: Float16.self)) }
                }
            }
            windows += shard.windows
        }
        return (indices, values, windows)
    }

    /// Step 2: per-latent records, `blockSize` latents a file; finished files are kept.
    public func aggregate(train: ActivationStore, heldOut: ActivationStore, model: LlamaModel,
                          progress: (Int, Int) -> Void, shouldStop: () -> Bool) throws -> CacheManifest {
        let M = transcoder.m, k = transcoder.config.k, L = train.manifest.windowLength
        let files = stride(from: 0, to: M, by: blockSize).map { String(format: "latents-%05d.bin", $0 / blockSize) }
        var rng = SplitMix64(seed: seed)
        let heldWindows = heldOut.manifest.shards.flatMap(\.windows)
        let pool = heldWindows.isEmpty ? [] : (0..<poolSize).map { _ in
            [heldWindows[Int(rng.next() % UInt64(heldWindows.count))], Int(rng.next() % UInt64(L - displayLength + 1))]
        }
        let manifest = CacheManifest(latents: M, k: k, blockSize: blockSize, displayLength: displayLength, histogramBins: histogramBins,
                                     quantiles: quantiles, trainTokens: train.rowCount, randomPool: pool, files: files)
        let pending = files.indices.filter { !FileManager.default.fileExists(atPath: directory.appendingPathComponent(files[$0]).path) }
        if !pending.isEmpty {
            let codes = try loadCodes(train)
            let lists = InvertedIndex(indices: codes.indices, values: codes.values, latents: M, k: k)
            let effects = LogitEffects(transcoder: transcoder, model: model)
            for (n, b) in pending.enumerated() {
                if shouldStop() { throw CancellationError() }
                let latents = Array(b * blockSize..<min((b + 1) * blockSize, M))
                let (promoted, suppressed) = effects.top(latents: latents, count: 10)
                let neighbours = effects.neighbours(latents: latents, count: 8)
                let parts = Slots<Data>(count: latents.count)
                Parallel.forEach(latents.count) { i in
                    let record = makeRecord(latent: latents[i], lists: lists, codes: codes, k: k, L: L,
                                            promoted: promoted[i], suppressed: suppressed[i], neighbours: neighbours[i])
                    parts.set(i, LatentRecordCoding.encode(record, manifest: manifest))
                }
                var data = Data()
                for part in parts.values { data.append(part) }
                try data.write(to: directory.appendingPathComponent(files[b]), options: .atomic)
                progress(files.count - pending.count + n + 1, files.count)
            }
        }
        try JSONFile.write(manifest, to: directory.appendingPathComponent(LatentCache.manifestName))
        return manifest
    }

    func makeRecord(latent: Int, lists: InvertedIndex, codes: (indices: [UInt32], values: [Float16], windows: [Int]), k: Int, L: Int,
                    promoted: [(Int, Float)], suppressed: [(Int, Float)], neighbours: [(Int, Float)]) -> LatentRecord {
        recordMaker.make(latent: latent, lists: lists, codes: codes, k: k, L: L, promoted: promoted, suppressed: suppressed, neighbours: neighbours)
    }

    var recordMaker: RecordMaker {
        RecordMaker(displayLength: displayLength, topWindows: topWindows, quantileBins: quantileBins, windowsPerBin: windowsPerBin,
                    histogramBins: histogramBins, quantiles: quantiles, seed: seed, corpus: corpus)
    }
}

/// One latent's LatentRecord from where it fires: statistics, the top windows and the quantile bins'
/// windows (the builder's, and the delphi import's over delphi's activations).
struct RecordMaker {
    var displayLength: Int
    var topWindows: Int
    var quantileBins: Int
    var windowsPerBin: Int
    var histogramBins: Int
    var quantiles: Int
    var seed: UInt64
    let corpus: Corpus

    /// `codes`: k latents per row (row r is position r % L of corpus window `windows[r / L]`).
    func make(latent: Int, lists: InvertedIndex, codes: (indices: [UInt32], values: [Float16], windows: [Int]), k: Int, L: Int,
             promoted: [(Int, Float)], suppressed: [(Int, Float)], neighbours: [(Int, Float)]) -> LatentRecord {
        let entries = lists.entries(of: latent).sorted { $0.value > $1.value || ($0.value == $1.value && $0.token < $1.token) }
        let values = entries.map(\.value)
        let maxValue = values.first ?? 0
        let mean = values.isEmpty ? 0 : values.reduce(0, +) / Float(values.count)
        var histogram = [Int](repeating: 0, count: histogramBins)
        if maxValue > 0 {
            for v in values { histogram[min(histogramBins - 1, Int(v / maxValue * Float(histogramBins)))] += 1 }
        }
        let ascending = values.reversed() as [Float]
        let q: [Float] = ascending.isEmpty ? [Float](repeating: 0, count: quantiles)
            : (0..<quantiles).map { ascending[Int((Double($0) / Double(quantiles - 1) * Double(ascending.count - 1)).rounded())] }

        func window(token t: Int, kind: Int) -> LatentWindow {
            let w = codes.windows[t / L], pos = t % L
            let start = min(max(pos - displayLength * 3 / 4, 0), L - displayLength)
            let tokens = (start..<start + displayLength).map { Int(corpus.tokens[w * L + $0]) }
            let acts: [Float] = (start..<start + displayLength).map { p in
                let row = (t / L) * L + p
                for j in 0..<k where codes.indices[row * k + j] == UInt32(latent) { return Float(codes.values[row * k + j]) }
                return 0
            }
            return LatentWindow(corpusWindow: w, start: start, focus: pos - start, kind: kind, tokens: tokens, activations: acts)
        }
        var windows: [LatentWindow] = []
        var used = Set<Int>()
        for e in entries where windows.count < topWindows {
            if used.insert(e.token / L).inserted { windows.append(window(token: e.token, kind: 0)) }
        }
        // Quantile bins over the activations in ascending order, as the paper's explainer samples.
        var rng = SplitMix64(seed: seed ^ UInt64(latent) &* 0x9E37_79B9)
        let asc = Array(entries.reversed())
        if !asc.isEmpty {
            for bin in 0..<quantileBins {
                let lo = asc.count * bin / quantileBins, hi = asc.count * (bin + 1) / quantileBins
                guard hi > lo else { continue }
                var picked = Set<Int>()
                for _ in 0..<(windowsPerBin * 4) where picked.count < windowsPerBin {
                    let e = asc[lo + Int(rng.next() % UInt64(hi - lo))]
                    if picked.insert(e.token / L).inserted { windows.append(window(token: e.token, kind: bin + 1)) }
                }
            }
        }
        return LatentRecord(latent: latent, count: entries.count, max: maxValue, mean: mean, histogram: histogram, quantiles: q,
                            promoted: promoted.map { (id: $0.0, logit: $0.1) }, suppressed: suppressed.map { (id: $0.0, logit: $0.1) },
                            neighbours: neighbours.map { (latent: $0.0, cosine: $0.1) }, windows: windows)
    }
}

/// For each latent, the tokens where it fired and its values there (counting sort by latent).
struct InvertedIndex {
    let offsets: [Int]
    let tokens: [UInt32]
    let values: [Float]

    /// `indices`/`values`: k per token, token after token.
    init(indices: [UInt32], values source: [Float16], latents: Int, k: Int) {
        var offsets = [Int](repeating: 0, count: latents + 1)
        for (i, idx) in indices.enumerated() where source[i] > 0 { offsets[Int(idx) + 1] += 1 }
        for m in 0..<latents { offsets[m + 1] += offsets[m] }
        var next = offsets
        var tokens = [UInt32](repeating: 0, count: offsets[latents])
        var values = [Float](repeating: 0, count: offsets[latents])
        for (i, idx) in indices.enumerated() where source[i] > 0 {
            let m = Int(idx)
            tokens[next[m]] = UInt32(i / k)
            values[next[m]] = Float(source[i])
            next[m] += 1
        }
        self.offsets = offsets
        self.tokens = tokens
        self.values = values
    }

    func entries(of latent: Int) -> [(token: Int, value: Float)] {
        (offsets[latent]..<offsets[latent + 1]).map { (Int(tokens[$0]), values[$0]) }
    }
}

