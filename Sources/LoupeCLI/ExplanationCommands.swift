import Engine
import Foundation
import Storage

/// `loupe explanations show|set|export|import`: a workspace's explanations from the command line
/// (the store and both file formats are described in Sources/Storage/Explanations.swift).
enum ExplanationCommands {
    static let usage = "explanations: use `show LATENT`, `set LATENT TEXT`, `export [FILE] [--delphi DIR]` or `import FILE|DIR` (see `loupe help`)"

    static func run(_ a: inout Arguments) throws {
        let json = a.flag("--json")
        let ws = try WorkspaceCommands.workspace(&a)
        let delphi = try a.option("--delphi")
        let module = try a.option("--module")
        var rest = try a.positionals()
        guard !rest.isEmpty else { throw UserError(usage) }
        let sub = rest.removeFirst()
        if delphi != nil && sub != "export" { throw UserError("explanations \(sub): --delphi belongs to export") }
        let manifest = try ws.load()
        let store = try ExplanationStore(workspace: ws)
        if let warning = store.warning { Console.error(warning) }
        switch sub {
        case "show":
            guard rest.count == 1, let latent = Int(rest[0]) else { throw UserError("explanations show: give one latent id") }
            show(store, latent: latent, json: json)
        case "set":
            guard rest.count >= 2, let latent = Int(rest[0]) else { throw UserError("explanations set: give a latent id and the text") }
            let v = try store.save(latent: latent, text: rest.dropFirst().joined(separator: " "))
            if json { Console.print(versionJSON(v).text) } else { Console.print("latent \(latent): version \(v.id) saved") }
        case "export":
            guard rest.count <= 1, !(rest.isEmpty && delphi == nil) else { throw UserError("explanations export: give FILE, --delphi DIR or both") }
            var pairs: [(String, JSON)] = [], count = 0
            if let file = rest.first {
                count = try store.exportJSON(to: URL(fileURLWithPath: file))
                pairs.append(("file", .string(file)))
            }
            if let delphi {
                let m = module ?? DelphiImport.hookpoint(of: manifest) ?? manifest.hookpoint
                count = try store.exportDelphi(to: URL(fileURLWithPath: delphi, isDirectory: true), module: m)
                pairs += [("delphi", .string(delphi)), ("module", .string(m))]
            }
            if json { Console.print(JSON.object(pairs + [("exported", .int(count))]).text) } else {
                Console.print("\(count) explanations exported to " + [rest.first, delphi].compactMap { $0 }.joined(separator: " and "))
            }
        case "import":
            guard rest.count == 1 else { throw UserError("explanations import: give one FILE (JSON) or DIR (delphi explanations)") }
            let n = try store.importFile(at: rest[0], module: module)
            if json { Console.print(JSON.object([("from", .string(rest[0])), ("imported", .int(n))]).text) } else {
                Console.print("\(n) new or changed explanations imported from \(rest[0])")
            }
        default: throw UserError(usage)
        }
    }

    static func versionJSON(_ v: ExplanationVersion) -> JSON {
        .object([("id", .int(v.id)), ("latent", .int(v.latent)), ("text", .string(v.text)), ("source", .string(v.source.rawValue)),
                 ("time", .string(v.timestamp))])
    }

    static func show(_ store: ExplanationStore, latent: Int, json: Bool) {
        let history = store.history(latent)
        if json {
            Console.print(JSON.object([("latent", .int(latent)), ("current", store.current(latent).map { .string($0.text) } ?? .null),
                                       ("history", .array(history.map(versionJSON)))]).text)
            return
        }
        guard !history.isEmpty else { return Console.print("latent \(latent) has no explanation") }
        Console.print("latent \(latent): \(history.count) version\(history.count == 1 ? "" : "s"), oldest first")
        for v in history {
            let id = "#\(v.id)".padding(toLength: 7, withPad: " ", startingAt: 0)
            let source = v.source.rawValue.padding(toLength: max(8, v.source.rawValue.count + 1), withPad: " ", startingAt: 0)
            Console.print((v.id == history.last!.id ? "* " : "  ") + id + v.timestamp + "  " + source + (v.text.isEmpty ? "(cleared)" : v.text))
        }
    }
}
