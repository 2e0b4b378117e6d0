import Foundation
import LoupeTestSupport
import XCTest

/// Today's `loupe` on a workspace the code before the Storage → EngineAPI → Engine restructuring
/// wrote (Tests/StorageTests/Fixtures/workspace-47801cc, made by
/// Tests/Scripts/fixtures/make_compat_workspace.sh): it prints, byte for byte, what the old `loupe`
/// printed for the same commands (the fixture's golden/ files).
///
/// Two strings depend on the machine and are placeholders in the fixture (workspace.json and the
/// golden files alike), filled in here before running and comparing:
/// - `{workspace}`: the absolute path of the workspace folder (`info`'s "workspace"), here the
///   temporary copy's;
/// - `{data}`: the data directory whose `models/` holds the default model (workspace.json's and
///   `info`'s "model"), here $LOUPE_DATA or this checkout's data/, passed to `loupe` as LOUPE_DATA,
///   so the recorded model is "the default model" and resolves wherever the test runs.
final class CompatibilityCLITests: XCTestCase {
    static let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("StorageTests/Fixtures/workspace-47801cc", isDirectory: true)

    /// $LOUPE_DATA if set, else the data/ folder of this checkout (where `loupe` looks by default).
    static var dataDirectory: String {
        if let env = ProcessInfo.processInfo.environment["LOUPE_DATA"], !env.isEmpty { return env }
        return fixture.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("data").path
    }

    var temp: URL!
    var workspace: String { temp.appendingPathComponent("workspace").path }

    typealias Result = LoupeBinary.Result

    func loupe(_ args: String...) throws -> Result { try loupe(args) }

    func loupe(_ args: [String]) throws -> Result {
        guard LoupeBinary.exists else { throw XCTSkip("no loupe binary beside the tests at \(BuildProducts.executable("loupe").path)") }
        return try LoupeBinary.run(args, environment: ["LOUPE_DATA": Self.dataDirectory])
    }

    func filled(_ text: String) -> String {
        text.replacingOccurrences(of: "{workspace}", with: workspace).replacingOccurrences(of: "{data}", with: Self.dataDirectory)
    }

    func golden(_ name: String) throws -> String {
        filled(try String(contentsOf: Self.fixture.appendingPathComponent("golden/\(name)"), encoding: .utf8))
    }

    override func setUpWithError() throws {
        // The default model, fetched (or verified) once, so `latent` only loads its tokenizer.
        let r = try loupe("fetch", "--json")
        XCTAssertEqual(r.status, 0, r.stderr)
        temp = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-compat-cli-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: temp, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: Self.fixture.appendingPathComponent("workspace"), to: URL(fileURLWithPath: workspace))
        let manifest = URL(fileURLWithPath: workspace).appendingPathComponent("workspace.json")
        try filled(try String(contentsOf: manifest, encoding: .utf8)).write(to: manifest, atomically: true, encoding: .utf8)
    }

    override func tearDownWithError() throws {
        if let temp { try? FileManager.default.removeItem(at: temp) }
    }

    func assertSame(_ args: [String], golden name: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let r = try loupe(args)
        XCTAssertEqual(r.status, 0, r.stderr, file: file, line: line)
        XCTAssertEqual(r.stdout, try golden(name), "loupe \(args.joined(separator: " "))", file: file, line: line)
    }

    /// Every key the old binary printed, with the same value; the keys added since (the dictionary's
    /// kind and site, mean ablation, the FVU without outliers) say an MLP transcoder, and the old build measured
    /// neither mean ablation nor outliers.
    func testInfoPrintsWhatTheOldBinaryPrinted() throws {
        let r = try loupe(["info", "--json", "--workspace", workspace])
        XCTAssertEqual(r.status, 0, r.stderr)
        let now = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? NSDictionary)
        let old = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(try golden("info.json").utf8)) as? NSDictionary)
        for case let key as String in old.allKeys { XCTAssertEqual(now[key] as? NSObject, old[key] as? NSObject, key) }
        XCTAssertEqual(Set(now.allKeys as! [String]).subtracting(old.allKeys as! [String]),
                       ["kind", "site", "dictionary", "ce_mean_ablation", "loss_recovered_vs_mean", "fvu_typical", "outlier_positions"])
        XCTAssertEqual(now["kind"] as? String, "transcoder")
        XCTAssertEqual(now["site"] as? String, "mlp")
        XCTAssertEqual(now["dictionary"] as? String, "transcoder · MLP of layer 15 (layers.15.mlp)")
        XCTAssertTrue(now["ce_mean_ablation"] is NSNull)
        XCTAssertTrue(now["fvu_typical"] is NSNull && now["outlier_positions"] is NSNull, "the old build measured neither")
    }

    func testLatentsPrintWhatTheOldBinaryPrinted() throws {
        for latent in [3, 5] {
            try assertSame(["latent", "\(latent)", "--json", "--workspace", workspace], golden: "latent-\(latent).json")
        }
    }

    func testExplanationsPrintWhatTheOldBinaryPrinted() throws {
        for latent in [3, 5] {
            try assertSame(["explanations", "show", "\(latent)", "--json", "--workspace", workspace], golden: "explanations-show-\(latent).json")
        }
        let export = temp.appendingPathComponent("export.json").path
        let r = try loupe(["explanations", "export", export, "--workspace", workspace])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try String(contentsOfFile: export, encoding: .utf8), try golden("explanations-export.json"))
    }
}
