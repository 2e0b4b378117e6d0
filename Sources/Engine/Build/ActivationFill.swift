import Foundation
import Kernels
import Model
import Storage

/// Filling an activation store: the model run up to the layer over the planned windows.
extension ActivationStore {
    /// Runs the model up to the layer over every window of every missing shard, storing the input
    /// (and with two columns the target) of a dictionary at `site`.
    /// `progress(done, total)` counts tokens; `shouldStop` is polled between batches.
    public func fill(model: LlamaModel, corpus: Corpus, site: DictionarySite, progress: (Int, Int) -> Void, shouldStop: () -> Bool = { false }) throws {
        let (L, d, len, columns) = (manifest.layer, manifest.dim, manifest.windowLength, manifest.columns)
        precondition(columns == (site.reconstructsInput ? 1 : 2), "an SAE's store holds its input alone, a transcoder's input and target")
        let total = rowCount
        var done = 0
        let perChunk = max(1, model.batch / len)
        for shard in manifest.shards {
            if isComplete(shard) {
                done += shard.windows.count * len
                progress(done, total)
                continue
            }
            let rows = shard.windows.count * len
            var out = [Float16](repeating: 0, count: rows * columns * d)
            var row = 0
            for start in stride(from: 0, to: shard.windows.count, by: perChunk) {
                if shouldStop() { throw CancellationError() }
                let windows = shard.windows[start..<min(start + perChunk, shard.windows.count)]
                let first = row
                let hook = DictionaryHook(site: site).reading(
                    input: { v in ActivationStore.put(v, into: &out, firstRow: first, column: 0, width: columns * d) },
                    target: columns == 2 ? { v in ActivationStore.put(v, into: &out, firstRow: first, column: d, width: columns * d) } : nil)
                let seqs = windows.map { corpus.window($0) }
                try model.forward(batch: seqs, caches: seqs.map { _ in model.makeCache(capacity: len) }, logits: .none,
                                  hooks: ForwardHooks(layers: [L: hook], stopAfterLayer: L))
                row += windows.count * len
                done += windows.count * len
                progress(done, total)
            }
            try out.withUnsafeBytes { try Data($0).write(to: directory.appendingPathComponent(shard.file), options: .atomic) }
        }
    }

    private static func put(_ v: ActivationView, into out: inout [Float16], firstRow: Int, column: Int, width: Int) {
        out.withUnsafeMutableBufferPointer { o in
            for t in 0..<v.rows {
                let dst = o.baseAddress! + (firstRow + t) * width + column
                let src = v.pointer + t * v.dim
                for i in 0..<v.dim { dst[i] = Float16(src[i]) }
            }
        }
    }
}
