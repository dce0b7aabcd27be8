import Foundation
import TussAudio
import TussModels

/// One clean source coded at one bitrate by one codec, and how close the decoded audio is.
public struct CodecQualityScore: Codable, Sendable {
    /// `neural` (the DAC codec) or `opus`.
    public var codec: String
    /// The bitrate asked for, kbps.
    public var target_kbps: Double
    /// The payload bitrate actually spent: codebooks × bits × frame rate (neural), or Ogg file size over duration
    /// (Opus, container overhead included).
    public var actual_kbps: Double
    /// The source's category (its prompt name without a repeat suffix).
    public var category: String
    /// The reference file, relative to the manifest.
    public var file: String
    public var si_sdr: Double?
    public var mel_distance: Double?
}

/// Codes every clean reference of a manifest with the neural codec and with Opus at the same bitrates.
///
/// This is the codec half of the quality report: the same held-out sources the separation scores use, so codec and
/// separation figures describe one data set.
public enum CodecEvaluation {
    /// Scores the neural codec (when given) and Opus (when `opus`) at every bitrate on each unique reference file.
    ///
    /// Audio is mono-mixed per channel as stored: each channel is coded on its own and the scores are averaged.
    public static func run(manifest path: String, codec: CodecHandle?, bitrates: [Double], opus: Bool,
                           tasks: Set<String>?, progress: ((Int, Int) -> Void)? = nil) throws(PipelineError) -> [CodecQualityScore] {
        guard !bitrates.isEmpty, bitrates.allSatisfy({ $0 > 0 }) else { throw .badInput("give at least one positive bitrate (kbps)") }
        guard codec != nil || opus else { throw .badInput("nothing to evaluate: give a codec or enable Opus") }
        let items = try Evaluation.loadManifest(path).filter { tasks?.contains($0.task) ?? true }
        var files: [(file: String, category: String)] = []
        var seen = Set<String>()
        for item in items {
            for (prompt, reference) in zip(item.prompts, item.references) where seen.insert(reference).inserted {
                let category = (try? Prompt(parsing: prompt).name) ?? prompt
                files.append((reference, category))
            }
        }
        guard !files.isEmpty else { throw .badInput("\(path): no reference files to code") }
        let base = (path as NSString).deletingLastPathComponent
        func resolve(_ p: String) -> String { p.hasPrefix("/") ? p : (base as NSString).appendingPathComponent(p) }
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("tuss-codec-eval-\(getpid())")
        try? FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        var scores: [CodecQualityScore] = []
        for (n, entry) in files.enumerated() {
            do {
                let (audio, rate) = try Evaluation.readAudio(resolve(entry.file), rate: nil)
                for kbps in bitrates {
                    if let codec {
                        let codebooks = codec.codebooks(forBitrate: kbps)
                        var decoded: [[Float]] = []
                        for channel in audio {
                            let atCodecRate = try Resampler.resample([channel], from: rate, to: codec.codec.config.sampleRate)[0]
                            let codes = codec.codec.encode(atCodecRate, codebooks: codebooks)
                            var y = codec.codec.decode(codes)
                            y = fitLength(y, atCodecRate.count)
                            decoded.append(fitLength(try Resampler.resample([y], from: codec.codec.config.sampleRate, to: rate)[0], channel.count))
                        }
                        let actual = codec.codec.config.bitrate(codebooks: codebooks) / 1000 * Double(audio.count)
                        scores.append(score("neural", kbps, actual, entry, audio, decoded, rate))
                    }
                    if opus {
                        let file = scratch.appendingPathComponent("\(n)-\(kbps).opus").path
                        try OggOpus.encode(audio, sampleRate: rate, bitrate: Int(kbps * 1000), to: file)
                        let size = (try FileManager.default.attributesOfItem(atPath: file)[.size] as? NSNumber)?.doubleValue ?? 0
                        let (decodedOpus, opusRate) = try OggOpus.decode(path: file)
                        var decoded = decodedOpus
                        if opusRate != rate { decoded = try Resampler.resample(decoded, from: opusRate, to: rate) }
                        decoded = decoded.enumerated().map { fitLength($0.element, audio[min($0.offset, audio.count - 1)].count) }
                        let seconds = Double(audio[0].count) / Double(rate)
                        scores.append(score("opus", kbps, size * 8 / seconds / 1000, entry, audio, decoded, rate))
                        try? FileManager.default.removeItem(atPath: file)
                    }
                }
            } catch {
                throw pipelineError(error, context: entry.file)
            }
            progress?(n + 1, files.count)
        }
        return scores
    }

    private static func score(_ codec: String, _ kbps: Double, _ actual: Double, _ entry: (file: String, category: String),
                              _ reference: [[Float]], _ decoded: [[Float]], _ rate: Int) -> CodecQualityScore {
        var sdr: [Double] = [], mel: [Double] = []
        for c in 0..<reference.count {
            let estimate = decoded[min(c, decoded.count - 1)]
            if let v = SeparationMetrics.siSDR(estimate: estimate, reference: reference[c]) { sdr.append(v) }
            if let v = MelDistance.distance(estimate: estimate, reference: reference[c], sampleRate: rate) { mel.append(v) }
        }
        func mean(_ v: [Double]) -> Double? { v.isEmpty ? nil : v.reduce(0, +) / Double(v.count) }
        return CodecQualityScore(codec: codec, target_kbps: kbps, actual_kbps: actual, category: entry.category,
                                 file: entry.file, si_sdr: mean(sdr), mel_distance: mean(mel))
    }

    /// A table per codec, bitrate and category: count, mean actual kbps, mean SI-SDR and mean mel distance.
    public static func table(_ scores: [CodecQualityScore]) -> String {
        func mean(_ v: [Double]) -> String { v.isEmpty ? "n/a" : String(format: "%.2f", v.reduce(0, +) / Double(v.count)) }
        func pad(_ s: String, _ n: Int) -> String { String(repeating: " ", count: max(0, n - s.count)) + s }
        var lines = ["codec   kbps   category       n   actual kbps    SI-SDR   mel dist"]
        var keys: [String] = []
        for s in scores where !keys.contains("\(s.codec)|\(s.target_kbps)") { keys.append("\(s.codec)|\(s.target_kbps)") }
        for key in keys {
            let group = scores.filter { "\($0.codec)|\($0.target_kbps)" == key }
            guard let first = group.first else { continue }
            var categories: [String] = []
            for s in group where !categories.contains(s.category) { categories.append(s.category) }
            for category in categories.sorted() + ["all"] {
                let rows = category == "all" ? group : group.filter { $0.category == category }
                lines.append(first.codec.padding(toLength: 7, withPad: " ", startingAt: 0) + pad(String(format: "%.1f", first.target_kbps), 5)
                             + "   " + category.padding(toLength: 10, withPad: " ", startingAt: 0) + pad("\(rows.count)", 6)
                             + pad(mean(rows.map(\.actual_kbps)), 14) + pad(mean(rows.compactMap(\.si_sdr)), 10)
                             + pad(mean(rows.compactMap(\.mel_distance)), 11))
            }
        }
        return lines.joined(separator: "\n")
    }
}
