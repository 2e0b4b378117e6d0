import Foundation

/// The append-only logs' times: ISO-8601 UTC with milliseconds (whole seconds read too).
public enum LogTime {
    private static let style = Date.ISO8601FormatStyle(includingFractionalSeconds: true, timeZone: TimeZone(identifier: "UTC")!)
    private static let plain = Date.ISO8601FormatStyle(timeZone: TimeZone(identifier: "UTC")!)

    public static func format(_ date: Date) -> String { style.format(date) }

    public static func parse(_ text: String) -> Date? { (try? style.parse(text)) ?? (try? plain.parse(text)) }

    /// Now, at the precision the log keeps, so a saved version equals the one read back.
    public static func now() -> Date { parse(format(Date()))! }
}
