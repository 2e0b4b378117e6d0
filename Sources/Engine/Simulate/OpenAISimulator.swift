import Foundation
import Storage

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
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
/// outside the top N count as probability 0; a position with no digit among them reads 0), as the
/// local backend renormalises over the ten digits. Requests run `concurrency` at a time; a failed
/// request is an error, never retried.
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
    public var timeout: TimeInterval = 120
    public var concurrency = 4
    private let session: URLSession
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
        let config = URLSessionConfiguration.ephemeral
        // Each request carries its own timeout (`timeout`, settable after init).
        config.timeoutIntervalForRequest = 3600
        config.httpMaximumConnectionsPerHost = 8
        session = URLSession(configuration: config)
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

    /// The expected digit from one position's alternatives (token text → log probability).
    static func expectedDigit(_ top: [String: Double]) -> Float {
        var z = 0.0, e = 0.0
        for d in 0...9 {
            guard let lp = top[String(d)] else { continue }
            z += exp(lp)
            e += exp(lp) * Double(d)
        }
        return z > 0 ? Float(e / z) : 0
    }

    /// Echoed prompt: the digit of each of the last `rows` rows. A row's readout is the position
    /// right after its tab: the alternatives of the token that follows the server's token ending in
    /// that tab. Rows are found from the end (the prefix's example rows hold tabs too); `tailTabs`
    /// tabs of the template's tail come after them.
    static func echoReadouts(_ lp: Logprobs, rows: Int, tailTabs: Int, server: String) throws -> [Float] {
        let tabs = lp.tokens.indices.filter { lp.tokens[$0].contains("\t") }
        guard tabs.count >= rows + tailTabs else {
            throw SimulatorError.echoTooShort(server: server, tabs: tabs.count, expected: rows + tailTabs)
        }
        let shift = isShifted(lp) ? 0 : 1
        return try tabs.dropLast(tailTabs).suffix(rows).map { j in
            guard lp.tokens[j].hasSuffix("\t"), lp.tokens[j].filter({ $0 == "\t" }).count == 1, j + 1 < lp.tokens.count else {
                throw SimulatorError.tabJoined(server: server, token: lp.tokens[j])
            }
            guard j + shift < lp.topLogprobs.count, let top = lp.topLogprobs[j + shift] else {
                throw SimulatorError.noPromptLogprobs(server: server)
            }
            return expectedDigit(top)
        }
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

    /// Generated token: the alternatives of the first (only) generated token.
    static func generatedReadout(_ lp: Logprobs, server: String) throws -> Float {
        guard let first = lp.topLogprobs.first, let top = first else {
            throw SimulatorError.noGeneratedLogprobs(server: server)
        }
        return expectedDigit(top)
    }

    // MARK: the API

    /// The `logprobs` object of a completion choice.
    struct Logprobs: Decodable {
        var tokens: [String]
        var tokenLogprobs: [Double?]
        var topLogprobs: [[String: Double]?]

        enum CodingKeys: String, CodingKey { case tokens, tokenLogprobs = "token_logprobs", topLogprobs = "top_logprobs" }
    }

    struct Completion: Decodable {
        struct Choice: Decodable { var logprobs: Logprobs? }
        var choices: [Choice]
    }

    /// One completion request; returns the first choice's logprobs.
    func complete(_ prompt: String, echo: Bool) throws -> Logprobs {
        func body() -> [String: Any] {
            ["model": model, "prompt": prompt, "max_tokens": 1, "temperature": 0, "logprobs": lock.withLock { topLogprobs }, "echo": echo]
        }
        let data: Data
        do { data = try post(body()) } catch let e as HTTPStatusError where e.status == 400 && e.body.lowercased().contains("logprob") {
            let allowed = Self.allowedLogprobs(e.body)
            let lowered = lock.withLock { () -> Bool in
                guard allowed < topLogprobs else { return false }
                topLogprobs = max(allowed, 1)
                return true
            }
            guard lowered else { throw e }
            data = try post(body())
        }
        let completion: Completion
        do { completion = try JSONDecoder().decode(Completion.self, from: data) } catch {
            throw SimulatorError.notACompletion(server: name, reply: String(decoding: data.prefix(300), as: UTF8.self))
        }
        guard let lp = completion.choices.first?.logprobs else { throw SimulatorError.noLogprobs(server: name) }
        return lp
    }

    /// The limit a server names when it refuses the logprobs asked ("… greater than max allowed: 20"
    /// from vLLM), else 20.
    static func allowedLogprobs(_ body: String) -> Int {
        body.firstMatch(of: /max(?:imum)?[ _]?(?:allowed)?[^0-9]{0,20}([0-9]+)/).flatMap { Int($0.1) } ?? 20
    }

    /// POSTs JSON to the endpoint and returns the body of a 200 reply; any other outcome is an error
    /// that says what to do.
    func post(_ body: [String: Any]) throws -> Data {
        var request = URLRequest(url: endpoint, timeoutInterval: timeout)
        request.httpMethod = "POST"
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        if let key = ProcessInfo.processInfo.environment["OPENAI_API_KEY"], !key.isEmpty {
            request.setValue("Bearer \(key)", forHTTPHeaderField: "Authorization")
        }
        request.httpBody = try JSONSerialization.data(withJSONObject: body)
        let reply = Reply()
        let done = DispatchSemaphore(value: 0)
        session.dataTask(with: request) { data, response, error in
            reply.set(data, response as? HTTPURLResponse, error)
            done.signal()
        }.resume()
        done.wait()
        let (data, response, error) = reply.get()
        let base = endpoint.deletingLastPathComponent().deletingLastPathComponent().absoluteString
        if let error {
            let e = error as NSError
            if e.domain == NSURLErrorDomain && e.code == NSURLErrorTimedOut {
                throw SimulatorError.serverTimedOut(url: base, seconds: Int(timeout))
            }
            throw SimulatorError.serverUnreachable(url: base, reason: e.localizedDescription, port: endpoint.port ?? 8000)
        }
        guard let response else { throw SimulatorError.noHTTPReply(url: base) }
        guard response.statusCode == 200, let data else {
            let text = data.map { String(decoding: $0.prefix(400), as: UTF8.self) } ?? ""
            throw HTTPStatusError(url: endpoint.absoluteString, status: response.statusCode, body: text)
        }
        return data
    }

    /// Runs the closures on concurrent threads and returns their results in order (the first error wins).
    private func parallel<T: Sendable>(_ work: [@Sendable () throws -> T]) throws -> [T] {
        if work.count == 1 { return [try work[0]()] }
        let results = Results<T>(count: work.count)
        DispatchQueue.concurrentPerform(iterations: work.count) { i in results.set(i, Result { try work[i]() }) }
        return try results.values.map { try $0!.get() }
    }
}

/// A reply other than 200 OK, with the start of its body (servers explain errors there).
struct HTTPStatusError: Error, CustomStringConvertible {
    let url: String
    let status: Int
    let body: String
    var description: String { "\(url) answered HTTP \(status): \(body)" }
}

/// A completion handler's outcome, handed across threads.
private final class Reply: @unchecked Sendable {
    private let lock = NSLock()
    private var value: (Data?, HTTPURLResponse?, Error?) = (nil, nil, nil)
    func set(_ d: Data?, _ r: HTTPURLResponse?, _ e: Error?) { lock.withLock { value = (d, r, e) } }
    func get() -> (Data?, HTTPURLResponse?, Error?) { lock.withLock { value } }
}

private final class Results<T>: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var values: [Result<T, Error>?]
    init(count: Int) { values = Array(repeating: nil, count: count) }
    func set(_ i: Int, _ r: Result<T, Error>) { lock.withLock { values[i] = r } }
}
