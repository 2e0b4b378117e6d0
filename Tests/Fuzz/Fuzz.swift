import FuzzReaders
import Foundation

// `loupe-fuzz`: the readers of outside input (Tests/FuzzReaders) as libFuzzer targets.
//
// Built for fuzzing (`Tests/Scripts/fuzz/run.sh`, which .ci/run calls): `-sanitize=fuzzer
// -D LOUPE_LIBFUZZER`, run as `LOUPE_FUZZ_HARNESS=gguf loupe-fuzz [libFuzzer flags] CORPUS_DIR…`;
// a finding (an untyped or multi-line error) aborts, so libFuzzer saves the input as a crash.
// Built normally (the test build), it replays files: `loupe-fuzz NAME FILE|DIR…` prints each one's
// outcome and exits 1 on a finding; `loupe-fuzz --list` lists the harnesses.

func warn(_ text: String) { FileHandle.standardError.write(Data(text.utf8)) }

/// This process's scratch folder for one harness.
func scratch(_ name: String) -> URL {
    URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("loupe-fuzz-\(getpid())/\(name)", isDirectory: true)
}

#if LOUPE_LIBFUZZER
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<Int32>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Int32

nonisolated(unsafe) var harness: FuzzReader!
nonisolated(unsafe) var folder: URL!

/// SwiftPM names an executable's entry point after its module; libFuzzer's driver runs from it.
@_cdecl("loupe_fuzz_main")
func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    let name = ProcessInfo.processInfo.environment["LOUPE_FUZZ_HARNESS"] ?? ""
    guard let h = FuzzReaders.named(name) else {
        warn("loupe-fuzz: set LOUPE_FUZZ_HARNESS to one of: \(FuzzReaders.all.map(\.name).joined(separator: ", "))\n")
        return 2
    }
    harness = h
    folder = scratch(name)
    var count = argc, values = argv
    return LLVMFuzzerRunDriver(&count, &values) { data, size in
        let bytes = size == 0 ? Data() : Data(bytes: data!, count: size)
        if case let .failure(finding) = harness.run(bytes, in: folder) {
            warn("loupe-fuzz: \(harness.name): \(finding)\n")
            abort()
        }
        return 0
    }
}
#else
@main
struct Replay {
    static func main() {
        var args = Array(CommandLine.arguments.dropFirst())
        if args.first == "--list" || args.isEmpty {
            print(FuzzReaders.all.map(\.name).joined(separator: "\n"))
            exit(args.isEmpty ? 2 : 0)
        }
        guard let harness = FuzzReaders.named(args.removeFirst()) else {
            warn("loupe-fuzz: no such harness; `loupe-fuzz --list` lists them\n")
            exit(2)
        }
        var files: [String] = []
        for path in args {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
                let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
                files += names.sorted().map { (path as NSString).appendingPathComponent($0) }
            } else {
                files.append(path)
            }
        }
        var findings = 0
        for file in files {
            guard let data = FileManager.default.contents(atPath: file) else { warn("loupe-fuzz: cannot read \(file)\n"); exit(2) }
            switch harness.run(data, in: scratch(harness.name)) {
            case .success(.accepted): print("\(file): accepted")
            case let .success(.rejected(message)): print("\(file): rejected: \(message)")
            case let .failure(finding): print("\(file): FINDING: \(finding)"); findings += 1
            }
        }
        exit(findings == 0 ? 0 : 1)
    }
}
#endif
