import TussTensor

/// Codes for a latent that did not come from the encoder: stage by stage, the code whose contribution to the latent
/// lies nearest (Euclidean) to the residual.
///
/// The codec path's masker emits latents in the space the decoder reads, and they must become codes again.
/// ``ResidualVectorQuantizer/quantize(_:codebooks:)`` is the wrong tool for that: its lookups compare each
/// codebook's *input projection* of the residual by cosine similarity, which suits encoder latents but is not
/// idempotent. A quantized latent does not come back to its own codes, because every input projection also weighs
/// the part of the encoder latent that quantization dropped. Measured on 32 validation mixtures of our codec,
/// decoding the requantized source latents scored −1.05 dB SI-SDRi with the encoder's lookup and 2.76 dB with this
/// one, and the shipped masker's outputs −9.91 against −6.81 dB.
///
/// The tables (every code's latent contribution, `out_proj` of its raw vector) are built once per matcher, so a
/// streaming separator pays only one GEMM per codebook per push.
public struct LatentCodeMatcher: Sendable {
    /// Per codebook `[size, latentDim]`: the latent contribution of every code.
    let tables: [[Float]]
    /// Per codebook `[size]`: the squared norms of those rows.
    let squaredNorms: [[Float]]
    /// Channels of the latent it matches.
    public let latentDim: Int
    let codebookSize: Int

    /// Builds the tables of every codebook of `quantizer`.
    public init(_ quantizer: ResidualVectorQuantizer) {
        var tables: [[Float]] = []
        var norms: [[Float]] = []
        for stage in quantizer.stages {
            // `decodeStage` of every code at once: the raw vectors as `[dim, size]`, through the output projection.
            let dim = quantizer.codebookDim, size = quantizer.codebookSize
            var vectors = Tensor(zeros: [dim, size])
            for c in 0..<size { for d in 0..<dim { vectors.data[d * size + c] = stage.codebook[c * dim + d] } }
            let rows = stage.outProj(vectors).transposed(0, 1).data          // [size, latentDim]
            tables.append(rows)
            norms.append((0..<size).map { c in
                var sq: Float = 0
                for i in 0..<quantizer.latentDim { sq += rows[c * quantizer.latentDim + i] * rows[c * quantizer.latentDim + i] }
                return sq
            })
        }
        self.tables = tables
        squaredNorms = norms
        latentDim = quantizer.latentDim
        codebookSize = quantizer.codebookSize
    }

    /// The number of codebooks available.
    public var codebookCount: Int { tables.count }

    /// Codes `[count][frames]` for a latent `[latentDim, frames]`, with the first `count` codebooks.
    public func match(_ z: Tensor, codebooks count: Int) -> [[Int32]] {
        let frames = z.shape[1]
        let books = min(count, tables.count)
        guard frames > 0, books > 0 else { return [[Int32]](repeating: [], count: max(0, books)) }
        var residual = z.transposed(0, 1).data                                 // [frames, latentDim]
        var scores = [Float](repeating: 0, count: frames * codebookSize)
        var codes: [[Int32]] = []
        codes.reserveCapacity(books)
        let width = latentDim, size = codebookSize
        for k in 0..<books {
            var idx = [Int32](repeating: 0, count: frames)
            tables[k].withUnsafeBufferPointer { table in
                squaredNorms[k].withUnsafeBufferPointer { norms in
                    residual.withUnsafeMutableBufferPointer { r in
                        scores.withUnsafeMutableBufferPointer { s in
                            guard let rp = r.baseAddress, let tp = table.baseAddress, let sp = s.baseAddress else { return }
                            BLAS.gemm(transB: true, m: frames, n: size, k: width, a: rp, lda: width,
                                      b: tp, ldb: width, c: sp, ldc: size)
                            for t in 0..<frames {
                                // |r − p|² = |r|² − 2 r·p + |p|²; |r|² is common to every code, so it is left out.
                                var best = 0
                                var bestValue = Float.infinity
                                for c in 0..<size {
                                    let d = norms[c] - 2 * sp[t * size + c]
                                    if d < bestValue { bestValue = d; best = c }
                                }
                                idx[t] = Int32(best)
                                for i in 0..<width { rp[t * width + i] -= tp[best * width + i] }
                            }
                        }
                    }
                }
            }
            codes.append(idx)
        }
        return codes
    }
}
