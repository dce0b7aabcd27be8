import TussWeights

/// The hyper-parameters of one TF-Locoformer module (cross-prompt or conditional TSE), as the official
/// `conf_cross_prompt_module` / `conf_cond_tse_module` entries give them.
public struct LocoformerConfig: Sendable, Equatable {
    public var embDim: Int
    public var attentionDim: Int
    public var heads: Int
    public var groups: Int
    /// `(hidden, kernel)` of the FFNs in checkpoint order: index 0 runs after attention, index 1 before.
    public var freqFFN: [FFNConfig]
    public var frameFFN: [FFNConfig]
    public var order: String

    /// One SwiGLU conv/deconv feed-forward.
    public struct FFNConfig: Sendable, Equatable {
        public var hidden: Int
        public var kernel: Int
        public var stride: Int
    }
}

/// Everything that defines a TUSS model besides its weights, read from the model file.
public struct TUSSConfig: Sendable, Equatable {
    public var sampleRate: Int
    public var fftSize: Int
    public var hopLength: Int
    public var windowLength: Int
    public var embDim: Int
    /// FFT-bin edges of the band split: `bandEdges[b]..<bandEdges[b+1]`, from 0 to `fftSize/2 + 1`.
    public var bandEdges: [Int]
    public var cross: LocoformerConfig
    public var tse: LocoformerConfig
    public var crossBlocks: Int
    public var tseBlocks: Int
    /// Official prompt names in checkpoint order.
    public var prompts: [String]
    public var useSOSToken: Bool
    public var varianceNormalization: Bool
    /// Segment length (seconds) the model was trained on; long inputs are chunked around it.
    public var segmentSeconds: Double
    public var eps: Float = 1e-5

    public var bins: Int { fftSize / 2 + 1 }
    public var bandCount: Int { bandEdges.count - 1 }

    /// Reads the official `hparams.yaml` schema (also used, as JSON, in our safetensors metadata).
    public init(_ root: ConfigValue) throws(ModelError) {
        func need(_ v: ConfigValue?, _ path: String) throws(ModelError) -> ConfigValue {
            guard let v else { throw .badConfig("missing '\(path)'") }
            return v
        }
        func int(_ v: ConfigValue?, _ path: String) throws(ModelError) -> Int {
            guard let i = try need(v, path).intValue else { throw .badConfig("'\(path)' is not an integer") }
            return i
        }
        if let name = root["model_name"]?.stringValue, name != "tuss" {
            throw .badConfig("model_name is '\(name)', expected 'tuss'")
        }
        let model = try need(root["model_conf"], "model_conf")
        let encoder = try need(root["encoder_conf"], "encoder_conf")
        sampleRate = try int(model["sample_rate"], "model_conf.sample_rate")
        fftSize = try int(encoder["fft_size"], "encoder_conf.fft_size")
        hopLength = try int(encoder["hop_length"], "encoder_conf.hop_length")
        windowLength = encoder["window_length"]?.intValue ?? fftSize
        if let stft = model["stft_size"]?.intValue, stft != fftSize {
            throw .badConfig("model_conf.stft_size \(stft) differs from encoder_conf.fft_size \(fftSize)")
        }
        if let window = encoder["window_type"]?.stringValue, window != "sqrt_hann" {
            throw .badConfig("window_type '\(window)' is not supported (only sqrt_hann)")
        }
        guard windowLength == fftSize else { throw .badConfig("window_length must equal fft_size") }
        guard fftSize > 0, hopLength > 0, fftSize % 2 == 0, hopLength <= fftSize else {
            throw .badConfig("fft_size \(fftSize) / hop_length \(hopLength) are not usable")
        }
        crossBlocks = try int(model["nblocks_cross_prompt_module"], "model_conf.nblocks_cross_prompt_module")
        tseBlocks = try int(model["nblocks_cond_tse_module"], "model_conf.nblocks_cond_tse_module")
        cross = try Self.locoformer(need(model["conf_cross_prompt_module"], "conf_cross_prompt_module"), "conf_cross_prompt_module")
        tse = try Self.locoformer(need(model["conf_cond_tse_module"], "conf_cond_tse_module"), "conf_cond_tse_module")
        embDim = cross.embDim
        guard tse.embDim == embDim else { throw .badConfig("emb_dim differs between the two modules") }
        guard let list = model["prompts"]?.arrayValue, !list.isEmpty else { throw .badConfig("missing model_conf.prompts") }
        prompts = try list.map { (v: ConfigValue) throws(ModelError) -> String in
            guard let s = v.stringValue else { throw .badConfig("model_conf.prompts holds a non-string") }
            return s
        }
        useSOSToken = model["use_sos_token"]?.boolValue ?? true
        varianceNormalization = root["variance_normalization"]?.boolValue ?? true
        segmentSeconds = root["css_conf"]?["segment_size"]?.doubleValue ?? 6
        if let edges = model["band_edges"]?.arrayValue {
            bandEdges = try edges.map { (v: ConfigValue) throws(ModelError) -> Int in
                guard let i = v.intValue else { throw .badConfig("band_edges holds a non-integer") }
                return i
            }
        } else {
            bandEdges = try Self.officialBandEdges(sampleRate: sampleRate, bins: fftSize / 2 + 1)
        }
        guard bandEdges.first == 0, bandEdges.last == bins, zip(bandEdges, bandEdges.dropFirst()).allSatisfy({ $0 < $1 }) else {
            throw .badConfig("band_edges must rise strictly from 0 to \(bins)")
        }
    }

    static func locoformer(_ v: ConfigValue, _ path: String) throws(ModelError) -> LocoformerConfig {
        func int(_ key: String) throws(ModelError) -> Int {
            guard let i = v[key]?.intValue else { throw .badConfig("missing integer '\(path).\(key)'") }
            return i
        }
        func ffn(_ key: String) throws(ModelError) -> [LocoformerConfig.FFNConfig] {
            guard let list = v[key]?.arrayValue, list.count == 2 else {
                throw .badConfig("'\(path).\(key)' must list two feed-forward configs")
            }
            // The official module lists are built from the reversed config list: checkpoint index 0 is the last entry.
            return try list.reversed().map { (item: ConfigValue) throws(ModelError) -> LocoformerConfig.FFNConfig in
                let conf = item["conf"] ?? item
                guard let hidden = conf["dim_inner"]?.intValue, let kernel = conf["conv1d_kernel"]?.intValue else {
                    throw .badConfig("'\(path).\(key)' entries need dim_inner and conv1d_kernel")
                }
                let stride = conf["conv1d_shift"]?.intValue ?? 1
                guard stride == 1 else { throw .unsupported("conv1d_shift \(stride) in \(path) (only 1)") }
                guard kernel >= 1 else { throw .badConfig("conv1d_kernel must be ≥ 1") }
                return .init(hidden: hidden, kernel: kernel, stride: stride)
            }
        }
        let config = LocoformerConfig(
            embDim: try int("emb_dim"), attentionDim: try int("attention_dim"), heads: try int("n_heads"),
            groups: v["num_groups"]?.intValue ?? 4, freqFFN: try ffn("freq_ffn_config"), frameFFN: try ffn("frame_ffn_config"),
            order: v["tf_order"]?.stringValue ?? "ft")
        guard config.order == "ft" || config.order == "tf" else { throw .badConfig("tf_order '\(config.order)'") }
        guard config.heads > 0, config.attentionDim % config.heads == 0, (config.attentionDim / config.heads) % 2 == 0 else {
            throw .badConfig("\(path): attention_dim \(config.attentionDim) must split into \(config.heads) heads of even size")
        }
        guard config.groups > 0, config.embDim % config.groups == 0 else {
            throw .badConfig("\(path): emb_dim \(config.embDim) not divisible by num_groups \(config.groups)")
        }
        return config
    }

    /// The official band rule (as BS-RoFormer): fixed bins-per-band over frequency ranges, the rest split evenly.
    static func officialBandEdges(sampleRate: Int, bins: Int) throws(ModelError) -> [Int] {
        let perBin = Double(sampleRate / 2) / Double(bins)
        let ranges: [(Double, Double, Int)] = [(0, 1000, 2), (1000, 2000, 4), (2000, 4000, 12), (4000, 8000, 24), (8000, 16000, 48)]
        var widths: [Int] = []
        for (lo, hi, n) in ranges {
            let count = Int(((hi - lo) / (Double(n) * perBin)).rounded(.up))
            widths += Array(repeating: n, count: count)
        }
        let rest = bins - widths.reduce(0, +)
        guard rest > 0 else {
            throw .badConfig("the official band rule does not fit \(sampleRate) Hz / \(bins) bins; give model_conf.band_edges")
        }
        if sampleRate == 48000 {
            widths += [rest / 4, rest / 4, rest / 4, rest / 4 + rest % 4]
        } else {
            widths += [rest / 2, rest - rest / 2]
        }
        var edges = [0]
        for w in widths where w > 0 { edges.append(edges[edges.count - 1] + w) }
        return edges
    }
}
