import Yams

/// A JSON-like configuration value parsed from YAML (official TUSS hparams.yaml, with anchors/aliases) or JSON (our safetensors metadata).
public indirect enum ConfigValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([ConfigValue])
    case object([String: ConfigValue])

    /// The deepest nesting accepted when parsing.
    static let maxNesting = 200
    /// The most values one parse may produce (aliases are expanded, so a small text can name many).
    static let maxNodes = 200_000

    // MARK: Parsing

    /// Parses the first YAML document (YAML 1.1 scalars as in PyYAML: `true`/`yes`, `null`/`~`, ints, floats).
    ///
    /// Anchors and aliases are resolved by copying; merge keys (`<<`) are applied, explicit keys winning.
    public static func parseYAML(_ text: String) throws -> ConfigValue {
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch {
            let message = String(describing: error).split(whereSeparator: \.isNewline).joined(separator: " ")
            throw WeightsError.invalidYAML(reason: message)
        }
        guard let root else { return .null }
        var budget = maxNodes
        return try fromYAML(root, depth: 0, budget: &budget)
    }

    private static func fromYAML(_ node: Node, depth: Int, budget: inout Int) throws -> ConfigValue {
        guard depth <= maxNesting else { throw WeightsError.invalidYAML(reason: "nesting deeper than \(maxNesting) levels") }
        budget -= 1
        guard budget >= 0 else { throw WeightsError.invalidYAML(reason: "more than \(maxNodes) values after expanding aliases") }
        switch node {
        case let .scalar(scalar):
            switch node.tag.description {
            case Tag.Name.null.rawValue:
                return .null
            case Tag.Name.bool.rawValue:
                if let value = node.bool { return .bool(value) }
            case Tag.Name.int.rawValue:
                if let value = node.int { return .int(value) }
                if let value = node.float { return .double(value) }
            case Tag.Name.float.rawValue:
                if let value = node.float { return .double(value) }
            default:
                break
            }
            return .string(scalar.string)
        case let .sequence(sequence):
            var values: [ConfigValue] = []
            values.reserveCapacity(sequence.count)
            for element in sequence {
                values.append(try fromYAML(element, depth: depth + 1, budget: &budget))
            }
            return .array(values)
        case let .mapping(mapping):
            var object: [String: ConfigValue] = [:]
            var merged: [[String: ConfigValue]] = []
            for (key, value) in mapping {
                guard case let .scalar(keyScalar) = key else {
                    throw WeightsError.invalidYAML(reason: "a mapping key is not a scalar")
                }
                if key.tag.description == Tag.Name.merge.rawValue {
                    let sources = value.sequence.map(Array.init) ?? [value]
                    for source in sources {
                        guard case let .object(entries) = try fromYAML(source, depth: depth + 1, budget: &budget) else {
                            throw WeightsError.invalidYAML(reason: "a merge key (<<) refers to something other than a mapping")
                        }
                        merged.append(entries)
                    }
                    continue
                }
                guard object[keyScalar.string] == nil else {
                    throw WeightsError.invalidYAML(reason: "duplicate key '\(keyScalar.string)'")
                }
                object[keyScalar.string] = try fromYAML(value, depth: depth + 1, budget: &budget)
            }
            // Earlier merge sources take precedence over later ones; explicit keys over all.
            for entries in merged {
                object.merge(entries) { existing, _ in existing }
            }
            return .object(object)
        }
    }

    /// Parses JSON text (RFC 8259; duplicate keys are an error). Integer literals become `.int`, other numbers `.double`.
    public static func parseJSON(_ text: String) throws -> ConfigValue {
        fromJSON(try JSONParser.parse(Array(text.utf8)))
    }

    static func fromJSON(_ json: JSONValue) -> ConfigValue {
        switch json {
        case .null: return .null
        case let .bool(value): return .bool(value)
        case let .int(value):
            if let int = Int(exactly: value) { return .int(int) }
            return .double(Double(value))
        case let .double(value): return .double(value)
        case let .string(value): return .string(value)
        case let .array(values): return .array(values.map(fromJSON))
        case let .object(members):
            var object: [String: ConfigValue] = [:]
            for member in members {
                object[member.key] = fromJSON(member.value)
            }
            return .object(object)
        }
    }

    /// Converts plain pickled data (e.g. DAC `metadata.kwargs`): None, bool, int, float, str, lists, tuples and
    /// dicts with string keys. Nil when anything else (a tensor, bytes, a non-string key) occurs.
    public init?(pickle: PickleValue) {
        switch pickle {
        case .none: self = .null
        case let .bool(value): self = .bool(value)
        case let .int(value):
            guard let int = Int(exactly: value) else { return nil }
            self = .int(int)
        case let .float(value): self = .double(value)
        case let .string(value): self = .string(value)
        case let .list(values), let .tuple(values):
            var array: [ConfigValue] = []
            array.reserveCapacity(values.count)
            for value in values {
                guard let converted = ConfigValue(pickle: value) else { return nil }
                array.append(converted)
            }
            self = .array(array)
        case let .dict(entries):
            var object: [String: ConfigValue] = [:]
            for (key, value) in entries {
                guard case let .string(name) = key, let converted = ConfigValue(pickle: value) else { return nil }
                object[name] = converted
            }
            self = .object(object)
        case .bytes, .tensor, .global:
            return nil
        }
    }

    // MARK: Output

    /// Compact JSON text. Non-finite doubles, which JSON cannot represent, are written as `null`.
    public func jsonString(sortedKeys: Bool = true) -> String {
        var out = ""
        write(to: &out, sortedKeys: sortedKeys)
        return out
    }

    private func write(to out: inout String, sortedKeys: Bool) {
        switch self {
        case .null: out += "null"
        case let .bool(value): out += value ? "true" : "false"
        case let .int(value): out += String(value)
        case let .double(value): out += value.isFinite ? "\(value)" : "null"
        case let .string(value): out += JSONText.quoted(value)
        case let .array(values):
            out += "["
            for (i, value) in values.enumerated() {
                if i > 0 { out += "," }
                value.write(to: &out, sortedKeys: sortedKeys)
            }
            out += "]"
        case let .object(object):
            out += "{"
            let keys = sortedKeys ? object.keys.sorted() : Array(object.keys)
            for (i, key) in keys.enumerated() {
                if i > 0 { out += "," }
                out += JSONText.quoted(key) + ":"
                object[key]?.write(to: &out, sortedKeys: sortedKeys)
            }
            out += "}"
        }
    }

    // MARK: Access

    /// The member named `key`, when this is an object that has it.
    public subscript(key: String) -> ConfigValue? {
        guard case let .object(object) = self else { return nil }
        return object[key]
    }

    /// The element at `index`, when this is an array that long.
    public subscript(index: Int) -> ConfigValue? {
        guard case let .array(array) = self, array.indices.contains(index) else { return nil }
        return array[index]
    }

    /// The integer, for `.int` only.
    public var intValue: Int? {
        guard case let .int(value) = self else { return nil }
        return value
    }

    /// The number, for `.double` and `.int`.
    public var doubleValue: Double? {
        switch self {
        case let .double(value): return value
        case let .int(value): return Double(value)
        default: return nil
        }
    }

    /// The text, for `.string` only.
    public var stringValue: String? {
        guard case let .string(value) = self else { return nil }
        return value
    }

    /// The flag, for `.bool` only.
    public var boolValue: Bool? {
        guard case let .bool(value) = self else { return nil }
        return value
    }

    /// The elements, for `.array` only.
    public var arrayValue: [ConfigValue]? {
        guard case let .array(value) = self else { return nil }
        return value
    }

    /// The members, for `.object` only.
    public var objectValue: [String: ConfigValue]? {
        guard case let .object(value) = self else { return nil }
        return value
    }

    /// Whether this is `.null`.
    public var isNull: Bool {
        if case .null = self { return true }
        return false
    }
}
