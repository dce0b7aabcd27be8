import Foundation
import TussAudio
import TussModels
import TussPipeline
import TussTestSupport
import XCTest
@testable import TussServer

/// `GET /v1/stream` over loopback: the edge client end to end, and every stream error path.
final class StreamRouteTests: XCTestCase {
    /// The edge client's stream gives exactly the offline `separate --codes` output (and the batch route's), with
    /// every frame, in order.
    func testEdgeClientStreamMatchesOfflineSeparation() async throws {
        let dir = try temporaryDirectory(self, prefix: "tuss-server-tests")
        let codec = try fixtureCodec()
        let server = try SeparationServer(engine: try codecEngine(), limits: ServerLimits())
        let rate = 16000
        let input = try writeWAV(signal(seconds: 1.3, rate: rate, channels: 1), rate: rate, to: (dir as NSString).appendingPathComponent("talk.wav"))
        let bin = (dir as NSString).appendingPathComponent("talk.bin")
        _ = try CodecPipeline.encodeFile(input: input, output: bin, codec: codec, codebooks: nil)
        let offline = try Data(contentsOf: URL(fileURLWithPath: bin))
        let (report, batch, metrics) = try await withServer(server) { port in
            var options = EdgeStreamOptions(input: input, server: "ws://127.0.0.1:\(port)", prompts: ["speech", "sfx-mix"],
                                            outputDirectory: (dir as NSString).appendingPathComponent("out"))
            options.chunkSeconds = 0.1
            let report = try await EdgeStreamClient.run(options, codec: codec)
            return (report, try await post(port, "/v1/separate?prompts=speech,sfx-mix", body: offline), try await get(port, "/metrics").text)
        }
        let frames = try CodesReader(data: offline).readAll()[0][0].count
        let expected = try offlineSeparation(bin, prompts: "speech,sfx-mix", dir: dir)
        XCTAssertEqual(report.framesSent, Int64(frames))
        XCTAssertEqual(report.framesReceived, [Int64(frames), Int64(frames)])
        XCTAssertEqual(report.latenciesMs.count, frames)
        XCTAssertGreaterThan(report.upKbps, 0)
        XCTAssertGreaterThan(report.downKbps, report.upKbps)  // two outputs come back for one input
        let container = try StemContainer.decode(batch.body)
        XCTAssertEqual(report.codesFiles.count, 2)
        for (p, (path, entry)) in zip(report.codesFiles, container.entries).enumerated() {
            XCTAssertEqual(try CodesReader(path: path).readAll(), expected[p], path)
            XCTAssertEqual(try CodesReader(data: entry.data).readAll(), expected[p], path)
        }
        XCTAssertEqual(report.audioFiles.count, 2)
        XCTAssertTrue(metrics.contains("tuss_frames_total{direction=\"in\"} \(frames)"), metrics)
        XCTAssertTrue(metrics.contains("tuss_frames_total{direction=\"out\"} \(2 * frames)"), metrics)
        XCTAssertEqual(try AudioFileReader(path: report.audioFiles[0]).info.frames, Int64(1.3 * Double(rate)))
    }

    /// A masker that looks 3 frames ahead: the stream's outputs run 3 frames behind its input, and the end of the
    /// stream flushes them, so every frame still comes back, equal to the offline separation.
    func testLookaheadMaskerStreamsEveryFrame() async throws {
        let dir = try temporaryDirectory(self, prefix: "tuss-server-tests")
        let fixture = "masker-random-lookahead"
        let codec = try fixtureCodec(fixture: fixture)
        let server = try SeparationServer(engine: try codecEngine(fixture: fixture), limits: ServerLimits())
        let input = try writeWAV(signal(seconds: 1.3, rate: 16000, channels: 1), rate: 16000, to: (dir as NSString).appendingPathComponent("talk.wav"))
        let bin = (dir as NSString).appendingPathComponent("talk.bin")
        _ = try CodecPipeline.encodeFile(input: input, output: bin, codec: codec, codebooks: nil)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: bin))
        let (report, raw) = try await withServer(server) { port in
            var options = EdgeStreamOptions(input: input, server: "ws://127.0.0.1:\(port)", prompts: ["speech", "sfx-mix"],
                                            outputDirectory: (dir as NSString).appendingPathComponent("out"))
            options.chunkSeconds = 0.04   // 2 frames per chunk: the first chunk completes no output frame
            let report = try await EdgeStreamClient.run(options, codec: codec)
            try await waitForStreams(server, 0)
            let start = StreamReply.text(StreamControl.text(StreamControl.Start(prompts: ["speech"])))
            return (report, try await converse(port, [start, .binary(bytes)]))
        }
        // The ready message tells the client how far behind the outputs run.
        let ready = try StreamControl.decode(StreamControl.Ready.self, from: try XCTUnwrap(raw.texts.first))
        XCTAssertEqual(ready.lookaheadFrames, 3)
        let frames = try CodesReader(path: bin).readAll()[0][0].count
        let expected = try offlineSeparation(bin, prompts: "speech,sfx-mix", dir: dir, fixture: fixture)
        XCTAssertEqual(report.framesReceived, [Int64(frames), Int64(frames)])
        for (p, path) in report.codesFiles.enumerated() {
            XCTAssertEqual(try CodesReader(path: path).readAll(), expected[p], path)
        }
    }

    /// The opus transport: the server decodes the segments, encodes and separates; every frame comes back.
    func testOpusTransport() async throws {
        let dir = try temporaryDirectory(self, prefix: "tuss-server-tests")
        let codec = try fixtureCodec()
        let server = try SeparationServer(engine: try codecEngine(), limits: ServerLimits())
        let rate = 48000
        let input = try writeWAV(signal(seconds: 1.0, rate: rate, channels: 1), rate: rate, to: (dir as NSString).appendingPathComponent("mic.wav"))
        let report = try await withServer(server) { port in
            var options = EdgeStreamOptions(input: input, server: "ws://127.0.0.1:\(port)", prompts: ["speech"],
                                            outputDirectory: (dir as NSString).appendingPathComponent("out"))
            options.transport = .opus
            options.chunkSeconds = 0.25
            return try await EdgeStreamClient.run(options, codec: codec)
        }
        let hop = codec.codec.config.hopLength
        XCTAssertEqual(report.framesReceived, [Int64((16000 + hop - 1) / hop)])
        XCTAssertEqual(try AudioFileReader(path: report.audioFiles[0]).info.frames, Int64(rate))
        // 16 kbps Opus in one continuous Ogg stream: only page headers on top (segments with their own headers and
        // encoder restarts measured 24.6 kbps here).
        print("opus transport: \(report.upKbps) kbps up for 16 kbps Opus")
        XCTAssertLessThan(report.upKbps, 21)
    }

    func testStreamErrorPaths() async throws {
        let dir = try temporaryDirectory(self, prefix: "tuss-server-tests")
        let codec = try fixtureCodec()
        let limits = ServerLimits(maxPrompts: 2, maxStreams: 1, idleSeconds: 0.5, maxMessageBytes: 4096)
        let server = try SeparationServer(engine: try codecEngine(), limits: limits)
        let codes = try encodeCodes(signal(seconds: 0.4, rate: 16000, channels: 1), rate: 16000, codec: codec, dir: dir).bytes
        let header = try CodesReader(data: codes).header
        let headerBytes = try CodesFraming.header(header)
        var other = header
        other.codec = CodecIdentity(name: "elsewhere", weightsHash: [UInt8](repeating: 1, count: 32))
        let foreign = other
        let start = StreamReply.text(StreamControl.text(StreamControl.Start(prompts: ["speech"])))
        try await withServer(server) { port in
            func expect(_ messages: [StreamReply], kind: String, close: Int, _ line: UInt = #line) async throws {
                // One stream at a time: wait until the previous one has released its slot.
                try await waitForStreams(server, 0, line: line)
                let c = try await converse(port, messages, line: line)
                XCTAssertEqual(c.closeCode, close, "\(c.texts)", line: line)
                XCTAssertTrue(c.texts.last?.contains("\"kind\":\"\(kind)\"") ?? false, "\(c.texts)", line: line)
            }
            try await expect([.binary(headerBytes)], kind: "bad_request", close: 4400)                  // data before start
            try await expect([.text("{not json")], kind: "bad_request", close: 4400)
            try await expect([.text(#"{"type":"start","prompts":["kazoo"],"transport":"codes"}"#)], kind: "bad_request", close: 4400)
            try await expect([.text(#"{"type":"start","prompts":["speech","sfx","drums"],"transport":"codes"}"#)], kind: "bad_request", close: 4400)
            try await expect([start, start], kind: "bad_request", close: 4400)
            try await expect([start, .binary(try CodesFraming.header(foreign))], kind: "wrong_codec", close: 4422)
            try await expect([start, .binary(Data("GARBAGE!".utf8))], kind: "bad_request", close: 4400)
            try await expect([.text(#"{"type":"start","prompts":["speech"],"transport":"opus"}"#)], kind: "bad_request", close: 4400)
            let opusStart = StreamReply.text(#"{"type":"start","prompts":["speech"],"transport":"opus","sample_rate":16000,"channels":1,"length":1600}"#)
            try await expect([opusStart, .binary(Data("RIFF, not Ogg".utf8))], kind: "bad_request", close: 4400)
            // An end message before the Opus stream's end-of-stream page: truncated input, refused.
            let opus = try OpusStreamSender(sampleRate: 16000, channels: 1, length: 1600, kbps: 16)
            let partial = try opus.push([[Float](repeating: 0.1, count: 1600)])
            try await expect([opusStart, .binary(partial), .text(#"{"type":"end"}"#)], kind: "bad_request", close: 4400)
            // A stereo Opus stream where the start said mono.
            let stereo = try OpusStreamSender(sampleRate: 16000, channels: 2, length: 1600, kbps: 16)
            let stereoBytes = try stereo.push([[Float]](repeating: [Float](repeating: 0.1, count: 1600), count: 2))
            try await expect([opusStart, .binary(stereoBytes)], kind: "bad_request", close: 4400)
            // A second Ogg stream after the first one ended (one self-contained file per message): refused, not dropped.
            let once = try OpusStreamSender(sampleRate: 16000, channels: 1, length: 800, kbps: 16)
            let file = try once.push([[Float](repeating: 0.1, count: 800)]) + (try once.finish())
            try await expect([opusStart, .binary(file), .binary(file)], kind: "bad_request", close: 4400)
            try await expect([start, .binary(headerBytes)], kind: "idle_timeout", close: 4408)         // then silence
            // A message over the limit is refused by the WebSocket layer: 1009.
            try await waitForStreams(server, 0)
            let big = try await converse(port, [start, .binary(Data(repeating: 0, count: 10_000))])
            XCTAssertEqual(big.closeCode, 1009)
            // Too many streams: testRefusalsReachTheClient.
            // A client that goes away mid-stream leaves a truncated stream behind.
            try await waitForStreams(server, 0)
            _ = try await converse(port, [start, .binary(headerBytes)], closeAfterSending: true)
            let counted = try await eventually { try await get(port, "/metrics").text.contains("tuss_errors_total{kind=\"truncated\"}") }
            XCTAssertTrue(counted)
            let metrics = try await get(port, "/metrics")
            XCTAssertTrue(metrics.text.contains("tuss_active_streams 0"), metrics.text)
            // Still serving.
            try await waitForStreams(server, 0)
            let good = try await converse(port, [start, .binary(codes)])
            XCTAssertEqual(good.closeCode, 1000)
            XCTAssertTrue(good.texts.last?.contains("\"type\":\"done\"") ?? false, "\(good.texts)")
        }
    }

    /// A refused stream gets its error message and close code every time: after its start message, or after the
    /// idle time when it sends nothing. (Refusing right after the upgrade lost the refusal under load: in a 40-round
    /// loop like this one with three busy loops beside it, 17 refused clients waited with nothing; this test failed
    /// 2 of 2 runs against that server.)
    func testRefusalsReachTheClient() async throws {
        let dir = try temporaryDirectory(self, prefix: "tuss-server-tests")
        let codec = try fixtureCodec()
        // An idle time long enough that the held stream is still open when a loaded machine gets round to checking.
        let limits = ServerLimits(maxStreams: 1, idleSeconds: 1)
        let server = try SeparationServer(engine: try codecEngine(), limits: limits)
        let codes = try encodeCodes(signal(seconds: 0.4, rate: 16000, channels: 1), rate: 16000, codec: codec, dir: dir).bytes
        let headerBytes = try CodesFraming.header(try CodesReader(data: codes).header)
        let start = StreamReply.text(StreamControl.text(StreamControl.Start(prompts: ["speech"])))
        try await withServer(server) { port in
            for round in 0..<8 {
                try await waitForStreams(server, 0)
                async let held = converse(port, [start, .binary(headerBytes)])
                try await waitForStreams(server, 1)
                // The last round's client stays silent: it is answered after the idle time.
                let started = ContinuousClock.now
                let busy = try await converse(port, round == 7 ? [] : [start], timeout: 10)
                let waited = (ContinuousClock.now - started) / .seconds(1)
                XCTAssertEqual(busy.closeCode, 4429, "round \(round): \(busy.texts)")
                XCTAssertEqual(busy.texts.count, 1, "round \(round)")
                XCTAssertTrue(busy.texts.first?.contains("\"kind\":\"busy\"") ?? false, "round \(round): \(busy.texts)")
                if round == 7 { XCTAssertGreaterThanOrEqual(waited, 0.95, "a silent client is answered after the idle time") }
                let first = try await held
                XCTAssertEqual(first.closeCode, 4408, "round \(round): \(first.texts)")
            }
            let metrics = try await get(port, "/metrics")
            XCTAssertTrue(metrics.text.contains("tuss_errors_total{kind=\"busy\"} 8"), metrics.text)
        }
    }

    /// The edge client reports a full server as `busy` with the server's message, for audio and for a codes file,
    /// rather than as the broken connection its unread data runs into.
    func testEdgeClientReportsABusyServer() async throws {
        let dir = try temporaryDirectory(self, prefix: "tuss-server-tests")
        let codec = try fixtureCodec()
        let server = try SeparationServer(engine: try codecEngine(), limits: ServerLimits(maxStreams: 1, idleSeconds: 3))
        let input = try writeWAV(signal(seconds: 2, rate: 16000, channels: 1), rate: 16000,
                                 to: (dir as NSString).appendingPathComponent("talk.wav"))
        let codes = try encodeCodes(signal(seconds: 2, rate: 16000, channels: 1), rate: 16000, codec: codec, dir: dir)
        let start = StreamReply.text(StreamControl.text(StreamControl.Start(prompts: ["speech"])))
        try await withServer(server) { port in
            async let held = converse(port, [start, .binary(try CodesFraming.header(try CodesReader(data: codes.bytes).header))])
            try await waitForStreams(server, 1)
            for source in [input, codes.path] {
                let options = EdgeStreamOptions(input: source, server: "ws://127.0.0.1:\(port)", prompts: ["speech"],
                                                outputDirectory: (dir as NSString).appendingPathComponent("out"))
                let error = await edgeStreamFailure(options, codec: codec)
                guard case .busy(let message)? = error else { return XCTFail("\(source): \(String(describing: error))") }
                XCTAssertTrue(message.contains("already runs 1 streams"), message)
            }
            let first = try await held
            XCTAssertEqual(first.closeCode, 4408)
        }
    }

    /// A server that takes the connection and never answers (not even the upgrade): the edge client gives up after
    /// its reply timeout with one clear error, instead of waiting forever.
    func testEdgeClientGivesUpOnASilentServer() async throws {
        let dir = try temporaryDirectory(self, prefix: "tuss-server-tests")
        let codec = try fixtureCodec()
        let listener = try SilentListener()
        defer { listener.close() }
        let input = try writeWAV(signal(seconds: 1, rate: 16000, channels: 1), rate: 16000,
                                 to: (dir as NSString).appendingPathComponent("talk.wav"))
        var options = EdgeStreamOptions(input: input, server: "ws://127.0.0.1:\(listener.port)", prompts: ["speech"],
                                        outputDirectory: (dir as NSString).appendingPathComponent("out"))
        options.replyTimeout = 1
        let started = ContinuousClock.now
        let silent = await edgeStreamFailure(options, codec: codec)
        guard case .unavailable(let message)? = silent else { return XCTFail(String(describing: silent)) }
        XCTAssertTrue(message.contains("sent nothing for 1 s"), message)
        XCTAssertLessThan((ContinuousClock.now - started) / .seconds(1), 15)
        // Cancelling the caller ends the stream at once, even while the upgrade is unanswered.
        options.replyTimeout = 600
        let waiting = Task { [options] in try await EdgeStreamClient.run(options, codec: codec) }
        try await Task.sleep(for: .milliseconds(300))
        let cancelled = ContinuousClock.now
        waiting.cancel()
        if case .success = await waiting.result { XCTFail("a cancelled stream succeeded") }
        XCTAssertLessThan((ContinuousClock.now - cancelled) / .seconds(1), 5)
        // Neither abandoned connection outlives its call: the client has closed both sockets.
        XCTAssertTrue(listener.nextClientHangsUp(within: 5), "the timed-out stream left its connection open")
        XCTAssertTrue(listener.nextClientHangsUp(within: 5), "the cancelled stream left its connection open")
        options.replyTimeout = 0.5
        let refused = await edgeStreamFailure(options, codec: codec)
        guard case .badConfiguration? = refused else { return XCTFail(String(describing: refused)) }
    }

    /// SIGTERM-style graceful shutdown lets an open stream finish and refuses new ones meanwhile.
    func testDrainFinishesOpenStreams() async throws {
        let dir = try temporaryDirectory(self, prefix: "tuss-server-tests")
        let codec = try fixtureCodec()
        let server = try SeparationServer(engine: try codecEngine(), limits: ServerLimits(idleSeconds: 5), drainSeconds: 5)
        let codes = try encodeCodes(signal(seconds: 0.4, rate: 16000, channels: 1), rate: 16000, codec: codec, dir: dir).bytes
        let start = StreamReply.text(StreamControl.text(StreamControl.Start(prompts: ["speech"])))
        let split = codes.count / 2
        try await withServer(server) { port in
            // The stream sends half, waits while the server starts draining, then sends the rest.
            async let open = converse(port, [start, .binary(codes.prefix(split))], linger: 0.6, later: [.binary(codes.suffix(from: split))])
            try await Task.sleep(for: .milliseconds(200))
            async let drained: Void = server.drain()
            try await Task.sleep(for: .milliseconds(100))
            let refused = try await converse(port, [start])
            XCTAssertEqual(refused.closeCode, 4503)
            let health = try await get(port, "/healthz")
            XCTAssertTrue(health.text.contains("draining"), health.text)
            let finished = try await open
            XCTAssertEqual(finished.closeCode, 1000, "\(finished.texts)")
            XCTAssertTrue(finished.texts.last?.contains("\"type\":\"done\"") ?? false)
            await drained
            XCTAssertEqual(server.activeStreams, 0)
        }
    }

    /// Damaged inputs (one byte changed anywhere, sent in random pieces) are refused one by one, over both routes,
    /// and the server keeps serving.
    func testDamagedInputsNeverTakeTheServerDown() async throws {
        let dir = try temporaryDirectory(self, prefix: "tuss-server-tests")
        let codec = try fixtureCodec()
        let server = try SeparationServer(engine: try codecEngine(), limits: ServerLimits(idleSeconds: 2))
        let codes = try encodeCodes(signal(seconds: 0.5, rate: 16000, channels: 2), rate: 16000, codec: codec, dir: dir).bytes
        let start = StreamReply.text(StreamControl.text(StreamControl.Start(prompts: ["speech", "sfx-mix"])))
        var state: UInt64 = 0x2545_F491_4F6C_DD1D
        func next(_ bound: Int) -> Int {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            return Int(state % UInt64(bound))
        }
        var cases: [(Data, [Data])] = []
        for _ in 0..<24 {
            var damaged = codes
            damaged[next(damaged.count)] ^= UInt8(1 + next(255))
            var pieces: [Data] = []
            var at = 0
            while at < damaged.count {
                let n = min(damaged.count - at, 1 + next(120))
                pieces.append(damaged.subdata(in: at..<(at + n)))
                at += n
            }
            cases.append((damaged, pieces))
        }
        let damagedCases = cases
        try await withServer(server) { port in
            for (body, pieces) in damagedCases {
                let r = try await post(port, "/v1/separate?prompts=speech,sfx-mix", body: body)
                XCTAssertTrue([400, 422].contains(r.status), "\(r.status): \(String(decoding: r.body, as: UTF8.self))")
                let c = try await converse(port, [start] + pieces.map { .binary($0) })
                XCTAssertTrue([4400, 4401, 4422].contains(c.closeCode ?? 0), "\(String(describing: c.closeCode)) \(c.texts)")
            }
            let health = try await get(port, "/healthz")
            XCTAssertTrue(health.text.contains("\"status\":\"ok\""), health.text)
            let good = try await converse(port, [start, .binary(codes)])
            XCTAssertEqual(good.closeCode, 1000)
        }
    }
}
