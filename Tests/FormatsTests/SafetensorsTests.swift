import Foundation
import XCTest
@testable import Formats

final class SafetensorsTests: XCTestCase {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-st-\(UUID().uuidString).safetensors").path

    override func tearDown() { try? FileManager.default.removeItem(atPath: path) }

    func testWriteThenReadBackBitIdentical() throws {
        let a: [Float] = (0..<12).map { Float($0) * 0.37 - 1 }
        let b: [Float] = [.pi, -0.0, 1e-30, 3e38]
        try SafetensorsFile.write([("encoder.weight", [3, 4], a), ("b_dec", [4], b)], metadata: ["format": "pt"], to: path)
        let f = try SafetensorsFile(path: path)
        XCTAssertEqual(f.metadata["format"], "pt")
        XCTAssertEqual(try f.floats("encoder.weight", shape: [3, 4]).map(\.bitPattern), a.map(\.bitPattern))
        XCTAssertEqual(try f.floats("b_dec").map(\.bitPattern), b.map(\.bitPattern))
        XCTAssertThrowsError(try f.floats("b_dec", shape: [5])) { XCTAssertTrue("\($0)".contains("'b_dec'")) }
        XCTAssertThrowsError(try f.floats("W_skip")) { XCTAssertEqual($0 as? FormatError, .missingTensor(file: path, tensor: "W_skip")) }
    }

    /// Builds a file from a header and data by hand, as another writer would.
    func handMade(_ header: String, data: [UInt8]) throws {
        var out = Data()
        withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(contentsOf: Array(header.utf8))
        out.append(contentsOf: data)
        try out.write(to: URL(fileURLWithPath: path))
    }

    func testHalfAndBFloatAreRead() throws {
        try handMade(#"{"h":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},"b":{"dtype":"BF16","shape":[1],"data_offsets":[4,6]}}"#,
                     data: [0x00, 0x3C, 0x00, 0xC0, 0x80, 0x3F])
        let f = try SafetensorsFile(path: path)
        XCTAssertEqual(try f.floats("h"), [1, -2])
        XCTAssertEqual(try f.floats("b"), [1])
    }

    func testBadFilesAreErrors() throws {
        try handMade(#"{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, data: [0, 0, 0, 0])
        XCTAssertThrowsError(try SafetensorsFile(path: path)) { XCTAssertTrue("\($0)".contains("'x'"), "\($0)") }
        try handMade(#"{"x":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, data: [UInt8](repeating: 0, count: 8))
        XCTAssertThrowsError(try SafetensorsFile(path: path)) { XCTAssertTrue("\($0)".contains("needs 12 bytes"), "\($0)") }
        try handMade(#"{"x":{"dtype":"Q9","shape":[1],"data_offsets":[0,1]}}"#, data: [0])
        XCTAssertThrowsError(try SafetensorsFile(path: path)) { XCTAssertTrue("\($0)".contains("Q9"), "\($0)") }
        try handMade("not json", data: [])
        XCTAssertThrowsError(try SafetensorsFile(path: path)) { XCTAssertTrue("\($0)".contains("bad header"), "\($0)") }
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try SafetensorsFile(path: path)) { XCTAssertTrue("\($0)".contains("truncated"), "\($0)") }
        try handMade(#"{"i":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}"#, data: [UInt8](repeating: 0, count: 8))
        XCTAssertThrowsError(try SafetensorsFile(path: path).floats("i")) { XCTAssertTrue("\($0)".contains("I64"), "\($0)") }
    }
}

final class SHA256Tests: XCTestCase {
    func digest(_ s: String) -> String {
        var h = SHA256()
        h.update(Array(s.utf8))
        return h.finalizeHex()
    }

    func testKnownVectors() {
        XCTAssertEqual(digest(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(digest("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(digest("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
                       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
    }

    func testStreamingInPiecesMatchesOneShot() {
        let text = Array(String(repeating: "The quick brown fox jumps over the lazy dog. ", count: 37).utf8)
        var one = SHA256()
        one.update(text)
        var pieces = SHA256()
        var i = 0, step = 1
        while i < text.count { let j = min(i + step, text.count); pieces.update(Array(text[i..<j])); i = j; step = step % 70 + 3 }
        XCTAssertEqual(one.finalizeHex(), pieces.finalizeHex())
    }
}
