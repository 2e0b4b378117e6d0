import Formats

/// A tokenizer that cannot be built from the vocabulary, merges or settings it was given.
/// The message names the token, merge or setting at fault.
public struct TokenizerError: Error, Equatable, CustomStringConvertible {
    /// What is wrong, in a sentence a user can act on.
    public let message: String

    /// Makes an error carrying `message`, cut to 400 characters: it may quote tokens or merges from
    /// a damaged file, which can be megabytes long.
    public init(_ message: String) { self.message = message.count <= 400 ? message : message.prefix(400) + "…" }

    public var description: String { message }
}

/// A byte-level BPE tokenizer (GPT-2 style), exact to Hugging Face tokenizers and llama.cpp.
///
/// Encoding: special tokens are cut out of the text first; each stretch between them is split by
/// the pre-tokenizer, and each piece is spelled in GPT-2's byte-to-unicode alphabet and merged by
/// rank. Immutable after `init`, apart from an internal thread-safe cache, so one instance can be
/// shared across threads.
public final class BPETokenizer: @unchecked Sendable {
    /// Token types as GGUF numbers them.
    enum TokenType {
        static let control = 3, userDefined = 4
    }

    private let tokens: [String]
    private let types: [Int]
    private let vocab: [String: Int]
    let merges: BPEMerges
    private let preTokenizer: PreTokenizer
    /// All tokens' bytes, back to back; token `i` is `bytes[offsets[i]..<offsets[i + 1]]`.
    private let bytes: [UInt8]
    private let offsets: [Int]
    /// Special tokens by their first byte, longest first: (UTF-8 bytes, id).
    private let specials: [[([UInt8], Int)]]
    private let cache = PieceCache()
    private let addBOS: Bool

    /// The beginning-of-sequence token, if the vocabulary names one.
    public let bosId: Int?
    /// The end-of-sequence token, if the vocabulary names one.
    public let eosId: Int?
    /// The number of tokens in the vocabulary.
    public var count: Int { tokens.count }

    /// Builds a tokenizer from a vocabulary in byte-level spelling (`"Ġthe"`), GGUF token types
    /// (1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte), merges in rank order as
    /// `"left right"`, and a pre-tokenizer name (`"smollm"`, `"gpt2"` or `"default"`).
    /// Throws `TokenizerError` naming the first inconsistency found.
    public init(tokens: [String], tokenTypes: [Int], merges: [String], preTokenizer: String,
                bosId: Int?, eosId: Int?, addBOS: Bool) throws {
        guard !tokens.isEmpty else { throw TokenizerError("the vocabulary is empty") }
        guard tokens.count <= Limits.vocabSize else {
            throw TokenizerError("the vocabulary has \(tokens.count) tokens, more than the limit \(Limits.vocabSize)")
        }
        guard tokenTypes.count == tokens.count else {
            throw TokenizerError("there are \(tokens.count) tokens but \(tokenTypes.count) token types")
        }
        if let bad = tokenTypes.firstIndex(where: { !(0...6).contains($0) }) {
            throw TokenizerError("token \(bad) ('\(tokens[bad])') has type \(tokenTypes[bad]); types are 0 to 6")
        }
        guard let kind = PreTokenizer.Kind(rawValue: preTokenizer) else {
            let known = PreTokenizer.Kind.allCases.map { "'\($0.rawValue)'" }.joined(separator: ", ")
            throw TokenizerError("pre-tokenizer '\(preTokenizer)' is not implemented (supported: \(known))")
        }
        for (name, id) in [("beginning-of-sequence", bosId), ("end-of-sequence", eosId)] {
            if let id, !(0..<tokens.count).contains(id) {
                throw TokenizerError("the \(name) token id \(id) is outside the vocabulary of \(tokens.count)")
            }
        }
        if addBOS && bosId == nil { throw TokenizerError("a beginning-of-sequence token is to be added but none is set") }

        var vocab: [String: Int] = [:]
        vocab.reserveCapacity(tokens.count)
        for (id, token) in tokens.enumerated() {
            if let first = vocab.updateValue(id, forKey: token) {
                throw TokenizerError("token '\(token)' appears twice (ids \(first) and \(id))")
            }
        }

        // Vocabularies may lack a few bytes (SmolLM2 has no token for 0x04, 0xF1, ...); such
        // bytes are dropped, as Hugging Face's BPE without an unknown token drops them.
        var byteTokens = [Int32](repeating: -1, count: 256)
        for b in 0..<256 {
            if let id = vocab[String(ByteLevel.scalar[b])] { byteTokens[b] = Int32(id) }
        }

        var table: [UInt64: UInt64] = [:]
        table.reserveCapacity(merges.count)
        for (rank, merge) in merges.enumerated() {
            let scalars = merge.unicodeScalars
            guard let space = scalars.dropFirst().firstIndex(of: " ") else {
                throw TokenizerError("merge \(rank) '\(merge)' is not two tokens separated by a space")
            }
            let left = String(scalars[..<space]), right = String(scalars[scalars.index(after: space)...])
            guard !right.isEmpty else { throw TokenizerError("merge \(rank) '\(merge)' has an empty right part") }
            guard let l = vocab[left] else { throw TokenizerError("merge \(rank) '\(merge)': '\(left)' is not a token") }
            guard let r = vocab[right] else { throw TokenizerError("merge \(rank) '\(merge)': '\(right)' is not a token") }
            guard let m = vocab[left + right] else {
                throw TokenizerError("merge \(rank) '\(merge)': the result '\(left + right)' is not a token")
            }
            let key = UInt64(l) << 32 | UInt64(r)
            if table[key] == nil { table[key] = UInt64(rank) << 32 | UInt64(m) }
        }

        var bytes: [UInt8] = []
        var offsets: [Int] = [0]
        var specials = [[([UInt8], Int)]](repeating: [], count: 256)
        for (id, token) in tokens.enumerated() {
            let type = tokenTypes[id]
            if type == TokenType.control || type == TokenType.userDefined {
                let raw = Array(token.utf8)
                bytes += raw
                if let first = raw.first { specials[Int(first)].append((raw, id)) }
            } else {
                bytes += ByteLevel.decode(token) ?? Array(token.utf8)
            }
            offsets.append(bytes.count)
        }
        for b in 0..<256 { specials[b].sort { $0.0.count > $1.0.count } }

        self.tokens = tokens
        self.types = tokenTypes
        self.vocab = vocab
        self.merges = BPEMerges(table: table, byteTokens: byteTokens)
        self.preTokenizer = PreTokenizer(kind: kind)
        self.bytes = bytes
        self.offsets = offsets
        self.specials = specials
        self.bosId = bosId
        self.eosId = eosId
        self.addBOS = addBOS
    }

    /// Reads the tokenizer of a GGUF model: `tokenizer.ggml.{model,tokens,token_type,merges}`,
    /// and when present `pre` (else `"default"`), `bos_token_id`, `eos_token_id`, `add_bos_token`.
    /// Missing or ill-typed required keys throw the reader's `FormatError`; a model other than
    /// `"gpt2"` or an unknown pre-tokenizer throws `TokenizerError`.
    public convenience init(gguf f: GGUFFile) throws {
        let model = try f.string("tokenizer.ggml.model")
        guard model == "gpt2" else {
            throw TokenizerError("\(f.path): tokenizer model '\(model)' is not supported (only 'gpt2', byte-level BPE)")
        }
        func optionalInt(_ key: String) throws -> Int? { f.metadata[key] == nil ? nil : try f.int(key) }
        var addBOS = false
        if let v = f.metadata["tokenizer.ggml.add_bos_token"] {
            guard let b = v.bool else {
                throw FormatError.wrongValueType(file: f.path, key: "tokenizer.ggml.add_bos_token", expected: "a bool")
            }
            addBOS = b
        }
        let pre = f.metadata["tokenizer.ggml.pre"] == nil ? "default" : try f.string("tokenizer.ggml.pre")
        do {
            try self.init(tokens: try f.strings("tokenizer.ggml.tokens"),
                          tokenTypes: try f.ints("tokenizer.ggml.token_type"),
                          merges: try f.strings("tokenizer.ggml.merges"),
                          preTokenizer: pre,
                          bosId: try optionalInt("tokenizer.ggml.bos_token_id"),
                          eosId: try optionalInt("tokenizer.ggml.eos_token_id"),
                          addBOS: addBOS)
        } catch let e as TokenizerError {
            throw TokenizerError("\(f.path): \(e.message)")
        }
    }

    // MARK: encoding

    /// The token ids of `text`, with the beginning-of-sequence token first if the model asks for
    /// it. With `parseSpecial`, control and user-defined tokens written in the text (such as
    /// `<|im_end|>`) become their ids; otherwise they are encoded as ordinary text.
    public func encode(_ text: String, parseSpecial: Bool = true) -> [Int] {
        var out: [Int] = []
        out.reserveCapacity(text.utf8.count / 3 + 2)
        if addBOS, let bosId { out.append(bosId) }
        var text = text
        text.withUTF8 { encode(bytes: $0, parseSpecial: parseSpecial, into: &out) }
        return out
    }

    private func encode(bytes buf: UnsafeBufferPointer<UInt8>, parseSpecial: Bool, into out: inout [Int]) {
        var scratch = PreTokenizer.Scalars()
        var pieces: [Range<Int>] = []
        var start = 0
        if parseSpecial {
            var i = 0
            scan: while i < buf.count {
                for (raw, id) in specials[Int(buf[i])] where i + raw.count <= buf.count {
                    if raw.indices.allSatisfy({ raw[$0] == buf[i + $0] }) {
                        encodeText(buf, start..<i, &scratch, &pieces, &out)
                        out.append(id)
                        i += raw.count
                        start = i
                        continue scan
                    }
                }
                i += 1
            }
        }
        encodeText(buf, start..<buf.count, &scratch, &pieces, &out)
    }

    /// Encodes text without special tokens: pre-tokenize, then BPE each piece (cached).
    private func encodeText(_ buf: UnsafeBufferPointer<UInt8>, _ range: Range<Int>,
                            _ scratch: inout PreTokenizer.Scalars, _ pieces: inout [Range<Int>],
                            _ out: inout [Int]) {
        guard !range.isEmpty else { return }
        let segment = UnsafeBufferPointer(rebasing: buf[range])
        pieces.removeAll(keepingCapacity: true)
        preTokenizer.split(segment, scratch: &scratch, into: &pieces)
        for piece in pieces {
            let word = UnsafeBufferPointer(rebasing: segment[piece])
            if word.count == 1 {
                let id = merges.byteTokens[Int(word[0])]
                if id >= 0 { out.append(Int(id)) }
                continue
            }
            if word.count > PieceKey.capacity {
                for id in merges.encode(word) { out.append(Int(id)) }
                continue
            }
            let key = PieceKey(word)
            let ids: [Int32]
            if let hit = cache.get(key) {
                ids = hit
            } else {
                ids = merges.encode(word)
                cache.put(key, ids)
            }
            for id in ids { out.append(Int(id)) }
        }
    }

    // MARK: decoding and inspection

    /// The exact bytes the tokens stand for; ids outside the vocabulary contribute nothing.
    public func decode(_ ids: [Int]) -> [UInt8] {
        var out: [UInt8] = []
        for id in ids where id >= 0 && id < tokens.count {
            out += bytes[offsets[id]..<offsets[id + 1]]
        }
        return out
    }

    /// The decoded text, with byte sequences that are not valid UTF-8 replaced by U+FFFD.
    public func decodeText(_ ids: [Int]) -> String {
        String(decoding: decode(ids), as: UTF8.self)
    }

    /// The bytes of one token (empty for an id outside the vocabulary). Special tokens give their
    /// text, e.g. `<|im_end|>`.
    public func tokenBytes(_ id: Int) -> [UInt8] {
        guard id >= 0 && id < tokens.count else { return [] }
        return Array(bytes[offsets[id]..<offsets[id + 1]])
    }

    /// The token as the vocabulary spells it, e.g. `"Ġthe"` (empty for an id outside it).
    public func tokenString(_ id: Int) -> String {
        guard id >= 0 && id < tokens.count else { return "" }
        return tokens[id]
    }

    /// Whether the token is a control or user-defined token, such as `<|im_start|>`.
    public func isSpecial(_ id: Int) -> Bool {
        guard id >= 0 && id < tokens.count else { return false }
        return types[id] == TokenType.control || types[id] == TokenType.userDefined
    }

    /// The id of a token given in the vocabulary's spelling (`"Ġthe"`, `"<|im_end|>"`).
    public func id(of token: String) -> Int? { vocab[token] }

    /// The token for a human: special tokens as their text; otherwise its bytes with spaces shown
    /// as `·`, newlines as `↵`, tabs as `→`, and other control bytes and bytes that are not valid
    /// UTF-8 on their own as `<0xAB>`.
    public func display(_ id: Int) -> String {
        if isSpecial(id) { return tokens[id] }
        return TokenDisplay.render(tokenBytes(id))
    }
}
