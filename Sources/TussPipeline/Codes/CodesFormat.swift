import Foundation

/// Constants and limits of codes format version 1 (see docs/codes-format.md).
enum CodesFormat {
    static let magic: [UInt8] = Array("TUSSCODE".utf8)
    static let version = 1
    static let chunkMarker: [UInt8] = Array("CHNK".utf8)
    static let endMarker: [UInt8] = Array("TEND".utf8)
    /// Header bytes before the codec name (magic through the name-length byte).
    static let fixedHeaderSize = 79
    /// Chunk bytes before the payload (marker through payload length).
    static let chunkHeaderSize = 26
    /// End-of-stream marker plus its CRC32.
    static let endSize = 8
    static let maxNameBytes = 255
    static let hashBytes = 32
    static let maxCodebooks = 1024
    static let maxCodebookSize = 65536
    static let maxChannels = 256
    static let maxFramesPerChunk = 1 << 20
    /// Frames × codebooks in one chunk; bounds one chunk to 32 MiB packed, 64 MiB decoded.
    static let maxCodesPerChunk = 1 << 24
    static let maxChunkIndex = Int(UInt32.max)
    /// Stored frame count meaning "unknown".
    static let unknownFrames = UInt64.max

    /// ceil(log2(codebookSize)) for codebookSize >= 2.
    static func bitsPerCode(codebookSize: Int) -> Int {
        Int.bitWidth - (max(codebookSize, 2) - 1).leadingZeroBitCount
    }

    /// Payload bytes for `frames` × `codebooks` codes of `bits` bits, padded to a whole byte.
    static func payloadSize(frames: Int, codebooks: Int, bits: Int) -> Int {
        (frames * codebooks * bits + 7) / 8
    }
}

/// Header fields, with their names in messages and their byte offsets in version 1.
enum CodesHeaderField: String {
    case sampleRate = "sample rate"
    case hopLength = "hop length"
    case codebooks = "codebook count"
    case codebookSize = "codebook size"
    case originalLength = "original length"
    case originalSampleRate = "original sample rate"
    case channels = "channel count"
    case frames = "frame count"
    case weightsHash = "weights hash"
    case nameLength = "codec name length"
    case name = "codec name"

    var offset: Int {
        switch self {
        case .sampleRate: return 10
        case .hopLength: return 14
        case .codebooks: return 18
        case .codebookSize: return 20
        case .originalLength: return 24
        case .originalSampleRate: return 32
        case .channels: return 36
        case .frames: return 38
        case .weightsHash: return 46
        case .nameLength: return 78
        case .name: return 79
        }
    }
}

extension CodesHeader {
    /// The first field that breaks a format limit and why, or nil when the header can be written.
    func formatProblem() -> (field: CodesHeaderField, reason: String)? {
        let u32 = Int(UInt32.max)
        let nameBytes = codec.name.utf8.count
        if nameBytes == 0 { return (.name, "is empty; name the codec (for example 'dac_44khz')") }
        if nameBytes > CodesFormat.maxNameBytes {
            return (.name, "is \(nameBytes) bytes of UTF-8, more than the limit of \(CodesFormat.maxNameBytes)")
        }
        if codec.name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
            return (.name, "contains control characters")
        }
        if codec.weightsHash.count != CodesFormat.hashBytes {
            return (.weightsHash, "has \(codec.weightsHash.count) bytes; it must be a 32-byte digest such as SHA-256")
        }
        if !(1...u32).contains(sampleRate) { return (.sampleRate, "is \(sampleRate); it must be 1...\(u32) Hz") }
        if !(1...u32).contains(hopLength) { return (.hopLength, "is \(hopLength); it must be 1...\(u32) samples") }
        if !(1...CodesFormat.maxCodebooks).contains(codebooks) {
            return (.codebooks, "is \(codebooks); it must be 1...\(CodesFormat.maxCodebooks)")
        }
        if !(2...CodesFormat.maxCodebookSize).contains(codebookSize) {
            return (.codebookSize, "is \(codebookSize); it must be 2...\(CodesFormat.maxCodebookSize)")
        }
        if originalLength < 0 { return (.originalLength, "is \(originalLength); it must not be negative") }
        if !(1...u32).contains(originalSampleRate) {
            return (.originalSampleRate, "is \(originalSampleRate); it must be 1...\(u32) Hz")
        }
        if !(1...CodesFormat.maxChannels).contains(channels) {
            return (.channels, "is \(channels); it must be 1...\(CodesFormat.maxChannels)")
        }
        if let frames, frames < 0 { return (.frames, "is \(frames); it must not be negative (use nil for unknown)") }
        return nil
    }
}

/// CRC-32 with the IEEE polynomial (reflected 0xEDB88320, initial and final XOR 0xFFFFFFFF), as zlib's `crc32()`.
enum CodesCRC32 {
    static let table: [UInt32] = (0..<256).map { index in
        var value = UInt32(index)
        for _ in 0..<8 { value = value & 1 == 1 ? (value >> 1) ^ 0xEDB8_8320 : value >> 1 }
        return value
    }

    /// The CRC-32 of `bytes`.
    static func checksum(_ bytes: ArraySlice<UInt8>) -> UInt32 {
        table.withUnsafeBufferPointer { table in
            bytes.withUnsafeBufferPointer { bytes in
                var crc: UInt32 = 0xFFFF_FFFF
                for byte in bytes { crc = table[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
                return crc ^ 0xFFFF_FFFF
            }
        }
    }
}

/// Little-endian reads from and writes to byte arrays.
enum CodesBytes {
    /// The `count`-byte little-endian unsigned value at `offset` (caller checks bounds).
    static func read(_ bytes: [UInt8], _ offset: Int, _ count: Int) -> UInt64 {
        var value: UInt64 = 0
        for index in 0..<count { value |= UInt64(bytes[offset + index]) << (8 * index) }
        return value
    }

    /// Appends the low `count` bytes of `value`, least significant first.
    static func append(_ value: UInt64, _ count: Int, to bytes: inout [UInt8]) {
        for index in 0..<count { bytes.append(UInt8(truncatingIfNeeded: value >> (8 * index))) }
    }

    /// Overwrites `count` bytes at `offset` with `value`, least significant first.
    static func put(_ value: UInt64, _ count: Int, at offset: Int, in bytes: inout [UInt8]) {
        for index in 0..<count { bytes[offset + index] = UInt8(truncatingIfNeeded: value >> (8 * index)) }
    }
}

/// Bit-packing of chunk payloads: frame-major, least significant bit first.
enum CodesBitPacking {
    /// Appends `codes[codebook][frame]` (all in range, rows of `frames`) packed at `bits` bits each.
    static func pack(_ codes: [[Int32]], frames: Int, bits: Int, to out: inout [UInt8]) {
        var accumulator: UInt64 = 0
        var pending = 0
        for frame in 0..<frames {
            for row in codes {
                accumulator |= UInt64(UInt32(truncatingIfNeeded: row[frame])) << pending
                pending += bits
                while pending >= 8 {
                    out.append(UInt8(truncatingIfNeeded: accumulator))
                    accumulator >>= 8
                    pending -= 8
                }
            }
        }
        if pending > 0 { out.append(UInt8(truncatingIfNeeded: accumulator)) }
    }

    /// A problem found while unpacking: why, and the payload byte it concerns.
    struct Problem: Error {
        var reason: String
        var byte: Int
    }

    /// Unpacks `frames` × `codebooks` codes from exactly the payload `bytes[range]` into `[codebook][frame]`.
    ///
    /// Fails on a code `>= codebookSize` or on padding bits that are not zero.
    static func unpack(
        _ bytes: [UInt8], _ range: Range<Int>, frames: Int, codebooks: Int, bits: Int, codebookSize: Int
    ) -> Result<[[Int32]], Problem> {
        var flat = [Int32](repeating: 0, count: frames * codebooks)
        let mask = (UInt64(1) << bits) - 1
        let limit = UInt64(codebookSize)
        var problem: Problem?
        bytes.withUnsafeBufferPointer { source in
            flat.withUnsafeMutableBufferPointer { flat in
                var accumulator: UInt64 = 0
                var available = 0
                var next = range.lowerBound
                var bit = 0
                for frame in 0..<frames {
                    for codebook in 0..<codebooks {
                        while available < bits {
                            accumulator |= UInt64(source[next]) << available
                            next += 1
                            available += 8
                        }
                        let code = accumulator & mask
                        if code >= limit {
                            problem = Problem(
                                reason: "code \(code) for frame \(frame) of the chunk, codebook \(codebook), is not "
                                    + "below the codebook size \(codebookSize)",
                                byte: bit / 8)
                            return
                        }
                        flat[codebook * frames + frame] = Int32(code)
                        accumulator >>= UInt64(bits)
                        available -= bits
                        bit += bits
                    }
                }
                if accumulator != 0 {
                    problem = Problem(reason: "padding bits after the last code are not zero", byte: bit / 8)
                }
            }
        }
        if let problem { return .failure(problem) }
        return .success((0..<codebooks).map { Array(flat[$0 * frames..<($0 + 1) * frames]) })
    }
}

/// The order rules for chunks: indices 0, 1, 2…; time range by time range; channels 0..<C in each; contiguous frames.
struct CodesChunkSequence: Sendable {
    let channels: Int
    let declaredFrames: Int64?
    /// Stream position of the next chunk (also its required index).
    private(set) var nextIndex = 0
    /// First frame of the current time range (every channel's next chunk starts here).
    private(set) var rangeStart: Int64 = 0
    /// Frames in the current time range, set by its channel-0 chunk.
    private(set) var rangeFrames = 0

    init(channels: Int, declaredFrames: Int64?) {
        self.channels = channels
        self.declaredFrames = declaredFrames
    }

    /// The channel whose chunk comes next.
    var expectedChannel: Int { nextIndex % channels }

    /// Frames per channel once the stream is complete (whole time ranges).
    var completedFrames: Int64 { rangeStart }

    /// Why a chunk of `frames` frames for `channel` starting at `firstFrame` cannot come next, or nil.
    func problem(channel: Int, firstFrame: Int64, frames: Int) -> String? {
        if channel != expectedChannel {
            return "it is for channel \(channel) but channel \(expectedChannel) comes next (each time range has one "
                + "chunk per channel, channels in order)"
        }
        if firstFrame != rangeStart {
            return "it starts at frame \(firstFrame) but channel \(channel) continues at frame \(rangeStart) "
                + "(chunks of a channel must be contiguous)"
        }
        if channel > 0 && frames != rangeFrames {
            return "it has \(frames) frames but channel 0 has \(rangeFrames) in this time range (all channels of "
                + "a time range have the same frames)"
        }
        if let declaredFrames, Int64(frames) > declaredFrames - rangeStart {
            return "it would take channel \(channel) to \(rangeStart + Int64(frames)) frames but the header "
                + "declares \(declaredFrames)"
        }
        return nil
    }

    /// Records a chunk that passed `problem`.
    mutating func accept(channel: Int, frames: Int) {
        if channel == 0 { rangeFrames = frames }
        nextIndex += 1
        if channel == channels - 1 {
            rangeStart += Int64(rangeFrames)
            rangeFrames = 0
        }
    }

    /// Why the stream cannot end here, or nil.
    func endProblem() -> String? {
        let written = expectedChannel
        if written != 0 {
            return "the time range from frame \(rangeStart) has chunks for channels 0..<\(written) but not for "
                + "channel\(channels - written == 1 ? "" : "s") \(written)..<\(channels)"
        }
        if let declaredFrames, declaredFrames != rangeStart {
            return "the channels have \(rangeStart) frames but the header declares \(declaredFrames)"
        }
        return nil
    }
}

/// The bytes of codes-file framing, for streaming them yourself (WebSocket messages, for example).
///
/// A stream is `header`, then `chunk` for index 0, 1, 2…, then `end`; `CodesWriter(sink:header:)` produces exactly
/// these units in order and checks the chunk sequence for you.
public enum CodesFraming {
    /// The header bytes; throws `CodesFileError.invalidHeader` when a value breaks a format limit.
    public static func header(_ header: CodesHeader) throws(CodesFileError) -> Data {
        if let (field, reason) = header.formatProblem() { throw .invalidHeader(field: field.rawValue, reason: reason) }
        return Data(encodeHeader(header))
    }

    /// The bytes of chunk number `index` (0, 1, 2… in stream order) for a stream with `header`.
    ///
    /// Checks the chunk's shape and codes against `header`, not its place in the sequence (`CodesWriter` does that).
    public static func chunk(_ chunk: CodesChunk, index: Int, header: CodesHeader) throws(CodesFileError) -> Data {
        if let (field, reason) = header.formatProblem() { throw .invalidHeader(field: field.rawValue, reason: reason) }
        if let reason = chunkProblem(chunk, index: index, header: header) {
            throw .invalidChunk(chunk: index, reason: reason)
        }
        return Data(encodeChunk(chunk, index: index, header: header))
    }

    /// The end-of-stream marker bytes (the same for every stream).
    public static func end() -> Data {
        Data(encodeEnd())
    }

    /// Header bytes for a header that passed `formatProblem`.
    static func encodeHeader(_ header: CodesHeader) -> [UInt8] {
        let name = Array(header.codec.name.utf8)
        var bytes = CodesFormat.magic
        bytes.reserveCapacity(CodesFormat.fixedHeaderSize + name.count + 4)
        CodesBytes.append(UInt64(CodesFormat.version), 2, to: &bytes)
        CodesBytes.append(UInt64(header.sampleRate), 4, to: &bytes)
        CodesBytes.append(UInt64(header.hopLength), 4, to: &bytes)
        CodesBytes.append(UInt64(header.codebooks), 2, to: &bytes)
        CodesBytes.append(UInt64(header.codebookSize), 4, to: &bytes)
        CodesBytes.append(UInt64(header.originalLength), 8, to: &bytes)
        CodesBytes.append(UInt64(header.originalSampleRate), 4, to: &bytes)
        CodesBytes.append(UInt64(header.channels), 2, to: &bytes)
        CodesBytes.append(header.frames.map { UInt64($0) } ?? CodesFormat.unknownFrames, 8, to: &bytes)
        bytes += header.codec.weightsHash
        bytes.append(UInt8(name.count))
        bytes += name
        CodesBytes.append(UInt64(CodesCRC32.checksum(bytes[...])), 4, to: &bytes)
        return bytes
    }

    /// Why `chunk` cannot be framed as chunk `index` under `header` (shape, sizes, code range), or nil.
    static func chunkProblem(_ chunk: CodesChunk, index: Int, header: CodesHeader) -> String? {
        if !(0...CodesFormat.maxChunkIndex).contains(index) {
            return "chunk index \(index) is outside 0...\(CodesFormat.maxChunkIndex); start a new stream"
        }
        if !(0..<header.channels).contains(chunk.channel) {
            return "channel \(chunk.channel) is outside 0..<\(header.channels)"
        }
        if chunk.codes.count != header.codebooks {
            return "it has \(chunk.codes.count) codebook rows but the header declares \(header.codebooks)"
        }
        let frames = chunk.frameCount
        if let row = chunk.codes.firstIndex(where: { $0.count != frames }) {
            return "codebook row \(row) has \(chunk.codes[row].count) frames but row 0 has \(frames)"
        }
        if frames == 0 { return "it has no frames; write only chunks with at least one frame" }
        if frames > CodesFormat.maxFramesPerChunk {
            return "it has \(frames) frames, more than the limit of \(CodesFormat.maxFramesPerChunk); split it"
        }
        if frames * header.codebooks > CodesFormat.maxCodesPerChunk {
            return "it has \(frames * header.codebooks) codes, more than the limit of "
                + "\(CodesFormat.maxCodesPerChunk) codes per chunk; split it"
        }
        if chunk.firstFrame < 0 || chunk.firstFrame > Int64.max - Int64(frames) {
            return "first frame \(chunk.firstFrame) is out of range"
        }
        for (row, codes) in chunk.codes.enumerated() {
            if let frame = codes.firstIndex(where: { $0 < 0 || Int($0) >= header.codebookSize }) {
                return "code \(codes[frame]) at codebook \(row), frame \(frame) is outside 0..<\(header.codebookSize)"
            }
        }
        return nil
    }

    /// Chunk bytes for a chunk that passed `chunkProblem`.
    static func encodeChunk(_ chunk: CodesChunk, index: Int, header: CodesHeader) -> [UInt8] {
        let frames = chunk.frameCount
        let bits = header.bitsPerCode
        let payload = CodesFormat.payloadSize(frames: frames, codebooks: header.codebooks, bits: bits)
        var bytes = CodesFormat.chunkMarker
        bytes.reserveCapacity(CodesFormat.chunkHeaderSize + payload + 4)
        CodesBytes.append(UInt64(index), 4, to: &bytes)
        CodesBytes.append(UInt64(chunk.channel), 2, to: &bytes)
        CodesBytes.append(UInt64(chunk.firstFrame), 8, to: &bytes)
        CodesBytes.append(UInt64(frames), 4, to: &bytes)
        CodesBytes.append(UInt64(payload), 4, to: &bytes)
        CodesBitPacking.pack(chunk.codes, frames: frames, bits: bits, to: &bytes)
        CodesBytes.append(UInt64(CodesCRC32.checksum(bytes[...])), 4, to: &bytes)
        return bytes
    }

    /// The end-of-stream marker and its CRC.
    static func encodeEnd() -> [UInt8] {
        var bytes = CodesFormat.endMarker
        CodesBytes.append(UInt64(CodesCRC32.checksum(bytes[...])), 4, to: &bytes)
        return bytes
    }
}
