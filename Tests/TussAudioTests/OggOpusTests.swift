import Foundation
import TussTestSupport
import XCTest

@testable import TussAudio

/// A deterministic speech-like signal: a formant-filtered harmonic source with gliding pitch and vibrato,
/// 4 Hz syllables with short pauses and a little breath noise; peak 0.5.
func speechLike(rate: Int, seconds: Double, seed: UInt64 = 1) -> [Float] {
    let count = Int(Double(rate) * seconds)
    let vowels: [[(Double, Double)]] = [
        [(730, 90), (1090, 110), (2440, 170)],  // a
        [(270, 60), (2290, 100), (3010, 150)],  // i
        [(300, 70), (870, 90), (2240, 160)],  // u
        [(530, 80), (1840, 100), (2480, 160)],  // e
    ]
    var generator = SeededGenerator(seed: seed)
    var phase = 0.0
    var out = [Float](repeating: 0, count: count)
    for i in 0..<count {
        let t = Double(i) / Double(rate)
        let f0 = 130 + 35 * sin(2 * Double.pi * 0.6 * t) + 4 * sin(2 * Double.pi * 5.5 * t)
        phase += 2 * Double.pi * f0 / Double(rate)
        let syllable = Int(t * 4)
        let formants = vowels[syllable % vowels.count]
        let within = t * 4 - Double(syllable)
        let envelope = within < 0.8 ? pow(sin(Double.pi * within / 0.8), 0.6) : 0
        var voiced = 0.0
        let harmonics = min(30, Int((Double(rate) / 2 - 300) / f0))
        if harmonics > 0 {
            for k in 1...harmonics {
                let fk = Double(k) * f0
                var gain = 0.0
                for (centre, width) in formants { gain += 1 / (1 + ((fk - centre) / width) * ((fk - centre) / width)) }
                voiced += gain / Double(k).squareRoot() * sin(Double(k) * phase)
            }
        }
        let breath = Double.random(in: -1...1, using: &generator) * 0.02
        out[i] = Float(envelope * voiced + breath)
    }
    let peak = out.map(abs).max() ?? 1
    return out.map { $0 * 0.5 / peak }
}

final class OggOpusTests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        directory = URL(fileURLWithPath: try temporaryDirectory(self, prefix: "tuss-audio-tests"), isDirectory: true)
    }

    func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    func fileSize(_ file: String) throws -> Int {
        try XCTUnwrap(FileManager.default.attributesOfItem(atPath: file)[.size] as? Int)
    }

    /// 2 s of speech-like audio at 12 and 64 kbit/s: same length and rate back, aligned, quality rising with bitrate,
    /// file size ≈ bitrate × duration.
    func testSpeechAtTwoBitrates() throws {
        let rate = 48000
        let x = speechLike(rate: rate, seconds: 2)
        var results: [Int: (snr: Double, correlation: Double)] = [:]
        for bitrate in [12000, 64000] {
            let file = path("speech-\(bitrate).opus")
            try OggOpus.encode([x], sampleRate: rate, bitrate: bitrate, to: file)
            let decoded = try OggOpus.decode(path: file)
            XCTAssertEqual(decoded.sampleRate, rate)
            XCTAssertEqual(decoded.planar.count, 1)
            XCTAssertEqual(decoded.planar[0].count, x.count)
            let y = decoded.planar[0]
            let quality = (snr(y, x), correlation(y, x))
            results[bitrate] = quality
            // Pre-skip must be removed exactly. At 64 kbit/s (CELT) the output is sample-aligned; at low bitrates
            // libopus codes speech with SILK, whose resampling shifts the waveform by ~2 samples at 48 kHz.
            let best = bestCorrelation(y, x, lags: -40...40)
            if bitrate >= 64000 {
                XCTAssertEqual(best.lag, 0, "decoded audio is shifted: pre-skip handling is wrong")
            } else {
                XCTAssertLessThanOrEqual(abs(best.lag), 3, "decoded audio is shifted: pre-skip handling is wrong")
            }
            let size = try fileSize(file)
            let expected = Double(bitrate) * 2 / 8
            print("Opus \(bitrate / 1000) kbit/s: SNR \(quality.0) dB, correlation \(quality.1), \(size) bytes (expected ≈ \(Int(expected)))")
            XCTAssertEqual(Double(size), expected, accuracy: 0.3 * expected, "file size for \(bitrate) bit/s")
        }
        let low = try XCTUnwrap(results[12000])
        let high = try XCTUnwrap(results[64000])
        XCTAssertGreaterThan(high.correlation, 0.97)
        XCTAssertGreaterThan(high.snr, 12)
        XCTAssertGreaterThan(low.correlation, 0.7)
        XCTAssertGreaterThan(high.snr, low.snr + 3)
    }

    /// Native Opus rates are coded as they are, other rates through 48 kHz; all come back at their rate and length.
    func testRatesAndChannels() throws {
        for (rate, channels) in [(16000, 1), (8000, 2), (44100, 2), (22050, 1), (96000, 1), (24000, 2)] {
            let count = rate + 17
            let x = (0..<channels).map { c in speechLike(rate: rate, seconds: Double(count) / Double(rate), seed: UInt64(c + 3)) }
            let file = path("rate-\(rate)-\(channels).opus")
            try OggOpus.encode(x, sampleRate: rate, bitrate: 48000 * channels, to: file)
            let decoded = try OggOpus.decode(path: file)
            XCTAssertEqual(decoded.sampleRate, rate)
            XCTAssertEqual(decoded.planar.count, channels)
            for c in 0..<channels {
                XCTAssertEqual(decoded.planar[c].count, x[c].count, "\(rate) Hz \(channels) ch")
                let value = correlation(decoded.planar[c], x[c])
                let best = bestCorrelation(decoded.planar[c], x[c], lags: -8...8)
                print("Opus \(rate) Hz \(channels) ch channel \(c): correlation \(value), best \(best.value) at lag \(best.lag)")
                XCTAssertLessThanOrEqual(abs(best.lag), 6, "misaligned output (SILK shifts ≤ ~2 samples at 48 kHz)")
                XCTAssertGreaterThan(value, 0.9, "\(rate) Hz \(channels) ch channel \(c)")
            }
        }
    }

    /// libsndfile reads our stream: same length (pre-skip and end trimming honoured) and the same audio.
    func testReadableByLibsndfile() throws {
        for (rate, channels) in [(48000, 1), (16000, 2)] {
            let x = (0..<channels).map { c in speechLike(rate: rate, seconds: 2, seed: UInt64(c + 7)) }
            let file = path("sndfile-\(rate).opus")
            try OggOpus.encode(x, sampleRate: rate, bitrate: 64000, to: file)
            let reader = try AudioFileReader(path: file)
            XCTAssertEqual(reader.info.format, AudioFileFormat(container: .ogg, encoding: .opus))
            XCTAssertEqual(reader.info.sampleRate, rate)
            XCTAssertEqual(reader.info.channels, channels)
            XCTAssertEqual(reader.info.frames, Int64(x[0].count))
            let y = try reader.readAll()
            let ours = try OggOpus.decode(path: file).planar
            for c in 0..<channels {
                XCTAssertEqual(y[c].count, x[c].count)
                let toInput = correlation(y[c], x[c])
                let toOurs = correlation(y[c], ours[c])
                print("libsndfile reading our Opus \(rate) Hz ch \(c): correlation to input \(toInput), to our decoder \(toOurs)")
                XCTAssertGreaterThan(toInput, 0.95)
                XCTAssertGreaterThan(toOurs, 0.999)
            }
        }
    }

    /// ffmpeg (when installed) decodes our stream without complaint and to the original length.
    func testReadableByFFmpeg() throws {
        let ffmpeg = "/usr/bin/ffmpeg"
        guard FileManager.default.isExecutableFile(atPath: ffmpeg) else { throw XCTSkip("ffmpeg not installed") }
        let x = speechLike(rate: 48000, seconds: 2)
        let file = path("ffmpeg.opus")
        try OggOpus.encode([x], sampleRate: 48000, bitrate: 32000, to: file)
        let raw = path("ffmpeg.f32")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: ffmpeg)
        process.arguments = ["-nostdin", "-v", "error", "-i", file, "-f", "f32le", "-acodec", "pcm_f32le", raw]
        let errors = Pipe()
        process.standardError = errors
        try process.run()
        process.waitUntilExit()
        let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertEqual(process.terminationStatus, 0, message)
        XCTAssertEqual(message, "", "ffmpeg reported problems")
        let data = try Data(contentsOf: URL(fileURLWithPath: raw))
        let y = data.withUnsafeBytes { bytes in
            (0..<(data.count / 4)).map { Float(bitPattern: bytes.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self)) }
        }
        print("ffmpeg decoded \(y.count) samples of \(x.count); correlation \(correlation(y, x))")
        XCTAssertEqual(y.count, x.count)
        XCTAssertGreaterThan(correlation(y, x), 0.95)
    }

    func testHeadersFollowRFC7845() throws {
        let file = path("headers.opus")
        let x = speechLike(rate: 16000, seconds: 0.5)
        try OggOpus.encode([x], sampleRate: 16000, bitrate: 24000, to: file)
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: file)))
        // First page: "OggS", BOS flag, granule 0, a single 19-byte OpusHead packet.
        XCTAssertEqual(Array(bytes[0..<4]), Array("OggS".utf8))
        XCTAssertEqual(bytes[5], 0x02)
        XCTAssertEqual(bytes[26], 1)
        XCTAssertEqual(bytes[27], 19)
        let head = Array(bytes[28..<47])
        XCTAssertEqual(Array(head[0..<8]), Array("OpusHead".utf8))
        XCTAssertEqual(head[8], 1)
        XCTAssertEqual(head[9], 1)
        let preSkip = Int(head[10]) | Int(head[11]) << 8
        XCTAssertEqual(preSkip, 312)  // libopus lookahead at 16 kHz (104 samples), in 48 kHz units
        XCTAssertEqual(Int(head[12]) | Int(head[13]) << 8 | Int(head[14]) << 16 | Int(head[15]) << 24, 16000)
        XCTAssertEqual(head[18], 0)
        // Last page: EOS flag and granule = pre-skip + length at 48 kHz.
        let lastPage = try XCTUnwrap(findLastPage(bytes))
        XCTAssertEqual(bytes[lastPage + 5] & 0x04, 0x04)
        var granule: Int64 = 0
        for i in 0..<8 { granule |= Int64(bytes[lastPage + 6 + i]) << (8 * Int64(i)) }
        XCTAssertEqual(granule, Int64(preSkip + 3 * x.count))
    }

    func testErrorsAndAtomicity() throws {
        XCTAssertThrowsError(try OggOpus.decode(path: path("missing.opus"))) {
            guard case AudioError.fileNotFound = $0 else { return XCTFail("\($0)") }
        }
        let wav = path("not-opus.wav")
        let writer = try AudioFileWriter(path: wav, sampleRate: 8000, channels: 1,
                                         format: AudioFileFormat(container: .wav, encoding: .pcm16))
        try writer.write([[0.1, 0.2, 0.3]])
        try writer.finish()
        XCTAssertThrowsError(try OggOpus.decode(path: wav)) {
            guard case AudioError.unreadable = $0 else { return XCTFail("\($0)") }
        }
        let vorbis = path("vorbis.ogg")
        let vorbisWriter = try AudioFileWriter(path: vorbis, sampleRate: 8000, channels: 1,
                                               format: AudioFileFormat(container: .ogg, encoding: .vorbis))
        try vorbisWriter.write([sine(frequency: 440, rate: 8000, count: 4000)])
        try vorbisWriter.finish()
        XCTAssertThrowsError(try OggOpus.decode(path: vorbis)) {
            guard case AudioError.unreadable = $0 else { return XCTFail("\($0)") }
            print("error message: \($0)")
        }
        let three = [[Float]](repeating: [0, 0, 0], count: 3)
        XCTAssertThrowsError(try OggOpus.encode(three, sampleRate: 48000, bitrate: 64000, to: path("three.opus")))
        XCTAssertThrowsError(try OggOpus.encode([[0]], sampleRate: 48000, bitrate: 100, to: path("low.opus")))
        XCTAssertThrowsError(try OggOpus.encode([[0]], sampleRate: 48000, bitrate: 64000, to: path("no/dir/x.opus"))) {
            guard case AudioError.cannotWrite = $0 else { return XCTFail("\($0)") }
        }
        try OggOpus.encode([[]], sampleRate: 48000, bitrate: 64000, to: path("empty.opus"))
        let empty = try OggOpus.decode(path: path("empty.opus"))
        XCTAssertEqual(empty.planar, [[]])
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted()
        XCTAssertEqual(names, ["empty.opus", "not-opus.wav", "vorbis.ogg"], "no temporary or failed outputs left")
    }
}

/// Byte offset of the last "OggS" page header in `bytes`.
private func findLastPage(_ bytes: [UInt8]) -> Int? {
    let magic = Array("OggS".utf8)
    var i = bytes.count - 27
    while i >= 0 {
        if bytes[i] == magic[0] && bytes[i + 1] == magic[1] && bytes[i + 2] == magic[2] && bytes[i + 3] == magic[3] {
            return i
        }
        i -= 1
    }
    return nil
}
