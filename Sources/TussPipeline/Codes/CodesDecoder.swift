import Foundation

/// The one codes-format parser behind `CodesReader` and `CodesStreamParser`: bytes in, checked events out.
///
/// Every check fires at a fixed number of available bytes, so the events and errors do not depend on how the input
/// was split. After an error the decoder stays failed and repeats that error.
struct CodesDecoder: Sendable {
    private enum Phase: Sendable {
        case header
        case chunks(CodesHeader, CodesChunkSequence)
        case ended
        case failed(CodesFileError)
    }

    private var phase = Phase.header
    /// Unparsed input; `buffer[start...]` is not yet consumed.
    private var buffer: [UInt8] = []
    private var start = 0
    /// File offset of `buffer[0]`.
    private var base = 0
    /// The header once parsed.
    private(set) var header: CodesHeader?

    /// True once the end-of-stream marker has been parsed (and no error came after it).
    var isEnded: Bool {
        if case .ended = phase { return true }
        return false
    }

    /// Adds input bytes.
    mutating func append(_ bytes: Data) {
        compact()
        buffer.append(contentsOf: bytes)
    }

    /// Adds input bytes.
    mutating func append(_ bytes: UnsafeRawBufferPointer) {
        compact()
        buffer.append(contentsOf: bytes)
    }

    private mutating func compact() {
        guard start > 0 else { return }
        buffer.removeSubrange(0..<start)
        base += start
        start = 0
    }

    /// The next complete event, nil when more input is needed (or after the end), or the error in the input.
    mutating func nextEvent() throws(CodesFileError) -> CodesStreamEvent? {
        do throws(CodesFileError) {
            switch phase {
            case .failed(let error):
                throw error
            case .ended:
                if start < buffer.count { throw .trailingData(offset: base + start) }
                return nil
            case .header:
                return try parseHeader()
            case .chunks(let header, let sequence):
                return try parseChunk(header: header, sequence: sequence)
            }
        } catch {
            phase = .failed(error)
            throw error
        }
    }

    /// Declares the input complete: fine after the end marker, otherwise the error for input that stops here.
    mutating func finishInput() throws(CodesFileError) {
        let total = base + buffer.count
        let error: CodesFileError
        switch phase {
        case .ended:
            guard start < buffer.count else { return }
            error = .trailingData(offset: base + start)
        case .failed(let failure):
            error = failure
        case .header:
            let available = Array(buffer[start...].prefix(CodesFormat.magic.count))
            if total == 0 {
                error = .emptyFile
            } else if !CodesFormat.magic.starts(with: available) {
                error = .notACodesFile(found: available)
            } else {
                error = .truncated(offset: total, chunk: nil)
            }
        case .chunks(_, let sequence):
            error = .truncated(offset: total, chunk: sequence.nextIndex)
        }
        phase = .failed(error)
        throw error
    }

    private mutating func parseHeader() throws(CodesFileError) -> CodesStreamEvent? {
        let available = buffer.count - start
        let at = start
        let magicSize = CodesFormat.magic.count
        guard available >= magicSize else { return nil }
        guard buffer[at..<at + magicSize].elementsEqual(CodesFormat.magic) else {
            throw .notACodesFile(found: Array(buffer[at..<at + magicSize]))
        }
        guard available >= magicSize + 2 else { return nil }
        let version = Int(CodesBytes.read(buffer, at + magicSize, 2))
        guard version == CodesFormat.version else {
            throw .unsupportedVersion(found: version, supported: CodesFormat.version)
        }
        guard available >= CodesFormat.fixedHeaderSize else { return nil }
        let nameLength = Int(buffer[at + CodesHeaderField.nameLength.offset])
        let crcOffset = CodesFormat.fixedHeaderSize + nameLength
        guard available >= crcOffset + 4 else { return nil }
        let stored = UInt32(CodesBytes.read(buffer, at + crcOffset, 4))
        let computed = CodesCRC32.checksum(buffer[at..<at + crcOffset])
        guard stored == computed else {
            throw .headerChecksumMismatch(offset: base + at + crcOffset, stored: stored, computed: computed)
        }

        func field(_ field: CodesHeaderField, _ count: Int) -> UInt64 { CodesBytes.read(buffer, at + field.offset, count) }
        func malformed(_ field: CodesHeaderField, _ reason: String) -> CodesFileError {
            .malformedHeader(field: field.rawValue, offset: base + at + field.offset, reason: reason)
        }
        let nameStart = at + CodesHeaderField.name.offset
        guard let name = String(validating: buffer[nameStart..<nameStart + nameLength], as: UTF8.self) else {
            throw malformed(.name, "is not valid UTF-8")
        }
        let originalLength = field(.originalLength, 8)
        guard originalLength <= UInt64(Int64.max) else {
            throw malformed(.originalLength, "is \(originalLength), more than \(Int64.max)")
        }
        let storedFrames = field(.frames, 8)
        guard storedFrames == CodesFormat.unknownFrames || storedFrames <= UInt64(Int64.max) else {
            throw malformed(.frames, "is \(storedFrames); it must be at most \(Int64.max), or all ones for unknown")
        }
        let hashStart = at + CodesHeaderField.weightsHash.offset
        let header = CodesHeader(
            codec: CodecIdentity(name: name, weightsHash: Array(buffer[hashStart..<hashStart + CodesFormat.hashBytes])),
            sampleRate: Int(field(.sampleRate, 4)),
            hopLength: Int(field(.hopLength, 4)),
            codebooks: Int(field(.codebooks, 2)),
            codebookSize: Int(field(.codebookSize, 4)),
            originalLength: Int64(originalLength),
            originalSampleRate: Int(field(.originalSampleRate, 4)),
            channels: Int(field(.channels, 2)),
            frames: storedFrames == CodesFormat.unknownFrames ? nil : Int64(storedFrames))
        if let (field, reason) = header.formatProblem() { throw malformed(field, reason) }
        start += crcOffset + 4
        self.header = header
        phase = .chunks(header, CodesChunkSequence(channels: header.channels, declaredFrames: header.frames))
        return .header(header)
    }

    private mutating func parseChunk(
        header: CodesHeader, sequence: CodesChunkSequence
    ) throws(CodesFileError) -> CodesStreamEvent? {
        let available = buffer.count - start
        let at = start
        let offset = base + at
        let chunk = sequence.nextIndex
        let markerSize = CodesFormat.chunkMarker.count
        guard available >= markerSize else { return nil }
        let marker = buffer[at..<at + markerSize]

        if marker.elementsEqual(CodesFormat.endMarker) {
            guard available >= CodesFormat.endSize else { return nil }
            let stored = UInt32(CodesBytes.read(buffer, at + markerSize, 4))
            let computed = CodesCRC32.checksum(marker)
            guard stored == computed else {
                throw .chunkChecksumMismatch(chunk: chunk, offset: offset, stored: stored, computed: computed)
            }
            if let problem = sequence.endProblem() {
                throw .malformedChunk(chunk: chunk, offset: offset, reason: "the end-of-stream marker comes but \(problem)")
            }
            start += CodesFormat.endSize
            phase = .ended
            return .end
        }
        guard marker.elementsEqual(CodesFormat.chunkMarker) else {
            throw .malformedChunk(
                chunk: chunk, offset: offset,
                reason: "found bytes \(codesHex(Array(marker))) where a chunk marker 'CHNK' or the end marker 'TEND' "
                    + "must be")
        }
        guard available >= CodesFormat.chunkHeaderSize else { return nil }
        let index = Int(CodesBytes.read(buffer, at + 4, 4))
        let channel = Int(CodesBytes.read(buffer, at + 8, 2))
        let firstFrame = CodesBytes.read(buffer, at + 10, 8)
        let frames = Int(CodesBytes.read(buffer, at + 18, 4))
        let payloadLength = Int(CodesBytes.read(buffer, at + 22, 4))
        guard (1...CodesFormat.maxFramesPerChunk).contains(frames) else {
            throw .malformedChunk(
                chunk: chunk, offset: offset + 18,
                reason: "frame count \(frames) is outside 1...\(CodesFormat.maxFramesPerChunk)")
        }
        guard frames * header.codebooks <= CodesFormat.maxCodesPerChunk else {
            throw .malformedChunk(
                chunk: chunk, offset: offset + 18,
                reason: "\(frames) frames × \(header.codebooks) codebooks is more than the limit of "
                    + "\(CodesFormat.maxCodesPerChunk) codes per chunk")
        }
        let bits = header.bitsPerCode
        let expectedLength = CodesFormat.payloadSize(frames: frames, codebooks: header.codebooks, bits: bits)
        guard payloadLength == expectedLength else {
            throw .malformedChunk(
                chunk: chunk, offset: offset + 22,
                reason: "payload length is \(payloadLength) bytes but \(frames) frames × \(header.codebooks) "
                    + "codebooks × \(bits) bits need \(expectedLength)")
        }
        let crcAt = at + CodesFormat.chunkHeaderSize + payloadLength
        guard available >= crcAt - at + 4 else { return nil }
        let stored = UInt32(CodesBytes.read(buffer, crcAt, 4))
        let computed = CodesCRC32.checksum(buffer[at..<crcAt])
        guard stored == computed else {
            throw .chunkChecksumMismatch(chunk: chunk, offset: offset, stored: stored, computed: computed)
        }
        guard index == chunk else {
            throw .chunkOutOfSequence(
                chunk: chunk, offset: offset + 4, reason: "its index is \(index) but chunk \(chunk) comes next")
        }
        guard channel < header.channels else {
            throw .malformedChunk(
                chunk: chunk, offset: offset + 8,
                reason: "channel \(channel) is outside 0..<\(header.channels) (the header's channel count)")
        }
        guard firstFrame <= UInt64(Int64.max - Int64(frames)) else {
            throw .malformedChunk(chunk: chunk, offset: offset + 10, reason: "first frame \(firstFrame) is out of range")
        }
        if let problem = sequence.problem(channel: channel, firstFrame: Int64(firstFrame), frames: frames) {
            throw .chunkOutOfSequence(chunk: chunk, offset: offset, reason: problem)
        }
        let payloadStart = at + CodesFormat.chunkHeaderSize
        let codes: [[Int32]]
        switch CodesBitPacking.unpack(
            buffer, payloadStart..<crcAt, frames: frames, codebooks: header.codebooks, bits: bits,
            codebookSize: header.codebookSize)
        {
        case .success(let unpacked):
            codes = unpacked
        case .failure(let problem):
            throw .malformedChunk(
                chunk: chunk, offset: offset + CodesFormat.chunkHeaderSize + problem.byte, reason: problem.reason)
        }
        var next = sequence
        next.accept(channel: channel, frames: frames)
        start = crcAt + 4
        phase = .chunks(header, next)
        return .chunk(CodesChunk(channel: channel, firstFrame: Int64(firstFrame), codes: codes))
    }
}

/// Incremental parser for codes bytes arriving over a network: feed bytes, get the header then each chunk as soon
/// as it is complete and checked, then `.end`.
///
/// Errors are `CodesFileError`, the same ones `CodesReader` reports for the same bytes however they are split. When
/// one `feed` completes some events and then hits damage, it returns those events and the next `feed` or `finish`
/// throws the error; after an error every call throws it again.
public struct CodesStreamParser: Sendable {
    private var decoder = CodesDecoder()

    /// Makes a parser waiting for the header.
    public init() {}

    /// The header, once it has arrived.
    public var header: CodesHeader? { decoder.header }

    /// Adds bytes and returns the events they complete (possibly none).
    public mutating func feed(_ bytes: Data) throws(CodesFileError) -> [CodesStreamEvent] {
        decoder.append(bytes)
        var events: [CodesStreamEvent] = []
        while true {
            do throws(CodesFileError) {
                guard let event = try decoder.nextEvent() else { return events }
                events.append(event)
            } catch {
                if events.isEmpty { throw error }
                return events
            }
        }
    }

    /// Declares the input over (connection closed): throws unless the end-of-stream marker arrived intact.
    public mutating func finish() throws(CodesFileError) {
        try decoder.finishInput()
    }
}
