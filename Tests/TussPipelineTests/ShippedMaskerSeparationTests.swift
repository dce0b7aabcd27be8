import Foundation
import XCTest
import TussAudio
import TussModels
@testable import TussPipeline
import TussTestSupport

/// The shipped codec-path masker, through the commands a user runs: `encode` → `separate --codes` → `decode` on
/// held-out mixtures of the committed eval set. The decoded outputs must be closer (mel distance, the phase-blind
/// figure `tuss-codec eval` reports) to their references than the mixture is, on average: a masker that passes the
/// mixture through fails, and so would the untrained masker (its mel gain in the recipe's validation was −0.13).
final class ShippedMaskerSeparationTests: XCTestCase {
    func testShippedMaskerSeparatesEvalMixturesThroughCodes() throws {
        let root = packageRoot()
        func file(_ name: String) -> String { (root as NSString).appendingPathComponent(name) }
        guard FileManager.default.fileExists(atPath: file(DefaultModels.masker)) else {
            throw XCTSkip("no shipped masker (\(DefaultModels.masker))")
        }
        let manifest = file("Training/eval/set/manifest.json")
        guard FileManager.default.fileExists(atPath: manifest) else { throw XCTSkip("eval set missing: \(manifest)") }
        let items = try Evaluation.loadManifest(manifest)
        // Two items of each task: enhancement, two talkers (repeated prompt), dialogue/music/effects, music stems.
        var picked: [EvaluationItem] = []
        for task in ["se", "ss", "cass", "mss"] { picked += items.filter { $0.mixture.hasPrefix(task + "/") }.prefix(2) }
        XCTAssertEqual(picked.count, 8, "the eval set lacks a task")
        let dir = try temporaryDirectory(self, prefix: "shipped-masker")
        var gains: [Double] = []
        for (n, item) in picked.enumerated() {
            let mixture = file("Training/eval/set/" + item.mixture)
            let codes = (dir as NSString).appendingPathComponent("\(n).bin")
            let out = (dir as NSString).appendingPathComponent("out\(n)")
            for args in [["encode", mixture, "-o", codes, "--quiet"],
                         ["separate", "--codes", codes, "--prompts", item.prompts.joined(separator: ","), "-o", out, "--quiet"]] {
                let r = try runTool(args)
                XCTAssertEqual(r.status, 0, "\(args.joined(separator: " ")): \(r.err)")
            }
            // One code stream per prompt, named as the spectral path names its stems (repeats numbered).
            let names = Prompt.outputNames(for: try item.prompts.map { try Prompt(parsing: $0) })
            var estimates: [[[Float]]] = []
            for name in names {
                let bin = (out as NSString).appendingPathComponent(name + ".bin")
                let wav = (dir as NSString).appendingPathComponent("\(n)-\(name).wav")
                let r = try runTool(["decode", bin, "-o", wav, "--quiet"])
                XCTAssertEqual(r.status, 0, "decode \(bin): \(r.err)")
                estimates.append(try AudioFileReader(path: wav).readAll())
            }
            let mix = try AudioFileReader(path: mixture)
            let mixAudio = try mix.readAll()
            XCTAssertEqual(estimates.map { $0[0].count }, Array(repeating: mixAudio[0].count, count: names.count), "output length")
            let references = try item.references.map { try AudioFileReader(path: file("Training/eval/set/" + $0)).readAll() }
            let scores = Evaluation.score(item: item, mixture: mixAudio, estimates: estimates, references: references,
                                          sampleRate: mix.info.sampleRate)
            gains += scores.compactMap(\.mel_improvement)
        }
        let mean = gains.reduce(0, +) / Double(max(1, gains.count))
        if ProcessInfo.processInfo.environment["TUSS_PRINT_ERRORS"] != nil { print("shipped masker mel gains \(gains), mean \(mean)") }
        XCTAssertEqual(gains.count, picked.reduce(0) { $0 + $1.prompts.count })
        XCTAssertGreaterThan(mean, 0.2, "mean mel gain \(mean): the shipped masker does not separate")
    }
}
