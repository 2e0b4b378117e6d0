import Foundation
import XCTest
@testable import Formats

/// NPZFile on archives it writes and on damaged ones. numpy's own `np.savez` files (zip64 entries)
/// are read in TranscoderTests' DictionaryFormatTests (the Gemma Scope fixtures).
final class NPZTests: XCTestCase {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-npz-\(UUID().uuidString).npz").path

    override func tearDown() { try? FileManager.default.removeItem(atPath: path) }

    func testWriteThenReadBackBitIdentical() throws {
        let a: [Float] = (0..<12).map { Float($0) * 0.37 - 1 }
        let b: [Float] = [.pi, -0.0, 1e-30, 3e38]
        try NPZFile.write([("W_enc", [3, 4], a), ("threshold", [4], b)], to: path)
        let f = try NPZFile(path: path)
        XCTAssertEqual(Set(f.arrays.keys), ["W_enc", "threshold"])
        XCTAssertEqual(f.arrays["W_enc"]?.descr, "<f4")
        XCTAssertEqual(try f.floats("W_enc", shape: [3, 4]).map(\.bitPattern), a.map(\.bitPattern))
        XCTAssertEqual(try f.floats("threshold").map(\.bitPattern), b.map(\.bitPattern))
        XCTAssertThrowsError(try f.floats("threshold", shape: [5])) { XCTAssertTrue("\($0)".contains("'threshold' has shape [4], expected [5]"), "\($0)") }
        XCTAssertThrowsError(try f.floats("b_dec")) { XCTAssertEqual($0 as? FormatError, .missingTensor(file: path, tensor: "b_dec")) }
    }

    /// The zip's CRC-32 is the standard one (zip readers such as numpy's check it).
    func testCRC32KnownValue() {
        XCTAssertEqual(CRC32.of(Data("123456789".utf8)), 0xCBF4_3926)
    }

    func testDamagedArchivesAreErrorsNamingTheFile() throws {
        try NPZFile.write([("W_enc", [2, 2], [1, 2, 3, 4])], to: path)
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        // Deflate (method 8) in the central directory: refused with what to do.
        let cd = try XCTUnwrap(bytes.indices.dropLast(4).first { bytes[$0] == 0x50 && bytes[$0 + 1] == 0x4b && bytes[$0 + 2] == 1 && bytes[$0 + 3] == 2 })
        var deflated = bytes
        deflated[cd + 10] = 8
        try deflated.write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try NPZFile(path: path)) { XCTAssertTrue("\($0)".contains("np.savez, not np.savez_compressed"), "\($0)") }
        // Cut short: no end record.
        bytes.removeLast(30)
        try bytes.write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try NPZFile(path: path)) { XCTAssertTrue("\($0)".hasPrefix(path), "\($0)") }
        // Not a zip at all.
        try Data(repeating: 7, count: 100).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try NPZFile(path: path)) { XCTAssertTrue("\($0)".contains("not a zip archive"), "\($0)") }
    }
}
