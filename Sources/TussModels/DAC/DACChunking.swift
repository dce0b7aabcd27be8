import TussTensor

extension DACCodec {
    /// Receptive field of the encoder in samples (one side is at most this far).
    public var encoderReceptiveField: Int {
        var rf = 0, jump = 1
        for step in encoderSteps {
            switch step {
            case .conv(let c): rf += (c.kernelSize - 1) * c.dilation * jump; jump *= c.stride
            case .residual(let u): rf += (u.conv1.kernelSize - 1) * u.conv1.dilation * jump
            case .snake: break
            }
        }
        return rf
    }

    /// Receptive field of the decoder in latent frames (rounded up).
    public var decoderReceptiveFrames: Int {
        var rf = 0.0, upsampled = 1.0
        for step in decoderSteps {
            switch step {
            case .conv(let c): rf += Double((c.kernelSize - 1) * c.dilation) / upsampled
            case .transposed(let c): rf += Double(c.kernelSize - 1) / upsampled; upsampled *= Double(c.stride)
            case .residual(let u): rf += Double((u.conv1.kernelSize - 1) * u.conv1.dilation) / upsampled
            case .snake: break
            }
        }
        return Int(rf.rounded(.up))
    }
}

/// Encodes an unbounded signal chunk by chunk with enough context on each side that the codes equal a whole-file
/// encode (up to float rounding: codes agree except at exact near-ties of the codebook lookup).
public struct ChunkedEncoder {
    public let codec: DACCodec
    public let codebooks: Int
    let chunkFrames: Int
    let contextFrames: Int
    private var buffer: [Float] = []
    private var bufferStart = 0
    private var nextFrame = 0
    private var total = 0

    /// - Parameters:
    ///   - chunkFrames: latent frames produced per encoder run (memory grows with it, not with the input).
    public init(codec: DACCodec, codebooks: Int, chunkFrames: Int = 500) {
        self.codec = codec
        self.codebooks = min(max(codebooks, 1), codec.config.codebooks)
        self.chunkFrames = max(chunkFrames, 1)
        contextFrames = (codec.encoderReceptiveField + codec.config.hopLength - 1) / codec.config.hopLength + 1
    }

    /// Adds samples; returns the codes `[codebooks][frames]` of every frame that is now final.
    public mutating func push(_ x: [Float]) -> [[Int32]] {
        buffer += x
        total += x.count
        let hop = codec.config.hopLength
        var out = [[Int32]](repeating: [], count: codebooks)
        while (nextFrame + chunkFrames + contextFrames) * hop <= bufferStart + buffer.count {
            append(&out, emit(frames: chunkFrames, final: false))
        }
        return out
    }

    /// Encodes what is left (the signal is right-padded with zeros to whole frames, as the official code does).
    public mutating func finish() -> [[Int32]] {
        let hop = codec.config.hopLength
        let frames = (total + hop - 1) / hop
        var out = [[Int32]](repeating: [], count: codebooks)
        while nextFrame < frames {
            append(&out, emit(frames: min(chunkFrames, frames - nextFrame), final: true))
        }
        return out
    }

    private func append(_ out: inout [[Int32]], _ codes: [[Int32]]) {
        for i in 0..<codebooks { out[i] += codes[i] }
    }

    private mutating func emit(frames n: Int, final: Bool) -> [[Int32]] {
        let hop = codec.config.hopLength
        let totalFrames = (total + hop - 1) / hop
        let firstFrame = max(0, nextFrame - contextFrames)
        let lastFrame = final ? totalFrames : nextFrame + n + contextFrames
        var segment = [Float](repeating: 0, count: (lastFrame - firstFrame) * hop)
        let from = firstFrame * hop - bufferStart
        let available = min(segment.count, buffer.count - from)
        if available > 0 { segment.replaceSubrange(0..<available, with: buffer[from..<(from + available)]) }
        let z = codec.encodeLatent(segment)
        let offset = nextFrame - firstFrame
        let kept = Tensor(shape: [z.shape[0], n], data: sliceColumns(z, from: offset, count: n))
        let codes = codec.quantizer.quantize(kept, codebooks: codebooks).codes
        nextFrame += n
        let dropTo = (nextFrame - contextFrames) * hop - bufferStart
        if dropTo > 0 {
            let k = min(dropTo, buffer.count)
            buffer.removeFirst(k)
            bufferStart += k
        }
        return codes
    }
}

/// Decodes codes chunk by chunk with context frames on each side, matching a whole-stream decode.
public struct ChunkedDecoder {
    public let codec: DACCodec
    let chunkFrames: Int
    let contextFrames: Int
    private var latent: [[Float]] = []      // per latent channel, frames from latentStart
    private var latentStart = 0
    private var received = 0
    private var nextFrame = 0

    public init(codec: DACCodec, chunkFrames: Int = 500) {
        self.codec = codec
        self.chunkFrames = max(chunkFrames, 1)
        contextFrames = codec.decoderReceptiveFrames + 2
        latent = Array(repeating: [], count: codec.config.latentDim)
    }

    /// Adds codes `[codebooks][frames]`; returns the audio samples that are now final.
    public mutating func push(_ codes: [[Int32]]) -> [Float] {
        let n = codes.first?.count ?? 0
        guard n > 0 else { return [] }
        let z = codec.quantizer.dequantize(codes, frames: n)
        for c in 0..<latent.count { latent[c] += z.data[(c * n)..<((c + 1) * n)] }
        received += n
        var out: [Float] = []
        while nextFrame + chunkFrames + contextFrames <= received {
            out += emit(frames: chunkFrames, final: false)
        }
        return out
    }

    /// Decodes what is left; the last frame yields the codec's usual (slightly short) tail.
    public mutating func finish() -> [Float] {
        var out: [Float] = []
        while nextFrame < received { out += emit(frames: min(chunkFrames, received - nextFrame), final: true) }
        return out
    }

    private mutating func emit(frames n: Int, final: Bool) -> [Float] {
        let hop = codec.config.hopLength
        let first = max(0, nextFrame - contextFrames)
        let last = final ? received : min(received, nextFrame + n + contextFrames)
        let width = last - first
        var z = Tensor(zeros: [latent.count, width])
        for c in 0..<latent.count {
            let row = latent[c]
            for t in 0..<width { z.data[c * width + t] = row[first - latentStart + t] }
        }
        let audio = codec.decodeLatent(z)
        let start = (nextFrame - first) * hop
        let end = min(audio.count, start + n * hop)
        nextFrame += n
        let drop = max(0, nextFrame - contextFrames - latentStart)
        if drop > 0 {
            for c in 0..<latent.count { latent[c].removeFirst(min(drop, latent[c].count)) }
            latentStart += drop
        }
        return start < end ? Array(audio[start..<end]) : []
    }
}

/// Columns `[from, from+count)` of a `[rows, cols]` tensor.
func sliceColumns(_ x: Tensor, from: Int, count: Int) -> [Float] {
    let rows = x.shape[0], cols = x.shape[1]
    var out = [Float](repeating: 0, count: rows * count)
    for r in 0..<rows {
        for t in 0..<count { out[r * count + t] = x.data[r * cols + from + t] }
    }
    return out
}
