import Foundation

/// Splits one model-rate signal into overlapping chunks, runs a separator on each, and stitches the outputs with a
/// raised-cosine cross-fade, emitting finished samples as soon as they can no longer change.
///
/// A signal no longer than one chunk is processed in a single pass, exactly as the official forward. Outputs of
/// identical prompts (`speech, speech`) are matched to the previous chunk on the overlap, so each output keeps
/// following the same source.
struct OverlapChunker {
    let chunk: Int
    let overlap: Int
    /// Indices of outputs that share a prompt (only groups of two or more).
    let repeatedGroups: [[Int]]
    private var buffer: [Float] = []
    private var tail: [[Float]]?

    init(chunk: Int, overlap: Int, promptKeys: [String]) {
        self.chunk = max(chunk, 1)
        self.overlap = min(max(overlap, 0), max(chunk - 1, 0))
        repeatedGroups = repeatedPromptGroups(promptKeys)
    }

    /// Adds samples; returns the samples finished so far, one array per output.
    mutating func push(_ x: [Float], outputs: Int, run: ([Float]) throws -> [[Float]]) rethrows -> [[Float]] {
        buffer += x
        var emitted = [[Float]](repeating: [], count: outputs)
        let step = chunk - overlap
        while buffer.count >= chunk {
            var y = try run(Array(buffer[0..<chunk]))
            stitch(&y)
            for i in 0..<outputs { emitted[i] += y[i][0..<step] }
            tail = overlap > 0 ? y.map { Array($0[step..<chunk]) } : nil
            buffer.removeFirst(step)
        }
        return emitted
    }

    /// Processes what is left at the end of the signal and returns the remaining samples.
    mutating func finish(outputs: Int, run: ([Float]) throws -> [[Float]]) rethrows -> [[Float]] {
        defer { buffer = []; tail = nil }
        if let tail, buffer.count <= overlap {
            return tail.map { Array($0[0..<min(buffer.count, $0.count)]) }
        }
        guard !buffer.isEmpty else { return [[Float]](repeating: [], count: outputs) }
        var y = try run(buffer)
        stitch(&y)
        return y
    }

    /// Aligns repeated prompts with the previous chunk and cross-fades the overlap into `y`.
    private func stitch(_ y: inout [[Float]]) {
        guard let tail, overlap > 0 else { return }
        let n = min(overlap, y.first?.count ?? 0)
        for group in repeatedGroups {
            let order = bestOrder(group: group, y: y, reference: tail, n: n)
            let reordered = order.map { y[$0] }
            for (slot, i) in group.enumerated() { y[i] = reordered[slot] }
        }
        for i in 0..<y.count {
            for t in 0..<n {
                // Raised-cosine weights sum to one, so a steady source passes unchanged.
                let w = Float(0.5 - 0.5 * cosPi((Double(t) + 0.5) / Double(n)))
                y[i][t] = w * y[i][t] + (1 - w) * tail[i][t]
            }
        }
    }
}

/// The order of `group`'s outputs in `y` that best matches `reference` on the first `n` samples (normalised
/// correlation): `result[slot]` is the output of `y` that should take the place of `group[slot]`.
///
/// Outputs of a repeated prompt (`speech, speech`) come in no fixed order, so every pass that is combined with
/// another (chunk overlap, shifted passes) must first be put in the other's order.
func bestOrder(group: [Int], y: [[Float]], reference: [[Float]], n: Int) -> [Int] {
    func corr(_ a: [Float], _ b: [Float]) -> Double {
        var ab = 0.0, aa = 0.0, bb = 0.0
        for t in 0..<n { let x = Double(a[t]), z = Double(b[t]); ab += x * z; aa += x * x; bb += z * z }
        return ab / max((aa * bb).squareRoot(), 1e-20)
    }
    let g = group.count
    var score = [[Double]](repeating: [Double](repeating: 0, count: g), count: g)
    for (slot, target) in group.enumerated() {
        for (j, candidate) in group.enumerated() { score[slot][j] = corr(y[candidate], reference[target]) }
    }
    // Exhaustive for small groups (≤ 6! = 720 orders), greedy beyond.
    var best = Array(0..<g)
    if g <= 6 {
        var bestScore = -Double.infinity
        var perm = Array(0..<g)
        func visit(_ k: Int) {
            if k == g {
                var s = 0.0
                for slot in 0..<g { s += score[slot][perm[slot]] }
                if s > bestScore { bestScore = s; best = perm }
                return
            }
            for i in k..<g { perm.swapAt(k, i); visit(k + 1); perm.swapAt(k, i) }
        }
        visit(0)
    } else {
        var used = Set<Int>()
        for slot in 0..<g {
            let j = (0..<g).filter { !used.contains($0) }.max { score[slot][$0] < score[slot][$1] } ?? slot
            used.insert(j)
            best[slot] = j
        }
    }
    return best.map { group[$0] }
}

/// Groups of output indices that share a prompt key (only groups of two or more), in order of first index.
func repeatedPromptGroups(_ keys: [String]) -> [[Int]] {
    var groups: [String: [Int]] = [:]
    for (i, k) in keys.enumerated() { groups[k, default: []].append(i) }
    return groups.values.filter { $0.count > 1 }.sorted { $0[0] < $1[0] }
}

func cosPi(_ x: Double) -> Double { cos(Double.pi * x) }
