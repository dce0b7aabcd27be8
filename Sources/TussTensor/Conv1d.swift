/// A 1-D convolution over `[channels, length]` signals with PyTorch's semantics, lowered to GEMM.
///
/// Kernel-1 stride-1 convolutions are a single product; the rest go through im2col in tiles of output positions
/// so the scratch stays a few megabytes however long the signal is.
public struct Conv1d: Sendable {
    /// `[outChannels, inChannels / groups, kernelSize]`, row-major.
    public let weight: [Float]
    public let bias: [Float]?
    public let inChannels: Int
    public let outChannels: Int
    public let kernelSize: Int
    public let stride: Int
    public let dilation: Int
    public let padding: Int
    public let groups: Int

    /// Creates a convolution; sizes are checked against the weight.
    public init(weight: [Float], bias: [Float]?, inChannels: Int, outChannels: Int, kernelSize: Int,
                stride: Int = 1, dilation: Int = 1, padding: Int = 0, groups: Int = 1) {
        precondition(groups > 0 && inChannels % groups == 0 && outChannels % groups == 0, "Conv1d: groups")
        precondition(weight.count == outChannels * (inChannels / groups) * kernelSize,
                     "Conv1d: weight has \(weight.count) elements, expected \(outChannels)×\(inChannels / groups)×\(kernelSize)")
        precondition(bias.map { $0.count == outChannels } ?? true, "Conv1d: bias size")
        precondition(stride > 0 && dilation > 0 && padding >= 0, "Conv1d: stride/dilation/padding")
        self.weight = weight
        self.bias = bias
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.kernelSize = kernelSize
        self.stride = stride
        self.dilation = dilation
        self.padding = padding
        self.groups = groups
    }

    /// The output length for an input of `length` samples.
    public func outputLength(_ length: Int) -> Int {
        let span = dilation * (kernelSize - 1) + 1
        let padded = length + 2 * padding
        return padded < span ? 0 : (padded - span) / stride + 1
    }

    /// Convolves `x` (`[inChannels, length]`) into `y` (`[outChannels, outputLength(length)]`).
    public func apply(_ x: UnsafePointer<Float>, length: Int, into y: UnsafeMutablePointer<Float>) {
        let lout = outputLength(length)
        guard lout > 0 else { return }
        let cin = inChannels / groups, cout = outChannels / groups
        let depth = cin * kernelSize
        weight.withUnsafeBufferPointer { wbuf in
            let w = wbuf.baseAddress!
            if kernelSize == 1 && stride == 1 && padding == 0 {
                for g in 0..<groups {
                    BLAS.gemm(m: cout, n: lout, k: cin, a: w + g * cout * cin, lda: cin,
                              b: x + g * cin * length, ldb: length, c: y + g * cout * lout, ldc: lout)
                }
            } else {
                // Tiles of output positions: enough columns for an efficient GEMM, scratch ≤ ~8 MB.
                let (tile, tiles) = ComputeThreads.balancedTiles(lout, maxTile: max(64, (1 << 21) / max(depth, 1)))
                let parallelTiles = tiles >= 2 * ComputeThreads.count
                let body = { (t0: Int, t1: Int, parallelGEMM: Bool) in
                    Scratch.with(depth * tile) { col in
                        for ti in t0..<t1 {
                            let start = ti * tile
                            let n = min(tile, lout - start)
                            for g in 0..<groups {
                                self.im2col(x + g * cin * length, channels: cin, length: length,
                                            start: start, count: n, into: col)
                                // The bias goes in as the product's accumulator (beta = 1) while the tile is in
                                // cache, instead of a separate pass over the whole output; acc + bias is the same
                                // single rounding either way.
                                let yg = y + g * cout * lout + start
                                if let bias {
                                    for o in 0..<cout { (yg + o * lout).update(repeating: bias[g * cout + o], count: n) }
                                }
                                BLAS.gemm(m: cout, n: n, k: depth, a: w + g * cout * depth, lda: depth,
                                          b: col, ldb: n, beta: bias == nil ? 0 : 1, c: yg, ldc: lout,
                                          parallel: parallelGEMM)
                            }
                        }
                    }
                }
                if parallelTiles {
                    ComputeThreads.parallelRanges(tiles) { lo, hi in body(lo, hi, false) }
                } else {
                    body(0, tiles, true)
                }
            }
        }
        if let bias, kernelSize == 1 && stride == 1 && padding == 0 {
            bias.withUnsafeBufferPointer { b in
                ComputeThreads.parallelRanges(outChannels, minChunk: max(1, 65536 / max(lout, 1))) { lo, hi in
                    for o in lo..<hi {
                        let row = y + o * lout
                        let v = b[o]
                        for t in 0..<lout { row[t] += v }
                    }
                }
            }
        }
    }

    /// Fills `col` (`[channels·kernel, count]`) with the input taps of output positions `start..<start+count`.
    @inline(__always)
    func im2col(_ x: UnsafePointer<Float>, channels: Int, length: Int, start: Int, count: Int,
                into col: UnsafeMutablePointer<Float>) {
        for c in 0..<channels {
            let xc = x + c * length
            for kk in 0..<kernelSize {
                let dst = col + (c * kernelSize + kk) * count
                let offset = kk * dilation - padding
                if stride == 1 {
                    // Contiguous run with zero fill where the taps fall outside the signal.
                    let first = start + offset
                    var t = 0
                    while t < count && first + t < 0 { dst[t] = 0; t += 1 }
                    let validEnd = min(count, length - first)
                    if validEnd > t { (dst + t).update(from: xc + first + t, count: validEnd - t); t = validEnd }
                    while t < count { dst[t] = 0; t += 1 }
                } else {
                    // Taps (start + t)·stride + offset inside the signal for t in lo..<hi; zeros around them.
                    let base = start * stride + offset
                    let lo = min(count, base >= 0 ? 0 : (-base + stride - 1) / stride)
                    let hi = max(lo, min(count, length - base > 0 ? (length - base + stride - 1) / stride : 0))
                    if lo > 0 { dst.update(repeating: 0, count: lo) }
                    let src = xc + base
                    for t in lo..<hi { dst[t] = src[t * stride] }
                    if hi < count { (dst + hi).update(repeating: 0, count: count - hi) }
                }
            }
        }
    }

    /// Convolves a `[inChannels, length]` or `[batch, inChannels, length]` tensor.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        applyPerItem(x, inChannels: inChannels, outChannels: outChannels, outputLength: outputLength) { apply($0, length: $1, into: $2) }
    }
}

/// A 1-D transposed convolution with PyTorch's semantics (weight `[in, out / groups, kernel]`), lowered to GEMM.
///
/// Without groups or dilation (DAC's upsamplers) the layer runs as `stride` ordinary convolutions, one per output
/// phase `r = (j + padding) mod stride`: phase r sees only the taps `κ = r + m·stride`, so all phases together are
/// one product of `[stride·out, in·taps]` phase weights with a `taps`-deep im2col of the input, and every output is
/// written once (no col2im scatter-add, and a `taps`× deeper product). Otherwise each input column is expanded by
/// one product into `[out·kernel]` taps, which are scattered into the output at `t·stride + κ·dilation − padding`.
public struct ConvTranspose1d: Sendable {
    public let weight: [Float]
    public let bias: [Float]?
    public let inChannels: Int
    public let outChannels: Int
    public let kernelSize: Int
    public let stride: Int
    public let dilation: Int
    public let padding: Int
    public let outputPadding: Int
    public let groups: Int
    /// Phase weights `[stride·out, in·phaseTaps]` (row `r·out + o`, column `i·phaseTaps + m` = `weight[i, o, r + m·stride]`,
    /// zero past the kernel) when the phase decomposition applies, else empty.
    let phaseWeight: [Float]
    let phaseTaps: Int

    /// Creates a transposed convolution; sizes are checked against the weight.
    public init(weight: [Float], bias: [Float]?, inChannels: Int, outChannels: Int, kernelSize: Int,
                stride: Int = 1, dilation: Int = 1, padding: Int = 0, outputPadding: Int = 0, groups: Int = 1) {
        precondition(groups > 0 && inChannels % groups == 0 && outChannels % groups == 0, "ConvTranspose1d: groups")
        precondition(weight.count == inChannels * (outChannels / groups) * kernelSize,
                     "ConvTranspose1d: weight has \(weight.count) elements, expected \(inChannels)×\(outChannels / groups)×\(kernelSize)")
        precondition(bias.map { $0.count == outChannels } ?? true, "ConvTranspose1d: bias size")
        self.weight = weight
        self.bias = bias
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.kernelSize = kernelSize
        self.stride = stride
        self.dilation = dilation
        self.padding = padding
        self.outputPadding = outputPadding
        self.groups = groups
        if groups == 1 && dilation == 1 && stride > 0 {
            let taps = (kernelSize + stride - 1) / stride
            var pw = [Float](repeating: 0, count: stride * outChannels * inChannels * taps)
            for r in 0..<stride { for o in 0..<outChannels { for i in 0..<inChannels { for m in 0..<taps {
                let kk = r + m * stride
                if kk < kernelSize {
                    pw[(r * outChannels + o) * inChannels * taps + i * taps + m] = weight[(i * outChannels + o) * kernelSize + kk]
                }
            } } } }
            phaseWeight = pw
            phaseTaps = taps
        } else {
            phaseWeight = []
            phaseTaps = 0
        }
    }

    /// The output length for an input of `length` samples.
    public func outputLength(_ length: Int) -> Int {
        max(0, (length - 1) * stride - 2 * padding + dilation * (kernelSize - 1) + outputPadding + 1)
    }

    /// Applies the layer to `x` (`[inChannels, length]`), writing `y` (`[outChannels, outputLength(length)]`).
    public func apply(_ x: UnsafePointer<Float>, length: Int, into y: UnsafeMutablePointer<Float>) {
        let lout = outputLength(length)
        guard lout > 0, length > 0 else { return }
        if phaseTaps > 0 {
            applyByPhases(x, length: length, into: y)
            return
        }
        let cin = inChannels / groups, cout = outChannels / groups
        let rows = cout * kernelSize
        let tile = max(32, min(length, (1 << 21) / max(rows, 1)))
        // Start from the bias (or zero), then accumulate every tap.
        if let bias {
            for o in 0..<outChannels { (y + o * lout).update(repeating: bias[o], count: lout) }
        } else {
            y.update(repeating: 0, count: outChannels * lout)
        }
        weight.withUnsafeBufferPointer { wbuf in
            Scratch.with(rows * tile) { col in
                let w = wbuf.baseAddress!
                var start = 0
                while start < length {
                    let n = min(tile, length - start)
                    for g in 0..<groups {
                        BLAS.gemm(transA: true, m: rows, n: n, k: cin,
                                  a: w + g * cin * rows, lda: rows,
                                  b: x + g * cin * length + start, ldb: length,
                                  c: col, ldc: n)
                        let yg = y + g * cout * lout
                        let (k, s, d, p) = (kernelSize, stride, dilation, padding)
                        // Output channels are disjoint rows of y: scatter them in parallel.
                        ComputeThreads.parallelRanges(cout, minChunk: max(1, 16384 / max(n * k, 1))) { lo, hi in
                            for o in lo..<hi {
                                let yo = yg + o * lout
                                for kk in 0..<k {
                                    let src = col + (o * k + kk) * n
                                    let shift = kk * d - p
                                    for t in 0..<n {
                                        let j = (start + t) * s + shift
                                        if j >= 0 && j < lout { yo[j] += src[t] }
                                    }
                                }
                            }
                        }
                    }
                    start += n
                }
            }
        }
    }

    /// The phase-decomposed path (see the type's comment); writes every element of `y`.
    ///
    /// Output `j = q·stride + r − padding` is `bias + Σ_{i,m} weight[i, o, r + m·stride]·x[i, q − m]`, so tiles of
    /// q are one product `Y = phaseWeight · col` with `col[i·taps + m, q] = x[i, q − m]`, then row `r·out + o` of Y
    /// is interleaved into output row o at stride `stride`.
    func applyByPhases(_ x: UnsafePointer<Float>, length: Int, into y: UnsafeMutablePointer<Float>) {
        let lout = outputLength(length)
        let (s, p, taps, cin, cout) = (stride, padding, phaseTaps, inChannels, outChannels)
        let depth = cin * taps, rows = s * cout
        let qmin = p / s, qmax = (lout - 1 + p) / s
        let qcount = qmax - qmin + 1
        // ~1 MB of product per tile, but at least 256 columns: at high channel counts the phase weights are tens of
        // megabytes and are streamed once per tile.
        let (tile, tiles) = ComputeThreads.balancedTiles(qcount, maxTile: max(256, (1 << 18) / max(rows, 1)))
        let parallelTiles = tiles >= 2 * ComputeThreads.count || ComputeThreads.count == 1
        phaseWeight.withUnsafeBufferPointer { wb in
            guard let w = wb.baseAddress else { return }
            let run = { (lo: Int, hi: Int, parallelGEMM: Bool) in
                Scratch.with(depth * tile, rows * tile) { col, prod in
                    for ti in lo..<hi {
                        let q0 = qmin + ti * tile, n = min(tile, qmax + 1 - q0)
                        for i in 0..<cin {
                            let xi = x + i * length
                            for m in 0..<taps {
                                let dst = col + (i * taps + m) * n
                                // x index q0 + t − m for t in 0..<n, zero outside the signal.
                                let first = q0 - m
                                let vlo = min(n, max(0, -first)), vhi = max(vlo, min(n, length - first))
                                if vlo > 0 { dst.update(repeating: 0, count: vlo) }
                                if vhi > vlo { (dst + vlo).update(from: xi + first + vlo, count: vhi - vlo) }
                                if vhi < n { (dst + vhi).update(repeating: 0, count: n - vhi) }
                            }
                        }
                        BLAS.gemm(m: rows, n: n, k: depth, a: w, lda: depth, b: col, ldb: n, c: prod, ldc: n,
                                  parallel: parallelGEMM)
                        for r in 0..<s {
                            // Columns t with 0 ≤ (q0 + t)·s + r − p < lout.
                            let base = q0 * s + r - p
                            let tlo = base >= 0 ? 0 : (-base + s - 1) / s
                            let thi = min(n, lout - base > 0 ? (lout - base + s - 1) / s : 0)
                            guard thi > tlo else { continue }
                            for o in 0..<cout {
                                let src = prod + (r * cout + o) * n
                                let dst = y + o * lout + base
                                let b = bias?[o] ?? 0
                                for t in tlo..<thi { dst[t * s] = src[t] + b }
                            }
                        }
                    }
                }
            }
            if parallelTiles {
                ComputeThreads.parallelRanges(tiles) { lo, hi in run(lo, hi, false) }
            } else {
                run(0, tiles, true)
            }
        }
    }

    /// Applies the layer to a `[inChannels, length]` or `[batch, inChannels, length]` tensor.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        applyPerItem(x, inChannels: inChannels, outChannels: outChannels, outputLength: outputLength) { apply($0, length: $1, into: $2) }
    }
}

/// Runs a per-item `[channels, length]` layer over a `[channels, length]` or `[batch, channels, length]` tensor.
func applyPerItem(_ x: Tensor, inChannels: Int, outChannels: Int, outputLength: (Int) -> Int,
                  _ apply: (UnsafePointer<Float>, Int, UnsafeMutablePointer<Float>) -> Void) -> Tensor {
    let batched = x.rank == 3
    precondition((x.rank == 2 || batched) && x.shape[x.rank - 2] == inChannels, "convolution: input \(x.shape), expected \(inChannels) channels")
    let batch = batched ? x.shape[0] : 1
    let length = x.shape[x.rank - 1]
    let lout = outputLength(length)
    var out = Tensor(zeros: batched ? [batch, outChannels, lout] : [outChannels, lout])
    x.data.withUnsafeBufferPointer { px in
        out.data.withUnsafeMutableBufferPointer { po in
            for b in 0..<batch {
                apply(px.baseAddress! + b * inChannels * length, length, po.baseAddress! + b * outChannels * lout)
            }
        }
    }
    return out
}
