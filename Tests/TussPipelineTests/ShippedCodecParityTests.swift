import Foundation
import XCTest
import TussModels
import TussWeights
import TussTensor
@testable import TussPipeline
import TussTestSupport

/// The hex SHA-256 of a file: how fixtures name the model file they were made from.
func sha256Hex(ofFile path: String) throws -> String {
    SHA256.hash(try Data(contentsOf: URL(fileURLWithPath: path))).map { String(format: "%02x", $0) }.joined()
}

/// The shipped codec in Swift against our PyTorch recipe: a committed fixture (Training/codec/make_fixture.py) holds
/// an input and the recipe's latent, codes and decoded audio, made from the exact codec file (by sha256).
final class ShippedCodecParityTests: XCTestCase {
    func testShippedCodecMatchesTheRecipe() throws {
        let root = packageRoot()
        let codecPath = (root as NSString).appendingPathComponent(DefaultModels.codec)
        let casePath = (root as NSString).appendingPathComponent("Tests/Fixtures/dac-small-16k/case.safetensors")
        guard FileManager.default.fileExists(atPath: codecPath), FileManager.default.fileExists(atPath: casePath) else {
            throw XCTSkip("\(DefaultModels.codec) or its fixture is missing")
        }
        let fixture = try Safetensors.load(casePath)
        let digest = try sha256Hex(ofFile: codecPath)
        XCTAssertEqual(fixture.metadata["model_sha256"], digest,
                       "the fixture was made from another codec file: python3 Training/codec/make_fixture.py --model \(DefaultModels.codec) --out Tests/Fixtures/dac-small-16k")
        let codec = try CodecHandle.open(codecPath).codec
        let audio = try fixture.require("audio").floats()
        let z = codec.encodeLatent(audio)
        XCTAssertLessThan(relativeL2(z.data, try fixture.require("z").floats()), 1e-4, "z")
        let q = codec.quantizer.quantize(z, codebooks: codec.config.codebooks)
        let expected = try fixture.require("codes").int64s()
        let margin = try fixture.require("margin").floats()
        let frames = z.shape[1]
        // A lookup may only differ where the recipe's best and second-best entries are within float32 rounding;
        // every later codebook of that frame then sees another residual and may differ too.
        for t in 0..<frames {
            var tieSeen = false
            for i in 0..<q.codes.count {
                if margin[i * frames + t] < 1e-5 { tieSeen = true }
                if Int64(q.codes[i][t]) != expected[i * frames + t] {
                    XCTAssertTrue(tieSeen, "codebook \(i) frame \(t): \(q.codes[i][t]) vs \(expected[i * frames + t]) without a near-tie")
                }
            }
        }
        XCTAssertLessThan(relativeL2(q.zq.data, try fixture.require("z_q").floats()), 1e-4, "z_q")
        let codes = (0..<q.codes.count).map { i in (0..<frames).map { Int32(expected[i * frames + $0]) } }
        XCTAssertLessThan(relativeL2(codec.decode(codes), try fixture.require("decoded").floats()), 1e-4, "decoded")
    }
}

/// Why the codec path turns masked latents into codes with `LatentCodeMatcher`: the codes it picks must rebuild a
/// latent close to the one asked for, which the encoder's cosine lookup does not do for latents rebuilt from codes.
final class LatentCodeMatcherTests: XCTestCase {
    func testCodesRebuildTheLatentTheyWereMatchedTo() throws {
        let codecPath = (packageRoot() as NSString).appendingPathComponent(DefaultModels.codec)
        guard FileManager.default.fileExists(atPath: codecPath) else { throw XCTSkip("\(DefaultModels.codec) is missing") }
        let codec = try CodecHandle.open(codecPath).codec
        let rate = Float(codec.config.sampleRate)
        var noise = XorshiftGenerator(seed: 7)
        let audio = (0..<Int(rate)).map { i -> Float in
            let t = Float(i) / rate
            return 0.3 * sin(2 * .pi * 220 * t) * (1 + sin(2 * .pi * 2 * t)) + 0.05 * noise.uniform()
        }
        let books = codec.config.codebooks
        let codes = codec.quantizer.quantize(codec.encodeLatent(audio), codebooks: books).codes
        let frames = codes[0].count
        let latent = codec.quantizer.dequantize(codes, frames: frames)
        let matcher = LatentCodeMatcher(codec.quantizer)
        let matched = relativeL2(codec.quantizer.dequantize(matcher.match(latent, codebooks: books), frames: frames).data, latent.data)
        let cosine = relativeL2(codec.quantizer.dequantize(codec.quantizer.quantize(latent, codebooks: books).codes, frames: frames).data, latent.data)
        if ProcessInfo.processInfo.environment["TUSS_PRINT_ERRORS"] != nil {
            print("latent rebuilt from requantised codes, relative L2 error: matcher \(matched), encoder lookup \(cosine)")
        }
        XCTAssertLessThan(matched, 0.5 * cosine, "the matcher's codes should rebuild the latent far better")
        // Fewer codebooks than the codec has, and an empty input.
        XCTAssertEqual(matcher.match(latent, codebooks: 3).count, 3)
        XCTAssertEqual(matcher.match(Tensor(zeros: [codec.config.latentDim, 0]), codebooks: books).count, books)
    }
}
