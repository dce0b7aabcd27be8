import Foundation
import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization
import TussModels
import TussPipeline

/// The HTTP and WebSocket server: `POST /v1/separate`, `GET /v1/stream`, `GET /healthz`, `GET /metrics`.
///
/// Models are loaded once (in the engine); each request and stream keeps its own state, so the server is stateless
/// between them and scales by replicas. SIGTERM stops new streams, lets open ones finish (up to `drainSeconds`),
/// then stops the HTTP server after its in-flight requests.
public final class SeparationServer: Sendable {
    /// The loaded models.
    public let engine: SeparationEngine
    /// The limits every request and stream is held to.
    public let limits: ServerLimits
    /// The Prometheus metrics.
    public let metrics = ServerMetrics()
    /// Seconds a graceful shutdown waits for open streams before closing them.
    public let drainSeconds: Double
    private let gate = Mutex(Gate())

    struct Gate {
        var active = 0
        var draining = false
    }

    /// Creates a server over loaded models.
    public init(engine: SeparationEngine, limits: ServerLimits, drainSeconds: Double = 30) throws(ServerError) {
        try limits.validate()
        self.engine = engine
        self.limits = limits
        self.drainSeconds = drainSeconds
    }

    /// Streams open now.
    public var activeStreams: Int { gate.withLock { $0.active } }

    /// Runs until SIGTERM or SIGINT (graceful) or task cancellation; `onRunning` gets the bound port (useful with
    /// port 0).
    public func run(host: String, port: Int, verbose: Bool = false, onRunning: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        let app = makeApplication(host: host, port: port, verbose: verbose, onRunning: onRunning)
        var logger = Logger(label: "tuss-codec.serve")
        logger.logLevel = verbose ? .info : .warning
        var config = ServiceGroupConfiguration(
            services: [.init(service: app), .init(service: DrainService(server: self))],
            logger: logger)
        config.gracefulShutdownSignals = [.sigterm, .sigint]
        // After the drain, connections that still hang on are cut: shutdown never waits forever.
        config.maximumGracefulShutdownDuration = .milliseconds(Int64((drainSeconds + 15) * 1000))
        do {
            try await ServiceGroup(configuration: config).run()
        } catch let error as IOError where error.errnoCode == EADDRINUSE {
            throw ServerError.badConfiguration("cannot listen on \(host):\(port): the address is in use; pick another --port (0 picks a free one)")
        }
    }

    /// The Hummingbird application with every route; run it as a service (graceful shutdown finishes in-flight
    /// HTTP requests).
    public func makeApplication(host: String, port: Int, verbose: Bool = false,
                                onRunning: @escaping @Sendable (Int) async -> Void = { _ in }) -> some ApplicationProtocol {
        var logger = Logger(label: "tuss-codec.serve")
        logger.logLevel = verbose ? .info : .warning
        let router = Router(context: BasicWebSocketRequestContext.self)
        router.get("/healthz") { _, _ in self.health() }
        router.get("/metrics") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                     body: .init(byteBuffer: ByteBuffer(string: self.metrics.exposition())))
        }
        router.post("/v1/separate") { request, _ in await self.separate(request) }
        router.ws("/v1/stream") { inbound, outbound, _ in
            await self.stream(inbound: inbound, outbound: outbound)
        }
        let wsConfig = WebSocketServerConfiguration(maxFrameSize: limits.maxMessageBytes, autoPing: .enabled(timePeriod: .seconds(20)))
        return Application(
            router: router,
            server: .http1WebSocketUpgrade(webSocketRouter: router, configuration: .init(ws: wsConfig)),
            configuration: .init(address: .hostname(host, port: port), serverName: "tuss-codec"),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? port) },
            logger: logger)
    }

    // MARK: - Routes

    private func health() -> Response {
        let object: [String: Any] = [
            "status": gate.withLock { $0.draining } ? "draining" : "ok",
            "active_streams": activeStreams,
            "spectral": engine.spectral != nil,
            "codec": engine.codec?.identity.name ?? NSNull(),
            "masker": engine.masker != nil,
        ]
        return json(status: .ok, object)
    }

    private func separate(_ request: Request) async -> Response {
        let started = ContinuousClock.now
        let response: Response
        do {
            response = try await separateBody(request)
        } catch {
            metrics.error(error)
            response = errorResponse(error)
        }
        metrics.request(route: "separate", status: Int(response.status.code), seconds: (ContinuousClock.now - started).seconds)
        return response
    }

    private func separateBody(_ request: Request) async throws(ServerError) -> Response {
        let query = request.uri.queryParameters
        guard let promptText = query["prompts"].map(String.init), !promptText.isEmpty else {
            throw .badRequest("give the prompts as a query parameter, e.g. /v1/separate?prompts=speech,sfx-mix")
        }
        let prompts = try parsePrompts(promptText)
        guard prompts.count <= limits.maxPrompts else {
            throw .badRequest("\(prompts.count) prompts; this server takes at most \(limits.maxPrompts)")
        }
        let decode = try flag(query["decode"].map(String.init), name: "decode")
        let pathText = query["path"].map(String.init)
        guard pathText == nil || SeparationPath(rawValue: pathText ?? "") != nil else {
            throw .badRequest("path must be spectral or codec, got '\(pathText ?? "")'")
        }
        let remainderText = query["remainder"].map(String.init)
        let remainder = try remainderText.map { text throws(ServerError) -> MixtureRemainder in
            guard let r = MixtureRemainder(rawValue: text), r != .ignored else {
                throw .badRequest("remainder must be residual or spread, got '\(text)'")
            }
            return r
        } ?? .ignored
        if let declared = request.headers[.contentLength].flatMap({ Int($0) }), declared > limits.maxBodyBytes {
            throw .tooLarge("the body is \(declared) bytes; this server takes at most \(limits.maxBodyBytes): split the input or raise --max-body")
        }
        var buffer: ByteBuffer
        do { buffer = try await request.body.collect(upTo: limits.maxBodyBytes) } catch is NIOTooManyBytesError {
            throw .tooLarge("the body is larger than this server's limit of \(limits.maxBodyBytes) bytes: split the input or raise --max-body")
        } catch {
            throw .truncated("the body could not be read completely: \(error)")
        }
        guard let bytes = buffer.readBytes(length: buffer.readableBytes), !bytes.isEmpty else {
            throw .badRequest("the body is empty: send a codes file or an audio file")
        }
        let body = Data(bytes)
        let isCodes = body.starts(with: Data("TUSSCODE".utf8))
        let engine = self.engine
        let container = try await offload { () throws(ServerError) -> StemContainer in
            if isCodes {
                guard pathText == nil || pathText == "codec" else {
                    throw .badRequest("codes input always takes the codec path; drop path=\(pathText ?? "")")
                }
                guard remainder == .ignored else {
                    throw .badRequest("remainder=\(remainder.rawValue) applies to audio on the spectral path, not to codes")
                }
                return try engine.separateCodes(body, prompts: prompts, decode: decode)
            }
            return try engine.separateAudio(body, prompts: prompts, path: SeparationPath(rawValue: pathText ?? "") ?? .spectral,
                                            decode: decode, remainder: remainder)
        }
        let data = try container.encoded()
        var out = ByteBuffer()
        out.writeBytes(data)
        return Response(status: .ok, headers: [.contentType: StemContainer.mediaType], body: .init(byteBuffer: out))
    }

    // MARK: - Streams

    private func stream(inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter) async {
        let admitted: ServerError? = gate.withLock { gate in
            if gate.draining { return .unavailable("the server is shutting down: reconnect to another replica") }
            if gate.active >= limits.maxStreams {
                return .busy("this server already runs \(limits.maxStreams) streams: retry later or use another replica")
            }
            gate.active += 1
            return nil
        }
        if let admitted {
            metrics.error(admitted)
            await refuse(inbound: inbound, outbound: outbound, admitted)
            return
        }
        metrics.streamsTotal.increment()
        metrics.activeStreams.increment()
        defer {
            gate.withLock { $0.active -= 1 }
            metrics.activeStreams.decrement()
        }
        let lastActivity = ActivityClock()
        let idle = Duration.milliseconds(Int64(limits.idleSeconds * 1000))
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                // The idle watchdog: closes a stream that has been silent too long.
                while !Task.isCancelled {
                    let waited = ContinuousClock.now - lastActivity.last
                    if waited >= idle {
                        let error = ServerError.idle("nothing received for \(self.limits.idleSeconds) s: the stream was closed")
                        self.metrics.error(error)
                        await self.fail(outbound, error)
                        return
                    }
                    try? await Task.sleep(for: min(idle - waited, .milliseconds(250)) + .milliseconds(1))
                }
            }
            group.addTask {
                await self.serve(inbound: inbound, outbound: outbound) { lastActivity.touch() }
            }
            await group.next()
            group.cancelAll()
        }
    }

    private func serve(inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter, touch: @Sendable () -> Void) async {
        let box = SessionBox(StreamSession(engine: engine, limits: limits))
        do {
            for try await message in inbound.messages(maxSize: limits.maxMessageBytes) {
                touch()
                let started = ContinuousClock.now
                let before = (box.session.framesIn, box.session.framesOut)
                let replies: [StreamReply]
                switch message {
                case .text(let text):
                    metrics.bytes("in").increment(by: Int64(text.utf8.count))
                    replies = try await offload { () throws(ServerError) in try box.session.receive(text: text) }
                case .binary(var buffer):
                    metrics.bytes("in").increment(by: Int64(buffer.readableBytes))
                    let data = Data(buffer.readBytes(length: buffer.readableBytes) ?? [])
                    replies = try await offload { () throws(ServerError) in try box.session.receive(binary: data) }
                }
                let received = box.session.framesIn - before.0
                let sent = (box.session.framesOut - before.1) * Int64(box.session.outputs)
                if received > 0 {
                    metrics.frames("in").increment(by: received)
                    metrics.frameLatency.record(ContinuousClock.now - started)
                }
                if sent > 0 { metrics.frames("out").increment(by: sent) }
                for reply in replies {
                    switch reply {
                    case .text(let text):
                        try await outbound.write(.text(text))
                        metrics.bytes("out").increment(by: Int64(text.utf8.count))
                    case .binary(let data):
                        var out = ByteBuffer()
                        out.writeBytes(data)
                        try await outbound.write(.binary(out))
                        metrics.bytes("out").increment(by: Int64(data.count))
                    }
                }
                if box.session.isFinished {
                    try await outbound.close(.normalClosure, reason: "done")
                    return
                }
            }
            try box.session.connectionClosed()
        } catch let error as ServerError {
            metrics.error(error)
            await fail(outbound, error)
        } catch is CancellationError {
            return
        } catch {
            metrics.error(.badRequest("\(error)"))
        }
    }

    /// Refuses a stream once its client has sent its first message (or after `idleSeconds` of silence).
    ///
    /// Answering in the instant after the upgrade lost the answer under load: the client's handler had started, yet
    /// neither the message nor the close frame ever reached it (17 of 40 refusals on a 2-core machine with three busy
    /// loops beside the test; with the swift-websocket client we ship and test with). The likely cause is the
    /// refusal arriving in the same read as the 101 response; we did not trace it further. A client that has sent a
    /// message has finished its upgrade, and answering then lost nothing in 80 of 80 rounds.
    private func refuse(inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter, _ error: ServerError) async {
        let wait = Duration.milliseconds(Int64(limits.idleSeconds * 1000))
        await withTaskGroup(of: Void.self) { group in
            group.addTask { try? await Task.sleep(for: wait) }
            group.addTask {
                var messages = inbound.messages(maxSize: self.limits.maxMessageBytes).makeAsyncIterator()
                _ = try? await messages.next()
            }
            await group.next()
            // Answer before leaving the group: the close frame is also what ends a reader that is still waiting.
            await fail(outbound, error)
            group.cancelAll()
        }
    }

    /// Sends an error message and closes with the error's close code; a client that is already gone is ignored.
    private func fail(_ outbound: WebSocketOutboundWriter, _ error: ServerError) async {
        let failure = StreamControl.Failure(kind: error.kind, message: error.message)
        try? await outbound.write(.text(StreamControl.text(failure)))
        try? await outbound.close(.init(codeNumber: Int(error.closeCode)), reason: String(error.kind.prefix(100)))
    }

    /// Marks the server as draining (new streams refused) and waits until open streams end or `drainSeconds` pass.
    func drain() async {
        gate.withLock { $0.draining = true }
        let deadline = ContinuousClock.now + .milliseconds(Int64(drainSeconds * 1000))
        while activeStreams > 0, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(50))
        }
    }
}

/// Waits for the graceful-shutdown signal, then drains open streams before the HTTP server stops.
struct DrainService: Service {
    let server: SeparationServer

    func run() async throws {
        try? await gracefulShutdown()
        await server.drain()
    }
}

/// When a stream last received a message.
final class ActivityClock: Sendable {
    private let instant = Mutex(ContinuousClock.now)
    var last: ContinuousClock.Instant { instant.withLock { $0 } }
    func touch() { instant.withLock { $0 = ContinuousClock.now } }
}

/// Carries one stream's session to the compute queue; only one message of a stream is handled at a time.
final class SessionBox: @unchecked Sendable {
    var session: StreamSession
    init(_ session: StreamSession) { self.session = session }
}

/// Runs CPU-heavy work off the cooperative thread pool, so the event loops and other requests keep moving.
func offload<T: Sendable>(_ body: @escaping @Sendable () throws(ServerError) -> T) async throws(ServerError) -> T {
    let result: Result<T, ServerError> = await withCheckedContinuation { continuation in
        DispatchQueue.global(qos: .userInitiated).async {
            do throws(ServerError) { continuation.resume(returning: .success(try body())) } catch {
                continuation.resume(returning: .failure(error))
            }
        }
    }
    return try result.get()
}

/// A JSON response.
func json(status: HTTPResponse.Status, _ object: [String: Any]) -> Response {
    let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
    return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
}

/// The JSON error response for an error.
func errorResponse(_ error: ServerError) -> Response {
    Response(status: .init(code: error.httpStatus), headers: [.contentType: "application/json"],
             body: .init(byteBuffer: ByteBuffer(bytes: error.jsonBody)))
}

/// Parses an optional boolean query parameter (`1`, `0`, `true`, `false`).
func flag(_ value: String?, name: String) throws(ServerError) -> Bool {
    switch value {
    case nil, "0", "false": return false
    case "1", "true": return true
    case let other?: throw .badRequest("\(name) must be 0 or 1, got '\(other)'")
    }
}

extension Duration {
    /// The duration in seconds.
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) * 1e-18 }
}
