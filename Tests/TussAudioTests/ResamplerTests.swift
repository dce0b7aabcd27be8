import Foundation
import TussTestSupport
import XCTest

@testable import TussAudio

final class ResamplerTests: XCTestCase {
    static let ratePairs = [(44100, 16000), (16000, 48000), (48000, 44100), (8000, 22050), (48000, 16000)]

    func expectedLength(_ length: Int, _ from: Int, _ to: Int) -> Int {
        Int((Double(length) * Double(to) / Double(from)).rounded(.toNearestOrAwayFromZero))
    }

    func testExactOutputLengths() throws {
        for (from, to) in Self.ratePairs {
            for length in [0, 1, 2, 3, 100, 441, 12345, 44101, 96000] {
                let x = [noise(count: length, seed: 1), noise(count: length, seed: 2)]
                let y = try Resampler.resample(x, from: from, to: to)
                XCTAssertEqual(y.count, 2)
                XCTAssertEqual(y[0].count, expectedLength(length, from, to), "\(from)→\(to) L=\(length)")
                XCTAssertEqual(y[1].count, y[0].count)
            }
        }
    }

    /// Streaming in odd block sizes gives exactly (bit for bit) the one-shot result.
    func testStreamingEqualsOneShot() throws {
        for (from, to) in Self.ratePairs {
            let length = 30011
            let x = [noise(count: length, seed: 5), sine(frequency: 440, rate: from, count: length)]
            let whole = try Resampler.resample(x, from: from, to: to)
            for blocks in [[1, 2, 3], [7], [1031], [4097, 13], [100_000]] {
                let resampler = try Resampler(from: from, to: to, channels: 2)
                var out: [[Float]] = [[], []]
                var position = 0
                var b = 0
                while position < length {
                    let n = min(blocks[b % blocks.count], length - position)
                    b += 1
                    let block = x.map { Array($0[position..<(position + n)]) }
                    let y = try resampler.process(block)
                    XCTAssertEqual(y.count, 2)
                    for c in 0..<2 { out[c] += y[c] }
                    position += n
                }
                let tail = try resampler.flush()
                for c in 0..<2 { out[c] += tail[c] }
                XCTAssertEqual(out[0].count, whole[0].count, "\(from)→\(to) blocks \(blocks)")
                let difference = max(maxAbsDifference(out[0], whole[0]), maxAbsDifference(out[1], whole[1]))
                XCTAssertEqual(difference, 0, "\(from)→\(to) blocks \(blocks): streaming differs by \(difference)")
            }
        }
    }

    /// After flush the resampler takes a new stream and behaves as new.
    func testReuseAfterFlush() throws {
        let resampler = try Resampler(from: 44100, to: 16000, channels: 1)
        let x = [noise(count: 5000, seed: 9)]
        let first = try resampler.process(x)[0] + resampler.flush()[0]
        let second = try resampler.process(x)[0] + resampler.flush()[0]
        XCTAssertEqual(first, second)
        XCTAssertEqual(first.count, expectedLength(5000, 44100, 16000))
    }

    func testIdentityWhenRatesAreEqual() throws {
        let x = [noise(count: 1234, seed: 4), noise(count: 1234, seed: 8)]
        XCTAssertEqual(try Resampler.resample(x, from: 48000, to: 48000), x)
        let r = try Resampler(from: 16000, to: 16000, channels: 2)
        XCTAssertEqual(try r.process(x), x)
        XCTAssertEqual(try r.flush(), [[], []])
    }

    /// A 1 kHz sine keeps its amplitude (±0.1 dB), frequency (the fit residual is tiny) and timing (no delay).
    func testSineKeepsAmplitudeAndFrequency() throws {
        for (from, to) in Self.ratePairs {
            let x = sine(frequency: 1000, rate: from, count: from)  // 1 s, amplitude 0.5
            let y = try Resampler.resample([x], from: from, to: to)[0]
            let middle = y[(to / 4)..<(3 * to / 4)]
            let fit = fitSine(middle, frequency: 1000, rate: to)
            let gainDB = 20 * log10(fit.amplitude / 0.5)
            let residualDB = 20 * log10(fit.residualRMS / (0.5 / 2.0.squareRoot()))
            let delay = sineDelay(middle, frequency: 1000, rate: to)
            print("1 kHz sine \(from)→\(to): gain \(gainDB) dB, residual \(residualDB) dB, delay \(delay) samples")
            XCTAssertLessThan(abs(gainDB), 0.1)
            XCTAssertLessThan(abs(delay), 0.01, "the resampler must not shift the signal")
            XCTAssertLessThan(residualDB, -80, "energy away from 1 kHz: wrong frequency or distortion")
        }
    }

    /// Passband: sines up to 0.85 of the lower Nyquist pass within ±0.1 dB.
    func testPassbandRipple() throws {
        for (from, to) in [(48000, 16000), (16000, 48000), (44100, 16000)] {
            let nyquist = Double(min(from, to)) / 2
            var worst = 0.0
            for fraction in [0.01, 0.1, 0.3, 0.5, 0.7, 0.8, 0.85] {
                let frequency = fraction * nyquist
                let x = sine(frequency: frequency, rate: from, count: from / 2)
                let y = try Resampler.resample([x], from: from, to: to)[0]
                let fit = fitSine(y[(to / 8)..<(3 * to / 8)], frequency: frequency, rate: to)
                let gainDB = 20 * log10(fit.amplitude / 0.5)
                worst = max(worst, abs(gainDB))
                XCTAssertLessThan(abs(gainDB), 0.1, "\(from)→\(to) at \(frequency) Hz: \(gainDB) dB")
            }
            print("passband \(from)→\(to) up to 0.85·Nyquist: worst deviation \(worst) dB")
        }
    }

    /// Stopband: content above the new Nyquist is attenuated by ≥ 90 dB (48 kHz → 16 kHz).
    func testStopbandAttenuation() throws {
        let from = 48000
        let to = 16000
        // A 10 kHz tone (would alias to 6 kHz), with smooth fades so its spectrum stays in the stopband.
        let tone = faded(sine(frequency: 10000, rate: from, count: from), fade: 2400)
        let toneOut = try Resampler.resample([tone], from: from, to: to)[0]
        let toneDB = 20 * log10(max(rms(toneOut), 1e-30) / rms(tone))
        // Spectrum of the steady middle part: the strongest bin relative to the input tone's amplitude.
        let fft = try RealFFT(size: 8192)
        let segment = Array(toneOut[4000..<12192])
        let windowed = blackmanHarris(segment)
        let spectrum = fft.forward(windowed)
        var peak = 0.0
        var peakBin = 0
        for f in 0..<fft.bins {
            let magnitude = (Double(spectrum.re[f]) * Double(spectrum.re[f]) + Double(spectrum.im[f]) * Double(spectrum.im[f])).squareRoot()
            if magnitude > peak { (peak, peakBin) = (magnitude, f) }
        }
        // A sine of amplitude A through this window peaks at A·Σw/2.
        let windowSum = blackmanHarris([Float](repeating: 1, count: 8192)).reduce(0.0) { $0 + Double($1) }
        let peakDB = 20 * log10(max(peak, 1e-30) / (0.5 * windowSum / 2))
        let peakHz = Double(peakBin) * Double(to) / 8192

        // Band-limited noise between 9 and 23 kHz: many random sines, faded in and out.
        var generator = SeededGenerator(seed: 42)
        var band = [Float](repeating: 0, count: from)
        for _ in 0..<60 {
            let f = Double.random(in: 9000...23000, using: &generator)
            let phase = Double.random(in: 0...(2 * Double.pi), using: &generator)
            let component = sine(frequency: f, rate: from, count: from, amplitude: 0.02, phase: phase)
            for i in band.indices { band[i] += component[i] }
        }
        band = faded(band, fade: 2400)
        let bandOut = try Resampler.resample([band], from: from, to: to)[0]
        let bandDB = 20 * log10(max(rms(bandOut), 1e-30) / rms(band))

        print("stopband 48k→16k: 10 kHz tone total \(toneDB) dB, FFT peak \(peakDB) dB at \(peakHz) Hz; 9–23 kHz noise \(bandDB) dB")
        XCTAssertLessThan(toneDB, -90)
        XCTAssertLessThan(peakDB, -90)
        XCTAssertLessThan(bandDB, -90)
    }

    func testRejectsBadArguments() throws {
        XCTAssertThrowsError(try Resampler(from: 0, to: 16000, channels: 1))
        XCTAssertThrowsError(try Resampler(from: 16000, to: 16000, channels: 0))
        let r = try Resampler(from: 16000, to: 8000, channels: 2)
        XCTAssertThrowsError(try r.process([[0, 0]])) { error in
            guard case AudioError.invalidArgument = error else { return XCTFail("wrong error \(error)") }
        }
        XCTAssertThrowsError(try r.process([[0, 0], [0]]))
    }
}

/// Applies a 4-term Blackman–Harris window (sidelobes ≈ −92 dB).
func blackmanHarris(_ x: [Float]) -> [Float] {
    let n = Double(x.count)
    return x.indices.map { i in
        let t = 2 * Double.pi * Double(i) / n
        let w = 0.35875 - 0.48829 * cos(t) + 0.14128 * cos(2 * t) - 0.01168 * cos(3 * t)
        return Float(w) * x[i]
    }
}
