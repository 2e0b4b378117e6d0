import Foundation
import Formats

/// A sparse coder's `cfg.json`, field for field as EleutherAI sparsify writes it
/// (`SparseCoderConfig.to_dict()` plus `"d_in"`, see sparsify/sparse_coder.py `save_to_disk`).
///
/// Missing fields take sparsify's dataclass defaults (sparsify/config.py); unknown extra keys are
/// ignored, as sparsify's `from_dict(..., drop_extra_fields=True)` does. Only `d_in` is required.
public struct TranscoderConfig: Codable, Equatable, Sendable {
    /// Input width (`d_in`); SmolLM2-135M's hidden size is 576.
    public var dIn: Int
    /// Number of latents, or 0 to use `dIn * expansionFactor` (`num_latents`).
    public var numLatents: Int
    /// Multiple of `dIn` used when `numLatents` is 0 (`expansion_factor`, default 32).
    public var expansionFactor: Int
    /// Active latents per token (`k`, default 32).
    public var k: Int
    /// `"topk"` (default) or `"groupmax"` (`activation`); Loupe adds `"relu"` and `"jumprelu"` (per-latent
    /// thresholds, tensor `threshold`) for dictionaries read from other libraries (Formats/), whose `k` is
    /// then the most latents Loupe keeps per token, the largest first.
    public var activation: String
    /// Unit-norm decoder rows; sparsify applies it only when not transcoding (`normalize_decoder`, default true).
    public var normalizeDecoder: Bool
    /// Multi-TopK auxiliary loss (`multi_topk`, default false); not supported by Loupe's trainer.
    public var multiTopK: Bool
    /// Linear skip path ŷ += x·W_skipᵀ (`skip_connection`, default false).
    public var skipConnection: Bool
    /// Predict a module's output from its input; false means an autoencoder (`transcode`, default false).
    public var transcode: Bool

    enum CodingKeys: String, CodingKey {
        case dIn = "d_in"
        case numLatents = "num_latents"
        case expansionFactor = "expansion_factor"
        case k
        case activation
        case normalizeDecoder = "normalize_decoder"
        case multiTopK = "multi_topk"
        case skipConnection = "skip_connection"
        case transcode
    }

    /// A configuration; defaults are sparsify's `TranscoderConfig` (a `SparseCoderConfig` with transcode=true).
    public init(dIn: Int, numLatents: Int = 0, expansionFactor: Int = 32, k: Int = 32, activation: String = "topk",
                normalizeDecoder: Bool = true, multiTopK: Bool = false, skipConnection: Bool = false, transcode: Bool = true) {
        self.dIn = dIn
        self.numLatents = numLatents
        self.expansionFactor = expansionFactor
        self.k = k
        self.activation = activation
        self.normalizeDecoder = normalizeDecoder
        self.multiTopK = multiTopK
        self.skipConnection = skipConnection
        self.transcode = transcode
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        dIn = try c.decode(Int.self, forKey: .dIn)
        numLatents = try c.decodeIfPresent(Int.self, forKey: .numLatents) ?? 0
        expansionFactor = try c.decodeIfPresent(Int.self, forKey: .expansionFactor) ?? 32
        k = try c.decodeIfPresent(Int.self, forKey: .k) ?? 32
        activation = try c.decodeIfPresent(String.self, forKey: .activation) ?? "topk"
        normalizeDecoder = try c.decodeIfPresent(Bool.self, forKey: .normalizeDecoder) ?? true
        multiTopK = try c.decodeIfPresent(Bool.self, forKey: .multiTopK) ?? false
        skipConnection = try c.decodeIfPresent(Bool.self, forKey: .skipConnection) ?? false
        transcode = try c.decodeIfPresent(Bool.self, forKey: .transcode) ?? false
    }

    /// The resolved number of latents M: `numLatents`, or `dIn * expansionFactor` when that is 0.
    /// Only meaningful once `problem()` is nil (which checks that the product neither overflows nor
    /// passes `Limits.latents`); before that it is 0 for a product that overflows.
    public var latents: Int { numLatents > 0 ? numLatents : (Limits.product(dIn, expansionFactor) ?? 0) }

    /// The parameter tensors and their shapes (row-major) this configuration calls for, as
    /// sparsify names them (and `threshold` [M] for JumpReLU, which Loupe stores beside them); `Transcoder.load` compares the file's tensors with these before
    /// allocating anything. Valid once `problem()` is nil.
    public var parameterShapes: [(name: String, shape: [Int])] {
        let (m, d) = (latents, dIn)
        var list = [("encoder.weight", [m, d]), ("encoder.bias", [m]), ("W_dec", [m, d]), ("b_dec", [d])]
        if skipConnection { list.append(("W_skip", [d, d])) }
        if activation == "jumprelu" { list.append(("threshold", [m])) }
        return list
    }

    /// The first thing wrong with the configuration as (key, reason), or nil when it is usable.
    public func problem() -> (key: String, reason: String)? {
        // Limits (Formats/Limits.swift) before any product, so nothing below can overflow.
        if dIn <= 0 || dIn > Limits.modelDim { return ("d_in", "must be in 1...\(Limits.modelDim), got \(dIn)") }
        if numLatents < 0 || numLatents > Limits.latents { return ("num_latents", "must be in 0...\(Limits.latents), got \(numLatents)") }
        if numLatents == 0 {
            guard expansionFactor > 0, let m = Limits.product(dIn, expansionFactor), m <= Limits.latents else {
                return ("expansion_factor", "must be positive with d_in × expansion_factor ≤ \(Limits.latents) when num_latents is 0, got \(expansionFactor)")
            }
        }
        if k <= 0 || k > min(latents, Limits.topK) { return ("k", "must be in 1...\(min(latents, Limits.topK)), got \(k)") }
        switch activation {
        case "topk": break
        case "groupmax": if latents % k != 0 { return ("activation", "groupmax needs num_latents (\(latents)) divisible by k (\(k))") }
        case "relu", "jumprelu": break
        default: return ("activation", "'\(activation)' is not \"topk\", \"groupmax\", \"relu\" or \"jumprelu\"")
        }
        return nil
    }

    /// Reads and validates `<path>` (a cfg.json), naming the file and key on any problem.
    public static func read(path: String) throws -> TranscoderConfig {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TranscoderError.badConfig(file: path, key: nil, reason: "cannot read the file")
        }
        let cfg: TranscoderConfig
        do {
            cfg = try JSONDecoder().decode(TranscoderConfig.self, from: data)
        } catch let DecodingError.keyNotFound(key, _) {
            throw TranscoderError.badConfig(file: path, key: key.stringValue, reason: "required key is missing")
        } catch let DecodingError.typeMismatch(type, ctx) {
            throw TranscoderError.badConfig(file: path, key: ctx.codingPath.last?.stringValue, reason: "expected \(type)")
        } catch let DecodingError.valueNotFound(type, ctx) {
            throw TranscoderError.badConfig(file: path, key: ctx.codingPath.last?.stringValue, reason: "expected \(type), found null")
        } catch {
            throw TranscoderError.badConfig(file: path, key: nil, reason: "not a JSON object (\(error.localizedDescription))")
        }
        if let (key, reason) = cfg.problem() { throw TranscoderError.badConfig(file: path, key: key, reason: reason) }
        return cfg
    }

    /// The cfg.json bytes (sorted keys, every field written, `num_latents` as stored).
    public func jsonData() throws -> Data {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        return try e.encode(self)
    }
}

/// Problems with a transcoder checkpoint or trainer state that are not tensor-file format errors
/// (those are `FormatError`s, which name the file and tensor).
public enum TranscoderError: Error, Equatable, CustomStringConvertible {
    /// cfg.json (or trainer.json) is unreadable, lacks a key, or holds an unusable value.
    case badConfig(file: String, key: String?, reason: String)
    /// The tensor file holds a tensor the configuration does not call for.
    case unexpectedTensor(file: String, tensor: String)
    /// A feature sparsify has but Loupe does not implement.
    case unsupported(file: String, key: String, reason: String)

    public var description: String {
        switch self {
        case let .badConfig(file, key?, reason): return "\(file): key '\(key)': \(reason)"
        case let .badConfig(file, nil, reason): return "\(file): \(reason)"
        case let .unexpectedTensor(file, tensor): return "\(file): unexpected tensor '\(tensor)' (not in the configuration)"
        case let .unsupported(file, key, reason): return "\(file): key '\(key)': \(reason)"
        }
    }
}
