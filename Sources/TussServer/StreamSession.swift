import Foundation
import TussModels
import TussPipeline

/// One `/v1/stream` conversation as a state machine, independent of the network: feed it the client's messages,
/// send what it answers. Every error is a `ServerError` whose close code ends the stream.
public struct StreamSession {
    enum State {
        case awaitingStart
        case codes(prompts: [Prompt], parser: CodesStreamParser, fan: CodesFanOut?)
        case opus(OpusStreamReceiver, fan: CodesFanOut)
        case finished
    }

    let engine: SeparationEngine
    let limits: ServerLimits
    private var state = State.awaitingStart
    /// Code frames received (per channel) and sent (per channel, per output) so far.
    public private(set) var framesIn: Int64 = 0
    public private(set) var framesOut: Int64 = 0
    /// The number of outputs (prompts) once started.
    public private(set) var outputs = 0

    /// Creates a session that has seen nothing yet.
    public init(engine: SeparationEngine, limits: ServerLimits) {
        self.engine = engine
        self.limits = limits
    }

    /// True once the stream is complete and `done` was answered.
    public var isFinished: Bool {
        if case .finished = state { return true }
        return false
    }

    /// Handles a text message: `start` first, `end` for an Opus stream.
    public mutating func receive(text: String) throws(ServerError) -> [StreamReply] {
        switch (StreamControl.type(of: text), state) {
        case ("start", .awaitingStart):
            return try start(StreamControl.decode(StreamControl.Start.self, from: text))
        case ("start", _):
            throw .badRequest("a second start message: one stream carries one input; open a new stream")
        case ("end", .opus(var encoder, var fan)):
            state = .finished
            var replies: [StreamReply] = []
            let rest: [CodesChunk]
            do { rest = try encoder.finish() } catch { throw .badRequest("\(error)") }
            for chunk in rest {
                replies += try fan.push(chunk).map(StreamReply.piece)
                try count(chunk, &fan)
            }
            replies += try finish(&fan)
            return replies
        case ("end", .codes):
            throw .badRequest("a codes stream ends with its end marker (TEND), not an end message")
        case (nil, _):
            throw .badRequest("text messages must be JSON control messages with a type (start, end)")
        case (let other?, _):
            throw .badRequest("unexpected '\(other)' message in this state; see docs/protocol.md")
        }
    }

    /// Handles a binary message: codes-format bytes (codes transport) or the next bytes of the Ogg Opus stream (opus
    /// transport); either may be split anywhere.
    public mutating func receive(binary: Data) throws(ServerError) -> [StreamReply] {
        switch state {
        case .awaitingStart:
            throw .badRequest("binary data before the start message: send {\"type\":\"start\",…} first")
        case .finished:
            throw .badRequest("data after the end of the stream")
        case .codes(let prompts, var parser, var fan):
            state = .finished  // until this message has been handled without error
            let events: [CodesStreamEvent]
            do { events = try parser.feed(binary) } catch { throw codesError(error) }
            var replies: [StreamReply] = []
            for event in events {
                switch event {
                case .header(let header):
                    fan = try engine.fanOut(for: header, prompts: prompts)
                case .chunk(let chunk):
                    guard var f = fan else { throw .internalError("a chunk arrived before the header") }
                    replies += try f.push(chunk).map(StreamReply.piece)
                    try count(chunk, &f)
                    fan = f
                case .end:
                    guard var f = fan else { throw .internalError("the end marker arrived before the header") }
                    replies += try finish(&f)
                    return replies
                }
            }
            state = .codes(prompts: prompts, parser: parser, fan: fan)
            return replies
        case .opus(var encoder, var fan):
            state = .finished
            let chunks: [CodesChunk]
            do { chunks = try encoder.push(binary) } catch { throw .badRequest("\(error)") }
            var replies: [StreamReply] = []
            for chunk in chunks {
                replies += try fan.push(chunk).map(StreamReply.piece)
                try count(chunk, &fan)
            }
            state = .opus(encoder, fan: fan)
            return replies
        }
    }

    /// Called when the client closes: an unfinished stream is truncated.
    public func connectionClosed() throws(ServerError) {
        switch state {
        case .finished: return
        case .awaitingStart: throw .truncated("the stream closed before its start message")
        default: throw .truncated("the stream closed before its end (codes end marker or end message): the outputs are incomplete")
        }
    }

    private mutating func start(_ start: StreamControl.Start) throws(ServerError) -> [StreamReply] {
        guard !start.prompts.isEmpty else { throw .badRequest("give at least one prompt") }
        guard start.prompts.count <= limits.maxPrompts else {
            throw .badRequest("\(start.prompts.count) prompts; this server takes at most \(limits.maxPrompts)")
        }
        let prompts = try parsePrompts(start.prompts.joined(separator: ","))
        let codec = try engine.requireCodec()
        outputs = prompts.count
        switch start.transport {
        case .codes:
            state = .codes(prompts: prompts, parser: CodesStreamParser(), fan: nil)
        case .opus:
            guard let rate = start.sampleRate, let channels = start.channels, let length = start.length,
                  (1...384_000).contains(rate), (1...2).contains(channels), length >= 0 else {
                throw .badRequest("an opus stream's start needs sample_rate (1…384000), channels (1 or 2) and length (≥ 0)")
            }
            let encoder: OpusStreamReceiver
            do { encoder = try OpusStreamReceiver(codec: codec, sampleRate: rate, channels: channels, length: Int64(length)) } catch {
                throw .badRequest("\(error)")
            }
            state = .opus(encoder, fan: try engine.fanOut(for: encoder.header, prompts: prompts))
        }
        let ready = StreamControl.Ready(outputs: Prompt.outputNames(for: prompts), codec: codec.identity.name,
                                        codecSHA256: codec.identity.weightsHash.map { String(format: "%02x", $0) }.joined(),
                                        sampleRate: codec.codec.config.sampleRate, hopLength: codec.codec.config.hopLength,
                                        lookaheadFrames: engine.masker?.masker.config.lookahead ?? 0)
        return [.text(StreamControl.text(ready))]
    }

    private mutating func count(_ chunk: CodesChunk, _ fan: inout CodesFanOut) throws(ServerError) {
        guard chunk.channel == 0 else { return }
        framesIn += Int64(chunk.frameCount)
        framesOut = fan.framesOut
        let frameRate = Double(fan.inputHeader.sampleRate) / Double(fan.inputHeader.hopLength)
        if Double(framesIn) / frameRate > limits.maxStreamSeconds {
            throw .tooLarge("the stream is longer than this server's limit of \(Int(limits.maxStreamSeconds)) s: split it into several streams")
        }
    }

    private mutating func finish(_ fan: inout CodesFanOut) throws(ServerError) -> [StreamReply] {
        var replies = try fan.finish().map(StreamReply.piece)
        framesOut = fan.framesOut
        replies.append(.text(StreamControl.text(StreamControl.Done(framesIn: framesIn, framesOut: framesOut))))
        state = .finished
        return replies
    }
}

/// Parses a comma-separated prompt list into the server's error type.
func parsePrompts(_ text: String) throws(ServerError) -> [Prompt] {
    do { return try Prompt.parseList(text) } catch { throw .badRequest("\(error)") }
}
