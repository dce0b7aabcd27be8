import Foundation
import TussAudio
import TussModels
import TussTensor

/// A latent masker ready to use, with the file it came from.
public struct MaskerHandle: Sendable {
    public let masker: LatentMasker
    public let path: String

    /// Opens a masker file (`tuss-codec.kind` = `masker`).
    public static func open(_ path: String) throws(PipelineError) -> MaskerHandle {
        MaskerHandle(masker: try ModelFile.open(path).latentMasker(), path: path)
    }

    /// Opens the default masker (`Models/codec-masker/model.safetensors`), or fails naming the missing file.
    public static func openDefault() throws(PipelineError) -> MaskerHandle {
        try open(DefaultModels.path(DefaultModels.masker, what: "codec-path masker"))
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
/// Each push dequantizes the codes, masks the latent once per prompt (lookahead 0, so every frame comes back at
/// once) and quantizes every masked latent with as many codebooks as the input has.
public struct CodesSeparator: Sendable {
    public let prompts: [Prompt]
    let quantizer: ResidualVectorQuantizer
    var stream: LatentMaskerStream

    /// Refuses a masker that was not trained on `codec`, and prompt lists the masker cannot run.
    public init(codec: CodecHandle, masker: MaskerHandle, prompts: [Prompt]) throws(PipelineError) {
        try masker.requireCodec(codec)
        do {
            try masker.masker.check(prompts: prompts)
        } catch {
            throw .badInput("\(error)")
        }
        self.prompts = prompts
        quantizer = codec.codec.quantizer
        stream = masker.masker.makeStream(prompts: prompts)
    }

    /// Frames pushed so far.
    public var position: Int { stream.position }

    /// Codes `[codebook][frame]` in (at most the codec's codebooks are used) → per prompt `[codebook][frame]`.
    public mutating func push(_ codes: [[Int32]]) -> [[[Int32]]] {
        let books = min(codes.count, quantizer.codebookCount)
        let frames = codes.first?.count ?? 0
        guard books > 0, frames > 0 else {
            return [[[Int32]]](repeating: [[Int32]](repeating: [], count: books), count: prompts.count)
        }
        let latent = quantizer.dequantize(Array(codes.prefix(books)), frames: frames)
        return stream.push(latent).map { quantizer.quantize($0, codebooks: books).codes }
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
        _ = try CodesSeparator(codec: codec, masker: masker, prompts: prompts)
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
                throw PipelineError.badInput("\(input): codes were made with codec '\(header.codec.name)', not with \(codec.path) ('\(codec.identity.name)'): pass the codec that encoded them with --codec")
            }
            let config = codec.codec.config
            guard header.sampleRate == config.sampleRate, header.hopLength == config.hopLength,
                  header.codebookSize == config.codebookSize, header.codebooks <= config.codebooks else {
                throw PipelineError.badInput("\(input): codes (\(header.sampleRate) Hz, hop \(header.hopLength), \(header.codebooks) × \(header.codebookSize)) do not fit codec \(codec.path)")
            }
            try FileManager.default.createDirectory(atPath: outputDirectory, withIntermediateDirectories: true)
            let names = Prompt.outputNames(for: prompts)
            let paths = names.map { (outputDirectory as NSString).appendingPathComponent("\($0).bin") }
            let writers = try paths.map { try CodesWriter(path: $0, header: header) }
            var separators = try (0..<header.channels).map { _ throws(PipelineError) in
                try CodesSeparator(codec: codec, masker: masker, prompts: prompts)
            }
            var frames: Int64 = 0
            while let chunk = try nextChunk(reader, input) {
                let outputs = separators[chunk.channel].push(chunk.codes)
                for (p, writer) in writers.enumerated() {
                    try writer.write(CodesChunk(channel: chunk.channel, firstFrame: chunk.firstFrame, codes: outputs[p]))
                }
                if chunk.channel == 0 { frames += Int64(chunk.codes.first?.count ?? 0) }
            }
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

    /// The next chunk, with damage reported against the input's path.
    static func nextChunk(_ reader: CodesReader, _ input: String) throws(PipelineError) -> CodesChunk? {
        do {
            return try reader.next()
        } catch {
            throw .badInput("\(input): \(error)")
        }
    }
}
