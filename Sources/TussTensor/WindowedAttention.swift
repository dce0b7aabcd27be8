#if os(Linux)
import Glibc
#endif

/// Rotary tables for arbitrary, possibly huge, absolute positions (hour-long streams).
///
/// The frequencies `θ_p = base^(−2p/dim)` and the angles `position·θ_p` are formed in Double and only the cosine and
/// sine are rounded to Float, so the rotation at frame 180 000 is as exact as at frame 0.
public struct ExactRotaryTable: Sendable {
    /// `[count, headDim/2]` cosines for positions `start ..< start+count`.
    public let cos: [Float]
    /// `[count, headDim/2]` sines, laid out as `cos`.
    public let sin: [Float]
    /// The rotated head dimension.
    public let headDim: Int

    /// Builds the table for `count` consecutive positions from `start`.
    public init(headDim: Int, start: Int, count: Int, base: Double = 10000) {
        precondition(headDim % 2 == 0, "rotary: head dimension \(headDim) must be even")
        self.headDim = headDim
        let half = headDim / 2
        var c = [Float](repeating: 0, count: count * half), s = c
        for p in 0..<half {
            let theta = 1 / Foundation_pow(base, Double(2 * p) / Double(headDim))
            for t in 0..<count {
                let angle = Double(start + t) * theta
                c[t * half + p] = Float(Foundation_cos(angle))
                s[t * half + p] = Float(Foundation_sin(angle))
            }
        }
        self.cos = c
        self.sin = s
    }

    /// Rotates the interleaved pairs of every head of `rows` rows (row `r` at table position `r`), in place.
    ///
    /// Row `r` starts at `x + r·stride` and holds `heads` vectors of `headDim` floats back to back.
    public func rotate(_ x: UnsafeMutablePointer<Float>, rows: Int, stride: Int, heads: Int) {
        let half = headDim / 2
        precondition(rows * half <= cos.count, "rotary: table has \(cos.count / max(half, 1)) positions, \(rows) rows given")
        cos.withUnsafeBufferPointer { cb in
            sin.withUnsafeBufferPointer { sb in
                guard let c = cb.baseAddress, let s = sb.baseAddress else { return }
                for r in 0..<rows {
                    let row = x + r * stride
                    for h in 0..<heads {
                        RotaryEmbedding.rotate(row + h * headDim, position: r, cos: c, sin: s, half: half)
                    }
                }
            }
        }
    }
}

@inline(__always) func Foundation_pow(_ x: Double, _ y: Double) -> Double { pow(x, y) }

/// Causal sliding-window multi-head attention for frame tokens that also see a fixed set of prefix tokens.
///
/// Frame `i` (row `history + i` of the frame keys) attends to every prefix token and to frame rows
/// `history+i−window+1 … history+i`. Scores against prefix keys use the plain (unrotated) queries and scores against
/// frame keys the rotated ones, so with rotated frame keys every score depends on relative frame positions only.
/// Queries go in blocks of at most `window` rows, so work and scratch are O(count·window), never O(count²).
public enum WindowedAttention {
    /// Row-major operands of one call: pointers to the first row and the distance between rows (in floats).
    public struct Operand {
        /// The first row.
        public let base: UnsafePointer<Float>
        /// Floats from one row to the next.
        public let stride: Int
        /// Describes rows starting at `base`, `stride` floats apart.
        public init(_ base: UnsafePointer<Float>, stride: Int) {
            self.base = base
            self.stride = stride
        }
    }

    /// Attends `count` new frames; writes `[count, heads·headDim]` rows to `output` (row stride `outputStride`).
    ///
    /// - Parameters:
    ///   - queries: rotated queries of the new frames; `plainQueries`: the same before rotation (for prefix scores).
    ///   - prefixKeys, prefixValues: `prefixCount` rows (may be 0).
    ///   - frameKeys, frameValues: `history + count` rows: the cached frames, then the new ones.
    public static func apply(
        queries: Operand, plainQueries: Operand, count: Int,
        prefixKeys: Operand, prefixValues: Operand, prefixCount: Int,
        frameKeys: Operand, frameValues: Operand, history: Int,
        window: Int, heads: Int, headDim: Int,
        output: UnsafeMutablePointer<Float>, outputStride: Int
    ) {
        guard count > 0 else { return }
        precondition(window >= 1 && heads >= 1 && headDim >= 1, "windowed attention: bad sizes")
        let block = min(window, count)
        let maxWidth = prefixCount + block + window - 1
        let scale = 1 / Float(headDim).squareRoot()
        let blocks = (count + block - 1) / block
        let items = heads * blocks
        // One scratch per worker; items are (head, query block) pairs writing disjoint output.
        ComputeThreads.parallelRanges(items, minChunk: max(1, 4096 / max(block * maxWidth, 1))) { lo, hi in
            var scores = [Float](repeating: 0, count: block * maxWidth)
            scores.withUnsafeMutableBufferPointer { sbuf in
                guard let sc = sbuf.baseAddress else { return }
                for item in lo..<hi {
                    let h = item % heads, b = item / heads
                    let i0 = b * block, i1 = min(count, i0 + block)
                    let rows = i1 - i0
                    let spanLo = max(0, history + i0 - window + 1), spanHi = history + i1
                    let span = spanHi - spanLo
                    let width = prefixCount + span
                    let off = h * headDim
                    BLAS.gemm(transB: true, m: rows, n: prefixCount, k: headDim, alpha: scale,
                              a: plainQueries.base + i0 * plainQueries.stride + off, lda: plainQueries.stride,
                              b: prefixKeys.base + off, ldb: prefixKeys.stride,
                              c: sc, ldc: width, parallel: false)
                    BLAS.gemm(transB: true, m: rows, n: span, k: headDim, alpha: scale,
                              a: queries.base + i0 * queries.stride + off, lda: queries.stride,
                              b: frameKeys.base + spanLo * frameKeys.stride + off, ldb: frameKeys.stride,
                              c: sc + prefixCount, ldc: width, parallel: false)
                    for r in 0..<rows {
                        let row = sc + r * width + prefixCount
                        let position = history + i0 + r
                        let first = max(0, position - window + 1) - spanLo, last = position - spanLo
                        for j in 0..<first { row[j] = -.infinity }
                        for j in (last + 1)..<span { row[j] = -.infinity }
                        Activation.softmaxRows(sc + r * width, rows: 1, width: width)
                        for j in 0..<first { row[j] = 0 }
                        for j in (last + 1)..<span { row[j] = 0 }
                    }
                    let out = output + i0 * outputStride + off
                    BLAS.gemm(m: rows, n: headDim, k: prefixCount, a: sc, lda: width,
                              b: prefixValues.base + off, ldb: prefixValues.stride,
                              c: out, ldc: outputStride, parallel: false)
                    BLAS.gemm(m: rows, n: headDim, k: span, a: sc + prefixCount, lda: width,
                              b: frameValues.base + spanLo * frameValues.stride + off, ldb: frameValues.stride,
                              beta: 1, c: out, ldc: outputStride, parallel: false)
                }
            }
        }
    }

    /// Full attention of `count` tokens over `keyCount` keys (no mask, no rotation), per head.
    ///
    /// Used for the prompt tokens, which see only each other.
    public static func dense(queries: Operand, count: Int, keys: Operand, values: Operand, keyCount: Int,
                             heads: Int, headDim: Int, output: UnsafeMutablePointer<Float>, outputStride: Int) {
        guard count > 0, keyCount > 0 else { return }
        let scale = 1 / Float(headDim).squareRoot()
        var scores = [Float](repeating: 0, count: count * keyCount)
        scores.withUnsafeMutableBufferPointer { sbuf in
            guard let sc = sbuf.baseAddress else { return }
            for h in 0..<heads {
                let off = h * headDim
                BLAS.gemm(transB: true, m: count, n: keyCount, k: headDim, alpha: scale,
                          a: queries.base + off, lda: queries.stride, b: keys.base + off, ldb: keys.stride,
                          c: sc, ldc: keyCount, parallel: false)
                Activation.softmaxRows(sc, rows: count, width: keyCount)
                BLAS.gemm(m: count, n: headDim, k: keyCount, a: sc, lda: keyCount, b: values.base + off, ldb: values.stride,
                          c: output + off, ldc: outputStride, parallel: false)
            }
        }
    }
}
