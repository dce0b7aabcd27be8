import ArgumentParser
import Foundation
import TussModels
import TussPipeline
import TussServer

/// Runs an async body from a synchronous command and waits for it (the root command is synchronous).
func runBlocking(_ body: @escaping @Sendable () async throws -> Void) throws {
    let done = DispatchSemaphore(value: 0)
    let failure = ErrorBox()
    Task {
        do { try await body() } catch { failure.error = error }
        done.signal()
    }
    done.wait()
    if let error = failure.error { throw error }
}

/// Carries an error out of the task `runBlocking` waits for (written before the semaphore is signalled).
final class ErrorBox: @unchecked Sendable {
    var error: Error?
}

struct Serve: ComputeCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the separation server: POST /v1/separate, WebSocket /v1/stream, /healthz, /metrics.",
        discussion: "Models are loaded once at start. SIGTERM drains open streams, then stops. Protocol: docs/protocol.md.")

    @Option(help: "Address to bind.")
    var host = "127.0.0.1"

    @Option(help: "Port to bind (0 picks a free one; the bound port is printed).")
    var port = 8080

    @Option(help: "TUSS model for the spectral path (default: the embedded model).")
    var model: String?

    @Option(help: "Codec for the codec path (default: the embedded codec, when present).")
    var codec: String?

    @Option(help: "Latent masker for the codec path (default: the embedded masker, when present).")
    var masker: String?

    @Option(help: "Most WebSocket streams at once.")
    var maxStreams = 64

    @Option(help: "Largest request body in MiB.")
    var maxBody = 64.0

    @Option(help: "Most prompts per request or stream.")
    var maxPrompts = 8

    @Option(help: "Seconds a stream may stay silent before it is closed.")
    var idleTimeout = 30.0

    @Option(help: "Seconds SIGTERM waits for open streams to finish.")
    var drainTimeout = 30.0

    @Option(help: "Spectral path: passes per chunk on shifted input, averaged, as separate --shifts (N times the compute per request).")
    var shifts = 1

    @Flag(help: "Log every request.")
    var verbose = false

    @OptionGroup var compute: ComputeOptions

    func execute() throws {
        let limits = ServerLimits(maxBodyBytes: Int(maxBody * 1024 * 1024), maxPrompts: maxPrompts, maxStreams: maxStreams,
                                  idleSeconds: idleTimeout)
        try limits.validate()
        let modelPath = try model ?? DefaultModels.path(DefaultModels.separator, what: "separation model")
        let spectral = try SpectralSeparator(model: try ModelFile.open(modelPath).tussModel(),
                                             options: SeparationOptions(quiet: true, shifts: shifts))
        let codecHandle = try codec.map { try CodecHandle.open($0) }
            ?? (try? CodecHandle.open(DefaultModels.path(DefaultModels.codec, what: "codec")))
        if codecHandle == nil { printError("warning: no codec loaded (pass --codec): only the spectral path is served") }
        let maskerHandle = try openMasker(masker, codec: codecHandle)
        if maskerHandle == nil, codecHandle != nil { printError("warning: no masker loaded (pass --masker): codes cannot be separated") }
        let engine = try SeparationEngine(spectral: spectral, codec: codecHandle, masker: maskerHandle)
        let server = try SeparationServer(engine: engine, limits: limits, drainSeconds: drainTimeout)
        let host = self.host, port = self.port, verbose = self.verbose
        try runBlocking {
            try await server.run(host: host, port: port, verbose: verbose) { bound in
                FileHandle.standardOutput.write(Data("listening on http://\(host):\(bound)\n".utf8))
            }
        }
    }
}
