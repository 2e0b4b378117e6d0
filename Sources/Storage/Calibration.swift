/// How a latent's simulated expected digits (0…9) become activations in the latent's units.
///
/// - `none` (the paper's "uncalibrated"): value = E / 9 · max, with max the latent's largest
///   activation on the training tokens. E = 9 maps to the max, E = 0 to 0.
/// - `quantile` (the paper's quantile normalization): a simulated value is mapped to the latent's
///   true activation at the same quantile, zeros included, so the simulated values take the true
///   marginal distribution. Precisely, for the N values passed in one call (all contexts together:
///   pass a latent's whole simulated set at once):
///   1. rank: sort them; a value's rank is its 0-based position, equal values sharing the mean of
///      their positions; its quantile is u = rank / (N − 1) (u = 1/2 when N = 1), so the smallest
///      value has u = 0 and the largest u = 1;
///   2. invert the true CDF: the latent is 0 on a fraction z = 1 − count / trainTokens of tokens,
///      and its non-zero activations have quantiles q[0] (min) … q[Q−1] (max) at evenly spaced ranks
///      (the cache's 101). Then F⁻¹(u) = 0 for u ≤ z, and otherwise, with r = (u − z) / (1 − z) in
///      (0, 1], the quantiles interpolated linearly at x = r·(Q − 1): (1 − f)·q[⌊x⌋] + f·q[⌊x⌋ + 1],
///      f = x − ⌊x⌋.
///   So the mapping is monotone (non-decreasing), the largest simulated value becomes the max,
///   about a fraction z of the values become 0, and ties stay tied. Only the order of the simulated
///   values matters, not their scale.
public enum Calibration: String, CaseIterable, Sendable, Codable {
    case none, quantile

    /// Calibrates one latent's expected digits (per context, per token) with its cache record.
    public func apply(_ expected: [[Float]], record: LatentRecord, trainTokens: Int) -> [[Float]] {
        apply(expected, distribution: ActivationDistribution(record: record, trainTokens: trainTokens))
    }

    /// Calibrates against a given true distribution.
    public func apply(_ expected: [[Float]], distribution: ActivationDistribution) -> [[Float]] {
        switch self {
        case .none:
            return expected.map { row in row.map { $0 / 9 * distribution.max } }
        case .quantile:
            let flat = expected.flatMap { $0 }
            let u = Self.quantiles(of: flat)
            var out: [[Float]] = []
            var i = 0
            for row in expected {
                out.append(row.indices.map { distribution.value(atQuantile: u[i + $0]) })
                i += row.count
            }
            return out
        }
    }

    /// Each value's quantile in `values`: mean 0-based rank over ties, divided by N − 1.
    static func quantiles(of values: [Float]) -> [Double] {
        let n = values.count
        guard n > 1 else { return [Double](repeating: 0.5, count: n) }
        let order = values.indices.sorted { values[$0] < values[$1] }
        var u = [Double](repeating: 0, count: n)
        var start = 0
        while start < n {
            var end = start + 1
            while end < n && values[order[end]] == values[order[start]] { end += 1 }
            let rank = Double(start + end - 1) / 2
            for k in start..<end { u[order[k]] = rank / Double(n - 1) }
            start = end
        }
        return u
    }
}

/// A latent's true activation distribution: a point mass at 0, then the non-zero activations.
public struct ActivationDistribution: Equatable, Sendable {
    /// Fraction of tokens where the latent is 0 (1 − density).
    public var zeroFraction: Double
    /// Quantiles of the non-zero activations at evenly spaced ranks, min first, max last.
    public var quantiles: [Float]
    /// The largest activation (what uncalibrated E = 9 maps to).
    public var max: Float

    public init(zeroFraction: Double, quantiles: [Float], max: Float? = nil) {
        self.zeroFraction = Swift.min(Swift.max(zeroFraction, 0), 1)
        self.quantiles = quantiles
        self.max = max ?? quantiles.last ?? 0
    }

    /// From the cache: the latent fires on `count` of `trainTokens` tokens.
    public init(record: LatentRecord, trainTokens: Int) {
        self.init(zeroFraction: 1 - Double(record.count) / Double(Swift.max(trainTokens, 1)), quantiles: record.quantiles, max: record.max)
    }

    /// The inverse CDF at u ∈ [0, 1] (definition on `Calibration`).
    public func value(atQuantile u: Double) -> Float {
        guard u > zeroFraction, zeroFraction < 1, let last = quantiles.indices.last else { return 0 }
        let r = Swift.min((u - zeroFraction) / (1 - zeroFraction), 1)
        let x = r * Double(last)
        let lo = Int(x.rounded(.down)), hi = Swift.min(lo + 1, last)
        let f = Float(x - Double(lo))
        return (1 - f) * quantiles[lo] + f * quantiles[hi]
    }
}
