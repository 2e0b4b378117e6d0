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

    /// An entry whose sizes and offset live in a zip64 extra field of the central directory (as zip
    /// writes them past 4 GiB) and a zip64 end record, built by hand around the writer's `.npy` member.
    func testZip64CentralDirectory() throws {
        let values: [Float] = [1.5, -2, 3.25, 0]
        try NPZFile.write([("threshold", [4], values)], to: path)
        let plain = try Data(contentsOf: URL(fileURLWithPath: path))
        let nameLen = Int(plain[26]) | Int(plain[27]) << 8
        let size = Int(plain[18]) | Int(plain[19]) << 8 | Int(plain[20]) << 16 | Int(plain[21]) << 24
        let local = plain.prefix(30 + nameLen + size)
        let name = plain[30..<(30 + nameLen)]
        var out = Data(local)
        func le<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        let cd = out.count
        le(UInt32(0x0201_4b50)); le(UInt16(45)); le(UInt16(45)); le(UInt16(0)); le(UInt16(0)); le(UInt32(0))
        out.append(plain[14..<18])                                  // crc32
        le(UInt32.max); le(UInt32.max)                              // csize, usize: in the extra field
        le(UInt16(nameLen)); le(UInt16(28)); le(UInt16(0)); le(UInt16(0)); le(UInt16(0)); le(UInt32(0))
        le(UInt32.max)                                              // local header offset: in the extra field
        out.append(name)
        le(UInt16(1)); le(UInt16(24)); le(UInt64(size)); le(UInt64(size)); le(UInt64(0))
        let cdSize = out.count - cd, z64 = out.count
        le(UInt32(0x0606_4b50)); le(UInt64(44)); le(UInt16(45)); le(UInt16(45)); le(UInt32(0)); le(UInt32(0))
        le(UInt64(1)); le(UInt64(1)); le(UInt64(cdSize)); le(UInt64(cd))
        le(UInt32(0x0706_4b50)); le(UInt32(0)); le(UInt64(z64)); le(UInt32(1))
        le(UInt32(0x0605_4b50)); le(UInt16(0)); le(UInt16(0)); le(UInt16.max); le(UInt16.max); le(UInt32.max); le(UInt32.max); le(UInt16(0))
        try out.write(to: URL(fileURLWithPath: path))
        let f = try NPZFile(path: path)
        XCTAssertEqual(try f.floats("threshold", shape: [4]), values)
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
