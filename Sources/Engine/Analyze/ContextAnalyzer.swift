import Foundation
import Model
import EngineAPI
import Storage
import Tokenizer
import Transcoder

/// Runs the model up to the workspace's layer and its dictionary (at its site) on any text. Calls are
/// serialised; the session's model must not be used by another thread meanwhile.
public final class ContextAnalyzer: @unchecked Sendable {
    public let model: LlamaModel
    public let tokenizer: BPETokenizer
    public let transcoder: Transcoder
    public let layer: Int
    public let site: DictionarySite
    private let lock = NSLock()

    /// Loads the workspace's transcoder and checks it fits the session's model.
    public convenience init(session: Session, workspace: Workspace) throws {
        let manifest = try workspace.load()
        let dir = workspace.transcoderDirectory(manifest)
        guard FileManager.default.fileExists(atPath: dir.appendingPathComponent("cfg.json").path) else {
            throw AnalyzerError.noTranscoder(workspace: workspace.directory.path)
        }
        try self.init(model: session.model, tokenizer: session.tokenizer,
                      transcoder: try Transcoder.load(directory: dir.path), layer: manifest.layer, site: manifest.site)
    }

    /// An analyzer for a dictionary already in memory, reading its input at `layer` and `site`.
    public init(model: LlamaModel, tokenizer: BPETokenizer, transcoder: Transcoder, layer: Int, site: DictionarySite = .mlp) throws {
        try Splice.check(model: model, transcoder: transcoder, layer: layer)
        self.model = model
        self.tokenizer = tokenizer
        self.transcoder = transcoder
        self.layer = layer
        self.site = site
    }

    /// Tokenizes `text` (no BOS, special tokens recognised, as everywhere in Loupe) and analyses at
    /// most `maxTokens` of its tokens.
    public func analyze(_ text: String, maxTokens: Int = 1024) throws -> ContextAnalysis {
        try analyze(tokens: tokenizer.encode(text), maxTokens: maxTokens)
    }

    /// Analyses token ids directly (the first `maxTokens`, and at most the model's context).
    public func analyze(tokens all: [Int], maxTokens: Int = 1024) throws -> ContextAnalysis {
        let limit = min(max(maxTokens, 0), model.config.contextLength)
        let tokens = Array(all.prefix(limit))
        guard !tokens.isEmpty else { return ContextAnalysis(tokens: [], tokenTexts: [], codes: [], truncated: !all.isEmpty) }
        let vocab = model.config.vocabSize
        if let bad = tokens.first(where: { $0 < 0 || $0 >= vocab }) {
            throw AnalyzerError.tokenOutOfVocabulary(bad, vocabulary: vocab)
        }
        let texts = tokens.map(tokenizer.display)
        return try lock.withLock { try run(tokens, truncated: all.count > tokens.count, texts: texts) }
    }

    /// Forward to `layer` capturing the dictionary's input, then encode every row (a residual SAE
    /// gives the first position no code: it skips it, `DictionarySite.skipsFirstPosition`).
    private func run(_ tokens: [Int], truncated: Bool, texts: [String]) throws -> ContextAnalysis {
        let n = tokens.count, d = transcoder.d, k = transcoder.config.k
        var x = [Float](repeating: 0, count: n * d)
        let hook = DictionaryHook(site: site).reading(input: { v in
            x.withUnsafeMutableBufferPointer { out in
                (out.baseAddress! + v.firstPosition * d).update(from: v.pointer, count: v.rows * d)
            }
        })
        try model.forward(tokens, cache: model.makeCache(capacity: n), logits: .none,
                          hooks: ForwardHooks(layers: [layer: hook], stopAfterLayer: layer))
        var indices = [Int32](repeating: 0, count: n * k)
        var values = [Float](repeating: 0, count: n * k)
        x.withUnsafeBufferPointer { xp in
            indices.withUnsafeMutableBufferPointer { ip in
                values.withUnsafeMutableBufferPointer { vp in
                    transcoder.encode(xp.baseAddress!, rows: n, indices: ip.baseAddress!, values: vp.baseAddress!)
                }
            }
        }
        let codes = (0..<n).map { t in
            site.skipsFirstPosition && t == 0 ? [] : (0..<k).compactMap { j -> LatentActivation? in
                values[t * k + j] > 0 ? LatentActivation(latent: Int(indices[t * k + j]), value: values[t * k + j]) : nil
            }
        }
        return ContextAnalysis(tokens: tokens, tokenTexts: texts, codes: codes, truncated: truncated)
    }
}
