import Foundation

/// An error from reading, writing, resampling, transforming or encoding audio.
///
/// Every case renders as one line that says what went wrong and what to do about it.
public enum AudioError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The input file does not exist.
    case fileNotFound(path: String)
    /// The file exists but could not be decoded; `reason` is the library's own message.
    case unreadable(path: String, reason: String)
    /// The file reports no audio channels.
    case noChannels(path: String)
    /// The output could not be created, written or moved into place.
    case cannotWrite(path: String, reason: String)
    /// The requested output format cannot be produced (unknown extension, incompatible encoding).
    case unsupportedFormat(String)
    /// An argument is outside what the operation accepts (rates, channel counts, shapes).
    case invalidArgument(String)
    /// The resampling library reported a failure.
    case resampler(String)
    /// The Opus codec or the Ogg container reported a failure.
    case codec(String)

    public var description: String {
        switch self {
        case .fileNotFound(let path):
            return "audio file not found: \(path) (check the path and that the file exists)"
        case .unreadable(let path, let reason):
            return "cannot read audio file \(path): \(reason) (use WAV, FLAC, Ogg Vorbis/Opus, MP3 or AIFF)"
        case .noChannels(let path):
            return "audio file \(path) has no channels (the file is damaged or not audio; re-export it)"
        case .cannotWrite(let path, let reason):
            return "cannot write audio file \(path): \(reason) (check the directory exists and is writable)"
        case .unsupportedFormat(let message):
            return "unsupported output format: \(message)"
        case .invalidArgument(let message):
            return "invalid audio argument: \(message)"
        case .resampler(let message):
            return "resampler failed: \(message) (check the sample rates and channel count)"
        case .codec(let message):
            return "Opus/Ogg codec failed: \(message)"
        }
    }
}

/// Collapses a C library message to one trimmed line.
func oneLine(_ message: String) -> String {
    let parts = message.split(whereSeparator: { $0 == "\n" || $0 == "\r" })
    let joined = parts.map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }.joined(separator: " ")
    return joined.isEmpty ? "unknown error" : joined
}
