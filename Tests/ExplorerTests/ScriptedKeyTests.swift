import Engine
@testable import Explorer
import EngineAPI
import Storage
import Terminal
import XCTest

/// Key sequences a user would type, over the deterministic fake engine; each checks the state
/// and what was asked of the engine.
final class ScriptedKeyTests: XCTestCase {
    func testListNavigationClampsAndScrolls() {
        var h = Harness(width: 80, height: 20)
        XCTAssertEqual(h.app.state.list.rows.count, 40)
        h.press(.char("k"))
        XCTAssertEqual(h.app.state.list.selected, 0)
        h.press(.char("G"))
        XCTAssertEqual(h.app.state.list.selected, 39)
        XCTAssertEqual(h.app.state.list.top, 40 - (20 - 3))
        h.press(.char("g"), .pageDown)
        XCTAssertEqual(h.app.state.list.selected, 17)
        XCTAssertTrue(h.screen.contains(String(h.app.state.list.rows[17])))
    }

    func testSortByEveryColumn() {
        var h = Harness()
        let summaries = h.app.state.summaries
        XCTAssertEqual(h.app.state.list.sort, .density)
        XCTAssertEqual(h.app.state.list.rows.map { summaries[$0].count }, summaries.map(\.count).sorted(by: >))
        h.press(.char("s"))
        XCTAssertEqual(h.app.state.list.sort, .max)
        let maxes = h.app.state.list.rows.map { summaries[$0].max }
        XCTAssertEqual(maxes, maxes.sorted(by: >))
        h.press(.char("S"))
        XCTAssertEqual(h.app.state.list.rows.map { summaries[$0].max }, maxes.sorted())
        h.press(.char("s"), .char("s"), .char("s"), .char("s"))
        XCTAssertEqual(h.app.state.list.sort, .id)
        XCTAssertEqual(h.app.state.list.rows, Array(0..<40))
    }

    func testFilterAsYouTypeAndHideDead() {
        var h = Harness()
        h.press(.char("f"))
        h.type("tunnel")
        let rows = h.app.state.list.rows
        XCTAssertFalse(rows.isEmpty)
        XCTAssertLessThan(rows.count, 40)
        for id in rows { XCTAssertTrue(h.app.state.summaries[id].topTokens.contains(5), "latent \(id) shown without ' tunnel'") }
        h.press(.enter)
        XCTAssertEqual(h.app.state.list.filter, "tunnel")
        h.press(.char("f"), .ctrl("u"), .enter)
        XCTAssertEqual(h.app.state.list.rows.count, 40)
        h.press(.char("d"))
        XCTAssertEqual(h.app.state.list.rows.count, h.app.state.summaries.filter { $0.count > 0 }.count)
    }

    func testSearchJumpsBetweenMatches() {
        var h = Harness()
        h.press(.char("/"))
        h.type("pier")
        h.press(.enter)
        let first = h.app.state.list.selected
        let id = h.app.state.list.rows[first]
        XCTAssertTrue(h.app.state.summaries[id].topTokens.contains(9))
        h.press(.char("n"))
        XCTAssertNotEqual(h.app.state.list.selected, first)
        XCTAssertTrue(h.app.state.summaries[h.app.state.list.rows[h.app.state.list.selected]].topTokens.contains(9))
        h.press(.char("N"))
        XCTAssertEqual(h.app.state.list.selected, first)
        h.press(.char("/"))
        h.type("zzz")
        h.press(.enter)
        XCTAssertEqual(h.app.state.message?.isError, true)
    }

    func testJumpOpensALatentAndRejectsBadIds() {
        var h = Harness()
        h.press(.char(":"))
        h.type("17")
        h.press(.enter)
        XCTAssertEqual(h.app.state.screen, .latent)
        XCTAssertEqual(h.app.state.latent?.record?.latent, 17)
        XCTAssertTrue(h.engine.requests.contains(.latent(17)))
        h.press(.char(":"))
        h.type("400")
        h.press(.enter)
        XCTAssertEqual(h.app.state.latent?.latent, 17)
        XCTAssertTrue(h.app.state.message?.text.contains("no latent 400") ?? false)
    }

    func testEditSaveAndSeeItInTheList() {
        var h = Harness()
        let id = h.app.state.list.rows[0]
        h.press(.enter, .char("e"))
        h.type("bridges and tunnels")
        h.press(.ctrlLeft, .ctrlLeft, .ctrlLeft)
        h.type("the ")
        h.press(.end, .backspace, .backspace)
        h.press(.char("X"), .ctrl("z"))
        XCTAssertEqual(h.app.state.latent?.editor?.text, "the bridges and tunne")
        h.press(.enter)
        XCTAssertEqual(h.engine.requests.suffix(2), [.saveExplanation(latent: id, text: "the bridges and tunne"), .simulate(latent: id)],
                       "a saved explanation is simulated again at once")
        XCTAssertEqual(h.app.state.latent?.scores?.version, h.app.state.explanations[id]?.id)
        XCTAssertNotNil(h.app.state.latent?.simulation)
        XCTAssertEqual(h.app.state.scores[id]?.pearson, h.app.state.latent?.scores?.pearson)
        XCTAssertEqual(h.app.state.explanations[id]?.text, "the bridges and tunne")
        XCTAssertTrue(h.screen.contains("the bridges and tunne"))
        h.press(.char("q"))
        XCTAssertEqual(h.app.state.screen, .latents)
        XCTAssertTrue(h.screen.contains("the bridges and tunne"))
    }

    func testCancelledEditIsKeptAsADraft() {
        var h = Harness()
        h.press(.enter, .char("e"))
        h.type("half a thought")
        h.press(.escape)
        XCTAssertNil(h.app.state.latent?.editor)
        XCTAssertFalse(h.engine.requests.contains { if case .saveExplanation = $0 { return true } else { return false } })
        h.press(.char("e"))
        XCTAssertEqual(h.app.state.latent?.editor?.text, "half a thought")
    }

    func testQuitWhileEditingAsksFirst() {
        var h = Harness()
        h.press(.enter, .char("e"))
        h.type("unsaved")
        h.press(.ctrl("c"))
        XCTAssertFalse(h.app.state.quit)
        XCTAssertEqual(h.app.state.prompt?.kind, .confirmQuit)
        h.press(.char("n"))
        XCTAssertFalse(h.app.state.quit)
        h.press(.ctrl("c"), .char("y"))
        XCTAssertTrue(h.app.state.quit)
        XCTAssertEqual(h.app.state.drafts[h.app.state.latent!.latent], "unsaved")
    }

    func testHistoryRevert() {
        var h = Harness()
        let id = h.app.state.list.rows[0]
        h.press(.enter, .char("e")); h.type("one"); h.press(.enter)
        h.press(.char("e"), .ctrl("u")); h.type("two"); h.press(.enter)
        h.press(.char("H"))
        XCTAssertEqual(h.app.state.history?.versions.map(\.text), ["two", "one"])
        h.press(.char("j"), .enter)
        XCTAssertEqual(h.engine.requests.suffix(2), [.revertExplanation(latent: id, versionID: 1), .simulate(latent: id)])
        XCTAssertEqual(h.app.state.explanations[id]?.text, "one")
        XCTAssertEqual(h.app.state.explanations[id]?.id, 3)
    }

    func testLatentWindowsTokensAndNeighbours() {
        var h = Harness(width: 80, height: 18)
        h.press(.enter)
        let record = h.app.state.latent!.record!
        h.press(.char("G"))
        XCTAssertEqual(h.app.state.latent?.window, record.windows.count - 1)
        XCTAssertGreaterThan(h.app.state.latent!.scroll, 0, "the last window is scrolled into view")
        h.press(.char("g"), .char("$"))
        XCTAssertEqual(h.app.state.latent?.token, record.windows[0].tokens.count - 1)
        h.press(.char("l"))
        XCTAssertEqual(h.app.state.latent?.token, record.windows[0].tokens.count - 1, "the cursor stops at the end")
        h.press(.tab, .char("j"), .char("j"), .enter)
        XCTAssertEqual(h.app.state.latent?.latent, record.neighbours[2].latent)
        h.press(.char("q"))
        XCTAssertEqual(h.app.state.latent?.latent, record.neighbours[2].latent, "back returns to the previous screen")
    }

    func testNextAndPreviousLatentFollowTheList() {
        var h = Harness()
        let rows = h.app.state.list.rows
        h.press(.enter, .char("]"), .char("]"))
        XCTAssertEqual(h.app.state.latent?.latent, rows[2])
        h.press(.char("["))
        XCTAssertEqual(h.app.state.latent?.latent, rows[1])
        h.press(.char("q"))
        XCTAssertEqual(h.app.state.screen, .latents)
        XCTAssertEqual(h.app.state.list.selected, 1)
    }

    func testLabRunsAfterAPauseInTyping() {
        var h = Harness()
        h.press(.char("3"))
        XCTAssertTrue(h.app.state.lab.editing)
        h.press("the river".map { Key.char($0) }, now: 10)
        XCTAssertTrue(h.app.tick(now: 10.2).isEmpty, "no run while typing")
        let requests = h.app.tick(now: 10.5)
        XCTAssertEqual(requests, [.analyze(id: 1, text: "the river")])
        for r in requests { h.engine.send(r) }
        h.settle()
        XCTAssertEqual(h.app.state.lab.analysis?.tokens.count, 2)
        h.press(.tab, .char("l"), .char("j"))
        XCTAssertEqual(h.app.state.lab.token, 1)
        let chosen = h.app.state.lab.analysis!.codes[1][1].latent
        XCTAssertEqual(h.app.state.lab.latent, chosen)
        h.press(.enter)
        XCTAssertEqual(h.app.state.screen, .latent)
        XCTAssertEqual(h.app.state.latent?.latent, chosen)
    }

    func testMouseSortsSelectsOpensAndScrolls() {
        var h = Harness()
        h.press(.mouse(Mouse(.click, x: 20, y: 1)))
        XCTAssertEqual(h.app.state.list.sort, .max)
        h.press(.mouse(Mouse(.click, x: 3, y: 5)))
        XCTAssertEqual(h.app.state.list.selected, 3)
        h.press(.mouse(Mouse(.wheelDown, x: 3, y: 5)))
        XCTAssertEqual(h.app.state.list.selected, 6)
        let id = h.app.state.list.rows[6]
        h.press(.mouse(Mouse(.doubleClick, x: 3, y: 8)))
        XCTAssertEqual(h.app.state.latent?.latent, id)
        h.press(.mouse(Mouse(.click, x: TitleBar.tabRanges(h.app.state)[2].1.lowerBound + 1, y: 0)))
        XCTAssertEqual(h.app.state.screen, .lab)
    }

    func testResizeKeepsTheSelectionVisibleAndSmallTerminalsGetAMessage() {
        var h = Harness(width: 100, height: 40)
        h.press(.char("G"))
        h.resize(70, 16)
        let l = h.app.state.list
        XCTAssertTrue(l.selected >= l.top && l.selected < l.top + 13)
        XCTAssertTrue(h.screen.contains(String(l.rows[l.selected])))
        h.resize(40, 10)
        XCTAssertTrue(h.screen.contains("at least 60×15"))
        h.resize(100, 40)
        XCTAssertTrue(h.screen.contains("Latents"))
    }

    func testEscapeCancelsAJobBeforeGoingBack() {
        var h = Harness()
        _ = h.app.apply(.progress(JobProgress(title: "analysing", done: 1, total: 4, eta: 3)))
        XCTAssertTrue(h.screen.contains("analysing"))
        XCTAssertTrue(h.screen.contains("ETA 0:03"))
        h.press(.escape)
        XCTAssertEqual(h.engine.requests.last, .cancel)
        XCTAssertFalse(h.app.state.quit)
    }

    func testHelpIsGeneratedFromTheBindings() {
        var h = Harness(width: 120, height: 60)
        h.press(.char("?"))
        let screen = h.screen
        for binding in KeyBindings.all where binding.context == .latents || binding.context == .global {
            XCTAssertTrue(screen.contains(binding.help), "help lacks “\(binding.help)”")
        }
        h.press(.ctrl("l"))
        XCTAssertTrue(h.app.state.showHelp, "Ctrl-L repaints; it must not close the help")
        XCTAssertEqual(h.screen, screen)
        h.press(.char("x"))
        XCTAssertFalse(h.app.state.showHelp)
    }

    func testThemeCycles() {
        var h = Harness()
        XCTAssertEqual(h.app.state.themeName, "dark")
        h.press(.char("t"))
        XCTAssertEqual(h.app.state.themeName, "light")
        h.press(.char("t"))
        XCTAssertEqual(h.app.state.themeName, "dark")
    }

    func testNewScoresShowBesideThePreviousVersions() {
        var h = Harness(width: 120, height: 30)
        let id = h.app.state.list.rows[0]
        h.press(.enter, .char("e")); h.type("one"); h.press(.enter)
        h.press(.char("e"), .ctrl("u")); h.type("two"); h.press(.enter)
        let l = h.app.state.latent!
        XCTAssertEqual(l.scores?.version, 2)
        XCTAssertEqual(l.previousScores?.version, 1)
        XCTAssertTrue(h.screen.contains("v2: r 0.50"), h.screen)
        XCTAssertTrue(h.screen.contains("↑ from 0.40 (v1 user)"), h.screen)
        XCTAssertTrue(h.screen.contains("held-out windows"), "the simulated windows are drawn")
        h.press(.char("q"), .char("s"), .char("s"))
        XCTAssertEqual(h.app.state.list.sort, .score)
        XCTAssertEqual(h.app.state.list.rows.first, id, "the only scored latent sorts first")
        XCTAssertTrue(h.screen.contains("0.50"))
    }

    /// The live engine shows a simulation's scores before its loss delta is measured: the loss line
    /// says so meanwhile, and the second `.simulation` fills it in without a second message.
    func testScoresShowBeforeTheLossDeltaIsMeasured() {
        var h = Harness(width: 120, height: 30)
        h.press(.enter, .char("e")); h.type("one"); h.press(.enter)
        let latent = h.app.state.latent!.latent
        var first = FakeEngine.scores(latent, version: 1)
        let final = first
        first.lossDelta = nil
        h.app.state.latent?.simulating = true
        h.app.state.message = nil
        for e in [EngineEvent.simulation(latent: latent, scores: first, previous: nil, record: nil), .measuringLoss(latent: latent)] { _ = h.app.apply(e) }
        XCTAssertTrue(h.screen.contains("v1: r 0.40"), h.screen)
        XCTAssertTrue(h.screen.contains("measuring: this latent alone replaced"), h.screen)
        XCTAssertEqual(h.app.state.message?.text.hasPrefix("simulated latent \(latent)"), true)
        h.app.state.message = nil
        _ = h.app.apply(.simulation(latent: latent, scores: final, previous: nil, record: nil))
        XCTAssertFalse(h.screen.contains("measuring:"), h.screen)
        XCTAssertTrue(h.screen.contains(Format.nats(final.lossDelta!) + " nats"), h.screen)
        XCTAssertNil(h.app.state.message, "the loss delta arrives without a second message")
    }

    func testLabSimulatesTheChosenLatent() {
        var h = Harness(width: 100, height: 30)
        let first = h.app.state.list.rows[0]
        h.press(.enter, .char("e")); h.type("rivers"); h.press(.enter)
        h.press(.char("3"))
        h.type("the river")
        h.press(.enter)
        h.app.state.lab.latent = first
        h.press(.char("s"))
        XCTAssertEqual(h.engine.requests.last, .simulateText(id: 1, latent: first, text: "the river"))
        XCTAssertEqual(h.app.state.lab.simulated?.count, 2)
        XCTAssertTrue(h.screen.contains("bars: simulated"))
    }

    func testThirtyThousandLatentsStayResponsive() {
        var h = Harness(width: 120, height: 40, latents: 30_000)
        XCTAssertEqual(h.app.state.list.rows.count, 30_000)
        var worst = (0.0, "")
        for key: Key in [.char("G"), .char("s"), .char("S"), .pageUp, .char("f"), .char("t"), .enter, .char("/"), .char("p"), .enter, .char("n")] {
            let t = Date()
            h.press(key)
            _ = h.screen
            let dt = Date().timeIntervalSince(t)
            if dt > worst.0 { worst = (dt, key.label) }
        }
        XCTAssertFalse(h.app.state.list.rows.isEmpty)
        print(String(format: "30k latents: slowest key to frame %.1f ms (%@)", worst.0 * 1000, worst.1))
    }

    func testALatentOpenedWithoutAnExplanationGetsOneFromTheLLM() {
        var h = Harness()
        h.app.state.autoExplain = true
        h.engine.explainsOnOpen = true
        let id = h.app.state.list.rows[0]
        h.press(.enter)
        XCTAssertTrue(h.engine.requests.contains(.explain(latent: id)))
        XCTAssertEqual(h.app.state.explanations[id]?.source, "llm")
        XCTAssertEqual(h.engine.requests.last, .simulate(latent: id), "the new explanation is simulated too")
        h.press(.char("q"), .char("j"), .enter, .char("q"), .char("k"), .enter)
        XCTAssertEqual(h.engine.saved.filter { $0.latent == id && $0.source == "llm" }.count, 1, "an explained latent is not explained again")
        XCTAssertEqual(h.app.state.latent?.explaining, false)
        h.press(.char("e"), .ctrl("u")); h.type("mine"); h.press(.enter, .char("q"), .enter)
        XCTAssertEqual(h.engine.requests.filter { $0 == .explain(latent: id) }.count, 2, "a person's explanation is never sent to the LLM")
        var off = Harness()
        off.engine.explainsOnOpen = true
        off.press(.enter)
        XCTAssertFalse(off.engine.requests.contains { if case .explain = $0 { return true } else { return false } })
    }

    func testEveryBindingIsReachable() {
        // No key is bound twice in one context (the second would never fire).
        for context in BindingContext.allCases {
            var seen = Set<Key>()
            for b in KeyBindings.all where b.context == context {
                for k in b.keys { XCTAssertTrue(seen.insert(k).inserted, "\(k.label) bound twice in \(context)") }
            }
        }
    }
}
