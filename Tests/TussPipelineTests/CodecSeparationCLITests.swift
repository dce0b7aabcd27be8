import Foundation
import XCTest
import TussAudio
import TussModels
import TussPipeline
import TussTestSupport

/// `separate --codes`, `separate --path codec`, `eval --path codec` and `bench masker` through the built CLI, with a
/// random-weight codec and masker written by the test.
final class CodecSeparationCLITests: XCTestCase {
    var dir = ""
    var codec = ""
    var masker = ""
    var mixture = ""
    var codes = ""

    override func setUpWithError() throws {
        _ = try toolPath()
        dir = try temporaryDirectory(self, prefix: "tuss-codec-tests")
        (codec, masker) = try writeCodecAndMasker(in: dir)
        // Stereo at 44.1 kHz: the codes carry the original rate, channels and length through separation.
        mixture = try writeAudio(testSignal(seconds: 1.3, rate: 44100, channels: 2), rate: 44100,
                                 to: (dir as NSString).appendingPathComponent("mix.wav"))
        codes = (dir as NSString).appendingPathComponent("mix.bin")
        let e = try runTool(["encode", mixture, "-o", codes, "--codec", codec, "--codebooks", "3", "--quiet"])
        XCTAssertEqual(e.status, 0, e.err)
    }

    func path(_ name: String) -> String { (dir as NSString).appendingPathComponent(name) }

    func separateCodes(_ prompts: String, _ out: String, _ extra: [String] = []) throws -> (status: Int32, out: String, err: String) {
        try runTool(["separate", "--codes", codes, "--prompts", prompts, "--codec", codec, "--masker", masker, "-o", out, "--quiet"] + extra)
    }

    func testCodesInCodesOutThenDecode() throws {
        let out = path("sep")
        let r = try separateCodes("speech,speech,sfx-mix", out)
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertEqual(r.out.split(separator: "\n").map(String.init), ["speech-1", "speech-2", "sfx-mix"].map { "\(out)/\($0).bin" })
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: out).sorted(), ["sfx-mix.bin", "speech-1.bin", "speech-2.bin"],
                       "no audio without --decode, no leftovers")
        let input = try CodesReader(path: codes)
        let inputCodes = try input.readAll()
        var outputs: [[[[Int32]]]] = []
        for name in ["speech-1", "speech-2", "sfx-mix"] {
            let reader = try CodesReader(path: "\(out)/\(name).bin")
            var header = reader.header
            header.frames = input.header.frames
            XCTAssertEqual(header, input.header, "\(name): same codec, layout and original audio")
            outputs.append(try reader.readAll())
            // Decodes with the same codec to audio of the original rate, channels and length.
            let wav = "\(out)/\(name).wav"
            let d = try runTool(["decode", "\(out)/\(name).bin", "-o", wav, "--codec", codec, "--quiet"])
            XCTAssertEqual(d.status, 0, d.err)
            let info = try AudioFileReader(path: wav).info
            XCTAssertEqual([info.sampleRate, info.channels, Int(info.frames)], [44100, 2, Int(1.3 * 44100)])
        }
        XCTAssertEqual(outputs[0].count, 2)
        XCTAssertEqual(outputs[0][0].count, 3, "as many codebooks as the input")
        XCTAssertNotEqual(outputs[0], outputs[1], "repeated prompts give different codes")
        XCTAssertNotEqual(outputs[0], inputCodes)
        // The file flow equals the streaming separator run directly on the codes (channel by channel).
        let handle = try CodecHandle.open(codec), m = try MaskerHandle.open(masker)
        for c in 0..<2 {
            var separator = try CodesSeparator(codec: handle, masker: m, prompts: try Prompt.parseList("speech,speech,sfx-mix"))
            let direct = separator.push(inputCodes[c])
            for p in 0..<3 {
                let differing = zip(direct[p].joined(), outputs[p][c].joined()).filter { $0 != $1 }.count
                XCTAssertLessThanOrEqual(differing, 2, "channel \(c) prompt \(p): \(differing) codes differ (only near-ties may)")
            }
        }
    }

    /// A masker with lookahead: the file flow still writes every frame of every channel, in time ranges the codes
    /// format accepts, although each output lags its input; it equals the separator run on each channel whole.
    func testCodesInCodesOutWithALookaheadMasker() throws {
        let (_, ahead) = try writeCodecAndMasker(in: dir, lookahead: 2)
        // Rewrite the mixture's codes in 7-frame time ranges, so the lag crosses range boundaries.
        let input = try CodesReader(path: codes)
        let whole = try input.readAll()                                     // [channel][codebook][frame]
        let frames = whole[0][0].count
        let small = path("small.bin")
        let writer = try CodesWriter(path: small, header: input.header)
        for start in stride(from: 0, to: frames, by: 7) {
            let end = min(frames, start + 7)
            for c in 0..<2 {
                try writer.write(CodesChunk(channel: c, firstFrame: Int64(start), codes: whole[c].map { Array($0[start..<end]) }))
            }
        }
        try writer.finish()
        let out = path("ahead")
        let r = try runTool(["separate", "--codes", small, "--prompts", "speech,sfx-mix", "--codec", codec, "--masker", ahead,
                             "-o", out, "--decode", "--quiet"])
        XCTAssertEqual(r.status, 0, r.err)
        let handle = try CodecHandle.open(codec), m = try MaskerHandle.open(ahead)
        for (p, name) in ["speech", "sfx-mix"].enumerated() {
            let separated = try CodesReader(path: "\(out)/\(name).bin").readAll()
            XCTAssertEqual(separated.map { $0[0].count }, [frames, frames], "\(name): every frame of both channels")
            for c in 0..<2 {
                var separator = try CodesSeparator(codec: handle, masker: m, prompts: try Prompt.parseList("speech,sfx-mix"))
                let direct = separator.separateAll(whole[c])[p]
                let differing = zip(direct.joined(), separated[c].joined()).filter { $0 != $1 }.count
                XCTAssertLessThanOrEqual(differing, 2, "channel \(c) \(name): \(differing) codes differ (only near-ties may)")
            }
            let info = try AudioFileReader(path: "\(out)/\(name).wav").info
            XCTAssertEqual([info.sampleRate, info.channels, Int(info.frames)], [44100, 2, Int(1.3 * 44100)])
        }
    }

    func testDecodeFlagAndAllPromptNames() throws {
        let out = path("all")
        let r = try separateCodes(Prompt.all.map(\.name).joined(separator: ","), out, ["--decode"])
        XCTAssertEqual(r.status, 0, r.err)
        let names = Prompt.all.map(\.name)
        XCTAssertEqual(r.out.split(separator: "\n").map(String.init), names.map { "\(out)/\($0).bin" } + names.map { "\(out)/\($0).wav" })
        for name in names {
            let info = try AudioFileReader(path: "\(out)/\(name).wav").info
            XCTAssertEqual([info.sampleRate, info.channels, Int(info.frames)], [44100, 2, Int(1.3 * 44100)])
        }
        // --decode writes exactly what `decode` makes of the output codes.
        let again = path("speech-again.wav")
        XCTAssertEqual(try runTool(["decode", "\(out)/speech.bin", "-o", again, "--codec", codec, "--quiet"]).status, 0)
        XCTAssertEqual(try AudioFileReader(path: again).readAll(), try AudioFileReader(path: "\(out)/speech.wav").readAll())
    }

    func testEmptyCodesStream() throws {
        let empty = try writeAudio([[Float]()], rate: 16000, to: path("empty.wav"))
        let bin = path("empty.bin")
        XCTAssertEqual(try runTool(["encode", empty, "-o", bin, "--codec", codec, "--quiet"]).status, 0)
        let out = path("empty-sep")
        let r = try runTool(["separate", "--codes", bin, "--prompts", "speech,sfx", "--codec", codec, "--masker", masker,
                             "-o", out, "--decode", "--quiet"])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertEqual(try CodesReader(path: "\(out)/speech.bin").header.frames, 0)
        XCTAssertEqual(try AudioFileReader(path: "\(out)/sfx.wav").info.frames, 0)
    }

    func testAudioThroughTheCodecPath() throws {
        let out = path("codec-path")
        let r = try runTool(["separate", mixture, "--path", "codec", "--prompts", "vocals,other", "--codec", codec,
                             "--masker", masker, "-o", out, "--quiet"])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertEqual(r.out.split(separator: "\n").map(String.init), ["vocals.bin", "other.bin", "vocals.wav", "other.wav"].map { "\(out)/\($0)" })
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: out).sorted(), ["other.bin", "other.wav", "vocals.bin", "vocals.wav"],
                       "the temporary mixture codes are removed")
        // Odd combinations warn as on the spectral path; --plot draws the mixture and the outputs.
        let plotted = try runTool(["separate", mixture, "--path", "codec", "--prompts", "sfx,sfx-mix", "--codec", codec,
                                   "--masker", masker, "-o", out, "--quiet", "--plot", "--float"])
        XCTAssertEqual(plotted.status, 0, plotted.err)
        XCTAssertEqual(plotted.err, "warning: 'sfx' with 'sfx-mix' was never seen in training; results may be poor\n")
        XCTAssertEqual(plotted.out.split(separator: "\n").last.map(String.init), "\(out)/spectrograms.png")
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(out)/spectrograms.png"))
        let info = try AudioFileReader(path: "\(out)/vocals.wav").info
        XCTAssertEqual([info.sampleRate, info.channels, Int(info.frames)], [44100, 2, Int(1.3 * 44100)])
        // Several inputs: one folder each, the codec and masker opened once.
        let second = try writeAudio(testSignal(seconds: 0.7, rate: 16000, channels: 1), rate: 16000, to: path("second.wav"))
        let many = try runTool(["separate", mixture, second, "--path", "codec", "--prompts", "speech", "--codec", codec,
                                "--masker", masker, "-o", path("many"), "--quiet"])
        XCTAssertEqual(many.status, 0, many.err)
        XCTAssertEqual(many.out.split(separator: "\n").map(String.init),
                       ["mix/speech.bin", "mix/speech.wav", "second/speech.bin", "second/speech.wav"].map { path("many/" + $0) })
        XCTAssertEqual(try AudioFileReader(path: path("many/second/speech.wav")).info.frames, 11200)
    }

    func testEveryErrorPathIsOneClearLine() throws {
        func fails(_ args: [String], _ message: String, environment: [String: String]? = nil, line: UInt = #line) throws {
            try assertToolFails(args, message, environment: environment, line: line)
        }
        let out = path("err")
        let base = ["separate", "--codes", codes, "--codec", codec, "--masker", masker, "-o", out]
        try fails(base + ["--prompts", "speech,piano"],
                  "unknown prompt 'piano'; valid prompts: speech, sfx, sfx-mix, drums, bass, vocals, other, music-mix")
        try fails(base + ["--prompts", Array(repeating: "speech", count: 9).joined(separator: ",")], "9 prompts given; at most 8 are supported")
        // Codes made by another codec (a masker for that other codec, so only the codes are wrong).
        let (otherCodec, otherMasker) = try writeCodecAndMasker(in: dir, codecSeed: 12)
        let other = try CodecHandle.open(otherCodec), mine = try CodecHandle.open(codec)
        try fails(["separate", "--codes", codes, "--codec", otherCodec, "--masker", otherMasker, "-o", out, "--prompts", "speech"],
                  "\(codes): codes were made with codec '\(mine.identity.name)' (hash \(codecHashHex(mine).prefix(12))…), not with \(otherCodec) ('\(other.identity.name)', hash \(codecHashHex(other).prefix(12))…): pass the codec that encoded them with --codec")
        // A masker trained on another codec of the same latent width, and one for another latent width.
        try fails(["separate", "--codes", codes, "--codec", codec, "--masker", otherMasker, "-o", out, "--prompts", "speech"],
                  "masker \(otherMasker) was trained on codec '\(other.identity.name)' (hash \(codecHashHex(other).prefix(16))…); codec \(codec) is '\(mine.identity.name)' (hash \(codecHashHex(mine).prefix(16))…): use the masker trained for this codec")
        let wideMasker = path("wide-masker.safetensors")
        try writeRandomMasker(latentDim: 48, codecName: mine.identity.name, codecHash: codecHashHex(mine), seed: 2, to: wideMasker)
        try fails(["separate", "--codes", codes, "--codec", codec, "--masker", wideMasker, "-o", out, "--prompts", "speech"],
                  "masker \(wideMasker) works on 48-channel latents but codec \(codec) has 32: use the masker trained for this codec")
        // No trained masker yet: the default file is named.
        let home = path("home")
        try FileManager.default.createDirectory(atPath: home + "/Models", withIntermediateDirectories: true)
        try fails(["separate", "--codes", codes, "--codec", codec, "-o", out, "--prompts", "speech"],
                  "the default codec-path masker is missing: \(home)/Models/codec-masker/model.safetensors does not exist (train it with Training/masker/train_masker.py, or pass --masker FILE)",
                  environment: ["TUSS_CODEC_HOME": home])
        // Damaged codes: the reader's message, with the path; nothing is left in the output folder.
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: codes)))
        bytes[bytes.count - 20] ^= 0x10
        let corrupt = path("corrupt.bin")
        try Data(bytes).write(to: URL(fileURLWithPath: corrupt))
        var expected = ""
        do {
            let reader = try CodesReader(path: corrupt)
            while try reader.next() != nil {}
            XCTFail("the damaged file reads cleanly")
        } catch {
            expected = "\(error)"
        }
        XCTAssertTrue(expected.contains("CRC") || expected.contains("checksum"), expected)
        let corruptOut = path("corrupt-out")
        try fails(["separate", "--codes", corrupt, "--codec", codec, "--masker", masker, "-o", corruptOut, "--prompts", "speech,sfx"],
                  "\(corrupt): \(expected)")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: corruptOut), [], "no partial outputs")
        // Codes that claim this codec but more codebooks than it has.
        let handle = try CodecHandle.open(codec)
        let tooWide = path("too-wide.bin")
        let writer = try CodesWriter(path: tooWide, header: CodesHeader(
            codec: handle.identity, sampleRate: 16000, hopLength: 320, codebooks: 5, codebookSize: 64, originalLength: 640,
            originalSampleRate: 16000, channels: 1))
        try writer.write(CodesChunk(channel: 0, firstFrame: 0, codes: [[Int32]](repeating: [1, 2], count: 5)))
        try writer.finish()
        try fails(["separate", "--codes", tooWide, "--codec", codec, "--masker", masker, "-o", out, "--prompts", "speech"],
                  "\(tooWide): codes have 5 codebooks × 64 at 16000 Hz / hop 320; codec \(codec) has 4 × 64 at 16000 Hz / hop 320: pass the codec that encoded them with --codec")
        let text = path("notes.bin")
        try Data("hello, not codes".utf8).write(to: URL(fileURLWithPath: text))
        let notCodes: String
        do { _ = try CodesReader(path: text); notCodes = "" } catch { notCodes = "\(error)" }
        try fails(["separate", "--codes", text, "--codec", codec, "--masker", masker, "-o", out, "--prompts", "speech"], "\(text): \(notCodes)")
        try fails(["separate", "--codes", path("missing.bin"), "--codec", codec, "--masker", masker, "--prompts", "speech"],
                  "codes file not found: \(path("missing.bin"))")
        try fails(base + ["--prompts", "speech", "--codebooks", "2"],
                  "--codebooks applies to audio input (--path codec); a codes file keeps its own codebook count")
        try fails(["separate", mixture, "--path", "codec", "--codec", codec, "--masker", masker, "--prompts", "speech", "--codebooks", "0"],
                  "--codebooks must be at least 1")
        try fails(base + ["--prompts", "speech", "--plot"], "--plot needs audio outputs: add --decode")
        try fails(["separate", mixture, "--codes", codes, "--prompts", "speech"], "give input audio files or --codes FILE, not both")
        try fails(["separate", "--prompts", "speech"], "give an input audio file, or --codes FILE to separate a codes file")
        try fails(["separate", mixture, "--path", "latent", "--prompts", "speech"], "unknown --path 'latent'; use spectral or codec")
        try fails(["eval", "--manifest", path("m.json"), "--path", "latent"], "unknown --path 'latent'; use spectral, codec, both, codec-oracle or codec-passthrough")
        try fails(["eval", "--manifest", path("m.json"), "--path", "codec-oracle", "--codec", codec, "--codebooks", "0"],
                  "--codebooks must be at least 1")
    }

    func testEvalOnTheCodecPathNextToTheSpectralPath() throws {
        // A mono 16 kHz item and a stereo 44.1 kHz one: the codec path resamples each channel to the codec and back.
        let manifest = try writeTinyManifest(in: dir, seconds: 0.8)
        let json = path("scores.json")
        let r = try runTool(["eval", "--manifest", manifest, "--path", "both", "--model", try smallModelPath(), "--codec", codec,
                             "--masker", masker, "--json", json, "--quiet"])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertTrue(r.out.contains("SI-SDRi side by side:"), r.out)
        let rows = r.out.split(separator: "\n").filter { $0.hasPrefix("se     speech") }
        XCTAssertEqual(rows.count, 3, "spectral table, codec table, comparison: \(r.out)")
        let scores = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: json))) as? [[String: Any]] ?? []
        XCTAssertEqual(scores.compactMap { $0["path"] as? String }, ["spectral", "spectral", "spectral", "spectral", "codec", "codec", "codec", "codec"])
        XCTAssertEqual(scores.filter { $0["si_sdr_improvement"] is Double }.count, 8)
        // BSS Eval's SIR gain of every output, mono and stereo, and both paths' mean in the comparison.
        XCTAssertEqual(scores.filter { $0["sir_improvement"] is Double }.count, 8)
        XCTAssertTrue(r.out.contains("codec SIRi"), r.out)
        let codecOnly = try runTool(["eval", "--manifest", manifest, "--path", "codec", "--codec", codec, "--masker", masker, "--quiet"])
        XCTAssertEqual(codecOnly.status, 0, codecOnly.err)
        XCTAssertTrue(codecOnly.out.contains("se     sfx-mix"), codecOnly.out)
    }

    func testLibraryRefusesZeroCodebooksWithoutNamingACLIFlag() throws {
        // The server and embedding apps call these too, so the message must not point at a CLI option.
        let codecHandle = try CodecHandle.open(codec)
        let maskerHandle = try MaskerHandle.open(masker)
        let message = "the codebook count must be at least 1 (got 0)"
        func refuses(_ body: () throws -> Void, line: UInt = #line) {
            XCTAssertThrowsError(try body(), line: line) { XCTAssertEqual("\($0)", message, line: line) }
        }
        refuses { _ = try CodecPathSeparator(codec: codecHandle, masker: maskerHandle, codebooks: 0) }
        refuses { _ = try CodecPathSeparator.roundTrip([[0, 0]], sampleRate: 16000, codec: codecHandle, codebooks: 0) }
        refuses { _ = try StreamingEncoder(codec: codecHandle, sampleRate: 16000, channels: 1, length: 16000, codebooks: 0) }
        refuses { _ = try CodecPipeline.encodeFile(input: self.mixture, output: self.path("zero.bin"), codec: codecHandle, codebooks: 0) }
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("zero.bin")), "nothing written on refusal")
    }

    func testCodecOracleScoresEachReferenceThroughTheCodecAlone() throws {
        let manifest = try writeTinyManifest(in: dir, seconds: 0.8)
        let json = path("oracle.json")
        // No --masker: the default masker was trained on another codec, and the oracle must not need one.
        let r = try runTool(["eval", "--manifest", manifest, "--path", "codec-oracle", "--codec", codec, "--json", json, "--quiet"])
        XCTAssertEqual(r.status, 0, r.err)
        let scores = try JSONDecoder().decode([EvaluationScore].self, from: Data(contentsOf: URL(fileURLWithPath: json)))
        XCTAssertEqual(scores.map(\.path), Array(repeating: "codec-oracle", count: 4))
        // Recompute item 0 (mono, 16 kHz: no resampling) by hand: the estimate is the reference's codec round trip.
        let separator = try CodecPathSeparator(codec: try CodecHandle.open(codec), masker: try MaskerHandle.open(masker))
        let base = (manifest as NSString).deletingLastPathComponent
        for (i, name) in ["speech", "sfx-mix"].enumerated() {
            let reference = try AudioFileReader(path: base + "/se/0/\(name).wav").readAll()
            let decoded = try separator.roundTrip(reference, sampleRate: 16000)
            XCTAssertEqual(try CodecPathSeparator.roundTrip(reference, sampleRate: 16000, codec: separator.codec), decoded,
                           "the masker-free round trip is the same computation")
            XCTAssertEqual(decoded[0].count, reference[0].count, "round trip keeps the length")
            let expected = try XCTUnwrap(SeparationMetrics.siSDR(estimate: decoded[0], reference: reference[0]))
            let score = try XCTUnwrap(scores.first { $0.item == "0" && $0.prompt == name })
            XCTAssertEqual(score.output, i, "oracle outputs are already in reference order")
            XCTAssertEqual(try XCTUnwrap(score.si_sdr), expected, accuracy: 1e-9)
        }
    }

    func testCodecPassthroughScoresTheMixtureThroughTheCodecForEveryPrompt() throws {
        let manifest = try writeTinyManifest(in: dir, seconds: 0.8)
        let json = path("passthrough.json")
        // No --masker, as for the oracle.
        let r = try runTool(["eval", "--manifest", manifest, "--path", "codec-passthrough", "--codec", codec, "--json", json, "--quiet"])
        XCTAssertEqual(r.status, 0, r.err)
        let scores = try JSONDecoder().decode([EvaluationScore].self, from: Data(contentsOf: URL(fileURLWithPath: json)))
        XCTAssertEqual(scores.map(\.path), Array(repeating: "codec-passthrough", count: 4))
        // Recompute item 0 (mono, 16 kHz) by hand: each prompt's estimate is the mixture's codec round trip.
        let codecHandle = try CodecHandle.open(codec)
        let base = (manifest as NSString).deletingLastPathComponent
        let mixture = try AudioFileReader(path: base + "/se/0/mixture.wav").readAll()
        let decoded = try CodecPathSeparator.roundTrip(mixture, sampleRate: 16000, codec: codecHandle)
        XCTAssertEqual(decoded[0].count, mixture[0].count, "round trip keeps the length")
        for name in ["speech", "sfx-mix"] {
            let reference = try AudioFileReader(path: base + "/se/0/\(name).wav").readAll()
            let expected = try XCTUnwrap(SeparationMetrics.siSDR(estimate: decoded[0], reference: reference[0]))
            let mixtureScore = try XCTUnwrap(SeparationMetrics.siSDR(estimate: mixture[0], reference: reference[0]))
            let score = try XCTUnwrap(scores.first { $0.item == "0" && $0.prompt == name })
            XCTAssertEqual(try XCTUnwrap(score.si_sdr), expected, accuracy: 1e-9)
            XCTAssertEqual(try XCTUnwrap(score.si_sdr_improvement), expected - mixtureScore, accuracy: 1e-9)
        }
    }

    func testBenchMasker() throws {
        let r = try runTool(["bench", "masker", "--threads", "1", "--seconds", "2", "--codec", codec, "--masker", masker])
        XCTAssertEqual(r.status, 0, r.err)
        for needle in ["threads: 1;", "GMAC per second of audio for one prompt", "offline:", "streamed 1 frame per push", "streamed 10 frames per push", "back to codes (4 codebooks)"] {
            XCTAssertTrue(r.out.contains(needle), "\(needle) missing in: \(r.out)")
        }
    }
}
