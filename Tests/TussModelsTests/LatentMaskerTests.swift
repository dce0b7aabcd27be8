import XCTest
@testable import TussModels
import TussTensor
import TussWeights
import TussTestSupport

/// A small masker configuration for tests (short window so short inputs cross it).
func smallMaskerConfig(latent: Int = 16, window: Int = 5) -> LatentMaskerConfig {
    LatentMaskerConfig(latentDim: latent, modelDim: 16, heads: 2, ffnDim: 24, jointLayers: 2, filmLayers: 2,
                       window: window, prompts: Prompt.all.map(\.name), maxPrompts: 8,
                       codecName: "test", codecHash: String(repeating: "ab", count: 32))
}

/// A deterministic latent (C, T).
func testLatent(channels: Int, frames: Int, seed: UInt64 = 3) -> Tensor {
    var rng = XorshiftGenerator(seed: seed)
    return Tensor(shape: [channels, frames], data: rng.array(channels * frames))
}

/// Frames `lo..<hi` of a (C, T) tensor.
func columns(_ x: Tensor, _ lo: Int, _ hi: Int) -> Tensor {
    let c = x.shape[0], t = x.shape[1]
    var out: [Float] = []
    for ch in 0..<c { out += x.data[(ch * t + lo)..<(ch * t + hi)] }
    return Tensor(shape: [c, hi - lo], data: out)
}

final class LatentMaskerTests: XCTestCase {
    override func setUp() { ComputeThreads.configure(1) }

    func testStreamingInChunksEqualsOffline() throws {
        let masker = try LatentMasker(randomWeightsFor: smallMaskerConfig())
        let prompts = try Prompt.parseList("speech,sfx-mix,speech")
        let z = testLatent(channels: 16, frames: 300)
        let offline = masker.separate(z, prompts: prompts)
        XCTAssertEqual(offline.count, 3)
        XCTAssertEqual(offline[0].shape, [16, 300])
        var stream = masker.makeStream(prompts: prompts)
        var pieces = [[Tensor]](repeating: [], count: 3)
        var start = 0
        for size in [1, 1, 3, 7, 2, 50, 1, 200, 35] {
            let out = stream.push(columns(z, start, start + size))
            for p in 0..<3 { pieces[p].append(out[p]) }
            start += size
        }
        XCTAssertEqual(start, 300)
        for p in 0..<3 {
            var joined = Tensor(zeros: [16, 300])
            var at = 0
            for piece in pieces[p] {
                let n = piece.shape[1]
                for ch in 0..<16 { for t in 0..<n { joined.data[ch * 300 + at + t] = piece.data[ch * n + t] } }
                at += n
            }
            XCTAssertLessThan(relativeL2(joined.data, offline[p].data), 1e-5, "prompt \(p)")
        }
    }

    /// With lookahead 3: pushes of any size (some crossing the 256-frame blocks) then `finish` equal the offline
    /// result; frame t depends on frames up to t+3 and no further; a stream shorter than the lookahead comes back
    /// whole from `finish`, as the first frames of the offline result on that input.
    func testLookaheadStreamEqualsOfflineAcrossBlocks() throws {
        var config = smallMaskerConfig()
        config.lookahead = 3
        let masker = try LatentMasker(randomWeightsFor: config)
        let prompts = try Prompt.parseList("speech,sfx-mix")
        let z = testLatent(channels: 16, frames: 600)
        let offline = masker.separate(z, prompts: prompts)
        XCTAssertEqual(offline[0].shape, [16, 600])
        var stream = masker.makeStream(prompts: prompts)
        var joined = [[Float]](repeating: [Float](repeating: 0, count: 16 * 600), count: 2)
        var start = 0, at = 0
        func place(_ out: [Tensor]) {
            let n = out[0].shape[1]
            for p in 0..<2 { for ch in 0..<16 { for t in 0..<n { joined[p][ch * 600 + at + t] = out[p].data[ch * n + t] } } }
            at += n
        }
        for size in [2, 1, 300, 7, 260, 30] {
            place(stream.push(columns(z, start, start + size)))
            start += size
            XCTAssertEqual(at, max(0, start - 3))
        }
        place(stream.finish())
        XCTAssertEqual(at, 600)
        for p in 0..<2 { XCTAssertLessThan(relativeL2(joined[p], offline[p].data), 1e-5, "prompt \(p)") }
        // Frames from 400 on changed: outputs up to 396 stay, 397 (which sees frame 400) moves.
        var later = z
        for ch in 0..<16 { for t in 400..<600 { later.data[ch * 600 + t] = 4 } }
        let moved = masker.separate(later, prompts: prompts)[0]
        XCTAssertLessThan(relativeL2(Array(columns(moved, 0, 397).data), Array(columns(offline[0], 0, 397).data)), 1e-6)
        XCTAssertGreaterThan(relativeL2(Array(columns(moved, 397, 398).data), Array(columns(offline[0], 397, 398).data)), 1e-3)
        // Two frames only: nothing until finish, then both, as offline on those two frames.
        var short = masker.makeStream(prompts: prompts)
        XCTAssertEqual(short.push(columns(z, 0, 2))[0].shape, [16, 0])
        let tail = short.finish()
        XCTAssertEqual(tail[0].shape, [16, 2])
        XCTAssertLessThan(relativeL2(tail[1].data, masker.separate(columns(z, 0, 2), prompts: prompts)[1].data), 1e-6)
        XCTAssertEqual(short.finish()[0].shape, [16, 0], "a second finish returns nothing")
    }

    func testCausalFutureFramesDoNotChangeThePast() throws {
        let masker = try LatentMasker(randomWeightsFor: smallMaskerConfig())
        let prompts = try Prompt.parseList("vocals,other")
        let a = testLatent(channels: 16, frames: 40, seed: 5)
        var b = a
        for ch in 0..<16 { for t in 30..<40 { b.data[ch * 40 + t] = 7 } }
        let ya = masker.separate(a, prompts: prompts), yb = masker.separate(b, prompts: prompts)
        for p in 0..<2 {
            XCTAssertEqual(columns(ya[p], 0, 30).data, columns(yb[p], 0, 30).data)
            XCTAssertNotEqual(columns(ya[p], 30, 40).data, columns(yb[p], 30, 40).data)
        }
    }

    func testRepeatedPromptsAndAllPromptNamesGiveDistinctOutputs() throws {
        let masker = try LatentMasker(randomWeightsFor: smallMaskerConfig())
        let z = testLatent(channels: 16, frames: 12)
        let repeated = masker.separate(z, prompts: try Prompt.parseList("speech,speech,speech"))
        for i in 0..<3 { for j in (i + 1)..<3 {
            XCTAssertGreaterThan(relativeL2(repeated[i].data, repeated[j].data), 1e-3, "speech #\(i + 1) equals speech #\(j + 1)")
        } }
        let all = masker.separate(z, prompts: Prompt.all)
        XCTAssertEqual(all.count, 8)
        for i in 0..<8 { for j in (i + 1)..<8 {
            XCTAssertGreaterThan(relativeL2(all[i].data, all[j].data), 1e-3, "\(Prompt.all[i]) equals \(Prompt.all[j])")
        } }
        // The same prompt in the same slot gives the same output whatever follows it... except through attention
        // among prompts, which is the point: a second prompt changes the first one's output.
        let one = masker.separate(z, prompts: [Prompt.all[0]])
        XCTAssertGreaterThan(relativeL2(one[0].data, all[0].data), 1e-4)
    }

    /// Scores depend on relative frame positions only: the same recent history gives the same output at frame 0
    /// and hours into a stream.
    func testResultsDependOnRelativePositionsOnly() throws {
        let masker = try LatentMasker(randomWeightsFor: smallMaskerConfig())
        let prompts = try Prompt.parseList("drums,bass")
        let z = testLatent(channels: 16, frames: 20)
        var early = LatentMaskerStream(masker: masker, prompts: prompts, startPosition: 0)
        var late = LatentMaskerStream(masker: masker, prompts: prompts, startPosition: 180_000 * 5)
        let a = early.push(z), b = late.push(z)
        XCTAssertEqual(late.position, 180_000 * 5 + 20)
        for p in 0..<2 { XCTAssertLessThan(relativeL2(b[p].data, a[p].data), 1e-5) }
    }

    func testPromptChecksAndConfigErrors() throws {
        let masker = try LatentMasker(randomWeightsFor: smallMaskerConfig())
        XCTAssertThrowsError(try masker.check(prompts: [])) { XCTAssertEqual($0 as? ModelError, .noPrompts) }
        XCTAssertThrowsError(try masker.check(prompts: Prompt.all + [Prompt.all[0]])) {
            XCTAssertEqual("\($0)", "9 prompts given; at most 8 are supported")
        }
        var json = smallMaskerConfig().json
        XCTAssertEqual(try LatentMaskerConfig(json: json), smallMaskerConfig())
        if case .object(var o) = json { o["prompts"] = .array([.string("speech")]); json = .object(o) }
        XCTAssertThrowsError(try LatentMaskerConfig(json: json)) {
            XCTAssertEqual("\($0)", "model configuration is not usable: masker config: prompt 'sfx' has no embedding (prompts: speech)")
        }
        // `additive` is optional, round-trips, and must be a boolean.
        var additive = smallMaskerConfig()
        additive.additive = true
        XCTAssertEqual(try LatentMaskerConfig(json: additive.json), additive)
        if case .object(var o) = smallMaskerConfig().json {
            XCTAssertNil(o["additive"], "a mask-only config writes no 'additive' key, as the recipe")
            o["additive"] = .string("yes")
            XCTAssertThrowsError(try LatentMaskerConfig(json: .object(o))) {
                XCTAssertEqual("\($0)", "model configuration is not usable: masker config: 'additive' must be true or false")
            }
        }
        // A key this engine does not know would change what the file computes: refused, not ignored.
        if case .object(var o) = smallMaskerConfig().json {
            o["mask_activation"] = .string("sigmoid")
            XCTAssertThrowsError(try LatentMaskerConfig(json: .object(o))) {
                XCTAssertEqual("\($0)", "model configuration is not usable: masker config: unknown key 'mask_activation' "
                               + "(the file was written by a newer recipe than this engine reads; update tuss-codec)")
            }
        } else {
            XCTFail("a masker config's JSON is an object")
        }
        var bad = smallMaskerConfig()
        bad.heads = 3
        XCTAssertThrowsError(try LatentMasker(randomWeightsFor: bad)) {
            XCTAssertEqual("\($0)", "model configuration is not usable: masker config: d_model 16 must split into 3 heads of even width")
        }
        XCTAssertThrowsError(try LatentMasker(config: smallMaskerConfig(), weights: WeightStore([]))) {
            XCTAssertEqual("\($0)", "model weights do not match the configuration: missing tensor 'input_proj.weight'")
        }
    }

    func testCostIsLinearInLength() {
        let c = LatentMaskerConfig(latentDim: 256, prompts: Prompt.all.map(\.name), codecName: "x", codecHash: String(repeating: "0", count: 64))
        let one = ModelCost.masker(c, frames: 5000, prompts: 1), two = ModelCost.masker(c, frames: 10000, prompts: 1)
        XCTAssertEqual((two.shared + two.perPrompt) / (one.shared + one.perPrompt), 2, accuracy: 0.01)
        // About 0.03 GMAC per second (50 frames) for one prompt at the default size.
        let perSecond = (one.shared + one.perPrompt) / 100 / 1e9
        XCTAssertGreaterThan(perSecond, 0.02)
        XCTAssertLessThan(perSecond, 0.05)
    }
}
