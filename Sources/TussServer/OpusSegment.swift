import Foundation
import TussAudio

/// Self-contained Ogg Opus segments: the opus transport sends each chunk of audio as one complete Ogg Opus stream
/// (OpusHead, OpusTags, audio pages, exact length), so every WebSocket message decodes on its own.
public enum OpusSegment {
    /// Encodes `planar` (1 or 2 channels) at `kbps` into one Ogg Opus segment.
    public static func encode(_ planar: [[Float]], sampleRate: Int, kbps: Double) throws(ServerError) -> Data {
        try withScratchDirectory { dir throws(ServerError) in
            let path = (dir as NSString).appendingPathComponent("segment.opus")
            do {
                try OggOpus.encode(planar, sampleRate: sampleRate, bitrate: Int(kbps * 1000), to: path)
                return try Data(contentsOf: URL(fileURLWithPath: path))
            } catch {
                throw .badRequest("cannot encode Opus: \(error)")
            }
        }
    }

    /// Decodes one Ogg Opus segment into planar samples at its original rate.
    public static func decode(_ data: Data) throws(ServerError) -> (planar: [[Float]], sampleRate: Int) {
        try withScratchDirectory { dir throws(ServerError) in
            let path = (dir as NSString).appendingPathComponent("segment.opus")
            do { try data.write(to: URL(fileURLWithPath: path)) } catch { throw .internalError("cannot store an Opus segment: \(error)") }
            do { return try OggOpus.decode(path: path) } catch {
                throw .badRequest("an Opus message is not a complete Ogg Opus segment: \(error)")
            }
        }
    }
}
