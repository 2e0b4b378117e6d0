import Formats
import Foundation
import Kernels
import Model
import Storage
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
