import Storage
import Foundation

// For ExplanationStoreTests' crash test: `loupe-save-loop DIR TAG [COUNT]` saves "TAG save 0",
// "TAG save 1", … for latents 0…4 in turn into the explanation log in DIR until killed (or COUNT are saved).
let arguments = Array(CommandLine.arguments.dropFirst())
guard arguments.count >= 2 else {
    FileHandle.standardError.write(Data("usage: loupe-save-loop DIR TAG [COUNT]\n".utf8))
    exit(2)
}
let count = arguments.count > 2 ? Int(arguments[2]) ?? Int.max : Int.max
let store = try ExplanationStore(directory: URL(fileURLWithPath: arguments[0], isDirectory: true))
var i = 0
while i < count {
    try store.save(latent: i % 5, text: "\(arguments[1]) save \(i)", source: "test")
    i += 1
}
