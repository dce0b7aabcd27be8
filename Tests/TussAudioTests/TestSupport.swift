import Foundation
import TussTestSupport
import XCTest

/// A sine of `frequency` Hz, amplitude `amplitude`, `count` samples at `rate`.
func sine(frequency: Double, rate: Int, count: Int, amplitude: Double = 0.5, phase: Double = 0) -> [Float] {
    (0..<count).map { Float(amplitude * sin(2 * Double.pi * frequency * Double($0) / Double(rate) + phase)) }
}

/// Multiplies the first and last `fade` samples by a raised-cosine ramp.
func faded(_ x: [Float], fade: Int) -> [Float] {
    var y = x
    let n = min(fade, x.count / 2)
    for i in 0..<n {
        let g = Float(0.5 - 0.5 * cos(Double.pi * Double(i) / Double(n)))
        y[i] *= g
        y[x.count - 1 - i] *= g
    }
    return y
}

/// Uniform noise in [-amplitude, amplitude].
func noise(count: Int, amplitude: Float = 0.5, seed: UInt64) -> [Float] {
    var generator = SeededGenerator(seed: seed)
    return (0..<count).map { _ in Float.random(in: -amplitude...amplitude, using: &generator) }
}

func rms(_ x: ArraySlice<Float>) -> Double {
    guard !x.isEmpty else { return 0 }
    return (x.reduce(0.0) { $0 + Double($1) * Double($1) } / Double(x.count)).squareRoot()
}

func rms(_ x: [Float]) -> Double { rms(x[...]) }

func maxAbsDifference(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count, "length mismatch \(a.count) vs \(b.count)")
    var worst: Float = 0
    for i in a.indices { worst = max(worst, abs(a[i] - b[i])) }
    return worst
}

/// Normalised correlation of `a[i + lag]` with `b[i]` over the overlap.
func correlation(_ a: [Float], _ b: [Float], lag: Int = 0) -> Double {
    var ab = 0.0
    var aa = 0.0
    var bb = 0.0
    for i in 0..<b.count {
        let j = i + lag
        guard j >= 0, j < a.count else { continue }
        let x = Double(a[j])
        let y = Double(b[i])
        ab += x * y
        aa += x * x
        bb += y * y
    }
    return ab / max((aa * bb).squareRoot(), 1e-300)
}

/// The lag in `range` with the highest correlation, and that correlation.
func bestCorrelation(_ a: [Float], _ b: [Float], lags: ClosedRange<Int>, step: Int = 1) -> (lag: Int, value: Double) {
    var best = (lag: 0, value: -2.0)
    for lag in stride(from: lags.lowerBound, through: lags.upperBound, by: step) {
        let c = correlation(a, b, lag: lag)
        if c > best.value { best = (lag, c) }
    }
    return best
}

/// Signal-to-noise ratio in dB of `estimate` against `reference`.
func snr(_ estimate: [Float], _ reference: [Float]) -> Double {
    var signal = 0.0
    var error = 0.0
    for i in reference.indices {
        signal += Double(reference[i]) * Double(reference[i])
        let d = Double(estimate[i]) - Double(reference[i])
        error += d * d
    }
    return 10 * log10(signal / max(error, 1e-300))
}

/// Amplitude and residual of a least-squares fit of `a·sin + b·cos` at `frequency` over `x`.
func fitSine(_ x: ArraySlice<Float>, frequency: Double, rate: Int) -> (amplitude: Double, residualRMS: Double) {
    var ss = 0.0, sc = 0.0, cc = 0.0, ys = 0.0, yc = 0.0
    let start = x.startIndex
    for i in x.indices {
        let phase = 2 * Double.pi * frequency * Double(i - start) / Double(rate)
        let s = sin(phase)
        let c = cos(phase)
        ss += s * s
        sc += s * c
        cc += c * c
        ys += Double(x[i]) * s
        yc += Double(x[i]) * c
    }
    let det = ss * cc - sc * sc
    let a = (ys * cc - yc * sc) / det
    let b = (yc * ss - ys * sc) / det
    var residual = 0.0
    for i in x.indices {
        let phase = 2 * Double.pi * frequency * Double(i - start) / Double(rate)
        let d = Double(x[i]) - (a * sin(phase) + b * cos(phase))
        residual += d * d
    }
    return ((a * a + b * b).squareRoot(), (residual / Double(x.count)).squareRoot())
}

/// Delay in samples of a sine of `frequency` in `x` relative to sin(2π·frequency·i/rate), i being the index in
/// the parent array (slices keep their indices).
func sineDelay(_ x: ArraySlice<Float>, frequency: Double, rate: Int) -> Double {
    let omega = 2 * Double.pi * frequency / Double(rate)
    var s = 0.0
    var c = 0.0
    for i in x.indices {
        s += Double(x[i]) * sin(omega * Double(i))
        c += Double(x[i]) * cos(omega * Double(i))
    }
    return atan2(-c, s) / omega
}

/// A minimal safetensors reader for the reference bundles: F32 tensors only.
struct SafetensorsFile {
    struct Tensor {
        var shape: [Int]
        var values: [Float]
    }

    let tensors: [String: Tensor]

    init(url: URL) throws {
        let data = try Data(contentsOf: url)
        guard data.count >= 8 else { throw XCTSkip("safetensors file too short: \(url.path)") }
        var headerLength: UInt64 = 0
        for i in 0..<8 { headerLength |= UInt64(data[i]) << (8 * UInt64(i)) }
        let headerEnd = 8 + Int(headerLength)
        let header = try JSONSerialization.jsonObject(with: data.subdata(in: 8..<headerEnd)) as? [String: Any] ?? [:]
        var tensors: [String: Tensor] = [:]
        for (name, entry) in header where name != "__metadata__" {
            guard let entry = entry as? [String: Any], entry["dtype"] as? String == "F32",
                let shape = entry["shape"] as? [Int], let offsets = entry["data_offsets"] as? [Int], offsets.count == 2
            else { continue }
            let bytes = data.subdata(in: (headerEnd + offsets[0])..<(headerEnd + offsets[1]))
            let values = bytes.withUnsafeBytes { raw in
                (0..<(bytes.count / 4)).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) }
            }
            tensors[name] = Tensor(shape: shape, values: values)
        }
        self.tensors = tensors
    }
}
