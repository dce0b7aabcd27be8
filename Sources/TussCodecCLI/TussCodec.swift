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
        subcommands: [Separate.self, Info.self, Convert.self, Bench.self]
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
            if !quiet {
                printError(String(format: "separated %.1f s of audio in %.1f s (%.2fx real time)",
                                  report.inputSeconds, report.wallSeconds, report.inputSeconds / max(report.wallSeconds, 1e-9)))
            }
        }
    }
}

struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Describe a weights file (.pth, .safetensors, official release directory).")

    @Argument(help: "The file or directory to describe.")
    var file: String

    @Flag(help: "Print JSON.")
    var json = false

    func run() throws {
        try reportingErrors {
            let description = ModelDescription(try ModelFile.open(file))
            print(json ? description.json : description.text)
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

    @Option(help: "Codec weights for 'codec' (repeatable; default: the reference codecs if present).")
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
                var paths = codec
                if paths.isEmpty {
                    paths = ["dac-tiny-16k/weights.pth", "dac-tiny-44k/weights.pth"].compactMap { Self.sharedReference($0) }
                }
                if paths.isEmpty { paths = [try DefaultModels.path(DefaultModels.codec, what: "codec")] }
                for p in paths {
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
