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

    /// SwiGLU of `x + bias`, `bias` holding `2·width` values (the preceding product's bias, added here).
    public static func swiglu(_ x: UnsafePointer<Float>, rows: Int, width: Int, bias: UnsafePointer<Float>,
                              into y: UnsafeMutablePointer<Float>) {
        tuss_swiglu_bias(x, rows, width, bias, y)
    }

    /// `y[t, i] += bias[i] + Σκ p[t + shift − κ, κ·dim + i]` for `t < length`: the per-tap products of a transposed
    /// convolution (`taps` blocks of `dim` per row of `p`) gathered at their offsets and added to a residual.
    public static func overlapAddRows(_ p: UnsafePointer<Float>, taps: Int, dim: Int, length: Int, shift: Int,
                                      bias: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>) {
        tuss_overlap_add_rows(p, taps, dim, length, shift, bias, y)
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

    /// The softmax's numerator `exp(x − rowmax)` in place, and `1 / Σ` of each row into `inverseSums[r]`:
    /// multiplying a product of the rows by `inverseSums` afterwards gives the normalised result.
    public static func softmaxRowsUnnormalized(_ x: UnsafeMutablePointer<Float>, rows: Int, width: Int,
                                               inverseSums: UnsafeMutablePointer<Float>) {
        tuss_softmax_rows_unnormalized(x, rows, width, inverseSums)
    }

    /// DAC's Snake read from `x` and written to `y` (both `[channels, length]`), leaving `x` intact.
    public static func snake(_ x: UnsafePointer<Float>, channels: Int, length: Int, alpha: UnsafePointer<Float>,
                             into y: UnsafeMutablePointer<Float>) {
        ComputeThreads.parallelRanges(channels, minChunk: max(1, 65536 / max(length, 1))) { lo, hi in
            tuss_snake_copy(x + lo * length, hi - lo, length, alpha + lo, y + lo * length)
        }
    }

    /// Snake of `x + bias[c]` in place (a convolution's bias folded into the activation after it), single-threaded:
    /// callers run it on tiles inside their own parallel loops.
    public static func snake(_ x: UnsafeMutablePointer<Float>, channels: Int, length: Int, bias: UnsafePointer<Float>,
                             alpha: UnsafePointer<Float>) {
        tuss_snake_bias(x, channels, length, bias, alpha)
    }

    /// The instruction set the element-wise kernels use: 0 plain, 1 AVX2+FMA, 2 AVX-512.
    public static var kernelISA: Int { Int(tuss_kernel_isa()) }

    /// Forces a kernel variant (capped at what the CPU supports); for tests comparing every variant.
    public static func forceKernelISA(_ isa: Int) { tuss_force_kernel_isa(Int32(isa)) }
}
