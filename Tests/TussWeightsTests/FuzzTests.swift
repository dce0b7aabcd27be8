import Foundation
import TussTestSupport
import TussWeights
import XCTest

/// Mutation fuzzing of the safetensors and checkpoint loaders: every mutated input must load or throw a
/// `WeightsError`: no crash, no hang, no other error. Seeded, so failures reproduce.
///
/// 100,000 inputs in release builds (`swift test -c release --filter TussWeightsTests`); debug builds run a
/// fifth of that to stay fast. `TUSS_FUZZ_ITERATIONS` and `TUSS_FUZZ_SEED` override the count and the seed.
final class FuzzTests: XCTestCase {
    static var iterations: Int {
        if let text = ProcessInfo.processInfo.environment["TUSS_FUZZ_ITERATIONS"], let count = Int(text) { return count }
        #if DEBUG
        return 20_000
        #else
        return 100_000
        #endif
    }

    /// Values that tend to break length and offset arithmetic.
    static let interesting: [UInt64] = [
        0, 1, 2, 7, 8, 63, 64, 127, 128, 255, 256, 0x7FFF, 0x8000, 0xFFFF, 0x1_0000, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF,
        0x1_0000_0000, 0x7FFF_FFFF_FFFF_FFFF, 0x8000_0000_0000_0000, UInt64.max, UInt64.max - 1,
    ]

    /// Opcodes worth splicing into pickles.
    static let opcodes: [UInt8] = [
        0x28, 0x2E, 0x30, 0x31, 0x32, 0x4E, 0x51, 0x52, 0x58, 0x5D, 0x61, 0x62, 0x63, 0x65, 0x68, 0x6A, 0x71, 0x72,
        0x73, 0x74, 0x75, 0x7D, 0x81, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8B, 0x8C, 0x93, 0x94, 0x95,
    ]

    /// Applies one to four random mutations inside `region` (the whole input when nil).
    static func mutate(_ bytes: inout [UInt8], in region: Range<Int>? = nil, splice: [UInt8] = [], using rng: inout SeededGenerator) {
        for _ in 0..<Int.random(in: 1...4, using: &rng) {
            let range = region.map { $0.clamped(to: 0..<bytes.count) } ?? 0..<bytes.count
            guard !range.isEmpty else {
                bytes.append(UInt8.random(in: 0...255, using: &rng))
                continue
            }
            let at = Int.random(in: range, using: &rng)
            switch Int.random(in: 0..<9, using: &rng) {
            case 0:
                bytes[at] ^= 1 << UInt8.random(in: 0..<8, using: &rng)
            case 1:
                bytes[at] = UInt8.random(in: 0...255, using: &rng)
            case 2:
                let value = interesting.randomElement(using: &rng) ?? 0
                let width = [1, 2, 4, 8].randomElement(using: &rng) ?? 4
                for i in 0..<width where at + i < bytes.count {
                    bytes[at + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(i)))
                }
            case 3:
                bytes.removeSubrange(Int.random(in: range, using: &rng)...)
            case 4:
                let count = Int.random(in: 1...16, using: &rng)
                bytes.insert(contentsOf: (0..<count).map { _ in UInt8.random(in: 0...255, using: &rng) }, at: at)
            case 5:
                bytes.removeSubrange(at..<min(bytes.count, at + Int.random(in: 1...16, using: &rng)))
            case 6:
                let length = Int.random(in: 1...32, using: &rng)
                let source = Int.random(in: 0..<bytes.count, using: &rng)
                bytes.insert(contentsOf: bytes[source..<min(bytes.count, source + length)], at: at)
            case 7:
                if let opcode = splice.randomElement(using: &rng) { bytes.insert(opcode, at: at) } else { bytes[at] = ~bytes[at] }
            default:
                // Small integer tweak, as for lengths off by a little.
                bytes[at] = bytes[at] &+ UInt8.random(in: 1...3, using: &rng) &* (Bool.random(using: &rng) ? 1 : 255)
            }
        }
    }

    /// Runs `load`, requiring success or a WeightsError; returns whether it succeeded.
    static func survives(_ label: String, _ load: () throws -> Void) -> Bool {
        do {
            try load()
            return true
        } catch is WeightsError {
            return false
        } catch {
            XCTFail("\(label): non-WeightsError \(error)")
            return false
        }
    }

    func testFuzzLoaders() throws {
        let seed = ProcessInfo.processInfo.environment["TUSS_FUZZ_SEED"].flatMap { UInt64($0) } ?? 0x7055_C0DE
        var rng = SeededGenerator(seed: seed)
        // Seeds: a small safetensors file, two PyTorch-written checkpoints, one ZIP64 checkpoint built here.
        var data: [UInt8] = []
        for value: Float in [1, -2, 0.5, 3] { data.le32(value.bitPattern) }
        data += [0x00, 0x3C, 0x00, 0xC0]
        data.le64(UInt64(bitPattern: -5))
        let header = #"{"__metadata__":{"kind":"tuss","config":"{\"a\":1}"},"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"h":{"dtype":"F16","shape":[2],"data_offsets":[16,20]},"i":{"dtype":"I64","shape":[1],"data_offsets":[20,28]}}"#
        let safetensors = safetensorsBytes(header: header, data: data)
        XCTAssertEqual(try Safetensors.load(data: Data(safetensors)).names, ["w", "h", "i"])
        let checkpoints = [[UInt8](Fixtures.torchFixtureV2), [UInt8](Fixtures.torchFixtureV4), builtCheckpoint(zip64: true)]
        let archives = [checkpoints[0], checkpoints[1], builtCheckpoint()].map { TestZip.entries(of: $0) }
        for checkpoint in checkpoints {
            XCTAssertGreaterThan(try TorchCheckpoint.stateDict(data: Data(checkpoint)).count, 0)
        }

        var loaded = [0, 0, 0, 0]
        var slowest = 0.0
        let iterations = FuzzTests.iterations
        let start = Date()
        for iteration in 0..<iterations {
            let strategy = iteration % 4
            let began = Date()
            var input: [UInt8]
            let ok: Bool
            switch strategy {
            case 0:  // safetensors: anywhere in the file
                input = safetensors
                FuzzTests.mutate(&input, using: &rng)
                ok = FuzzTests.survives("safetensors #\(iteration)") {
                    let store = try Safetensors.load(data: Data(input))
                    for name in store.names { _ = try store.require(name).floats() }
                }
            case 1:  // safetensors: inside the JSON header, length kept consistent half of the time
                input = safetensors
                FuzzTests.mutate(&input, in: 8..<(8 + header.utf8.count), using: &rng)
                if Bool.random(using: &rng), input.count >= 8 + data.count {
                    var length: [UInt8] = []
                    length.le64(UInt64(input.count - 8 - data.count))
                    input.replaceSubrange(0..<8, with: length)
                }
                ok = FuzzTests.survives("safetensors header #\(iteration)") {
                    let store = try Safetensors.load(data: Data(input))
                    for name in store.names { _ = try store.require(name).floats() }
                }
            case 2:  // checkpoint: raw bytes of the archive
                input = checkpoints[(iteration / 4) % checkpoints.count]
                FuzzTests.mutate(&input, using: &rng)
                ok = FuzzTests.survives("checkpoint #\(iteration)") {
                    try touchTensors(try TorchCheckpoint.load(data: Data(input)))
                }
            default:  // checkpoint: the pickle (or a storage), re-archived with valid CRCs
                var entries = archives[(iteration / 4) % archives.count]
                let target = Int.random(in: 0..<4, using: &rng) == 0 ? Int.random(in: 0..<entries.count, using: &rng) : 0
                FuzzTests.mutate(&entries[target].data, splice: FuzzTests.opcodes, using: &rng)
                input = TestZip.archive(entries, zip64: Bool.random(using: &rng))
                ok = FuzzTests.survives("pickle #\(iteration)") {
                    try touchTensors(try TorchCheckpoint.load(data: Data(input)))
                    _ = try? TorchCheckpoint.stateDict(data: Data(input))
                }
            }
            if ok { loaded[strategy] += 1 }
            slowest = max(slowest, Date().timeIntervalSince(began))
        }
        let elapsed = Date().timeIntervalSince(start)
        print("fuzz: \(iterations) inputs in \(String(format: "%.1f", elapsed)) s, slowest \(String(format: "%.3f", slowest)) s; loaded without error per strategy: \(loaded)")
        XCTAssertLessThan(slowest, 2.0, "one input took too long: a potential hang")
        // The mutations must not be so destructive that nothing ever parses (that would test nothing).
        for count in loaded { XCTAssertGreaterThan(count, 0) }
    }
}
