import TussTensor

/// TF-Locoformer's SwiGLU convolution/deconvolution feed-forward along a token sequence (stride 1).
///
/// The kernel-k convolution zero-pads k−1 tokens on both sides and the transposed convolution keeps the central
/// outputs, so the receptive field is ±(k−1) tokens. Both are lowered to one GEMM each over slabs of whole
/// sequences: the convolution through an im2col of k·D columns, the deconvolution as a single product of the gated
/// activations with all k taps side by side (`[hidden, k·dim]`, the activations packed once instead of k times),
/// whose k column blocks are then gathered at their shifts and added to the residual in one pass.
struct SwiGLUConvDeconv: Sendable {
    let dim: Int
    let hidden: Int
    let kernel: Int
    /// `[2·hidden, kernel·dim]`, column `κ·dim + i` holding the official `conv1d.weight[c, i, κ]`.
    let convWeight: [Float]
    let convBias: [Float]
    /// `[hidden, kernel·dim]`: column `κ·dim + o` holds the official `deconv1d.weight[:, o, κ]`.
    let deconvWeight: [Float]
    let deconvBias: [Float]

    init(_ w: WeightReader, dim: Int, hidden: Int, kernel: Int) throws(ModelError) {
        self.dim = dim
        self.hidden = hidden
        self.kernel = kernel
        let conv = try w.floats("conv1d.weight", shape: [2 * hidden, dim, kernel])
        var cw = [Float](repeating: 0, count: conv.count)
        for c in 0..<2 * hidden { for i in 0..<dim { for k in 0..<kernel {
            cw[c * kernel * dim + k * dim + i] = conv[(c * dim + i) * kernel + k]
        } } }
        convWeight = cw
        convBias = try w.floats("conv1d.bias", shape: [2 * hidden])
        let deconv = try w.floats("deconv1d.weight", shape: [hidden, dim, kernel])
        var dw = [Float](repeating: 0, count: deconv.count)
        for i in 0..<hidden { for o in 0..<dim { for k in 0..<kernel {
            dw[i * kernel * dim + k * dim + o] = deconv[(i * dim + o) * kernel + k]
        } } }
        deconvWeight = dw
        deconvBias = try w.floats("deconv1d.bias", shape: [dim])
    }

    /// Adds `FFN(x)` to `y` for `sequences` sequences of `length` tokens (`[sequences·length, dim]` both).
    func accumulate(_ x: UnsafePointer<Float>, sequences: Int, length: Int, into y: UnsafeMutablePointer<Float>) {
        // Slabs of whole sequences (~2k rows) bound the scratch, let each worker run single-threaded GEMMs, and
        // are numerous enough to balance two workers.
        let pad = kernel - 1
        // Conv outputs j in 0..<length+pad per sequence: the deconvolution's gather reads rows t … t+pad only.
        let stride = length + pad
        let perSlab = max(1, 2048 / max(stride, 1))
        let slabs = (sequences + perSlab - 1) / perSlab
        let parallelSlabs = slabs >= ComputeThreads.count && ComputeThreads.count > 1
        let kd = kernel * dim
        let run = { (lo: Int, hi: Int, parallelGEMM: Bool) in
            let rowsMax = min(perSlab, sequences) * stride
            Scratch.with(rowsMax * kd, rowsMax * 2 * hidden) { colp, zp in
            Scratch.with(rowsMax * hidden, rowsMax * kd) { gp, pp in
            convWeight.withUnsafeBufferPointer { cw in deconvWeight.withUnsafeBufferPointer { dw in
            convBias.withUnsafeBufferPointer { cb in deconvBias.withUnsafeBufferPointer { db in
                guard let cw = cw.baseAddress, let dw = dw.baseAddress,
                      let cb = cb.baseAddress, let db = db.baseAddress else { return }
                for slab in lo..<hi {
                    let s0 = slab * perSlab, s1 = min(sequences, s0 + perSlab)
                    let rows = (s1 - s0) * stride
                    // im2col: row j of sequence s holds tokens j−pad … j (zero outside).
                    for s in s0..<s1 {
                        let src = x + s * length * dim
                        let base = colp + (s - s0) * stride * kd
                        for j in 0..<stride {
                            let row = base + j * kd
                            for k in 0..<kernel {
                                let t = j + k - pad
                                if t >= 0 && t < length {
                                    (row + k * dim).update(from: src + t * dim, count: dim)
                                } else {
                                    (row + k * dim).update(repeating: 0, count: dim)
                                }
                            }
                        }
                    }
                    BLAS.gemm(transB: true, m: rows, n: 2 * hidden, k: kd, a: colp, lda: kd,
                              b: cw, ldb: kd, c: zp, ldc: 2 * hidden, parallel: parallelGEMM)
                    Activation.swiglu(zp, rows: rows, width: hidden, bias: cb, into: gp)
                    // All taps in one product: row r of pp holds g[r]·W_κ for every κ side by side.
                    BLAS.gemm(m: rows, n: kd, k: hidden, a: gp, lda: hidden, b: dw, ldb: kd,
                              c: pp, ldc: kd, parallel: parallelGEMM)
                    // Transposed convolution: out[t] = Σκ g[t + pad − κ]·W_κ, gathered straight into y.
                    for s in s0..<s1 {
                        Activation.overlapAddRows(pp + (s - s0) * stride * kd, taps: kernel, dim: dim, length: length,
                                                  shift: pad, bias: db, into: y + s * length * dim)
                    }
                }
            } } } }
            } }
        }
        if parallelSlabs {
            ComputeThreads.parallelRanges(slabs) { lo, hi in run(lo, hi, false) }
        } else {
            run(0, slabs, true)
        }
    }
}

/// One macaron Locoformer layer along a sequence axis: FFN, self-attention, FFN, each pre-normed and residual.
struct LocoformerLayer: Sendable {
    let dim: Int
    let groups: Int
    let eps: Float
    let preNorm: [Float], attnNorm: [Float], postNorm: [Float]
    let preFFN: SwiGLUConvDeconv, postFFN: SwiGLUConvDeconv
    let attention: MultiHeadSelfAttention

    init(_ w: WeightReader, config: LocoformerConfig, ffn: [LocoformerConfig.FFNConfig], rope: RotaryEmbedding, eps: Float) throws(ModelError) {
        let d = config.embDim
        dim = d
        groups = config.groups
        self.eps = eps
        // Index 1 runs before attention, index 0 after (the official lists are reversed).
        preNorm = try w.floats("ffn_norm.1.gamma", shape: [d])
        postNorm = try w.floats("ffn_norm.0.gamma", shape: [d])
        attnNorm = try w.floats("attn_norm.gamma", shape: [d])
        preFFN = try SwiGLUConvDeconv(w.scoped("ffn.1"), dim: d, hidden: ffn[1].hidden, kernel: ffn[1].kernel)
        postFFN = try SwiGLUConvDeconv(w.scoped("ffn.0"), dim: d, hidden: ffn[0].hidden, kernel: ffn[0].kernel)
        let a = config.attentionDim
        let storedRope: RotaryEmbedding
        if w.has("attn.rope.freqs") {
            storedRope = RotaryEmbedding(frequencies: try w.floats("attn.rope.freqs", shape: [a / config.heads / 2]))
        } else {
            storedRope = rope
        }
        attention = MultiHeadSelfAttention(
            qkv: Linear(weight: try w.floats("attn.qkv.weight", shape: [3 * a, d]), bias: nil, inFeatures: d, outFeatures: 3 * a),
            output: Linear(weight: try w.floats("attn.aggregate_heads.0.weight", shape: [d, a]), bias: nil, inFeatures: a, outFeatures: d),
            heads: config.heads, rope: storedRope)
    }

    /// Runs the layer in place on `h` (`[sequences·length, dim]`); `scratch` holds at least as many floats.
    func apply(_ h: UnsafeMutablePointer<Float>, sequences: Int, length: Int, scratch: UnsafeMutablePointer<Float>) {
        let rows = sequences * length
        Normalization.rmsGroupNorm(h, into: scratch, rows: rows, dim: dim, groups: groups, gamma: preNorm, eps: eps)
        preFFN.accumulate(scratch, sequences: sequences, length: length, into: h)
        Normalization.rmsGroupNorm(h, into: scratch, rows: rows, dim: dim, groups: groups, gamma: attnNorm, eps: eps)
        attention.apply(scratch, sequences: sequences, length: length, into: h, accumulate: true)
        Normalization.rmsGroupNorm(h, into: scratch, rows: rows, dim: dim, groups: groups, gamma: postNorm, eps: eps)
        postFFN.accumulate(scratch, sequences: sequences, length: length, into: h)
    }
}

/// A TF-Locoformer block: a Locoformer layer across bands (frequency path) and one across time (frame path).
struct TFLocoformerBlock: Sendable {
    let freq: LocoformerLayer
    let frame: LocoformerLayer
    let frequencyFirst: Bool

    init(_ w: WeightReader, config: LocoformerConfig, eps: Float) throws(ModelError) {
        let rope = RotaryEmbedding(headDim: config.attentionDim / config.heads)
        freq = try LocoformerLayer(w.scoped("freq_path"), config: config, ffn: config.freqFFN, rope: rope, eps: eps)
        frame = try LocoformerLayer(w.scoped("frame_path"), config: config, ffn: config.frameFFN, rope: rope, eps: eps)
        frequencyFirst = config.order == "ft"
    }

    /// Runs the block on `h`, laid out `[batch, time, bands, dim]`, in place.
    func apply(_ h: inout [Float], batch: Int, time: Int, bands: Int, dim: Int) {
        let count = h.count
        h.withUnsafeMutableBufferPointer { hb in
            guard let hp = hb.baseAddress else { return }
            Scratch.with(count, count) { scratch, swapped in
                for pass in 0..<2 {
                    let frequencyPass = (pass == 0) == frequencyFirst
                    if frequencyPass {
                        freq.apply(hp, sequences: batch * time, length: bands, scratch: scratch)
                    } else {
                        swapAxes(hp, into: swapped, batch: batch, a: time, b: bands, dim: dim)
                        frame.apply(swapped, sequences: batch * bands, length: time, scratch: scratch)
                        swapAxes(swapped, into: hp, batch: batch, a: bands, b: time, dim: dim)
                    }
                }
            }
        }
    }
}

/// Swaps the two middle axes of a `[batch, a, b, dim]` array into `[batch, b, a, dim]`.
func swapAxes(_ xp: UnsafePointer<Float>, into yp: UnsafeMutablePointer<Float>, batch: Int, a: Int, b: Int, dim: Int) {
    ComputeThreads.parallelRanges(batch * a, minChunk: 64) { lo, hi in
        for row in lo..<hi {
            let n = row / a, i = row % a
            for j in 0..<b {
                (yp + ((n * b + j) * a + i) * dim).update(from: xp + ((n * a + i) * b + j) * dim, count: dim)
            }
        }
    }
}
