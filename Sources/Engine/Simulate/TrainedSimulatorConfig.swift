import Formats
import Foundation
import Kernels
import Model
import Storage
import Tokenizer

/// `simulator/simulator.json` in a workspace: how the trained simulator reads, and what it was
/// trained on. Beside it `simulator/head.safetensors` holds one linear head per fold:
/// `fold<F>.weight` [D] and `fold<F>.bias` [1] (F32), D = layers × model dim + match features.
///
/// Reading (`TrainedSimulator`): the prompt (`prompt`, with `{{explanation}}` filled in, special
/// tokens parsed outside the explanation) is followed by the context's token ids as running
/// text, one position per token. At every context position the features are the residual stream
/// entering each of `layers`, then `ExplanationMatch`'s features of that token. The prediction is
/// head·features clamped to [0, 1] (activation / the latent's max); the backend reports 9× that
/// as its expected digit. A latent is always read by the head of its own fold
/// (`fold(latent:)`), which was fitted on the other folds' latents only.
public struct TrainedSimulatorConfig: Codable, Equatable, Sendable {
    public struct Example: Codable, Equatable, Sendable {
        public var latent: Int
        public var version: Int
        public var source: ExplanationSource
    }

    public struct Training: Codable, Equatable, Sendable {
        public var latents: Int
        public var examples: Int
        public var windows: Int
        public var tokens: Int
        public var seconds: Double
        /// Per example: top, quantile-bin and random training windows.
        public var topWindows: Int
        public var quantileWindows: Int
        public var randomWindows: Int
        /// Per fold: the penalty chosen and the out-of-fold Pearson r over that fold's rows.
        public var alphas: [Double]
        public var outOfFoldPearson: [Double?]
        /// Per fold: its head's detection threshold (a fraction of the latent's max; the head file's
        /// `fold<F>.detection` holds the one used) and the balanced accuracy it reaches on that
        /// fold's own training windows. Nil in a simulator trained before they existed.
        public var detection: [Double]?
        public var detectionBalancedAccuracy: [Double?]?

        enum CodingKeys: String, CodingKey {
            case latents, examples, windows, tokens, seconds, topWindows = "top_windows", quantileWindows = "quantile_windows",
                 randomWindows = "random_windows", alphas, outOfFoldPearson = "out_of_fold_pearson", detection,
                 detectionBalancedAccuracy = "detection_balanced_accuracy"
        }
    }

    public var formatVersion = 1
    /// The simulator model's file name, vocabulary size and width (checked at load).
    public var model: String
    public var vocabSize: Int
    public var modelDim: Int
    public var layers: [Int]
    public var prompt: String
    public var matchFeatures: [String]
    public var folds: Int
    public var foldSeed: UInt64
    public var training: Training?
    public var explanations: [Example]

    public var featureCount: Int { layers.count * modelDim + matchFeatures.count }

    /// The fold a latent belongs to (a seeded hash of its id, so folds are balanced and fixed).
    public static func fold(latent: Int, folds: Int, seed: UInt64) -> Int {
        var g = SplitMix64(seed: seed ^ (UInt64(latent) &* 0xD6E8_FEB8_6659_FD93))
        return Int(g.next() % UInt64(folds))
    }

    public func fold(latent: Int) -> Int { Self.fold(latent: latent, folds: folds, seed: foldSeed) }

    public static let defaultPrompt = """
    <|im_start|>user
    A feature of a language model fires on some tokens of a text. Explanation of the feature: {{explanation}}<|im_end|>
    <|im_start|>assistant
    Text:
    """

    enum CodingKeys: String, CodingKey {
        case formatVersion = "format_version", model, vocabSize = "vocab_size", modelDim = "model_dim", layers, prompt,
             matchFeatures = "match_features", folds, foldSeed = "fold_seed", training, explanations
    }
}

/// Where a workspace keeps its trained simulator.
public extension Workspace {
    var simulatorConfigURL: URL { simulatorDirectory.appendingPathComponent("simulator.json") }
    var simulatorHeadURL: URL { simulatorDirectory.appendingPathComponent("head.safetensors") }
    var hasTrainedSimulator: Bool {
        FileManager.default.fileExists(atPath: simulatorConfigURL.path) && FileManager.default.fileExists(atPath: simulatorHeadURL.path)
    }
}
