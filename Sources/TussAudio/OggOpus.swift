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
    static let opusRates = [8000, 12000, 16000, 24000, 48000]
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
        guard bitrate >= 500, bitrate <= 512_000 else {
            throw AudioError.invalidArgument("Opus bitrate must be in 500...512000 bit/s, got \(bitrate)")
        }
        let channels = planar.count
        let codingRate = opusRates.contains(sampleRate) ? sampleRate : 48000
        let signal = codingRate == sampleRate ? planar : try Resampler.resample(planar, from: sampleRate, to: codingRate)
        let codedLength = signal[0].count
        let granuleScale = Int64(48000 / codingRate)

        var status: Int32 = 0
        guard let encoder = opus_encoder_create(Int32(codingRate), Int32(channels), OPUS_APPLICATION_AUDIO, &status),
            status == OPUS_OK
        else { throw AudioError.codec("cannot create the Opus encoder: \(opusMessage(status))") }
        defer { opus_encoder_destroy(encoder) }
        try OpusEncoderControl.set(encoder, OPUS_SET_BITRATE_REQUEST, Int32(bitrate), "bitrate \(bitrate)")
        try OpusEncoderControl.set(encoder, OPUS_SET_VBR_REQUEST, 1, "VBR")
        try OpusEncoderControl.set(encoder, OPUS_SET_VBR_CONSTRAINT_REQUEST, 0, "unconstrained VBR")
        let lookahead = Int(try OpusEncoderControl.get(encoder, OPUS_GET_LOOKAHEAD_REQUEST, "lookahead"))
        let preSkip = Int64(lookahead) * granuleScale
        guard preSkip <= Int64(UInt16.max) else { throw AudioError.codec("pre-skip \(preSkip) does not fit OpusHead") }

        let output = try AtomicOutputFile(path: path)
        let stream = try OggStreamWriter(serial: Int32.random(in: Int32.min...Int32.max), output: output)
        try stream.writeHeader(
            opusHead(channels: channels, preSkip: UInt16(preSkip), inputRate: UInt32(sampleRate)), packetNumber: 0)
        let comments = ["ENCODER=tuss-codec", "\(lengthTag)=\(length)"]
        try stream.writeHeader(opusTags(vendor: String(cString: opus_get_version_string()), comments: comments),
                               packetNumber: 1)

        let frameSize = codingRate / 50
        let packets = max(1, (codedLength + lookahead + frameSize - 1) / frameSize)
        let endGranule = preSkip + Int64(codedLength) * granuleScale
        let pcm = UnsafeMutablePointer<Float>.allocate(capacity: frameSize * channels)
        defer { pcm.deallocate() }
        let maxPacket = 1500 * channels
        let packet = UnsafeMutablePointer<UInt8>.allocate(capacity: maxPacket)
        defer { packet.deallocate() }
        for p in 0..<packets {
            let start = p * frameSize
            let valid = max(0, min(frameSize, codedLength - start))
            for c in 0..<channels {
                signal[c].withUnsafeBufferPointer { src in
                    var d = c
                    for i in 0..<valid {
                        pcm[d] = src[start + i]
                        d += channels
                    }
                    for _ in valid..<frameSize {
                        pcm[d] = 0
                        d += channels
                    }
                }
            }
            let bytes = opus_encode_float(
                encoder, pcm, Int32(frameSize), packet, Int32(maxPacket))
            guard bytes > 0 else { throw AudioError.codec("opus_encode_float failed: \(opusMessage(bytes))") }
            let last = p == packets - 1
            let granule = last ? endGranule : Int64(p + 1) * Int64(frameSize) * granuleScale
            try stream.writePacket(
                UnsafeBufferPointer(start: packet, count: Int(bytes)), granule: granule, packetNumber: Int64(p + 2),
                endOfStream: last)
        }
        try stream.finish()
        try output.commit()
    }

    /// Decodes an Ogg Opus file (channel mapping family 0: mono or stereo).
    ///
    /// - Returns: planar samples at the rate named in OpusHead (decoded natively when Opus supports it, resampled from
    ///   48 kHz otherwise; 48 kHz when the header names none), trimmed of pre-skip and end padding.
    /// - Throws: `AudioError.fileNotFound`, `.unreadable` for files that are not Ogg Opus or are damaged.
    public static func decode(path: String) throws(AudioError) -> (planar: [[Float]], sampleRate: Int) {
        guard regularFileExists(path) else { throw AudioError.fileNotFound(path: path) }
        let reader = try OggPacketReader(path: path)
        guard let headPacket = try reader.nextPacket() else {
            throw AudioError.unreadable(path: path, reason: "no Ogg stream found (not an Ogg Opus file)")
        }
        let head = try parseOpusHead(headPacket.data, path: path)
        guard let tagsPacket = try reader.nextPacket() else {
            throw AudioError.unreadable(path: path, reason: "the stream ends before its OpusTags header")
        }
        let exactLength = parseLengthTag(tagsPacket.data)

        let decodeRate = opusRates.contains(head.inputRate) ? head.inputRate : 48000
        let outputRate = head.inputRate > 0 ? head.inputRate : 48000
        let granuleScale = Int64(48000 / decodeRate)
        let channels = head.channels
        var status: Int32 = 0
        guard let decoder = opus_decoder_create(Int32(decodeRate), Int32(channels), &status), status == OPUS_OK else {
            throw AudioError.codec("cannot create the Opus decoder: \(opusMessage(status))")
        }
        defer { opus_decoder_destroy(decoder) }
        let maxFrame = decodeRate * 120 / 1000
        let pcm = UnsafeMutablePointer<Float>.allocate(capacity: maxFrame * channels)
        defer { pcm.deallocate() }
        var interleaved: [Float] = []
        var lastGranule: Int64 = -1
        while let packet = try reader.nextPacket() {
            let decoded = packet.data.withUnsafeBufferPointer { bytes in
                opus_decode_float(decoder, bytes.baseAddress, Int32(bytes.count), pcm, Int32(maxFrame), 0)
            }
            guard decoded >= 0 else {
                throw AudioError.unreadable(path: path, reason: "Opus packet failed to decode: \(opusMessage(decoded))")
            }
            interleaved.append(contentsOf: UnsafeBufferPointer(start: pcm, count: Int(decoded) * channels))
            if packet.granule >= 0 { lastGranule = packet.granule }
        }
        let decodedFrames = interleaved.count / channels
        let skip = min(decodedFrames, Int((Int64(head.preSkip) + granuleScale / 2) / granuleScale))
        var frames = decodedFrames - skip
        if lastGranule >= 0 {
            let end = Int(max(0, (lastGranule - Int64(head.preSkip) + granuleScale / 2) / granuleScale))
            frames = min(frames, end)
        }
        let gain = head.outputGain == 0 ? Float(1) : Float(pow(10, Double(head.outputGain) / (20 * 256)))
        var planar = [[Float]](repeating: [], count: channels)
        interleaved.withUnsafeBufferPointer { src in
            for c in 0..<channels {
                planar[c] = [Float](unsafeUninitializedCapacity: frames) { dst, initialized in
                    var s = skip * channels + c
                    for i in 0..<frames {
                        dst[i] = src[s] * gain
                        s += channels
                    }
                    initialized = frames
                }
            }
        }
        if outputRate != decodeRate {
            planar = try Resampler.resample(planar, from: decodeRate, to: outputRate)
        }
        if let exactLength, exactLength >= 0, abs(exactLength - planar[0].count) <= 2 {
            for c in 0..<channels {
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

private func opusMessage(_ code: Int32) -> String {
    guard let message = opus_strerror(code) else { return "error \(code)" }
    return String(cString: message)
}

// MARK: - opus_encoder_ctl

/// Calls libopus's variadic `opus_encoder_ctl`, which Swift cannot import, through fixed-argument function pointers.
///
/// On the Linux x86-64 (System V) and AArch64 (AAPCS64) ABIs an integer or pointer variadic argument is passed in the
/// same register as a fixed one, so the call is ABI-correct there; elsewhere (e.g. Apple arm64, which passes variadic
/// arguments on the stack) encoding reports an error instead. A non-variadic C wrapper in the COpus shim would remove
/// the need for this.
private enum OpusEncoderControl {
    typealias SetInt = @convention(c) (OpaquePointer?, Int32, Int32) -> Int32
    typealias GetInt = @convention(c) (OpaquePointer?, Int32, UnsafeMutablePointer<Int32>?) -> Int32

    private struct Symbol: @unchecked Sendable {
        let address: UnsafeMutableRawPointer?
    }

    private static let symbol: Symbol = {
        #if os(Linux) && (arch(x86_64) || arch(arm64))
        let process = dlopen(nil, RTLD_NOW)
        return Symbol(address: dlsym(process, "opus_encoder_ctl"))
        #else
        return Symbol(address: nil)
        #endif
    }()

    static func set(_ encoder: OpaquePointer, _ request: Int32, _ value: Int32, _ what: String) throws(AudioError) {
        guard let address = symbol.address else {
            throw AudioError.codec("opus_encoder_ctl is not callable on this platform; cannot set \(what)")
        }
        let function = unsafeBitCast(address, to: SetInt.self)
        let status = function(encoder, request, value)
        guard status == OPUS_OK else { throw AudioError.codec("cannot set \(what): \(opusMessage(status))") }
    }

    static func get(_ encoder: OpaquePointer, _ request: Int32, _ what: String) throws(AudioError) -> Int32 {
        guard let address = symbol.address else {
            throw AudioError.codec("opus_encoder_ctl is not callable on this platform; cannot read \(what)")
        }
        let function = unsafeBitCast(address, to: GetInt.self)
        var value: Int32 = 0
        let status = function(encoder, request, &value)
        guard status == OPUS_OK else { throw AudioError.codec("cannot read \(what): \(opusMessage(status))") }
        return value
    }
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

/// One logical Ogg stream being written page by page to an `AtomicOutputFile`.
final class OggStreamWriter {
    private let state: UnsafeMutablePointer<ogg_stream_state>
    private let page: UnsafeMutablePointer<ogg_page>
    private let output: AtomicOutputFile

    init(serial: Int32, output: AtomicOutputFile) throws(AudioError) {
        state = .allocate(capacity: 1)
        page = .allocate(capacity: 1)
        page.initialize(to: ogg_page())
        self.output = output
        guard ogg_stream_init(state, serial) == 0 else {
            state.deallocate()
            page.deallocate()
            throw AudioError.codec("ogg_stream_init failed")
        }
    }

    deinit {
        ogg_stream_clear(state)
        state.deallocate()
        page.deallocate()
    }

    /// Submits a header packet and flushes it onto its own page(s), as RFC 7845 requires.
    func writeHeader(_ bytes: [UInt8], packetNumber: Int64) throws(AudioError) {
        try submit(bytes, granule: 0, packetNumber: packetNumber, beginning: packetNumber == 0, endOfStream: false)
        try drain(flush: true)
    }

    /// Submits an audio packet ending at `granule` (48 kHz samples including pre-skip); writes full pages.
    func writePacket(_ bytes: UnsafeBufferPointer<UInt8>, granule: Int64, packetNumber: Int64, endOfStream: Bool)
        throws(AudioError)
    {
        var packet = ogg_packet()
        packet.packet = UnsafeMutablePointer(mutating: bytes.baseAddress)
        packet.bytes = bytes.count
        packet.b_o_s = 0
        packet.e_o_s = endOfStream ? 1 : 0
        packet.granulepos = granule
        packet.packetno = packetNumber
        guard ogg_stream_packetin(state, &packet) == 0 else { throw AudioError.codec("ogg_stream_packetin failed") }
        try drain(flush: false)
    }

    /// Writes every remaining page.
    func finish() throws(AudioError) {
        try drain(flush: true)
    }

    private func submit(_ bytes: [UInt8], granule: Int64, packetNumber: Int64, beginning: Bool, endOfStream: Bool)
        throws(AudioError)
    {
        var copy = bytes
        let status = copy.withUnsafeMutableBufferPointer { buffer -> Int32 in
            var packet = ogg_packet()
            packet.packet = buffer.baseAddress
            packet.bytes = buffer.count
            packet.b_o_s = beginning ? 1 : 0
            packet.e_o_s = endOfStream ? 1 : 0
            packet.granulepos = granule
            packet.packetno = packetNumber
            return ogg_stream_packetin(state, &packet)
        }
        guard status == 0 else { throw AudioError.codec("ogg_stream_packetin failed") }
    }

    private func drain(flush: Bool) throws(AudioError) {
        while true {
            let produced = flush ? ogg_stream_flush(state, page) : ogg_stream_pageout(state, page)
            if produced == 0 { break }
            try output.write(UnsafeRawBufferPointer(start: page.pointee.header, count: page.pointee.header_len))
            try output.write(UnsafeRawBufferPointer(start: page.pointee.body, count: page.pointee.body_len))
        }
    }
}

/// Reads the packets of the first logical stream of an Ogg file, in order.
final class OggPacketReader {
    struct Packet {
        var data: [UInt8]
        /// The packet's granule position, or −1 when it does not end a page.
        var granule: Int64
    }

    private let path: String
    private let file: UnsafeMutablePointer<FILE>
    private let sync: UnsafeMutablePointer<ogg_sync_state>
    private let stream: UnsafeMutablePointer<ogg_stream_state>
    private let page: UnsafeMutablePointer<ogg_page>
    private let packet: UnsafeMutablePointer<ogg_packet>
    private var serial: Int32?
    private var streamEnded = false
    private var endOfFile = false

    init(path: String) throws(AudioError) {
        guard let opened = fopen(path, "rb") else {
            throw AudioError.unreadable(path: path, reason: String(cString: strerror(errno)))
        }
        self.path = path
        file = opened
        sync = .allocate(capacity: 1)
        stream = .allocate(capacity: 1)
        page = .allocate(capacity: 1)
        packet = .allocate(capacity: 1)
        page.initialize(to: ogg_page())
        packet.initialize(to: ogg_packet())
        ogg_sync_init(sync)
    }

    deinit {
        if serial != nil { ogg_stream_clear(stream) }
        ogg_sync_clear(sync)
        fclose(file)
        sync.deallocate()
        stream.deallocate()
        page.deallocate()
        packet.deallocate()
    }

    /// The next packet of the first stream, or nil at its end.
    func nextPacket() throws(AudioError) -> Packet? {
        while true {
            if serial != nil {
                let result = ogg_stream_packetout(stream, packet)
                if result == 1 {
                    let bytes = Array(UnsafeBufferPointer(start: packet.pointee.packet, count: packet.pointee.bytes))
                    return Packet(data: bytes, granule: packet.pointee.granulepos)
                }
                if result < 0 {
                    throw AudioError.unreadable(path: path, reason: "the Ogg stream has a gap (damaged file)")
                }
                if streamEnded { return nil }
            }
            guard try nextPage() else {
                if serial == nil { return nil }
                return nil
            }
            let pageSerial = ogg_page_serialno(page)
            if serial == nil {
                guard ogg_page_bos(page) != 0 else { continue }
                guard ogg_stream_init(stream, pageSerial) == 0 else { throw AudioError.codec("ogg_stream_init failed") }
                serial = pageSerial
            }
            guard pageSerial == serial else { continue }
            guard ogg_stream_pagein(stream, page) == 0 else {
                throw AudioError.unreadable(path: path, reason: "an Ogg page does not fit its stream (damaged file)")
            }
            if ogg_page_eos(page) != 0 { streamEnded = true }
        }
    }

    /// Reads the next page into `page`; false at the end of the file.
    private func nextPage() throws(AudioError) -> Bool {
        while true {
            let result = ogg_sync_pageout(sync, page)
            if result == 1 { return true }
            if result < 0 { continue }  // skipped bytes while resynchronising
            if endOfFile { return false }
            let chunk = 65536
            guard let buffer = ogg_sync_buffer(sync, chunk) else { throw AudioError.codec("ogg_sync_buffer failed") }
            let got = fread(buffer, 1, chunk, file)
            if got == 0 {
                if ferror(file) != 0 {
                    throw AudioError.unreadable(path: path, reason: String(cString: strerror(errno)))
                }
                endOfFile = true
            }
            ogg_sync_wrote(sync, got)
        }
    }
}
