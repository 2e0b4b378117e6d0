import Model
import Storage

/// The one place the engine couples a workspace's dictionary to the model: the `LayerHook`, at the
/// dictionary's layer, that reads its input (and what it reconstructs) or replaces what it writes,
/// per `DictionarySite`. Activations, training, the latent cache, the evaluation, the rewrite's
/// splice, the context lab and the interventions all make their hooks here.
///
/// - `.mlp` (transcoder): input = the MLP's input (after its norm), target and written = the MLP's output.
/// - `.residual` (SAE): input = target = written = the residual stream leaving the layer. Its first
///   position of every sequence is never replaced (`DictionarySite.skipsFirstPosition`).
public struct DictionaryHook: Sendable {
    public let site: DictionarySite

    public init(site: DictionarySite) { self.site = site }

    /// Reads the dictionary's input and, with `target`, what it reconstructs (for an SAE the same rows).
    public func reading(input: @escaping (ActivationView) -> Void, target: ((ActivationView) -> Void)? = nil) -> LayerHook {
        var hook = LayerHook()
        switch site {
        case .mlp:
            hook.mlpInput = input
            hook.mlpOutput = target
        case .residual:
            hook.residualOutput = { v in
                input(v)
                target?(v)
            }
        }
        return hook
    }

    /// Replaces what the dictionary writes: `input` sees its input as the model computed it, then
    /// `replace` overwrites the written rows (holding the model's own values when called). Where the
    /// site skips first positions, the model's own value is put back there afterwards.
    public func replacing(input: ((ActivationView) -> Void)? = nil, replace: @escaping (MutableActivationView) -> Void) -> LayerHook {
        var hook = LayerHook()
        let keep = keepingFirstPositions(replace)
        switch site {
        case .mlp:
            hook.mlpInput = input
            hook.replaceMLPOutput = keep
        case .residual:
            hook.replaceResidualOutput = { v in
                input?(v.readOnly)
                keep(v)
            }
        }
        return hook
    }

    /// Rows of a chunk the dictionary leaves alone: first positions of sequences where the site skips them.
    public func skippedRows(_ v: ActivationView) -> [Int] { site.skipsFirstPosition ? v.firstPositionRows : [] }

    private func keepingFirstPositions(_ replace: @escaping (MutableActivationView) -> Void) -> (MutableActivationView) -> Void {
        guard site.skipsFirstPosition else { return replace }
        return { v in
            let rows = v.firstPositionRows
            let saved = rows.map { Array(v.row($0)) }
            replace(v)
            for (r, values) in zip(rows, saved) { _ = v.row(r).update(fromContentsOf: values) }
        }
    }
}
