import CSndFile

/// The shape of an audio file's data: its container and how each sample is encoded.
///
/// A thin value wrapper over libsndfile's `SF_FORMAT_*` major (container) and minor (encoding) codes, so any format
/// libsndfile reads can be represented, and the common ones have names.
public struct AudioFileFormat: Sendable, Equatable, Hashable {
    /// A file container (libsndfile major format).
    public struct Container: Sendable, Equatable, Hashable {
        /// The libsndfile `SF_FORMAT_*` major code (e.g. `0x010000` for WAV).
        public let rawValue: Int32
        /// Wraps a libsndfile major format code.
        public init(rawValue: Int32) { self.rawValue = rawValue & Int32(SF_FORMAT_TYPEMASK) }

        public static let wav = Container(rawValue: Int32(SF_FORMAT_WAV))
        public static let aiff = Container(rawValue: Int32(SF_FORMAT_AIFF))
        public static let flac = Container(rawValue: Int32(SF_FORMAT_FLAC))
        /// Ogg; the encoding says Vorbis or Opus.
        public static let ogg = Container(rawValue: Int32(SF_FORMAT_OGG))
        /// A raw MPEG audio stream (MP3 with `Encoding.mpegLayer3`).
        public static let mpeg = Container(rawValue: Int32(SF_FORMAT_MPEG))
        public static let caf = Container(rawValue: Int32(SF_FORMAT_CAF))
        public static let w64 = Container(rawValue: Int32(SF_FORMAT_W64))
        public static let rf64 = Container(rawValue: Int32(SF_FORMAT_RF64))
        public static let au = Container(rawValue: Int32(SF_FORMAT_AU))
        public static let wavex = Container(rawValue: Int32(SF_FORMAT_WAVEX))

        var name: String {
            switch self {
            case .wav: return "WAV"
            case .aiff: return "AIFF"
            case .flac: return "FLAC"
            case .ogg: return "Ogg"
            case .mpeg: return "MPEG"
            case .caf: return "CAF"
            case .w64: return "W64"
            case .rf64: return "RF64"
            case .au: return "AU"
            case .wavex: return "WAVEX"
            default: return "container 0x" + String(rawValue, radix: 16)
            }
        }
    }

    /// A sample encoding (libsndfile minor format).
    public struct Encoding: Sendable, Equatable, Hashable {
        /// The libsndfile `SF_FORMAT_*` minor code (e.g. `0x0002` for 16-bit PCM).
        public let rawValue: Int32
        /// Wraps a libsndfile minor format code.
        public init(rawValue: Int32) { self.rawValue = rawValue & Int32(SF_FORMAT_SUBMASK) }

        public static let pcmS8 = Encoding(rawValue: Int32(SF_FORMAT_PCM_S8))
        public static let pcmU8 = Encoding(rawValue: Int32(SF_FORMAT_PCM_U8))
        public static let pcm16 = Encoding(rawValue: Int32(SF_FORMAT_PCM_16))
        public static let pcm24 = Encoding(rawValue: Int32(SF_FORMAT_PCM_24))
        public static let pcm32 = Encoding(rawValue: Int32(SF_FORMAT_PCM_32))
        public static let float32 = Encoding(rawValue: Int32(SF_FORMAT_FLOAT))
        public static let double = Encoding(rawValue: Int32(SF_FORMAT_DOUBLE))
        public static let ulaw = Encoding(rawValue: Int32(SF_FORMAT_ULAW))
        public static let alaw = Encoding(rawValue: Int32(SF_FORMAT_ALAW))
        public static let vorbis = Encoding(rawValue: Int32(SF_FORMAT_VORBIS))
        public static let opus = Encoding(rawValue: Int32(SF_FORMAT_OPUS))
        public static let mpegLayer1 = Encoding(rawValue: Int32(SF_FORMAT_MPEG_LAYER_I))
        public static let mpegLayer2 = Encoding(rawValue: Int32(SF_FORMAT_MPEG_LAYER_II))
        public static let mpegLayer3 = Encoding(rawValue: Int32(SF_FORMAT_MPEG_LAYER_III))

        /// True for encodings that store integers, where floats beyond ±1 are clipped on writing.
        public var isIntegerPCM: Bool {
            self == .pcmS8 || self == .pcmU8 || self == .pcm16 || self == .pcm24 || self == .pcm32
                || self == .ulaw || self == .alaw
        }

        /// True for perceptual codecs (Vorbis, Opus, MPEG): lengths and samples are approximate.
        public var isLossy: Bool {
            self == .vorbis || self == .opus || self == .mpegLayer1 || self == .mpegLayer2 || self == .mpegLayer3
        }

        var name: String {
            switch self {
            case .pcmS8: return "8-bit PCM"
            case .pcmU8: return "8-bit unsigned PCM"
            case .pcm16: return "16-bit PCM"
            case .pcm24: return "24-bit PCM"
            case .pcm32: return "32-bit PCM"
            case .float32: return "32-bit float"
            case .double: return "64-bit float"
            case .ulaw: return "u-law"
            case .alaw: return "A-law"
            case .vorbis: return "Vorbis"
            case .opus: return "Opus"
            case .mpegLayer1: return "Layer I"
            case .mpegLayer2: return "Layer II"
            case .mpegLayer3: return "Layer III"
            default: return "encoding 0x" + String(rawValue, radix: 16)
            }
        }
    }

    /// The container.
    public var container: Container
    /// The sample encoding.
    public var encoding: Encoding

    /// Combines a container and an encoding.
    public init(container: Container, encoding: Encoding) {
        self.container = container
        self.encoding = encoding
    }

    /// Splits a libsndfile `SF_INFO.format` value.
    public init(sndfileFormat: Int32) {
        self.init(container: Container(rawValue: sndfileFormat), encoding: Encoding(rawValue: sndfileFormat))
    }

    /// The combined libsndfile `SF_INFO.format` value.
    public var sndfileFormat: Int32 { container.rawValue | encoding.rawValue }

    /// A human-readable name, e.g. "WAV 16-bit PCM", "Ogg Opus", "MP3".
    public var name: String {
        if container == .mpeg && encoding == .mpegLayer3 { return "MP3" }
        return container.name + " " + encoding.name
    }

    /// Whether libsndfile can write this format (at the given rate and channel count).
    public func isWritable(sampleRate: Int = 48000, channels: Int = 1) -> Bool {
        guard let rate = Int32(exactly: sampleRate), let ch = Int32(exactly: channels) else { return false }
        var info = SF_INFO()
        info.samplerate = rate
        info.channels = ch
        info.format = sndfileFormat
        return sf_format_check(&info) != 0
    }

    /// Chooses the format for an output file from its extension.
    ///
    /// The container follows the extension (`.wav`, `.flac`, `.ogg`/`.oga` (Vorbis), `.opus`, `.mp3`, `.aif`/`.aiff`,
    /// `.caf`, `.w64`, `.rf64`, `.au`). The encoding is the input's (`like`) when the container can hold it; otherwise
    /// the container's default (16-bit PCM, or 24-bit for FLAC fed from float/32-bit input; the codec for lossy
    /// containers). `float32` forces 32-bit float and fails for containers that cannot store float (FLAC, Ogg, MP3).
    public static func forWriting(path: String, like: AudioFileFormat?, float32: Bool) throws -> AudioFileFormat {
        let ext = fileExtension(path)
        let container: Container
        var fixedEncoding: Encoding?
        switch ext {
        case "wav", "wave": container = .wav
        case "aif", "aiff", "aifc": container = .aiff
        case "flac": container = .flac
        case "ogg", "oga": container = .ogg; fixedEncoding = .vorbis
        case "opus": container = .ogg; fixedEncoding = .opus
        case "mp3": container = .mpeg; fixedEncoding = .mpegLayer3
        case "caf": container = .caf
        case "w64": container = .w64
        case "rf64": container = .rf64
        case "au", "snd": container = .au
        default:
            let shown = ext.isEmpty ? "no extension" : "extension '.\(ext)'"
            throw AudioError.unsupportedFormat(
                "\(path) has \(shown); name the output .wav, .flac, .ogg, .opus, .mp3 or .aiff")
        }
        if float32 {
            let candidate = AudioFileFormat(container: container, encoding: .float32)
            guard fixedEncoding == nil, candidate.isWritable() else {
                throw AudioError.unsupportedFormat(
                    "\(container == .mpeg ? "MP3" : container.name) (\(path)) cannot hold 32-bit float samples; "
                        + "write .wav, .aiff or .caf for float output, or drop the float option")
            }
            return candidate
        }
        if let fixed = fixedEncoding {
            return AudioFileFormat(container: container, encoding: fixed)
        }
        if let like, !like.encoding.isLossy {
            let same = AudioFileFormat(container: container, encoding: like.encoding)
            if same.isWritable() { return same }
            let wide = like.encoding == .float32 || like.encoding == .double || like.encoding == .pcm32
            if wide {
                let pcm24 = AudioFileFormat(container: container, encoding: .pcm24)
                if pcm24.isWritable() { return pcm24 }
            }
        }
        return AudioFileFormat(container: container, encoding: .pcm16)
    }
}

/// The lowercased extension of a path's last component, without the dot ("" when none).
func fileExtension(_ path: String) -> String {
    let last = path.split(separator: "/", omittingEmptySubsequences: false).last ?? Substring(path)
    guard let dot = last.lastIndex(of: "."), dot != last.startIndex else { return "" }
    return String(last[last.index(after: dot)...]).lowercased()
}
