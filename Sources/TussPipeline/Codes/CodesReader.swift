import Foundation

/// Reads a codes file chunk by chunk, checking every byte; the header is read and checked by `init`.
///
/// A file is read in 64 KiB blocks, so memory stays at about one chunk. All errors are `CodesFileError`.
public final class CodesReader {
    /// The file's header.
    public let header: CodesHeader
    private var decoder: CodesDecoder
    private let file: CodesFileDescriptor?
    private var done = false

    private static let blockSize = 1 << 16

    /// Opens the codes file at `path` and reads its header.
    public convenience init(path: String) throws(CodesFileError) {
        let file = try CodesFileDescriptor.openForReading(path)
        try self.init(decoder: CodesDecoder(), file: file)
    }

    /// Reads codes from bytes in memory, starting with the header.
    public convenience init(data: Data) throws(CodesFileError) {
        var decoder = CodesDecoder()
        decoder.append(data)
        try self.init(decoder: decoder, file: nil)
    }

    private init(decoder: CodesDecoder, file: CodesFileDescriptor?) throws(CodesFileError) {
        var decoder = decoder
        guard case .header(let header) = try Self.pull(&decoder, from: file) else {
            // The decoder's first event is always the header; anything else would be a bug in it.
            throw .truncated(offset: 0, chunk: nil)
        }
        self.header = header
        self.decoder = decoder
        self.file = file
    }

    /// The next chunk in stream order, or nil after the end-of-stream marker (when nothing follows it).
    public func next() throws(CodesFileError) -> CodesChunk? {
        while !done {
            switch try Self.pull(&decoder, from: file) {
            case .chunk(let chunk):
                return chunk
            case .end:
                // Bytes after the marker are an error: ask for one more event, which only finds them.
                _ = try Self.pull(&decoder, from: file)
                done = true
            case .header, nil:
                done = true
            }
        }
        return nil
    }

    /// All remaining codes as `[channel][codebook][frame]`, each channel's chunks concatenated.
    ///
    /// Call it on a fresh reader for the whole file; chunks already taken with `next()` are not included.
    public func readAll() throws(CodesFileError) -> [[[Int32]]] {
        var all = [[[Int32]]](
            repeating: [[Int32]](repeating: [], count: header.codebooks), count: header.channels)
        while let chunk = try next() {
            for (codebook, row) in chunk.codes.enumerated() {
                all[chunk.channel][codebook].append(contentsOf: row)
            }
        }
        return all
    }

    /// The next event, reading more of the file as needed; nil once the input ends cleanly after the end marker.
    private static func pull(
        _ decoder: inout CodesDecoder, from file: CodesFileDescriptor?
    ) throws(CodesFileError) -> CodesStreamEvent? {
        while true {
            if let event = try decoder.nextEvent() { return event }
            let block = try file?.read(upTo: blockSize) ?? []
            if block.isEmpty {
                try decoder.finishInput()
                return nil
            }
            block.withUnsafeBytes { decoder.append($0) }
        }
    }
}
