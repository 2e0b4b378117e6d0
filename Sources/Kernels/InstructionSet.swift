import CTargetISA

/// The SIMD instruction set this build of the kernels was compiled for (`-march` in Package.swift,
/// the build machine's CPU by default), which decides their register tiles.
public enum InstructionSet: String, Sendable {
    /// AVX-512: 32 registers of 512 bits.
    case avx512
    /// AVX2 with FMA: 16 registers of 256 bits.
    case avx2
    /// Arm NEON: 32 registers of 128 bits.
    case neon
    /// Anything else (baseline x86-64 is SSE2: 16 registers of 128 bits).
    case portable

    /// What the compiler targeted, read from the C preprocessor's view of the same target options.
    /// (`LOUPE_TARGET_ISA` indexes this table: 0 portable, 1 NEON, 2 AVX2 + FMA, 3 AVX-512.)
    public static let compiled: InstructionSet = [.portable, .neon, .avx2, .avx512][Int(LOUPE_TARGET_ISA)]

    /// A one-line description for benchmarks: the instruction set and the GEMM tile it uses.
    public static var summary: String {
        "\(compiled.rawValue) (GEMM tile \(GemmKernel.native.rawValue))"
    }
}

/// c + a·b lane-wise: fused where the target has FMA instructions, else a multiply then an add
/// (a fused multiply-add without them is a libm call per lane, ~100× slower). The condition is a
/// compile-time constant of the C header, so the branch folds away.
@inline(__always) func madd<S: SIMD>(_ c: S, _ a: S, _ b: S) -> S where S.Scalar: FloatingPoint {
    LOUPE_TARGET_FMA != 0 ? c.addingProduct(a, b) : c + a * b
}
