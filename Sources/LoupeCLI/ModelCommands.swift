import Engine
import Foundation
import Kernels
import Model
import Storage
import Tokenizer

/// `loupe tokenize`, `loss`, `next`, `generate`: the model from the command line.
enum ModelCommands {
    static func tokenize(_ a: inout Arguments) throws {
        let json = a.flag("--json")
        let modelPath = try a.option("--model")
        let text = try a.text()
        let s = try Session(modelPath: modelPath, progress: Console.progress)
        let ids = s.tokenizer.encode(text)
        if json {
            Console.print(JSON.object([("ids", .array(ids.map { .int($0) })),
                                       ("tokens", .array(ids.map { .string(s.tokenizer.decodeText([$0])) }))]).text)
        } else {
            Console.print("\(ids.count) tokens")
            for id in ids { Console.print(String(format: "%6d  ", id) + s.tokenizer.display(id)) }
        }
    }

    static func loss(_ a: inout Arguments) throws {
        let json = a.flag("--json")
        let modelPath = try a.option("--model")
        let inline = try a.option("--text")
        let file = try a.option("--file")
        _ = try a.positionals()
        let text: String
        switch (inline, file) {
        case let (t?, nil): text = t
        case let (nil, f?):
            guard let data = FileManager.default.contents(atPath: f) else { throw UserError("loss: cannot read \(f)") }
            text = String(decoding: data, as: UTF8.self)
        default: throw UserError("loss: give exactly one of --text TEXT or --file F")
        }
        let s = try Session(modelPath: modelPath, progress: Console.progress)
        let ids = s.tokenizer.encode(text)
        guard ids.count >= 2 else { throw UserError("loss: the text has \(ids.count) token(s); at least 2 are needed to predict one") }
        guard ids.count <= s.model.config.contextLength else {
            throw UserError("loss: the text has \(ids.count) tokens, more than the model's context of \(s.model.config.contextLength)")
        }
        let ce = try s.model.crossEntropies(ids)
        let mean = ce.reduce(0.0) { $0 + Double($1) } / Double(ce.count)
        if json {
            Console.print(JSON.object([("tokens", .int(ids.count)), ("mean_ce", .number(mean))]).text)
        } else {
            Console.print(String(format: "%d tokens, mean next-token cross-entropy %.6f nats (perplexity %.3f)", ids.count, mean, exp(mean)))
        }
    }

    static func next(_ a: inout Arguments) throws {
        let json = a.flag("--json")
        let modelPath = try a.option("--model")
        let top = try a.int("--top", default: 10, range: 1...1000)
        let text = try a.text()
        let s = try Session(modelPath: modelPath, progress: Console.progress)
        let ids = s.tokenizer.encode(text)
        guard !ids.isEmpty else { throw UserError("next: the text is empty") }
        let logits = try s.model.lastLogits(ids, cache: s.model.makeCache(capacity: ids.count))
        let best = logits.indices.sorted { logits[$0] > logits[$1] }.prefix(top)
        if json {
            let items = best.map { JSON.object([("id", .int($0)), ("token", .string(s.tokenizer.decodeText([$0]))), ("logit", .number(Double(logits[$0])))]) }
            Console.print(JSON.object([("top", .array(items))]).text)
        } else {
            let lse = logits.withUnsafeBufferPointer { Ops.logSumExp($0.baseAddress!, count: $0.count) }
            for id in best {
                Console.print(String(format: "%6d  %9.4f  p=%.4f  ", id, logits[id], exp(logits[id] - lse)) + s.tokenizer.display(id))
            }
        }
    }

    static func generate(_ a: inout Arguments) throws {
        let json = a.flag("--json")
        let chat = a.flag("--chat")
        let modelPath = try a.option("--model")
        let maxTokens = try a.int("--max-tokens", default: 128, range: 1...100_000)
        let temperature = try a.double("--temperature", default: 0)
        let seed = try a.int("--seed", default: 0, range: 0...Int.max)
        let text = try a.text()
        let s = try Session(modelPath: modelPath, progress: Console.progress)
        var prompt = text
        if chat {
            guard let template = s.chat else { throw UserError("generate: this model has no ChatML chat template; run without --chat") }
            prompt = template.format([(role: "user", content: text)], addGenerationPrompt: true)
        }
        var ids = s.tokenizer.encode(prompt)
        guard !ids.isEmpty else { throw UserError("generate: the prompt is empty") }
        let stops = Set([s.tokenizer.eosId, s.tokenizer.id(of: "<|im_end|>"), s.tokenizer.id(of: "<|endoftext|>")].compactMap { $0 })
        let cache = s.model.makeCache(capacity: min(ids.count + maxTokens, s.model.config.contextLength))
        var sampler = Sampler(temperature: Float(temperature), seed: UInt64(seed))
        var pending: [UInt8] = []
        var input = ids
        let promptCount = ids.count
        for _ in 0..<maxTokens {
            guard cache.length + input.count <= cache.capacity else { break }
            let logits = try s.model.lastLogits(input, cache: cache)
            let next = sampler.pick(logits)
            if stops.contains(next) { break }
            ids.append(next)
            input = [next]
            if json { continue }
            pending += s.tokenizer.tokenBytes(next)
            let (text, rest) = Utf8Stream.split(pending)
            Console.write(text)
            pending = rest
        }
        let generated = Array(ids[promptCount...])
        if json {
            Console.print(JSON.object([("prompt_tokens", .int(promptCount)), ("ids", .array(generated.map { .int($0) })),
                                       ("text", .string(s.tokenizer.decodeText(generated)))]).text)
        } else {
            Console.write(String(decoding: pending, as: UTF8.self) + "\n")
        }
    }
}

/// Streams bytes as text without splitting a UTF-8 character across writes.
enum Utf8Stream {
    /// The longest prefix that ends on a character boundary, decoded, and the bytes left over.
    static func split(_ bytes: [UInt8]) -> (String, [UInt8]) {
        guard !bytes.isEmpty else { return ("", []) }
        var end = bytes.count
        // Hold back an incomplete trailing sequence (at most 3 bytes).
        for back in 1...min(3, bytes.count) {
            let b = bytes[bytes.count - back]
            if b & 0xC0 == 0x80 { continue }
            let need = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC0 ? 2 : 1
            if need > back { end = bytes.count - back }
            break
        }
        return (String(decoding: bytes[..<end], as: UTF8.self), Array(bytes[end...]))
    }
}
