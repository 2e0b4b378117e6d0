import Engine
import Formats
import Foundation
import Model
import Storage
import Tokenizer
import Transcoder

/// Every reader of outside input, each as a harness that takes the bytes of one file: the libFuzzer
/// driver (`loupe-fuzz`, Tests/Fuzz) and the deterministic mutation test (FuzzTests) both run them.
///
/// A harness writes the bytes where the reader expects its file (beside fixed, valid companion
/// files it makes once: a cfg.json beside a fuzzed sae.safetensors, block files beside a fuzzed
/// cache.json, …), runs the reader and what its callers do next with what it read, and returns
/// `.accepted` or `.rejected(message)`. Anything else is a finding: a crash (the process dies), an
/// error of a type that is not one of Loupe's typed errors, or a message that is empty or spans
/// several lines once the bytes quoted from the file are shown escaped (as the CLI prints them).
public struct FuzzReader: Sendable {
    /// The harness's name: `loupe-fuzz NAME`, and its seed folder Tests/Fuzz/Seeds/NAME.
    public let name: String
    /// The file name the input is written to in the harness's folder.
    let fileName: String
    /// Makes the fixed companion files in the folder (once per process).
    let setUp: @Sendable (URL) throws -> Void
    /// Reads the input file at the URL (in the set-up folder), as Loupe does.
    let read: @Sendable (URL) throws -> Void

    public enum Outcome: Equatable, Sendable {
        case accepted
        case rejected(String)
    }

    /// What the harness must never do (a crash cannot be caught: the process dies, which libFuzzer
    /// and the mutation test's child process report).
    public struct Finding: Error, CustomStringConvertible, Sendable {
        public let description: String
    }
}

extension FuzzReader {
    /// Runs the reader on `data` in `folder` (a scratch folder of this harness's own).
    public func run(_ data: Data, in folder: URL) -> Result<Outcome, Finding> {
        do {
            try Self.prepare(self, folder)
            let url = folder.appendingPathComponent(fileName)
            do { try data.write(to: url) } catch {
                throw Finding(description: "the harness could not write its input to \(url.path): \(error)")
            }
            try read(url)
            return .success(.accepted)
        } catch let e as Finding {
            return .failure(e)
        } catch {
            return Self.judge(error)
        }
    }

    /// A typed, one-line error is a rejection; anything else is a finding.
    static func judge(_ error: Error) -> Result<Outcome, Finding> {
        let typed = error is FormatError || error is TokenizerError || error is TranscoderError || error is WorkspaceError
            || error is ExplanationStoreError || error is LogError || error is ModelError || error is SimulatorError
        let message = "\(error)"
        guard typed else { return .failure(Finding(description: "untyped error \(type(of: error)): \(visible(message).prefix(300))")) }
        let shown = visible(message)
        guard !shown.isEmpty, !shown.contains("\n"), shown.count < 4000 else {
            return .failure(Finding(description: "not a one-line message: \(shown.prefix(300))"))
        }
        return .success(.rejected(shown))
    }

    /// Control characters as `\u{…}`, as Loupe's output escapes them before they reach a terminal:
    /// a newline that came from the file is then not a second line of the message.
    public static func visible(_ s: String) -> String {
        var out = ""
        for u in s.unicodeScalars {
            if u.value < 0x20 || (0x7F...0x9F).contains(u.value) { out += "\\u{\(String(u.value, radix: 16))}" } else { out.unicodeScalars.append(u) }
        }
        return out
    }

    private static let prepared = Prepared()
    private final class Prepared: @unchecked Sendable {
        let lock = NSLock()
        var folders = Set<String>()
    }

    static func prepare(_ reader: FuzzReader, _ folder: URL) throws {
        try prepared.lock.withLock {
            guard !prepared.folders.contains(folder.path) else { return }
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            do { try reader.setUp(folder) } catch {
                throw Finding(description: "the harness's own companion files could not be made: \(error)")
            }
            prepared.folders.insert(folder.path)
        }
    }
}

/// The harnesses, one per reader of outside input.
public enum FuzzReaders {
    public static let all: [FuzzReader] = [
        gguf, tokenizer, safetensors, dictionaryConfig, corpusMeta, corpusText, cacheManifest, cacheRecords, latentIndex,
        heldOutCodes, heldOutIndex, activationShard, explanationLog, scoreStore, rewriteSimulations, rewriteReport, workspaceManifest,
        openAIReply,
    ]

    public static func named(_ name: String) -> FuzzReader? { all.first { $0.name == name } }

    static func none(_: URL) throws {}

    // MARK: model files

    /// A GGUF model: header, metadata, tensor table, then the Llama config and every weight.
    static let gguf = FuzzReader(name: "gguf", fileName: "model.gguf", setUp: none) { url in
        let f = try GGUFFile(path: url.path)
        let config = try LlamaConfig(gguf: f)
        _ = try LlamaWeights(gguf: f, config: config)
    }

    /// Tokenizer metadata in a GGUF file: vocabulary, types, merges, special ids, chat template.
    static let tokenizer = FuzzReader(name: "tokenizer", fileName: "tokenizer.gguf", setUp: none) { url in
        let f = try GGUFFile(path: url.path)
        let t = try BPETokenizer(gguf: f)
        let ids = t.encode("Hello world, <|endoftext|> the dog\n\u{1F600}")
        _ = t.decode(ids)
        if f.metadata["tokenizer.chat_template"] != nil { _ = try ChatTemplate(gguf: f) }
    }

    // MARK: dictionaries

    /// A small valid dictionary (d_in 8, 32 latents, k 4) in sparsify's layout.
    static func writeDictionary(_ folder: URL) throws {
        try Transcoder(config: TranscoderConfig(dIn: 8, numLatents: 32, k: 4), seed: 1).save(directory: folder.path)
    }

    /// sae.safetensors beside a valid cfg.json: the tensor file, then the dictionary loaded from it.
    static let safetensors = FuzzReader(name: "safetensors", fileName: "sae.safetensors", setUp: writeDictionary) { url in
        let f = try SafetensorsFile(path: url.path)
        for name in f.tensors.keys.sorted() where [.f32, .f16, .bf16].contains(f.tensors[name]!.dtype) { _ = try f.floats(name) }
        _ = try Transcoder.load(directory: url.deletingLastPathComponent().path)
    }

    /// cfg.json beside a valid sae.safetensors.
    static let dictionaryConfig = FuzzReader(name: "dictionary-config", fileName: "cfg.json", setUp: writeDictionary) { url in
        _ = try Transcoder.load(directory: url.deletingLastPathComponent().path)
    }

    // MARK: corpus

    /// corpus.json beside a tokens.bin of 64 tokens.
    static let corpusMeta = FuzzReader(name: "corpus-meta", fileName: "corpus.json", setUp: { folder in
        try Corpus(windowLength: 8, heldOutEvery: 4, tokens: (0..<64).map { Int32($0 % 50) }).save(to: folder, sources: ["seed.txt"])
    }) { url in
        let (corpus, _) = try Corpus.load(from: url.deletingLastPathComponent())
        _ = corpus.trainingWindows
        for w in corpus.heldOutWindows { _ = corpus.window(w) }
    }

    /// A corpus file given to `loupe build --corpus` (.jsonl: one {"text": …} per line).
    static let corpusText = FuzzReader(name: "corpus-text", fileName: "corpus.jsonl", setUp: none) { url in
        _ = try Corpus.documents(in: url.path)
    }

    // MARK: latent cache

    /// The fixed cache the cache harnesses read beside their input: 4 latents in 2 blocks.
    static let manifest = CacheManifest(latents: 4, k: 2, blockSize: 2, displayLength: 4, histogramBins: 3, quantiles: 2, trainTokens: 48,
                                        randomPool: [[1, 0], [3, 2]], files: ["latents-00000.bin", "latents-00001.bin"])

    static func record(_ latent: Int) -> LatentRecord {
        LatentRecord(latent: latent, count: 3 + latent, max: 2.5, mean: 1.25, histogram: [1, 1, 1 + latent], quantiles: [0.5, 2.5],
                     promoted: [(id: 1, logit: 0.5)], suppressed: [(id: 2, logit: -0.5)], neighbours: [(latent: (latent + 1) % 4, cosine: 0.25)],
                     windows: [LatentWindow(corpusWindow: 1, start: 0, focus: 2, kind: 0, tokens: [4, 5, 6, 7], activations: [0, 0, 2.5, 0])])
    }

    static func writeCache(_ folder: URL, manifestToo: Bool = true) throws {
        for (i, file) in manifest.files.enumerated() {
            let data = (2 * i..<2 * i + 2).map { LatentRecordCoding.encode(record($0), manifest: manifest) }.reduce(Data(), +)
            try data.write(to: folder.appendingPathComponent(file))
        }
        if manifestToo { try JSONFile.write(manifest, to: folder.appendingPathComponent(LatentCache.manifestName)) }
    }

    /// cache.json beside valid block files: every record, then the latent index built from them.
    static let cacheManifest = FuzzReader(name: "cache-manifest", fileName: "cache.json", setUp: { try writeCache($0, manifestToo: false) }) { url in
        let folder = url.deletingLastPathComponent()
        try? FileManager.default.removeItem(at: folder.appendingPathComponent("index.bin"))
        let cache = try LatentCache(directory: folder)
        _ = try cache.allRecords()
        _ = try cache.record(0)
        _ = try LatentIndex.build(cache: cache)
    }

    /// A block file of latent records beside a valid cache.json.
    static let cacheRecords = FuzzReader(name: "cache-records", fileName: "latents-00000.bin", setUp: { try writeCache($0) }) { url in
        let cache = try LatentCache(directory: url.deletingLastPathComponent())
        _ = try cache.records(in: "latents-00000.bin")
        _ = try cache.record(1)
        _ = try LatentIndex.build(cache: cache)
    }

    /// index.bin (the explorer's latent list) beside a valid cache, newer than cache.json so it is read, not rebuilt.
    static let latentIndex = FuzzReader(name: "latent-index", fileName: "index.bin", setUp: { try writeCache($0) }) { url in
        // Newer than what it indexes, so it is read (if the clock cannot be set, it is rebuilt: also fine).
        try? FileManager.default.setAttributes([.modificationDate: Date().addingTimeInterval(3600)], ofItemAtPath: url.path)
        _ = try LatentIndex.load(cache: try LatentCache(directory: url.deletingLastPathComponent()))
    }

    /// The fixed corpus and cache of the held-out harnesses: 2 held-out windows of 8 tokens, k 2.
    static func writeHeldOut(_ folder: URL, codes: Bool) throws {
        try writeCache(folder)
        try Corpus(windowLength: 8, heldOutEvery: 2, tokens: (0..<32).map { Int32($0) }).save(to: folder.appendingPathComponent("corpus"), sources: ["seed"])
        let dir = folder.appendingPathComponent("codes", isDirectory: true)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        if codes { try validCodes().write(to: dir.appendingPathComponent("heldout-00000.bin")) }
    }

    /// 16 rows of k = 2 codes: u32 latents, then f16 values.
    public static func validCodes() -> Data {
        var d = Data()
        for r in 0..<16 {
            for j in 0..<2 { withUnsafeBytes(of: UInt32((r + j) % 4).littleEndian) { d.append(contentsOf: $0) } }
            for j in 0..<2 { withUnsafeBytes(of: Float16(Float(2 - j) * 0.5).bitPattern.littleEndian) { d.append(contentsOf: $0) } }
        }
        return d
    }

    /// codes/heldout-00000.bin: the held-out codes the scoring index is built from.
    static let heldOutCodes = FuzzReader(name: "heldout-codes", fileName: "codes/heldout-00000.bin", setUp: { try writeHeldOut($0, codes: false) }) { url in
        let folder = url.deletingLastPathComponent().deletingLastPathComponent()
        try? FileManager.default.removeItem(at: folder.appendingPathComponent(HeldOutIndex.fileName))
        let (corpus, _) = try Corpus.load(from: folder.appendingPathComponent("corpus"))
        let index = try HeldOutIndex.load(cache: try LatentCache(directory: folder), corpus: corpus)
        for m in 0..<index.latents { _ = index.entries(of: m) }
    }

    /// heldout-index.bin beside valid codes, newer than them so it is read.
    static let heldOutIndex = FuzzReader(name: "heldout-index", fileName: HeldOutIndex.fileName, setUp: { try writeHeldOut($0, codes: true) }) { url in
        // Newer than what it indexes, so it is read (if the clock cannot be set, it is rebuilt: also fine).
        try? FileManager.default.setAttributes([.modificationDate: Date().addingTimeInterval(3600)], ofItemAtPath: url.path)
        let folder = url.deletingLastPathComponent()
        let (corpus, _) = try Corpus.load(from: folder.appendingPathComponent("corpus"))
        let index = try HeldOutIndex.load(cache: try LatentCache(directory: folder), corpus: corpus)
        for m in 0..<index.latents { _ = index.entries(of: m) }
    }

    /// An activation shard (fp16 MLP input/output pairs) of a fixed plan: 2 windows of 4 tokens, d 8.
    static let activationShard = FuzzReader(name: "activation-shard", fileName: "acts-00000.f16", setUp: none) { url in
        let store = try ActivationStore(directory: url.deletingLastPathComponent(), name: "acts", layer: 3, dim: 8, windowLength: 4, windows: [0, 1])
        _ = try store.read(store.manifest.shards[0])
    }

    // MARK: logs and reports

    /// explanations/log.jsonl: every line read, then a save that must read back.
    static let explanationLog = FuzzReader(name: "explanation-log", fileName: "explanations/log.jsonl", setUp: { folder in
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("explanations"), withIntermediateDirectories: true)
    }) { url in
        let store = try ExplanationStore(directory: url.deletingLastPathComponent(), latents: 100)
        _ = store.allCurrent()
        try warned(store.skippedLines, store.warning)
        let before = store.history(5).count
        let v = try store.save(latent: 5, text: "fuzz \(before)")
        guard try ExplanationStore(directory: url.deletingLastPathComponent(), latents: 100).current(5) == v else {
            throw FuzzReader.Finding(description: "a save was acknowledged but does not read back")
        }
    }

    /// scores/scores.jsonl.
    static let scoreStore = FuzzReader(name: "score-store", fileName: "scores.jsonl", setUp: none) { url in
        let store = try ScoreStore(directory: url.deletingLastPathComponent())
        for s in store.all { _ = store.history(latent: s.latent) }
        try warned(store.skippedLines, store.warning)
    }

    /// The rewrite's simulation cache (simulations.jsonl).
    static let rewriteSimulations = FuzzReader(name: "rewrite-simulations", fileName: "simulations.jsonl", setUp: none) { url in
        let cache = try RewriteSimulationCache(url: url)
        try warned(cache.skippedLines, cache.warning)
    }

    /// A log that skipped lines must say so in one line (AppendOnly.DamagedLines), and only then.
    static func warned(_ skipped: Int, _ warning: String?) throws {
        guard (skipped > 0) == (warning != nil) else {
            throw FuzzReader.Finding(description: "\(skipped) damaged lines skipped, but the warning is \(warning ?? "nil")")
        }
    }

    /// An OpenAI-compatible server's reply body (`--simulator-url`): parsed and checked as the
    /// backend does, then the generated token's digit read as the last-token mode reads it.
    static let openAIReply = FuzzReader(name: "openai-reply", fileName: "reply.json", setUp: none) { url in
        let lp = try OpenAISimulator.parseReply(try Data(contentsOf: url), server: "http://fuzz")
        _ = try OpenAISimulator.generatedReadout(lp, server: "http://fuzz")
    }

    /// rewrite/report.json of a workspace.
    static let rewriteReport = FuzzReader(name: "rewrite-report", fileName: "rewrite/report.json", setUp: { folder in
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("rewrite"), withIntermediateDirectories: true)
    }) { url in
        _ = try RewriteReport.load(Workspace(directory: url.deletingLastPathComponent().deletingLastPathComponent()))
    }

    /// workspace.json.
    static let workspaceManifest = FuzzReader(name: "workspace-manifest", fileName: "workspace.json", setUp: none) { url in
        _ = try Workspace(directory: url.deletingLastPathComponent()).load()
    }
}
