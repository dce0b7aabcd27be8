import Foundation
import XCTest
import TussAudio
import TussModels
import TussPipeline
import TussTestSupport

/// A small DAC for codec tests: the official 16 kHz reference bundle's weights when `../shared` is present, else
/// the committed default codec.
func smallCodecPath() throws -> String {
    if let ref = try? sharedReference("dac-tiny-16k/weights.pth") { return ref }
    let shipped = (packageRoot() as NSString).appendingPathComponent("Codecs/dac-small-16k/codec.safetensors")
    guard FileManager.default.fileExists(atPath: shipped) else { throw XCTSkip("no codec weights for codec tests") }
    return shipped
}

final class CodecPipelineTests: XCTestCase {
    /// Chunked encoding and decoding (with context on both sides) must agree with a whole-signal run.
    func testChunkedEncodeAndDecodeMatchWholeSignal() throws {
        let handle = try CodecHandle.open(try smallCodecPath())
        let codec = handle.codec
        let x = testSignal(seconds: 2.3, rate: codec.config.sampleRate, channels: 1)[0]
        let whole = codec.encode(x)
        var enc = ChunkedEncoder(codec: codec, codebooks: codec.config.codebooks, chunkFrames: 13)
        var chunked = [[Int32]](repeating: [], count: codec.config.codebooks)
        for piece in stride(from: 0, to: x.count, by: 4001) {
            let out = enc.push(Array(x[piece..<min(x.count, piece + 4001)]))
            for i in 0..<chunked.count { chunked[i] += out[i] }
        }
        let tail = enc.finish()
        for i in 0..<chunked.count { chunked[i] += tail[i] }
        XCTAssertEqual(chunked.map(\.count), whole.map(\.count))
        var mismatches = 0
        for i in 0..<whole.count { for t in 0..<whole[i].count where whole[i][t] != chunked[i][t] { mismatches += 1 } }
        XCTAssertEqual(mismatches, 0, "chunked codes differ from whole-signal codes at \(mismatches) positions")

        let wholeAudio = codec.decode(whole)
        var dec = ChunkedDecoder(codec: codec, chunkFrames: 11)
        var audio: [Float] = []
        for start in stride(from: 0, to: whole[0].count, by: 7) {
            audio += dec.push(whole.map { Array($0[start..<min($0.count, start + 7)]) })
        }
        audio += dec.finish()
        XCTAssertEqual(audio.count, wholeAudio.count)
        var num = 0.0, den = 0.0
        for t in 0..<audio.count { let d = Double(audio[t] - wholeAudio[t]); num += d * d; den += Double(wholeAudio[t] * wholeAudio[t]) }
        XCTAssertLessThan((num / max(den, 1e-20)).squareRoot(), 1e-5, "chunked decode differs from whole decode")
    }

    func testRoundTripThroughTheCommandLine() throws {
        let dir = try temporaryDirectory(self, prefix: "tuss-codec-tests")
        let codec = try smallCodecPath()
        for (rate, channels, ext) in [(44100, 2, "wav"), (8000, 1, "flac"), (48000, 1, "wav")] {
            let input = try writeAudio(testSignal(seconds: 1.7, rate: rate, channels: channels), rate: rate,
                                       to: (dir as NSString).appendingPathComponent("in-\(rate).\(ext)"))
            let bin = (dir as NSString).appendingPathComponent("c-\(rate).bin")
            let out = (dir as NSString).appendingPathComponent("out-\(rate).\(ext)")
            let e = try runTool(["encode", input, "-o", bin, "--codec", codec, "--quiet"])
            XCTAssertEqual(e.status, 0, e.err)
            let d = try runTool(["decode", bin, "-o", out, "--codec", codec, "--quiet"])
            XCTAssertEqual(d.status, 0, d.err)
            let a = try AudioFileReader(path: input).info, b = try AudioFileReader(path: out).info
            XCTAssertEqual(b.frames, a.frames)
            XCTAssertEqual(b.sampleRate, a.sampleRate)
            XCTAssertEqual(b.channels, a.channels)
            let info = try runTool(["info", bin, "--json", "--dump-codes"])
            XCTAssertEqual(info.status, 0, info.err)
            let obj = try JSONSerialization.jsonObject(with: Data(info.out.utf8)) as? [String: Any]
            XCTAssertEqual(obj?["channels"] as? Int, channels)
            let codes = obj?["codes"] as? [[[Int]]]
            XCTAssertEqual(codes?.count, channels)
            XCTAssertEqual(codes?.first?.count, obj?["codebooks"] as? Int)
        }
        // Fewer codebooks: smaller file.
        let input = (dir as NSString).appendingPathComponent("in-44100.wav")
        let small = (dir as NSString).appendingPathComponent("small.bin")
        XCTAssertEqual(try runTool(["encode", input, "-o", small, "--codec", codec, "--codebooks", "2", "--quiet"]).status, 0)
        let full = try FileManager.default.attributesOfItem(atPath: (dir as NSString).appendingPathComponent("c-44100.bin"))[.size] as? Int ?? 0
        let reduced = try FileManager.default.attributesOfItem(atPath: small)[.size] as? Int ?? 0
        XCTAssertLessThan(reduced, full)
    }

    func testDamagedAndForeignCodesAreRefused() throws {
        let dir = try temporaryDirectory(self, prefix: "tuss-codec-tests")
        let codec = try smallCodecPath()
        let input = try writeAudio(testSignal(seconds: 1, rate: 16000, channels: 1), rate: 16000,
                                   to: (dir as NSString).appendingPathComponent("in.wav"))
        let bin = (dir as NSString).appendingPathComponent("c.bin")
        XCTAssertEqual(try runTool(["encode", input, "-o", bin, "--codec", codec, "--quiet"]).status, 0)
        var bytes = try Data(contentsOf: URL(fileURLWithPath: bin))
        let truncated = (dir as NSString).appendingPathComponent("t.bin")
        try bytes.prefix(bytes.count - 20).write(to: URL(fileURLWithPath: truncated))
        bytes[bytes.count / 2] ^= 0xFF
        let corrupt = (dir as NSString).appendingPathComponent("x.bin")
        try bytes.write(to: URL(fileURLWithPath: corrupt))
        let empty = (dir as NSString).appendingPathComponent("e.bin")
        XCTAssertTrue(FileManager.default.createFile(atPath: empty, contents: Data()))
        for (file, expected) in [(truncated, "truncated"), (corrupt, "chunk"), (empty, "empty")] {
            let out = (dir as NSString).appendingPathComponent("o.wav")
            let r = try runTool(["decode", file, "-o", out, "--codec", codec])
            XCTAssertNotEqual(r.status, 0)
            XCTAssertEqual(r.err.split(separator: "\n").count, 1, r.err)
            XCTAssertTrue(r.err.lowercased().contains(expected), r.err)
            XCTAssertFalse(FileManager.default.fileExists(atPath: out), "no half-written output")
        }
        if let other = try? sharedReference("dac-tiny-44k/weights.pth") {
            let r = try runTool(["decode", bin, "-o", (dir as NSString).appendingPathComponent("o.wav"), "--codec", other])
            XCTAssertNotEqual(r.status, 0)
            XCTAssertTrue(r.err.contains("decode with the codec that encoded them"), r.err)
        }
    }

    func testConvertedCodecIsTheSameCodec() throws {
        let pth = try sharedReference("dac-tiny-16k/weights.pth")
        let dir = try temporaryDirectory(self, prefix: "tuss-codec-tests")
        let converted = (dir as NSString).appendingPathComponent("codec.safetensors")
        let r = try runTool(["convert", pth, "-o", converted])
        XCTAssertEqual(r.status, 0, r.err)
        let a = try CodecHandle.open(pth), b = try CodecHandle.open(converted)
        XCTAssertEqual(a.identity.weightsHash, b.identity.weightsHash, "codes from one must decode with the other")
        XCTAssertEqual(a.codec.config, b.codec.config)
        let x = testSignal(seconds: 0.5, rate: 16000, channels: 1)[0]
        XCTAssertEqual(a.codec.encode(x), b.codec.encode(x))
        XCTAssertEqual(a.codec.decode(a.codec.encode(x)), b.codec.decode(a.codec.encode(x)))
    }

    func testOpusBaselineRoundTrip() throws {
        let dir = try temporaryDirectory(self, prefix: "tuss-codec-tests")
        let input = try writeAudio(testSignal(seconds: 2, rate: 44100, channels: 2), rate: 44100,
                                   to: (dir as NSString).appendingPathComponent("in.wav"))
        let opus = (dir as NSString).appendingPathComponent("a.opus"), out = (dir as NSString).appendingPathComponent("a.wav")
        XCTAssertEqual(try runTool(["encode", input, "-o", opus, "--codec", "opus", "--bitrate", "24", "--quiet"]).status, 0)
        XCTAssertEqual(try runTool(["decode", opus, "-o", out]).status, 0)
        let info = try AudioFileReader(path: out).info
        XCTAssertEqual(info.frames, 88200)
        XCTAssertEqual(info.sampleRate, 44100)
        let size = try FileManager.default.attributesOfItem(atPath: opus)[.size] as? Int ?? 0
        XCTAssertLessThan(size, 24_000 / 8 * 2 * 2, "Ogg Opus at 24 kbps should be near 6 kB for 2 s")
    }
}
