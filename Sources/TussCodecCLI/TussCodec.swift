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
        subcommands: [Separate.self, Encode.self, Decode.self, Eval.self, Plot.self, Info.self, Convert.self, Bench.self,
                      Serve.self, StreamCommand.self]
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

struct Separate: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Separate an audio file into one file per prompt.")

    @Argument(help: "Input audio (WAV, FLAC, Ogg Vorbis/Opus, MP3, AIFF; any rate and channel count).")
    var input: String

    @Option(help: "Comma-separated prompts, e.g. speech,sfx-mix or vocals,other or speech,speech.")
    var prompts: String

    @Option(help: "TUSS model: an official release directory, a .pth beside hparams.yaml, or a .safetensors file (default: the embedded model).")
    var model: String?

    @Option(name: .shortAndLong, help: "Output folder (default: a folder named after the input, in the current directory).")
    var output: String?

    @Flag(name: .customLong("float"), help: "Write 32-bit float files.")
    var float32 = false

    @Option(help: "Chunk length in seconds (default: the model's training segment, 6 s for TUSS).")
    var chunk: Double?

    @Option(help: "Overlap between chunks in seconds, cross-faded.")
    var overlap: Double = 1

    @Flag(help: "No progress output.")
    var quiet = false

    @Flag(help: "Also write DIR/spectrograms.png: the mixture and every output, stacked and labelled.")
    var plot = false

    @OptionGroup var compute: ComputeOptions

    func run() throws {
        try reportingErrors {
            try compute.apply()
            let list = try Prompt.parseList(prompts)
            guard FileManager.default.fileExists(atPath: input) else { throw CLIError("input not found: \(input)") }
            let modelPath = try model ?? DefaultModels.path(DefaultModels.separator, what: "separation model")
            let tuss = try ModelFile.open(modelPath).tussModel()
            let separator = try SpectralSeparator(model: tuss, options: SeparationOptions(
                chunkSeconds: chunk, overlapSeconds: overlap, float32: float32, quiet: quiet))
            for w in Prompt.warnings(for: list) { printError(w) }
            let stem = ((input as NSString).lastPathComponent as NSString).deletingPathExtension
            let dir = output ?? stem
            let report = try separator.separateFile(input: input, prompts: list, outputDirectory: dir)
            for (path, clipped) in zip(report.outputs, report.clippedSamples) {
                print(path)
                if clipped > 0 { printError("warning: \(clipped) samples clipped in \(path); use --float to keep them") }
            }
            if plot {
                let png = (dir as NSString).appendingPathComponent("spectrograms.png")
                let names = ["mixture"] + Prompt.outputNames(for: list)
                try SpectrogramPlot.plotFiles([input] + report.outputs, labels: names, output: png)
                print(png)
            }
            if !quiet {
                printError(String(format: "separated %.1f s of audio in %.1f s (%.2fx real time)",
                                  report.inputSeconds, report.wallSeconds, report.inputSeconds / max(report.wallSeconds, 1e-9)))
            }
        }
    }
}

struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Describe a codes file (.bin) or a weights file (.pth, .safetensors, official release directory).")

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
            let description = ModelDescription(try ModelFile.open(file))
            print(json ? description.json : description.text)
        }
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

struct Encode: ParsableCommand {
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

    func run() throws {
        try reportingErrors {
            try compute.apply()
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
}

struct Decode: ParsableCommand {
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

    func run() throws {
        try reportingErrors {
            try compute.apply()
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

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure throughput: kernels, the TUSS forward, the codec.",
        discussion: "Figures are printed next to the sgemm peak measured in the same run.")

    @Argument(help: "What to measure: kernels, tuss or codec.")
    var target: String

    @Option(help: "TUSS model for 'tuss' (default: ../shared/reference/tuss-medium if present, else the embedded model).")
    var model: String?

    @Option(help: "Codec weights for 'codec' (repeatable; default: the official 16 kHz and 44.1 kHz sizes with random weights).")
    var codec: [String] = []

    @Option(help: "Comma-separated prompts for 'tuss'.")
    var prompts: String = "speech,sfx-mix,music-mix"

    @Option(help: "Seconds of audio per run.")
    var seconds: Double?

    @OptionGroup var compute: ComputeOptions

    func run() throws {
        try reportingErrors {
            try compute.apply()
            switch target {
            case "kernels":
                print(Benchmarks.kernels())
            case "tuss":
                let path = try model ?? Self.sharedReference("tuss-medium") ?? DefaultModels.path(DefaultModels.separator, what: "separation model")
                let tuss = try ModelFile.open(path).tussModel()
                print("model: \(path)")
                print(try Benchmarks.tuss(tuss, seconds: seconds ?? 6, prompts: Prompt.parseList(prompts)))
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
                throw CLIError("unknown bench target '\(target)'; use kernels, tuss or codec")
            }
        }
    }

    static func sharedReference(_ relative: String) -> String? {
        guard let root = DefaultModels.root() else { return nil }
        let path = ((root as NSString).appendingPathComponent("../shared/reference") as NSString).appendingPathComponent(relative)
        return FileManager.default.fileExists(atPath: path) ? (path as NSString).standardizingPath : nil
    }
}

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Separate every mixture of a manifest and score the outputs (SI-SDR, SI-SDRi, SDR).",
        discussion: "Repeated prompts are scored permutation-invariantly. Scores are capped at ±100 dB.")

    @Option(help: "The manifest: a JSON array of {task, item, mixture, prompts, references}, paths relative to it.")
    var manifest: String

    @Option(help: "Separation path. Only 'spectral' is available until the latent masker lands.")
    var path: String = "spectral"

    @Option(help: "TUSS model (default: the embedded model).")
    var model: String?

    @Option(help: "Only these tasks (comma-separated, e.g. se,ss).")
    var tasks: String?

    @Option(help: "Write every per-item score to this JSON file.")
    var json: String?

    @Option(help: "Chunk length in seconds.")
    var chunk: Double?

    @Flag(help: "No progress output.")
    var quiet = false

    @OptionGroup var compute: ComputeOptions

    func run() throws {
        try reportingErrors {
            try compute.apply()
            guard path == "spectral" else {
                throw CLIError("--path \(path) is not available: the codec-path masker is not built yet; use --path spectral")
            }
            let modelPath = try model ?? DefaultModels.path(DefaultModels.separator, what: "separation model")
            let separator = try SpectralSeparator(model: try ModelFile.open(modelPath).tussModel(),
                                                  options: SeparationOptions(chunkSeconds: chunk, quiet: true))
            let selected = tasks.map { Set($0.split(separator: ",").map(String.init)) }
            let scores = try Evaluation.run(manifest: manifest, separator: separator, tasks: selected) { done, total in
                if !quiet && isatty(STDERR_FILENO) == 1 {
                    FileHandle.standardError.write(Data("\revaluating \(done)/\(total)".utf8))
                    if done == total { FileHandle.standardError.write(Data("\n".utf8)) }
                }
            }
            print(Evaluation.table(scores))
            if let json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                let data = try encoder.encode(scores)
                try data.write(to: URL(fileURLWithPath: json), options: .atomic)
            }
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
