import Foundation

/// The folder `swift build` puts its products in: the `loupe` binary, the test-only executables
/// and the test bundle.
public enum BuildProducts {
    /// On macOS the class's bundle is the .xctest bundle inside that folder; on Linux it is the folder itself.
    public static var folder: URL {
        let bundle = Bundle(for: Anchor.self).bundleURL
        return bundle.pathExtension == "xctest" ? bundle.deletingLastPathComponent() : bundle
    }

    private final class Anchor {}

    /// An executable built beside the tests, e.g. `loupe`.
    public static func executable(_ name: String) -> URL { folder.appendingPathComponent(name) }
}
