import TussWeights

/// The DAC hyper-parameters, as the official weight file's `metadata.kwargs` holds them.
public struct DACConfig: Sendable, Equatable {
    public var encoderDim: Int
    public var encoderRates: [Int]
    public var latentDim: Int
    public var decoderDim: Int
    public var decoderRates: [Int]
    public var codebooks: Int
    public var codebookSize: Int
    public var codebookDim: Int
    public var sampleRate: Int

    /// Samples per latent frame (the product of the encoder strides).
    public var hopLength: Int { encoderRates.reduce(1, *) }

    /// Latent frames per second.
    public var frameRate: Double { Double(sampleRate) / Double(hopLength) }

    /// Bits per frame per codebook (10 for 1024 entries).
    public var bitsPerCode: Int {
        var bits = 0
        while (1 << bits) < codebookSize { bits += 1 }
        return bits
    }

    /// The bitrate in bits per second when `codebooks` codebooks are used.
    public func bitrate(codebooks n: Int) -> Double { Double(n * bitsPerCode) * frameRate }

    /// Creates a configuration from its parts.
    public init(encoderDim: Int, encoderRates: [Int], latentDim: Int?, decoderDim: Int, decoderRates: [Int],
                codebooks: Int, codebookSize: Int, codebookDim: Int, sampleRate: Int) {
        self.encoderDim = encoderDim
        self.encoderRates = encoderRates
        self.latentDim = latentDim ?? encoderDim * (1 << encoderRates.count)
        self.decoderDim = decoderDim
        self.decoderRates = decoderRates
        self.codebooks = codebooks
        self.codebookSize = codebookSize
        self.codebookDim = codebookDim
        self.sampleRate = sampleRate
    }

    /// Reads `metadata.kwargs` (official key names; absent keys take the official defaults of `DAC.__init__`).
    public init(kwargs v: ConfigValue) throws(ModelError) {
        func ints(_ key: String, _ fallback: [Int]) throws(ModelError) -> [Int] {
            guard let list = v[key]?.arrayValue else { return fallback }
            var out: [Int] = []
            for item in list {
                guard let i = item.intValue, i > 0 else { throw .badConfig("'\(key)' must list positive integers") }
                out.append(i)
            }
            return out
        }
        func int(_ key: String, _ fallback: Int) throws(ModelError) -> Int {
            guard let value = v[key], value != .null else { return fallback }
            guard let i = value.intValue, i > 0 else { throw .badConfig("'\(key)' must be a positive integer") }
            return i
        }
        let latent: Int?
        if let value = v["latent_dim"], value != .null {
            guard let i = value.intValue, i > 0 else { throw .badConfig("'latent_dim' must be a positive integer") }
            latent = i
        } else {
            latent = nil
        }
        self.init(encoderDim: try int("encoder_dim", 64), encoderRates: try ints("encoder_rates", [2, 4, 8, 8]),
                  latentDim: latent, decoderDim: try int("decoder_dim", 1536), decoderRates: try ints("decoder_rates", [8, 8, 4, 2]),
                  codebooks: try int("n_codebooks", 9), codebookSize: try int("codebook_size", 1024),
                  codebookDim: try int("codebook_dim", 8), sampleRate: try int("sample_rate", 44100))
        guard decoderDim % (1 << decoderRates.count) == 0 else { throw .badConfig("decoder_dim not divisible by 2^blocks") }
        guard codebookSize <= 65536 else { throw .badConfig("codebook_size \(codebookSize) exceeds 65536") }
    }

    /// The kwargs dictionary (official names), for writing into our model files.
    public var kwargs: ConfigValue {
        .object([
            "encoder_dim": .int(encoderDim), "encoder_rates": .array(encoderRates.map { .int($0) }),
            "latent_dim": .int(latentDim), "decoder_dim": .int(decoderDim),
            "decoder_rates": .array(decoderRates.map { .int($0) }), "n_codebooks": .int(codebooks),
            "codebook_size": .int(codebookSize), "codebook_dim": .int(codebookDim), "sample_rate": .int(sampleRate),
            "quantizer_dropout": .bool(false),
        ])
    }
}
