import Foundation

/// The real model (SmolLM2-135M-Instruct in data/models), as `loupe fetch` finds it: fetched on first use.
public enum RealModel {
    public struct Unavailable: Error, CustomStringConvertible { public let description: String }

    /// The GGUF's path, from `loupe fetch --json` run beside the tests (once a test run).
    public static func path() throws -> String { try fetched.get() }

    private static let fetched = Result { try fetch() }

    private static func fetch() throws -> String {
        let loupe = BuildProducts.executable("loupe")
        guard FileManager.default.isExecutableFile(atPath: loupe.path) else { throw Unavailable(description: "no loupe binary at \(loupe.path)") }
        let p = Process(), out = Pipe()
        p.executableURL = loupe
        p.arguments = ["fetch", "--json"]
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0, let json = try JSONSerialization.jsonObject(with: data) as? [String: Any],
              let path = json["path"] as? String else {
            throw Unavailable(description: "loupe fetch exited with status \(p.terminationStatus): \(String(decoding: data, as: UTF8.self))")
        }
        return path
    }
}
