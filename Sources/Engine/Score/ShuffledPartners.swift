import Foundation
import Kernels
import Storage
import Tokenizer

/// For each explained latent, the one whose explanation is its shuffled control: the next latent
/// in order of firing count (the previous for the last) whose explanation text differs.
public enum ShuffledPartners {
    public static func make(texts: [Int: String], counts: [Int]) -> [Int: Int] {
        let order = texts.keys.sorted { (counts[safe: $0] ?? 0, $0) < (counts[safe: $1] ?? 0, $1) }
        var out: [Int: Int] = [:]
        for (i, m) in order.enumerated() {
            let after = order[(i + 1)...].first { texts[$0] != texts[m] }
            let before = order[..<i].reversed().first { texts[$0] != texts[m] }
            if let p = after ?? before { out[m] = p }
        }
        return out
    }
}

extension Array {
    subscript(safe i: Int) -> Element? { i >= 0 && i < count ? self[i] : nil }
}
