import TussWeights

/// Hyper-parameters of the latent masker, as stored (JSON) in its model file's `tuss-codec.config` metadata.
///
/// JSON keys: `latent_dim`, `d_model`, `heads`, `ffn`, `joint_layers`, `film_layers`, `window`, `prompts`,
/// `max_prompts`, `codec` = `{"name": …, "sha256": …}` (the codec the masker was trained on), and the optional
/// `additive` (default false) and `lookahead` (default 0).
public struct LatentMaskerConfig: Sendable, Equatable {
    /// Channels of the codec latent (C).
    public var latentDim: Int
    /// Width of the transformer (D).
    public var modelDim: Int
    /// Attention heads; `modelDim` must be a multiple of it with an even head dimension.
    public var heads: Int
    /// Hidden width of the feed-forward layers.
    public var ffnDim: Int
    /// Layers over [start; prompts; frames].
    public var jointLayers: Int
    /// FiLM-conditioned layers over the frames, run once per prompt.
    public var filmLayers: Int
    /// Causal look-back in frames, the current frame included (W).
    public var window: Int
    /// Prompt names in embedding-row order.
    public var prompts: [String]
    /// Most prompts per call (rows of the slot embedding).
    public var maxPrompts: Int
    /// Name of the codec the masker was trained on (informational).
    public var codecName: String
    /// Hex digest of that codec's weights, as `CodecIdentity.weightsHash` (64 lowercase hex digits).
    public var codecHash: String
    /// Whether an additive head (`add_head`) follows the mask: output z ⊙ m + a instead of z ⊙ m.
    public var additive: Bool
    /// Frames after frame t that its input projection also sees (`input_ahead`); 0 is causal. A stream returns each
    /// frame this many frames late, so its algorithmic latency grows from one codec frame to `lookahead` + 1.
    public var lookahead: Int

    /// Creates a configuration from its parts.
    public init(latentDim: Int, modelDim: Int = 128, heads: Int = 4, ffnDim: Int = 256, jointLayers: Int = 2,
                filmLayers: Int = 2, window: Int = 64, prompts: [String], maxPrompts: Int = 8,
                codecName: String, codecHash: String, additive: Bool = false, lookahead: Int = 0) {
        self.latentDim = latentDim
        self.modelDim = modelDim
        self.heads = heads
        self.ffnDim = ffnDim
        self.jointLayers = jointLayers
        self.filmLayers = filmLayers
        self.window = window
        self.prompts = prompts
        self.maxPrompts = maxPrompts
        self.codecName = codecName
        self.codecHash = codecHash
        self.additive = additive
        self.lookahead = lookahead
    }

    /// The keys this engine reads. A file with any other key comes from a recipe that computes something this engine
    /// does not (e.g. another mask activation), and running it without that key's meaning would give wrong outputs
    /// without any error.
    static let knownKeys: Set<String> = ["latent_dim", "d_model", "heads", "ffn", "joint_layers", "film_layers", "window",
                                         "prompts", "max_prompts", "codec", "additive", "lookahead"]

    /// Reads the JSON object of a model file; every key but `additive` and `lookahead` is required, and unknown keys
    /// are refused.
    public init(json v: ConfigValue) throws(ModelError) {
        if case .object(let object) = v, let unknown = object.keys.filter({ !Self.knownKeys.contains($0) }).sorted().first {
            throw .badConfig("masker config: unknown key '\(unknown)' (the file was written by a newer recipe than this "
                             + "engine reads; update tuss-codec)")
        }
        func int(_ key: String) throws(ModelError) -> Int {
            guard let i = v[key]?.intValue, i > 0 else { throw .badConfig("masker config: '\(key)' must be a positive integer") }
            return i
        }
        guard let list = v["prompts"]?.arrayValue else { throw .badConfig("masker config: 'prompts' must list prompt names") }
        var names: [String] = []
        for item in list {
            guard let s = item.stringValue else { throw .badConfig("masker config: 'prompts' must list prompt names") }
            names.append(s)
        }
        guard let name = v["codec"]?["name"]?.stringValue, let hash = v["codec"]?["sha256"]?.stringValue else {
            throw .badConfig("masker config: 'codec' must be {\"name\": …, \"sha256\": …} of the codec it was trained on")
        }
        var additive = false
        if let flag = v["additive"] {
            guard let b = flag.boolValue else { throw .badConfig("masker config: 'additive' must be true or false") }
            additive = b
        }
        var lookahead = 0
        if let value = v["lookahead"] {
            guard let i = value.intValue, i >= 0 else {
                throw .badConfig("masker config: 'lookahead' must be a non-negative integer (frames)")
            }
            lookahead = i
        }
        self.init(latentDim: try int("latent_dim"), modelDim: try int("d_model"), heads: try int("heads"),
                  ffnDim: try int("ffn"), jointLayers: try int("joint_layers"), filmLayers: try int("film_layers"),
                  window: try int("window"), prompts: names, maxPrompts: try int("max_prompts"),
                  codecName: name, codecHash: hash.lowercased(), additive: additive, lookahead: lookahead)
        try validate()
    }

    /// Checks the sizes fit together and every prompt of the shared vocabulary has an embedding.
    public func validate() throws(ModelError) {
        guard modelDim % heads == 0, (modelDim / heads) % 2 == 0 else {
            throw .badConfig("masker config: d_model \(modelDim) must split into \(heads) heads of even width")
        }
        // A bound that no trained masker comes near (a second of frames at the codec rates we ship is 50), so a
        // corrupt value fails here instead of allocating a huge input projection.
        guard (0...1024).contains(lookahead) else {
            throw .badConfig("masker config: lookahead \(lookahead) frames is outside 0 … 1024")
        }
        guard codecHash.count == 64, codecHash.allSatisfy({ $0.isHexDigit }) else {
            throw .badConfig("masker config: codec.sha256 must be 64 hex digits")
        }
        for p in Prompt.all where !prompts.contains(p.name) {
            throw .badConfig("masker config: prompt '\(p.name)' has no embedding (prompts: \(prompts.joined(separator: ",")))")
        }
    }

    /// Width of one attention head.
    public var headDim: Int { modelDim / heads }

    /// The JSON object written into model files (`additive` and `lookahead` only when set, as the recipe writes them).
    public var json: ConfigValue {
        var object: [String: ConfigValue] = [
            "latent_dim": .int(latentDim), "d_model": .int(modelDim), "heads": .int(heads), "ffn": .int(ffnDim),
            "joint_layers": .int(jointLayers), "film_layers": .int(filmLayers), "window": .int(window),
            "prompts": .array(prompts.map { .string($0) }), "max_prompts": .int(maxPrompts),
            "codec": .object(["name": .string(codecName), "sha256": .string(codecHash)]),
        ]
        if additive { object["additive"] = .bool(true) }
        if lookahead > 0 { object["lookahead"] = .int(lookahead) }
        return .object(object)
    }
}
