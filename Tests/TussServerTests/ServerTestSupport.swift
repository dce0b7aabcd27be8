import Foundation
import HummingbirdTesting
import Logging
import NIOCore
import NIOWebSocket
import ServiceLifecycle
import Synchronization
import TussAudio
import TussModels
import TussPipeline
import TussTestSupport
import WSClient
import XCTest
@testable import TussServer

/// The masker branch's fixture: a random-weight 16 kHz DAC (hop 320, 4 codebooks of 64) and a random masker trained
/// for it (`Tests/Fixtures/masker-random`; `masker-random-lookahead` has a masker that looks 3 frames ahead).
func fixturePath(_ name: String, fixture: String = "masker-random") -> String {
    (packageRoot() as NSString).appendingPathComponent("Tests/Fixtures/\(fixture)/\(name)")
}

/// The fixture codec.
func fixtureCodec(fixture: String = "masker-random") throws -> CodecHandle {
    try CodecHandle.open(fixturePath("codec.safetensors", fixture: fixture))
}

/// The fixture masker.
func fixtureMasker(fixture: String = "masker-random") throws -> MaskerHandle {
    try MaskerHandle.open(fixturePath("model.safetensors", fixture: fixture))
}

/// An engine with the fixture codec and (unless `masker` is false) its masker.
func codecEngine(masker: Bool = true, fixture: String = "masker-random") throws -> SeparationEngine {
    try SeparationEngine(spectral: nil, codec: try fixtureCodec(fixture: fixture),
                         masker: masker ? try fixtureMasker(fixture: fixture) : nil)
}

/// The offline codec-path separation of a codes file (`CodesSeparation.separateFile`): `[prompt][channel][codebook][frame]`.
func offlineSeparation(_ bin: String, prompts: String, dir: String, fixture: String = "masker-random") throws -> [[[[Int32]]]] {
    let out = (dir as NSString).appendingPathComponent("offline-\(UUID().uuidString)")
    let report = try CodesSeparation.separateFile(input: bin, outputDirectory: out, prompts: try Prompt.parseList(prompts),
                                                  codec: try fixtureCodec(fixture: fixture),
                                                  masker: try fixtureMasker(fixture: fixture), decode: false, float32: true)
    return try report.codes.map { try CodesReader(path: $0).readAll() }
}

/// The embedded TUSS model, as a spectral separator.
func embeddedSpectral() throws -> SpectralSeparator {
    let path = (packageRoot() as NSString).appendingPathComponent(DefaultModels.separator)
    return try SpectralSeparator(model: try ModelFile.open(path).tussModel(), options: SeparationOptions(quiet: true))
}

/// Chirp plus noise: a deterministic test signal.
func signal(seconds: Double, rate: Int, channels: Int) -> [[Float]] {
    let n = Int(seconds * Double(rate))
    var state: UInt64 = 0x9e37_79b9_7f4a_7c15
    return (0..<channels).map { c in
        (0..<n).map { i in
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            let t = Double(i) / Double(rate)
            let tone = 0.3 * sin(2 * Double.pi * (220 + 300 * t + 50 * Double(c)) * t)
            return Float(tone + 0.05 * (Double(state >> 11) / Double(1 << 53) - 0.5))
        }
    }
}

/// Writes planar audio to `path` (format from the extension).
@discardableResult
func writeWAV(_ planar: [[Float]], rate: Int, to path: String) throws -> String {
    let writer = try AudioFileWriter(path: path, sampleRate: rate, channels: planar.count,
                                     format: try AudioFileFormat.forWriting(path: path, like: nil, float32: true))
    try writer.write(planar)
    try writer.finish()
    return path
}

/// Encodes planar audio into a codes file's bytes with `codec`.
func encodeCodes(_ planar: [[Float]], rate: Int, codec: CodecHandle, dir: String) throws -> (bytes: Data, path: String) {
    let wav = try writeWAV(planar, rate: rate, to: (dir as NSString).appendingPathComponent("in-\(UUID().uuidString).wav"))
    let bin = (wav as NSString).deletingPathExtension + ".bin"
    _ = try CodecPipeline.encodeFile(input: wav, output: bin, codec: codec, codebooks: nil)
    return (try Data(contentsOf: URL(fileURLWithPath: bin)), bin)
}

/// Runs a server on 127.0.0.1 with an ephemeral port for the duration of `body`, then shuts it down gracefully.
func withServer<T: Sendable>(_ server: SeparationServer, _ body: @escaping @Sendable (Int) async throws -> T) async throws -> T {
    let (ports, continuation) = AsyncStream<Int>.makeStream()
    let app = server.makeApplication(host: "127.0.0.1", port: 0) { continuation.yield($0) }
    let services = ServiceGroup(configuration: .init(services: [app], logger: Logger(label: "tuss-server-tests")))
    return try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask {
            try await services.run()
            return nil
        }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else { throw ServerError.internalError("the server did not start") }
        let result: Result<T, Error>
        do { result = .success(try await body(port)) } catch { result = .failure(error) }
        await services.triggerGracefulShutdown()
        // Bounded: a shutdown that takes longer than 5 s is cancelled (and the test still ends).
        group.addTask {
            try? await Task.sleep(for: .seconds(5))
            return nil
        }
        _ = try await group.next()
        group.cancelAll()
        return try result.get()
    }
}

/// A POST over loopback; returns status, content type and body.
func post(_ port: Int, _ uri: String, body: Data) async throws -> (status: Int, type: String, body: Data) {
    try await TestClient.withClient(host: "127.0.0.1", port: port) { client in
        var buffer = ByteBuffer()
        buffer.writeBytes(body)
        let response = try await client.post(uri, body: buffer)
        var out = response.body ?? ByteBuffer()
        return (Int(response.head.status.code), response.head.headerFields[.contentType] ?? "",
                Data(out.readBytes(length: out.readableBytes) ?? []))
    }
}

/// A GET over loopback; returns status and body text.
func get(_ port: Int, _ uri: String) async throws -> (status: Int, text: String) {
    try await TestClient.withClient(host: "127.0.0.1", port: port) { client in
        let response = try await client.get(uri)
        var out = response.body ?? ByteBuffer()
        return (Int(response.head.status.code), out.readString(length: out.readableBytes) ?? "")
    }
}

/// The JSON error kind of an error response.
func errorKind(_ body: Data) -> String? {
    ((try? JSONSerialization.jsonObject(with: body)) as? [String: Any]).flatMap { $0["error"] as? [String: Any] }?["kind"] as? String
}

/// What a raw WebSocket conversation saw: text messages, binary messages, and the close code.
struct Conversation: Sendable {
    var texts: [String] = []
    var binaries: [Data] = []
    var closeCode: Int?
    /// Whether the WebSocket upgrade completed (the client's handler started).
    var upgraded = false
}

/// What a conversation has seen so far, shared with the timer that may give up on it.
final class ConversationLog: Sendable {
    let value = Mutex(Conversation())
}

/// A conversation that did not end within its time limit; names what it had seen so a hang reads as a failure.
struct ConversationTimedOut: Error, CustomStringConvertible {
    var seconds: Double
    var seen: Conversation
    var file: StaticString
    var line: UInt
    var description: String {
        "\(file):\(line): no close within \(seconds) s; upgraded: \(seen.upgraded); texts so far: \(seen.texts)"
    }
}

/// Opens `/v1/stream`, sends `messages` in order (then, after `linger` seconds, `later`), and collects everything
/// the server answers until it closes. Gives up after `timeout` seconds: a connection the server dropped without a
/// close frame must fail the test, not hang the suite.
func converse(_ port: Int, _ messages: [StreamReply], linger: Double = 0, later: [StreamReply] = [],
              closeAfterSending: Bool = false, timeout: Double = 30,
              file: StaticString = #filePath, line: UInt = #line) async throws -> Conversation {
    let seen = ConversationLog()
    return try await withThrowingTaskGroup(of: Conversation?.self) { group in
        group.addTask {
            try await _converse(port, messages, linger: linger, later: later, closeAfterSending: closeAfterSending, seen: seen)
        }
        group.addTask {
            try await Task.sleep(for: .milliseconds(Int64(timeout * 1000)))
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let result = first else {
            throw ConversationTimedOut(seconds: timeout, seen: seen.value.withLock { $0 }, file: file, line: line)
        }
        return result
    }
}

private func _converse(_ port: Int, _ messages: [StreamReply], linger: Double, later: [StreamReply],
                       closeAfterSending: Bool, seen: ConversationLog) async throws -> Conversation {
    let close = try await WebSocketClient.connect(
        url: "ws://127.0.0.1:\(port)/v1/stream", configuration: .init(maxFrameSize: 1 << 22), logger: .init(label: "test")
    ) { inbound, outbound, _ in
        seen.value.withLock { $0.upgraded = true }
        func send(_ list: [StreamReply]) async throws {
            for message in list {
                switch message {
                case .text(let text): try await outbound.write(.text(text))
                case .binary(let data):
                    var buffer = ByteBuffer()
                    buffer.writeBytes(data)
                    try await outbound.write(.binary(buffer))
                }
            }
        }
        try await send(messages)
        if linger > 0 { try await Task.sleep(for: .milliseconds(Int64(linger * 1000))) }
        try await send(later)
        if closeAfterSending { return }
        for try await message in inbound.messages(maxSize: 1 << 26) {
            switch message {
            case .text(let text): seen.value.withLock { $0.texts.append(text) }
            case .binary(var buffer): seen.value.withLock { $0.binaries.append(Data(buffer.readBytes(length: buffer.readableBytes) ?? [])) }
            }
        }
    }
    var result = seen.value.withLock { $0 }
    if let close { result.closeCode = Int(UInt16(webSocketErrorCode: close.closeCode)) }
    return result
}

/// Waits (at most 2 s) until `condition` holds.
func eventually(_ condition: @Sendable () async throws -> Bool) async throws -> Bool {
    let deadline = ContinuousClock.now + .seconds(2)
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try await Task.sleep(for: .milliseconds(20))
    }
    return try await condition()
}

/// Waits (at most 2 s) until the server has exactly `count` open streams.
func waitForStreams(_ server: SeparationServer, _ count: Int, line: UInt = #line) async throws {
    let reached = try await eventually { server.activeStreams == count }
    XCTAssertTrue(reached, "the server has \(server.activeStreams) open streams, expected \(count)", line: line)
}

/// A TCP socket on 127.0.0.1 that listens and never accepts: connections complete in the kernel's backlog and then
/// hear nothing, like a stalled server.
final class SilentListener: Sendable {
    let descriptor: Int32
    let port: Int

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ServerError.internalError("socket() failed") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { generic in
                bind(fd, generic, length) == 0 && listen(fd, 8) == 0 && getsockname(fd, generic, &length) == 0
            }
        }
        guard bound else {
            _ = Glibc.close(fd)
            throw ServerError.internalError("could not listen on 127.0.0.1")
        }
        descriptor = fd
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    func close() { _ = Glibc.close(descriptor) }

    /// Accepts the next connection waiting in the backlog and tells whether its client has closed it by then (or
    /// does within `seconds`): reads what it sent until end of file, a reset, or the deadline. False if no
    /// connection arrives in time (never blocks past the deadline).
    func nextClientHangsUp(within seconds: Double) -> Bool {
        let deadline = ContinuousClock.now + .milliseconds(Int64(seconds * 1000))
        guard Self.readable(descriptor, before: deadline) else { return false }
        let peer = accept(descriptor, nil, nil)
        guard peer >= 0 else { return false }
        defer { _ = Glibc.close(peer) }
        var buffer = [UInt8](repeating: 0, count: 4096)
        while Self.readable(peer, before: deadline) {
            if read(peer, &buffer, buffer.count) <= 0 { return true }
        }
        return false
    }

    /// Waits until `fd` has something to read (a connection, for a listening socket) or the deadline passes.
    private static func readable(_ fd: Int32, before deadline: ContinuousClock.Instant) -> Bool {
        while ContinuousClock.now < deadline {
            var ready = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let left = max(1, Int32((deadline - ContinuousClock.now) / .milliseconds(1)))
            if poll(&ready, 1, left) > 0 { return true }
        }
        return false
    }
}

/// Runs the edge client and returns the error it ends with; a stream that succeeds fails the test (and gives nil).
func edgeStreamFailure(_ options: EdgeStreamOptions, codec: CodecHandle?,
                       file: StaticString = #filePath, line: UInt = #line) async -> ServerError? {
    do {
        _ = try await EdgeStreamClient.run(options, codec: codec)
        XCTFail("\(options.input): the stream succeeded", file: file, line: line)
        return nil
    } catch {
        return error
    }
}
