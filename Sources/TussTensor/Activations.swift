#if os(Linux)
import Glibc
#endif

/// Element-wise activations, in place on raw buffers.
public enum Activation {
    /// `x · sigmoid(x)`.
    public static func silu(_ x: UnsafeMutablePointer<Float>, count: Int) {
        mapSIMD8(x, count: count) { v in v / (1 + vexp(-v)) }
    }

    /// Hyperbolic tangent.
    public static func tanh(_ x: UnsafeMutablePointer<Float>, count: Int) {
        // tanh(x) = sign(x)·(1 − 2/(e^{2|x|} + 1)): no cancellation for large |x|, absolute error ~1e-7 near 0.
        mapSIMD8(x, count: count) { v in
            let a = v.replacing(with: -v, where: v .< 0)
            let t = 1 - 2 / (vexp(2 * a) + 1)
            return t.replacing(with: -t, where: v .< 0)
        }
    }

    /// Logistic sigmoid.
    public static func sigmoid(_ x: UnsafeMutablePointer<Float>, count: Int) {
        mapSIMD8(x, count: count) { v in 1 / (1 + vexp(-v)) }
    }

    /// `max(x, 0)`.
    public static func relu(_ x: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count { x[i] = max(x[i], 0) }
    }

    /// Gated linear unit over a split axis: `out[i] = a[i] · sigmoid(b[i])` for `count` pairs,
    /// with `a` and `b` the first and second halves of each `2·width` row.
    public static func glu(_ x: UnsafePointer<Float>, rows: Int, width: Int, into y: UnsafeMutablePointer<Float>) {
        for r in 0..<rows {
            let a = x + r * 2 * width, b = a + width, o = y + r * width
            o.update(from: b, count: width)
            mapSIMD8(o, count: width) { v in 1 / (1 + vexp(-v)) }
            for i in 0..<width { o[i] *= a[i] }
        }
    }

    /// SwiGLU over a split axis: `out[i] = a[i] · silu(b[i])`, halves as in `glu`.
    public static func swiglu(_ x: UnsafePointer<Float>, rows: Int, width: Int, into y: UnsafeMutablePointer<Float>) {
        for r in 0..<rows {
            let a = x + r * 2 * width, b = a + width, o = y + r * width
            o.update(from: b, count: width)
            mapSIMD8(o, count: width) { g in g / (1 + vexp(-g)) }
            for i in 0..<width { o[i] *= a[i] }
        }
    }

    /// DAC's Snake on a `[channels, length]` signal: `x + sin²(α·x) / (α + 1e-9)` with one α per channel.
    public static func snake(_ x: UnsafeMutablePointer<Float>, channels: Int, length: Int, alpha: UnsafePointer<Float>) {
        ComputeThreads.parallelRanges(channels, minChunk: max(1, 65536 / max(length, 1))) { lo, hi in
            for c in lo..<hi {
                let a = alpha[c]
                let inv = 1 / (a + 1e-9)
                let row = x + c * length
                for t in 0..<length {
                    let s = sinf(a * row[t])
                    row[t] += inv * s * s
                }
            }
        }
    }

    /// Softmax over each row of `rows × width`, in place, max-subtracted for stability.
    public static func softmaxRows(_ x: UnsafeMutablePointer<Float>, rows: Int, width: Int) {
        for r in 0..<rows {
            let v = x + r * width
            var m = -Float.infinity
            for i in 0..<width { m = max(m, v[i]) }
            var sum: Float = 0
            mapSIMD8(v, count: width) { e in vexp(e - m) }
            for i in 0..<width { sum += v[i] }
            let inv = 1 / sum
            for i in 0..<width { v[i] *= inv }
        }
    }
}
