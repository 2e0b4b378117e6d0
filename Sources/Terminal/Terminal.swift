import CNcursesw
import Foundation

/// The terminal layer: the only code in Loupe that calls ncurses. The explorer's screens are
/// built on it; for now it knows how to report what the terminal can show.
public enum Terminal {
    /// The ncurses library version this build links, e.g. "ncurses 6.4.20221231".
    public static var libraryVersion: String {
        guard let version = curses_version() else { return "ncurses (unknown)" }
        return String(cString: version)
    }

    /// Whether standard output is an interactive terminal (the explorer needs one).
    public static var isInteractive: Bool { isatty(STDOUT_FILENO) != 0 }
}
