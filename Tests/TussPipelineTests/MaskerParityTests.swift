import Foundation
import XCTest
import TussModels
import TussTensor
import TussWeights
@testable import TussPipeline
import TussTestSupport

/// Swift vs PyTorch on the committed fixtures (`Training/masker/make_fixture.py`): input codes, and the masked latents
/// and codes PyTorch computed for two prompt lists (`speech,speech,sfx-mix` and all 8), for a random masker on a random
/// tiny codec (`masker-random`) and for the shipped masker on the shipped codec (`codec-masker`).
final class MaskerParityTests: XCTestCase {
    override func setUp() { ComputeThreads.configure(1) }

    struct Fixture {
        let masker: LatentMasker
        let codec: DACCodec
        let store: WeightStore
        func ints(_ name: String) throws -> [Int32] {
            try store.require(name).floats().map { Int32($0) }
        }
    }

    func loadFixture(case casePath: String, masker maskerPath: String, codec codecPath: String) throws -> Fixture {
        let model = try Safetensors.load(maskerPath)
        let config = try LatentMaskerConfig(json: ConfigValue.parseJSON(model.metadata["tuss-codec.config"] ?? ""))
        let codecStore = try Safetensors.load(codecPath)
        let codecConfig = try DACConfig(kwargs: ConfigValue.parseJSON(codecStore.metadata["tuss-codec.config"] ?? ""))
        return Fixture(masker: try LatentMasker(config: config, weights: model),
                       codec: try DACCodec(config: codecConfig, weights: codecStore),
                       store: try Safetensors.load(casePath))
    }

    func testMaskedLatentsAndCodesMatchPyTorch() throws {
        let dir = (packageRoot() as NSString).appendingPathComponent("Tests/Fixtures/masker-random")
        func file(_ name: String) -> String { (dir as NSString).appendingPathComponent(name) }
        try assertParity(try loadFixture(case: file("case.safetensors"), masker: file("model.safetensors"), codec: file("codec.safetensors")),
                         maxNearTies: 2)
    }

    func testAdditiveHeadMatchesPyTorch() throws {
        let dir = (packageRoot() as NSString).appendingPathComponent("Tests/Fixtures/masker-random-additive")
        func file(_ name: String) -> String { (dir as NSString).appendingPathComponent(name) }
        let fixture = try loadFixture(case: file("case.safetensors"), masker: file("model.safetensors"), codec: file("codec.safetensors"))
        XCTAssertTrue(fixture.masker.config.additive)
        XCTAssertEqual(fixture.masker.config.json["additive"]?.boolValue, true)
        try assertParity(fixture, maxNearTies: 2)
        // `info` says which output form a masker file has.
        let info = try runTool(["info", file("model.safetensors")])
        XCTAssertEqual(info.status, 0, info.err)
        XCTAssertTrue(info.out.contains("output: latent ⊙ mask + additive term\n"), info.out)
        let plain = try runTool(["info", (packageRoot() as NSString).appendingPathComponent("Tests/Fixtures/masker-random/model.safetensors")])
        XCTAssertTrue(plain.out.contains("output: latent ⊙ mask\n"), plain.out)
        // Without its add_head the file is refused, naming the tensor.
        let store = try Safetensors.load(file("model.safetensors"))
        // A config key this engine does not read: `info` says why the file is not usable (LatentMaskerTests: loading it
        // is refused).
        var metadata = store.metadata
        metadata["tuss-codec.config"] = metadata["tuss-codec.config"].map { "{\"mask_activation\": \"sigmoid\", " + $0.dropFirst() }
        let newer = NSTemporaryDirectory() + "masker-newer-\(UUID().uuidString).safetensors"
        defer { try? FileManager.default.removeItem(atPath: newer) }
        try Safetensors.write(store.namedTensors, metadata: metadata, to: newer)
        let refused = try runTool(["info", newer])
        XCTAssertEqual(refused.status, 0, refused.err)
        XCTAssertTrue(refused.out.contains("config: not usable: model configuration is not usable: masker config: unknown key 'mask_activation'"),
                      refused.out)
        // Tensors the config does not read are refused, naming one: the additive file read as mask-only, and stray
        // names beside a complete file (a suffix, an unknown layer part, a layer past the config's count).
        var maskOnly = fixture.masker.config
        maskOnly.additive = false
        XCTAssertThrowsError(try LatentMasker(config: maskOnly, weights: store)) {
            XCTAssertTrue("\($0)".hasPrefix("model weights do not match the configuration: tensor 'add_head."), "\($0)")
            XCTAssertTrue("\($0)".hasSuffix("is not part of a masker with this config (additive false, lookahead 0, "
                                            + "2 joint + 2 FiLM layers): the file and its config disagree"), "\($0)")
        }
        for name in ["input_proj.scale", "mask_head.weight.extra", "input_ahead.weight", "input_ahead.bias", "centre",
                     "joint.0.attn.gate.weight", "joint.2.attn.qkv.weight", "film.2.weight", "film.0.attn.qkv.weight"] {
            let stray = try WeightStore(store.namedTensors + [(name: name, tensor: WeightTensor(floats: [0], shape: [1]))],
                                        metadata: store.metadata)
            XCTAssertThrowsError(try LatentMasker(config: fixture.masker.config, weights: stray)) {
                XCTAssertTrue("\($0)".hasPrefix("model weights do not match the configuration: tensor '\(name)' is not part"),
                              "\(name): \($0)")
            }
        }
        let without = try WeightStore(store.namedTensors.filter { $0.name != "add_head.weight" }, metadata: store.metadata)
        XCTAssertThrowsError(try LatentMasker(config: fixture.masker.config, weights: without)) {
            XCTAssertTrue("\($0)".contains("add_head.weight"), "\($0)")
        }
    }

    /// A masker that looks 3 frames ahead (`input_ahead`, with the additive head): offline, and streamed with the
    /// output 3 frames behind the input and `finish` returning the last 3.
    func testLookaheadMatchesPyTorch() throws {
        let dir = (packageRoot() as NSString).appendingPathComponent("Tests/Fixtures/masker-random-lookahead")
        func file(_ name: String) -> String { (dir as NSString).appendingPathComponent(name) }
        let fixture = try loadFixture(case: file("case.safetensors"), masker: file("model.safetensors"), codec: file("codec.safetensors"))
        XCTAssertEqual(fixture.masker.config.lookahead, 3)
        XCTAssertEqual(fixture.masker.config.json["lookahead"]?.intValue, 3)
        try assertParity(fixture, maxNearTies: 2)
        let info = try runTool(["info", file("model.safetensors")])
        XCTAssertEqual(info.status, 0, info.err)
        XCTAssertTrue(info.out.contains("lookahead 3 frames"), info.out)
        // Without its input_ahead the file is refused, naming the tensor.
        let store = try Safetensors.load(file("model.safetensors"))
        let without = try WeightStore(store.namedTensors.filter { $0.name != "input_ahead.weight" }, metadata: store.metadata)
        XCTAssertThrowsError(try LatentMasker(config: fixture.masker.config, weights: without)) {
            XCTAssertTrue("\($0)".contains("input_ahead.weight"), "\($0)")
        }
        // A negative lookahead in the config is refused with the key named.
        var json = fixture.masker.config.json
        if case .object(var object) = json { object["lookahead"] = .int(-1); json = .object(object) }
        XCTAssertThrowsError(try LatentMaskerConfig(json: json)) { XCTAssertTrue("\($0)".contains("'lookahead'"), "\($0)") }
    }

    /// The shipped masker on the shipped codec; the fixture names both files by sha256, so a retrained model without
    /// a regenerated fixture fails here instead of passing against stale numbers.
    func testShippedMaskerMatchesTheRecipe() throws {
        let root = packageRoot()
        func file(_ name: String) -> String { (root as NSString).appendingPathComponent(name) }
        let maskerPath = file(DefaultModels.masker), codecPath = file(DefaultModels.codec)
        let casePath = file("Tests/Fixtures/codec-masker/case.safetensors")
        guard FileManager.default.fileExists(atPath: maskerPath), FileManager.default.fileExists(atPath: casePath) else {
            throw XCTSkip("\(DefaultModels.masker) or its fixture Tests/Fixtures/codec-masker is missing")
        }
        let fixture = try loadFixture(case: casePath, masker: maskerPath, codec: codecPath)
        let regenerate = "python3 Training/masker/make_fixture.py --model \(DefaultModels.masker) --codec \(DefaultModels.codec) --out Tests/Fixtures/codec-masker"
        XCTAssertEqual(fixture.store.metadata["model_sha256"], try sha256Hex(ofFile: maskerPath), "the fixture was made from another masker file: \(regenerate)")
        XCTAssertEqual(fixture.store.metadata["codec_sha256"], try sha256Hex(ofFile: codecPath), "the fixture was made from another codec file: \(regenerate)")
        // 12 codebooks of 1 024 entries: near-ties are more frequent than in the tiny codec's 64-entry books.
        try assertParity(fixture, maxNearTies: 6)
    }

    func assertParity(_ f: Fixture, maxNearTies: Int) throws {
        let books = Int(f.store.metadata["codebooks"] ?? "") ?? 0
        let frames = Int(f.store.metadata["frames"] ?? "") ?? 0
        let inputCodes = try f.ints("codes")
        let codes = (0..<books).map { k in Array(inputCodes[(k * frames)..<((k + 1) * frames)]) }
        let latent = f.codec.quantizer.dequantize(codes, frames: frames)
        let matcher = LatentCodeMatcher(f.codec.quantizer)
        XCTAssertLessThan(relativeL2(latent.data, try f.store.require("latent").floats()), 1e-5, "dequantized input")
        for key in (f.store.metadata["cases"] ?? "").split(separator: ",").map(String.init) {
            let prompts = try (f.store.metadata["prompts_\(key)"] ?? "").split(separator: ",").map { try Prompt(parsing: String($0)) }
            let expected = try f.store.require("masked_\(key)").floats()
            let expectedCodes = try f.ints("codes_\(key)")
            let margins = try f.store.require("margins_\(key)").floats()
            let per = f.masker.config.latentDim * frames
            // Offline, and streamed in uneven pieces.
            let offline = f.masker.separate(latent, prompts: prompts)
            var stream = f.masker.makeStream(prompts: prompts)
            var streamed = [[Float]](repeating: [Float](repeating: 0, count: per), count: prompts.count)
            var start = 0, filled = 0
            // A lookahead masker returns each frame `lookahead` frames late; `finish` returns the rest.
            func place(_ outputs: [Tensor]) {
                let n = outputs.first?.shape[1] ?? 0
                for (p, out) in outputs.enumerated() {
                    for ch in 0..<f.masker.config.latentDim { for t in 0..<n { streamed[p][ch * frames + filled + t] = out.data[ch * n + t] } }
                }
                filled += n
            }
            for size in [1, 2, 9, 30, 23] {
                var piece = Tensor(zeros: [f.masker.config.latentDim, size])
                for ch in 0..<f.masker.config.latentDim { for t in 0..<size { piece.data[ch * size + t] = latent.data[ch * frames + start + t] } }
                start += size
                place(stream.push(piece))
                XCTAssertEqual(filled, max(0, start - f.masker.config.lookahead), "frames returned after \(start) pushed")
            }
            place(stream.finish())
            XCTAssertEqual(start, frames)
            XCTAssertEqual(filled, frames)
            XCTAssertEqual(stream.finish().first?.shape, [f.masker.config.latentDim, 0], "a second finish returns nothing")
            var nearTies = 0
            for (p, out) in offline.enumerated() {
                let reference = Array(expected[(p * per)..<((p + 1) * per)])
                let err = relativeL2(out.data, reference), errStream = relativeL2(streamed[p], reference)
                if ProcessInfo.processInfo.environment["TUSS_PRINT_ERRORS"] != nil {
                    print("masker parity case \(key) prompt \(p) \(prompts[p]): offline \(err), streamed \(errStream)")
                }
                XCTAssertLessThan(err, 1e-4, "case \(key) prompt \(p): masked latent rel L2 \(err)")
                XCTAssertLessThan(errStream, 1e-4, "case \(key) prompt \(p) streamed: rel L2 \(errStream)")
                // Codes (`LatentCodeMatcher`, as `CodesSeparator` makes them): identical, except a frame whose first
                // differing lookup was a near-tie in PyTorch.
                let mine = matcher.match(out, codebooks: books)
                for t in 0..<frames {
                    guard let k = (0..<books).first(where: { mine[$0][t] != expectedCodes[(p * books + $0) * frames + t] }) else { continue }
                    let margin = margins[(p * books + k) * frames + t]
                    XCTAssertLessThan(margin, 1e-4, "case \(key) prompt \(p) frame \(t) codebook \(k): code differs with margin \(margin)")
                    nearTies += 1
                }
            }
            if ProcessInfo.processInfo.environment["TUSS_PRINT_ERRORS"] != nil { print("masker parity case \(key): \(nearTies) frames with near-tie code differences") }
            XCTAssertLessThanOrEqual(nearTies, maxNearTies, "case \(key): \(nearTies) frames differ at near-ties")
        }
    }
}
