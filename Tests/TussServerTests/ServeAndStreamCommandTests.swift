import Foundation
import TussAudio
import TussPipeline
import TussTestSupport
import XCTest

/// `tuss-codec serve` and `tuss-codec stream` as processes: the whole edge–server split on loopback.
final class ServeAndStreamCommandTests: XCTestCase {
    func testStreamAgainstServeMatchesSeparateCodes() throws {
        let dir = try temporaryDirectory(self, prefix: "tuss-server-tests")
        let tool = try toolPath()
        let codec = fixturePath("codec.safetensors"), masker = fixturePath("model.safetensors")
        let wav = try writeWAV(signal(seconds: 1.2, rate: 16000, channels: 1), rate: 16000, to: (dir as NSString).appendingPathComponent("talk.wav"))

        let server = Process()
        server.executableURL = URL(fileURLWithPath: tool)
        server.arguments = ["serve", "--port", "0", "--codec", codec, "--masker", masker, "--threads", "1"]
        let out = Pipe()
        server.standardOutput = out
        let serverLog = (dir as NSString).appendingPathComponent("serve.log")
        FileManager.default.createFile(atPath: serverLog, contents: nil)
        server.standardError = FileHandle(forWritingAtPath: serverLog)
        try server.run()
        defer { if server.isRunning { server.terminate() } }
        // The server prints "listening on http://127.0.0.1:PORT" once bound; give a loaded machine a minute.
        let line = firstLine(of: out.fileHandleForReading, timeout: 60) ?? ""
        let port = try XCTUnwrap(line.split(separator: ":").last.flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) },
                                 "no port line from serve (running: \(server.isRunning)); its stderr: \((try? String(contentsOfFile: serverLog, encoding: .utf8)) ?? "")")

        let streamed = try runTool(["stream", wav, "--server", "ws://127.0.0.1:\(port)", "--prompts", "speech,sfx-mix",
                                    "--codec", codec, "-o", (dir as NSString).appendingPathComponent("streamed")])
        XCTAssertEqual(streamed.status, 0, streamed.err)
        XCTAssertTrue(streamed.out.contains("upstream:") && streamed.out.contains("p95"), streamed.out)
        XCTAssertTrue(streamed.out.contains("0 lost"), streamed.out)

        let bin = (dir as NSString).appendingPathComponent("talk.bin")
        XCTAssertEqual(try runTool(["encode", wav, "-o", bin, "--codec", codec, "--quiet"]).status, 0)
        let offline = try runTool(["separate", "--codes", bin, "--prompts", "speech,sfx-mix", "--codec", codec, "--masker", masker,
                                   "-o", (dir as NSString).appendingPathComponent("offline"), "--quiet"])
        XCTAssertEqual(offline.status, 0, offline.err)
        for name in ["speech", "sfx-mix"] {
            let a = try CodesReader(path: (dir as NSString).appendingPathComponent("streamed/\(name).bin")).readAll()
            let b = try CodesReader(path: (dir as NSString).appendingPathComponent("offline/\(name).bin")).readAll()
            XCTAssertEqual(a, b, name)
            XCTAssertTrue(FileManager.default.fileExists(atPath: (dir as NSString).appendingPathComponent("streamed/\(name).wav")))
        }

        // A bad request is one line on stderr and a non-zero exit; the server survives it.
        let bad = try runTool(["stream", wav, "--server", "ws://127.0.0.1:\(port)", "--prompts", "kazoo", "--codec", codec,
                               "-o", (dir as NSString).appendingPathComponent("bad")])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertEqual(bad.err.split(separator: "\n").count, 1, bad.err)
        XCTAssertTrue(bad.err.contains("kazoo"), bad.err)
        XCTAssertTrue(server.isRunning)

        // A second server on the same port fails in one line that says what to do.
        let taken = try runTool(["serve", "--port", "\(port)", "--codec", codec, "--masker", masker], timeout: 60)
        XCTAssertNotEqual(taken.status, 0)
        XCTAssertEqual(taken.err.split(separator: "\n").count, 1, taken.err)
        XCTAssertTrue(taken.err.contains("in use"), taken.err)

        // SIGTERM: a graceful exit.
        server.terminate()
        let deadline = Date().addingTimeInterval(10)
        while server.isRunning, Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        XCTAssertFalse(server.isRunning)
        XCTAssertEqual(server.terminationStatus, 0)
    }

    func testStreamWithoutServerFailsInOneLine() throws {
        let dir = try temporaryDirectory(self, prefix: "tuss-server-tests")
        let wav = try writeWAV(signal(seconds: 0.2, rate: 16000, channels: 1), rate: 16000, to: (dir as NSString).appendingPathComponent("a.wav"))
        // Port 9 (discard) on loopback: nothing listens there in the test environment.
        let r = try runTool(["stream", wav, "--server", "ws://127.0.0.1:9", "--prompts", "speech",
                             "--codec", fixturePath("codec.safetensors")])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertEqual(r.err.split(separator: "\n").count, 1, r.err)
        XCTAssertTrue(r.err.hasPrefix("tuss-codec: error:"), r.err)
    }
}
