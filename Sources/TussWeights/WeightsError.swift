import Foundation

/// An error from reading or writing weight files, tensors or configuration text.
///
/// Every message is one line that names the file (or value) and says what to do about it.
public enum WeightsError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The file could not be opened, mapped or read.
    case unreadableFile(path: String, reason: String)
    /// The file could not be written.
    case unwritableFile(path: String, reason: String)
    /// A safetensors file is malformed.
    case invalidSafetensors(path: String, reason: String)
    /// A PyTorch checkpoint (zip container or pickle) is malformed.
    case invalidCheckpoint(path: String, reason: String)
    /// A PyTorch checkpoint is well formed but uses a feature this loader does not implement.
    case unsupportedCheckpoint(path: String, feature: String)
    /// A requested tensor is absent.
    case missingTensor(name: String, source: String)
    /// A key path into a checkpoint does not lead to a dictionary.
    case invalidKeyPath(path: String, keyPath: [String], reason: String)
    /// A tensor's dtype, shape or bytes are inconsistent, or a conversion is not possible.
    case invalidTensor(reason: String)
    /// A list of tensors to write is not acceptable (duplicate or reserved names).
    case invalidArgument(reason: String)
    /// JSON text is malformed.
    case invalidJSON(offset: Int, reason: String)
    /// YAML text is malformed or cannot be represented as a configuration value.
    case invalidYAML(reason: String)

    public var description: String {
        // Names and reasons can come from hostile files: keep the message on one line.
        message.replacingOccurrences(of: "\n", with: "\\n").replacingOccurrences(of: "\r", with: "\\r")
    }

    private var message: String {
        switch self {
        case let .unreadableFile(path, reason):
            return "cannot read '\(path)': \(reason); check the path and its permissions"
        case let .unwritableFile(path, reason):
            return "cannot write '\(path)': \(reason); check that the directory exists, is writable and has free space"
        case let .invalidSafetensors(path, reason):
            return "'\(path)' is not a valid safetensors file: \(reason); re-export it with safetensors.save_file"
        case let .invalidCheckpoint(path, reason):
            return "'\(path)' is not a valid PyTorch checkpoint: \(reason); re-save it with torch.save (PyTorch >= 1.6)"
        case let .unsupportedCheckpoint(path, feature):
            return "'\(path)' uses \(feature), which this loader does not support; save a plain dict of tensors with torch.save"
        case let .missingTensor(name, source):
            return "missing tensor '\(name)' in \(source); is this the right kind of model file?"
        case let .invalidKeyPath(path, keyPath, reason):
            let shown = keyPath.map { "\"\($0)\"" }.joined(separator: ", ")
            return "'\(path)' has no tensor dict at key path [\(shown)]: \(reason); pass the path of the state dict (e.g. [\"state_dict\"] for DAC files)"
        case let .invalidTensor(reason):
            return "invalid tensor: \(reason); check the dtype, shape and byte count"
        case let .invalidArgument(reason):
            return "invalid argument: \(reason)"
        case let .invalidJSON(offset, reason):
            return "invalid JSON at byte \(offset): \(reason); fix the JSON text"
        case let .invalidYAML(reason):
            return "invalid YAML: \(reason); fix the YAML text"
        }
    }
}
