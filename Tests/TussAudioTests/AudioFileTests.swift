import Foundation
import TussTestSupport
import XCTest

@testable import TussAudio

final class AudioFileTests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        directory = URL(fileURLWithPath: try temporaryDirectory(self, prefix: "tuss-audio-tests"), isDirectory: true)
    }

    func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    /// Distinct tones per channel plus a little noise, peak below 0.9.
    func testSignal(channels: Int, rate: Int, count: Int) -> [[Float]] {
        (0..<channels).map { c in
            let tone = sine(frequency: Double(rate) / Double(17 + 3 * c), rate: rate, count: count, amplitude: 0.6)
            let hiss = noise(count: count, amplitude: 0.2, seed: UInt64(c + 1))
            return zip(tone, hiss).map { $0 + $1 }
        }
    }

    func write(_ planar: [[Float]], rate: Int, to file: String, format: AudioFileFormat) throws -> AudioFileWriter {
        let writer = try AudioFileWriter(path: file, sampleRate: rate, channels: planar.count, format: format)
        try writer.write(planar)
        try writer.finish()
        return writer
    }

    func testLosslessRoundTrips() throws {
        let cases: [(String, AudioFileFormat, Float)] = [
            ("wav", AudioFileFormat(container: .wav, encoding: .pcm16), 2.0 / 32768),
            ("wav", AudioFileFormat(container: .wav, encoding: .pcm24), 2.0 / 8_388_608),
            ("wav", AudioFileFormat(container: .wav, encoding: .float32), 0),
            ("flac", AudioFileFormat(container: .flac, encoding: .pcm16), 2.0 / 32768),
            ("flac", AudioFileFormat(container: .flac, encoding: .pcm24), 2.0 / 8_388_608),
            ("aiff", AudioFileFormat(container: .aiff, encoding: .pcm16), 2.0 / 32768),
        ]
        for (ext, format, tolerance) in cases {
            for channels in [1, 2, 5] {
                for rate in [8000, 44100, 48000] {
                    let count = rate / 10 + 7
                    let x = testSignal(channels: channels, rate: rate, count: count)
                    let file = path("lossless-\(channels)-\(rate)-\(format.encoding.rawValue).\(ext)")
                    _ = try write(x, rate: rate, to: file, format: format)
                    let reader = try AudioFileReader(path: file)
                    XCTAssertEqual(reader.info.frames, Int64(count), "\(format.name)")
                    XCTAssertEqual(reader.info.channels, channels)
                    XCTAssertEqual(reader.info.sampleRate, rate)
                    XCTAssertEqual(reader.info.format, format)
                    let y = try reader.readAll()
                    XCTAssertEqual(y.count, channels)
                    for c in 0..<channels {
                        XCTAssertEqual(y[c].count, count)
                        let error = maxAbsDifference(y[c], x[c])
                        XCTAssertLessThanOrEqual(error, tolerance, "\(format.name) \(channels)ch \(rate) Hz channel \(c)")
                    }
                }
            }
        }
    }

    /// Lossy codecs: length as libsndfile reports it (± codec padding) and a correlation > 0.9 on tones.
    func testLossyRoundTrips() throws {
        let cases: [(String, AudioFileFormat, Int, Int, Int)] = [
            // extension, format, channels, rate, allowed length difference
            ("ogg", AudioFileFormat(container: .ogg, encoding: .vorbis), 1, 48000, 0),
            ("ogg", AudioFileFormat(container: .ogg, encoding: .vorbis), 2, 44100, 0),
            ("ogg", AudioFileFormat(container: .ogg, encoding: .vorbis), 5, 22050, 0),
            ("ogg", AudioFileFormat(container: .ogg, encoding: .vorbis), 1, 8000, 0),
            ("opus", AudioFileFormat(container: .ogg, encoding: .opus), 1, 48000, 0),
            ("opus", AudioFileFormat(container: .ogg, encoding: .opus), 2, 16000, 0),
            ("opus", AudioFileFormat(container: .ogg, encoding: .opus), 1, 8000, 0),
            // libsndfile trims MP3 encoder delay and padding from LAME's gapless header; allow one frame.
            ("mp3", AudioFileFormat(container: .mpeg, encoding: .mpegLayer3), 1, 48000, 1152),
            ("mp3", AudioFileFormat(container: .mpeg, encoding: .mpegLayer3), 2, 44100, 1152),
            ("mp3", AudioFileFormat(container: .mpeg, encoding: .mpegLayer3), 1, 8000, 576),
        ]
        for (ext, format, channels, rate, slack) in cases {
            let count = rate + 123
            let x = (0..<channels).map { c in
                faded(sine(frequency: 300 + 110 * Double(c), rate: rate, count: count, amplitude: 0.5), fade: rate / 50)
            }
            let file = path("lossy-\(channels)-\(rate).\(ext)")
            _ = try write(x, rate: rate, to: file, format: format)
            let reader = try AudioFileReader(path: file)
            XCTAssertEqual(reader.info.format, format)
            XCTAssertEqual(reader.info.channels, channels)
            XCTAssertEqual(reader.info.sampleRate, rate)
            let y = try reader.readAll()
            let difference = y[0].count - count
            print("\(format.name) \(channels)ch \(rate) Hz: \(count) frames in, info.frames \(reader.info.frames), read \(y[0].count)")
            XCTAssertLessThanOrEqual(abs(difference), slack, "\(format.name) \(channels)ch \(rate) Hz length")
            XCTAssertEqual(Int64(y[0].count), reader.info.frames)
            // Aligned (lag 0): the decoder must remove the codec delay, not just keep the length.
            for c in 0..<channels {
                let value = correlation(y[c], x[c])
                print("  channel \(c): correlation \(value)")
                XCTAssertGreaterThan(value, 0.9, "\(format.name) \(channels)ch \(rate) Hz channel \(c)")
            }
        }
    }

    /// Reading in odd block sizes (and after seeking) returns exactly the samples of readAll.
    func testBlockwiseReadingMatchesReadAll() throws {
        let x = testSignal(channels: 3, rate: 44100, count: 50021)
        let files = [
            (path("blocks.wav"), AudioFileFormat(container: .wav, encoding: .float32)),
            (path("blocks.flac"), AudioFileFormat(container: .flac, encoding: .pcm24)),
            (path("blocks.ogg"), AudioFileFormat(container: .ogg, encoding: .vorbis)),
        ]
        for (file, format) in files {
            _ = try write(x, rate: 44100, to: file, format: format)
            let whole = try AudioFileReader(path: file).readAll()
            XCTAssertEqual(whole.count, 3)
            for blockSize in [1, 7, 333, 4099, 16385, 100_000] {
                let reader = try AudioFileReader(path: file)
                var collected: [[Float]] = [[], [], []]
                while true {
                    let block = try reader.read(frames: blockSize)
                    XCTAssertEqual(block.count, 3)
                    XCTAssertLessThanOrEqual(block[0].count, blockSize)
                    if block[0].isEmpty { break }
                    for c in 0..<3 {
                        XCTAssertEqual(block[c].count, block[0].count)
                        collected[c] += block[c]
                    }
                    if blockSize == 1 && collected[0].count >= 3000 { break }
                }
                for c in 0..<3 {
                    if blockSize == 1 {
                        XCTAssertEqual(collected[c], Array(whole[c].prefix(collected[c].count)), "\(format.name) 1-frame blocks")
                    } else {
                        XCTAssertEqual(collected[c], whole[c], "\(format.name) blocks of \(blockSize)")
                    }
                }
                // readAll on a reader that has been used rewinds to the start.
                XCTAssertEqual(try reader.readAll(), whole)
            }
            let reader = try AudioFileReader(path: file)
            try reader.seek(toFrame: 30000)
            let slice = try reader.read(frames: 555)
            for c in 0..<3 { XCTAssertEqual(slice[c], Array(whole[c][30000..<30555]), "\(format.name) after seek") }
            XCTAssertThrowsError(try reader.seek(toFrame: -1))
            XCTAssertEqual(try reader.read(frames: 0), [[], [], []])
        }
    }

    func testWriterIsAtomic() throws {
        let file = path("atomic.wav")
        let x = testSignal(channels: 2, rate: 16000, count: 16000)
        let writer = try AudioFileWriter(
            path: file, sampleRate: 16000, channels: 2, format: AudioFileFormat(container: .wav, encoding: .pcm16))
        try writer.write(x)
        XCTAssertFalse(FileManager.default.fileExists(atPath: file), "destination must not exist before finish()")
        let during = try FileManager.default.contentsOfDirectory(atPath: directory.path)
        XCTAssertEqual(during.count, 1)
        XCTAssertTrue(during.allSatisfy { $0.hasPrefix(".atomic.wav.partial-") }, "\(during)")
        try writer.finish()
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), ["atomic.wav"])
        XCTAssertThrowsError(try writer.write(x))
        XCTAssertThrowsError(try writer.finish())
        XCTAssertEqual(try AudioFileReader(path: file).info.frames, 16000)

        // A writer dropped without finish() leaves neither the file nor its temporary.
        let dropped = path("dropped.flac")
        do {
            let w = try AudioFileWriter(
                path: dropped, sampleRate: 16000, channels: 2, format: AudioFileFormat(container: .flac, encoding: .pcm16))
            try w.write(x)
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path).count, 2)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dropped))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), ["atomic.wav"])

        // finish() replaces an existing file.
        let replacement = try AudioFileWriter(
            path: file, sampleRate: 16000, channels: 1, format: AudioFileFormat(container: .wav, encoding: .pcm16))
        try replacement.write([[0.1, 0.2, 0.3]])
        XCTAssertEqual(try AudioFileReader(path: file).info.frames, 16000)
        try replacement.finish()
        XCTAssertEqual(try AudioFileReader(path: file).info.frames, 3)
    }

    func testClippingIsCountedAndClamped() throws {
        let samples: [Float] = [0.5, 1.5, -2, 1.0, -1.0, 0.999, 3, -0.25]
        let pcm = try write([samples], rate: 8000, to: path("clip.wav"),
                            format: AudioFileFormat(container: .wav, encoding: .pcm16))
        XCTAssertEqual(pcm.clippedSamples, 3)
        let back = try AudioFileReader(path: path("clip.wav")).readAll()[0]
        XCTAssertEqual(back[1], 1, accuracy: 1e-4, "clipped, not wrapped")
        XCTAssertEqual(back[2], -1, accuracy: 1e-4)
        XCTAssertEqual(back[6], 1, accuracy: 1e-4)
        XCTAssertEqual(back[7], -0.25, accuracy: 1e-4)

        let stereo = try write([samples, samples.map { $0 / 4 }], rate: 8000, to: path("clip24.flac"),
                               format: AudioFileFormat(container: .flac, encoding: .pcm24))
        XCTAssertEqual(stereo.clippedSamples, 3)

        let float = try write([samples], rate: 8000, to: path("clip-float.wav"),
                              format: AudioFileFormat(container: .wav, encoding: .float32))
        XCTAssertEqual(float.clippedSamples, 0)
        XCTAssertEqual(try AudioFileReader(path: path("clip-float.wav")).readAll()[0], samples)
    }

    func testReadErrors() throws {
        func expect(_ file: String, _ check: (AudioError) -> Bool, line: UInt = #line) {
            XCTAssertThrowsError(try AudioFileReader(path: file), line: line) { error in
                guard let error = error as? AudioError else { return XCTFail("not an AudioError: \(error)", line: line) }
                XCTAssertTrue(check(error), "unexpected \(error)", line: line)
                XCTAssertFalse(error.description.contains("\n"), line: line)
                print("error message: \(error)")
            }
        }
        expect(path("missing.wav")) { if case .fileNotFound = $0 { true } else { false } }
        expect(directory.path) { if case .fileNotFound = $0 { true } else { false } }
        _ = FileManager.default.createFile(atPath: path("empty.wav"), contents: Data())
        expect(path("empty.wav")) { if case .unreadable = $0 { true } else { false } }
        var generator = SeededGenerator(seed: 99)
        let garbage = Data((0..<10000).map { _ in UInt8.random(in: 0...255, using: &generator) })
        _ = FileManager.default.createFile(atPath: path("garbage.wav"), contents: garbage)
        expect(path("garbage.wav")) { if case .unreadable = $0 { true } else { false } }
        _ = FileManager.default.createFile(atPath: path("text.flac"), contents: Data("not audio at all\n".utf8))
        expect(path("text.flac")) { if case .unreadable = $0 { true } else { false } }
        // A truncated header: the first 20 bytes of a valid WAV file.
        _ = try write([[0.1, 0.2]], rate: 8000, to: path("whole.wav"),
                      format: AudioFileFormat(container: .wav, encoding: .pcm16))
        let head = try Data(contentsOf: URL(fileURLWithPath: path("whole.wav"))).prefix(20)
        _ = FileManager.default.createFile(atPath: path("truncated.wav"), contents: head)
        expect(path("truncated.wav")) { if case .unreadable = $0 { true } else { false } }
    }

    func testWriteErrors() throws {
        let wav = AudioFileFormat(container: .wav, encoding: .pcm16)
        XCTAssertThrowsError(try AudioFileWriter(path: path("no/such/dir/x.wav"), sampleRate: 8000, channels: 1, format: wav)) {
            guard case AudioError.cannotWrite = $0 else { return XCTFail("\($0)") }
        }
        XCTAssertThrowsError(try AudioFileWriter(path: path("x.wav"), sampleRate: 8000, channels: 0, format: wav))
        XCTAssertThrowsError(try AudioFileWriter(path: path("x.wav"), sampleRate: 0, channels: 1, format: wav))
        XCTAssertThrowsError(try AudioFileWriter(
            path: path("x.opus"), sampleRate: 44100, channels: 1, format: AudioFileFormat(container: .ogg, encoding: .opus))) {
            guard case AudioError.unsupportedFormat = $0 else { return XCTFail("\($0)") }
            XCTAssertTrue("\($0)".contains("resample"))
        }
        let writer = try AudioFileWriter(path: path("x.wav"), sampleRate: 8000, channels: 2, format: wav)
        XCTAssertThrowsError(try writer.write([[0.1]])) {
            guard case AudioError.invalidArgument = $0 else { return XCTFail("\($0)") }
        }
        XCTAssertThrowsError(try writer.write([[0.1], [0.1, 0.2]]))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path).count, 1)
    }

    func testFormatChoiceForWriting() throws {
        let wav16 = AudioFileFormat(container: .wav, encoding: .pcm16)
        let wav24 = AudioFileFormat(container: .wav, encoding: .pcm24)
        let wavFloat = AudioFileFormat(container: .wav, encoding: .float32)
        let mp3 = AudioFileFormat(container: .mpeg, encoding: .mpegLayer3)
        let vorbis = AudioFileFormat(container: .ogg, encoding: .vorbis)
        let opus = AudioFileFormat(container: .ogg, encoding: .opus)
        let flac24 = AudioFileFormat(container: .flac, encoding: .pcm24)

        XCTAssertEqual(try AudioFileFormat.forWriting(path: "a/b.wav", like: nil, float32: false), wav16)
        XCTAssertEqual(try AudioFileFormat.forWriting(path: "b.WAV", like: wav24, float32: false), wav24)
        XCTAssertEqual(try AudioFileFormat.forWriting(path: "b.flac", like: wav24, float32: false), flac24)
        XCTAssertEqual(try AudioFileFormat.forWriting(path: "b.flac", like: wavFloat, float32: false), flac24)
        XCTAssertEqual(try AudioFileFormat.forWriting(path: "b.wav", like: wavFloat, float32: false), wavFloat)
        XCTAssertEqual(try AudioFileFormat.forWriting(path: "b.wav", like: mp3, float32: false), wav16)
        XCTAssertEqual(try AudioFileFormat.forWriting(path: "b.aiff", like: wav24, float32: false),
                       AudioFileFormat(container: .aiff, encoding: .pcm24))
        XCTAssertEqual(try AudioFileFormat.forWriting(path: "b.ogg", like: wav16, float32: false), vorbis)
        XCTAssertEqual(try AudioFileFormat.forWriting(path: "b.opus", like: vorbis, float32: false), opus)
        XCTAssertEqual(try AudioFileFormat.forWriting(path: "b.mp3", like: flac24, float32: false), mp3)
        XCTAssertEqual(try AudioFileFormat.forWriting(path: "b.wav", like: wav16, float32: true), wavFloat)
        XCTAssertEqual(try AudioFileFormat.forWriting(path: "b.aif", like: nil, float32: true),
                       AudioFileFormat(container: .aiff, encoding: .float32))
        for bad in ["b.mp3", "b.ogg", "b.opus", "b.flac"] {
            XCTAssertThrowsError(try AudioFileFormat.forWriting(path: bad, like: nil, float32: true)) { error in
                guard case AudioError.unsupportedFormat = error else { return XCTFail("\(error)") }
                XCTAssertTrue("\(error)".contains("float"), "\(error)")
                print("error message: \(error)")
            }
        }
        for bad in ["b.xyz", "noextension", "dir.wav/file"] {
            XCTAssertThrowsError(try AudioFileFormat.forWriting(path: bad, like: nil, float32: false))
        }
        XCTAssertEqual(wav16.name, "WAV 16-bit PCM")
        XCTAssertEqual(wavFloat.name, "WAV 32-bit float")
        XCTAssertEqual(flac24.name, "FLAC 24-bit PCM")
        XCTAssertEqual(vorbis.name, "Ogg Vorbis")
        XCTAssertEqual(opus.name, "Ogg Opus")
        XCTAssertEqual(mp3.name, "MP3")
        XCTAssertEqual(AudioFileFormat(sndfileFormat: wav24.sndfileFormat), wav24)
    }
}
