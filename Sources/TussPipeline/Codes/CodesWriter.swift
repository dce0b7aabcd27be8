import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Writes a codes stream: the header at once, each chunk as it is written, the end marker at `finish()`.
///
/// Chunks must come in stream order: time range by time range, and within each range one chunk per channel,
/// channels 0..<channels in order, all with the same frames; each channel's chunks contiguous from frame 0.
/// Format and order errors are `CodesFileError` and leave the writer usable; an output failure closes it.
public final class CodesWriter {
    /// The header being written (a file writer fills in `frames` at `finish()` when it was nil).
    public let header: CodesHeader
    private var output: Output
    private var sequence: CodesChunkSequence
    private var closed = false

    private enum Output {
        /// A temporary file beside `destination`, renamed onto it at `finish()`.
        case file(CodesFileDescriptor, destination: String)
        case sink((Data) throws -> Void)
    }

    /// Writes to a temporary file beside `path`, moved onto `path` atomically by `finish()`.
    ///
    /// Until then nothing appears at `path` (an existing file there is untouched); a writer dropped before
    /// `finish()` deletes its temporary file.
    public init(path: String, header: CodesHeader) throws {
        try Self.check(header)
        let url = URL(fileURLWithPath: path)
        let temporary = url.deletingLastPathComponent()
            .appendingPathComponent(".\(url.lastPathComponent).\(UUID().uuidString).tmp").path
        let file = try CodesFileDescriptor.createNew(temporary)
        do {
            try file.write(CodesFraming.encodeHeader(header))
        } catch {
            _ = try? file.close()
            unlink(temporary)
            throw error
        }
        self.header = header
        self.output = .file(file, destination: path)
        self.sequence = CodesChunkSequence(channels: header.channels, declaredFrames: header.frames)
    }

    /// Sends the stream to `sink` as it is made: one call with the header now, one per chunk, one with the end.
    ///
    /// Each call carries one framing unit (`CodesFraming.header`, `.chunk`, `.end`), so a sink that sends
    /// messages (a WebSocket) keeps them aligned with the format. Errors the sink throws pass through unchanged
    /// and close the writer.
    public init(sink: @escaping (Data) throws -> Void, header: CodesHeader) throws {
        try Self.check(header)
        try sink(Data(CodesFraming.encodeHeader(header)))
        self.header = header
        self.output = .sink(sink)
        self.sequence = CodesChunkSequence(channels: header.channels, declaredFrames: header.frames)
    }

    deinit {
        if !closed { discard() }
    }

    /// Appends the next chunk; throws `CodesFileError.invalidChunk` (writing nothing) if it breaks a rule.
    public func write(_ chunk: CodesChunk) throws {
        guard !closed else { throw CodesFileError.writerClosed }
        let index = sequence.nextIndex
        if let reason = CodesFraming.chunkProblem(chunk, index: index, header: header)
            ?? sequence.problem(channel: chunk.channel, firstFrame: chunk.firstFrame, frames: chunk.frameCount)
        {
            throw CodesFileError.invalidChunk(chunk: index, reason: reason)
        }
        try emit(CodesFraming.encodeChunk(chunk, index: index, header: header))
        sequence.accept(channel: chunk.channel, frames: chunk.frameCount)
    }

    /// Ends the stream: writes the end marker; a file writer then fills in an unknown frame count, flushes to
    /// disk and renames the file onto its destination.
    ///
    /// Throws `CodesFileError.incompleteStream` (and stays open) when a time range lacks channels or the frames
    /// differ from the header's declared count.
    public func finish() throws {
        guard !closed else { throw CodesFileError.writerClosed }
        if let reason = sequence.endProblem() { throw CodesFileError.incompleteStream(reason: reason) }
        try emit(CodesFraming.encodeEnd())
        switch output {
        case .sink:
            closed = true
        case .file(let file, let destination):
            do {
                if header.frames == nil {
                    var completed = header
                    completed.frames = sequence.completedFrames
                    try file.write(CodesFraming.encodeHeader(completed), at: 0)
                }
                try file.sync()
                try file.close()
                guard rename(file.path, destination) == 0 else {
                    throw CodesFileDescriptor.failure(destination, "cannot rename the finished file onto it")
                }
            } catch {
                discard()
                throw error
            }
            closed = true
            Self.syncDirectory(of: destination)
        }
    }

    /// Sends bytes to the output; a failure closes the writer.
    private func emit(_ bytes: [UInt8]) throws {
        do {
            switch output {
            case .file(let file, _): try file.write(bytes)
            case .sink(let sink): try sink(Data(bytes))
            }
        } catch {
            discard()
            throw error
        }
    }

    /// Closes the writer and deletes its temporary file, if any.
    private func discard() {
        closed = true
        if case .file(let file, _) = output {
            _ = try? file.close()
            unlink(file.path)
        }
    }

    private static func check(_ header: CodesHeader) throws(CodesFileError) {
        if let (field, reason) = header.formatProblem() {
            throw .invalidHeader(field: field.rawValue, reason: reason)
        }
    }

    /// Makes a rename durable by flushing the directory (best effort: not every file system allows it).
    private static func syncDirectory(of path: String) {
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
        let fd = open(directory, O_RDONLY | O_CLOEXEC)
        if fd >= 0 {
            _ = fsync(fd)
            _ = close(fd)
        }
    }
}
