import Engine
import Formats
import Foundation
import Storage
import Tokenizer

/// `loupe import delphi DIR`: a latent cache made by EleutherAI's delphi, as a workspace the explorer opens.
enum ImportCommand {
    static let usage = "import: use `import delphi DIR [--hookpoint H] [--layer L] [--workspace DIR]` (see `loupe help`)"

    static func run(_ a: inout Arguments) throws {
        let json = a.flag("--json")
        let modelPath = try a.option("--model")
        let hookpoint = try a.option("--hookpoint")
        var layer: Int?
        if a.has("--layer") { layer = try a.int("--layer", default: 0, range: 0...1000) }
        let heldOutEvery = try a.int("--held-out-every", default: 20, range: 2...1_000_000)
        let ws = try WorkspaceCommands.workspace(&a)
        let rest = try a.positionals()
        guard rest.first == "delphi" else { throw UserError(usage) }
        guard rest.count == 2 else { throw UserError("import delphi: give one folder, delphi's results folder (with latents/) or its latents/ folder") }
        let source = URL(fileURLWithPath: (rest[1] as NSString).expandingTildeInPath, isDirectory: true)
        guard FileManager.default.fileExists(atPath: source.path) else { throw UserError("import delphi: \(source.path) does not exist") }
        let cache = try DelphiCache(results: source, hookpoint: hookpoint)
        var job = DelphiImport(cache: cache)
        job.layer = layer
        job.heldOutEvery = heldOutEvery
        // The cache's token ids are read with the workspace model's tokenizer, so they are checked against it.
        let model = try ModelFetch.resolve(modelPath, progress: Console.progress)
        let tokenizer = try BPETokenizer(gguf: try GGUFFile(path: model))
        let m: WorkspaceManifest
        do {
            m = try job.run(into: ws, modelPath: model, vocabularySize: tokenizer.count, reporter: ProgressBar())
        } catch is CancellationError {
            throw UserError("interrupted; remove \(ws.directory.path) and run the same command again")
        }
        // delphi's explanations of that hookpoint, when the results folder has them (source "import").
        let explanations = cache.directory.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("explanations")
        let prefix = cache.hookpoint + "_latent"
        var imported = 0
        if ((try? FileManager.default.contentsOfDirectory(atPath: explanations.path)) ?? []).contains(where: { $0.hasPrefix(prefix) && $0.hasSuffix(".txt") }) {
            imported = try ExplanationStore(workspace: ws).importDelphi(from: explanations, module: cache.hookpoint)
        }
        if json {
            Console.print(JSON.object([("workspace", .string(ws.directory.path)), ("hookpoint", .string(cache.hookpoint)), ("layer", .int(m.layer)),
                                       ("latents", .int(m.latents)), ("k", .int(m.k)), ("window_length", .int(m.windowLength)),
                                       ("train_tokens", .int(m.trainTokens)), ("held_out_tokens", .int(m.heldOutTokens)),
                                       ("model_name", cache.config.modelName.map { .string($0) } ?? .null), ("explanations", .int(imported))]).text)
        } else {
            Console.print("imported \(cache.hookpoint) (\(m.latents) latents, layer \(m.layer)) into \(ws.directory.path)\(imported > 0 ? " with \(imported) of delphi's explanations" : ""); open it with `loupe open \(ws.directory.path)`")
        }
    }
}
