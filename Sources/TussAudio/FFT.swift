import CFFTW
import Foundation

/// A pair of FFTW single-precision plans (real→complex and complex→real) for one transform size.
///
/// Plans are created once per size under a process-wide lock (FFTW's planner is not thread-safe) and never destroyed.
/// Executing them with FFTW's new-array functions is thread-safe, provided the arrays have the alignment of
/// `fftwf_malloc` (which `FFTBuffers` guarantees) and are out of place, like the planning arrays.
struct RealFFTPlans: @unchecked Sendable {
    let size: Int
    let forward: OpaquePointer
    let inverse: OpaquePointer
}

/// The process-wide cache of FFTW plans; the lock also serialises every FFTW planner call made by this module.
final class FFTPlanCache: @unchecked Sendable {
    static let shared = FFTPlanCache()

    private let lock = NSLock()
    private var plans: [Int: RealFFTPlans] = [:]

    /// Returns the cached plans for `size`, creating them (FFTW_ESTIMATE, deterministic) on first use.
    func plans(size: Int) -> RealFFTPlans? {
        lock.lock()
        defer { lock.unlock() }
        if let cached = plans[size] { return cached }
        guard size >= 2, let n = Int32(exactly: size) else { return nil }
        let buffers = FFTBuffers(size: size)
        let flags = UInt32(FFTW_ESTIMATE)
        guard let forward = fftwf_plan_dft_r2c_1d(n, buffers.real, buffers.complex, flags) else { return nil }
        guard let inverse = fftwf_plan_dft_c2r_1d(n, buffers.complex, buffers.real, flags) else {
            fftwf_destroy_plan(forward)
            return nil
        }
        let made = RealFFTPlans(size: size, forward: forward, inverse: inverse)
        plans[size] = made
        return made
    }
}

/// FFTW-aligned work arrays for one real transform: `size` reals and `size/2 + 1` complex bins.
///
/// One per call or per thread; never shared while in use.
final class FFTBuffers {
    let size: Int
    let bins: Int
    let real: UnsafeMutablePointer<Float>
    let complex: UnsafeMutablePointer<fftwf_complex>

    init(size: Int) {
        self.size = size
        self.bins = size / 2 + 1
        // fftwf_malloc only fails when the process is out of memory; treat that like Swift's own allocator does.
        guard let realRaw = fftwf_malloc(MemoryLayout<Float>.stride * size),
            let complexRaw = fftwf_malloc(MemoryLayout<fftwf_complex>.stride * (size / 2 + 1))
        else { fatalError("fftwf_malloc failed: out of memory") }
        real = realRaw.bindMemory(to: Float.self, capacity: size)
        complex = complexRaw.bindMemory(to: fftwf_complex.self, capacity: size / 2 + 1)
        real.initialize(repeating: 0, count: size)
        complex.initialize(repeating: (0, 0), count: size / 2 + 1)
    }

    deinit {
        fftwf_free(real)
        fftwf_free(complex)
    }

    /// The complex bins viewed as interleaved (re, im) floats.
    var complexFloats: UnsafeMutablePointer<Float> {
        UnsafeMutableRawPointer(complex).assumingMemoryBound(to: Float.self)
    }
}

/// A real FFT of one size: unnormalised forward transform, inverse scaled by 1/n (numpy/torch conventions).
///
/// Thread-safe: each call uses its own aligned buffers.
final class RealFFT: @unchecked Sendable {
    let size: Int
    var bins: Int { size / 2 + 1 }
    private let plans: RealFFTPlans

    init(size: Int) throws(AudioError) {
        guard size >= 2, size % 2 == 0, size <= 1 << 28 else {
            throw AudioError.invalidArgument("FFT size must be even and in 2...2^28, got \(size)")
        }
        guard let plans = FFTPlanCache.shared.plans(size: size) else {
            throw AudioError.invalidArgument("FFTW could not plan a real FFT of size \(size)")
        }
        self.size = size
        self.plans = plans
    }

    /// X[f] = Σ x[n] e^{−j2πfn/N}; `signal` is zero-padded or truncated to `size`.
    func forward(_ signal: [Float]) -> (re: [Float], im: [Float]) {
        let buffers = FFTBuffers(size: size)
        let count = min(size, signal.count)
        signal.withUnsafeBufferPointer { src in
            for i in 0..<count { buffers.real[i] = src[i] }
        }
        for i in count..<size { buffers.real[i] = 0 }
        fftwf_execute_dft_r2c(plans.forward, buffers.real, buffers.complex)
        let bins = self.bins
        let packed = buffers.complexFloats
        let re = [Float](unsafeUninitializedCapacity: bins) { dst, n in
            for f in 0..<bins { dst[f] = packed[2 * f] }
            n = bins
        }
        let im = [Float](unsafeUninitializedCapacity: bins) { dst, n in
            for f in 0..<bins { dst[f] = packed[2 * f + 1] }
            n = bins
        }
        return (re, im)
    }

    /// Executes the forward plan on caller-owned aligned buffers (`buffers.size == size`).
    func forward(_ buffers: FFTBuffers) {
        fftwf_execute_dft_r2c(plans.forward, buffers.real, buffers.complex)
    }

    /// Executes the unnormalised inverse plan on caller-owned aligned buffers; destroys `buffers.complex`.
    func inverse(_ buffers: FFTBuffers) {
        fftwf_execute_dft_c2r(plans.inverse, buffers.complex, buffers.real)
    }
}
