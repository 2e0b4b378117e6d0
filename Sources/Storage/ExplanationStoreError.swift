import Foundation

/// What the explanation store refuses: edits of latents or versions that do not exist, and
/// imports or exports of files that are not what they should be.
public enum ExplanationStoreError: Error, Equatable, CustomStringConvertible {
    /// Clearing (saving "") a latent that never had an explanation.
    case nothingToClear(latent: Int)
    /// Reverting to a version id the latent does not have.
    case noVersion(latent: Int, id: Int)
    /// A latent id outside the workspace's 0..<count (count nil: unknown); `file` and `key` name
    /// where an import found it.
    case noLatent(Int, count: Int?, file: String?, key: String?)
    /// An import path with nothing there.
    case noImportFile(path: String)
    /// An import file that is missing or cannot be read.
    case unreadable(path: String)
    /// An import folder that cannot be listed.
    case unreadableFolder(path: String)
    /// A JSON import that is not `{"<latent id>": "text", …}`.
    case notLatentTexts(path: String, reason: String)
    /// A key of a JSON import that is not a latent id.
    case badKey(path: String, key: String)
    /// A key of a JSON import that names a latent an earlier key named.
    case repeatedKey(path: String, key: String, latent: Int)
    /// A folder without `<module>_latent<N>.txt` files.
    case noDelphiFiles(path: String)
    /// A delphi folder without the asked-for module.
    case noModule(path: String, module: String, modules: [String])
    /// A delphi folder with several modules and none chosen.
    case severalModules(path: String, modules: [String])
    /// A delphi file that is not a JSON string.
    case notJSONString(path: String, reason: String)
    /// A delphi export module name that is empty or holds "/".
    case badModuleName(String)

    public var description: String {
        switch self {
        case let .noImportFile(path):
            return "\(path) does not exist; give a JSON file ({\"<latent id>\": \"text\"}) or a delphi explanations folder"
        case let .nothingToClear(latent): return "latent \(latent) has no explanation to clear"
        case let .noVersion(latent, id): return "latent \(latent) has no explanation version \(id)"
        case let .noLatent(latent, count, file, key):
            let prefix = (file.map { $0 + (key.map { ": key \"\($0)\"" } ?? "") + ": " }) ?? ""
            return prefix + "latent \(latent) does not exist" + (count.map { $0 > 0 ? " (this workspace has latents 0…\($0 - 1))" : " (this workspace has no latents)" } ?? "")
        case let .unreadable(path): return "cannot read \(path)"
        case let .unreadableFolder(path): return "cannot read the folder \(path)"
        case let .notLatentTexts(path, reason): return "\(path) is not a JSON object of latent ids to explanation texts: \(reason)"
        case let .badKey(path, key): return "\(path): key \"\(key)\" is not a latent id"
        case let .repeatedKey(path, key, latent): return "\(path): key \"\(key)\" repeats latent \(latent)"
        case let .noDelphiFiles(path): return "\(path) holds no delphi explanation files (<module>_latent<N>.txt)"
        case let .noModule(path, module, modules):
            return "\(path) has no explanations of module \(module) (it has \(modules.joined(separator: ", ")))"
        case let .severalModules(path, modules):
            return "\(path) holds explanations of several modules (\(modules.joined(separator: ", "))); choose one"
        case let .notJSONString(path, reason): return "\(path) does not hold an explanation as a JSON string: \(reason)"
        case let .badModuleName(module): return "'\(module)' is not a module name such as layers.15.mlp"
        }
    }
}
