import Foundation
import TussModels
import TussPipeline

/// The JSON control messages of the `/v1/stream` WebSocket protocol (docs/protocol.md).
public enum StreamControl {
    /// What the client streams: codes made on the device, or Ogg Opus audio the server encodes.
    public enum Transport: String, Sendable, Codable {
        case codes
        case opus
    }

    /// The client's first message.
    public struct Start: Sendable, Codable, Equatable {
        public var type = "start"
        /// Prompt names, as on the command line.
        public var prompts: [String]
        /// What the binary messages carry.
        public var transport: Transport
        /// Opus transport only: the audio's sample rate, channel count and total length in samples per channel.
        public var sampleRate: Int?
        public var channels: Int?
        public var length: Int64?

        enum CodingKeys: String, CodingKey {
            case type, prompts, transport
            case sampleRate = "sample_rate"
            case channels, length
        }

        /// A start message for a codes stream.
        public init(prompts: [String]) {
            self.prompts = prompts
            transport = .codes
        }

        /// A start message for an Ogg Opus stream of `channels` channels at `sampleRate`, `length` samples long.
        public init(prompts: [String], opusSampleRate: Int, channels: Int, length: Int64) {
            self.prompts = prompts
            transport = .opus
            sampleRate = opusSampleRate
            self.channels = channels
            self.length = length
        }
    }

    /// The server's answer to `start`: the outputs, in the order of the output index byte, and its codec.
    public struct Ready: Sendable, Codable, Equatable {
        public var type = "ready"
        public var outputs: [String]
        public var codec: String
        public var codecSHA256: String
        public var sampleRate: Int
        public var hopLength: Int
        /// Frames each output runs behind the input (the masker's lookahead; 0 for a causal masker). Optional in
        /// the message, so a client also reads servers that predate it.
        public var lookaheadFrames: Int?

        enum CodingKeys: String, CodingKey {
            case type, outputs, codec
            case codecSHA256 = "codec_sha256"
            case sampleRate = "sample_rate"
            case hopLength = "hop_length"
            case lookaheadFrames = "lookahead_frames"
        }
    }

    /// The server's last message of a complete stream.
    public struct Done: Sendable, Codable, Equatable {
        public var type = "done"
        public var framesIn: Int64
        public var framesOut: Int64

        enum CodingKeys: String, CodingKey {
            case type
            case framesIn = "frames_in"
            case framesOut = "frames_out"
        }
    }

    /// An error: sent just before the server closes with `ServerError.closeCode`.
    public struct Failure: Sendable, Codable, Equatable {
        public var type = "error"
        public var kind: String
        public var message: String
    }

    /// The client's end of an Opus stream (a codes stream ends with its own end marker).
    public struct End: Sendable, Codable, Equatable {
        public var type = "end"
        public init() {}
    }

    /// Encodes a control message as JSON text.
    public static func text<T: Encodable>(_ message: T) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return (try? encoder.encode(message)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }

    /// The `type` field of a JSON control message, or nil when the text is not such a message.
    public static func type(of text: String) -> String? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else { return nil }
        return object["type"] as? String
    }

    /// Decodes a control message of a known type.
    public static func decode<T: Decodable>(_ type: T.Type, from text: String) throws(ServerError) -> T {
        do { return try JSONDecoder().decode(T.self, from: Data(text.utf8)) } catch {
            throw .badRequest("malformed \(T.self) message: \(error)")
        }
    }
}

/// What a stream session answers: text control messages or binary output pieces.
public enum StreamReply: Sendable, Equatable {
    case text(String)
    case binary(Data)

    /// A binary message carrying one output piece: the output index byte, then the codes-format bytes.
    static func piece(_ p: OutputPiece) -> StreamReply {
        var data = Data([UInt8(truncatingIfNeeded: p.output)])
        data.append(p.bytes)
        return .binary(data)
    }
}
