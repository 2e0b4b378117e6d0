import Foundation
import Storage

/// Ridge regression from sufficient statistics, so that a readout over hundreds of thousands of
/// feature rows is trained without keeping them, and cross-fitting over folds costs one pass:
/// each fold's statistics are kept apart and a head for fold f sums the others'.
///
/// Statistics of rows x (D features) with targets y: n, Σx, Σxxᵀ (upper triangle), Σy, Σy², Σxy.
/// A head standardizes the features with the statistics' own mean and deviation, solves
/// (R + α·I)·β = ρ for the correlation matrix R and the feature–target covariances ρ (both per
/// row and standardized), and returns w = β/σ, b = ȳ − w·μ.
public struct RidgeStatistics: Equatable, Sendable {
    public let dim: Int
    public var count: Double = 0
    public var sum: [Double]
    /// Row-major D×D; only j ≥ i is kept up to date (`symmetrized()` fills the rest).
    public var gram: [Double]
    public var sumY: Double = 0
    public var sumYY: Double = 0
    public var sumXY: [Double]

    public init(dim: Int) {
        self.dim = dim
        sum = [Double](repeating: 0, count: dim)
        gram = [Double](repeating: 0, count: dim * dim)
        sumXY = [Double](repeating: 0, count: dim)
    }

    /// Adds `rows` rows of `x` (row-major, `dim` each) with targets `y`. The Gram matrix of the
    /// block is formed in Float (`Gram.accumulate`) and added in Double.
    public mutating func add(_ x: UnsafePointer<Float>, rows: Int, y: UnsafePointer<Float>) {
        guard rows > 0 else { return }
        let d = dim
        var block = [Float](repeating: 0, count: d * d)
        block.withUnsafeMutableBufferPointer { Gram.accumulate(x, rows: rows, dim: d, into: $0.baseAddress!) }
        for i in 0..<d { for j in i..<d { gram[i * d + j] += Double(block[i * d + j]) } }
        for r in 0..<rows {
            let row = x + r * d, t = Double(y[r])
            for i in 0..<d {
                sum[i] += Double(row[i])
                sumXY[i] += Double(row[i]) * t
            }
            sumY += t
            sumYY += t * t
        }
        count += Double(rows)
    }

    public static func + (a: RidgeStatistics, b: RidgeStatistics) -> RidgeStatistics {
        precondition(a.dim == b.dim, "statistics of different widths")
        var s = a
        s.count += b.count
        s.sumY += b.sumY
        s.sumYY += b.sumYY
        for i in 0..<a.dim { s.sum[i] += b.sum[i]; s.sumXY[i] += b.sumXY[i] }
        for i in 0..<a.gram.count { s.gram[i] += b.gram[i] }
        return s
    }

    /// The full Gram matrix (lower triangle copied from the upper).
    func symmetrized() -> [Double] {
        var g = gram
        for i in 0..<dim { for j in 0..<i { g[i * dim + j] = g[j * dim + i] } }
        return g
    }

    /// The ridge head fitted to these statistics with penalty `alpha` (on the correlation scale).
    public func solve(alpha: Double) throws -> RidgeHead {
        let d = dim, n = count
        guard n >= 2 else { throw SimulatorError.ridgeTooFewRows }
        let mean = sum.map { $0 / n }, meanY = sumY / n
        let g = symmetrized()
        var sd = [Double](repeating: 1, count: d)
        for i in 0..<d {
            let v = g[i * d + i] / n - mean[i] * mean[i]
            sd[i] = v > 1e-12 ? v.squareRoot() : 0
        }
        // Constant features (sd 0) get β = 0: their row and column become the identity.
        var a = [Double](repeating: 0, count: d * d)
        var rhs = [Double](repeating: 0, count: d)
        for i in 0..<d {
            guard sd[i] > 0 else { a[i * d + i] = 1; continue }
            for j in 0..<d where sd[j] > 0 {
                a[i * d + j] = (g[i * d + j] / n - mean[i] * mean[j]) / (sd[i] * sd[j])
            }
            a[i * d + i] += alpha
            rhs[i] = (sumXY[i] / n - mean[i] * meanY) / sd[i]
        }
        let beta = try Cholesky.solve(a, rhs, dim: d)
        var w = [Float](repeating: 0, count: d)
        var b = meanY
        for i in 0..<d where sd[i] > 0 {
            let wi = beta[i] / sd[i]
            w[i] = Float(wi)
            b -= wi * mean[i]
        }
        return RidgeHead(weight: w, bias: Float(b))
    }

    /// Σ (y − w·x − b)² over the rows these statistics hold.
    public func squaredError(_ head: RidgeHead) -> Double {
        let d = dim
        let w = head.weight.map(Double.init), b = Double(head.bias)
        var wGw = 0.0
        for i in 0..<d where w[i] != 0 {
            var row = 0.0
            for j in 0..<d where w[j] != 0 { row += gram[i <= j ? i * d + j : j * d + i] * w[j] }
            wGw += w[i] * row
        }
        var wXY = 0.0, wS = 0.0
        for i in 0..<d { wXY += w[i] * sumXY[i]; wS += w[i] * sum[i] }
        return sumYY - 2 * wXY - 2 * b * sumY + wGw + 2 * b * wS + count * b * b
    }
}

/// A linear readout: prediction = weight · x + bias.
public struct RidgeHead: Equatable, Sendable {
    public var weight: [Float]
    public var bias: Float

    public init(weight: [Float], bias: Float) {
        self.weight = weight
        self.bias = bias
    }

    public func predict(_ x: UnsafePointer<Float>) -> Float {
        var s: Float = 0
        for i in weight.indices { s += weight[i] * x[i] }
        return s + bias
    }
}

/// Cross-fitting over folds: the statistics of each fold, a head per fold fitted on the others, its
/// penalty chosen by an inner cross-validation over those others only (so nothing of fold f —
/// features or targets — reaches head f).
public enum CrossFit {
    public static let alphas: [Double] = [1e-4, 1e-3, 1e-2, 1e-1]

    /// Sums of the statistics of every fold but `excluded` ones.
    public static func pooled(_ folds: [RidgeStatistics], excluding excluded: Set<Int>) -> RidgeStatistics {
        var s = RidgeStatistics(dim: folds[0].dim)
        for (f, stats) in folds.enumerated() where !excluded.contains(f) { s = s + stats }
        return s
    }

    /// Head f and its penalty: for each alpha, the summed squared error on each other fold g of a
    /// head fitted without f and g; the best alpha is then fitted on every fold but f.
    public static func head(for f: Int, folds: [RidgeStatistics], alphas: [Double] = alphas) throws -> (head: RidgeHead, alpha: Double) {
        let others = folds.indices.filter { $0 != f && folds[$0].count > 0 }
        var best = (alpha: alphas[0], error: Double.infinity)
        if others.count >= 2 {
            for alpha in alphas {
                var error = 0.0
                for g in others {
                    let h = try pooled(folds, excluding: [f, g]).solve(alpha: alpha)
                    error += folds[g].squaredError(h)
                }
                if error < best.error { best = (alpha, error) }
            }
        }
        return (try pooled(folds, excluding: [f]).solve(alpha: best.alpha), best.alpha)
    }
}

/// Dense symmetric positive-definite solve.
public enum Cholesky {
    /// Solves A·x = b for symmetric positive-definite A (row-major, dim × dim).
    public static func solve(_ a: [Double], _ b: [Double], dim n: Int) throws -> [Double] {
        var l = a
        for j in 0..<n {
            var diag = l[j * n + j]
            for k in 0..<j { diag -= l[j * n + k] * l[j * n + k] }
            guard diag > 1e-300 else { throw SimulatorError.ridgeNotPositiveDefinite }
            let root = diag.squareRoot()
            l[j * n + j] = root
            l.withUnsafeMutableBufferPointer { p in
                let base = p.baseAddress!
                for i in (j + 1)..<max(j + 1, n) {
                    var s = base[i * n + j]
                    let ri = base + i * n, rj = base + j * n
                    for k in 0..<j { s -= ri[k] * rj[k] }
                    base[i * n + j] = s / root
                }
            }
        }
        var y = b
        for i in 0..<n {
            var s = y[i]
            for k in 0..<i { s -= l[i * n + k] * y[k] }
            y[i] = s / l[i * n + i]
        }
        var x = y
        for i in stride(from: n - 1, through: 0, by: -1) {
            var s = x[i]
            for k in (i + 1)..<max(i + 1, n) { s -= l[k * n + i] * x[k] }
            x[i] = s / l[i * n + i]
        }
        return x
    }
}

/// G += XᵀX for a block of rows (upper triangle, j ≥ i, of the row-major dim × dim G), in
/// register tiles of 4 rows of G × 32 columns over all of the block's rows.
public enum Gram {
    public static func accumulate(_ x: UnsafePointer<Float>, rows: Int, dim d: Int, into g: UnsafeMutablePointer<Float>) {
        var i0 = 0
        while i0 < d {
            let iw = min(4, d - i0)
            var j0 = (i0 / 32) * 32
            while j0 < d {
                if j0 + 32 <= d && iw == 4 {
                    var a0 = SIMD16<Float>(), a1 = SIMD16<Float>(), b0 = SIMD16<Float>(), b1 = SIMD16<Float>()
                    var c0 = SIMD16<Float>(), c1 = SIMD16<Float>(), e0 = SIMD16<Float>(), e1 = SIMD16<Float>()
                    for r in 0..<rows {
                        let row = x + r * d
                        let v0 = UnsafeRawPointer(row + j0).loadUnaligned(as: SIMD16<Float>.self)
                        let v1 = UnsafeRawPointer(row + j0 + 16).loadUnaligned(as: SIMD16<Float>.self)
                        let s0 = SIMD16<Float>(repeating: row[i0]), s1 = SIMD16<Float>(repeating: row[i0 + 1])
                        let s2 = SIMD16<Float>(repeating: row[i0 + 2]), s3 = SIMD16<Float>(repeating: row[i0 + 3])
                        a0.addProduct(s0, v0); a1.addProduct(s0, v1)
                        b0.addProduct(s1, v0); b1.addProduct(s1, v1)
                        c0.addProduct(s2, v0); c1.addProduct(s2, v1)
                        e0.addProduct(s3, v0); e1.addProduct(s3, v1)
                    }
                    func store(_ i: Int, _ lo: SIMD16<Float>, _ hi: SIMD16<Float>) {
                        for k in 0..<16 where j0 + k >= i { g[i * d + j0 + k] += lo[k] }
                        for k in 0..<16 where j0 + 16 + k >= i { g[i * d + j0 + 16 + k] += hi[k] }
                    }
                    store(i0, a0, a1); store(i0 + 1, b0, b1); store(i0 + 2, c0, c1); store(i0 + 3, e0, e1)
                } else {
                    for i in i0..<(i0 + iw) {
                        for j in max(j0, i)..<min(j0 + 32, d) {
                            var s: Float = 0
                            for r in 0..<rows { s += x[r * d + i] * x[r * d + j] }
                            g[i * d + j] += s
                        }
                    }
                }
                j0 += 32
            }
            i0 += iw
        }
    }

    /// The plain triple loop, for the test of `accumulate`.
    public static func accumulateReference(_ x: UnsafePointer<Float>, rows: Int, dim d: Int, into g: UnsafeMutablePointer<Float>) {
        for i in 0..<d {
            for j in i..<d {
                var s: Float = 0
                for r in 0..<rows { s += x[r * d + i] * x[r * d + j] }
                g[i * d + j] += s
            }
        }
    }
}
