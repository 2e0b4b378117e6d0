import Engine
import Foundation
import Terminal

/// The `loupe` command: dispatch to subcommands, print one-line errors, return the exit status.
public enum LoupeCLI {
    /// What `loupe help` prints, made from the table of commands.
    public static let usage = Usage.text(CommandSpec.all)

    /// Runs one command line (without the program name) and returns the exit status.
    public static func run(_ arguments: [String]) -> Int32 {
        guard let name = arguments.first, !name.hasPrefix("--") || name == "--help" else {
            // No command: the explorer, on a terminal; elsewhere (scripts, CI) set up and show the usage.
            var a = Arguments(arguments, command: "loupe")
            do {
                if Terminal.isInteractive && isatty(STDIN_FILENO) != 0 { try ExplorerCommand.open(&a); return 0 }
                try ModelFetch.ensureDefault(progress: Console.progress)
            } catch {
                Console.error(describe(error))
                return 1
            }
            Console.print(usage)
            return 0
        }
        var a = Arguments(Array(arguments.dropFirst()), command: name)
        do {
            guard let command = CommandSpec.named(name) else { throw UserError("unknown command '\(name)'; run `loupe help` for the list") }
            try command.run(&a)
            return 0
        } catch {
            Console.error(describe(error))
            return 1
        }
    }

    /// One line for any error: user errors and format errors already say what to do.
    static func describe(_ error: Error) -> String {
        switch error {
        case let e as UserError: return e.message
        case let e as CustomStringConvertible: return e.description
        default: return "\(error)"
        }
    }

    static func fetch(_ a: inout Arguments) throws {
        let json = a.flag("--json")
        _ = try a.positionals()
        let url = try ModelFetch.ensureDefault(progress: Console.progress)
        if json {
            Console.print(JSON.object([("path", .string(url.path)), ("sha256", .string(ModelFetch.sha256))]).text)
        } else {
            Console.print(url.path)
        }
    }
}
