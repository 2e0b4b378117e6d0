/// Where a workspace's dictionary sits in the model: what it reads and what it writes, at its layer.
/// Recorded in `workspace.json` (`"site"`; a workspace written before the field holds an MLP
/// transcoder); everything that couples the dictionary to the model asks this type, not the kind.
///
/// - `mlp`: a transcoder of the layer's MLP — reads the MLP's input (the residual after attention,
///   through the pre-MLP RMSNorm) and writes the MLP's output. Hookpoint `layers.L.mlp`.
/// - `residual`: a sparse autoencoder of the residual stream leaving layer L (after its MLP) —
///   reads it and writes its reconstruction in its place. sparsify's hookpoint `layers.L`,
///   SAELens's `blocks.L.hook_resid_post`.
public enum DictionarySite: String, Codable, CaseIterable, Sendable {
    case mlp
    case residual

    /// sparsify's hookpoint name, which also names the dictionary's folder in the workspace.
    public func hookpoint(layer: Int) -> String {
        switch self {
        case .mlp: return "layers.\(layer).mlp"
        case .residual: return "layers.\(layer)"
        }
    }

    /// "transcoder" or "SAE".
    public var kind: String {
        switch self {
        case .mlp: return "transcoder"
        case .residual: return "SAE"
        }
    }

    /// What it reads and writes, in words: "MLP of layer 15", "residual stream after layer 15".
    public func place(layer: Int) -> String {
        switch self {
        case .mlp: return "MLP of layer \(layer)"
        case .residual: return "residual stream after layer \(layer)"
        }
    }

    /// "transcoder · MLP of layer 15 (layers.15.mlp)", "SAE · residual stream after layer 15 (layers.15)".
    public func title(layer: Int) -> String { "\(kind) · \(place(layer: layer)) (\(hookpoint(layer: layer)))" }

    /// Whether the dictionary reconstructs its own input (an SAE: the target is the input, and only the
    /// input is stored) rather than mapping it to another activation (a transcoder).
    public var reconstructsInput: Bool { self == .residual }

    /// Whether a sequence's first position is left out: not trained on, not counted in FVU or the
    /// latent cache, and never replaced (the model's own value stays). The residual stream at the first
    /// position of a Llama-family sequence is an "attention sink" tens of times the norm of the others
    /// (Tests/Scripts/eval/residual_norms.py); the MLP input is normed, so the transcoder keeps it.
    public var skipsFirstPosition: Bool { self == .residual }

    /// What zero and mean ablation replace, in words (the rewrite's rows and README say the same).
    public var ablated: String {
        switch self {
        case .mlp: return "the MLP output"
        case .residual: return "the residual stream"
        }
    }
}
