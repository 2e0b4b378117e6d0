import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import XCTest
@testable import Engine
@testable import Storage

/// The OpenAI-compatible backend: its readout rules on hand-made replies, its error when no server
/// answers, and — against a real server, llama-cpp-python's `llama_cpp.server` on the same GGUF,
/// started here when the package is installed — agreement with Loupe's own simulator in both modes.
///
/// The interpreter is `$LOUPE_LLAMA_PYTHON`, else ~/.cache/loupe/llamacpp-venv/bin/python or
/// /work/llamacpp/bin/python if one exists, else
/// python3; the real-server test is skipped (saying why) unless `import llama_cpp.server` works there.
/// `.ci/run` installs it (`.ci/install-llama-cpp-python`: a venv under ~/.cache/loupe, the built
/// wheel cached beside it; pip builds llama.cpp from source, about 6 minutes) and sets the variable.
final class OpenAISimulatorTests: XCTestCase {
    var server: Process?
    var serverLog: URL?

    override func tearDown() {
        if let server, server.isRunning {
            server.terminate()
            server.waitUntilExit()
        }
        server = nil
        if let serverLog { try? FileManager.default.removeItem(at: serverLog) }
    }

    // MARK: readouts, no server

    typealias Logprobs = OpenAISimulator.Logprobs

    func testExpectedDigitRenormalisesOverTheDigitsPresent() {
        XCTAssertEqual(try XCTUnwrap(OpenAISimulator.expectedDigit(["3": log(0.25), "7": log(0.25), " the": log(0.5)])), 5, accuracy: 1e-6)
        XCTAssertEqual(try XCTUnwrap(OpenAISimulator.expectedDigit(["9": 0, "x": -1])), 9, accuracy: 1e-6)
        XCTAssertNil(OpenAISimulator.expectedDigit(["x": 0]), "no digit: no value (an error upstream), never a 0")
    }

    func testLogprobLimitIsReadFromTheRefusal() {
        XCTAssertEqual(OpenAISimulator.allowedLogprobs("{\"message\": \"Requested sample logprobs of 100, which is greater than max allowed: 20\"}"), 20)
        XCTAssertEqual(OpenAISimulator.allowedLogprobs("logprobs: maximum 8"), 8)
        XCTAssertEqual(OpenAISimulator.allowedLogprobs("logprobs too large"), 20)
    }

    /// A reply echoing `prefix a\t? b\t?` (an example row in the prefix, two rows): the digits are read
    /// at the tokens after the last two tabs, and one position earlier if the server's alternatives
    /// describe the token after each position.
    func testEchoReadoutsFollowTheRowsTabsInEitherAlignment() throws {
        let tokens = ["Ex", "\t", "4", "\n", "a", "\t", "unknown", "\n", "b", "\t", "unknown", "\n"]
        // OpenAI's meaning: alternatives at i predict token i; each prompt token is the likeliest.
        var top: [[String: Double]?] = tokens.map { [$0: -0.1, "zz": -5] }
        top[0] = nil
        top[6] = ["2": log(0.5), "4": log(0.5), "unknown": -3]
        top[10] = ["8": 0, "unknown": -4]
        let lp = Logprobs(tokens: tokens, tokenLogprobs: [nil] + Array(repeating: -0.1, count: tokens.count - 1), topLogprobs: top)
        XCTAssertFalse(OpenAISimulator.isShifted(lp))
        XCTAssertEqual(try OpenAISimulator.echoReadouts(lp, rows: 2, tailTabs: 0, server: "test"), [3, 8])
        // The same reply shifted by one, as llama-cpp-python gives when the prompt lacks a leading BOS.
        var shiftedTop = Array(top.dropFirst()) + [["zz": -1]]
        shiftedTop[0] = nil
        let own = tokens.indices.map { i -> Double? in i == 0 ? nil : shiftedTop[i]?[tokens[i]] ?? -9 }
        let shifted = Logprobs(tokens: tokens, tokenLogprobs: own, topLogprobs: shiftedTop)
        XCTAssertTrue(OpenAISimulator.isShifted(shifted))
        XCTAssertEqual(try OpenAISimulator.echoReadouts(shifted, rows: 2, tailTabs: 0, server: "test"), [3, 8])
        // A tokenizer that joins the tab to the next text cannot be read.
        var joined = lp
        joined.tokens[9] = "\tunknown"
        XCTAssertThrowsError(try OpenAISimulator.echoReadouts(joined, rows: 2, tailTabs: 0, server: "test")) { error in
            XCTAssertTrue("\(error)".contains("--mode last"), "\(error)")
        }
    }

    func testUnreachableServerSaysHowToStartOne() throws {
        guard FileManager.default.fileExists(atPath: ModelFetch.defaultPath.path) else { throw XCTSkip("no model at \(ModelFetch.defaultPath.path)") }
        let session = try Session(modelPath: ModelFetch.defaultPath.path)
        let port = try Self.freePort()
        let sim = try OpenAISimulator(url: "http://127.0.0.1:\(port)/v1/", model: "m", tokenizer: session.tokenizer, chat: session.chat)
        XCTAssertEqual(sim.endpoint.absoluteString, "http://127.0.0.1:\(port)/v1/completions")
        let context = SimulationContext(tokens: [1], texts: ["x"])
        XCTAssertThrowsError(try sim.simulate(explanation: "e", contexts: [context], mode: .allAtOnce, shouldStop: { false })) { error in
            XCTAssertTrue("\(error)".hasPrefix("cannot reach http://127.0.0.1:\(port)/"), "\(error)")
            XCTAssertTrue("\(error)".contains("llama_cpp.server"), "\(error)")
        }
        XCTAssertThrowsError(try OpenAISimulator(url: "ftp://x", model: "m", tokenizer: session.tokenizer, chat: session.chat))
    }

    // MARK: a real server

    func testRealServerAgreesWithTheLocalSimulator() throws {
        let model = ModelFetch.defaultPath.path
        guard FileManager.default.fileExists(atPath: model) else { throw XCTSkip("no model at \(model)") }
        let python = try Self.llamaPython()
        let port = try Self.freePort()
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-llama-server-\(UUID().uuidString).log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        serverLog = log
        let p = Process()
        p.executableURL = URL(fileURLWithPath: python)
        p.arguments = ["-m", "llama_cpp.server", "--model", model, "--logits_all", "true", "--host", "127.0.0.1", "--port", String(port),
                       "--n_ctx", "2048", "--model_alias", "SmolLM2-135M-Instruct"]
        let handle = try FileHandle(forWritingTo: log)
        p.standardOutput = handle
        p.standardError = handle
        try p.run()
        server = p
        let started = Date()
        try Self.waitForServer(port: port, process: p, log: log)
        print(String(format: "llama-cpp-python server (%@) up on port %d in %.1f s", python, port, Date().timeIntervalSince(started)))

        let session = try Session(modelPath: model)
        let local = try LocalSimulator(session: session)
        let remote = try OpenAISimulator(url: "http://127.0.0.1:\(port)", model: "SmolLM2-135M-Instruct", tokenizer: session.tokenizer, chat: session.chat)
        // llama-cpp-python's server sorts the vocabulary in Python for every echoed token: slow, more so on a busy machine.
        remote.limits = HTTPLimits(connect: 10, firstByte: 900, whole: 900)
        let contexts = ["The dog barked at the mailman while the cat slept.", "Mr. Speaker, the state of our Union is strong."].map { text in
            let ids = session.tokenizer.encode(text, parseSpecial: false)
            return SimulationContext(tokens: ids, texts: ids.map { String(decoding: session.tokenizer.tokenBytes($0), as: UTF8.self) })
        }
        let explanation = "animals, especially dogs and cats"
        for mode in SimulationMode.allCases {
            let t0 = Date()
            let theirs = try remote.simulate(explanation: explanation, contexts: contexts, mode: mode, shouldStop: { false })
            let t1 = Date()
            let ours = try local.simulate(explanation: explanation, contexts: contexts, mode: mode, shouldStop: { false })
            let t2 = Date()
            XCTAssertEqual(theirs.map(\.count), contexts.map(\.tokens.count), "\(mode): one value per token")
            XCTAssertEqual(theirs.map(\.count), ours.map(\.count))
            let a = theirs.flatMap { $0 }, b = ours.flatMap { $0 }
            XCTAssertTrue(a.allSatisfy { $0 >= 0 && $0 <= 9 }, "\(mode): \(a)")
            let r = try XCTUnwrap(Detection.pearson(a, b), "\(mode): the local simulator is constant")
            let worst = zip(a, b).map { abs($0 - $1) }.max()!
            let mean = zip(a, b).map { abs($0 - $1) }.reduce(0, +) / Float(a.count)
            // Same GGUF, same tokens (checked by hand: llama.cpp's own logits give the server's values);
            // what differs is the arithmetic (llama.cpp multiplies Q4_1 weights by activations quantized
            // to Q8_1), worth up to ~0.3 digit where the digit distribution is flat.
            XCTAssertLessThan(mean, 0.25, "\(mode)")
            XCTAssertLessThan(worst, 1, "\(mode)")
            let centre = b.reduce(0, +) / Float(b.count)
            let spread = (b.map { ($0 - centre) * ($0 - centre) }.reduce(0, +) / Float(b.count)).squareRoot()
            print(String(format: "real server vs LocalSimulator, %@ (%d tokens): pearson %.4f (local spread %.2f), max |difference| %.3f, mean %.3f digits; server %.2f s, local %.2f s",
                         mode.rawValue, a.count, r, spread, worst, mean, t1.timeIntervalSince(t0), t2.timeIntervalSince(t1)))
            print("  server: " + a.map { String(format: "%.2f", $0) }.joined(separator: " "))
            print("  local:  " + b.map { String(format: "%.2f", $0) }.joined(separator: " "))
            // A correlation says something only where the values vary.
            // Where the digits vary, the two engines must agree; last-token digits sit in a narrow band where
            // llama.cpp's and Loupe's arithmetic differ by a visible share, so its bar is lower.
            if spread > 0.5 { XCTAssertGreaterThan(r, mode == .allAtOnce ? 0.9 : 0.6, "\(mode): the same GGUF should simulate alike") }
        }
    }

    // MARK: helpers

    /// An interpreter that can `import llama_cpp.server`, or a skip saying why not.
    static func llamaPython() throws -> String {
        let env = ProcessInfo.processInfo.environment
        let cache = env["XDG_CACHE_HOME"] ?? (NSHomeDirectory() + "/.cache")
        let candidates = [cache + "/loupe/llamacpp-venv/bin/python", "/work/llamacpp/bin/python"]
        let python = env["LOUPE_LLAMA_PYTHON"] ?? candidates.first { FileManager.default.isExecutableFile(atPath: $0) } ?? "/usr/bin/python3"
        guard FileManager.default.isExecutableFile(atPath: python) else { throw XCTSkip("no Python at \(python) (set LOUPE_LLAMA_PYTHON)") }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: python)
        p.arguments = ["-c", "import llama_cpp.server"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            throw XCTSkip("llama-cpp-python's server is not installed for \(python) (run .ci/install-llama-cpp-python, or set LOUPE_LLAMA_PYTHON)")
        }
        return python
    }

    /// A TCP port nothing listens on now.
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ServerSetupError("socket() failed") }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &addr) { ptr in
            ptr.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
        }
        guard bound else { throw ServerSetupError("cannot bind a free port") }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    /// The HTTP status of a GET (nil when nothing answers).
    static func get(_ url: URL) -> Int? {
        let status = Status()
        let done = DispatchSemaphore(value: 0)
        URLSession.shared.dataTask(with: URLRequest(url: url, timeoutInterval: 2)) { _, response, _ in
            status.set((response as? HTTPURLResponse)?.statusCode)
            done.signal()
        }.resume()
        done.wait()
        return status.get()
    }

    /// Polls GET /v1/models until the server answers (60 s at most); fails with its log if it exits.
    static func waitForServer(port: Int, process: Process, log: URL) throws {
        let url = URL(string: "http://127.0.0.1:\(port)/v1/models")!
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            guard process.isRunning else {
                throw ServerSetupError("the llama-cpp-python server exited: \(String(decoding: (try? Data(contentsOf: log)) ?? Data(), as: UTF8.self).suffix(2000))")
            }
            if get(url) == 200 { return }
            Thread.sleep(forTimeInterval: 0.25)
        }
        throw ServerSetupError("the llama-cpp-python server did not answer on port \(port) within 60 s")
    }
}

private final class Status: @unchecked Sendable {
    private let lock = NSLock()
    private var code: Int?
    func set(_ c: Int?) { lock.withLock { code = c } }
    func get() -> Int? { lock.withLock { code } }
}

/// Why the test could not set up its llama-cpp-python server.
private struct ServerSetupError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
