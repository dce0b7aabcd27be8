import Foundation
import XCTest

@testable import TussAudio

final class MelDistanceTests: XCTestCase {
    /// Two test signals of 0.5 s at 16 kHz: tones plus a broadband chirp, so that no mel band sits at the float32
    /// FFT's rounding floor (there, two correct float32 FFTs may differ by several dB).
    private func signals() -> (x: [Float], y: [Float]) {
        let n = 8000
        var x = [Float](repeating: 0, count: n), y = x
        for i in 0..<n {
            let t = Double(i) / 16000
            let broadband = 0.01 * sin(0.5 * Double(i * i) / 7)
            x[i] = Float(0.5 * sin(2 * .pi * 440 * t) + 0.1 * sin(2 * .pi * 3000 * t * t) + broadband)
            y[i] = Float(0.45 * sin(2 * .pi * 440 * t + 0.3) + 0.05 * sin(2 * .pi * 1234 * t) + 0.8 * broadband)
        }
        return (x, y)
    }

    /// The value of the training recipe's loss on the same signals, so evaluation and training logs agree:
    /// ```python
    /// i = np.arange(8000); t = i / 16000; n = 0.01*np.sin(0.5*i*i/7.0)
    /// x = torch.tensor(0.5*np.sin(2*np.pi*440*t) + 0.1*np.sin(2*np.pi*3000*t*t) + n).float()
    /// y = torch.tensor(0.45*np.sin(2*np.pi*440*t+0.3) + 0.05*np.sin(2*np.pi*1234*t) + 0.8*n).float()
    /// SpectralLosses(16000)(y[None], x[None])["mel"]   # Training/codec/train_codec.py -> 1.819397211074829
    /// ```
    func testMatchesTrainingDefinition() throws {
        let (x, y) = signals()
        let d = try XCTUnwrap(MelDistance.distance(estimate: y, reference: x, sampleRate: 16000))
        XCTAssertEqual(d, 1.819397211074829, accuracy: 2e-3)
    }

    func testIdenticalSignalsHaveZeroDistanceAndOrderMatters() throws {
        let (x, y) = signals()
        XCTAssertEqual(try XCTUnwrap(MelDistance.distance(estimate: x, reference: x, sampleRate: 16000)), 0)
        let ab = try XCTUnwrap(MelDistance.distance(estimate: y, reference: x, sampleRate: 16000))
        let ba = try XCTUnwrap(MelDistance.distance(estimate: x, reference: y, sampleRate: 16000))
        XCTAssertEqual(ab, ba, accuracy: 1e-9)  // L1 of log spectra is symmetric
        XCTAssertGreaterThan(ab, 0.5)
    }

    func testRejectsShortOrMismatchedSignals() {
        XCTAssertNil(MelDistance.distance(estimate: [Float](repeating: 0, count: 900), reference: [Float](repeating: 0, count: 900), sampleRate: 16000))
        XCTAssertNil(MelDistance.distance(estimate: [0, 1, 2], reference: [0, 1], sampleRate: 16000))
    }
}
