import Foundation
import TussAudio

/// Stacked, labelled log-magnitude spectrograms (one panel per signal) as a PNG.
///
/// All panels share one dB scale (the loudest panel's peak down 80 dB), so a quieter stem looks quieter.
public enum SpectrogramPlot {
    /// One panel: a label and a mono signal.
    public struct Panel: Sendable {
        public var label: String
        public var samples: [Float]
        public init(label: String, samples: [Float]) { self.label = label; self.samples = samples }
    }

    /// Renders panels of audio at `sampleRate` into an image `width` pixels wide.
    public static func render(_ panels: [Panel], sampleRate: Int, width: Int = 1000, panelHeight: Int = 180) throws(PipelineError) -> RGBImage {
        guard !panels.isEmpty else { throw .badInput("nothing to plot") }
        let labelHeight = 22, gap = 4
        let stft: STFT
        do { stft = try STFT(STFTConfig(fftSize: 1024, hopLength: 256, windowLength: 1024)) } catch { throw pipelineError(error) }
        // Magnitudes in dB, [panel][column][row], columns averaged over frames, rows over bins (linear frequency).
        var maps: [[Float]] = []
        var peak: Float = -200
        for panel in panels {
            let spec = stft.forward(panel.samples)
            let bins = stft.bins
            var map = [Float](repeating: -200, count: width * panelHeight)
            let frames = max(spec.frames, 1)
            for x in 0..<width {
                let f0 = x * frames / width, f1 = max(f0 + 1, (x + 1) * frames / width)
                for y in 0..<panelHeight {
                    let b0 = y * bins / panelHeight, b1 = max(b0 + 1, (y + 1) * bins / panelHeight)
                    var power: Float = 0
                    var n: Float = 0
                    for f in f0..<min(f1, spec.frames) {
                        for b in b0..<min(b1, bins) {
                            let re = spec.re[f * bins + b], im = spec.im[f * bins + b]
                            power += re * re + im * im
                            n += 1
                        }
                    }
                    let db = 10 * log10(max(power / max(n, 1), 1e-20))
                    map[x * panelHeight + (panelHeight - 1 - y)] = db
                    peak = max(peak, db)
                }
            }
            maps.append(map)
        }
        let floor = peak - 80
        var image = RGBImage(width: width, height: panels.count * (panelHeight + labelHeight + gap), fill: (16, 16, 20))
        for (p, panel) in panels.enumerated() {
            let top = p * (panelHeight + labelHeight + gap)
            let seconds = Double(panel.samples.count) / Double(sampleRate)
            image.draw("\(panel.label)  (\(String(format: "%.1f", seconds)) S, 0-\(sampleRate / 2000) KHZ)", x: 6, y: top + 4)
            for x in 0..<width {
                for y in 0..<panelHeight {
                    let v = (maps[p][x * panelHeight + y] - floor) / 80
                    image[x, top + labelHeight + y] = colour(min(max(v, 0), 1))
                }
            }
        }
        return image
    }

    /// A perceptually ordered dark-blue → magenta → orange → pale-yellow ramp.
    static func colour(_ t: Float) -> (UInt8, UInt8, UInt8) {
        let stops: [(Float, Float, Float)] = [(0, 0, 4), (40, 11, 84), (101, 21, 110), (159, 42, 99), (212, 72, 66), (245, 125, 21), (250, 193, 39), (252, 255, 164)]
        let x = t * Float(stops.count - 1)
        let i = min(Int(x), stops.count - 2)
        let f = x - Float(i)
        let a = stops[i], b = stops[i + 1]
        return (UInt8(a.0 + (b.0 - a.0) * f), UInt8(a.1 + (b.1 - a.1) * f), UInt8(a.2 + (b.2 - a.2) * f))
    }

    /// Plots audio files (first channel of each), labelled with their file names, into `output`.
    public static func plotFiles(_ paths: [String], labels: [String]? = nil, output: String) throws(PipelineError) {
        do {
            var panels: [Panel] = []
            var rate = 0
            for (i, path) in paths.enumerated() {
                let reader = try AudioFileReader(path: path)
                var mono = try reader.readAll().first ?? []
                if rate == 0 { rate = reader.info.sampleRate }
                if reader.info.sampleRate != rate { mono = try Resampler.resample([mono], from: reader.info.sampleRate, to: rate)[0] }
                let label = labels?[i] ?? ((path as NSString).lastPathComponent as NSString).deletingPathExtension
                panels.append(Panel(label: label, samples: mono))
            }
            try render(panels, sampleRate: rate).writePNG(to: output)
        } catch {
            throw pipelineError(error)
        }
    }
}
