import Foundation
import XCTest
@testable import TussModels
import TussTensor
import TussWeights
import TussTestSupport

/// Separates the model's own numerics from FFT rounding: fed the reference bundle's STFT, every intermediate must
/// match far more tightly than the end-to-end tolerance.
final class TUSSNumericsTests: XCTestCase {
    func testIntermediatesFromReferenceSpectrum() throws {
        for bundle in ["tuss-tiny", "tuss-medium"] {
            let dir = try sharedReference(bundle)
            let yaml = try String(contentsOfFile: (dir as NSString).appendingPathComponent("hparams.yaml"), encoding: .utf8)
            let model = try TUSSModel(config: TUSSConfig(ConfigValue.parseYAML(yaml)),
                                      weights: TorchCheckpoint.stateDict((dir as NSString).appendingPathComponent("checkpoints/model.pth")))
            let c = try Safetensors.load((dir as NSString).appendingPathComponent("cases/speech_sfxbg_musicbg.safetensors"))
            let re = try c.require("stft_re").floats(), im = try c.require("stft_im").floats()
            let frames = try c.require("stft_re").shape[0]
            let prompts = try (c.metadata["prompts"] ?? "").split(separator: ",").map { try Prompt(parsing: String($0)) }
            let result = try model.forward(try c.require("mixture").floats(), prompts: prompts, capture: true,
                                           spectrumOverride: (re, im, frames))
            guard let inter = result.intermediates else { return XCTFail("no intermediates") }
            for (name, mine) in [("bandsplit", inter.bandSplit), ("cross_out", inter.crossOut), ("tse_out", inter.tseOut),
                                 ("mask_re", inter.maskRe), ("mask_im", inter.maskIm)] {
                let err = relativeL2(mine, try c.require(name).floats())
                if ProcessInfo.processInfo.environment["TUSS_PRINT_ERRORS"] != nil { print("\(bundle) from reference STFT \(name): \(err)") }
                XCTAssertLessThan(err, 1e-5, "\(bundle) \(name) from the reference STFT: rel L2 \(err)")
            }
        }
    }
}
