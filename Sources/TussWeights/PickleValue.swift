/// A value decoded from a PyTorch checkpoint's pickle.
///
/// Lists, tuples and dicts keep their order; a dict's keys are unique (Python equality: `1`, `1.0` and `True` are
/// the same key). `torch.Size` becomes a tuple, `torch.device` its string (e.g. "cpu"), a bare storage a 1-D tensor.
public indirect enum PickleValue: Sendable {
    case none
    case bool(Bool)
    case int(Int64)
    case float(Double)
    case string(String)
    case bytes([UInt8])
    case list([PickleValue])
    case tuple([PickleValue])
    /// Entries in insertion order.
    case dict([(key: PickleValue, value: PickleValue)])
    case tensor(WeightTensor)
    /// A class or function reference that was stored but not called.
    case global(module: String, name: String)

    /// The value for a string key, when this is a dict that has it.
    public subscript(key: String) -> PickleValue? {
        guard case let .dict(entries) = self else { return nil }
        for entry in entries {
            if case let .string(text) = entry.key, text == key {
                return entry.value
            }
        }
        return nil
    }

    /// A short description of the kind of value, for messages.
    var kindName: String {
        switch self {
        case .none: return "None"
        case .bool: return "bool"
        case .int: return "int"
        case .float: return "float"
        case .string: return "str"
        case .bytes: return "bytes"
        case .list: return "list"
        case .tuple: return "tuple"
        case .dict: return "dict"
        case .tensor: return "tensor"
        case let .global(module, name): return "\(module).\(name)"
        }
    }
}
