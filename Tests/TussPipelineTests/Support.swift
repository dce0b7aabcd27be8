import Foundation
import XCTest
import TussAudio

/// Locates `../shared/reference` beside the package root, or skips the test with a message saying why.
func sharedReference(_ relative: String = "", file: StaticString = #filePath) throws -> String {
    let root = URL(fileURLWithPath: "\(file)").deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let path = root.deletingLastPathComponent().appendingPathComponent("shared/reference").appendingPathComponent(relative).path
    guard FileManager.default.fileExists(atPath: path) else {
        throw XCTSkip("../shared/reference not found: reference bundles are not part of a user's clone")
    }
    return path
}

/// The package root.
func packageRoot(file: StaticString = #filePath) -> String {
    URL(fileURLWithPath: "\(file)").deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
}

/// A fresh temporary directory, removed by the test's teardown block.
func temporaryDirectory(_ test: XCTestCase) throws -> String {
    let dir = (NSTemporaryDirectory() as NSString).appendingPathComponent("tuss-codec-tests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
    return dir
}

/// A deterministic test signal: two tones and a noise burst per channel.
func testSignal(seconds: Double, rate: Int, channels: Int) -> [[Float]] {
    let n = Int(seconds * Double(rate))
    var state: UInt64 = 0x1234_5678
    return (0..<channels).map { c in
        (0..<n).map { i in
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            let t = Double(i) / Double(rate)
            let noise = Double(state >> 40) / Double(1 << 24) - 0.5
            let burst = (t.truncatingRemainder(dividingBy: 1) < 0.2) ? 0.2 * noise : 0
            return Float(0.3 * sin(2 * .pi * (220 + 110 * Double(c)) * t) + 0.1 * sin(2 * .pi * 1500 * t) + burst)
        }
    }
}

/// Writes a signal with the given format and returns the path.
func writeAudio(_ planar: [[Float]], rate: Int, to path: String, float32: Bool = false) throws -> String {
    let format = try AudioFileFormat.forWriting(path: path, like: nil, float32: float32)
    let w = try AudioFileWriter(path: path, sampleRate: rate, channels: planar.count, format: format)
    try w.write(planar)
    try w.finish()
    return path
}

/// The built `tuss-codec` executable beside the test bundle.
func toolPath() throws -> String {
    let dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for candidate in [dir.appendingPathComponent("tuss-codec"), dir.deletingLastPathComponent().appendingPathComponent("tuss-codec")] {
        if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate.path }
    }
    throw XCTSkip("tuss-codec executable not found beside the test bundle (build it with swift build)")
}

/// Runs the tool; returns exit status, stdout and stderr.
func runTool(_ args: [String], environment: [String: String]? = nil) throws -> (status: Int32, out: String, err: String) {
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
