import Synchronization

/// The merge table of a byte-level BPE vocabulary and the algorithm that applies it.
///
/// Merges are ranked by their order in the file. A word starts as one token per byte; the
/// adjacent pair with the lowest rank (the leftmost on ties) is merged, again and again, until no
/// adjacent pair has a merge — the result Hugging Face tokenizers and llama.cpp produce.
struct BPEMerges: Sendable {
    /// Pair key `left << 32 | right` → `rank << 32 | merged id`.
    private let table: [UInt64: UInt64]
    /// The token id of each byte's one-scalar spelling, -1 where the vocabulary has none.
    let byteTokens: [Int32]

    init(table: [UInt64: UInt64], byteTokens: [Int32]) {
        self.table = table
        self.byteTokens = byteTokens
    }

    @inline(__always)
    private func lookup(_ a: Int32, _ b: Int32) -> UInt64 {
        table[UInt64(UInt32(bitPattern: a)) << 32 | UInt64(UInt32(bitPattern: b))] ?? UInt64.max
    }

    /// The token ids of one pre-tokenized piece, given as its raw bytes. Bytes without a token
    /// are left out before merging, so their neighbours may merge (as Hugging Face does).
    func encode(_ bytes: UnsafeBufferPointer<UInt8>) -> [Int32] {
        var symbols: [Int32] = []
        symbols.reserveCapacity(bytes.count)
        for b in bytes where byteTokens[Int(b)] >= 0 { symbols.append(byteTokens[Int(b)]) }
        guard symbols.count > 1 else { return symbols }
        // ranks[i] is the packed merge of (symbols[i], symbols[i + 1]), UInt64.max if none.
        var ranks = (0..<(symbols.count - 1)).map { lookup(symbols[$0], symbols[$0 + 1]) }
        while true {
            var best = -1
            var bestRank = UInt64.max
            for i in 0..<ranks.count where ranks[i] < bestRank {
                bestRank = ranks[i]
                best = i
            }
            if best < 0 { break }
            symbols[best] = Int32(truncatingIfNeeded: bestRank & 0xFFFF_FFFF)
            symbols.remove(at: best + 1)
            ranks.remove(at: best)
            if best > 0 { ranks[best - 1] = lookup(symbols[best - 1], symbols[best]) }
            if best < ranks.count { ranks[best] = lookup(symbols[best], symbols[best + 1]) }
        }
        return symbols
    }
}

/// Up to 32 bytes of a piece, packed, compared byte for byte. (String keys would not do: Swift
/// compares strings by canonical equivalence, so "\u{2126}" would find the entry of "\u{3A9}".)
struct PieceKey: Hashable, Sendable {
    static let capacity = 32
    private var w0: UInt64 = 0, w1: UInt64 = 0, w2: UInt64 = 0, w3: UInt64 = 0
    private var count: Int = 0

    /// The key of `bytes`, which must hold at most `capacity` bytes.
    init(_ bytes: UnsafeBufferPointer<UInt8>) {
        count = bytes.count
        var words: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        withUnsafeMutableBytes(of: &words) { raw in
            raw.copyMemory(from: UnsafeRawBufferPointer(bytes))
        }
        (w0, w1, w2, w3) = words
    }
}

/// A bounded, thread-safe memo of piece → token ids, shared by all callers of one tokenizer.
final class PieceCache: Sendable {
    private let entries = Mutex<[PieceKey: [Int32]]>([:])
    /// The cache empties when it holds this many pieces.
    let capacity = 1 << 18

    func get(_ key: PieceKey) -> [Int32]? {
        entries.withLock { $0[key] }
    }

    func put(_ key: PieceKey, _ ids: [Int32]) {
        entries.withLock {
            if $0.count >= capacity { $0.removeAll(keepingCapacity: true) }
            $0[key] = ids
        }
    }
}
