import Foundation
import Formats

/// Gemma Scope's JumpReLU dictionaries, in its two release layouts:
///
///     Gemma Scope (Gemma 2)   <release>/layer_<L>/width_<W>/average_l0_<N>/params.npz, written by np.savez:
///                             W_enc [d_in, d_sae], b_enc [d_sae], W_dec [d_sae, d_in], b_dec [d_in],
///                             threshold [d_sae]. No config file: the release's name says the site
///                             (…-res: residual stream after the layer, …-mlp: MLP output, …-att: attention,
///                             …-transcoders: MLP input → output) and the folder `layer_<L>` the layer.
///     Gemma Scope 2 (Gemma 3) <folder>/params.safetensors + config.json {"architecture": "jump_relu",
///                             "hf_hook_point_in", "hf_hook_point_out" (transcoders), "affine_connection"}:
///                             w_enc [d_in, d_sae], b_enc, w_dec [d_sae, d_out], b_dec, threshold,
///                             affine_skip_connection [d_in, d_out] (W_skip transposed).
///
/// Encode: pre = x·W_enc + b_enc (no b_dec subtraction), code = ReLU(pre)·[pre > threshold]
/// (SAELens's gemma loaders set apply_b_dec_to_input false; circuit-tracer's load_gemma_scope_transcoder
/// reads the same arrays). Loupe's autoencoders subtract b_dec, so for SAEs b_enc absorbs W_enc·b_dec.
enum GemmaScopeFormat {
    static func files(_ path: String) -> (params: String, config: String?) {
        var isDir: ObjCBool = false
        _ = FileManager.default.fileExists(atPath: path, isDirectory: &isDir)
        let dir = isDir.boolValue ? path : (path as NSString).deletingLastPathComponent
        var params = path
        if isDir.boolValue {
            let npz = (dir as NSString).appendingPathComponent("params.npz")
            params = FileManager.default.fileExists(atPath: npz) ? npz : (dir as NSString).appendingPathComponent("params.safetensors")
        }
        let cfg = (dir as NSString).appendingPathComponent("config.json")
        return (params, params.hasSuffix(".safetensors") && FileManager.default.fileExists(atPath: cfg) ? cfg : nil)
    }

    /// Tensor names in this layout: Gemma Scope 2 spells the matrices w_enc, w_dec.
    static func names(_ npz: Bool) -> (enc: String, dec: String) { npz ? ("W_enc", "W_dec") : ("w_enc", "w_dec") }

    static func shapes(_ params: String) throws -> [String: [Int]] {
        if params.hasSuffix(".npz") { return try NPZFile(path: params).arrays.mapValues(\.shape) }
        return try SafetensorsFile(path: params).tensors.mapValues(\.shape)
    }

    static func describe(_ path: String) throws -> DictionaryDescription {
        let (params, cfgPath) = files(path)
        let npz = params.hasSuffix(".npz")
        let shapes = try shapes(params)
        let n = names(npz)
        guard let enc = shapes[n.enc], enc.count == 2 else { throw FormatError.missingTensor(file: params, tensor: n.enc) }
        guard let dec = shapes[n.dec], dec.count == 2 else { throw FormatError.missingTensor(file: params, tensor: n.dec) }
        let skip = shapes["affine_skip_connection"] != nil
        var kind: DictionaryDescription.Kind, site: DictionaryDescription.Site, hook: String, layer: Int?
        if let cfgPath {
            let cfg = try Dictionaries.readJSON(cfgPath)
            if let a = cfg["architecture"] as? String, a != "jump_relu" {
                throw DictionaryError.unsupported(file: cfgPath, field: "architecture", reason: "'\(a)' is not \"jump_relu\"")
            }
            hook = cfg["hf_hook_point_in"] as? String ?? "unknown"
            let out = cfg["hf_hook_point_out"] as? String
            kind = out != nil ? .transcoder : .sae
            site = out != nil ? .mlp : Dictionaries.site(of: hook)
            layer = Dictionaries.layer(in: hook)
            if let out { hook += " → \(out)" }
        } else {
            // The release and layer folders name what the arrays are.
            let full = (path as NSString).standardizingPath
            layer = Dictionaries.layer(in: full)
            if full.contains("transcoder") {
                (kind, site, hook) = (.transcoder, .mlp, layer.map { "blocks.\($0).ln2.hook_normalized → blocks.\($0).hook_mlp_out" } ?? "MLP")
            } else if full.contains("-res") || full.contains("resid") {
                (kind, site, hook) = (.sae, .residual, layer.map { "blocks.\($0).hook_resid_post" } ?? "residual stream")
            } else if full.contains("-mlp") {
                (kind, site, hook) = (.sae, .mlpOutput, layer.map { "blocks.\($0).hook_mlp_out" } ?? "MLP output")
            } else if full.contains("-att") {
                (kind, site, hook) = (.sae, .attention, layer.map { "blocks.\($0).attn.hook_z" } ?? "attention")
            } else {
                throw DictionaryError.unsupported(file: params, field: "path", reason: "the path names no Gemma Scope release (…-res, …-mlp, …-att or …-transcoders), "
                    + "so whether it is an SAE or a transcoder is unknown; keep the release's folder names")
            }
        }
        return DictionaryDescription(format: .gemmaScope, path: path, configFile: cfgPath ?? params, kind: kind, site: site, hookpoint: hook,
                                     layer: layer, dIn: enc[0], dOut: dec[1], latents: enc[1], activation: "jumprelu", k: nil,
                                     skipConnection: skip, architecture: npz ? "params.npz" : "jump_relu")
    }

    static func load(_ d: DictionaryDescription, keep: Int?) throws -> Transcoder {
        let (params, _) = files(d.path)
        let npz = params.hasSuffix(".npz")
        let (n, m, o) = (d.dIn, d.latents, d.dOut)
        if o != n {
            throw DictionaryError.mismatch(file: params, field: names(npz).dec, found: "[\(m), \(o)]", expected: "[\(m), \(n)]: Loupe's transcoders write what they read")
        }
        let read: (String, [Int]) throws -> [Float]
        if npz {
            let f = try NPZFile(path: params)
            read = { try f.floats($0, shape: $1) }
            if let s = f.arrays["scaling_factor"], try f.floats("scaling_factor", shape: s.shape).contains(where: { $0 != 1 }) {
                throw DictionaryError.unsupported(file: params, field: "scaling_factor", reason: "a scaling factor other than 1; fold it into W_dec first")
            }
        } else {
            let f = try SafetensorsFile(path: params)
            read = { try f.floats($0, shape: $1) }
        }
        let t = try Dictionaries.make(dIn: n, latents: m, activation: "jumprelu", k: nil, keep: keep, skip: d.skipConnection,
                                      transcode: d.kind == .transcoder, file: params)
        let names = names(npz)
        Dictionaries.fill(t.encoderWeight, try read(names.enc, [n, m]), transposeFrom: (n, m))
        Dictionaries.fill(t.encoderBias, try read("b_enc", [m]))
        Dictionaries.fill(t.decoderWeight, try read(names.dec, [m, o]))
        Dictionaries.fill(t.decoderBias, try read("b_dec", [o]))
        Dictionaries.fill(t.threshold!, try read("threshold", [m]))
        if let s = t.skipWeight { Dictionaries.fill(s, try read("affine_skip_connection", [n, o]), transposeFrom: (n, o)) }
        if d.kind == .sae { Dictionaries.foldDecoderBias(t, sign: 1) }
        t.parametersDidChange()
        return t
    }

    /// Writes `params.npz` (np.savez's layout) into the folder `path`, or, for a skip transcoder (which the
    /// npz releases cannot hold), Gemma Scope 2's params.safetensors + config.json. ReLU is written as
    /// JumpReLU with thresholds 0 (ReLU(pre)·[pre > 0] = ReLU(pre)); TopK and groupmax cannot be.
    static func write(_ t: Transcoder, to path: String, layer: Int) throws {
        let c = t.config
        guard c.activation == "relu" || c.activation == "jumprelu" else {
            throw DictionaryError.cannotWrite(format: .gemmaScope, reason: "Gemma Scope holds JumpReLU (or ReLU) dictionaries, not \(c.activation)")
        }
        // Gemma Scope does not subtract b_dec: undo Loupe's convention on a copy of b_enc.
        var bEnc = t.encoderBias.array
        if !c.transcode {
            for j in 0..<t.m {
                var s: Float = 0
                for i in 0..<t.d { s += t.encoderWeight[j * t.d + i] * t.decoderBias[i] }
                bEnc[j] -= s
            }
        }
        let theta = t.threshold?.array ?? [Float](repeating: 0, count: t.m)
        let wEnc = SAELensFormat.transposed(t.encoderWeight, rows: t.m, cols: t.d)
        try AtomicDirectory.write(path) { tmp in
            if let s = t.skipWeight {
                try SafetensorsFile.write([("w_enc", [t.d, t.m], wEnc), ("b_enc", [t.m], bEnc), ("w_dec", [t.m, t.d], t.decoderWeight.array),
                                           ("b_dec", [t.d], t.decoderBias.array), ("threshold", [t.m], theta),
                                           ("affine_skip_connection", [t.d, t.d], SAELensFormat.transposed(s, rows: t.d, cols: t.d))],
                                          to: (tmp as NSString).appendingPathComponent("params.safetensors"))
                let cfg: [String: Any] = ["architecture": "jump_relu", "affine_connection": true,
                                          "hf_hook_point_in": "model.layers.\(layer).post_attention_layernorm.output",
                                          "hf_hook_point_out": "model.layers.\(layer).mlp.output"]
                try JSONSerialization.data(withJSONObject: cfg, options: [.sortedKeys])
                    .write(to: URL(fileURLWithPath: (tmp as NSString).appendingPathComponent("config.json")))
            } else {
                try NPZFile.write([("W_enc", [t.d, t.m], wEnc), ("W_dec", [t.m, t.d], t.decoderWeight.array), ("b_enc", [t.m], bEnc),
                                   ("b_dec", [t.d], t.decoderBias.array), ("threshold", [t.m], theta)],
                                  to: (tmp as NSString).appendingPathComponent("params.npz"))
            }
        }
    }
}
