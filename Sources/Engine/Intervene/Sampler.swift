import Foundation
import Kernels

/// Greedy (temperature 0) or temperature sampling with a seeded generator.
public struct Sampler: Sendable {
    let temperature: Float
    var rng: SplitMix64

    public init(temperature: Float, seed: UInt64) {
        self.temperature = temperature
        rng = SplitMix64(seed: seed)
    }

    public mutating func pick(_ logits: [Float]) -> Int {
        guard temperature > 0 else { return logits.withUnsafeBufferPointer { Ops.argmax($0.baseAddress!, count: $0.count) } }
        let m = logits.max() ?? 0
        let weights = logits.map { Double(exp(($0 - m) / temperature)) }
        var r = rng.unit() * weights.reduce(0, +)
        for (i, w) in weights.enumerated() {
            r -= w
            if r <= 0 { return i }
        }
        return logits.count - 1
    }
}
