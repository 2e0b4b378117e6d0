import XCTest
@testable import Tokenizer

/// Tests that need no model file: a hand-built vocabulary, the pre-tokenizer, display, templates.
final class TokenizerUnitTests: XCTestCase {
    /// The 256 byte tokens (ids 0–255 in byte order), then `extra`, then `<|im_end|>` (control).
    func tiny(merges: [String], extra: [String], pre: String = "smollm") throws -> BPETokenizer {
        let bytes = (0..<256).map { String(ByteLevel.scalar[$0]) }
        let tokens = bytes + extra + ["<|im_end|>"]
        let types = [Int](repeating: 1, count: tokens.count - 1) + [3]
        return try BPETokenizer(tokens: tokens, tokenTypes: types, merges: merges, preTokenizer: pre,
                                bosId: nil, eosId: tokens.count - 1, addBOS: false)
    }

    func pieces(_ text: String, _ kind: PreTokenizer.Kind) -> [String] {
        var scratch = PreTokenizer.Scalars()
        var ranges: [Range<Int>] = []
        let bytes = Array(text.utf8)
        bytes.withUnsafeBufferPointer { PreTokenizer(kind: kind).split($0, scratch: &scratch, into: &ranges) }
        return ranges.map { String(decoding: bytes[$0], as: UTF8.self) }
    }

    func testMergesApplyLowestRankFirst() throws {
        // "b c" outranks "a b", so "abc" becomes a + bc even though "ab c" exists.
        let t = try tiny(merges: ["b c", "a b", "ab c"], extra: ["bc", "ab", "abc"])
        XCTAssertEqual(t.encode("abc").map(t.tokenString), ["a", "bc"])
        let u = try tiny(merges: ["a b", "b c", "ab c"], extra: ["ab", "bc", "abc"])
        XCTAssertEqual(u.encode("abc").map(u.tokenString), ["abc"])
        XCTAssertEqual(u.encode("abcab abc").map(u.tokenString), ["abc", "ab", "Ġ", "abc"])
    }

    func testEqualRanksMergeLeftmostFirst() throws {
        let t = try tiny(merges: ["a a", "aa a"], extra: ["aa", "aaa"])
        XCTAssertEqual(t.encode("aaa").map(t.tokenString), ["aaa"])
        XCTAssertEqual(t.encode("aaaa").map(t.tokenString), ["aa", "aa"])
        let s = try tiny(merges: ["a a"], extra: ["aa"])
        XCTAssertEqual(s.encode("aaa").map(s.tokenString), ["aa", "a"])
        let u = try tiny(merges: ["a a", "aa aa"], extra: ["aa", "aaaa"])
        XCTAssertEqual(u.encode("aaaaa").map(u.tokenString), ["aaaa", "a"])
    }

    func testLongWordMergingAgreesWithShort() throws {
        let t = try tiny(merges: ["a b", "b a", "a a", "ab ab", "ba a", "aa b", "abab a", "b b", "bb bb", "aab ba"],
                         extra: ["ab", "ba", "aa", "abab", "baa", "aab", "ababa", "bb", "bbbb", "aabba"])
        var rng = SystemRandomNumberGenerator()
        for length in [2, 3, 5, 17, 40, 129, 400] {
            for _ in 0..<50 {
                let word = (0..<length).map { _ in Bool.random(using: &rng) ? t.id(of: "a")! : t.id(of: "b")! }.map(Int32.init)
                XCTAssertEqual(t.merges.mergeLong(word), t.merges.mergeShort(word), "\(word)")
            }
        }
        let spaces = String(repeating: " ", count: 5000)
        XCTAssertEqual(t.decode(t.encode(spaces)), Array(spaces.utf8))
    }

    func testSpecialTokensSplitTheText() throws {
        let t = try tiny(merges: ["h i"], extra: ["hi"])
        let end = t.id(of: "<|im_end|>")!
        XCTAssertEqual(t.encode("hi<|im_end|>hi<|im_end|>"), [256, end, 256, end])
        XCTAssertEqual(t.encode("<|im_end").count, 8)
        XCTAssertFalse(t.encode("hi<|im_end|>", parseSpecial: false).contains(end))
        XCTAssertEqual(t.decode(t.encode("x<|im_end|>y")), Array("x<|im_end|>y".utf8))
        XCTAssertTrue(t.isSpecial(end))
        XCTAssertEqual(t.encode(""), [])
    }

    func testBytesWithoutTokensAreDropped() throws {
        // No token spells byte 0x04 ('Ą'): it vanishes and the two '!' around it merge.
        let tokens = (0..<256).filter { $0 != 4 }.map { String(ByteLevel.scalar[$0]) } + ["!!"]
        let t = try BPETokenizer(tokens: tokens, tokenTypes: [Int](repeating: 1, count: tokens.count), merges: ["! !"],
                                 preTokenizer: "gpt2", bosId: nil, eosId: nil, addBOS: false)
        XCTAssertEqual(t.encode("!\u{04}!").map(t.tokenString), ["!!"])
        XCTAssertEqual(t.encode("a\u{04}").map(t.tokenString), ["a"])
    }

    func testValidationNamesTheProblem() throws {
        XCTAssertThrowsError(try tiny(merges: ["a q"], extra: [])) { error in
            XCTAssertTrue("\(error)".contains("'a q'"), "\(error)")
        }
        XCTAssertThrowsError(try tiny(merges: ["ab"], extra: ["ab"]))
        XCTAssertThrowsError(try tiny(merges: [], extra: [], pre: "llama3")) { error in
            XCTAssertTrue("\(error)".contains("llama3"), "\(error)")
        }
        XCTAssertThrowsError(try BPETokenizer(tokens: ["a"], tokenTypes: [1, 1], merges: [], preTokenizer: "gpt2",
                                              bosId: nil, eosId: nil, addBOS: false))
        XCTAssertThrowsError(try BPETokenizer(tokens: ["a"], tokenTypes: [1], merges: [], preTokenizer: "gpt2",
                                              bosId: nil, eosId: 5, addBOS: false))
        XCTAssertThrowsError(try tiny(merges: [], extra: ["a"]))  // duplicate of byte token "a"
    }

    func testWhitespaceRuns() {
        XCTAssertEqual(pieces("Hello  world", .gpt2), ["Hello", " ", " world"])
        XCTAssertEqual(pieces("a \n b", .gpt2), ["a", " \n", " b"])
        XCTAssertEqual(pieces("x\n\ny", .gpt2), ["x", "\n", "\n", "y"])
        XCTAssertEqual(pieces("trailing   ", .gpt2), ["trailing", "   "])
        XCTAssertEqual(pieces("  lead", .gpt2), [" ", " lead"])
        XCTAssertEqual(pieces("a\tb", .gpt2), ["a", "\t", "b"])
        XCTAssertEqual(pieces("a\u{3000}b", .gpt2), ["a", "\u{3000}", "b"])
    }

    func testContractionsAndPunctuation() {
        XCTAssertEqual(pieces("don't I'll 'S", .gpt2), ["don", "'t", " I", "'ll", " '", "S"])
        XCTAssertEqual(pieces("we're they've I'd", .gpt2), ["we", "'re", " they", "'ve", " I", "'d"])
        XCTAssertEqual(pieces("!!'s ?!", .gpt2), ["!!'", "s", " ?!"])
        XCTAssertEqual(pieces("e\u{301}\u{301}x", .gpt2), ["e", "\u{301}\u{301}", "x"])
    }

    func testDigits() {
        XCTAssertEqual(pieces("abc 123", .gpt2), ["abc", " 123"])
        XCTAssertEqual(pieces("abc 123", .smollm), ["abc", " ", "1", "2", "3"])
        XCTAssertEqual(pieces("a  1", .smollm), ["a", "  ", "1"])
        XCTAssertEqual(pieces("v2.5", .smollm), ["v", "2", ".", "5"])
        XCTAssertEqual(pieces("x 1234567", .default), ["x", " ", "123", "456", "7"])
        XCTAssertEqual(pieces("a+=b", .default), ["a", "+=", "b"])
    }

    func testDisplay() throws {
        let t = try tiny(merges: ["Ġ a"], extra: ["Ġa"])
        XCTAssertEqual(t.display(t.id(of: "Ġa")!), "·a")
        XCTAssertEqual(t.display(Int(0x0A)), "↵")
        XCTAssertEqual(t.display(Int(0x09)), "→")
        XCTAssertEqual(t.display(Int(0x0D)), "<0x0D>")
        XCTAssertEqual(t.display(0xE2), "<0xE2>")
        XCTAssertEqual(t.display(t.id(of: "<|im_end|>")!), "<|im_end|>")
        let euro = t.encode("€")
        XCTAssertEqual(euro.count, 3)
        XCTAssertEqual(t.decodeText(Array(euro.prefix(2))), "\u{FFFD}")
        XCTAssertEqual(t.decodeText(euro), "€")
        XCTAssertEqual(t.tokenBytes(t.id(of: "Ġa")!), [0x20, 0x61])
    }

    static let smolTemplate = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"

    func testChatTemplate() throws {
        let t = try ChatTemplate(jinja: Self.smolTemplate)
        let system = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
        XCTAssertEqual(t.defaultSystemPrompt, system)
        XCTAssertEqual(t.format([(role: "user", content: "hi")], addGenerationPrompt: true),
                       "<|im_start|>system\n\(system)<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")
        XCTAssertEqual(t.format([(role: "system", content: "Be brief."), (role: "user", content: "hi"),
                                 (role: "assistant", content: "Hello!")], addGenerationPrompt: false),
                       "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n")
        XCTAssertEqual(t.format([], addGenerationPrompt: true), "<|im_start|>assistant\n")
        let escaped = try ChatTemplate(jinja: Self.smolTemplate.replacingOccurrences(of: "\n", with: "\\n"))
        XCTAssertEqual(escaped.defaultSystemPrompt, system)
        let plain = try ChatTemplate(jinja: "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}")
        XCTAssertNil(plain.defaultSystemPrompt)
        XCTAssertThrowsError(try ChatTemplate(jinja: "{{ bos_token }}[INST] {{ m }} [/INST]"))
    }
}
