import Foundation
import Formats
import Kernels

/// sparsify's checkpoint layout for one hookpoint (sparse_coder.py `save_to_disk` / `load_from_disk`):
///
///     <hookpoint>/cfg.json          SparseCoderConfig fields + "d_in"
///     <hookpoint>/sae.safetensors   encoder.weight [M, d_in], encoder.bias [M], W_dec [M, d_in],
///                                   b_dec [d_in], W_skip [d_in, d_in] (only with skip_connection)
extension Transcoder {
    /// Loads `<directory>/cfg.json` and `<directory>/sae.safetensors` (F32, F16 or BF16 tensors).
    /// Every tensor's shape is checked against the configuration and extra tensors are refused, as
    /// sparsify's strict `load_model` does. Errors name the file and the key or tensor at fault.
    public static func load(directory: String) throws -> Transcoder {
        let cfgPath = (directory as NSString).appendingPathComponent("cfg.json")
        let cfg = try TranscoderConfig.read(path: cfgPath)
        if cfg.multiTopK {
            throw TranscoderError.unsupported(file: cfgPath, key: "multi_topk", reason: "Multi-TopK is not supported")
        }
        let path = (directory as NSString).appendingPathComponent("sae.safetensors")
        let file = try SafetensorsFile(path: path)
        // Every tensor the configuration calls for is compared with the file (name, shape, dtype)
        // before `Transcoder(config:)` allocates M × d_in floats twice: a cfg.json claiming 100,000 ×
        // 100,000 beside a small file is an error naming the tensor, not a 40 GB allocation.
        let expected = cfg.parameterShapes
        for name in file.tensors.keys.sorted() where !expected.contains(where: { $0.name == name }) {
            throw TranscoderError.unexpectedTensor(file: path, tensor: name)
        }
        for (name, shape) in expected {
            guard let info = file.tensors[name] else { throw FormatError.missingTensor(file: path, tensor: name) }
            guard info.shape == shape else { throw FormatError.tensorShapeMismatch(file: path, tensor: name, expected: shape, found: info.shape) }
        }
        let t = Transcoder(config: cfg, seed: 0)
        let params = t.namedParameters
        for p in params {
            let values = try file.floats(p.name, shape: p.shape)
            values.withUnsafeBufferPointer { p.buffer.pointer.update(from: $0.baseAddress!, count: values.count) }
        }
        t.parametersDidChange()
        return t
    }

    /// Saves in sparsify's layout (F32 tensors, metadata {"format": "pt"} as torch's writer adds).
    /// The directory is built beside the target and renamed into place, so a reader sees the old
    /// checkpoint or the new one, never a mixture. Loads back bit-identical.
    public func save(directory: String) throws {
        try AtomicDirectory.write(directory) { tmp in
            try writeFiles(into: tmp)
        }
    }

    /// cfg.json and sae.safetensors into an existing directory.
    func writeFiles(into dir: String) throws {
        let tensors = namedParameters.map { ($0.name, $0.shape, $0.buffer.array) }
        try SafetensorsFile.write(tensors, metadata: ["format": "pt"], to: (dir as NSString).appendingPathComponent("sae.safetensors"))
        try config.jsonData().write(to: URL(fileURLWithPath: (dir as NSString).appendingPathComponent("cfg.json")))
    }
}

/// Replaces a directory as a whole: writes a sibling temporary directory, then swaps it in with renames.
enum AtomicDirectory {
    static func write(_ path: String, _ body: (String) throws -> Void) throws {
        let fm = FileManager.default
        let url = URL(fileURLWithPath: path).standardizedFileURL
        let parent = url.deletingLastPathComponent().path
        try fm.createDirectory(atPath: parent, withIntermediateDirectories: true)
        let tag = "\(ProcessInfo.processInfo.processIdentifier)-\(UInt32.random(in: 0...UInt32.max))"
        let tmp = (parent as NSString).appendingPathComponent(".\(url.lastPathComponent).tmp-\(tag)")
        let old = (parent as NSString).appendingPathComponent(".\(url.lastPathComponent).old-\(tag)")
        try fm.createDirectory(atPath: tmp, withIntermediateDirectories: false)
        do {
            try body(tmp)
        } catch {
            try? fm.removeItem(atPath: tmp)
            throw error
        }
        var isDir: ObjCBool = false
        let existed = fm.fileExists(atPath: url.path, isDirectory: &isDir)
        if existed { try fm.moveItem(atPath: url.path, toPath: old) }
        do {
            try fm.moveItem(atPath: tmp, toPath: url.path)
        } catch {
            if existed { try? fm.moveItem(atPath: old, toPath: url.path) }
            try? fm.removeItem(atPath: tmp)
            throw error
        }
        if existed { try? fm.removeItem(atPath: old) }
    }
}
