/// Who wrote an explanation version: a bulk explainer (`llm`, `lexical`) or a person (typed in
/// the explorer or with `loupe explanations set`, imported, or an earlier version made current
/// again). Stored as its raw string; a source this version does not know (another tool's)
/// reads as `.other` and is written back unchanged, and counts as a person's.
public enum ExplanationSource: Hashable, Sendable, Codable, CustomStringConvertible, ExpressibleByStringLiteral {
    case llm, lexical, user, imported, revert
    case other(String)

    public init(rawValue: String) {
        switch rawValue {
        case "llm": self = .llm
        case "lexical": self = .lexical
        case "user": self = .user
        case "import": self = .imported
        case "revert": self = .revert
        default: self = .other(rawValue)
        }
    }

    public init(stringLiteral value: String) { self.init(rawValue: value) }

    public var rawValue: String {
        switch self {
        case .llm: return "llm"
        case .lexical: return "lexical"
        case .user: return "user"
        case .imported: return "import"
        case .revert: return "revert"
        case .other(let s): return s
        }
    }

    public var description: String { rawValue }

    /// Written by a bulk explainer; these may be replaced by a newer machine explanation.
    public var isMachine: Bool { self == .llm || self == .lexical }

    /// The rule every writer follows: a bulk explainer never replaces a person's explanation
    /// (`current`: the latent's current version, nil when it has none).
    public static func machineMayReplace(_ current: ExplanationVersion?) -> Bool { current.map { $0.source.isMachine } ?? true }

    public init(from decoder: Decoder) throws { self.init(rawValue: try decoder.singleValueContainer().decode(String.self)) }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(rawValue)
    }
}
