import Foundation
import TussTensor

/// Multi-scale log-mel distance between two signals: the codec literature's "mel distance".
///
/// The definition is the one our codec recipe trains on (`Training/codec/train_codec.py`, `SpectralLosses.mel`), so
/// evaluation figures and training-log figures are the same quantity: for each (window, mel bands) pair in
/// `scales`, magnitudes of a `torch.stft(center=True, pad_mode="reflect")` with a periodic Hann window and hop
/// window/4, projected on triangular HTK-mel filters (0 Hz to Nyquist, area-normalised), then
/// mean |log10 max(mel(estimate), 1e-5) − log10 max(mel(reference), 1e-5)|, summed over the scales.
public enum MelDistance {
    /// The seven (window, mel bands) pairs of the DAC-style loss: windows 32…2048, 5…320 bands.
    public static let defaultScales: [(window: Int, mels: Int)] = [
        (32, 5), (64, 10), (128, 20), (256, 40), (512, 80), (1024, 160), (2048, 320),
    ]

    /// Returns the summed multi-scale log-mel L1 distance, or nil when the signals are too short for the largest
    /// window's reflect padding (fewer than window/2 + 1 samples) or differ in length.
    public static func distance(estimate: [Float], reference: [Float], sampleRate: Int,
                                scales: [(window: Int, mels: Int)] = defaultScales) -> Double? {
        guard estimate.count == reference.count, !scales.isEmpty else { return nil }
        var total = 0.0
        for scale in scales {
            guard estimate.count > scale.window / 2,
                let filters = try? MelFilterbank(sampleRate: sampleRate, fftSize: scale.window, bands: scale.mels),
                let spectra = try? LogMelSpectra(window: scale.window, filters: filters)
            else { return nil }
            let a = spectra.logMel(estimate)
            let b = spectra.logMel(reference)
            var sum = 0.0
            for i in 0..<a.count { sum += Double(abs(a[i] - b[i])) }
            total += sum / Double(max(a.count, 1))
        }
        return total
    }
}

/// Triangular filters on the HTK mel scale with area normalisation, `bands × (fftSize/2 + 1)` row-major.
struct MelFilterbank {
    let bands: Int
    let bins: Int
    let weights: [Float]

    init(sampleRate: Int, fftSize: Int, bands: Int) throws(AudioError) {
        guard sampleRate > 0, fftSize >= 2, bands >= 1 else {
            throw AudioError.invalidArgument("mel filterbank needs a positive rate, fftSize ≥ 2 and ≥ 1 band")
        }
        func hzToMel(_ f: Double) -> Double { 2595 * log10(1 + f / 700) }
        func melToHz(_ m: Double) -> Double { 700 * (pow(10, m / 2595) - 1) }
        let bins = fftSize / 2 + 1
        let nyquist = Double(sampleRate) / 2
        let top = hzToMel(nyquist)
        let edges = (0..<(bands + 2)).map { melToHz(top * Double($0) / Double(bands + 1)) }
        var weights = [Float](repeating: 0, count: bands * bins)
        for m in 0..<bands {
            let lo = edges[m], centre = edges[m + 1], hi = edges[m + 2]
            let area = 2 / max(hi - lo, 1e-9)
            for k in 0..<bins {
                let f = nyquist * Double(k) / Double(bins - 1)
                let up = (f - lo) / max(centre - lo, 1e-9)
                let down = (hi - f) / max(hi - centre, 1e-9)
                weights[m * bins + k] = Float(max(0, min(up, down)) * area)
            }
        }
        self.bands = bands
        self.bins = bins
        self.weights = weights
    }
}

/// Log10 mel spectra of one analysis size (reflect-padded, periodic Hann, hop window/4).
struct LogMelSpectra {
    let window: Int
    let filters: MelFilterbank
    private let fft: RealFFT
    private let hann: [Float]

    init(window: Int, filters: MelFilterbank) throws(AudioError) {
        self.window = window
        self.filters = filters
        self.fft = try RealFFT(size: window)
        self.hann = (0..<window).map { Float(0.5 - 0.5 * cos(2 * Double.pi * Double($0) / Double(window))) }
    }

    /// Returns `frames × bands` log10 mel magnitudes of `signal` (which must be longer than window/2).
    func logMel(_ signal: [Float]) -> [Float] {
        let hop = max(1, window / 4)
        let half = window / 2
        let length = signal.count
        let frames = 1 + length / hop
        let bins = filters.bins
        let bands = filters.bands
        let buffers = FFTBuffers(size: window)
        var magnitudes = [Float](repeating: 0, count: frames * bins)
        signal.withUnsafeBufferPointer { x in
            magnitudes.withUnsafeMutableBufferPointer { mag in
                for t in 0..<frames {
                    for k in 0..<window {
                        // Reflect padding (no edge repeat), as torch.stft(center=True) does.
                        var i = t * hop + k - half
                        if i < 0 { i = -i }
                        if i >= length { i = 2 * (length - 1) - i }
                        buffers.real[k] = x[min(max(i, 0), length - 1)] * hann[k]
                    }
                    fft.forward(buffers)
                    let packed = buffers.complexFloats
                    for f in 0..<bins {
                        let re = packed[2 * f], im = packed[2 * f + 1]
                        mag[t * bins + f] = (re * re + im * im).squareRoot()
                    }
                }
            }
        }
        // mel = magnitudes (frames × bins) · filtersᵀ (bins × bands)
        var out = [Float](repeating: 0, count: frames * bands)
        magnitudes.withUnsafeBufferPointer { a in
            filters.weights.withUnsafeBufferPointer { w in
                out.withUnsafeMutableBufferPointer { c in
                    guard let ap = a.baseAddress, let wp = w.baseAddress, let cp = c.baseAddress else { return }
                    BLAS.gemm(transB: true, m: frames, n: bands, k: bins, a: ap, lda: bins, b: wp, ldb: bins,
                              c: cp, ldc: bands)
                }
            }
        }
        for i in 0..<out.count { out[i] = log10(max(out[i], 1e-5)) }
        return out
    }
}
