import Formats
import Foundation
import FuzzReaders
import LoupeTestSupport
import Model
import Storage
import Tokenizer
import Transcoder
import XCTest

/// The fuzz harnesses (Tests/FuzzReaders) in the normal suite: every committed seed is accepted,
/// every committed regression case (the inputs issue 15 lists) gives its expected one-line error,
/// and seeded mutations of the seeds go through every reader without a crash, each failure a
/// typed one-line error. libFuzzer runs the same harnesses for longer (Tests/Scripts/fuzz/run.sh).
///
/// `LOUPE_WRITE_FUZZ_FILES=1 swift test --filter FuzzTests/testWriteFiles` rewrites the seeds and
/// regression cases under Tests/Fuzz from the generators below.
final class MutationTests: XCTestCase {
    static let fuzzDir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fuzz", isDirectory: true)
    static let seedsDir = fuzzDir.appendingPathComponent("Seeds", isDirectory: true)
    static let regressionsDir = fuzzDir.appendingPathComponent("Regressions", isDirectory: true)

    var scratch: URL!

    override func setUpWithError() throws {
        scratch = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-fuzz-tests-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: scratch) }

    func files(_ dir: URL) -> [URL] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []).sorted().filter { !$0.hasSuffix(".expected") }
            .map { dir.appendingPathComponent($0) }
    }

    func testEveryHarnessHasSeedsAndEverySeedIsAccepted() throws {
        for harness in FuzzReaders.all {
            let seeds = files(Self.seedsDir.appendingPathComponent(harness.name))
            XCTAssertFalse(seeds.isEmpty, "\(harness.name) has no seed")
            for seed in seeds {
                let result = harness.run(try Data(contentsOf: seed), in: scratch.appendingPathComponent(harness.name))
                XCTAssertEqual(try result.get(), .accepted, "\(harness.name)/\(seed.lastPathComponent)")
            }
        }
    }

    /// Each case is `Regressions/<harness>/<name>` with `<name>.expected`: text the one-line error
    /// must contain, or `accepted` for an input that must now be read (a damaged log line among good ones).
    func testEveryRegressionCaseGivesItsExpectedOneLineError() throws {
        var count = 0
        for harness in FuzzReaders.all {
            for input in files(Self.regressionsDir.appendingPathComponent(harness.name)) {
                let expected = try String(contentsOf: input.appendingPathExtension("expected"), encoding: .utf8)
                    .trimmingCharacters(in: .whitespacesAndNewlines)
                let result = harness.run(try Data(contentsOf: input), in: scratch.appendingPathComponent(harness.name))
                switch result {
                case .success(.accepted): XCTAssertEqual(expected, "accepted", "\(harness.name)/\(input.lastPathComponent) was accepted")
                case let .success(.rejected(message)):
                    XCTAssertTrue(expected != "accepted" && message.contains(expected),
                                  "\(harness.name)/\(input.lastPathComponent): \(message) — expected \(expected)")
                case let .failure(finding): XCTFail("\(harness.name)/\(input.lastPathComponent): \(finding)")
                }
                count += 1
            }
        }
        XCTAssertGreaterThanOrEqual(count, 40, "the committed regression cases")
    }

    /// Seeded mutations (bit flips, boundary integers over 1, 2, 4 and 8 bytes, truncation,
    /// duplicated and deleted spans, and in text files numbers replaced by hostile ones) of every
    /// seed through its reader: no crash (the test process would die), no hang, every failure typed
    /// and one line. Both outcomes must occur, so the mutations reach past the first check.
    func testSeededMutationsThroughEveryReader() throws {
        let perSeed = Int(ProcessInfo.processInfo.environment["LOUPE_MUTATIONS"] ?? "") ?? 150
        var total = 0, rejectedAll = 0, acceptedAll = 0
        for harness in FuzzReaders.all {
            var rng = SplitMix(seed: 0x10_0be ^ UInt64(harness.name.utf8.reduce(0) { $0 &* 31 &+ Int($1) } & 0xFFFF))
            var accepted = 0, rejected = 0
            for seed in files(Self.seedsDir.appendingPathComponent(harness.name)) {
                let original = [UInt8](try Data(contentsOf: seed))
                for _ in 0..<perSeed {
                    let input = Mutator.mutate(original, &rng)
                    switch harness.run(Data(input), in: scratch.appendingPathComponent(harness.name)) {
                    case .success(.accepted): accepted += 1
                    case .success(.rejected): rejected += 1
                    case let .failure(finding):
                        let kept = scratch.appendingPathComponent("\(harness.name)-finding-\(total)")
                        try? Data(input).write(to: kept)
                        XCTFail("\(harness.name) (mutation of \(seed.lastPathComponent), input kept at \(kept.path)): \(finding)")
                    }
                    total += 1
                }
            }
            print("\(harness.name): \(accepted) accepted, \(rejected) rejected with a typed one-line error")
            acceptedAll += accepted
            rejectedAll += rejected
        }
        XCTAssertGreaterThan(rejectedAll, total / 4, "the mutations reach the readers' checks")
        XCTAssertGreaterThan(acceptedAll, 0, "and some pass them")
        XCTAssertGreaterThanOrEqual(total, FuzzReaders.all.count * perSeed)
    }

    /// Rewrites Tests/Fuzz/Seeds and Tests/Fuzz/Regressions (only with LOUPE_WRITE_FUZZ_FILES=1).
    func testWriteFiles() throws {
        guard ProcessInfo.processInfo.environment["LOUPE_WRITE_FUZZ_FILES"] == "1" else { throw XCTSkip("set LOUPE_WRITE_FUZZ_FILES=1 to rewrite the files") }
        let fm = FileManager.default
        for (harness, name, data) in try Seeds.all(scratch: scratch) {
            let dir = Self.seedsDir.appendingPathComponent(harness)
            try fm.createDirectory(at: dir, withIntermediateDirectories: true)
            try data.write(to: dir.appendingPathComponent(name))
        }
        for r in try Regressions.all(scratch: scratch) {
            let dir = Self.regressionsDir.appendingPathComponent(r.harness)
            try fm.createDirectory(at: dir, withIntermediateDirectories: true)
            try r.input.write(to: dir.appendingPathComponent(r.name))
            try (r.expected + "\n").write(to: dir.appendingPathComponent(r.name + ".expected"), atomically: true, encoding: .utf8)
        }
    }
}

/// SplitMix64: the mutations' seeded generator.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func below(_ n: Int) -> Int { n <= 0 ? 0 : Int(next() % UInt64(n)) }
}

enum Mutator {
    static let boundaries: [UInt64] = [0, 1, 2, 3, 0x7F, 0x80, 0xFF, 0x7FFF, 0xFFFF, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF,
                                       1 << 32, 1 << 40, 1 << 53, 1 << 61, 1 << 62, 0x7FFF_FFFF_FFFF_FFFF, 1 << 63, .max, .max - 1]
    static let numbers = ["0", "-1", "1", "-9223372036854775808", "9223372036854775807", "9223372036854775808", "4611686018427387904",
                          "1152921504606846978", "100000", "32.9", "1e300", "-0", "2147483648", "18446744073709551615", "null", "\"7\"", "[]", "{}", "true"]

    static func mutate(_ input: [UInt8], _ rng: inout SplitMix) -> [UInt8] {
        var b = input
        for _ in 0...rng.below(3) { step(&b, &rng) }
        return b
    }

    static func step(_ b: inout [UInt8], _ rng: inout SplitMix) {
        guard !b.isEmpty else { b = [UInt8(truncatingIfNeeded: rng.next())]; return }
        switch rng.below(9) {
        case 0: b[rng.below(b.count)] ^= 1 << UInt8(rng.below(8))
        case 1: b[rng.below(b.count)] = UInt8(truncatingIfNeeded: boundaries[rng.below(boundaries.count)])
        case 2, 3:
            let width = [1, 2, 4, 8][rng.below(4)]
            guard b.count >= width else { return }
            let at = rng.below(b.count - width + 1)
            var v = boundaries[rng.below(boundaries.count)]
            if rng.below(2) == 0 { v = v &- 1 }
            for i in 0..<width { b[at + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(i))) }
        case 4: b.removeLast(rng.below(b.count) + 1)
        case 5:
            let at = rng.below(b.count), n = min(rng.below(64) + 1, b.count - at)
            b.insert(contentsOf: b[at..<at + n], at: rng.below(b.count))
        case 6:
            let at = rng.below(b.count), n = min(rng.below(64) + 1, b.count - at)
            b.removeSubrange(at..<at + n)
        default:
            // A number in text replaced by a hostile one (JSON, JSONL); a random byte if there is none.
            let digits = b.indices.filter { (0x30...0x39).contains(b[$0]) && ($0 == 0 || !(0x30...0x39).contains(b[$0 - 1])) }
            guard let start = digits.isEmpty ? nil : digits[rng.below(digits.count)] else {
                b[rng.below(b.count)] = UInt8(truncatingIfNeeded: rng.next())
                return
            }
            var end = start
            while end < b.count && (0x30...0x39).contains(b[end]) || (end < b.count && b[end] == 0x2E) { end += 1 }
            b.replaceSubrange(start..<end, with: Array(numbers[rng.below(numbers.count)].utf8))
        }
    }
}
