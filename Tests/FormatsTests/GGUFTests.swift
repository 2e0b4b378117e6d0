import Foundation
import XCTest
@testable import Formats

final class GGUFTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-gguf-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

    /// A file with every metadata value type and one tensor of each supported type.
    func sampleWriter() -> GGUFWriter {
        var w = GGUFWriter()
        w.set("general.architecture", .string("llama"))
        w.set("u8", .uint8(200)); w.set("i8", .int8(-100)); w.set("u16", .uint16(60000)); w.set("i16", .int16(-30000))
        w.set("u32", .uint32(4_000_000_000)); w.set("i32", .int32(-2_000_000_000)); w.set("f32", .float32(1.5))
        w.set("bool", .bool(true)); w.set("str", .string("héllo ✓")); w.set("u64", .uint64(1 << 40))
        w.set("i64", .int64(-(1 << 40))); w.set("f64", .float64(-2.25))
        w.set("arr.str", .array([.string("a"), .string("ü"), .string("")]))
        w.set("arr.i32", .array([.int32(1), .int32(-2), .int32(3)]))
        w.set("arr.nested", .array([.array([.uint8(1), .uint8(2)]), .array([.uint8(3)])]))
        w.addTensor("f32", dims: [4, 2], values: [1, 2, 3, 4, 5, 6, 7, 8])
        w.addTensor("f16", dims: [2], type: .f16, bytes: [0x00, 0x3C, 0x00, 0xC0])       // 1, −2
        w.addTensor("bf16", dims: [2], type: .bf16, bytes: [0x80, 0x3F, 0x40, 0xC0])      // 1, −3
        w.addTensor("q8", dims: [32], type: .q8_0, bytes: q8Block())
        w.addTensor("q40", dims: [32], type: .q4_0, bytes: q40Block())
        w.addTensor("q41", dims: [32], type: .q4_1, bytes: q41Block())
        return w
    }

    /// d = 0.25 (f16 0x3400), q = j − 16.
    func q8Block() -> [UInt8] { [0x00, 0x34] + (0..<32).map { UInt8(bitPattern: Int8($0 - 16)) } }
    /// d = 0.5 (f16 0x3800), low nibble of byte j = j, high nibble = 15 − j.
    func q40Block() -> [UInt8] { [0x00, 0x38] + (0..<16).map { UInt8($0 | ((15 - $0) << 4)) } }
    /// d = 2 (0x4000), m = −1 (0xBC00), same nibbles as q40Block.
    func q41Block() -> [UInt8] { [0x00, 0x40, 0x00, 0xBC] + (0..<16).map { UInt8($0 | ((15 - $0) << 4)) } }

    func testRoundTripOfEveryValueType() throws {
        try sampleWriter().write(to: path("a.gguf"))
        let f = try GGUFFile(path: path("a.gguf"))
        XCTAssertEqual(f.version, 3)
        XCTAssertEqual(f.metadata["u8"], .uint8(200))
        XCTAssertEqual(f.metadata["i8"], .int8(-100))
        XCTAssertEqual(f.metadata["u16"], .uint16(60000))
        XCTAssertEqual(f.metadata["i16"], .int16(-30000))
        XCTAssertEqual(try f.int("u32"), 4_000_000_000)
        XCTAssertEqual(try f.int("i32"), -2_000_000_000)
        XCTAssertEqual(try f.float("f32"), 1.5)
        XCTAssertEqual(f.metadata["bool"], .bool(true))
        XCTAssertEqual(try f.string("str"), "héllo ✓")
        XCTAssertEqual(try f.int("u64"), 1 << 40)
        XCTAssertEqual(try f.int("i64"), -(1 << 40))
        XCTAssertEqual(f.metadata["f64"]?.double, -2.25)
        XCTAssertEqual(try f.strings("arr.str"), ["a", "ü", ""])
        XCTAssertEqual(try f.ints("arr.i32"), [1, -2, 3])
        XCTAssertEqual(f.metadata["arr.nested"], .array([.array([.uint8(1), .uint8(2)]), .array([.uint8(3)])]))
        XCTAssertEqual(f.keys.first, "general.architecture")
        XCTAssertThrowsError(try f.int("str")) { XCTAssertTrue("\($0)".contains("'str'")) }
        XCTAssertThrowsError(try f.int("absent")) { XCTAssertEqual($0 as? FormatError, .missingKey(file: f.path, key: "absent")) }
        XCTAssertEqual(f.tensors.map(\.name), ["f32", "f16", "bf16", "q8", "q40", "q41"])
        XCTAssertEqual(f.tensor("f32")?.dims, [4, 2])
        XCTAssertEqual(f.tensor("q41")?.byteCount, 20)
        for t in f.tensors { XCTAssertEqual(t.fileOffset % 32, 0, t.name) }
    }

    func testVersionTwoReadsLikeThree() throws {
        var bytes = sampleWriter().bytes()
        bytes[4] = 2
        try Data(bytes).write(to: URL(fileURLWithPath: path("v2.gguf")))
        let f = try GGUFFile(path: path("v2.gguf"))
        XCTAssertEqual(f.version, 2)
        XCTAssertEqual(try f.strings("arr.str"), ["a", "ü", ""])
        XCTAssertEqual(f.tensors.count, 6)
    }

    func dequantized(_ f: GGUFFile, _ name: String) throws -> [Float] {
        let info = try XCTUnwrap(f.tensor(name))
        var out = [Float](repeating: .nan, count: info.elementCount)
        try out.withUnsafeMutableBufferPointer { try f.dequantize(name, shape: info.dims, into: $0.baseAddress!) }
        return out
    }

    func testDequantizationOfHandBuiltBlocks() throws {
        try sampleWriter().write(to: path("a.gguf"))
        let f = try GGUFFile(path: path("a.gguf"))
        XCTAssertEqual(try dequantized(f, "f32"), [1, 2, 3, 4, 5, 6, 7, 8])
        XCTAssertEqual(try dequantized(f, "f16"), [1, -2])
        XCTAssertEqual(try dequantized(f, "bf16"), [1, -3])
        XCTAssertEqual(try dequantized(f, "q8"), (0..<32).map { 0.25 * Float($0 - 16) })
        // Q4_0: weight j < 16 is the low nibble of byte j, weight j + 16 the high nibble; minus 8, times d.
        XCTAssertEqual(try dequantized(f, "q40"), (0..<16).map { 0.5 * Float($0 - 8) } + (0..<16).map { 0.5 * Float(15 - $0 - 8) })
        // Q4_1: d · nibble + m.
        XCTAssertEqual(try dequantized(f, "q41"), (0..<16).map { 2 * Float($0) - 1 } + (0..<16).map { 2 * Float(15 - $0) - 1 })
        XCTAssertThrowsError(try f.dequantize("q41", shape: [16, 2], into: UnsafeMutablePointer<Float>.allocate(capacity: 32))) {
            XCTAssertTrue("\($0)".contains("'q41'"))
        }
    }

    func testEveryTruncationIsAnErrorNotACrash() throws {
        let w = sampleWriter()
        try w.write(to: path("full.gguf"))
        let full = try GGUFFile(path: path("full.gguf"))
        // Cutting only the alignment padding after the last tensor leaves a valid file.
        let end = full.tensors.map { $0.fileOffset + $0.byteCount }.max()!
        let bytes = w.bytes()
        for n in 0..<bytes.count {
            try Data(bytes[0..<n]).write(to: URL(fileURLWithPath: path("t.gguf")))
            do {
                _ = try GGUFFile(path: path("t.gguf"))
                XCTAssertGreaterThanOrEqual(n, end, "a file cut to \(n) of \(bytes.count) bytes opened")
            } catch let e as FormatError {
                XCTAssertLessThan(n, end)
                XCTAssertFalse(e.description.contains("\n"))
            }
        }
    }

    func testCorruptHeadersNameTheProblem() throws {
        var bytes = sampleWriter().bytes()
        func open(_ b: [UInt8]) -> FormatError? {
            try? Data(b).write(to: URL(fileURLWithPath: path("c.gguf")))
            do { _ = try GGUFFile(path: path("c.gguf")); return nil } catch { return error as? FormatError }
        }
        var b = bytes; b[0] = UInt8(ascii: "X")
        XCTAssertEqual(open(b), .badMagic(file: path("c.gguf"), found: "XGUF"))
        b = bytes; b[4] = 7
        XCTAssertEqual(open(b), .unsupportedVersion(file: path("c.gguf"), version: 7))
        // Tensor count far beyond what the file could hold.
        b = bytes; b[15] = 0x7F
        XCTAssertNotNil(open(b))
        // Value type of the first key (after magic, version, 2 counts, key string) set to 99.
        let keyLen = "general.architecture".utf8.count
        b = bytes; b[24 + 8 + keyLen] = 99
        XCTAssertEqual(open(b), .badValueType(file: path("c.gguf"), key: "general.architecture", type: 99))
        // A tensor whose data lies past the end of the file: drop the last data block.
        bytes.removeLast(32)
        if case .tensorOutOfBounds(_, let tensor, _, _, _)? = open(bytes) { XCTAssertEqual(tensor, "q41") } else { XCTFail("expected out of bounds") }
    }

    func testUnsupportedTensorTypeIsReported() throws {
        var w = GGUFWriter()
        w.addTensor("blk.0.ffn_down.weight", dims: [256], type: .q4_K, bytes: [UInt8](repeating: 0, count: 144))
        try w.write(to: path("k.gguf"))
        XCTAssertThrowsError(try GGUFFile(path: path("k.gguf"))) { e in
            XCTAssertTrue("\(e)".contains("blk.0.ffn_down.weight") && "\(e)".contains("Q4_K"), "\(e)")
        }
    }

    func testMissingFileIsAnError() {
        XCTAssertThrowsError(try GGUFFile(path: path("absent.gguf"))) { XCTAssertTrue("\($0)".contains("cannot open")) }
    }
}
