import Foundation
import XCTest
import TussAudio
import TussModels
import TussPipeline
import TussTestSupport

/// `--residual` and `--sum-to-mix`: what the outputs miss of the input, written as a stem or shared out.
final class MixtureRemainderTests: XCTestCase {
    /// Largest |Σ outputs − mixture| over every channel and sample.
    func sumError(_ outputs: [[[Float]]], _ mixture: [[Float]]) -> Float {
        var worst: Float = 0
        for c in 0..<mixture.count {
            for i in 0..<mixture[c].count {
                let sum = outputs.reduce(Float(0)) { $0 + $1[c][i] }
                worst = max(worst, abs(sum - mixture[c][i]))
            }
        }
        return worst
    }

    func testInMemoryResidualAndSpreadSumToTheMixture() throws {
        let model = try ModelFile.open(try smallModelPath()).tussModel()
        let rate = model.config.sampleRate
        let x = testSignal(seconds: 0.9, rate: rate, channels: 2)
        let prompts = try Prompt.parseList("speech,sfx-mix,speech")
        func run(_ remainder: MixtureRemainder) throws -> [[[Float]]] {
            try SpectralSeparator(model: model, options: SeparationOptions(chunkSeconds: 0.5, overlapSeconds: 0.1, remainder: remainder))
                .separate(x, sampleRate: rate, prompts: prompts)
        }
        let plain = try run(.ignored), withResidual = try run(.residualStem), spread = try run(.spread)
        XCTAssertEqual(plain.count, 3)
        XCTAssertGreaterThan(sumError(plain, x), 1e-2, "the model's own outputs do not sum to the mixture, or this test proves nothing")
        XCTAssertEqual(withResidual.count, 4, "the residual follows the prompts' outputs")
        XCTAssertEqual(Array(withResidual[0..<3]), plain, "a residual stem leaves the model's outputs untouched")
        XCTAssertLessThan(sumError(withResidual, x), 1e-5)
        XCTAssertEqual(spread.count, 3)
        XCTAssertLessThan(sumError(spread, x), 1e-5)
        // Every output moved by the same share: the differences to the plain outputs are equal across prompts.
        for c in 0..<2 {
            for i in stride(from: 0, to: x[c].count, by: 997) {
                let d0 = spread[0][c][i] - plain[0][c][i]
                XCTAssertEqual(spread[1][c][i] - plain[1][c][i], d0, accuracy: 1e-6)
                XCTAssertEqual(spread[2][c][i] - plain[2][c][i], d0, accuracy: 1e-6)
                XCTAssertEqual(3 * d0, withResidual[3][c][i], accuracy: 1e-5)
            }
        }
    }

    func testFilesSumToTheInputAcrossResamplingAndChunks() throws {
        // 44.1 kHz stereo float input, chunks of 0.5 s: outputs reach the writer late and in uneven blocks, so the
        // second reader's alignment is what makes the sum exact.
        let model = try ModelFile.open(try smallModelPath()).tussModel()
        let dir = try temporaryDirectory(self, prefix: "tuss-codec-tests")
        let x = testSignal(seconds: 1.7, rate: 44100, channels: 2)
        let input = try writeAudio(x, rate: 44100, to: (dir as NSString).appendingPathComponent("in.wav"), float32: true)
        let prompts = try Prompt.parseList("vocals,other")
        func run(_ remainder: MixtureRemainder, _ name: String) throws -> (SeparationReport, [[[Float]]]) {
            let separator = try SpectralSeparator(model: model, options: SeparationOptions(
                chunkSeconds: 0.5, overlapSeconds: 0.1, float32: true, quiet: true, remainder: remainder))
            let report = try separator.separateFile(input: input, prompts: prompts,
                                                    outputDirectory: (dir as NSString).appendingPathComponent(name))
            return (report, try report.outputs.map { try AudioFileReader(path: $0).readAll() })
        }
        let (plainReport, plain) = try run(.ignored, "plain")
        let (residualReport, withResidual) = try run(.residualStem, "residual")
        let (_, spread) = try run(.spread, "spread")
        XCTAssertEqual(plainReport.outputs.map { ($0 as NSString).lastPathComponent }, ["vocals.wav", "other.wav"])
        XCTAssertEqual(residualReport.outputs.map { ($0 as NSString).lastPathComponent }, ["vocals.wav", "other.wav", "residual.wav"])
        XCTAssertEqual(residualReport.clippedSamples.count, 3)
        for outputs in [plain, withResidual, spread] {
            for o in outputs { XCTAssertEqual(o.map(\.count), [x[0].count, x[1].count], "output length equals input length") }
        }
        XCTAssertEqual(Array(withResidual[0..<2]), plain, "a residual stem leaves the model's outputs untouched")
        XCTAssertGreaterThan(sumError(plain, x), 1e-2)
        XCTAssertLessThan(sumError(withResidual, x), 1e-5)
        XCTAssertLessThan(sumError(spread, x), 1e-5)
    }

    func testCommandLineFlags() throws {
        let dir = try temporaryDirectory(self, prefix: "tuss-codec-tests")
        let input = try writeAudio(testSignal(seconds: 0.8, rate: 16000, channels: 1), rate: 16000,
                                   to: (dir as NSString).appendingPathComponent("mix.wav"))
        let model = try smallModelPath()
        let out = (dir as NSString).appendingPathComponent("stems")
        let r = try runTool(["separate", input, "--prompts", "speech", "--model", model, "-o", out, "--residual", "--plot", "--quiet"])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertEqual(r.out.split(separator: "\n").map(String.init),
                       ["speech.wav", "residual.wav", "spectrograms.png"].map { (out as NSString).appendingPathComponent($0) },
                       "the plot labels the residual too (one label per file)")
        let s = try runTool(["separate", input, "--prompts", "speech,sfx-mix", "--model", model, "-o", out + "-s", "--sum-to-mix", "--quiet"])
        XCTAssertEqual(s.status, 0, s.err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out + "-s/residual.wav"))
        // eval --sum-to-mix scores the shared-out outputs: the scores move.
        let manifest = try writeTinyManifest(in: dir, seconds: 0.6)
        let plain = try runTool(["eval", "--manifest", manifest, "--model", model, "--json", dir + "/a.json", "--quiet"])
        let spread = try runTool(["eval", "--manifest", manifest, "--model", model, "--json", dir + "/b.json", "--sum-to-mix", "--quiet"])
        XCTAssertEqual(plain.status, 0, plain.err)
        XCTAssertEqual(spread.status, 0, spread.err)
        let a = try JSONDecoder().decode([EvaluationScore].self, from: Data(contentsOf: URL(fileURLWithPath: dir + "/a.json")))
        let b = try JSONDecoder().decode([EvaluationScore].self, from: Data(contentsOf: URL(fileURLWithPath: dir + "/b.json")))
        XCTAssertEqual(a.count, b.count)
        XCTAssertNotEqual(a.map(\.si_sdr), b.map(\.si_sdr))
        let cases: [([String], String)] = [
            (["separate", input, "--prompts", "speech", "--model", model, "--residual", "--sum-to-mix"],
             "--residual and --sum-to-mix exclude each other: with --sum-to-mix the residual is silence"),
            (["separate", input, "--prompts", "speech", "--path", "codec", "--sum-to-mix"],
             "--sum-to-mix applies to the spectral path (audio input without --path codec)"),
            (["separate", "--codes", input, "--prompts", "speech", "--residual"],
             "--residual applies to the spectral path (audio input without --path codec)"),
            (["eval", "--manifest", manifest, "--path", "codec", "--sum-to-mix"],
             "--sum-to-mix applies to the spectral path (--path spectral or both)"),
        ]
        for (args, expected) in cases { try assertToolFails(args, expected) }
    }
}
