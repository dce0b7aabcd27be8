import CKernels
#if os(Linux)
import Glibc
#endif

/// Element-wise activations, in place on raw buffers.
public enum Activation {
    /// `x · sigmoid(x)`.
    public static func silu(_ x: UnsafeMutablePointer<Float>, count: Int) {
        tuss_silu(x, count)
    }

    /// Hyperbolic tangent.
    public static func tanh(_ x: UnsafeMutablePointer<Float>, count: Int) {
        tuss_tanh(x, count)
    }

    /// Logistic sigmoid.
    public static func sigmoid(_ x: UnsafeMutablePointer<Float>, count: Int) {
        tuss_sigmoid(x, count)
    }

    /// `max(x, 0)`.
    public static func relu(_ x: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count { x[i] = max(x[i], 0) }
    }

    /// Gated linear unit over a split axis: `out[i] = a[i] · sigmoid(b[i])` for `count` pairs,
    /// with `a` and `b` the first and second halves of each `2·width` row.
    public static func glu(_ x: UnsafePointer<Float>, rows: Int, width: Int, into y: UnsafeMutablePointer<Float>) {
        tuss_glu(x, rows, width, y)
    }

    /// SwiGLU over a split axis: `out[i] = a[i] · silu(b[i])`, halves as in `glu`.
    public static func swiglu(_ x: UnsafePointer<Float>, rows: Int, width: Int, into y: UnsafeMutablePointer<Float>) {
        tuss_swiglu(x, rows, width, y)
    }

    /// DAC's Snake on a `[channels, length]` signal: `x + sin²(α·x) / (α + 1e-9)` with one α per channel.
    public static func snake(_ x: UnsafeMutablePointer<Float>, channels: Int, length: Int, alpha: UnsafePointer<Float>) {
        ComputeThreads.parallelRanges(channels, minChunk: max(1, 65536 / max(length, 1))) { lo, hi in
            tuss_snake(x + lo * length, hi - lo, length, alpha + lo)
        }
    }

    /// Softmax over each row of `rows × width`, in place, max-subtracted for stability.
    public static func softmaxRows(_ x: UnsafeMutablePointer<Float>, rows: Int, width: Int) {
        tuss_softmax_rows(x, rows, width)
    }
}
