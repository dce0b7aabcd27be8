import Foundation
import TussAudio
import TussModels
import TussPipeline
import TussTestSupport
import XCTest
@testable import TussServer

/// `POST /v1/separate`, `/healthz` and `/metrics` over loopback, and every batch error path.
final class BatchRouteTests: XCTestCase {
    func testSpectralPathReturnsOneAudioFilePerPrompt() async throws {
        let dir = try temporaryDirectory(self, prefix: "tuss-server-tests")
        let engine = try SeparationEngine(spectral: try embeddedSpectral(), codec: nil, masker: nil)
        let server = try SeparationServer(engine: engine, limits: ServerLimits())
        let rate = 16000
        let input = try Data(contentsOf: URL(fileURLWithPath: try writeWAV(signal(seconds: 1.5, rate: rate, channels: 1), rate: rate,
                                                                             to: (dir as NSString).appendingPathComponent("mix.wav"))))
        let expected = try engine.spectral?.separate(signal(seconds: 1.5, rate: rate, channels: 1), sampleRate: rate,
                                                     prompts: Prompt.parseList("speech,sfx-mix"))
        let response = try await withServer(server) { port in try await post(port, "/v1/separate?prompts=speech,sfx-mix", body: input) }
        XCTAssertEqual(response.status, 200, String(decoding: response.body, as: UTF8.self))
        XCTAssertEqual(response.type, StemContainer.mediaType)
        let container = try StemContainer.decode(response.body)
        XCTAssertEqual(container.entries.map(\.name), ["speech", "sfx-mix"])
        for (i, entry) in container.entries.enumerated() {
            XCTAssertEqual(entry.mediaType, "audio/wav")
            let path = (dir as NSString).appendingPathComponent("out-\(i).wav")
            try entry.data.write(to: URL(fileURLWithPath: path))
            let audio = try AudioFileReader(path: path).readAll()
            XCTAssertEqual(audio[0].count, 24000)
            // Same samples as the in-process separation (the file is 32-bit float).
            let reference = try XCTUnwrap(expected)[i][0]
            let err = zip(audio[0], reference).map { abs($0 - $1) }.max() ?? 1
            XCTAssertLessThan(err, 1e-5)
        }
    }

    /// `serve --shifts N` reaches every spectral request: the response is the shifted separation, not the plain one.
    func testShiftsOfTheServedSeparatorApplyToRequests() async throws {
        let dir = try temporaryDirectory(self, prefix: "tuss-server-tests")
        let plain = try embeddedSpectral()
        let shifted = try SpectralSeparator(model: plain.model, options: SeparationOptions(quiet: true, shifts: 2))
        let server = try SeparationServer(engine: try SeparationEngine(spectral: shifted, codec: nil, masker: nil), limits: ServerLimits())
        let x = signal(seconds: 1.0, rate: 16000, channels: 1)
        let input = try Data(contentsOf: URL(fileURLWithPath: try writeWAV(x, rate: 16000, to: (dir as NSString).appendingPathComponent("mix.wav"))))
        let response = try await withServer(server) { port in try await post(port, "/v1/separate?prompts=speech", body: input) }
        XCTAssertEqual(response.status, 200, String(decoding: response.body, as: UTF8.self))
        let entry = try XCTUnwrap(try StemContainer.decode(response.body).entries.first)
        let path = (dir as NSString).appendingPathComponent("speech.wav")
        try entry.data.write(to: URL(fileURLWithPath: path))
        let audio = try AudioFileReader(path: path).readAll()[0]
        let prompts = try Prompt.parseList("speech")
        let expected = try shifted.separate(x, sampleRate: 16000, prompts: prompts)[0][0]
        let unshifted = try plain.separate(x, sampleRate: 16000, prompts: prompts)[0][0]
        XCTAssertLessThan(zip(audio, expected).map { abs($0 - $1) }.max() ?? 1, 1e-5)
        XCTAssertGreaterThan(zip(audio, unshifted).map { abs($0 - $1) }.max() ?? 0, 1e-4)

        try assertToolFails(["serve", "--port", "0", "--shifts", "0"], "--shifts must be between 1 and 16", timeout: 60)
    }

    func testRemainderAsAResidualEntryOrSharedOut() async throws {
        let dir = try temporaryDirectory(self, prefix: "tuss-server-tests")
        let engine = try SeparationEngine(spectral: try embeddedSpectral(), codec: nil, masker: nil)
        let server = try SeparationServer(engine: engine, limits: ServerLimits())
        let x = signal(seconds: 1.2, rate: 16000, channels: 1)
        let input = try Data(contentsOf: URL(fileURLWithPath: try writeWAV(x, rate: 16000, to: (dir as NSString).appendingPathComponent("mix.wav"))))
        let uris = ["/v1/separate?prompts=speech&remainder=bogus", "/v1/separate?prompts=speech&remainder=ignored",
                    "/v1/separate?prompts=speech&remainder=spread&path=codec"]
        let (residual, spread, refused) = try await withServer(server) { port in
            var refused: [(status: Int, type: String, body: Data)] = []
            for uri in uris { refused.append(try await post(port, uri, body: input)) }
            return (try await post(port, "/v1/separate?prompts=speech&remainder=residual", body: input),
                    try await post(port, "/v1/separate?prompts=speech,sfx-mix&remainder=spread", body: input), refused)
        }
        XCTAssertEqual(residual.status, 200, String(decoding: residual.body, as: UTF8.self))
        XCTAssertEqual(spread.status, 200, String(decoding: spread.body, as: UTF8.self))
        let withResidual = try StemContainer.decode(residual.body), shared = try StemContainer.decode(spread.body)
        XCTAssertEqual(withResidual.entries.map(\.name), ["speech", "residual"])
        XCTAssertEqual(shared.entries.map(\.name), ["speech", "sfx-mix"])
        for container in [withResidual, shared] {
            var sum = [Float](repeating: 0, count: x[0].count)
            for (i, entry) in container.entries.enumerated() {
                let path = (dir as NSString).appendingPathComponent("e-\(i).wav")
                try entry.data.write(to: URL(fileURLWithPath: path))
                let audio = try AudioFileReader(path: path).readAll()[0]
                XCTAssertEqual(audio.count, x[0].count)
                for t in 0..<sum.count { sum[t] += audio[t] }
            }
            XCTAssertLessThan(zip(sum, x[0]).map { abs($0 - $1) }.max() ?? 1, 1e-5, "the entries sum to the input")
        }
        for (uri, r) in zip(uris, refused) {
            XCTAssertEqual(r.status, 400, uri)
            XCTAssertEqual(errorKind(r.body), "bad_request", uri)
        }
    }

    func testCodesPathMatchesOfflineSeparationAndDecodes() async throws {
        let dir = try temporaryDirectory(self, prefix: "tuss-server-tests")
        let codec = try fixtureCodec()
        let server = try SeparationServer(engine: try codecEngine(), limits: ServerLimits())
        let rate = 22050
        let (body, bin) = try encodeCodes(signal(seconds: 1.1, rate: rate, channels: 2), rate: rate, codec: codec, dir: dir)
        let input = try CodesReader(data: body)
        let offline = try offlineSeparation(bin, prompts: "speech,speech", dir: dir)
        let (codes, audio) = try await withServer(server) { port in
            (try await post(port, "/v1/separate?prompts=speech,speech", body: body),
             try await post(port, "/v1/separate?prompts=speech&decode=1", body: body))
        }
        XCTAssertEqual(codes.status, 200, String(decoding: codes.body, as: UTF8.self))
        let container = try StemContainer.decode(codes.body)
        XCTAssertEqual(container.entries.map(\.name), ["speech-1", "speech-2"])
        for (p, entry) in container.entries.enumerated() {
            XCTAssertEqual(entry.mediaType, StemContainer.codesMediaType)
            let reader = try CodesReader(data: entry.data)
            XCTAssertEqual(reader.header.originalLength, input.header.originalLength)
            XCTAssertEqual(reader.header.channels, 2)
            XCTAssertEqual(try reader.readAll(), offline[p])
        }
        XCTAssertEqual(audio.status, 200)
        let wav = try XCTUnwrap(StemContainer.decode(audio.body).entries.first)
        XCTAssertEqual(wav.mediaType, "audio/wav")
        let path = (dir as NSString).appendingPathComponent("speech.wav")
        try wav.data.write(to: URL(fileURLWithPath: path))
        let info = try AudioFileReader(path: path).info
        XCTAssertEqual(info.frames, input.header.originalLength)
        XCTAssertEqual(info.sampleRate, rate)
        XCTAssertEqual(info.channels, 2)
    }

    /// Audio sent with path=codec is encoded on the server and gives the same codes as encoding first.
    func testAudioBodyOnTheCodecPath() async throws {
        let dir = try temporaryDirectory(self, prefix: "tuss-server-tests")
        let codec = try fixtureCodec()
        let server = try SeparationServer(engine: try codecEngine(), limits: ServerLimits())
        let planar = signal(seconds: 0.7, rate: 16000, channels: 1)
        let wav = try writeWAV(planar, rate: 16000, to: (dir as NSString).appendingPathComponent("a.wav"))
        let (_, bin) = try encodeCodes(planar, rate: 16000, codec: codec, dir: dir)
        let offline = try offlineSeparation(bin, prompts: "sfx-mix", dir: dir)
        let r = try await withServer(server) { port in
            try await post(port, "/v1/separate?prompts=sfx-mix&path=codec", body: try Data(contentsOf: URL(fileURLWithPath: wav)))
        }
        XCTAssertEqual(r.status, 200, String(decoding: r.body, as: UTF8.self))
        let entry = try XCTUnwrap(StemContainer.decode(r.body).entries.first)
        XCTAssertEqual(try CodesReader(data: entry.data).readAll(), offline[0])
    }

    /// Every malformed, oversized, wrong-codec or truncated request gets its status and JSON kind, and the server
    /// stays up and counts them.
    func testErrorPathsAnswerWithStatusAndKind() async throws {
        let dir = try temporaryDirectory(self, prefix: "tuss-server-tests")
        let codec = try fixtureCodec()
        let limits = ServerLimits(maxBodyBytes: 200_000, maxPrompts: 2)
        let withMasker = try SeparationServer(engine: try codecEngine(), limits: limits)
        let codes = try encodeCodes(signal(seconds: 0.5, rate: 16000, channels: 1), rate: 16000, codec: codec, dir: dir).bytes
        // Another codec identity: same layout, another hash.
        var foreignHeader = try CodesReader(data: codes).header
        foreignHeader.codec = CodecIdentity(name: "other-codec", weightsHash: [UInt8](repeating: 0xab, count: 32))
        let foreign = try CodesFraming.header(foreignHeader) + CodesFraming.end()
        let cases: [(String, Data, Int, String)] = [
            ("/v1/separate", codes, 400, "bad_request"),                                  // no prompts
            ("/v1/separate?prompts=kazoo", codes, 400, "bad_request"),                    // unknown prompt
            ("/v1/separate?prompts=speech,sfx,drums", codes, 400, "bad_request"),         // over --max-prompts
            ("/v1/separate?prompts=speech&decode=maybe", codes, 400, "bad_request"),
            ("/v1/separate?prompts=speech&path=spectral", codes, 400, "bad_request"),     // codes only take the codec path
            ("/v1/separate?prompts=speech", Data(), 400, "bad_request"),                  // empty body
            ("/v1/separate?prompts=speech", Data("hello, not audio".utf8), 400, "bad_request"),
            ("/v1/separate?prompts=speech", codes.prefix(codes.count - 3), 400, "truncated"),
            ("/v1/separate?prompts=speech", codes.prefix(60), 400, "truncated"),
            ("/v1/separate?prompts=speech", foreign, 422, "wrong_codec"),
            ("/v1/separate?prompts=speech", Data(repeating: 1, count: 200_001), 413, "too_large"),
            ("/v1/separate?prompts=speech&path=bogus", codes, 400, "bad_request"),
            ("/v1/separate?prompts=speech&remainder=residual", codes, 400, "bad_request"),   // codes: no remainder
        ]
        var bytes = codes
        bytes[bytes.count - 20] ^= 0x55  // inside the last chunk: its CRC fails
        let damaged = bytes
        try await withServer(withMasker) { port in
            for (uri, body, status, kind) in cases {
                let r = try await post(port, uri, body: body)
                XCTAssertEqual(r.status, status, "\(uri) \(body.count) bytes: \(String(decoding: r.body, as: UTF8.self))")
                XCTAssertEqual(errorKind(r.body), kind, uri)
                XCTAssertEqual(r.type, "application/json")
            }
            let r = try await post(port, "/v1/separate?prompts=speech", body: damaged)
            XCTAssertEqual(r.status, 400)
            XCTAssertTrue(String(decoding: r.body, as: UTF8.self).contains("CRC") || String(decoding: r.body, as: UTF8.self).contains("checksum"))
            let health = try await get(port, "/healthz")
            XCTAssertEqual(health.status, 200)
            XCTAssertTrue(health.text.contains("\"status\":\"ok\""), health.text)
            let metrics = try await get(port, "/metrics")
            XCTAssertTrue(metrics.text.contains("tuss_errors_total{kind=\"wrong_codec\"} 1"), metrics.text)
            XCTAssertTrue(metrics.text.contains("tuss_errors_total{kind=\"too_large\"} 1"), metrics.text)
            XCTAssertTrue(metrics.text.contains("tuss_requests_total{route=\"separate\",status=\"400\"}"), metrics.text)
            XCTAssertTrue(metrics.text.contains("tuss_active_streams 0"), metrics.text)
        }
        // Routes that need a model the server lacks answer 503 with the option to pass.
        let bare = try SeparationServer(engine: try codecEngine(masker: false), limits: limits)
        let wav = try Data(contentsOf: URL(fileURLWithPath: try writeWAV(signal(seconds: 0.3, rate: 16000, channels: 1), rate: 16000,
                                                                           to: (dir as NSString).appendingPathComponent("x.wav"))))
        try await withServer(bare) { port in
            let r1 = try await post(port, "/v1/separate?prompts=speech", body: codes)
            XCTAssertEqual(r1.status, 503)
            XCTAssertTrue(String(decoding: r1.body, as: UTF8.self).contains("--masker"))
            let r2 = try await post(port, "/v1/separate?prompts=speech", body: wav)
            XCTAssertEqual(r2.status, 503)
            XCTAssertTrue(String(decoding: r2.body, as: UTF8.self).contains("--model"))
        }
    }
}
