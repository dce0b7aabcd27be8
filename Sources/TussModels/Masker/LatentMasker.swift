import TussTensor
import TussWeights

/// A layer norm with affine parameters over the last axis (PyTorch `nn.LayerNorm`, eps 1e-5).
struct AffineLayerNorm: Sendable {
    let weight: [Float]
    let bias: [Float]

    init(_ w: WeightReader, _ name: String, dim: Int) throws(ModelError) {
        weight = try w.floats("\(name).weight", shape: [dim])
        bias = try w.floats("\(name).bias", shape: [dim])
    }

    /// Writes the normalised `rows` vectors of `x` to `y` (which may equal `x`).
    func apply(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, rows: Int) {
        let dim = weight.count
        if UnsafePointer(y) != x { y.update(from: x, count: rows * dim) }
        weight.withUnsafeBufferPointer { wb in
            bias.withUnsafeBufferPointer { bb in
                Normalization.layerNorm(y, rows: rows, dim: dim, weight: wb.baseAddress, bias: bb.baseAddress)
            }
        }
    }
}

/// Reads a PyTorch `nn.Linear` (`<name>.weight` `[out, in]`, `<name>.bias` `[out]`).
func maskerLinear(_ w: WeightReader, _ name: String, inFeatures: Int, outFeatures: Int) throws(ModelError) -> Linear {
    Linear(weight: try w.floats("\(name).weight", shape: [outFeatures, inFeatures]),
           bias: try w.floats("\(name).bias", shape: [outFeatures]), inFeatures: inFeatures, outFeatures: outFeatures)
}

/// One pre-norm transformer layer of the masker: LayerNorm → attention → residual; LayerNorm → Linear, SiLU,
/// Linear → residual. Parameters: `attn_norm`, `attn.qkv` (D → 3D, `[q | k | v]`, head-major), `attn.out`,
/// `ffn_norm`, `ffn.in` (D → F), `ffn.out` (F → D).
struct MaskerLayer: Sendable {
    let attnNorm: AffineLayerNorm
    let qkv: Linear
    let out: Linear
    let ffnNorm: AffineLayerNorm
    let ffnIn: Linear
    let ffnOut: Linear

    init(_ w: WeightReader, dim: Int, ffn: Int) throws(ModelError) {
        attnNorm = try AffineLayerNorm(w, "attn_norm", dim: dim)
        qkv = try maskerLinear(w, "attn.qkv", inFeatures: dim, outFeatures: 3 * dim)
        out = try maskerLinear(w, "attn.out", inFeatures: dim, outFeatures: dim)
        ffnNorm = try AffineLayerNorm(w, "ffn_norm", dim: dim)
        ffnIn = try maskerLinear(w, "ffn.in", inFeatures: dim, outFeatures: ffn)
        ffnOut = try maskerLinear(w, "ffn.out", inFeatures: ffn, outFeatures: dim)
    }

    /// Adds the feed-forward branch to `h` (`[rows, D]`); `normed` and `hidden` are scratch of D and F per row.
    func feedForward(_ h: UnsafeMutablePointer<Float>, rows: Int, normed: UnsafeMutablePointer<Float>,
                     hidden: UnsafeMutablePointer<Float>) {
        ffnNorm.apply(h, into: normed, rows: rows)
        ffnIn.apply(normed, rows: rows, into: hidden)
        Activation.silu(hidden, count: rows * ffnIn.outFeatures)
        ffnOut.apply(hidden, rows: rows, into: h, accumulate: true)
    }
}

/// The codec-path separator: masks a codec latent once per prompt, causally or with a bounded lookahead, so a
/// stream and a whole file give the same result (`docs/masker.md`).
///
/// Start and prompt tokens (prompt embedding plus slot embedding, so repeated prompts differ) run with the frames
/// through `jointLayers` layers in which prompts see prompts and frame t sees the prompts and frames t−W+1 … t.
/// Each prompt's output token gives FiLM scale and shift for `filmLayers` frame layers; a head then yields an
/// unbounded mask on the latent (and, with `config.additive`, a second head a term added to the masked latent).
public struct LatentMasker: Sendable {
    /// The sizes, prompt vocabulary and codec identity the model was built with.
    public let config: LatentMaskerConfig
    let inputProj: Linear
    /// With `config.lookahead` L > 0: `[L·C → D]` without bias, applied to the next L frames `[z_{t+1}; …; z_{t+L}]`
    /// (zero past the end) and added to frame t's input projection.
    let inputAhead: Linear?
    let startToken: [Float]
    /// `[prompts, D]` rows in `config.prompts` order.
    let promptEmbed: [Float]
    /// `[maxPrompts, D]`.
    let slotEmbed: [Float]
    let joint: [MaskerLayer]
    let jointNorm: AffineLayerNorm
    /// Per FiLM layer: `D → 2D` (`[γ | β]`).
    let film: [Linear]
    let filmStage: [MaskerLayer]
    let outNorm: AffineLayerNorm
    let maskHead: Linear
    /// With `config.additive`: the term added after masking. A mask alone cannot move a latent coordinate whose
    /// mixture value is near zero, nor flip its sign, and a codec latent is not a sum of its sources' latents.
    let addHead: Linear?

    /// Builds the masker from our parameter names (`input_proj`, `start_token`, `prompt_embed.weight`,
    /// `slot_embed.weight`, `joint.<i>.*`, `joint_norm`, `film.<l>`, `film_stage.<l>.*`, `out_norm`, `mask_head`,
    /// `add_head` when `config.additive`, and `input_ahead.weight` `[D, L·C]` when `config.lookahead` L > 0).
    /// A tensor the configuration does not read (say `add_head.*` with `additive` false, or a third joint layer of a
    /// two-layer config) is refused: the file and its config disagree, and running it would give wrong outputs
    /// without any error.
    public init(config: LatentMaskerConfig, weights: WeightStore) throws(ModelError) {
        let log = WeightReadLog()
        try self.init(config: config, reader: WeightReader(weights, log: log))
        if let unused = weights.names.first(where: { !log.names.contains($0) }) {
            throw .badWeights("tensor '\(unused)' is not part of a masker with this config (additive \(config.additive), "
                              + "lookahead \(config.lookahead), \(config.jointLayers) joint + \(config.filmLayers) FiLM "
                              + "layers): the file and its config disagree")
        }
    }

    /// Builds a masker of the given size with synthetic random weights (benchmarks and tests); its output is noise.
    public init(randomWeightsFor config: LatentMaskerConfig, seed: UInt64 = 1) throws(ModelError) {
        try self.init(config: config, reader: WeightReader.random(seed: seed))
    }

    init(config: LatentMaskerConfig, reader w: WeightReader) throws(ModelError) {
        try config.validate()
        self.config = config
        let d = config.modelDim, c = config.latentDim
        inputProj = try maskerLinear(w, "input_proj", inFeatures: c, outFeatures: d)
        if config.lookahead > 0 {
            let width = config.lookahead * c
            inputAhead = Linear(weight: try w.floats("input_ahead.weight", shape: [d, width]), bias: nil,
                                inFeatures: width, outFeatures: d)
        } else {
            inputAhead = nil
        }
        startToken = try w.floats("start_token", shape: [d])
        promptEmbed = try w.floats("prompt_embed.weight", shape: [config.prompts.count, d])
        slotEmbed = try w.floats("slot_embed.weight", shape: [config.maxPrompts, d])
        var layers: [MaskerLayer] = []
        for i in 0..<config.jointLayers { layers.append(try MaskerLayer(w.scoped("joint.\(i)"), dim: d, ffn: config.ffnDim)) }
        joint = layers
        jointNorm = try AffineLayerNorm(w, "joint_norm", dim: d)
        var films: [Linear] = []
        layers = []
        for l in 0..<config.filmLayers {
            films.append(try maskerLinear(w, "film.\(l)", inFeatures: d, outFeatures: 2 * d))
            layers.append(try MaskerLayer(w.scoped("film_stage.\(l)"), dim: d, ffn: config.ffnDim))
        }
        film = films
        filmStage = layers
        outNorm = try AffineLayerNorm(w, "out_norm", dim: d)
        maskHead = try maskerLinear(w, "mask_head", inFeatures: d, outFeatures: c)
        addHead = config.additive ? try maskerLinear(w, "add_head", inFeatures: d, outFeatures: c) : nil
    }

    /// Refuses prompt lists the masker cannot run: empty, longer than `maxPrompts`.
    public func check(prompts: [Prompt]) throws(ModelError) {
        guard !prompts.isEmpty else { throw .noPrompts }
        guard prompts.count <= config.maxPrompts else { throw .tooManyPrompts(prompts.count, max: config.maxPrompts) }
    }

    /// Offline: latent (C, T) → one masked latent (C, T) per prompt, in prompt order.
    ///
    /// The streaming form over the whole input, then its end. It runs in blocks of frames, so scratch memory is
    /// bounded by the block; the input is held once more while it runs. Prompts must number 1 … `config.maxPrompts`
    /// (see `check(prompts:)`).
    public func separate(_ latent: Tensor, prompts: [Prompt]) -> [Tensor] {
        var stream = makeStream(prompts: prompts)
        let head = stream.push(latent)
        let tail = stream.finish()
        guard config.lookahead > 0 else { return head }
        return zip(head, tail).map { LatentMaskerStream.joinFrames($0, $1) }
    }

    /// A streaming masker for these prompts (1 … `config.maxPrompts`, names from `config.prompts`).
    public func makeStream(prompts: [Prompt]) -> LatentMaskerStream {
        precondition(!prompts.isEmpty && prompts.count <= config.maxPrompts,
                     "LatentMasker: \(prompts.count) prompts; pass 1 … \(config.maxPrompts)")
        return LatentMaskerStream(masker: self, prompts: prompts)
    }

    /// The embedding row of a prompt (the configuration lists every prompt name; checked at load).
    func promptRow(_ prompt: Prompt) -> Int {
        config.prompts.firstIndex(of: prompt.name) ?? 0
    }
}
