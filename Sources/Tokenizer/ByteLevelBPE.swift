import Synchronization

/// GPT-2's reversible map between bytes and printable Unicode scalars.
///
/// Byte-level BPE vocabularies never hold raw bytes: every byte is spelled as a printable scalar
/// (printable Latin-1 bytes stand for themselves, the other 68 bytes map to U+0100 and up, so a
/// space is 'Ġ' U+0120 and a newline 'Ċ' U+010A). Tokens and merges are strings of such scalars.
enum ByteLevel {
    /// `scalar[b]` is the printable scalar that spells byte `b`.
    static let scalar: [Unicode.Scalar] = {
        var table = [Unicode.Scalar](repeating: " ", count: 256)
        var next: UInt32 = 256
        for b in 0..<256 {
            if (0x21...0x7E).contains(b) || (0xA1...0xAC).contains(b) || (0xAE...0xFF).contains(b) {
                table[b] = Unicode.Scalar(UInt32(b))!
            } else {
                table[b] = Unicode.Scalar(next)!
                next += 1
            }
        }
        return table
    }()

    /// The byte a printable scalar spells, or nil if the scalar is not part of the map.
    static func byte(for s: Unicode.Scalar) -> UInt8? {
        let v = s.value
        if v < 256 {
            return scalar[Int(v)] == s ? UInt8(v) : nil
        }
        return reverse[v]
    }

    /// Scalars at or above U+0100 back to their bytes.
    private static let reverse: [UInt32: UInt8] = {
        var map: [UInt32: UInt8] = [:]
        for b in 0..<256 where scalar[b].value >= 256 { map[scalar[b].value] = UInt8(b) }
        return map
    }()

    /// The byte-level spelling of `bytes`, e.g. `[0x20, 0x61]` → "Ġa".
    static func encode<S: Sequence>(_ bytes: S) -> String where S.Element == UInt8 {
        var s = String.UnicodeScalarView()
        for b in bytes { s.append(scalar[Int(b)]) }
        return String(s)
    }

    /// The bytes a byte-level string spells, or nil if some scalar is outside the map.
    static func decode(_ token: String) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(token.unicodeScalars.count)
        for s in token.unicodeScalars {
            guard let b = byte(for: s) else { return nil }
            out.append(b)
        }
        return out
    }
}

/// Renders token bytes for people: visible whitespace, hex for what cannot be shown.
enum TokenDisplay {
    /// Spaces become `·`, newlines `↵`, tabs `→`; other control bytes and bytes that do not form
    /// valid UTF-8 on their own become `<0xAB>`; everything else is shown as itself.
    static func render(_ bytes: [UInt8]) -> String {
        var out = ""
        var i = 0
        while i < bytes.count {
            guard let (scalar, length) = decodeScalar(bytes, at: i) else {
                out += hex(bytes[i])
                i += 1
                continue
            }
            switch scalar.value {
            case 0x20: out += "·"
            case 0x0A: out += "↵"
            case 0x09: out += "→"
            case 0..<0x20, 0x7F: out += hex(UInt8(scalar.value))
            default: out.unicodeScalars.append(scalar)
            }
            i += length
        }
        return out
    }

    static func hex(_ b: UInt8) -> String {
        let digits = Array("0123456789ABCDEF")
        return "<0x\(digits[Int(b >> 4)])\(digits[Int(b & 15)])>"
    }

    /// One well-formed UTF-8 scalar starting at `i` (shortest form, no surrogates), with its length.
    static func decodeScalar(_ bytes: [UInt8], at i: Int) -> (Unicode.Scalar, Int)? {
        let b0 = bytes[i]
        if b0 < 0x80 { return (Unicode.Scalar(b0), 1) }
        let length: Int
        let minimum: UInt32
        var value: UInt32
        switch b0 {
        case 0xC2...0xDF: length = 2; minimum = 0x80; value = UInt32(b0 & 0x1F)
        case 0xE0...0xEF: length = 3; minimum = 0x800; value = UInt32(b0 & 0x0F)
        case 0xF0...0xF4: length = 4; minimum = 0x10000; value = UInt32(b0 & 0x07)
        default: return nil
        }
        guard i + length <= bytes.count else { return nil }
        for k in 1..<length {
            let b = bytes[i + k]
            guard b & 0xC0 == 0x80 else { return nil }
            value = value << 6 | UInt32(b & 0x3F)
        }
        guard value >= minimum, let s = Unicode.Scalar(value) else { return nil }
        return (s, length)
    }
}

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
        return symbols.count <= Self.shortWord ? mergeShort(symbols) : mergeLong(symbols)
    }

    /// Words up to this many symbols are merged by scanning; longer ones with a heap.
    static let shortWord = 128

    /// Quadratic but tight: rescan the pair ranks for the minimum after every merge.
    func mergeShort(_ start: [Int32]) -> [Int32] {
        var symbols = start
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

    /// O(n log n): symbols in a linked list, candidate merges in a min-heap of `rank << 32 | left
    /// position`, so the lowest rank and then the leftmost pair comes first. Entries that no
    /// longer describe a live pair are skipped when popped.
    func mergeLong(_ start: [Int32]) -> [Int32] {
        var ids = start
        let n = ids.count
        var next = Array(1...n)           // n marks the end
        var prev = Array(-1..<(n - 1))    // -1 marks the start
        var alive = [Bool](repeating: true, count: n)
        var heap = MinHeap()
        func push(_ left: Int) {
            let right = next[left]
            guard right < n else { return }
            let m = lookup(ids[left], ids[right])
            if m != UInt64.max { heap.push((m & 0xFFFF_FFFF_0000_0000) | UInt64(left)) }
        }
        for i in 0..<(n - 1) { push(i) }
        while let top = heap.pop() {
            let left = Int(top & 0xFFFF_FFFF)
            guard alive[left], next[left] < n else { continue }
            let right = next[left]
            let m = lookup(ids[left], ids[right])
            guard m != UInt64.max, m >> 32 == top >> 32 else { continue }
            ids[left] = Int32(truncatingIfNeeded: m & 0xFFFF_FFFF)
            alive[right] = false
            next[left] = next[right]
            if next[right] < n { prev[next[right]] = left }
            if prev[left] >= 0 { push(prev[left]) }
            push(left)
        }
        return (0..<n).compactMap { alive[$0] ? ids[$0] : nil }
    }
}

/// A binary min-heap of packed merge candidates.
struct MinHeap {
    private var items: [UInt64] = []

    mutating func push(_ x: UInt64) {
        items.append(x)
        var i = items.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard items[parent] > items[i] else { break }
            items.swapAt(parent, i)
            i = parent
        }
    }

    mutating func pop() -> UInt64? {
        guard let top = items.first else { return nil }
        let last = items.removeLast()
        guard !items.isEmpty else { return top }
        items[0] = last
        var i = 0
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < items.count, items[l] < items[m] { m = l }
            if r < items.count, items[r] < items[m] { m = r }
            if m == i { break }
            items.swapAt(i, m)
            i = m
        }
        return top
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
