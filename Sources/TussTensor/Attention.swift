#if os(Linux)
import Glibc
#endif

/// Rotary position encoding on interleaved pairs `(2p, 2p+1)`, as rotary-embedding-torch applies it.
public struct RotaryEmbedding: Sendable {
    /// `θ_p` for `p = 0..<dim/2`.
    public let frequencies: [Float]

    /// Creates the embedding from stored frequencies (`…attn.rope.freqs`).
    public init(frequencies: [Float]) { self.frequencies = frequencies }

    /// Creates the default embedding for a head dimension: `θ_p = 10000^(−2p/dim)`.
    public init(headDim: Int, theta: Double = 10000) {
        frequencies = (0..<headDim / 2).map { p in Float(1 / pow(theta, Double(2 * p) / Double(headDim))) }
    }

    /// The rotated head dimension.
    public var dim: Int { frequencies.count * 2 }

    /// Cosine and sine of `position·θ_p` for positions `0..<length`, each `[length, dim/2]`.
    ///
    /// The angle is formed in Float as the reference does, then evaluated accurately.
    public func table(length: Int) -> (cos: [Float], sin: [Float]) {
        let half = frequencies.count
        var c = [Float](repeating: 0, count: length * half), s = c
        for t in 0..<length {
            for p in 0..<half {
                let angle = Float(t) * frequencies[p]
                c[t * half + p] = Float(Foundation_cos(Double(angle)))
                s[t * half + p] = Float(Foundation_sin(Double(angle)))
            }
        }
        return (c, s)
    }

    /// Rotates `rows` vectors (row `r` at position `r % length`, `rowStride` apart) in place.
    @inline(__always)
    static func rotate(_ v: UnsafeMutablePointer<Float>, position: Int, cos c: UnsafePointer<Float>,
                       sin s: UnsafePointer<Float>, half: Int) {
        let cr = c + position * half, sr = s + position * half
        for p in 0..<half {
            let a = v[2 * p], b = v[2 * p + 1]
            v[2 * p] = a * cr[p] - b * sr[p]
            v[2 * p + 1] = b * cr[p] + a * sr[p]
        }
    }
}

@inline(__always) func Foundation_cos(_ x: Double) -> Double { cos(x) }
@inline(__always) func Foundation_sin(_ x: Double) -> Double { sin(x) }

/// Multi-head self-attention without bias: `qkv` projection, optional RoPE on q and k, softmax(qkᵀ/√dh)·v per head,
/// output projection. Layout of the projection: `[q of all heads | k | v]`, head-major inside each.
public struct MultiHeadSelfAttention: Sendable {
    public let qkv: Linear
    public let output: Linear
    public let heads: Int
    public let rope: RotaryEmbedding?

    /// Creates the layer; `qkv` maps `dim → 3·attentionDim` and `output` maps `attentionDim → dim`.
    public init(qkv: Linear, output: Linear, heads: Int, rope: RotaryEmbedding?) {
        precondition(qkv.outFeatures % 3 == 0 && (qkv.outFeatures / 3) % heads == 0, "attention: dims")
        precondition(output.inFeatures == qkv.outFeatures / 3, "attention: output projection")
        self.qkv = qkv
        self.output = output
        self.heads = heads
        self.rope = rope
        if let rope { precondition(rope.dim == qkv.outFeatures / 3 / heads, "attention: RoPE dim ≠ head dim") }
    }

    /// The attention width (all heads).
    public var attentionDim: Int { qkv.outFeatures / 3 }

    /// Attends within each of `sequences` sequences of `length` tokens; `x` and `y` are `[sequences·length, dim]`.
    ///
    /// With `accumulate`, the result is added to what `y` holds (a residual connection without a copy).
    public func apply(_ x: UnsafePointer<Float>, sequences: Int, length: Int, into y: UnsafeMutablePointer<Float>,
                      accumulate: Bool = false) {
        let rows = sequences * length
        guard rows > 0 else { return }
        let a = attentionDim, dh = a / heads, width = 3 * a
        let table = rope?.table(length: length)
        Scratch.with(rows * width, rows * a) { proj, mix in
            qkv.apply(x, rows: rows, into: proj)
            if let table {
                table.cos.withUnsafeBufferPointer { cb in
                    table.sin.withUnsafeBufferPointer { sb in
                        let half = dh / 2
                        guard let c = cb.baseAddress, let s = sb.baseAddress else { return }
                        ComputeThreads.parallelRanges(rows, minChunk: 256) { lo, hi in
                            for r in lo..<hi {
                                let pos = r % length
                                let row = proj + r * width
                                for h in 0..<heads {
                                    RotaryEmbedding.rotate(row + h * dh, position: pos, cos: c, sin: s, half: half)
                                    RotaryEmbedding.rotate(row + a + h * dh, position: pos, cos: c, sin: s, half: half)
                                }
                            }
                        }
                    }
                }
            }
            let scale = 1 / Float(dh).squareRoot()
            let items = sequences * heads
            // Query rows go in blocks of up to 1024: one block per head for TUSS's sequence lengths, which packs
            // k and v once (smaller blocks re-pack them for each block and measured slower), while bounding the
            // score scratch for long sequences.
            let block = min(length, 1024)
            ComputeThreads.parallelRanges(items) { lo, hi in
                // Scores, then one inverse row sum per query: the softmax leaves the scores unnormalised and the
                // dh-wide output row is scaled instead, one pass over the length-wide score row fewer.
                Scratch.with(block * length + block) { sc in
                    let inv = sc + block * length
                    for item in lo..<hi {
                        let seq = item / heads, h = item % heads
                        let base = proj + seq * length * width
                        let k = base + a + h * dh, v = base + 2 * a + h * dh
                        var q0 = 0
                        while q0 < length {
                            let rows = min(block, length - q0)
                            BLAS.gemm(transB: true, m: rows, n: length, k: dh, alpha: scale,
                                      a: base + q0 * width + h * dh, lda: width, b: k, ldb: width,
                                      c: sc, ldc: length, parallel: false)
                            Activation.softmaxRowsUnnormalized(sc, rows: rows, width: length, inverseSums: inv)
                            let out = mix + (seq * length + q0) * a + h * dh
                            BLAS.gemm(m: rows, n: dh, k: length, a: sc, lda: length, b: v, ldb: width,
                                      c: out, ldc: a, parallel: false)
                            for r in 0..<rows {
                                let o = out + r * a, f = inv[r]
                                for i in 0..<dh { o[i] *= f }
                            }
                            q0 += rows
                        }
                    }
                }
            }
            output.apply(mix, rows: rows, into: y, accumulate: accumulate)
        }
    }
}
