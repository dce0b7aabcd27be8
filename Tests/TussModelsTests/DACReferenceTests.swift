import Foundation
import XCTest
import TussModels
import TussTensor
import TussWeights
import TussTestSupport

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

/// The official sizes build and produce the documented shapes (random weights; the files are not reachable here).
final class DACOfficialSizeTests: XCTestCase {
    func testOfficial16kShapes() throws {
        let config = DACConfig(encoderDim: 64, encoderRates: [2, 4, 5, 8], latentDim: nil, decoderDim: 1536,
                               decoderRates: [8, 5, 4, 2], codebooks: 12, codebookSize: 1024, codebookDim: 8, sampleRate: 16000)
        let codec = try DACCodec(randomWeightsFor: config)
        XCTAssertEqual(config.latentDim, 1024)
        XCTAssertEqual(config.hopLength, 320)
        XCTAssertEqual(config.bitrate(codebooks: 12), 6000, accuracy: 1e-9)
        let x = (0..<4000).map { Float(sin(Double($0) * 0.05)) * 0.3 }
        let codes = codec.encode(x)
        XCTAssertEqual(codes.count, 12)
        XCTAssertEqual(codes[0].count, 13)            // ceil(4000 / 320)
        XCTAssertEqual(codec.decode(codes).count, 320 * 13 - 8)   // the stride-5 layer yields 5n − 1
    }
}
