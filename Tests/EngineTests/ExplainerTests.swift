import Foundation
import LoupeTestSupport
import XCTest
@testable import Engine
@testable import Storage

/// The explainers: the lexical one on hand-made records (exact text), the LLM prompt's examples
/// (marks, scaling, placeholders), the prompt files, the answer cleaner, the LLM explainer on a tiny
/// random ChatML model written by the test, `--latents` specs, and resuming a bulk run.
final class ExplainerTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-explainer-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    static let words = ["<|endoftext|>", " the", " a", " bridge", " tunnel", " pier", " crossed", ".", " over", "\n", " and",
                        " $", "1", "2", "3", "4", "5", "6", "7", "8", "9"]
    static let vocabulary = TokenVocabulary(strings: words)

    static func window(_ corpusWindow: Int, start: Int = 0, focus: Int, kind: Int, _ tokens: [Int], _ acts: [Float]) -> LatentWindow {
        LatentWindow(corpusWindow: corpusWindow, start: start, focus: focus, kind: kind, tokens: tokens, activations: acts)
    }

    static func record(_ latent: Int, max: Float, _ windows: [LatentWindow]) -> LatentRecord {
        LatentRecord(latent: latent, count: windows.isEmpty ? 0 : 100, max: max, mean: max / 2, histogram: [], quantiles: [],
                     promoted: [], suppressed: [], neighbours: [], windows: windows)
    }

    /// Structures after " the" / " a": the focus tokens, a second activating token in a window, a
    /// repeated corpus position counted once, and a weak token that is neither focus nor above 30%.
    static let bridges = record(7, max: 10, [
        window(0, focus: 2, kind: 0, [6, 1, 3, 7], [0, 0, 10, 0]),
        window(1, focus: 2, kind: 0, [6, 2, 4, 7], [0, 0, 8, 0]),
        window(2, start: 4, focus: 2, kind: 0, [8, 1, 5, 3], [0, 0, 6, 4]),
        window(0, focus: 2, kind: 3, [6, 1, 3, 7], [0, 0, 10, 0]),
        window(3, focus: 1, kind: 1, [1, 7, 6, 6], [0, 2, 1, 0]),
    ])

    // MARK: lexical

    func testLexicalExplanationOfHandMadeRecords() {
        let lexical = LexicalExplainer(vocabulary: Self.vocabulary)
        // Weights: bridge 10+4, tunnel 8, pier 6, "." 2 of 30; left: " the" 18, " a" 8, " pier" 4 of 30.
        XCTAssertEqual(lexical.explain(Self.bridges),
                       #"fires on " bridge", " tunnel", " pier" (93% of activations), mostly after " the" / " a"; strongest on " bridge""#)

        // Nine digits with equal weight after " $": five listed (56%), the class, ties broken by text.
        let digits = Self.record(3, max: 5, (0..<9).map { Self.window($0, focus: 1, kind: 0, [11, 12 + $0, 7], [0, 5, 0]) })
        XCTAssertEqual(lexical.explain(digits),
                       #"fires on "1", "2", "3", "4", "5" (56% of activations; numbers: 100%), mostly after " $"; strongest on "1""#)

        // One token only: no "strongest on" repeating it; a newline escaped.
        let newline = Self.record(4, max: 2, [Self.window(0, focus: 1, kind: 0, [7, 9, 1], [0, 2, 0])])
        XCTAssertEqual(lexical.explain(newline), #"fires on "\n" (100% of activations), mostly after ".""#)

        XCTAssertEqual(lexical.explain(Self.record(5, max: 0, [])), "never fires on the corpus")
    }

    func testLexicalIsFast() {
        let lexical = LexicalExplainer(vocabulary: Self.vocabulary)
        let windows = (0..<80).map { i in
            Self.window(i, focus: 16, kind: i % 11, (0..<32).map { ($0 * 7 + i) % 21 }, (0..<32).map { Float(($0 * 13 + i) % 10) })
        }
        let r = Self.record(1, max: 10, windows)
        let start = Clock.now
        for _ in 0..<100 { _ = lexical.explain(r) }
        let perLatent = (Clock.now - start) / 100
        print(String(format: "lexical explainer: %.3f ms per latent (80 windows of 32 tokens)", perLatent * 1000))
        XCTAssertLessThan(perLatent, 0.01)
    }

    // MARK: the LLM prompt

    func testExamplesMarkMergeAndScale() {
        // " tunnel" and "." are adjacent and both above 30% of the example's peak: one mark.
        let w = Self.window(0, focus: 2, kind: 0, [6, 1, 3, 10, 4, 7, 9, 0], [0, 0, 9.6, 0, 6.2, 3.0, 0, 0])
        var options = ExampleOptions()
        options.after = 5
        XCTAssertEqual(ExplainerExamples.format(w, number: 1, latentMax: 12, vocabulary: Self.vocabulary, options: options), """
            Example 1: crossed the <<bridge>> and <<tunnel.>>\\n<endoftext>
            Activations: ("bridge", 8), ("tunnel", 5), (".", 3)
            """)
        // The default crop keeps 4 tokens after the focus.
        XCTAssertEqual(ExplainerExamples.format(w, number: 2, latentMax: 12, vocabulary: Self.vocabulary).split(separator: "\n")[0],
                       "Example 2: crossed the <<bridge>> and <<tunnel.>>\\n")
        XCTAssertEqual([0, 0.04, 0.05, 1.2, 6, 12, 13].map { ExplainerExamples.scale($0, max: 12) }, [0, 1, 1, 1, 5, 10, 10])
    }

    func testExampleSelectionTakesTopThenQuantilesHighestFirst() {
        var windows: [LatentWindow] = []
        for kind in [0, 0, 0, 0, 1, 1, 2, 5, 10, 10] {
            windows.append(Self.window(windows.count, focus: 0, kind: kind, [3], [1]))
        }
        var options = ExampleOptions()
        options.quantileWindows = 5
        let picked = ExplainerExamples.select(Self.record(1, max: 1, windows), options: options)
        XCTAssertEqual(picked.map(\.corpusWindow), [0, 1, 2, 8, 7, 6, 4, 9])
    }

    func testPromptFilesCommentsAndPlaceholders() throws {
        XCTAssertEqual(try ExplainerPrompt.parse("# header\n# more\nHello {examples}\n# inline comment\nBye\n", file: "u.txt",
                                                  required: ["examples"]), "Hello {examples}\nBye")
        XCTAssertThrowsError(try ExplainerPrompt.parse("# c\nno examples here", file: "/x/explainer-user.txt", required: ["examples"])) {
            XCTAssertTrue("\($0)".contains("/x/explainer-user.txt") && "\($0)".contains("{examples}"), "\($0)")
        }
        XCTAssertThrowsError(try ExplainerPrompt.parse("{examples} {exmaples}", file: "u.txt", required: ["examples"])) {
            XCTAssertTrue("\($0)".contains("u.txt") && "\($0)".contains("{exmaples}"), "\($0)")
        }
        XCTAssertThrowsError(try ExplainerPrompt.parse("# only comments\n", file: "s.txt", required: []))
        XCTAssertEqual(try ExplainerPrompt.parse("# only comments\n", file: "a.txt", required: [], allowEmpty: true), "")
        XCTAssertTrue(ExplainerPrompt(system: "", user: "", answer: "on the word \"").answerOpensQuote)
        XCTAssertFalse(ExplainerPrompt(system: "", user: "", answer: "on \"a\"").answerOpensQuote)
        XCTAssertEqual(try ExplainerPrompt.parse("JSON like {\"a\": 1} is fine", file: "s.txt", required: []), "JSON like {\"a\": 1} is fine")

        // A folder with only the user file: the system prompt falls back to the built-in one.
        try "# mine\nExamples:\n{examples}\nWhat is it?".write(to: dir.appendingPathComponent(ExplainerPrompt.userFile), atomically: true, encoding: .utf8)
        try "# let it answer freely\n".write(to: dir.appendingPathComponent(ExplainerPrompt.answerFile), atomically: true, encoding: .utf8)
        let loaded = try ExplainerPrompt.load(from: dir)
        XCTAssertEqual(loaded.system, ExplainerPrompt.builtIn.system)
        XCTAssertEqual(loaded.answer, "")
        XCTAssertEqual(loaded.userMessage(examples: "E1"), "Examples:\nE1\nWhat is it?")

        // The shipped files parse and say what the built-in copy says.
        let shipped = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("data/prompts")
        if FileManager.default.fileExists(atPath: shipped.appendingPathComponent(ExplainerPrompt.userFile).path) {
            XCTAssertEqual(try ExplainerPrompt.load(from: shipped), ExplainerPrompt.builtIn)
        }
    }

    func testCleanerMakesOneLine() {
        XCTAssertEqual(ExplanationCleaner.clean("  Explanation: the word \"bridge\"\nmore text"), "the word \"bridge\"")
        XCTAssertEqual(ExplanationCleaner.clean("[EXPLANATION]: Common idioms."), "Common idioms.")
        XCTAssertEqual(ExplanationCleaner.clean("\n\n\"structures over <<water>>\""), "structures over water")
        XCTAssertEqual(ExplanationCleaner.clean("**Answer:** 'numbers  after a dollar sign'"), "numbers after a dollar sign")
        XCTAssertEqual(ExplanationCleaner.clean("The neuron detects: years in dates"), "years in dates")
        XCTAssertEqual(ExplanationCleaner.clean("The neuron fires on the word \"which\""), "the word \"which\"")
        XCTAssertEqual(ExplanationCleaner.clean("\"war\" and \"peace\""), "\"war\" and \"peace\"")
        XCTAssertEqual(ExplanationCleaner.clean("  \n \" \" "), "")
    }

    // MARK: the LLM explainer on a tiny model

    func testLLMExplainerRunsOnATinyModel() throws {
        let path = dir.appendingPathComponent("tiny-chat.gguf").path
        // The byte-level toy vocabulary has the ChatML control tokens; a context of 1024 holds the prompts.
        try TinyLlama(dim: 32, ffnDim: 64, contextLength: 1024, vocabulary: .bytes, seed: 3).write(to: path)
        let session = try Session(modelPath: path)
        // The base model's tokens are this test's words; the explainer tokenizes their text itself.
        let prompt = ExplainerPrompt(system: "Explain the neuron.", user: "{examples}\nWhat does it detect?")
        let explainer = try LLMExplainer(session: session, vocabulary: Self.vocabulary, prompt: prompt)
        explainer.maxNewTokens = 12

        let text = explainer.promptText(Self.bridges)
        XCTAssertTrue(text.hasPrefix("<|im_start|>system\nExplain the neuron.<|im_end|>\n<|im_start|>user\nExample 1: crossed the <<bridge>>."), text)
        XCTAssertTrue(text.hasSuffix("What does it detect?<|im_end|>\n<|im_start|>assistant\n"), text)
        XCTAssertFalse(text.contains("{examples}"))
        XCTAssertEqual(text.components(separatedBy: "Activations:").count - 1, 4, "four distinct positions; the repeated one shown once")

        let first = try explainer.explain(Self.bridges)
        XCTAssertFalse(first.isEmpty)
        XCTAssertFalse(first.contains("\n"))
        XCTAssertLessThanOrEqual(explainer.lastGeneratedTokens, 12)
        // The system prompt's cache is reused: the same answer again, and from a fresh explainer.
        _ = try explainer.explain(Self.record(2, max: 5, [Self.window(9, focus: 1, kind: 0, [2, 4, 7], [0, 5, 0])]))
        XCTAssertEqual(try explainer.explain(Self.bridges), first)
        XCTAssertEqual(try LLMExplainer(session: session, vocabulary: Self.vocabulary, prompt: prompt).explainWithLimit(12, Self.bridges), first)

        // A tight budget drops the last examples.
        explainer.maxPromptTokens = explainer.userTurn(Self.bridges).tokens.count
        XCTAssertLessThan(explainer.userTurn(Self.bridges).examples, 4)

        // An answer start ending in an open quote: the prompt ends with it, the answer is one quoted phrase.
        let quoting = try LLMExplainer(session: session, vocabulary: Self.vocabulary,
                                       prompt: ExplainerPrompt(system: "Explain.", user: "{examples}", answer: "It fires on \""))
        quoting.maxNewTokens = 6
        XCTAssertTrue(quoting.promptText(Self.bridges).hasSuffix("<|im_start|>assistant\nIt fires on \""))
        let quoted = try quoting.explain(Self.bridges)
        XCTAssertTrue(quoted.hasPrefix("It fires on \"") && quoted.hasSuffix("\"") && !quoted.contains("\n")
                      || quoted.hasSuffix("[lexical fallback: the model's answer was empty]"), quoted)
    }

    // MARK: selection and resuming

    func testLatentSpecs() throws {
        let counts = [5, 0, 9, 9, 1, 0, 30]
        XCTAssertEqual(try LatentSelection.parse("0-3, 5,top2,all"), [.range(0...3), .range(5...5), .top(2), .all])
        XCTAssertEqual(try LatentSelection.resolve("top3", counts: counts), [6, 2, 3])
        XCTAssertEqual(try LatentSelection.resolve("all", counts: counts), [0, 2, 3, 4, 6])
        XCTAssertEqual(try LatentSelection.resolve("5,1-2,top1,2", counts: counts), [5, 1, 2, 6])
        XCTAssertEqual(try LatentSelection.resolve("top100", counts: counts), [6, 2, 3, 0, 4])
        for bad in ["", "x", "top", "top0", "3-", "-3", "4-2", "1,,2", "1-2-3", "٣"] {
            XCTAssertThrowsError(try LatentSelection.resolve(bad, counts: counts), "'\(bad)'")
        }
        XCTAssertThrowsError(try LatentSelection.resolve("0-7", counts: counts)) { XCTAssertTrue("\($0)".contains("latent 7"), "\($0)") }
    }

    func testBulkRunResumesAndKeepsPeoplesExplanations() throws {
        let store = try ExplanationStore(directory: dir.appendingPathComponent("explanations"))
        try store.save(latent: 1, text: "my own words", source: "user")
        try store.save(latent: 3, text: "an llm guess", source: "llm")
        try store.save(latent: 5, text: "imported", source: "import")
        let records = (0..<6).map { i in
            i == 4 ? Self.record(4, max: 0, []) : Self.record(i, max: 10, [Self.window(i, focus: 1, kind: 0, [1, 3 + i % 3, 7], [0, 10, 0])])
        }
        let lexical = LexicalExplainer(vocabulary: Self.vocabulary)
        func run(redo: Bool = false, stopAfter: Int = .max) throws -> ExplainJob.Summary {
            try ExplainJob.run(latents: Array(0..<6), explainer: lexical, records: { records[$0] }, store: store, redo: redo,
                               reporter: StoppingReporter(stopAfter: stopAfter))
        }

        // Stopped after two latents (Ctrl-C): what is done is saved.
        var s = try run(stopAfter: 2)
        XCTAssertEqual([s.explained, s.done, s.personal, s.dead], [2, 0, 2, 0])
        XCTAssertTrue(s.stopped)
        XCTAssertEqual(store.current(0)?.source, "lexical")
        XCTAssertEqual(store.current(2)?.source, "lexical")
        XCTAssertEqual(store.current(3)?.text, "an llm guess")

        // The next run continues: 3 (over the llm's version) and the dead 4.
        s = try run()
        XCTAssertEqual([s.explained, s.done, s.personal, s.dead], [1, 2, 2, 1])
        XCTAssertFalse(s.stopped)
        XCTAssertEqual(store.current(3)?.source, "lexical")
        XCTAssertEqual(store.history(3).map(\.source), ["llm", "lexical"])

        // Nothing left; --redo redoes the machine's but never a person's.
        s = try run()
        XCTAssertEqual([s.explained, s.done, s.personal, s.dead], [0, 3, 2, 1])
        s = try run(redo: true)
        XCTAssertEqual([s.explained, s.personal], [3, 2])
        XCTAssertEqual(store.current(1)?.text, "my own words")
        XCTAssertEqual(store.current(5)?.text, "imported")
        XCTAssertEqual(store.history(0).count, 1, "the same text again is not a new version")

        // A person's clearing counts as theirs too.
        try store.save(latent: 0, text: "", source: "user")
        XCTAssertEqual(ExplainJob.decision(history: store.history(0), source: "lexical", redo: true), .personal)
    }
}

extension LLMExplainer {
    fileprivate func explainWithLimit(_ tokens: Int, _ record: LatentRecord) throws -> String {
        maxNewTokens = tokens
        return try explain(record)
    }
}

/// Stops the job (as Ctrl-C does) once `stopAfter` latents are done.
private final class StoppingReporter: ProgressReporter {
    let stopAfter: Int
    var done = 0
    init(stopAfter: Int) { self.stopAfter = stopAfter }
    func begin(_ step: String, total: Int, unit: String) {}
    func advance(_ done: Int, detail: String) { self.done = done }
    func end(_ step: String, summary: String) {}
    func note(_ message: String) {}
    var shouldStop: Bool { done >= stopAfter }
}
