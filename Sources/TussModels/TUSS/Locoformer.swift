import TussTensor

/// TF-Locoformer's SwiGLU convolution/deconvolution feed-forward along a token sequence (stride 1).
///
/// The kernel-k convolution zero-pads k−1 tokens on both sides and the transposed convolution keeps the central
/// outputs, so the receptive field is ±(k−1) tokens. Both are lowered to GEMMs over all sequences at once: the
/// convolution through an im2col of k·D columns, the deconvolution as k products over shifted views of the gated
/// activations (no second im2col copy).
struct SwiGLUConvDeconv: Sendable {
    let dim: Int
    let hidden: Int
    let kernel: Int
    /// `[2·hidden, kernel·dim]`, column `κ·dim + i` holding the official `conv1d.weight[c, i, κ]`.
    let convWeight: [Float]
    let convBias: [Float]
    /// `kernel` blocks of `[hidden, dim]`: block κ holds the official `deconv1d.weight[:, :, κ]`.
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
            dw[k * hidden * dim + i * dim + o] = deconv[(i * dim + o) * kernel + k]
        } } }
        deconvWeight = dw
        deconvBias = try w.floats("deconv1d.bias", shape: [dim])
    }

    /// Adds `FFN(x)` to `y` for `sequences` sequences of `length` tokens (`[sequences·length, dim]` both).
    func accumulate(_ x: UnsafePointer<Float>, sequences: Int, length: Int, into y: UnsafeMutablePointer<Float>) {
        // Slabs of whole sequences bound the scratch and let each worker run single-threaded GEMMs.
        let pad = kernel - 1
        let stride = length + 2 * pad
        let perSlab = max(1, 4096 / max(stride, 1))
        let slabs = (sequences + perSlab - 1) / perSlab
        let parallelSlabs = slabs >= ComputeThreads.count && ComputeThreads.count > 1
        let run = { (lo: Int, hi: Int, parallelGEMM: Bool) in
            let maxSeqs = min(perSlab, sequences)
            let rowsMax = maxSeqs * stride
            var col = [Float](repeating: 0, count: rowsMax * kernel * dim)
            var z = [Float](repeating: 0, count: rowsMax * 2 * hidden)
            var g = [Float](repeating: 0, count: (rowsMax + pad) * hidden)
            var out = [Float](repeating: 0, count: rowsMax * dim)
            col.withUnsafeMutableBufferPointer { colb in z.withUnsafeMutableBufferPointer { zb in
            g.withUnsafeMutableBufferPointer { gb in out.withUnsafeMutableBufferPointer { ob in
            convWeight.withUnsafeBufferPointer { cw in deconvWeight.withUnsafeBufferPointer { dw in
                let colp = colb.baseAddress!, zp = zb.baseAddress!, gp = gb.baseAddress!, op = ob.baseAddress!
                for slab in lo..<hi {
                    let s0 = slab * perSlab, s1 = min(sequences, s0 + perSlab)
                    let rows = (s1 - s0) * stride
                    // im2col: row j of sequence s holds tokens j−pad … j (zero outside), for j in 0..<length+pad.
                    colp.update(repeating: 0, count: rows * kernel * dim)
                    for s in s0..<s1 {
                        let src = x + s * length * dim
                        let base = colp + (s - s0) * stride * kernel * dim
                        for j in 0..<(length + pad) {
                            let row = base + j * kernel * dim
                            for k in 0..<kernel {
                                let t = j + k - pad
                                if t >= 0 && t < length { (row + k * dim).update(from: src + t * dim, count: dim) }
                            }
                        }
                    }
                    for r in 0..<rows { (zp + r * 2 * hidden).update(from: convBias, count: 2 * hidden) }
                    BLAS.gemm(transB: true, m: rows, n: 2 * hidden, k: kernel * dim, a: colp, lda: kernel * dim,
                              b: cw.baseAddress!, ldb: kernel * dim, beta: 1, c: zp, ldc: 2 * hidden, parallel: parallelGEMM)
                    Activation.swiglu(zp, rows: rows, width: hidden, into: gp)
                    (gp + rows * hidden).update(repeating: 0, count: pad * hidden)
                    // Transposed convolution: out[t] = Σκ g[t + pad − κ]·Wκ, on the padded row grid.
                    for k in 0..<kernel {
                        BLAS.gemm(m: rows, n: dim, k: hidden, a: gp + (pad - k) * hidden, lda: hidden,
                                  b: dw.baseAddress! + k * hidden * dim, ldb: dim,
                                  beta: k == 0 ? 0 : 1, c: op, ldc: dim, parallel: parallelGEMM)
                    }
                    for s in s0..<s1 {
                        let dst = y + s * length * dim
                        let src = op + (s - s0) * stride * dim
                        for t in 0..<length {
                            let d = dst + t * dim, o = src + t * dim
                            for i in 0..<dim { d[i] += o[i] + deconvBias[i] }
                        }
                    }
                }
            } } } } } }
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
        var scratch = [Float](repeating: 0, count: h.count)
        for pass in 0..<2 {
            let frequencyPass = (pass == 0) == frequencyFirst
            if frequencyPass {
                h.withUnsafeMutableBufferPointer { hb in scratch.withUnsafeMutableBufferPointer { sb in
                    freq.apply(hb.baseAddress!, sequences: batch * time, length: bands, scratch: sb.baseAddress!)
                } }
            } else {
                var swapped = [Float](repeating: 0, count: h.count)
                swapAxes(h, into: &swapped, batch: batch, a: time, b: bands, dim: dim)
                swapped.withUnsafeMutableBufferPointer { wb in scratch.withUnsafeMutableBufferPointer { sb in
                    frame.apply(wb.baseAddress!, sequences: batch * bands, length: time, scratch: sb.baseAddress!)
                } }
                swapAxes(swapped, into: &h, batch: batch, a: bands, b: time, dim: dim)
            }
        }
    }
}

/// Swaps the two middle axes of a `[batch, a, b, dim]` array into `[batch, b, a, dim]`.
func swapAxes(_ x: [Float], into y: inout [Float], batch: Int, a: Int, b: Int, dim: Int) {
    x.withUnsafeBufferPointer { xb in y.withUnsafeMutableBufferPointer { yb in
        let xp = xb.baseAddress!, yp = yb.baseAddress!
        ComputeThreads.parallelRanges(batch * a, minChunk: 64) { lo, hi in
            for row in lo..<hi {
                let n = row / a, i = row % a
                for j in 0..<b {
                    (yp + ((n * b + j) * a + i) * dim).update(from: xp + ((n * a + i) * b + j) * dim, count: dim)
                }
            }
        }
    } }
}
