@testable import Explorer
import EngineAPI
import Foundation
import Terminal
import XCTest

/// The Context lab's interventions as key sequences over the fake engine: what is asked of the
/// engine, what is cached (nothing asked again), and what the screen shows.
final class InterveneKeyTests: XCTestCase {
    /// The lab with a text analysed and the cursor on its second token.
    func labWithText() -> Harness {
        var h = Harness()
        h.press(.char("3"))
        h.type("the bridge over the river and the tunnel")
        h.press(.enter, .char("l"))
        XCTAssertNotNil(h.app.state.lab.analysis)
        return h
    }

    func steerRequests(_ h: Harness) -> [SteerSettings] {
        h.engine.requests.compactMap { if case .steer(_, _, let s) = $0 { return s } else { return nil } }
    }

    func testSteerStreamsBothAndCachesEachScale() throws {
        var h = labWithText()
        let latent = try XCTUnwrap(h.app.state.lab.latent)
        h.press(.char("S"))
        XCTAssertEqual(steerRequests(h), [SteerSettings(latent: latent, value: .timesMax(5), maxTokens: 40)])
        XCTAssertEqual(h.app.state.lab.intervention.mode, .steer)
        XCTAssertEqual(h.app.state.lab.intervention.steer?.done, true)
        XCTAssertTrue(h.screen.contains("the bridge bridge tunnel bridge"), h.screen)
        XCTAssertTrue(h.screen.contains("the river and the pier"), h.screen)
        XCTAssertTrue(h.screen.contains("unsteered (the base model)"))
        h.press(.char("+"))
        XCTAssertEqual(steerRequests(h).last?.value, .timesMax(6), "+ steers again at the new scale")
        h.press(.char("-"))
        XCTAssertEqual(steerRequests(h).count, 2, "scale 5 was cached")
        h.press(.char("c"))
        XCTAssertEqual(steerRequests(h).last?.chat, true)
        h.press(.char("v"))
        XCTAssertEqual(h.app.state.lab.intervention.mode, .activations)
    }

    func testSteerToAValueFromTheCursorWithSeededSampling() throws {
        var h = labWithText()
        let latent = try XCTUnwrap(h.app.state.lab.latent)
        h.press(.char("S"), .char("A"))
        XCTAssertEqual(steerRequests(h).last?.value, .absolute(10), "A steers to an absolute value")
        h.press(.char("+"), .char("+"))
        XCTAssertEqual(steerRequests(h).last?.value, .absolute(12), "+ steps the value, not the scale")
        XCTAssertEqual(h.app.state.lab.intervention.scale, 5)
        XCTAssertTrue(h.screen.contains("(= 12)"), h.screen)
        h.press(.char("l"), .char("f"))
        XCTAssertEqual(steerRequests(h).last?.from, 2, "f steers from the cursor's token (0-based)")
        XCTAssertTrue(h.screen.contains("from token 3"), h.screen)
        h.press(.char("T"))
        let sampled = try XCTUnwrap(steerRequests(h).last)
        XCTAssertEqual(sampled, SteerSettings(latent: latent, value: .absolute(12), from: 2, maxTokens: 40, temperature: 0.8, seed: 42))
        XCTAssertTrue(h.screen.contains("seed 42"), "the seed is on screen: \(h.screen)")
        let asked = steerRequests(h).count
        h.press(.char("T"), .char("T"))
        XCTAssertEqual(steerRequests(h).count, asked, "greedy and sampled were both cached")
        h.press(.char("A"))
        XCTAssertEqual(steerRequests(h).last?.value, .timesMax(5), "A back: × max at the kept scale")
        h.press(.char("c"))
        XCTAssertEqual(steerRequests(h).last?.from, 0, "in the chat template steering starts at the first token")
        XCTAssertEqual(steerRequests(h).last?.chat, true)
    }

    func testEscapeStopsARunningSteer() {
        var h = labWithText()
        h.press(.char("S"))
        h.app.state.job = JobProgress(title: "steering latent 3", done: 4, total: 40, unit: "tokens")
        h.press(.escape)
        XCTAssertEqual(h.engine.requests.last, .cancel)
        XCTAssertEqual(h.app.state.screen, .lab, "Esc stops the job before it goes back")
    }

    func testAblationHeatmapMovesWithoutAskingAgain() throws {
        var h = labWithText()
        let latent = try XCTUnwrap(h.app.state.lab.latent)
        h.press(.char("a"))
        guard case .ablate(_, _, latent, .zero)? = h.engine.requests.last else { return XCTFail("\(h.engine.requests.last as Any)") }
        let asked = h.engine.requests.count
        h.press(.char("l"), .char("l"), .char("h"))
        XCTAssertEqual(h.engine.requests.count, asked, "the cursor moves over the cached result")
        XCTAssertEqual(h.app.state.lab.intervention.latent, latent, "moving the cursor keeps the ablated latent")
        XCTAssertTrue(h.screen.contains("helps most"), h.screen)
        XCTAssertTrue(h.screen.contains("Δlog p"), h.screen)
        h.press(.char("m"))
        guard case .ablate(_, _, latent, .mean)? = h.engine.requests.last else { return XCTFail("m: mean ablation") }
        h.press(.char("m"))
        XCTAssertEqual(h.engine.requests.count, asked + 1, "zero ablation was cached")
    }

    func testRankingPerTokenAndEnterOpensTheLatent() throws {
        var h = labWithText()
        h.press(.char("w"))
        guard case .rank(_, _, 1)? = h.engine.requests.last else { return XCTFail("w ranks at the cursor's token") }
        h.press(.char("l"))
        guard case .rank(_, _, 2)? = h.engine.requests.last else { return XCTFail("moving the token ranks there") }
        let asked = h.engine.requests.count
        h.press(.char("h"))
        XCTAssertEqual(h.engine.requests.count, asked, "token 1's ranking was cached")
        let ranking = try XCTUnwrap(h.app.state.lab.intervention.rankings[1])
        XCTAssertTrue(h.screen.contains("direct"), h.screen)
        h.press(.char("j"), .enter)
        XCTAssertEqual(h.app.state.screen, .latent)
        XCTAssertEqual(h.app.state.latent?.latent, ranking.latents[1].latent)
    }

    func testChoosingTheLatentByIdAndANewTextForgetsResults() {
        var h = labWithText()
        h.press(.char("a"))
        h.press(.char(":"))
        h.type("17")
        h.press(.enter)
        XCTAssertEqual(h.app.state.lab.latent, 17)
        guard case .ablate(_, _, 17, .zero)? = h.engine.requests.last else { return XCTFail("the chosen id is ablated") }
        h.press(.char(":"))
        h.type("x")
        h.press(.enter)
        XCTAssertEqual(h.app.state.message?.isError, true)
        h.press(.char("e"))
        h.type(" of")
        h.press(.enter)
        XCTAssertTrue(h.app.state.lab.intervention.ablations.isEmpty, "a new text: old results do not apply")
        XCTAssertEqual(h.app.state.lab.intervention.mode, .activations)
    }

    func patchRequests(_ h: Harness) -> [(clean: String, corrupted: String, latent: Int?)] {
        h.engine.requests.compactMap { if case .patch(_, let a, let b, let l) = $0 { return (a, b, l) } else { return nil } }
    }

    func testPatchAsksForTheCorruptedTextThenSweepsAndCaches() throws {
        var h = labWithText()
        let latent = try XCTUnwrap(h.app.state.lab.latent)
        h.press(.char("p"))
        XCTAssertEqual(h.app.state.prompt?.kind, .corruptedText, "p asks for the corrupted text first")
        XCTAssertEqual(h.app.state.prompt?.editor.text, "the bridge over the river and the tunnel", "held with the lab's text to change a word of")
        XCTAssertTrue(patchRequests(h).isEmpty)
        h.press(.ctrl("u"))
        h.type("the tunnel over the river and the bridge")
        h.press(.enter)
        let first = try XCTUnwrap(patchRequests(h).last)
        XCTAssertEqual(first.clean, "the bridge over the river and the tunnel")
        XCTAssertEqual(first.corrupted, "the tunnel over the river and the bridge")
        XCTAssertEqual(first.latent, latent)
        XCTAssertEqual(h.app.state.lab.intervention.mode, .patch)
        let result = try XCTUnwrap(h.app.state.lab.intervention.patch)
        XCTAssertEqual(result.latent, latent)
        XCTAssertTrue(h.screen.contains("recovers most"), h.screen)
        XCTAssertTrue(h.screen.contains(String(format: "recovered %.3f", result.recovered[1])), "the cursor's token: \(h.screen)")
        h.press(.char("l"), .char("h"), .char("p"))
        XCTAssertEqual(patchRequests(h).count, 1, "moving the cursor and p again use the cached sweep")
        h.press(.char("o"))
        XCTAssertEqual(patchRequests(h).count, 2)
        XCTAssertNil(patchRequests(h).last?.latent, "o patches the whole code")
        XCTAssertTrue(h.app.state.lab.intervention.patch.map { $0.latent == nil } ?? false)
        h.press(.char("o"))
        XCTAssertEqual(patchRequests(h).count, 2, "the latent's sweep was cached")
        // Texts of different lengths: one line that says what to do; the typed text is kept.
        h.press(.char("P"))
        XCTAssertEqual(h.app.state.prompt?.editor.text, "the tunnel over the river and the bridge", "P holds the last corrupted text")
        h.press(.ctrl("u"))
        h.type("the tunnel")
        h.press(.enter)
        XCTAssertEqual(h.app.state.message?.isError, true)
        XCTAssertTrue(h.app.state.message?.text.contains("same length in tokens") ?? false)
        XCTAssertEqual(h.app.state.lab.intervention.corrupted, "the tunnel")
        // A new clean text forgets the sweeps, not the corrupted text.
        h.press(.char("e"))
        h.type(" of")
        h.press(.enter)
        XCTAssertTrue(h.app.state.lab.intervention.patches.isEmpty)
        XCTAssertEqual(h.app.state.lab.intervention.corrupted, "the tunnel")
    }

    func testHelpListsTheInterventionKeys() {
        var h = Harness(height: 80)
        h.press(.char("?"))
        for needle in ["steer: generate with the chosen latent", "ablate the chosen latent", "which latents matter at the token",
                       "patch the chosen latent", "edit the corrupted text", "patch one latent or the whole dictionary code",
                       "steer to an absolute value", "steer from the cursor's token", "generate greedily, or sampled"] {
            XCTAssertTrue(KeyBindings.all.contains { $0.help.hasPrefix(needle) && $0.context == .lab }, needle)
        }
    }
}
