import Foundation

/// Prints progress (percentage and speed) on one refreshed stderr line, only when stderr is a terminal.
public final class ProgressReporter: @unchecked Sendable {
    private let label: String
    private let total: Double
    private let enabled: Bool
    private let start = Date()
    private var lastPrint = Date.distantPast
    private var printed = false

    /// - Parameters:
    ///   - total: the amount of audio to process, in seconds.
    ///   - quiet: never print.
    public init(label: String, totalSeconds total: Double, quiet: Bool, minimumSeconds: Double = 5) {
        self.label = label
        self.total = total
        enabled = !quiet && total >= minimumSeconds && isatty(STDERR_FILENO) == 1
    }

    /// Reports that `done` seconds of audio are finished.
    public func update(doneSeconds done: Double) {
        guard enabled else { return }
        let now = Date()
        guard now.timeIntervalSince(lastPrint) >= 0.25 || done >= total else { return }
        lastPrint = now
        let elapsed = max(now.timeIntervalSince(start), 1e-6)
        let percent = min(100, 100 * done / max(total, 1e-9))
        let speed = done / elapsed
        let line = String(format: "\r%@ %5.1f%%  %.1fx real time", label, percent, speed)
        FileHandle.standardError.write(Data(line.utf8))
        printed = true
    }

    /// Ends the progress line.
    public func finish() {
        guard enabled, printed else { return }
        FileHandle.standardError.write(Data("\n".utf8))
    }
}
