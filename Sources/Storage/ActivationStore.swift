import Foundation
import Kernels

/// The dictionary's (input, target) pairs of one layer for a set of corpus windows — a transcoder's
/// MLP input and output, or a residual SAE's input alone (its target is its input) — stored as fp16
/// in shard files so the dictionary can be trained — and its latents computed — without running
/// the model again.
///
/// Layout of `<name>-NNNNN.f16`: `rows` records of `columns·dim` little-endian fp16 values: the
/// input (for a transcoder the MLP input after the pre-MLP norm), then with `columns` = 2 the
/// target (the MLP output) of one token; rows run through the shard's windows in order,
/// `windowLength` per window. `<name>.json` lists the shards with their windows and `columns`
/// (absent in stores written before residual SAEs: 2).
/// Each shard is written to a temporary name and renamed, so a killed run leaves only whole
/// shards, and a rerun starts at the first missing one.
public struct ActivationStore: Sendable {
    public struct Shard: Codable, Equatable, Sendable {
        public var file: String
        public var windows: [Int]
    }

    public struct Manifest: Codable, Equatable, Sendable {
        public var layer: Int
        public var dim: Int
        public var windowLength: Int
        /// 2: input and target per row; 1: the input alone (an SAE reconstructs it).
        public var columns: Int
        public var shards: [Shard]

        enum CodingKeys: String, CodingKey { case layer, dim, windowLength = "window_length", columns, shards }

        init(layer: Int, dim: Int, windowLength: Int, columns: Int, shards: [Shard]) {
            self.layer = layer; self.dim = dim; self.windowLength = windowLength; self.columns = columns; self.shards = shards
        }

        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            layer = try c.decode(Int.self, forKey: .layer)
            dim = try c.decode(Int.self, forKey: .dim)
            windowLength = try c.decode(Int.self, forKey: .windowLength)
            columns = try c.decodeIfPresent(Int.self, forKey: .columns) ?? 2
            shards = try c.decode([Shard].self, forKey: .shards)
        }
    }

    public let directory: URL
    public let name: String
    public let manifest: Manifest

    public var manifestURL: URL { directory.appendingPathComponent("\(name).json") }

    public var rowCount: Int { manifest.shards.reduce(0) { $0 + $1.windows.count } * manifest.windowLength }

    /// Plans the shards of `windows` (`windowsPerShard` each) and opens or creates the store;
    /// `columns` 2 keeps input and target, 1 the input alone.
    public init(directory: URL, name: String, layer: Int, dim: Int, windowLength: Int, windows: [Int], columns: Int = 2,
                windowsPerShard: Int = 1024) throws {
        precondition(columns == 1 || columns == 2, "an activation store holds 1 or 2 columns")
        self.directory = directory
        self.name = name
        let shards = stride(from: 0, to: windows.count, by: windowsPerShard).enumerated().map { n, start in
            Shard(file: String(format: "%@-%05d.f16", name, n), windows: Array(windows[start..<min(start + windowsPerShard, windows.count)]))
        }
        manifest = Manifest(layer: layer, dim: dim, windowLength: windowLength, columns: columns, shards: shards)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let url = directory.appendingPathComponent("\(name).json")
        if let existing = try? JSONFile.read(Manifest.self, from: url), existing != manifest {
            // A different plan (other layer, corpus or size): start over.
            for s in existing.shards { try? FileManager.default.removeItem(at: directory.appendingPathComponent(s.file)) }
        }
        try JSONFile.write(manifest, to: url)
    }

    public func isComplete(_ shard: Shard) -> Bool {
        let url = directory.appendingPathComponent(shard.file)
        let bytes = (try? FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int) ?? -1
        return bytes == shard.windows.count * manifest.windowLength * manifest.columns * manifest.dim * 2
    }

    public var isComplete: Bool { manifest.shards.allSatisfy(isComplete) }

    /// Reads one shard as fp32: inputs and targets, each rows × dim (with one column, the target
    /// is the input: the same buffer).
    public func read(_ shard: Shard) throws -> (x: FloatBuffer, y: FloatBuffer) {
        let d = manifest.dim, w = manifest.columns * d
        let url = directory.appendingPathComponent(shard.file)
        guard isComplete(shard), let data = FileManager.default.contents(atPath: url.path) else {
            throw WorkspaceError.incompleteShard(path: url.path)
        }
        let rows = shard.windows.count * manifest.windowLength
        let x = FloatBuffer(count: rows * d), y = manifest.columns == 2 ? FloatBuffer(count: rows * d) : x
        data.withUnsafeBytes { raw in
            let h = raw.bindMemory(to: Float16.self).baseAddress!
            for r in 0..<rows {
                for i in 0..<d { x.pointer[r * d + i] = Float(h[r * w + i]) }
                if manifest.columns == 2 { for i in 0..<d { y.pointer[r * d + i] = Float(h[r * w + d + i]) } }
            }
        }
        return (x, y)
    }
}
