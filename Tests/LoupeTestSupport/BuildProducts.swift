import Foundation

/// The folder `swift build` puts its products in: the `loupe` binary, the test-only executables
/// and the test bundle.
public enum BuildProducts {
    /// On macOS the class's bundle is the .xctest bundle inside that folder; on Linux it is the folder itself.
    public static var folder: URL {
        let bundle = Bundle(for: Anchor.self).bundleURL
        return bundle.pathExtension == "xctest" ? bundle.deletingLastPathComponent() : bundle
    }

    private final class Anchor {}

    /// An executable built beside the tests, e.g. `loupe`.
    public static func executable(_ name: String) -> URL { folder.appendingPathComponent(name) }
}

/// The `loupe` binary beside the tests, run as a user runs it.
public enum LoupeBinary {
    public struct Result: Sendable {
        public let status: Int32
        public let stdout: String
        public let stderr: String
    }

    /// Whether the binary is there (tests skip without it).
    public static var exists: Bool { FileManager.default.isExecutableFile(atPath: BuildProducts.executable("loupe").path) }

    /// Runs `loupe args…` to the end; `environment` is added to this process's.
    public static func run(_ args: [String], environment: [String: String] = [:]) throws -> Result {
        let p = Process()
        p.executableURL = BuildProducts.executable("loupe")
        p.arguments = args
        if !environment.isEmpty { p.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new } }
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return Result(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
    }
}
