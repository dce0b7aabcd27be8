import Foundation
import TussAudio
import TussModels
import TussPipeline

/// Which separator handles audio input.
public enum SeparationPath: String, Sendable {
    /// TUSS on the STFT: audio in, audio out.
    case spectral
    /// Encode with the codec, separate the codes with the latent masker.
    case codec
}

/// The models a server loaded once at start, and the batch operations on them.
///
/// Stateless per request: every call makes its own streams and temporary files, so replicas are interchangeable.
public final class SeparationEngine: Sendable {
    /// The spectral-path separator, when a TUSS model was loaded.
    public let spectral: SpectralSeparator?
    /// The codec, when one was loaded.
    public let codec: CodecHandle?
    /// The codec-path latent masker, when one was loaded.
    public let masker: MaskerHandle?
    /// The codec's latent → codes tables, built once for every request's separators (only with a masker).
    let matcher: LatentCodeMatcher?

    /// Creates an engine from loaded models; any of them may be missing, and the routes that need it then answer
    /// 503 with a message naming the option that loads it. A masker needs the codec it was trained on.
    public init(spectral: SpectralSeparator?, codec: CodecHandle?, masker: MaskerHandle?) throws(ServerError) {
        if let masker {
            guard let codec else { throw .badConfiguration("a masker needs its codec: pass --codec") }
            do { try masker.requireCodec(codec) } catch { throw .badConfiguration("\(error)") }
        }
        self.spectral = spectral
        self.codec = codec
        self.masker = masker
        matcher = masker == nil ? nil : codec.map { LatentCodeMatcher($0.codec.quantizer) }
    }

    /// The codec, or the error that says how to load one.
    func requireCodec() throws(ServerError) -> CodecHandle {
        guard let codec else { throw .unavailable("this server has no codec loaded: start it with --codec FILE") }
        return codec
    }

    /// Checks a codes header against the server's codec and makes the per-channel fan-out for `prompts`.
    func fanOut(for header: CodesHeader, prompts: [Prompt]) throws(ServerError) -> CodesFanOut {
        let codec = try requireCodec()
        do { try header.requireCodec(codec.identity) } catch { throw .wrongCodec("\(error)") }
        let config = codec.codec.config
        guard header.sampleRate == config.sampleRate, header.hopLength == config.hopLength,
              header.codebookSize == config.codebookSize, header.codebooks <= config.codebooks else {
            throw .wrongCodec("codes at \(header.sampleRate) Hz, hop \(header.hopLength), \(header.codebooks)×\(header.codebookSize) do not fit this server's codec (\(config.sampleRate) Hz, hop \(config.hopLength), \(config.codebooks)×\(config.codebookSize)): encode with the server's codec")
        }
        guard let masker else {
            throw .unavailable("this server has no latent masker loaded: start it with --masker FILE, or send audio with path=spectral")
        }
        var separators: [CodesSeparator] = []
        for _ in 0..<header.channels {
            do { separators.append(try CodesSeparator(codec: codec, masker: masker, prompts: prompts, matcher: matcher)) } catch {
                throw .badRequest("cannot separate with these prompts: \(error)")
            }
        }
        return CodesFanOut(header: header, outputs: prompts.count, separators: separators)
    }

    /// Separates a whole codes file into one codes file (or, with `decode`, one WAV file) per prompt.
    public func separateCodes(_ body: Data, prompts: [Prompt], decode: Bool) throws(ServerError) -> StemContainer {
        let reader: CodesReader
        do { reader = try CodesReader(data: body) } catch { throw codesError(error) }
        var fan = try fanOut(for: reader.header, prompts: prompts)
        var outputs = [Data](repeating: Data(), count: prompts.count)
        func collect(_ pieces: [OutputPiece]) { for p in pieces { outputs[p.output].append(p.bytes) } }
        do {
            while let chunk = try reader.next() { collect(try fan.push(chunk)) }
        } catch let e as CodesFileError {
            throw codesError(e)
        } catch let e as ServerError {
            throw e
        } catch {
            throw .internalError("\(error)")
        }
        collect(try fan.finish())
        let names = Prompt.outputNames(for: prompts)
        guard decode else {
            return StemContainer(entries: zip(names, outputs).map { .init(name: $0, mediaType: StemContainer.codesMediaType, data: $1) })
        }
        let codec = try requireCodec()
        return try withScratchDirectory { dir throws(ServerError) in
            var entries: [StemContainer.Entry] = []
            for (name, codes) in zip(names, outputs) {
                let bin = (dir as NSString).appendingPathComponent("\(name).bin")
                let wav = (dir as NSString).appendingPathComponent("\(name).wav")
                do {
                    try codes.write(to: URL(fileURLWithPath: bin))
                    _ = try CodecPipeline.decodeFile(input: bin, output: wav, codec: codec, codebooks: nil, float32: true)
                    entries.append(.init(name: name, mediaType: "audio/wav", data: try Data(contentsOf: URL(fileURLWithPath: wav))))
                } catch {
                    throw .internalError("decoding the separated '\(name)' codes failed: \(error)")
                }
            }
            return StemContainer(entries: entries)
        }
    }

    /// Separates an audio file (WAV, FLAC, Ogg Opus, … as bytes) into one audio file per prompt (spectral path),
    /// or encodes it and separates the codes (codec path; `decode` then returns audio).
    /// `remainder` (spectral path only) adds a `residual` entry or shares the remainder out, as `separate --residual`
    /// and `--sum-to-mix` do.
    public func separateAudio(_ body: Data, prompts: [Prompt], path: SeparationPath, decode: Bool,
                              remainder: MixtureRemainder = .ignored) throws(ServerError) -> StemContainer {
        if remainder != .ignored && path != .spectral {
            throw .badRequest("remainder=\(remainder.rawValue) applies to the spectral path; drop it or use path=spectral")
        }
        return try withScratchDirectory { dir throws(ServerError) in
            let input = (dir as NSString).appendingPathComponent("input")
            do { try body.write(to: URL(fileURLWithPath: input)) } catch { throw .internalError("cannot store the body: \(error)") }
            do { _ = try AudioFileReader(path: input) } catch {
                throw .badRequest("the body is neither a codes file nor audio this server reads (WAV, FLAC, Ogg Vorbis/Opus): \(error)")
            }
            switch path {
            case .spectral:
                guard let spectral else {
                    throw .unavailable("this server has no TUSS model loaded: start it with --model, or use path=codec")
                }
                let out = (dir as NSString).appendingPathComponent("out")
                let report: SeparationReport
                do {
                    // A separator is the loaded model plus options: one per request costs nothing.
                    var options = spectral.options
                    options.remainder = remainder
                    let separator = try SpectralSeparator(model: spectral.model, options: options)
                    report = try separator.separateFile(input: input, prompts: prompts, outputDirectory: out)
                } catch {
                    throw .internalError("spectral separation failed: \(error)")
                }
                var entries: [StemContainer.Entry] = []
                for (name, file) in zip(report.names, report.outputs) {
                    let ext = (file as NSString).pathExtension
                    do { entries.append(.init(name: name, mediaType: "audio/\(ext)", data: try Data(contentsOf: URL(fileURLWithPath: file)))) } catch {
                        throw .internalError("cannot read the separated '\(name)': \(error)")
                    }
                }
                return StemContainer(entries: entries)
            case .codec:
                let codec = try requireCodec()
                let bin = (dir as NSString).appendingPathComponent("input.bin")
                do { _ = try CodecPipeline.encodeFile(input: input, output: bin, codec: codec, codebooks: nil) } catch {
                    throw .badRequest("cannot encode the audio: \(error)")
                }
                let codes: Data
                do { codes = try Data(contentsOf: URL(fileURLWithPath: bin)) } catch { throw .internalError("\(error)") }
                return try separateCodes(codes, prompts: prompts, decode: decode)
            }
        }
    }
}

/// The server error for a codes-file problem: truncation and codec mismatch keep their kinds.
func codesError(_ error: CodesFileError) -> ServerError {
    switch error {
    case .truncated: .truncated("\(error)")
    case .codecMismatch: .wrongCodec("\(error)")
    default: .badRequest("\(error)")
    }
}

/// Runs `body` with a fresh private directory that is removed afterwards.
func withScratchDirectory<T>(_ body: (String) throws(ServerError) -> T) throws(ServerError) -> T {
    let dir = (NSTemporaryDirectory() as NSString).appendingPathComponent("tuss-server-\(UUID().uuidString)")
    do { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) } catch {
        throw .internalError("cannot create a scratch directory: \(error)")
    }
    defer { try? FileManager.default.removeItem(atPath: dir) }
    return try body(dir)
}
