// libFuzzer harness for the codes format. Built by Fuzz/run-codes-fuzz.sh together with
// Sources/TussPipeline/Codes/*.swift into one executable (no package, no other module).
import Foundation

/// What reading some bytes gave: header and chunks up to the clean end, or the error.
private struct Outcome: Equatable {
    var header: CodesHeader?
    var chunks: [CodesChunk] = []
    var error: CodesFileError?
}

/// Reads every chunk with `CodesReader`.
private func readWithReader(_ input: Data) -> Outcome {
    var outcome = Outcome()
    do throws(CodesFileError) {
        let reader = try CodesReader(data: input)
        outcome.header = reader.header
        while let chunk = try reader.next() { outcome.chunks.append(chunk) }
    } catch {
        outcome.error = error
    }
    return outcome
}

/// Feeds `CodesStreamParser` pieces of `piece` bytes, then finishes it.
private func readWithParser(_ input: Data, piece: Int) -> Outcome {
    var outcome = Outcome()
    var parser = CodesStreamParser()
    let bytes = [UInt8](input)
    do throws(CodesFileError) {
        var at = 0
        repeat {
            let end = min(at + piece, bytes.count)
            for event in try parser.feed(Data(bytes[at..<end])) {
                switch event {
                case .header(let header): outcome.header = header
                case .chunk(let chunk): outcome.chunks.append(chunk)
                case .end: break
                }
            }
            at = end
        } while at < bytes.count
        try parser.finish()
    } catch {
        outcome.error = error
    }
    return outcome
}

/// The input with the header's and every chunk's CRC recomputed, following the layout as far as it goes, so the
/// fuzzer also reaches the checks behind the CRCs.
private func repairingCRCs(_ input: Data) -> Data {
    var bytes = [UInt8](input)
    func repair(_ range: Range<Int>) {
        let crc = CodesCRC32.checksum(bytes[range.lowerBound..<range.upperBound - 4])
        CodesBytes.put(UInt64(crc), 4, at: range.upperBound - 4, in: &bytes)
    }
    guard bytes.count > 78 else { return input }
    var at = 83 + Int(bytes[78])
    guard at <= bytes.count else { return input }
    repair(0..<at)
    while at + 8 <= bytes.count {
        if bytes[at..<at + 4].elementsEqual(CodesFormat.endMarker) {
            repair(at..<at + 8)
            break
        }
        guard at + 26 <= bytes.count else { break }
        let end = at + 30 + Int(CodesBytes.read(bytes, at + 22, 4))
        guard end <= bytes.count else { break }
        repair(at..<end)
        at = end
    }
    return Data(bytes)
}

/// Checks one input as given and with repaired CRCs.
@_cdecl("LLVMFuzzerTestOneInput")
public func codesFuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let input = data.map { Data(bytes: $0, count: size) } ?? Data()
    check(input)
    check(repairingCRCs(input))
    return 0
}

/// Reader and parser agree; whatever parses re-encodes to the same bytes; messages are one line.
private func check(_ input: Data) {
    let fromReader = readWithReader(input)
    let piece = 1 + Int(input.first ?? 0) % 37
    let fromParser = readWithParser(input, piece: piece)
    guard fromReader == fromParser else {
        fatalError("reader and parser disagree: \(String(describing: fromReader.error)) vs \(String(describing: fromParser.error))")
    }
    if let error = fromReader.error {
        guard !error.description.contains("\n") else { fatalError("multi-line message: \(error)") }
        return
    }
    guard let header = fromReader.header else { fatalError("parsed without a header") }
    var again = Data()
    do {
        let writer = try CodesWriter(sink: { again.append($0) }, header: header)
        for chunk in fromReader.chunks { try writer.write(chunk) }
        try writer.finish()
    } catch {
        fatalError("a parsed stream cannot be written again: \(error)")
    }
    guard again == input else { fatalError("a parsed stream re-encodes to different bytes") }
}

/// With CODES_FUZZ_WRITE_SEEDS=dir, writes a few small valid streams there as a starting corpus and exits.
@_cdecl("LLVMFuzzerInitialize")
public func codesFuzzInitialize(
    _ argc: UnsafeMutablePointer<Int32>?, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>?
) -> Int32 {
    guard let directory = ProcessInfo.processInfo.environment["CODES_FUZZ_WRITE_SEEDS"] else { return 0 }
    let shapes: [(channels: Int, codebooks: Int, size: Int, ranges: [Int], declared: Bool)] = [
        (1, 1, 2, [1, 3], false), (2, 3, 1024, [2, 1], true), (1, 2, 65536, [2], false), (3, 2, 5, [1, 2], true),
        (2, 4, 4096, [], true),
    ]
    var state: UInt32 = 1
    for (number, shape) in shapes.enumerated() {
        let frames = shape.ranges.reduce(0, +)
        let header = CodesHeader(
            codec: CodecIdentity(name: "dac", weightsHash: [UInt8](repeating: UInt8(number), count: 32)),
            sampleRate: 44_100, hopLength: 512, codebooks: shape.codebooks, codebookSize: shape.size,
            originalLength: Int64(frames * 512), originalSampleRate: 48_000, channels: shape.channels,
            frames: shape.declared ? Int64(frames) : nil)
        var bytes = Data()
        do {
            let writer = try CodesWriter(sink: { bytes.append($0) }, header: header)
            var first: Int64 = 0
            for count in shape.ranges {
                for channel in 0..<shape.channels {
                    let codes = (0..<shape.codebooks).map { _ in
                        (0..<count).map { _ in
                            state = state &* 1_103_515_245 &+ 12_345
                            return Int32((state >> 8) % UInt32(shape.size))
                        }
                    }
                    try writer.write(CodesChunk(channel: channel, firstFrame: first, codes: codes))
                }
                first += Int64(count)
            }
            try writer.finish()
            try bytes.write(to: URL(fileURLWithPath: directory).appendingPathComponent("seed-\(number).bin"))
        } catch {
            fatalError("cannot write seed \(number): \(error)")
        }
    }
    exit(0)
}
