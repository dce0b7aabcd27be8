import CKernels

/// DAC's residual unit `y = x + conv₂(snake₂(conv₁(snake₁(x))))` (conv₁ dilated, same-length; conv₂ kernel 1) as a
/// single pass over tiles of output positions.
///
/// Layer by layer, each of the four steps streams the whole `[channels, length]` signal through memory (at 96
/// channels and 441 000 samples, 170 MB per step, plus fresh allocations). Here a tile's input window goes through
/// Snake straight into the im2col buffer, the hidden tile stays in the worker's L2 for the second Snake and the
/// kernel-1 product, and the residual is the product's `beta = 1` accumulator. Biases are folded into the passes
/// that read them.
public struct SnakeResidualUnit: Sendable {
    public let conv1: Conv1d
    public let conv2: Conv1d
    public let alpha1: [Float]
    public let alpha2: [Float]

    /// Creates the unit; `conv1` must keep the length (stride 1, padding = dilation·(kernel−1)/2) and `conv2` be
    /// kernel 1, both `channels → channels` without groups.
    public init(conv1: Conv1d, conv2: Conv1d, alpha1: [Float], alpha2: [Float]) {
        let c = conv1.inChannels
        precondition(conv1.outChannels == c && conv2.inChannels == c && conv2.outChannels == c, "SnakeResidualUnit: channels")
        precondition(conv1.stride == 1 && conv1.groups == 1 && 2 * conv1.padding == conv1.dilation * (conv1.kernelSize - 1),
                     "SnakeResidualUnit: conv1 must keep the length")
        precondition(conv2.kernelSize == 1 && conv2.stride == 1 && conv2.padding == 0 && conv2.groups == 1,
                     "SnakeResidualUnit: conv2 must be kernel 1")
        precondition(alpha1.count == c && alpha2.count == c, "SnakeResidualUnit: alpha sizes")
        self.conv1 = conv1
        self.conv2 = conv2
        self.alpha1 = alpha1
        self.alpha2 = alpha2
    }

    public var channels: Int { conv1.inChannels }

    /// Applies the unit to `x` (`[channels, length]`), writing every element of `y` (same shape, not aliasing `x`).
    public func apply(_ x: UnsafePointer<Float>, length: Int, into y: UnsafeMutablePointer<Float>) {
        guard length > 0 else { return }
        let c = channels, k = conv1.kernelSize, d = conv1.dilation, pad = conv1.padding
        let depth = c * k, halo = d * (k - 1)
        // About 1 MB of im2col per tile (fits L2 next to the hidden tile), but at least 256 columns so the products
        // stay efficient at high channel counts.
        let (tile, tiles) = ComputeThreads.balancedTiles(length, maxTile: max(256, (1 << 18) / max(depth, 1)))
        let parallelTiles = tiles >= 2 * ComputeThreads.count || ComputeThreads.count == 1
        conv1.weight.withUnsafeBufferPointer { w1b in conv2.weight.withUnsafeBufferPointer { w2b in
        alpha1.withUnsafeBufferPointer { a1b in alpha2.withUnsafeBufferPointer { a2b in
            guard let w1 = w1b.baseAddress, let w2 = w2b.baseAddress, let a1 = a1b.baseAddress,
                  let a2 = a2b.baseAddress else { return }
            let run = { (lo: Int, hi: Int, parallelGEMM: Bool) in
                Scratch.with(c * (tile + halo), depth * tile) { s, col in
                Scratch.with(c * tile, 2 * c) { h, biases in
                    // Zero biases stand in for absent ones, so the passes below have one shape.
                    for i in 0..<c {
                        biases[i] = conv1.bias?[i] ?? 0
                        biases[c + i] = conv2.bias?[i] ?? 0
                    }
                    for ti in lo..<hi {
                        let t0 = ti * tile, n = min(tile, length - t0), span = n + halo
                        // Snake of the input window t0 − pad ..< t0 − pad + span, zero outside the signal.
                        let first = t0 - pad
                        let vlo = min(span, max(0, -first)), vhi = max(vlo, min(span, length - first))
                        for ci in 0..<c {
                            let row = s + ci * span
                            if vlo > 0 { row.update(repeating: 0, count: vlo) }
                            if vhi > vlo { tuss_snake_copy(x + ci * length + first + vlo, 1, vhi - vlo, a1 + ci, row + vlo) }
                            if vhi < span { (row + vhi).update(repeating: 0, count: span - vhi) }
                        }
                        for ci in 0..<c {
                            for kk in 0..<k {
                                (col + (ci * k + kk) * n).update(from: s + ci * span + kk * d, count: n)
                            }
                        }
                        BLAS.gemm(m: c, n: n, k: depth, a: w1, lda: depth, b: col, ldb: n, c: h, ldc: n,
                                  parallel: parallelGEMM)
                        Activation.snake(h, channels: c, length: n, bias: biases, alpha: a2)
                        for co in 0..<c {
                            let yr = y + co * length + t0, xr = x + co * length + t0
                            let b = biases[c + co]
                            for t in 0..<n { yr[t] = xr[t] + b }
                        }
                        BLAS.gemm(m: c, n: n, k: c, a: w2, lda: c, b: h, ldb: n, beta: 1, c: y + t0, ldc: length,
                                  parallel: parallelGEMM)
                    }
                } }
            }
            if parallelTiles {
                ComputeThreads.parallelRanges(tiles) { lo, hi in run(lo, hi, false) }
            } else {
                run(0, tiles, true)
            }
        } } } }
    }

    /// Applies the unit to a `[channels, length]` or `[batch, channels, length]` tensor.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        let c = channels
        precondition((x.rank == 2 || x.rank == 3) && x.shape[x.rank - 2] == c, "SnakeResidualUnit: input \(x.shape)")
        let length = x.shape[x.rank - 1]
        let batch = x.rank == 3 ? x.shape[0] : 1
        let count = x.count
        // Every element is written by `apply`: no zero fill.
        let data = [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            x.data.withUnsafeBufferPointer { xb in
                if let xp = xb.baseAddress, let yp = buffer.baseAddress {
                    for b in 0..<batch { apply(xp + b * c * length, length: length, into: yp + b * c * length) }
                }
            }
            initialized = count
        }
        return Tensor(shape: x.shape, data: data)
    }
}
