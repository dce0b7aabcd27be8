/// An ordered set of named tensors plus string metadata: what a model loader consumes.
public struct WeightStore: Sendable {
    /// Tensor names in file order (safetensors: header order; checkpoints: the pickled dict's order).
    public private(set) var names: [String]
    /// String metadata (safetensors `__metadata__`; empty for PyTorch checkpoints).
    public var metadata: [String: String]
    /// Where the tensors came from (a file path), used in error messages.
    public let source: String
    private var tensors: [String: WeightTensor]

    /// Creates a store from named tensors in order; names must be unique.
    public init(_ tensors: [(name: String, tensor: WeightTensor)], metadata: [String: String] = [:], source: String = "memory") throws {
        self.init(source: source, metadata: metadata)
        for (name, tensor) in tensors {
            guard self.tensors[name] == nil else {
                throw WeightsError.invalidArgument(reason: "duplicate tensor name '\(name)'; give each tensor a unique name")
            }
            append(name, tensor)
        }
    }

    /// Creates an empty store.
    init(source: String, metadata: [String: String] = [:]) {
        self.names = []
        self.metadata = metadata
        self.source = source
        self.tensors = [:]
    }

    /// Adds a tensor whose name the caller knows to be new.
    mutating func append(_ name: String, _ tensor: WeightTensor) {
        names.append(name)
        tensors[name] = tensor
    }

    /// Whether a tensor with this name exists.
    func contains(_ name: String) -> Bool { tensors[name] != nil }

    /// The number of tensors.
    public var count: Int { names.count }

    /// The tensor with this name, if any.
    public subscript(name: String) -> WeightTensor? {
        tensors[name]
    }

    /// The tensor with this name, or an error that names the file.
    public func require(_ name: String) throws -> WeightTensor {
        guard let tensor = tensors[name] else {
            throw WeightsError.missingTensor(name: name, source: source)
        }
        return tensor
    }

    /// Named tensors in file order.
    public var namedTensors: [(name: String, tensor: WeightTensor)] {
        names.compactMap { name in tensors[name].map { (name: name, tensor: $0) } }
    }

    /// A copy with `prefix` removed from the names that start with it (others unchanged, order kept).
    ///
    /// If two names become equal, the first in file order is kept.
    public func renamed(strippingPrefix prefix: String) -> WeightStore {
        var result = WeightStore(source: source, metadata: metadata)
        for name in names {
            guard let tensor = tensors[name] else { continue }
            let newName = name.hasPrefix(prefix) ? String(name.dropFirst(prefix.count)) : name
            if result.tensors[newName] == nil {
                result.append(newName, tensor)
            }
        }
        return result
    }
}
