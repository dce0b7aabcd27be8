import COpus
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Ogg Opus files (RFC 7845) written with libopus and libogg: the codec baseline.
///
/// Encoding: mono or stereo, 20 ms frames, unconstrained VBR at the requested bitrate. Rates Opus supports natively
/// (8, 12, 16, 24, 48 kHz) are encoded as they are; any other rate is resampled to 48 kHz first. The header carries the
/// encoder's pre-skip and the original rate, granule positions count 48 kHz samples, and the last page carries the
/// end-of-stream flag with the exact end position, so any Opus decoder (libsndfile, ffmpeg, opusdec) recovers the
/// original length. Decoding reverses this: trims the pre-skip and the end padding and returns the original rate.
public enum OggOpus {
    /// Opus's native rates; anything else is coded at 48 kHz.
    public static let opusRates = [8000, 12000, 16000, 24000, 48000]
    /// A comment naming the exact input length, for rates where the 48 kHz round trip could be one sample off.
    static let lengthTag = "TUSS_LENGTH"

    /// Encodes `planar` (1 or 2 channels at `sampleRate`) to an Ogg Opus file at about `bitrate` bits per second.
    ///
    /// The file appears at `path` only once complete (written to a temporary file, then renamed).
    /// - Throws: `AudioError.invalidArgument` for a bad shape, rate or bitrate, `.codec` for libopus failures,
    ///   `.cannotWrite` when the file cannot be written.
    public static func encode(_ planar: [[Float]], sampleRate: Int, bitrate: Int, to path: String) throws(AudioError) {
        guard planar.count == 1 || planar.count == 2 else {
            throw AudioError.invalidArgument(
                "Ogg Opus encoding takes 1 or 2 channels, got \(planar.count): downmix or encode channels separately")
        }
        let length = planar[0].count
        for channel in planar where channel.count != length {
            throw AudioError.invalidArgument("all channels must have the same length (\(length) vs \(channel.count))")
        }
        guard sampleRate > 0, sampleRate <= 1_000_000 else {
            throw AudioError.invalidArgument("sample rate must be in 1...1000000 Hz, got \(sampleRate)")
        }
        let codingRate = opusRates.contains(sampleRate) ? sampleRate : 48000
        let encoder = try OggOpusStreamEncoder(sampleRate: codingRate, channels: planar.count, bitrate: bitrate,
                                               originalSampleRate: sampleRate, originalLength: length)
        let signal = codingRate == sampleRate ? planar : try Resampler.resample(planar, from: sampleRate, to: codingRate)
        let output = try AtomicOutputFile(path: path)
        try output.write(try encoder.encode(signal, flush: false))
        try output.write(try encoder.finish())
        try output.commit()
    }

    /// Decodes an Ogg Opus file (channel mapping family 0: mono or stereo).
    ///
    /// - Returns: planar samples at the rate named in OpusHead (decoded natively when Opus supports it, resampled from
    ///   48 kHz otherwise; 48 kHz when the header names none), trimmed of pre-skip and end padding.
    /// - Throws: `AudioError.fileNotFound`, `.unreadable` for files that are not Ogg Opus or are damaged.
    public static func decode(path: String) throws(AudioError) -> (planar: [[Float]], sampleRate: Int) {
        guard regularFileExists(path) else { throw AudioError.fileNotFound(path: path) }
        guard let file = fopen(path, "rb") else {
            throw AudioError.unreadable(path: path, reason: String(cString: strerror(errno)))
        }
        defer { fclose(file) }
        let decoder = try OggOpusStreamDecoder()
        var planar: [[Float]] = []
        var block = [UInt8](repeating: 0, count: 65536)
        do throws(AudioError) {
            while !decoder.ended {
                let got = block.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, file) }
                if got == 0 {
                    if ferror(file) != 0 { throw AudioError.unreadable(path: path, reason: String(cString: strerror(errno))) }
                    break
                }
                let decoded = try decoder.decode(block[0..<got])
                if planar.isEmpty { planar = decoded } else { for c in decoded.indices { planar[c] += decoded[c] } }
            }
        } catch {
            // The stream decoder names no file; say which one.
            guard case .unreadable(_, let reason) = error else { throw error }
            throw AudioError.unreadable(path: path, reason: reason)
        }
        guard let info = decoder.info else {
            throw AudioError.unreadable(path: path, reason: "no Ogg Opus stream found (not an Ogg Opus file, or cut before its headers)")
        }
        if planar.isEmpty { planar = [[Float]](repeating: [], count: info.channels) }
        // A file cut before its end-of-stream page: trim by the last granule position seen, as other decoders do.
        if !decoder.ended, decoder.lastGranule >= 0 {
            let scale = Int64(48000 / decoder.sampleRate)
            let end = Int(max(0, (decoder.lastGranule - decoder.preSkip + scale / 2) / scale))
            for c in planar.indices where planar[c].count > end { planar[c].removeLast(planar[c].count - end) }
        }
        let outputRate = info.originalSampleRate > 0 ? info.originalSampleRate : 48000
        if outputRate != decoder.sampleRate {
            planar = try Resampler.resample(planar, from: decoder.sampleRate, to: outputRate)
        }
        if let exactLength = info.originalLength, exactLength >= 0, abs(exactLength - planar[0].count) <= 2 {
            for c in planar.indices {
                if planar[c].count > exactLength {
                    planar[c].removeLast(planar[c].count - exactLength)
                } else {
                    planar[c].append(contentsOf: repeatElement(0, count: exactLength - planar[c].count))
                }
            }
        }
        return (planar, outputRate)
    }

    // MARK: - Headers

    static func opusHead(channels: Int, preSkip: UInt16, inputRate: UInt32) -> [UInt8] {
        var bytes = Array("OpusHead".utf8)
        bytes.append(1)  // version
        bytes.append(UInt8(channels))
        appendLittleEndian(&bytes, UInt64(preSkip), count: 2)
        appendLittleEndian(&bytes, UInt64(inputRate), count: 4)
        appendLittleEndian(&bytes, 0, count: 2)  // output gain
        bytes.append(0)  // channel mapping family 0: mono or stereo, no mapping table
        return bytes
    }

    static func opusTags(vendor: String, comments: [String]) -> [UInt8] {
        var bytes = Array("OpusTags".utf8)
        let vendorBytes = Array(vendor.utf8)
        appendLittleEndian(&bytes, UInt64(vendorBytes.count), count: 4)
        bytes += vendorBytes
        appendLittleEndian(&bytes, UInt64(comments.count), count: 4)
        for comment in comments {
            let commentBytes = Array(comment.utf8)
            appendLittleEndian(&bytes, UInt64(commentBytes.count), count: 4)
            bytes += commentBytes
        }
        return bytes
    }

    struct OpusHead {
        var channels: Int
        var preSkip: Int
        var inputRate: Int
        var outputGain: Int
    }

    static func parseOpusHead(_ data: [UInt8], path: String) throws(AudioError) -> OpusHead {
        guard data.count >= 19, Array(data[0..<8]) == Array("OpusHead".utf8) else {
            throw AudioError.unreadable(path: path, reason: "the first Ogg packet is not an OpusHead (not Ogg Opus)")
        }
        guard data[8] & 0xF0 == 0 else {
            throw AudioError.unreadable(path: path, reason: "unsupported OpusHead version \(data[8])")
        }
        let channels = Int(data[9])
        guard channels > 0 else { throw AudioError.noChannels(path: path) }
        let family = data[18]
        guard family == 0, channels <= 2 else {
            throw AudioError.unreadable(
                path: path,
                reason: "multichannel Ogg Opus (mapping family \(family), \(channels) channels) is not supported here; "
                    + "read it with AudioFileReader")
        }
        let preSkip = Int(readLittleEndian(data, at: 10, count: 2))
        let inputRate = Int(readLittleEndian(data, at: 12, count: 4))
        let gain = Int(Int16(bitPattern: UInt16(readLittleEndian(data, at: 16, count: 2))))
        return OpusHead(channels: channels, preSkip: preSkip, inputRate: inputRate, outputGain: gain)
    }

    /// The value of the TUSS_LENGTH comment, if the OpusTags packet has a well-formed one.
    static func parseLengthTag(_ data: [UInt8]) -> Int? {
        guard data.count >= 16, Array(data[0..<8]) == Array("OpusTags".utf8) else { return nil }
        var offset = 8
        let vendorLength = Int(readLittleEndian(data, at: offset, count: 4))
        offset += 4 + vendorLength
        guard offset + 4 <= data.count else { return nil }
        let count = Int(readLittleEndian(data, at: offset, count: 4))
        offset += 4
        let prefix = Array((lengthTag + "=").utf8)
        for _ in 0..<min(count, 10_000) {
            guard offset + 4 <= data.count else { return nil }
            let size = Int(readLittleEndian(data, at: offset, count: 4))
            offset += 4
            guard size >= 0, offset + size <= data.count else { return nil }
            let comment = data[offset..<(offset + size)]
            offset += size
            if comment.starts(with: prefix) {
                return Int(String(decoding: comment.dropFirst(prefix.count), as: UTF8.self))
            }
        }
        return nil
    }
}

private func appendLittleEndian(_ bytes: inout [UInt8], _ value: UInt64, count: Int) {
    for i in 0..<count { bytes.append(UInt8(truncatingIfNeeded: value >> (8 * UInt64(i)))) }
}

private func readLittleEndian(_ bytes: [UInt8], at offset: Int, count: Int) -> UInt64 {
    var value: UInt64 = 0
    for i in 0..<count { value |= UInt64(bytes[offset + i]) << (8 * UInt64(i)) }
    return value
}

func opusMessage(_ code: Int32) -> String {
    guard let message = opus_strerror(code) else { return "error \(code)" }
    return String(cString: message)
}

// MARK: - Ogg plumbing

/// A file written to a hidden temporary path and renamed into place by `commit()`; removed if never committed.
final class AtomicOutputFile {
    let path: String
    private let temporaryPath: String
    private var file: UnsafeMutablePointer<FILE>?
    private var committed = false

    init(path: String) throws(AudioError) {
        self.path = path
        temporaryPath = temporarySibling(of: path)
        guard let opened = fopen(temporaryPath, "wb") else {
            throw AudioError.cannotWrite(path: path, reason: String(cString: strerror(errno)))
        }
        file = opened
    }

    deinit {
        if let file { fclose(file) }
        if !committed { removeQuietly(temporaryPath) }
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws(AudioError) {
        guard let file, let base = bytes.baseAddress, bytes.count > 0 else { return }
        guard fwrite(base, 1, bytes.count, file) == bytes.count else {
            throw AudioError.cannotWrite(path: path, reason: String(cString: strerror(errno)))
        }
    }

    func write(_ bytes: [UInt8]) throws(AudioError) {
        guard let file, !bytes.isEmpty else { return }
        let written = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
        guard written == bytes.count else {
            throw AudioError.cannotWrite(path: path, reason: String(cString: strerror(errno)))
        }
    }

    func commit() throws(AudioError) {
        guard let file, !committed else { return }
        self.file = nil
        guard fclose(file) == 0 else {
            throw AudioError.cannotWrite(path: path, reason: String(cString: strerror(errno)))
        }
        try moveIntoPlace(temporaryPath, path)
        committed = true
    }
}
