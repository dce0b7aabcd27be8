import TussWeights

/// The full names a reader (and every reader scoped from it) has read, so a loader can refuse a file's leftovers.
final class WeightReadLog {
    var names: Set<String> = []
}

/// Reads named tensors from a weight store and checks their shapes, so a wrong file fails with the tensor's name.
struct WeightReader {
    let store: WeightStore
    let prefix: String
    /// When set, every requested tensor is synthesised (uniform in ±1/√fan-in) instead of read: benchmarks use it
    /// to build models of the official sizes without their (unreachable) weight files.
    let randomSeed: UInt64?
    /// When set, records every name read; shared by the scoped readers.
    let log: WeightReadLog?

    init(_ store: WeightStore, prefix: String = "", randomSeed: UInt64? = nil, log: WeightReadLog? = nil) {
        self.store = store
        self.prefix = prefix
        self.randomSeed = randomSeed
        self.log = log
    }

    /// A reader that synthesises every tensor from `seed`.
    static func random(seed: UInt64) throws(ModelError) -> WeightReader {
        do {
            return WeightReader(try WeightStore([]), randomSeed: seed)
        } catch {
            throw .badWeights("\(error)")
        }
    }

    /// A reader whose names are relative to `prefix + component + "."`.
    func scoped(_ component: String) -> WeightReader {
        WeightReader(store, prefix: prefix + component + ".", randomSeed: randomSeed, log: log)
    }

    func has(_ name: String) -> Bool { randomSeed == nil && store[prefix + name] != nil }

    /// The shape of a tensor, or an error naming it.
    func shape(_ name: String) throws(ModelError) -> [Int] {
        guard let t = store[prefix + name] else { throw .badWeights("missing tensor '\(prefix + name)'") }
        return t.shape
    }

    /// The values of a tensor whose shape must equal `shape` (trailing/leading 1-axes of the stored tensor are ignored).
    func floats(_ name: String, shape expected: [Int]) throws(ModelError) -> [Float] {
        let full = prefix + name
        if let seed = randomSeed {
            // FNV-1a of the name: Swift's hashValue is randomised per process.
            var hash: UInt64 = 0xcbf2_9ce4_8422_2325
            for byte in full.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
            var state = (seed ^ hash) | 1
            let count = expected.reduce(1, *)
            let fanIn = max(1, count / max(expected.first ?? 1, 1))
            let scale = Float(1 / Double(fanIn).squareRoot())
            return (0..<count).map { _ in
                state ^= state << 13; state ^= state >> 7; state ^= state << 17
                return (Float(state >> 40) / Float(1 << 24) * 2 - 1) * scale + (name.hasSuffix("alpha") ? 1 : 0)
            }
        }
        guard let t = store[full] else { throw .badWeights("missing tensor '\(full)'") }
        log?.names.insert(full)
        let squeeze = { (s: [Int]) in s.filter { $0 != 1 } }
        guard squeeze(t.shape) == squeeze(expected), t.shape.reduce(1, *) == expected.reduce(1, *) else {
            throw .badWeights("tensor '\(full)' has shape \(t.shape), expected \(expected)")
        }
        do {
            return try t.floats()
        } catch {
            throw .badWeights("tensor '\(full)': \(error)")
        }
    }
}
