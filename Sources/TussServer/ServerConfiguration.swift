import Foundation

/// Limits that keep one request or stream from exhausting the server.
///
/// Every limit is checked before the work it bounds: a body is refused while it is read, a stream before it is
/// accepted, a message before it is parsed.
public struct ServerLimits: Sendable, Equatable {
    /// Largest request body (codes or audio) accepted by `POST /v1/separate`, in bytes.
    public var maxBodyBytes: Int
    /// Most prompts in one request or stream.
    public var maxPrompts: Int
    /// Most WebSocket streams open at once; the next one is refused with close code 4429.
    public var maxStreams: Int
    /// Seconds a stream may stay silent before it is closed with close code 4408.
    public var idleSeconds: Double
    /// Largest single WebSocket message, in bytes.
    public var maxMessageBytes: Int
    /// Most seconds of audio one stream may carry (codec frames are converted with the codec's frame rate).
    public var maxStreamSeconds: Double

    /// Creates limits; the defaults suit one replica with a few cores.
    public init(maxBodyBytes: Int = 64 << 20, maxPrompts: Int = 8, maxStreams: Int = 64, idleSeconds: Double = 30,
                maxMessageBytes: Int = 1 << 20, maxStreamSeconds: Double = 4 * 3600) {
        self.maxBodyBytes = maxBodyBytes
        self.maxPrompts = maxPrompts
        self.maxStreams = maxStreams
        self.idleSeconds = idleSeconds
        self.maxMessageBytes = maxMessageBytes
        self.maxStreamSeconds = maxStreamSeconds
    }

    /// Checks that every limit is positive.
    public func validate() throws(ServerError) {
        guard maxBodyBytes > 0 else { throw .badConfiguration("--max-body must be a positive number of bytes") }
        guard (1...8).contains(maxPrompts) else { throw .badConfiguration("--max-prompts must be in 1...8") }
        guard maxStreams > 0 else { throw .badConfiguration("--max-streams must be at least 1") }
        guard idleSeconds > 0, idleSeconds.isFinite else { throw .badConfiguration("--idle-timeout must be a positive number of seconds") }
        guard maxMessageBytes >= 1024 else { throw .badConfiguration("the message limit must be at least 1024 bytes") }
        guard maxStreamSeconds > 0 else { throw .badConfiguration("the stream length limit must be positive") }
    }
}
