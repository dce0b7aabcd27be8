import Foundation
import TussModels
import TussTensor

/// Throughput measurements of the kernels and models, reported next to the machine's sgemm peak measured in the
/// same run (machines are shared and noisy: ratios travel better than seconds).
public enum Benchmarks {
    /// Seconds taken by `body`, best of `repeats` runs after one warm-up.
    static func time(repeats: Int = 3, _ body: () -> Void) -> Double {
        body()
        var best = Double.infinity
        for _ in 0..<max(repeats, 1) {
            let start = ContinuousClock.now
            body()
            let d = ContinuousClock.now - start
            best = min(best, Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18)
        }
        return best
    }

    static func random(_ n: Int, seed: UInt64) -> [Float] {
        var state = seed &* 0x9E3779B97F4A7C15 | 1
        return (0..<n).map { _ in
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            return Float(state >> 40) / Float(1 << 24) - 0.5
        }
    }

    /// GFLOP/s of a square sgemm of size `n` (2n³ flops) on all worker threads.
    public static func sgemmPeak(size n: Int = 1024) -> Double {
        let a = random(n * n, seed: 1), b = random(n * n, seed: 2)
        var c = [Float](repeating: 0, count: n * n)
        let seconds = time {
            a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in c.withUnsafeMutableBufferPointer { pc in
                BLAS.gemm(m: n, n: n, k: n, a: pa.baseAddress!, lda: n, b: pb.baseAddress!, ldb: n, c: pc.baseAddress!, ldc: n)
            } } }
        }
        return 2 * Double(n * n * n) / seconds / 1e9
    }

    /// `tuss-codec bench kernels`: sgemm, DAC-like conv1d shapes and TUSS-like attention.
    public static func kernels() -> String {
        var lines: [String] = []
        let peak = sgemmPeak()
        lines.append(String(format: "threads: %d", ComputeThreads.count))
        lines.append(String(format: "sgemm 1024^3: %.1f GFLOP/s (reference peak for this run)", peak))
        for (c, dil) in [(64, 1), (128, 3), (256, 9), (512, 1)] {
            let length = 16000
            let x = Tensor(shape: [c, length], data: random(c * length, seed: 3))
            let conv = Conv1d(weight: random(c * c * 7, seed: 4), bias: random(c, seed: 5), inChannels: c, outChannels: c,
                              kernelSize: 7, dilation: dil, padding: 3 * dil)
            let seconds = time(repeats: 2) { _ = conv(x) }
            let gflops = 2 * Double(c * c * 7 * length) / seconds / 1e9
            lines.append(String(format: "conv1d C=%d k=7 dilation=%d L=%d: %.1f GFLOP/s (%.0f%% of sgemm)", c, dil, length, gflops, 100 * gflops / peak))
        }
        for (c, s) in [(512, 8), (128, 4)] {
            let length = 16000 / s
            let out = c / 2
            let x = Tensor(shape: [c, length], data: random(c * length, seed: 6))
            let layer = ConvTranspose1d(weight: random(c * out * 2 * s, seed: 7), bias: random(out, seed: 8), inChannels: c,
                                        outChannels: out, kernelSize: 2 * s, stride: s, padding: (s + 1) / 2)
            let seconds = time(repeats: 2) { _ = layer(x) }
            let gflops = 2 * Double(c * out * 2 * s * length) / seconds / 1e9
            lines.append(String(format: "conv-transpose1d %d→%d k=%d stride=%d L=%d: %.1f GFLOP/s (%.0f%% of sgemm)", c, out, 2 * s, s, length, gflops, 100 * gflops / peak))
        }
        // Attention as TUSS medium's cross-prompt frame path: 61 band sequences of 564 frames.
        let (sequences, length, dim, adim, heads) = (61, 564, 64, 128, 4)
        let att = MultiHeadSelfAttention(
            qkv: Linear(weight: random(3 * adim * dim, seed: 9), bias: nil, inFeatures: dim, outFeatures: 3 * adim),
            output: Linear(weight: random(dim * adim, seed: 10), bias: nil, inFeatures: adim, outFeatures: dim),
            heads: heads, rope: RotaryEmbedding(headDim: adim / heads))
        let x = random(sequences * length * dim, seed: 11)
        var y = [Float](repeating: 0, count: x.count)
        let seconds = time(repeats: 2) {
            y.withUnsafeMutableBufferPointer { att.apply(x, sequences: sequences, length: length, into: $0.baseAddress!) }
        }
        let macs = Double(sequences * length) * Double(dim * 3 * adim + adim * dim) + 2 * Double(sequences * length * length * adim)
        let gflops = 2 * macs / seconds / 1e9
        lines.append(String(format: "attention %d×(L=%d, d=%d, %d heads): %.1f GFLOP/s (%.0f%% of sgemm)", sequences, length, adim, heads, gflops, 100 * gflops / peak))
        return lines.joined(separator: "\n")
    }

    /// `tuss-codec bench tuss`: one forward of `seconds` of audio with `prompts` prompts.
    public static func tuss(_ model: TUSSModel, seconds: Double = 6, prompts: [Prompt]) throws(PipelineError) -> String {
        let peak = sgemmPeak()
        let rate = model.config.sampleRate
        let x = random(Int(seconds * Double(rate)), seed: 12)
        let start = ContinuousClock.now
        let result: TUSSForwardResult
        do {
            result = try model.forward(x, prompts: prompts, capture: false)
        } catch {
            throw .failed("\(error)")
        }
        let d = ContinuousClock.now - start
        let wall = Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
        let frames = (x.count + model.config.hopLength - 1) / model.config.hopLength + 1
        let macs = ModelCost.tuss(model.config, frames: frames, prompts: prompts.count)
        let gflops = 2 * macs / wall / 1e9
        let t = result.timings
        var lines = [
            String(format: "threads: %d", ComputeThreads.count),
            String(format: "input: %.1f s at %d Hz, %d prompts (%@)", seconds, rate, prompts.count, prompts.map(\.name).joined(separator: ",")),
            String(format: "wall time: %.2f s (real-time factor %.3f)", wall, wall / seconds),
            String(format: "work: %.1f GMAC = %.1f GFLOP; achieved %.1f GFLOP/s", macs / 1e9, 2 * macs / 1e9, gflops),
            String(format: "sgemm peak this run: %.1f GFLOP/s; achieved/peak = %.0f%%", peak, 100 * gflops / peak),
            "time split:",
        ]
        for (name, v) in [("stft", t.stft), ("band-split encoder", t.encoder), ("cross-prompt blocks", t.crossPrompt),
                          ("conditional TSE blocks", t.conditionalTSE), ("band-wise decoder", t.decoder), ("mask + iSTFT", t.istft)] {
            lines.append(String(format: "  %-24@ %7.3f s  %5.1f%%", name as NSString, v, 100 * v / max(t.total, 1e-9)))
        }
        return lines.joined(separator: "\n")
    }

    /// `tuss-codec bench codec`: encode and decode `seconds` of audio.
    public static func codec(_ codec: DACCodec, seconds: Double = 10, label: String) -> String {
        let peak = sgemmPeak()
        let rate = codec.config.sampleRate
        let x = random(Int(seconds * Double(rate)), seed: 13).map { $0 * 0.5 }
        var codes: [[Int32]] = []
        let encodeSeconds = time(repeats: 1) { codes = codec.encode(x) }
        let decodeSeconds = time(repeats: 1) { _ = codec.decode(codes) }
        let frames = codes.first?.count ?? 0
        let cost = ModelCost.dac(codec.config, frames: frames)
        let encG = 2 * cost.encode / encodeSeconds / 1e9, decG = 2 * cost.decode / decodeSeconds / 1e9
        return [
            "\(label): \(rate) Hz, hop \(codec.config.hopLength), \(codec.config.codebooks) codebooks",
            String(format: "  encode %.1f s of audio: %.2f s (RTF %.3f), %.1f GMAC, %.1f GFLOP/s = %.0f%% of sgemm %.1f",
                   seconds, encodeSeconds, encodeSeconds / seconds, cost.encode / 1e9, encG, 100 * encG / peak, peak),
            String(format: "  decode %.1f s of audio: %.2f s (RTF %.3f), %.1f GMAC, %.1f GFLOP/s = %.0f%% of sgemm %.1f",
                   seconds, decodeSeconds, decodeSeconds / seconds, cost.decode / 1e9, decG, 100 * decG / peak, peak),
        ].joined(separator: "\n")
    }

    /// `tuss-codec bench masker`: the latent masker offline over `seconds` of latent frames, and streamed one frame
    /// per push as a server would; with a codec, also the re-quantisation of each prompt's latent.
    public static func masker(_ masker: LatentMasker, label: String, frameRate: Double, seconds: Double,
                              prompts: [Prompt], quantizer: ResidualVectorQuantizer?, codebooks: Int) -> String {
        let c = masker.config
        let frames = max(1, Int((seconds * frameRate).rounded()))
        let latent = Tensor(shape: [c.latentDim, frames], data: random(c.latentDim * frames, seed: 14))
        let offline = time(repeats: 2) { _ = masker.separate(latent, prompts: prompts) }
        let streamFrames = min(frames, Int(frameRate * 10))
        let streamSeconds = Double(streamFrames) / frameRate
        // Pushes of one frame (lowest latency) and of 10 frames (200 ms at 50 frames/s), as a server might.
        let streamed = [1, 10].map { per in
            (per, time(repeats: 1) {
                var stream = masker.makeStream(prompts: prompts)
                for t0 in stride(from: 0, to: streamFrames, by: per) {
                    let n = min(per, streamFrames - t0)
                    var piece = Tensor(zeros: [c.latentDim, n])
                    for ch in 0..<c.latentDim { for t in 0..<n { piece.data[ch * n + t] = latent.data[ch * frames + t0 + t] } }
                    _ = stream.push(piece)
                }
                _ = stream.finish()
            })
        }
        let cost = ModelCost.masker(c, frames: frames, prompts: prompts.count)
        let total = cost.shared + Double(prompts.count) * cost.perPrompt
        let one = ModelCost.masker(c, frames: frames, prompts: 1)
        var lines = [
            "\(label): latent \(c.latentDim), D \(c.modelDim), \(c.heads) heads, FFN \(c.ffnDim), \(c.jointLayers) joint + \(c.filmLayers) FiLM layers, window \(c.window) frames, lookahead \(c.lookahead)",
            String(format: "threads: %d; %.1f s of latent at %.2f frames/s; %d prompt%@ (%@)", ComputeThreads.count, seconds, frameRate,
                   prompts.count, prompts.count == 1 ? "" : "s", prompts.map(\.name).joined(separator: ",")),
            String(format: "compute: %.4f GMAC per second of audio for one prompt (shared %.4f + per prompt %.4f); %.4f for these prompts",
                   (one.shared + one.perPrompt) / seconds / 1e9, cost.shared / seconds / 1e9, cost.perPrompt / seconds / 1e9, total / seconds / 1e9),
            String(format: "offline: %.3f s (real-time factor %.4f, %.0fx faster than real time)", offline, offline / seconds, seconds / offline),
        ]
        for (per, wall) in streamed {
            lines.append(String(format: "streamed %d frame%@ per push (%.1f s): %.3f s (real-time factor %.4f, %.0fx faster than real time)",
                                per, per == 1 ? "" : "s", streamSeconds, wall, wall / streamSeconds, streamSeconds / wall))
        }
        if let quantizer {
            let books = min(codebooks, quantizer.codebookCount)
            let matcher = LatentCodeMatcher(quantizer)
            let rvq = time(repeats: 2) { _ = matcher.match(latent, codebooks: books) }
            lines.append(String(format: "back to codes (%d codebooks) per prompt: %.3f s (real-time factor %.4f)", books, rvq, rvq / seconds))
        }
        return lines.joined(separator: "\n")
    }
}
