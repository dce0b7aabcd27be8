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
    /// What becomes of the input the outputs do not account for (default: nothing).
    public var remainder: MixtureRemainder = .ignored
    /// Passes per chunk, each on the input delayed by a fraction of the STFT hop, averaged (1 ... 16; compute grows
    /// in proportion).
    public var shifts: Int = 1

    /// The largest `shifts` accepted: a bound on the compute one option can ask for.
    public static let maximumShifts = 16

    public init(chunkSeconds: Double? = nil, overlapSeconds: Double = 1, float32: Bool = false, quiet: Bool = false,
                remainder: MixtureRemainder = .ignored, shifts: Int = 1) {
        self.chunkSeconds = chunkSeconds
        self.overlapSeconds = overlapSeconds
        self.float32 = float32
        self.quiet = quiet
        self.remainder = remainder
        self.shifts = shifts
    }
}

/// What a file separation produced.
public struct SeparationReport: Sendable {
    /// One path per prompt, in prompt order, then the residual's with `MixtureRemainder.residualStem`.
    public var outputs: [String]
    /// The name of each output, same order (`speech-1`, …, `residual`).
    public var names: [String]
    /// Samples clipped when writing each output (same order) to an integer format.
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
        guard (1...SeparationOptions.maximumShifts).contains(options.shifts) else {
            throw .badInput("--shifts must be between 1 and \(SeparationOptions.maximumShifts)")
        }
    }

    var chunkSamples: Int { Int(((options.chunkSeconds ?? model.config.segmentSeconds) * Double(model.config.sampleRate)).rounded()) }
    var overlapSamples: Int { Int((options.overlapSeconds * Double(model.config.sampleRate)).rounded()) }

    /// A streaming separator for `channels` channels at `sampleRate`.
    func stream(prompts: [Prompt], sampleRate: Int, channels: Int) throws -> SeparationStream {
        try SeparationStream(model: model, prompts: prompts, sampleRate: sampleRate, channels: channels,
                             chunk: chunkSamples, overlap: overlapSamples, shifts: options.shifts)
    }

    /// Separates in-memory audio (`[channels][samples]`) into `[prompt][channel][samples]` of the same length;
    /// with `MixtureRemainder.residualStem` the residual follows as one more element.
    public func separate(_ planar: [[Float]], sampleRate: Int, prompts: [Prompt]) throws(PipelineError) -> [[[Float]]] {
        let length = planar.first?.count ?? 0
        do {
            let s = try stream(prompts: prompts, sampleRate: sampleRate, channels: planar.count)
            var out = try s.process(planar)
            let rest = try s.finish()
            for p in 0..<out.count { for c in 0..<out[p].count { out[p][c] += rest[p][c] } }
            out = out.map { $0.map { fitLength($0, length) } }
            switch options.remainder {
            case .ignored: break
            case .spread: MixtureRemainder.spread(&out, mixture: planar)
            case .residualStem: out.append(MixtureRemainder.residual(out, mixture: planar))
            }
            return out
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
            var names = Prompt.outputNames(for: prompts)
            if options.remainder == .residualStem { names.append(MixtureRemainder.residualName) }
            let paths = names.map { (outputDirectory as NSString).appendingPathComponent("\($0).\(ext)") }
            var writers: [AudioFileWriter] = []
            for path in paths {
                writers.append(try AudioFileWriter(path: path, sampleRate: info.sampleRate, channels: info.channels, format: format))
            }
            // The remainder needs the input sample-aligned with the outputs, which arrive later than the input is read
            // (chunk overlap, resampler delay): a second reader walks the file in step with what is written.
            let mixture = options.remainder == .ignored ? nil : try AudioFileReader(path: input)
            let s = try stream(prompts: prompts, sampleRate: info.sampleRate, channels: info.channels)
            let total = info.frames
            var written: Int64 = 0
            // Output not yet written, per prompt; every prompt runs through the same chunkers and resamplers, so they
            // stay level, but only what all of them have is written.
            var pending = [[[Float]]](repeating: [[Float]](repeating: [], count: info.channels), count: prompts.count)
            let progress = ProgressReporter(label: "separating", totalSeconds: info.duration, quiet: options.quiet)
            var readFrames: Int64 = 0
            func write(_ out: [[[Float]]]) throws {
                for p in 0..<out.count { for c in 0..<info.channels { pending[p][c] += out[p][c] } }
                let level = Int64(pending.map { $0.first?.count ?? 0 }.min() ?? 0)
                let n = Int(min(level, max(0, total - written)))
                guard n > 0 else { return }
                var block = pending.map { $0.map { Array($0[0..<n]) } }
                pending = pending.map { $0.map { Array($0[n...]) } }
                if let mixture {
                    // `read(frames:)` returns short only at the end of the file, which the outputs already counted.
                    let x = try mixture.read(frames: n)
                    guard x.first?.count == n else {
                        throw PipelineError.failed("\(input) ended early on the second read; was it changed during separation?")
                    }
                    switch options.remainder {
                    case .ignored: break
                    case .spread: MixtureRemainder.spread(&block, mixture: x)
                    case .residualStem: block.append(MixtureRemainder.residual(block, mixture: x))
                    }
                }
                for (writer, planar) in zip(writers, block) { try writer.write(planar) }
                written += Int64(n)
            }
            let chunk = 1 << 16
            while true {
                let planar = try reader.read(frames: chunk)
                guard let first = planar.first, !first.isEmpty else { break }
                readFrames += Int64(first.count)
                try write(try s.process(planar))
                progress.update(doneSeconds: Double(readFrames) / Double(info.sampleRate))
            }
            try write(try s.finish())
            progress.finish()
            // Resampling round trips can land one sample short: pad so every output has the input's length.
            if written < total {
                let missing = Int(total - written)
                let level = pending.map { $0.first?.count ?? 0 }
                try write((0..<prompts.count).map { p in
                    [[Float]](repeating: [Float](repeating: 0, count: max(0, missing - level[p])), count: info.channels)
                })
            }
            for w in writers { try w.finish() }
            return SeparationReport(outputs: paths, names: names, clippedSamples: writers.map(\.clippedSamples),
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
    let passes: ShiftedPasses
    let prompts: [Prompt]
    let channels: Int
    let toModel: Resampler?
    let fromModel: [Resampler]?
    var chunkers: [OverlapChunker]

    init(model: TUSSModel, prompts: [Prompt], sampleRate: Int, channels: Int, chunk: Int, overlap: Int,
         shifts: Int = 1) throws {
        passes = ShiftedPasses(model: model, prompts: prompts, passes: shifts)
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
            perChannel.append(try chunkers[c].push(x[c], outputs: prompts.count) { try passes.separate($0) })
        }
        return try back(perChannel)
    }

    /// Drains everything still buffered.
    func finish() throws -> [[[Float]]] {
        var perChannel: [[[Float]]] = []
        if let toModel {
            let rest = try toModel.flush()
            for c in 0..<channels {
                var out = try chunkers[c].push(rest[c], outputs: prompts.count) { try passes.separate($0) }
                let tail = try chunkers[c].finish(outputs: prompts.count) { try passes.separate($0) }
                for p in 0..<out.count { out[p] += tail[p] }
                perChannel.append(out)
            }
        } else {
            for c in 0..<channels {
                perChannel.append(try chunkers[c].finish(outputs: prompts.count) { try passes.separate($0) })
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
