// The instruction set the C compiler targets for the module that imports this header: Swift's
// code generation takes its target CPU from the same clang options (-Xcc -march=...), so Swift
// reads here what its own SIMD code compiles to. Header only: nothing is linked.
#ifndef LOUPE_TARGET_ISA_H
#define LOUPE_TARGET_ISA_H

#if defined(__AVX512F__)
#define LOUPE_TARGET_ISA 3
#elif defined(__AVX2__) && defined(__FMA__)
#define LOUPE_TARGET_ISA 2
#elif defined(__ARM_NEON) || defined(__ARM_NEON__)
#define LOUPE_TARGET_ISA 1
#else
#define LOUPE_TARGET_ISA 0
#endif

// Whether the target has fused multiply-add instructions: without them a fused multiply-add
// (Swift's addingProduct) becomes a libm fmaf call per lane, so kernels multiply, then add.
#if defined(__FMA__) || defined(__ARM_FEATURE_FMA) || defined(__aarch64__)
#define LOUPE_TARGET_FMA 1
#else
#define LOUPE_TARGET_FMA 0
#endif

#endif
