import Foundation
import XCTest
@testable import TussAudio

/// The incremental Ogg Opus encoder and decoder behind the opus transport of `tuss-codec stream`.
final class OggOpusStreamTests: XCTestCase {
    /// Two tones, so the codec has something to do; 16 kHz.
    private func tones(_ count: Int) -> [Float] {
        (0..<count).map { i in
            let t = Double(i) / 16000
            return Float(0.4 * sin(2 * Double.pi * 440 * t) + 0.1 * sin(2 * Double.pi * 3100 * t))
        }
    }

    /// Encodes `x` (16 kHz mono) in blocks of the given sizes, cycling; returns the whole stream.
    private func encodeInBlocks(_ x: [Float], sizes: [Int], bitrate: Int = 32000) throws -> [UInt8] {
        let encoder = try OggOpusStreamEncoder(sampleRate: 16000, channels: 1, bitrate: bitrate, originalLength: x.count)
        var stream: [UInt8] = []
        var i = 0
        var k = 0
        while i < x.count {
            let n = min(sizes[k % sizes.count], x.count - i)
            stream += try encoder.encode([Array(x[i..<(i + n)])])
            i += n
            k += 1
        }
        return stream + (try encoder.finish())
    }

    /// Offsets of the Ogg pages in `stream`.
    private func pageOffsets(_ stream: [UInt8]) -> [Int] {
        let magic = Array("OggS".utf8)
        return (0..<max(0, stream.count - 3)).filter { Array(stream[$0..<($0 + 4)]) == magic }
    }

    func testAnySplitOfTheStreamDecodesToTheSameExactLengthAudio() throws {
        let x = tones(23_457)  // not a whole number of 20 ms frames
        let stream = try encodeInBlocks(x, sizes: [1, 137, 320, 2000, 7, 4096])

        let whole = try OggOpusStreamDecoder()
        let a = try whole.decode(stream)
        XCTAssertTrue(whole.ended)
        XCTAssertEqual(whole.info, .init(channels: 1, originalSampleRate: 16000, originalLength: x.count))
        XCTAssertEqual(whole.sampleRate, 16000)
        XCTAssertEqual(a.count, 1)
        XCTAssertEqual(a[0].count, x.count, "pre-skip and end padding trimmed to the exact length")
        // The decoded audio is aligned with the input (pre-skip removed) and close to it.
        var dot = 0.0, xx = 0.0, yy = 0.0
        for i in x.indices {
            dot += Double(x[i]) * Double(a[0][i]); xx += Double(x[i] * x[i]); yy += Double(a[0][i] * a[0][i])
        }
        XCTAssertGreaterThan(dot / (xx * yy).squareRoot(), 0.95)

        // Bytes in pieces of 1…999: the same samples.
        let pieces = try OggOpusStreamDecoder()
        var b: [Float] = []
        var j = 0
        var m = 0
        while j < stream.count {
            let n = min([1, 3, 50, 999][m % 4], stream.count - j)
            let got = try pieces.decode(stream[j..<(j + n)])
            XCTAssertTrue(got.isEmpty || got.count == 1)
            b += got.first ?? []
            j += n
            m += 1
        }
        XCTAssertEqual(b, a[0])
        // Bytes after the end are ignored.
        XCTAssertEqual(try pieces.decode(stream), [])

        // Decoded at 48 kHz: exactly three times as many samples.
        let up = try OggOpusStreamDecoder(sampleRate: 48000)
        XCTAssertEqual(try up.decode(stream)[0].count, 3 * x.count)

        // The file decoder reads the same bytes to the same samples.
        let path = (NSTemporaryDirectory() as NSString).appendingPathComponent("tuss-opus-stream-\(UUID().uuidString).opus")
        try Data(stream).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let file = try OggOpus.decode(path: path)
        XCTAssertEqual(file.sampleRate, 16000)
        XCTAssertEqual(file.planar[0], a[0])
    }

    func testLiveFlushingKeepsLatencyAndOverheadLow() throws {
        // 10 s at 16 kbps, 100 ms per call: each call's bytes decode to all but the < 20 ms the encoder holds back
        // plus its lookahead, and a page per call adds little to the bitrate of the same audio coded as one file.
        let x = tones(160_000)
        let encoder = try OggOpusStreamEncoder(sampleRate: 16000, channels: 1, bitrate: 16000)
        let decoder = try OggOpusStreamDecoder()
        var total = 0
        var decoded = 0
        for start in stride(from: 0, to: x.count, by: 1600) {
            let bytes = try encoder.encode([Array(x[start..<(start + 1600)])])
            XCTAssertFalse(bytes.isEmpty, "every 100 ms block yields a page")
            total += bytes.count
            decoded += try decoder.decode(bytes).first?.count ?? 0
            XCTAssertGreaterThanOrEqual(decoded, start + 1600 - 320 - 160, "at most one frame plus lookahead behind")
        }
        let last = try encoder.finish()
        total += last.count
        decoded += try decoder.decode(last).first?.count ?? 0
        XCTAssertEqual(decoded, x.count)
        let kbps = Double(total) * 8 / 10 / 1000
        let fileEncoder = try OggOpusStreamEncoder(sampleRate: 16000, channels: 1, bitrate: 16000)
        let fileBytes = try fileEncoder.encode([x], flush: false).count + (try fileEncoder.finish()).count
        let fileKbps = Double(fileBytes) * 8 / 10 / 1000
        print("live Opus stream at 16 kbps with 100 ms pages: \(kbps) kbps; as one file: \(fileKbps) kbps")
        // Unconstrained VBR spends what the tones need (same in both); a page per 100 ms adds at most ~35 bytes.
        XCTAssertLessThan(kbps - fileKbps, 3)
    }

    func testStereoAtFortyEightKilohertz() throws {
        let n = 48000
        let left = (0..<n).map { Float(0.3 * sin(2 * Double.pi * 300 * Double($0) / 48000)) }
        let right = (0..<n).map { Float(0.3 * sin(2 * Double.pi * 1200 * Double($0) / 48000)) }
        let encoder = try OggOpusStreamEncoder(sampleRate: 48000, channels: 2, bitrate: 96000, originalLength: n)
        let stream = try encoder.encode([left, right]) + (try encoder.finish())
        let decoder = try OggOpusStreamDecoder()
        let y = try decoder.decode(stream)
        XCTAssertEqual(y.count, 2)
        XCTAssertEqual(y.map(\.count), [n, n])
        // The channels stay apart: each correlates with its own input far better than with the other.
        func corr(_ a: [Float], _ b: [Float]) -> Double {
            var ab = 0.0, aa = 0.0, bb = 0.0
            for i in a.indices { ab += Double(a[i] * b[i]); aa += Double(a[i] * a[i]); bb += Double(b[i] * b[i]) }
            return ab / (aa * bb).squareRoot()
        }
        XCTAssertGreaterThan(corr(y[0], left), 0.9)
        XCTAssertGreaterThan(corr(y[1], right), 0.9)
        XCTAssertLessThan(abs(corr(y[0], right)), 0.2)
    }

    func testErrors() throws {
        for (rate, channels, bitrate) in [(44100, 1, 32000), (16000, 3, 32000), (16000, 1, 100)] {
            XCTAssertThrowsError(try OggOpusStreamEncoder(sampleRate: rate, channels: channels, bitrate: bitrate)) {
                guard case AudioError.invalidArgument = $0 else { return XCTFail("\($0)") }
            }
        }
        XCTAssertThrowsError(try OggOpusStreamDecoder(sampleRate: 44100))

        let encoder = try OggOpusStreamEncoder(sampleRate: 16000, channels: 1, bitrate: 32000)
        XCTAssertThrowsError(try encoder.encode([[0], [0]]))  // wrong channel count
        _ = try encoder.finish()
        XCTAssertThrowsError(try encoder.encode([[0]]))  // after the end

        // Not Ogg at all: refused at the first bytes.
        XCTAssertThrowsError(try OggOpusStreamDecoder().decode(Array("RIFF\u{0}\u{0}WAVEfmt ".utf8))) {
            guard case AudioError.unreadable(_, let reason) = $0 else { return XCTFail("\($0)") }
            XCTAssertTrue(reason.contains("not an Ogg stream"), reason)
        }
        // A page lost in transit: reported as a gap, not decoded around.
        let stream = try encodeInBlocks(tones(16000), sizes: [1600])
        let pages = pageOffsets(stream)
        XCTAssertGreaterThan(pages.count, 5)
        let damaged = Array(stream[..<pages[3]] + stream[pages[4]...])
        XCTAssertThrowsError(try OggOpusStreamDecoder().decode(damaged)) {
            guard case AudioError.unreadable(_, let reason) = $0 else { return XCTFail("\($0)") }
            XCTAssertTrue(reason.contains("gap"), reason)
        }
        // A cut stream: decodes what arrived and does not claim to have ended.
        let cut = try OggOpusStreamDecoder()
        let partial = try cut.decode(stream[..<pages[5]])
        XCTAssertFalse(cut.ended)
        XCTAssertGreaterThan(partial.first?.count ?? 0, 0)
        XCTAssertLessThan(partial.first?.count ?? 0, 16000)
    }
}
