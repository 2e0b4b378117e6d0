/// A small command-line reader: flags and options are taken out by name, what is left is
/// positional. Unknown `--options` are reported, never ignored.
public struct Arguments {
    private var items: [String]
    public let command: String

    public init(_ items: [String], command: String) {
        self.items = items
        self.command = command
    }

    /// The first remaining item that is not an option, without taking it.
    public var peekFirst: String? { items.first { !$0.hasPrefix("--") } }

    /// Whether `--name` (or `--name=…`) is there, without taking it.
    public func has(_ name: String) -> Bool { items.contains { $0 == name || $0.hasPrefix(name + "=") } }

    /// Takes `--name` if present.
    public mutating func flag(_ name: String) -> Bool {
        guard let i = items.firstIndex(of: name) else { return false }
        items.remove(at: i)
        return true
    }

    /// Takes `--name VALUE` (or `--name=VALUE`).
    public mutating func option(_ name: String) throws -> String? {
        if let i = items.firstIndex(where: { $0.hasPrefix(name + "=") }) {
            let value = String(items[i].dropFirst(name.count + 1))
            items.remove(at: i)
            return value
        }
        guard let i = items.firstIndex(of: name) else { return nil }
        guard i + 1 < items.count else { throw UserError("\(command): \(name) needs a value") }
        let value = items[i + 1]
        items.removeSubrange(i...i + 1)
        return value
    }

    public mutating func int(_ name: String, default value: Int, range: ClosedRange<Int> = 1...Int.max) throws -> Int {
        guard let text = try option(name) else { return value }
        guard let n = Int(text), range.contains(n) else {
            throw UserError("\(command): \(name) takes a whole number in \(range.lowerBound)...\(range.upperBound), not '\(text)'")
        }
        return n
    }

    public mutating func double(_ name: String, default value: Double) throws -> Double {
        guard let text = try option(name) else { return value }
        guard let d = Double(text), d.isFinite else { throw UserError("\(command): \(name) takes a number, not '\(text)'") }
        return d
    }

    /// What is left, after checking no unknown option remains (`--` ends options).
    public mutating func positionals() throws -> [String] {
        var out: [String] = []
        var optionsEnded = false
        for item in items {
            if !optionsEnded && item == "--" { optionsEnded = true; continue }
            if !optionsEnded && item.hasPrefix("--") { throw UserError("\(command): unknown option \(item) (see `loupe help`)") }
            out.append(item)
        }
        items = []
        return out
    }

    /// Exactly one positional TEXT (several words are joined with spaces).
    public mutating func text(_ what: String = "TEXT") throws -> String {
        let rest = try positionals()
        guard !rest.isEmpty else { throw UserError("\(command): missing \(what) (see `loupe help`)") }
        return rest.joined(separator: " ")
    }
}
