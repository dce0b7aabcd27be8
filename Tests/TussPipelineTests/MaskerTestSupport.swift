import Foundation
import XCTest
import TussModels
import TussPipeline
import TussWeights
import TussTestSupport

/// Deterministic uniform values in `offset` ± `scale`, for synthetic weight files.
func syntheticValues(_ count: Int, scale: Float, offset: Float = 0, rng: inout XorshiftGenerator) -> [Float] {
    (0..<count).map { _ in rng.uniform() * scale + offset }
}

/// A small 16 kHz DAC (hop 320) for tests: tiny encoder/decoder, `latent` channels, 4 codebooks of 64.
func smallDACConfig(latent: Int = 32) -> DACConfig {
    DACConfig(encoderDim: 4, encoderRates: [2, 4, 5, 8], latentDim: latent, decoderDim: 32, decoderRates: [8, 5, 4, 2],
              codebooks: 4, codebookSize: 64, codebookDim: 4, sampleRate: 16000)
}

/// Writes a random-weight DAC under the official state-dict names (weight-norm form) with our metadata.
func writeRandomDAC(_ config: DACConfig, seed: UInt64, to path: String) throws {
    var rng = XorshiftGenerator(seed: seed)
    var tensors: [(name: String, tensor: WeightTensor)] = []
    func add(_ name: String, _ shape: [Int], scale: Float, offset: Float = 0) {
        tensors.append((name, WeightTensor(floats: syntheticValues(shape.reduce(1, *), scale: scale, offset: offset, rng: &rng), shape: shape)))
    }
    func conv(_ name: String, cin: Int, cout: Int, k: Int) {
        add("\(name).weight_g", [cout, 1, 1], scale: 0.2, offset: 1)
        add("\(name).weight_v", [cout, cin, k], scale: 1)
        add("\(name).bias", [cout], scale: 0.05)
    }
    func residual(_ name: String, channels c: Int) {
        add("\(name).block.0.alpha", [1, c, 1], scale: 0.3, offset: 1)
        conv("\(name).block.1", cin: c, cout: c, k: 7)
        add("\(name).block.2.alpha", [1, c, 1], scale: 0.3, offset: 1)
        conv("\(name).block.3", cin: c, cout: c, k: 1)
    }
    var d = config.encoderDim
    conv("encoder.block.0", cin: 1, cout: d, k: 7)
    for (i, s) in config.encoderRates.enumerated() {
        for r in 0..<3 { residual("encoder.block.\(i + 1).block.\(r)", channels: d) }
        add("encoder.block.\(i + 1).block.3.alpha", [1, d, 1], scale: 0.3, offset: 1)
        conv("encoder.block.\(i + 1).block.4", cin: d, cout: 2 * d, k: 2 * s)
        d *= 2
    }
    let n = config.encoderRates.count
    add("encoder.block.\(n + 1).alpha", [1, d, 1], scale: 0.3, offset: 1)
    conv("encoder.block.\(n + 2)", cin: d, cout: config.latentDim, k: 3)
    for i in 0..<config.codebooks {
        conv("quantizer.quantizers.\(i).in_proj", cin: config.latentDim, cout: config.codebookDim, k: 1)
        conv("quantizer.quantizers.\(i).out_proj", cin: config.codebookDim, cout: config.latentDim, k: 1)
        add("quantizer.quantizers.\(i).codebook.weight", [config.codebookSize, config.codebookDim], scale: 1)
    }
    var c = config.decoderDim
    conv("decoder.model.0", cin: config.latentDim, cout: c, k: 7)
    for (i, s) in config.decoderRates.enumerated() {
        let out = c / 2
        add("decoder.model.\(i + 1).block.0.alpha", [1, c, 1], scale: 0.3, offset: 1)
        add("decoder.model.\(i + 1).block.1.weight_g", [c, 1, 1], scale: 0.2, offset: 1)
        add("decoder.model.\(i + 1).block.1.weight_v", [c, out, 2 * s], scale: 1)
        add("decoder.model.\(i + 1).block.1.bias", [out], scale: 0.05)
        for r in 0..<3 { residual("decoder.model.\(i + 1).block.\(r + 2)", channels: out) }
        c = out
    }
    let k = config.decoderRates.count
    add("decoder.model.\(k + 1).alpha", [1, c, 1], scale: 0.3, offset: 1)
    conv("decoder.model.\(k + 2)", cin: c, cout: 1, k: 7)
    try Safetensors.write(tensors, metadata: ["tuss-codec.kind": "dac", "tuss-codec.format": "1",
                                              "tuss-codec.config": config.kwargs.jsonString()], to: path)
}

/// The hex weights digest a masker file names its codec by.
func codecHashHex(_ codec: CodecHandle) -> String {
    codec.identity.weightsHash.map { String(format: "%02x", $0) }.joined()
}

/// Writes a random-weight masker for `codec` (or for an explicit latent width and hash) under our parameter names.
func writeRandomMasker(latentDim: Int, codecName: String, codecHash: String, seed: UInt64, to path: String,
                       modelDim: Int = 16, window: Int = 6, lookahead: Int = 0) throws {
    let config = LatentMaskerConfig(latentDim: latentDim, modelDim: modelDim, heads: 2, ffnDim: 24, jointLayers: 2,
                                    filmLayers: 2, window: window, prompts: Prompt.all.map(\.name), maxPrompts: 8,
                                    codecName: codecName, codecHash: codecHash, lookahead: lookahead)
    var rng = XorshiftGenerator(seed: seed)
    var tensors: [(name: String, tensor: WeightTensor)] = []
    let d = modelDim, f = 24
    func add(_ name: String, _ shape: [Int], scale: Float, offset: Float = 0) {
        tensors.append((name, WeightTensor(floats: syntheticValues(shape.reduce(1, *), scale: scale, offset: offset, rng: &rng), shape: shape)))
    }
    func linear(_ name: String, _ i: Int, _ o: Int, biasOffset: Float = 0) {
        add("\(name).weight", [o, i], scale: 1 / Float(i).squareRoot())
        add("\(name).bias", [o], scale: 0.1, offset: biasOffset)
    }
    func norm(_ name: String) {
        add("\(name).weight", [d], scale: 0.2, offset: 1)
        add("\(name).bias", [d], scale: 0.1)
    }
    func layer(_ p: String) {
        norm("\(p).attn_norm"); linear("\(p).attn.qkv", d, 3 * d); linear("\(p).attn.out", d, d)
        norm("\(p).ffn_norm"); linear("\(p).ffn.in", d, f); linear("\(p).ffn.out", f, d)
    }
    linear("input_proj", latentDim, d)
    add("start_token", [d], scale: 1)
    add("prompt_embed.weight", [8, d], scale: 1)
    add("slot_embed.weight", [8, d], scale: 1)
    for i in 0..<2 { layer("joint.\(i)") }
    norm("joint_norm")
    for l in 0..<2 { linear("film.\(l)", d, 2 * d); layer("film_stage.\(l)") }
    norm("out_norm")
    linear("mask_head", d, latentDim, biasOffset: 0.5)
    // Drawn last, so a masker with lookahead has every other weight of the causal one made with the same seed.
    if lookahead > 0 { add("input_ahead.weight", [d, lookahead * latentDim], scale: 1 / Float(lookahead * latentDim).squareRoot()) }
    try Safetensors.write(tensors, metadata: ["tuss-codec.kind": "masker", "tuss-codec.format": "1",
                                              "tuss-codec.config": config.json.jsonString()], to: path)
}

/// A test codec and a masker trained "for" it, written into `dir`.
func writeCodecAndMasker(in dir: String, latent: Int = 32, codecSeed: UInt64 = 11,
                         lookahead: Int = 0) throws -> (codec: String, masker: String) {
    let codecPath = (dir as NSString).appendingPathComponent("codec-\(codecSeed)-\(latent).safetensors")
    try writeRandomDAC(smallDACConfig(latent: latent), seed: codecSeed, to: codecPath)
    let handle = try CodecHandle.open(codecPath)
    let maskerPath = (dir as NSString).appendingPathComponent("masker-\(codecSeed)-\(latent)-ahead\(lookahead).safetensors")
    try writeRandomMasker(latentDim: latent, codecName: handle.identity.name, codecHash: codecHashHex(handle), seed: 5, to: maskerPath,
                          lookahead: lookahead)
    return (codecPath, maskerPath)
}
