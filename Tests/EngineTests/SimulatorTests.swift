import Foundation
import LoupeTestSupport
import Tokenizer
import XCTest
@testable import Engine
@testable import Storage

/// The simulator: prompt templates (parsing, placeholders, the prefix/suffix split in token space,
/// the marked token), the local backend on a tiny random model written by the test (the cached,
/// batched path equals running every whole prompt from scratch), calibration on hand-made
/// distributions, and on the real model (skipped without it) a right explanation beating a wrong one.
final class SimulatorTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-simulator-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    /// A context as texts, with made-up ids (prompts only read the texts).
    func context(_ texts: [String]) -> SimulationContext { SimulationContext(tokens: texts.indices.map { $0 + 1 }, texts: texts) }

    let farmer = ["The", " farmer", " fed", " the", " dog", "."]

    // MARK: templates

    func testShippedTemplatesEqualTheBuiltInOnesAndParse() throws {
        let prompts = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("data/prompts")
        for mode in SimulationMode.allCases {
            let file = try String(contentsOf: prompts.appendingPathComponent(SimulatorTemplate.fileName(mode)), encoding: .utf8)
            XCTAssertEqual(file, SimulatorTemplate.builtIn(mode), "data/prompts/\(SimulatorTemplate.fileName(mode)) differs from the built-in copy")
            let t = try SimulatorTemplate.load(mode, directory: prompts)
            XCTAssertEqual(t.messages.first?.role, "system")
            XCTAssertEqual(t, try SimulatorTemplate(parsing: SimulatorTemplate.builtIn(mode), source: t.source))
        }
        XCTAssertEqual(try SimulatorTemplate.load(.allAtOnce, directory: prompts).placeholder, "0")
        XCTAssertEqual(try SimulatorTemplate.load(.lastToken, directory: prompts).placeholder, "unknown")
    }

    func testLoadReadsTheFileAndFallsBackToTheBuiltInOnlyWhenItIsMissing() throws {
        let fallback = try SimulatorTemplate.load(.lastToken, directory: dir)
        XCTAssertEqual(fallback.source, "built-in")
        let text = "# mine\nplaceholder: ?\n=== user\nSay {{explanation}}\n=== assistant\n{{context}}\n\n"
        try text.write(to: dir.appendingPathComponent("simulator-all.txt"), atomically: true, encoding: .utf8)
        let t = try SimulatorTemplate.load(.allAtOnce, directory: dir)
        XCTAssertEqual(t.source, dir.appendingPathComponent("simulator-all.txt").path)
        XCTAssertEqual(t.placeholder, "?")
        XCTAssertEqual(t.messages, [.init(role: "user", content: "Say {{explanation}}"), .init(role: "assistant", content: "{{context}}")])
    }

    func testTemplateErrorsNameTheFileAndTheProblem() throws {
        let cases: [(String, String)] = [
            ("=== user\nno explanation\n=== assistant\n{{context}}", "the placeholder {{explanation}} is missing"),
            ("=== user\n{{explanation}}\n=== assistant\nrows", "the placeholder {{context}} is missing"),
            ("=== user\n{{explanation}} {{explanation}}\n=== assistant\n{{context}}", "appears 2 times"),
            ("=== user\n{{explanation}} {{contxt}}\n=== assistant\n{{context}}", "unknown placeholder {{contxt}}"),
            ("=== user\n{{context}}\n=== assistant\n{{explanation}}", "{{context}} must be in the last message"),
            ("=== user\n{{context}} {{explanation}}", "{{explanation}} must come before {{context}}"),
            ("=== robot\n{{explanation}}{{context}}", "line 1: unknown role 'robot'"),
            ("# fine\nstray text\n=== user\n{{explanation}}{{context}}", "line 2 is neither"),
            ("# only comments\n", "no messages"),
        ]
        for (text, expected) in cases {
            try text.write(to: dir.appendingPathComponent("simulator-last.txt"), atomically: true, encoding: .utf8)
            XCTAssertThrowsError(try SimulatorTemplate.load(.lastToken, directory: dir)) { error in
                let message = "\(error)"
                XCTAssertTrue(message.contains(expected), "\(message) should say \(expected)")
                XCTAssertTrue(message.contains("simulator-last.txt"), "\(message) should name the file")
            }
        }
    }

    // MARK: prompts in token space

    func testPrefixIsATokenPrefixOfEveryFullPromptInBothModes() throws {
        let tok = try TinySimulatorModel.tokenizer()
        for mode in SimulationMode.allCases {
            let template = try SimulatorTemplate(parsing: SimulatorTemplate.builtIn(mode), source: "built-in")
            let prompt = try SimulatorPrompt(template: template, mode: mode, explanation: "the word\n\"dog\" ", tokenizer: tok, chat: nil)
            XCTAssertTrue(prompt.prefixText.hasSuffix(mode == .allAtOnce ? "<|im_start|>assistant\n" : "Text:\n"))
            XCTAssertTrue(prompt.prefixText.contains("Explanation: the word \"dog\"" + (mode == .allAtOnce ? "<|im_end|>" : "\nText:")),
                          "explanation trimmed, newlines flattened")
            XCTAssertFalse(prompt.prefixText.contains("{{"))
            XCTAssertEqual(prompt.prefix, tok.encode(prompt.prefixText))
            let suffixes = prompt.suffixes(context(farmer))
            XCTAssertEqual(suffixes.count, mode == .allAtOnce ? 1 : farmer.count)
            for s in suffixes {
                // The split does not change how the whole prompt tokenizes.
                XCTAssertEqual(tok.encode(prompt.text(s)), prompt.prefix + s.tokens, "\(mode) suffix \(s.text.debugDescription)")
            }
        }
    }

    func testAllAtOnceRowsAreReadAtTheirTabs() throws {
        let tok = try TinySimulatorModel.tokenizer()
        let template = try SimulatorTemplate(parsing: SimulatorTemplate.builtIn(.allAtOnce), source: "built-in")
        let prompt = try SimulatorPrompt(template: template, mode: .allAtOnce, explanation: "x", tokenizer: tok, chat: nil)
        let texts = ["Hello", "\n", " the\tend", "<|im_end|>"]
        let s = prompt.rows(context(texts))
        XCTAssertEqual(s.text, "Hello\t0\n\\n\t0\n the\\tend\t0\n<|im_end|>\t0\n")
        XCTAssertEqual(s.readouts.count, texts.count)
        let tab = tok.encode("\t")[0]
        for r in s.readouts { XCTAssertEqual(s.tokens[r], tab) }
        // A special token's text inside a context is plain text, not the control token.
        XCTAssertFalse(s.tokens.contains(tok.encode("<|im_end|>")[0]))
        XCTAssertEqual(tok.decodeText(s.tokens), s.text)
    }

    func testLastTokenMarksTheJudgedTokenAndEndsWhereTheModelAnswers() throws {
        let tok = try TinySimulatorModel.tokenizer()
        let template = try SimulatorTemplate(parsing: SimulatorTemplate.builtIn(.lastToken), source: "built-in")
        let prompt = try SimulatorPrompt(template: template, mode: .lastToken, explanation: "x", tokenizer: tok, chat: nil)
        let s = prompt.judging(context(farmer), position: 2)
        XCTAssertEqual(s.text, "The farmer <<fed>><|im_end|>\n<|im_start|>assistant\n")
        XCTAssertEqual(s.readouts, [s.tokens.count - 1])
        XCTAssertEqual(prompt.judging(context(farmer), position: 0).text, "<<The>>" + prompt.tailText)
        XCTAssertEqual(SimulatorPrompt.marked(["a", "\n"], position: 1), "a<<\n>>", "a whitespace token is marked whole")
        XCTAssertEqual(SimulatorPrompt.marked(["a", "  b"], position: 1), "a  <<b>>")
    }

    // MARK: the local simulator on a tiny model

    func testDigitsAreFoundAndAMissingOneIsAnError() throws {
        let sim = try LocalSimulator(session: Session(modelPath: TinySimulatorModel.write(to: dir)), promptDirectory: dir)
        XCTAssertEqual(sim.digitIds, Array(48...57), "byte tokens: id = byte")
        XCTAssertEqual(sim.name, "local tiny")
        let broken = try TinySimulatorModel.write(to: dir, name: "no-seven", spellSeven: "77")
        XCTAssertThrowsError(try LocalSimulator(session: Session(modelPath: broken))) { error in
            XCTAssertTrue("\(error)".contains("the digit 7 is not a single token"), "\(error)")
        }
    }

    func testReadoutRenormalisesOverTheDigits() {
        var logits = [Float](repeating: 0, count: 20)
        for d in 0..<10 { logits[10 + d] = 1 }
        var r = LocalSimulator.readout(logits, vocabSize: 20, digits: Array(10..<20))
        XCTAssertEqual(r.expected, 4.5, accuracy: 1e-5)
        XCTAssertEqual(r.mass, 10 * exp(1) / (10 + 10 * exp(1)), accuracy: 1e-5)
        logits[17] = 30
        r = LocalSimulator.readout(logits, vocabSize: 20, digits: Array(10..<20))
        XCTAssertEqual(r.expected, 7, accuracy: 1e-4)
        XCTAssertEqual(r.mass, 1, accuracy: 1e-4)
    }

    /// The expected digits through the prefix cache and batching equal those of each whole prompt
    /// run from an empty cache, in both modes, with chunks small enough that long suffixes run alone.
    func testPrefixCacheEqualsWholePromptsInBothModes() throws {
        let path = try TinySimulatorModel.write(to: dir)
        let contexts = [context(farmer), context([" and", " then", " he", " left", "\n"]), context([]), context(["Yes", ","])]
        for batch in [64, 512] {
            let sim = try LocalSimulator(session: Session(modelPath: path, batch: batch), promptDirectory: dir)
            for mode in SimulationMode.allCases {
                let cached = try sim.run(explanation: "the word \"dog\"", contexts: contexts, mode: mode)
                let whole = try sim.runUncached(explanation: "the word \"dog\"", contexts: contexts, mode: mode)
                XCTAssertEqual(cached.expected.map(\.count), contexts.map(\.tokens.count))
                XCTAssertEqual(cached.batches > 0, true)
                var worst: Float = 0
                for (a, b) in zip(cached.expected.flatMap { $0 } + cached.digitMass.flatMap { $0 },
                                  whole.expected.flatMap { $0 } + whole.digitMass.flatMap { $0 }) {
                    worst = max(worst, abs(a - b))
                }
                print("prefix cache vs whole prompts, \(mode), batch \(batch): max difference \(worst)")
                XCTAssertLessThan(worst, 1e-4)
                XCTAssertTrue(cached.expected.flatMap { $0 }.allSatisfy { (0...9).contains($0) })
                XCTAssertEqual(try sim.simulate(explanation: "the word \"dog\"", contexts: contexts, mode: mode, shouldStop: { false }), cached.expected)
            }
        }
    }

    func testShouldStopCancels() throws {
        let sim = try LocalSimulator(session: Session(modelPath: TinySimulatorModel.write(to: dir)), promptDirectory: dir)
        XCTAssertThrowsError(try sim.simulate(explanation: "x", contexts: [context(farmer)], mode: .lastToken, shouldStop: { true })) {
            XCTAssertTrue($0 is CancellationError)
        }
    }

    // MARK: calibration

    /// 25% of tokens fire, with non-zero quantiles 1.00, 1.01, …, 2.00.
    let distribution = ActivationDistribution(zeroFraction: 0.75, quantiles: (0...100).map { 1 + Float($0) / 100 })

    func testUncalibratedScalesByTheMax() {
        XCTAssertEqual(Calibration.none.apply([[0, 4.5], [9]], distribution: distribution), [[0, 1], [2]])
    }

    func testQuantileMapsRanksToTheTrueDistribution() {
        // Nine values, u = 0, 1/8, …, 1: u ≤ 0.75 gives 0 (the first seven), u = 7/8 is the median of
        // the non-zero part (1.5), the largest is the max.
        let simulated: [[Float]] = [[3, 0.5, 8], [1, 2, 7, 4], [6, 5]]
        let out = Calibration.quantile.apply(simulated, distribution: distribution)
        XCTAssertEqual(out.map(\.count), [3, 4, 2])
        let pairs = zip(simulated.flatMap { $0 }, out.flatMap { $0 }).sorted { $0.0 < $1.0 }
        XCTAssertEqual(pairs.map(\.1).prefix(7), [0, 0, 0, 0, 0, 0, 0])
        XCTAssertEqual(pairs[7].1, 1.5, accuracy: 1e-5)
        XCTAssertEqual(pairs[8].1, 2)
    }

    func testQuantileIsMonotoneKeepsTiesAndZerosWhereTheDensitySays() {
        var rng = SeededRNG(seed: 3)
        var simulated = (0..<5).map { _ in (0..<200).map { _ in Float(rng.next() % 90) / 10 } }
        simulated[2][7] = 9.5
        let out = Calibration.quantile.apply(simulated, distribution: distribution).flatMap { $0 }
        let flat = simulated.flatMap { $0 }
        for i in flat.indices {
            for j in flat.indices where flat[i] < flat[j] { XCTAssertLessThanOrEqual(out[i], out[j]) }
            for j in flat.indices where flat[i] == flat[j] { XCTAssertEqual(out[i], out[j]) }
        }
        XCTAssertEqual(out[flat.firstIndex(of: 9.5)!], 2, "the top simulated value maps to the max")
        let zeros = Double(out.filter { $0 == 0 }.count) / Double(out.count)
        XCTAssertEqual(zeros, 0.75, accuracy: 0.03, "ties of 90 levels keep the zero fraction near 1 − density")
        // Everything equal: all at the median (here inside the point mass at 0).
        XCTAssertEqual(Calibration.quantile.apply([[4, 4], [4]], distribution: distribution), [[0, 0], [0]])
        XCTAssertEqual(Calibration.quantile.apply([[4, 4]], distribution: ActivationDistribution(zeroFraction: 0, quantiles: [1, 3])), [[2, 2]])
    }

    func testDistributionFromARecord() {
        let record = LatentRecord(latent: 0, count: 50, max: 2, mean: 1, histogram: [], quantiles: distribution.quantiles,
                                  promoted: [], suppressed: [], neighbours: [], windows: [])
        XCTAssertEqual(ActivationDistribution(record: record, trainTokens: 200), distribution)
        XCTAssertEqual(Calibration.quantile.apply([[1, 2]], record: record, trainTokens: 200), [[0, 2]])
        let dead = LatentRecord(latent: 0, count: 0, max: 0, mean: 0, histogram: [], quantiles: [Float](repeating: 0, count: 101),
                                promoted: [], suppressed: [], neighbours: [], windows: [])
        for c in Calibration.allCases { XCTAssertEqual(c.apply([[1, 9]], record: dead, trainTokens: 200), [[0, 0]]) }
    }

    // MARK: the real model

    /// On the demo workspace, a latent that fires on one word: its explanation correlates better
    /// with the truth over its windows than a wrong one, all at once (the default mode).
    func testRightExplanationBeatsAWrongOneOnTheRealModel() throws {
        guard FileManager.default.fileExists(atPath: ModelFetch.defaultPath.path) else { throw XCTSkip("the model is not in data/models") }
        let ws = Workspace(directory: Workspace.defaultDirectory)
        guard let cache = try? LatentCache(directory: ws.cacheDirectory) else { throw XCTSkip("the demo workspace is not built") }
        let session = try Session(modelPath: ModelFetch.defaultPath.path)
        let tok = session.tokenizer
        // Of the latents whose commonest top token is " same", the one whose windows are most often
        // chosen for it (latent 1339 in the demo build, 75 of its 80 windows).
        let same = tok.encode(" same")
        XCTAssertEqual(same.count, 1)
        let candidates = try LatentIndex.load(cache: cache).filter { $0.topTokens.first == same[0] }.map { try cache.record($0.latent) }
        func purity(_ r: LatentRecord) -> Int { r.windows.filter { $0.tokens[$0.focus] == same[0] }.count }
        guard let record = candidates.max(by: { purity($0) < purity($1) }), purity(record) * 2 > record.windows.count else {
            throw XCTSkip("no latent of this workspace fires mostly on ' same'")
        }
        let windows = (7...10).reversed().compactMap { bin in record.windows.first { $0.kind == bin } }
        let contexts = windows.map { w in SimulationContext(tokens: w.tokens, texts: w.tokens.map { String(decoding: tok.tokenBytes($0), as: UTF8.self) }) }
        let truth = windows.flatMap(\.activations)
        let sim = try LocalSimulator(session: session, promptDirectory: dir)
        func r(_ explanation: String) throws -> Double {
            Detection.pearson(try sim.simulate(explanation: explanation, contexts: contexts, mode: .allAtOnce, shouldStop: { false }).flatMap { $0 }, truth) ?? 0
        }
        let right = try r("the word \"same\""), wrong = try r("names of months")
        print("latent \(record.latent): Pearson r \(right) with the right explanation, \(wrong) with a wrong one")
        XCTAssertGreaterThan(right, wrong + 0.05)

        // The real tokenizer keeps the prefix/suffix split too.
        for mode in SimulationMode.allCases {
            let prompt = try sim.prompt(explanation: "the word \"same\"", mode: mode)
            for s in prompt.suffixes(contexts[0]).prefix(3) { XCTAssertEqual(tok.encode(prompt.text(s)), prompt.prefix + s.tokens) }
        }
    }
}

/// The simulator tests' tiny random Llama: the byte-level toy vocabulary (so the digits, tab and
/// newline are single tokens, id = byte, and the ChatML control tokens are there), a 4096-position
/// context. No chat template in the file: prompts use plain ChatML.
enum TinySimulatorModel {
    static func tokenizer() throws -> BPETokenizer {
        let v = ToyVocabulary.bytes
        return try BPETokenizer(tokens: v.tokens, tokenTypes: v.types, merges: v.merges, preTokenizer: "gpt2", bosId: nil, eosId: nil, addBOS: false)
    }

    /// Writes `<name>.gguf` in `dir`; `spellSeven` replaces the byte token "7" (to make a vocabulary whose 7 is no single token).
    static func write(to dir: URL, name: String = "tiny", spellSeven: String? = nil) throws -> String {
        let vocabulary = spellSeven.map { ToyVocabulary.bytes.respelling(55, as: $0) } ?? .bytes
        let path = dir.appendingPathComponent(name + ".gguf").path
        try TinyLlama(dim: 32, ffnDim: 48, contextLength: 4096, vocabulary: vocabulary, seed: 17).write(to: path)
        return path
    }
}
