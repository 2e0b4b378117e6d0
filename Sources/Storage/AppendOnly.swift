import Foundation

/// Shared by the append-only logs (explanations, scores, the rewrite's simulations): how a line
/// is appended, how the lines are read back, and how damaged lines are counted and named.
public enum AppendOnly {
    /// The one rule for a log's damaged lines (unparsable or invalid): each is skipped on its own,
    /// never hiding the lines after it; they are counted, the first few named by their 1-based line
    /// number in the file, and `warning` says so in one line. A reader calls `damaged(at:)` per bad
    /// line of a `Tail`, then `read(_:)` once the tail is done; `reset()` when a tail restarts.
    public struct DamagedLines: Equatable, Sendable {
        /// Damaged lines skipped so far.
        public private(set) var count = 0
        /// 1-based line numbers of the first damaged lines (at most 10), in file order.
        public private(set) var first: [Int] = []
        /// Lines of the file read before the current tail (blank ones included).
        private var linesRead = 0

        public init() {}

        /// Notes the damaged line `number` (0-based among the current tail's lines, `Tail.numbers`).
        public mutating func damaged(at number: Int) {
            count += 1
            if first.count < 10 { first.append(linesRead + number + 1) }
        }

        /// The tail's lines are done: the next tail's numbers continue after them.
        public mutating func read(_ tail: Tail) { linesRead += tail.lineCount }

        /// The file was replaced or truncated and is read again from the start.
        public mutating func reset() { self = DamagedLines() }

        /// One line naming the log and its first damaged line, or nil when every line was read.
        public func warning(path: String) -> String? {
            guard let line = first.first else { return nil }
            let more = count > 1 ? " and \(count - 1) more" : ""
            return "\(path): line \(line)\(more) damaged and skipped; every other line was read (fix or delete the line to silence this)"
        }
    }

    /// The complete lines of a log after byte `offset`, blank ones dropped: an unterminated last
    /// line (torn by a crash, or still being written) waits. `restart` is true when the file is
    /// shorter than `offset` (replaced or truncated): the lines are then read from the start, and
    /// what was read before must be dropped. `end` is the offset to read from next time. Nil when
    /// the file does not exist.
    public struct Tail {
        public var lines: [Data.SubSequence]
        /// Per line, its 0-based number among the lines read (blank ones counted), so a reader can
        /// name the line of the file a damaged one is on.
        public var numbers: [Int] = []
        /// Lines read, blank ones included (what the next read's numbers continue from).
        public var lineCount = 0
        public var end: UInt64
        public var restart: Bool
    }

    public static func readLines(_ path: String, after offset: UInt64) throws -> Tail? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        let restart = UInt64(st.st_size) < offset
        let start = restart ? 0 : offset
        guard let handle = FileHandle(forReadingAtPath: path) else { throw LogError.cannotRead(path: path, reason: nil) }
        defer { try? handle.close() }
        let data: Data
        do {
            try handle.seek(toOffset: start)
            data = try handle.readToEnd() ?? Data()
        } catch { throw LogError.cannotRead(path: path, reason: error.localizedDescription) }
        guard let last = data.lastIndex(of: UInt8(ascii: "\n")) else { return Tail(lines: [], end: start, restart: restart) }
        let all = data[data.startIndex..<last].split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        let kept = all.enumerated().filter { !$0.element.allSatisfy { $0 == 0x20 || $0 == 0x09 || $0 == 0x0D } }
        return Tail(lines: kept.map(\.element), numbers: kept.map(\.offset), lineCount: all.count,
                    end: start + UInt64(last - data.startIndex + 1), restart: restart)
    }

    /// The whole of `bytes` written to `fd`, retrying short writes and EINTR, so one record is one
    /// `write` sequence before its fsync.
    static func writeAll(_ fd: Int32, _ bytes: [UInt8], path: String) throws {
        try bytes.withUnsafeBytes { raw in
            var done = 0
            while done < raw.count {
                let n = write(fd, raw.baseAddress! + done, raw.count - done)
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { throw LogError.cannotWrite(path: path, reason: LogError.systemReason) }
                done += n
            }
        }
    }

    /// The file opened for appending (created if missing; readable, for `endLine`).
    static func openAppend(_ path: String) throws -> Int32 {
        let fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw LogError.cannotOpen(path: path, reason: LogError.systemReason) }
        return fd
    }

    /// Ends a torn last line with "\n"; returns the file's size after.
    static func endLine(_ fd: Int32, path: String) throws -> UInt64 {
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw LogError.cannotStat(path: path) }
        guard st.st_size > 0 else { return 0 }
        var last: UInt8 = 0
        guard pread(fd, &last, 1, st.st_size - 1) == 1 else { throw LogError.cannotRead(path: path, reason: nil) }
        if last == UInt8(ascii: "\n") { return UInt64(st.st_size) }
        try AppendOnly.writeAll(fd, [UInt8(ascii: "\n")], path: path)
        return UInt64(st.st_size) + 1
    }
}
