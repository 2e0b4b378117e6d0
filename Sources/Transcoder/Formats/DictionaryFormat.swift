import Foundation
import Formats
import Kernels

/// The dictionary formats Loupe reads (and writes where the format can hold the dictionary):
///
/// | format         | files                                              | Loupe reads                  |
/// | sparsify       | `<hookpoint>/cfg.json` + `sae.safetensors`         | TopK, groupmax; SAE or transcoder |
/// | SAELens        | `cfg.json` + `sae_weights.safetensors`             | standard, topk, jumprelu SAEs; transcoder, skip_transcoder, jumprelu(_skip)_transcoder |
/// | Gemma Scope    | `params.npz` (Gemma 2 releases) or `params.safetensors` + `config.json` (Gemma Scope 2) | JumpReLU SAEs and transcoders |
/// | circuit-tracer | `layer_<L>.safetensors` (one per layer)            | ReLU or JumpReLU transcoders, with W_skip |
///
/// Each reader turns the file into Loupe's `Transcoder` (its encoder [M×d], decoder [M×d], W_skip and
/// thresholds), folding whatever the library does at encode time into the weights so that Loupe's
/// codes equal the library's: an input b_dec subtraction, decoder-norm rescaling, transposed encoders.
public enum DictionaryFormat: String, CaseIterable, Sendable {
    case sparsify, saeLens = "saelens", gemmaScope = "gemmascope", circuitTracer = "circuit-tracer"

    /// The name users read.
    public var title: String {
        switch self {
        case .sparsify: "sparsify"
        case .saeLens: "SAELens"
        case .gemmaScope: "Gemma Scope"
        case .circuitTracer: "circuit-tracer"
        }
    }

    /// One line per format for `loupe help`.
    public static let helpLines = [
        "sparsify: DIR with cfg.json + sae.safetensors (TopK, groupmax)",
        "SAELens: DIR with cfg.json + sae_weights.safetensors (standard, topk, jumprelu SAEs; transcoder, skip_transcoder, jumprelu_transcoder)",
        "Gemma Scope: params.npz (np.savez) or params.safetensors + config.json (Gemma Scope 2), JumpReLU",
        "circuit-tracer: layer_L.safetensors (ReLU or JumpReLU transcoder, optional W_skip)",
    ]
}

/// What a dictionary is, read from its configuration and tensor headers without its weights.
public struct DictionaryDescription: Equatable, Sendable {
    public enum Kind: String, Sendable {
        /// Predicts an MLP's output from its input.
        case transcoder
        /// Reconstructs the activations it reads (a sparse autoencoder).
        case sae
    }

    /// Where an SAE reads, or a transcoder's MLP.
    public enum Site: String, Sendable {
        case mlp = "MLP (input → output)", residual = "residual stream", mlpOutput = "MLP output", attention = "attention", unknown = "unknown"
    }

    public var format: DictionaryFormat
    /// The file or folder as given, and the file whose fields describe it.
    public var path: String
    public var configFile: String
    public var kind: Kind
    public var site: Site
    /// The hookpoint as the file names it (e.g. "blocks.15.hook_resid_post"), or what Loupe inferred.
    public var hookpoint: String
    /// The layer, when the file or its path says.
    public var layer: Int?
    public var dIn: Int
    public var dOut: Int
    public var latents: Int
    /// "topk", "groupmax", "relu" or "jumprelu".
    public var activation: String
    /// TopK's k (sparsify, SAELens topk).
    public var k: Int?
    public var skipConnection: Bool
    /// The library's own name for the architecture (SAELens `architecture`, …).
    public var architecture: String

    /// "jumprelu transcoder, 16384 latents, d_in 576, layer 15 (blocks.15.hook_mlp_in)".
    public var summary: String {
        let act = k.map { "\(activation) k=\($0)" } ?? activation
        let where_ = layer.map { "layer \($0) \(site.rawValue)" } ?? site.rawValue
        return "\(format.title) \(kind == .transcoder ? "transcoder" : "SAE") (\(architecture)): \(act), \(latents) latents, d_in \(dIn)"
            + (skipConnection ? ", skip connection" : "") + "; \(where_), hookpoint \(hookpoint)"
    }

    /// Whether Loupe builds and explores it: a transcoder of an MLP (reads its input, writes its
    /// output), or an SAE on the residual stream leaving its layer (SAELens `hook_resid_post`,
    /// sparsify's `layers.L`, Gemma Scope's `-res`) — not one on the residual entering a layer or
    /// between attention and MLP (`hook_resid_pre`, `hook_resid_mid`), the MLP output or attention.
    public var buildable: Bool {
        switch kind {
        case .transcoder: return site == .mlp
        case .sae: return site == .residual && !hookpoint.contains("resid_pre") && !hookpoint.contains("resid_mid")
        }
    }

    /// What Loupe builds from it, in words, or why it cannot.
    public var buildNote: String {
        if buildable { return kind == .transcoder ? "usable with `loupe build --dictionary` (a transcoder of the MLP)"
                           : "usable with `loupe build --dictionary` (an SAE on the residual stream after its layer)" }
        return "an SAE on the \(site.rawValue) (\(hookpoint)): Loupe builds transcoders of an MLP and SAEs on the residual stream after a layer (hook_resid_post) only"
    }

    /// The first mismatch with what the model and the build expect, as a one-line error naming the
    /// file and field: the width, a dictionary Loupe cannot build (with `buildable`), the layer.
    public func check(modelWidth: Int, layers: Int, buildable wanted: Bool, layer: Int?) throws {
        let wantedLayer = layer
        if dIn != modelWidth {
            throw DictionaryError.mismatch(file: configFile, field: "d_in", found: "\(dIn)", expected: "\(modelWidth), the model's hidden size")
        }
        if dOut != dIn {
            throw DictionaryError.mismatch(file: configFile, field: "d_out", found: "\(dOut)", expected: "\(dIn) (Loupe's transcoders write what they read, d_out = d_in)")
        }
        if let layer = self.layer, layer >= layers {
            throw DictionaryError.mismatch(file: configFile, field: "layer", found: "\(layer)", expected: "0…\(layers - 1), the model's layers")
        }
        if wanted && !buildable {
            throw DictionaryError.mismatch(file: configFile, field: fieldNamingKind,
                                           found: "\(kind == .sae ? "an SAE" : "a transcoder") on the \(site.rawValue) (\(hookpoint))",
                                           expected: "a transcoder of an MLP or an SAE on the residual stream after a layer (hook_resid_post, sparsify's layers.L); Loupe cannot build or explore a dictionary at another site")
        }
        if let wantedLayer, let layer = self.layer, wantedLayer != layer {
            throw DictionaryError.mismatch(file: configFile, field: fieldNamingLayer, found: "layer \(layer) (\(hookpoint))",
                                           expected: "layer \(wantedLayer) as --layer asks; drop --layer to take the dictionary's")
        }
    }

    /// The field that says what kind of dictionary this is, in the format's own words.
    var fieldNamingKind: String {
        switch format {
        case .saeLens: "architecture"
        case .sparsify: "transcode"
        case .gemmaScope: configFile.hasSuffix(".json") ? "hf_hook_point_out" : "path"
        case .circuitTracer: "path"
        }
    }

    var fieldNamingLayer: String {
        switch format {
        case .saeLens: "metadata.hook_name"
        case .sparsify: "path"
        case .gemmaScope: configFile.hasSuffix(".json") ? "hf_hook_point_in" : "path"
        case .circuitTracer: "path"
        }
    }
}

/// A dictionary file Loupe cannot use, in one line that names the file and field and says what was expected.
public enum DictionaryError: Error, Equatable, CustomStringConvertible {
    case unknownFormat(path: String, reason: String)
    case mismatch(file: String, field: String, found: String, expected: String)
    case unsupported(file: String, field: String, reason: String)
    case cannotWrite(format: DictionaryFormat, reason: String)

    public var description: String {
        switch self {
        case let .unknownFormat(path, reason): return "\(path): not a dictionary Loupe knows (\(reason))"
        case let .mismatch(file, field, found, expected): return "\(file): \(field) is \(found), expected \(expected)"
        case let .unsupported(file, field, reason): return "\(file): \(field): \(reason)"
        case let .cannotWrite(format, reason): return "cannot write this dictionary as \(format.title): \(reason)"
        }
    }
}

/// Finding, describing, loading and writing dictionaries in any of `DictionaryFormat`'s formats.
public enum Dictionaries {
    /// The format of a file or folder, by the files it holds.
    public static func detect(_ path: String) throws -> DictionaryFormat {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: path, isDirectory: &isDir) else { throw DictionaryError.unknownFormat(path: path, reason: "no such file or folder") }
        func has(_ name: String) -> Bool { fm.fileExists(atPath: (path as NSString).appendingPathComponent(name)) }
        let name = (path as NSString).lastPathComponent
        if isDir.boolValue {
            if has("sae_weights.safetensors") { return .saeLens }
            if has("sae.safetensors") { return .sparsify }
            if has("params.npz") || has("params.safetensors") { return .gemmaScope }
            let entries = (try? fm.contentsOfDirectory(atPath: path)) ?? []
            // A folder of several: sparsify's one folder per hookpoint, circuit-tracer's one file per layer.
            let hookpoints = entries.filter { fm.fileExists(atPath: (path as NSString).appendingPathComponent("\($0)/cfg.json")) }.sorted()
            if !hookpoints.isEmpty {
                throw DictionaryError.unknownFormat(path: path, reason: "a folder of \(hookpoints.count) dictionaries; give one of them, e.g. "
                    + (path as NSString).appendingPathComponent(hookpoints[0]))
            }
            let layers = entries.filter { $0.hasPrefix("layer_") && $0.hasSuffix(".safetensors") }.sorted()
            if !layers.isEmpty {
                throw DictionaryError.unknownFormat(path: path, reason: "circuit-tracer's \(layers.count) per-layer files; give one of them, e.g. "
                    + (path as NSString).appendingPathComponent(layers[0]))
            }
            throw DictionaryError.unknownFormat(path: path, reason: "found \(entries.sorted().prefix(6).joined(separator: ", ")); expected sae_weights.safetensors "
                + "(SAELens), sae.safetensors (sparsify), params.npz or params.safetensors (Gemma Scope), or give circuit-tracer's layer_L.safetensors itself")
        }
        if name.hasSuffix(".npz") { return .gemmaScope }
        if name == "params.safetensors" { return .gemmaScope }
        if name == "sae_weights.safetensors" { return .saeLens }
        if name == "sae.safetensors" { return .sparsify }
        if name.hasSuffix(".safetensors") {
            let f = try SafetensorsFile(path: path)
            if f.tensors["w_enc"] != nil { return .gemmaScope }
            if f.tensors["W_enc"] != nil, f.tensors["b_enc"] != nil { return .circuitTracer }
            throw DictionaryError.unknownFormat(path: path, reason: "a safetensors file without W_enc (circuit-tracer) or w_enc (Gemma Scope 2)")
        }
        throw DictionaryError.unknownFormat(path: path, reason: "expected a folder, a .npz or a .safetensors file")
    }

    /// The description, from configuration and tensor headers (no weights are read).
    public static func describe(_ path: String) throws -> DictionaryDescription {
        switch try detect(path) {
        case .sparsify: return try SparsifyFormat.describe(path)
        case .saeLens: return try SAELensFormat.describe(path)
        case .gemmaScope: return try GemmaScopeFormat.describe(path)
        case .circuitTracer: return try CircuitTracerFormat.describe(path)
        }
    }

    /// Loads a dictionary as a `Transcoder`. `keep` is the most latents kept per token for ReLU and
    /// JumpReLU dictionaries (their `k`); nil keeps every latent (exact codes; what the tests use).
    public static func load(_ path: String, keep: Int? = nil) throws -> (Transcoder, DictionaryDescription) {
        let d = try describe(path)
        let t: Transcoder
        switch d.format {
        case .sparsify: t = try Transcoder.load(directory: SparsifyFormat.directory(path))
        case .saeLens: t = try SAELensFormat.load(d, keep: keep)
        case .gemmaScope: t = try GemmaScopeFormat.load(d, keep: keep)
        case .circuitTracer: t = try CircuitTracerFormat.load(d, keep: keep)
        }
        return (t, d)
    }

    /// Writes `transcoder` in `format` at `path` (a folder; for circuit-tracer, the folder that gets
    /// `layer_<layer>.safetensors`). `hookpoint` is SAELens's hook name to record.
    public static func write(_ transcoder: Transcoder, as format: DictionaryFormat, to path: String, layer: Int) throws {
        switch format {
        case .sparsify: try transcoder.save(directory: path)
        case .saeLens: try SAELensFormat.write(transcoder, to: path, layer: layer)
        case .gemmaScope: try GemmaScopeFormat.write(transcoder, to: path, layer: layer)
        case .circuitTracer: try CircuitTracerFormat.write(transcoder, to: path, layer: layer)
        }
    }

    // MARK: helpers the readers share

    /// A transcoder of the given shape whose parameters the caller fills.
    static func make(dIn: Int, latents: Int, activation: String, k: Int?, keep: Int?, skip: Bool, transcode: Bool,
                     file: String) throws -> Transcoder {
        let kk = k ?? min(keep ?? latents, latents)
        let cfg = TranscoderConfig(dIn: dIn, numLatents: latents, k: kk, activation: activation, normalizeDecoder: false,
                                   skipConnection: skip, transcode: transcode)
        if let (key, reason) = cfg.problem() { throw DictionaryError.unsupported(file: file, field: key, reason: reason) }
        return Transcoder(config: cfg, seed: 0)
    }

    /// `values` into `buffer`; `transpose` reads a [cols × rows] matrix into [rows × cols].
    static func fill(_ buffer: FloatBuffer, _ values: [Float], transposeFrom shape: (rows: Int, cols: Int)? = nil) {
        if let (r, c) = shape {
            for i in 0..<r { for j in 0..<c { buffer[j * r + i] = values[i * c + j] } }
        } else {
            values.withUnsafeBufferPointer { buffer.pointer.update(from: $0.baseAddress!, count: values.count) }
        }
    }

    /// Turns "encode x − b_dec" into "encode x": b_enc += W_enc·b_dec, so a Loupe autoencoder (which
    /// subtracts b_dec) gives the codes of a dictionary that does not. And its inverse for writing.
    static func foldDecoderBias(_ t: Transcoder, sign: Float) {
        for j in 0..<t.m {
            var s: Float = 0
            for i in 0..<t.d { s += t.encoderWeight[j * t.d + i] * t.decoderBias[i] }
            t.encoderBias[j] += sign * s
        }
    }

    /// The layer in a hook name or path: "blocks.15.", "layers.15.", "layer_15", "layer15".
    static func layer(in text: String) -> Int? {
        for pattern in [#"blocks\.(\d+)\."#, #"layers\.(\d+)"#, #"layer_(\d+)"#, #"layer(\d+)"#] {
            if let r = text.range(of: pattern, options: .regularExpression) {
                let digits = text[r].filter(\.isNumber)
                return Int(digits)
            }
        }
        return nil
    }

    /// The site a hook name points at.
    static func site(of hook: String) -> DictionaryDescription.Site {
        if hook.contains("resid") || hook.hasSuffix(".output") && !hook.contains("mlp") && !hook.contains("layernorm") { return .residual }
        if hook.contains("hook_z") || hook.contains("attn") || hook.contains("o_proj") { return .attention }
        if hook.contains("mlp_out") || hook.contains("post_feedforward") { return .mlpOutput }
        if hook.contains("mlp") || hook.contains("ln2") || hook.contains("pre_feedforward") { return .mlp }
        return .unknown
    }

    static func readJSON(_ path: String) throws -> [String: Any] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw DictionaryError.unknownFormat(path: path, reason: "cannot read the file")
        }
        guard let obj = try? JSONSerialization.jsonObject(with: data), let dict = obj as? [String: Any] else {
            throw DictionaryError.unsupported(file: path, field: "(file)", reason: "not a JSON object")
        }
        return dict
    }

    static func int(_ dict: [String: Any], _ key: String, file: String) throws -> Int {
        guard let v = dict[key] as? Int, v > 0 else {
            throw DictionaryError.mismatch(file: file, field: key, found: dict[key].map { "\($0)" } ?? "missing", expected: "a positive integer")
        }
        return v
    }
}

/// sparsify's layout described (loading is `Transcoder.load(directory:)`).
enum SparsifyFormat {
    static func directory(_ path: String) -> String {
        (path as NSString).lastPathComponent == "sae.safetensors" ? (path as NSString).deletingLastPathComponent : path
    }

    static func describe(_ path: String) throws -> DictionaryDescription {
        let dir = directory(path)
        let cfgPath = (dir as NSString).appendingPathComponent("cfg.json")
        let cfg = try TranscoderConfig.read(path: cfgPath)
        let hook = (dir as NSString).lastPathComponent
        // sparsify names hookpoints by module: "layers.15.mlp" (its input → output for a transcoder, its
        // output for an SAE), "layers.15" (the residual stream after layer 15).
        let site: DictionaryDescription.Site = cfg.transcode ? .mlp : hook.hasSuffix("mlp") ? .mlpOutput
            : hook.contains("attn") ? .attention : .residual
        return DictionaryDescription(format: .sparsify, path: path, configFile: cfgPath, kind: cfg.transcode ? .transcoder : .sae,
                                     site: site, hookpoint: hook,
                                     layer: Dictionaries.layer(in: hook), dIn: cfg.dIn, dOut: cfg.dIn, latents: cfg.latents,
                                     activation: cfg.activation, k: cfg.activation == "topk" || cfg.activation == "groupmax" ? cfg.k : nil,
                                     skipConnection: cfg.skipConnection, architecture: cfg.transcode ? "transcoder" : "sae")
    }
}
