import Foundation
import LoupeTestSupport
import XCTest
@testable import Engine
@testable import Storage

/// What a build does after the cache: lexical explanations for every latent that fires and has
/// none (never over a person's), then the trained simulator; a second run changes nothing.
final class FinishBuildTests: XCTestCase {
    private final class Notes: ProgressReporter {
        var notes: [String] = []
        var steps: [String] = []
        func begin(_ step: String, total: Int, unit: String) { steps.append(step) }
        func advance(_ done: Int, detail: String) {}
        func end(_ step: String, summary: String) {}
        func note(_ message: String) { notes.append(message) }
        var shouldStop: Bool { false }
    }

    var dir: URL!

    override func tearDownWithError() throws {
        if let dir { try? FileManager.default.removeItem(at: dir) }
    }

    func testLexicalExplanationsThenTheTrainedSimulator() throws {
        guard LoupeBinary.exists else { throw XCTSkip("no loupe binary beside the tests") }
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-finish-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let fixture = TinyWorkspace(directory: dir)
        try fixture.build(arguments: ["--tokens", "4096", "--latents", "64", "--k", "4", "--layer", "1", "--eval-windows", "4", "--batch", "256"])
        let ws = Workspace(directory: URL(fileURLWithPath: fixture.workspace, isDirectory: true))
        XCTAssertFalse(ws.hasTrainedSimulator, "--no-simulator stops before it")

        let service = EngineService(workspace: ws, modelPath: fixture.model)
        let counts = try service.counts()
        let firing = counts.indices.filter { counts[$0] > 0 }
        XCTAssertGreaterThan(firing.count, 8)
        let mine = try service.explanations().save(latent: firing[0], text: "a person's own words", source: .user)

        let reporter = Notes()
        try service.finishBuild(reporter: reporter, simulatorLatents: 40)
        let store = try service.explanations()
        for latent in counts.indices {
            let current = store.current(latent)
            if latent == firing[0] {
                XCTAssertEqual(current, mine, "a person's explanation is kept")
            } else if counts[latent] > 0 {
                XCTAssertEqual(current?.source, .lexical, "latent \(latent) fires: explained")
                XCTAssertFalse(current?.text.isEmpty ?? true)
            } else {
                XCTAssertNil(current, "latent \(latent) never fires: nothing to explain")
            }
        }
        XCTAssertTrue(ws.hasTrainedSimulator, "trained: \(reporter.notes)")
        XCTAssertEqual(Simulators.defaultKind(for: ws), .trained)
        let config = try JSONFile.read(TrainedSimulatorConfig.self, from: ws.simulatorConfigURL)
        XCTAssertEqual(config.layers, SimulatorTrainingOptions.defaultLayers(depth: 2), "layers scaled to the tiny model's depth")
        let detection = try XCTUnwrap(config.training?.detection, "each head's detection threshold is chosen as the training's last step")
        XCTAssertEqual(detection.count, config.folds)
        XCTAssertTrue(detection.allSatisfy { $0 > 0 && $0 < 1 }, "\(detection)")
        XCTAssertEqual(try TrainedSimulator(workspace: ws, session: try service.session()).detection.map(Double.init), detection,
                       "the head file holds the thresholds the config reports")

        // A damaged threshold: the simulator says which and what to run; that command (as a user
        // runs it) chooses the same thresholds again from the same heads and examples.
        let heads = try TrainedSimulator(workspace: ws, session: try service.session()).heads
        try TrainedSimulator.save(config: config, heads: heads, detection: [0.3, -2] + Array(repeating: 0.3, count: config.folds - 2), to: ws)
        XCTAssertThrowsError(try TrainedSimulator(workspace: ws, session: try service.session())) {
            XCTAssertEqual($0 as? SimulatorError, .trainedDetection(fold: 1, value: -2))
        }
        let redo = try LoupeBinary.run(["train-simulator", "--detection-only", "--workspace", fixture.workspace, "--model", fixture.model])
        XCTAssertEqual(redo.status, 0, redo.stderr)
        let redone = try TrainedSimulator(workspace: ws, session: try service.session())
        for (a, b) in zip(redone.detection, detection) { XCTAssertEqual(Double(a), b, accuracy: 1e-6) }
        XCTAssertEqual(redone.heads.map(\.weight), heads.map(\.weight), "the heads are kept")

        // Again: nothing left to do.
        let versions = counts.indices.map { store.history($0).count }
        let again = Notes()
        try service.finishBuild(reporter: again)
        XCTAssertEqual(counts.indices.map { store.history($0).count }, versions)
        XCTAssertFalse(again.steps.contains("train-simulator"))
    }
}
