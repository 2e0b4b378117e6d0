import Foundation
import Kernels
import Tokenizer

/// What a score belongs to: an explanation version simulated one way.
public struct ScoreKey: Hashable, Codable, Sendable {
    public var version: Int
    public var mode: SimulatorKind
    public var calibration: Calibration
    public var backend: String

    public init(version: Int, mode: SimulatorKind, calibration: Calibration, backend: String) {
        self.version = version
        self.mode = mode
        self.calibration = calibration
        self.backend = backend
    }
}

/// The scoring windows with true and simulated activations per token, for the explorer.
public struct SimulationRecord: Codable, Equatable, Sendable {
    public struct Window: Codable, Equatable, Sendable {
        public var corpusWindow: Int
        public var start: Int
        public var focus: Int?
        public var tokens: [Int]
        public var activations: [Float]
        /// Expected digits 0…9 from the simulator.
        public var expected: [Float]
        /// Calibrated, in activation units.
        public var simulated: [Float]
        public var outcomes: [TokenOutcome]

        public init(corpusWindow: Int, start: Int, focus: Int?, tokens: [Int], activations: [Float], expected: [Float], simulated: [Float], outcomes: [TokenOutcome]) {
            self.corpusWindow = corpusWindow; self.start = start; self.focus = focus; self.tokens = tokens; self.activations = activations; self.expected = expected; self.simulated = simulated; self.outcomes = outcomes
        }

        enum CodingKeys: String, CodingKey { case corpusWindow = "window", start, focus, tokens, activations, expected, simulated, outcomes }
    }

    public var latent: Int
    public var key: ScoreKey
    public var windows: [Window]

    public init(latent: Int, key: ScoreKey, windows: [Window]) {
        self.latent = latent; self.key = key; self.windows = windows
    }
}
