/// Weights W[n][k] re-laid out once at load for the GEMM micro-kernel: panels of `PackedMatrix.nr`
/// output rows, k-major inside a panel (panel p, input kk holds W[p·nr + j][kk] for j in 0..<nr),
/// zero-padded past the last row. Immutable after packing.
public final class PackedMatrix: @unchecked Sendable {
    /// Output columns of the panels (the micro-kernel's NR).
    public static let nr = 48
    /// n, the number of outputs.
    public let rows: Int
    /// k, the number of inputs.
    public let cols: Int
    /// Number of panels, ⌈rows / nr⌉.
    public let panels: Int
    let storage: FloatBuffer

    /// Packs a row-major W[rows][cols].
    public init(rowMajor w: UnsafePointer<Float>, rows: Int, cols: Int) {
        precondition(rows >= 0 && cols >= 0, "PackedMatrix dimensions must be non-negative")
        let nr = PackedMatrix.nr
        self.rows = rows
        self.cols = cols
        panels = (rows + nr - 1) / nr
        storage = FloatBuffer(count: panels * cols * nr)
        let dst = storage.pointer
        let k = cols
        Parallel.forEach(panels) { p in
            let d = dst + p * k * nr
            for j in 0..<min(nr, rows - p * nr) {
                let src = w + (p * nr + j) * k
                for kk in 0..<k { d[kk * nr + j] = src[kk] }
            }
        }
    }

    /// Start of panel p (k × nr floats).
    @inline(__always) func panel(_ p: Int) -> UnsafePointer<Float> {
        UnsafePointer(storage.pointer + p * cols * PackedMatrix.nr)
    }

    /// Copies row r (length cols) of the original matrix into `out`.
    public func copyRow(_ r: Int, into out: UnsafeMutablePointer<Float>) {
        precondition(r >= 0 && r < rows, "row out of range")
        let nr = PackedMatrix.nr
        let src = panel(r / nr) + r % nr
        for kk in 0..<cols { out[kk] = src[kk * nr] }
    }
}
