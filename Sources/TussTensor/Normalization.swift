#if os(Linux)
import Glibc
#endif

/// Normalisation layers. Statistics are accumulated in Double: it costs nothing next to the GEMMs and keeps
/// long-utterance group norms (millions of elements) from drifting.
public enum Normalization {
    /// Layer norm over the last `dim` elements of each of `rows` vectors, in place, with optional affine.
    public static func layerNorm(_ x: UnsafeMutablePointer<Float>, rows: Int, dim: Int,
                                 weight: UnsafePointer<Float>?, bias: UnsafePointer<Float>?, eps: Float = 1e-5) {
        ComputeThreads.parallelRanges(rows, minChunk: max(1, 16384 / max(dim, 1))) { lo, hi in
            for r in lo..<hi {
                let v = x + r * dim
                var sum = 0.0, sq = 0.0
                for i in 0..<dim { let f = Double(v[i]); sum += f; sq += f * f }
                let mean = sum / Double(dim)
                let variance = max(0, sq / Double(dim) - mean * mean)
                let inv = Float(1 / (variance + Double(eps)).squareRoot())
                let m = Float(mean)
                for i in 0..<dim {
                    var y = (v[i] - m) * inv
                    if let weight { y *= weight[i] }
                    if let bias { y += bias[i] }
                    v[i] = y
                }
            }
        }
    }

    /// Group norm of a `[channels, length]` signal, in place: statistics over each group's channels × length,
    /// then a per-channel affine (PyTorch `GroupNorm` on one batch item).
    public static func groupNorm(_ x: UnsafeMutablePointer<Float>, channels: Int, length: Int, groups: Int,
                                 weight: UnsafePointer<Float>?, bias: UnsafePointer<Float>?, eps: Float = 1e-5) {
        precondition(groups > 0 && channels % groups == 0, "groupNorm: \(channels) channels, \(groups) groups")
        let per = channels / groups
        for g in 0..<groups {
            let base = x + g * per * length
            let n = per * length
            // Two-pass in Double: exact enough for million-element groups.
            var sum = 0.0
            for i in 0..<n { sum += Double(base[i]) }
            let mean = sum / Double(n)
            var sq = 0.0
            for i in 0..<n { let d = Double(base[i]) - mean; sq += d * d }
            let inv = 1 / (sq / Double(n) + Double(eps)).squareRoot()
            for c in 0..<per {
                let ch = g * per + c
                let scale = Float(inv) * (weight?[ch] ?? 1)
                let shift = (bias?[ch] ?? 0) - Float(mean) * scale
                let row = base + c * length
                for t in 0..<length { row[t] = row[t] * scale + shift }
            }
        }
    }

    /// Group norm of a channels-last `[length, channels]` signal, in place; same statistics as `groupNorm`.
    public static func groupNormChannelsLast(_ x: UnsafeMutablePointer<Float>, length: Int, channels: Int, groups: Int,
                                             weight: UnsafePointer<Float>?, bias: UnsafePointer<Float>?, eps: Float = 1e-5) {
        precondition(groups > 0 && channels % groups == 0, "groupNorm: \(channels) channels, \(groups) groups")
        let per = channels / groups
        for g in 0..<groups {
            var sum = 0.0
            for t in 0..<length { let row = x + t * channels + g * per; for c in 0..<per { sum += Double(row[c]) } }
            let mean = sum / Double(per * length)
            var sq = 0.0
            for t in 0..<length {
                let row = x + t * channels + g * per
                for c in 0..<per { let d = Double(row[c]) - mean; sq += d * d }
            }
            let inv = Float(1 / (sq / Double(per * length) + Double(eps)).squareRoot())
            let m = Float(mean)
            for t in 0..<length {
                let row = x + t * channels + g * per
                for c in 0..<per {
                    let ch = g * per + c
                    row[c] = (row[c] - m) * inv * (weight?[ch] ?? 1) + (bias?[ch] ?? 0)
                }
            }
        }
    }

    /// TF-Locoformer's RMS group norm over the last `dim` elements of each vector, out of place.
    ///
    /// Each of `groups` contiguous groups is divided by `rms + eps` (eps outside the square root, as the official
    /// code does), then the whole vector is scaled by `gamma` (no bias).
    public static func rmsGroupNorm(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, rows: Int,
                                    dim: Int, groups: Int, gamma: UnsafePointer<Float>, eps: Float = 1e-5) {
        precondition(groups > 0 && dim % groups == 0, "rmsGroupNorm: \(dim) not divisible by \(groups)")
        let per = dim / groups
        ComputeThreads.parallelRanges(rows, minChunk: max(1, 16384 / max(dim, 1))) { lo, hi in
            for r in lo..<hi {
                let v = x + r * dim, o = y + r * dim
                for g in 0..<groups {
                    var sq: Float = 0
                    for i in g * per..<(g + 1) * per { sq += v[i] * v[i] }
                    let inv = 1 / ((sq / Float(per)).squareRoot() + eps)
                    for i in g * per..<(g + 1) * per { o[i] = v[i] * inv * gamma[i] }
                }
            }
        }
    }
}
