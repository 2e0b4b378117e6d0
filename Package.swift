// swift-tools-version:6.0
import Foundation
import PackageDescription

// Kernels are compiled for the CPU that builds them (`-march=native`: AVX-512, AVX2 + FMA or NEON,
// and the GEMM tile that fits its registers, see Kernels/InstructionSet.swift); without a target
// CPU, SIMD fused multiply-adds become libm calls. LOUPE_MARCH=x86-64 (or any -march value) builds
// for another CPU, e.g. the portable path on baseline x86-64.
let march = ProcessInfo.processInfo.environment["LOUPE_MARCH"] ?? "native"
// Every target builds with the release default -O: bounds, overflow and precondition checks stay
// in the shipped binary, so a size a reader's check missed traps instead of writing past a buffer.
// Kernels included: with -Ounchecked (and unchecked exclusivity) `loupe bench forward --tokens 256`
// was no faster (576 vs 590 tokens/s, medians of three alternated runs on an idle 2-core AMD EPYC, AVX2).
let native: [SwiftSetting] = [.unsafeFlags(["-Xcc", "-march=\(march)"])]

let package = Package(
    name: "Loupe",
    products: [.executable(name: "loupe", targets: ["loupe"])],
    targets: [
        // ncurses shim → terminal layer (the only code that calls ncurses).
        .systemLibrary(name: "CNcursesw", path: "Sources/CNcursesw",
                       providers: [.apt(["libncurses-dev"])]),
        .target(name: "Terminal", dependencies: ["CNcursesw"]),
        // kernels → formats → tokenizer / model → command line.
        // CTargetISA: a header only (nothing linked) that tells Kernels which instruction set it targets.
        .systemLibrary(name: "CTargetISA", path: "Sources/CTargetISA"),
        .target(name: "Kernels", dependencies: ["CTargetISA"], swiftSettings: native),
        .target(name: "Formats", swiftSettings: native),
        .target(name: "Tokenizer", dependencies: ["Formats"]),
        .target(name: "Model", dependencies: ["Kernels", "Formats", "Tokenizer"], swiftSettings: native),
        .target(name: "Transcoder", dependencies: ["Kernels", "Formats"], swiftSettings: native),
        // Storage: a workspace's files, read and written without a model (paths, corpus, activation
        // shards, latent cache and index, held-out index, explanation and score logs, rewrite report).
        .target(name: "Storage", dependencies: ["Kernels", "Formats", "Tokenizer"]),
        // EngineAPI: what the explorer may ask of the engine and hear back (EngineClient, requests,
        // events and their values); no model, so the explorer builds and tests without one.
        .target(name: "EngineAPI", dependencies: ["Storage"]),
        // Engine: the stages in data-flow order, one folder each (Build → Explain, Simulate → Score →
        // Rewrite, Analyze for the lab) and Service, the EngineService that owns what is opened and
        // runs every job for the CLI and the explorer. Folders, not targets: the stages call each
        // other both ways (the explainer search simulates and scores, scoring's lexical control is
        // an explainer, the rewrite simulates), so per-stage targets would only make their shared
        // helpers public.
        .target(name: "Engine", dependencies: ["Storage", "EngineAPI", "Model", "Transcoder", "Formats", "Tokenizer", "Kernels"],
                swiftSettings: native),
        // explorer: screens, key bindings, run loop; it sees the engine only through EngineAPI.
        .target(name: "Explorer", dependencies: ["Terminal", "EngineAPI", "Storage"]),
        .target(name: "LoupeCLI", dependencies: ["Engine", "EngineAPI", "Storage", "Model", "Transcoder", "Formats", "Tokenizer", "Kernels",
                                                 "Terminal", "Explorer"]),
        .executableTarget(name: "loupe", dependencies: ["LoupeCLI"]),
        // Test-only: the tiny models, toy vocabulary, fixture corpus and seeded RNG the test targets share.
        .target(name: "LoupeTestSupport", dependencies: ["Model", "Formats", "Kernels"], path: "Tests/LoupeTestSupport"),
        // Test-only: saves explanations in a loop until killed, for ExplanationStoreTests' crash test.
        .executableTarget(name: "loupe-save-loop", dependencies: ["Storage"], path: "Tests/SaveLoop"),
        // Test-only: every reader of outside input as a harness (FuzzReaders), driven by libFuzzer
        // (loupe-fuzz built with -sanitize=fuzzer, Tests/Scripts/fuzz/run.sh) and by FuzzTests'
        // deterministic mutations; built normally, loupe-fuzz replays files through a harness.
        .target(name: "FuzzReaders", dependencies: ["Formats", "Tokenizer", "Model", "Transcoder", "Storage", "Engine"], path: "Tests/FuzzReaders"),
        .executableTarget(name: "loupe-fuzz", dependencies: ["FuzzReaders"], path: "Tests/Fuzz", exclude: ["Seeds", "Regressions"]),
        .testTarget(name: "FuzzTests", dependencies: ["FuzzReaders", "Formats", "Model", "Tokenizer", "Transcoder", "Storage", "LoupeTestSupport", "loupe-fuzz"]),
        .testTarget(name: "KernelsTests", dependencies: ["Kernels", "LoupeTestSupport"], swiftSettings: native),
        .testTarget(name: "FormatsTests", dependencies: ["Formats"]),
        .testTarget(name: "TokenizerTests", dependencies: ["Tokenizer", "Formats", "LoupeTestSupport"],
                    resources: [.copy("Golden")]),
        .testTarget(name: "TranscoderTests", dependencies: ["Transcoder", "Kernels", "Formats", "LoupeTestSupport"],
                    resources: [.copy("Fixtures")], swiftSettings: native),
        // A workspace written before the Storage → EngineAPI → Engine restructuring (47801cc), read with Storage alone.
        .testTarget(name: "StorageTests", dependencies: ["Storage"], resources: [.copy("Fixtures")]),
        .testTarget(name: "EngineTests", dependencies: ["Engine", "EngineAPI", "Storage", "Tokenizer", "LoupeTestSupport", "loupe-save-loop"],
                    exclude: ["Fixtures"]),
        .testTarget(name: "TerminalTests", dependencies: ["Terminal"]),
        .testTarget(name: "ExplorerTests", dependencies: ["Explorer", "Terminal", "Engine", "EngineAPI", "Storage", "Formats", "LoupeTestSupport"],
                    exclude: ["Snapshots"]),
        .testTarget(name: "ModelTests", dependencies: ["Model", "Formats", "Tokenizer", "LoupeTestSupport"],
                    resources: [.copy("Golden")]),
        .testTarget(name: "LoupeCLITests", dependencies: ["LoupeCLI", "Terminal", "LoupeTestSupport"]),
    ]
)
