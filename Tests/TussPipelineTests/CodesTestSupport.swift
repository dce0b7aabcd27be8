import Foundation
import TussPipeline
import TussTestSupport
import XCTest

/// Test-side knowledge of the format, written independently of the library to pin docs/codes-format.md.
enum CodesSpec {
    /// Bitwise CRC-32 (IEEE, reflected), the slow obvious way.
    static func crc32(_ bytes: some Sequence<UInt8>) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
        }
        return ~crc
    }

    /// `value` as `count` little-endian bytes.
    static func le(_ value: UInt64, _ count: Int) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }
    }

    /// Reads a little-endian value of `count` bytes at `offset`.
    static func readLE(_ bytes: [UInt8], _ offset: Int, _ count: Int) -> UInt64 {
        (0..<count).reduce(UInt64(0)) { $0 | UInt64(bytes[offset + $1]) << (8 * $1) }
    }

    /// Byte ranges of the header, each chunk and the end marker of a well-formed stream.
    static func segments(_ bytes: [UInt8]) -> [Range<Int>] {
        let headerSize = 83 + Int(bytes[78])
        var ranges = [0..<headerSize]
        var at = headerSize
        while at + 8 <= bytes.count {
            if bytes[at..<at + 4].elementsEqual(Array("TEND".utf8)) {
                ranges.append(at..<at + 8)
                break
            }
            let size = 30 + Int(readLE(bytes, at + 22, 4))
            ranges.append(at..<at + size)
            at += size
        }
        return ranges
    }

    /// Recomputes the CRC stored in the last 4 bytes of `segment`.
    static func refreshCRC(_ bytes: inout [UInt8], _ segment: Range<Int>) {
        let crc = crc32(bytes[segment.lowerBound..<segment.upperBound - 4])
        bytes.replaceSubrange(segment.upperBound - 4..<segment.upperBound, with: le(UInt64(crc), 4))
    }

    /// Writes `value` little-endian at `offset` and recomputes the CRC of the segment holding it.
    /// The segments are found before the change, so length fields can be patched too.
    static func patch(_ bytes: inout [UInt8], at offset: Int, _ value: UInt64, _ count: Int) {
        let segment = segments(bytes).first(where: { $0.contains(offset) })
        bytes.replaceSubrange(offset..<offset + count, with: le(value, count))
        if let segment { refreshCRC(&bytes, segment) }
    }
}

/// A codes stream made for a test: header, chunks in order, and the codes per channel they add up to.
struct CodesSample {
    var header: CodesHeader
    var chunks: [CodesChunk]
    var expected: [[[Int32]]]

    /// Random codes for `header`, cut into time ranges of the given frame counts (one chunk per channel each).
    init(header: CodesHeader, ranges: [Int], rng: inout SeededGenerator) {
        self.header = header
        var chunks: [CodesChunk] = []
        var expected = [[[Int32]]](
            repeating: [[Int32]](repeating: [], count: header.codebooks), count: header.channels)
        var first: Int64 = 0
        for frames in ranges {
            for channel in 0..<header.channels {
                let codes = (0..<header.codebooks).map { _ in
                    (0..<frames).map { _ in Int32(Int.random(in: 0..<header.codebookSize, using: &rng)) }
                }
                chunks.append(CodesChunk(channel: channel, firstFrame: first, codes: codes))
                for codebook in 0..<header.codebooks { expected[channel][codebook] += codes[codebook] }
            }
            first += Int64(frames)
        }
        self.chunks = chunks
        self.expected = expected
    }

    /// Frames per channel.
    var frames: Int64 { Int64(expected.first?.first?.count ?? 0) }

    /// The stream bytes from a sink writer, plus the units the sink received.
    func encoded() throws -> (data: Data, units: [Data]) {
        var units: [Data] = []
        let writer = try CodesWriter(sink: { units.append($0) }, header: header)
        for chunk in chunks { try writer.write(chunk) }
        try writer.finish()
        return (units.reduce(Data(), +), units)
    }
}

/// A header with test defaults.
func makeCodesHeader(
    name: String = "dac_44khz", channels: Int = 1, codebooks: Int = 9, codebookSize: Int = 1024,
    frames: Int64? = nil, originalLength: Int64 = 44_100, originalSampleRate: Int = 48_000
) -> CodesHeader {
    CodesHeader(
        codec: CodecIdentity(name: name, weightsHash: (0..<32).map { UInt8($0 * 7 + 1) }),
        sampleRate: 44_100, hopLength: 512, codebooks: codebooks, codebookSize: codebookSize,
        originalLength: originalLength, originalSampleRate: originalSampleRate, channels: channels, frames: frames)
}

/// What reading some bytes gave: the header and chunks (with or without a clean end), or the error.
struct CodesOutcome: Equatable {
    var header: CodesHeader?
    var chunks: [CodesChunk] = []
    var ended = false
    var error: CodesFileError?
}

/// Reads `data` with `CodesReader`, collecting everything until the end or an error.
func readWithReader(_ data: Data) -> CodesOutcome {
    var outcome = CodesOutcome()
    do throws(CodesFileError) {
        let reader = try CodesReader(data: data)
        outcome.header = reader.header
        while let chunk = try reader.next() { outcome.chunks.append(chunk) }
        outcome.ended = true
    } catch {
        outcome.error = error
    }
    return outcome
}

/// Feeds `data` to `CodesStreamParser` in pieces whose sizes come from `pieceSize`, then calls `finish()`.
func readWithParser(_ data: Data, pieceSize: (Int) -> Int) -> CodesOutcome {
    var outcome = CodesOutcome()
    var parser = CodesStreamParser()
    let bytes = [UInt8](data)
    var at = 0
    do throws(CodesFileError) {
        var piece = 0
        repeat {
            let size = min(max(pieceSize(piece), 0), bytes.count - at)
            piece += 1
            for event in try parser.feed(Data(bytes[at..<at + size])) {
                switch event {
                case .header(let header): outcome.header = header
                case .chunk(let chunk): outcome.chunks.append(chunk)
                case .end: outcome.ended = true
                }
            }
            at += size
        } while at < bytes.count
        try parser.finish()
    } catch {
        outcome.error = error
        outcome.ended = false
    }
    return outcome
}

/// The `CodesFileError` thrown by `body`, failing the test if it throws something else or nothing.
func codesError(
    _ body: () throws -> Void, file: StaticString = #filePath, line: UInt = #line
) -> CodesFileError? {
    do {
        try body()
        XCTFail("expected a CodesFileError, nothing was thrown", file: file, line: line)
    } catch let error as CodesFileError {
        return error
    } catch {
        XCTFail("expected a CodesFileError, got \(error)", file: file, line: line)
    }
    return nil
}
