import XCTest
import TussTensor
import TussTestSupport
#if os(Linux)
import Glibc
#endif

final class KernelTests: XCTestCase {
    override func setUp() { ComputeThreads.configure(2) }

    func testGemmAllTransposesAgainstNaiveLoops() {
        var rng = XorshiftGenerator(seed: 1)
        for (m, n, k) in [(3, 5, 7), (130, 70, 33), (64, 600, 40), (700, 90, 50), (1, 37, 19), (1, 5, 300)] {
            for transA in [false, true] {
                for transB in [false, true] {
                    let a = rng.array(m * k), b = rng.array(k * n), c0 = rng.array(m * n)
                    var c = c0
                    a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in c.withUnsafeMutableBufferPointer { pc in
                        BLAS.gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 0.5,
                                  a: pa.baseAddress!, lda: transA ? m : k, b: pb.baseAddress!, ldb: transB ? k : n,
                                  beta: 2, c: pc.baseAddress!, ldc: n)
                    } } }
                    var expected = [Float](repeating: 0, count: m * n)
                    for i in 0..<m { for j in 0..<n {
                        var s = 0.0
                        for p in 0..<k {
                            let av = transA ? a[p * m + i] : a[i * k + p]
                            let bv = transB ? b[j * k + p] : b[p * n + j]
                            s += Double(av) * Double(bv)
                        }
                        expected[i * n + j] = Float(0.5 * s + 2 * Double(c0[i * n + j]))
                    } }
                    XCTAssertLessThan(relativeL2(c, expected), 1e-6, "gemm \(m)x\(n)x\(k) tA=\(transA) tB=\(transB)")
                }
            }
        }
    }

    /// Large beta = 0 products run in row blocks (see `BLAS.zeroedSplitFloats`): same result as the naive loops, for
    /// every transpose, on one and two threads.
    func testLargeZeroBetaGemmInRowBlocks() {
        var rng = XorshiftGenerator(seed: 24)
        let (m, n, k) = (9001, 300, 9)
        XCTAssertGreaterThan(m * n, 1 << 21)
        for transA in [false, true] {
            for transB in [false, true] {
                let a = rng.array(m * k), b = rng.array(k * n)
                var expected = [Float](repeating: 0, count: m * n)
                for i in 0..<m { for j in 0..<n {
                    var acc = 0.0
                    for p in 0..<k {
                        let av = transA ? a[p * m + i] : a[i * k + p]
                        let bv = transB ? b[j * k + p] : b[p * n + j]
                        acc += Double(av) * Double(bv)
                    }
                    expected[i * n + j] = Float(0.5 * acc)
                } }
                for threads in [1, 2] {
                    ComputeThreads.configure(threads)
                    var c = [Float](repeating: .nan, count: m * n)
                    a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in c.withUnsafeMutableBufferPointer { pc in
                        BLAS.gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 0.5,
                                  a: pa.baseAddress!, lda: transA ? m : k, b: pb.baseAddress!, ldb: transB ? k : n,
                                  beta: 0, c: pc.baseAddress!, ldc: n)
                    } } }
                    XCTAssertLessThan(relativeL2(c, expected), 1e-6, "transA \(transA) transB \(transB) threads \(threads)")
                }
                ComputeThreads.configure(2)
            }
        }
    }

    func testBatchedMatmulAndLinear() {
        var rng = XorshiftGenerator(seed: 2)
        let a = Tensor(shape: [3, 4, 5], data: rng.array(60)), b = Tensor(shape: [3, 5, 6], data: rng.array(90))
        let c = BLAS.batchedMatmul(a, b)
        for bi in 0..<3 { for i in 0..<4 { for j in 0..<6 {
            var s: Float = 0
            for p in 0..<5 { s += a.data[bi * 20 + i * 5 + p] * b.data[bi * 30 + p * 6 + j] }
            XCTAssertEqual(c.data[bi * 24 + i * 6 + j], s, accuracy: 1e-5)
        } } }
        let w = rng.array(7 * 5), bias = rng.array(7)
        let lin = Linear(weight: w, bias: bias, inFeatures: 5, outFeatures: 7)
        let x = Tensor(shape: [2, 3, 5], data: rng.array(30))
        let y = lin(x)
        XCTAssertEqual(y.shape, [2, 3, 7])
        for r in 0..<6 { for o in 0..<7 {
            var s = bias[o]
            for i in 0..<5 { s += x.data[r * 5 + i] * w[o * 5 + i] }
            XCTAssertEqual(y.data[r * 7 + o], s, accuracy: 1e-5)
        } }
    }

    /// Naive PyTorch-semantics conv1d.
    func naiveConv(_ x: [Float], cin: Int, len: Int, w: [Float], bias: [Float]?, cout: Int, k: Int,
                   stride: Int, dil: Int, pad: Int, groups: Int) -> [Float] {
        let lout = (len + 2 * pad - dil * (k - 1) - 1) / stride + 1
        var y = [Float](repeating: 0, count: cout * lout)
        let cpg = cin / groups, opg = cout / groups
        for o in 0..<cout { for t in 0..<lout {
            var s = Double(bias?[o] ?? 0)
            let g = o / opg
            for i in 0..<cpg { for kk in 0..<k {
                let pos = t * stride + kk * dil - pad
                if pos >= 0 && pos < len { s += Double(w[(o * cpg + i) * k + kk]) * Double(x[(g * cpg + i) * len + pos]) }
            } }
            y[o * lout + t] = Float(s)
        } }
        return y
    }

    func testConv1dStrideDilationPaddingGroups() {
        var rng = XorshiftGenerator(seed: 3)
        let cases: [(cin: Int, cout: Int, k: Int, s: Int, d: Int, p: Int, g: Int, len: Int)] = [
            (1, 4, 7, 1, 1, 3, 1, 50), (6, 8, 3, 2, 1, 1, 2, 33), (8, 8, 7, 1, 9, 27, 1, 300),
            (4, 6, 1, 1, 1, 0, 1, 20), (16, 16, 4, 4, 1, 2, 16, 41), (5, 3, 16, 8, 1, 4, 1, 5000),
        ]
        for c in cases {
            let x = rng.array(c.cin * c.len), w = rng.array(c.cout * (c.cin / c.g) * c.k), b = rng.array(c.cout)
            let conv = Conv1d(weight: w, bias: b, inChannels: c.cin, outChannels: c.cout, kernelSize: c.k,
                              stride: c.s, dilation: c.d, padding: c.p, groups: c.g)
            let y = conv(Tensor(shape: [c.cin, c.len], data: x))
            let expected = naiveConv(x, cin: c.cin, len: c.len, w: w, bias: b, cout: c.cout, k: c.k,
                                     stride: c.s, dil: c.d, pad: c.p, groups: c.g)
            XCTAssertEqual(y.count, expected.count, "\(c)")
            XCTAssertLessThan(relativeL2(y.data, expected), 1e-6, "\(c)")
        }
    }

    func testConvTranspose1dAgainstScatterDefinition() {
        var rng = XorshiftGenerator(seed: 4)
        let cases: [(cin: Int, cout: Int, k: Int, s: Int, p: Int, g: Int, len: Int)] = [
            (8, 4, 16, 8, 4, 1, 11), (6, 3, 10, 5, 3, 1, 7), (4, 4, 4, 1, 0, 1, 9), (4, 6, 3, 2, 1, 2, 12), (3, 2, 4, 2, 1, 1, 3000),
        ]
        for c in cases {
            let x = rng.array(c.cin * c.len), w = rng.array(c.cin * (c.cout / c.g) * c.k), b = rng.array(c.cout)
            let layer = ConvTranspose1d(weight: w, bias: b, inChannels: c.cin, outChannels: c.cout, kernelSize: c.k,
                                        stride: c.s, padding: c.p, groups: c.g)
            let y = layer(Tensor(shape: [c.cin, c.len], data: x))
            let lout = (c.len - 1) * c.s - 2 * c.p + c.k
            XCTAssertEqual(y.shape, [c.cout, lout])
            var expected = [Double](repeating: 0, count: c.cout * lout)
            for o in 0..<c.cout { for j in 0..<lout { expected[o * lout + j] = Double(b[o]) } }
            let ipg = c.cin / c.g, opg = c.cout / c.g
            for i in 0..<c.cin { for t in 0..<c.len { for oo in 0..<opg { for kk in 0..<c.k {
                let j = t * c.s + kk - c.p
                let o = (i / ipg) * opg + oo
                if j >= 0 && j < lout { expected[o * lout + j] += Double(w[(i * opg + oo) * c.k + kk]) * Double(x[i * c.len + t]) }
            } } } }
            XCTAssertLessThan(relativeL2(y.data, expected.map(Float.init)), 1e-6, "\(c)")
        }
    }

    func testNorms() {
        var rng = XorshiftGenerator(seed: 5)
        // Layer norm.
        var x = rng.array(4 * 10)
        let w = rng.array(10), b = rng.array(10)
        let x0 = x
        x.withUnsafeMutableBufferPointer { p in
            Normalization.layerNorm(p.baseAddress!, rows: 4, dim: 10, weight: w, bias: b, eps: 1e-5)
        }
        for r in 0..<4 {
            let row = x0[r * 10..<(r + 1) * 10].map(Double.init)
            let mean = row.reduce(0, +) / 10
            let variance = row.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 10
            for i in 0..<10 {
                XCTAssertEqual(Double(x[r * 10 + i]), (row[i] - mean) / (variance + 1e-5).squareRoot() * Double(w[i]) + Double(b[i]), accuracy: 1e-5)
            }
        }
        // Group norm, channels-first and channels-last agree with the definition.
        let channels = 6, length = 9, groups = 3
        let g0 = rng.array(channels * length), gw = rng.array(channels), gb = rng.array(channels)
        var g1 = g0
        g1.withUnsafeMutableBufferPointer { p in
            Normalization.groupNorm(p.baseAddress!, channels: channels, length: length, groups: groups, weight: gw, bias: gb)
        }
        var gl = Tensor(shape: [channels, length], data: g0).transposed(0, 1).data
        gl.withUnsafeMutableBufferPointer { p in
            Normalization.groupNormChannelsLast(p.baseAddress!, length: length, channels: channels, groups: groups, weight: gw, bias: gb)
        }
        let per = channels / groups
        for g in 0..<groups {
            let vals = g0[g * per * length..<(g + 1) * per * length].map(Double.init)
            let mean = vals.reduce(0, +) / Double(vals.count)
            let variance = vals.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(vals.count)
            for c in g * per..<(g + 1) * per { for t in 0..<length {
                let e = (Double(g0[c * length + t]) - mean) / (variance + 1e-5).squareRoot() * Double(gw[c]) + Double(gb[c])
                XCTAssertEqual(Double(g1[c * length + t]), e, accuracy: 1e-5)
                XCTAssertEqual(Double(gl[t * channels + c]), e, accuracy: 1e-5)
            } }
        }
        // RMS group norm: eps added to the rms, outside the square root.
        let dim = 8, rgroups = 2
        let r0 = rng.array(3 * dim), gamma = rng.array(dim)
        var r1 = [Float](repeating: 0, count: r0.count)
        r1.withUnsafeMutableBufferPointer { p in
            Normalization.rmsGroupNorm(r0, into: p.baseAddress!, rows: 3, dim: dim, groups: rgroups, gamma: gamma, eps: 0.1)
        }
        for r in 0..<3 { for g in 0..<rgroups {
            let idx = (r * dim + g * 4)..<(r * dim + g * 4 + 4)
            let rms = (r0[idx].map { Double($0 * $0) }.reduce(0, +) / 4).squareRoot()
            for i in idx { XCTAssertEqual(Double(r1[i]), Double(r0[i]) / (rms + 0.1) * Double(gamma[i % dim]), accuracy: 1e-5) }
        } }
    }

    func testActivations() {
        var rng = XorshiftGenerator(seed: 6)
        let x = rng.array(40).map { $0 * 4 }
        func run(_ f: (UnsafeMutablePointer<Float>, Int) -> Void) -> [Float] {
            var y = x; y.withUnsafeMutableBufferPointer { f($0.baseAddress!, $0.count) }; return y
        }
        let silu = run { Activation.silu($0, count: $1) }
        let th = run { Activation.tanh($0, count: $1) }
        let sg = run { Activation.sigmoid($0, count: $1) }
        for i in 0..<x.count {
            let v = Double(x[i])
            XCTAssertEqual(Double(silu[i]), v / (1 + exp(-v)), accuracy: 1e-6)
            XCTAssertEqual(Double(th[i]), Foundation_tanh(v), accuracy: 1e-6)
            XCTAssertEqual(Double(sg[i]), 1 / (1 + exp(-v)), accuracy: 1e-6)
        }
        var glu = [Float](repeating: 0, count: 20), swi = glu
        glu.withUnsafeMutableBufferPointer { Activation.glu(x, rows: 2, width: 10, into: $0.baseAddress!) }
        swi.withUnsafeMutableBufferPointer { Activation.swiglu(x, rows: 2, width: 10, into: $0.baseAddress!) }
        for r in 0..<2 { for i in 0..<10 {
            let a = Double(x[r * 20 + i]), g = Double(x[r * 20 + 10 + i])
            XCTAssertEqual(Double(glu[r * 10 + i]), a / (1 + exp(-g)), accuracy: 1e-5)
            XCTAssertEqual(Double(swi[r * 10 + i]), a * g / (1 + exp(-g)), accuracy: 1e-5)
        } }
        let alpha: [Float] = [0.5, 1.7, 3]
        var sn = Array(x[0..<30])
        sn.withUnsafeMutableBufferPointer { Activation.snake($0.baseAddress!, channels: 3, length: 10, alpha: alpha) }
        for c in 0..<3 { for t in 0..<10 {
            let v = Double(x[c * 10 + t]), a = Double(alpha[c])
            XCTAssertEqual(Double(sn[c * 10 + t]), v + pow(sin(a * v), 2) / (a + 1e-9), accuracy: 1e-5)
        } }
        var sm = Array(x[0..<12])
        sm.withUnsafeMutableBufferPointer { Activation.softmaxRows($0.baseAddress!, rows: 3, width: 4) }
        for r in 0..<3 {
            let row = x[r * 4..<r * 4 + 4].map(Double.init)
            let z = row.map { exp($0) }.reduce(0, +)
            for i in 0..<4 { XCTAssertEqual(Double(sm[r * 4 + i]), exp(row[i]) / z, accuracy: 1e-6) }
        }
    }

    /// Every instruction-set variant of the C kernels against double-precision formulas, on lengths with SIMD tails.
    func testElementwiseKernelsEveryISAAgainstNaive() {
        var rng = XorshiftGenerator(seed: 21)
        let best = Activation.kernelISA
        defer { Activation.forceKernelISA(best) }
        let (rows, width) = (3, 1003)
        let x = rng.array(rows * 2 * width).map { $0 * 6 }
        let bias = rng.array(2 * width)
        for isa in 0...2 {
            Activation.forceKernelISA(isa)
            func run(_ f: (UnsafeMutablePointer<Float>, Int) -> Void) -> [Float] {
                var y = x; y.withUnsafeMutableBufferPointer { f($0.baseAddress!, $0.count) }; return y
            }
            let silu = run { Activation.silu($0, count: $1) }
            let th = run { Activation.tanh($0, count: $1) }
            let sg = run { Activation.sigmoid($0, count: $1) }
            for i in 0..<x.count {
                let v = Double(x[i])
                XCTAssertEqual(Double(silu[i]), v / (1 + exp(-v)), accuracy: 1e-5 * max(1, abs(v)), "isa \(isa)")
                XCTAssertEqual(Double(th[i]), Foundation_tanh(v), accuracy: 1e-6, "isa \(isa)")
                XCTAssertEqual(Double(sg[i]), 1 / (1 + exp(-v)), accuracy: 1e-6, "isa \(isa)")
            }
            var glu = [Float](repeating: 0, count: rows * width), swi = glu, swib = glu
            glu.withUnsafeMutableBufferPointer { Activation.glu(x, rows: rows, width: width, into: $0.baseAddress!) }
            swi.withUnsafeMutableBufferPointer { Activation.swiglu(x, rows: rows, width: width, into: $0.baseAddress!) }
            swib.withUnsafeMutableBufferPointer { Activation.swiglu(x, rows: rows, width: width, bias: bias, into: $0.baseAddress!) }
            for r in 0..<rows { for i in 0..<width {
                let a = Double(x[r * 2 * width + i]), g = Double(x[r * 2 * width + width + i])
                let ab = Double(x[r * 2 * width + i] + bias[i]), gb = Double(x[r * 2 * width + width + i] + bias[width + i])
                XCTAssertEqual(Double(glu[r * width + i]), a / (1 + exp(-g)), accuracy: 1e-5, "isa \(isa)")
                XCTAssertEqual(Double(swi[r * width + i]), a * g / (1 + exp(-g)), accuracy: 2e-5 * max(1, abs(a * g)), "isa \(isa)")
                XCTAssertEqual(Double(swib[r * width + i]), ab * gb / (1 + exp(-gb)), accuracy: 2e-5 * max(1, abs(ab * gb)), "isa \(isa)")
            } }
            // Softmax, normalised and with the inverse sums returned.
            var sm = x, un = x
            var inv = [Float](repeating: 0, count: 2 * rows)
            sm.withUnsafeMutableBufferPointer { Activation.softmaxRows($0.baseAddress!, rows: 2 * rows, width: width) }
            un.withUnsafeMutableBufferPointer { u in inv.withUnsafeMutableBufferPointer { v in
                Activation.softmaxRowsUnnormalized(u.baseAddress!, rows: 2 * rows, width: width, inverseSums: v.baseAddress!)
            } }
            for r in 0..<2 * rows {
                let row = x[r * width..<(r + 1) * width].map(Double.init)
                let m = row.max()!
                let z = row.map { exp($0 - m) }.reduce(0, +)
                for i in 0..<width {
                    let e = exp(row[i] - m) / z
                    XCTAssertEqual(Double(sm[r * width + i]), e, accuracy: 2e-6 * e + 1e-12, "isa \(isa)")
                    XCTAssertEqual(Double(un[r * width + i] * inv[r]), e, accuracy: 2e-6 * e + 1e-12, "isa \(isa)")
                }
            }
            // Snake in place, copied, and with a bias folded in.
            let channels = 6, length = x.count / 6
            let alpha = rng.array(channels).map { abs($0) * 3 + 0.05 }
            let cb = rng.array(channels)
            var sn = x, sc = [Float](repeating: 0, count: x.count), sb = x
            sn.withUnsafeMutableBufferPointer { Activation.snake($0.baseAddress!, channels: channels, length: length, alpha: alpha) }
            sc.withUnsafeMutableBufferPointer { Activation.snake(x, channels: channels, length: length, alpha: alpha, into: $0.baseAddress!) }
            sb.withUnsafeMutableBufferPointer { Activation.snake($0.baseAddress!, channels: channels, length: length, bias: cb, alpha: alpha) }
            for c in 0..<channels { for t in 0..<length {
                let a = Double(alpha[c])
                func snake(_ v: Double) -> Double { v + pow(sin(Double(Float(a * v))), 2) / (a + 1e-9) }
                let v = Double(x[c * length + t]), vb = Double(x[c * length + t] + cb[c])
                XCTAssertEqual(Double(sn[c * length + t]), snake(v), accuracy: 2e-5 * max(1, abs(v)), "isa \(isa)")
                XCTAssertEqual(sc[c * length + t], sn[c * length + t], "isa \(isa)")
                XCTAssertEqual(Double(sb[c * length + t]), snake(vb), accuracy: 2e-5 * max(1, abs(vb)), "isa \(isa)")
            } }
            // Gather-add of per-tap products (the TUSS deconvolution): dims with and without a 16-wide tail.
            for dim in [64, 37] {
                let taps = 4, shift = 3, len = 50
                let prows = len + shift
                let pm = rng.array(prows * taps * dim), db = rng.array(dim), y0 = rng.array(len * dim)
                var y = y0
                y.withUnsafeMutableBufferPointer {
                    Activation.overlapAddRows(pm, taps: taps, dim: dim, length: len, shift: shift, bias: db, into: $0.baseAddress!)
                }
                for t in 0..<len { for i in 0..<dim {
                    var e = Double(y0[t * dim + i]) + Double(db[i])
                    for k in 0..<taps { e += Double(pm[(t + shift - k) * taps * dim + k * dim + i]) }
                    XCTAssertEqual(Double(y[t * dim + i]), e, accuracy: 1e-5, "isa \(isa) dim \(dim)")
                } }
            }
        }
    }

    /// The fused DAC residual unit against the unfused definition with naive convolutions, over several tiles.
    func testSnakeResidualUnitAgainstNaive() {
        var rng = XorshiftGenerator(seed: 22)
        for (c, len, dil) in [(3, 50, 1), (40, 3000, 9), (24, 2000, 3)] {
            let x = rng.array(c * len).map { $0 * 2 }
            let w1 = rng.array(c * c * 7).map { $0 * 0.3 }, b1 = rng.array(c)
            let w2 = rng.array(c * c).map { $0 * 0.3 }, b2 = rng.array(c)
            let a1 = rng.array(c).map { abs($0) + 0.1 }, a2 = rng.array(c).map { abs($0) + 0.1 }
            let unit = SnakeResidualUnit(
                conv1: Conv1d(weight: w1, bias: b1, inChannels: c, outChannels: c, kernelSize: 7, dilation: dil, padding: 3 * dil),
                conv2: Conv1d(weight: w2, bias: b2, inChannels: c, outChannels: c, kernelSize: 1),
                alpha1: a1, alpha2: a2)
            func snake(_ v: [Float], _ alpha: [Float]) -> [Float] {
                var out = v
                for ch in 0..<c { for t in 0..<len {
                    let a = Double(alpha[ch]), u = Double(v[ch * len + t])
                    out[ch * len + t] = Float(u + pow(sin(a * u), 2) / (a + 1e-9))
                } }
                return out
            }
            let h = snake(naiveConv(snake(x, a1), cin: c, len: len, w: w1, bias: b1, cout: c, k: 7, stride: 1, dil: dil, pad: 3 * dil, groups: 1), a2)
            let r = naiveConv(h, cin: c, len: len, w: w2, bias: b2, cout: c, k: 1, stride: 1, dil: 1, pad: 0, groups: 1)
            let expected = zip(r, x).map { $0 + $1 }
            for threads in [1, 2] {
                ComputeThreads.configure(threads)
                let y = unit(Tensor(shape: [c, len], data: x))
                XCTAssertEqual(y.shape, [c, len])
                XCTAssertLessThan(relativeL2(y.data, expected), 1e-5, "c \(c) len \(len) dilation \(dil) threads \(threads)")
            }
            ComputeThreads.configure(2)
        }
    }

    /// The phase-decomposed transposed convolution over several tiles and with output padding.
    func testConvTransposeByPhasesAgainstScatterDefinition() {
        var rng = XorshiftGenerator(seed: 23)
        let cases: [(cin: Int, cout: Int, k: Int, s: Int, p: Int, op: Int, len: Int)] = [
            (4, 256, 16, 8, 4, 0, 1000), (5, 3, 5, 2, 2, 1, 40), (3, 7, 7, 3, 0, 2, 30), (6, 4, 8, 4, 2, 0, 1),
        ]
        for c in cases {
            let x = rng.array(c.cin * c.len), w = rng.array(c.cin * c.cout * c.k), b = rng.array(c.cout)
            let layer = ConvTranspose1d(weight: w, bias: b, inChannels: c.cin, outChannels: c.cout, kernelSize: c.k,
                                        stride: c.s, padding: c.p, outputPadding: c.op)
            let lout = (c.len - 1) * c.s - 2 * c.p + c.k + c.op
            var expected = [Double](repeating: 0, count: c.cout * lout)
            for o in 0..<c.cout { for j in 0..<lout { expected[o * lout + j] = Double(b[o]) } }
            for i in 0..<c.cin { for t in 0..<c.len { for o in 0..<c.cout { for kk in 0..<c.k {
                let j = t * c.s + kk - c.p
                if j >= 0 && j < lout { expected[o * lout + j] += Double(w[(i * c.cout + o) * c.k + kk]) * Double(x[i * c.len + t]) }
            } } } }
            for threads in [1, 2] {
                ComputeThreads.configure(threads)
                let y = layer(Tensor(shape: [c.cin, c.len], data: x))
                XCTAssertEqual(y.shape, [c.cout, lout])
                XCTAssertLessThan(relativeL2(y.data, expected.map(Float.init)), 1e-6, "\(c) threads \(threads)")
            }
            ComputeThreads.configure(2)
        }
    }

    func testSnakeAtLargeArguments() {
        var rng = XorshiftGenerator(seed: 9)
        let x = rng.array(2000).map { $0 * 60 }
        let alpha: [Float] = [0.05, 1, 4.5, 9]
        var y = x
        y.withUnsafeMutableBufferPointer { Activation.snake($0.baseAddress!, channels: 4, length: 500, alpha: alpha) }
        for c in 0..<4 { for t in 0..<500 {
            let v = Double(x[c * 500 + t]), a = Double(Float(alpha[c]))
            let expected = v + pow(sin(Double(Float(a * v))), 2) / (a + 1e-9)
            XCTAssertEqual(Double(y[c * 500 + t]), expected, accuracy: 2e-5 * max(1, abs(expected)))
        } }
    }

    func testAttentionWithInterleavedRoPEAgainstNaive() {
        var rng = XorshiftGenerator(seed: 7)
        let dim = 12, heads = 2, adim = 16, dh = 8, length = 9, seqs = 3
        let wqkv = rng.array(3 * adim * dim), wout = rng.array(dim * adim)
        let rope = RotaryEmbedding(headDim: dh)
        let att = MultiHeadSelfAttention(qkv: Linear(weight: wqkv, bias: nil, inFeatures: dim, outFeatures: 3 * adim),
                                         output: Linear(weight: wout, bias: nil, inFeatures: adim, outFeatures: dim),
                                         heads: heads, rope: rope)
        let x = rng.array(seqs * length * dim)
        var y = [Float](repeating: 0, count: x.count)
        y.withUnsafeMutableBufferPointer { att.apply(x, sequences: seqs, length: length, into: $0.baseAddress!) }
        // Naive reference in Double.
        for s in 0..<seqs {
            var q = [[Double]](repeating: [Double](repeating: 0, count: adim), count: length), k = q, v = q
            for t in 0..<length {
                for o in 0..<3 * adim {
                    var acc = 0.0
                    for i in 0..<dim { acc += Double(wqkv[o * dim + i]) * Double(x[(s * length + t) * dim + i]) }
                    if o < adim { q[t][o] = acc } else if o < 2 * adim { k[t][o - adim] = acc } else { v[t][o - 2 * adim] = acc }
                }
                for h in 0..<heads { for p in 0..<dh / 2 {
                    let theta = pow(10000.0, -Double(2 * p) / Double(dh)), ang = Double(t) * theta
                    for vec in [0, 1] {
                        var arr = vec == 0 ? q[t] : k[t]
                        let a = arr[h * dh + 2 * p], b = arr[h * dh + 2 * p + 1]
                        arr[h * dh + 2 * p] = a * cos(ang) - b * sin(ang)
                        arr[h * dh + 2 * p + 1] = b * cos(ang) + a * sin(ang)
                        if vec == 0 { q[t] = arr } else { k[t] = arr }
                    }
                } }
            }
            var mixed = [[Double]](repeating: [Double](repeating: 0, count: adim), count: length)
            for h in 0..<heads { for t in 0..<length {
                var sc = [Double](repeating: 0, count: length)
                for u in 0..<length {
                    var dot = 0.0
                    for d in 0..<dh { dot += q[t][h * dh + d] * k[u][h * dh + d] }
                    sc[u] = dot / Double(dh).squareRoot()
                }
                let m = sc.max()!
                var z = 0.0
                for u in 0..<length { sc[u] = exp(sc[u] - m); z += sc[u] }
                for d in 0..<dh {
                    var acc = 0.0
                    for u in 0..<length { acc += sc[u] / z * v[u][h * dh + d] }
                    mixed[t][h * dh + d] = acc
                }
            } }
            for t in 0..<length { for o in 0..<dim {
                var e = 0.0
                for i in 0..<adim { e += Double(wout[o * adim + i]) * mixed[t][i] }
                XCTAssertEqual(Double(y[(s * length + t) * dim + o]), e, accuracy: 1e-4)
            } }
        }
    }

    func testPermute() {
        let t = Tensor(shape: [2, 3, 4], data: (0..<24).map(Float.init))
        let p = t.permuted([2, 0, 1])
        XCTAssertEqual(p.shape, [4, 2, 3])
        for a in 0..<2 { for b in 0..<3 { for c in 0..<4 {
            XCTAssertEqual(p.data[(c * 2 + a) * 3 + b], t.data[(a * 3 + b) * 4 + c])
        } } }
    }

    func testThreadCountDoesNotChangeResults() {
        var rng = XorshiftGenerator(seed: 8)
        let x = rng.array(64 * 2000), w = rng.array(64 * 64 * 7)
        let conv = Conv1d(weight: w, bias: nil, inChannels: 64, outChannels: 64, kernelSize: 7, padding: 3)
        ComputeThreads.configure(1)
        let y1 = conv(Tensor(shape: [64, 2000], data: x))
        ComputeThreads.configure(2)
        let y2 = conv(Tensor(shape: [64, 2000], data: x))
        // Splitting a product changes OpenBLAS's blocking, so results agree to rounding, not bit for bit.
        XCTAssertLessThan(relativeL2(y1.data, y2.data), 1e-6)
    }
}

func Foundation_tanh(_ x: Double) -> Double { tanh(x) }
