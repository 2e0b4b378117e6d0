/// Everything that can be wrong with a model or checkpoint file. Each case names the file and the
/// key or tensor at fault, so the message alone tells a user what to fix.
public enum FormatError: Error, Equatable, CustomStringConvertible {
    case cannotOpen(file: String, reason: String)
    case truncated(file: String, reading: String)
    case badMagic(file: String, found: String)
    case unsupportedVersion(file: String, version: UInt32)
    case badValueType(file: String, key: String, type: UInt32)
    case badString(file: String, key: String)
    case duplicateKey(file: String, key: String)
    case missingKey(file: String, key: String)
    case wrongValueType(file: String, key: String, expected: String)
    case badAlignment(file: String, alignment: String)
    case unsupportedTensorType(file: String, tensor: String, type: String)
    case badTensorShape(file: String, tensor: String, reason: String)
    case tensorOutOfBounds(file: String, tensor: String, offset: Int, bytes: Int, available: Int)
    case missingTensor(file: String, tensor: String)
    case tensorShapeMismatch(file: String, tensor: String, expected: [Int], found: [Int])
    case badHeader(file: String, reason: String)
    /// A size or count past what the bytes present or `Limits` allow.
    case tooLarge(file: String, field: String, value: String, limit: String)

    public var description: String {
        switch self {
        case let .cannotOpen(file, reason): return "\(file): cannot open (\(reason))"
        case let .truncated(file, reading): return "\(file): file is truncated (ran out of bytes reading \(short(reading)))"
        case let .badMagic(file, found): return "\(file): not a GGUF file (magic \(found))"
        case let .unsupportedVersion(file, v): return "\(file): GGUF version \(v) is not supported (2 and 3 are)"
        case let .badValueType(file, key, t): return "\(file): metadata key '\(short(key))' has unknown value type \(t)"
        case let .badString(file, key): return "\(file): metadata key '\(short(key))' holds a string that is not valid UTF-8"
        case let .duplicateKey(file, key): return "\(file): metadata key '\(short(key))' appears twice"
        case let .missingKey(file, key): return "\(file): required metadata key '\(short(key))' is missing"
        case let .wrongValueType(file, key, expected): return "\(file): metadata key '\(short(key))' should be \(expected)"
        case let .badAlignment(file, a): return "\(file): metadata key 'general.alignment' is \(a), expected an integer power of two up to \(Limits.alignment)"
        case let .unsupportedTensorType(file, tensor, type): return "\(file): tensor '\(short(tensor))' has type \(type), which Loupe cannot read (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1)"
        case let .badTensorShape(file, tensor, reason): return "\(file): tensor '\(short(tensor))' has a bad shape (\(reason))"
        case let .tensorOutOfBounds(file, tensor, offset, bytes, available):
            return "\(file): tensor '\(short(tensor))' needs \(bytes) bytes at offset \(offset) but the file holds only \(available) (truncated or corrupt)"
        case let .missingTensor(file, tensor): return "\(file): tensor '\(short(tensor))' is missing"
        case let .tensorShapeMismatch(file, tensor, expected, found):
            return "\(file): tensor '\(short(tensor))' has shape \(found), expected \(expected)"
        case let .badHeader(file, reason): return "\(file): bad header (\(reason))"
        case let .tooLarge(file, field, value, limit): return "\(file): \(short(field)) is \(value), more than the limit \(limit) (the file is damaged or not one Loupe reads)"
        }
    }

    /// A name read from the file, cut to 80 characters: a damaged file can hold a 64 KB key name,
    /// and a message quotes a short excerpt of it, never all of it.
    private func short(_ name: String) -> String { name.count <= 80 ? name : name.prefix(80) + "…" }
}
