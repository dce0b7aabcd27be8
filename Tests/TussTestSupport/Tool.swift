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
/// and the tool still inherits the rest (PATH, HOME, ...).
public func runTool(_ args: [String], environment: [String: String]? = nil) throws -> (status: Int32, out: String, err: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: try toolPath())
    p.arguments = args
    if let environment { p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    let o = out.fileHandleForReading.readDataToEndOfFile()
    let e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
}
