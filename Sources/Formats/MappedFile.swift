import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A whole file mapped read-only into memory. The mapping lives as long as this object.
public final class MappedFile: @unchecked Sendable {
    public let path: String
    public let bytes: UnsafeRawBufferPointer

    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw FormatError.cannotOpen(file: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw FormatError.cannotOpen(file: path, reason: String(cString: strerror(errno))) }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw FormatError.cannotOpen(file: path, reason: "not a regular file") }
        let size = Int(st.st_size)
        if size == 0 {
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            return
        }
        let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let p, p != MAP_FAILED else { throw FormatError.cannotOpen(file: path, reason: String(cString: strerror(errno))) }
        bytes = UnsafeRawBufferPointer(start: p, count: size)
    }

    /// Tells the kernel the pages wholly inside `range` are not needed for now, so they stop
    /// counting as resident; they are read back from the file if touched again.
    public func release(_ range: Range<Int>) {
        guard let base = bytes.baseAddress, !range.isEmpty else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = (range.lowerBound + page - 1) / page * page
        let end = range.upperBound / page * page
        guard end > start else { return }
        madvise(UnsafeMutableRawPointer(mutating: base + start), end - start, MADV_DONTNEED)
    }

    deinit {
        if let base = bytes.baseAddress { munmap(UnsafeMutableRawPointer(mutating: base), bytes.count) }
    }
}

/// A bounds-checked little-endian cursor. Every read names what it was reading, so a truncated
/// file gives an error saying where it ended.
struct ByteCursor {
    let bytes: UnsafeRawBufferPointer
    let file: String
    var offset = 0

    init(_ bytes: UnsafeRawBufferPointer, file: String) {
        self.bytes = bytes
        self.file = file
    }

    mutating func take(_ n: Int, _ what: @autoclosure () -> String) throws -> UnsafeRawBufferPointer {
        guard n >= 0, n <= bytes.count - offset else { throw FormatError.truncated(file: file, reading: what()) }
        defer { offset += n }
        return UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + n])
    }

    mutating func read<T: FixedWidthInteger>(_: T.Type, _ what: @autoclosure () -> String) throws -> T {
        let raw = try take(MemoryLayout<T>.size, what())
        return T(littleEndian: raw.loadUnaligned(as: T.self))
    }

    mutating func readFloat(_ what: @autoclosure () -> String) throws -> Float {
        Float(bitPattern: try read(UInt32.self, what()))
    }

    mutating func readDouble(_ what: @autoclosure () -> String) throws -> Double {
        Double(bitPattern: try read(UInt64.self, what()))
    }

    /// A count that must fit in what is left of the file (each element at least `minElementSize` bytes).
    mutating func readCount(_ what: @autoclosure () -> String, minElementSize: Int = 1) throws -> Int {
        let n = try read(UInt64.self, what())
        guard n <= UInt64(bytes.count - offset) / UInt64(max(minElementSize, 1)) else {
            throw FormatError.truncated(file: file, reading: what())
        }
        return Int(n)
    }
}
