import Foundation

/// Separation quality metrics. Sums run in Double; scores are capped so perfect estimates stay finite.
public enum SeparationMetrics {
    /// Scores above this (dB) are reported as this value: an exact estimate would otherwise be +∞.
    public static let cap = 100.0

    /// Scale-invariant SDR (Le Roux et al. 2019) in dB, means removed; `nil` when the reference is silent.
    public static func siSDR(estimate: [Float], reference: [Float]) -> Double? {
        let n = min(estimate.count, reference.count)
        guard n > 0 else { return nil }
        var me = 0.0, mr = 0.0
        for i in 0..<n { me += Double(estimate[i]); mr += Double(reference[i]) }
        me /= Double(n); mr /= Double(n)
        var dot = 0.0, rr = 0.0
        for i in 0..<n {
            let r = Double(reference[i]) - mr
            dot += (Double(estimate[i]) - me) * r
            rr += r * r
        }
        guard rr > 1e-20 else { return nil }
        let alpha = dot / rr
        var target = 0.0, noise = 0.0
        for i in 0..<n {
            let t = alpha * (Double(reference[i]) - mr)
            let e = (Double(estimate[i]) - me) - t
            target += t * t
            noise += e * e
        }
        // A silent (or orthogonal) estimate has no target component: the score is −∞, reported as −cap.
        guard target > 1e-30 * rr else { return -cap }
        return clamp(10 * log10(target / max(noise, 1e-30)))
    }

    /// Signal-to-distortion ratio without distortion filters (the SNR the TUSS paper reports for music) in dB.
    public static func sdr(estimate: [Float], reference: [Float]) -> Double? {
        let n = min(estimate.count, reference.count)
        guard n > 0 else { return nil }
        var rr = 0.0, ee = 0.0
        for i in 0..<n {
            let r = Double(reference[i])
            let d = r - Double(estimate[i])
            rr += r * r
            ee += d * d
        }
        guard rr > 1e-20 else { return nil }
        return clamp(10 * log10(rr / max(ee, 1e-30)))
    }

    static func clamp(_ x: Double) -> Double { min(max(x, -cap), cap) }

    /// For each group of identical prompts, the order of estimates that maximises the summed SI-SDR
    /// (permutation-invariant scoring, as the TUSS paper scores repeated categories). Returns `order[i]` = the
    /// estimate assigned to reference `i`.
    public static func bestAssignment(prompts: [String], estimates: [[Float]], references: [[Float]]) -> [Int] {
        var order = Array(0..<prompts.count)
        var groups: [String: [Int]] = [:]
        for (i, p) in prompts.enumerated() { groups[p, default: []].append(i) }
        for group in groups.values where group.count > 1 {
            var best = group, bestScore = -Double.infinity
            var perm = group
            func visit(_ k: Int) {
                if k == perm.count {
                    var s = 0.0
                    for (slot, ref) in group.enumerated() {
                        s += siSDR(estimate: estimates[perm[slot]], reference: references[ref]) ?? -cap
                    }
                    if s > bestScore { bestScore = s; best = perm }
                    return
                }
                for i in k..<perm.count { perm.swapAt(k, i); visit(k + 1); perm.swapAt(k, i) }
            }
            if group.count <= 7 { visit(0) }
            for (slot, ref) in group.enumerated() { order[ref] = best[slot] }
        }
        return order
    }
}
