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
    public init(codec: CodecHandle, sampleRate: Int, channels: Int, length: Int64, codebooks: Int? = nil,
                runFrames: Int = 8) throws(PipelineError) {
        let config = codec.codec.config
        let n = min(codebooks ?? config.codebooks, config.codebooks)
        guard n >= 1 else { throw .badInput("--codebooks must be at least 1") }
        guard sampleRate > 0, (1...256).contains(channels), length >= 0 else {
            throw .badInput("audio of \(channels) channels at \(sampleRate) Hz cannot be encoded: give 1…256 channels at a positive rate")
        }
        header = CodesHeader(codec: codec.identity, sampleRate: config.sampleRate, hopLength: config.hopLength, codebooks: n,
                             codebookSize: config.codebookSize, originalLength: length, originalSampleRate: sampleRate,
                             channels: channels, frames: nil)
        do {
            resampler = sampleRate == config.sampleRate ? nil : try Resampler(from: sampleRate, to: config.sampleRate, channels: channels)
        } catch {
            throw .badInput("cannot resample \(sampleRate) Hz to the codec's \(config.sampleRate) Hz: \(error)")
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

/// Self-contained Ogg Opus segments: each chunk of audio as one complete Ogg Opus stream (OpusHead, OpusTags, the
/// audio pages, exact length), so each decodes on its own — the opus transport of `tuss-codec stream`.
public enum OpusSegment {
    /// Encodes `planar` (1 or 2 channels) at `kbps` into one Ogg Opus segment.
    public static func encode(_ planar: [[Float]], sampleRate: Int, kbps: Double) throws(PipelineError) -> Data {
        try withScratchFile { path throws(PipelineError) in
            do {
                try OggOpus.encode(planar, sampleRate: sampleRate, bitrate: Int(kbps * 1000), to: path)
                return try Data(contentsOf: URL(fileURLWithPath: path))
            } catch {
                throw .badInput("cannot encode Opus: \(error)")
            }
        }
    }

    /// Decodes one Ogg Opus segment into planar samples at its original rate.
    public static func decode(_ data: Data) throws(PipelineError) -> (planar: [[Float]], sampleRate: Int) {
        try withScratchFile { path throws(PipelineError) in
            do { try data.write(to: URL(fileURLWithPath: path)) } catch { throw .failed("cannot store an Opus segment: \(error)") }
            do { return try OggOpus.decode(path: path) } catch {
                throw .badInput("not a complete Ogg Opus segment: \(error)")
            }
        }
    }

    /// Runs `body` with a path in a fresh private directory that is removed afterwards.
    private static func withScratchFile<T>(_ body: (String) throws(PipelineError) -> T) throws(PipelineError) -> T {
        let dir = (NSTemporaryDirectory() as NSString).appendingPathComponent("tuss-opus-\(UUID().uuidString)")
        do { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) } catch {
            throw .failed("cannot create a scratch directory: \(error)")
        }
        defer { try? FileManager.default.removeItem(atPath: dir) }
        return try body((dir as NSString).appendingPathComponent("segment.opus"))
    }
}
