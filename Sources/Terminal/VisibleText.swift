/// Text from files, servers or users on its way to a terminal, with every control character made
/// visible, so none of it can move the cursor, set the title, clear the screen or switch
/// character sets: C0 controls (U+0000–U+001F, ESC among them), DEL and the C1 controls
/// (U+0080–U+009F, which some terminals read as ESC sequences) become `\x1B`-style text. Only the
/// characters in `keep` (a newline where a line break is meant, a tab in a table) pass as they are.
/// The one place this is done: the command line's output (`Console`) and the explorer's `Canvas`
/// both call it.
public enum VisibleText {
    /// `text` with control characters other than `keep` written as `\xHH`.
    public static func escape(_ text: String, keep: Set<Unicode.Scalar> = []) -> String {
        guard text.unicodeScalars.contains(where: { isControl($0) && !keep.contains($0) }) else { return text }
        var out = String.UnicodeScalarView()
        for u in text.unicodeScalars {
            if isControl(u) && !keep.contains(u) {
                out.append(contentsOf: shown(u).unicodeScalars)
            } else {
                out.append(u)
            }
        }
        return String(out)
    }

    /// Whether the terminal would act on `u` rather than draw it.
    public static func isControl(_ u: Unicode.Scalar) -> Bool {
        u.value < 0x20 || (u.value >= 0x7F && u.value < 0xA0)
    }

    /// How a control character is shown: `\x1B`.
    public static func shown(_ u: Unicode.Scalar) -> String {
        let hex = String(u.value, radix: 16, uppercase: true)
        return "\\x" + (hex.count < 2 ? "0" + hex : hex)
    }
}
