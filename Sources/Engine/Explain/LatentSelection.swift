import Foundation
import Kernels
import Model
import Storage
import Tokenizer

/// `--latents SPEC`: comma-separated items, each `N`, `N-M` (inclusive), `topN` (the N latents
/// that fire most often, most first) or `all` (every latent that fires, in id order). The result
/// keeps the items' order without repeats.
public enum LatentSelection {
    public enum Item: Equatable, Sendable {
        case range(ClosedRange<Int>)
        case top(Int)
        case all
    }

    public static func parse(_ spec: String) throws -> [Item] {
        let parts = spec.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        guard !spec.trimmingCharacters(in: .whitespaces).isEmpty else { throw EngineError("--latents is empty; give e.g. 0-99,150,top500 or all") }
        return try parts.map { part in
            let bad = EngineError("--latents: '\(part)' is not N, N-M, topN or all (e.g. 0-99,150,top500)")
            if part == "all" { return .all }
            if part.hasPrefix("top") {
                guard let n = Int(part.dropFirst(3)), n > 0 else { throw bad }
                return .top(n)
            }
            let ends = part.split(separator: "-", omittingEmptySubsequences: false)
            guard (1...2).contains(ends.count), ends.allSatisfy({ !$0.isEmpty && $0.allSatisfy(\.isASCII) }),
                  let a = Int(ends[0]), let b = Int(ends[ends.count - 1]), a >= 0 else { throw bad }
            guard a <= b else { throw EngineError("--latents: the range '\(part)' runs backwards") }
            return .range(a...b)
        }
    }

    /// The latents an item list names, given every latent's firing count.
    public static func resolve(_ items: [Item], counts: [Int]) throws -> [Int] {
        var seen = Set<Int>(), out: [Int] = []
        func add(_ ids: some Sequence<Int>) { for i in ids where seen.insert(i).inserted { out.append(i) } }
        for item in items {
            switch item {
            case let .range(r):
                guard r.upperBound < counts.count else {
                    throw EngineError("--latents: latent \(r.upperBound) does not exist (this workspace has latents 0…\(counts.count - 1))")
                }
                add(r)
            case let .top(n):
                add(counts.indices.filter { counts[$0] > 0 }.sorted { counts[$0] != counts[$1] ? counts[$0] > counts[$1] : $0 < $1 }.prefix(n))
            case .all:
                add(counts.indices.filter { counts[$0] > 0 })
            }
        }
        return out
    }

    public static func resolve(_ spec: String, counts: [Int]) throws -> [Int] { try resolve(parse(spec), counts: counts) }
}

// MARK: - the bulk run
