import Engine
import Foundation
import Storage

/// `loupe export delphi DIR`: the inverse of `loupe import delphi DIR` — the workspace's latent
/// cache and explanations in EleutherAI delphi's layout (DelphiExport), so delphi's LatentDataset
/// loads them and its scorers score Loupe's explanations.
enum ExportCommand {
    static let usage = "export: use `export delphi DIR [--latents SPEC] [--splits 5] [--module M] [--workspace DIR]` (see `loupe help`)"

    static func run(_ a: inout Arguments) throws {
        let json = a.flag("--json")
        let spec = try a.option("--latents") ?? "all"
        let splits = try a.int("--splits", default: 5, range: 1...1_000_000)
        let module = try a.option("--module")
        let modelName = try a.option("--model-name")
        let ws = try WorkspaceCommands.workspace(&a)
        let rest = try a.positionals()
        guard rest.first == "delphi" else { throw UserError(usage) }
        guard rest.count == 2 else { throw UserError("export delphi: give one folder to create, e.g. `loupe export delphi results`") }
        let target = URL(fileURLWithPath: (rest[1] as NSString).expandingTildeInPath, isDirectory: true)
        let manifest = try ws.load()
        var job = DelphiExport(workspace: ws, module: module ?? DelphiImport.hookpoint(of: manifest) ?? manifest.hookpoint)
        job.splits = splits
        if let modelName { job.modelName = modelName }
        if spec != "all" {
            do { job.latents = Set(try LatentSelection.resolve(spec, counts: try EngineService(workspace: ws).counts())) } catch let e as LatentSelectionError {
                throw UserError("export delphi: " + e.description)
            }
        }
        let summary: DelphiExport.Summary
        do {
            summary = try job.run(into: target, reporter: ProgressBar())
        } catch is CancellationError {
            throw UserError("interrupted; nothing was written to \(target.path) (run the same command again)")
        }
        if json {
            Console.print(JSON.object([("directory", .string(target.path)), ("module", .string(job.module)), ("latents", .int(summary.latents)),
                                       ("sequences", .int(summary.sequences)), ("ctx_len", .int(summary.contextLength)),
                                       ("splits", .array(summary.splits.map { .string($0) })), ("activations", .int(summary.rows)),
                                       ("explanations", .int(summary.explanations))]).text)
        } else {
            Console.print("wrote \(target.path)/latents/\(job.module) (\(summary.splits.count) splits, \(summary.rows) activations of \(summary.latents) latents on \(summary.sequences) sequences of \(summary.contextLength) tokens) and \(summary.explanations) explanations; delphi reads it with LatentDataset(\"\(target.path)/latents\", …, modules=[\"\(job.module)\"])")
        }
    }
}
