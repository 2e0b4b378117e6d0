import Foundation
import Storage

import Tokenizer

/// A simulator backend on a server speaking the OpenAI completions API with logprobs (vLLM,
/// llama.cpp's `llama-server`, llama-cpp-python's `llama_cpp.server`), for a user who has a
/// larger model on a cluster. It sends the same prompt texts as `LocalSimulator` (`SimulatorPrompt`,
/// written with Loupe's chat template) and reads the digit distribution at the same places:
///
/// - All at once: one request per context, `POST {base}/v1/completions` with the whole prompt,
///   `echo: true`, `logprobs: N`, `max_tokens: 1`, `temperature: 0`. With echo, the server returns
///   every prompt token as it tokenized it, with the top-N alternatives at that position. The
///   server tokenizes the text its own way, so readouts are found in its tokens, not ours: a row's
///   digit is read where the token after the row's tab is predicted (rows counted from the end, as
///   the prefix's example rows hold tabs too). Not by `text_offset`: llama-cpp-python counts it in
///   text with special tokens left out (and from after a leading BOS), so it does not index the
///   prompt string. Which position a server's alternatives belong to is checked on each reply
///   (`isShifted`). The server must keep prompt logits (llama-cpp-python: `--logits_all true`).
/// - Last token: one request per (context, position), the prompt ending at the marked token plus
///   the template's tail, `max_tokens: 1`, `logprobs: N`: the first generated token's alternatives.
///
/// The expected digit is Σ d·p(d) / Σ p(d) over the digit tokens "0"…"9" among the top-N (digits
/// outside the top N count as probability 0; a position with no digit among them is an error), as the
/// local backend renormalises over the ten digits. Requests run `concurrency` at a time; a failed
/// request is an error, never retried. Each request runs under `limits` (deadlines for connecting,
/// the first byte and the whole reply, and a size cap; `HTTPClient`), redirects are not followed
/// (the API key goes only where the user pointed), and a reply is checked before any value is read
/// from it (`parseReply`: shapes, log probabilities ≤ 0; a readout without a digit is an error).
public final class OpenAISimulator: SimulatorBackend, @unchecked Sendable {
    /// `{base}/v1/completions`.
    public let endpoint: URL
    public let model: String
    /// "<model> at <base url>".
    public let name: String
    public let tokenizer: BPETokenizer
    public let chat: ChatTemplate?
    public let promptDirectory: URL
    /// Alternatives asked per position. Digits outside them are lost, and after an all-at-once
    /// row's tab they can be far down (the rows' placeholder competes), so 100 are asked; a server
    /// that allows fewer (vLLM: 20 unless started with --max-logprobs) says so in a 400 reply, and
    /// the limit it names (else 20) is used from then on — one retry, once.
    public private(set) var topLogprobs = 100
    /// Deadlines and the reply cap of each request (tests shorten them).
    public var limits = HTTPLimits()
    public var concurrency = 4
    private let lock = NSLock()

    /// `url` is the server's base (`http://host:8000`, with or without `/v1`); `tokenizer` and
    /// `chat` lay out the prompts (Loupe's model's, so both backends read the same text).
    public init(url: String, model: String, tokenizer: BPETokenizer, chat: ChatTemplate?,
                promptDirectory: URL = SimulatorTemplate.directory) throws {
        var base = url.trimmingCharacters(in: .whitespaces)
        while base.hasSuffix("/") { base.removeLast() }
        if base.hasSuffix("/v1") { base.removeLast(3) }
        guard let parsed = URL(string: base), let scheme = parsed.scheme, ["http", "https"].contains(scheme), parsed.host != nil,
              let endpoint = URL(string: base + "/v1/completions") else {
            throw SimulatorError.badServerURL(url)
        }
        guard !model.isEmpty else { throw SimulatorError.noServerModel }
        self.endpoint = endpoint
        self.model = model
        self.name = "\(model) at \(base)"
        self.tokenizer = tokenizer
        self.chat = chat
        self.promptDirectory = promptDirectory
    }

    public func simulate(explanation: String, contexts: [SimulationContext], mode: SimulationMode,
                         shouldStop: () -> Bool) throws -> [[Float]] {
        let prompt = try SimulatorPrompt(template: SimulatorTemplate.load(mode, directory: promptDirectory), mode: mode,
                                         explanation: explanation, tokenizer: tokenizer, chat: chat)
        var out = contexts.map { [Float](repeating: 0, count: $0.tokens.count) }
        // One request per job: (context, positions it reads, prompt text).
        var jobs: [(context: Int, positions: [Int], text: String)] = []
        for (c, context) in contexts.enumerated() where !context.tokens.isEmpty {
            switch mode {
            case .allAtOnce: jobs.append((c, Array(context.tokens.indices), prompt.text(prompt.rows(context))))
            case .lastToken:
                for t in context.tokens.indices { jobs.append((c, [t], prompt.text(prompt.judging(context, position: t)))) }
            }
        }
        let tailTabs = prompt.tailText.filter { $0 == "\t" }.count
        var next = 0
        while next < jobs.count {
            if shouldStop() { throw CancellationError() }
            let batch = Array(jobs[next..<min(next + max(1, concurrency), jobs.count)])
            let results = try parallel(batch.map { job in { @Sendable [self] in
                switch mode {
                case .allAtOnce:
                    return try Self.echoReadouts(complete(job.text, echo: true), rows: job.positions.count, tailTabs: tailTabs, server: name)
                case .lastToken:
                    return [try Self.generatedReadout(complete(job.text, echo: false), server: name)]
                }
            } })
            for (job, values) in zip(batch, results) {
                for (p, v) in zip(job.positions, values) { out[job.context][p] = v }
            }
            next += batch.count
        }
        return out
    }

    /// The expected digit from one position's alternatives (token text → log probability), or nil
    /// when no digit is among them (or all have probability 0).
    static func expectedDigit(_ top: [String: Double]) -> Float? {
        var z = 0.0, e = 0.0
        for d in 0...9 {
            guard let lp = top[String(d)] else { continue }
            z += exp(lp)
            e += exp(lp) * Double(d)
        }
        return z > 0 ? Float(e / z) : nil
    }

    /// Echoed prompt: the digit of each of the last `rows` rows. A row's readout is the position
    /// right after its tab: the alternatives of the token that follows the server's token ending in
    /// that tab. Rows are found from the end (the prefix's example rows hold tabs too); `tailTabs`
    /// tabs of the template's tail come after them. A row without a digit among its alternatives
    /// is an error, never a 0.
    static func echoReadouts(_ lp: Logprobs, rows: Int, tailTabs: Int, server: String) throws(SimulatorError) -> [Float] {
        let tabs = lp.tokens.indices.filter { lp.tokens[$0].contains("\t") }
        guard tabs.count >= rows + tailTabs else {
            throw .echoTooShort(server: server, tabs: tabs.count, expected: rows + tailTabs)
        }
        let shift = isShifted(lp) ? 0 : 1
        var out: [Float] = []
        for (row, j) in tabs.dropLast(tailTabs).suffix(rows).enumerated() {
            guard lp.tokens[j].hasSuffix("\t"), lp.tokens[j].filter({ $0 == "\t" }).count == 1, j + 1 < lp.tokens.count else {
                throw .tabJoined(server: server, token: String(lp.tokens[j].prefix(40)))
            }
            guard j + shift < lp.topLogprobs.count, let top = lp.topLogprobs[j + shift] else {
                throw .noPromptLogprobs(server: server)
            }
            guard let digit = expectedDigit(top) else { throw .noDigits(server: server, where: "row \(row + 1) of \(rows)") }
            out.append(digit)
        }
        return out
    }

    /// Whether the server gives, at echoed token i, the distribution *after* token i rather than the
    /// one predicting it (the OpenAI API's meaning). llama-cpp-python does so when the prompt does not
    /// start with the model's BOS token. Decided from the reply itself: the prompt's own tokens are
    /// far more likely under the right reading than under the other (mean log probability, a token
    /// missing from the alternatives counted at their lowest).
    static func isShifted(_ lp: Logprobs) -> Bool {
        var asIs = 0.0, shifted = 0.0, n = 0
        for i in 1..<max(1, lp.tokens.count - 1) {
            guard i < lp.tokenLogprobs.count, let own = lp.tokenLogprobs[i], i < lp.topLogprobs.count, let top = lp.topLogprobs[i],
                  let floor = top.values.min() else { continue }
            asIs += own
            shifted += top[lp.tokens[i + 1]] ?? floor
            n += 1
        }
        return n > 0 && shifted > asIs
    }

    /// Generated token: the alternatives of the first (only) generated token, which must hold a digit.
    public static func generatedReadout(_ lp: Logprobs, server: String) throws(SimulatorError) -> Float {
        guard let first = lp.topLogprobs.first, let top = first else { throw .noGeneratedLogprobs(server: server) }
        guard let digit = expectedDigit(top) else { throw .noDigits(server: server, where: "the generated token") }
        return digit
    }

    // MARK: the API

    /// The `logprobs` object of a completion choice: parallel lists, one entry per token.
    public struct Logprobs: Decodable, Sendable {
        public var tokens: [String]
        public var tokenLogprobs: [Double?]
        public var topLogprobs: [[String: Double]?]

        enum CodingKeys: String, CodingKey { case tokens, tokenLogprobs = "token_logprobs", topLogprobs = "top_logprobs" }
    }

    struct Completion: Decodable {
        struct Choice: Decodable { var logprobs: Logprobs? }
        var choices: [Choice]
    }

    /// A server's reply, bytes → the first choice's logprobs, checked: a completion with logprobs,
    /// the three lists equally long, every log probability finite and ≤ 0 (up to float rounding).
    /// Anything else is a `SimulatorError` quoting at most a short escaped excerpt. Pure (no I/O),
    /// for tests and fuzzing.
    public static func parseReply(_ data: Data, server: String) throws(SimulatorError) -> Logprobs {
        let completion: Completion
        do { completion = try JSONDecoder().decode(Completion.self, from: data) } catch {
            throw .badReply(server: server, reason: "it is not a completion (JSON with choices[].logprobs)", excerpt: excerpt(data))
        }
        guard let choice = completion.choices.first else {
            throw .badReply(server: server, reason: "it has no choices", excerpt: excerpt(data))
        }
        guard let lp = choice.logprobs else { throw .noLogprobs(server: server) }
        guard !lp.tokens.isEmpty, lp.tokenLogprobs.count == lp.tokens.count, lp.topLogprobs.count == lp.tokens.count else {
            throw .badReply(server: server, reason: "its logprobs lists are empty or differ in length (tokens \(lp.tokens.count), token_logprobs \(lp.tokenLogprobs.count), top_logprobs \(lp.topLogprobs.count))",
                            excerpt: excerpt(data))
        }
        // Rounding in a server's log-softmax can give +1e-7 for a certain token; more is not a log probability.
        let allowed = 1e-4
        for value in lp.tokenLogprobs.compactMap({ $0 }) + lp.topLogprobs.compactMap({ $0 }).flatMap(\.values) {
            guard value.isFinite, value <= allowed else {
                throw .badReply(server: server, reason: "it holds a log probability of \(value), which must be finite and at most 0", excerpt: excerpt(data))
            }
        }
        return lp
    }

    /// The start of a reply as a quoted string with control characters escaped, at most `limit`
    /// characters of it (an escape is never cut in half), "…" marking what is left out.
    static func excerpt(_ data: Data, limit: Int = 80) -> String {
        let quoted = JSONFile.quote(String(decoding: data.prefix(limit * 4), as: UTF8.self))
        guard quoted.count > limit || data.count > limit * 4 else { return quoted }
        var cut = String(quoted.prefix(limit))
        if let slash = cut.lastIndex(of: "\\"), cut.distance(from: slash, to: cut.endIndex) < 6 { cut = String(cut[..<slash]) }
        return cut + "\"…"
    }

    /// One completion request; returns the first choice's logprobs, checked.
    func complete(_ prompt: String, echo: Bool) throws(SimulatorError) -> Logprobs {
        func body() -> Data {
            let object: [String: Any] = ["model": model, "prompt": prompt, "max_tokens": 1, "temperature": 0,
                                         "logprobs": lock.withLock { topLogprobs }, "echo": echo]
            return (try? JSONSerialization.data(withJSONObject: object)) ?? Data()
        }
        let key = ProcessInfo.processInfo.environment["OPENAI_API_KEY"]
        var reply = try Self.post(body(), to: endpoint, apiKey: key, limits: limits)
        if reply.status == 400 && String(decoding: reply.body.prefix(4096), as: UTF8.self).lowercased().contains("logprob") {
            let allowed = Self.allowedLogprobs(String(decoding: reply.body.prefix(4096), as: UTF8.self))
            let lowered = lock.withLock { () -> Bool in
                guard allowed < topLogprobs else { return false }
                topLogprobs = max(allowed, 1)
                return true
            }
            if lowered { reply = try Self.post(body(), to: endpoint, apiKey: key, limits: limits) }
        }
        try Self.checkStatus(reply, endpoint: endpoint)
        return try Self.parseReply(reply.body, server: name)
    }

    /// The limit a server names when it refuses the logprobs asked ("… greater than max allowed: 20"
    /// from vLLM), else 20.
    static func allowedLogprobs(_ body: String) -> Int {
        body.firstMatch(of: /max(?:imum)?[ _]?(?:allowed)?[^0-9]{0,20}([0-9]+)/).flatMap { Int($0.1) } ?? 20
    }

    /// The server's base URL as the user gave it (for messages).
    static func base(of endpoint: URL) -> String {
        endpoint.deletingLastPathComponent().deletingLastPathComponent().absoluteString
    }

    /// POSTs JSON to the endpoint under `limits` (`HTTPClient`: deadlines, a size cap, redirects not
    /// followed) and returns the reply, whatever its status; a failed exchange is an error that
    /// says what to do. The API key goes to `endpoint` only.
    static func post(_ body: Data, to endpoint: URL, apiKey: String?, limits: HTTPLimits) throws(SimulatorError) -> HTTPReply {
        var headers = [("Content-Type", "application/json"), ("Accept", "application/json")]
        if let apiKey, !apiKey.isEmpty { headers.append(("Authorization", "Bearer \(apiKey)")) }
        let base = base(of: endpoint)
        do {
            return try HTTPClient.post(endpoint, headers: headers, body: body, limits: limits)
        } catch {
            switch error {
            case .cannotResolve(let host): throw .serverUnreachable(url: base, reason: "cannot resolve \(host)", port: endpoint.port ?? 8000)
            case let .resolveTimedOut(host, seconds):
                throw .serverUnreachable(url: base, reason: "cannot resolve \(host): no answer from the resolver within \(Self.seconds(seconds)) s", port: endpoint.port ?? 8000)
            case .cannotConnect(let reason): throw .serverUnreachable(url: base, reason: reason, port: endpoint.port ?? 8000)
            case .connectTimedOut(let seconds): throw .serverUnreachable(url: base, reason: "no connection within \(Self.seconds(seconds)) s", port: endpoint.port ?? 8000)
            case .noFirstByte(let seconds): throw .serverTimedOut(url: base, seconds: Int(seconds.rounded(.up)))
            case .tooSlow(let seconds): throw .serverTooSlow(url: base, seconds: Self.seconds(seconds))
            case .tooLarge(let bytes): throw .serverReplyTooLarge(url: base, megabytes: max(1, bytes >> 20))
            case .malformed(let reason): throw .noHTTPReply(url: base, reason: reason)
            case .truncated: throw .noHTTPReply(url: base, reason: "the connection closed before the reply was complete")
            }
        }
    }

    private static func seconds(_ s: Double) -> String { s >= 10 ? String(Int(s.rounded(.up))) : String(format: "%g", s) }

    /// A reply other than 200 OK is an error: a redirect names where it points (Loupe does not
    /// follow it), any other status quotes the start of the body (servers explain errors there).
    static func checkStatus(_ reply: HTTPReply, endpoint: URL) throws(SimulatorError) {
        guard reply.status != 200 else { return }
        if (300..<400).contains(reply.status) {
            throw .serverRedirected(url: base(of: endpoint), status: reply.status, location: excerpt(Data((reply.headers["location"] ?? "").utf8), limit: 120))
        }
        throw .serverStatus(url: endpoint.absoluteString, status: reply.status, excerpt: excerpt(reply.body, limit: 160))
    }

    /// Runs the closures on concurrent threads and returns their results in order (the first error wins).
    private func parallel<T: Sendable>(_ work: [@Sendable () throws -> T]) throws -> [T] {
        if work.count == 1 { return [try work[0]()] }
        let results = Results<T>(count: work.count)
        DispatchQueue.concurrentPerform(iterations: work.count) { i in results.set(i, Result { try work[i]() }) }
        return try results.values.map { try $0!.get() }
    }
}

private final class Results<T>: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var values: [Result<T, Error>?]
    init(count: Int) { values = Array(repeating: nil, count: count) }
    func set(_ i: Int, _ r: Result<T, Error>) { lock.withLock { values[i] = r } }
}
