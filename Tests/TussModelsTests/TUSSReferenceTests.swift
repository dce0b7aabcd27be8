import Foundation
import XCTest
import TussModels
import TussTensor
import TussWeights
import TussTestSupport

/// The Swift TUSS forward against bundles produced by the official implementation (random weights).
final class TUSSReferenceTests: XCTestCase {
    func loadBundle(_ name: String) throws -> (TUSSModel, String) {
        let dir = try sharedReference(name)
        let yaml = try String(contentsOfFile: (dir as NSString).appendingPathComponent("hparams.yaml"), encoding: .utf8)
        let config = try TUSSConfig(ConfigValue.parseYAML(yaml))
        let weights = try TorchCheckpoint.stateDict((dir as NSString).appendingPathComponent("checkpoints/model.pth"))
        return (try TUSSModel(config: config, weights: weights), dir)
    }

    func check(bundle: String) throws {
        ComputeThreads.configure(nil)
        let (model, dir) = try loadBundle(bundle)
        let cases = try caseFiles(dir)
        XCTAssertFalse(cases.isEmpty)
        for path in cases {
            let c = try Safetensors.load(path)
            let mixture = try c.require("mixture").floats()
            let names = (c.metadata["prompts"] ?? "").split(separator: ",").map(String.init)
            let prompts = try names.map { try Prompt(parsing: $0) }
            let capture = c["stft_re"] != nil
            let result = try model.forward(mixture, prompts: prompts, capture: capture)
            let expected = try c.require("output")
            let outLength = expected.shape[1]
            let length = mixture.count
            for (n, out) in result.outputs.enumerated() {
                XCTAssertEqual(out.count, length, "output length must equal input length")
                let ref = try Array(expected.floats()[(n * outLength)..<(n * outLength + length)])
                let err = relativeL2(out, ref)
                if ProcessInfo.processInfo.environment["TUSS_PRINT_ERRORS"] != nil { print("\(bundle) \((path as NSString).lastPathComponent) output \(n): \(err)") }
                XCTAssertLessThan(err, referenceTolerance, "\(bundle)/\((path as NSString).lastPathComponent) output \(n) (\(names[n])): rel L2 \(err)")
            }
            if let inter = result.intermediates {
                for (name, mine) in [("stft_re", inter.stftRe), ("stft_im", inter.stftIm), ("bandsplit", inter.bandSplit),
                                     ("cross_out", inter.crossOut), ("tse_out", inter.tseOut),
                                     ("mask_re", inter.maskRe), ("mask_im", inter.maskIm)] {
                    let ref = try c.require(name).floats()
                    let err = relativeL2(mine, ref)
                    if ProcessInfo.processInfo.environment["TUSS_PRINT_ERRORS"] != nil { print("\(bundle) \(name): \(err)") }
                    // Per-band normalisation amplifies FFT rounding in near-empty bands, so intermediates after the band
                    // split inherit the difference between our FFT and PyTorch's (both float32): outputs meet 1e-4,
                    // intermediates 1e-3 here; from the reference STFT they meet 1e-5 (TUSSNumericsTests).
                    let tolerance = name.hasPrefix("stft") ? referenceTolerance : 1e-3
                    XCTAssertLessThan(err, tolerance, "\(bundle) intermediate \(name): rel L2 \(err)")
                }
            }
        }
    }

    func testTinyBundleMatchesOfficialForward() throws { try check(bundle: "tuss-tiny") }

    func testMediumBundleMatchesOfficialForward() throws { try check(bundle: "tuss-medium") }

    func testUnknownPromptIsRefusedWithTheValidList() throws {
        XCTAssertThrowsError(try Prompt(parsing: "guitar")) { error in
            XCTAssertEqual("\(error)", "unknown prompt 'guitar'; valid prompts: speech, sfx, sfx-mix, drums, bass, vocals, other, music-mix")
        }
        XCTAssertEqual(try Prompt.parseList("sfxbg,musicbg,other-inst").map(\.name), ["sfx-mix", "music-mix", "other"])
        XCTAssertThrowsError(try Prompt.parseList(Array(repeating: "speech", count: 9).joined(separator: ",")))
        XCTAssertEqual(Prompt.outputNames(for: try Prompt.parseList("speech,sfx,speech")), ["speech-1", "sfx", "speech-2"])
        XCTAssertEqual(Prompt.warnings(for: try Prompt.parseList("sfx,sfx-mix")).count, 1)
        XCTAssertEqual(Prompt.warnings(for: try Prompt.parseList("music-mix,drums")).count, 1)
        XCTAssertTrue(Prompt.warnings(for: try Prompt.parseList("speech,sfx-mix,music-mix")).isEmpty)
    }

    func testOfficialBandRuleGives61Bands() throws {
        let (model, _) = try loadBundle("tuss-tiny")
        let edges = model.config.bandEdges
        XCTAssertEqual(edges.count, 62)
        XCTAssertEqual(Array(edges.suffix(6)), [712, 760, 826, 892, 958, 1025])
        XCTAssertEqual(Array(edges[20...24]), [40, 42, 44, 48, 52])
    }
}
