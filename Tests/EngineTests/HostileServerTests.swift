import Foundation
import XCTest
@testable import Engine
import Storage

/// The OpenAI backend against hostile servers started by the test (a small Python socket server,
/// `hostileServer` below): one that never answers, one that drips a byte at a time, one whose
/// chunked body never ends, one whose backlog is full (connect hangs), a redirect to another
/// origin, and replies of garbage. Each must end by its deadline (short ones here), hold at most
/// the capped bytes, sleep while it waits, never send the API key elsewhere, and fail with one
/// line that quotes at most a short excerpt with control characters escaped.
final class HostileServerTests: XCTestCase {
    private var servers: [Process] = []
    private var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-hostile-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDown() {
        for p in servers where p.isRunning {
            p.terminate()
            p.waitUntilExit()
        }
        servers = []
        try? FileManager.default.removeItem(at: dir)
    }

    let short = HTTPLimits(connect: 1, firstByte: 1, whole: 2, maxReplyBytes: 1 << 20)

    // MARK: deadlines, cap, no busy waiting

    func testSilentServerEndsAtTheFirstByteDeadlineWhileSleeping() throws {
        let url = try start("silent")
        let (error, seconds, cpu) = failure { try OpenAISimulator.post(Data("{}".utf8), to: url, apiKey: nil, limits: short) }
        XCTAssertEqual(error, .serverTimedOut(url: OpenAISimulator.base(of: url), seconds: 1))
        XCTAssertGreaterThanOrEqual(seconds, 0.9)
        XCTAssertLessThan(seconds, 1.9, "the first-byte deadline is 1 s")
        XCTAssertLessThan(cpu, 0.2, "waiting must sleep, not spin (\(cpu) s of CPU in \(seconds) s)")
        print(String(format: "silent server: %@ after %.2f s, %.3f s CPU", "\(error!)", seconds, cpu))
    }

    /// The same over https (libcurl driven by CurlTLS): a server that never answers the TLS
    /// handshake. The wait sleeps as the http path's does (URLSession, used before, spun half a
    /// core to a whole one here: 1.96 s of CPU in a 4 s wait).
    func testSilentServerOverHTTPSEndsAtTheFirstByteDeadlineWhileSleeping() throws {
        // The first https request loads libcurl and OpenSSL (a few tens of ms of CPU): not waiting.
        _ = try? HTTPClient.post(URL(string: "https://127.0.0.1:1/")!, headers: [], body: Data(), limits: short)
        let plain = try start("silent")
        let url = URL(string: plain.absoluteString.replacingOccurrences(of: "http://", with: "https://"))!
        let (error, seconds, cpu) = failure { try OpenAISimulator.post(Data("{}".utf8), to: url, apiKey: nil, limits: short) }
        XCTAssertEqual(error, .serverTimedOut(url: OpenAISimulator.base(of: url), seconds: 1))
        XCTAssertGreaterThanOrEqual(seconds, 0.9)
        XCTAssertLessThan(seconds, 1.9, "the first-byte deadline is 1 s")
        XCTAssertLessThan(cpu, 0.1 * seconds, "waiting must sleep, not spin (\(cpu) s of CPU in \(seconds) s)")
        print(String(format: "silent server over https: %@ after %.2f s, %.3f s CPU", "\(error.map { "\($0)" } ?? "no error")", seconds, cpu))
    }

    /// A literal address is never handed to the resolver; a name is, and a resolver that does not
    /// answer ends at the connect deadline with one line, while this thread sleeps.
    func testNameResolutionHasTheConnectDeadline() throws {
        final class Calls: @unchecked Sendable { let lock = NSLock(); var hosts: [String] = [] }
        let calls = Calls()
        let stuck: HTTPClient.Resolver = { host, _ in
            calls.lock.withLock { calls.hosts.append(host) }
            Thread.sleep(forTimeInterval: 3)
            return nil
        }
        for host in ["127.0.0.1", "::1"] {
            let addresses = try HTTPClient.resolve(host: host, port: 80, deadline: HTTPClient.monotonicNow() + 1, seconds: 1, resolver: stuck)
            XCTAssertEqual(addresses.count, 1, host)
            XCTAssertEqual(Int32(addresses[0].family), host.contains(":") ? AF_INET6 : AF_INET, host)
        }
        let plain = try start("silent")
        XCTAssertThrowsError(try HTTPClient.post(plain, headers: [], body: Data(), limits: short, resolver: stuck)) {
            XCTAssertEqual($0 as? HTTPFailure, .noFirstByte(seconds: 1), "the numeric host reached the server without the resolver")
        }
        XCTAssertEqual(calls.lock.withLock { calls.hosts }, [], "a numeric host never asks the resolver")

        var limits = short
        limits.connect = 0.5
        let named = URL(string: "http://slow-resolver.invalid:\(plain.port!)/v1/completions")!
        let t0 = Date(), c0 = Self.cpuSeconds()
        XCTAssertThrowsError(try HTTPClient.post(named, headers: [], body: Data(), limits: limits, resolver: stuck)) {
            XCTAssertEqual($0 as? HTTPFailure, .resolveTimedOut(host: "slow-resolver.invalid", seconds: 0.5))
        }
        let seconds = Date().timeIntervalSince(t0), cpu = Self.cpuSeconds() - c0
        XCTAssertGreaterThanOrEqual(seconds, 0.45)
        XCTAssertLessThan(seconds, 1.5, "the connect deadline is 0.5 s; the resolver would take 3 s")
        XCTAssertLessThan(cpu, 0.1, "waiting for the resolver must sleep (\(cpu) s of CPU)")
        XCTAssertEqual(calls.lock.withLock { calls.hosts }, ["slow-resolver.invalid"])

        // A resolver that answers "no such host" at once, and the one line a user sees.
        XCTAssertThrowsError(try HTTPClient.post(named, headers: [], body: Data(), limits: limits, resolver: { _, _ in nil })) {
            XCTAssertEqual($0 as? HTTPFailure, .cannotResolve(host: "slow-resolver.invalid"))
        }
        let message = "\(SimulatorError.serverUnreachable(url: "http://slow-resolver.invalid", reason: "cannot resolve slow-resolver.invalid: no answer from the resolver within 0.5 s", port: 80))"
        assertOneEscapedLine(message, "resolve timed out")
        XCTAssertTrue(message.contains("cannot resolve slow-resolver.invalid"), message)
        print(String(format: "resolver stuck for 3 s: ended after %.2f s, %.3f s CPU", seconds, cpu))
    }

    func testDripEndsAtTheWholeReplyDeadline() throws {
        let url = try start("drip", "0.2")
        let (error, seconds, cpu) = failure { try OpenAISimulator.post(Data("{}".utf8), to: url, apiKey: nil, limits: short) }
        XCTAssertEqual(error, .serverTooSlow(url: OpenAISimulator.base(of: url), seconds: "2"))
        XCTAssertGreaterThanOrEqual(seconds, 1.9)
        XCTAssertLessThan(seconds, 2.9, "the whole-reply deadline is 2 s although a byte comes every 0.2 s")
        XCTAssertLessThan(cpu, 0.3, "\(cpu) s of CPU in \(seconds) s")
        print(String(format: "drip (1 byte / 0.2 s): %@ after %.2f s, %.3f s CPU", "\(error!)", seconds, cpu))
    }

    func testEndlessBodyStopsAtTheCap() throws {
        let url = try start("endless")
        var limits = short
        limits.whole = 20
        let (error, seconds, _) = failure { try OpenAISimulator.post(Data("{}".utf8), to: url, apiKey: nil, limits: limits) }
        XCTAssertEqual(error, .serverReplyTooLarge(url: OpenAISimulator.base(of: url), megabytes: 1))
        XCTAssertLessThan(seconds, 10)
        print(String(format: "endless chunked body, cap 1 MiB: %@ after %.2f s", "\(error!)", seconds))
    }

    func testEndlessBodyUnderTheCapStopsAtTheDeadline() throws {
        let url = try start("endless")
        var limits = short
        limits.maxReplyBytes = 1 << 40
        limits.whole = 1.5
        let (error, seconds, _) = failure { try OpenAISimulator.post(Data("{}".utf8), to: url, apiKey: nil, limits: limits) }
        // Memory: the reply grows until the deadline or the cap, whichever comes first; here the deadline.
        if case .serverReplyTooLarge = error {} else { XCTAssertEqual(error, .serverTooSlow(url: OpenAISimulator.base(of: url), seconds: "1.5")) }
        XCTAssertLessThan(seconds, 2.5)
        print(String(format: "endless chunked body, no cap: %@ after %.2f s", "\(error!)", seconds))
    }

    func testConnectHangingEndsAtTheConnectDeadline() throws {
        let url = try start("backlog")
        let (error, seconds, _) = failure { try OpenAISimulator.post(Data("{}".utf8), to: url, apiKey: nil, limits: short) }
        guard case .serverUnreachable(_, let reason, _)? = error else { return XCTFail("\(String(describing: error))") }
        XCTAssertEqual(reason, "no connection within 1 s")
        XCTAssertLessThan(seconds, 1.9)
        print(String(format: "full backlog (connect hangs): %@ after %.2f s", "\(error!)", seconds))
    }

    // MARK: redirects

    func testRedirectToAnotherOriginIsNotFollowedAndTheKeyStaysHome() throws {
        let record = dir.appendingPathComponent("requests.txt")
        let elsewhere = try start("recorder", record.path)
        let url = try start("redirect", elsewhere.absoluteString)
        let (error, _, _) = failure { try OpenAISimulator.post(Data("{}".utf8), to: url, apiKey: "sk-secret", limits: short) }
        XCTAssertNil(error, "a 3xx is a reply; checkStatus judges it")
        let reply = try OpenAISimulator.post(Data("{}".utf8), to: url, apiKey: "sk-secret", limits: short)
        XCTAssertEqual(reply.status, 307)
        XCTAssertThrowsError(try OpenAISimulator.checkStatus(reply, endpoint: url)) { e in
            XCTAssertTrue("\(e)".contains("redirected (HTTP 307) to \"\(elsewhere.absoluteString)\""), "\(e)")
            XCTAssertTrue("\(e)".contains("--simulator-url"), "\(e)")
        }
        Thread.sleep(forTimeInterval: 0.3)
        let seen = (try? String(contentsOf: record, encoding: .utf8)) ?? ""
        XCTAssertFalse(seen.contains("sk-secret"), "the key reached the redirect's target")
        XCTAssertEqual(seen, "", "nothing is sent to the other origin")
        // The recorder itself does answer, and gets the key when it is the endpoint: the check above can fail.
        _ = try OpenAISimulator.post(Data("{}".utf8), to: elsewhere, apiKey: "sk-secret", limits: short)
        Thread.sleep(forTimeInterval: 0.3)
        XCTAssertTrue(try String(contentsOf: record, encoding: .utf8).contains("Authorization: Bearer sk-secret"))
    }

    // MARK: garbage

    /// Each body is sent as a 200 reply; each must be rejected with a one-line error whose excerpt
    /// is short and escaped — and a good reply read right, so the checks can fail.
    func testGarbageRepliesAreRejectedWithShortEscapedErrors() throws {
        func completion(tokens: String, tokenLogprobs: String, top: String) -> String {
            #"{"choices":[{"text":"","logprobs":{"tokens":\#(tokens),"token_logprobs":\#(tokenLogprobs),"top_logprobs":\#(top)}}]}"#
        }
        let cases: [(name: String, body: [UInt8], expect: String)] = [
            ("HTML", Array("<html><head><title>502 Bad Gateway</title></head><body>\u{1B}[2J\u{1B}]0;pwned\u{07}<h1>502</h1>\(String(repeating: "<p>x</p>", count: 60))</body></html>".utf8), "not a completion"),
            ("NULs", [UInt8](repeating: 0, count: 500), "not a completion"),
            ("escapes", Array("\u{1B}]0;pwned\u{07}\u{1B}[2J\u{9B}31m".utf8) + Array(completion(tokens: #"["5"]"#, tokenLogprobs: "[-1]", top: #"[{"5":-1}]"#).utf8), "not a completion"),
            ("no digits", Array(completion(tokens: #"["a"]"#, tokenLogprobs: "[-0.1]", top: #"[{"a":-0.1,"b":-3}]"#).utf8), "no digit"),
            ("positive logprob", Array(completion(tokens: #"["5"]"#, tokenLogprobs: "[-0.1]", top: #"[{"5":2.5,"6":-1}]"#).utf8), "log probability of 2.5"),
            ("lists of different lengths", Array(completion(tokens: #"["5","6","7"]"#, tokenLogprobs: "[-0.1,-0.2]", top: #"[{"5":-1},null,null]"#).utf8), "differ in length"),
            ("top_logprobs not objects", Array(completion(tokens: #"["5"]"#, tokenLogprobs: "[-0.1]", top: #"[[["5",-1]]]"#).utf8), "not a completion"),
            ("choices not a list", Array(#"{"choices":{"0":{}}}"#.utf8), "not a completion"),
            ("no choices", Array(#"{"choices":[]}"#.utf8), "no choices"),
            ("empty logprobs", Array(completion(tokens: "[]", tokenLogprobs: "[]", top: "[]").utf8), "differ in length"),
        ]
        let good = completion(tokens: #"["5"]"#, tokenLogprobs: "[-0.69]", top: #"[{"5":-0.6931471805599453,"7":-0.6931471805599453,"x":-9}]"#)
        let replies = dir.appendingPathComponent("replies")
        try FileManager.default.createDirectory(at: replies, withIntermediateDirectories: true)
        for (i, body) in (cases.map(\.body) + [Array(good.utf8)]).enumerated() {
            try (Data("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: \(body.count)\r\n\r\n".utf8) + body)
                .write(to: replies.appendingPathComponent(String(i)))
        }
        let url = try start("replies", replies.path)
        let started = Date()
        for (name, _, expect) in cases {
            var message = ""
            do {
                let reply = try OpenAISimulator.post(Data("{}".utf8), to: url, apiKey: nil, limits: short)
                try OpenAISimulator.checkStatus(reply, endpoint: url)
                let lp = try OpenAISimulator.parseReply(reply.body, server: "s")
                let value = try OpenAISimulator.generatedReadout(lp, server: "s")
                XCTFail("\(name): read as \(value), a score from garbage")
            } catch {
                message = "\(error)"
            }
            XCTAssertTrue(message.contains(expect), "\(name): \(message)")
            assertOneEscapedLine(message, name)
        }
        // The good reply, last: two equally likely digits 5 and 7.
        let reply = try OpenAISimulator.post(Data("{}".utf8), to: url, apiKey: nil, limits: short)
        XCTAssertEqual(try OpenAISimulator.generatedReadout(OpenAISimulator.parseReply(reply.body, server: "s"), server: "s"), 6, accuracy: 1e-4)
        print(String(format: "garbage: %d replies rejected, 1 good reply read, in %.2f s", cases.count, Date().timeIntervalSince(started)))
    }

    func testErrorStatusQuotesAShortEscapedExcerpt() throws {
        let body = "<html>\u{1B}]0;pwned\u{07}\u{0}\u{0}" + String(repeating: "Internal Server Error ", count: 40) + "</html>"
        let replies = dir.appendingPathComponent("replies")
        try FileManager.default.createDirectory(at: replies, withIntermediateDirectories: true)
        try Data("HTTP/1.1 502 Bad Gateway\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)".utf8).write(to: replies.appendingPathComponent("0"))
        let url = try start("replies", replies.path)
        let reply = try OpenAISimulator.post(Data("{}".utf8), to: url, apiKey: nil, limits: short)
        XCTAssertThrowsError(try OpenAISimulator.checkStatus(reply, endpoint: url)) { error in
            let message = "\(error)"
            XCTAssertTrue(message.hasPrefix("\(url.absoluteString) answered HTTP 502: \"<html>\\u001b]0;pwned\\u0007"), message)
            assertOneEscapedLine(message, "502")
        }
    }

    /// Chunked bodies, split anywhere, decode the same; a broken size is an error.
    func testChunkedBodiesDecode() throws {
        let message = Array("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n1;ext=1\r\n \r\n5\r\nworld\r\n0\r\n\r\n".utf8)
        for cut in 0..<message.count {
            switch try HTTPMessage.parse(Array(message[0..<cut]), atEOF: false) {
            case .incomplete: break
            case .complete(let reply): XCTFail("complete at \(cut) of \(message.count): \(reply)")
            }
        }
        guard case .complete(let reply) = try HTTPMessage.parse(message, atEOF: false) else { return XCTFail("incomplete") }
        XCTAssertEqual(String(decoding: reply.body, as: UTF8.self), "hello world")
        XCTAssertThrowsError(try HTTPMessage.parse(Array("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".utf8), atEOF: false))
        XCTAssertThrowsError(try HTTPMessage.parse(Array("SSH-2.0-OpenSSH\r\n\r\n".utf8), atEOF: false))
    }

    /// The receive loop joins and parses a reply only when `mayBeComplete` says it may be whole;
    /// read in any pieces, a reply is whole exactly when its last byte arrives, and never before
    /// the end of the connection when nothing frames its body.
    func testReplyIsTestedForCompletenessWithoutJoiningIt() throws {
        let framed = [
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n1;ext=1\r\n \r\n5\r\nworld\r\n0\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 11\r\nContent-Type: text/plain\r\n\r\nhello world",
            "HTTP/1.1 200 OK\r\ncontent-length : 0\r\n\r\n",
        ]
        for (index, text) in (framed + ["HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nhello world"]).enumerated() {
            let message = Array(text.utf8)
            for pieceSize in [1, 3, 7, 64] {
                var reply = ReplyBytes()
                var cut = 0
                while cut < message.count {
                    let next = min(message.count, cut + pieceSize)
                    reply.append(message[cut..<next])
                    cut = next
                    XCTAssertEqual(reply.joined(), Array(message[0..<cut]))
                    XCTAssertEqual(reply.count, cut)
                    let may = HTTPMessage.mayBeComplete(head: reply.head, count: reply.count, tail: reply.tail)
                    if case .complete = try HTTPMessage.parse(reply.joined(), atEOF: false) { XCTAssertTrue(may, "message \(index), \(cut) bytes") }
                    XCTAssertEqual(may, index < framed.count && cut == message.count, "message \(index), \(cut) of \(message.count) bytes in pieces of \(pieceSize)")
                }
            }
        }
        // An unreadable head (a header line without a colon, no status line) sends the reply to
        // `parse`, which names the fault.
        for text in ["HTTP/1.1 200 OK\r\nno colon\r\n\r\n", "SSH-2.0-OpenSSH\r\n\r\n"] {
            var broken = ReplyBytes()
            broken.append(ArraySlice(text.utf8))
            XCTAssertTrue(HTTPMessage.mayBeComplete(head: broken.head, count: broken.count, tail: broken.tail), text)
            XCTAssertThrowsError(try HTTPMessage.parse(broken.joined(), atEOF: false))
        }
    }

    // MARK: helpers

    private func assertOneEscapedLine(_ message: String, _ name: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertFalse(message.unicodeScalars.contains { $0.value < 0x20 || ($0.value >= 0x7F && $0.value < 0xA0) },
                       "\(name): control characters in \(message.debugDescription)", file: file, line: line)
        XCTAssertLessThan(message.count, 400, "\(name): \(message.count) characters", file: file, line: line)
    }

    /// Runs `body`, returning its SimulatorError (nil if none), the seconds it took and the CPU
    /// seconds this process used meanwhile.
    private func failure(_ body: () throws -> HTTPReply) -> (SimulatorError?, Double, Double) {
        let t0 = Date(), c0 = Self.cpuSeconds()
        var error: SimulatorError?
        do { _ = try body() } catch let e as SimulatorError { error = e } catch { XCTFail("not a SimulatorError: \(error)") }
        return (error, Date().timeIntervalSince(t0), Self.cpuSeconds() - c0)
    }

    /// CPU seconds this process has used.
    static func cpuSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
    }

    /// Starts the hostile server in `mode` and returns its completions endpoint.
    private func start(_ mode: String, _ argument: String = "") throws -> URL {
        let script = dir.appendingPathComponent("hostile.py")
        try Self.hostileServer.write(to: script, atomically: true, encoding: .utf8)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", script.path, mode, argument]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        servers.append(p)
        let line = String(decoding: out.fileHandleForReading.availableData, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard let port = Int(line) else { throw XCTSkip("the test server did not start (python3 printed \(line.debugDescription))") }
        return URL(string: "http://127.0.0.1:\(port)/v1/completions")!
    }

    /// hostile.py MODE [ARG].
    static let hostileServer = #"""
import socket, sys, time, threading, os
# hostile.py MODE [ARG]: listens on 127.0.0.1 (a free port, printed on stdout), answers every
# connection the MODE's way. Recorder mode appends each request's head to ARG.
mode = sys.argv[1]
arg = sys.argv[2] if len(sys.argv) > 2 else ""
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 0))
if mode == "backlog":
    srv.listen(0)
    port = srv.getsockname()[1]
    fillers = []
    for _ in range(4):
        c = socket.socket(); c.setblocking(False)
        try: c.connect(("127.0.0.1", port))
        except BlockingIOError: pass
        fillers.append(c)
    print(port, flush=True); time.sleep(600); sys.exit(0)
srv.listen(16)
print(srv.getsockname()[1], flush=True)

def read_request(c):
    data = b""
    while b"\r\n\r\n" not in data:
        d = c.recv(65536)
        if not d: return data
        data += d
    head, _, rest = data.partition(b"\r\n\r\n")
    n = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"): n = int(line.split(b":")[1])
    while len(rest) < n:
        d = c.recv(65536)
        if not d: break
        rest += d
    return head

def serve(c, i):
    try:
        head = read_request(c)
        if mode == "silent":
            time.sleep(600)
        elif mode == "drip":
            for b in b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 100000:
                c.sendall(bytes([b])); time.sleep(float(arg))
        elif mode == "endless":
            c.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            chunk = b"4000\r\n" + b"{" * 0x4000 + b"\r\n"
            while True: c.sendall(chunk)
        elif mode == "redirect":
            c.sendall(b"HTTP/1.1 307 Temporary Redirect\r\nLocation: " + arg.encode() + b"\r\nContent-Length: 0\r\n\r\n")
        elif mode == "recorder":
            with open(arg, "ab") as f: f.write(head + b"\n\n")
            body = b'{"choices":[{"logprobs":{"tokens":["5"],"token_logprobs":[-0.1],"top_logprobs":[{"5":-0.1}]}}]}'
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        elif mode == "replies":
            # ARG: a directory of files 0, 1, 2 …: the i-th connection gets file i as the whole reply.
            names = sorted(os.listdir(arg), key=int)
            with open(os.path.join(arg, names[i % len(names)]), "rb") as f: c.sendall(f.read())
        c.shutdown(socket.SHUT_WR)
        time.sleep(0.2)
    except OSError:
        pass
    finally:
        c.close()

i = 0
while True:
    c, _ = srv.accept()
    threading.Thread(target=serve, args=(c, i), daemon=True).start()
    i += 1
"""#
}
