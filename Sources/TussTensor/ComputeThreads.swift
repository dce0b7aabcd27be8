import CBLAS
import Dispatch
import Synchronization

/// The one thread setting of the engine: it sizes our parallel loops and keeps OpenBLAS single-threaded.
///
/// OpenBLAS and our own loops must never spin at the same time (on two cores that halves speed), so OpenBLAS is
/// pinned to one thread and every parallel region is ours: large GEMMs are split by rows across our workers.
public enum ComputeThreads {
    private static let configured = Atomic<Int>(0)

    /// The number of worker threads parallel regions use (default: all cores).
    public static var count: Int {
        let n = configured.load(ordering: .relaxed)
        if n > 0 { return n }
        return defaultCount
    }

    /// The number of cores the system reports.
    public static var defaultCount: Int { max(1, System.activeProcessorCount) }

    /// Sets the worker count (clamped to at least 1) and pins OpenBLAS to one thread.
    public static func configure(_ threads: Int?) {
        let n = max(1, threads ?? defaultCount)
        configured.store(n, ordering: .relaxed)
        openblas_set_num_threads(1)
    }

    private static let blasPinned: Bool = {
        openblas_set_num_threads(1)
        return true
    }()

    /// Runs `body(i)` for `i` in `0..<iterations` on up to `count` threads and returns when all are done.
    ///
    /// Iterations are grouped into contiguous ranges, one per worker, so per-iteration dispatch costs nothing.
    public static func parallelFor(_ iterations: Int, _ body: (Int) -> Void) {
        _ = blasPinned
        guard iterations > 0 else { return }
        let workers = min(count, iterations)
        if workers == 1 {
            for i in 0..<iterations { body(i) }
            return
        }
        withoutActuallyEscaping(body) { body in
            let box = _UncheckedBox(body)
            DispatchQueue.concurrentPerform(iterations: workers) { w in
                let lo = iterations * w / workers
                let hi = iterations * (w + 1) / workers
                for i in lo..<hi { box.value(i) }
            }
        }
    }

    /// Splits `total` items into tiles of at most `maxTile`, rounding the tile count up to a multiple of the worker
    /// count when there are few tiles: five tiles on two workers leave one worker idle for a fifth of the layer.
    public static func balancedTiles(_ total: Int, maxTile: Int) -> (tile: Int, tiles: Int) {
        guard total > 0 else { return (max(maxTile, 1), 0) }
        let maxTile = max(1, min(maxTile, total))
        var tiles = (total + maxTile - 1) / maxTile
        let w = count
        if w > 1 && tiles >= w && tiles < 8 * w { tiles = (tiles + w - 1) / w * w }
        let tile = (total + tiles - 1) / tiles
        return (tile, (total + tile - 1) / tile)
    }

    /// Runs `body(lo, hi)` over a partition of `0..<total` into at most `count` ranges of at least `minChunk` items.
    public static func parallelRanges(_ total: Int, minChunk: Int = 1, _ body: (Int, Int) -> Void) {
        guard total > 0 else { return }
        let workers = max(1, min(count, total / max(minChunk, 1)))
        if workers == 1 { body(0, total); return }
        parallelFor(workers) { w in body(total * w / workers, total * (w + 1) / workers) }
    }
}

/// Carries a closure into `concurrentPerform`; the closures we pass write disjoint memory by construction.
struct _UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

/// Core count without Foundation.
enum System {
    static var activeProcessorCount: Int {
        #if os(Linux)
        let n = sysconf(Int32(_SC_NPROCESSORS_ONLN))
        return n > 0 ? Int(n) : 1
        #else
        return 1
        #endif
    }
}
#if os(Linux)
import Glibc
#endif
