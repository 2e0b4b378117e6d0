import Engine
import Formats
import Foundation
import Tokenizer

/// `loupe explain`: explain many latents with the LLM or the lexical explainer, resumably (the
/// explainers and the skipping rules are in Sources/Engine/Explainer.swift).
enum ExplainCommand {
    static func run(_ a: inout Arguments) throws {
        let json = a.flag("--json")
        let redo = a.flag("--redo")
        let showPrompt = a.flag("--show-prompt")
        let ws = try WorkspaceCommands.workspace(&a)
        let spec = try a.option("--latents") ?? "all"
        let kind = try a.option("--explainer") ?? "llm"
        let explainerModel = try a.option("--explainer-model")
        let rest = try a.positionals()
        guard rest.isEmpty else { throw UserError("explain: unexpected '\(rest[0])'; choose latents with --latents SPEC") }
        guard kind == "llm" || kind == "lexical" else { throw UserError("explain: --explainer takes llm or lexical, not '\(kind)'") }
        if kind == "lexical" && explainerModel != nil { throw UserError("explain: --explainer-model belongs to --explainer llm") }

        let manifest = try ws.load()
        guard FileManager.default.fileExists(atPath: ws.cacheDirectory.appendingPathComponent("cache.json").path) else {
            throw UserError("explain: the workspace at \(ws.directory.path) has no latent cache yet; finish it with `loupe build`")
        }
        let cache = try LatentCache(directory: ws.cacheDirectory)
        let counts = try LatentIndex.load(cache: cache).map(\.count)
        let latents: [Int]
        do { latents = try LatentSelection.resolve(spec, counts: counts) } catch let e as EngineError { throw UserError("explain: " + e.description) }
        let store = try ExplanationStore(workspace: ws)

        // The windows hold the workspace model's token ids; the explainer may be another model.
        let basePath = try ModelFetch.resolve(manifest.model == ModelFetch.defaultPath.path ? nil : manifest.model, progress: Console.progress)
        let explainer: Explainer
        if kind == "lexical" {
            explainer = LexicalExplainer(vocabulary: TokenVocabulary(tokenizer: try BPETokenizer(gguf: GGUFFile(path: basePath))))
        } else {
            let prompt = try ExplainerPrompt.load()
            let session = try Session(modelPath: explainerModel ?? basePath, progress: Console.progress)
            let base = explainerModel == nil ? session.tokenizer : try BPETokenizer(gguf: GGUFFile(path: basePath))
            explainer = try LLMExplainer(session: session, vocabulary: TokenVocabulary(tokenizer: base), prompt: prompt)
        }

        let reporter = ProgressBar()
        let clearLine = isatty(STDERR_FILENO) != 0 && isatty(STDOUT_FILENO) != 0
        let summary = try ExplainJob.run(latents: latents, explainer: explainer, cache: cache, store: store, redo: redo, reporter: reporter) { latent, text in
            guard !json else { return }
            if clearLine { FileHandle.standardError.write("\r\u{1B}[K".data(using: .utf8)!) }
            if showPrompt, let llm = explainer as? LLMExplainer, let r = try? cache.record(latent) {
                Console.print("--- latent \(latent) prompt (\(llm.lastPromptTokens) tokens) ---\n" + llm.promptText(r) + "\n---")
            }
            Console.print(String(format: "%6d  ", latent) + text)
        }
        report(summary, json: json)
        if summary.stopped { throw UserError("interrupted; every explanation made so far is saved — run the same command again to continue") }
    }

    static func report(_ s: ExplainJob.Summary, json: Bool) {
        let perLatent = s.explained > 0 ? s.seconds / Double(s.explained) : 0
        if json {
            Console.print(JSON.object([("explained", .int(s.explained)), ("skipped", .int(s.skipped)), ("seconds", .number(s.seconds)),
                                       ("source", .string(s.source)), ("seconds_per_latent", .number(perLatent)),
                                       ("already_explained", .int(s.done)), ("kept_personal", .int(s.personal)),
                                       ("never_fire", .int(s.dead)), ("stopped", .bool(s.stopped))]).text)
            return
        }
        var parts = ["\(s.explained) latents explained (\(s.source)) in \(ProgressBar.duration(s.seconds))"
            + (s.explained > 0 ? String(format: ", %.3f s per latent", perLatent) : "")]
        if s.done > 0 { parts.append("\(s.done) already had a \(s.source) explanation (--redo redoes them)") }
        if s.personal > 0 { parts.append("\(s.personal) kept their user's own explanation") }
        if s.dead > 0 { parts.append("\(s.dead) never fire") }
        Console.print(parts.joined(separator: "; "))
    }
}
