import Foundation

/// Short-time Fourier transform sizes: FFT length, hop between frames and analysis window length.
public struct STFTConfig: Sendable, Equatable, Hashable {
    /// FFT length n (even); the transform has n/2 + 1 bins.
    public var fftSize: Int
    /// Samples between consecutive frames.
    public var hopLength: Int
    /// Window length (≤ fftSize; a shorter window is centred in the frame and zero elsewhere, as in torch).
    public var windowLength: Int

    public init(fftSize: Int, hopLength: Int, windowLength: Int) {
        self.fftSize = fftSize
        self.hopLength = hopLength
        self.windowLength = windowLength
    }

    /// TUSS at 48 kHz: 2048-point FFT, hop 512, 2048-sample window.
    public static let tuss48k = STFTConfig(fftSize: 2048, hopLength: 512, windowLength: 2048)
}

/// STFT and inverse STFT with TUSS padding and a square-root periodic Hann window, on FFTW.
///
/// Forward: prepend fftSize/2 zeros, append fftSize/2 + ((−L) mod hop) zeros, take frames every `hopLength`
/// samples, window, real FFT, no normalisation: X[t, f] = Σₙ xp[hop·t + n]·w[n]·e^{−j2πfn/N}.
/// Inverse: torch.istft(center=True, normalized=False) — weighted overlap-add divided by Σ w², dropping fftSize/2
/// samples at each end. Immutable after creation; safe to use from many threads at once.
public final class STFT: @unchecked Sendable {
    /// The sizes this transform was built for.
    public let config: STFTConfig
    /// The analysis/synthesis window, zero-padded to fftSize (sqrt of a periodic Hann of `windowLength`).
    public let window: [Float]
    private let fft: RealFFT

    /// Prepares the window and FFTW plans for `config`.
    ///
    /// - Throws: `AudioError.invalidArgument` unless fftSize is even and ≥ 2, 1 ≤ hopLength ≤ fftSize and
    ///   1 ≤ windowLength ≤ fftSize.
    public init(_ config: STFTConfig) throws(AudioError) {
        let n = config.fftSize
        guard n >= 2, n % 2 == 0 else {
            throw AudioError.invalidArgument("STFT fftSize must be even and ≥ 2, got \(n)")
        }
        guard config.hopLength >= 1, config.hopLength <= n else {
            throw AudioError.invalidArgument("STFT hopLength must be in 1...\(n), got \(config.hopLength)")
        }
        guard config.windowLength >= 1, config.windowLength <= n else {
            throw AudioError.invalidArgument("STFT windowLength must be in 1...\(n), got \(config.windowLength)")
        }
        self.config = config
        self.fft = try RealFFT(size: n)
        let length = config.windowLength
        let left = (n - length) / 2
        var window = [Float](repeating: 0, count: n)
        for i in 0..<length {
            let hann = 0.5 - 0.5 * cos(2.0 * Double.pi * Double(i) / Double(length))
            window[left + i] = Float(hann.squareRoot())
        }
        self.window = window
    }

    /// Frequency bins per frame: fftSize/2 + 1.
    public var bins: Int { config.fftSize / 2 + 1 }

    /// Frames for a signal of `L` samples: ceil(L / hop) + 1 (TUSS padding).
    public func frameCount(forLength L: Int) -> Int {
        let hop = config.hopLength
        return (max(0, L) + hop - 1) / hop + 1
    }

    /// Transforms `signal` into frame-major spectra.
    ///
    /// - Returns: real and imaginary parts as flat [frames][bins] arrays (`re[t * bins + f]`) and the frame count.
    public func forward(_ signal: [Float]) -> (re: [Float], im: [Float], frames: Int) {
        let n = config.fftSize
        let hop = config.hopLength
        let half = n / 2
        let bins = self.bins
        let length = signal.count
        let frames = frameCount(forLength: length)
        let buffers = FFTBuffers(size: n)
        let input = buffers.real
        let packed = buffers.complexFloats
        var re = [Float](repeating: 0, count: frames * bins)
        var im = [Float](repeating: 0, count: frames * bins)
        signal.withUnsafeBufferPointer { x in
            window.withUnsafeBufferPointer { w in
                re.withUnsafeMutableBufferPointer { reOut in
                    im.withUnsafeMutableBufferPointer { imOut in
                        for t in 0..<frames {
                            // Frame t covers signal samples [start, start + n); outside [0, length) is padding.
                            let start = t * hop - half
                            let lo = max(0, -start)
                            let hi = min(n, length - start)
                            if hi <= lo {
                                for k in 0..<n { input[k] = 0 }
                            } else {
                                for k in 0..<lo { input[k] = 0 }
                                for k in lo..<hi { input[k] = x[start + k] * w[k] }
                                for k in hi..<n { input[k] = 0 }
                            }
                            fft.forward(buffers)
                            let row = t * bins
                            for f in 0..<bins {
                                reOut[row + f] = packed[2 * f]
                                imOut[row + f] = packed[2 * f + 1]
                            }
                        }
                    }
                }
            }
        }
        return (re, im, frames)
    }

    /// Rebuilds a signal from frame-major spectra (`re`, `im` of `frames × bins`) by weighted overlap-add.
    ///
    /// Each frame is inverse-transformed (1/N scaled), windowed and overlap-added; the sum is divided by the
    /// overlap-added squared window where that exceeds 1e-11 (else 0), and fftSize/2 samples are dropped at each end.
    /// - Returns: `length` samples; samples past hop·(frames − 1) are zero.
    public func inverse(re: [Float], im: [Float], frames: Int, length: Int) -> [Float] {
        let n = config.fftSize
        let hop = config.hopLength
        let half = n / 2
        let bins = self.bins
        precondition(frames >= 0 && re.count == frames * bins && im.count == frames * bins,
                     "STFT.inverse: re and im must hold frames × \(bins) values")
        precondition(length >= 0, "STFT.inverse: length must be ≥ 0")
        guard frames > 0 else { return [Float](repeating: 0, count: length) }
        let total = n + hop * (frames - 1)
        var sum = [Float](repeating: 0, count: total)
        var envelope = [Float](repeating: 0, count: total)
        let buffers = FFTBuffers(size: n)
        let output = buffers.real
        let packed = buffers.complexFloats
        let scale = 1 / Float(n)
        re.withUnsafeBufferPointer { reIn in
            im.withUnsafeBufferPointer { imIn in
                window.withUnsafeBufferPointer { w in
                    sum.withUnsafeMutableBufferPointer { acc in
                        envelope.withUnsafeMutableBufferPointer { env in
                            for t in 0..<frames {
                                let row = t * bins
                                for f in 0..<bins {
                                    packed[2 * f] = reIn[row + f]
                                    packed[2 * f + 1] = imIn[row + f]
                                }
                                fft.inverse(buffers)
                                let offset = t * hop
                                for k in 0..<n {
                                    acc[offset + k] += output[k] * scale * w[k]
                                    env[offset + k] += w[k] * w[k]
                                }
                            }
                        }
                    }
                }
            }
        }
        let kept = hop * (frames - 1)
        let available = min(length, kept)
        return [Float](unsafeUninitializedCapacity: length) { dst, initialized in
            sum.withUnsafeBufferPointer { acc in
                envelope.withUnsafeBufferPointer { env in
                    for m in 0..<available {
                        let e = env[m + half]
                        dst[m] = e > 1e-11 ? acc[m + half] / e : 0
                    }
                }
            }
            for m in available..<length { dst[m] = 0 }
            initialized = length
        }
    }
}
