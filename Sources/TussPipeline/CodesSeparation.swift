import Foundation
import TussAudio
import TussModels
import TussTensor

/// A latent masker ready to use, with the file it came from.
public struct MaskerHandle: Sendable {
    /// The loaded model.
    public let masker: LatentMasker
    /// The file it was read from (named in error messages).
    public let path: String

    /// Opens a masker file (`tuss-codec.kind` = `masker`).
    public static func open(_ path: String) throws(PipelineError) -> MaskerHandle {
        MaskerHandle(masker: try ModelFile.open(path).latentMasker(), path: path)
    }

    /// Opens the default masker (`Models/codec-masker/model.safetensors`), or fails naming the missing file.
    public static func openDefault() throws(PipelineError) -> MaskerHandle {
        guard let root = DefaultModels.root() else {
            throw .notFound("the default codec-path masker (\(DefaultModels.masker)) was not found: run from the tuss-codec checkout, set TUSS_CODEC_HOME, or pass --masker FILE")
        }
        let path = (root as NSString).appendingPathComponent(DefaultModels.masker)
        guard FileManager.default.fileExists(atPath: path) else {
            throw .notFound("the default codec-path masker is missing: \(path) does not exist (train it with Training/masker/train_masker.py, or pass --masker FILE)")
        }
        return try open(path)
    }

    /// Refuses a codec this masker was not trained on: a different latent width, or different weights.
    public func requireCodec(_ codec: CodecHandle) throws(PipelineError) {
        let config = masker.config
        guard config.latentDim == codec.codec.config.latentDim else {
            throw .badInput("masker \(path) works on \(config.latentDim)-channel latents but codec \(codec.path) has \(codec.codec.config.latentDim): use the masker trained for this codec")
        }
        let hash = codec.identity.weightsHash.map { String(format: "%02x", $0) }.joined()
        guard hash == config.codecHash else {
            throw .badInput("masker \(path) was trained on codec '\(config.codecName)' (hash \(config.codecHash.prefix(16))…); codec \(codec.path) is '\(codec.identity.name)' (hash \(hash.prefix(16))…): use the masker trained for this codec")
        }
    }
}

/// Streaming codes → per-prompt codes for one channel of one codes stream.
///
/// Each push dequantizes the codes, masks the latent once per prompt (a causal masker returns every frame at once;
/// one with lookahead L returns each frame L frames later, and ``finish()`` the last L) and turns every masked
/// latent back into codes with as many codebooks as the input has. That last step is
/// a ``LatentCodeMatcher`` (nearest latent contribution per codebook), not the encoder's cosine lookup, which does
/// not bring latents of this kind back to the right codes.
public struct CodesSeparator: Sendable {
    /// The prompts, in output order.
    public let prompts: [Prompt]
    let quantizer: ResidualVectorQuantizer
    let matcher: LatentCodeMatcher
    var stream: LatentMaskerStream
    /// Codebooks of the pushed codes (nil before the first frames): the held frames go back to codes with as many.
    var codebooks: Int?

    /// Refuses a masker that was not trained on `codec`, and prompt lists the masker cannot run.
    ///
    /// - Parameter matcher: the codec's ``LatentCodeMatcher``, when the caller already has one. Its tables
    ///   (`codebooks × codebookSize × latentDim` floats, 12.6 MB for the default codec) depend only on the codec, so
    ///   every channel and every request of one codec can share them; nil builds them here.
    public init(codec: CodecHandle, masker: MaskerHandle, prompts: [Prompt],
                matcher: LatentCodeMatcher? = nil) throws(PipelineError) {
        try Self.check(codec: codec, masker: masker, prompts: prompts)
        if let matcher, matcher.codebookCount != codec.codec.quantizer.codebookCount
            || matcher.latentDim != codec.codec.config.latentDim {
            throw .badInput("the latent matcher given was built for another codec than \(codec.path): build it from this codec's quantizer")
        }
        self.prompts = prompts
        quantizer = codec.codec.quantizer
        self.matcher = matcher ?? LatentCodeMatcher(codec.codec.quantizer)
        stream = masker.masker.makeStream(prompts: prompts)
    }

    /// The checks of ``init(codec:masker:prompts:matcher:)`` without building anything: the masker was trained on
    /// `codec` and can run `prompts`.
    public static func check(codec: CodecHandle, masker: MaskerHandle, prompts: [Prompt]) throws(PipelineError) {
        try masker.requireCodec(codec)
        do {
            try masker.masker.check(prompts: prompts)
        } catch {
            throw .badInput("\(error)")
        }
    }

    /// Frames separated so far (pushed frames, less those a lookahead masker still holds back).
    public var position: Int { stream.position }

    /// Frames a push holds back until the frames after them arrive (the masker's lookahead; 0 for a causal one).
    public var lookahead: Int { stream.lookahead }

    /// Codes `[codebook][frame]` in (at most the codec's codebooks are used) → per prompt `[codebook][frame]`, for
    /// the frames that are ready: all of them for a causal masker; with lookahead L, the output runs L frames behind
    /// the input and ``finish()`` returns the last L.
    ///
    /// Rows must have equal lengths, as every `CodesChunk` from a reader or parser has.
    public mutating func push(_ codes: [[Int32]]) -> [[[Int32]]] {
        let books = min(codes.count, quantizer.codebookCount)
        let frames = codes.first?.count ?? 0
        precondition(codes.allSatisfy { $0.count == frames }, "CodesSeparator: codebook rows of different lengths")
        guard books > 0, frames > 0 else {
            return [[[Int32]]](repeating: [[Int32]](repeating: [], count: books), count: prompts.count)
        }
        if let known = codebooks {
            precondition(known == books, "CodesSeparator: \(books) codebooks after \(known) in one stream")
        }
        codebooks = books
        let latent = quantizer.dequantize(Array(codes.prefix(books)), frames: frames)
        return stream.push(latent).map { matcher.match($0, codebooks: books) }
    }

    /// A whole input at once: `push(codes)`, then `finish()`, joined per prompt and codebook (every frame, in order).
    public mutating func separateAll(_ codes: [[Int32]]) -> [[[Int32]]] {
        let head = push(codes), tail = finish()
        // A causal masker's tail, and any tail of an input without frames, holds no rows.
        return zip(head, tail).map { h, t in t.isEmpty ? h : zip(h, t).map { $0 + $1 } }
    }

    /// Ends the stream: per prompt the codes of the frames a lookahead masker still held (none for a causal one).
    public mutating func finish() -> [[[Int32]]] {
        let tail = stream.finish()
        guard let books = codebooks else {
            return [[[Int32]]](repeating: [], count: prompts.count)
        }
        return tail.map { matcher.match($0, codebooks: books) }
    }
}

/// What a codes separation did.
public struct CodesSeparationReport: Sendable {
    /// One codes file per prompt, in prompt order.
    public var codes: [String]
    /// One decoded audio file per prompt (empty unless decoding was asked for).
    public var audio: [String]
    /// Samples clipped in each decoded file.
    public var clippedSamples: [Int]
    /// Frames per channel separated.
    public var frames: Int64
    /// Duration of the original audio.
    public var seconds: Double
    /// Time the separation took.
    public var wallSeconds: Double
}

/// File flows of the codec path used by the CLI.
public enum CodesSeparation {
    /// Separates a codes file into `DIR/<prompt>.bin` (names from `Prompt.outputNames`), same codec and header;
    /// with `decode`, also decodes each to `DIR/<prompt>.wav`. Outputs appear only when complete.
    public static func separateFile(input: String, outputDirectory: String, prompts: [Prompt], codec: CodecHandle,
                                    masker: MaskerHandle, decode: Bool, float32: Bool) throws(PipelineError) -> CodesSeparationReport {
        let started = Date()
        // Checks that need no input first, so a bad masker or prompt list fails before any reading.
        try CodesSeparator.check(codec: codec, masker: masker, prompts: prompts)
        do {
            let reader: CodesReader
            do {
                reader = try CodesReader(path: input)
            } catch {
                throw PipelineError.badInput("\(input): \(error)")
            }
            let header = reader.header
            do {
                try header.requireCodec(codec.identity)
            } catch {
                // Hashes too: a retrained codec keeps its name, so names alone can read the same.
                throw PipelineError.badInput("\(input): codes were made with codec \(codesQuoted(header.codec.name)) (hash \(codesHashPrefix(header.codec.weightsHash))), not with \(codec.path) (\(codesQuoted(codec.identity.name)), hash \(codesHashPrefix(codec.identity.weightsHash))): pass the codec that encoded them with --codec")
            }
            let config = codec.codec.config
            guard header.sampleRate == config.sampleRate, header.hopLength == config.hopLength,
                  header.codebookSize == config.codebookSize, header.codebooks <= config.codebooks else {
                throw PipelineError.badInput("\(input): codes have \(header.codebooks) codebooks × \(header.codebookSize) at \(header.sampleRate) Hz / hop \(header.hopLength); codec \(codec.path) has \(config.codebooks) × \(config.codebookSize) at \(config.sampleRate) Hz / hop \(config.hopLength): pass the codec that encoded them with --codec")
            }
            try FileManager.default.createDirectory(atPath: outputDirectory, withIntermediateDirectories: true)
            let names = Prompt.outputNames(for: prompts)
            let paths = names.map { (outputDirectory as NSString).appendingPathComponent("\($0).bin") }
            let writers = try paths.map { try CodesWriter(path: $0, header: header) }
            let matcher = LatentCodeMatcher(codec.codec.quantizer)
            var separators = try (0..<header.channels).map { _ throws(PipelineError) in
                try CodesSeparator(codec: codec, masker: masker, prompts: prompts, matcher: matcher)
            }
            var frames: Int64 = 0
            // Output frames written per channel: a lookahead masker's output runs behind its input. Every channel
            // gets the same time ranges, so every channel's output of one range has the same length too.
            var written = [Int64](repeating: 0, count: header.channels)
            func write(_ outputs: [[[Int32]]], channel: Int) throws {
                let count = outputs.first?.first?.count ?? 0
                guard count > 0 else { return }
                for (p, writer) in writers.enumerated() {
                    try writer.write(CodesChunk(channel: channel, firstFrame: written[channel], codes: outputs[p]))
                }
                written[channel] += Int64(count)
            }
            while let chunk = try nextChunk(reader, input) {
                try write(separators[chunk.channel].push(chunk.codes), channel: chunk.channel)
                if chunk.channel == 0 { frames += Int64(chunk.codes.first?.count ?? 0) }
            }
            for channel in 0..<header.channels { try write(separators[channel].finish(), channel: channel) }
            for writer in writers { try writer.finish() }
            var report = CodesSeparationReport(codes: paths, audio: [], clippedSamples: [], frames: frames,
                                               seconds: Double(header.originalLength) / Double(max(header.originalSampleRate, 1)),
                                               wallSeconds: 0)
            if decode {
                for (path, name) in zip(paths, names) {
                    let wav = (outputDirectory as NSString).appendingPathComponent("\(name).wav")
                    let r = try CodecPipeline.decodeFile(input: path, output: wav, codec: codec, codebooks: nil, float32: float32)
                    report.audio.append(wav)
                    report.clippedSamples.append(r.clippedSamples)
                }
            }
            report.wallSeconds = Date().timeIntervalSince(started)
            return report
        } catch {
            throw pipelineError(error)
        }
    }

    /// Encode → separate → decode in one go: `DIR/<prompt>.bin` and `DIR/<prompt>.wav` for an audio file
    /// (`separate INPUT --path codec`). The mixture's codes go through a hidden temporary file in `DIR`.
    public static func separateAudioFile(input: String, outputDirectory: String, prompts: [Prompt], codec: CodecHandle,
                                         masker: MaskerHandle, codebooks: Int?, float32: Bool) throws(PipelineError) -> CodesSeparationReport {
        let started = Date()
        try CodesSeparator.check(codec: codec, masker: masker, prompts: prompts)
        do {
            try FileManager.default.createDirectory(atPath: outputDirectory, withIntermediateDirectories: true)
        } catch {
            throw .failed("cannot create \(outputDirectory): \(error.localizedDescription)")
        }
        let temporary = (outputDirectory as NSString).appendingPathComponent(".mixture-\(UUID().uuidString).bin")
        defer { try? FileManager.default.removeItem(atPath: temporary) }
        _ = try CodecPipeline.encodeFile(input: input, output: temporary, codec: codec, codebooks: codebooks)
        var report = try separateFile(input: temporary, outputDirectory: outputDirectory, prompts: prompts, codec: codec,
                                      masker: masker, decode: true, float32: float32)
        report.wallSeconds = Date().timeIntervalSince(started)
        return report
    }

    /// The next chunk, with damage reported against the input's path.
    static func nextChunk(_ reader: CodesReader, _ input: String) throws(PipelineError) -> CodesChunk? {
        do {
            return try reader.next()
        } catch {
            throw .badInput("\(input): \(error)")
        }
    }
}

/// The codec path on in-memory audio (evaluation): per channel, resample to the codec rate, encode, separate the
/// codes, decode every prompt's codes, resample back and cut to the input length.
public struct CodecPathSeparator: Sendable {
    /// The codec that encodes the mixture and decodes every output.
    public let codec: CodecHandle
    /// The masker trained for that codec.
    public let masker: MaskerHandle
    /// Codebooks to encode with (nil: all of the codec's).
    public let codebooks: Int?
    /// Built once: an evaluation separates hundreds of items with the same codec.
    let matcher: LatentCodeMatcher

    /// Refuses a masker that was not trained on `codec`.
    public init(codec: CodecHandle, masker: MaskerHandle, codebooks: Int? = nil) throws(PipelineError) {
        try masker.requireCodec(codec)
        try requireCodebookCount(codebooks)
        self.codec = codec
        self.masker = masker
        self.codebooks = codebooks
        matcher = LatentCodeMatcher(codec.codec.quantizer)
    }

    /// `[channels][samples]` at `sampleRate` → `[prompt][channel][samples]` of the same length.
    public func separate(_ planar: [[Float]], sampleRate: Int, prompts: [Prompt]) throws(PipelineError) -> [[[Float]]] {
        let length = planar.first?.count ?? 0
        let rate = codec.codec.config.sampleRate
        var out = [[[Float]]](repeating: [], count: prompts.count)
        do {
            for channel in planar {
                let x = sampleRate == rate ? channel : try Resampler.resample([channel], from: sampleRate, to: rate)[0]
                let codes = codec.codec.encode(x, codebooks: codebooks)
                var separator = try CodesSeparator(codec: codec, masker: masker, prompts: prompts, matcher: matcher)
                for (p, sourceCodes) in separator.separateAll(codes).enumerated() {
                    let y = fitLength(codec.codec.decode(sourceCodes), x.count)
                    let back = sampleRate == rate ? y : try Resampler.resample([y], from: rate, to: sampleRate)[0]
                    out[p].append(fitLength(back, length))
                }
            }
        } catch {
            throw pipelineError(error)
        }
        return out
    }

    /// `[channels][samples]` at `sampleRate` encoded and decoded by the codec alone, at the same length: what a
    /// perfect masker's output decodes to when the input is a clean source, so the ceiling of the codec path.
    public func roundTrip(_ planar: [[Float]], sampleRate: Int) throws(PipelineError) -> [[Float]] {
        try Self.roundTrip(planar, sampleRate: sampleRate, codec: codec, codebooks: codebooks)
    }

    /// The same without a masker: the ceiling needs only the codec, so a codec with no masker trained for it yet
    /// (a codec run in progress) can be scored too.
    public static func roundTrip(_ planar: [[Float]], sampleRate: Int, codec: CodecHandle,
                                 codebooks: Int? = nil) throws(PipelineError) -> [[Float]] {
        try requireCodebookCount(codebooks)
        let rate = codec.codec.config.sampleRate
        do {
            return try planar.map { channel in
                let x = sampleRate == rate ? channel : try Resampler.resample([channel], from: sampleRate, to: rate)[0]
                let y = fitLength(codec.codec.decode(codec.codec.encode(x, codebooks: codebooks)), x.count)
                let back = sampleRate == rate ? y : try Resampler.resample([y], from: rate, to: sampleRate)[0]
                return fitLength(back, channel.count)
            }
        } catch {
            throw pipelineError(error)
        }
    }
}
