import Foundation
import TussPipeline
import TussTestSupport
import XCTest

final class CodesFileTests: XCTestCase {
    /// A fresh temporary directory removed at teardown, as a URL because these tests build file URLs from it.
    private func scratchURL() throws -> URL {
        URL(fileURLWithPath: try temporaryDirectory(self, prefix: "codes-tests"), isDirectory: true)
    }

    // MARK: Round trips

    func testRoundTripsAcrossChannelsCodebooksAndSizes() throws {
        var rng = SeededGenerator(seed: 1)
        let directory = try scratchURL()
        for channels in [1, 2] {
            for codebooks in [1, 12] {
                for size in [2, 1024, 4096, 65536, 1000] {
                    for declared in [false, true] {
                        let ranges = [1, 7, 64, 3, 150, 2]
                        let total = Int64(ranges.reduce(0, +))
                        let header = makeCodesHeader(
                            channels: channels, codebooks: codebooks, codebookSize: size,
                            frames: declared ? total : nil)
                        let sample = CodesSample(header: header, ranges: ranges, rng: &rng)
                        let label = "channels \(channels), codebooks \(codebooks), size \(size), declared \(declared)"
                        try checkRoundTrip(sample, in: directory, label: label)
                    }
                }
            }
        }
    }

    func testManySmallChunksRoundTrip() throws {
        var rng = SeededGenerator(seed: 2)
        let ranges = (0..<600).map { _ in Int.random(in: 1...5, using: &rng) }
        let sample = CodesSample(header: makeCodesHeader(channels: 2, codebooks: 4), ranges: ranges, rng: &rng)
        let directory = try scratchURL()
        try checkRoundTrip(sample, in: directory, label: "600 ranges")
        XCTAssertEqual(sample.chunks.count, 1200)
    }

    func testChunksLargerThanOneReadBlockRoundTrip() throws {
        var rng = SeededGenerator(seed: 3)
        let sample = CodesSample(
            header: makeCodesHeader(channels: 2, codebooks: 12, codebookSize: 4096), ranges: [20_000, 5, 9_000],
            rng: &rng)
        let directory = try scratchURL()
        try checkRoundTrip(sample, in: directory, label: "large chunks")
    }

    func testZeroFrameFiles() throws {
        let directory = try scratchURL()
        var rng = SeededGenerator(seed: 12)
        for channels in [1, 2] {
            let header = makeCodesHeader(channels: channels, codebooks: 3, originalLength: 0)
            let path = directory.appendingPathComponent("empty-\(channels).bin").path
            let writer = try CodesWriter(path: path, header: header)
            try writer.finish()
            let data = try Data(contentsOf: URL(fileURLWithPath: path))
            XCTAssertEqual(data.count, 83 + 9 + 8, "header with a 9-byte name, then only the end marker")
            let reader = try CodesReader(path: path)
            XCTAssertEqual(reader.header.frames, 0, "the file writer fills in the frame count")
            XCTAssertEqual(try reader.readAll(), Array(repeating: Array(repeating: [], count: 3), count: channels))
            XCTAssertNil(try reader.next())
            let sample = CodesSample(header: header, ranges: [], rng: &rng)
            let streamed = try sample.encoded()
            XCTAssertEqual(streamed.units.count, 2, "header and end")
            XCTAssertEqual(readWithParser(streamed.data) { _ in 1 }, readWithReader(streamed.data))
        }
    }

    func testFileWriterFillsInUnknownFramesAndSinkWriterLeavesThemUnknown() throws {
        var rng = SeededGenerator(seed: 4)
        let sample = CodesSample(header: makeCodesHeader(channels: 2), ranges: [10, 20], rng: &rng)
        let directory = try scratchURL()
        let path = directory.appendingPathComponent("a.bin").path
        let writer = try CodesWriter(path: path, header: sample.header)
        for chunk in sample.chunks { try writer.write(chunk) }
        try writer.finish()
        XCTAssertEqual(try CodesReader(path: path).header.frames, 30)
        XCTAssertNil(try CodesReader(data: sample.encoded().data).header.frames)
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        XCTAssertEqual(CodesSpec.readLE(bytes, 38, 8), 30)
    }

    /// Writes `sample` through both writers and reads it back through every reader.
    private func checkRoundTrip(_ sample: CodesSample, in directory: URL, label: String) throws {
        let path = directory.appendingPathComponent("\(UUID().uuidString).bin").path
        let writer = try CodesWriter(path: path, header: sample.header)
        for chunk in sample.chunks { try writer.write(chunk) }
        try writer.finish()

        var fileHeader = sample.header
        fileHeader.frames = sample.frames
        let fromPath = try CodesReader(path: path)
        XCTAssertEqual(fromPath.header, fileHeader, label)
        XCTAssertEqual(try fromPath.readAll(), sample.expected, label)
        XCTAssertNil(try fromPath.next(), label)

        let streamed = try sample.encoded()
        XCTAssertEqual(streamed.units.count, sample.chunks.count + 2, label)
        let fromData = readWithReader(streamed.data)
        XCTAssertEqual(fromData, CodesOutcome(header: sample.header, chunks: sample.chunks, ended: true), label)
        XCTAssertEqual(try CodesReader(data: streamed.data).readAll(), sample.expected, label)
        if streamed.data.count < 1 << 16 {
            XCTAssertEqual(readWithParser(streamed.data) { _ in 1 }, fromData, label + ", 1 byte at a time")
        }
        var rng = SeededGenerator(seed: UInt64(streamed.data.count))
        XCTAssertEqual(readWithParser(streamed.data) { _ in Int.random(in: 0...(streamed.data.count / 50 + 300), using: &rng) }, fromData, label)

        // The file differs from the stream only in the filled-in frame count and the header CRC.
        let fileBytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        var streamBytes = [UInt8](streamed.data)
        if sample.header.frames == nil { CodesSpec.patch(&streamBytes, at: 38, UInt64(sample.frames), 8) }
        XCTAssertEqual(fileBytes, streamBytes, label)
    }

    // MARK: Exact bytes

    func testBitPackingMatchesHandComputedBytes() throws {
        // 10-bit codes (codebook size 1024), frame-major, least significant bit first.
        // Stream order: f0 cb0 = 1, f0 cb1 = 512, f1 cb0 = 1023, f1 cb1 = 3.
        //   bits 0-9: 1 -> bit 0; bits 10-19: 512 -> bit 19; bits 20-29: all ones; bits 30-39: 3 -> bits 30, 31.
        //   byte 0 = 0x01, byte 1 = 0x00, byte 2 = bits 19..23 = 0xF8, byte 3 = 0xFF, byte 4 = 0x00.
        try checkPayload(size: 1024, codes: [[1, 1023], [512, 3]], expected: [0x01, 0x00, 0xF8, 0xFF, 0x00])
        // 3-bit codes (size 5): 4, 1, 3 -> bits 0-2 = 0,0,1; 3-5 = 1,0,0; 6-8 = 1,1,0 -> 0xCC, then 0x00 (padding).
        try checkPayload(size: 5, codes: [[4, 1, 3]], expected: [0xCC, 0x00])
        // 1-bit codes (size 2), 3 codebooks × 3 frames: frame-major bits 1,0,1, 0,0,1, 1,1,1 -> 0xE5, 0x01.
        try checkPayload(size: 2, codes: [[1, 0, 1], [0, 0, 1], [1, 1, 1]], expected: [0xE5, 0x01])
        // 16-bit codes (size 65536): plain little-endian u16 values.
        try checkPayload(size: 65536, codes: [[0x1234], [0xFFFF]], expected: [0x34, 0x12, 0xFF, 0xFF])
        // 12-bit codes (size 4096): 0xABC, 0x123 -> bits 0-11 = 0xABC, 12-23 = 0x123 -> BC 3A 12.
        try checkPayload(size: 4096, codes: [[0xABC], [0x123]], expected: [0xBC, 0x3A, 0x12])
    }

    private func checkPayload(size: Int, codes: [[Int32]], expected: [UInt8]) throws {
        let header = makeCodesHeader(codebooks: codes.count, codebookSize: size)
        let chunk = CodesChunk(channel: 0, firstFrame: 5, codes: codes)
        let bytes = [UInt8](try CodesFraming.chunk(chunk, index: 3, header: header))
        var want = Array("CHNK".utf8) + CodesSpec.le(3, 4) + CodesSpec.le(0, 2) + CodesSpec.le(5, 8)
        want += CodesSpec.le(UInt64(codes[0].count), 4) + CodesSpec.le(UInt64(expected.count), 4) + expected
        want += CodesSpec.le(UInt64(CodesSpec.crc32(want)), 4)
        XCTAssertEqual(bytes, want, "codebook size \(size)")
    }

    func testHeaderAndEndMarkerBytes() throws {
        let hash = (0..<32).map { UInt8(255 - $0) }
        let header = CodesHeader(
            codec: CodecIdentity(name: "dac", weightsHash: hash), sampleRate: 44_100, hopLength: 512, codebooks: 9,
            codebookSize: 1024, originalLength: 123_456_789_012, originalSampleRate: 48_000, channels: 2,
            frames: nil)
        var want = Array("TUSSCODE".utf8) + CodesSpec.le(1, 2)
        want += CodesSpec.le(44_100, 4) + CodesSpec.le(512, 4) + CodesSpec.le(9, 2) + CodesSpec.le(1024, 4)
        want += CodesSpec.le(123_456_789_012, 8) + CodesSpec.le(48_000, 4) + CodesSpec.le(2, 2)
        want += [UInt8](repeating: 0xFF, count: 8) + hash + [3] + Array("dac".utf8)
        XCTAssertEqual(want.count, 82)
        want += CodesSpec.le(UInt64(CodesSpec.crc32(want)), 4)
        XCTAssertEqual([UInt8](try CodesFraming.header(header)), want)

        var known = header
        known.frames = 0x0102_0304_0506
        let knownBytes = [UInt8](try CodesFraming.header(known))
        XCTAssertEqual(Array(knownBytes[38..<46]), [6, 5, 4, 3, 2, 1, 0, 0])

        let end = Array("TEND".utf8)
        XCTAssertEqual([UInt8](CodesFraming.end()), end + CodesSpec.le(UInt64(CodesSpec.crc32(end)), 4))
    }

    func testReferenceCRCIsTheIEEECheckValue() {
        XCTAssertEqual(CodesSpec.crc32(Array("123456789".utf8)), 0xCBF4_3926)
        XCTAssertEqual(CodesSpec.crc32([]), 0)
    }

    // MARK: Streaming parser

    func testStreamingParserOneByteAtATimeEqualsReader() throws {
        var rng = SeededGenerator(seed: 5)
        for (channels, codebooks, size) in [(1, 1, 2), (2, 12, 1024), (2, 3, 65536)] {
            let sample = CodesSample(
                header: makeCodesHeader(channels: channels, codebooks: codebooks, codebookSize: size),
                ranges: [3, 1, 40], rng: &rng)
            let data = try sample.encoded().data
            var parser = CodesStreamParser()
            var events: [CodesStreamEvent] = []
            for byte in data {
                events += try parser.feed(Data([byte]))
                if case .header(let header)? = events.first { XCTAssertEqual(parser.header, header) }
            }
            try parser.finish()
            XCTAssertEqual(events, [.header(sample.header)] + sample.chunks.map { .chunk($0) } + [.end])
        }
    }

    func testStreamingParserEmitsEachEventAsSoonAsItsLastByteArrives() throws {
        var rng = SeededGenerator(seed: 6)
        let sample = CodesSample(header: makeCodesHeader(channels: 2), ranges: [4, 4], rng: &rng)
        let units = try sample.encoded().units
        var parser = CodesStreamParser()
        for (number, unit) in units.enumerated() {
            XCTAssertEqual(try parser.feed(unit.dropLast()), [], "unit \(number) minus its last byte")
            XCTAssertEqual(try parser.feed(unit.suffix(1)).count, 1, "unit \(number) completed")
        }
        try parser.finish()
    }

    func testParserReturnsGoodEventsBeforeDamageAndThrowsOnTheNextCall() throws {
        var rng = SeededGenerator(seed: 7)
        let sample = CodesSample(header: makeCodesHeader(), ranges: [5, 5], rng: &rng)
        var bytes = [UInt8](try sample.encoded().data)
        let segments = CodesSpec.segments(bytes)
        bytes[segments[2].lowerBound + 30] ^= 0x10
        var parser = CodesStreamParser()
        let events = try parser.feed(Data(bytes))
        XCTAssertEqual(events, [.header(sample.header), .chunk(sample.chunks[0])])
        let expected = readWithReader(Data(bytes)).error
        guard case .chunkChecksumMismatch(chunk: 1, offset: segments[2].lowerBound, _, _)? = expected else {
            return XCTFail("reader should report chunk 1's CRC, got \(String(describing: expected))")
        }
        XCTAssertEqual(codesError { _ = try parser.feed(Data()) }, expected)
        XCTAssertEqual(codesError { try parser.finish() }, expected, "errors are sticky")
    }

    func testParserRejectsBytesAfterTheEnd() throws {
        var rng = SeededGenerator(seed: 8)
        let data = try CodesSample(header: makeCodesHeader(), ranges: [2], rng: &rng).encoded().data
        var parser = CodesStreamParser()
        XCTAssertEqual(try parser.feed(data).last, .end)
        XCTAssertEqual(codesError { _ = try parser.feed(Data([0])) }, .trailingData(offset: data.count))
    }

    // MARK: Reader errors, one distinct case each

    /// A small valid two-channel stream and its segments, for damaging.
    private func validStream() throws -> (bytes: [UInt8], segments: [Range<Int>], sample: CodesSample) {
        var rng = SeededGenerator(seed: 9)
        let sample = CodesSample(
            header: makeCodesHeader(channels: 2, codebooks: 2, codebookSize: 1000, frames: 9), ranges: [3, 2, 4],
            rng: &rng)
        let bytes = [UInt8](try sample.encoded().data)
        return (bytes, CodesSpec.segments(bytes), sample)
    }

    /// The error reading `bytes` gives, checked to be the same from the reader, the parser and a file.
    private func readError(_ bytes: [UInt8], file: StaticString = #filePath, line: UInt = #line) -> CodesFileError? {
        let outcome = readWithReader(Data(bytes))
        XCTAssertEqual(readWithParser(Data(bytes)) { _ in 1 }, outcome, "parser vs reader", file: file, line: line)
        XCTAssertEqual(readWithParser(Data(bytes)) { _ in 1000 }, outcome, "parser vs reader", file: file, line: line)
        if let directory = try? scratchURL() {
            // Called for every damaged stream a test checks: remove each now rather than all at teardown.
            defer { try? FileManager.default.removeItem(at: directory) }
            let url = directory.appendingPathComponent("damaged.bin")
            if (try? Data(bytes).write(to: url)) != nil {
                let fromFile = codesError(
                    {
                        let reader = try CodesReader(path: url.path)
                        while try reader.next() != nil {}
                    }, file: file, line: line)
                XCTAssertEqual(fromFile, outcome.error, "file vs memory", file: file, line: line)
            }
        }
        XCTAssertNotNil(outcome.error, "expected an error", file: file, line: line)
        return outcome.error
    }

    func testEmptyInput() throws {
        XCTAssertEqual(readError([]), .emptyFile)
    }

    func testNotACodesFile() throws {
        XCTAssertEqual(readError(Array("RIFF\u{24}\0\0\0WAVEfmt ".utf8)), .notACodesFile(found: Array("RIFF$\0\0\0".utf8)))
        XCTAssertEqual(readError(Array("RIFF".utf8)), .notACodesFile(found: Array("RIFF".utf8)), "short input")
        XCTAssertEqual(readError(Array("TUSS".utf8)), .truncated(offset: 4, chunk: nil), "a prefix of the magic")
    }

    func testUnsupportedVersion() throws {
        var (bytes, _, _) = try validStream()
        bytes[8] = 2
        let error = readError(bytes)
        XCTAssertEqual(error, .unsupportedVersion(found: 2, supported: 1))
        XCTAssertTrue(error?.description.contains("version 2") ?? false)
        XCTAssertTrue(error?.description.contains("supports version 1") ?? false)
    }

    func testTruncation() throws {
        let (bytes, segments, _) = try validStream()
        XCTAssertEqual(readError(Array(bytes.prefix(50))), .truncated(offset: 50, chunk: nil))
        XCTAssertEqual(readError(Array(bytes.prefix(segments[0].upperBound))), .truncated(offset: segments[0].upperBound, chunk: 0))
        let inChunk3 = segments[4].lowerBound + 10
        XCTAssertEqual(readError(Array(bytes.prefix(inChunk3))), .truncated(offset: inChunk3, chunk: 3))
        let beforeEnd = segments[7].lowerBound
        XCTAssertEqual(readError(Array(bytes.prefix(beforeEnd))), .truncated(offset: beforeEnd, chunk: 6))
        XCTAssertEqual(readError(Array(bytes.dropLast())), .truncated(offset: bytes.count - 1, chunk: 6))
    }

    func testHeaderCRCMismatch() throws {
        var (bytes, _, _) = try validStream()
        bytes[11] ^= 0x01  // sample rate
        guard case .headerChecksumMismatch(offset: 88, _, _)? = readError(bytes) else {
            return XCTFail("expected the header CRC at byte 88 (79 + 9-byte name) to fail")
        }
    }

    func testChunkCRCMismatchNamesChunkAndByte() throws {
        // Last payload byte of chunks 0, 2 and 5; the CRC itself of the end marker (stream position 6).
        for (segment, chunk, back) in [(1, 0, 5), (3, 2, 5), (6, 5, 5), (7, 6, 1)] {
            var (bytes, segments, _) = try validStream()
            bytes[segments[segment].upperBound - back] ^= 0x80
            let error = readError(bytes)
            guard case .chunkChecksumMismatch(chunk: chunk, offset: segments[segment].lowerBound, _, _)? = error else {
                return XCTFail("chunk \(chunk): got \(String(describing: error))")
            }
            XCTAssertTrue(error?.description.contains("chunk \(chunk) at byte \(segments[segment].lowerBound)") ?? false)
        }
    }

    func testMalformedHeaderFields() throws {
        let cases: [(offset: Int, value: UInt64, width: Int, field: String)] = [
            (10, 0, 4, "sample rate"), (14, 0, 4, "hop length"), (18, 0, 2, "codebook count"),
            (18, 1025, 2, "codebook count"), (20, 1, 4, "codebook size"), (20, 65537, 4, "codebook size"),
            (24, UInt64(Int64.max) + 1, 8, "original length"), (32, 0, 4, "original sample rate"),
            (36, 0, 2, "channel count"), (36, 257, 2, "channel count"), (38, UInt64(Int64.max) + 5, 8, "frame count"),
        ]
        for item in cases {
            var (bytes, _, _) = try validStream()
            CodesSpec.patch(&bytes, at: item.offset, item.value, item.width)
            guard case .malformedHeader(field: item.field, offset: item.offset, _)? = readError(bytes) else {
                return XCTFail("\(item.field) = \(item.value) should be refused at byte \(item.offset)")
            }
        }
        var (bytes, _, _) = try validStream()
        CodesSpec.patch(&bytes, at: 79, 0xFF, 1)  // "dac_44khz" -> invalid UTF-8 first byte
        guard case .malformedHeader(field: "codec name", offset: 79, _)? = readError(bytes) else {
            return XCTFail("invalid UTF-8 name should be refused")
        }
    }

    func testMalformedChunks() throws {
        let (bytes, segments, _) = try validStream()
        let chunk1 = segments[2].lowerBound

        var badMarker = bytes
        badMarker[chunk1] = UInt8(ascii: "X")
        XCTAssertEqual(malformed(badMarker), MalformedAt(chunk: 1, offset: chunk1))

        var zeroFrames = bytes
        CodesSpec.patch(&zeroFrames, at: chunk1 + 18, 0, 4)
        XCTAssertEqual(malformed(zeroFrames), MalformedAt(chunk: 1, offset: chunk1 + 18))

        var hugeFrames = bytes
        CodesSpec.patch(&hugeFrames, at: chunk1 + 18, 1 << 21, 4)
        XCTAssertEqual(malformed(hugeFrames), MalformedAt(chunk: 1, offset: chunk1 + 18))

        var wrongLength = bytes
        CodesSpec.patch(&wrongLength, at: chunk1 + 22, 0xFFFF_FFFF, 4)
        XCTAssertEqual(malformed(wrongLength), MalformedAt(chunk: 1, offset: chunk1 + 22))

        var badChannel = bytes
        CodesSpec.patch(&badChannel, at: chunk1 + 8, 2, 2)
        XCTAssertEqual(malformed(badChannel), MalformedAt(chunk: 1, offset: chunk1 + 8))

        // Codebook size 1000 uses 10 bits, so 1023 fits the bits but not the codebook: first code of chunk 1.
        var outOfRange = bytes
        outOfRange[chunk1 + 26] = 0xFF
        outOfRange[chunk1 + 27] |= 0x03
        CodesSpec.refreshCRC(&outOfRange, segments[2])
        XCTAssertEqual(malformed(outOfRange), MalformedAt(chunk: 1, offset: chunk1 + 26))

        // Chunk 1: 3 frames × 2 codebooks × 10 bits = 60 bits in 8 bytes; the top 4 bits of the last are padding.
        var padding = bytes
        padding[chunk1 + 26 + 7] |= 0x80
        CodesSpec.refreshCRC(&padding, segments[2])
        XCTAssertEqual(malformed(padding), MalformedAt(chunk: 1, offset: chunk1 + 26 + 7))

        // An end marker before the last time range is complete.
        let early = Array(bytes[..<segments[2].upperBound]) + Array(bytes[segments[7]])
        XCTAssertEqual(malformed(early), MalformedAt(chunk: 2, offset: segments[2].upperBound))
        // An end marker where the declared frame count is not reached.
        let short = Array(bytes[..<segments[4].upperBound]) + Array(bytes[segments[7]])
        XCTAssertEqual(malformed(short), MalformedAt(chunk: 4, offset: segments[4].upperBound))
    }

    private struct MalformedAt: Equatable {
        var chunk: Int
        var offset: Int
    }

    private func malformed(_ bytes: [UInt8], file: StaticString = #filePath, line: UInt = #line) -> MalformedAt? {
        let error = readError(bytes, file: file, line: line)
        guard case .malformedChunk(let chunk, let offset, _)? = error else {
            XCTFail("expected malformedChunk, got \(String(describing: error))", file: file, line: line)
            return nil
        }
        return MalformedAt(chunk: chunk, offset: offset)
    }

    func testChunksOutOfSequence() throws {
        let (bytes, segments, _) = try validStream()
        // A duplicated chunk: its index repeats.
        let duplicated = Array(bytes[..<segments[3].upperBound]) + Array(bytes[segments[3]])
            + Array(bytes[segments[4].lowerBound...])
        XCTAssertEqual(outOfSequence(duplicated), MalformedAt(chunk: 3, offset: segments[3].upperBound + 4))
        // A dropped chunk: the next index arrives early.
        let dropped = Array(bytes[..<segments[3].lowerBound]) + Array(bytes[segments[4].lowerBound...])
        XCTAssertEqual(outOfSequence(dropped), MalformedAt(chunk: 2, offset: segments[3].lowerBound + 4))
        // Channels swapped within a time range (indices renumbered so only the order is wrong).
        var swapped = Array(bytes[..<segments[3].lowerBound]) + Array(bytes[segments[4]]) + Array(bytes[segments[3]])
            + Array(bytes[segments[5].lowerBound...])
        CodesSpec.patch(&swapped, at: segments[3].lowerBound + 4, 2, 4)
        CodesSpec.patch(&swapped, at: segments[3].lowerBound + segments[4].count + 4, 3, 4)
        XCTAssertEqual(outOfSequence(swapped), MalformedAt(chunk: 2, offset: segments[3].lowerBound))
        // A gap in frames.
        var gap = bytes
        CodesSpec.patch(&gap, at: segments[3].lowerBound + 10, 4, 8)
        XCTAssertEqual(outOfSequence(gap), MalformedAt(chunk: 2, offset: segments[3].lowerBound))
        // Channel 1 with a different frame count from channel 0 in a time range (2 frames vs 3).
        let mismatched = Array(bytes[..<segments[1].upperBound]) + Array(bytes[segments[4]])
        var renumbered = mismatched
        CodesSpec.patch(&renumbered, at: segments[1].upperBound + 4, 1, 4)
        CodesSpec.patch(&renumbered, at: segments[1].upperBound + 10, 0, 8)
        XCTAssertEqual(outOfSequence(renumbered), MalformedAt(chunk: 1, offset: segments[1].upperBound))
        // More frames than the header declares.
        var declared = bytes
        CodesSpec.patch(&declared, at: 38, 4, 8)
        XCTAssertEqual(outOfSequence(declared), MalformedAt(chunk: 2, offset: segments[3].lowerBound))
    }

    private func outOfSequence(_ bytes: [UInt8], file: StaticString = #filePath, line: UInt = #line) -> MalformedAt? {
        let error = readError(bytes, file: file, line: line)
        guard case .chunkOutOfSequence(let chunk, let offset, _)? = error else {
            XCTFail("expected chunkOutOfSequence, got \(String(describing: error))", file: file, line: line)
            return nil
        }
        return MalformedAt(chunk: chunk, offset: offset)
    }

    func testTrailingData() throws {
        let (bytes, _, _) = try validStream()
        XCTAssertEqual(readError(bytes + [0]), .trailingData(offset: bytes.count))
        XCTAssertEqual(readError(bytes + bytes), .trailingData(offset: bytes.count))
    }

    func testReaderOnMissingFileAndDirectory() throws {
        let directory = try scratchURL()
        let missing = directory.appendingPathComponent("missing.bin").path
        guard case .io(path: missing, _)? = codesError({ _ = try CodesReader(path: missing) }) else {
            return XCTFail("a missing file should be an I/O error naming it")
        }
        guard case .io(path: directory.path, _)? = codesError({ _ = try CodesReader(path: directory.path) }) else {
            return XCTFail("a directory should be an I/O error naming it")
        }
        let empty = directory.appendingPathComponent("empty.bin")
        try Data().write(to: empty)
        XCTAssertEqual(codesError { _ = try CodesReader(path: empty.path) }, .emptyFile)
    }

    // MARK: Codec identity

    func testWrongCodecIsRefusedWithAClearMessage() throws {
        let header = makeCodesHeader(name: "dac_44khz")
        XCTAssertNoThrow(try header.requireCodec(header.codec))
        let other = CodecIdentity(name: "dac_24khz", weightsHash: [UInt8](repeating: 0x12, count: 32))
        let error = codesError { try header.requireCodec(other) }
        XCTAssertEqual(error, .codecMismatch(file: header.codec, expected: other))
        XCTAssertEqual(
            error?.description,
            "codes were made with codec 'dac_44khz' (hash 01080f161d24…); this codec is 'dac_24khz' "
                + "(hash 121212121212…): decode with the codec that encoded them")
        var sameNameOtherWeights = header.codec
        sameNameOtherWeights.weightsHash[31] ^= 1
        XCTAssertEqual(
            codesError { try header.requireCodec(sameNameOtherWeights) },
            .codecMismatch(file: header.codec, expected: sameNameOtherWeights))
    }

    // MARK: Writer

    func testAtomicWriteShowsNothingUntilFinish() throws {
        var rng = SeededGenerator(seed: 10)
        let sample = CodesSample(header: makeCodesHeader(channels: 2), ranges: [8, 8], rng: &rng)
        let directory = try scratchURL()
        let path = directory.appendingPathComponent("out.bin").path
        let writer = try CodesWriter(path: path, header: sample.header)
        XCTAssertFalse(FileManager.default.fileExists(atPath: path))
        for chunk in sample.chunks {
            try writer.write(chunk)
            XCTAssertFalse(FileManager.default.fileExists(atPath: path))
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path).count, 1, "the temp file")
        try writer.finish()
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), ["out.bin"])
        XCTAssertEqual(try CodesReader(path: path).readAll(), sample.expected)
        XCTAssertEqual(codesError { try writer.finish() }, .writerClosed)
        XCTAssertEqual(codesError { try writer.write(sample.chunks[0]) }, .writerClosed)
    }

    func testDroppedWriterLeavesNothingAndKeepsAnExistingFile() throws {
        var rng = SeededGenerator(seed: 11)
        let sample = CodesSample(header: makeCodesHeader(), ranges: [8, 8], rng: &rng)
        let directory = try scratchURL()
        let path = directory.appendingPathComponent("out.bin").path
        do {
            let writer = try CodesWriter(path: path, header: sample.header)
            try writer.write(sample.chunks[0])
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), [])

        let old = Data("previous contents".utf8)
        try old.write(to: URL(fileURLWithPath: path))
        do {
            let writer = try CodesWriter(path: path, header: sample.header)
            for chunk in sample.chunks { try writer.write(chunk) }
            XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path)), old)
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), ["out.bin"])
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path)), old)

        let writer = try CodesWriter(path: path, header: sample.header)
        for chunk in sample.chunks { try writer.write(chunk) }
        try writer.finish()
        XCTAssertEqual(try CodesReader(path: path).readAll(), sample.expected, "finish replaces the old file")
    }

    func testWriterRefusesInvalidHeaders() throws {
        let good = makeCodesHeader()
        let cases: [(String, (inout CodesHeader) -> Void)] = [
            ("codec name", { $0.codec.name = "" }),
            ("codec name", { $0.codec.name = String(repeating: "é", count: 128) }),
            ("codec name", { $0.codec.name = "dac\nx" }),
            ("weights hash", { $0.codec.weightsHash = [1, 2, 3] }),
            ("sample rate", { $0.sampleRate = 0 }),
            ("sample rate", { $0.sampleRate = 1 << 32 }),
            ("hop length", { $0.hopLength = -1 }),
            ("codebook count", { $0.codebooks = 0 }),
            ("codebook count", { $0.codebooks = 1025 }),
            ("codebook size", { $0.codebookSize = 1 }),
            ("codebook size", { $0.codebookSize = 65537 }),
            ("original length", { $0.originalLength = -1 }),
            ("original sample rate", { $0.originalSampleRate = 0 }),
            ("channel count", { $0.channels = 0 }),
            ("channel count", { $0.channels = 257 }),
            ("frame count", { $0.frames = -1 }),
        ]
        let directory = try scratchURL()
        for (field, change) in cases {
            var header = good
            change(&header)
            guard case .invalidHeader(field: field, _)? = codesError({ _ = try CodesFraming.header(header) }) else {
                return XCTFail("\(field): expected invalidHeader")
            }
            guard case .invalidHeader(field: field, _)? = codesError({ _ = try CodesWriter(sink: { _ in }, header: header) })
            else { return XCTFail("\(field): sink writer should refuse") }
            let path = directory.appendingPathComponent("x.bin").path
            guard case .invalidHeader(field: field, _)? = codesError({ _ = try CodesWriter(path: path, header: header) })
            else { return XCTFail("\(field): file writer should refuse") }
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), [])
        var longest = good
        longest.codec.name = String(repeating: "é", count: 127) + "x"
        XCTAssertEqual(try CodesFraming.header(longest).count, 83 + 255)
    }

    func testWriterRefusesInvalidChunksAndStaysUsable() throws {
        let header = makeCodesHeader(channels: 2, codebooks: 2, codebookSize: 1000, frames: 6)
        var units: [Data] = []
        let writer = try CodesWriter(sink: { units.append($0) }, header: header)
        let good = CodesChunk(channel: 0, firstFrame: 0, codes: [[1, 2, 3], [4, 5, 6]])
        let refused: [(CodesChunk, String)] = [
            (CodesChunk(channel: 0, firstFrame: 0, codes: [[1, 2, 1000], [4, 5, 6]]), "outside 0..<1000"),
            (CodesChunk(channel: 0, firstFrame: 0, codes: [[1, 2, -1], [4, 5, 6]]), "outside 0..<1000"),
            (CodesChunk(channel: 0, firstFrame: 0, codes: [[1, 2, 3]]), "1 codebook rows"),
            (CodesChunk(channel: 0, firstFrame: 0, codes: [[1, 2, 3], [4, 5]]), "row 1 has 2 frames"),
            (CodesChunk(channel: 0, firstFrame: 0, codes: [[], []]), "no frames"),
            (CodesChunk(channel: 2, firstFrame: 0, codes: [[1], [1]]), "outside 0..<2"),
            (CodesChunk(channel: 1, firstFrame: 0, codes: [[1], [1]]), "channel 0 comes next"),
            (CodesChunk(channel: 0, firstFrame: 3, codes: [[1], [1]]), "continues at frame 0"),
            (CodesChunk(channel: 0, firstFrame: 0, codes: [[Int32]](repeating: [0, 1, 2, 3, 4, 5, 6], count: 2)), "declares 6"),
        ]
        for (chunk, text) in refused {
            let error = codesError { try writer.write(chunk) }
            guard case .invalidChunk(chunk: 0, let reason)? = error, reason.contains(text) else {
                return XCTFail("expected invalidChunk mentioning '\(text)', got \(String(describing: error))")
            }
        }
        XCTAssertEqual(units.count, 1, "nothing but the header was sent")
        try writer.write(good)
        let error = codesError { try writer.write(CodesChunk(channel: 1, firstFrame: 0, codes: [[1, 2], [3, 4]])) }
        guard case .invalidChunk(chunk: 1, let reason)? = error, reason.contains("channel 0 has 3") else {
            return XCTFail("expected a frame-count mismatch, got \(String(describing: error))")
        }
        guard case .incompleteStream? = codesError({ try writer.finish() }) else {
            return XCTFail("finishing without channel 1 should be refused")
        }
        try writer.write(CodesChunk(channel: 1, firstFrame: 0, codes: [[7, 8, 9], [0, 1, 2]]))
        let short = codesError { try writer.finish() }
        guard case .incompleteStream(let reason)? = short, reason.contains("declares 6") else {
            return XCTFail("finishing short of the declared frames should be refused, got \(String(describing: short))")
        }
        try writer.write(CodesChunk(channel: 0, firstFrame: 3, codes: [[1, 2, 3], [4, 5, 6]]))
        try writer.write(CodesChunk(channel: 1, firstFrame: 3, codes: [[1, 2, 3], [4, 5, 6]]))
        try writer.finish()
        XCTAssertEqual(units.count, 6)
        XCTAssertEqual(try CodesReader(data: units.reduce(Data(), +)).readAll()[1][0], [7, 8, 9, 1, 2, 3])
    }

    func testFramingChecksChunkShapeButNotSequence() throws {
        let header = makeCodesHeader(codebooks: 1, codebookSize: 4)
        XCTAssertNoThrow(try CodesFraming.chunk(CodesChunk(channel: 0, firstFrame: 77, codes: [[3]]), index: 9, header: header))
        guard case .invalidChunk(chunk: 9, _)? = codesError({
            _ = try CodesFraming.chunk(CodesChunk(channel: 0, firstFrame: 0, codes: [[4]]), index: 9, header: header)
        }) else { return XCTFail("a code equal to the codebook size should be refused") }
        guard case .invalidChunk? = codesError({
            _ = try CodesFraming.chunk(CodesChunk(channel: 0, firstFrame: 0, codes: [[1]]), index: -1, header: header)
        }) else { return XCTFail("a negative index should be refused") }
        // Rows share storage (copy on write), so these large chunks cost little memory.
        let tooLong = CodesChunk(channel: 0, firstFrame: 0, codes: [[Int32](repeating: 0, count: (1 << 20) + 1)])
        guard case .invalidChunk(_, let long)? = codesError({ _ = try CodesFraming.chunk(tooLong, index: 0, header: header) }),
            long.contains("split it")
        else { return XCTFail("more than 1<<20 frames should be refused") }
        let wide = makeCodesHeader(codebooks: 1024, codebookSize: 2)
        let row = [Int32](repeating: 1, count: (1 << 14) + 1)
        let tooMany = CodesChunk(channel: 0, firstFrame: 0, codes: [[Int32]](repeating: row, count: 1024))
        guard case .invalidChunk(_, let many)? = codesError({ _ = try CodesFraming.chunk(tooMany, index: 0, header: wide) }),
            many.contains("codes per chunk")
        else { return XCTFail("more than 1<<24 codes per chunk should be refused") }
    }

    func testParserChecksChunkLimitsBeforeWaitingForThePayload() throws {
        // 1024 one-bit codebooks: 16384 frames are exactly 1<<24 codes (2 MiB payload), 16385 are one range too many.
        let header = makeCodesHeader(codebooks: 1024, codebookSize: 2)
        let headerBytes = try CodesFraming.header(header)
        func chunkHeader(frames: UInt64) -> Data {
            Data(Array("CHNK".utf8) + CodesSpec.le(0, 4) + CodesSpec.le(0, 2) + CodesSpec.le(0, 8)
                + CodesSpec.le(frames, 4) + CodesSpec.le(frames * 1024 / 8, 4))
        }
        var fits = CodesStreamParser()
        XCTAssertEqual(try fits.feed(headerBytes + chunkHeader(frames: 16384)), [.header(header)], "waits for payload")
        var tooMany = CodesStreamParser()
        XCTAssertEqual(try tooMany.feed(headerBytes), [.header(header)])
        guard case .malformedChunk(chunk: 0, offset: headerBytes.count + 18, _)? =
            codesError({ _ = try tooMany.feed(chunkHeader(frames: 16385)) })
        else { return XCTFail("more than 1<<24 codes in one chunk should be refused from the chunk header alone") }
        var tooLong = CodesStreamParser()
        _ = try tooLong.feed(try CodesFraming.header(makeCodesHeader(codebooks: 1, codebookSize: 2)))
        let long = Data(Array("CHNK".utf8) + CodesSpec.le(0, 14) + CodesSpec.le((1 << 20) + 1, 4) + CodesSpec.le(131_073, 4))
        guard case .malformedChunk(chunk: 0, _, let reason)? = codesError({ _ = try tooLong.feed(long) }),
            reason.contains("frame count 1048577")
        else { return XCTFail("more than 1<<20 frames should be refused from the chunk header alone") }
    }

    func testSinkErrorsPassThroughAndCloseTheWriter() throws {
        struct SocketClosed: Error, Equatable {}
        var calls = 0
        let writer = try CodesWriter(
            sink: { _ in
                calls += 1
                if calls == 2 { throw SocketClosed() }
            }, header: makeCodesHeader(codebooks: 1))
        let chunk = CodesChunk(channel: 0, firstFrame: 0, codes: [[1]])
        XCTAssertThrowsError(try writer.write(chunk)) { XCTAssertEqual($0 as? SocketClosed, SocketClosed()) }
        XCTAssertEqual(codesError { try writer.write(chunk) }, .writerClosed)
    }

    func testWriterToMissingDirectoryIsAnIOError() throws {
        let path = "/nonexistent-\(UUID().uuidString)/out.bin"
        guard case .io(let where_, let reason)? = codesError({ _ = try CodesWriter(path: path, header: makeCodesHeader()) })
        else { return XCTFail("expected an I/O error") }
        XCTAssertTrue(where_.hasPrefix("/nonexistent-"))
        XCTAssertTrue(reason.contains("No such file or directory"), reason)
    }

    // MARK: Messages

    func testEveryMessageIsOneLineAndSaysWhere() {
        let identity = CodecIdentity(name: "a\nb", weightsHash: [])
        let errors: [CodesFileError] = [
            .emptyFile, .notACodesFile(found: [0, 1, 0x41]), .unsupportedVersion(found: 7, supported: 1),
            .truncated(offset: 10, chunk: nil), .truncated(offset: 10, chunk: 2),
            .headerChecksumMismatch(offset: 90, stored: 1, computed: 2),
            .chunkChecksumMismatch(chunk: 3, offset: 400, stored: 0xDEAD_BEEF, computed: 0),
            .malformedHeader(field: "sample rate", offset: 10, reason: "is 0; it must be 1...4294967295 Hz"),
            .malformedChunk(chunk: 1, offset: 200, reason: "r"), .chunkOutOfSequence(chunk: 1, offset: 200, reason: "r"),
            .trailingData(offset: 500), .codecMismatch(file: identity, expected: identity),
            .invalidHeader(field: "codec name", reason: "is empty"), .invalidChunk(chunk: 4, reason: "r"),
            .incompleteStream(reason: "r"), .writerClosed, .io(path: "/x", reason: "cannot create: denied"),
        ]
        for error in errors {
            XCTAssertFalse(error.description.contains("\n"), error.description)
            XCTAssertGreaterThan(error.description.count, 40, error.description)
        }
        XCTAssertEqual(Set(errors.map(\.description)).count, errors.count, "messages are distinct")
        XCTAssertTrue(CodesFileError.truncated(offset: 10, chunk: 2).description.contains("byte 10 in chunk 2"))
        XCTAssertTrue(CodesFileError.chunkChecksumMismatch(chunk: 3, offset: 400, stored: 0xDEAD_BEEF, computed: 0)
            .description.contains("stored 0xdeadbeef"))
        XCTAssertTrue(CodesFileError.notACodesFile(found: [0x52, 0x49]).description.contains("52 49 (\"RI\")"))
    }
}
