import Foundation
import Formats
import Kernels

/// SAELens's on-disk layout (sae_lens/saes/sae.py `save_model`, `load_from_disk`; SAELens 6):
///
///     cfg.json                 `SAEConfig.to_dict()`: architecture, d_in, d_sae, dtype, apply_b_dec_to_input,
///                              normalize_activations, reshape_activations, metadata {hook_name, …};
///                              topk adds k and rescale_acts_by_decoder_norm; transcoders add d_out and
///                              metadata.hook_name_out. Before 6.0: hook_point/hook_name at the top level and
///                              activation_fn "topk" with activation_fn_kwargs.k.
///     sae_weights.safetensors  W_enc [d_in, d_sae], b_enc [d_sae], W_dec [d_sae, d_out], b_dec [d_out];
///                              threshold [d_sae] (jumprelu; older files: log_threshold), W_skip [d_out, d_in].
///
/// Encode (standard, topk, jumprelu): pre = (x − b_dec·apply_b_dec_to_input)·W_enc + b_enc; standard
/// ReLU(pre); topk: the k largest of pre, ReLU'd (with rescale_acts_by_decoder_norm, pre·‖W_dec[j]‖ first);
/// jumprelu ReLU(pre)·[pre > threshold]. Transcoders never subtract b_dec. Loupe folds the rescaling into
/// W_enc, b_enc and W_dec, and keeps b_dec subtraction as its autoencoder (transcode=false) convention.
enum SAELensFormat {
    static let architectures: [String: (activation: String, transcoder: Bool, skip: Bool)] = [
        "standard": ("relu", false, false), "topk": ("topk", false, false), "jumprelu": ("jumprelu", false, false),
        "transcoder": ("relu", true, false), "skip_transcoder": ("relu", true, true),
        "jumprelu_transcoder": ("jumprelu", true, false), "jumprelu_skip_transcoder": ("jumprelu", true, true),
    ]

    static func files(_ path: String) -> (dir: String, cfg: String, weights: String) {
        let dir = (path as NSString).lastPathComponent.hasSuffix(".safetensors") ? (path as NSString).deletingLastPathComponent : path
        return (dir, (dir as NSString).appendingPathComponent("cfg.json"), (dir as NSString).appendingPathComponent("sae_weights.safetensors"))
    }

    static func describe(_ path: String) throws -> DictionaryDescription {
        let (_, cfgPath, _) = files(path)
        let cfg = try Dictionaries.readJSON(cfgPath)
        let meta = cfg["metadata"] as? [String: Any] ?? [:]
        var arch = cfg["architecture"] as? String ?? "standard"
        var k = cfg["k"] as? Int
        let activationFn = cfg["activation_fn"] as? String ?? cfg["activation_fn_str"] as? String
        if arch == "standard", activationFn == "topk" {
            arch = "topk"
            k = (cfg["activation_fn_kwargs"] as? [String: Any])?["k"] as? Int
        }
        guard let a = architectures[arch] else {
            throw DictionaryError.unsupported(file: cfgPath, field: "architecture",
                                              reason: "'\(arch)' is not one Loupe reads (\(architectures.keys.sorted().joined(separator: ", ")))")
        }
        let dIn = try Dictionaries.int(cfg, "d_in", file: cfgPath), dSae = try Dictionaries.int(cfg, "d_sae", file: cfgPath)
        let dOut = a.transcoder ? try Dictionaries.int(cfg, "d_out", file: cfgPath) : dIn
        if a.activation == "topk" {
            guard let kk = k, kk > 0, kk <= dSae else {
                throw DictionaryError.mismatch(file: cfgPath, field: "k", found: k.map(String.init) ?? "missing", expected: "1…\(dSae)")
            }
        }
        let norm = cfg["normalize_activations"] as? String ?? "none"
        // "expected_average_only_in" is folded by from_pretrained when it knows the factor; load_from_disk
        // runs it as the identity, as Loupe does.
        guard norm == "none" || norm == "expected_average_only_in" else {
            throw DictionaryError.unsupported(file: cfgPath, field: "normalize_activations",
                                              reason: "'\(norm)' rescales each input at run time, which Loupe does not (fold it into the weights and save with \"none\")")
        }
        if let r = cfg["reshape_activations"] as? String, r != "none" {
            throw DictionaryError.unsupported(file: cfgPath, field: "reshape_activations", reason: "'\(r)' (attention heads) is not supported")
        }
        if cfg["finetuning_scaling_factor"] as? Bool == true {
            throw DictionaryError.unsupported(file: cfgPath, field: "finetuning_scaling_factor", reason: "fold the scaling factor into W_dec first")
        }
        let hook = meta["hook_name"] as? String ?? cfg["hook_name"] as? String ?? cfg["hook_point"] as? String ?? "unknown"
        let site: DictionaryDescription.Site = a.transcoder ? .mlp : Dictionaries.site(of: hook)
        return DictionaryDescription(format: .saeLens, path: path, configFile: cfgPath, kind: a.transcoder ? .transcoder : .sae,
                                     site: site, hookpoint: hook + ((meta["hook_name_out"] as? String).map { " → \($0)" } ?? ""),
                                     layer: Dictionaries.layer(in: hook), dIn: dIn, dOut: dOut, latents: dSae, activation: a.activation,
                                     k: a.activation == "topk" ? k : nil, skipConnection: a.skip, architecture: arch)
    }

    static func load(_ d: DictionaryDescription, keep: Int?) throws -> Transcoder {
        let (_, cfgPath, weights) = files(d.path)
        let cfg = try Dictionaries.readJSON(cfgPath)
        let file = try SafetensorsFile(path: weights)
        let (n, m, o) = (d.dIn, d.latents, d.dOut)
        if d.dOut != d.dIn {
            throw DictionaryError.mismatch(file: cfgPath, field: "d_out", found: "\(o)", expected: "d_in (\(n)): Loupe's transcoders write what they read")
        }
        var expected: Set<String> = ["W_enc", "b_enc", "W_dec", "b_dec"]
        if d.activation == "jumprelu" { expected.insert(file.tensors["log_threshold"] != nil ? "log_threshold" : "threshold") }
        if d.skipConnection { expected.insert("W_skip") }
        for name in file.tensors.keys.sorted() where !expected.contains(name) {
            throw TranscoderError.unexpectedTensor(file: weights, tensor: name)
        }
        let applyBDec = d.kind == .sae && (cfg["apply_b_dec_to_input"] as? Bool ?? true)
        let t = try Dictionaries.make(dIn: n, latents: m, activation: d.activation, k: d.k, keep: keep, skip: d.skipConnection,
                                      transcode: d.kind == .transcoder, file: cfgPath)
        Dictionaries.fill(t.encoderWeight, try file.floats("W_enc", shape: [n, m]), transposeFrom: (n, m))
        Dictionaries.fill(t.encoderBias, try file.floats("b_enc", shape: [m]))
        Dictionaries.fill(t.decoderWeight, try file.floats("W_dec", shape: [m, o]))
        Dictionaries.fill(t.decoderBias, try file.floats("b_dec", shape: [o]))
        if let s = t.skipWeight { Dictionaries.fill(s, try file.floats("W_skip", shape: [o, n])) }
        if let th = t.threshold {
            if file.tensors["log_threshold"] != nil {
                Dictionaries.fill(th, try file.floats("log_threshold", shape: [m]).map { Float(exp(Double($0))) })
            } else {
                Dictionaries.fill(th, try file.floats("threshold", shape: [m]))
            }
        }
        if d.kind == .sae && !applyBDec { Dictionaries.foldDecoderBias(t, sign: 1) }
        if d.activation == "topk", cfg["rescale_acts_by_decoder_norm"] as? Bool == true {
            // codes = pre·‖W_dec[j]‖ decoded through W_dec[j]/‖W_dec[j]‖: scale row j of W_enc and b_enc up, W_dec down.
            for j in 0..<m {
                var s: Float = 0
                for i in 0..<n { s += t.decoderWeight[j * n + i] * t.decoderWeight[j * n + i] }
                let norm = s.squareRoot()
                guard norm > 0 else { continue }
                for i in 0..<n { t.encoderWeight[j * n + i] *= norm; t.decoderWeight[j * n + i] /= norm }
                t.encoderBias[j] *= norm
            }
        }
        t.parametersDidChange()
        return t
    }

    /// Writes SAELens's layout. TopK is written only for SAEs (SAELens has no TopK transcoder), and
    /// groupmax not at all; SAEs are written with apply_b_dec_to_input true (Loupe's convention).
    static func write(_ t: Transcoder, to path: String, layer: Int) throws {
        let c = t.config
        let arch: String
        switch (c.activation, c.transcode, c.skipConnection) {
        case ("relu", false, false): arch = "standard"
        case ("topk", false, false): arch = "topk"
        case ("jumprelu", false, false): arch = "jumprelu"
        case ("relu", true, false): arch = "transcoder"
        case ("relu", true, true): arch = "skip_transcoder"
        case ("jumprelu", true, false): arch = "jumprelu_transcoder"
        case ("jumprelu", true, true): arch = "jumprelu_skip_transcoder"
        default:
            throw DictionaryError.cannotWrite(format: .saeLens, reason: "SAELens has no \(c.activation) \(c.transcode ? "transcoder" : "SAE")\(c.skipConnection ? " with a skip connection" : "")")
        }
        var cfg: [String: Any] = [
            "architecture": arch, "d_in": t.d, "d_sae": t.m, "dtype": "float32", "device": "cpu",
            "apply_b_dec_to_input": !c.transcode, "normalize_activations": "none", "reshape_activations": "none",
            "metadata": ["hook_name": c.transcode ? "blocks.\(layer).ln2.hook_normalized" : "blocks.\(layer).hook_resid_post",
                         "model_name": "SmolLM2-135M-Instruct", "sae_lens_version": "6.0.0", "exported_by": "loupe"]
                + (c.transcode ? ["hook_name_out": "blocks.\(layer).hook_mlp_out"] : [:]),
        ]
        if c.transcode { cfg["d_out"] = t.d }
        if arch == "topk" { cfg["k"] = c.k; cfg["rescale_acts_by_decoder_norm"] = false }
        var tensors: [(name: String, shape: [Int], values: [Float])] = [
            ("W_enc", [t.d, t.m], transposed(t.encoderWeight, rows: t.m, cols: t.d)), ("b_enc", [t.m], t.encoderBias.array),
            ("W_dec", [t.m, t.d], t.decoderWeight.array), ("b_dec", [t.d], t.decoderBias.array),
        ]
        if let th = t.threshold { tensors.append(("threshold", [t.m], th.array)) }
        if let s = t.skipWeight { tensors.append(("W_skip", [t.d, t.d], s.array)) }
        try AtomicDirectory.write(path) { tmp in
            try SafetensorsFile.write(tensors, to: (tmp as NSString).appendingPathComponent("sae_weights.safetensors"))
            let json = try JSONSerialization.data(withJSONObject: cfg, options: [.sortedKeys])
            try json.write(to: URL(fileURLWithPath: (tmp as NSString).appendingPathComponent("cfg.json")))
        }
    }

    /// A row-major [rows × cols] buffer as [cols × rows].
    static func transposed(_ b: FloatBuffer, rows: Int, cols: Int) -> [Float] {
        var out = [Float](repeating: 0, count: rows * cols)
        for r in 0..<rows { for c in 0..<cols { out[c * rows + r] = b[r * cols + c] } }
        return out
    }
}

extension Dictionary where Key == String, Value == Any {
    static func + (a: Self, b: Self) -> Self { a.merging(b) { _, new in new } }
}
