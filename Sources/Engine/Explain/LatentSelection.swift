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
        guard !spec.trimmingCharacters(in: .whitespaces).isEmpty else { throw LatentSelectionError.empty }
        return try parts.map { part in
            let bad = LatentSelectionError.badPart(part)
            if part == "all" { return .all }
            if part.hasPrefix("top") {
                guard let n = Int(part.dropFirst(3)), n > 0 else { throw bad }
                return .top(n)
            }
            let ends = part.split(separator: "-", omittingEmptySubsequences: false)
            guard (1...2).contains(ends.count), ends.allSatisfy({ !$0.isEmpty && $0.allSatisfy(\.isASCII) }),
                  let a = Int(ends[0]), let b = Int(ends[ends.count - 1]), a >= 0 else { throw bad }
            guard a <= b else { throw LatentSelectionError.backwards(part) }
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
                    throw LatentSelectionError.noLatent(r.upperBound, count: counts.count)
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
