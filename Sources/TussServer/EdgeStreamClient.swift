import Foundation
import Logging
import NIOCore
import NIOPosix
import Synchronization
import TussAudio
import TussModels
import TussPipeline
import WSClient

/// What the edge client sends and how.
public struct EdgeStreamOptions: Sendable {
    /// The audio file to stream.
    public var input: String
    /// The server's base URL, e.g. `ws://127.0.0.1:8080` (the client appends `/v1/stream`).
    public var server: String
    /// Prompt names.
    public var prompts: [String]
    /// Where the separated codes (`NAME.bin`) and audio (`NAME.wav`) go.
    public var outputDirectory: String
    /// `.codes` (encode on the device) or `.opus` (send one continuous Ogg Opus stream; the server encodes).
    public var transport: StreamControl.Transport = .codes
    /// Audio per message, in seconds.
    public var chunkSeconds = 0.2
    /// Send no faster than real time (as a live source would).
    public var realTime = false
    /// Codebooks to send (codes transport; default all).
    public var codebooks: Int?
    /// Opus bitrate in kbps (opus transport).
    public var opusKbps = 16.0
    /// Give up when the server has sent nothing for this many seconds: a stalled server, or an answer lost on the
    /// way, ends the stream with an error instead of a client that waits forever.
    public var replyTimeout = 60.0

    /// Creates options; the rest keep their defaults.
    public init(input: String, server: String, prompts: [String], outputDirectory: String) {
        self.input = input
        self.server = server
        self.prompts = prompts
        self.outputDirectory = outputDirectory
    }
}

/// What a stream measured.
public struct EdgeStreamReport: Sendable {
    /// Separated codes files, one per prompt, then the decoded audio files (when a codec was given).
    public var codesFiles: [String] = []
    public var audioFiles: [String] = []
    /// Seconds of audio streamed.
    public var audioSeconds = 0.0
    /// Wall time from connecting to the server's `done`.
    public var wallSeconds = 0.0
    /// WebSocket payload bytes sent and received (messages, not TCP overhead).
    public var bytesUp: Int64 = 0
    public var bytesDown: Int64 = 0
    /// Code frames sent (per channel; 0 for the opus transport) and received (per channel, for each output).
    public var framesSent: Int64 = 0
    public var framesReceived: [Int64] = []
    /// Per received frame of the first output: milliseconds from sending the message that carried it (codes) or
    /// the audio that contained it (opus) to receiving its separated frame.
    public var latenciesMs: [Double] = []

    /// An empty report.
    public init() {}

    /// Upstream payload bitrate in kbps of audio time.
    public var upKbps: Double { audioSeconds > 0 ? Double(bytesUp) * 8 / audioSeconds / 1000 : 0 }
    /// Downstream payload bitrate in kbps of audio time (all outputs).
    public var downKbps: Double { audioSeconds > 0 ? Double(bytesDown) * 8 / audioSeconds / 1000 : 0 }

    /// The q-quantile (0…1) of the per-frame latencies, in ms.
    public func latencyQuantile(_ q: Double) -> Double {
        guard !latenciesMs.isEmpty else { return 0 }
        let sorted = latenciesMs.sorted()
        return sorted[min(sorted.count - 1, Int((q * Double(sorted.count - 1)).rounded()))]
    }
}

/// The edge client: reads audio in real-time-sized chunks, encodes it on the device (or sends Ogg Opus), streams
/// it to `/v1/stream`, and writes the separated codes as they arrive (then decodes them).
public enum EdgeStreamClient {
    /// Streams `options.input`; `codec` encodes (codes transport) and decodes the outputs (either transport).
    ///
    /// Each call runs its connection on an event-loop thread of its own and closes it before returning, also when
    /// it gives up (`replyTimeout`) or is cancelled.
    public static func run(_ options: EdgeStreamOptions, codec: CodecHandle?, decode: Bool = true) async throws(ServerError) -> EdgeStreamReport {
        guard options.chunkSeconds > 0, options.chunkSeconds <= 10 else { throw .badConfiguration("--chunk must be in (0, 10] seconds") }
        guard options.replyTimeout >= 1, options.replyTimeout <= 86_400 else {
            throw .badConfiguration("--reply-timeout must be in [1, 86400] seconds")
        }
        let source: UncheckedSource
        let audioSeconds: Double
        if isCodesFile(options.input) {
            guard options.transport == .codes else { throw .badConfiguration("a codes file streams with the codes transport") }
            let reader: CodesReader
            do { reader = try CodesReader(path: options.input) } catch { throw codesError(error) }
            source = UncheckedSource(codes: reader)
            audioSeconds = Double(reader.header.originalLength) / Double(max(1, reader.header.originalSampleRate))
        } else {
            let reader: AudioFileReader
            do { reader = try AudioFileReader(path: options.input) } catch { throw .badRequest("\(error)") }
            if options.transport == .codes, codec == nil { throw .badConfiguration("the codes transport needs --codec (or use --transport opus)") }
            if options.transport == .opus, reader.info.channels > 2 { throw .badConfiguration("the opus transport takes mono or stereo input") }
            source = UncheckedSource(audio: reader)
            audioSeconds = reader.info.duration
        }
        do { try FileManager.default.createDirectory(atPath: options.outputDirectory, withIntermediateDirectories: true) } catch {
            throw .badConfiguration("cannot create \(options.outputDirectory): \(error)")
        }
        let url = options.server.hasSuffix("/v1/stream") ? options.server
            : options.server.trimmingCharacters(in: CharacterSet(charactersIn: "/")) + "/v1/stream"
        let state = ClientState(outputDirectory: options.outputDirectory)
        let started = ContinuousClock.now
        // The stream's own event loop: shutting it down when the call ends closes the socket of a connection the race
        // abandoned (one still waiting for the upgrade does not end on cancellation), so nothing outlives the call.
        let loop = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let outcome: Result<WebSocketCloseFrame?, any Error>
        do {
            // The watchdog runs beside the whole connection, so a server that never answers the upgrade is caught
            // as well as one that goes silent mid-stream.
            outcome = .success(try await racing({
                defer { state.receiving = false }
                return try await WebSocketClient.connect(
                    url: url, configuration: .init(maxFrameSize: 1 << 22), eventLoopGroup: loop,
                    logger: Logger(label: "tuss-codec.stream")
                ) { inbound, outbound, _ in
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        group.addTask { try await send(options, source: source, codec: codec, outbound: outbound, state: state) }
                        group.addTask { try await receive(inbound, state: state) }
                        try await group.waitForAll()
                    }
                }
            }, against: { try await watchReplies(state, timeout: options.replyTimeout, url: url) }))
        } catch {
            outcome = .failure(error)
        }
        try? await loop.shutdownGracefully()
        let close: WebSocketCloseFrame?
        do {
            close = try outcome.get()
        } catch let e as ServerError {
            throw state.serverFailure ?? e
        } catch {
            if let failure = state.serverFailure { throw failure }
            throw .unavailable("the stream to \(url) failed: \(error)")
        }
        if let failure = state.serverFailure { throw failure }
        if let close, close.closeCode != .normalClosure {
            throw .internalError("the server closed the stream with code \(close.closeCode) (\(close.reason ?? "no reason"))")
        }
        var report = try state.report()
        report.wallSeconds = (ContinuousClock.now - started).seconds
        report.audioSeconds = audioSeconds
        if decode, let codec {
            for bin in report.codesFiles {
                let wav = (bin as NSString).deletingPathExtension + ".wav"
                do { _ = try CodecPipeline.decodeFile(input: bin, output: wav, codec: codec, codebooks: nil, float32: true) } catch {
                    throw .internalError("decoding \(bin) failed: \(error)")
                }
                report.audioFiles.append(wav)
            }
        }
        return report
    }

    /// Reads, encodes and sends the input; logs when each piece of audio left.
    private static func send(_ options: EdgeStreamOptions, source: UncheckedSource, codec: CodecHandle?,
                             outbound: WebSocketOutboundWriter, state: ClientState) async throws {
        if let codes = source.codes {
            try await sendCodesFile(options, reader: codes, outbound: outbound, state: state)
            return
        }
        guard let reader = source.audio else { return }
        let info = reader.info
        let start: StreamControl.Start = options.transport == .codes
            ? .init(prompts: options.prompts)
            : .init(prompts: options.prompts, opusSampleRate: info.sampleRate, channels: info.channels, length: info.frames)
        try await sendText(StreamControl.text(start), outbound, state)
        let chunkSamples = max(1, Int(options.chunkSeconds * Double(info.sampleRate)))
        let began = ContinuousClock.now
        var samplesSent: Int64 = 0
        var encoder = options.transport == .codes ? try codec.map {
            CodesSender(try StreamingEncoder(codec: $0, sampleRate: info.sampleRate, channels: info.channels, length: info.frames,
                                             codebooks: options.codebooks))
        } : nil
        let opus = options.transport == .opus
            ? try OpusStreamSender(sampleRate: info.sampleRate, channels: info.channels, length: Int(info.frames), kbps: options.opusKbps)
            : nil
        while true {
            let block = try reader.read(frames: chunkSamples)
            guard let first = block.first, !first.isEmpty else { break }
            samplesSent += Int64(first.count)
            if options.realTime {
                let due = began + .milliseconds(Int64(Double(samplesSent) / Double(info.sampleRate) * 1000))
                if due > ContinuousClock.now { try await Task.sleep(until: due, clock: .continuous) }
            }
            switch options.transport {
            case .codes:
                guard var e = encoder else { break }
                for piece in try e.push(block) { try await sendBinary(piece.bytes, outbound, state, audioEnd: e.seconds(piece.framesEnd)) }
                encoder = e
            case .opus:
                guard let opus else { break }
                let bytes = try opus.push(block)
                // The encoder holds back less than one 20 ms frame; a message is due once it has whole frames.
                if !bytes.isEmpty {
                    try await sendBinary(bytes, outbound, state, audioEnd: Double(samplesSent) / Double(info.sampleRate))
                }
            }
        }
        switch options.transport {
        case .codes:
            guard var e = encoder else { return }
            for piece in try e.finish() { try await sendBinary(piece.bytes, outbound, state, audioEnd: e.seconds(piece.framesEnd)) }
            state.framesSent = e.framesSent
        case .opus:
            if let opus { try await sendBinary(try opus.finish(), outbound, state, audioEnd: .infinity) }
            try await sendText(StreamControl.text(StreamControl.End()), outbound, state)
        }
    }

    /// Streams an already-encoded codes file, re-cut into messages of `chunkSeconds`.
    private static func sendCodesFile(_ options: EdgeStreamOptions, reader: CodesReader, outbound: WebSocketOutboundWriter,
                                      state: ClientState) async throws {
        let header = reader.header
        try await sendText(StreamControl.text(StreamControl.Start(prompts: options.prompts)), outbound, state)
        try await sendBinary(try CodesFraming.header(header), outbound, state, audioEnd: 0)
        let frameSeconds = Double(header.hopLength) / Double(header.sampleRate)
        let perMessage = max(1, Int((options.chunkSeconds / frameSeconds).rounded()))
        let began = ContinuousClock.now
        var range: [CodesChunk] = []
        var index = 0
        var sent: Int64 = 0
        while let chunk = try reader.next() {
            range.append(chunk)
            guard range.count == header.channels else { continue }
            let frames = chunk.frameCount
            for start in stride(from: 0, to: frames, by: perMessage) {
                let end = min(frames, start + perMessage)
                if options.realTime {
                    let due = began + .milliseconds(Int64(Double(sent + Int64(end - start)) * frameSeconds * 1000))
                    if due > ContinuousClock.now { try await Task.sleep(until: due, clock: .continuous) }
                }
                for c in range {
                    let piece = CodesChunk(channel: c.channel, firstFrame: sent, codes: c.codes.map { Array($0[start..<end]) })
                    try await sendBinary(try CodesFraming.chunk(piece, index: index, header: header), outbound, state,
                                         audioEnd: Double(sent + Int64(end - start)) * frameSeconds)
                    index += 1
                }
                sent += Int64(end - start)
            }
            range.removeAll()
        }
        state.framesSent = sent
        try await sendBinary(CodesFraming.end(), outbound, state, audioEnd: 0)
    }

    private static func sendText(_ text: String, _ outbound: WebSocketOutboundWriter, _ state: ClientState) async throws {
        state.addUp(text.utf8.count)
        try await outbound.write(.text(text))
    }

    private static func sendBinary(_ data: Data, _ outbound: WebSocketOutboundWriter, _ state: ClientState, audioEnd: Double) async throws {
        state.logSend(audioEnd: audioEnd)
        state.addUp(data.count)
        var buffer = ByteBuffer()
        buffer.writeBytes(data)
        try await outbound.write(.binary(buffer))
    }

    /// Returns `work`'s result, or `watchdog`'s error as soon as it throws.
    ///
    /// Not a task group: a group waits for every child, and the WebSocket client does not end on cancellation while
    /// it waits for the upgrade response (measured: a silent listener held a group past a 120 s limit). When the
    /// watchdog fires, or the caller is cancelled, `work` is cancelled and left to end when its connection does
    /// (`run` then closes that connection by shutting down the stream's event loop).
    private static func racing<T: Sendable>(_ work: @escaping @Sendable () async throws -> T,
                                            against watchdog: @escaping @Sendable () async throws -> Void) async throws -> T {
        let race = Race()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
                race.hold(Task {
                    do {
                        let value = try await work()
                        if race.claim() { continuation.resume(returning: value) }
                    } catch {
                        if race.claim() { continuation.resume(throwing: error) }
                    }
                })
                // The watchdog also ends the race when the caller is cancelled: its sleep throws.
                race.hold(Task {
                    do { try await watchdog() } catch {
                        if race.claim() { continuation.resume(throwing: error) }
                        race.cancel()
                    }
                })
            }
        } onCancel: {
            race.cancel()
        }
    }

    /// Ends the stream with an error once the server has been silent for `timeout` seconds; returns when the
    /// receiving side has ended.
    private static func watchReplies(_ state: ClientState, timeout: Double, url: String) async throws {
        let limit = Duration.milliseconds(Int64(timeout * 1000))
        while state.receiving {
            let silent = ContinuousClock.now - state.lastHeard
            if silent >= limit {
                throw ServerError.unavailable(
                    "the server at \(url) sent nothing for \(Int(timeout)) s: gave up (raise --reply-timeout for a slow server)")
            }
            try await Task.sleep(for: min(limit - silent, .milliseconds(100)))
        }
    }

    /// Parses the server's messages into one codes file per output.
    private static func receive(_ inbound: WebSocketInboundStream, state: ClientState) async throws {
        for try await message in inbound.messages(maxSize: 1 << 26) {
            state.heard()
            switch message {
            case .text(let text):
                state.addDown(text.utf8.count)
                switch StreamControl.type(of: text) {
                case "ready": try state.ready(StreamControl.decode(StreamControl.Ready.self, from: text))
                case "done": state.done = true
                case "error":
                    let failure = try StreamControl.decode(StreamControl.Failure.self, from: text)
                    state.fail(failure)
                default: throw ServerError.badRequest("the server sent an unknown message: \(text.prefix(200))")
                }
            case .binary(var buffer):
                state.addDown(buffer.readableBytes)
                let bytes = buffer.readBytes(length: buffer.readableBytes) ?? []
                guard let output = bytes.first else { throw ServerError.badRequest("the server sent an empty binary message") }
                try state.piece(output: Int(output), Data(bytes.dropFirst()))
            }
        }
    }
}

/// The state of `racing`: which side settled first, and the tasks to cancel (even when the cancellation comes before
/// a task exists).
final class Race: Sendable {
    private struct State {
        var settled = false
        var cancelled = false
        var tasks: [Task<Void, Never>] = []
    }
    private let state = Mutex(State())

    /// True for the first caller only.
    func claim() -> Bool {
        state.withLock { s in
            defer { s.settled = true }
            return !s.settled
        }
    }

    /// Keeps a task of the race; cancels it at once if the race was already cancelled.
    func hold(_ task: Task<Void, Never>) {
        let cancelNow = state.withLock { s in
            s.tasks.append(task)
            return s.cancelled
        }
        if cancelNow { task.cancel() }
    }

    /// Cancels every task of the race (now, or as soon as it is held).
    func cancel() {
        let tasks = state.withLock { s in
            s.cancelled = true
            return s.tasks
        }
        for task in tasks { task.cancel() }
    }
}

/// The input reader, handed to the sending task (used by that task only).
private final class UncheckedSource: @unchecked Sendable {
    let audio: AudioFileReader?
    let codes: CodesReader?
    init(audio: AudioFileReader) { self.audio = audio; codes = nil }
    init(codes: CodesReader) { self.codes = codes; audio = nil }
}

/// True when the file starts with the codes-file magic.
func isCodesFile(_ path: String) -> Bool {
    guard let handle = FileHandle(forReadingAtPath: path) else { return false }
    defer { try? handle.close() }
    return (try? handle.read(upToCount: 8)) == Data("TUSSCODE".utf8)
}

/// Frames a `StreamingEncoder`'s chunks as codes-format pieces: the header first, then each chunk numbered.
struct CodesSender {
    /// A framed piece and the frame count sent once it has gone (its audio end, for latency).
    typealias Piece = (bytes: Data, framesEnd: Int64)

    private var encoder: StreamingEncoder
    private var index = 0
    private var headerSent = false

    init(_ encoder: StreamingEncoder) { self.encoder = encoder }

    /// Frames per channel sent so far.
    var framesSent: Int64 { encoder.frames }

    /// The codec time, in seconds, at the end of `frames` frames.
    func seconds(_ frames: Int64) -> Double { Double(frames) * Double(encoder.header.hopLength) / Double(encoder.header.sampleRate) }

    /// Encodes a block; returns the pieces it completes (the header first, once).
    mutating func push(_ block: [[Float]]) throws -> [Piece] { try frame(try encoder.push(block)) }

    /// Flushes everything and ends the stream.
    mutating func finish() throws -> [Piece] { try frame(try encoder.finish()) + [(CodesFraming.end(), 0)] }

    private mutating func frame(_ chunks: [CodesChunk]) throws -> [Piece] {
        var pieces: [Piece] = []
        if !headerSent {
            pieces.append((try CodesFraming.header(encoder.header), 0))
            headerSent = true
        }
        for chunk in chunks {
            pieces.append((try CodesFraming.chunk(chunk, index: index, header: encoder.header), chunk.firstFrame + Int64(chunk.frameCount)))
            index += 1
        }
        return pieces
    }
}

/// Shared between the sending and receiving tasks of one stream.
final class ClientState: Sendable {
    struct Inner {
        var sendLog: [(audioEnd: Double, at: ContinuousClock.Instant)] = []
        var bytesUp: Int64 = 0
        var bytesDown: Int64 = 0
        var framesSent: Int64 = 0
        var ready: StreamControl.Ready?
        var done = false
        var failure: ServerError?
        var lastHeard = ContinuousClock.now
        var receiving = true
        var parsers: [CodesStreamParser] = []
        var writers: [CodesWriter?] = []
        var framesReceived: [Int64] = []
        var latencies: [Double] = []
        var paths: [String] = []
    }

    let outputDirectory: String
    private let inner = Mutex(UncheckedInner())

    /// CodesWriter is a class without Sendable; every access goes through the mutex.
    struct UncheckedInner: @unchecked Sendable { var value = Inner() }

    init(outputDirectory: String) { self.outputDirectory = outputDirectory }

    func addUp(_ n: Int) { inner.withLock { $0.value.bytesUp += Int64(n) } }
    func addDown(_ n: Int) { inner.withLock { $0.value.bytesDown += Int64(n) } }
    func logSend(audioEnd: Double) { inner.withLock { $0.value.sendLog.append((audioEnd, ContinuousClock.now)) } }
    var framesSent: Int64 {
        get { inner.withLock { $0.value.framesSent } }
        set { inner.withLock { $0.value.framesSent = newValue } }
    }
    var done: Bool {
        get { inner.withLock { $0.value.done } }
        set { inner.withLock { $0.value.done = newValue } }
    }
    var serverFailure: ServerError? { inner.withLock { $0.value.failure } }
    /// When the server last sent a message (or the stream began).
    var lastHeard: ContinuousClock.Instant { inner.withLock { $0.value.lastHeard } }
    func heard() { inner.withLock { $0.value.lastHeard = ContinuousClock.now } }
    /// Whether the receiving side is still reading the server's messages.
    var receiving: Bool {
        get { inner.withLock { $0.value.receiving } }
        set { inner.withLock { $0.value.receiving = newValue } }
    }

    func fail(_ failure: StreamControl.Failure) {
        let error: ServerError = switch failure.kind {
        case "too_large": .tooLarge(failure.message)
        case "wrong_codec": .wrongCodec(failure.message)
        case "truncated": .truncated(failure.message)
        case "unavailable": .unavailable(failure.message)
        case "busy": .busy(failure.message)
        case "idle_timeout": .idle(failure.message)
        case "internal": .internalError(failure.message)
        default: .badRequest(failure.message)
        }
        inner.withLock { $0.value.failure = error }
    }

    func ready(_ ready: StreamControl.Ready) throws {
        try inner.withLock { state throws in
            state.value.ready = ready
            state.value.parsers = ready.outputs.map { _ in CodesStreamParser() }
            state.value.writers = ready.outputs.map { _ in nil }
            state.value.framesReceived = ready.outputs.map { _ in 0 }
            state.value.paths = ready.outputs.map { (outputDirectory as NSString).appendingPathComponent("\($0).bin") }
        }
    }

    /// Parses one output piece; the parser refuses lost, duplicated or reordered chunks.
    func piece(output: Int, _ bytes: Data) throws {
        let now = ContinuousClock.now
        try inner.withLock { box throws in
            guard output < box.value.parsers.count else {
                throw ServerError.badRequest("the server sent output \(output) before ready or past the prompt count")
            }
            for event in try box.value.parsers[output].feed(bytes) {
                switch event {
                case .header(let header):
                    box.value.writers[output] = try CodesWriter(path: box.value.paths[output], header: header)
                case .chunk(let chunk):
                    try box.value.writers[output]?.write(chunk)
                    guard chunk.channel == 0 else { continue }
                    box.value.framesReceived[output] += Int64(chunk.frameCount)
                    if output == 0, let ready = box.value.ready {
                        let frameSeconds = Double(ready.hopLength) / Double(ready.sampleRate)
                        for f in 0..<chunk.frameCount {
                            let t = Double(chunk.firstFrame + Int64(f)) * frameSeconds
                            if let sent = box.value.sendLog.first(where: { $0.audioEnd > t }) {
                                box.value.latencies.append((now - sent.at).seconds * 1000)
                            }
                        }
                    }
                case .end:
                    try box.value.writers[output]?.finish()
                }
            }
        }
    }

    func report() throws(ServerError) -> EdgeStreamReport {
        try inner.withLock { box throws(ServerError) in
            let s = box.value
            guard s.done else { throw .truncated("the server closed the stream before its done message") }
            for (i, parser) in s.parsers.enumerated() {
                var p = parser
                do { try p.finish() } catch { throw .truncated("output \(i) is incomplete: \(error)") }
            }
            var report = EdgeStreamReport()
            report.codesFiles = s.paths
            report.bytesUp = s.bytesUp
            report.bytesDown = s.bytesDown
            report.framesSent = s.framesSent
            report.framesReceived = s.framesReceived
            report.latenciesMs = s.latencies
            return report
        }
    }
}
