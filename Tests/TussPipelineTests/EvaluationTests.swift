import Foundation
import XCTest
import TussPipeline
import TussTestSupport

final class EvaluationTests: XCTestCase {
    let a: [Float] = (0..<8000).map { Float(sin(Double($0) * 0.031)) }
    let b: [Float] = (0..<8000).map { Float(($0 / 50) % 2 == 0 ? 0.4 : -0.4) }

    func testSISDRKnownValues() throws {
        // Exact estimate: +∞, reported as the cap.
        XCTAssertEqual(SeparationMetrics.siSDR(estimate: a, reference: a), SeparationMetrics.cap)
        // Scale does not matter.
        XCTAssertEqual(try XCTUnwrap(SeparationMetrics.siSDR(estimate: a.map { $0 * 3 }, reference: a)), SeparationMetrics.cap, accuracy: 1e-9)
        // Reference plus an orthogonal interferer of equal power: 0 dB.
        let ab = zip(a, b).map { $0 + $1 }
        let expected = 10 * log10(a.map { Double($0 * $0) }.reduce(0, +) / b.map { Double($0 * $0) }.reduce(0, +))
        XCTAssertEqual(try XCTUnwrap(SeparationMetrics.siSDR(estimate: ab, reference: a)), expected, accuracy: 0.05)
        // Silent estimate: very low; silent reference: undefined.
        XCTAssertLessThan(try XCTUnwrap(SeparationMetrics.siSDR(estimate: [Float](repeating: 0, count: a.count), reference: a)), -50)
        XCTAssertNil(SeparationMetrics.siSDR(estimate: a, reference: [Float](repeating: 0, count: a.count)))
        // SDR is not scale-invariant: half the reference is 6.02 dB.
        XCTAssertEqual(try XCTUnwrap(SeparationMetrics.sdr(estimate: a.map { $0 * 0.5 }, reference: a)), 6.0206, accuracy: 1e-3)
    }

    func testSwappedRepeatedPromptsScoreByTheBestPermutation() {
        let item = EvaluationItem(task: "ss", item: "1", sample_rate: 16000, mixture: "", prompts: ["speech", "speech", "sfx-mix"], references: ["", "", ""])
        let noise = b.map { $0 * 0.1 }
        let mixture = [zip(zip(a, b), noise).map { $0.0 + $0.1 + $1 }]
        // Outputs 0 and 1 are swapped relative to the references.
        let scores = Evaluation.score(item: item, mixture: mixture, estimates: [[b], [a], [noise]], references: [[a], [b], [noise]],
                                      sampleRate: 16000)
        XCTAssertEqual(scores.map(\.output), [1, 0, 2])
        for s in scores {
            XCTAssertEqual(s.si_sdr, SeparationMetrics.cap)
            // A perfect estimate is at mel distance 0; the mixture is not, so the gain is the mixture's distance.
            XCTAssertEqual(try XCTUnwrap(s.mel_distance), 0, accuracy: 1e-9)
            XCTAssertGreaterThan(try XCTUnwrap(s.mel_distance_mixture), 0.1)
            XCTAssertEqual(try XCTUnwrap(s.mel_improvement), try XCTUnwrap(s.mel_distance_mixture), accuracy: 1e-9)
        }
        XCTAssertGreaterThan(scores[0].si_sdr_improvement ?? 0, 50)
        // Mel distance ignores phase: the reference shifted by a quarter period is far closer to it than the mixture
        // on mel distance, and orthogonal to it on SI-SDR (worse than the mixture).
        let shifted: [Float] = (0..<8000).map { Float(cos(Double($0) * 0.031)) }
        let phase = Evaluation.score(item: item, mixture: mixture, estimates: [[shifted], [b], [noise]],
                                     references: [[a], [b], [noise]], sampleRate: 16000)
        XCTAssertLessThan(try XCTUnwrap(phase[0].mel_distance), 0.2 * (try XCTUnwrap(phase[0].mel_distance_mixture)))
        XCTAssertLessThan(try XCTUnwrap(phase[0].si_sdr), -20)
        XCTAssertLessThan(try XCTUnwrap(phase[0].si_sdr_improvement), 0)
        // BSS Eval allows a 512-tap filter on the target, which can shift a tone by a quarter period: the shifted
        // reference is nearly all target there, while the mixture holds the others. (Not all: the filtered sine
        // starts from zero at the first samples where the cosine does not, which leaves a little artifact.)
        XCTAssertGreaterThan(try XCTUnwrap(phase[0].sir), 20)
        XCTAssertGreaterThan(try XCTUnwrap(phase[0].sar), 20)
        XCTAssertGreaterThan(try XCTUnwrap(phase[0].bss_sdr), 20)
        XCTAssertLessThan(try XCTUnwrap(phase[0].sir_mixture), 10)
        XCTAssertEqual(try XCTUnwrap(phase[0].sir_improvement),
                       try XCTUnwrap(phase[0].sir) - (try XCTUnwrap(phase[0].sir_mixture)), accuracy: 1e-9)
        // The mixture itself as an estimate: nothing it holds is an artifact, so its SDR is its SIR.
        let unchanged = Evaluation.score(item: item, mixture: mixture, estimates: [mixture, mixture, mixture],
                                         references: [[a], [b], [noise]], sampleRate: 16000)
        for s in unchanged {
            XCTAssertGreaterThan(try XCTUnwrap(s.sar), 60)
            XCTAssertEqual(try XCTUnwrap(s.bss_sdr), try XCTUnwrap(s.sir), accuracy: 1e-3)
        }
    }

    func testEvalCommandOnATinyManifest() throws {
        let dir = try temporaryDirectory(self, prefix: "tuss-codec-tests")
        let model = try smallModelPath()
        let manifest = try writeTinyManifest(in: dir, seconds: 0.6)
        let out = (dir as NSString).appendingPathComponent("scores.json")
        let r = try runTool(["eval", "--manifest", manifest, "--model", model, "--json", out, "--quiet"])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertTrue(r.out.contains("se     speech"), r.out)
        XCTAssertTrue(r.out.contains("se     all"), r.out)
        let scores = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out))) as? [[String: Any]]
        XCTAssertEqual(scores?.count, 4)
        XCTAssertNotNil(scores?.first?["si_sdr_improvement"] as? Double)
        XCTAssertNotNil(scores?.first?["mel_improvement"] as? Double)
        XCTAssertNotNil(scores?.first?["sir_improvement"] as? Double)
        XCTAssertNotNil(scores?.first?["sar"] as? Double)
        XCTAssertTrue(r.out.contains("mel gain"), r.out)
        XCTAssertTrue(r.out.contains("SIRi"), r.out)
        // A manifest that is not one gives one clear line.
        try Data("{}".utf8).write(to: URL(fileURLWithPath: manifest))
        let bad = try runTool(["eval", "--manifest", manifest, "--model", model])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertEqual(bad.err.split(separator: "\n").count, 1, bad.err)
    }
}

/// Writes a manifest of two `se` items (speech + sfx-mix): one mono at 16 kHz and one stereo at 44.1 kHz, so eval
/// must take any rate and channel count. Returns the manifest's path.
func writeTinyManifest(in dir: String, seconds: Double) throws -> String {
    var items: [[String: Any]] = []
    for (k, (rate, channels)) in [(16000, 1), (44100, 2)].enumerated() {
        let sub = (dir as NSString).appendingPathComponent("se/\(k)")
        try FileManager.default.createDirectory(atPath: sub, withIntermediateDirectories: true)
        let s = testSignal(seconds: seconds, rate: rate, channels: channels)
        let n = s.map { $0.reversed().map { $0 * 0.3 } }
        _ = try writeAudio(s, rate: rate, to: sub + "/speech.wav")
        _ = try writeAudio(n, rate: rate, to: sub + "/sfx-mix.wav")
        _ = try writeAudio(zip(s, n).map { zip($0, $1).map { $0 + $1 } }, rate: rate, to: sub + "/mixture.wav")
        items.append(["task": "se", "item": "\(k)", "sample_rate": rate, "mixture": "se/\(k)/mixture.wav",
                      "prompts": ["speech", "sfx-mix"], "references": ["se/\(k)/speech.wav", "se/\(k)/sfx-mix.wav"]])
    }
    let manifest = (dir as NSString).appendingPathComponent("manifest.json")
    try JSONSerialization.data(withJSONObject: items).write(to: URL(fileURLWithPath: manifest))
    return manifest
}
