/// What a spectral separation does with the part of the input its outputs do not account for
/// (input − Σ outputs, per channel and sample).
///
/// A model's stems rarely sum back to the mixture exactly. Audio engineers remixing stems want them to, and a user who
/// asked for one source may want "everything else" as well; the remainder serves both without changing the model.
public enum MixtureRemainder: String, Sendable {
    /// Leave the outputs as the model made them; the remainder is not written.
    case ignored
    /// Write the remainder as one more output, `residual`, after the prompts' outputs: all outputs together sum to
    /// the input, and the prompts' outputs are exactly the model's.
    case residualStem = "residual"
    /// Add an equal share of the remainder to every output, so the outputs sum to the input (mixture consistency,
    /// Wisdom et al., ICASSP 2019). Meant for prompt lists that cover everything in the mix, e.g.
    /// `vocals,drums,bass,other` or `speech,music-mix,sfx-mix`; with a partial list the missing sources land in the
    /// outputs.
    case spread

    /// The name of the extra output written for `.residualStem`.
    public static let residualName = "residual"

    /// Adds `(mixture − Σ outputs) / outputs.count` to every output, in place.
    ///
    /// - Parameters:
    ///   - outputs: `[prompt][channel][samples]`; every prompt has the mixture's channel count and length.
    ///   - mixture: `[channel][samples]`.
    static func spread(_ outputs: inout [[[Float]]], mixture: [[Float]]) {
        guard !outputs.isEmpty else { return }
        let share = 1 / Float(outputs.count)
        for c in 0..<mixture.count {
            var remainder = residual(outputs, mixture: mixture, channel: c)
            for i in remainder.indices { remainder[i] *= share }
            for p in 0..<outputs.count {
                outputs[p][c].withUnsafeMutableBufferPointer { o in
                    for i in 0..<min(o.count, remainder.count) { o[i] += remainder[i] }
                }
            }
        }
    }

    /// `mixture − Σ outputs` for every channel: `[channel][samples]`.
    static func residual(_ outputs: [[[Float]]], mixture: [[Float]]) -> [[Float]] {
        (0..<mixture.count).map { residual(outputs, mixture: mixture, channel: $0) }
    }

    // Accumulates in Double: with many prompts, float32 sums of large stems would leave a remainder of rounding
    // noise instead of cancelling exactly.
    private static func residual(_ outputs: [[[Float]]], mixture: [[Float]], channel c: Int) -> [Float] {
        let n = mixture[c].count
        var sum = [Double](repeating: 0, count: n)
        for p in 0..<outputs.count {
            outputs[p][c].withUnsafeBufferPointer { o in
                for i in 0..<min(n, o.count) { sum[i] += Double(o[i]) }
            }
        }
        return (0..<n).map { Float(Double(mixture[c][$0]) - sum[$0]) }
    }
}
