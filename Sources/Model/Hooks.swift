/// Where one sequence of a chunk begins: its first row in the chunk and that row's absolute position.
public struct SequenceStart: Equatable, Sendable {
    public let row: Int
    public let position: Int

    public init(row: Int, position: Int) { self.row = row; self.position = position }
}

/// A read-only window on activations of the current chunk: `rows` positions × `dim` floats,
/// row-major. With one sequence, row t is the token at absolute position `firstPosition + t`; a
/// batch of sequences stacks their rows, each beginning at one of `starts`. Valid only during
/// the callback.
public struct ActivationView {
    public let pointer: UnsafePointer<Float>
    public let rows: Int
    public let dim: Int
    public let firstPosition: Int
    /// One per sequence in the chunk, in row order (the first is row 0 at `firstPosition`).
    public let starts: [SequenceStart]

    public init(pointer: UnsafePointer<Float>, rows: Int, dim: Int, firstPosition: Int, starts: [SequenceStart]? = nil) {
        self.pointer = pointer; self.rows = rows; self.dim = dim; self.firstPosition = firstPosition
        self.starts = starts ?? [SequenceStart(row: 0, position: firstPosition)]
    }

    public func row(_ t: Int) -> UnsafeBufferPointer<Float> {
        UnsafeBufferPointer(start: pointer + t * dim, count: dim)
    }

    /// Rows holding the first position (0) of a sequence.
    public var firstPositionRows: [Int] { starts.filter { $0.position == 0 }.map(\.row) }
}

/// A writable window, for replacing an activation in place.
public struct MutableActivationView {
    public let pointer: UnsafeMutablePointer<Float>
    public let rows: Int
    public let dim: Int
    public let firstPosition: Int
    /// As `ActivationView.starts`.
    public let starts: [SequenceStart]

    public init(pointer: UnsafeMutablePointer<Float>, rows: Int, dim: Int, firstPosition: Int, starts: [SequenceStart]? = nil) {
        self.pointer = pointer; self.rows = rows; self.dim = dim; self.firstPosition = firstPosition
        self.starts = starts ?? [SequenceStart(row: 0, position: firstPosition)]
    }

    public func row(_ t: Int) -> UnsafeMutableBufferPointer<Float> {
        UnsafeMutableBufferPointer(start: pointer + t * dim, count: dim)
    }

    /// The same rows, read-only.
    public var readOnly: ActivationView {
        ActivationView(pointer: pointer, rows: rows, dim: dim, firstPosition: firstPosition, starts: starts)
    }

    /// As `ActivationView.firstPositionRows`.
    public var firstPositionRows: [Int] { starts.filter { $0.position == 0 }.map(\.row) }
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
    /// The residual stream leaving the layer (after its MLP is added; after any replacement): what
    /// the next layer reads. sparsify's hookpoint `layers.L`, SAELens's `blocks.L.hook_resid_post`.
    public var residualOutput: ((ActivationView) -> Void)?
    /// Overwrites the residual stream leaving the layer (it holds the model's own when called).
    public var replaceResidualOutput: ((MutableActivationView) -> Void)?

    public init(residual: ((ActivationView) -> Void)? = nil, mlpInput: ((ActivationView) -> Void)? = nil,
                mlpOutput: ((ActivationView) -> Void)? = nil, replaceMLPOutput: ((MutableActivationView) -> Void)? = nil,
                residualOutput: ((ActivationView) -> Void)? = nil, replaceResidualOutput: ((MutableActivationView) -> Void)? = nil) {
        self.residual = residual
        self.mlpInput = mlpInput
        self.mlpOutput = mlpOutput
        self.replaceMLPOutput = replaceMLPOutput
        self.residualOutput = residualOutput
        self.replaceResidualOutput = replaceResidualOutput
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
