import CBLAS
import CFFTW
import Foundation

/// BSS Eval source criteria (SDR, SIR, SAR) with time-invariant distortion filters, as defined by the BSS Eval
/// toolbox (Vincent, Gribonval and Févotte 2006) and computed by `bss_eval_sources` in mir_eval.
///
/// An estimate is split into its projection on the span of its own reference delayed by 0 … L−1 samples (the target,
/// "allowed distortion"), the further part of its projection on the span of every reference's delays (interference)
/// and the rest (artifacts). SIR is target over interference and tells how much of the other sources an output still
/// holds, even where a codec's waveform error (an artifact) dominates SI-SDR.
///
/// The scorer factors the references' Gram matrix once, so scoring several estimates (outputs, the mixture) against
/// the same references costs one solve each.
public struct BSSEval: Sendable {
    /// The three criteria in dB, each capped to ±`cap` like the other separation metrics.
    public struct Criteria: Sendable, Equatable {
        public var sdr: Double
        public var sir: Double
        public var sar: Double
    }

    /// The distortion filter length in samples that BSS Eval v3 and mir_eval use.
    public static let defaultFilterLength = 512
    /// Scores above this (dB) are reported as this value, as in `SeparationMetrics`.
    public static let cap = 100.0

    let filterLength: Int
    let length: Int
    let fftSize: Int
    /// Index into `spectra` / the Gram blocks of each reference, or nil for a silent one (it spans nothing).
    let slot: [Int?]
    /// The references' spectra (zero-padded to `fftSize`), interleaved re/im, one per non-silent reference.
    let spectra: [[Double]]
    /// The Cholesky factor (lower, column-major) of the Gram matrix of every non-silent reference's delays.
    let allFactor: [Double]
    /// The Cholesky factor of each non-silent reference's own block.
    let ownFactors: [[Double]]

    /// Prepares scoring against `references` (equal lengths are not required: the shortest signal sets the length).
    /// Returns nil when every reference is silent or shorter than the filter.
    public init?(references: [[Float]], filterLength: Int = BSSEval.defaultFilterLength) {
        guard filterLength >= 1, let n = references.map(\.count).min(), n >= filterLength else { return nil }
        self.filterLength = filterLength
        self.length = n
        var size = 1
        while size < n + filterLength - 1 { size <<= 1 }
        self.fftSize = size
        var slot: [Int?] = []
        var spectra: [[Double]] = []
        for reference in references {
            var energy = 0.0
            for i in 0..<n { energy += Double(reference[i]) * Double(reference[i]) }
            if energy > 1e-20 {
                slot.append(spectra.count)
                spectra.append(Self.spectrum(reference, length: n, fftSize: size))
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

    /// The criteria of `estimate` as an estimate of reference `target`; nil when that reference or the estimate is
    /// silent (there is no target to measure), or `target` is out of range.
    public func criteria(of estimate: [Float], target: Int) -> Criteria? {
        guard target >= 0, target < slot.count, let own = slot[target], estimate.count >= length else { return nil }
        var energy = 0.0
        for i in 0..<length { energy += Double(estimate[i]) * Double(estimate[i]) }
        guard energy > 1e-20 else { return nil }
        let l = filterLength, k = spectra.count
        let e = Self.spectrum(estimate, length: length, fftSize: fftSize)
        // D[(a, τ)] = Σ_u s_a(u − τ) e(u) = c_ea(τ), τ = 0 … L−1.
        var rhs = [Double](repeating: 0, count: k * l)
        for a in 0..<k {
            let c = Self.correlation(e, spectra[a], fftSize: fftSize, lags: l)
            for tau in 0..<l { rhs[a * l + tau] = c[tau + l - 1] }
        }
        // The squared norm of an orthogonal projection is Dᵀ G⁻¹ D; both spans are nested, so the interference and
        // artifact energies are differences of these and the projections themselves are never formed.
        let targetEnergy = Self.projectedEnergy(factor: ownFactors[own], order: l, rhs: Array(rhs[own * l..<(own + 1) * l]))
        let allEnergy = Self.projectedEnergy(factor: allFactor, order: k * l, rhs: rhs)
        let projected = min(max(targetEnergy, 0), energy)
        let spanned = min(max(allEnergy, projected), energy)
        func ratio(_ num: Double, _ den: Double) -> Double {
            guard num > 0 else { return -Self.cap }
            guard den > 0 else { return Self.cap }
            return min(max(10 * log10(num / den), -Self.cap), Self.cap)
        }
        return Criteria(sdr: ratio(projected, energy - projected), sir: ratio(projected, spanned - projected),
                        sar: ratio(spanned, energy - spanned))
    }

    /// The zero-padded real FFT of the first `length` samples, as interleaved re/im pairs of the `fftSize/2 + 1` bins.
    static func spectrum(_ x: [Float], length: Int, fftSize: Int) -> [Double] {
        let bins = fftSize / 2 + 1
        guard let input = fftw_alloc_real(fftSize), let output = fftw_alloc_complex(bins) else {
            fatalError("fftw_malloc failed: out of memory")
        }
        defer { fftw_free(input); fftw_free(output) }
        for i in 0..<fftSize { input[i] = i < length ? Double(x[i]) : 0 }
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
    static func correlation(_ x: [Double], _ y: [Double], fftSize: Int, lags: Int) -> [Double] {
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
    /// diagonal load (from 1e-10 of the mean diagonal, raised until the factorisation succeeds) keeps it definite,
    /// and only removes directions along which the references hold next to no energy.
    static func cholesky(_ matrix: [Double], order: Int) -> [Double]? {
        var trace = 0.0
        for i in 0..<order { trace += matrix[i * order + i] }
        let mean = trace / Double(order)
        guard mean > 0 else { return nil }
        var load = 1e-10
        while load <= 1e-2 {
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
    static func projectedEnergy(factor: [Double], order: Int, rhs: [Double]) -> Double {
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
