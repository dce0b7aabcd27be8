import CBLAS
import CFFTW
import Foundation

/// BSS Eval source criteria (SDR, SIR, SAR) with 512-tap distortion filters, as mir_eval's `bss_eval_sources`.
///
/// The definitions are the BSS Eval toolbox's (Vincent, Gribonval and Févotte 2006). An estimate is split into its
/// projection on the span of its own reference delayed by 0 … L−1 samples (the target, "allowed distortion"), the
/// further part of its projection on the span of every reference's delays (interference) and the rest (artifacts).
/// SIR is target over interference and tells how much of the other sources an output still holds, even where a
/// codec's waveform error (an artifact) dominates SI-SDR.
///
/// The scorer factors the references' Gram matrix once, so scoring several estimates (outputs, the mixture) against
/// the same references costs one solve each.
public struct BSSEval: Sendable {
    /// The criteria of one estimate in dB, each capped to ±`cap` like the other separation metrics.
    public struct Criteria: Sendable, Equatable {
        /// Target over interference plus artifacts; −`cap` for a silent estimate.
        public var sdr: Double
        /// Target over interference; nil for a silent estimate, or when no other reference is audible (there is
        /// nothing to interfere).
        public var sir: Double?
        /// Target plus interference over artifacts; nil for a silent estimate.
        public var sar: Double?
    }

    /// The distortion filter length in samples that BSS Eval v3 and mir_eval use.
    public static let defaultFilterLength = 512
    /// Scores above this (dB) are reported as this value, as in `SeparationMetrics`.
    public static let cap = 100.0
    /// The largest FFT the scorer runs (2^24: 6.3 min at 44.1 kHz). Longer inputs are not scored, since memory grows
    /// with the length (a few arrays of this many doubles per reference).
    public static let maxFFTSize = 1 << 24

    private let filterLength: Int
    private let length: Int
    private let fftSize: Int
    /// Index into `spectra` / the Gram blocks of each reference, or nil for a silent one (it spans nothing).
    private let slot: [Int?]
    /// The spectra (zero-padded to `fftSize`, interleaved re/im) of the non-silent references scaled to unit energy.
    /// Scaling leaves every span, and so every criterion, unchanged; it makes the diagonal load of `cholesky` the
    /// same small fraction of each reference's energy, so a quiet reference is not drowned by the load.
    private let spectra: [[Double]]
    /// The Cholesky factor (lower, column-major) of the Gram matrix of every non-silent reference's delays.
    private let allFactor: [Double]
    /// The Cholesky factor of each non-silent reference's own block.
    private let ownFactors: [[Double]]

    /// Prepares scoring against `references` (the shortest sets the length). Returns nil when every reference is
    /// silent, shorter than the filter or longer than `maxFFTSize` allows, or when their Gram matrix stays
    /// indefinite even with the largest diagonal load.
    public init?(references: [[Float]], filterLength: Int = BSSEval.defaultFilterLength) {
        guard filterLength >= 1, let n = references.map(\.count).min(), n >= filterLength else { return nil }
        self.filterLength = filterLength
        self.length = n
        var size = 1
        while size < n + filterLength - 1 { size <<= 1 }
        guard size <= Self.maxFFTSize else { return nil }
        self.fftSize = size
        var slot: [Int?] = []
        var spectra: [[Double]] = []
        for reference in references {
            var energy = 0.0
            for i in 0..<n { energy += Double(reference[i]) * Double(reference[i]) }
            if energy > 1e-20 {
                slot.append(spectra.count)
                spectra.append(Self.spectrum(reference, length: n, fftSize: size, scale: 1 / energy.squareRoot()))
            } else {
                slot.append(nil)
            }
        }
        guard !spectra.isEmpty else { return nil }
        self.slot = slot
        self.spectra = spectra

        // Gram[(a, τ), (b, σ)] = Σ_u s_a(u − τ) s_b(u − σ) = c_ab(σ − τ), where c_ab(k) = Σ_u s_a(u + k) s_b(u).
        let l = filterLength, k = spectra.count, m = k * l
        var gram = [Double](repeating: 0, count: m * m)
        for a in 0..<k {
            for b in a..<k {
                let c = Self.correlation(spectra[a], spectra[b], fftSize: size, lags: l)
                for tau in 0..<l {
                    for sigma in 0..<l {
                        let value = c[sigma - tau + l - 1]
                        gram[(b * l + sigma) * m + a * l + tau] = value
                        gram[(a * l + tau) * m + b * l + sigma] = value
                    }
                }
            }
        }
        var own: [[Double]] = []
        for a in 0..<k {
            var block = [Double](repeating: 0, count: l * l)
            for col in 0..<l { for row in 0..<l { block[col * l + row] = gram[(a * l + col) * m + a * l + row] } }
            guard let factor = Self.cholesky(block, order: l) else { return nil }
            own.append(factor)
        }
        guard let all = Self.cholesky(gram, order: m) else { return nil }
        self.allFactor = all
        self.ownFactors = own
    }

    /// The criteria of `estimate` as an estimate of each reference, in reference order; nil for a silent reference.
    /// Samples past the estimate's end count as zero, and past the references' length are not scored.
    public func criteria(of estimate: [Float]) -> [Criteria?] {
        var energy = 0.0
        for i in 0..<min(length, estimate.count) { energy += Double(estimate[i]) * Double(estimate[i]) }
        guard energy > 1e-20 else {
            return slot.map { $0 == nil ? nil : Criteria(sdr: -Self.cap, sir: nil, sar: nil) }
        }
        let l = filterLength, k = spectra.count
        let e = Self.spectrum(estimate, length: length, fftSize: fftSize, scale: 1)
        // D[(a, τ)] = Σ_u s_a(u − τ) e(u) = c_ea(τ), τ = 0 … L−1.
        var rhs = [Double](repeating: 0, count: k * l)
        for a in 0..<k {
            let c = Self.correlation(e, spectra[a], fftSize: fftSize, lags: l)
            for tau in 0..<l { rhs[a * l + tau] = c[tau + l - 1] }
        }
        // The squared norm of an orthogonal projection is Dᵀ G⁻¹ D; both spans are nested, so the interference and
        // artifact energies are differences of these and the projections themselves are never formed.
        let spanned = min(max(Self.projectedEnergy(factor: allFactor, order: k * l, rhs: rhs), 0), energy)
        func ratio(_ num: Double, _ den: Double) -> Double {
            guard num > 0 else { return -Self.cap }
            guard den > 0 else { return Self.cap }
            return min(max(10 * log10(num / den), -Self.cap), Self.cap)
        }
        return slot.map { own in
            guard let own else { return nil }
            let part = Array(rhs[own * l..<(own + 1) * l])
            let projected = min(max(Self.projectedEnergy(factor: ownFactors[own], order: l, rhs: part), 0), spanned)
            return Criteria(sdr: ratio(projected, energy - projected),
                            sir: k > 1 ? ratio(projected, spanned - projected) : nil,
                            sar: ratio(spanned, energy - spanned))
        }
    }

    /// The zero-padded real FFT of the first `length` samples times `scale`, as interleaved re/im pairs of the
    /// `fftSize/2 + 1` bins.
    private static func spectrum(_ x: [Float], length: Int, fftSize: Int, scale: Double) -> [Double] {
        let bins = fftSize / 2 + 1
        guard let input = fftw_alloc_real(fftSize), let output = fftw_alloc_complex(bins) else {
            fatalError("fftw_malloc failed: out of memory")
        }
        defer { fftw_free(input); fftw_free(output) }
        let count = min(length, x.count)
        for i in 0..<fftSize { input[i] = i < count ? scale * Double(x[i]) : 0 }
        let plan = DoubleFFTPlans.shared.forward(size: fftSize, input: input, output: output)
        fftw_execute_dft_r2c(plan, input, output)
        var result = [Double](repeating: 0, count: 2 * bins)
        UnsafeMutableRawPointer(output).withMemoryRebound(to: Double.self, capacity: 2 * bins) { pairs in
            for i in 0..<2 * bins { result[i] = pairs[i] }
        }
        return result
    }

    /// c(k) = Σ_u x(u + k) y(u) for k = −(lags−1) … lags−1, at index k + lags − 1. The FFT size holds the signal
    /// plus the lags, so the circular correlation equals the linear one there.
    private static func correlation(_ x: [Double], _ y: [Double], fftSize: Int, lags: Int) -> [Double] {
        let bins = fftSize / 2 + 1
        guard let product = fftw_alloc_complex(bins), let output = fftw_alloc_real(fftSize) else {
            fatalError("fftw_malloc failed: out of memory")
        }
        defer { fftw_free(product); fftw_free(output) }
        UnsafeMutableRawPointer(product).withMemoryRebound(to: Double.self, capacity: 2 * bins) { p in
            for i in 0..<bins {
                let xr = x[2 * i], xi = x[2 * i + 1], yr = y[2 * i], yi = y[2 * i + 1]
                p[2 * i] = xr * yr + xi * yi          // x · conj(y)
                p[2 * i + 1] = xi * yr - xr * yi
            }
        }
        let plan = DoubleFFTPlans.shared.inverse(size: fftSize, input: product, output: output)
        fftw_execute_dft_c2r(plan, product, output)
        let scale = 1 / Double(fftSize)
        var c = [Double](repeating: 0, count: 2 * lags - 1)
        for k in -(lags - 1)..<lags { c[k + lags - 1] = output[(k + fftSize) % fftSize] * scale }
        return c
    }

    /// The lower Cholesky factor of a symmetric positive semi-definite matrix (column-major). Delayed copies of a
    /// band-limited signal are nearly dependent, so the Gram matrix can be singular to working precision: a
    /// diagonal load of 1e-10 of the mean diagonal (each reference has unit energy, so of each one's energy; raised
    /// to at most 1e-6 if the factorisation still fails) keeps it definite, and only removes directions along which
    /// the references hold next to no energy.
    private static func cholesky(_ matrix: [Double], order: Int) -> [Double]? {
        var trace = 0.0
        for i in 0..<order { trace += matrix[i * order + i] }
        let mean = trace / Double(order)
        guard mean > 0 else { return nil }
        var load = 1e-10
        while load <= 1e-6 {
            var a = matrix
            for i in 0..<order { a[i * order + i] += load * mean }
            var n = Int32(order), lda = Int32(order), info: Int32 = 0
            var uplo = CChar(UInt8(ascii: "L"))
            dpotrf_(&uplo, &n, &a, &lda, &info)
            if info == 0 { return a }
            load *= 100
        }
        return nil
    }

    /// Dᵀ G⁻¹ D for the factor of G.
    private static func projectedEnergy(factor: [Double], order: Int, rhs: [Double]) -> Double {
        var x = rhs
        var n = Int32(order), nrhs: Int32 = 1, lda = Int32(order), ldb = Int32(order), info: Int32 = 0
        var uplo = CChar(UInt8(ascii: "L"))
        factor.withUnsafeBufferPointer { f in
            guard let base = f.baseAddress else { return }
            dpotrs_(&uplo, &n, &nrhs, base, &lda, &x, &ldb, &info)
        }
        guard info == 0 else { return 0 }
        var energy = 0.0
        for i in 0..<order { energy += rhs[i] * x[i] }
        return energy
    }
}

/// FFTW double-precision plans, made once per size. The double-precision library keeps its own planner state apart
/// from the single-precision one, so this lock serialises its planner calls the way `FFTPlanCache` does for floats.
final class DoubleFFTPlans: @unchecked Sendable {
    static let shared = DoubleFFTPlans()
    private let lock = NSLock()
    private var forwardPlans: [Int: OpaquePointer] = [:]
    private var inversePlans: [Int: OpaquePointer] = [:]

    /// A real-to-complex plan. The arrays only serve planning (FFTW_ESTIMATE does not touch them); executing the
    /// plan with the new-array function needs arrays of `fftw_malloc`'s alignment.
    func forward(size: Int, input: UnsafeMutablePointer<Double>, output: UnsafeMutablePointer<fftw_complex>) -> OpaquePointer {
        cached(&forwardPlans, size: size) { fftw_plan_dft_r2c_1d(Int32(size), input, output, UInt32(FFTW_ESTIMATE)) }
    }

    /// A complex-to-real plan, likewise.
    func inverse(size: Int, input: UnsafeMutablePointer<fftw_complex>, output: UnsafeMutablePointer<Double>) -> OpaquePointer {
        cached(&inversePlans, size: size) { fftw_plan_dft_c2r_1d(Int32(size), input, output, UInt32(FFTW_ESTIMATE)) }
    }

    private func cached(_ plans: inout [Int: OpaquePointer], size: Int, make: () -> OpaquePointer?) -> OpaquePointer {
        lock.lock()
        defer { lock.unlock() }
        if let plan = plans[size] { return plan }
        // FFTW plans any size with FFTW_ESTIMATE unless it is out of memory.
        guard let plan = make() else { fatalError("FFTW could not plan a transform of size \(size)") }
        plans[size] = plan
        return plan
    }
}
