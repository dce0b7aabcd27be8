import Foundation

/// Which codec made a stream of codes: its name and a 32-byte digest of its weights.
///
/// The digest is computed by the caller (SHA-256 of the weights file, or any 32-byte digest used consistently);
/// the codes file only stores it and compares it, so decoding with other weights is refused.
public struct CodecIdentity: Sendable, Equatable, Hashable {
    /// Codec name, 1...255 bytes of UTF-8 without control characters (for example `dac_44khz`).
    public var name: String
    /// A 32-byte digest of the codec weights.
    public var weightsHash: [UInt8]

    /// Makes an identity from a name and a 32-byte weights digest (checked when written).
    public init(name: String, weightsHash: [UInt8]) {
        self.name = name
        self.weightsHash = weightsHash
    }
}

/// Everything a decoder needs besides the codes: codec identity, code layout, and the original audio's shape.
public struct CodesHeader: Sendable, Equatable {
    /// The codec that made the codes.
    public var codec: CodecIdentity
    /// The codec's sample rate in Hz (1...4_294_967_295).
    public var sampleRate: Int
    /// Samples per frame at the codec's sample rate (1...4_294_967_295).
    public var hopLength: Int
    /// Codebooks stored per frame (1...1024).
    public var codebooks: Int
    /// Entries per codebook (2...65536); codes are `0..<codebookSize`.
    public var codebookSize: Int
    /// Length of the original input in samples per channel, at `originalSampleRate` (0...Int64.max).
    public var originalLength: Int64
    /// Sample rate of the original input in Hz (1...4_294_967_295).
    public var originalSampleRate: Int
    /// Channels, each coded separately (1...256).
    public var channels: Int
    /// Frames per channel when known up front; nil while streaming (file writers fill it in at `finish()`).
    public var frames: Int64?

    /// Makes a header; values are checked when the header is written or framed.
    public init(
        codec: CodecIdentity, sampleRate: Int, hopLength: Int, codebooks: Int, codebookSize: Int,
        originalLength: Int64, originalSampleRate: Int, channels: Int, frames: Int64? = nil
    ) {
        self.codec = codec
        self.sampleRate = sampleRate
        self.hopLength = hopLength
        self.codebooks = codebooks
        self.codebookSize = codebookSize
        self.originalLength = originalLength
        self.originalSampleRate = originalSampleRate
        self.channels = channels
        self.frames = frames
    }

    /// Refuses to go on unless `codec` (name and weights hash) is the codec these codes were made with.
    public func requireCodec(_ codec: CodecIdentity) throws(CodesFileError) {
        guard codec == self.codec else { throw .codecMismatch(file: self.codec, expected: codec) }
    }

    /// Bits each code takes in a payload: ceil(log2(codebookSize)); valid only for a checked header.
    var bitsPerCode: Int { CodesFormat.bitsPerCode(codebookSize: codebookSize) }
}

/// One run of frames of one channel: `codes[codebook][frame]`, every codebook row the same length.
public struct CodesChunk: Sendable, Equatable {
    /// The channel (0..<channels) these codes belong to.
    public var channel: Int
    /// Index of the chunk's first frame within its channel.
    public var firstFrame: Int64
    /// Codes as `[codebook][frame]`, each in `0..<codebookSize`.
    public var codes: [[Int32]]

    /// Makes a chunk of `codes[codebook][frame]` for `channel` starting at frame `firstFrame`.
    public init(channel: Int, firstFrame: Int64, codes: [[Int32]]) {
        self.channel = channel
        self.firstFrame = firstFrame
        self.codes = codes
    }

    /// Frames in the chunk (the length of the first codebook row).
    public var frameCount: Int { codes.first?.count ?? 0 }
}

/// What a `CodesStreamParser` recognized in the bytes fed so far.
public enum CodesStreamEvent: Sendable, Equatable {
    /// The stream's header (always first, exactly once).
    case header(CodesHeader)
    /// A complete, checked chunk.
    case chunk(CodesChunk)
    /// The end-of-stream marker: the stream is complete.
    case end
}
