import TussWeights

/// Reads named tensors from a weight store and checks their shapes, so a wrong file fails with the tensor's name.
struct WeightReader {
    let store: WeightStore
    let prefix: String

    init(_ store: WeightStore, prefix: String = "") {
        self.store = store
        self.prefix = prefix
    }

    /// A reader whose names are relative to `prefix + component + "."`.
    func scoped(_ component: String) -> WeightReader {
        WeightReader(store, prefix: prefix + component + ".")
    }

    func has(_ name: String) -> Bool { store[prefix + name] != nil }

    /// The shape of a tensor, or an error naming it.
    func shape(_ name: String) throws(ModelError) -> [Int] {
        guard let t = store[prefix + name] else { throw .badWeights("missing tensor '\(prefix + name)'") }
        return t.shape
    }

    /// The values of a tensor whose shape must equal `shape` (trailing/leading 1-axes of the stored tensor are ignored).
    func floats(_ name: String, shape expected: [Int]) throws(ModelError) -> [Float] {
        let full = prefix + name
        guard let t = store[full] else { throw .badWeights("missing tensor '\(full)'") }
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
