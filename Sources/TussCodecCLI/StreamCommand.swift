import ArgumentParser
import Foundation
import TussPipeline
import TussServer

struct StreamCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stream",
        abstract: "Stream audio (or a codes file) to a tuss-codec server and write the separated outputs.",
        discussion: """
        Audio is read in chunks of --chunk seconds, encoded here with --codec (or sent as Ogg Opus with
        --transport opus), streamed over a WebSocket, and the separated codes are written as they arrive, then decoded.
        Prints upstream and downstream kbps and per-frame latency (p50/p95).
        """)

    @Argument(help: "Input audio, or a codes file (.bin) to stream as it is.")
    var input: String

    @Option(help: "Server URL, e.g. ws://127.0.0.1:8080.")
    var server: String

    @Option(help: "Comma-separated prompts.")
    var prompts: String

    @Option(name: .shortAndLong, help: "Output folder (default: a folder named after the input).")
    var output: String?

    @Option(help: "Codec that encodes (codes transport) and decodes the outputs (default: the embedded codec).")
    var codec: String?

    @Option(help: "codes (encode here) or opus (send Ogg Opus; the server encodes).")
    var transport = "codes"

    @Option(help: "Seconds of audio per message.")
    var chunk = 0.2

    @Flag(help: "Send no faster than real time, as a live source would.")
    var realtime = false

    @Option(help: "Codebooks to send (fewer = lower upstream bitrate).")
    var codebooks: Int?

    @Option(help: "Opus bitrate in kbps for --transport opus.")
    var opusKbps = 16.0

    @Option(help: "Give up when the server has sent nothing for this many seconds (1-86400).")
    var replyTimeout = 60.0

    @Option(help: "Run this many streams at once (a load test: outputs go to DIR/stream-N).")
    var parallel = 1

    @Flag(help: "Do not decode the separated codes to audio.")
    var noDecode = false

    @Flag(help: "Print the measurements as JSON.")
    var json = false

    func run() throws {
        try reportingErrors {
            guard FileManager.default.fileExists(atPath: input) else { throw CLIError("input not found: \(input)") }
            guard let mode = StreamControl.Transport(rawValue: transport) else { throw CLIError("--transport must be codes or opus") }
            guard (1...1024).contains(parallel) else { throw CLIError("--parallel must be in 1...1024") }
            if let codebooks, codebooks < 1 { throw CLIError("--codebooks must be at least 1") }
            let needsCodec = (!noDecode || mode == .codes) && !isCodesInput
            let handle = needsCodec || (!noDecode && codec != nil) ? try openCodec(codec) : nil
            let stem = ((input as NSString).lastPathComponent as NSString).deletingPathExtension
            let dir = output ?? stem
            var base = EdgeStreamOptions(input: input, server: server, prompts: prompts.split(separator: ",").map(String.init),
                                         outputDirectory: dir)
            base.transport = mode
            base.chunkSeconds = chunk
            base.realTime = realtime
            base.codebooks = codebooks
            base.opusKbps = opusKbps
            base.replyTimeout = replyTimeout
            let count = parallel, decode = !noDecode, options = base
            let reports = ReportBox()
            let started = Date()
            try runBlocking {
                try await withThrowingTaskGroup(of: EdgeStreamReport.self) { group in
                    for i in 0..<count {
                        var options = options
                        if count > 1 { options.outputDirectory = (dir as NSString).appendingPathComponent("stream-\(i)") }
                        group.addTask { try await EdgeStreamClient.run(options, codec: handle, decode: decode) }
                    }
                    for try await report in group { reports.append(report) }
                }
            }
            let wall = Date().timeIntervalSince(started)
            let summary = StreamSummary(reports.all, wallSeconds: wall)
            if json {
                print(summary.json)
            } else {
                if let first = reports.all.first, count == 1 {
                    for path in first.codesFiles + first.audioFiles { print(path) }
                }
                print(summary.text)
            }
            if summary.lostFrames != 0 { throw CLIError("\(summary.lostFrames) frames were lost") }
        }
    }

    private var isCodesInput: Bool {
        guard let handle = FileHandle(forReadingAtPath: input) else { return false }
        defer { try? handle.close() }
        return (try? handle.read(upToCount: 8)) == Data("TUSSCODE".utf8)
    }
}

/// Collects the reports of parallel streams.
final class ReportBox: @unchecked Sendable {
    private let lock = NSLock()
    private var reports: [EdgeStreamReport] = []
    func append(_ report: EdgeStreamReport) { lock.withLock { reports.append(report) } }
    var all: [EdgeStreamReport] { lock.withLock { reports } }
}

/// Bandwidth, latency and completeness over one or more streams.
struct StreamSummary {
    let streams: Int
    let audioSeconds: Double
    let wallSeconds: Double
    let upKbps: Double
    let downKbps: Double
    let p50: Double, p95: Double, p99: Double
    let framesSent: Int64
    let framesReceived: Int64
    let lostFrames: Int64

    init(_ reports: [EdgeStreamReport], wallSeconds: Double) {
        streams = reports.count
        self.wallSeconds = wallSeconds
        audioSeconds = reports.map(\.audioSeconds).reduce(0, +)
        let n = Double(max(1, reports.count))
        upKbps = reports.map(\.upKbps).reduce(0, +) / n
        downKbps = reports.map(\.downKbps).reduce(0, +) / n
        var all = EdgeStreamReport()
        all.latenciesMs = reports.flatMap(\.latenciesMs)
        p50 = all.latencyQuantile(0.5)
        p95 = all.latencyQuantile(0.95)
        p99 = all.latencyQuantile(0.99)
        framesSent = reports.map(\.framesSent).reduce(0, +)
        framesReceived = reports.map { $0.framesReceived.first ?? 0 }.reduce(0, +)
        // Every output must carry every frame sent (the opus transport sends audio, so there frames are not counted).
        lostFrames = reports.map { r in r.framesSent == 0 ? 0 : r.framesReceived.map { r.framesSent - $0 }.reduce(0, +) }.reduce(0, +)
    }

    var text: String {
        var lines = [
            String(format: "upstream: %.2f kbps, downstream: %.2f kbps (per stream, payload per second of audio)", upKbps, downKbps),
            String(format: "frame latency: p50 %.1f ms, p95 %.1f ms, p99 %.1f ms", p50, p95, p99),
            "frames: \(framesSent) sent, \(framesReceived) received per output, \(lostFrames) lost",
        ]
        if streams > 1 {
            lines.append(String(format: "%d streams, %.1f s of audio in %.1f s (%.2fx real time in total)", streams, audioSeconds,
                                wallSeconds, audioSeconds / max(wallSeconds, 1e-9)))
        }
        return lines.joined(separator: "\n")
    }

    var json: String {
        let object: [String: Any] = [
            "streams": streams, "audio_seconds": audioSeconds, "wall_seconds": wallSeconds, "up_kbps": upKbps,
            "down_kbps": downKbps, "latency_ms_p50": p50, "latency_ms_p95": p95, "latency_ms_p99": p99,
            "frames_sent": framesSent, "frames_received": framesReceived, "lost_frames": lostFrames,
        ]
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }
}
