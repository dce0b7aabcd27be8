import Synchronization

/// Reusable float scratch buffers shared by the kernels.
///
/// Layers used to allocate their scratch as fresh `[Float]` arrays on every call; at the sizes of a TUSS or DAC
/// forward (tens of megabytes) each of those is a memset plus a page fault per 4 KiB, which measured ~6 % of a
/// forward. Buffers taken from here are recycled instead: after the first call of a given size, taking one is a
/// lock and a list search. Contents are undefined on entry; callers overwrite what they read.
public enum Scratch {
    private struct Buffer: @unchecked Sendable {
        let base: UnsafeMutablePointer<Float>
        let capacity: Int
    }

    private struct Pool: ~Copyable {
        var free: [Buffer] = []
        var retainedFloats = 0
    }

    private static let pool = Mutex(Pool())

    /// Buffers larger than this stay pooled only up to this many floats in total (1 GiB); beyond it they are freed
    /// when returned, so a one-off giant request does not pin memory for the life of the process.
    static let retainLimit = 1 << 28

    /// Runs `body` with a buffer of at least `count` floats, returned to the pool afterwards.
    ///
    /// Nested and concurrent calls each get their own buffer.
    public static func with<R>(_ count: Int, _ body: (UnsafeMutablePointer<Float>) throws -> R) rethrows -> R {
        let buffer = take(max(count, 1))
        defer { give(buffer) }
        return try body(buffer.base)
    }

    /// Two buffers at once (keeps call sites flat).
    public static func with<R>(_ c0: Int, _ c1: Int,
                               _ body: (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>) throws -> R) rethrows -> R {
        try with(c0) { p0 in try with(c1) { p1 in try body(p0, p1) } }
    }

    private static func take(_ count: Int) -> Buffer {
        let found: Buffer? = pool.withLock { pool in
            // Smallest buffer that fits, and at most twice the request: a 53 MB attention buffer handed to a 2 MB
            // feed-forward request would force a second 53 MB allocation at the next attention (+13 % peak memory
            // measured on tuss-medium before this rule).
            var best = -1
            for (i, b) in pool.free.enumerated() where b.capacity >= count && b.capacity <= 2 * count + 4096 {
                if best < 0 || b.capacity < pool.free[best].capacity { best = i }
            }
            guard best >= 0 else { return nil }
            let b = pool.free.remove(at: best)
            pool.retainedFloats -= b.capacity
            return b
        }
        if let found { return found }
        // Round up to 4 KiB multiples so near-equal requests share buffers; 64-byte alignment for AVX-512 loads.
        let capacity = (count + 1023) & ~1023
        let raw = UnsafeMutableRawPointer.allocate(byteCount: capacity * MemoryLayout<Float>.stride, alignment: 64)
        return Buffer(base: raw.bindMemory(to: Float.self, capacity: capacity), capacity: capacity)
    }

    private static func give(_ buffer: Buffer) {
        let keep: Bool = pool.withLock { pool in
            guard pool.retainedFloats + buffer.capacity <= retainLimit else { return false }
            pool.free.append(buffer)
            pool.retainedFloats += buffer.capacity
            return true
        }
        if !keep { UnsafeMutableRawPointer(buffer.base).deallocate() }
    }
}
