import Foundation

/// Where Loupe keeps what it downloads and builds: the `data/` folder of the checkout it runs
/// from (found from the working directory or the executable's location), or `$LOUPE_DATA`.
public enum Paths {
    public static var dataDirectory: URL {
        if let env = ProcessInfo.processInfo.environment["LOUPE_DATA"], !env.isEmpty {
            return URL(fileURLWithPath: env, isDirectory: true)
        }
        let fm = FileManager.default
        let starts = [URL(fileURLWithPath: fm.currentDirectoryPath, isDirectory: true),
                      URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()]
        for start in starts {
            var dir = start.standardizedFileURL
            while true {
                if fm.fileExists(atPath: dir.appendingPathComponent("Package.swift").path),
                   fm.fileExists(atPath: dir.appendingPathComponent("data").path) {
                    return dir.appendingPathComponent("data", isDirectory: true)
                }
                let parent = dir.deletingLastPathComponent()
                if parent.path == dir.path { break }
                dir = parent
            }
        }
        return fm.homeDirectoryForCurrentUser.appendingPathComponent(".loupe/data", isDirectory: true)
    }

    public static var modelsDirectory: URL { dataDirectory.appendingPathComponent("models", isDirectory: true) }
}
