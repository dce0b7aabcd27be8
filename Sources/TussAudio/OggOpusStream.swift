import COpus
import Foundation

/// Encodes audio into one Ogg Opus stream (RFC 7845) incrementally: samples in, Ogg pages out.
///
/// One encoder runs for the whole stream, so a live stream costs what a file costs (no per-segment headers, no
/// encoder restarts and their warm-up distortion at every boundary). Mono or stereo at a rate Opus codes natively
/// (8, 12, 16, 24 or 48 kHz; resample other rates first), 20 ms frames, unconstrained VBR. `encode` returns every
/// page completed so far — with `flush` (the default) that includes a page holding the frames just coded, which is
/// what a live stream wants; `finish` codes the encoder's lookahead and marks the end of the stream with the exact
/// end position, so decoders recover the exact length.
public final class OggOpusStreamEncoder {
    /// The rate the audio is coded at (an Opus rate).
    public let sampleRate: Int
    /// 1 or 2.
    public let channels: Int
    private let encoder: OpaquePointer
    private let writer: OggPageWriter
    private let frameSize: Int
    private let lookahead: Int
    private let granuleScale: Int64
    private let preSkip: Int64
    /// Interleaved samples not yet coded (less than one frame between calls).
    private var pending: [Float] = []
    private var consumed: Int64 = 0
    private var packets: Int64 = 0
    private var finished = false
    private var packetBuffer: [UInt8]

    /// - Parameters:
    ///   - sampleRate: the rate of the samples given to `encode` (8000, 12000, 16000, 24000 or 48000).
    ///   - channels: 1 or 2.
    ///   - bitrate: bits per second (500…512000).
    ///   - originalSampleRate: the rate the audio had before any resampling, recorded in OpusHead (default `sampleRate`).
    ///   - originalLength: samples per channel at `originalSampleRate`, recorded as a comment so a decoder that
    ///     resamples back can restore the exact length; nil when unknown (live input).
    /// - Throws: `AudioError.invalidArgument` for an unsupported rate, channel count or bitrate, `.codec` for libopus.
    public init(sampleRate: Int, channels: Int, bitrate: Int, originalSampleRate: Int? = nil,
                originalLength: Int? = nil) throws(AudioError) {
        guard OggOpus.opusRates.contains(sampleRate) else {
            throw AudioError.invalidArgument(
                "Opus codes 8, 12, 16, 24 or 48 kHz; resample \(sampleRate) Hz to one of them first")
        }
        guard channels == 1 || channels == 2 else {
            throw AudioError.invalidArgument(
                "Ogg Opus encoding takes 1 or 2 channels, got \(channels): downmix or encode channels separately")
        }
        guard bitrate >= 500, bitrate <= 512_000 else {
            throw AudioError.invalidArgument("Opus bitrate must be in 500...512000 bit/s, got \(bitrate)")
        }
        let inputRate = originalSampleRate ?? sampleRate
        guard inputRate > 0, inputRate <= 1_000_000 else {
            throw AudioError.invalidArgument("sample rate must be in 1...1000000 Hz, got \(inputRate)")
        }
        var status: Int32 = 0
        guard let created = opus_encoder_create(Int32(sampleRate), Int32(channels), OPUS_APPLICATION_AUDIO, &status),
            status == OPUS_OK
        else { throw AudioError.codec("cannot create the Opus encoder: \(opusMessage(status))") }
        encoder = created
        self.sampleRate = sampleRate
        self.channels = channels
        frameSize = sampleRate / 50
        granuleScale = Int64(48000 / sampleRate)
        packetBuffer = [UInt8](repeating: 0, count: 1500 * channels)
        do throws(AudioError) {
            try Self.set(created, OPUS_SET_BITRATE_REQUEST, Int32(bitrate), "bitrate \(bitrate)")
            try Self.set(created, OPUS_SET_VBR_REQUEST, 1, "VBR")
            try Self.set(created, OPUS_SET_VBR_CONSTRAINT_REQUEST, 0, "unconstrained VBR")
            var value: Int32 = 0
            let got = tuss_opus_encoder_get_int(created, OPUS_GET_LOOKAHEAD_REQUEST, &value)
            guard got == OPUS_OK else { throw AudioError.codec("cannot read the lookahead: \(opusMessage(got))") }
            lookahead = Int(value)
            preSkip = Int64(value) * granuleScale
            guard preSkip <= Int64(UInt16.max) else { throw AudioError.codec("pre-skip \(preSkip) does not fit OpusHead") }
            writer = try OggPageWriter(serial: Int32.random(in: Int32.min...Int32.max))
            try writer.writeHeader(
                OggOpus.opusHead(channels: channels, preSkip: UInt16(preSkip), inputRate: UInt32(inputRate)),
                packetNumber: 0)
            var comments = ["ENCODER=tuss-codec"]
            if let originalLength { comments.append("\(OggOpus.lengthTag)=\(originalLength)") }
            try writer.writeHeader(OggOpus.opusTags(vendor: String(cString: opus_get_version_string()), comments: comments),
                                   packetNumber: 1)
        } catch {
            opus_encoder_destroy(created)
            throw error
        }
    }

    deinit { opus_encoder_destroy(encoder) }

    private static func set(_ encoder: OpaquePointer, _ request: Int32, _ value: Int32, _ what: String) throws(AudioError) {
        let status = tuss_opus_encoder_set_int(encoder, request, value)
        guard status == OPUS_OK else { throw AudioError.codec("cannot set \(what): \(opusMessage(status))") }
    }

    /// Codes `planar` (`[channels][samples]` at `sampleRate`) and returns the Ogg bytes completed so far (the headers
    /// come with the first call). Samples short of a whole 20 ms frame wait for the next call or `finish`.
    ///
    /// - Parameter flush: end the current page after these frames (live streams); false lets pages fill up (files).
    public func encode(_ planar: [[Float]], flush: Bool = true) throws(AudioError) -> [UInt8] {
        guard !finished else { throw AudioError.invalidArgument("the Opus stream is already finished") }
        guard planar.count == channels else {
            throw AudioError.invalidArgument("\(planar.count) channels given to a \(channels)-channel Opus encoder")
        }
        let length = planar[0].count
        for channel in planar where channel.count != length {
            throw AudioError.invalidArgument("all channels must have the same length (\(length) vs \(channel.count))")
        }
        let start = pending.count
        pending.append(contentsOf: repeatElement(0, count: length * channels))
        pending.withUnsafeMutableBufferPointer { dst in
            for c in 0..<channels {
                planar[c].withUnsafeBufferPointer { src in
                    var d = start + c
                    for i in 0..<length {
                        dst[d] = src[i]
                        d += channels
                    }
                }
            }
        }
        consumed += Int64(length)
        try codeWholeFrames(endOfStream: false)
        return try writer.take(flush: flush)
    }

    /// Codes what is left, padded with silence through the encoder's lookahead, marks the end of the stream and
    /// returns the last pages.
    public func finish() throws(AudioError) -> [UInt8] {
        guard !finished else { return [] }
        finished = true
        // Enough packets that the decoder's output (after pre-skip) covers every input sample.
        let needed = max(packets + 1, (consumed + Int64(lookahead) + Int64(frameSize) - 1) / Int64(frameSize))
        let padding = Int(needed * Int64(frameSize) - packets * Int64(frameSize)) * channels - pending.count
        pending.append(contentsOf: repeatElement(0, count: max(0, padding)))
        try codeWholeFrames(endOfStream: true)
        return try writer.take(flush: true)
    }

    /// Codes every whole frame in `pending`; with `endOfStream` the last one carries the exact end granule.
    private func codeWholeFrames(endOfStream: Bool) throws(AudioError) {
        let frameValues = frameSize * channels
        let count = pending.count / frameValues
        guard count > 0 else { return }
        for k in 0..<count {
            let bytes = pending.withUnsafeBufferPointer { pcm -> Int32 in
                packetBuffer.withUnsafeMutableBufferPointer { out -> Int32 in
                    guard let input = pcm.baseAddress, let output = out.baseAddress else { return OPUS_BAD_ARG }
                    return opus_encode_float(encoder, input + k * frameValues, Int32(frameSize), output, Int32(out.count))
                }
            }
            guard bytes > 0 else { throw AudioError.codec("opus_encode_float failed: \(opusMessage(bytes))") }
            packets += 1
            let last = endOfStream && k == count - 1
            let granule = last ? preSkip + consumed * granuleScale : packets * Int64(frameSize) * granuleScale
            try packetBuffer.withUnsafeBufferPointer { all throws(AudioError) in
                try writer.writePacket(UnsafeBufferPointer(rebasing: all[0..<Int(bytes)]), granule: granule,
                                       packetNumber: packets + 1, endOfStream: last)
            }
        }
        pending.removeFirst(count * frameValues)
    }
}

/// Decodes one Ogg Opus stream (channel mapping family 0: mono or stereo) from bytes as they arrive.
///
/// Feed any split of the stream to `decode`; each call returns the samples that became final, with the pre-skip
/// removed and, at the end-of-stream page, the end padding trimmed to the exact end position. Only the first logical
/// stream is read. Memory stays bounded by one Ogg page plus one decoded packet.
public final class OggOpusStreamDecoder {
    /// What the stream's headers say.
    public struct StreamInfo: Sendable, Equatable {
        /// 1 or 2.
        public var channels: Int
        /// The rate the audio had before encoding (OpusHead's input rate; 0 when not recorded).
        public var originalSampleRate: Int
        /// Samples per channel at `originalSampleRate` (our `TUSS_LENGTH` comment), when recorded.
        public var originalLength: Int?
    }

    /// The rate of the decoded samples.
    public private(set) var sampleRate: Int
    /// Known once the OpusHead and OpusTags packets have been read.
    public private(set) var info: StreamInfo?
    /// True once the end-of-stream packet has been decoded.
    public private(set) var ended = false
    /// The granule position of the last page that ended a packet (48 kHz samples, pre-skip included), or −1.
    public private(set) var lastGranule: Int64 = -1
    private let requestedRate: Int?
    private let parser = OggPacketParser()
    private var decoder: OpaquePointer?
    /// OpusHead's pre-skip in 48 kHz samples.
    private(set) var preSkip: Int64 = 0
    private var gain: Float = 1
    private var skipRemaining = 0
    private var emitted: Int64 = 0
    private var packetIndex = 0
    private var pcm: [Float] = []

    /// - Parameter sampleRate: an Opus rate to decode at (libopus decodes any stream at any of them); nil decodes
    ///   at the stream's original rate when Opus has it, else at 48 kHz.
    public init(sampleRate: Int? = nil) throws(AudioError) {
        if let sampleRate, !OggOpus.opusRates.contains(sampleRate) {
            throw AudioError.invalidArgument("Opus decodes at 8, 12, 16, 24 or 48 kHz, not \(sampleRate) Hz")
        }
        requestedRate = sampleRate
        self.sampleRate = sampleRate ?? 48000
    }

    deinit { if let decoder { opus_decoder_destroy(decoder) } }

    /// Takes the next bytes of the stream; returns `[channels][samples]` newly decoded (no channels before the
    /// headers are complete). Bytes after the end of the stream are ignored.
    /// - Throws: `AudioError.unreadable` (path "stream") when the bytes are not Ogg Opus or are damaged.
    public func decode<Bytes: Collection>(_ bytes: Bytes) throws(AudioError) -> [[Float]] where Bytes.Element == UInt8 {
        guard !ended else { return [] }
        parser.feed(bytes)
        var out: [[Float]] = info.map { [[Float]](repeating: [], count: $0.channels) } ?? []
        while !ended, let packet = try parser.nextPacket() {
            defer { packetIndex += 1 }
            if packet.granule >= 0 { lastGranule = packet.granule }
            switch packetIndex {
            case 0: try readHead(packet.data)
            case 1:
                info?.originalLength = OggOpus.parseLengthTag(packet.data)
                if let info { out = [[Float]](repeating: [], count: info.channels) }
            default:
                guard info != nil, out.count > 0 else {
                    throw AudioError.unreadable(path: "stream", reason: "audio before the OpusTags header")
                }
                try decodeAudio(packet, into: &out)
            }
        }
        return out
    }

    private func readHead(_ data: [UInt8]) throws(AudioError) {
        let head = try OggOpus.parseOpusHead(data, path: "stream")
        let rate = requestedRate ?? (OggOpus.opusRates.contains(head.inputRate) ? head.inputRate : 48000)
        var status: Int32 = 0
        guard let created = opus_decoder_create(Int32(rate), Int32(head.channels), &status), status == OPUS_OK else {
            throw AudioError.codec("cannot create the Opus decoder: \(opusMessage(status))")
        }
        decoder = created
        sampleRate = rate
        let scale = Int64(48000 / rate)
        preSkip = Int64(head.preSkip)
        skipRemaining = Int((preSkip + scale / 2) / scale)
        gain = head.outputGain == 0 ? 1 : Float(pow(10, Double(head.outputGain) / (20 * 256)))
        pcm = [Float](repeating: 0, count: rate * 120 / 1000 * head.channels)
        info = StreamInfo(channels: head.channels, originalSampleRate: head.inputRate, originalLength: nil)
    }

    private func decodeAudio(_ packet: OggPacketParser.Packet, into out: inout [[Float]]) throws(AudioError) {
        guard let decoder else { return }
        let channels = out.count
        let maxFrame = pcm.count / channels
        let decoded = packet.data.withUnsafeBufferPointer { bytes in
            pcm.withUnsafeMutableBufferPointer { dst -> Int32 in
                guard let out = dst.baseAddress else { return OPUS_BAD_ARG }
                return opus_decode_float(decoder, bytes.baseAddress, Int32(bytes.count), out, Int32(maxFrame), 0)
            }
        }
        guard decoded >= 0 else {
            throw AudioError.unreadable(path: "stream", reason: "Opus packet failed to decode: \(opusMessage(decoded))")
        }
        var first = min(Int(decoded), skipRemaining)
        skipRemaining -= first
        var last = Int(decoded)
        if packet.endOfStream {
            ended = true
            if packet.granule >= 0 {
                let scale = Int64(48000 / sampleRate)
                let total = max(0, (packet.granule - preSkip + scale / 2) / scale)
                last = min(last, first + Int(max(0, total - emitted)))
            }
        }
        first = min(first, last)
        emitted += Int64(last - first)
        pcm.withUnsafeBufferPointer { src in
            for c in 0..<channels {
                var s = first * channels + c
                for _ in first..<last {
                    out[c].append(src[s] * gain)
                    s += channels
                }
            }
        }
    }
}

/// Collects the pages of one logical Ogg stream in memory (libogg's `ogg_stream_state`).
final class OggPageWriter {
    private let state: UnsafeMutablePointer<ogg_stream_state>
    private let page: UnsafeMutablePointer<ogg_page>
    private var bytes: [UInt8] = []

    init(serial: Int32) throws(AudioError) {
        state = .allocate(capacity: 1)
        page = .allocate(capacity: 1)
        page.initialize(to: ogg_page())
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

    /// Submits a header packet on its own page(s), as RFC 7845 requires.
    func writeHeader(_ header: [UInt8], packetNumber: Int64) throws(AudioError) {
        var copy = header
        try copy.withUnsafeMutableBufferPointer { buffer throws(AudioError) in
            try submit(UnsafeBufferPointer(buffer), granule: 0, packetNumber: packetNumber,
                       beginning: packetNumber == 0, endOfStream: false)
        }
        drain(flush: true)
    }

    /// Submits an audio packet ending at `granule` (48 kHz samples including pre-skip).
    func writePacket(_ packet: UnsafeBufferPointer<UInt8>, granule: Int64, packetNumber: Int64, endOfStream: Bool)
        throws(AudioError)
    {
        try submit(packet, granule: granule, packetNumber: packetNumber, beginning: false, endOfStream: endOfStream)
        drain(flush: false)
    }

    /// The bytes of every completed page (with `flush`, also a page for the packets not yet on one), then forgets them.
    func take(flush: Bool) throws(AudioError) -> [UInt8] {
        drain(flush: flush)
        defer { bytes.removeAll(keepingCapacity: true) }
        return bytes
    }

    private func submit(_ data: UnsafeBufferPointer<UInt8>, granule: Int64, packetNumber: Int64, beginning: Bool,
                        endOfStream: Bool) throws(AudioError) {
        var packet = ogg_packet()
        packet.packet = UnsafeMutablePointer(mutating: data.baseAddress)
        packet.bytes = data.count
        packet.b_o_s = beginning ? 1 : 0
        packet.e_o_s = endOfStream ? 1 : 0
        packet.granulepos = granule
        packet.packetno = packetNumber
        guard ogg_stream_packetin(state, &packet) == 0 else { throw AudioError.codec("ogg_stream_packetin failed") }
    }

    private func drain(flush: Bool) {
        while (flush ? ogg_stream_flush(state, page) : ogg_stream_pageout(state, page)) != 0 {
            bytes.append(contentsOf: UnsafeBufferPointer(start: UnsafePointer(page.pointee.header), count: page.pointee.header_len))
            bytes.append(contentsOf: UnsafeBufferPointer(start: UnsafePointer(page.pointee.body), count: page.pointee.body_len))
        }
    }
}

/// Splits Ogg bytes, fed in any pieces, into the packets of the first logical stream (libogg's sync and stream
/// states).
final class OggPacketParser {
    struct Packet {
        var data: [UInt8]
        /// The packet's granule position, or −1 when it does not end a page.
        var granule: Int64
        var endOfStream: Bool
    }

    private let sync: UnsafeMutablePointer<ogg_sync_state>
    private let stream: UnsafeMutablePointer<ogg_stream_state>
    private let page: UnsafeMutablePointer<ogg_page>
    private let packet: UnsafeMutablePointer<ogg_packet>
    private var serial: Int32?
    /// Bytes given to libogg so far, to tell "not Ogg at all" from "no complete page yet".
    private var fed = 0
    /// The stream's first bytes: an Ogg stream starts with a page ("OggS"), so anything else is refused at once
    /// instead of after a long resynchronisation.
    private var prefix: [UInt8] = []

    init() {
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
        sync.deallocate()
        stream.deallocate()
        page.deallocate()
        packet.deallocate()
    }

    /// Whether a page of the stream has been seen.
    var foundStream: Bool { serial != nil }

    func feed<Bytes: Collection>(_ bytes: Bytes) where Bytes.Element == UInt8 {
        if prefix.count < 4 { prefix += bytes.prefix(4 - prefix.count) }
        guard !bytes.isEmpty, let buffer = ogg_sync_buffer(sync, bytes.count) else { return }
        let target = UnsafeMutableBufferPointer(start: UnsafeMutableRawPointer(buffer).assumingMemoryBound(to: UInt8.self),
                                                count: bytes.count)
        _ = target.initialize(from: bytes)
        ogg_sync_wrote(sync, bytes.count)
        fed += bytes.count
    }

    /// The next complete packet of the first stream, or nil until more bytes arrive.
    func nextPacket() throws(AudioError) -> Packet? {
        if serial == nil, prefix.count == 4, prefix != Array("OggS".utf8) {
            throw AudioError.unreadable(path: "stream", reason: "not an Ogg stream (it does not start with an Ogg page)")
        }
        while true {
            if serial != nil {
                let result = ogg_stream_packetout(stream, packet)
                if result == 1 {
                    let data = Array(UnsafeBufferPointer(start: packet.pointee.packet, count: packet.pointee.bytes))
                    return Packet(data: data, granule: packet.pointee.granulepos, endOfStream: packet.pointee.e_o_s != 0)
                }
                if result < 0 { throw AudioError.unreadable(path: "stream", reason: "the Ogg stream has a gap (damaged data)") }
            }
            let found = ogg_sync_pageout(sync, page)
            if found == 0 {
                // Ogg pages are at most 65 307 bytes: this much without one means the bytes are not Ogg.
                if serial == nil, fed > 65_536 * 2 {
                    throw AudioError.unreadable(path: "stream", reason: "no Ogg page found (not an Ogg stream)")
                }
                return nil
            }
            if found < 0 { continue }  // skipped bytes while resynchronising
            let pageSerial = ogg_page_serialno(page)
            if serial == nil {
                guard ogg_page_bos(page) != 0 else { continue }
                guard ogg_stream_init(stream, pageSerial) == 0 else { throw AudioError.codec("ogg_stream_init failed") }
                serial = pageSerial
            }
            guard pageSerial == serial else { continue }
            guard ogg_stream_pagein(stream, page) == 0 else {
                throw AudioError.unreadable(path: "stream", reason: "an Ogg page does not fit its stream (damaged data)")
            }
        }
    }
}
