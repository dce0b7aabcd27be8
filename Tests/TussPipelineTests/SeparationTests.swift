import Foundation
import XCTest
import TussAudio
import TussModels
import TussPipeline
import TussTestSupport

/// A small TUSS model for pipeline tests: the official tiny reference bundle when `../shared` is present, else the
/// committed random-weight fixture.
func smallModelPath() throws -> String {
    if let tiny = try? sharedReference("tuss-tiny") { return tiny }
    let fixture = (packageRoot() as NSString).appendingPathComponent("Tests/Fixtures/tuss-small-random/model.safetensors")
    guard FileManager.default.fileExists(atPath: fixture) else { throw XCTSkip("no small TUSS model for pipeline tests") }
    return fixture
}

final class SeparationTests: XCTestCase {
    func testSingleChunkInputIsExactlyTheModelForward() throws {
        let model = try ModelFile.open(try smallModelPath()).tussModel()
        let rate = model.config.sampleRate
        let x = testSignal(seconds: 0.7, rate: rate, channels: 1)
        let prompts = try Prompt.parseList("speech,sfx-mix")
        let direct = try model.separate(x[0], prompts: prompts)
        let separator = try SpectralSeparator(model: model)
        let piped = try separator.separate(x, sampleRate: rate, prompts: prompts)
        XCTAssertEqual(piped.count, 2)
        for p in 0..<2 { XCTAssertEqual(piped[p][0], direct[p], "prompt \(p): one chunk must be one pass") }
    }

    func testFilesKeepRateChannelsAndExactLength() throws {
        let model = try ModelFile.open(try smallModelPath()).tussModel()
        let dir = try temporaryDirectory(self, prefix: "tuss-codec-tests")
        let separator = try SpectralSeparator(model: model, options: SeparationOptions(chunkSeconds: 0.5, overlapSeconds: 0.1, quiet: true))
        for (rate, channels, ext) in [(8000, 1, "wav"), (44100, 2, "flac"), (48000, 1, "wav"), (22050, 3, "wav"), (32000, 2, "mp3")] {
            let input = try writeAudio(testSignal(seconds: 1.3, rate: rate, channels: channels), rate: rate,
                                       to: (dir as NSString).appendingPathComponent("in-\(rate).\(ext)"))
            let out = (dir as NSString).appendingPathComponent("out-\(rate)")
            let report = try separator.separateFile(input: input, prompts: try Prompt.parseList("speech,speech,sfx"), outputDirectory: out)
            // Lossy inputs are written as WAV (no second lossy generation); lossless ones keep their format.
            let outExt = ext == "mp3" ? "wav" : ext
            XCTAssertEqual(report.outputs.map { ($0 as NSString).lastPathComponent }, ["speech-1.\(outExt)", "speech-2.\(outExt)", "sfx.\(outExt)"])
            let inputInfo = try AudioFileReader(path: input).info
            for path in report.outputs {
                let info = try AudioFileReader(path: path).info
                XCTAssertEqual(info.sampleRate, rate)
                XCTAssertEqual(info.channels, channels)
                XCTAssertEqual(info.frames, inputInfo.frames, "\(path): output length must equal input length")
                if ext != "mp3" { XCTAssertEqual(info.format, inputInfo.format) }
            }
        }
    }

    func testChunkedMatchesSinglePassAwayFromSeams() throws {
        // Chunking changes the context each frame sees, so agreement is approximate; it must stay close on a
        // stationary signal (the model is the same function of a 6-s window either way).
        let model = try ModelFile.open(try smallModelPath()).tussModel()
        let rate = model.config.sampleRate
        let x = testSignal(seconds: 2, rate: rate, channels: 1)
        let prompts = try Prompt.parseList("speech")
        let whole = try SpectralSeparator(model: model).separate(x, sampleRate: rate, prompts: prompts)
        let chunked = try SpectralSeparator(model: model, options: SeparationOptions(chunkSeconds: 1, overlapSeconds: 0.25))
            .separate(x, sampleRate: rate, prompts: prompts)
        XCTAssertEqual(whole[0][0].count, chunked[0][0].count)
        var num = 0.0, den = 0.0
        for t in 0..<x[0].count {
            let d = Double(whole[0][0][t] - chunked[0][0][t]); num += d * d
            den += Double(whole[0][0][t] * whole[0][0][t])
        }
        XCTAssertLessThan((num / max(den, 1e-20)).squareRoot(), 1.0, "chunked output diverges from the single pass")
    }

    func testBadOptionsAreRefused() throws {
        let model = try ModelFile.open(try smallModelPath()).tussModel()
        XCTAssertThrowsError(try SpectralSeparator(model: model, options: SeparationOptions(chunkSeconds: 1, overlapSeconds: 1)))
        XCTAssertThrowsError(try SpectralSeparator(model: model, options: SeparationOptions(chunkSeconds: -1)))
    }
}

final class CommandLineTests: XCTestCase {
    func testSeparateWritesOneFilePerPromptAndPrintsThePaths() throws {
        let dir = try temporaryDirectory(self, prefix: "tuss-codec-tests")
        let input = try writeAudio(testSignal(seconds: 1.1, rate: 16000, channels: 2), rate: 16000,
                                   to: (dir as NSString).appendingPathComponent("mix.wav"))
        let out = (dir as NSString).appendingPathComponent("stems")
        let r = try runTool(["separate", input, "--prompts", "speech,sfx-mix", "--model", try smallModelPath(), "-o", out, "--quiet"])
        XCTAssertEqual(r.status, 0, r.err)
        let printed = r.out.split(separator: "\n").map(String.init)
        XCTAssertEqual(printed, [(out as NSString).appendingPathComponent("speech.wav"), (out as NSString).appendingPathComponent("sfx-mix.wav")])
        for p in printed { XCTAssertEqual(try AudioFileReader(path: p).info.frames, 17600) }
        // --float writes 32-bit float.
        let f = try runTool(["separate", input, "--prompts", "vocals", "--model", try smallModelPath(), "-o", out + "-f", "--float", "--quiet"])
        XCTAssertEqual(f.status, 0, f.err)
        XCTAssertEqual(try AudioFileReader(path: out + "-f/vocals.wav").info.format.encoding, .float32)
    }

    func testSeveralInputsLoadTheModelOnceAndGetAFolderEach() throws {
        let dir = try temporaryDirectory(self, prefix: "tuss-codec-tests")
        let a = try writeAudio(testSignal(seconds: 0.6, rate: 16000, channels: 1), rate: 16000, to: dir + "/a.wav")
        let b = try writeAudio(testSignal(seconds: 0.9, rate: 22050, channels: 2), rate: 22050, to: dir + "/b.flac")
        let model = try smallModelPath()
        let out = dir + "/stems"
        let r = try runTool(["separate", a, b, "--prompts", "speech,sfx-mix", "--model", model, "-o", out, "--quiet"])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertEqual(r.out.split(separator: "\n").map(String.init),
                       [out + "/a/speech.wav", out + "/a/sfx-mix.wav", out + "/b/speech.flac", out + "/b/sfx-mix.flac"])
        XCTAssertEqual(try AudioFileReader(path: out + "/a/speech.wav").info.frames, 9600)
        XCTAssertEqual(try AudioFileReader(path: out + "/b/sfx-mix.flac").info.frames, 19845)
        // The same separation as one input at a time.
        let single = try runTool(["separate", b, "--prompts", "speech,sfx-mix", "--model", model, "-o", dir + "/one", "--quiet"])
        XCTAssertEqual(single.status, 0, single.err)
        XCTAssertEqual(try AudioFileReader(path: dir + "/one/speech.flac").readAll(), try AudioFileReader(path: out + "/b/speech.flac").readAll())
        // Every input is checked before any work: nothing is written when one is missing or two share a folder.
        let cases: [([String], String)] = [
            ([a, dir + "/missing.wav"], "input not found: \(dir)/missing.wav"),
            ([a, try writeAudio(testSignal(seconds: 0.2, rate: 16000, channels: 1), rate: 16000, to: dir + "/a.flac")],
             "\(a) and \(dir)/a.flac would both be written to a folder 'a': rename one or separate them in two runs"),
        ]
        for (inputs, message) in cases {
            try assertToolFails(["separate"] + inputs + ["--prompts", "speech", "--model", model, "-o", dir + "/none", "--quiet"], message)
            XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/none"))
        }
    }

    func testErrorsAreOneLineWithNonZeroExit() throws {
        let dir = try temporaryDirectory(self, prefix: "tuss-codec-tests")
        let input = try writeAudio(testSignal(seconds: 0.5, rate: 16000, channels: 1), rate: 16000,
                                   to: (dir as NSString).appendingPathComponent("mix.wav"))
        let garbage = (dir as NSString).appendingPathComponent("garbage.wav")
        try Data("not audio at all".utf8).write(to: URL(fileURLWithPath: garbage))
        let model = try smallModelPath()
        let cases: [([String], String)] = [
            (["separate", input, "--prompts", "guitar", "--model", model], "unknown prompt 'guitar'"),
            (["separate", "/nonexistent.wav", "--prompts", "speech", "--model", model], "input not found"),
            (["separate", input, "--prompts", "speech", "--model", "/nonexistent-model"], "no such model file"),
            (["separate", garbage, "--prompts", "speech", "--model", model, "-o", dir + "/g"], "garbage.wav"),
            (["separate", input, "--prompts", "speech", "--model", model, "--threads", "0"], "--threads"),
            (["info", garbage], "garbage.wav"),
            (["bench", "everything"], "unknown bench target"),
        ]
        for (args, expected) in cases {
            let r = try runTool(args)
            XCTAssertNotEqual(r.status, 0, "\(args)")
            let lines = r.err.split(separator: "\n")
            XCTAssertEqual(lines.count, 1, "\(args): stderr should be one line, got: \(r.err)")
            XCTAssertTrue(r.err.contains(expected), "\(args): \(r.err)")
        }
        // No half-written outputs after a failure.
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/g/speech.wav"))
    }

    func testInfoDescribesWeightsAsJSON() throws {
        let r = try runTool(["info", try smallModelPath(), "--json"])
        XCTAssertEqual(r.status, 0, r.err)
        let obj = try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any]
        XCTAssertEqual(obj?["kind"] as? String, "tuss")
        XCTAssertGreaterThan(obj?["parameters"] as? Int ?? 0, 1000)
    }

    func testInfoDescribesAudioFiles() throws {
        let dir = try temporaryDirectory(self, prefix: "tuss-codec-tests")
        // A half-scale sine on the left, silence on the right: peak −6.02 dBFS and RMS −9.03 dBFS, then −∞ (null).
        let n = 22050
        let left = (0..<n).map { Float(0.5 * sin(2 * Double.pi * 441 * Double($0) / 44100)) }
        let path = try writeAudio([left, [Float](repeating: 0, count: n)], rate: 44100,
                                  to: (dir as NSString).appendingPathComponent("tone.flac"))
        let r = try runTool(["info", path, "--json"])
        XCTAssertEqual(r.status, 0, r.err)
        let obj = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any])
        XCTAssertEqual(obj["kind"] as? String, "audio")
        XCTAssertEqual(obj["format"] as? String, "FLAC 16-bit PCM")
        XCTAssertEqual(obj["sample_rate"] as? Int, 44100)
        XCTAssertEqual(obj["channels"] as? Int, 2)
        XCTAssertEqual(obj["frames"] as? Int, n)
        let peaks = try XCTUnwrap(obj["peak_dbfs"] as? [Any])
        XCTAssertEqual(peaks[0] as? Double ?? 0, -6.02, accuracy: 0.02)
        XCTAssertTrue(peaks[1] is NSNull)
        XCTAssertEqual((obj["rms_dbfs"] as? [Any])?.first as? Double ?? 0, -9.03, accuracy: 0.02)
        let text = try runTool(["info", path])
        XCTAssertEqual(text.status, 0, text.err)
        XCTAssertTrue(text.out.contains("sample rate: 44100 Hz") && text.out.contains("(0.500 s)"), text.out)
    }

    func testConvertedOfficialModelRunsIdentically() throws {
        let tiny = try sharedReference("tuss-tiny")
        let dir = try temporaryDirectory(self, prefix: "tuss-codec-tests")
        let converted = (dir as NSString).appendingPathComponent("tiny.safetensors")
        let r = try runTool(["convert", tiny, "-o", converted])
        XCTAssertEqual(r.status, 0, r.err)
        let a = try ModelFile.open(tiny).tussModel(), b = try ModelFile.open(converted).tussModel()
        XCTAssertEqual(a.config, b.config)
        let x = testSignal(seconds: 0.4, rate: 48000, channels: 1)[0]
        let prompts = try Prompt.parseList("speech,sfx")
        XCTAssertEqual(try a.separate(x, prompts: prompts), try b.separate(x, prompts: prompts))
    }
}
