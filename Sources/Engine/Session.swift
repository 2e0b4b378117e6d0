import Formats
import Foundation
import Kernels
import Model
import Tokenizer

/// A loaded model with its tokenizer and chat template: what every model command starts from.
public final class Session: @unchecked Sendable {
    public let path: String
    public let model: LlamaModel
    public let tokenizer: BPETokenizer
    public let chat: ChatTemplate?
    /// Seconds spent opening, checking, dequantizing and packing.
    public let loadSeconds: Double

    /// Loads `path` (or the default model, fetching it on first use).
    public init(modelPath: String?, batch: Int = 256, progress: (String) -> Void = { _ in }) throws {
        path = try ModelFetch.resolve(modelPath, progress: progress)
        let start = Clock.now
        let gguf = try GGUFFile(path: path)
        tokenizer = try BPETokenizer(gguf: gguf)
        chat = (try? gguf.string("tokenizer.chat_template")).flatMap { try? ChatTemplate(jinja: $0) }
        model = try LlamaModel(gguf: gguf, batch: batch)
        loadSeconds = Clock.now - start
    }
}

/// Wall-clock seconds, monotonic.
public enum Clock {
    public static var now: Double {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
    }
}

/// Peak and current resident memory of this process, from /proc/self/status.
public enum Memory {
    public static func residentMB(peak: Bool) -> Double {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        let key = peak ? "VmHWM:" : "VmRSS:"
        for line in status.split(separator: "\n") where line.hasPrefix(key) {
            let kb = line.split(separator: " ").compactMap { Double($0) }.first ?? 0
            return kb / 1024
        }
        return 0
    }
}
