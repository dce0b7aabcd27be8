import Foundation
import TussAudio

/// What `tuss-codec info` says about an audio file: format, rate, channels, length and levels.
///
/// The levels come from one block-wise pass over the file, so hour-long inputs are described in constant memory;
/// the peak tells a user before separating whether the input is already at full scale (outputs of a separation can
/// then clip).
public struct AudioDescription: Sendable {
    public var path: String
    public var format: String
    public var sampleRate: Int
    public var channels: Int
    public var frames: Int64
    /// Per channel, in dBFS (−∞ for silence).
    public var peakDBFS: [Double]
    public var rmsDBFS: [Double]

    /// Reads `path` once.
    /// - Throws: `PipelineError.notFound` or `.badInput` when the file is not audio libsndfile reads.
    public init(path: String) throws(PipelineError) {
        do {
            let reader = try AudioFileReader(path: path)
            let info = reader.info
            self.path = path
            format = info.format.name
            sampleRate = info.sampleRate
            channels = info.channels
            var peak = [Float](repeating: 0, count: info.channels)
            var energy = [Double](repeating: 0, count: info.channels)
            var count: Int64 = 0
            while true {
                let block = try reader.read(frames: 65536)
                guard let first = block.first, !first.isEmpty else { break }
                for c in block.indices {
                    block[c].withUnsafeBufferPointer { x in
                        var p = peak[c], e = 0.0
                        for v in x { p = max(p, abs(v)); e += Double(v) * Double(v) }
                        peak[c] = p
                        energy[c] += e
                    }
                }
                count += Int64(first.count)
            }
            frames = count
            let dB = { (x: Double) -> Double in x > 0 ? 20 * log10(x) : -.infinity }
            peakDBFS = peak.map { dB(Double($0)) }
            rmsDBFS = energy.map { dB(count > 0 ? ($0 / Double(count)).squareRoot() : 0) }
        } catch {
            throw pipelineError(error)
        }
    }

    public var seconds: Double { sampleRate > 0 ? Double(frames) / Double(sampleRate) : 0 }

    /// Lines for a terminal.
    public var text: String {
        func levels(_ v: [Double]) -> String {
            v.map { $0.isFinite ? String(format: "%.1f", $0) : "-inf" }.joined(separator: ", ")
        }
        return [
            "file: \(path)",
            "kind: audio (\(format))",
            "sample rate: \(sampleRate) Hz",
            "channels: \(channels)",
            String(format: "length: %lld samples per channel (%.3f s)", frames, seconds),
            "peak dBFS: \(levels(peakDBFS))",
            "RMS dBFS: \(levels(rmsDBFS))",
        ].joined(separator: "\n")
    }

    /// One JSON object (silence's −∞ levels as null).
    public var json: String {
        let finite = { (v: [Double]) -> [Any] in v.map { $0.isFinite ? (($0 * 100).rounded() / 100) as Any : NSNull() } }
        let object: [String: Any] = [
            "path": path, "kind": "audio", "format": format, "sample_rate": sampleRate, "channels": channels,
            "frames": frames, "seconds": seconds, "peak_dbfs": finite(peakDBFS), "rms_dbfs": finite(rmsDBFS),
        ]
        guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }
}
