import Terminal

/// Shown when there is no workspace yet: what Loupe is and the offer to build the demo.
enum WelcomeScreen {
    static func render(_ state: AppState, into c: inout Canvas, in r: Rect, palette: Palette) {
        let lines: [(String, Theme.Role)] = [
            ("Welcome to Loupe", .accent),
            ("", .text),
            ("There is no workspace at", .text),
            ("  " + state.workspacePath, .dim),
            ("", .text),
            ("A workspace holds a transcoder trained on one MLP layer of SmolLM2 and a", .text),
            ("cache of what every latent does. Building the demo one reads 2M tokens of", .text),
            ("public-domain text (State of the Union addresses, Shakespeare), trains the", .text),
            ("transcoder, caches and explains the latents and trains the simulator: about", .text),
            ("50 minutes on 2 cores with AVX2 (the progress bar shows the ETA).", .text),
            ("", .text),
            (state.job == nil ? "Press b (or Enter) to build it now, q to quit." : "Building — progress below; Esc stops it, and the next run resumes.", .accent),
            ("Or build from the shell with `loupe build`, then run `loupe` again.", .dim),
        ]
        for (i, (text, role)) in lines.enumerated() where r.y + 1 + i < r.maxY {
            c.put(text, x: 3, y: r.y + 1 + i, style: palette.style(role), maxWidth: r.width - 4)
        }
    }
}
