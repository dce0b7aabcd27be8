import CSndFile
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What an audio file holds: rate, channel count, length and format.
public struct AudioFileInfo: Sendable, Equatable {
    /// Samples per second per channel.
    public var sampleRate: Int
    /// Number of interleaved channels (≥ 1).
    public var channels: Int
    /// Length in frames as the decoder reports it (exact for PCM and FLAC, from stream headers for lossy codecs).
    public var frames: Int64
    /// Container and sample encoding.
    public var format: AudioFileFormat

    /// Duration in seconds.
    public var duration: Double { sampleRate > 0 ? Double(frames) / Double(sampleRate) : 0 }

    public init(sampleRate: Int, channels: Int, frames: Int64, format: AudioFileFormat) {
        self.sampleRate = sampleRate
        self.channels = channels
        self.frames = frames
        self.format = format
    }
}

/// Frames moved through libsndfile per call; bounds the interleaved scratch buffer.
private let blockFrames = 16384

/// The last libsndfile error message, on one line.
private func sndfileMessage(_ handle: OpaquePointer?) -> String {
    guard let cString = sf_strerror(handle) else { return "unknown libsndfile error" }
    return oneLine(String(cString: cString))
}

/// Reads an audio file block by block through libsndfile, as planar `Float` samples in [-1, 1] for integer formats.
///
/// Only one block is in memory at a time, so hour-long files can be streamed. Not safe to share between threads.
public final class AudioFileReader {
    /// The file's rate, channels, length and format.
    public let info: AudioFileInfo
    /// The path the reader was opened with.
    public let path: String

    private let handle: OpaquePointer
    private let scratch: UnsafeMutableBufferPointer<Float>
    private var position: Int64 = 0

    /// Opens `path` for reading.
    ///
    /// - Throws: `AudioError.fileNotFound` if nothing is there, `.unreadable` with libsndfile's message for empty,
    ///   damaged or unsupported files, `.noChannels` for a file without channels.
    public init(path: String) throws(AudioError) {
        guard regularFileExists(path) else { throw AudioError.fileNotFound(path: path) }
        var sfInfo = SF_INFO()
        guard let opened = sf_open(path, Int32(SFM_READ), &sfInfo) else {
            throw AudioError.unreadable(path: path, reason: sndfileMessage(nil))
        }
        guard sfInfo.channels > 0 else {
            sf_close(opened)
            throw AudioError.noChannels(path: path)
        }
        guard sfInfo.samplerate > 0 else {
            sf_close(opened)
            throw AudioError.unreadable(path: path, reason: "the file reports a sample rate of \(sfInfo.samplerate)")
        }
        self.path = path
        self.handle = opened
        self.info = AudioFileInfo(
            sampleRate: Int(sfInfo.samplerate), channels: Int(sfInfo.channels), frames: Int64(sfInfo.frames),
            format: AudioFileFormat(sndfileFormat: sfInfo.format))
        self.scratch = .allocate(capacity: blockFrames * Int(sfInfo.channels))
    }

    deinit {
        sf_close(handle)
        scratch.deallocate()
    }

    /// Reads up to `frames` frames from the current position.
    ///
    /// - Returns: `info.channels` arrays of equal length n. n < `frames` only at the end of the file; at the end every
    ///   channel array is empty (the outer array still has `info.channels` entries).
    public func read(frames: Int) throws(AudioError) -> [[Float]] {
        guard frames >= 0 else { throw AudioError.invalidArgument("read(frames:) needs frames ≥ 0, got \(frames)") }
        let channels = info.channels
        let remainingHint = info.frames > position ? Int(clamping: info.frames - position) : blockFrames
        let reserve = min(frames, remainingHint)
        var planar = [[Float]](repeating: [], count: channels)
        for c in 0..<channels { planar[c].reserveCapacity(reserve) }
        var got = 0
        while got < frames {
            let want = min(blockFrames, frames - got)
            let n = Int(sf_readf_float(handle, scratch.baseAddress, sf_count_t(want)))
            if n <= 0 {
                if sf_error(handle) != 0 {
                    throw AudioError.unreadable(path: path, reason: sndfileMessage(handle))
                }
                break
            }
            let source = UnsafeBufferPointer(scratch)
            for c in 0..<channels {
                let start = planar[c].count
                planar[c].append(contentsOf: repeatElement(0, count: n))
                planar[c].withUnsafeMutableBufferPointer { dst in
                    var s = c
                    for i in start..<(start + n) {
                        dst[i] = source[s]
                        s += channels
                    }
                }
            }
            got += n
            position += Int64(n)
        }
        return planar
    }

    /// Moves the read position to frame `toFrame` (0-based).
    ///
    /// - Throws: `AudioError.invalidArgument` for a negative frame or one the file cannot seek to.
    public func seek(toFrame frame: Int64) throws(AudioError) {
        guard frame >= 0 else { throw AudioError.invalidArgument("seek(toFrame:) needs a frame ≥ 0, got \(frame)") }
        let result = sf_seek(handle, sf_count_t(frame), SEEK_SET)
        guard result >= 0 else {
            throw AudioError.invalidArgument(
                "cannot seek \(path) to frame \(frame) of \(info.frames): \(sndfileMessage(handle))")
        }
        position = Int64(result)
    }

    /// Reads the whole file from its start (seeking back first), as `info.channels` equally long arrays.
    ///
    /// Holds the whole signal in memory; prefer `read(frames:)` for long files.
    public func readAll() throws(AudioError) -> [[Float]] {
        if position != 0 { try seek(toFrame: 0) }
        return try read(frames: Int.max)
    }
}

/// Writes an audio file through libsndfile from planar `Float` samples, atomically.
///
/// Samples go to a hidden temporary file next to `path`; `finish()` closes it and renames it into place, so readers
/// never see a half-written file. A writer released without `finish()` deletes its temporary file. Integer outputs
/// clip at ±1 (libsndfile's clipping mode) and `clippedSamples` counts the clipped samples.
public final class AudioFileWriter {
    /// The destination path.
    public let path: String
    /// The format being written.
    public let format: AudioFileFormat
    /// Samples per second per channel.
    public let sampleRate: Int
    /// Channel count.
    public let channels: Int
    /// Number of samples beyond ±1 written to an integer-PCM format (they were clipped).
    public private(set) var clippedSamples: Int = 0
    /// Frames written so far.
    public private(set) var framesWritten: Int64 = 0

    private var handle: OpaquePointer?
    private let temporaryPath: String
    private let scratch: UnsafeMutableBufferPointer<Float>
    private var finished = false

    /// Creates the temporary file for `path` with the given rate, channel count and format.
    ///
    /// - Throws: `AudioError.invalidArgument` for a non-positive rate or channel count, `.unsupportedFormat` when
    ///   libsndfile cannot write that combination, `.cannotWrite` when the file cannot be created.
    public init(path: String, sampleRate: Int, channels: Int, format: AudioFileFormat) throws(AudioError) {
        guard channels > 0, channels <= 1024 else {
            throw AudioError.invalidArgument("an audio file needs 1...1024 channels, got \(channels)")
        }
        guard sampleRate > 0, let rate = Int32(exactly: sampleRate) else {
            throw AudioError.invalidArgument("sample rate must be positive, got \(sampleRate)")
        }
        if format.encoding == .opus && !OggOpus.opusRates.contains(sampleRate) {
            throw AudioError.unsupportedFormat(
                "Ogg Opus cannot be written at \(sampleRate) Hz; resample to 8000, 12000, 16000, 24000 or 48000 Hz first")
        }
        guard format.isWritable(sampleRate: sampleRate, channels: channels) else {
            var hint = "choose another format"
            if format.encoding == .opus {
                hint = "Ogg Opus needs 8000, 12000, 16000, 24000 or 48000 Hz: resample first"
            } else if format.encoding == .mpegLayer3 {
                hint = "MP3 needs 1 or 2 channels at 8000...48000 Hz"
            }
            throw AudioError.unsupportedFormat(
                "libsndfile cannot write \(format.name) at \(sampleRate) Hz with \(channels) channels; \(hint)")
        }
        self.path = path
        self.format = format
        self.sampleRate = sampleRate
        self.channels = channels
        self.temporaryPath = temporarySibling(of: path)
        var sfInfo = SF_INFO()
        sfInfo.samplerate = rate
        sfInfo.channels = Int32(channels)
        sfInfo.format = format.sndfileFormat
        guard let opened = sf_open(temporaryPath, Int32(SFM_WRITE), &sfInfo) else {
            let reason = sndfileMessage(nil)
            removeQuietly(temporaryPath)
            throw AudioError.cannotWrite(path: path, reason: reason)
        }
        if format.encoding.isIntegerPCM {
            sf_command(opened, Int32(SFC_SET_CLIPPING), nil, Int32(SF_TRUE))
        }
        self.handle = opened
        self.scratch = .allocate(capacity: blockFrames * channels)
    }

    deinit {
        if let handle { sf_close(handle) }
        if !finished { removeQuietly(temporaryPath) }
        scratch.deallocate()
    }

    /// Appends planar samples: `channels` arrays of equal length.
    ///
    /// - Throws: `AudioError.invalidArgument` for a wrong channel count or ragged arrays or after `finish()`,
    ///   `.cannotWrite` when libsndfile fails (e.g. disk full).
    public func write(_ planar: [[Float]]) throws(AudioError) {
        guard let handle, !finished else {
            throw AudioError.invalidArgument("write() after finish() on \(path): create a new writer")
        }
        guard planar.count == channels else {
            throw AudioError.invalidArgument("writer for \(path) has \(channels) channels, got \(planar.count)")
        }
        let frames = planar.first?.count ?? 0
        for channel in planar where channel.count != frames {
            throw AudioError.invalidArgument("all channels must have the same length (\(frames) vs \(channel.count))")
        }
        let countClipping = format.encoding.isIntegerPCM
        var done = 0
        while done < frames {
            let n = min(blockFrames, frames - done)
            var clipped = 0
            for c in 0..<channels {
                planar[c].withUnsafeBufferPointer { src in
                    var d = c
                    for i in done..<(done + n) {
                        let x = src[i]
                        scratch[d] = x
                        if countClipping && (x > 1 || x < -1) { clipped += 1 }
                        d += channels
                    }
                }
            }
            let written = Int(sf_writef_float(handle, scratch.baseAddress, sf_count_t(n)))
            guard written == n else {
                throw AudioError.cannotWrite(path: path, reason: sndfileMessage(handle))
            }
            clippedSamples += clipped
            framesWritten += Int64(n)
            done += n
        }
    }

    /// Flushes and closes the file and moves it atomically to `path` (replacing any existing file).
    ///
    /// - Throws: `AudioError.cannotWrite` when closing or renaming fails; the temporary file is then removed.
    public func finish() throws(AudioError) {
        guard let handle, !finished else {
            throw AudioError.invalidArgument("finish() called twice on the writer for \(path)")
        }
        self.handle = nil
        let status = sf_close(handle)
        guard status == 0 else {
            removeQuietly(temporaryPath)
            let reason = sf_error_number(status).map { String(cString: $0) } ?? "error \(status)"
            throw AudioError.cannotWrite(path: path, reason: oneLine(reason))
        }
        try moveIntoPlace(temporaryPath, path)
        finished = true
    }
}
