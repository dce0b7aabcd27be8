import Foundation
import TussModels
import TussWeights

/// What went wrong in a pipeline; each message is one line that says what to do.
public enum PipelineError: Error, CustomStringConvertible {
    case notFound(String)
    case badInput(String)
    case wrongKind(String)
    case failed(String)

    public var description: String {
        switch self {
        case .notFound(let s), .badInput(let s), .wrongKind(let s), .failed(let s): return s
        }
    }
}

/// Refuses a codebook count below 1; the message names no flag because the library serves the CLI, the server and
/// embedding apps alike (each names its own option before it gets here).
func requireCodebookCount(_ count: Int?) throws(PipelineError) {
    if let count, count < 1 { throw .badInput("the codebook count must be at least 1 (got \(count))") }
}

/// Turns any lower-level error into a `PipelineError` with its one-line message.
func pipelineError(_ error: Error, context: String? = nil) -> PipelineError {
    if let e = error as? PipelineError { return e }
    let text = "\(error)"
    return .failed(context.map { "\($0): \(text)" } ?? text)
}

/// The kinds of model file the tool reads.
public enum ModelKind: String, Sendable {
    case tuss, dac, masker
}

/// A weights file or official release directory, opened and identified.
public struct ModelFile: Sendable {
    public let path: String
    public let kind: ModelKind?
    public let weights: WeightStore
    /// The configuration (official schema: TUSS hparams, DAC kwargs), when the file carries one.
    public let config: ConfigValue?
    /// How the file was stored: `official release directory`, `PyTorch checkpoint`, `safetensors`.
    public let container: String

    /// Opens `path`: an official TUSS release directory (`hparams.yaml` + `checkpoints/model.pth`), a PyTorch
    /// checkpoint (`.pth`, `.pt`, `.ckpt`), or one of our safetensors files.
    public static func open(_ path: String) throws(PipelineError) -> ModelFile {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw .notFound("no such model file or directory: \(path)")
        }
        do {
            if isDirectory.boolValue {
                return try openReleaseDirectory(path)
            }
            if path.hasSuffix(".safetensors") {
                let store = try Safetensors.load(path)
                let kind = store.metadata["tuss-codec.kind"].flatMap(ModelKind.init(rawValue:))
                let config = try store.metadata["tuss-codec.config"].map { try ConfigValue.parseJSON($0) }
                return ModelFile(path: path, kind: kind, weights: store, config: config, container: "safetensors")
            }
            return try openCheckpoint(path)
        } catch {
            throw pipelineError(error, context: path)
        }
    }

    static func openReleaseDirectory(_ dir: String) throws -> ModelFile {
        let hparams = (dir as NSString).appendingPathComponent("hparams.yaml")
        let checkpoint = (dir as NSString).appendingPathComponent("checkpoints/model.pth")
        guard FileManager.default.fileExists(atPath: hparams) else {
            throw PipelineError.notFound("\(dir) is not a TUSS release directory: hparams.yaml is missing")
        }
        guard FileManager.default.fileExists(atPath: checkpoint) else {
            throw PipelineError.notFound("\(dir) is not a TUSS release directory: checkpoints/model.pth is missing")
        }
        let config = try ConfigValue.parseYAML(String(contentsOfFile: hparams, encoding: .utf8))
        let store = try TorchCheckpoint.stateDict(checkpoint)
        return ModelFile(path: dir, kind: .tuss, weights: store, config: config, container: "official release directory")
    }

    static func openCheckpoint(_ path: String) throws -> ModelFile {
        let root = try TorchCheckpoint.load(path)
        // DAC files: {"state_dict": …, "metadata": {"kwargs": …}}.
        if root["state_dict"] != nil {
            let store = try TorchCheckpoint.stateDict(path, at: ["state_dict"])
            var kwargs: ConfigValue?
            if let meta = root["metadata"], let config = ConfigValue(pickle: meta) {
                kwargs = config["kwargs"]
            }
            let kind: ModelKind? = store.names.contains(where: { $0.hasPrefix("quantizer.quantizers.") }) ? .dac : nil
            return ModelFile(path: path, kind: kind, weights: store, config: kwargs, container: "PyTorch checkpoint")
        }
        let store = try TorchCheckpoint.stateDict(path)
        // A bare TUSS checkpoint: the official layout keeps hparams.yaml two levels up.
        let dir = ((path as NSString).deletingLastPathComponent as NSString).deletingLastPathComponent
        let hparams = (dir as NSString).appendingPathComponent("hparams.yaml")
        var config: ConfigValue?
        if FileManager.default.fileExists(atPath: hparams) {
            config = try ConfigValue.parseYAML(String(contentsOfFile: hparams, encoding: .utf8))
        }
        let isTuss = store.names.contains { $0.contains("separator.band_split_module") }
        return ModelFile(path: path, kind: isTuss ? .tuss : nil, weights: store, config: config, container: "PyTorch checkpoint")
    }

    /// Builds the TUSS model this file holds.
    public func tussModel() throws(PipelineError) -> TUSSModel {
        guard kind == .tuss else { throw .wrongKind("\(path) is not a TUSS model (it holds \(kind?.rawValue ?? "unknown weights"))") }
        guard let config else { throw .badInput("\(path) has no configuration (hparams.yaml beside the checkpoint, or safetensors metadata)") }
        do {
            return try TUSSModel(config: TUSSConfig(config), weights: weights)
        } catch {
            throw .badInput("\(path): \(error)")
        }
    }

    /// Builds the DAC codec this file holds.
    public func dacCodec() throws(PipelineError) -> DACCodec {
        guard kind == .dac else { throw .wrongKind("\(path) is not a DAC codec (it holds \(kind?.rawValue ?? "unknown weights"))") }
        do {
            let config = try DACConfig(kwargs: config ?? .object([:]))
            return try DACCodec(config: config, weights: weights)
        } catch {
            throw .badInput("\(path): \(error)")
        }
    }

    /// Builds the latent masker this file holds.
    public func latentMasker() throws(PipelineError) -> LatentMasker {
        guard kind == .masker else { throw .wrongKind("\(path) is not a codec-path masker (it holds \(kind?.rawValue ?? "unknown weights"))") }
        guard let config else { throw .badInput("\(path) has no masker configuration (safetensors metadata 'tuss-codec.config')") }
        do {
            return try LatentMasker(config: LatentMaskerConfig(json: config), weights: weights)
        } catch {
            throw .badInput("\(path): \(error)")
        }
    }

    /// A digest of the tensors (names, shapes and values, in name order): equal for a `.pth` and its conversion.
    public func weightsDigest() throws(PipelineError) -> [UInt8] {
        var hasher = SHA256()
        for name in weights.names.sorted() {
            guard let t = weights[name] else { continue }
            hasher.update(Array(name.utf8))
            for d in t.shape { withUnsafeBytes(of: UInt64(d).littleEndian) { hasher.update($0) } }
            do {
                let values = try t.floats()
                values.withUnsafeBufferPointer { buf in
                    buf.withMemoryRebound(to: UInt8.self) { hasher.update($0) }
                }
            } catch {
                throw .badInput("\(path): tensor \(name): \(error)")
            }
        }
        return hasher.finalize()
    }

    /// Total parameters (elements of every tensor).
    public var parameterCount: Int { weights.names.reduce(0) { $0 + (weights[$1]?.count ?? 0) } }
}

/// Finds the embedded default models shipped in the repository's `Models/` and `Codecs/` folders.
public enum DefaultModels {
    /// The default separator, relative to the project root.
    public static let separator = "Models/tuss-small/model.safetensors"
    /// The default codec, relative to the project root.
    public static let codec = "Codecs/dac-small-16k/codec.safetensors"
    /// The default codec-path masker, relative to the project root.
    public static let masker = "Models/codec-masker/model.safetensors"

    /// The project root: `$TUSS_CODEC_HOME`, else the first folder above the executable holding `Models/`.
    public static func root() -> String? {
        if let home = ProcessInfo.processInfo.environment["TUSS_CODEC_HOME"], !home.isEmpty { return home }
        var dir = URL(fileURLWithPath: CommandLine.arguments.first ?? ".").resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<8 {
            if FileManager.default.fileExists(atPath: dir.appendingPathComponent("Models").path) { return dir.path }
            dir.deleteLastPathComponent()
        }
        let cwd = FileManager.default.currentDirectoryPath
        if FileManager.default.fileExists(atPath: (cwd as NSString).appendingPathComponent("Models")) { return cwd }
        return nil
    }

    /// The path of a default model file, or an error naming the file that is missing.
    public static func path(_ relative: String, what: String) throws(PipelineError) -> String {
        guard let root = root() else {
            throw .notFound("the default \(what) (\(relative)) was not found: run from the tuss-codec checkout, set TUSS_CODEC_HOME, or pass a model file")
        }
        let full = (root as NSString).appendingPathComponent(relative)
        guard FileManager.default.fileExists(atPath: full) else {
            throw .notFound("the default \(what) is missing: \(full) does not exist (train it with Training/, or pass a model file)")
        }
        return full
    }
}
