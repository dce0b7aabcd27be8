import ArgumentParser
import Foundation
import TussPipeline

/// `tuss-codec eval-codec`: the neural codec next to Opus at equal bitrates, on the evaluation set's clean sources.
struct EvalCodec: ComputeCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval-codec",
        abstract: "Code every clean reference of a manifest with the neural codec and with Opus; score SI-SDR and mel distance.",
        discussion: """
        Each bitrate picks the neural codec's codebook count (bits per codebook × frame rate) and Opus's target rate.
        Opus's figure includes its Ogg container; the neural figure is the code payload. Mel distance is the
        multi-scale log-mel L1 the codec recipe trains on (lower is better).
        """)

    @Option(help: "The manifest: a JSON array of {task, item, mixture, prompts, references}, paths relative to it.")
    var manifest: String

    @Option(help: "Neural codec weights (default: the embedded codec).")
    var codec: String?

    @Option(help: "Comma-separated bitrates in kbps.")
    var bitrates: String = "2,4,6"

    @Flag(help: "Skip the Opus baseline.")
    var noOpus = false

    @Flag(help: "Skip the neural codec (Opus only).")
    var noNeural = false

    @Option(help: "Only these tasks' references (comma-separated, e.g. se,mss).")
    var tasks: String?

    @Option(help: "Write every per-file score to this JSON file.")
    var json: String?

    @Flag(help: "No progress output.")
    var quiet = false

    @OptionGroup var compute: ComputeOptions

    func execute() throws {
        let rates = try bitrates.split(separator: ",").map { text -> Double in
            guard let v = Double(text.trimmingCharacters(in: .whitespaces)), v > 0 else {
                throw CLIError("--bitrates must be positive numbers of kbps separated by commas, got '\(bitrates)'")
            }
            return v
        }
        if noOpus && noNeural { throw CLIError("--no-opus and --no-neural leave nothing to evaluate") }
        let handle = noNeural ? nil : try openCodec(codec)
        let selected = tasks.map { Set($0.split(separator: ",").map(String.init)) }
        let scores = try CodecEvaluation.run(manifest: manifest, codec: handle, bitrates: rates, opus: !noOpus,
                                             tasks: selected) { done, total in
            if !quiet && isatty(STDERR_FILENO) == 1 {
                FileHandle.standardError.write(Data("\rcoding \(done)/\(total)".utf8))
                if done == total { FileHandle.standardError.write(Data("\n".utf8)) }
            }
        }
        print(CodecEvaluation.table(scores))
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(scores).write(to: URL(fileURLWithPath: json), options: .atomic)
        }
    }
}
