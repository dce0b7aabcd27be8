import Foundation
import XCTest
import TussModels
import TussPipeline
import TussTensor
import TussTestSupport

final class CodesSeparatorTests: XCTestCase {
    override func setUp() { ComputeThreads.configure(1) }

    func testStreamingCodesEqualWholeStream() throws {
        let dir = try temporaryDirectory(self, prefix: "tuss-codec-tests")
        let (codecPath, maskerPath) = try writeCodecAndMasker(in: dir)
        let codec = try CodecHandle.open(codecPath), masker = try MaskerHandle.open(maskerPath)
        let prompts = try Prompt.parseList("speech,speech,music-mix")
        let audio = testSignal(seconds: 1.5, rate: 16000, channels: 1)[0]
        let codes = codec.codec.encode(audio, codebooks: 3)
        let frames = codes[0].count
        XCTAssertEqual(frames, 75)
        var whole = try CodesSeparator(codec: codec, masker: masker, prompts: prompts)
        let expected = whole.push(codes)
        XCTAssertEqual(expected.count, 3)
        XCTAssertEqual(expected[0].count, 3, "as many codebooks out as in")
        var chunked = try CodesSeparator(codec: codec, masker: masker, prompts: prompts)
        var got = [[[Int32]]](repeating: [[Int32]](repeating: [], count: 3), count: 3)
        var start = 0
        for size in [1, 4, 13, 1, 40, 16] {
            let out = chunked.push(codes.map { Array($0[start..<(start + size)]) })
            for p in 0..<3 { for k in 0..<3 { got[p][k] += out[p][k] } }
            start += size
        }
        XCTAssertEqual(start, frames)
        XCTAssertEqual(chunked.position, frames)
        var mismatches = 0
        for p in 0..<3 { for k in 0..<3 { for t in 0..<frames where got[p][k][t] != expected[p][k][t] { mismatches += 1 } } }
        // Float rounding differs between splits; only exact near-ties of the codebook lookup may flip.
        XCTAssertLessThanOrEqual(mismatches, 2, "\(mismatches) of \(3 * 3 * frames) codes differ")
        XCTAssertNotEqual(expected[0], expected[1], "repeated prompts must give different codes")
        XCTAssertNotEqual(expected[0], codes.map { $0 }, "the masker must change the codes")
    }

    /// A masker with lookahead 3: each push returns the frames whose next 3 have arrived, `finish` the last 3, and
    /// the whole equals one push of everything then `finish` (which is what the file flow and the server run).
    func testLookaheadReturnsEveryFrameLate() throws {
        let dir = try temporaryDirectory(self, prefix: "tuss-codec-tests")
        let (codecPath, maskerPath) = try writeCodecAndMasker(in: dir, lookahead: 3)
        let codec = try CodecHandle.open(codecPath), masker = try MaskerHandle.open(maskerPath)
        XCTAssertEqual(masker.masker.config.lookahead, 3)
        let prompts = try Prompt.parseList("speech,speech,music-mix")
        let codes = codec.codec.encode(testSignal(seconds: 1.5, rate: 16000, channels: 1)[0], codebooks: 3)
        let frames = codes[0].count
        var whole = try CodesSeparator(codec: codec, masker: masker, prompts: prompts)
        XCTAssertEqual(whole.lookahead, 3)
        let expected = whole.separateAll(codes)
        XCTAssertEqual(expected[0][0].count, frames)
        var chunked = try CodesSeparator(codec: codec, masker: masker, prompts: prompts)
        var got = [[[Int32]]](repeating: [[Int32]](repeating: [], count: 3), count: 3)
        var start = 0
        for size in [1, 1, 4, 13, 1, 40, 15] {
            let out = chunked.push(codes.map { Array($0[start..<(start + size)]) })
            for p in 0..<3 { for k in 0..<3 { got[p][k] += out[p][k] } }
            start += size
            XCTAssertEqual(got[0][0].count, max(0, start - 3), "after \(start) frames")
            XCTAssertEqual(chunked.position, max(0, start - 3))
        }
        for (p, rest) in chunked.finish().enumerated() { for k in 0..<3 { got[p][k] += rest[k] } }
        XCTAssertEqual(start, frames)
        XCTAssertEqual(chunked.position, frames)
        var mismatches = 0
        for p in 0..<3 { for k in 0..<3 { for t in 0..<frames where got[p][k][t] != expected[p][k][t] { mismatches += 1 } } }
        XCTAssertLessThanOrEqual(mismatches, 2, "\(mismatches) of \(3 * 3 * frames) codes differ")
        // The frames ahead matter: the causal masker with the same other weights (same seed) gives other codes.
        let (_, causalPath) = try writeCodecAndMasker(in: dir)
        var causal = try CodesSeparator(codec: codec, masker: try MaskerHandle.open(causalPath), prompts: prompts)
        XCTAssertNotEqual(causal.push(codes)[0], expected[0])
        // A stream that never got frames finishes with nothing.
        var empty = try CodesSeparator(codec: codec, masker: masker, prompts: prompts)
        XCTAssertEqual(empty.finish().map(\.count), [0, 0, 0])
    }

    /// Separators sharing one codec's matcher give the codes a separator with its own tables gives; a matcher of
    /// another shape is refused.
    func testSharedMatcher() throws {
        let dir = try temporaryDirectory(self, prefix: "tuss-codec-tests")
        let (codecPath, maskerPath) = try writeCodecAndMasker(in: dir)
        let (wideCodec, _) = try writeCodecAndMasker(in: dir, latent: 48, codecSeed: 13)
        let codec = try CodecHandle.open(codecPath), masker = try MaskerHandle.open(maskerPath)
        let prompts = try Prompt.parseList("speech,sfx-mix")
        let codes = codec.codec.encode(testSignal(seconds: 1, rate: 16000, channels: 1)[0], codebooks: 4)
        let shared = LatentCodeMatcher(codec.codec.quantizer)
        var own = try CodesSeparator(codec: codec, masker: masker, prompts: prompts)
        var first = try CodesSeparator(codec: codec, masker: masker, prompts: prompts, matcher: shared)
        var second = try CodesSeparator(codec: codec, masker: masker, prompts: prompts, matcher: shared)
        let expected = own.push(codes)
        XCTAssertEqual(first.push(codes), expected)
        XCTAssertEqual(second.push(codes), expected)
        let wide = LatentCodeMatcher(try CodecHandle.open(wideCodec).codec.quantizer)
        XCTAssertThrowsError(try CodesSeparator(codec: codec, masker: masker, prompts: prompts, matcher: wide)) {
            XCTAssertEqual("\($0)", "the latent matcher given was built for another codec than \(codecPath): build it from this codec's quantizer")
        }
        XCTAssertNoThrow(try CodesSeparator.check(codec: codec, masker: masker, prompts: prompts))
        XCTAssertThrowsError(try CodesSeparator.check(codec: codec, masker: masker, prompts: []))
    }

    func testMismatchedCodecsAndPromptsAreRefused() throws {
        let dir = try temporaryDirectory(self, prefix: "tuss-codec-tests")
        let (codecPath, maskerPath) = try writeCodecAndMasker(in: dir)
        let (otherCodec, _) = try writeCodecAndMasker(in: dir, codecSeed: 12)
        let (wideCodec, _) = try writeCodecAndMasker(in: dir, latent: 48, codecSeed: 13)
        let masker = try MaskerHandle.open(maskerPath)
        let codec = try CodecHandle.open(codecPath)
        let other = try CodecHandle.open(otherCodec), wide = try CodecHandle.open(wideCodec)
        let speech = try Prompt.parseList("speech")
        XCTAssertThrowsError(try CodesSeparator(codec: other, masker: masker, prompts: speech)) {
            XCTAssertEqual("\($0)", "masker \(maskerPath) was trained on codec '\(codec.identity.name)' (hash \(codecHashHex(codec).prefix(16))…); codec \(otherCodec) is '\(other.identity.name)' (hash \(codecHashHex(other).prefix(16))…): use the masker trained for this codec")
        }
        XCTAssertThrowsError(try CodesSeparator(codec: wide, masker: masker, prompts: speech)) {
            XCTAssertEqual("\($0)", "masker \(maskerPath) works on 32-channel latents but codec \(wideCodec) has 48: use the masker trained for this codec")
        }
        XCTAssertThrowsError(try CodesSeparator(codec: codec, masker: masker, prompts: [])) {
            XCTAssertEqual("\($0)", "no prompts given; pass at least one, e.g. --prompts speech,sfx-mix")
        }
        XCTAssertThrowsError(try CodesSeparator(codec: codec, masker: masker, prompts: Prompt.all + speech)) {
            XCTAssertEqual("\($0)", "9 prompts given; at most 8 are supported")
        }
        XCTAssertThrowsError(try MaskerHandle.open(codecPath)) {
            XCTAssertEqual("\($0)", "\(codecPath) is not a codec-path masker (it holds dac)")
        }
    }
}

final class MaskerFixtureIdentityTests: XCTestCase {
    /// The Python export names its codec by the same weights digest the Swift engine computes.
    func testFixtureMaskerAcceptsItsCodec() throws {
        let dir = (packageRoot() as NSString).appendingPathComponent("Tests/Fixtures/masker-random")
        let codec = try CodecHandle.open((dir as NSString).appendingPathComponent("codec.safetensors"))
        let masker = try MaskerHandle.open((dir as NSString).appendingPathComponent("model.safetensors"))
        XCTAssertNoThrow(try masker.requireCodec(codec))
        XCTAssertEqual(masker.masker.config.codecName, codec.identity.name)
    }
}
