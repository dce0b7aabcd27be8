import Foundation
import TussWeights
import TussModels

/// Writes an opened model as one safetensors file with its configuration in the metadata.
public enum ModelConverter {
    /// The version of our model-file conventions (`tuss-codec.format`).
    public static let formatVersion = "1"

    /// Converts `file` to `output`; TUSS keys lose the Lightning `model.` prefix, DAC keys are kept as they are
    /// (weight norm stays unfolded, so both forms load through the same code and give identical results).
    public static func convert(_ file: ModelFile, to output: String) throws(PipelineError) {
        guard let kind = file.kind else {
            throw .wrongKind("\(file.path): cannot tell which model this is (expected TUSS or DAC weights)")
        }
        guard let config = file.config else {
            throw .badInput("\(file.path): no configuration found to store with the weights")
        }
        let store = kind == .tuss ? file.weights.renamed(strippingPrefix: "model.") : file.weights
        var tensors: [(name: String, tensor: WeightTensor)] = []
        for name in store.names {
            guard let t = store[name] else { continue }
            // Bookkeeping entries of Lightning/torch that are not weights.
            if name.hasSuffix("num_batches_tracked") { continue }
            tensors.append((name, t))
        }
        let metadata = [
            "tuss-codec.kind": kind.rawValue,
            "tuss-codec.format": formatVersion,
            "tuss-codec.config": config.jsonString(sortedKeys: true),
            "tuss-codec.source": (file.path as NSString).lastPathComponent,
        ]
        do {
            try Safetensors.write(tensors, metadata: metadata, to: output)
        } catch {
            throw pipelineError(error, context: output)
        }
    }
}

/// A human-readable (or JSON) description of a weights file.
public struct ModelDescription: Sendable {
    public var path: String
    public var container: String
    public var kind: String
    public var tensorCount: Int
    public var parameterCount: Int
    public var dtypes: [String]
    public var summary: [(String, String)]
    public var config: ConfigValue?

    /// Describes an opened model file.
    public init(_ file: ModelFile) {
        path = file.path
        container = file.container
        kind = file.kind?.rawValue ?? "unknown"
        tensorCount = file.weights.names.count
        parameterCount = file.parameterCount
        dtypes = Array(Set(file.weights.names.compactMap { file.weights[$0]?.dtype.rawValue })).sorted()
        config = file.config
        var s: [(String, String)] = []
        if file.kind == .tuss, let c = file.config {
            if let model = c["model_conf"] {
                s.append(("sample rate", model["sample_rate"].map { "\($0.intValue ?? 0) Hz" } ?? "?"))
                s.append(("prompts", model["prompts"]?.arrayValue?.compactMap(\.stringValue).joined(separator: ", ") ?? "?"))
                s.append(("blocks", "\(model["nblocks_cross_prompt_module"]?.intValue ?? 0) cross-prompt, \(model["nblocks_cond_tse_module"]?.intValue ?? 0) conditional TSE"))
                s.append(("embedding dim", "\(model["conf_cross_prompt_module"]?["emb_dim"]?.intValue ?? 0)"))
            }
            if let enc = c["encoder_conf"] {
                s.append(("STFT", "\(enc["fft_size"]?.intValue ?? 0) / hop \(enc["hop_length"]?.intValue ?? 0)"))
            }
        } else if file.kind == .dac, let c = file.config {
            let rates = c["encoder_rates"]?.arrayValue?.compactMap(\.intValue) ?? []
            let sr = c["sample_rate"]?.intValue ?? 0
            let hop = rates.reduce(1, *)
            let n = c["n_codebooks"]?.intValue ?? 0
            let size = c["codebook_size"]?.intValue ?? 1024
            var bits = 0
            while (1 << bits) < size { bits += 1 }
            s.append(("sample rate", "\(sr) Hz"))
            s.append(("hop", "\(hop) samples (\(String(format: "%.2f", Double(sr) / Double(max(hop, 1)))) frames/s)"))
            s.append(("codebooks", "\(n) × \(size)"))
            s.append(("max bitrate", String(format: "%.2f kbps", Double(n * bits) * Double(sr) / Double(max(hop, 1)) / 1000)))
        } else if file.kind == .masker, let c = file.config {
            let m: LatentMaskerConfig
            do {
                m = try LatentMaskerConfig(json: c)
            } catch {
                // `info` is where a user looks when a file is refused: say why instead of leaving the summary out.
                s.append(("config", "not usable: \(error)"))
                summary = s
                return
            }
            s.append(("latent", "\(m.latentDim) channels"))
            s.append(("transformer", "D \(m.modelDim), \(m.heads) heads, FFN \(m.ffnDim), \(m.jointLayers) joint + \(m.filmLayers) FiLM layers"))
            s.append(("output", m.additive ? "latent ⊙ mask + additive term" : "latent ⊙ mask"))
            s.append(("window", m.lookahead == 0 ? "\(m.window) frames (causal, lookahead 0)"
                      : "\(m.window) frames back, lookahead \(m.lookahead) frames (a stream returns each frame \(m.lookahead) frames late)"))
            s.append(("prompts", "\(m.prompts.joined(separator: ", ")) (at most \(m.maxPrompts) per call)"))
            s.append(("codec", "\(m.codecName) (weights sha256 \(m.codecHash.prefix(16))…)"))
        }
        summary = s
    }

    /// Plain-text lines.
    public var text: String {
        var lines = [
            "file: \(path)", "container: \(container)", "kind: \(kind)", "tensors: \(tensorCount)",
            "parameters: \(parameterCount)", "dtypes: \(dtypes.joined(separator: ", "))",
            "config: \(config == nil ? "none found" : "found")",
        ]
        for (k, v) in summary { lines.append("\(k): \(v)") }
        return lines.joined(separator: "\n")
    }

    /// A JSON object.
    public var json: String {
        var obj: [String: ConfigValue] = [
            "path": .string(path), "container": .string(container), "kind": .string(kind),
            "tensors": .int(tensorCount), "parameters": .int(parameterCount),
            "dtypes": .array(dtypes.map { .string($0) }),
        ]
        obj["config"] = config ?? .null
        return ConfigValue.object(obj).jsonString(sortedKeys: true)
    }
}
