import Storage
import Foundation

// For the crash tests (ExplanationStoreTests, KillAtScaleTests): `loupe-save-loop DIR TAG [COUNT]`
// saves "TAG save 0", "TAG save 1", … for latents 0…4 in turn into the explanation log in DIR until
// killed (or COUNT are saved). After each save returns, it acknowledges it on stdout with one
// line, "ID<tab>TEXT", in one write: a save acknowledged is a save the store said was done.
let arguments = Array(CommandLine.arguments.dropFirst())
guard arguments.count >= 2 else {
    FileHandle.standardError.write(Data("usage: loupe-save-loop DIR TAG [COUNT]\n".utf8))
    exit(2)
}
let count = arguments.count > 2 ? Int(arguments[2]) ?? Int.max : Int.max
let store = try ExplanationStore(directory: URL(fileURLWithPath: arguments[0], isDirectory: true))
var i = 0
while i < count {
    let version = try store.save(latent: i % 5, text: "\(arguments[1]) save \(i)", source: "test")
    let ack = Array("\(version.id)\t\(version.text)\n".utf8)
    _ = ack.withUnsafeBytes { write(1, $0.baseAddress!, $0.count) }
    i += 1
}
