import Foundation
import TussAudio
import TussModels
import TussPipeline

/// One `/v1/stream` conversation as a state machine, independent of the network: feed it the client's messages,
/// send what it answers. Every error is a `ServerError` whose close code ends the stream.
public struct StreamSession {
    enum State {
        case awaitingStart
        case codes(prompts: [Prompt], parser: CodesStreamParser, fan: CodesFanOut?)
        case opus(OpusIngest, fan: CodesFanOut)
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
        case ("end", .opus(var ingest, var fan)):
            state = .finished
            var replies: [StreamReply] = []
            for chunk in try ingest.finish() {
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

    /// Handles a binary message: codes-format bytes (codes transport) or one Ogg Opus segment (opus transport).
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
        case .opus(var ingest, var fan):
            state = .finished
            var replies: [StreamReply] = []
            for chunk in try ingest.push(OpusSegment.decode(binary)) {
                replies += try fan.push(chunk).map(StreamReply.piece)
                try count(chunk, &fan)
            }
            state = .opus(ingest, fan: fan)
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
            let config = codec.codec.config
            let header = CodesHeader(codec: codec.identity, sampleRate: config.sampleRate, hopLength: config.hopLength,
                                     codebooks: config.codebooks, codebookSize: config.codebookSize, originalLength: length,
                                     originalSampleRate: rate, channels: channels, frames: nil)
            let fan = try engine.fanOut(for: header, prompts: prompts)
            state = .opus(try OpusIngest(codec: codec, sampleRate: rate, channels: channels), fan: fan)
        }
        let ready = StreamControl.Ready(outputs: Prompt.outputNames(for: prompts), codec: codec.identity.name,
                                        codecSHA256: codec.identity.weightsHash.map { String(format: "%02x", $0) }.joined(),
                                        sampleRate: codec.codec.config.sampleRate, hopLength: codec.codec.config.hopLength)
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

/// The opus transport's input side: Opus segments → audio at the codec rate → codes, per channel, in time ranges.
struct OpusIngest {
    let channels: Int
    let sampleRate: Int
    private let resampler: Resampler?
    private var encoders: [ChunkedEncoder]
    private var frame: Int64 = 0

    init(codec: CodecHandle, sampleRate: Int, channels: Int) throws(ServerError) {
        self.channels = channels
        self.sampleRate = sampleRate
        let rate = codec.codec.config.sampleRate
        do { resampler = rate == sampleRate ? nil : try Resampler(from: sampleRate, to: rate, channels: channels) } catch {
            throw .badRequest("cannot resample \(sampleRate) Hz to the codec's \(rate) Hz: \(error)")
        }
        encoders = (0..<channels).map { _ in ChunkedEncoder(codec: codec.codec, codebooks: codec.codec.config.codebooks, chunkFrames: 8) }
    }

    /// Encodes a decoded segment; returns the complete code chunks (one per channel per time range).
    mutating func push(_ segment: (planar: [[Float]], sampleRate: Int)) throws(ServerError) -> [CodesChunk] {
        guard segment.sampleRate == sampleRate, segment.planar.count == channels else {
            throw .badRequest("an Opus segment has \(segment.planar.count) channels at \(segment.sampleRate) Hz; the start message said \(channels) at \(sampleRate) Hz")
        }
        let x: [[Float]]
        do { x = try resampler?.process(segment.planar) ?? segment.planar } catch { throw .internalError("resampling failed: \(error)") }
        return chunks((0..<channels).map { encoders[$0].push(x[$0]) })
    }

    /// Flushes the resampler and the encoders.
    mutating func finish() throws(ServerError) -> [CodesChunk] {
        var out: [CodesChunk] = []
        if let resampler {
            do {
                let rest = try resampler.flush()
                out += chunks((0..<channels).map { encoders[$0].push(rest[$0]) })
            } catch { throw .internalError("resampling failed: \(error)") }
        }
        return out + chunks((0..<channels).map { encoders[$0].finish() })
    }

    private mutating func chunks(_ perChannel: [[[Int32]]]) -> [CodesChunk] {
        let n = perChannel.first?.first?.count ?? 0
        guard n > 0 else { return [] }
        defer { frame += Int64(n) }
        return perChannel.enumerated().map { CodesChunk(channel: $0.offset, firstFrame: frame, codes: $0.element) }
    }
}
