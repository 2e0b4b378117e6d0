import Formats
import Foundation
import FuzzReaders
import LoupeTestSupport
import Model
import Storage
import Tokenizer
import Transcoder

/// The generators of the committed fuzz files (`testWriteFiles` writes them under Tests/Fuzz).
enum Seeds {
    static let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("StorageTests/Fixtures/workspace-47801cc/workspace", isDirectory: true)

    /// A tiny Llama (1 layer, d 8) with the 50-token letters vocabulary.
    static func model(_ edit: (inout GGUFWriter) -> Void = { _ in }, overrides: [String: GGUFValue] = [:]) throws -> Data {
        let tiny = TinyLlama(layers: 1, dim: 8, ffnDim: 8, heads: 2, kvHeads: 1, contextLength: 16, vocabulary: .letters, seed: 1)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("seed-\(UUID().uuidString).gguf").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try tiny.write(to: path)
        guard overrides.isEmpty else { return try rewrite(Data(contentsOf: URL(fileURLWithPath: path)), overrides: overrides, edit: edit) }
        return try Data(contentsOf: URL(fileURLWithPath: path))
    }

    /// Reads a GGUF, replaces metadata values (a nil-like `.array([])` removes nothing; every key is
    /// kept in order), and writes it back with the same tensors.
    static func rewrite(_ data: Data, overrides: [String: GGUFValue], edit: (inout GGUFWriter) -> Void = { _ in }) throws -> Data {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("seed-\(UUID().uuidString).gguf").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try data.write(to: URL(fileURLWithPath: path))
        let f = try GGUFFile(path: path)
        var w = GGUFWriter()
        for key in f.keys { w.set(key, overrides[key] ?? f.metadata[key]!) }
        for (key, value) in overrides.sorted(by: { $0.key < $1.key }) where f.metadata[key] == nil { w.set(key, value) }
        for t in f.tensors { w.addTensor(t.name, dims: t.dims, type: t.type, bytes: Array(f.data(of: t))) }
        edit(&w)
        return Data(w.bytes())
    }

    /// Tokenizer metadata alone (the 256-byte vocabulary with merges and ChatML specials).
    static func tokenizer() -> Data {
        var w = GGUFWriter()
        let v = ToyVocabulary.bytes
        w.set("general.architecture", .string("llama"))
        w.set("tokenizer.ggml.model", .string("gpt2"))
        w.set("tokenizer.ggml.pre", .string("smollm"))
        w.set("tokenizer.ggml.tokens", .array(v.tokens.map { .string($0) }))
        w.set("tokenizer.ggml.token_type", .array(v.types.map { .int32(Int32($0)) }))
        w.set("tokenizer.ggml.merges", .array(v.merges.map { .string($0) }))
        w.set("tokenizer.ggml.bos_token_id", .uint32(UInt32(v.tokens.firstIndex(of: "<|endoftext|>")!)))
        w.set("tokenizer.ggml.eos_token_id", .uint32(UInt32(v.tokens.firstIndex(of: "<|im_end|>")!)))
        w.set("tokenizer.ggml.add_bos_token", .bool(false))
        w.set("tokenizer.chat_template", .string("{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n{% endfor %}"))
        return Data(w.bytes())
    }

    static func dictionary(scratch: URL) throws -> (cfg: Data, sae: Data) {
        let dir = scratch.appendingPathComponent("dictionary-\(UUID().uuidString)")
        try Transcoder(config: TranscoderConfig(dIn: 8, numLatents: 32, k: 4), seed: 1).save(directory: dir.path)
        return (try Data(contentsOf: dir.appendingPathComponent("cfg.json")), try Data(contentsOf: dir.appendingPathComponent("sae.safetensors")))
    }

    /// A file a harness's own set-up writes, after running the harness once (index.bin, heldout-index.bin).
    static func madeBy(_ harness: String, reading input: Data, file: String, scratch: URL) throws -> Data {
        let folder = scratch.appendingPathComponent("made-\(harness)-\(UUID().uuidString)")
        _ = try FuzzReaders.named(harness)!.run(input, in: folder).get()
        return try Data(contentsOf: folder.appendingPathComponent(file))
    }

    static func all(scratch: URL) throws -> [(String, String, Data)] {
        let (cfg, sae) = try dictionary(scratch: scratch)
        let manifest = try JSONEncoder().encode(CacheManifest(latents: 4, k: 2, blockSize: 2, displayLength: 4, histogramBins: 3, quantiles: 2, trainTokens: 48,
                                                              randomPool: [[1, 0], [3, 2]], files: ["latents-00000.bin", "latents-00001.bin"]))
        let cacheDir = scratch.appendingPathComponent("cache-\(UUID().uuidString)")
        _ = try FuzzReaders.named("cache-manifest")!.run(manifest, in: cacheDir).get()
        let block = try Data(contentsOf: cacheDir.appendingPathComponent("latents-00000.bin"))
        let index = try madeBy("cache-records", reading: block, file: "index.bin", scratch: scratch)
        let heldOut = try madeBy("heldout-codes", reading: FuzzReaders.validCodes(), file: "heldout-index.bin", scratch: scratch)
        let store = scratch.appendingPathComponent("log-\(UUID().uuidString)")
        let log = try ExplanationStore(directory: store, latents: 100)
        for (latent, text) in [(1, "the letter a"), (2, "commas"), (1, "the letter a after b"), (7, "")] where !text.isEmpty { try log.save(latent: latent, text: text) }
        try log.save(latent: 3, text: "numbers", source: .lexical)
        let corpus = try JSONEncoder().encode(CorpusMeta(sources: ["seed.txt"], windowLength: 8, heldOutEvery: 4, windows: 8, tokens: 64))
        let shard = (0..<2 * 4 * 2 * 8).map { Float16(Float($0 % 7) * 0.25 - 0.5).bitPattern }.withUnsafeBytes { Data($0) }
        func fromFixture(_ path: String) throws -> Data { try Data(contentsOf: Seeds.fixture.appendingPathComponent(path)) }
        return [
            ("gguf", "tiny-llama.gguf", try model()),
            ("tokenizer", "bytes-vocabulary.gguf", tokenizer()),
            ("safetensors", "sae.safetensors", sae),
            ("dictionary-config", "cfg.json", cfg),
            ("dictionary-config", "cfg-expansion.json", Data(#"{"d_in": 8, "expansion_factor": 4, "k": 4, "transcode": true}"#.utf8)),
            ("corpus-meta", "corpus.json", corpus),
            ("corpus-text", "corpus.jsonl", Data("{\"text\": \"The dog ran.\"}\n\n{\"text\": \"A cat \\u00e9 \\ud83d\\ude00\", \"id\": 2}\n".utf8)),
            ("cache-manifest", "cache.json", manifest),
            ("cache-records", "latents-00000.bin", block),
            ("latent-index", "index.bin", index),
            ("heldout-codes", "heldout-00000.bin", FuzzReaders.validCodes()),
            ("heldout-index", "heldout-index.bin", heldOut),
            ("activation-shard", "acts-00000.f16", shard),
            ("explanation-log", "log.jsonl", try Data(contentsOf: log.logURL)),
            ("explanation-log", "log-47801cc.jsonl", try fromFixture("explanations/log.jsonl")),
            ("score-store", "scores.jsonl", try fromFixture("explanations/scores.jsonl")),
            ("rewrite-simulations", "simulations.jsonl", try fromFixture("rewrite/simulations.jsonl")),
            ("rewrite-report", "report.json", try fromFixture("rewrite/report.json")),
            ("workspace-manifest", "workspace.json", try fromFixture("workspace.json")),
            ("openai-reply", "completion.json", Data(#"{"choices":[{"logprobs":{"tokens":["7"],"token_logprobs":[-0.12],"top_logprobs":[{"7":-0.12,"6":-2.3,"8":-3.1,"x":-4.0}]}}]}"#.utf8)),
        ]
    }
}

/// Every input issue 15 lists, as a committed case with the one-line error it must give.
enum Regressions {
    struct Case {
        let harness: String, name: String, input: Data, expected: String
    }

    /// A JSON object's text with fields replaced (values are JSON text).
    static func json(_ data: Data, _ fields: [String: String]) throws -> Data {
        var object = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        for (k, v) in fields { object[k] = try JSONSerialization.jsonObject(with: Data(v.utf8), options: .fragmentsAllowed) }
        return try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
    }

    /// A safetensors file with its header's JSON replaced.
    static func safetensors(header: String, data: Data = Data(count: 64)) -> Data {
        var h = Data(header.utf8)
        while h.count % 8 != 0 { h.append(0x20) }
        var out = Data()
        withUnsafeBytes(of: UInt64(h.count).littleEndian) { out.append(contentsOf: $0) }
        return out + h + data
    }

    static func all(scratch: URL) throws -> [Case] {
        let model = try Seeds.model()
        let (cfg, sae) = try Seeds.dictionary(scratch: scratch)
        let corpus = try JSONEncoder().encode(CorpusMeta(sources: ["seed.txt"], windowLength: 8, heldOutEvery: 4, windows: 8, tokens: 64))
        let manifest = try JSONEncoder().encode(CacheManifest(latents: 4, k: 2, blockSize: 2, displayLength: 4, histogramBins: 3, quantiles: 2, trainTokens: 48,
                                                              randomPool: [[1, 0], [3, 2]], files: ["latents-00000.bin", "latents-00001.bin"]))
        func gguf(_ name: String, _ overrides: [String: GGUFValue], _ expected: String, edit: (inout GGUFWriter) -> Void = { _ in }) throws -> Case {
            Case(harness: "gguf", name: name, input: try Seeds.rewrite(model, overrides: overrides, edit: edit), expected: expected)
        }
        // A log of 20 versions (5 latents), written by the store, for the data-loss cases.
        let logDir = scratch.appendingPathComponent("log-\(UUID().uuidString)")
        let store = try ExplanationStore(directory: logDir, latents: 100)
        for i in 0..<20 { try store.save(latent: i % 5, text: "version \(i)") }
        let lines = try String(contentsOf: store.logURL, encoding: .utf8).split(separator: "\n").map(String.init)
        func log(_ edit: (inout [String]) -> Void) -> Data { var l = lines; edit(&l); return Data((l.joined(separator: "\n") + "\n").utf8) }
        // The score store's and the rewrite cache's lines from the 47801cc fixture, edited.
        func fixtureLines(_ path: String, _ edit: (inout [String]) -> Void) throws -> Data {
            var l = try String(contentsOf: Seeds.fixture.appendingPathComponent(path), encoding: .utf8).split(separator: "\n").map(String.init)
            edit(&l)
            return Data((l.joined(separator: "\n") + "\n").utf8)
        }
        let workspace = try Data(contentsOf: Seeds.fixture.appendingPathComponent("workspace.json"))
        func evaluation(_ field: String, _ value: String) throws -> Data {
            var e = (try JSONSerialization.jsonObject(with: workspace) as! [String: Any])["evaluation"] as! [String: Any]
            e[field] = try JSONSerialization.jsonObject(with: Data(value.utf8), options: .fragmentsAllowed)
            return try json(workspace, ["evaluation": String(decoding: try JSONSerialization.data(withJSONObject: e, options: [.sortedKeys]), as: UTF8.self)])
        }

        return [
            // GGUF (`loupe next --model F hi`)
            try gguf("alignment-string.gguf", ["general.alignment": .string("64")], "'general.alignment' is the string \"64\", expected an integer power of two"),
            try gguf("alignment-2^63.gguf", ["general.alignment": .uint64(1 << 63)], "'general.alignment' is 9223372036854775808, expected an integer power of two"),
            try gguf("alignment-3.gguf", ["general.alignment": .uint32(3)], "'general.alignment' is 3"),
            try gguf("dims-product-wraps.gguf", [:], "tensor 'wrap' has a bad shape ([549755813888, 549755813888] is more than 1099511627776 elements)") {
                $0.addTensor("wrap", dims: [1 << 39, 1 << 39], type: .f32, bytes: [0, 0, 0, 0])
            },
            try gguf("dims-product-2^64.gguf", [:], "tensor 'wrap' has a bad shape ([65536, 65536, 65536, 65536] is more than") {
                $0.addTensor("wrap", dims: [1 << 16, 1 << 16, 1 << 16, 1 << 16], type: .f32, bytes: [0, 0, 0, 0])
            },
            try gguf("byte-count-past-end.gguf", [:], "tensor 'big' needs 4194304 bytes at offset") {
                $0.addTensor("big", dims: [1024, 1024], type: .f32, bytes: [0, 0, 0, 0])
            },
            try gguf("context-length-2^61.gguf", ["llama.context_length": .uint64(1 << 61)], "'llama.context_length' should be at most 16777216 (found 2305843009213693952)"),
            try gguf("context-length-2^40.gguf", ["llama.context_length": .uint64(1 << 40)], "'llama.context_length' should be at most 16777216"),
            try gguf("context-length-2^31.gguf", ["llama.context_length": .uint32(1 << 31)], "'llama.context_length' should be at most 16777216"),
            try gguf("block-count-2e6.gguf", ["llama.block_count": .uint32(2_000_000)], "'llama.block_count' should be at most 1024 (found 2000000)"),
            try gguf("block-count-more-than-tensors.gguf", ["llama.block_count": .uint32(900)], "tensor 'blk.1.attn_norm.weight' is missing"),
            try gguf("vocab-size-2^40.gguf", ["llama.vocab_size": .uint64(1 << 40)], "'llama.vocab_size' should be at most 4194304"),
            try gguf("embedding-length-huge.gguf", ["llama.embedding_length": .uint64(1 << 50)], "'llama.embedding_length' should be at most 131072"),
            Case(harness: "gguf", name: "tensor-count-huge.gguf", input: {
                var b = model; b.replaceSubrange(8..<16, with: withUnsafeBytes(of: UInt64(1 << 40).littleEndian) { Data($0) }); return b
            }(), expected: "file is truncated (ran out of bytes reading tensor count)"),
            Case(harness: "gguf", name: "key-length-huge.gguf", input: {
                var b = model; b.replaceSubrange(24..<32, with: withUnsafeBytes(of: UInt64.max.littleEndian) { Data($0) }); return b
            }(), expected: "file is truncated (ran out of bytes reading length of metadata key #0)"),
            // tokenizer metadata
            Case(harness: "tokenizer", name: "token-types-short.gguf", input: try Seeds.rewrite(Seeds.tokenizer(), overrides: ["tokenizer.ggml.token_type": .array([.int32(1)])]),
                 expected: "tokens but 1 token types"),
            Case(harness: "tokenizer", name: "bos-outside-vocabulary.gguf", input: try Seeds.rewrite(Seeds.tokenizer(), overrides: ["tokenizer.ggml.bos_token_id": .uint64(1 << 62)]),
                 expected: "the beginning-of-sequence token id 4611686018427387904 is outside the vocabulary"),
            Case(harness: "tokenizer", name: "tokens-not-strings.gguf", input: try Seeds.rewrite(Seeds.tokenizer(), overrides: ["tokenizer.ggml.tokens": .array([.uint8(1)])]),
                 expected: "metadata key 'tokenizer.ggml.tokens' should be an array of strings"),
            // safetensors + cfg.json (`--transcoder`)
            Case(harness: "safetensors", name: "shape-product-wraps.safetensors",
                 input: safetensors(header: #"{"encoder.bias":{"dtype":"F32","shape":[549755813888,549755813888],"data_offsets":[0,0]}}"#),
                 expected: "tensor 'encoder.bias' has a bad shape ([549755813888, 549755813888] is more than 1099511627776 elements)"),
            Case(harness: "safetensors", name: "shape-fraction.safetensors",
                 input: safetensors(header: #"{"b_dec":{"dtype":"F32","shape":[32.9],"data_offsets":[0,128]}}"#, data: Data(count: 128)),
                 expected: "tensor 'b_dec': shape and data_offsets must be non-negative integers"),
            Case(harness: "safetensors", name: "offsets-wrapped.safetensors",
                 input: safetensors(header: #"{"b_dec":{"dtype":"F32","shape":[8],"data_offsets":[9223372036854775000,443]}}"#),
                 expected: "tensor 'b_dec' needs 32 bytes at offset"),
            Case(harness: "safetensors", name: "offsets-past-int64.safetensors",
                 input: safetensors(header: #"{"b_dec":{"dtype":"F32","shape":[8],"data_offsets":[0,18446744073709551615]}}"#),
                 expected: "tensor 'b_dec': shape and data_offsets must be non-negative integers"),
            Case(harness: "safetensors", name: "header-length-2^62.safetensors", input: {
                var b = sae; b.replaceSubrange(0..<8, with: withUnsafeBytes(of: UInt64(1 << 62).littleEndian) { Data($0) }); return b
            }(), expected: "header length is 4611686018427387904, more than the limit 100000000"),
            Case(harness: "dictionary-config", name: "d_in-num_latents-100000.json", input: try json(cfg, ["d_in": "100000", "num_latents": "100000"]),
                 expected: "tensor 'encoder.weight' has shape [32, 8], expected [100000, 100000]"),
            Case(harness: "dictionary-config", name: "expansion_factor-2^59+2.json", input: try json(cfg, ["num_latents": "0", "expansion_factor": "576460752303423490"]),
                 expected: "key 'expansion_factor': must be positive with d_in × expansion_factor ≤ 16777216"),
            Case(harness: "dictionary-config", name: "expansion_factor-wraps-to-0.json", input: try json(cfg, ["num_latents": "0", "expansion_factor": "2305843009213693952"]),
                 expected: "key 'expansion_factor': must be positive"),
            Case(harness: "dictionary-config", name: "k-0.json", input: try json(cfg, ["k": "0"]), expected: "key 'k': must be in 1...32, got 0"),
            Case(harness: "dictionary-config", name: "d_in-2^62.json", input: try json(cfg, ["d_in": "4611686018427387904"]), expected: "key 'd_in': must be in 1...131072"),
            Case(harness: "dictionary-config", name: "num_latents-negative.json", input: try json(cfg, ["num_latents": "-5"]), expected: "key 'num_latents': must be in 0...16777216, got -5"),
            // workspace files
            Case(harness: "corpus-meta", name: "held_out_every-0.json", input: try json(corpus, ["held_out_every": "0"]), expected: "field 'held_out_every' is 0, expected at least 1"),
            Case(harness: "corpus-meta", name: "window_length-0.json", input: try json(corpus, ["window_length": "0"]), expected: "field 'window_length' is 0, expected 1…"),
            Case(harness: "corpus-meta", name: "tokens-2^62+64.json", input: try json(corpus, ["tokens": "4611686018427387968"]), expected: "field 'tokens' is 4611686018427387968, expected 0…17179869184"),
            Case(harness: "corpus-meta", name: "windows-disagree.json", input: try json(corpus, ["windows": "9"]), expected: "field 'windows' is 9, but 64 tokens make 8 windows of 8"),
            Case(harness: "cache-manifest", name: "block_size-0.json", input: try json(manifest, ["block_size": "0"]), expected: "field 'block_size' is 0, expected 1…"),
            Case(harness: "cache-manifest", name: "block_size-minus-1.json", input: try json(manifest, ["block_size": "-1"]), expected: "field 'block_size' is -1, expected 1…"),
            Case(harness: "cache-manifest", name: "k-0.json", input: try json(manifest, ["k": "0"]), expected: "field 'k' is 0, expected 1…4"),
            Case(harness: "cache-manifest", name: "files-empty.json", input: try json(manifest, ["files": "[]"]), expected: "field 'files' lists 0 files, but 4 latents in blocks of 2 need 2"),
            Case(harness: "cache-manifest", name: "display_length-2^50.json", input: try json(manifest, ["display_length": "1125899906842624"]), expected: "field 'display_length' is 1125899906842624, expected 1…4096"),
            Case(harness: "cache-manifest", name: "latents-0.json", input: try json(manifest, ["latents": "0"]), expected: "field 'latents' is 0, expected 1…16777216"),
            Case(harness: "cache-manifest", name: "k-string.json", input: try json(manifest, ["k": "\"2\""]), expected: "field 'k': expected Int"),
            Case(harness: "explanation-log", name: "id-2-to-900.jsonl", input: log { $0[1] = $0[1].replacingOccurrences(of: #"{"id":2,"#, with: #"{"id":900,"#) }, expected: "accepted"),
            Case(harness: "explanation-log", name: "id-int-max.jsonl", input: log { $0.insert($0[3].replacingOccurrences(of: #"{"id":4,"#, with: #"{"id":9223372036854775807,"#), at: 4) }, expected: "accepted"),
            // OpenAI server replies (`score --simulator-url`)
            Case(harness: "openai-reply", name: "html.json", input: Data("<html><body>\u{1B}]0;pwned\u{7}502 Bad Gateway</body></html>".utf8),
                 expected: "it is not a completion"),
            Case(harness: "openai-reply", name: "positive-logprob.json",
                 input: Data(#"{"choices":[{"logprobs":{"tokens":["7"],"token_logprobs":[3.5],"top_logprobs":[{"7":3.5}]}}]}"#.utf8),
                 expected: "log probability of 3.5"),
            Case(harness: "openai-reply", name: "no-digits.json",
                 input: Data(#"{"choices":[{"logprobs":{"tokens":["x"],"token_logprobs":[-0.1],"top_logprobs":[{"x":-0.1,"y":-2.0}]}}]}"#.utf8),
                 expected: "no digit"),
            Case(harness: "openai-reply", name: "lists-differ.json",
                 input: Data(#"{"choices":[{"logprobs":{"tokens":["7","8"],"token_logprobs":[-0.1],"top_logprobs":[{"7":-0.1}]}}]}"#.utf8),
                 expected: "differ in length"),
            Case(harness: "explanation-log", name: "garbage-line-3.jsonl", input: log { $0[2] = "{\"id\":3,\"lat\u{0}\u{1B}[2J" }, expected: "accepted"),
            // score store and rewrite cache: a damaged line is skipped on its own and warned about
            Case(harness: "score-store", name: "garbage-line-2.jsonl",
                 input: try fixtureLines("explanations/scores.jsonl") { $0[1] = String($0[1].prefix(40)) + "\u{0}\u{1B}[2J" }, expected: "accepted"),
            Case(harness: "score-store", name: "latent-negative.jsonl",
                 input: try fixtureLines("explanations/scores.jsonl") { $0[3] = $0[3].replacingOccurrences(of: #""latent":"#, with: #""latent":-"#) }, expected: "accepted"),
            Case(harness: "rewrite-simulations", name: "garbage-line-2.jsonl",
                 input: try fixtureLines("rewrite/simulations.jsonl") { $0[1] = String($0[1].prefix(30)) }, expected: "accepted"),
            Case(harness: "rewrite-simulations", name: "length-disagrees.jsonl",
                 input: try fixtureLines("rewrite/simulations.jsonl") { $0[2] = $0[2].replacingOccurrences(of: #""length":"#, with: #""length":9"#) }, expected: "accepted"),
            // workspace.json
            Case(harness: "workspace-manifest", name: "layer-minus-1.json", input: try json(workspace, ["layer": "-1"]), expected: "field 'layer' is -1, expected 0…1023"),
            Case(harness: "workspace-manifest", name: "layer-2^40.json", input: try json(workspace, ["layer": "1099511627776"]), expected: "field 'layer' is 1099511627776, expected 0…1023"),
            Case(harness: "workspace-manifest", name: "latents-0.json", input: try json(workspace, ["latents": "0"]), expected: "field 'latents' is 0, expected 1…16777216"),
            Case(harness: "workspace-manifest", name: "latents-2^62.json", input: try json(workspace, ["latents": "4611686018427387904"]), expected: "field 'latents' is 4611686018427387904, expected 1…16777216"),
            Case(harness: "workspace-manifest", name: "k-more-than-latents.json", input: try json(workspace, ["k": "33"]), expected: "field 'k' is 33, expected 1…32"),
            Case(harness: "workspace-manifest", name: "k-0.json", input: try json(workspace, ["k": "0"]), expected: "field 'k' is 0, expected 1…32"),
            Case(harness: "workspace-manifest", name: "window_length-0.json", input: try json(workspace, ["window_length": "0"]), expected: "field 'window_length' is 0, expected 1…16777216"),
            Case(harness: "workspace-manifest", name: "train_tokens-negative.json", input: try json(workspace, ["train_tokens": "-5056"]), expected: "field 'train_tokens' is -5056, expected 0…17179869184"),
            Case(harness: "workspace-manifest", name: "held_out_tokens-2^62.json", input: try json(workspace, ["held_out_tokens": "4611686018427387904"]),
                 expected: "field 'held_out_tokens' is 4611686018427387904, expected 0…17179869184"),
            Case(harness: "workspace-manifest", name: "step-tokens-negative.json",
                 input: try json(workspace, ["steps": #"{"cache": {"done": true, "seconds": 0.3, "tokens": -1}}"#]), expected: "field 'steps.cache.tokens' is -1"),
            Case(harness: "workspace-manifest", name: "evaluation-fvu-negative.json", input: try evaluation("fvu", "-1"),
                 expected: "field 'evaluation.fvu' is -1.0, expected a finite number ≥ 0"),
            Case(harness: "workspace-manifest", name: "evaluation-dead_fraction-2.json", input: try evaluation("dead_fraction", "2"),
                 expected: "field 'evaluation.dead_fraction' is 2.0, expected a number in 0…1.0"),
            Case(harness: "workspace-manifest", name: "evaluation-ce_zero_ablation-negative.json", input: try evaluation("ce_zero_ablation", "-4.5"),
                 expected: "field 'evaluation.ce_zero_ablation' is -4.5, expected a finite number ≥ 0"),
        ]
    }
}
