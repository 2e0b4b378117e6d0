import Foundation

/// What stops a build: settings that do not fit the model or the workspace.
public enum BuildError: Error, Equatable, CustomStringConvertible {
    /// `--layer` outside the model's 0..<layers.
    case layerOutOfRange(Int, layers: Int)
    /// A workspace built with other settings than asked for.
    case otherSettings(workspace: String, layer: Int, latents: Int, k: Int, site: String)
    /// A given transcoder of another width than the model.
    case transcoderWidth(source: String, transcoder: Int, model: Int)
    /// A given dictionary of the other kind than the site the build asks for.
    case otherSite(source: String, found: String, site: String)

    public var description: String {
        switch self {
        case let .layerOutOfRange(layer, layers): return "--layer \(layer) is outside the model's layers 0…\(layers - 1)"
        case let .otherSettings(workspace, _, latents, k, site):
            return "\(workspace) was built with other settings (\(site), \(latents) latents, k \(k)); "
                + "choose another folder with --workspace DIR or delete this one"
        case let .transcoderWidth(source, transcoder, model):
            return "the transcoder in \(source) takes inputs of size \(transcoder), but the model's hidden size is \(model)"
        case let .otherSite(source, found, site):
            return "\(source): is \(found), but the build asks for a \(site); drop --site or give --site \(found == "an SAE" ? "residual" : "mlp")"
        }
    }
}
