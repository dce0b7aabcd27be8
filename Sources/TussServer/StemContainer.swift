import Foundation

/// The batch response container: several named byte streams (one per prompt) in one body.
///
/// Layout (all integers little-endian; see docs/protocol.md):
/// `"TUSSSTEM"` | u16 version = 1 | u16 entry count N | N × (u8 name length, name, u8 media-type length, media type,
/// u64 byte length, bytes) | `"SEND"`. The end marker tells a complete body from a truncated one.
public struct StemContainer: Sendable, Equatable {
    /// One named stream: a codes file or an audio file.
    public struct Entry: Sendable, Equatable {
        /// The output name, as `Prompt.outputNames` makes it (`speech`, `speech-1`, …).
        public var name: String
        /// `application/vnd.tuss.codes` for codes files, `audio/wav`, `audio/flac`, … for audio.
        public var mediaType: String
        /// The stream's bytes.
        public var data: Data

        /// Creates an entry.
        public init(name: String, mediaType: String, data: Data) {
            self.name = name
            self.mediaType = mediaType
            self.data = data
        }
    }

    /// The HTTP `Content-Type` of a container body.
    public static let mediaType = "application/vnd.tuss.stems"
    /// The media type of a codes file.
    public static let codesMediaType = "application/vnd.tuss.codes"
    static let magic = Data("TUSSSTEM".utf8)
    static let endMarker = Data("SEND".utf8)

    /// The entries, in prompt order.
    public var entries: [Entry]

    /// Creates a container.
    public init(entries: [Entry]) {
        self.entries = entries
    }

    /// The container's bytes; names and media types longer than 255 bytes are refused.
    public func encoded() throws(ServerError) -> Data {
        guard entries.count <= Int(UInt16.max) else { throw .internalError("too many entries for one container") }
        var out = Self.magic
        appendLE(&out, 1, bytes: 2)
        appendLE(&out, UInt64(entries.count), bytes: 2)
        for entry in entries {
            let name = Data(entry.name.utf8), type = Data(entry.mediaType.utf8)
            guard (1...255).contains(name.count), (1...255).contains(type.count) else {
                throw .internalError("entry name and media type must be 1...255 bytes")
            }
            out.append(UInt8(name.count))
            out.append(name)
            out.append(UInt8(type.count))
            out.append(type)
            appendLE(&out, UInt64(entry.data.count), bytes: 8)
            out.append(entry.data)
        }
        out.append(Self.endMarker)
        return out
    }

    /// Parses a container body; damage and truncation are reported with the byte offset.
    public static func decode(_ data: Data) throws(ServerError) -> StemContainer {
        let bytes = [UInt8](data)
        var offset = 0
        func take(_ n: Int, _ what: String) throws(ServerError) -> ArraySlice<UInt8> {
            guard n >= 0, bytes.count - offset >= n else {
                throw .truncated("stem container ends inside \(what) at byte \(offset): the response was cut short; retry the request")
            }
            defer { offset += n }
            return bytes[offset..<(offset + n)]
        }
        func readLE(_ n: Int, _ what: String) throws(ServerError) -> UInt64 {
            var value: UInt64 = 0
            for (i, b) in try take(n, what).enumerated() { value |= UInt64(b) << (8 * UInt64(i)) }
            return value
        }
        guard Data(try take(8, "the magic")) == magic else {
            throw .badRequest("not a stem container (no TUSSSTEM magic): read the body as the Content-Type says")
        }
        let version = try readLE(2, "the version")
        guard version == 1 else { throw .badRequest("stem container version \(version) is not supported (this build reads 1)") }
        let count = Int(try readLE(2, "the entry count"))
        var entries: [Entry] = []
        for i in 0..<count {
            let nameLength = Int(try readLE(1, "entry \(i)"))
            let name = String(decoding: try take(nameLength, "entry \(i)'s name"), as: UTF8.self)
            let typeLength = Int(try readLE(1, "entry \(i)"))
            let type = String(decoding: try take(typeLength, "entry \(i)'s media type"), as: UTF8.self)
            let length = try readLE(8, "entry \(i)'s length")
            guard length <= UInt64(bytes.count - offset) else {
                throw .truncated("stem container entry '\(name)' declares \(length) bytes but only \(bytes.count - offset) remain: the response was cut short")
            }
            entries.append(Entry(name: name, mediaType: type, data: Data(try take(Int(length), "entry \(i)'s bytes"))))
        }
        guard Data(try take(4, "the end marker")) == endMarker else {
            throw .badRequest("stem container has no SEND end marker at byte \(offset - 4): the body is damaged")
        }
        guard offset == bytes.count else { throw .badRequest("stem container has \(bytes.count - offset) bytes after its end marker") }
        return StemContainer(entries: entries)
    }
}

/// Appends `value` as `bytes` little-endian bytes.
func appendLE(_ data: inout Data, _ value: UInt64, bytes: Int) {
    for i in 0..<bytes { data.append(UInt8(truncatingIfNeeded: value >> (8 * UInt64(i)))) }
}
