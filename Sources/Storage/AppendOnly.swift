import Foundation

/// Shared by the append-only logs (explanations, scores, the rewrite's simulations).
public enum AppendOnly {
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
