import Formats
import Foundation
import Kernels
import Model
import Storage
import Tokenizer

/// The frozen model read at the context positions of `prompt + explanation + context`: per
/// context, rows × `featureCount` floats (the layout in `TrainedSimulatorConfig`).
///
/// The prompt's prefix runs once per explanation into a prefix cache (from where it differs from
/// the previous one); contexts run batched as suffixes in cache slots holding a copy of it, as in
/// `LocalSimulator`. The model runs only up to the last layer read.
public final class HiddenStateReader: @unchecked Sendable {
    public let session: Session
    public let layers: [Int]
    public let prompt: String
    public var maxSequencesPerBatch = 16
    public let featureCount: Int
    private let prompts = PromptCache()
    private let lock = NSLock()

    public init(session: Session, layers: [Int], prompt: String) throws {
        let n = session.model.config.layers
        guard !layers.isEmpty, layers.allSatisfy({ $0 >= 0 && $0 < n }), layers == layers.sorted(), Set(layers).count == layers.count else {
            throw SimulatorError.trainedLayers(layers, depth: n)
        }
        guard prompt.components(separatedBy: "{{explanation}}").count == 2 else {
            throw SimulatorError.trainedPromptPlaceholder
        }
        self.session = session
        self.layers = layers
        self.prompt = prompt
        featureCount = layers.count * session.model.config.dim + ExplanationMatch.featureNames.count
    }

    /// The prompt's tokens for an explanation (special tokens parsed in the prompt, not in the explanation).
    public func prefix(explanation: String) -> [Int] {
        let parts = prompt.components(separatedBy: "{{explanation}}")
        let flat = explanation.trimmingCharacters(in: .whitespacesAndNewlines).split(whereSeparator: \.isNewline).joined(separator: " ")
        let tok = session.tokenizer
        return tok.encode(parts[0]) + (flat.isEmpty ? [] : tok.encode(flat, parseSpecial: false)) + tok.encode(parts[1])
    }

    /// Per context, its rows of features, row-major.
    public func features(explanation: String, contexts: [SimulationContext], shouldStop: () -> Bool = { false }) throws -> [[Float]] {
        try lock.withLock {
            let model = session.model, d = model.config.dim, F = featureCount
            let prefix = self.prefix(explanation: explanation), p = prefix.count
            var out = contexts.map { [Float](repeating: 0, count: $0.tokens.count * F) }
            let match = ExplanationMatch(explanation: explanation)
            for (c, context) in contexts.enumerated() {
                let m = match.features(texts: context.texts)
                for t in m.indices { for j in m[t].indices { out[c][t * F + layers.count * d + j] = m[t][j] } }
            }
            let jobs = contexts.indices.filter { !contexts[$0].tokens.isEmpty }
            guard !jobs.isEmpty else { return out }
            let longest = jobs.map { contexts[$0].tokens.count }.max()!
            guard longest <= model.batch else {
                throw SimulatorError.trainedContextTooLong(tokens: longest, batch: model.batch)
            }
            guard p + longest <= model.config.contextLength else {
                throw SimulatorError.trainedPromptTooLong(positions: p + longest, context: model.config.contextLength)
            }
            let stop = layers.last!
            try prompts.prepare(prefix, suffix: longest, model: model, hooks: ForwardHooks(stopAfterLayer: stop))
            let slot = { (i: Int) in self.prompts.slot(i, model: model) }
            var j = 0
            while j < jobs.count {
                if shouldStop() { throw CancellationError() }
                var end = j, rows = 0
                while end < jobs.count, end - j < maxSequencesPerBatch, rows + contexts[jobs[end]].tokens.count <= model.batch {
                    rows += contexts[jobs[end]].tokens.count
                    end += 1
                }
                let batch = Array(jobs[j..<end])
                // Rows arrive in order: every sequence of the batch, layer by layer.
                let targets = batch.flatMap { c in contexts[c].tokens.indices.map { (c, $0) } }
                var hooks = ForwardHooks(stopAfterLayer: stop)
                for (li, layer) in layers.enumerated() {
                    var next = 0
                    hooks.layers[layer] = LayerHook(residual: { view in
                        for r in 0..<view.rows where next + r < targets.count {
                            let (c, t) = targets[next + r]
                            let src = view.row(r)
                            out[c].withUnsafeMutableBufferPointer { dst in
                                let base = dst.baseAddress! + t * F + li * d
                                for k in 0..<d { base[k] = src[k] }
                            }
                        }
                        next += view.rows
                    })
                }
                try model.forward(batch: batch.map { contexts[$0].tokens }, caches: batch.indices.map(slot), logits: .none, hooks: hooks)
                j = end
            }
            return out
        }
    }
}

/// The trained simulator as a backend: features from `HiddenStateReader`, the latent's fold head,
/// 9 × clamp(prediction, 0, 1) as the expected digit.
public final class TrainedSimulator: SimulatorBackend, @unchecked Sendable {
    public let config: TrainedSimulatorConfig
    public let heads: [RidgeHead]
    /// Per fold: the prediction (a fraction of the latent's max) above which a token counts as
    /// predicted to fire under calibration none, chosen on the other folds' latents
    /// (`SimulatorTrainer.detectionThresholds`); 0.5 for a head file from before they existed.
    public let detection: [Float]
    public let reader: HiddenStateReader
    /// "trained <model> <first 8 hex digits of the head file's SHA-256>": a retrained head scores anew.
    public let name: String

    public init(config: TrainedSimulatorConfig, heads: [RidgeHead], detection: [Float]? = nil, session: Session, tag: String) throws {
        let file = URL(fileURLWithPath: session.path).lastPathComponent
        let model = file.hasSuffix(".gguf") ? String(file.dropLast(5)) : file
        guard config.formatVersion == 1 else {
            throw SimulatorError.trainedFormatVersion(config.formatVersion)
        }
        guard config.vocabSize == session.tokenizer.count, config.modelDim == session.model.config.dim else {
            throw SimulatorError.trainedOnOtherModel(model: config.model, vocabulary: config.vocabSize, width: config.modelDim, file: file)
        }
        guard config.matchFeatures == ExplanationMatch.featureNames else {
            throw SimulatorError.trainedMatchFeatures(found: config.matchFeatures, expected: ExplanationMatch.featureNames)
        }
        guard heads.count == config.folds, heads.allSatisfy({ $0.weight.count == config.featureCount }) else {
            throw SimulatorError.trainedHeads(folds: config.folds, weights: config.featureCount)
        }
        if let detection, detection.count != config.folds {
            throw SimulatorError.trainedDetectionCount(found: detection.count, folds: config.folds)
        }
        if let fold = detection?.firstIndex(where: { !($0 > 0 && $0 < 1) }) {
            throw SimulatorError.trainedDetection(fold: fold, value: detection![fold])
        }
        self.config = config
        self.heads = heads
        self.detection = detection ?? Array(repeating: Detection.promptedDigit / 9, count: config.folds)
        reader = try HiddenStateReader(session: session, layers: config.layers, prompt: config.prompt)
        name = "trained \(model) \(tag)"
    }

    /// Loads `simulator/` of a workspace; without `readingDetection`, its heads' detection
    /// thresholds are left unread (0.5 each).
    public convenience init(workspace: Workspace, session: Session, readingDetection: Bool = true) throws {
        guard workspace.hasTrainedSimulator else {
            throw SimulatorError.noTrainedSimulator(workspace: workspace.directory.path)
        }
        let config = try JSONFile.read(TrainedSimulatorConfig.self, from: workspace.simulatorConfigURL)
        let file = try SafetensorsFile(path: workspace.simulatorHeadURL.path)
        let heads = try (0..<config.folds).map { f in
            RidgeHead(weight: try file.floats("fold\(f).weight", shape: [config.featureCount]),
                      bias: try file.floats("fold\(f).bias", shape: [1])[0])
        }
        let detection = readingDetection && file.tensors["fold0.detection"] != nil
            ? try (0..<config.folds).map { try file.floats("fold\($0).detection", shape: [1])[0] } : nil
        let tag = try SHA256.hexDigest(ofFile: workspace.simulatorHeadURL.path).prefix(8)
        try self.init(config: config, heads: heads, detection: detection, session: session, tag: String(tag))
    }

    /// Writes the config and heads (each file whole, then renamed); `detection`, one per head, as
    /// `fold<F>.detection` [1].
    public static func save(config: TrainedSimulatorConfig, heads: [RidgeHead], detection: [Float]? = nil, to workspace: Workspace) throws {
        try FileManager.default.createDirectory(at: workspace.simulatorDirectory, withIntermediateDirectories: true)
        var tensors: [(name: String, shape: [Int], values: [Float])] = []
        for (f, h) in heads.enumerated() {
            tensors.append(("fold\(f).weight", [h.weight.count], h.weight))
            tensors.append(("fold\(f).bias", [1], [h.bias]))
            if let detection { tensors.append(("fold\(f).detection", [1], [detection[f]])) }
        }
        let tmp = workspace.simulatorHeadURL.path + ".tmp"
        try SafetensorsFile.write(tensors, metadata: ["format": "loupe-trained-simulator"], to: tmp)
        guard rename(tmp, workspace.simulatorHeadURL.path) == 0 else {
            throw SimulatorError.cannotWrite(path: workspace.simulatorHeadURL.path, reason: String(cString: strerror(errno)))
        }
        try JSONFile.write(config, to: workspace.simulatorConfigURL)
    }

    public func simulate(explanation: String, contexts: [SimulationContext], mode: SimulationMode,
                         shouldStop: () -> Bool) throws -> [[Float]] {
        try simulate(latent: nil, explanation: explanation, contexts: contexts, mode: mode, shouldStop: shouldStop)
    }

    public func detectionDigit(latent: Int?) -> Float { 9 * detection[latent.map(config.fold(latent:)) ?? 0] }
    public var detectionDigits: [Float] { detection.map { 9 * $0 } }

    /// Predictions (activation / max, clamped to 0…1) ×9. A latent is read by its fold's head; with
    /// no latent (text not tied to one), head 0.
    public func simulate(latent: Int?, explanation: String, contexts: [SimulationContext], mode: SimulationMode,
                         shouldStop: () -> Bool) throws -> [[Float]] {
        let head = heads[latent.map(config.fold(latent:)) ?? 0]
        let features = try reader.features(explanation: explanation, contexts: contexts, shouldStop: shouldStop)
        let F = config.featureCount
        return zip(contexts, features).map { context, x in
            x.withUnsafeBufferPointer { p in
                context.tokens.indices.map { t in 9 * min(1, max(0, head.predict(p.baseAddress! + t * F))) }
            }
        }
    }
}
