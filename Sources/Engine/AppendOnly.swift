import Foundation

/// Shared by the append-only logs (explanations, scores): the whole of `bytes` written to `fd`,
/// retrying short writes and EINTR, so one record is one `write` sequence before its fsync.
enum AppendOnly {
    static func writeAll(_ fd: Int32, _ bytes: [UInt8], path: String) throws {
        try bytes.withUnsafeBytes { raw in
            var done = 0
            while done < raw.count {
                let n = write(fd, raw.baseAddress! + done, raw.count - done)
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { throw EngineError("cannot write \(path): \(String(cString: strerror(errno)))") }
                done += n
            }
        }
    }
}
