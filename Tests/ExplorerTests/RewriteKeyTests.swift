import Engine
@testable import Explorer
import EngineAPI
import Storage
import Terminal
import XCTest

/// The Rewrite screen and the per-latent loss delta, driven by keys over the fake engine's report.
final class RewriteKeyTests: XCTestCase {
    var report: RewriteReport { FakeEngine.rewriteReport() }

    func testTheTabAsksForTheReportOnceAndSelectsTheLargestFraction() {
        var h = Harness(width: 100, height: 30)
        XCTAssertTrue(h.screen.contains("4 Rewrite"))
        XCTAssertFalse(h.engine.requests.contains(.rewriteReport), "nothing is read before the tab is shown")
        h.press(.char("4"))
        XCTAssertEqual(h.app.state.screen, .rewrite)
        XCTAssertEqual(h.app.state.rewrite.report, report)
        let selected = report.results[h.app.state.rewrite.setting].setting
        XCTAssertEqual(selected, .simulated(1.0, .score, .none), "the first setting with the largest fraction")
        XCTAssertEqual(h.app.state.rewrite.token, 4, "the cursor starts on the token whose loss rose most")
        h.press(.char("1"))
        h.press(.mouse(Mouse(.click, x: TitleBar.tabRanges(h.app.state)[3].1.lowerBound + 1, y: 0)))
        XCTAssertEqual(h.app.state.screen, .rewrite, "clicking the tab shows it")
        XCTAssertEqual(h.engine.requests.filter { $0 == .rewriteReport }.count, 1)
        for text in ["● score none", "△ random quantile", "zero ablation", "transcoder", "Δ vs base", "yes, worse", "culprits"] {
            XCTAssertTrue(h.screen.contains(text), "the screen lacks “\(text)”:\n\(h.screen)")
        }
    }

    func testSettingCursorWindowsAndTokenCursor() {
        var h = Harness(width: 80, height: 24)
        h.press(.char("4"))
        let start = h.app.state.rewrite.setting
        h.press(.char("j"), .down)
        XCTAssertEqual(h.app.state.rewrite.setting, start + 2)
        h.press(.char("k"))
        XCTAssertEqual(h.app.state.rewrite.setting, start + 1)
        h.press(.char("G"))
        XCTAssertEqual(h.app.state.rewrite.setting, report.results.count - 1)
        let rw = h.app.state.rewrite
        XCTAssertTrue(rw.setting >= rw.top && rw.setting < rw.top + RewriteScreen.layout(h.app.state, report: report).tableRows,
                      "the selected row stays in view")
        XCTAssertTrue(h.screen.contains("f=1.00 random quantile"))
        h.press(.char("g"))
        XCTAssertEqual(h.app.state.rewrite.setting, 0)
        XCTAssertTrue(h.screen.contains("only settings with simulated latents have them"), "base has no culprits")

        h.press(.char("]"), .char("]"))
        XCTAssertEqual(h.app.state.rewrite.window, 1, "the window stops at the last")
        XCTAssertTrue(h.screen.contains("window 2/2"))
        h.press(.char("$"))
        XCTAssertEqual(h.app.state.rewrite.token, 9)
        XCTAssertTrue(h.screen.contains("(the last: it predicts nothing)"))
        h.press(.char("l"))
        XCTAssertEqual(h.app.state.rewrite.token, 9, "the cursor stops at the end")
        h.press(.char("0"), .char("h"), .char("l"), .right)
        XCTAssertEqual(h.app.state.rewrite.token, 2)
        // Token 3 of window 2 (“,”) predicts token 4 (“ the”, spaces shown as ·).
        XCTAssertTrue(h.screen.contains("token 3 “,” → “·the”"), h.screen)
        h.press(.char("["))
        XCTAssertEqual(h.app.state.rewrite.window, 0)
    }

    func testTheHeatmapShowsTheLossChangeAgainstTheTranscoder() {
        var h = Harness(width: 100, height: 30)
        h.press(.char("4"))
        let rw = h.app.state.rewrite
        let deltas = RewriteScreen.deltas(report, setting: rw.setting)
        let result = report.results[rw.setting], transcoder = report.result(RewriteSetting(kind: .transcoder))!
        XCTAssertEqual(deltas[0][4], Double(result.tokenCE[0][4]) - Double(transcoder.tokenCE[0][4]), accuracy: 1e-9)
        XCTAssertTrue(h.screen.contains("loss " + Format.nats(deltas[0][4])), h.screen)
        // Worse tokens are warm, better ones cool, unchanged ones uncoloured.
        let palette = Palette(theme: .fallback, mode: .full)
        let warm = palette.diverging(1).bg.components, cool = palette.diverging(-1).bg.components
        XCTAssertGreaterThan(warm.0, warm.2)
        XCTAssertGreaterThan(cool.2, cool.0)
        XCTAssertEqual(palette.diverging(0.01), palette.style(.text))
        XCTAssertEqual(Palette.divergingIntensity(1), "█")
        XCTAssertEqual(Palette.divergingIntensity(-1), "▀")
        XCTAssertEqual(Palette.divergingIntensity(0), " ")
    }

    func testEnterOnATokenOpensItsCulprit() {
        var h = Harness(width: 100, height: 30)
        h.press(.char("4"), .char("l"))
        let rw = h.app.state.rewrite
        let culprits = report.results[rw.setting].culprits![0][5]
        XCTAssertEqual(culprits.count, 2)
        XCTAssertTrue(h.screen.contains("\(culprits[0].latent) sim 2.25 true 0.00"), h.screen)
        h.press(.tab)
        XCTAssertEqual(h.app.state.rewrite.culprit, 1)
        h.press(.tab)
        XCTAssertEqual(h.app.state.rewrite.culprit, 0, "Tab wraps around the culprits")
        h.press(.enter)
        XCTAssertEqual(h.app.state.screen, .latent)
        XCTAssertEqual(h.app.state.latent?.latent, culprits[0].latent)
        XCTAssertEqual(h.app.state.latent?.record?.latent, culprits[0].latent, "it loads as when opened from the list")
        XCTAssertEqual(h.engine.requests.last, .latent(culprits[0].latent))
        h.press(.char("q"))
        XCTAssertEqual(h.app.state.screen, .rewrite, "back returns to the rewrite")
        h.press(.tab, .enter)
        XCTAssertEqual(h.app.state.latent?.latent, culprits[1].latent, "Tab picks the second culprit")
        h.press(.char("q"), .char("l"), .char("l"))
        XCTAssertTrue(RewriteScreen.culprits(report, h.app.state.rewrite).isEmpty)
        h.press(.enter)
        XCTAssertEqual(h.app.state.screen, .rewrite, "no culprit, nothing to open")
    }

    func testMouseSelectsSettingsAndTokens() {
        var h = Harness(width: 100, height: 30)
        h.press(.char("4"))
        let lay = RewriteScreen.layout(h.app.state, report: report)
        h.press(.mouse(Mouse(.click, x: 5, y: lay.tableTop + 2)))
        XCTAssertEqual(h.app.state.rewrite.setting, 1)
        h.press(.char("G"))
        let piece = lay.flow.lines[0][2]
        h.press(.mouse(Mouse(.click, x: RewriteScreen.heatX + piece.x, y: lay.heatTop)))
        XCTAssertEqual(h.app.state.rewrite.token, piece.token)
    }

    func testRunningTheExperimentAndRunningItAgain() {
        var h = Harness(width: 100, height: 30)
        h.engine.rewrite = nil
        h.press(.char("4"))
        XCTAssertTrue(h.app.state.rewrite.loaded)
        XCTAssertNil(h.app.state.rewrite.report)
        XCTAssertTrue(h.screen.contains("No experiment has been run"))
        XCTAssertTrue(h.screen.contains("loupe rewrite"))
        _ = h.app.apply(.progress(JobProgress(title: "rewrite: simulate", done: 3, total: 12, unit: "latents", eta: 40)))
        XCTAssertTrue(h.screen.contains("rewrite: simulate"), "progress shows in the status line")
        XCTAssertTrue(h.screen.contains("ETA 0:40"))
        h.press(.char("r"))
        XCTAssertFalse(h.engine.requests.contains(.runRewrite(RewriteOptions())), "one job at a time")
        XCTAssertEqual(h.app.state.message?.isError, true)
        _ = h.app.apply(.progress(nil))
        h.press(.char("r"))
        XCTAssertEqual(h.engine.requests.filter { $0 == .runRewrite(RewriteOptions()) }.count, 1)
        XCTAssertEqual(h.app.state.rewrite.report, report)
        XCTAssertNil(h.app.state.job)
        XCTAssertTrue(h.screen.contains("rewrite done"))
        h.press(.char("r"))
        XCTAssertEqual(h.app.state.prompt?.kind, .confirmRewrite, "a run that replaces a report asks first")
        XCTAssertTrue(h.screen.contains("Run the partial rewrite again"))
        h.press(.char("n"))
        XCTAssertNil(h.app.state.prompt)
        h.press(.char("j"), .char("r"), .char("y"))
        XCTAssertEqual(h.engine.requests.filter { $0 == .runRewrite(report.options) }.count, 1, "a rerun keeps the last report's options")
        XCTAssertEqual(report.results[h.app.state.rewrite.setting].setting, report.results[RewriteScreen.defaultSetting(report) + 1].setting,
                       "a new report keeps the selected setting")
    }

    func testEverySizeDraws() {
        for (w, ht) in [(60, 15), (80, 24), (200, 60)] {
            for mode in [TerminalScreen.ColorMode.full, .basic, .none] {
                var h = Harness(width: w, height: ht, mode: mode)
                h.press(.char("4"), .char("G"), .char("]"), .char("$"))
                let screen = h.screen
                XCTAssertTrue(screen.contains("CE (nats)"), "\(w)×\(ht)")
                XCTAssertTrue(screen.contains("window 2/2"), "\(w)×\(ht):\n\(screen)")
            }
        }
    }

    func testSortTheListByLossDelta() {
        var h = Harness()
        let deltas: [Int: Double] = [3: 0.002, 7: -0.001, 11: 0.03, 20: 0.0004]
        var scores: [Int: LatentScores] = [:]
        for (latent, delta) in deltas {
            var s = FakeEngine.scores(latent, version: 1)
            s.lossDelta = delta
            scores[latent] = s
        }
        scores[5] = FakeEngine.scores(5, version: 1)
        scores[5]?.lossDelta = nil
        _ = h.app.apply(.scores(scores))
        h.press(.char("s"), .char("s"), .char("s"))
        XCTAssertEqual(h.app.state.list.sort, .lossDelta)
        XCTAssertEqual(Array(h.app.state.list.rows.prefix(4)), [11, 3, 20, 7], "largest loss delta first")
        XCTAssertEqual(h.app.state.list.rows.count, 40)
        XCTAssertTrue(h.screen.contains("Δloss▼"))
        h.press(.char("g"))
        XCTAssertTrue(h.screen.contains("     11    0.030%    4.00   0.40  +0.0300 "), h.screen)
        h.press(.char("S"))
        XCTAssertEqual(Array(h.app.state.list.rows.prefix(4)), [7, 20, 3, 11])
        XCTAssertEqual(h.app.state.list.rows[4], 0, "latents without a loss delta follow, by id")
        h.press(.char("s"))
        XCTAssertEqual(h.app.state.list.sort, .explanation)
        h.press(.mouse(Mouse(.click, x: 36, y: 1)))
        XCTAssertEqual(h.app.state.list.sort, .lossDelta, "clicking the heading sorts by it")
        XCTAssertEqual(h.app.state.list.rows.first, 11)
    }

    func testTheLatentScreenShowsItsLossDeltaBesideThePreviousVersions() {
        var h = Harness(width: 120, height: 30)
        h.press(.enter)
        XCTAssertTrue(h.screen.contains("loss Δ      —"))
        h.press(.char("e")); h.type("one"); h.press(.enter)
        XCTAssertTrue(h.screen.contains("loss Δ      +0.0031 nats · this latent alone replaced by its simulation"), h.screen)
        h.press(.char("e"), .ctrl("u")); h.type("two"); h.press(.enter)
        XCTAssertTrue(h.screen.contains("+0.0020 nats ↓ from +0.0031 (v1 user)"), h.screen)
    }
}
