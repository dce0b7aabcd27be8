import Foundation
import TussAudio
import TussModels

/// Encodes live audio into codes chunk by chunk: audio blocks at any rate in, complete code chunks out (one per
/// channel per time range, in codes-file order), with small encoder runs so codes leave soon after their audio.
///
/// Each channel is resampled to the codec rate and coded on its own, as `CodecPipeline.encodeFile` does; the codes
/// equal a whole-file encode (up to near-ties of the codebook lookup).
public struct StreamingEncoder {
    /// The header of the codes stream this encoder makes (frame count unknown).
    public let header: CodesHeader
    private let resampler: Resampler?
    private var encoders: [ChunkedEncoder]
    private var frame: Int64 = 0

    /// - Parameters:
    ///   - sampleRate, channels, length: the input audio (length in samples per channel, for the header).
    ///   - codebooks: codebooks to keep (default all).
    ///   - runFrames: latent frames per encoder run (latency grows with it, plus the encoder's context).
    ///   - inputRate: the rate of the audio given to `push` when it is not `sampleRate` (audio that arrives already
    ///     resampled, e.g. decoded from Opus at the codec's rate); the header still records `sampleRate` and
    ///     `length`, so decoding restores the original.
    public init(codec: CodecHandle, sampleRate: Int, channels: Int, length: Int64, codebooks: Int? = nil,
                runFrames: Int = 8, inputRate: Int? = nil) throws(PipelineError) {
        let config = codec.codec.config
        let n = min(codebooks ?? config.codebooks, config.codebooks)
        try requireCodebookCount(n)
        guard sampleRate > 0, (1...256).contains(channels), length >= 0 else {
            throw .badInput("audio of \(channels) channels at \(sampleRate) Hz cannot be encoded: give 1…256 channels at a positive rate")
        }
        header = CodesHeader(codec: codec.identity, sampleRate: config.sampleRate, hopLength: config.hopLength, codebooks: n,
                             codebookSize: config.codebookSize, originalLength: length, originalSampleRate: sampleRate,
                             channels: channels, frames: nil)
        let rate = inputRate ?? sampleRate
        guard rate > 0 else { throw .badInput("audio at \(rate) Hz cannot be encoded") }
        do {
            resampler = rate == config.sampleRate ? nil : try Resampler(from: rate, to: config.sampleRate, channels: channels)
        } catch {
            throw .badInput("cannot resample \(rate) Hz to the codec's \(config.sampleRate) Hz: \(error)")
        }
        encoders = (0..<channels).map { _ in ChunkedEncoder(codec: codec.codec, codebooks: n, chunkFrames: runFrames) }
    }

    /// Frames per channel emitted so far.
    public var frames: Int64 { frame }

    /// Adds `[channels][samples]` at the input rate; returns the chunks that are now final.
    public mutating func push(_ planar: [[Float]]) throws(PipelineError) -> [CodesChunk] {
        guard planar.count == header.channels else {
            throw .badInput("audio with \(planar.count) channels given to a \(header.channels)-channel encoder")
        }
        let x: [[Float]]
        do { x = try resampler?.process(planar) ?? planar } catch { throw pipelineError(error) }
        return chunks((0..<header.channels).map { encoders[$0].push(x[$0]) })
    }

    /// Flushes the resampler and the encoders (the last frame is zero-padded, as a whole-file encode does).
    public mutating func finish() throws(PipelineError) -> [CodesChunk] {
        var out: [CodesChunk] = []
        if let resampler {
            do {
                let rest = try resampler.flush()
                out += chunks((0..<header.channels).map { encoders[$0].push(rest[$0]) })
            } catch { throw pipelineError(error) }
        }
        return out + chunks((0..<header.channels).map { encoders[$0].finish() })
    }

    private mutating func chunks(_ perChannel: [[[Int32]]]) -> [CodesChunk] {
        let n = perChannel.first?.first?.count ?? 0
        guard n > 0 else { return [] }
        defer { frame += Int64(n) }
        return perChannel.enumerated().map { CodesChunk(channel: $0.offset, firstFrame: frame, codes: $0.element) }
    }
}

/// The device side of the opus transport: audio blocks in, the bytes of one continuous Ogg Opus stream out.
///
/// One Opus encoder runs for the whole stream (no per-message headers or encoder restarts). Audio at a rate Opus
/// codes natively is coded as it is; any other rate is resampled to 48 kHz first (OpusHead still records the
/// original rate and the stream the original length).
public struct OpusStreamSender {
    private let encoder: OggOpusStreamEncoder
    private let resampler: Resampler?

    /// - Parameters:
    ///   - sampleRate, channels, length: the input audio (1 or 2 channels; length in samples per channel).
    ///   - kbps: the Opus bitrate.
    public init(sampleRate: Int, channels: Int, length: Int, kbps: Double) throws(PipelineError) {
        guard sampleRate > 0, channels == 1 || channels == 2 else {
            throw .badInput("the opus transport takes mono or stereo audio at a positive rate")
        }
        guard kbps.isFinite, kbps >= 0.5, kbps <= 512 else { throw .badInput("--opus-kbps must be in 0.5…512") }
        let codingRate = OggOpus.opusRates.contains(sampleRate) ? sampleRate : 48000
        do {
            encoder = try OggOpusStreamEncoder(sampleRate: codingRate, channels: channels, bitrate: Int(kbps * 1000),
                                               originalSampleRate: sampleRate, originalLength: length)
            resampler = codingRate == sampleRate ? nil : try Resampler(from: sampleRate, to: codingRate, channels: channels)
        } catch { throw .badInput("cannot start the Opus encoder: \(error)") }
    }

    /// Codes `[channels][samples]` at the input rate; returns the stream's next bytes (possibly none).
    public func push(_ planar: [[Float]]) throws(PipelineError) -> Data {
        do { return Data(try encoder.encode(try resampler?.process(planar) ?? planar)) } catch {
            throw .badInput("cannot encode Opus: \(error)")
        }
    }

    /// Ends the stream; returns its last bytes.
    public func finish() throws(PipelineError) -> Data {
        do {
            var bytes: [UInt8] = []
            if let resampler { bytes = try encoder.encode(try resampler.flush()) }
            return Data(bytes + (try encoder.finish()))
        } catch { throw .badInput("cannot encode Opus: \(error)") }
    }
}

/// The server side of the opus transport: bytes of one Ogg Opus stream in (any split), code chunks out.
///
/// The stream is decoded straight at the codec's rate when Opus has it (libopus decodes any stream at any of its
/// rates), so no resampling happens on the way to the codec; the codes header records the original rate and length
/// from the start message.
public struct OpusStreamReceiver {
    private let decoder: OggOpusStreamDecoder
    private var encoder: StreamingEncoder

    /// The header of the codes stream this makes.
    public var header: CodesHeader { encoder.header }

    /// - Parameters: the original audio as the client announced it (rate, 1 or 2 channels, samples per channel).
    public init(codec: CodecHandle, sampleRate: Int, channels: Int, length: Int64) throws(PipelineError) {
        let codecRate = codec.codec.config.sampleRate
        let rate = OggOpus.opusRates.contains(codecRate) ? codecRate : 48000
        do { decoder = try OggOpusStreamDecoder(sampleRate: rate) } catch { throw pipelineError(error) }
        encoder = try StreamingEncoder(codec: codec, sampleRate: sampleRate, channels: channels, length: length,
                                       inputRate: rate)
    }

    /// Takes the next bytes of the Ogg Opus stream; returns the code chunks that became final.
    public mutating func push(_ bytes: Data) throws(PipelineError) -> [CodesChunk] {
        // Audio after the end-of-stream page would be dropped silently, so refuse it (a client sending one complete
        // Ogg file per message, as the first version of the protocol did, lands here).
        guard !decoder.ended || bytes.isEmpty else {
            throw .badInput("data after the Opus stream's end-of-stream page: send one continuous Ogg Opus stream per connection")
        }
        let planar: [[Float]]
        do { planar = try decoder.decode(bytes) } catch { throw .badInput("the Opus stream: \(error)") }
        if let info = decoder.info, info.channels != encoder.header.channels {
            throw .badInput("the Opus stream has \(info.channels) channels; the start message said \(encoder.header.channels)")
        }
        guard let first = planar.first, !first.isEmpty else { return [] }
        return try encoder.push(planar)
    }

    /// Ends the input: the Opus stream must have reached its end-of-stream page.
    public mutating func finish() throws(PipelineError) -> [CodesChunk] {
        guard decoder.ended else {
            throw .badInput("the Opus stream ended before its end-of-stream page (truncated): send every byte before the end message")
        }
        return try encoder.finish()
    }
}
