import Foundation
import XCTest
import TussAudio
import TussModels
import TussTestSupport
@testable import TussPipeline

final class ShiftedPassesTests: XCTestCase {
    /// `shifts: N` is the mean of N forwards on the input delayed by k·hop/N samples, each cropped back.
    func testShiftsAverageTheDelayedForwards() throws {
        let model = try ModelFile.open(try smallModelPath()).tussModel()
        let rate = model.config.sampleRate
        let x = testSignal(seconds: 0.7, rate: rate, channels: 1)
        let prompts = try Prompt.parseList("speech,sfx-mix")
        let hop = model.config.hopLength
        var expected = [[Double]](repeating: [Double](repeating: 0, count: x[0].count), count: prompts.count)
        for k in 0..<4 {
            let delay = k * hop / 4
            let y = try model.separate([Float](repeating: 0, count: delay) + x[0], prompts: prompts)
            for p in 0..<prompts.count { for t in 0..<x[0].count { expected[p][t] += Double(y[p][delay + t]) / 4 } }
        }
        let piped = try SpectralSeparator(model: model, options: SeparationOptions(shifts: 4))
            .separate(x, sampleRate: rate, prompts: prompts)
        let plain = try model.separate(x[0], prompts: prompts)
        for p in 0..<prompts.count {
            XCTAssertEqual(piped[p][0].count, x[0].count)
            XCTAssertLessThan(relativeL2(piped[p][0], expected[p]), 1e-6, "prompt \(p)")
            XCTAssertGreaterThan(relativeL2(plain[p], expected[p]), 1e-4, "prompt \(p): the passes must differ")
        }
        let one = try SpectralSeparator(model: model, options: SeparationOptions(shifts: 1)).separate(x, sampleRate: rate, prompts: prompts)
        for p in 0..<prompts.count { XCTAssertEqual(one[p][0], plain[p], "shifts 1 is the plain forward") }
    }

    /// Shifted passes of a file keep its length, rate and channels through chunking and resampling.
    func testShiftedFileSeparationKeepsTheLength() throws {
        let model = try ModelFile.open(try smallModelPath()).tussModel()
        let dir = try temporaryDirectory(self, prefix: "tuss-codec-tests")
        let input = try writeAudio(testSignal(seconds: 1.3, rate: 22050, channels: 2), rate: 22050,
                                   to: (dir as NSString).appendingPathComponent("in.wav"))
        let separator = try SpectralSeparator(model: model, options: SeparationOptions(chunkSeconds: 0.5, overlapSeconds: 0.1,
                                                                                         quiet: true, shifts: 3))
        let report = try separator.separateFile(input: input, prompts: try Prompt.parseList("speech,speech"),
                                                outputDirectory: (dir as NSString).appendingPathComponent("out"))
        let frames = try AudioFileReader(path: input).info.frames
        for path in report.outputs {
            let info = try AudioFileReader(path: path).info
            XCTAssertEqual(info.frames, frames)
            XCTAssertEqual(info.channels, 2)
            XCTAssertEqual(info.sampleRate, 22050)
        }
    }

    /// A pass whose repeated-prompt outputs come swapped is put back in the first pass's order before averaging.
    func testBestOrderFollowsTheReference() {
        let n = 800
        let a = (0..<n).map { Float(sin(Double($0) * 0.05)) }
        let b = (0..<n).map { Float(($0 / 37) % 2 == 0 ? 0.3 : -0.3) }
        let c = (0..<n).map { Float(cos(Double($0) * 0.011)) }
        XCTAssertEqual(bestOrder(group: [0, 2], y: [b, c, a], reference: [a, c, b], n: n), [2, 0])
        XCTAssertEqual(bestOrder(group: [0, 2], y: [a, c, b], reference: [a, c, b], n: n), [0, 2])
        XCTAssertEqual(repeatedPromptGroups(["speech", "sfx", "speech", "sfx", "drums"]), [[0, 2], [1, 3]])
    }

    func testOutOfRangeShiftsAreRefused() throws {
        let model = try ModelFile.open(try smallModelPath()).tussModel()
        for bad in [0, -1, SeparationOptions.maximumShifts + 1] {
            XCTAssertThrowsError(try SpectralSeparator(model: model, options: SeparationOptions(shifts: bad))) { error in
                XCTAssertEqual("\(error)", "--shifts must be between 1 and \(SeparationOptions.maximumShifts)")
            }
        }
        let dir = try temporaryDirectory(self, prefix: "tuss-codec-tests")
        let input = try writeAudio(testSignal(seconds: 0.5, rate: 16000, channels: 1), rate: 16000,
                                   to: (dir as NSString).appendingPathComponent("mix.wav"))
        let manifest = try writeTinyManifest(in: dir, seconds: 0.6)
        let modelPath = try smallModelPath()
        let cases: [([String], String)] = [
            (["separate", input, "--prompts", "speech", "--path", "codec", "--shifts", "2"],
             "--shifts applies to the spectral path (audio input without --path codec)"),
            (["separate", "--codes", input, "--prompts", "speech", "--shifts", "2"],
             "--shifts applies to the spectral path (audio input without --path codec)"),
            (["separate", input, "--prompts", "speech", "--model", modelPath, "--shifts", "0"],
             "--shifts must be between 1 and 16"),
            (["eval", "--manifest", manifest, "--path", "codec", "--shifts", "2"],
             "--shifts applies to the spectral path (--path spectral or both)"),
        ]
        for (args, expected) in cases { try assertToolFails(args, expected) }
    }
}

private func relativeL2(_ a: [Float], _ b: [Double]) -> Double {
    var num = 0.0, den = 0.0
    for (x, y) in zip(a, b) { num += (Double(x) - y) * (Double(x) - y); den += y * y }
    return (num / max(den, 1e-30)).squareRoot()
}
