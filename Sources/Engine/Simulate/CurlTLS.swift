import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// HTTPS for `HTTPClient`: libcurl's *multi* interface driven from the calling thread, which
/// sleeps in `curl_multi_wait` until a socket is ready or the next deadline, so a silent server
/// costs no CPU (URLSession on Linux, which drives the same libcurl from dispatch sources, kept a
/// write source armed on the connected socket while waiting for the TLS handshake's reply and
/// woke about 1,500 times a second: half a core to a whole one spent on nothing).
///
/// libcurl is opened at run time (`dlopen("libcurl.so.4")`): Foundation's networking on Linux
/// already depends on it, so nothing new is linked; without it an https URL fails with one line
/// saying so. Same rules as the http path: every phase under its deadline (`HTTPLimits`), the
/// reply capped as it arrives, HTTP/1.1, https only, redirects never followed.
enum CurlTLS {
    // From curl/curl.h (stable ABI numbers): options are type base + number.
    private static let optWriteData: Int32 = 10_001, optURL: Int32 = 10_002, optWriteFunction: Int32 = 20_011
    private static let optHTTPHeader: Int32 = 10_023, optHeaderData: Int32 = 10_029, optPost: Int32 = 47
    private static let optFollowLocation: Int32 = 52, optPostFieldSize: Int32 = 60, optHeaderFunction: Int32 = 20_079
    private static let optHTTPVersion: Int32 = 84, optNoSignal: Int32 = 99, optTimeoutMS: Int32 = 155
    private static let optCopyPostFields: Int32 = 10_165, optProtocols: Int32 = 181
    private static let optSocketFunction: Int32 = 20_148, optSocketData: Int32 = 10_149
    private static let protoHTTPS = 2, http11 = 2
    private static let infoResponseCode: Int32 = 0x200000 + 2
    private static let errorResolve: Int32 = 6, errorConnect: Int32 = 7, errorTimedOut: Int32 = 28

    private typealias Callback = @convention(c) (UnsafeMutablePointer<CChar>?, Int, Int, UnsafeMutableRawPointer?) -> Int

    /// The libcurl functions used, looked up once.
    private struct API {
        let globalInit: @convention(c) (Int) -> Int32
        let easyInit: @convention(c) () -> OpaquePointer?
        let easyCleanup: @convention(c) (OpaquePointer?) -> Void
        let setLong: @convention(c) (OpaquePointer?, Int32, Int) -> Int32
        let setPointer: @convention(c) (OpaquePointer?, Int32, UnsafeRawPointer?) -> Int32
        let getLong: @convention(c) (OpaquePointer?, Int32, UnsafeMutablePointer<Int>) -> Int32
        let strerror: @convention(c) (Int32) -> UnsafePointer<CChar>?
        let multiInit: @convention(c) () -> OpaquePointer?
        let multiCleanup: @convention(c) (OpaquePointer?) -> Int32
        let multiAdd: @convention(c) (OpaquePointer?, OpaquePointer?) -> Int32
        let multiRemove: @convention(c) (OpaquePointer?, OpaquePointer?) -> Int32
        let multiPerform: @convention(c) (OpaquePointer?, UnsafeMutablePointer<Int32>) -> Int32
        let multiWait: @convention(c) (OpaquePointer?, UnsafeMutableRawPointer?, UInt32, Int32, UnsafeMutablePointer<Int32>?) -> Int32
        let multiInfoRead: @convention(c) (OpaquePointer?, UnsafeMutablePointer<Int32>) -> UnsafeMutableRawPointer?
        let slistAppend: @convention(c) (OpaquePointer?, UnsafePointer<CChar>) -> OpaquePointer?
        let slistFree: @convention(c) (OpaquePointer?) -> Void

        static func load() -> API? {
            guard let lib = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL) ?? dlopen("libcurl.so", RTLD_NOW | RTLD_LOCAL) else { return nil }
            func f<T>(_ name: String, _: T.Type) -> T? { dlsym(lib, name).map { unsafeBitCast($0, to: T.self) } }
            guard let globalInit = f("curl_global_init", (@convention(c) (Int) -> Int32).self),
                  let easyInit = f("curl_easy_init", (@convention(c) () -> OpaquePointer?).self),
                  let easyCleanup = f("curl_easy_cleanup", (@convention(c) (OpaquePointer?) -> Void).self),
                  // curl_easy_setopt and curl_easy_getinfo are variadic; on the Linux ABIs a long or a
                  // pointer in the first variadic slot is passed as a fixed argument would be.
                  let setLong = f("curl_easy_setopt", (@convention(c) (OpaquePointer?, Int32, Int) -> Int32).self),
                  let setPointer = f("curl_easy_setopt", (@convention(c) (OpaquePointer?, Int32, UnsafeRawPointer?) -> Int32).self),
                  let getLong = f("curl_easy_getinfo", (@convention(c) (OpaquePointer?, Int32, UnsafeMutablePointer<Int>) -> Int32).self),
                  let strerror = f("curl_easy_strerror", (@convention(c) (Int32) -> UnsafePointer<CChar>?).self),
                  let multiInit = f("curl_multi_init", (@convention(c) () -> OpaquePointer?).self),
                  let multiCleanup = f("curl_multi_cleanup", (@convention(c) (OpaquePointer?) -> Int32).self),
                  let multiAdd = f("curl_multi_add_handle", (@convention(c) (OpaquePointer?, OpaquePointer?) -> Int32).self),
                  let multiRemove = f("curl_multi_remove_handle", (@convention(c) (OpaquePointer?, OpaquePointer?) -> Int32).self),
                  let multiPerform = f("curl_multi_perform", (@convention(c) (OpaquePointer?, UnsafeMutablePointer<Int32>) -> Int32).self),
                  let multiWait = f("curl_multi_wait",
                                    (@convention(c) (OpaquePointer?, UnsafeMutableRawPointer?, UInt32, Int32, UnsafeMutablePointer<Int32>?) -> Int32).self),
                  let multiInfoRead = f("curl_multi_info_read", (@convention(c) (OpaquePointer?, UnsafeMutablePointer<Int32>) -> UnsafeMutableRawPointer?).self),
                  let slistAppend = f("curl_slist_append", (@convention(c) (OpaquePointer?, UnsafePointer<CChar>) -> OpaquePointer?).self),
                  let slistFree = f("curl_slist_free_all", (@convention(c) (OpaquePointer?) -> Void).self)
            else { return nil }
            let api = API(globalInit: globalInit, easyInit: easyInit, easyCleanup: easyCleanup, setLong: setLong, setPointer: setPointer,
                          getLong: getLong, strerror: strerror, multiInit: multiInit, multiCleanup: multiCleanup,
                          multiAdd: multiAdd, multiRemove: multiRemove, multiPerform: multiPerform, multiWait: multiWait,
                          multiInfoRead: multiInfoRead, slistAppend: slistAppend, slistFree: slistFree)
            _ = api.globalInit(3)  // CURL_GLOBAL_ALL; once, before any handle (a static let runs once)
            return api
        }
    }

    private static let api = API.load()

    /// What the callbacks collect, capped at `cap` bytes of headers and body together.
    private final class Reply {
        let cap: Int
        var head = Data()
        /// In pieces, joined once at the end (see `ReplyBytes`).
        var body = ReplyBytes()
        var over = false
        /// The sockets libcurl opened (CURLOPT_SOCKOPTFUNCTION), to tell when TCP is connected.
        var sockets: [Int32] = []
        init(cap: Int) { self.cap = cap }

        /// Whether a socket has a peer: the TCP connection is made (the TLS handshake may not be).
        var connected: Bool {
            sockets.contains { fd in
                var address = sockaddr_storage()
                var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
                return withUnsafeMutablePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &length) == 0 }
                }
            }
        }

        func take(_ bytes: UnsafeMutablePointer<CChar>?, _ count: Int, intoHead: Bool) -> Int {
            guard let bytes, count > 0 else { return 0 }
            guard head.count + body.count + count <= cap else { over = true; return 0 }  // 0 stops the transfer
            let raw = UnsafeRawBufferPointer(start: bytes, count: count)
            if intoHead { head.append(contentsOf: raw) } else { body.append(ArraySlice(raw)) }
            return count
        }
    }

    private static let onHeader: Callback = { bytes, size, n, me in
        Unmanaged<Reply>.fromOpaque(me!).takeUnretainedValue().take(bytes, size * n, intoHead: true)
    }
    private static let onBody: Callback = { bytes, size, n, me in
        Unmanaged<Reply>.fromOpaque(me!).takeUnretainedValue().take(bytes, size * n, intoHead: false)
    }
    private static let onSocket: @convention(c) (UnsafeMutableRawPointer?, Int32, Int32) -> Int32 = { me, fd, _ in
        Unmanaged<Reply>.fromOpaque(me!).takeUnretainedValue().sockets.append(fd)
        return 0  // CURL_SOCKOPT_OK
    }

    static func post(_ url: URL, headers: [(String, String)], body: Data, limits: HTTPLimits) throws(HTTPFailure) -> HTTPReply {
        let start = HTTPClient.monotonicNow()
        guard let api else { throw .cannotConnect(reason: "https needs libcurl (libcurl.so.4), which is not installed; install libcurl4 or use an http:// URL") }
        guard let easy = api.easyInit(), let multi = api.multiInit() else { throw .cannotConnect(reason: "libcurl could not start a transfer") }
        let reply = Reply(cap: limits.maxReplyBytes)
        let me = Unmanaged.passRetained(reply)
        var list: OpaquePointer?
        // The caller's headers, and no "Expect: 100-continue" (one round trip, one header block).
        for line in headers.map({ "\($0.0): \($0.1)" }) + ["Expect:"] { list = api.slistAppend(list, line) }
        defer {
            _ = api.multiRemove(multi, easy)
            api.easyCleanup(easy)
            _ = api.multiCleanup(multi)
            api.slistFree(list)
            me.release()
        }
        _ = api.setPointer(easy, optURL, url.absoluteString)
        _ = api.setLong(easy, optProtocols, protoHTTPS)
        _ = api.setLong(easy, optHTTPVersion, http11)
        _ = api.setLong(easy, optFollowLocation, 0)
        _ = api.setLong(easy, optNoSignal, 1)
        // A backstop only: the deadlines below end the transfer first.
        _ = api.setLong(easy, optTimeoutMS, Int(min(limits.whole + 5, 1e9) * 1000))
        _ = api.setLong(easy, optPost, 1)
        _ = api.setLong(easy, optPostFieldSize, body.count)
        _ = body.withUnsafeBytes { api.setPointer(easy, optCopyPostFields, $0.baseAddress ?? UnsafeRawPointer(bitPattern: 1)) }
        _ = api.setPointer(easy, optHTTPHeader, list.map { UnsafeRawPointer($0) })
        _ = api.setPointer(easy, optHeaderFunction, unsafeBitCast(onHeader, to: UnsafeRawPointer.self))
        _ = api.setPointer(easy, optHeaderData, me.toOpaque())
        _ = api.setPointer(easy, optWriteFunction, unsafeBitCast(onBody, to: UnsafeRawPointer.self))
        _ = api.setPointer(easy, optWriteData, me.toOpaque())
        _ = api.setPointer(easy, optSocketFunction, unsafeBitCast(onSocket, to: UnsafeRawPointer.self))
        _ = api.setPointer(easy, optSocketData, me.toOpaque())
        _ = api.multiAdd(multi, easy)

        var result: Int32?
        while result == nil {
            var running: Int32 = 0
            _ = api.multiPerform(multi, &running)
            var left: Int32 = 0
            while let message = api.multiInfoRead(multi, &left) {
                // struct CURLMsg { CURLMSG msg; CURL *easy_handle; union { void *; CURLcode result; } data; }
                if message.load(as: Int32.self) == 1 { result = message.load(fromByteOffset: 2 * MemoryLayout<Int>.size, as: Int32.self) }
            }
            if reply.over { throw .tooLarge(bytes: limits.maxReplyBytes) }
            if result != nil { break }
            if running == 0 { result = -1; break }
            // Which deadline is next: the connection, the first byte, the whole reply.
            let connected = reply.connected
            let gotFirst = !reply.head.isEmpty
            let now = HTTPClient.monotonicNow()
            let connectBy = start + min(limits.connect, limits.whole), firstBy = start + min(limits.firstByte, limits.whole)
            let wholeBy = start + limits.whole
            if !connected && now >= connectBy { throw .connectTimedOut(seconds: limits.connect) }
            if !gotFirst && now >= firstBy {
                throw limits.firstByte < limits.whole ? .noFirstByte(seconds: limits.firstByte) : .tooSlow(seconds: limits.whole)
            }
            if now >= wholeBy { throw .tooSlow(seconds: limits.whole) }
            let next = min(connected ? .infinity : connectBy, gotFirst ? wholeBy : firstBy)
            let millis = Int32(max(1, min(1000, ((next - now) * 1000).rounded(.up))))
            _ = api.multiWait(multi, nil, 0, millis, nil)
        }
        switch result! {
        case 0:
            var status = 0
            _ = api.getLong(easy, infoResponseCode, &status)
            return HTTPReply(status: status, headers: Self.headers(reply.head), body: Data(reply.body.joined()))
        case errorResolve: throw .cannotResolve(host: url.host ?? "")
        case errorTimedOut: throw .tooSlow(seconds: limits.whole)
        case -1: throw .truncated
        case let code:
            let reason = api.strerror(code).map { String(cString: $0) } ?? "libcurl error \(code)"
            throw code == errorConnect ? .cannotConnect(reason: reason) : .cannotConnect(reason: "\(reason) (libcurl error \(code))")
        }
    }

    /// The last header block's fields (names lowercased); earlier blocks are 1xx replies.
    static func headers(_ head: Data) -> [String: String] {
        let blocks = String(decoding: head, as: UTF8.self).components(separatedBy: "\r\n\r\n").filter { !$0.isEmpty }
        var fields: [String: String] = [:]
        for line in (blocks.last ?? "").components(separatedBy: "\r\n").dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            fields[line[..<colon].trimmingCharacters(in: .whitespaces).lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return fields
    }
}
