import Foundation
import TussAudio
import TussModels

/// A codec ready to use: the model, and the identity written into (and checked against) codes files.
public struct CodecHandle: Sendable {
    public let codec: DACCodec
    public let identity: CodecIdentity
    public let path: String

    /// Opens a DAC codec file (official `.pth` or our `.safetensors`); the identity's hash covers the tensor values,
    /// so a `.pth` and its conversion are the same codec.
    public static func open(_ path: String) throws(PipelineError) -> CodecHandle {
        let file = try ModelFile.open(path)
        let codec = try file.dacCodec()
        let stem = ((path as NSString).lastPathComponent as NSString).deletingPathExtension
        let name = file.weights.metadata["tuss-codec.name"] ?? "dac-\(codec.config.sampleRate / 1000)k-\(stem)"
        return CodecHandle(codec: codec, identity: CodecIdentity(name: String(name.prefix(255)), weightsHash: try file.weightsDigest()), path: path)
    }

    /// The number of codebooks for a target bitrate (kbps), at least one and at most all.
    public func codebooks(forBitrate kbps: Double) -> Int {
        let perCodebook = codec.config.bitrate(codebooks: 1) / 1000
        return min(codec.config.codebooks, max(1, Int((kbps / perCodebook + 1e-9).rounded(.down))))
    }
}

/// What an encode or decode did.
public struct CodecReport: Sendable {
    public var seconds: Double
    public var wallSeconds: Double
    public var bytes: Int64
    public var codebooks: Int
    public var clippedSamples: Int = 0
    /// Payload bitrate in kbps (file bytes over audio duration).
    public var kbps: Double { seconds > 0 ? Double(bytes) * 8 / seconds / 1000 : 0 }
}

/// File-to-file encoding and decoding with the neural codec, chunk by chunk in bounded memory.
public enum CodecPipeline {
    /// Latent frames per encoder/decoder run.
    static let chunkFrames = 500

    /// Encodes an audio file into a codes file; each channel is coded separately at the codec's rate.
    public static func encodeFile(input: String, output: String, codec handle: CodecHandle, codebooks: Int?,
                                  quiet: Bool = true) throws(PipelineError) -> CodecReport {
        let started = Date()
        do {
            let reader = try AudioFileReader(path: input)
            let info = reader.info
            let config = handle.codec.config
            let n = min(codebooks ?? config.codebooks, config.codebooks)
            try requireCodebookCount(n)
            let header = CodesHeader(codec: handle.identity, sampleRate: config.sampleRate, hopLength: config.hopLength,
                                     codebooks: n, codebookSize: config.codebookSize, originalLength: info.frames,
                                     originalSampleRate: info.sampleRate, channels: info.channels, frames: nil)
            let writer = try CodesWriter(path: output, header: header)
            let resampler = info.sampleRate == config.sampleRate ? nil
                : try Resampler(from: info.sampleRate, to: config.sampleRate, channels: info.channels)
            var encoders = (0..<info.channels).map { _ in ChunkedEncoder(codec: handle.codec, codebooks: n, chunkFrames: chunkFrames) }
            var frame: Int64 = 0
            let progress = ProgressReporter(label: "encoding", totalSeconds: info.duration, quiet: quiet)
            var done: Int64 = 0
            func emit(_ perChannel: [[[Int32]]]) throws {
                let count = perChannel.first?.first?.count ?? 0
                guard count > 0 else { return }
                for (c, codes) in perChannel.enumerated() {
                    try writer.write(CodesChunk(channel: c, firstFrame: frame, codes: codes))
                }
                frame += Int64(count)
            }
            while true {
                let block = try reader.read(frames: 1 << 16)
                guard let first = block.first, !first.isEmpty else { break }
                done += Int64(first.count)
                let x = try resampler?.process(block) ?? block
                try emit((0..<info.channels).map { encoders[$0].push(x[$0]) })
                progress.update(doneSeconds: Double(done) / Double(info.sampleRate))
            }
            if let resampler {
                let rest = try resampler.flush()
                try emit((0..<info.channels).map { encoders[$0].push(rest[$0]) })
            }
            try emit((0..<info.channels).map { encoders[$0].finish() })
            try writer.finish()
            progress.finish()
            let bytes = (try FileManager.default.attributesOfItem(atPath: output)[.size] as? NSNumber)?.int64Value ?? 0
            return CodecReport(seconds: info.duration, wallSeconds: Date().timeIntervalSince(started), bytes: bytes, codebooks: n)
        } catch {
            throw pipelineError(error)
        }
    }

    /// Decodes a codes file into audio with the original rate, channel count and exact length.
    public static func decodeFile(input: String, output: String, codec handle: CodecHandle, codebooks: Int?,
                                  float32: Bool, quiet: Bool = true) throws(PipelineError) -> CodecReport {
        let started = Date()
        do {
            let reader = try CodesReader(path: input)
            let header = reader.header
            try header.requireCodec(handle.identity)
            let config = handle.codec.config
            guard header.sampleRate == config.sampleRate, header.hopLength == config.hopLength,
                  header.codebookSize == config.codebookSize else {
                throw PipelineError.badInput("\(input): codes were made at \(header.sampleRate) Hz / hop \(header.hopLength); this codec runs at \(config.sampleRate) Hz / hop \(config.hopLength)")
            }
            let use = min(codebooks ?? header.codebooks, header.codebooks)
            try requireCodebookCount(use)
            let channels = header.channels
            let format = try AudioFileFormat.forWriting(path: output, like: nil, float32: float32)
            let writer = try AudioFileWriter(path: output, sampleRate: header.originalSampleRate, channels: channels, format: format)
            let resampler = header.originalSampleRate == config.sampleRate ? nil
                : try Resampler(from: config.sampleRate, to: header.originalSampleRate, channels: channels)
            var decoders = (0..<channels).map { _ in ChunkedDecoder(codec: handle.codec, chunkFrames: chunkFrames) }
            var pending = [[Float]](repeating: [], count: channels)
            var written: Int64 = 0
            let total = header.originalLength
            func flushPending(final: Bool) throws {
                // Channels advance together: write only what every channel has.
                let ready = pending.map(\.count).min() ?? 0
                guard ready > 0 else { return }
                let block = pending.map { Array($0[0..<ready]) }
                for c in 0..<channels { pending[c].removeFirst(ready) }
                var y = try resampler?.process(block) ?? block
                if final, let resampler {
                    let rest = try resampler.flush()
                    for c in 0..<channels { y[c] += rest[c] }
                }
                let keep = Int(min(Int64(y.first?.count ?? 0), max(0, total - written)))
                if keep > 0 { try writer.write(y.map { Array($0[0..<keep]) }); written += Int64(keep) }
            }
            while let chunk = try reader.next() {
                let codes = Array(chunk.codes.prefix(use))
                pending[chunk.channel] += decoders[chunk.channel].push(codes)
                if chunk.channel == channels - 1 { try flushPending(final: false) }
            }
            for c in 0..<channels { pending[c] += decoders[c].finish() }
            try flushPending(final: true)
            if written < total {
                // The decoder's last frame is a few samples short of a whole hop: pad to the original length.
                try writer.write([[Float]](repeating: [Float](repeating: 0, count: Int(total - written)), count: channels))
            }
            try writer.finish()
            let bytes = (try FileManager.default.attributesOfItem(atPath: input)[.size] as? NSNumber)?.int64Value ?? 0
            var report = CodecReport(seconds: Double(total) / Double(max(header.originalSampleRate, 1)),
                                     wallSeconds: Date().timeIntervalSince(started), bytes: bytes, codebooks: use)
            report.clippedSamples = writer.clippedSamples
            return report
        } catch {
            throw pipelineError(error)
        }
    }

    /// Encodes with libopus into a standard Ogg Opus file at `kbps` (the baseline, and the path for devices that
    /// cannot run the neural encoder).
    public static func encodeOpus(input: String, output: String, kbps: Double) throws(PipelineError) -> CodecReport {
        let started = Date()
        do {
            let reader = try AudioFileReader(path: input)
            let planar = try reader.readAll()
            try OggOpus.encode(planar, sampleRate: reader.info.sampleRate, bitrate: Int(kbps * 1000), to: output)
            let bytes = (try FileManager.default.attributesOfItem(atPath: output)[.size] as? NSNumber)?.int64Value ?? 0
            return CodecReport(seconds: reader.info.duration, wallSeconds: Date().timeIntervalSince(started), bytes: bytes, codebooks: 0)
        } catch {
            throw pipelineError(error)
        }
    }

    /// Describes a codes file; with `dumpCodes`, includes every code as `[channel][codebook][frame]`.
    public static func describe(_ path: String, json: Bool, dumpCodes: Bool) throws(PipelineError) -> String {
        do {
            let reader = try CodesReader(path: path)
            let h = reader.header
            let codes = dumpCodes ? try reader.readAll() : []
            let hash = h.codec.weightsHash.map { String(format: "%02x", $0) }.joined()
            let frameRate = Double(h.sampleRate) / Double(h.hopLength)
            var bits = 0
            while (1 << bits) < h.codebookSize { bits += 1 }
            let kbps = Double(h.codebooks * bits) * frameRate * Double(h.channels) / 1000
            let seconds = Double(h.originalLength) / Double(max(h.originalSampleRate, 1))
            if json {
                var obj: [String: Any] = [
                    "codec": h.codec.name, "weights_sha256": hash, "sample_rate": h.sampleRate, "hop_length": h.hopLength,
                    "codebooks": h.codebooks, "codebook_size": h.codebookSize, "original_length": h.originalLength,
                    "original_sample_rate": h.originalSampleRate, "channels": h.channels, "seconds": seconds,
                    "bitrate_kbps": kbps,
                ]
                if let f = h.frames { obj["frames"] = f }
                if dumpCodes { obj["codes"] = codes.map { $0.map { $0.map(Int.init) } } }
                let data = try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys])
                return String(decoding: data, as: UTF8.self)
            }
            var lines = [
                "file: \(path)", "codec: \(h.codec.name) (weights sha256 \(hash.prefix(16))…)",
                "codec rate: \(h.sampleRate) Hz, hop \(h.hopLength) (\(String(format: "%.2f", frameRate)) frames/s)",
                "codebooks: \(h.codebooks) × \(h.codebookSize) (\(bits) bits each)",
                String(format: "bitrate: %.2f kbps (%d channel%@)", kbps, h.channels, h.channels == 1 ? "" : "s"),
                String(format: "original: %lld samples at %d Hz (%.2f s), %d channel%@", h.originalLength, h.originalSampleRate, seconds, h.channels, h.channels == 1 ? "" : "s"),
            ]
            if let f = h.frames { lines.append("frames: \(f)") }
            if dumpCodes {
                let data = try JSONSerialization.data(withJSONObject: codes.map { $0.map { $0.map(Int.init) } })
                lines.append("codes: " + String(decoding: data, as: UTF8.self))
            }
            return lines.joined(separator: "\n")
        } catch {
            throw pipelineError(error)
        }
    }
}

/// Decoding of the Opus baseline's files.
public enum OpusFiles {
    /// Decodes an Ogg Opus file to an audio file (original rate and length as recorded in the stream).
    public static func decode(_ input: String, to output: String, float32: Bool) throws(PipelineError) -> String {
        do {
            let (planar, rate) = try OggOpus.decode(path: input)
            let format = try AudioFileFormat.forWriting(path: output, like: nil, float32: float32)
            let writer = try AudioFileWriter(path: output, sampleRate: rate, channels: planar.count, format: format)
            try writer.write(planar)
            try writer.finish()
            return output
        } catch {
            throw pipelineError(error)
        }
    }
}
