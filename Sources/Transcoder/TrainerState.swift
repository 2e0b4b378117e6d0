import Foundation
import Formats
import Kernels

/// A trainer's full state on disk, so an interrupted run resumes exactly:
///
///     <dir>/cfg.json, <dir>/sae.safetensors   the transcoder (a loadable sparsify checkpoint)
///     <dir>/optimizer.safetensors              exp_avg.<param>, exp_avg_sq.<param> (Adam moments)
///     <dir>/trainer.json                       step, total_steps, options, tokens_since_fired
extension TranscoderTrainer {
    struct Record: Codable {
        var step: Int
        var totalSteps: Int
        var options: TrainerOptions
        var tokensSinceFired: [Int]

        enum CodingKeys: String, CodingKey {
            case step, options
            case totalSteps = "total_steps"
            case tokensSinceFired = "tokens_since_fired"
        }
    }

    /// Writes the full state (parameters, Adam moments, step, tokens since each latent fired)
    /// into `directory`, replacing it as a whole.
    public func saveState(directory: String) throws {
        let params = transcoder.namedParameters
        var tensors: [(name: String, shape: [Int], values: [Float])] = []
        for (p, mv) in zip(params, moments) {
            tensors.append(("exp_avg.\(p.name)", p.shape, mv.m.array))
            tensors.append(("exp_avg_sq.\(p.name)", p.shape, mv.v.array))
        }
        let record = Record(step: stepCount, totalSteps: totalSteps, options: options, tokensSinceFired: tokensSinceFired)
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        let json = try e.encode(record)
        try AtomicDirectory.write(directory) { tmp in
            try transcoder.writeFiles(into: tmp)
            try SafetensorsFile.write(tensors, metadata: ["format": "loupe-adam"], to: (tmp as NSString).appendingPathComponent("optimizer.safetensors"))
            try json.write(to: URL(fileURLWithPath: (tmp as NSString).appendingPathComponent("trainer.json")))
        }
    }

    /// A trainer continuing from a `saveState` directory; its next step matches the original's bit for bit.
    public static func resume(directory: String) throws -> TranscoderTrainer {
        let transcoder = try Transcoder.load(directory: directory)
        guard transcoder.config.transcode else {
            // TranscoderTrainer's precondition, checked here so a damaged cfg.json is an error, not a trap.
            throw TranscoderError.badConfig(file: (directory as NSString).appendingPathComponent("cfg.json"), key: "transcode",
                                            reason: "must be true for a trainer's state (Loupe trains transcoders)")
        }
        let path = (directory as NSString).appendingPathComponent("trainer.json")
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TranscoderError.badConfig(file: path, key: nil, reason: "cannot read the file")
        }
        let record: Record
        do {
            record = try JSONDecoder().decode(Record.self, from: data)
        } catch let DecodingError.keyNotFound(key, _) {
            throw TranscoderError.badConfig(file: path, key: key.stringValue, reason: "required key is missing")
        } catch {
            throw TranscoderError.badConfig(file: path, key: nil, reason: "unreadable trainer state (\(error))")
        }
        guard record.tokensSinceFired.count == transcoder.m else {
            throw TranscoderError.badConfig(file: path, key: "tokens_since_fired",
                                            reason: "has \(record.tokensSinceFired.count) entries, the transcoder has \(transcoder.m) latents")
        }
        let trainer = TranscoderTrainer(transcoder: transcoder, options: record.options, totalSteps: record.totalSteps)
        let opt = try SafetensorsFile(path: (directory as NSString).appendingPathComponent("optimizer.safetensors"))
        for (p, mv) in zip(transcoder.namedParameters, trainer.moments) {
            for (name, buf) in [("exp_avg.\(p.name)", mv.m), ("exp_avg_sq.\(p.name)", mv.v)] {
                let values = try opt.floats(name, shape: p.shape)
                values.withUnsafeBufferPointer { buf.pointer.update(from: $0.baseAddress!, count: values.count) }
            }
        }
        trainer.stepCount = record.step
        trainer.tokensSinceFired = record.tokensSinceFired
        return trainer
    }
}
