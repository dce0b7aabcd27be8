/// Why a model could not be loaded or run; each message is one line that says what to do.
public enum ModelError: Error, CustomStringConvertible, Equatable {
    case missingFile(String)
    case badConfig(String)
    case badWeights(String)
    case unknownPrompt(String, valid: [String])
    case tooManyPrompts(Int, max: Int)
    case noPrompts
    case unsupported(String)

    public var description: String {
        switch self {
        case .missingFile(let what): return "model file not found: \(what)"
        case .badConfig(let why): return "model configuration is not usable: \(why)"
        case .badWeights(let why): return "model weights do not match the configuration: \(why)"
        case .unknownPrompt(let p, let valid): return "unknown prompt '\(p)'; valid prompts: \(valid.joined(separator: ", "))"
        case .tooManyPrompts(let n, let max): return "\(n) prompts given; at most \(max) are supported"
        case .noPrompts: return "no prompts given; pass at least one, e.g. --prompts speech,sfx-mix"
        case .unsupported(let what): return "not supported: \(what)"
        }
    }
}
