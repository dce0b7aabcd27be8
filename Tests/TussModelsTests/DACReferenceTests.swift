import Foundation
import XCTest
import TussModels
import TussTensor
import TussWeights

/// The Swift DAC against bundles produced by the official implementation (random weights, official file format).
final class DACReferenceTests: XCTestCase {
    func check(bundle: String) throws {
        ComputeThreads.configure(nil)
        let dir = try sharedReference(bundle)
        let weightsPath = (dir as NSString).appendingPathComponent("weights.pth")
        let root = try TorchCheckpoint.load(weightsPath)
        guard let meta = root["metadata"], let kwargs = ConfigValue(pickle: meta)?["kwargs"] else {
            return XCTFail("no metadata.kwargs in \(weightsPath)")
        }
        let codec = try DACCodec(config: DACConfig(kwargs: kwargs), weights: TorchCheckpoint.stateDict(weightsPath, at: ["state_dict"]))
        for path in try caseFiles(dir) {
            let c = try Safetensors.load(path)
            let name = "\(bundle)/\((path as NSString).lastPathComponent)"
            let audio = try c.require("audio").floats()
            let z = codec.encodeLatent(audio)
            XCTAssertLessThan(relativeL2(z.data, try c.require("z").floats()), referenceTolerance, "\(name) z")
            let q = codec.quantizer.quantize(z, codebooks: codec.config.codebooks)
            XCTAssertLessThan(relativeL2(q.latents.data, try c.require("latents").floats()), referenceTolerance, "\(name) latents")
            XCTAssertLessThan(relativeL2(q.zq.data, try c.require("z_q").floats()), referenceTolerance, "\(name) z_q")
            let refCodes = try c.require("codes").int64s()
            let frames = z.shape[1]
            var mismatches = 0
            for (i, row) in q.codes.enumerated() {
                for t in 0..<frames where Int64(row[t]) != refCodes[i * frames + t] { mismatches += 1 }
            }
            XCTAssertEqual(mismatches, 0, "\(name): codes differ at \(mismatches) positions (the bundle lists no near-ties)")
            XCTAssertLessThan(relativeL2(codec.decodeLatent(q.zq), try c.require("decoded").floats()), referenceTolerance, "\(name) decoded")
            XCTAssertLessThan(relativeL2(codec.decodeLatent(z), try c.require("decoded_continuous").floats()), referenceTolerance, "\(name) decoded_continuous")
            let nq = Int(c.metadata["nq"] ?? "") ?? codec.config.codebooks
            let fromCodes = codec.decode(Array(q.codes.prefix(nq)))
            XCTAssertLessThan(relativeL2(fromCodes, try c.require("decoded_from_codes_nq").floats()), referenceTolerance, "\(name) decoded_from_codes_nq")
        }
    }

    func testDAC16kBundle() throws { try check(bundle: "dac-tiny-16k") }

    func testDAC44kBundle() throws { try check(bundle: "dac-tiny-44k") }
}
