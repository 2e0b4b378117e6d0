import Foundation
import Formats

/// circuit-tracer's per-layer transcoders (circuit_tracer/transcoder/single_layer_transcoder.py,
/// `SingleLayerTranscoder.to_safetensors`, `TranscoderSet.to_safetensors`, `load_relu_transcoder`):
///
///     <dir>/layer_<L>.safetensors   W_enc [d_sae, d_model], b_enc [d_sae], W_dec [d_sae, d_model],
///                                   b_dec [d_model], activation_function.threshold [d_sae] (JumpReLU;
///                                   ReLU without it), W_skip [d_model, d_model] (optional)
///
/// Encode: pre = x·W_encᵀ + b_enc (sparsify's orientation, no b_dec subtraction); ReLU(pre), or JumpReLU
/// pre·[pre > threshold] — which equals Loupe's ReLU(pre)·[pre > threshold] for thresholds ≥ 0, so
/// negative thresholds are refused. Decode: code·W_dec + b_dec + x·W_skipᵀ. The layer is the file's.
enum CircuitTracerFormat {
    static let thresholdName = "activation_function.threshold"

    static func describe(_ path: String) throws -> DictionaryDescription {
        let f = try SafetensorsFile(path: path)
        guard let enc = f.tensors["W_enc"]?.shape, enc.count == 2 else { throw FormatError.missingTensor(file: path, tensor: "W_enc") }
        let layer = Dictionaries.layer(in: (path as NSString).lastPathComponent)
        let jump = f.tensors[thresholdName] != nil
        return DictionaryDescription(format: .circuitTracer, path: path, configFile: path, kind: .transcoder, site: .mlp,
                                     hookpoint: layer.map { "layers.\($0).mlp" } ?? "MLP", layer: layer, dIn: enc[1],
                                     dOut: f.tensors["b_dec"]?.shape.first ?? enc[1], latents: enc[0], activation: jump ? "jumprelu" : "relu",
                                     k: nil, skipConnection: f.tensors["W_skip"] != nil, architecture: jump ? "JumpReLU" : "ReLU")
    }

    static func load(_ d: DictionaryDescription, keep: Int?) throws -> Transcoder {
        let f = try SafetensorsFile(path: d.path)
        let (n, m) = (d.dIn, d.latents)
        if d.dOut != n { throw DictionaryError.mismatch(file: d.path, field: "b_dec", found: "[\(d.dOut)]", expected: "[\(n)], d_in") }
        let expected: Set<String> = ["W_enc", "b_enc", "W_dec", "b_dec", thresholdName, "W_skip"]
        for name in f.tensors.keys.sorted() where !expected.contains(name) {
            throw TranscoderError.unexpectedTensor(file: d.path, tensor: name)
        }
        let t = try Dictionaries.make(dIn: n, latents: m, activation: d.activation, k: nil, keep: keep, skip: d.skipConnection,
                                      transcode: true, file: d.path)
        Dictionaries.fill(t.encoderWeight, try f.floats("W_enc", shape: [m, n]))
        Dictionaries.fill(t.encoderBias, try f.floats("b_enc", shape: [m]))
        Dictionaries.fill(t.decoderWeight, try f.floats("W_dec", shape: [m, n]))
        Dictionaries.fill(t.decoderBias, try f.floats("b_dec", shape: [n]))
        if let s = t.skipWeight { Dictionaries.fill(s, try f.floats("W_skip", shape: [n, n])) }
        if let th = t.threshold {
            let v = try f.floats(thresholdName, shape: [m])
            if let j = v.firstIndex(where: { $0 < 0 }) {
                throw DictionaryError.mismatch(file: d.path, field: "\(thresholdName)[\(j)]", found: "\(v[j])", expected: "≥ 0 (JumpReLU thresholds)")
            }
            Dictionaries.fill(th, v)
        }
        t.parametersDidChange()
        return t
    }

    /// Writes `<path>/layer_<layer>.safetensors` (the folder is created if needed). ReLU and JumpReLU
    /// transcoders only: circuit-tracer's loader knows no TopK file, and it has no SAEs.
    static func write(_ t: Transcoder, to path: String, layer: Int) throws {
        let c = t.config
        guard c.transcode, c.activation == "relu" || c.activation == "jumprelu" else {
            throw DictionaryError.cannotWrite(format: .circuitTracer, reason: "it holds ReLU or JumpReLU transcoders, not a \(c.activation) \(c.transcode ? "transcoder" : "SAE")")
        }
        var tensors: [(name: String, shape: [Int], values: [Float])] = [
            ("W_enc", [t.m, t.d], t.encoderWeight.array), ("W_dec", [t.m, t.d], t.decoderWeight.array),
            ("b_enc", [t.m], t.encoderBias.array), ("b_dec", [t.d], t.decoderBias.array),
        ]
        if let th = t.threshold { tensors.append((thresholdName, [t.m], th.array)) }
        if let s = t.skipWeight { tensors.append(("W_skip", [t.d, t.d], s.array)) }
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        try SafetensorsFile.write(tensors, to: (path as NSString).appendingPathComponent("layer_\(layer).safetensors"))
    }
}
