import Foundation

/// The simulation settings that score, simulation and rewrite records keep.

/// How the contexts are laid out in the prompt.
public enum SimulationMode: String, Sendable, CaseIterable {
    /// One token per row; one forward pass reads every row's prediction (the efficient one).
    case allAtOnce = "all"
    /// The paper's protocol: one prompt per position, with the judged token marked.
    case lastToken = "last"
}

/// One context to simulate: token ids (in the base model's vocabulary) and each token's text.
public struct SimulationContext: Equatable, Sendable {
    public var tokens: [Int]
    public var texts: [String]

    public init(tokens: [Int], texts: [String]) {
        precondition(tokens.count == texts.count, "one text per token")
        self.tokens = tokens
        self.texts = texts
    }
}

/// Which simulator predicts activations: the trained readout (one position per token) or the
/// paper's prompted protocol in one of its two layouts. `storedMode` is what score and simulation
/// records keep (the prompted ones keep their old "all" / "last", so earlier stores read unchanged).
public enum SimulatorKind: String, CaseIterable, Sendable, Codable, CustomStringConvertible {
    case trained
    case promptedAll = "prompted-all"
    case promptedLast = "prompted-last"

    /// The prompt layout a prompted simulator uses (the trained one has none; `.allAtOnce` is passed).
    public var promptMode: SimulationMode {
        switch self {
        case .trained, .promptedAll: return .allAtOnce
        case .promptedLast: return .lastToken
        }
    }

    public var storedMode: String {
        switch self {
        case .trained: return "trained"
        case .promptedAll: return SimulationMode.allAtOnce.rawValue
        case .promptedLast: return SimulationMode.lastToken.rawValue
        }
    }

    public init(prompted mode: SimulationMode) { self = mode == .allAtOnce ? .promptedAll : .promptedLast }

    /// From a stored mode ("trained", "all", "last").
    public init?(storedMode: String) {
        guard let k = Self.allCases.first(where: { $0.storedMode == storedMode }) else { return nil }
        self = k
    }

    /// Parses a command-line value; the old `all`/`last` spellings are accepted too.
    public init?(argument: String) {
        if let k = SimulatorKind(rawValue: argument) { self = k; return }
        guard let k = SimulatorKind(storedMode: argument) else { return nil }
        self = k
    }

    /// As records show it: `storedMode`.
    public var description: String { storedMode }

    /// Stored as `storedMode`; the command-line spellings are read too.
    public init(from decoder: Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let kind = SimulatorKind(argument: text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not a simulation mode: \(text)"))
        }
        self = kind
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(storedMode)
    }

    public static var argumentList: String { allCases.map(\.rawValue).joined(separator: "|") }
}
