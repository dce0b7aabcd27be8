import Foundation
import TussTestSupport
import TussWeights
import XCTest

/// Checks against the shared reference bundles (`../shared/reference`), skipped when that folder is absent.
///
/// Expected numbers were produced once, independently of this code, with PyTorch 2.13.0:
/// ```python
/// import torch, struct
/// def bits(x): return "0x%08X" % struct.unpack("<I", struct.pack("<f", x))[0]
/// sd = torch.load(path, map_location="cpu", weights_only=True)        # ["state_dict"] for the DAC files
/// keys = list(sd.keys()); print(len(keys), sum(v.numel() for v in sd.values()))
/// for k in [keys[0], keys[1], keys[len(keys) // 2], keys[-1]]:
///     f = sd[k].reshape(-1).float()
///     print(k, tuple(sd[k].shape), [bits(v) for v in f[:3].tolist()], [bits(v) for v in f[-2:].tolist()], f.double().sum().item())
/// print(sum(v.double().sum().item() for v in sd.values()), sum(v.double().abs().sum().item() for v in sd.values()))
/// ```
final class ReferenceBundleTests: XCTestCase {
    struct Sample {
        let name: String
        let shape: [Int]
        let first: [UInt32]
        let last: [UInt32]
        let sum: Double
    }

    struct Expected {
        let count: Int
        let parameters: Int
        let samples: [Sample]
        let total: Double
        let absoluteTotal: Double
    }

    /// Checks counts, sampled values (bit-exact) and whole-file sums.
    func check(_ store: WeightStore, _ expected: Expected, file: StaticString = #filePath, line: UInt = #line) throws {
        XCTAssertEqual(store.count, expected.count, file: file, line: line)
        var parameters = 0
        var total = 0.0
        var absoluteTotal = 0.0
        for name in store.names {
            let tensor = try store.require(name)
            XCTAssertEqual(tensor.dtype, .f32, name, file: file, line: line)
            parameters += tensor.count
            for value in try tensor.floats() {
                total += Double(value)
                absoluteTotal += Double(value.magnitude)
            }
        }
        XCTAssertEqual(parameters, expected.parameters, file: file, line: line)
        XCTAssertEqual(total, expected.total, accuracy: 1e-9 * expected.absoluteTotal, file: file, line: line)
        XCTAssertEqual(absoluteTotal, expected.absoluteTotal, accuracy: 1e-9 * expected.absoluteTotal, file: file, line: line)
        for sample in expected.samples {
            let tensor = try store.require(sample.name)
            XCTAssertEqual(tensor.shape, sample.shape, sample.name, file: file, line: line)
            let values = try tensor.floats()
            XCTAssertEqual(bits(Array(values.prefix(sample.first.count))), sample.first, sample.name, file: file, line: line)
            XCTAssertEqual(bits(Array(values.suffix(sample.last.count))), sample.last, sample.name, file: file, line: line)
            let sum = values.reduce(0.0) { $0 + Double($1) }
            XCTAssertEqual(sum, sample.sum, accuracy: 1e-12 + 1e-9 * abs(sample.sum), sample.name, file: file, line: line)
        }
    }

    /// Names from a docs key list (`name (shape) [dtype]` per line), with their shapes.
    func docKeys(_ file: String) throws -> [(name: String, shape: [Int])] {
        let root = try sharedReference()
        let path = URL(fileURLWithPath: root).deletingLastPathComponent().appendingPathComponent("docs/keys/\(file)").path
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw XCTSkip("\(path) not found")
        }
        return text.split(separator: "\n").map { line in
            let name = String(line.prefix { $0 != " " })
            let inside = line.drop { $0 != "(" }.dropFirst().prefix { $0 != ")" }
            return (name: name, shape: inside.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) })
        }
    }

    /// The block index in `…<module>.<n>.…`, if the name has one.
    func index(after module: String, in name: String) -> Int? {
        guard let range = name.range(of: module + ".") else { return nil }
        return Int(name[range.upperBound...].prefix { $0 != "." })
    }

    /// Checks every `…rope.freqs` tensor equals 10000^(-2p/dh), p = 0..<dh/2, with dh twice its length.
    func checkRoPE(_ store: WeightStore, expectedCount: Int, file: StaticString = #filePath, line: UInt = #line) throws {
        let names = store.names.filter { $0.hasSuffix("attn.rope.freqs") }
        XCTAssertEqual(names.count, expectedCount, file: file, line: line)
        for name in names {
            let values = try store.require(name).floats()
            let headDim = 2 * values.count
            for (p, value) in values.enumerated() {
                let expected = pow(10000.0, -2.0 * Double(p) / Double(headDim))
                XCTAssertEqual(Double(value), expected, accuracy: 1e-6 * expected, "\(name)[\(p)]", file: file, line: line)
            }
        }
    }

    // MARK: TUSS

    func testTussTinyCheckpoint() throws {
        let root = try sharedReference()
        let store = try TorchCheckpoint.stateDict(root + "/tuss-tiny/checkpoints/model.pth")
        try check(store, Expected(
            count: 797, parameters: 668_356,
            samples: [
                Sample(name: "model.separator.sos_token", shape: [16, 1, 1], first: [0x3F97_1F4B, 0x3E9A_3E2E, 0xBF7E_0984],
                       last: [0x400D_8D8C, 0xBF2E_A590], sum: 2.5001602470874786),
                Sample(name: "model.separator.cross_prompt_module.0.freq_path.ffn_norm.0.gamma", shape: [16],
                       first: [0x3F94_5F7A, 0x3F98_9D94, 0x3F9F_8664], last: [0x3FB9_571C, 0x3F96_A232], sum: 16.757734656333923),
                Sample(name: "model.separator.band_split_module.bandwise_decoding_module.12.0.bias", shape: [16],
                       first: [0xBD5C_DEEA, 0xBDF8_D127, 0xBDDB_976B], last: [0x3CF9_B572, 0x3E52_9972], sum: -0.1870627528987825),
                Sample(name: "model.separator.prompts.musicbg", shape: [16, 1, 1], first: [0xBFC4_74BB, 0xBF8A_5929, 0x3F4B_FCE5],
                       last: [0x3F26_5808, 0x3FAF_872E], sum: 2.9754207730293274),
            ],
            total: 3409.643566997228, absoluteTotal: 50090.31664235775))
        XCTAssertEqual(store.names.first, "model.separator.sos_token")
        XCTAssertEqual(store.names.last, "model.separator.prompts.musicbg")
        XCTAssertTrue(store.names.allSatisfy { $0.hasPrefix("model.") })

        // The official medium key list with only block 0 of each block stack is exactly the tiny bundle's list.
        let official = try docKeys("tuss_medium_keys.txt")
        let blockZero = official.map(\.name).filter {
            (index(after: "cross_prompt_module", in: $0) ?? 0) == 0 && (index(after: "cond_tse_module", in: $0) ?? 0) == 0
        }
        XCTAssertEqual(store.names, blockZero)
        // Shapes that follow from the tiny config (emb_dim 16, 61 bands, head dims 16 and 12).
        XCTAssertEqual(try store.require("model.separator.cross_prompt_module.0.freq_path.attn.rope.freqs").shape, [8])
        XCTAssertEqual(try store.require("model.separator.cond_tse_module.0.frame_path.attn.rope.freqs").shape, [6])
        for prompt in ["speech", "sfx", "sfxbg", "drums", "bass", "vocals", "other", "musicbg"] {
            XCTAssertEqual(try store.require("model.separator.prompts.\(prompt)").shape, [16, 1, 1])
        }
        XCTAssertEqual(store.names.filter { $0.hasPrefix("model.separator.band_split_module.band_split_module.") && $0.hasSuffix(".0.weight") }.count, 61)
        try checkRoPE(store, expectedCount: 4)

        let stripped = store.renamed(strippingPrefix: "model.")
        XCTAssertEqual(stripped.names.first, "separator.sos_token")
        XCTAssertEqual(stripped.count, 797)
        XCTAssertEqual(stripped["separator.sos_token"], store["model.separator.sos_token"])
    }

    func testTussMediumCheckpoint() throws {
        let root = try sharedReference()
        let store = try TorchCheckpoint.stateDict(root + "/tuss-medium/checkpoints/model.pth")
        try check(store, Expected(
            count: 909, parameters: 11_132_472,
            samples: [
                Sample(name: "model.separator.sos_token", shape: [64, 1, 1], first: [0xBD95_FFCD, 0xBF08_845D, 0xBF3B_0AE0],
                       last: [0xC005_B1D3, 0xBFA7_469A], sum: 3.9075235771015286),
                Sample(name: "model.separator.cross_prompt_module.0.freq_path.ffn_norm.0.gamma", shape: [64],
                       first: [0x3F8C_B26B, 0x3F56_2F44, 0x3F89_BD99], last: [0x3FAA_5FEC, 0x3F7A_DC26], sum: 63.475759863853455),
                Sample(name: "model.separator.band_split_module.bandwise_decoding_module.5.0.bias", shape: [64],
                       first: [0x3D83_A01B, 0xBE51_59C7, 0x3DD0_366F], last: [0x3D1F_4743, 0xBDA5_CD91], sum: -0.263991265790537),
                Sample(name: "model.separator.prompts.musicbg", shape: [64, 1, 1], first: [0x3ED1_C8DA, 0x3F14_2C16, 0x3E32_5802],
                       last: [0xBFB6_758F, 0x3F07_C3F2], sum: -5.748487820848823),
            ],
            total: 8367.587060687967, absoluteTotal: 422461.9485550011))
        // The medium bundle is the official configuration: names, order and shapes equal the official list.
        let official = try docKeys("tuss_medium_keys.txt")
        XCTAssertEqual(store.names, official.map(\.name))
        for (name, shape) in official {
            XCTAssertEqual(try store.require(name).shape, shape, name)
        }
        try checkRoPE(store, expectedCount: 12)
    }

    // MARK: DAC

    func testDACCheckpoints() throws {
        let root = try sharedReference()
        let bundles: [(dir: String, docs: String, codebooks: Int, config: [String: ConfigValue], expected: Expected)] = [
            ("dac-tiny-16k", "dac_16k_state_dict_keys.txt", 6, [
                "encoder_dim": .int(8), "encoder_rates": .array([.int(2), .int(4), .int(5), .int(8)]), "latent_dim": .int(64),
                "decoder_dim": .int(64), "decoder_rates": .array([.int(8), .int(5), .int(4), .int(2)]), "n_codebooks": .int(6),
                "codebook_size": .int(1024), "codebook_dim": .int(8), "quantizer_dropout": .bool(false), "sample_rate": .int(16000),
            ], Expected(
                count: 280, parameters: 472_438,
                samples: [
                    Sample(name: "encoder.block.0.bias", shape: [8], first: [0x3C21_39B6, 0x3CB2_DA26, 0x38E8_FE6F],
                           last: [0x3C56_5257, 0xBC8B_C294], sum: 0.012927755124110263),
                    Sample(name: "encoder.block.0.weight_g", shape: [8, 1, 1], first: [0x3EEB_7A2A, 0x3F75_0328, 0x3EFF_19F8],
                           last: [0x3F44_214E, 0x3F3B_1CFD], sum: 5.907825946807861),
                    Sample(name: "quantizer.quantizers.3.in_proj.bias", shape: [8], first: [0x3BCC_C067, 0xBD1D_66E3, 0x3C8A_34B0],
                           last: [0xBCE1_C7FC, 0x3B93_7EEA], sum: -0.06425547401886433),
                    Sample(name: "decoder.model.6.weight_v", shape: [1, 4, 7], first: [0xBD87_4B27, 0xBD82_206B, 0xBE18_E131],
                           last: [0xBE0F_4423, 0x3DB0_E8EB], sum: -0.5742677859961987),
                    Sample(name: "quantizer.quantizers.0.codebook.weight", shape: [1024, 8], first: [0xBE87_9680, 0xBF11_4A87],
                           last: [0xBFE0_F82B], sum: -105.91838340163395),
                ],
                total: 2716.5376722259734, absoluteTotal: 53766.77391980316)),
            ("dac-tiny-44k", "dac_44k_state_dict_keys.txt", 4, [
                "encoder_dim": .int(8), "encoder_rates": .array([.int(2), .int(4), .int(8), .int(8)]), "latent_dim": .int(32),
                "decoder_dim": .int(48), "decoder_rates": .array([.int(8), .int(8), .int(4), .int(2)]), "n_codebooks": .int(4),
                "codebook_size": .int(1024), "codebook_dim": .int(8), "quantizer_dropout": .bool(false), "sample_rate": .int(44100),
            ], Expected(
                count: 266, parameters: 403_413,
                samples: [
                    Sample(name: "encoder.block.0.bias", shape: [8], first: [0x3C99_DDEB, 0xBB0B_C6F9, 0x3D02_8314],
                           last: [0x3C50_D737, 0x3CB3_506D], sum: 0.09101686696521938),
                    Sample(name: "encoder.block.0.weight_g", shape: [8, 1, 1], first: [0x3F7F_080F, 0x3F7D_CDA6, 0x3F55_FA1A],
                           last: [0x3EB9_FE98, 0x3F12_9E34], sum: 5.650461703538895),
                    Sample(name: "quantizer.quantizers.2.in_proj.bias", shape: [8], first: [0x3C7D_6A8A, 0x3C0F_F5A6, 0xBC84_34A7],
                           last: [0x3CA8_F722, 0x3C6D_C06E], sum: 0.03945039049722254),
                    Sample(name: "decoder.model.6.weight_v", shape: [1, 3, 7], first: [0xBE15_4E87, 0x3DAE_4ACB, 0xBE2A_C580],
                           last: [0xBE5E_315C, 0xBE40_5A2F], sum: -0.8177327364683151),
                    Sample(name: "quantizer.quantizers.0.codebook.weight", shape: [1024, 8], first: [0xBF97_C5D1, 0xBF19_DB19],
                           last: [0x3E83_AA30], sum: 28.11662199679995),
                ],
                total: 2696.636517984044, absoluteTotal: 38479.04108011362)),
        ]
        for bundle in bundles {
            let path = root + "/\(bundle.dir)/weights.pth"
            let object = try TorchCheckpoint.load(path)
            guard case let .dict(entries) = object else { return XCTFail("\(bundle.dir): not a dict") }
            XCTAssertEqual(entries.map { if case let .string(s) = $0.key { s } else { "?" } }, ["state_dict", "metadata"])
            let kwargs = try XCTUnwrap(object["metadata"]?["kwargs"])
            XCTAssertEqual(ConfigValue(pickle: kwargs), .object(bundle.config), bundle.dir)

            let store = try TorchCheckpoint.stateDict(path, at: ["state_dict"])
            try check(store, bundle.expected)
            // The official key list minus the codebooks this small model lacks, in the same order.
            let official = try docKeys(bundle.docs).map(\.name).filter { (index(after: "quantizer.quantizers", in: $0) ?? 0) < bundle.codebooks }
            XCTAssertEqual(store.names, official, bundle.dir)
            // Weight-norm parametrisation: every weight_v has a weight_g with one value per output row.
            for name in store.names where name.hasSuffix(".weight_v") {
                let v = try store.require(name)
                let g = try store.require(String(name.dropLast(1)) + "g")
                XCTAssertEqual(g.shape, [v.shape[0], 1, 1], name)
            }
            for i in 0..<bundle.codebooks {
                XCTAssertEqual(try store.require("quantizer.quantizers.\(i).codebook.weight").shape, [1024, 8])
            }
        }
    }

    // MARK: Cases and configs

    func testEveryCaseFileParses() throws {
        let root = try sharedReference()
        let fm = FileManager.default
        var checked = 0
        for bundle in try fm.contentsOfDirectory(atPath: root).sorted() {
            let casesDirectory = root + "/\(bundle)/cases"
            guard let files = try? fm.contentsOfDirectory(atPath: casesDirectory) else { continue }
            for file in files.sorted() where file.hasSuffix(".safetensors") {
                let store = try Safetensors.load(casesDirectory + "/" + file)
                let label = "\(bundle)/\(file)"
                let meta = store.metadata
                XCTAssertEqual(meta["bundle"], bundle, label)
                XCTAssertEqual(meta["case"].map { $0 + ".safetensors" }, file, label)
                let length = try XCTUnwrap(meta["length"].flatMap { Int($0) }, label)
                let frames = try XCTUnwrap(meta["n_frames"].flatMap { Int($0) }, label)
                let outputLength = try XCTUnwrap(meta["output_length"].flatMap { Int($0) }, label)
                for name in store.names {
                    let values = try store.require(name).floats()
                    XCTAssertTrue(values.allSatisfy(\.isFinite), "\(label) \(name)")
                }
                if bundle.hasPrefix("tuss") {
                    let sources = try XCTUnwrap(meta["n_src"].flatMap { Int($0) })
                    XCTAssertEqual(meta["prompts"]?.split(separator: ",").count, sources, label)
                    XCTAssertEqual(try store.require("mixture").shape, [length], label)
                    XCTAssertEqual(try store.require("output").shape, [sources, outputLength], label)
                    XCTAssertEqual(outputLength, 512 * ((length + 511) / 512), label)
                    XCTAssertEqual(frames, (length + 511) / 512 + 1, label)
                    if meta["intermediates"] == "yes" {
                        let bands = try XCTUnwrap(meta["n_bands"].flatMap { Int($0) })
                        let dim = try store.require("bandsplit").shape[0]
                        XCTAssertEqual(try store.require("stft_re").shape, [frames, 1025], label)
                        XCTAssertEqual(try store.require("bandsplit").shape, [dim, frames, bands], label)
                        XCTAssertEqual(try store.require("cross_out").shape, [dim, sources + 1 + frames, bands], label)
                        XCTAssertEqual(try store.require("tse_out").shape, [sources, dim, frames, bands], label)
                        XCTAssertEqual(try store.require("mask_im").shape, [sources, frames, 1025], label)
                    } else {
                        XCTAssertEqual(store.names, ["mixture", "output"], label)
                    }
                    let precision = try ConfigValue.parseJSON(try XCTUnwrap(meta["fp32_vs_fp64_output_rel_l2"]))
                    XCTAssertLessThan(try XCTUnwrap(precision.doubleValue), 1e-4, label)
                } else {
                    let hop = try XCTUnwrap(meta["hop_length"].flatMap { Int($0) })
                    let codebooks = try XCTUnwrap(meta["n_codebooks"].flatMap { Int($0) })
                    XCTAssertEqual(frames, (length + hop - 1) / hop, label)
                    XCTAssertEqual(try store.require("audio").shape, [length], label)
                    XCTAssertEqual(try store.require("codes").dtype, .i32, label)
                    XCTAssertEqual(try store.require("codes").shape, [codebooks, frames], label)
                    XCTAssertEqual(try store.require("latents").shape, [codebooks * 8, frames], label)
                    XCTAssertEqual(try store.require("z").shape, try store.require("z_q").shape, label)
                    for name in ["decoded", "decoded_continuous", "decoded_from_codes_nq"] {
                        XCTAssertEqual(try store.require(name).shape, [outputLength], label)
                    }
                    XCTAssertTrue(try store.require("codes").int64s().allSatisfy { (0..<1024).contains($0) }, label)
                    let precision = try ConfigValue.parseJSON(try XCTUnwrap(meta["fp32_vs_fp64_rel_l2"]))
                    XCTAssertEqual(precision["codes_mismatch_fp64"], .int(0), label)
                    XCTAssertNotNil(precision["z"]?.stringValue, label)
                    XCTAssertEqual(meta["tensors"]?.split(separator: ",").map(String.init).sorted(), store.names.sorted(), label)
                }
                checked += 1
            }
        }
        XCTAssertEqual(checked, 13)
    }

    /// Sampled values of two case files (same Python route as above, with safetensors.safe_open).
    func testCaseFileValues() throws {
        let root = try sharedReference()
        let dac = try Safetensors.load(root + "/dac-tiny-16k/cases/short.safetensors")
        let audio = try dac.require("audio").floats()
        XCTAssertEqual(bits(Array(audio.prefix(3))), [0x3C54_B0CC, 0x3C1F_F76F, 0xBC8E_CCAC])
        XCTAssertEqual(bits(Array(audio.suffix(2))), [0xBDB0_3BFC, 0xBE00_BB93])
        XCTAssertEqual(audio.reduce(0.0) { $0 + Double($1) }, -1.6357807908207178e-07, accuracy: 1e-12)
        let codes = try dac.require("codes").int64s()
        XCTAssertEqual(Array(codes.prefix(4)), [678, 25, 198, 558])
        XCTAssertEqual(Array(codes[4..<8]), [724, 343, 130, 407])
        XCTAssertEqual(codes.reduce(0, +), 10915)

        let tuss = try Safetensors.load(root + "/tuss-tiny/cases/speech_sfxbg_musicbg.safetensors")
        let tse = try tuss.require("tse_out").floats()
        XCTAssertEqual(bits(Array(tse.prefix(2))), [0xBE7C_95ED, 0xBECC_A0FD])
        XCTAssertEqual(bits(Array(tse.suffix(2))), [0xBED9_C02D, 0x3F48_B4DC])
        XCTAssertEqual(tse.reduce(0.0) { $0 + Double($1) }, -19.94742003735155, accuracy: 1e-9)
    }

    func testHparamsYAML() throws {
        let root = try sharedReference()
        for (bundle, json, embedding) in [("tuss-tiny", HparamsFixtures.tinyJSON, 16), ("tuss-medium", HparamsFixtures.mediumJSON, 64)] {
            let text = try String(contentsOfFile: root + "/\(bundle)/hparams.yaml", encoding: .utf8)
            let config = try ConfigValue.parseYAML(text)
            // Equal, value for value, to what PyYAML reads (anchors resolved).
            XCTAssertEqual(config, try ConfigValue.parseJSON(json), bundle)
            XCTAssertEqual(config.jsonString(), json.trimmingCharacters(in: .whitespacesAndNewlines), bundle)
            XCTAssertEqual(config["decoder_conf"], config["encoder_conf"], bundle)
            XCTAssertEqual(config["encoder_conf"]?["window_type"]?.stringValue, "sqrt_hann")
            XCTAssertEqual(config["encoder_conf"]?["hop_length"]?.intValue, 512)
            XCTAssertEqual(config["encoder_conf"]?["normalize"], .null)
            XCTAssertEqual(config["model_conf"]?["conf_cross_prompt_module"]?["emb_dim"]?.intValue, embedding)
            XCTAssertEqual(config["model_conf"]?["prompts"]?.arrayValue?.compactMap(\.stringValue),
                           ["speech", "sfx", "sfxbg", "drums", "bass", "vocals", "other", "musicbg"])
            XCTAssertEqual(config["model_conf"]?["use_sos_token"]?.boolValue, true)
            XCTAssertEqual(config["variance_normalization"]?.boolValue, true)
        }
        let medium = try ConfigValue.parseYAML(try String(contentsOfFile: root + "/tuss-medium/hparams.yaml", encoding: .utf8))
        XCTAssertEqual(medium["loss_func_conf"]?["eps"], .double(1e-7))
        XCTAssertEqual(medium["optimizer_conf"]?["lr"]?.doubleValue, 0.001)
        XCTAssertEqual(medium["model_conf"]?["nblocks_cross_prompt_module"]?.intValue, 4)
        XCTAssertEqual(medium["dataset_conf"]?["valid"]?["json_path_and_num_data"]?[1], .array([.string("datasets/json_files/musdb18hq_44.1k_sad.json"), .int(12)]))
    }
}
