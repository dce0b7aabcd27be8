import TussPipeline
import TussServer

/// The codec-path separator factory for `--masker`.
func maskerFactory(_ path: String?) throws -> CodesSeparatorFactory? {
    guard let path else { return nil }
    throw CLIError("--masker \(path): this build has no latent masker yet (it lands with the masker branch)")
}
