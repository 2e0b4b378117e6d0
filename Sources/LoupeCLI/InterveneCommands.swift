import Engine
import EngineAPI
import Explorer
import Foundation
import Storage
import Terminal

/// `loupe steer`, `ablate`, `rank`, `patch`: intervening on a latent through the transcoder splice
/// (`Intervener`: the MLP output plus the edited latents' code changes times their decoder rows).
enum InterveneCommands {
    static func service(_ a: inout Arguments) throws -> EngineService {
        let modelPath = try a.option("--model")
        return EngineService(workspace: try WorkspaceCommands.workspace(&a), modelPath: modelPath, notice: Console.progress)
    }

    static func latent(_ a: inout Arguments, required: Bool = true) throws -> Int? {
        guard let text = try a.option("--latent") else {
            if required { throw UserError("\(a.command): give --latent N (see `loupe help`)") }
            return nil
        }
        guard let n = Int(text), n >= 0 else { throw UserError("\(a.command): --latent takes a latent id, not '\(text)'") }
        return n
    }

    /// Loads the model and transcoder and analyses `text`, as the lab has done before any
    /// intervention, so the timings printed are the lab's (not the model's loading).
    static func warmUp(_ service: EngineService, _ text: String) throws {
        _ = try service.analyzer().analyze(text)
    }

    /// Seconds of one plain forward pass of `text` (every position's logits when `all`), timed in
    /// the same process as the intervention, so their ratio holds on a busy machine.
    static func forwardSeconds(_ service: EngineService, _ text: String, all: Bool) throws -> Double {
        let intervener = try service.intervener()
        let ids = Array(intervener.tokenizer.encode(text).prefix(1024))
        let started = Clock.now
        try intervener.model.forward(ids, cache: intervener.model.makeCache(capacity: ids.count), logits: all ? .all : .last) { _, _, _ in }
        return Clock.now - started
    }

    // MARK: steer

    static func steer(_ a: inout Arguments) throws {
        let json = a.flag("--json")
        let chat = a.flag("--chat")
        let service = try service(&a)
        let latent = try latent(&a)!
        let scale = try a.option("--scale"), absolute = try a.option("--value")
        let value: SteerValue
        switch (scale.map(Double.init), absolute.map(Double.init)) {
        case (nil, nil): value = .timesMax(5)
        case let (s??, nil) where s.isFinite: value = .timesMax(Float(s))
        case let (nil, v??) where v.isFinite: value = .absolute(Float(v))
        default: throw UserError("steer: give one of --scale S (× the latent's max activation) or --value V, each a number")
        }
        let from = try a.int("--from", default: 0, range: 0...1_000_000)
        let tokens = try a.int("--tokens", default: 40, range: 1...2048)
        let temperature = try a.double("--temperature", default: 0)
        let seed = try a.int("--seed", default: 0, range: 0...Int.max)
        let text = try a.text()
        let settings = SteerSettings(latent: latent, value: value, from: from, maxTokens: tokens, temperature: Float(temperature),
                                     seed: UInt64(seed), chat: chat)
        try warmUp(service, text)
        let width = terminalWidth()
        let live = !json && isatty(STDOUT_FILENO) != 0
        var shown = 0
        let started = Clock.now
        let result = try service.steer(text: text, settings: settings, onStep: { r in
            guard live else { return }
            let lines = SideBySide.lines(left: ("unsteered", r.unsteeredText), right: ("steered: \(header(r))", r.steeredText), width: width)
            Console.write((shown > 0 ? "\u{1B}[\(shown)F\u{1B}[J" : "") + lines.joined(separator: "\n") + "\n")
            shown = lines.count
        })
        let seconds = Clock.now - started
        if json {
            let unsteered: JSON = .object([("ids", .array(result.unsteered.map { .int($0) })), ("text", .string(result.unsteeredText))])
            let steered: JSON = .object([("ids", .array(result.steered.map { .int($0) })), ("text", .string(result.steeredText))])
            let firstToken: JSON = result.firstTokenSeconds.map { .number($0 * 1000) } ?? .null
            let forward = try forwardSeconds(service, text, all: false)
            var pairs: [(String, JSON)] = [("latent", .int(latent)), ("setting", .string(value.label)), ("value", .number(Double(result.value)))]
            pairs += [("from", .int(from)), ("prompt_tokens", .int(result.promptTokens)), ("unsteered", unsteered), ("steered", steered)]
            pairs += [("first_token_ms", firstToken), ("prompt_forward_ms", .number(forward * 1000)), ("seconds", .number(seconds)),
                      ("method", .string("model loaded and the text analysed first, as in the lab; first_token_ms: request to the first generated token of both runs (prompt prefilled twice); prompt_forward_ms: one plain forward of the prompt, same process"))]
            Console.print(JSON.object(pairs).text)
        } else if !live {
            let lines = SideBySide.lines(left: ("unsteered", result.unsteeredText), right: ("steered: \(header(result))", result.steeredText),
                                         width: width)
            Console.print(lines.joined(separator: "\n"))
        }
    }

    static func header(_ r: SteerResult) -> String {
        String(format: "latent %d = %.3g (%@)", r.settings.latent, r.value, r.settings.value.label)
            + (r.settings.from > 0 ? " from token \(r.settings.from)" : "")
    }

    static func terminalWidth() -> Int {
        var size = winsize()
        if ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_col >= 40 { return Int(size.ws_col) }
        return 100
    }

    // MARK: ablate

    static func ablate(_ a: inout Arguments) throws {
        let json = a.flag("--json")
        let mean = a.flag("--mean")
        let service = try service(&a)
        let latent = try latent(&a)!
        let top = try a.int("--top", default: 8, range: 1...1000)
        let text = try a.text()
        try warmUp(service, text)
        let started = Clock.now
        let r = try service.ablate(text: text, latent: latent, mode: mean ? .mean : .zero)
        let seconds = Clock.now - started
        let helped = r.helped(top)
        if json {
            let rows: [JSON] = r.tokens.indices.map { t in
                let delta: JSON = t < r.deltaLogProb.count ? .number(Double(r.deltaLogProb[t])) : .null
                let kl: JSON = t < r.kl.count ? .number(Double(r.kl[t])) : .null
                return .object([("token", .string(r.tokenTexts[t])), ("activation", .number(Double(r.activations[t]))), ("delta_logprob", delta), ("kl", kl)])
            }
            let helpedRows: [JSON] = helped.map { t in
                .object([("position", .int(t)), ("token", .string(r.tokenTexts[t])), ("next", .string(r.tokenTexts[t + 1])),
                         ("delta_logprob", .number(Double(r.deltaLogProb[t])))])
            }
            var pairs: [(String, JSON)] = [("latent", .int(latent)), ("mode", .string(r.mode.rawValue)), ("value", .number(Double(r.value)))]
            let forward = try forwardSeconds(service, text, all: true)
            pairs += [("tokens", .array(rows)), ("helped", .array(helpedRows)), ("seconds", .number(seconds)), ("forward_seconds", .number(forward))]
            pairs.append(("method", .string("model loaded and the text analysed first, as in the lab; seconds: the base and ablated runs over every token and the per-token statistics; forward_seconds: one plain forward with every position's logits, same process")))
            Console.print(JSON.object(pairs).text)
            return
        }
        Console.print(String(format: "latent %d %@-ablated (set to %.4g) on %d tokens, %.2f s", latent, r.mode.rawValue, r.value, r.tokens.count, seconds))
        Console.print("    t  activation   Δlog p(next)   KL(base‖abl)  token → next")
        for t in 0..<r.deltaLogProb.count {
            Console.print(String(format: "%5d  %10.3f   %12.4f   %12.5f  ", t, r.activations[t], r.deltaLogProb[t], r.kl[t])
                + r.tokenTexts[t] + " → " + r.tokenTexts[t + 1])
        }
        Console.print("helps most (log p lost without it):")
        for t in helped {
            Console.print(String(format: "%5d  %9.4f  ", t, -r.deltaLogProb[t]) + r.tokenTexts[t] + " → " + r.tokenTexts[t + 1])
        }
    }

    // MARK: rank

    static func rank(_ a: inout Arguments) throws {
        let json = a.flag("--json")
        let service = try service(&a)
        let at = try a.int("--at", default: -1, range: -1_000_000...1_000_000)
        let targetText = try a.option("--target")
        let exact = try a.int("--exact", default: 5, range: 0...64)
        let top = try a.int("--top", default: 20, range: 1...1000)
        let text = try a.text()
        try warmUp(service, text)
        let intervener = try service.intervener()
        var target: Int?
        if let targetText {
            let ids = intervener.tokenizer.encode(targetText)
            guard ids.count == 1 else {
                throw UserError("rank: --target '\(targetText)' is \(ids.count) tokens; give one token's text (e.g. ' the' with its space)")
            }
            target = ids[0]
        }
        let started = Clock.now
        let r = try service.rank(text: text, position: at, target: target, exact: exact)
        let seconds = Clock.now - started
        let shown = r.latents.prefix(top)
        if json {
            let rows: [JSON] = shown.map { l in
                let exact: JSON = l.exact.map { .number(Double($0)) } ?? .null
                return .object([("latent", .int(l.latent)), ("activation", .number(Double(l.activation))), ("direct", .number(Double(l.direct))),
                                ("exact", exact)])
            }
            var pairs: [(String, JSON)] = [("position", .int(r.position)), ("token", .string(intervener.tokenizer.display(r.tokens[r.position])))]
            pairs += [("target", .int(r.target)), ("target_token", .string(r.targetText)), ("logit", .number(Double(r.logit)))]
            pairs += [("latents", .array(rows)), ("seconds", .number(seconds))]
            Console.print(JSON.object(pairs).text)
            return
        }
        Console.print(String(format: "token %d (%@) → %@: logit %.3f; %d active latents by direct effect (exact: zeroed at this token)",
                             r.position, intervener.tokenizer.display(r.tokens[r.position]), r.targetText, r.logit, r.latents.count))
        Console.print(" latent  activation    direct     exact")
        for l in shown {
            Console.print(String(format: "%7d  %10.3f  %8.4f  ", l.latent, l.activation, l.direct) + (l.exact.map { String(format: "%8.4f", $0) } ?? "       ·"))
        }
    }

    // MARK: patch

    static func patch(_ a: inout Arguments) throws {
        let json = a.flag("--json")
        let service = try service(&a)
        let latent = try latent(&a, required: false)
        guard let clean = try a.option("--clean"), let corrupted = try a.option("--corrupted") else {
            throw UserError("patch: give --clean TEXT and --corrupted TEXT (the same length in tokens)")
        }
        let rest = try a.positionals()
        guard rest.isEmpty else { throw UserError("patch: unexpected \(rest.joined(separator: " ")); quote the texts of --clean and --corrupted") }
        try warmUp(service, clean)
        let started = Clock.now
        let r = try service.patch(clean: clean, corrupted: corrupted, latent: latent)
        let seconds = Clock.now - started
        let recovered = r.recovered
        if json {
            let rows: [JSON] = r.clean.indices.map { t in
                .object([("clean", .string(r.cleanTexts[t])), ("corrupted", .string(r.corruptedTexts[t])),
                         ("patched_logprob", .number(Double(r.patchedLogProb[t]))), ("recovered", .number(Double(recovered[t])))])
            }
            var pairs: [(String, JSON)] = [("latent", latent.map { .int($0) } ?? .null), ("target", .int(r.target)), ("target_token", .string(r.targetText))]
            pairs += [("clean_logprob", .number(Double(r.cleanLogProb))), ("corrupted_logprob", .number(Double(r.corruptedLogProb)))]
            pairs += [("tokens", .array(rows)), ("seconds", .number(seconds))]
            Console.print(JSON.object(pairs).text)
            return
        }
        Console.print(String(format: "%@ patched clean → corrupted; log p(%@) at the last token: clean %.3f, corrupted %.3f",
                             latent.map { "latent \($0)" } ?? "the whole code", r.targetText, r.cleanLogProb, r.corruptedLogProb))
        Console.print("    t  recovered  patched log p  clean / corrupted token")
        for t in r.clean.indices {
            Console.print(String(format: "%5d  %9.3f  %13.4f  ", t, recovered[t], r.patchedLogProb[t]) + r.cleanTexts[t] + " / " + r.corruptedTexts[t])
        }
    }
}
