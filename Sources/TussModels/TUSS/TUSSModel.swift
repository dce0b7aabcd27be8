import TussAudio
import TussTensor
import TussWeights

/// Tensors captured inside one TUSS forward pass, named and laid out as the reference bundles store them.
public struct TUSSIntermediates: Sendable {
    /// `[frames, bins]` each.
    public var stftRe: [Float] = [], stftIm: [Float] = []
    /// `[dim, frames, bands]`.
    public var bandSplit: [Float] = []
    /// `[dim, prompts + 1 + frames, bands]`.
    public var crossOut: [Float] = []
    /// `[prompts, dim, frames, bands]`.
    public var tseOut: [Float] = []
    /// `[prompts, frames, bins]` each.
    public var maskRe: [Float] = [], maskIm: [Float] = []
}

/// Wall time spent in each stage of one forward pass, in seconds.
public struct TUSSTimings: Sendable {
    public var stft = 0.0, encoder = 0.0, crossPrompt = 0.0, conditionalTSE = 0.0, decoder = 0.0, istft = 0.0
    public var total: Double { stft + encoder + crossPrompt + conditionalTSE + decoder + istft }
}

/// What one forward pass returns.
public struct TUSSForwardResult: Sendable {
    /// One signal per prompt, as long as the input.
    public var outputs: [[Float]]
    public var intermediates: TUSSIntermediates?
    public var timings: TUSSTimings
}

/// The Task-aware Unified Source Separation model (TUSS, ICASSP 2025) for one mono signal at the model's rate.
///
/// A pure function of its input: STFT, band-split encoder, prompt tokens, cross-prompt TF-Locoformer blocks, prompt
/// conditioning, conditional-TSE blocks, band-wise complex masks, iSTFT. Official checkpoints load unchanged.
public struct TUSSModel: Sendable {
    public let config: TUSSConfig
    let encoder: BandSplitEncoder
    let decoder: BandwiseDecoder
    let crossBlocks: [TFLocoformerBlock]
    let tseBlocks: [TFLocoformerBlock]
    let promptVectors: [String: [Float]]
    let sosToken: [Float]
    let stft: STFT

    /// Builds the model from a configuration and weights named as the official state dict (`model.` optional).
    public init(config: TUSSConfig, weights: WeightStore) throws(ModelError) {
        self.config = config
        let root = WeightReader(weights.renamed(strippingPrefix: "model.")).scoped("separator")
        let d = config.embDim
        let bandModule = root.scoped("band_split_module")
        encoder = try BandSplitEncoder(bandModule.scoped("band_split_module"), edges: config.bandEdges, dim: d)
        decoder = try BandwiseDecoder(bandModule.scoped("bandwise_decoding_module"), edges: config.bandEdges, dim: d)
        var cross: [TFLocoformerBlock] = []
        for i in 0..<config.crossBlocks {
            cross.append(try TFLocoformerBlock(root.scoped("cross_prompt_module.\(i)"), config: config.cross, eps: config.eps))
        }
        var tse: [TFLocoformerBlock] = []
        for i in 0..<config.tseBlocks {
            tse.append(try TFLocoformerBlock(root.scoped("cond_tse_module.\(i)"), config: config.tse, eps: config.eps))
        }
        crossBlocks = cross
        tseBlocks = tse
        var vectors: [String: [Float]] = [:]
        for name in config.prompts { vectors[name] = try root.floats("prompts.\(name)", shape: [d, 1, 1]) }
        promptVectors = vectors
        sosToken = config.useSOSToken ? try root.floats("sos_token", shape: [d, 1, 1]) : []
        do {
            stft = try STFT(STFTConfig(fftSize: config.fftSize, hopLength: config.hopLength, windowLength: config.windowLength))
        } catch {
            throw .badConfig("STFT: \(error)")
        }
    }

    /// The prompts this model has vectors for.
    public var supportedPrompts: [Prompt] {
        Prompt.all.filter { promptVectors[$0.officialName] != nil }
    }

    /// Separates one mono signal at `config.sampleRate` into one signal per prompt, each as long as the input.
    public func separate(_ mixture: [Float], prompts: [Prompt]) throws(ModelError) -> [[Float]] {
        try forward(mixture, prompts: prompts, capture: false).outputs
    }

    private static func seconds(since start: ContinuousClock.Instant) -> Double {
        let d = ContinuousClock.now - start
        return Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
    }

    /// Runs the official forward; `capture` records the intermediates the reference bundles hold.
    public func forward(_ mixture: [Float], prompts: [Prompt], capture: Bool) throws(ModelError) -> TUSSForwardResult {
        try forward(mixture, prompts: prompts, capture: capture, spectrumOverride: nil)
    }

    /// The forward pass; `spectrumOverride` replaces the STFT of the normalised input (tests use it to separate
    /// the model's numerics from FFT rounding, which per-band normalisation amplifies in near-empty bands).
    func forward(_ mixture: [Float], prompts: [Prompt], capture: Bool,
                 spectrumOverride: (re: [Float], im: [Float], frames: Int)?) throws(ModelError) -> TUSSForwardResult {
        guard !prompts.isEmpty else { throw .noPrompts }
        var tokens: [[Float]] = []
        for p in prompts {
            guard let v = promptVectors[p.officialName] else {
                throw .unknownPrompt(p.name, valid: supportedPrompts.map(\.name))
            }
            tokens.append(v)
        }
        let length = mixture.count
        var timings = TUSSTimings()
        guard length > 0 else {
            return TUSSForwardResult(outputs: Array(repeating: [], count: prompts.count),
                                     intermediates: capture ? TUSSIntermediates() : nil, timings: timings)
        }
        var captured = TUSSIntermediates()
        var clock = ContinuousClock.now

        // Variance normalisation with the unbiased standard deviation, undone on the outputs.
        var scale: Float = 1
        var input = mixture
        if config.varianceNormalization {
            var sum = 0.0
            for v in mixture { sum += Double(v) }
            let mean = sum / Double(length)
            var sq = 0.0
            for v in mixture { let d = Double(v) - mean; sq += d * d }
            let std = length > 1 ? (sq / Double(length - 1)).squareRoot() : 0
            scale = Float(std + 1e-8)
            for i in 0..<length { input[i] = mixture[i] / scale }
        }
        let spectrum = spectrumOverride ?? stft.forward(input)
        timings.stft = Self.seconds(since: clock)
        clock = ContinuousClock.now
        let frames = spectrum.frames, bins = config.bins
        if capture { captured.stftRe = spectrum.re; captured.stftIm = spectrum.im }

        let n = prompts.count, k = config.bandCount, d = config.embDim
        let lead = n + (config.useSOSToken ? 1 : 0)
        let steps = lead + frames
        // Features are kept as [batch, time, bands, dim]: contiguous rows for the band path.
        var h = [Float](repeating: 0, count: steps * k * d)
        h.withUnsafeMutableBufferPointer { hb in
            let hp = hb.baseAddress!
            encoder.encode(re: spectrum.re, im: spectrum.im, frames: frames, bins: bins, into: hp, rowOffset: lead)
            for (i, token) in tokens.enumerated() {
                for b in 0..<k { (hp + (i * k + b) * d).update(from: token, count: d) }
            }
            if config.useSOSToken {
                for b in 0..<k { (hp + (n * k + b) * d).update(from: sosToken, count: d) }
            }
        }
        timings.encoder = Self.seconds(since: clock)
        clock = ContinuousClock.now
        if capture { captured.bandSplit = Self.channelsFirst(Array(h[(lead * k * d)...]), batch: 1, time: frames, bands: k, dim: d) }

        for block in crossBlocks { block.apply(&h, batch: 1, time: steps, bands: k, dim: d) }
        timings.crossPrompt = Self.seconds(since: clock)
        clock = ContinuousClock.now
        if capture { captured.crossOut = Self.channelsFirst(h, batch: 1, time: steps, bands: k, dim: d) }

        // Condition: each prompt's transformed token (per band) multiplies the frame features.
        var c = [Float](repeating: 0, count: n * frames * k * d)
        h.withUnsafeBufferPointer { hb in c.withUnsafeMutableBufferPointer { cb in
            let hp = hb.baseAddress!, cp = cb.baseAddress!
            ComputeThreads.parallelFor(n * frames) { row in
                let p = row / frames, t = row % frames
                let prompt = hp + p * k * d
                let frame = hp + (lead + t) * k * d
                let dst = cp + row * k * d
                for j in 0..<(k * d) { dst[j] = frame[j] * prompt[j] }
            }
        } }
        for block in tseBlocks { block.apply(&c, batch: n, time: frames, bands: k, dim: d) }
        timings.conditionalTSE = Self.seconds(since: clock)
        clock = ContinuousClock.now
        if capture { captured.tseOut = Self.channelsFirst(c, batch: n, time: frames, bands: k, dim: d) }

        var maskRe = [Float](repeating: 0, count: n * frames * bins)
        var maskIm = maskRe
        decoder.decode(c, sources: n, frames: frames, bins: bins, maskRe: &maskRe, maskIm: &maskIm)
        timings.decoder = Self.seconds(since: clock)
        clock = ContinuousClock.now
        if capture { captured.maskRe = maskRe; captured.maskIm = maskIm }

        // Complex mask times the mixture spectrum, then iSTFT and the scale back.
        var outputs: [[Float]] = []
        let cells = frames * bins
        for p in 0..<n {
            var yr = [Float](repeating: 0, count: cells), yi = yr
            for j in 0..<cells {
                let mr = maskRe[p * cells + j], mi = maskIm[p * cells + j]
                let xr = spectrum.re[j], xi = spectrum.im[j]
                yr[j] = mr * xr - mi * xi
                yi[j] = mr * xi + mi * xr
            }
            var y = stft.inverse(re: yr, im: yi, frames: frames, length: length)
            for i in 0..<y.count { y[i] *= scale }
            outputs.append(y)
        }
        timings.istft = Self.seconds(since: clock)
        return TUSSForwardResult(outputs: outputs, intermediates: capture ? captured : nil, timings: timings)
    }

    /// Re-lays `[batch, time, bands, dim]` as `[batch, dim, time, bands]` (the official channel-first order).
    static func channelsFirst(_ x: [Float], batch: Int, time: Int, bands: Int, dim: Int) -> [Float] {
        Tensor(shape: [batch, time, bands, dim], data: x).permuted([0, 3, 1, 2]).data
    }
}
