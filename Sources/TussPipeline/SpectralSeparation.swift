import Foundation
import TussAudio
import TussModels

/// Options of a spectral-path separation.
public struct SeparationOptions: Sendable {
    /// Chunk length in seconds; `nil` uses the length the model was trained on.
    public var chunkSeconds: Double?
    /// Overlap between consecutive chunks in seconds (cross-faded).
    public var overlapSeconds: Double = 1
    /// Write 32-bit float files instead of the input's sample format.
    public var float32 = false
    /// Suppress progress output.
    public var quiet = false

    public init(chunkSeconds: Double? = nil, overlapSeconds: Double = 1, float32: Bool = false, quiet: Bool = false) {
        self.chunkSeconds = chunkSeconds
        self.overlapSeconds = overlapSeconds
        self.float32 = float32
        self.quiet = quiet
    }
}

/// What a file separation produced.
public struct SeparationReport: Sendable {
    /// One path per prompt, in prompt order.
    public var outputs: [String]
    /// Samples clipped when writing each output to an integer format.
    public var clippedSamples: [Int]
    public var inputSeconds: Double
    public var wallSeconds: Double
    public var warnings: [String]
}

/// Separates audio of any rate and channel count with a TUSS model, chunk by chunk, in bounded memory.
///
/// Each channel is resampled to the model rate, separated on its own and resampled back; outputs have exactly the
/// input's length.
public final class SpectralSeparator: @unchecked Sendable {
    public let model: TUSSModel
    public let options: SeparationOptions

    public init(model: TUSSModel, options: SeparationOptions = SeparationOptions()) throws(PipelineError) {
        self.model = model
        self.options = options
        let chunk = options.chunkSeconds ?? model.config.segmentSeconds
        guard chunk > 0, chunk.isFinite else { throw .badInput("--chunk must be a positive number of seconds") }
        guard options.overlapSeconds >= 0, options.overlapSeconds < chunk else {
            throw .badInput("--overlap must be at least 0 and shorter than the chunk (\(chunk) s)")
        }
    }

    var chunkSamples: Int { Int(((options.chunkSeconds ?? model.config.segmentSeconds) * Double(model.config.sampleRate)).rounded()) }
    var overlapSamples: Int { Int((options.overlapSeconds * Double(model.config.sampleRate)).rounded()) }

    /// A streaming separator for `channels` channels at `sampleRate`.
    func stream(prompts: [Prompt], sampleRate: Int, channels: Int) throws -> SeparationStream {
        try SeparationStream(model: model, prompts: prompts, sampleRate: sampleRate, channels: channels,
                             chunk: chunkSamples, overlap: overlapSamples)
    }

    /// Separates in-memory audio (`[channels][samples]`) into `[prompt][channel][samples]` of the same length.
    public func separate(_ planar: [[Float]], sampleRate: Int, prompts: [Prompt]) throws(PipelineError) -> [[[Float]]] {
        let length = planar.first?.count ?? 0
        do {
            let s = try stream(prompts: prompts, sampleRate: sampleRate, channels: planar.count)
            var out = try s.process(planar)
            let rest = try s.finish()
            for p in 0..<out.count { for c in 0..<out[p].count { out[p][c] += rest[p][c] } }
            return out.map { $0.map { fitLength($0, length) } }
        } catch {
            throw pipelineError(error)
        }
    }

    /// Separates an audio file into one file per prompt in `outputDirectory`, block by block.
    public func separateFile(input: String, prompts: [Prompt], outputDirectory: String) throws(PipelineError) -> SeparationReport {
        let started = Date()
        do {
            let reader = try AudioFileReader(path: input)
            let info = reader.info
            guard info.channels > 0, info.sampleRate > 0 else { throw PipelineError.badInput("\(input): no audio channels") }
            try FileManager.default.createDirectory(atPath: outputDirectory, withIntermediateDirectories: true)
            let (ext, format) = try Self.outputFormat(for: info.format, float32: options.float32)
            let names = Prompt.outputNames(for: prompts)
            let paths = names.map { (outputDirectory as NSString).appendingPathComponent("\($0).\(ext)") }
            var writers: [AudioFileWriter] = []
            for path in paths {
                writers.append(try AudioFileWriter(path: path, sampleRate: info.sampleRate, channels: info.channels, format: format))
            }
            let s = try stream(prompts: prompts, sampleRate: info.sampleRate, channels: info.channels)
            let total = info.frames
            var written = [Int64](repeating: 0, count: prompts.count)
            let progress = ProgressReporter(label: "separating", totalSeconds: info.duration, quiet: options.quiet)
            var readFrames: Int64 = 0
            func write(_ out: [[[Float]]]) throws {
                for p in 0..<out.count {
                    let available = Int64(out[p].first?.count ?? 0)
                    let keep = Int(min(available, max(0, total - written[p])))
                    guard keep > 0 else { continue }
                    try writers[p].write(out[p].map { Array($0[0..<keep]) })
                    written[p] += Int64(keep)
                }
            }
            let block = 1 << 16
            while true {
                let planar = try reader.read(frames: block)
                guard let first = planar.first, !first.isEmpty else { break }
                readFrames += Int64(first.count)
                try write(try s.process(planar))
                progress.update(doneSeconds: Double(readFrames) / Double(info.sampleRate))
            }
            try write(try s.finish())
            progress.finish()
            // Resampling round trips can land one sample short: pad so every output has the input's length.
            for p in 0..<prompts.count where written[p] < total {
                let missing = Int(total - written[p])
                try writers[p].write([[Float]](repeating: [Float](repeating: 0, count: missing), count: info.channels))
            }
            for w in writers { try w.finish() }
            return SeparationReport(outputs: paths, clippedSamples: writers.map(\.clippedSamples),
                                    inputSeconds: info.duration, wallSeconds: Date().timeIntervalSince(started),
                                    warnings: Prompt.warnings(for: prompts))
        } catch {
            throw pipelineError(error)
        }
    }

    /// The output container and format for an input format: lossless inputs keep theirs; lossy inputs are written
    /// as WAV, so stems suffer no second lossy generation and keep the exact length.
    static func outputFormat(for input: AudioFileFormat, float32: Bool) throws -> (String, AudioFileFormat) {
        let ext: String
        switch input.container {
        case .flac: ext = float32 ? "wav" : "flac"
        case .aiff: ext = "aiff"
        case .wav, .wavex, .w64, .rf64, .caf, .au: ext = "wav"
        default: ext = "wav"
        }
        let lossless: Set<AudioFileFormat.Container> = [.wav, .wavex, .w64, .rf64, .aiff, .flac, .caf, .au]
        let like: AudioFileFormat? = lossless.contains(input.container) ? input : nil
        return (ext, try AudioFileFormat.forWriting(path: "out.\(ext)", like: like, float32: float32))
    }
}

/// Pads with zeros or truncates to exactly `length` samples.
func fitLength(_ x: [Float], _ length: Int) -> [Float] {
    if x.count == length { return x }
    if x.count > length { return Array(x[0..<length]) }
    return x + [Float](repeating: 0, count: length - x.count)
}

/// The resample → chunk → separate → stitch → resample chain for one stream of multi-channel audio.
final class SeparationStream {
    let model: TUSSModel
    let prompts: [Prompt]
    let channels: Int
    let toModel: Resampler?
    let fromModel: [Resampler]?
    var chunkers: [OverlapChunker]

    init(model: TUSSModel, prompts: [Prompt], sampleRate: Int, channels: Int, chunk: Int, overlap: Int) throws {
        self.model = model
        self.prompts = prompts
        self.channels = channels
        let rate = model.config.sampleRate
        toModel = sampleRate == rate ? nil : try Resampler(from: sampleRate, to: rate, channels: channels)
        fromModel = sampleRate == rate ? nil : try prompts.map { _ in try Resampler(from: rate, to: sampleRate, channels: channels) }
        let keys = prompts.map(\.name)
        chunkers = (0..<channels).map { _ in OverlapChunker(chunk: chunk, overlap: overlap, promptKeys: keys) }
    }

    /// Feeds `[channels][n]` input samples; returns finished output `[prompt][channel][m]`.
    func process(_ planar: [[Float]]) throws -> [[[Float]]] {
        let x = try toModel?.process(planar) ?? planar
        var perChannel: [[[Float]]] = []
        for c in 0..<channels {
            perChannel.append(try chunkers[c].push(x[c], outputs: prompts.count) { try model.separate($0, prompts: prompts) })
        }
        return try back(perChannel)
    }

    /// Drains everything still buffered.
    func finish() throws -> [[[Float]]] {
        var perChannel: [[[Float]]] = []
        if let toModel {
            let rest = try toModel.flush()
            for c in 0..<channels {
                var out = try chunkers[c].push(rest[c], outputs: prompts.count) { try model.separate($0, prompts: prompts) }
                let tail = try chunkers[c].finish(outputs: prompts.count) { try model.separate($0, prompts: prompts) }
                for p in 0..<out.count { out[p] += tail[p] }
                perChannel.append(out)
            }
        } else {
            for c in 0..<channels {
                perChannel.append(try chunkers[c].finish(outputs: prompts.count) { try model.separate($0, prompts: prompts) })
            }
        }
        var out = try back(perChannel)
        if let fromModel {
            for p in 0..<prompts.count {
                let rest = try fromModel[p].flush()
                for c in 0..<channels { out[p][c] += rest[c] }
            }
        }
        return out
    }

    /// Regroups `[channel][prompt][n]` as `[prompt][channel][n]` and resamples back to the input rate.
    private func back(_ perChannel: [[[Float]]]) throws -> [[[Float]]] {
        var out: [[[Float]]] = []
        for p in 0..<prompts.count {
            let planar = (0..<channels).map { perChannel[$0][p] }
            out.append(try fromModel?[p].process(planar) ?? planar)
        }
        return out
    }
}
