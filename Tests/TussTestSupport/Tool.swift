import Foundation
import XCTest

/// The built `tuss-codec` executable beside the test bundle, or a skip.
///
/// The command-line tests exercise the real binary rather than the library so argument parsing and exit codes are
/// covered; `swift build --build-tests` puts it in the same products directory as the test bundle.
public func toolPath() throws -> String {
    let dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for candidate in [dir.appendingPathComponent("tuss-codec"), dir.deletingLastPathComponent().appendingPathComponent("tuss-codec")] {
        if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate.path }
    }
    throw XCTSkip("tuss-codec executable not found beside the test bundle (build it with swift build)")
}

/// Runs the built tool with `args` and returns its exit status, stdout and stderr.
///
/// `environment` is merged over the test's own rather than replacing it, so a test states only the variables it changes
/// and the tool still inherits the rest (PATH, HOME, ...). A run longer than `timeout` seconds is terminated and
/// reported as status −1 with a note on stderr, so a command that should have failed fast cannot hang the suite.
public func runTool(_ args: [String], environment: [String: String]? = nil,
                    timeout: TimeInterval = 600) throws -> (status: Int32, out: String, err: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: try toolPath())
    p.arguments = args
    if let environment { p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    let watchdog = Watchdog(process: p, seconds: timeout)
    let o = out.fileHandleForReading.readDataToEndOfFile()
    let e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    if watchdog.fired {
        return (-1, String(decoding: o, as: UTF8.self),
                String(decoding: e, as: UTF8.self) + "\n[test] tuss-codec \(args.joined(separator: " ")) ran past \(timeout) s and was terminated")
    }
    watchdog.cancel()
    return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
}

/// Runs the built tool with `args` and asserts the project's error contract: exit status 1, exactly one line
/// `tuss-codec: error: <message>` on stderr, nothing on stdout.
public func assertToolFails(_ args: [String], _ message: String, environment: [String: String]? = nil,
                            timeout: TimeInterval = 600, file: StaticString = #filePath, line: UInt = #line) throws {
    let r = try runTool(args, environment: environment, timeout: timeout)
    XCTAssertEqual(r.status, 1, "\(args)", file: file, line: line)
    XCTAssertEqual(r.err, "tuss-codec: error: \(message)\n", "\(args)", file: file, line: line)
    XCTAssertEqual(r.out, "", "\(args)", file: file, line: line)
}

/// Reads the first line a child process writes to `handle`, waiting at most `timeout` seconds; nil on timeout or
/// when the process closed the pipe without writing one.
///
/// A server that dies during start-up leaves a pipe that may never report end-of-file to the parent, so a plain
/// blocking read could hang the test forever.
public func firstLine(of handle: FileHandle, timeout: TimeInterval) -> String? {
    let box = LineBox()
    let done = DispatchSemaphore(value: 0)
    Thread.detachNewThread {
        var bytes = Data()
        while !bytes.contains(0x0A) {
            let chunk = handle.availableData
            if chunk.isEmpty { break }
            bytes.append(chunk)
        }
        box.set(bytes.isEmpty ? nil : String(decoding: bytes, as: UTF8.self))
        done.signal()
    }
    guard done.wait(timeout: .now() + timeout) == .success else { return nil }
    return box.get()
}

/// A line handed from the reading thread to the waiting test.
private final class LineBox: @unchecked Sendable {
    private let lock = NSLock()
    private var value: String?
    func set(_ v: String?) { lock.lock(); value = v; lock.unlock() }
    func get() -> String? { lock.lock(); defer { lock.unlock() }; return value }
}

/// Terminates a process that outlives its deadline and remembers that it did.
private final class Watchdog: @unchecked Sendable {
    private let lock = NSLock()
    private var _fired = false
    private var cancelled = false

    init(process: Process, seconds: TimeInterval) {
        DispatchQueue.global().asyncAfter(deadline: .now() + seconds) { [self] in
            lock.lock()
            defer { lock.unlock() }
            guard !cancelled, process.isRunning else { return }
            _fired = true
            process.terminate()
        }
    }

    var fired: Bool { lock.lock(); defer { lock.unlock() }; return _fired }

    func cancel() { lock.lock(); cancelled = true; lock.unlock() }
}
