import TussTensor
import TussWeights

/// The residual vector quantizer: per codebook an input projection, a cosine-similarity lookup, and an output
/// projection of the raw code vector; residuals are quantised stage by stage.
public struct ResidualVectorQuantizer: Sendable {
    struct Stage: Sendable {
        let inProj: Conv1d
        let outProj: Conv1d
        /// `[size, dim]` raw code vectors.
        let codebook: [Float]
        /// `[size, dim]` L2-normalised code vectors for the lookup.
        let normalized: [Float]
    }
    let stages: [Stage]
    let latentDim: Int
    let codebookDim: Int
    let codebookSize: Int

    init(_ w: WeightReader, config: DACConfig) throws(ModelError) {
        var out: [Stage] = []
        for i in 0..<config.codebooks {
            let q = w.scoped("quantizers.\(i)")
            let book = try q.floats("codebook.weight", shape: [config.codebookSize, config.codebookDim])
            out.append(Stage(
                inProj: try dacConv(q, "in_proj", cin: config.latentDim, cout: config.codebookDim, kernel: 1),
                outProj: try dacConv(q, "out_proj", cin: config.codebookDim, cout: config.latentDim, kernel: 1),
                codebook: book, normalized: Self.normalizeRows(book, dim: config.codebookDim)))
        }
        stages = out
        latentDim = config.latentDim
        codebookDim = config.codebookDim
        codebookSize = config.codebookSize
    }

    /// `x / max(‖x‖, 1e-12)` per row, as `F.normalize`.
    static func normalizeRows(_ x: [Float], dim: Int) -> [Float] {
        var out = x
        for r in 0..<(x.count / dim) {
            var sq: Float = 0
            for i in 0..<dim { sq += x[r * dim + i] * x[r * dim + i] }
            let inv = 1 / max(sq.squareRoot(), 1e-12)
            for i in 0..<dim { out[r * dim + i] = x[r * dim + i] * inv }
        }
        return out
    }

    /// Quantises a latent `[latentDim, frames]` with the first `count` codebooks.
    ///
    /// - Returns: codes `[count][frames]`, the quantised latent, and the projected latents `[count·dim, frames]`.
    public func quantize(_ z: Tensor, codebooks count: Int) -> (codes: [[Int32]], zq: Tensor, latents: Tensor) {
        let frames = z.shape[1]
        var residual = z
        var zq = Tensor(zeros: z.shape)
        var latents = Tensor(zeros: [count * codebookDim, frames])
        var codes: [[Int32]] = []
        for i in 0..<count {
            let stage = stages[i]
            let e = stage.inProj(residual)              // [dim, frames]
            latents.data.replaceSubrange((i * codebookDim * frames)..<((i + 1) * codebookDim * frames), with: e.data)
            // Cosine similarity of every frame with every code: one GEMM on normalised vectors.
            let en = Self.normalizeRows(e.transposed(0, 1).data, dim: codebookDim)   // [frames, dim]
            var sims = [Float](repeating: 0, count: frames * codebookSize)
            en.withUnsafeBufferPointer { a in stage.normalized.withUnsafeBufferPointer { b in sims.withUnsafeMutableBufferPointer { c in
                BLAS.gemm(transB: true, m: frames, n: codebookSize, k: codebookDim, a: a.baseAddress!, lda: codebookDim,
                          b: b.baseAddress!, ldb: codebookDim, c: c.baseAddress!, ldc: codebookSize)
            } } }
            var idx = [Int32](repeating: 0, count: frames)
            for t in 0..<frames {
                var best = 0
                var bestValue = -Float.infinity
                for c in 0..<codebookSize where sims[t * codebookSize + c] > bestValue {
                    bestValue = sims[t * codebookSize + c]
                    best = c
                }
                idx[t] = Int32(best)
            }
            codes.append(idx)
            let q = decodeStage(stage, idx)
            for j in 0..<q.count {
                zq.data[j] += q.data[j]
                residual.data[j] -= q.data[j]
            }
        }
        return (codes, zq, latents)
    }

    /// The latent rebuilt from codes: the sum over codebooks of the projected raw code vectors.
    public func dequantize(_ codes: [[Int32]], frames: Int) -> Tensor {
        var z = Tensor(zeros: [latentDim, frames])
        for (i, idx) in codes.enumerated() where i < stages.count {
            let q = decodeStage(stages[i], idx)
            for j in 0..<q.count { z.data[j] += q.data[j] }
        }
        return z
    }

    func decodeStage(_ stage: Stage, _ idx: [Int32]) -> Tensor {
        let frames = idx.count
        var vectors = Tensor(zeros: [codebookDim, frames])
        for t in 0..<frames {
            let c = min(max(Int(idx[t]), 0), codebookSize - 1)
            for d in 0..<codebookDim { vectors.data[d * frames + t] = stage.codebook[c * codebookDim + d] }
        }
        return stage.outProj(vectors)
    }

    /// The number of codebooks available.
    public var codebookCount: Int { stages.count }
}

/// Output arrays of the layers of one encode or decode, recycled between layers of equal output size.
///
/// The signals are tens to hundreds of megabytes (96 channels × 441 000 samples is 170 MB), above glibc's mmap
/// threshold, so every fresh output tensor was a new mapping: a page fault and the kernel's zeroing per 4 KiB,
/// 10–13 % of an encode in the profile. The three residual units of a level, and the levels' snakes, now reuse
/// the previous layer's array.
struct LayerBuffers {
    private var spare: [Float] = []

    /// Replaces `x` (`[channels, length]`) by `layer(x, length, y)`'s `[outChannels, outputLength]` output; `layer`
    /// must write every element of `y`.
    mutating func run(_ x: inout Tensor, outChannels: Int, outputLength: Int,
                      _ layer: (UnsafePointer<Float>, Int, UnsafeMutablePointer<Float>) -> Void) {
        let count = outChannels * outputLength
        var out = spare.count == count ? spare : []
        spare = []
        if out.count != count {
            // Every element is written by the layer: no zero fill.
            out = [Float](unsafeUninitializedCapacity: count) { _, initialized in initialized = count }
        }
        let length = x.shape[1]
        x.data.withUnsafeBufferPointer { xb in
            out.withUnsafeMutableBufferPointer { ob in
                if let xp = xb.baseAddress, let op = ob.baseAddress { layer(xp, length, op) }
            }
        }
        spare = x.data
        x = Tensor(shape: [outChannels, outputLength], data: out)
    }
}

/// The Descript Audio Codec: convolutional encoder, residual vector quantizer, convolutional decoder.
///
/// Weight norm is folded at load time; the configuration comes from the weight file, so every official size loads.
public struct DACCodec: Sendable {
    public let config: DACConfig
    public let quantizer: ResidualVectorQuantizer

    enum EncoderStep: Sendable { case conv(Conv1d), snake(Snake), residual(ResidualUnit) }
    enum DecoderStep: Sendable { case conv(Conv1d), transposed(ConvTranspose1d), snake(Snake), residual(ResidualUnit) }
    let encoderSteps: [EncoderStep]
    let decoderSteps: [DecoderStep]

    /// Builds the codec from official state-dict names (`encoder.block.*`, `quantizer.quantizers.*`, `decoder.model.*`).
    public init(config: DACConfig, weights: WeightStore) throws(ModelError) {
        try self.init(config: config, reader: WeightReader(weights))
    }

    /// Builds a codec of the given size with synthetic random weights (for benchmarks of official sizes whose
    /// weight files cannot be downloaded here); its output is noise.
    public init(randomWeightsFor config: DACConfig, seed: UInt64 = 1) throws(ModelError) {
        try self.init(config: config, reader: WeightReader.random(seed: seed))
    }

    init(config: DACConfig, reader w: WeightReader) throws(ModelError) {
        self.config = config
        var enc: [EncoderStep] = []
        let e = w.scoped("encoder.block")
        var d = config.encoderDim
        enc.append(.conv(try dacConv(e, "0", cin: 1, cout: d, kernel: 7, padding: 3)))
        for (i, s) in config.encoderRates.enumerated() {
            let block = e.scoped("\(i + 1).block")
            let half = d
            d *= 2
            for (r, dil) in [1, 3, 9].enumerated() {
                enc.append(.residual(try ResidualUnit(block.scoped("\(r)"), channels: half, dilation: dil)))
            }
            enc.append(.snake(try Snake(block, "3", channels: half)))
            enc.append(.conv(try dacConv(block, "4", cin: half, cout: d, kernel: 2 * s, stride: s, padding: (s + 1) / 2)))
        }
        let n = config.encoderRates.count
        enc.append(.snake(try Snake(e, "\(n + 1)", channels: d)))
        enc.append(.conv(try dacConv(e, "\(n + 2)", cin: d, cout: config.latentDim, kernel: 3, padding: 1)))
        encoderSteps = enc

        quantizer = try ResidualVectorQuantizer(w.scoped("quantizer"), config: config)

        var dec: [DecoderStep] = []
        let m = w.scoped("decoder.model")
        dec.append(.conv(try dacConv(m, "0", cin: config.latentDim, cout: config.decoderDim, kernel: 7, padding: 3)))
        var c = config.decoderDim
        for (i, s) in config.decoderRates.enumerated() {
            let block = m.scoped("\(i + 1).block")
            let out = c / 2
            dec.append(.snake(try Snake(block, "0", channels: c)))
            let weight = try foldedWeight(block, "1", shape: [c, out, 2 * s])
            let bias = try block.floats("1.bias", shape: [out])
            dec.append(.transposed(ConvTranspose1d(weight: weight, bias: bias, inChannels: c, outChannels: out,
                                                   kernelSize: 2 * s, stride: s, padding: (s + 1) / 2)))
            for (r, dil) in [1, 3, 9].enumerated() {
                dec.append(.residual(try ResidualUnit(block.scoped("\(r + 2)"), channels: out, dilation: dil)))
            }
            c = out
        }
        let k = config.decoderRates.count
        dec.append(.snake(try Snake(m, "\(k + 1)", channels: c)))
        dec.append(.conv(try dacConv(m, "\(k + 2)", cin: c, cout: 1, kernel: 7, padding: 3)))
        decoderSteps = dec
    }

    /// Encodes mono audio at `config.sampleRate` into the continuous latent `[latentDim, ceil(L/hop)]`.
    ///
    /// The signal is right-padded with zeros to a whole number of frames, as the official `preprocess` does.
    public func encodeLatent(_ audio: [Float]) -> Tensor {
        let hop = config.hopLength
        let frames = (audio.count + hop - 1) / hop
        var x = Tensor(zeros: [1, frames * hop])
        x.data.replaceSubrange(0..<audio.count, with: audio)
        var buffers = LayerBuffers()
        for step in encoderSteps {
            switch step {
            case .conv(let conv):
                buffers.run(&x, outChannels: conv.outChannels, outputLength: conv.outputLength(x.shape[1])) {
                    conv.apply($0, length: $1, into: $2)
                }
            case .snake(let snake): snake.apply(&x)
            case .residual(let unit):
                buffers.run(&x, outChannels: unit.fused.channels, outputLength: x.shape[1]) {
                    unit.fused.apply($0, length: $1, into: $2)
                }
            }
        }
        return x
    }

    /// Encodes mono audio into codes `[codebooks][frames]` using the first `codebooks` codebooks.
    public func encode(_ audio: [Float], codebooks: Int? = nil) -> [[Int32]] {
        let z = encodeLatent(audio)
        return quantizer.quantize(z, codebooks: min(codebooks ?? config.codebooks, config.codebooks)).codes
    }

    /// Decodes a latent `[latentDim, frames]` into audio (`decoder` output, not trimmed).
    public func decodeLatent(_ z: Tensor) -> [Float] {
        var x = z
        guard x.rank == 2 else {
            // Batched latents: the per-layer tensor path.
            for step in decoderSteps {
                switch step {
                case .conv(let conv): x = conv(x)
                case .transposed(let conv): x = conv(x)
                case .snake(let snake): snake.apply(&x)
                case .residual(let unit): x = unit(x)
                }
            }
            x.data.withUnsafeMutableBufferPointer { Activation.tanh($0.baseAddress!, count: $0.count) }
            return x.data
        }
        var buffers = LayerBuffers()
        for step in decoderSteps {
            switch step {
            case .conv(let conv):
                buffers.run(&x, outChannels: conv.outChannels, outputLength: conv.outputLength(x.shape[1])) {
                    conv.apply($0, length: $1, into: $2)
                }
            case .transposed(let conv):
                buffers.run(&x, outChannels: conv.outChannels, outputLength: conv.outputLength(x.shape[1])) {
                    conv.apply($0, length: $1, into: $2)
                }
            case .snake(let snake): snake.apply(&x)
            case .residual(let unit):
                buffers.run(&x, outChannels: unit.fused.channels, outputLength: x.shape[1]) {
                    unit.fused.apply($0, length: $1, into: $2)
                }
            }
        }
        x.data.withUnsafeMutableBufferPointer { Activation.tanh($0.baseAddress!, count: $0.count) }
        return x.data
    }

    /// Decodes codes into audio (not trimmed; the pipeline trims to the original length).
    public func decode(_ codes: [[Int32]]) -> [Float] {
        let frames = codes.first?.count ?? 0
        return decodeLatent(quantizer.dequantize(codes, frames: frames))
    }
}
