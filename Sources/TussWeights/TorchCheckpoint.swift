import Foundation

/// Reading PyTorch checkpoints written by `torch.save` (PyTorch >= 1.6 zip container) without running Python.
///
/// The archive holds `<name>/data.pkl` (the pickled object) and `<name>/data/<key>` (raw little-endian storages).
/// Tensors are slices of the memory-mapped file; only non-contiguous tensors are copied.
public enum TorchCheckpoint {
    /// The largest `data.pkl` accepted, in bytes.
    static let maxPickleSize = 256 << 20

    /// The object `torch.save` wrote to the file at `path`.
    public static func load(_ path: String) throws -> PickleValue {
        try load(data: try MappedFile.map(path), source: path)
    }

    /// The object in checkpoint bytes already in memory; `source` names them in error messages.
    public static func load(data: Data, source: String = "memory") throws -> PickleValue {
        if data.first == 0x80 {
            throw WeightsError.unsupportedCheckpoint(path: source, feature: "the legacy non-zip torch.save format (PyTorch < 1.6)")
        }
        let archive = try ZipArchive(data: data, source: source)
        let pickles = archive.entries.filter { entry in
            entry.name.hasSuffix("/data.pkl") && entry.name.utf8.filter { $0 == UInt8(ascii: "/") }.count == 1
        }
        guard let pickle = pickles.first else {
            if archive.entries.contains(where: { $0.name.hasSuffix("/constants.pkl") }) {
                throw WeightsError.unsupportedCheckpoint(path: source, feature: "a TorchScript archive (torch.jit.save)")
            }
            throw WeightsError.invalidCheckpoint(path: source, reason: "the zip archive has no <name>/data.pkl entry")
        }
        guard pickles.count == 1 else {
            throw WeightsError.invalidCheckpoint(path: source, reason: "the zip archive has several data.pkl entries")
        }
        let prefix = String(pickle.name.dropLast("data.pkl".count))
        if let byteOrder = archive.entry(named: prefix + "byteorder") {
            let text = String(decoding: archive.contents(of: byteOrder), as: UTF8.self)
            guard text == "little" else {
                throw WeightsError.unsupportedCheckpoint(path: source, feature: "storages with byte order '\(text)'")
            }
        }
        guard pickle.size <= maxPickleSize else {
            throw WeightsError.invalidCheckpoint(path: source, reason: "data.pkl has \(pickle.size) bytes, more than the \(maxPickleSize)-byte limit")
        }
        let pickleBytes = archive.contents(of: pickle)
        let storageNames = prefix + "data/"
        // Copies for non-contiguous tensors may not exceed twice the file plus 64 MB in total.
        let copyBudget = (64 << 20) + 2 * data.count
        return try pickleBytes.withUnsafeBytes { raw in
            guard CRC32.checksum(raw) == pickle.crc32 else {
                throw WeightsError.invalidCheckpoint(path: source, reason: "data.pkl fails its CRC-32 check (the file is corrupt)")
            }
            return try Unpickler.unpickle(raw, source: source, copyBudget: copyBudget) { key in
                guard let entry = archive.entry(named: storageNames + key) else {
                    throw WeightsError.invalidCheckpoint(path: source, reason: "storage '\(key)' has no entry \(storageNames)\(key)")
                }
                return archive.contents(of: entry)
            }
        }
    }

    /// The flat tensor dict at `keyPath` in the checkpoint at `path` (e.g. `["state_dict"]` for DAC files).
    ///
    /// Names keep the dict's order; nested dicts are flattened with "." (`{"a": {"b": T}}` gives `a.b`);
    /// integer keys become decimal names; values that are neither tensors nor dicts are skipped.
    public static func stateDict(_ path: String, at keyPath: [String] = []) throws -> WeightStore {
        try stateDict(of: try load(path), at: keyPath, source: path)
    }

    /// The flat tensor dict at `keyPath` in checkpoint bytes already in memory.
    public static func stateDict(data: Data, at keyPath: [String] = [], source: String = "memory") throws -> WeightStore {
        try stateDict(of: try load(data: data, source: source), at: keyPath, source: source)
    }

    /// The flat tensor dict at `keyPath` inside an already loaded checkpoint object.
    static func stateDict(of root: PickleValue, at keyPath: [String], source: String) throws -> WeightStore {
        var node = root
        for (depth, key) in keyPath.enumerated() {
            guard case .dict = node else {
                throw WeightsError.invalidKeyPath(
                    path: source, keyPath: keyPath, reason: "the value at depth \(depth) is a \(node.kindName), not a dict")
            }
            guard let child = node[key] else {
                throw WeightsError.invalidKeyPath(path: source, keyPath: keyPath, reason: "there is no key '\(key)'")
            }
            node = child
        }
        guard case .dict = node else {
            throw WeightsError.invalidKeyPath(path: source, keyPath: keyPath, reason: "the value is a \(node.kindName), not a dict")
        }
        var store = WeightStore(source: source)
        try flatten(node, prefix: "", into: &store)
        guard store.count > 0 else {
            throw WeightsError.invalidKeyPath(path: source, keyPath: keyPath, reason: "the dict holds no tensors")
        }
        return store
    }

    private static func flatten(_ value: PickleValue, prefix: String, into store: inout WeightStore) throws {
        guard case let .dict(entries) = value else { return }
        for (key, entry) in entries {
            let name: String
            switch key {
            case let .string(text): name = prefix + text
            case let .int(number): name = prefix + String(number)
            default: continue
            }
            switch entry {
            case let .tensor(tensor):
                guard !store.contains(name) else {
                    throw WeightsError.invalidCheckpoint(path: store.source, reason: "two tensors are named '\(name)' after flattening")
                }
                store.append(name, tensor)
            case .dict:
                try flatten(entry, prefix: name + ".", into: &store)
            default:
                continue
            }
        }
    }
}
