import Foundation

/// A small workspace made as a user makes one, in `directory`: a tiny model (`tiny.gguf`: the
/// byte-level vocabulary, a context of 1024 for the explainer's prompts), the fixture corpus and
/// `loupe build` into `workspace`.
public struct TinyWorkspace {
    public let directory: URL
    public var model: String { directory.appendingPathComponent("tiny.gguf").path }
    public var corpus: String { directory.appendingPathComponent("corpus.txt").path }
    public var workspace: String { directory.appendingPathComponent("workspace").path }

    public init(directory: URL) { self.directory = directory }

    /// Public-domain prose (the Gettysburg Address and the Preamble), `copies` times, numbered so windows differ.
    public static func writeCorpus(to path: String, copies: Int) throws {
        let text = """
        Four score and seven years ago our fathers brought forth on this continent, a new nation, conceived in Liberty, \
        and dedicated to the proposition that all men are created equal. Now we are engaged in a great civil war, testing \
        whether that nation, or any nation so conceived and so dedicated, can long endure. We are met on a great battle-field \
        of that war. We have come to dedicate a portion of that field, as a final resting place for those who here gave their \
        lives that that nation might live. It is altogether fitting and proper that we should do this.
        We the People of the United States, in Order to form a more perfect Union, establish Justice, insure domestic \
        Tranquility, provide for the common defence, promote the general Welfare, and secure the Blessings of Liberty to \
        ourselves and our Posterity, do ordain and establish this Constitution for the United States of America.
        """
        try (1...copies).map { "Copy \($0).\n" + text }.joined(separator: "\n\n").write(toFile: path, atomically: true, encoding: .utf8)
    }

    public struct BuildFailed: Error, CustomStringConvertible { public let description: String }

    /// Writes the model and 12 copies of the corpus, then runs `loupe build` with `arguments`, its output in `build.log`.
    public func build(arguments: [String]) throws {
        try TinyLlama(ffnDim: 128, contextLength: 1024, vocabulary: .bytes, seed: 7).write(to: model)
        try Self.writeCorpus(to: corpus, copies: 12)
        let log = directory.appendingPathComponent("build.log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        defer { try? handle.close() }
        let p = Process()
        p.executableURL = BuildProducts.executable("loupe")
        // --no-simulator: a workspace as the build leaves it before explanations, which the tests write themselves.
        p.arguments = ["build", "--workspace", workspace, "--model", model, "--corpus", corpus, "--no-simulator"] + arguments
        p.standardInput = FileHandle.nullDevice
        p.standardOutput = handle
        p.standardError = handle
        try p.run()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            let output = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
            throw BuildFailed(description: "loupe build exited with status \(p.terminationStatus):\n\(output)")
        }
    }
}
