import Foundation
import TussTestSupport
import XCTest

@testable import TussAudio

final class STFTTests: XCTestCase {
    func testTussConfigShape() throws {
        let stft = try STFT(.tuss48k)
        XCTAssertEqual(stft.bins, 1025)
        XCTAssertEqual(stft.frameCount(forLength: 48000), 95)
        XCTAssertEqual(stft.frameCount(forLength: 288_000), 564)
        XCTAssertEqual(stft.frameCount(forLength: 9000), 19)
        XCTAssertEqual(stft.frameCount(forLength: 512), 2)
        XCTAssertEqual(stft.frameCount(forLength: 0), 1)
        // sqrt(periodic Hann): w[0] = 0, w[n/2] = 1, w[n/4]² = 0.5.
        XCTAssertEqual(stft.window[0], 0)
        XCTAssertEqual(stft.window[1024], 1, accuracy: 1e-7)
        XCTAssertEqual(stft.window[512] * stft.window[512], 0.5, accuracy: 1e-6)
        let out = stft.forward([Float](repeating: 0.1, count: 9000))
        XCTAssertEqual(out.frames, 19)
        XCTAssertEqual(out.re.count, 19 * 1025)
        XCTAssertEqual(out.im.count, 19 * 1025)
    }

    func testRejectsBadConfigs() {
        for config in [
            STFTConfig(fftSize: 511, hopLength: 128, windowLength: 511),
            STFTConfig(fftSize: 512, hopLength: 0, windowLength: 512),
            STFTConfig(fftSize: 512, hopLength: 1024, windowLength: 512),
            STFTConfig(fftSize: 512, hopLength: 128, windowLength: 600),
            STFTConfig(fftSize: 0, hopLength: 1, windowLength: 1),
        ] {
            XCTAssertThrowsError(try STFT(config), "\(config)") { error in
                guard case AudioError.invalidArgument = error else { return XCTFail("wrong error \(error)") }
            }
        }
    }

    /// iSTFT(STFT(x)) reproduces x (peak 0.5) to ≤ 1e-6 for the TUSS and small-model configurations.
    func testRoundTrip() throws {
        for (n, hop) in [(2048, 512), (512, 128), (512, 256)] {
            let stft = try STFT(STFTConfig(fftSize: n, hopLength: hop, windowLength: n))
            for length in [9000, 12345, hop * 7, 1] {
                var x = noise(count: length, amplitude: 1, seed: UInt64(length + n))
                let peak = x.map(abs).max() ?? 1
                x = x.map { $0 * 0.5 / peak }
                let spectrum = stft.forward(x)
                XCTAssertEqual(spectrum.frames, (length + hop - 1) / hop + 1)
                let y = stft.inverse(re: spectrum.re, im: spectrum.im, frames: spectrum.frames, length: length)
                XCTAssertEqual(y.count, length)
                let error = maxAbsDifference(y, x)
                print("STFT round trip \(n)/\(hop) L=\(length): max abs error \(error)")
                XCTAssertLessThanOrEqual(error, 1e-6, "\(n)/\(hop) L=\(length)")
            }
        }
    }

    /// `forward` equals a direct Double-precision DFT of the TUSS-padded, windowed frames.
    func testForwardMatchesNaiveDFT() throws {
        let cases = [
            (STFTConfig(fftSize: 64, hopLength: 16, windowLength: 64), 301),
            (STFTConfig(fftSize: 512, hopLength: 128, windowLength: 512), 1000),
            (STFTConfig(fftSize: 128, hopLength: 32, windowLength: 100), 333),
            (STFTConfig.tuss48k, 2100),
        ]
        for (config, length) in cases {
            let stft = try STFT(config)
            let x = noise(count: length, amplitude: 0.5, seed: 7)
            let got = stft.forward(x)
            let n = config.fftSize
            let hop = config.hopLength
            let bins = n / 2 + 1
            let frames = (length + hop - 1) / hop + 1
            XCTAssertEqual(got.frames, frames)
            // Independent window: sqrt(periodic Hann of windowLength), centred in n.
            let left = (n - config.windowLength) / 2
            var w = [Double](repeating: 0, count: n)
            for i in 0..<config.windowLength {
                w[left + i] = sin(Double.pi * Double(i) / Double(config.windowLength))
            }
            // Padded signal: n/2 zeros, x, n/2 + ((−L) mod hop) zeros.
            let extra = (hop - length % hop) % hop
            let padded = [Double](repeating: 0, count: n / 2) + x.map(Double.init)
                + [Double](repeating: 0, count: n / 2 + extra)
            XCTAssertEqual((padded.count - n) / hop + 1, frames)
            let cosTable = (0..<n).map { cos(-2 * Double.pi * Double($0) / Double(n)) }
            let sinTable = (0..<n).map { sin(-2 * Double.pi * Double($0) / Double(n)) }
            var expectedRe = [Float]()
            var expectedIm = [Float]()
            for t in 0..<frames {
                for f in 0..<bins {
                    var re = 0.0
                    var im = 0.0
                    for k in 0..<n {
                        let v = padded[t * hop + k] * w[k]
                        re += v * cosTable[f * k % n]
                        im += v * sinTable[f * k % n]
                    }
                    expectedRe.append(Float(re))
                    expectedIm.append(Float(im))
                }
            }
            let errRe = relativeL2(got.re, expectedRe)
            let errIm = relativeL2(got.im, expectedIm)
            print("STFT vs naive DFT \(n)/\(hop)/\(config.windowLength): rel L2 re \(errRe), im \(errIm)")
            XCTAssertLessThan(errRe, 1e-5)
            XCTAssertLessThan(errIm, 1e-5)
        }
    }

    /// Matches the official TUSS STFT (reference bundle) of the variance-normalised mixture.
    func testMatchesTussReference() throws {
        let path = try sharedReference("tuss-tiny/cases/speech_sfxbg_musicbg.safetensors")
        let file = try SafetensorsFile(url: URL(fileURLWithPath: path))
        let mixture = try XCTUnwrap(file.tensors["mixture"]).values
        let refRe = try XCTUnwrap(file.tensors["stft_re"])
        let refIm = try XCTUnwrap(file.tensors["stft_im"])
        XCTAssertEqual(mixture.count, 9000)
        XCTAssertEqual(refRe.shape, [19, 1025])

        let mean = mixture.reduce(0.0) { $0 + Double($1) } / Double(mixture.count)
        let variance = mixture.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) }
            / Double(mixture.count - 1)
        let scale = Float(variance.squareRoot() + 1e-8)
        let normalised = mixture.map { $0 / scale }

        let stft = try STFT(.tuss48k)
        let got = stft.forward(normalised)
        XCTAssertEqual(got.frames, 19)
        let errRe = relativeL2(got.re, refRe.values)
        let errIm = relativeL2(got.im, refIm.values)
        print("STFT vs TUSS reference: rel L2 re \(errRe), im \(errIm)")
        XCTAssertLessThan(errRe, 1e-5)
        XCTAssertLessThan(errIm, 1e-5)

        // The inverse of the reference spectrum gives back the normalised mixture (torch.istft semantics).
        let back = stft.inverse(re: refRe.values, im: refIm.values, frames: 19, length: 512 * 18)
        XCTAssertEqual(back.count, 9216)
        let errBack = maxAbsDifference(Array(back[0..<9000]), normalised)
        let peak = normalised.map(abs).max() ?? 1
        print("iSTFT of TUSS reference spectrum: max abs error \(errBack) (peak \(peak))")
        XCTAssertLessThan(errBack / peak, 1e-5)
        XCTAssertLessThan(rms(Array(back[9000...])), 1e-5 * Double(peak))
    }

    func testInverseLengthHandling() throws {
        let stft = try STFT(STFTConfig(fftSize: 512, hopLength: 128, windowLength: 512))
        let x = noise(count: 1000, seed: 3)
        let s = stft.forward(x)
        XCTAssertEqual(s.frames, 9)
        let short = stft.inverse(re: s.re, im: s.im, frames: s.frames, length: 10)
        XCTAssertEqual(short, stft.inverse(re: s.re, im: s.im, frames: s.frames, length: 1000).prefix(10).map { $0 })
        let long = stft.inverse(re: s.re, im: s.im, frames: s.frames, length: 2000)
        XCTAssertEqual(long.count, 2000)
        XCTAssertEqual(long[1024..<2000].allSatisfy { $0 == 0 }, true)  // past hop·(T−1) = 1024
        XCTAssertEqual(stft.inverse(re: [], im: [], frames: 0, length: 5), [0, 0, 0, 0, 0])
    }

    /// Many threads creating transforms (plan creation) and running them at once give identical results.
    func testConcurrentUse() throws {
        let x = noise(count: 5000, seed: 11)
        let reference = try STFT(STFTConfig(fftSize: 256, hopLength: 64, windowLength: 256)).forward(x)
        let results = ResultBox(count: 16)
        DispatchQueue.concurrentPerform(iterations: 16) { i in
            let sizes = [256, 384, 640, 768]
            guard let other = try? STFT(STFTConfig(fftSize: sizes[i % 4], hopLength: 64, windowLength: sizes[i % 4]))
            else { return }
            _ = other.forward(x)
            guard let stft = try? STFT(STFTConfig(fftSize: 256, hopLength: 64, windowLength: 256)) else { return }
            let out = stft.forward(x)
            results.set(i, out.re == reference.re && out.im == reference.im)
        }
        XCTAssertEqual(results.values, [Bool](repeating: true, count: 16))
    }
}

/// Thread-safe collection of per-iteration results.
final class ResultBox: @unchecked Sendable {
    private let lock = NSLock()
    private var storage: [Bool]
    init(count: Int) { storage = [Bool](repeating: false, count: count) }
    func set(_ i: Int, _ value: Bool) {
        lock.lock()
        storage[i] = value
        lock.unlock()
    }
    var values: [Bool] {
        lock.lock()
        defer { lock.unlock() }
        return storage
    }
}
