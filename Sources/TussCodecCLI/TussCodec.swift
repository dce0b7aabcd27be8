import ArgumentParser
import Foundation
import TussModels
import TussPipeline
import TussTensor

@main
struct TussCodecCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tuss-codec",
        abstract: "Prompt-driven audio source separation: a spectral path (TUSS) and a neural-codec path.",
        discussion: """
        Prompts: speech, sfx, sfx-mix, drums, bass, vocals, other, music-mix (aliases sfxbg, musicbg, other-inst).
        Repeat a prompt to separate several sources of one kind, e.g. --prompts speech,speech.
        """,
        version: "tuss-codec 0.1.0",
        subcommands: [Separate.self, Encode.self, Decode.self, Eval.self, EvalCodec.self, Plot.self, Info.self, Convert.self,
                      Bench.self, Serve.self, StreamCommand.self]
    )
}

/// Options every compute-heavy command shares.
struct ComputeOptions: ParsableArguments {
    @Option(help: "Worker threads for our kernels (OpenBLAS is kept single-threaded; default: all cores).")
    var threads: Int?

    func apply() throws {
        if let threads, threads < 1 { throw CLIError("--threads must be at least 1") }
        ComputeThreads.configure(threads)
    }
}

/// A subcommand that runs on our kernels.
///
/// Its `run()` applies `--threads` and turns any error into the one-line message and non-zero exit every command
/// promises, so a command only writes `execute()`.
protocol ComputeCommand: ParsableCommand {
    var compute: ComputeOptions { get }

    /// The command's work, after `--threads` has been applied.
    func execute() throws
}

extension ComputeCommand {
    func run() throws {
        try reportingErrors {
            try compute.apply()
            try execute()
        }
    }
}

/// Options of the codec path (`separate --codes`, `separate --path codec`, `eval --path codec|both`).
struct CodecPathOptions: ParsableArguments {
    @Option(help: "Codec weights for the codec path (default: the embedded codec); must be the codec that made the codes.")
    var codec: String?

    @Option(help: "Codec-path masker (.safetensors; default: Models/codec-masker/model.safetensors).")
    var masker: String?

    @Option(help: "Codebooks to encode with on the codec path (default: all).")
    var codebooks: Int?

    /// The codec alone (default: the embedded file), after checking `--codebooks`.
    func openCodecOnly() throws -> CodecHandle {
        if let codebooks, codebooks < 1 { throw CLIError("--codebooks must be at least 1") }
        return try openCodec(codec)
    }

    /// The codec and the masker (defaults: the embedded files), after checking `--codebooks`.
    func open() throws -> (CodecHandle, MaskerHandle) {
        let codecHandle = try openCodecOnly()
        let maskerHandle = try masker.map { path throws(PipelineError) in try MaskerHandle.open(path) } ?? MaskerHandle.openDefault()
        return (codecHandle, maskerHandle)
    }
}

/// A one-line error for the user.
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ text: String) { description = text }
}

/// Runs a command body, turning any error into one line on stderr and exit status 1.
func reportingErrors(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let e as ExitCode {
        throw e
    } catch {
        let text = "\(error)".split(separator: "\n").first.map(String.init) ?? "\(error)"
        FileHandle.standardError.write(Data("tuss-codec: error: \(text)\n".utf8))
        throw ExitCode.failure
    }
}

func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}

struct Separate: ComputeCommand {
    static let configuration = CommandConfiguration(
        abstract: "Separate an audio file (or a codes file) into one file per prompt.",
        discussion: """
        Spectral path (default): INPUT → DIR/<prompt>.<ext>.
        Codec path: --codes IN.bin → DIR/<prompt>.bin (codes of the same codec; audio only with --decode),
        or INPUT --path codec → encode, separate, decode: DIR/<prompt>.bin and DIR/<prompt>.wav.
        """)

    @Argument(help: """
        Input audio (WAV, FLAC, Ogg Vorbis/Opus, MP3, AIFF; any rate and channel count). Several inputs are \
        separated one after another with the model loaded once, each into a folder named after it (inside -o DIR).
        """)
    var inputs: [String] = []

    @Option(help: "Separate this codes file (.bin from 'tuss-codec encode') instead of audio: codes in, codes out.")
    var codes: String?

    @Option(help: "Comma-separated prompts, e.g. speech,sfx-mix or vocals,other or speech,speech.")
    var prompts: String

    @Option(help: "Separation path for audio input: spectral (TUSS) or codec (encode, mask the latent, decode).")
    var path: String = "spectral"

    @Option(help: "TUSS model: an official release directory, a .pth beside hparams.yaml, or a .safetensors file (default: the embedded model).")
    var model: String?

    @OptionGroup var codecPath: CodecPathOptions

    @Flag(help: "With --codes: also decode every output to DIR/<prompt>.wav.")
    var decode = false

    @Option(name: .shortAndLong, help: """
        Output folder (default: a folder named after the input, in the current directory); with several inputs, \
        the folder that holds one folder per input.
        """)
    var output: String?

    @Flag(name: .customLong("float"), help: "Write 32-bit float files.")
    var float32 = false

    @Option(help: "Chunk length in seconds (default: the model's training segment, 6 s for TUSS).")
    var chunk: Double?

    @Option(help: "Overlap between chunks in seconds, cross-faded.")
    var overlap: Double = 1

    @Flag(help: "No progress output.")
    var quiet = false

    @Flag(help: "Also write DIR/spectrograms.png: the mixture and every output, stacked and labelled (codes input: with --decode).")
    var plot = false

    @Flag(help: "Spectral path: also write DIR/residual.<ext>, the input minus every output, so the files sum to the input.")
    var residual = false

    @Flag(help: """
        Spectral path: share out what the outputs miss so they sum to the input exactly (mixture consistency), for \
        prompt lists that cover the whole mix, e.g. vocals,drums,bass,other.
        """)
    var sumToMix = false

    @Option(help: """
        Spectral path: separate each chunk N times, the input delayed by a fraction of the STFT hop each time, and \
        average (1-16; N times the compute; 4 gain 0.03-0.24 dB SI-SDR per task on our eval set).
        """)
    var shifts: Int = 1

    @OptionGroup var compute: ComputeOptions

    /// The remainder option of the spectral path, refused where it cannot apply.
    var remainder: MixtureRemainder {
        get throws {
            if residual && sumToMix {
                throw CLIError("--residual and --sum-to-mix exclude each other: with --sum-to-mix the residual is silence")
            }
            let chosen: MixtureRemainder = residual ? .residualStem : sumToMix ? .spread : .ignored
            if chosen != .ignored && (codes != nil || path != "spectral") {
                throw CLIError("--\(residual ? "residual" : "sum-to-mix") applies to the spectral path (audio input without --path codec)")
            }
            return chosen
        }
    }

    func execute() throws {
        let list = try Prompt.parseList(prompts)
        let remainder = try remainder
        if shifts != 1 && (codes != nil || path != "spectral") {
            throw CLIError("--shifts applies to the spectral path (audio input without --path codec)")
        }
        if let codes {
            guard inputs.isEmpty else { throw CLIError("give input audio files or --codes FILE, not both") }
            try separateCodes(codes, list)
            return
        }
        guard !inputs.isEmpty else { throw CLIError("give an input audio file, or --codes FILE to separate a codes file") }
        if decode { throw CLIError("--decode applies to --codes input; audio input is always written as audio") }
        guard path == "spectral" || path == "codec" else { throw CLIError("unknown --path '\(path)'; use spectral or codec") }
        let jobs = try outputFolders()
        // Models load once for every input; a failure stops the run with the inputs before it complete.
        switch path {
        case "spectral":
            let modelPath = try model ?? DefaultModels.path(DefaultModels.separator, what: "separation model")
            let separator = try SpectralSeparator(model: try ModelFile.open(modelPath).tussModel(), options: SeparationOptions(
                chunkSeconds: chunk, overlapSeconds: overlap, float32: float32, quiet: quiet, remainder: remainder,
                shifts: shifts))
            for w in Prompt.warnings(for: list) { printError(w) }
            for (input, dir) in jobs { try separateSpectral(input, list, dir, separator) }
        default:
            let (codecHandle, maskerHandle) = try codecPath.open()
            for w in Prompt.warnings(for: list) { printError(w) }
            for (input, dir) in jobs {
                let r = try CodesSeparation.separateAudioFile(input: input, outputDirectory: dir, prompts: list, codec: codecHandle,
                                                              masker: maskerHandle, codebooks: codecPath.codebooks, float32: float32)
                report(r)
                try writePlot(dir, mixture: input, outputs: r.audio, names: Prompt.outputNames(for: list))
            }
        }
    }

    /// Each input with its output folder, every input checked before any work starts.
    func outputFolders() throws -> [(input: String, folder: String)] {
        for input in inputs where !FileManager.default.fileExists(atPath: input) { throw CLIError("input not found: \(input)") }
        let stems = inputs.map { (($0 as NSString).lastPathComponent as NSString).deletingPathExtension }
        if inputs.count == 1 { return [(inputs[0], output ?? stems[0])] }
        // Two inputs with one name would write into one folder, the second overwriting the first's stems.
        var seen: [String: String] = [:]
        for (input, stem) in zip(inputs, stems) {
            if let first = seen[stem] {
                throw CLIError("\(first) and \(input) would both be written to a folder '\(stem)': rename one or separate them in two runs")
            }
            seen[stem] = input
        }
        return zip(inputs, stems).map { input, stem in
            (input, output.map { ($0 as NSString).appendingPathComponent(stem) } ?? stem)
        }
    }

    func separateCodes(_ codes: String, _ list: [Prompt]) throws {
        guard FileManager.default.fileExists(atPath: codes) else { throw CLIError("codes file not found: \(codes)") }
        if path != "spectral" && path != "codec" { throw CLIError("unknown --path '\(path)'; use spectral or codec") }
        if codecPath.codebooks != nil {
            throw CLIError("--codebooks applies to audio input (--path codec); a codes file keeps its own codebook count")
        }
        if plot && !decode { throw CLIError("--plot needs audio outputs: add --decode") }
        let (codecHandle, maskerHandle) = try codecPath.open()
        for w in Prompt.warnings(for: list) { printError(w) }
        let dir = output ?? ((codes as NSString).lastPathComponent as NSString).deletingPathExtension
        let r = try CodesSeparation.separateFile(input: codes, outputDirectory: dir, prompts: list, codec: codecHandle,
                                                 masker: maskerHandle, decode: decode, float32: float32)
        report(r)
        try writePlot(dir, mixture: nil, outputs: r.audio, names: Prompt.outputNames(for: list))
    }

    /// With `--plot`, writes and prints `DIR/spectrograms.png`: the mixture (when there is audio of it) and the outputs.
    func writePlot(_ dir: String, mixture: String?, outputs: [String], names: [String]) throws {
        guard plot else { return }
        let png = (dir as NSString).appendingPathComponent("spectrograms.png")
        let files = (mixture.map { [$0] } ?? []) + outputs
        let labels = (mixture == nil ? [] : ["mixture"]) + names
        try SpectrogramPlot.plotFiles(files, labels: labels, output: png)
        print(png)
    }

    func report(_ r: CodesSeparationReport) {
        for path in r.codes { print(path) }
        for (path, clipped) in zip(r.audio, r.clippedSamples) {
            print(path)
            if clipped > 0 { printError("warning: \(clipped) samples clipped in \(path); use --float to keep them") }
        }
        if !quiet {
            printError(String(format: "separated %lld frames (%.1f s of audio) in %.2f s (%.0fx real time)",
                              r.frames, r.seconds, r.wallSeconds, r.seconds / max(r.wallSeconds, 1e-9)))
        }
    }

    func separateSpectral(_ input: String, _ list: [Prompt], _ dir: String, _ separator: SpectralSeparator) throws {
        let report = try separator.separateFile(input: input, prompts: list, outputDirectory: dir)
        for (path, clipped) in zip(report.outputs, report.clippedSamples) {
            print(path)
            if clipped > 0 { printError("warning: \(clipped) samples clipped in \(path); use --float to keep them") }
        }
        try writePlot(dir, mixture: input, outputs: report.outputs, names: report.names)
        if !quiet {
            printError(String(format: "separated %.1f s of audio in %.1f s (%.2fx real time)",
                              report.inputSeconds, report.wallSeconds, report.inputSeconds / max(report.wallSeconds, 1e-9)))
        }
    }
}

struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Describe a codes file (.bin), a weights file (.pth, .safetensors, official release directory) or an audio file.")

    @Argument(help: "The file or directory to describe.")
    var file: String

    @Flag(help: "Print JSON.")
    var json = false

    @Flag(help: "For codes files: include every code (an array per codebook, per channel).")
    var dumpCodes = false

    func run() throws {
        try reportingErrors {
            if Self.isCodesFile(file) {
                print(try CodecPipeline.describe(file, json: json, dumpCodes: dumpCodes))
                return
            }
            if Self.isAudioFile(file) {
                let audio = try AudioDescription(path: file)
                print(json ? audio.json : audio.text)
                return
            }
            let description = ModelDescription(try ModelFile.open(file))
            print(json ? description.json : description.text)
        }
    }

    /// Audio is recognised by its first bytes, not its name, so a weights file is never mistaken for it.
    static func isAudioFile(_ path: String) -> Bool {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue,
              let handle = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? handle.close() }
        let head = [UInt8]((try? handle.read(upToCount: 12)) ?? Data())
        guard head.count >= 4 else { return false }
        let magic = String(decoding: head[0..<4], as: UTF8.self)
        // RIFF/RIFX (WAV), FORM (AIFF), fLaC, OggS, caff, RF64, .snd (AU), MP3 with an ID3 tag or a frame sync.
        if ["RIFF", "RIFX", "FORM", "fLaC", "OggS", "caff", "RF64", ".snd"].contains(magic) { return true }
        if head[0] == 0x49, head[1] == 0x44, head[2] == 0x33 { return true }
        return head[0] == 0xFF && head[1] & 0xE0 == 0xE0
    }

    static func isCodesFile(_ path: String) -> Bool {
        guard let handle = FileHandle(forReadingAtPath: path) else { return path.hasSuffix(".bin") }
        defer { try? handle.close() }
        let magic = (try? handle.read(upToCount: 8)) ?? Data()
        return magic == Data("TUSSCODE".utf8) || path.hasSuffix(".bin")
    }
}

/// Resolves `--codec` (default: the embedded codec).
func openCodec(_ path: String?) throws -> CodecHandle {
    try CodecHandle.open(path ?? DefaultModels.path(DefaultModels.codec, what: "codec"))
}

struct Encode: ComputeCommand {
    static let configuration = CommandConfiguration(
        abstract: "Encode audio into a codes file with the neural codec (or into Ogg Opus with --codec opus).")

    @Argument(help: "Input audio (any rate and channel count).")
    var input: String

    @Option(name: .shortAndLong, help: "Output codes file (.bin), or .opus with --codec opus.")
    var output: String

    @Option(help: "Codec weights (.pth or .safetensors; default: the embedded codec), or 'opus' for the libopus baseline.")
    var codec: String?

    @Option(help: "Codebooks to use (fewer = lower bitrate).")
    var codebooks: Int?

    @Option(help: "Target bitrate in kbps (chooses the codebook count; required with --codec opus).")
    var bitrate: Double?

    @Flag(help: "No progress output.")
    var quiet = false

    @OptionGroup var compute: ComputeOptions

    func execute() throws {
        guard FileManager.default.fileExists(atPath: input) else { throw CLIError("input not found: \(input)") }
        if codebooks != nil && bitrate != nil { throw CLIError("give --codebooks or --bitrate, not both") }
        if let codebooks, codebooks < 1 { throw CLIError("--codebooks must be at least 1") }
        if let bitrate, !(bitrate > 0) { throw CLIError("--bitrate must be a positive number of kbps") }
        if codec == "opus" {
            guard let bitrate else { throw CLIError("--codec opus needs --bitrate KBPS") }
            let r = try CodecPipeline.encodeOpus(input: input, output: output, kbps: bitrate)
            print(output)
            if !quiet { printError(String(format: "%.2f s of audio → %lld bytes (%.2f kbps)", r.seconds, r.bytes, r.kbps)) }
            return
        }
        let handle = try openCodec(codec)
        let n = bitrate.map { handle.codebooks(forBitrate: $0) } ?? codebooks
        let r = try CodecPipeline.encodeFile(input: input, output: output, codec: handle, codebooks: n, quiet: quiet)
        print(output)
        if !quiet {
            printError(String(format: "%.2f s of audio → %lld bytes, %d codebooks (%.2f kbps), %.2fx real time",
                              r.seconds, r.bytes, r.codebooks, r.kbps, r.seconds / max(r.wallSeconds, 1e-9)))
        }
    }
}

struct Decode: ComputeCommand {
    static let configuration = CommandConfiguration(abstract: "Decode a codes file (or an Ogg Opus file) into audio.")

    @Argument(help: "Input codes file (.bin) or .opus file.")
    var input: String

    @Option(name: .shortAndLong, help: "Output audio file (format from the extension: .wav, .flac, …).")
    var output: String

    @Option(help: "Codec weights (default: the embedded codec); must be the codec that encoded the file.")
    var codec: String?

    @Option(help: "Decode with only the first N codebooks.")
    var codebooks: Int?

    @Flag(name: .customLong("float"), help: "Write 32-bit float.")
    var float32 = false

    @Flag(help: "No progress output.")
    var quiet = false

    @OptionGroup var compute: ComputeOptions

    func execute() throws {
        guard FileManager.default.fileExists(atPath: input) else { throw CLIError("input not found: \(input)") }
        if let codebooks, codebooks < 1 { throw CLIError("--codebooks must be at least 1") }
        if input.hasSuffix(".opus") || input.hasSuffix(".ogg") {
            let decoded = try OpusFiles.decode(input, to: output, float32: float32)
            print(decoded)
            return
        }
        let handle = try openCodec(codec)
        let r = try CodecPipeline.decodeFile(input: input, output: output, codec: handle, codebooks: codebooks,
                                             float32: float32, quiet: quiet)
        print(output)
        if r.clippedSamples > 0 { printError("warning: \(r.clippedSamples) samples clipped in \(output); use --float to keep them") }
    }
}

struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert an official TUSS release directory or DAC .pth into one safetensors file.")

    @Argument(help: "Official release directory, or a .pth file.")
    var input: String

    @Option(name: .shortAndLong, help: "Output .safetensors path.")
    var output: String

    func run() throws {
        try reportingErrors {
            guard output.hasSuffix(".safetensors") else { throw CLIError("the output must end in .safetensors") }
            let file = try ModelFile.open(input)
            try ModelConverter.convert(file, to: output)
            print(output)
        }
    }
}

struct Bench: ComputeCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure throughput: kernels, the TUSS forward, the codec, the codec-path masker.",
        discussion: "Figures are printed next to the sgemm peak measured in the same run.")

    @Argument(help: "What to measure: kernels, tuss, codec or masker.")
    var target: String

    @Option(help: "TUSS model for 'tuss' (default: ../shared/reference/tuss-medium if present, else the embedded model).")
    var model: String?

    @Option(help: "Codec weights for 'codec' (repeatable; default: the official 16 kHz and 44.1 kHz sizes with random weights).")
    var codec: [String] = []

    @Option(help: "Masker for 'masker' (default: a random-weight masker of the default size for --codec's latent, else 256 channels).")
    var masker: String?

    @Option(help: "Comma-separated prompts for 'tuss' (default speech,sfx-mix,music-mix) and 'masker' (default speech).")
    var prompts: String?

    @Option(help: "Seconds of audio per run.")
    var seconds: Double?

    @OptionGroup var compute: ComputeOptions

    func execute() throws {
        switch target {
        case "kernels":
            print(Benchmarks.kernels())
        case "tuss":
            let path = try model ?? Self.sharedReference("tuss-medium") ?? DefaultModels.path(DefaultModels.separator, what: "separation model")
            let tuss = try ModelFile.open(path).tussModel()
            print("model: \(path)")
            print(try Benchmarks.tuss(tuss, seconds: seconds ?? 6, prompts: Prompt.parseList(prompts ?? "speech,sfx-mix,music-mix")))
        case "masker":
            try benchMasker()
        case "codec":
            if codec.isEmpty {
                // The official 16 kHz and 44.1 kHz DAC sizes, with random weights (timing does not depend on them).
                let official = [
                    ("official DAC 16 kHz size (random weights)", DACConfig(encoderDim: 64, encoderRates: [2, 4, 5, 8], latentDim: nil, decoderDim: 1536,
                                                             decoderRates: [8, 5, 4, 2], codebooks: 12, codebookSize: 1024, codebookDim: 8, sampleRate: 16000)),
                    ("official DAC 44.1 kHz size (random weights)", DACConfig(encoderDim: 64, encoderRates: [2, 4, 8, 8], latentDim: nil, decoderDim: 1536,
                                                               decoderRates: [8, 8, 4, 2], codebooks: 9, codebookSize: 1024, codebookDim: 8, sampleRate: 44100)),
                ]
                for (label, config) in official {
                    print(Benchmarks.codec(try DACCodec(randomWeightsFor: config), seconds: seconds ?? 10, label: label))
                }
            }
            for p in codec {
                let dac = try ModelFile.open(p).dacCodec()
                print(Benchmarks.codec(dac, seconds: seconds ?? 10, label: p))
            }
        default:
            throw CLIError("unknown bench target '\(target)'; use kernels, tuss, codec or masker")
        }
    }

    func benchMasker() throws {
        guard codec.count <= 1 else { throw CLIError("bench masker takes at most one --codec") }
        let list = try Prompt.parseList(prompts ?? "speech")
        let handle = try codec.first.map { path throws(PipelineError) in try CodecHandle.open(path) }
        let frameRate = handle?.codec.config.frameRate ?? 50
        let latent: LatentMasker, label: String
        if let masker {
            let m = try MaskerHandle.open(masker)
            if let handle { try m.requireCodec(handle) }
            latent = m.masker
            label = masker
        } else {
            let config = LatentMaskerConfig(latentDim: handle?.codec.config.latentDim ?? 256, prompts: Prompt.all.map(\.name),
                                            codecName: "random", codecHash: String(repeating: "0", count: 64))
            latent = try LatentMasker(randomWeightsFor: config)
            label = "default masker size (random weights)"
        }
        print(Benchmarks.masker(latent, label: label, frameRate: frameRate, seconds: seconds ?? 60, prompts: list,
                                quantizer: handle?.codec.quantizer, codebooks: handle?.codec.config.codebooks ?? 0))
    }

    static func sharedReference(_ relative: String) -> String? {
        guard let root = DefaultModels.root() else { return nil }
        let path = ((root as NSString).appendingPathComponent("../shared/reference") as NSString).appendingPathComponent(relative)
        return FileManager.default.fileExists(atPath: path) ? (path as NSString).standardizingPath : nil
    }
}

struct Eval: ComputeCommand {
    static let configuration = CommandConfiguration(
        abstract: "Separate every mixture of a manifest and score the outputs (SI-SDR, SI-SDRi, SDR, mel, SIR, SAR).",
        discussion: """
            Repeated prompts are scored permutation-invariantly. Scores are capped at ±100 dB. SIR and SAR are \
            BSS Eval's (512-tap distortion filters, as mir_eval): SIR tells how much of the other sources an \
            output holds, SAR its artifacts, which include a codec's waveform error.
            """)

    @Option(help: "The manifest: a JSON array of {task, item, mixture, prompts, references}, paths relative to it.")
    var manifest: String

    @Option(help: """
        Separation path: spectral, codec (encode, mask the codes, decode), both (SI-SDRi side by side), \
        codec-oracle (each reference through the codec alone: the codec path's ceiling, masker not run), or \
        codec-passthrough (the mixture through the codec alone for every prompt: what the masker starts from).
        """)
    var path: String = "spectral"

    @Option(help: "TUSS model (default: the embedded model).")
    var model: String?

    @OptionGroup var codecPath: CodecPathOptions

    @Option(help: "Only these tasks (comma-separated, e.g. se,ss).")
    var tasks: String?

    @Option(help: "Write every per-item score to this JSON file.")
    var json: String?

    @Option(help: "Chunk length in seconds.")
    var chunk: Double?

    @Flag(help: "Spectral path: score the outputs after sharing out what they miss so they sum to the mixture (as separate --sum-to-mix).")
    var sumToMix = false

    @Option(help: "Spectral path: passes per chunk on shifted input, averaged (as separate --shifts).")
    var shifts: Int = 1

    @Flag(help: "No progress output.")
    var quiet = false

    @OptionGroup var compute: ComputeOptions

    func execute() throws {
        guard ["spectral", "codec", "both", "codec-oracle", "codec-passthrough"].contains(path) else {
            throw CLIError("unknown --path '\(path)'; use spectral, codec, both, codec-oracle or codec-passthrough")
        }
        if sumToMix && path != "spectral" && path != "both" {
            throw CLIError("--sum-to-mix applies to the spectral path (--path spectral or both)")
        }
        if shifts != 1 && path != "spectral" && path != "both" {
            throw CLIError("--shifts applies to the spectral path (--path spectral or both)")
        }
        let selected = tasks.map { Set($0.split(separator: ",").map(String.init)) }
        let progress: (Int, Int) -> Void = { done, total in
            if !quiet && isatty(STDERR_FILENO) == 1 {
                FileHandle.standardError.write(Data("\revaluating \(done)/\(total)".utf8))
                if done == total { FileHandle.standardError.write(Data("\n".utf8)) }
            }
        }
        // The oracle and the passthrough run the codec alone, so they need no masker (nor one trained for this codec):
        // a codec still in training can be scored against the shipped one.
        var codecSeparator: CodecPathSeparator?
        var oracleCodec: CodecHandle?
        if path == "codec-oracle" || path == "codec-passthrough" {
            oracleCodec = try codecPath.openCodecOnly()
        } else if path != "spectral" {
            let (codecHandle, maskerHandle) = try codecPath.open()
            codecSeparator = try CodecPathSeparator(codec: codecHandle, masker: maskerHandle, codebooks: codecPath.codebooks)
        }
        var spectralScores: [EvaluationScore] = [], codecScores: [EvaluationScore] = []
        if path == "spectral" || path == "both" {
            let modelPath = try model ?? DefaultModels.path(DefaultModels.separator, what: "separation model")
            let separator = try SpectralSeparator(model: try ModelFile.open(modelPath).tussModel(),
                                                  options: SeparationOptions(chunkSeconds: chunk, quiet: true,
                                                                             remainder: sumToMix ? .spread : .ignored,
                                                                             shifts: shifts))
            spectralScores = try Evaluation.run(manifest: manifest, separator: separator, tasks: selected, progress: progress)
        }
        if let oracleCodec, path == "codec-passthrough" {
            codecScores = try Evaluation.runCodecPassthrough(manifest: manifest, codec: oracleCodec, codebooks: codecPath.codebooks,
                                                             tasks: selected, progress: progress)
        } else if let oracleCodec {
            codecScores = try Evaluation.runCodecOracle(manifest: manifest, codec: oracleCodec, codebooks: codecPath.codebooks,
                                                        tasks: selected, progress: progress)
        } else if let codecSeparator {
            codecScores = try Evaluation.run(manifest: manifest, separator: codecSeparator, tasks: selected, progress: progress)
        }
        let scores = spectralScores + codecScores
        if path == "both" {
            print("spectral path:")
            print(Evaluation.table(spectralScores))
            print("codec path:")
            print(Evaluation.table(codecScores))
            print("SI-SDRi side by side:")
            print(Evaluation.comparisonTable(spectral: spectralScores, codec: codecScores))
        } else {
            print(Evaluation.table(scores))
        }
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            let data = try encoder.encode(scores)
            try data.write(to: URL(fileURLWithPath: json), options: .atomic)
        }
    }
}

struct Plot: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a PNG of the log-magnitude spectrograms of audio files, stacked and labelled.")

    @Argument(help: "Audio files (the first channel of each is plotted).")
    var files: [String]

    @Option(name: .shortAndLong, help: "Output PNG path.")
    var output: String

    func run() throws {
        try reportingErrors {
            guard !files.isEmpty else { throw CLIError("give at least one audio file") }
            guard output.hasSuffix(".png") else { throw CLIError("the output must end in .png") }
            try SpectrogramPlot.plotFiles(files, output: output)
            print(output)
        }
    }
}
