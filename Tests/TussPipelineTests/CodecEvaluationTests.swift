import Foundation
import XCTest
import TussAudio
import TussPipeline
import TussTestSupport

final class CodecEvaluationTests: XCTestCase {
    /// A two-item manifest whose references are 1.5-s test signals (one repeated across items, coded once).
    private func manifest(in dir: String) throws -> String {
        _ = try writeAudio(testSignal(seconds: 1.5, rate: 16000, channels: 1), rate: 16000, to: (dir as NSString).appendingPathComponent("speech.wav"))
        _ = try writeAudio(testSignal(seconds: 1.5, rate: 16000, channels: 2), rate: 16000, to: (dir as NSString).appendingPathComponent("sfx.wav"))
        let items: [[String: Any]] = [
            ["task": "se", "item": "0001", "mixture": "speech.wav", "prompts": ["speech", "sfxbg"], "references": ["speech.wav", "sfx.wav"]],
            ["task": "se", "item": "0002", "mixture": "speech.wav", "prompts": ["speech"], "references": ["speech.wav"]],
        ]
        let path = (dir as NSString).appendingPathComponent("manifest.json")
        try JSONSerialization.data(withJSONObject: items).write(to: URL(fileURLWithPath: path))
        return path
    }

    func testNeuralAndOpusAreScoredAtEveryBitrate() throws {
        let dir = try temporaryDirectory(self, prefix: "tuss-codec-tests")
        let codec = try smallCodecPath()
        let json = (dir as NSString).appendingPathComponent("scores.json")
        let r = try runTool(["eval-codec", "--manifest", try manifest(in: dir), "--codec", codec, "--bitrates", "2,6",
                             "--json", json, "--quiet"])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertTrue(r.out.contains("mel dist"), r.out)
        let scores = try JSONDecoder().decode([CodecQualityScore].self, from: Data(contentsOf: URL(fileURLWithPath: json)))
        // Two unique files × two bitrates × two codecs.
        XCTAssertEqual(scores.count, 8)
        XCTAssertEqual(Set(scores.map(\.category)), ["speech", "sfx-mix"])
        let handle = try CodecHandle.open(codec)
        for s in scores {
            XCTAssertNotNil(s.si_sdr, "\(s.codec) \(s.file)")
            XCTAssertNotNil(s.mel_distance, "\(s.codec) \(s.file)")
            if s.codec == "neural" {
                let channels = s.file == "sfx.wav" ? 2.0 : 1.0
                let expected = handle.codec.config.bitrate(codebooks: handle.codebooks(forBitrate: s.target_kbps)) / 1000 * channels
                XCTAssertEqual(s.actual_kbps, expected, accuracy: 1e-9)
            } else {
                XCTAssertEqual(s.codec, "opus")
                XCTAssertGreaterThan(s.actual_kbps, 0.5 * s.target_kbps)
            }
        }
    }

    func testBadArgumentsGiveOneLine() throws {
        let dir = try temporaryDirectory(self, prefix: "tuss-codec-tests")
        let m = try manifest(in: dir)
        for (args, message) in [
            (["eval-codec", "--manifest", m, "--bitrates", "2,x"], "--bitrates must be positive numbers"),
            (["eval-codec", "--manifest", m, "--no-opus", "--no-neural"], "leave nothing to evaluate"),
            (["eval-codec", "--manifest", (dir as NSString).appendingPathComponent("none.json"), "--no-neural"], "cannot read manifest"),
        ] {
            let r = try runTool(args)
            XCTAssertEqual(r.status, 1, args.joined(separator: " "))
            XCTAssertTrue(r.err.hasPrefix("tuss-codec: error: "), r.err)
            XCTAssertTrue(r.err.contains(message), r.err)
            XCTAssertEqual(r.err.split(separator: "\n").count, 1, r.err)
        }
    }
}
