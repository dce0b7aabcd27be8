import Foundation
import XCTest
@testable import TussModels
import TussWeights
import TussTestSupport

/// Our PyTorch recipe (Training/tuss) and the Swift engine must agree on our own models: committed fixtures hold an
/// input and the recipe's outputs and intermediates (made by Training/tuss/make_fixture.py).
final class ShippedModelParityTests: XCTestCase {
    func check(model modelPath: String, fixture: String) throws {
        let root = packageRoot()
        let modelFile = (root as NSString).appendingPathComponent(modelPath)
        let casePath = (root as NSString).appendingPathComponent(fixture)
        guard FileManager.default.fileExists(atPath: modelFile), FileManager.default.fileExists(atPath: casePath) else {
            throw XCTSkip("\(modelPath) or \(fixture) is missing")
        }
        let store = try Safetensors.load(modelFile)
        let config = try TUSSConfig(ConfigValue.parseJSON(try XCTUnwrap(store.metadata["tuss-codec.config"])))
        let model = try TUSSModel(config: config, weights: store)
        let c = try Safetensors.load(casePath)
        let mixture = try c.require("mixture").floats()
        let prompts = try (c.metadata["prompts"] ?? "").split(separator: ",").map { try Prompt(parsing: String($0)) }
        let result = try model.forward(mixture, prompts: prompts, capture: true)
        let expected = try c.require("output").floats()
        let n = mixture.count
        for (i, out) in result.outputs.enumerated() {
            let err = relativeL2(out, Array(expected[(i * n)..<((i + 1) * n)]))
            XCTAssertLessThan(err, referenceTolerance, "\(modelPath) output \(i): rel L2 \(err) (if the model was retrained, regenerate the fixture: python3 Training/tuss/make_fixture.py)")
        }
        // Intermediates, from the recipe's own STFT so FFT rounding does not mask a real difference.
        let frames = try c.require("stft_re").shape[0]
        let fromRef = try model.forward(mixture, prompts: prompts, capture: true,
                                        spectrumOverride: (try c.require("stft_re").floats(), try c.require("stft_im").floats(), frames))
        let inter = try XCTUnwrap(fromRef.intermediates)
        for (name, mine) in [("bandsplit", inter.bandSplit), ("cross_out", inter.crossOut), ("tse_out", inter.tseOut),
                             ("mask_re", inter.maskRe), ("mask_im", inter.maskIm)] {
            let err = relativeL2(mine, try c.require(name).floats())
            XCTAssertLessThan(err, 1e-5, "\(modelPath) \(name): rel L2 \(err)")
        }
        XCTAssertLessThan(relativeL2(result.intermediates?.stftRe ?? [], try c.require("stft_re").floats()), 1e-5)
    }

    func testRandomInitSmallModelMatchesTheRecipe() throws {
        try check(model: "Tests/Fixtures/tuss-small-random/model.safetensors", fixture: "Tests/Fixtures/tuss-small-random/case.safetensors")
    }

    func testShippedSmallModelMatchesTheRecipe() throws {
        try check(model: "Models/tuss-small/model.safetensors", fixture: "Tests/Fixtures/tuss-small/case.safetensors")
    }
}
