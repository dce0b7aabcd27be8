import Foundation
import Synchronization
import TussPipeline
import TussTestSupport
import XCTest

/// Mutation fuzzing of the codes reader and stream parser with a seeded generator (reproducible).
///
/// Run the full count with `swift test -c release --filter CodesFuzz`. Debug builds run about ten times slower, so a
/// debug run does 10 000 inputs; release does 100 000.
final class CodesFuzzTests: XCTestCase {
    #if DEBUG
        static let iterations = 10_000
        /// Per-input limit; generous because debug code and a shared machine are slow.
        static let perInputLimit = Duration.seconds(2)
    #else
        static let iterations = 100_000
        static let perInputLimit = Duration.milliseconds(250)
    #endif

    func testCodesFuzzMutatedInputs() throws {
        var rng = SeededGenerator(seed: 0x5EED_C0DE)
        let bases = try Self.baseStreams(&rng)
        var outcomes: [String: Int] = [:]
        var failures: [String] = []
        var slowest = Duration.zero

        let progress = Progress()
        Self.startWatchdog(progress)
        defer { progress.stop.store(true, ordering: .relaxed) }

        let clock = ContinuousClock()
        for iteration in 0..<Self.iterations {
            let base = bases[iteration % bases.count]
            let input = Data(Self.mutate(base, &rng))
            let oneByte = iteration % 16 == 0
            var pieces = SeededGenerator(seed: UInt64(iteration))
            let started = clock.now

            let fromReader = readWithReader(input)
            let fromParser = readWithParser(input) { _ in oneByte ? 1 : Int.random(in: 0...64, using: &pieces) }

            let elapsed = clock.now - started
            slowest = max(slowest, elapsed)
            progress.finished.store(iteration + 1, ordering: .relaxed)

            if elapsed > Self.perInputLimit {
                failures.append("input \(iteration) (\(input.count) bytes) took \(elapsed)")
            }
            if fromParser != fromReader {
                failures.append("input \(iteration): parser \(fromParser.error.map(\.description) ?? "ok") vs reader "
                    + "\(fromReader.error.map(\.description) ?? "ok")")
            }
            if let error = fromReader.error {
                outcomes[Self.caseName(error), default: 0] += 1
                if error.description.contains("\n") { failures.append("input \(iteration): multi-line message") }
            } else {
                outcomes["parsed", default: 0] += 1
                // The format is canonical: whatever parses must re-encode to the very same bytes.
                if let header = fromReader.header, let again = try? Self.encode(header, fromReader.chunks), again != input {
                    failures.append("input \(iteration) parsed but re-encodes differently")
                }
            }
            if failures.count >= 10 { break }
        }
        let summary = outcomes.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        print("CodesFuzz: \(Self.iterations) inputs, slowest \(slowest); \(summary)")
        XCTAssertEqual(failures, [])
        // The mutations must reach deep checks, not only the CRCs.
        for name in ["parsed", "truncated", "chunkChecksumMismatch", "malformedChunk", "chunkOutOfSequence",
                     "malformedHeader", "headerChecksumMismatch", "trailingData", "notACodesFile", "unsupportedVersion"] {
            XCTAssertGreaterThan(outcomes[name, default: 0], 0, "no input ended as \(name)")
        }
    }

    /// Re-encodes a parsed stream with the sink writer.
    static func encode(_ header: CodesHeader, _ chunks: [CodesChunk]) throws -> Data {
        var data = Data()
        let writer = try CodesWriter(sink: { data.append($0) }, header: header)
        for chunk in chunks { try writer.write(chunk) }
        try writer.finish()
        return data
    }

    /// Shared between the fuzz loop and its watchdog thread.
    final class Progress: Sendable {
        let finished = Atomic<Int>(0)
        let stop = Atomic<Bool>(false)
    }

    /// A thread that ends the process with a message when no input finishes for 30 seconds (a hang).
    static func startWatchdog(_ progress: Progress) {
        let thread = Thread {
            var last = -1
            var stuck = 0
            while !progress.stop.load(ordering: .relaxed) {
                Thread.sleep(forTimeInterval: 1)
                let now = progress.finished.load(ordering: .relaxed)
                stuck = now == last ? stuck + 1 : 0
                last = now
                if stuck >= 30 { fatalError("CodesFuzz: input \(now) has run for 30 s; the parser hangs on it") }
            }
        }
        thread.start()
    }

    static func caseName(_ error: CodesFileError) -> String {
        switch error {
        case .emptyFile: return "emptyFile"
        case .notACodesFile: return "notACodesFile"
        case .unsupportedVersion: return "unsupportedVersion"
        case .truncated: return "truncated"
        case .headerChecksumMismatch: return "headerChecksumMismatch"
        case .chunkChecksumMismatch: return "chunkChecksumMismatch"
        case .malformedHeader: return "malformedHeader"
        case .malformedChunk: return "malformedChunk"
        case .chunkOutOfSequence: return "chunkOutOfSequence"
        case .trailingData: return "trailingData"
        case .codecMismatch: return "codecMismatch"
        case .invalidHeader: return "invalidHeader"
        case .invalidChunk: return "invalidChunk"
        case .incompleteStream: return "incompleteStream"
        case .writerClosed: return "writerClosed"
        case .io: return "io"
        }
    }

    /// Valid streams of several shapes to mutate.
    static func baseStreams(_ rng: inout SeededGenerator) throws -> [[UInt8]] {
        let shapes: [(name: String, channels: Int, codebooks: Int, size: Int, ranges: [Int], declared: Bool)] = [
            ("d", 1, 1, 2, [1, 3, 8], false),
            ("dac_44khz", 2, 12, 1024, [2, 5, 1], true),
            ("codec-é", 2, 3, 65536, [4, 4], false),
            ("x", 1, 4, 1000, [1, 1, 1, 1, 1, 1], true),
            ("three", 3, 2, 5, [3, 2], false),
            ("empty", 2, 9, 1024, [], true),
            (String(repeating: "n", count: 200), 1, 9, 4096, [30], false),
        ]
        return try shapes.map { shape in
            var header = makeCodesHeader(
                name: shape.name, channels: shape.channels, codebooks: shape.codebooks, codebookSize: shape.size)
            if shape.declared { header.frames = Int64(shape.ranges.reduce(0, +)) }
            return [UInt8](try CodesSample(header: header, ranges: shape.ranges, rng: &rng).encoded().data)
        }
    }

    /// One to three stacked mutations of `base`.
    static func mutate(_ base: [UInt8], _ rng: inout SeededGenerator) -> [UInt8] {
        var bytes = base
        for _ in 0..<Int.random(in: 1...3, using: &rng) {
            mutateOnce(&bytes, rng: &rng)
        }
        return bytes
    }

    /// Byte ranges of the header, chunks and end marker as far as the layout can be followed without trusting it.
    static func segments(_ bytes: [UInt8]) -> [Range<Int>] {
        guard bytes.count > 78 else { return [] }
        let headerSize = 83 + Int(bytes[78])
        guard headerSize <= bytes.count else { return [] }
        var ranges = [0..<headerSize]
        var at = headerSize
        while at + 26 <= bytes.count, ranges.count < 10_000 {
            if bytes[at..<at + 4].elementsEqual(Array("TEND".utf8)) {
                ranges.append(at..<at + 8)
                break
            }
            let size = 30 + Int(CodesSpec.readLE(bytes, at + 22, 4))
            guard at + size <= bytes.count else { break }
            ranges.append(at..<at + size)
            at += size
        }
        return ranges
    }

    static let interesting: [UInt64] = [0, 1, 2, 0x7F, 0x80, 0xFF, 0x100, 0xFFFF, 0x1_0000, 1 << 20, (1 << 20) + 1,
                                        0x7FFF_FFFF, 0xFFFF_FFFF, UInt64(Int64.max), UInt64.max]

    static func mutateOnce(_ bytes: inout [UInt8], rng: inout SeededGenerator) {
        let segments = segments(bytes)
        let refresh = Bool.random(using: &rng)
        func pick<T>(_ values: [T]) -> T? { values.isEmpty ? nil : values[Int.random(in: 0..<values.count, using: &rng)] }
        func position() -> Int { bytes.isEmpty ? 0 : Int.random(in: 0..<bytes.count, using: &rng) }
        func fixCRC(containing offset: Int) {
            guard refresh, let segment = segments.first(where: { $0.contains(offset) }), segment.upperBound <= bytes.count
            else { return }
            CodesSpec.refreshCRC(&bytes, segment)
        }
        func setField(_ offset: Int, _ width: Int) {
            guard offset + width <= bytes.count else { return }
            var value = pick(interesting) ?? 0
            if Bool.random(using: &rng) {
                value = CodesSpec.readLE(bytes, offset, width) &+ UInt64(bitPattern: Int64.random(in: -2...2, using: &rng))
            }
            bytes.replaceSubrange(offset..<offset + width, with: CodesSpec.le(value, width))
            fixCRC(containing: offset)
        }

        switch Int.random(in: 0..<11, using: &rng) {
        case 0:  // bit flips
            guard !bytes.isEmpty else { return }
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                let at = position()
                bytes[at] ^= 1 << UInt8.random(in: 0...7, using: &rng)
                fixCRC(containing: at)
            }
        case 1:  // byte changes
            guard !bytes.isEmpty else { return }
            let at = position()
            bytes[at] = pick([0, 0xFF, 0x7F, 0x80, UInt8.random(in: 0...255, using: &rng)]) ?? 0
            fixCRC(containing: at)
        case 2:  // truncation
            bytes.removeLast(bytes.isEmpty ? 0 : Int.random(in: 1...bytes.count, using: &rng))
        case 3:  // insertion of random or copied bytes
            let at = Int.random(in: 0...bytes.count, using: &rng)
            let count = Int.random(in: 1...16, using: &rng)
            let inserted = Bool.random(using: &rng) || bytes.count < count
                ? (0..<count).map { _ in UInt8.random(in: 0...255, using: &rng) }
                : Array(bytes[position()...].prefix(count))
            bytes.insert(contentsOf: inserted, at: at)
        case 4:  // duplicated chunk
            guard let chunk = pick(Array(segments.dropFirst())) else { return }
            let target = pick(segments.map(\.upperBound)) ?? chunk.upperBound
            bytes.insert(contentsOf: Array(bytes[chunk]), at: target)
        case 5:  // dropped or swapped chunks
            let chunks = Array(segments.dropFirst())
            guard let first = pick(chunks) else { return }
            if Bool.random(using: &rng) {
                bytes.removeSubrange(first)
            } else if let second = pick(chunks), second.lowerBound > first.upperBound {
                let a = Array(bytes[first]), b = Array(bytes[second])
                bytes.replaceSubrange(second, with: a)
                bytes.replaceSubrange(first, with: b)
            }
        case 6:  // chunk length fields: frame count, payload length, index, channel, first frame
            guard let chunk = pick(Array(segments.dropFirst())) else { return }
            let (offset, width) = pick([(18, 4), (22, 4), (4, 4), (8, 2), (10, 8)]) ?? (18, 4)
            setField(chunk.lowerBound + offset, width)
        case 7:  // header fields, including the name length
            let fields = [(8, 2), (10, 4), (14, 4), (18, 2), (20, 4), (24, 8), (32, 4), (36, 2), (38, 8), (78, 1)]
            let (offset, width) = pick(fields) ?? (18, 2)
            setField(offset, width)
        case 8:  // payload bits, CRC refreshed, so code range and padding checks run
            guard let chunk = pick(Array(segments.dropFirst())), chunk.count > 30 else { return }
            let at = Int.random(in: chunk.lowerBound + 26..<chunk.upperBound - 4, using: &rng)
            bytes[at] ^= UInt8.random(in: 1...255, using: &rng)
            CodesSpec.refreshCRC(&bytes, chunk)
        case 9:  // appended garbage or a second stream
            bytes += Bool.random(using: &rng) ? Array(bytes.prefix(Int.random(in: 1...100, using: &rng)))
                : [UInt8.random(in: 0...255, using: &rng)]
        default:  // magic damage
            guard bytes.count > 8 else { return }
            bytes[Int.random(in: 0..<8, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
        }
    }
}
