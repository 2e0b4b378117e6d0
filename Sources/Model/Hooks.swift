/// A read-only window on activations of the current chunk: `rows` positions × `dim` floats,
/// row-major. Row t is the token at absolute position `firstPosition + t`. Valid only during
/// the callback.
public struct ActivationView {
    public let pointer: UnsafePointer<Float>
    public let rows: Int
    public let dim: Int
    public let firstPosition: Int

    public func row(_ t: Int) -> UnsafeBufferPointer<Float> {
        UnsafeBufferPointer(start: pointer + t * dim, count: dim)
    }
}

/// A writable window, for replacing an activation in place.
public struct MutableActivationView {
    public let pointer: UnsafeMutablePointer<Float>
    public let rows: Int
    public let dim: Int
    public let firstPosition: Int

    public func row(_ t: Int) -> UnsafeMutableBufferPointer<Float> {
        UnsafeMutableBufferPointer(start: pointer + t * dim, count: dim)
    }
}

/// What a caller wants to see or change at one layer.
public struct LayerHook {
    /// The residual stream entering the layer.
    public var residual: ((ActivationView) -> Void)?
    /// The MLP's input: the residual after attention, through the pre-MLP RMSNorm.
    public var mlpInput: ((ActivationView) -> Void)?
    /// The MLP's output, before it is added to the residual stream (after any replacement).
    public var mlpOutput: ((ActivationView) -> Void)?
    /// Overwrites the MLP's output (it holds the model's own output when called).
    public var replaceMLPOutput: ((MutableActivationView) -> Void)?

    public init(residual: ((ActivationView) -> Void)? = nil, mlpInput: ((ActivationView) -> Void)? = nil,
                mlpOutput: ((ActivationView) -> Void)? = nil, replaceMLPOutput: ((MutableActivationView) -> Void)? = nil) {
        self.residual = residual
        self.mlpInput = mlpInput
        self.mlpOutput = mlpOutput
        self.replaceMLPOutput = replaceMLPOutput
    }

    var touchesMLPOutput: Bool { mlpOutput != nil || replaceMLPOutput != nil }
}

/// Hooks for one forward pass: per-layer hooks and an optional early stop.
public struct ForwardHooks {
    public var layers: [Int: LayerHook]
    /// Stop after this layer (0-based): later layers and the logits are skipped, and the cache
    /// keeps only the layers that ran. Transcoder training needs the model only up to its layer.
    public var stopAfterLayer: Int?
    /// The residual stream after the last layer, before the final norm (every row of the chunk;
    /// the last layer then runs for every row). The interventions' direct effects read it.
    public var finalResidual: ((ActivationView) -> Void)?

    public init(layers: [Int: LayerHook] = [:], stopAfterLayer: Int? = nil, finalResidual: ((ActivationView) -> Void)? = nil) {
        self.layers = layers
        self.stopAfterLayer = stopAfterLayer
        self.finalResidual = finalResidual
    }
}

/// Which logits a forward pass computes.
public enum LogitsRequest: Sendable {
    case none, last, all

    /// The rows of a `count`-token input whose logits this request computes.
    func rows(count: Int) -> [Int] {
        switch self {
        case .none: return []
        case .last: return [count - 1]
        case .all: return Array(0..<count)
        }
    }
}
