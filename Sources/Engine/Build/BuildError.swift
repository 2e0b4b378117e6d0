import Foundation

/// What stops a build: settings that do not fit the model or the workspace.
public enum BuildError: Error, Equatable, CustomStringConvertible {
    /// `--layer` outside the model's 0..<layers.
    case layerOutOfRange(Int, layers: Int)
    /// A workspace built with other settings than asked for.
    case otherSettings(workspace: String, layer: Int, latents: Int, k: Int)
    /// A given transcoder of another width than the model.
    case transcoderWidth(source: String, transcoder: Int, model: Int)

    public var description: String {
        switch self {
        case let .layerOutOfRange(layer, layers): return "--layer \(layer) is outside the model's layers 0…\(layers - 1)"
        case let .otherSettings(workspace, layer, latents, k):
            return "\(workspace) was built with other settings (layer \(layer), \(latents) latents, k \(k)); "
                + "choose another folder with --workspace DIR or delete this one"
        case let .transcoderWidth(source, transcoder, model):
            return "the transcoder in \(source) takes inputs of size \(transcoder), but the model's hidden size is \(model)"
        }
    }
}
