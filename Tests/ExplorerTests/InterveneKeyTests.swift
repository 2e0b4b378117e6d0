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

    func testHelpListsTheInterventionKeys() {
        var h = Harness(height: 80)
        h.press(.char("?"))
        for needle in ["steer: generate with the chosen latent", "ablate the chosen latent", "which latents matter at the token"] {
            XCTAssertTrue(KeyBindings.all.contains { $0.help.hasPrefix(needle) && $0.context == .lab }, needle)
        }
    }
}
