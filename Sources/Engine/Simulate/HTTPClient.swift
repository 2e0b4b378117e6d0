import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// How long a request may take and how much it may bring back. Every phase has its own deadline,
/// counted from the start of the request, so a silent server, a server that drips a byte every few
/// seconds and an endless body all end by `whole` at the latest.
public struct HTTPLimits: Sendable, Equatable {
    /// TCP connection established.
    public var connect: TimeInterval
    /// First byte of the reply.
    public var firstByte: TimeInterval
    /// The whole reply.
    public var whole: TimeInterval
    /// Bytes of the reply (status line, headers and body) at most.
    public var maxReplyBytes: Int

    public init(connect: TimeInterval = 10, firstByte: TimeInterval = 120, whole: TimeInterval = 300, maxReplyBytes: Int = 64 << 20) {
        self.connect = connect
        self.firstByte = firstByte
        self.whole = whole
        self.maxReplyBytes = maxReplyBytes
    }
}

/// A complete HTTP reply.
public struct HTTPReply: Sendable {
    public var status: Int
    /// Header names lowercased.
    public var headers: [String: String]
    public var body: Data
}

/// Why a request got no complete reply.
public enum HTTPFailure: Error, Equatable, Sendable {
    case cannotResolve(host: String)
    /// The resolver gave no answer by the connect deadline.
    case resolveTimedOut(host: String, seconds: Double)
    case cannotConnect(reason: String)
    case connectTimedOut(seconds: Double)
    case noFirstByte(seconds: Double)
    case tooSlow(seconds: Double)
    case tooLarge(bytes: Int)
    /// Not an HTTP/1.x reply (status line, headers, chunk sizes); `reason` is short and ours.
    case malformed(reason: String)
    /// The connection closed before the reply was complete.
    case truncated
}

/// One POST at a time over HTTP/1.1, with every phase under a deadline (`HTTPLimits`), the reply
/// capped, no redirects followed (a 3xx reply comes back as it is, so credentials never reach
/// another origin) and no busy waiting: the calling thread sleeps in `poll` until the socket is
/// ready or the deadline passes. `http://` is spoken here over a socket; `https://` goes through
/// libcurl driven the same way (CurlTLS.swift). A host name is resolved under the connect deadline.
public enum HTTPClient {
    /// One address `getaddrinfo` gave, copied out of its list.
    struct Address: @unchecked Sendable {
        var family: Int32, type: Int32, proto: Int32
        var storage = sockaddr_storage()
        var length: socklen_t
    }

    /// Resolves a host name and port to addresses (nil: no such host). Blocking; `resolve` gives it
    /// a deadline. The system's resolver unless a test hands another.
    typealias Resolver = @Sendable (_ host: String, _ port: Int) -> [Address]?

    public static func post(_ url: URL, headers: [(String, String)], body: Data, limits: HTTPLimits) throws(HTTPFailure) -> HTTPReply {
        try post(url, headers: headers, body: body, limits: limits, resolver: systemResolver)
    }

    static func post(_ url: URL, headers: [(String, String)], body: Data, limits: HTTPLimits, resolver: @escaping Resolver) throws(HTTPFailure) -> HTTPReply {
        if url.scheme == "https" { return try CurlTLS.post(url, headers: headers, body: body, limits: limits) }
        let start = monotonicNow()
        let host = url.host ?? "127.0.0.1"
        let port = url.port ?? 80
        var path = url.path.isEmpty ? "/" : url.path
        if let query = url.query { path += "?" + query }
        let connectBy = start + min(limits.connect, limits.whole)
        let addresses = try resolve(host: host, port: port, deadline: connectBy, seconds: limits.connect, resolver: resolver)
        let fd = try connect(addresses, deadline: connectBy, seconds: limits.connect)
        defer { close(fd) }
        let hostHeader = host.contains(":") ? "[\(host)]" : host  // an IPv6 literal
        var head = "POST \(path) HTTP/1.1\r\nHost: \(hostHeader):\(port)\r\nConnection: close\r\nContent-Length: \(body.count)\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        head += "\r\n"
        try send(fd, Data(head.utf8) + body, deadline: start + limits.whole, limits: limits)
        return try receive(fd, start: start, limits: limits)
    }

    /// Seconds on a clock that never jumps.
    static func monotonicNow() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// Milliseconds until `deadline` for `poll`, at least 0.
    private static func millis(until deadline: Double) -> Int32 {
        Int32(max(0, min(Double(Int32.max), ((deadline - monotonicNow()) * 1000).rounded(.up))))
    }

    /// Waits until `fd` is ready for `events` or the deadline passes (false).
    private static func wait(_ fd: Int32, _ events: Int16, deadline: Double) -> Bool {
        while true {
            var p = pollfd(fd: fd, events: events, revents: 0)
            let r = poll(&p, 1, millis(until: deadline))
            if r > 0 { return true }
            if r == 0 { return false }
            if errno != EINTR { return true }  // let the following read or write report the error
        }
    }

    /// `getaddrinfo` for TCP; `numericOnly` never asks the resolver (AI_NUMERICHOST).
    static func addresses(host: String, port: Int, numericOnly: Bool) -> [Address]? {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        if numericOnly { hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV }
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &list) == 0 else { return nil }
        defer { freeaddrinfo(list) }
        var out: [Address] = []
        var cursor = list
        while let ai = cursor {
            cursor = ai.pointee.ai_next
            guard let sa = ai.pointee.ai_addr, Int(ai.pointee.ai_addrlen) <= MemoryLayout<sockaddr_storage>.size else { continue }
            var a = Address(family: ai.pointee.ai_family, type: ai.pointee.ai_socktype, proto: ai.pointee.ai_protocol, length: ai.pointee.ai_addrlen)
            withUnsafeMutableBytes(of: &a.storage) { $0.copyMemory(from: UnsafeRawBufferPointer(start: sa, count: Int(ai.pointee.ai_addrlen))) }
            out.append(a)
        }
        return out.isEmpty ? nil : out
    }

    static let systemResolver: Resolver = { host, port in addresses(host: host, port: port, numericOnly: false) }

    /// Whether `host` is an IPv4 or IPv6 literal (no resolver needed).
    static func isNumeric(_ host: String) -> Bool {
        var buffer = in6_addr()
        return inet_pton(AF_INET, host, &buffer) == 1 || inet_pton(AF_INET6, host, &buffer) == 1
    }

    /// The host's addresses by `deadline`: a literal address directly, a name through `resolver` on
    /// a helper thread while this one sleeps until the answer or the deadline (the resolver cannot
    /// be interrupted, so a late answer is dropped when it comes).
    static func resolve(host: String, port: Int, deadline: Double, seconds: Double, resolver: @escaping Resolver) throws(HTTPFailure) -> [Address] {
        if isNumeric(host) {
            guard let list = addresses(host: host, port: port, numericOnly: true) else { throw .cannotResolve(host: host) }
            return list
        }
        final class Answer: @unchecked Sendable {
            let done = DispatchSemaphore(value: 0)
            var addresses: [Address]?
        }
        let answer = Answer()
        let thread = Thread {
            answer.addresses = resolver(host, port)
            answer.done.signal()
        }
        thread.stackSize = 1 << 18
        thread.start()
        guard answer.done.wait(timeout: .now() + max(0, deadline - monotonicNow())) == .success else {
            throw .resolveTimedOut(host: host, seconds: seconds)
        }
        guard let list = answer.addresses, !list.isEmpty else { throw .cannotResolve(host: host) }
        return list
    }

    private static func connect(_ addresses: [Address], deadline: Double, seconds: Double) throws(HTTPFailure) -> Int32 {
        var reason = "no address"
        for var a in addresses {
            let fd = socket(a.family, a.type, a.proto)
            guard fd >= 0 else { reason = String(cString: strerror(errno)); continue }
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            var one: Int32 = 1
            _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            let addressLength = a.length
            let started = withUnsafePointer(to: &a.storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, addressLength) } }
            if started == 0 { return fd }
            guard errno == EINPROGRESS else { reason = String(cString: strerror(errno)); close(fd); continue }
            guard wait(fd, Int16(POLLOUT), deadline: deadline) else {
                close(fd)
                throw .connectTimedOut(seconds: seconds)
            }
            var error: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            _ = getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
            if error == 0 { return fd }
            reason = String(cString: strerror(error))
            close(fd)
        }
        throw .cannotConnect(reason: reason)
    }

    private static func send(_ fd: Int32, _ data: Data, deadline: Double, limits: HTTPLimits) throws(HTTPFailure) {
        var sent = 0
        while sent < data.count {
            guard wait(fd, Int16(POLLOUT), deadline: deadline) else { throw .tooSlow(seconds: limits.whole) }
            let n = data.withUnsafeBytes { raw in Glibc.send(fd, raw.baseAddress! + sent, data.count - sent, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EAGAIN || errno == EINTR { continue }
                throw .cannotConnect(reason: String(cString: strerror(errno)))
            }
            sent += n
        }
    }

    private static func receive(_ fd: Int32, start: Double, limits: HTTPLimits) throws(HTTPFailure) -> HTTPReply {
        var reply = ReplyBytes()
        var chunk = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            let firstByte = reply.count == 0
            let deadline = start + (firstByte ? min(limits.firstByte, limits.whole) : limits.whole)
            // Checked before each read too: a fast endless body keeps the socket readable, so poll
            // alone would never time out.
            guard monotonicNow() < deadline, wait(fd, Int16(POLLIN), deadline: deadline) else {
                throw firstByte && limits.firstByte < limits.whole ? .noFirstByte(seconds: limits.firstByte) : .tooSlow(seconds: limits.whole)
            }
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
            if n < 0 {
                if errno == EAGAIN || errno == EINTR { continue }
                throw .truncated
            }
            if n == 0 { break }
            guard reply.count + n <= limits.maxReplyBytes else { throw .tooLarge(bytes: limits.maxReplyBytes) }
            reply.append(chunk[0..<n])
            if HTTPMessage.mayBeComplete(head: reply.head, count: reply.count, tail: reply.tail),
               case .complete(let done) = try HTTPMessage.parse(reply.joined(), atEOF: false) { return done }
        }
        switch try HTTPMessage.parse(reply.joined(), atEOF: true) {
        case .complete(let done): return done
        case .incomplete: throw .truncated
        }
    }
}

/// A reply's bytes as they arrive, kept in the pieces `recv` filled and joined once, when the
/// reply is complete. A growing contiguous buffer would copy a long body at every doubling, and
/// with a large cap one copy of a gigabyte outlasts the whole-reply deadline. (libcurl's body
/// for https is kept the same way; there `head` and `tail` go unread.)
struct ReplyBytes {
    /// The bytes so far, in arrival order.
    private(set) var pieces: [[UInt8]] = []
    private(set) var count = 0
    /// The first bytes, contiguous, up to `headLimit`: enough to find and read the headers.
    private(set) var head: [UInt8] = []
    /// The last (up to) 5 bytes: enough to see a chunked body's last chunk.
    private(set) var tail: [UInt8] = []
    static let headLimit = (64 << 10) + 4

    mutating func append(_ piece: ArraySlice<UInt8>) {
        guard !piece.isEmpty else { return }
        if head.count < Self.headLimit { head += piece.prefix(Self.headLimit - head.count) }
        tail = Array((tail + piece.suffix(5)).suffix(5))
        // Small reads go into the last piece, up to 1 MiB, so a trickle is not a piece per byte.
        if let last = pieces.indices.last, pieces[last].count < 1 << 20 { pieces[last] += piece } else { pieces.append(Array(piece)) }
        count += piece.count
    }

    func joined() -> [UInt8] {
        var all = [UInt8]()
        all.reserveCapacity(count)
        for piece in pieces { all += piece }
        return all
    }
}

/// The reply's bytes as HTTP/1.1: status line, headers, and a body framed by Content-Length,
/// chunked encoding, or the end of the connection. Pure, so it can be tested on any bytes.
enum HTTPMessage {
    enum Outcome { case complete(HTTPReply), incomplete }

    /// Cheap test before a full parse, from the reply's first bytes (`head`, up to 64 KiB + 4), its
    /// length and its last bytes: so a long body is not joined and re-parsed after every read. A
    /// chunked body may be complete only when it ends with the last chunk; one with a
    /// Content-Length when that many bytes followed the headers; one framed by the end of the
    /// connection never before it. An unreadable head says yes, for `parse` to name the fault.
    static func mayBeComplete(head: [UInt8], count: Int, tail: [UInt8]) -> Bool {
        guard let end = find([13, 10, 13, 10], in: head, from: 0, limit: 64 << 10) else { return count > 64 << 10 }
        guard let (_, headers) = try? headerBlock(head, end: end) else { return true }
        if headers["transfer-encoding"]?.lowercased().contains("chunked") == true {
            return count >= end + 9 && tail == [48, 13, 10, 13, 10]
        }
        if let lengthText = headers["content-length"] {
            guard let length = Int(lengthText), length >= 0 else { return true }
            return count - (end + 4) >= length
        }
        return false
    }

    /// The status and header fields of the block before `end` (where the blank line starts):
    /// names lowercased, values trimmed, the last of a repeated name winning.
    static func headerBlock(_ bytes: [UInt8], end: Int) throws(HTTPFailure) -> (status: Int, fields: [String: String]) {
        let lines = String(decoding: bytes[0..<end], as: UTF8.self).components(separatedBy: "\r\n")
        let statusParts = lines[0].split(separator: " ", maxSplits: 2)
        guard statusParts.count >= 2, statusParts[0].hasPrefix("HTTP/1."), statusParts[1].count == 3, let status = Int(statusParts[1]) else {
            throw .malformed(reason: "not an HTTP/1.x status line")
        }
        var fields: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { throw .malformed(reason: "a header line without a colon") }
            fields[line[..<colon].trimmingCharacters(in: .whitespaces).lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return (status, fields)
    }

    static func parse(_ bytes: [UInt8], atEOF: Bool) throws(HTTPFailure) -> Outcome {
        guard let end = find([13, 10, 13, 10], in: bytes, from: 0) else {
            if bytes.count > 64 << 10 { throw .malformed(reason: "no end of headers in 64 KiB") }
            if atEOF { throw bytes.isEmpty ? .truncated : .malformed(reason: "no end of headers") }
            return .incomplete
        }
        let (status, headers) = try headerBlock(bytes, end: end)
        let bodyStart = end + 4
        if headers["transfer-encoding"]?.lowercased().contains("chunked") == true {
            guard let body = try dechunk(bytes, from: bodyStart) else {
                if atEOF { throw .truncated }
                return .incomplete
            }
            return .complete(HTTPReply(status: status, headers: headers, body: body))
        }
        if let lengthText = headers["content-length"] {
            guard let length = Int(lengthText), length >= 0 else { throw .malformed(reason: "a Content-Length that is not a count") }
            if bytes.count - bodyStart >= length {
                return .complete(HTTPReply(status: status, headers: headers, body: Data(bytes[bodyStart..<bodyStart + length])))
            }
            if atEOF { throw .truncated }
            return .incomplete
        }
        guard atEOF else { return .incomplete }
        return .complete(HTTPReply(status: status, headers: headers, body: Data(bytes[bodyStart...])))
    }

    /// The body of a chunked encoding starting at `from`, or nil while the last chunk has not arrived.
    static func dechunk(_ bytes: [UInt8], from: Int) throws(HTTPFailure) -> Data? {
        var body = Data()
        var i = from
        while true {
            guard let lineEnd = find([13, 10], in: bytes, from: i) else {
                if bytes.count - i > 1024 { throw .malformed(reason: "a chunk size line longer than 1 KiB") }
                return nil
            }
            let sizeText = String(decoding: bytes[i..<lineEnd], as: UTF8.self).split(separator: ";").first ?? ""
            guard sizeText.count <= 15, let size = Int(sizeText.trimmingCharacters(in: .whitespaces), radix: 16), size >= 0 else {
                throw .malformed(reason: "a chunk size that is not hexadecimal")
            }
            let dataStart = lineEnd + 2
            if size == 0 {
                // The last chunk, then trailer lines (if any) and an empty line.
                if bytes.count >= dataStart + 2 && bytes[dataStart] == 13 && bytes[dataStart + 1] == 10 { return body }
                return find([13, 10, 13, 10], in: bytes, from: lineEnd) == nil ? nil : body
            }
            guard bytes.count >= dataStart + size + 2 else { return nil }
            guard bytes[dataStart + size] == 13, bytes[dataStart + size + 1] == 10 else { throw .malformed(reason: "a chunk not followed by CRLF") }
            body += bytes[dataStart..<dataStart + size]
            i = dataStart + size + 2
        }
    }

    private static func find(_ needle: [UInt8], in bytes: [UInt8], from: Int, limit: Int = .max) -> Int? {
        guard bytes.count >= needle.count else { return nil }
        var i = from
        while i + needle.count <= bytes.count && i - from <= limit {
            if bytes[i] == needle[0] && Array(bytes[i..<i + needle.count]) == needle { return i }
            i += 1
        }
        return nil
    }
}
