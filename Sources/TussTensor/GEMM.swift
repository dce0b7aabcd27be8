import CBLAS

/// Matrix products on `cblas_sgemm`, split across `ComputeThreads` for large problems.
public enum BLAS {
    /// Below this many multiply-adds a product runs on the calling thread: splitting costs more than it saves.
    static let parallelThreshold = 1 << 20

    /// Computes `C = alpha·op(A)·op(B) + beta·C` for row-major matrices, where op(A) is `m×k` and op(B) is `k×n`.
    ///
    /// - Parameters:
    ///   - transA: `A` is stored `k×m` (and used transposed).
    ///   - transB: `B` is stored `n×k` (and used transposed).
    ///   - parallel: split the rows (or columns) of `C` over the worker threads; pass `false` inside a parallel loop.
    public static func gemm(
        transA: Bool = false, transB: Bool = false,
        m: Int, n: Int, k: Int, alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0,
        c: UnsafeMutablePointer<Float>, ldc: Int,
        parallel: Bool = true
    ) {
        guard m > 0, n > 0 else { return }
        if k == 0 {
            for i in 0..<m { for j in 0..<n { c[i * ldc + j] = beta == 0 ? 0 : beta * c[i * ldc + j] } }
            return
        }
        let work = m * n * k
        let workers = parallel ? min(ComputeThreads.count, work / parallelThreshold) : 1
        if workers <= 1 {
            _sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
            return
        }
        if m >= n {
            // Split rows of C: each block uses the matching rows of op(A).
            ComputeThreads.parallelFor(workers) { w in
                let lo = m * w / workers, hi = m * (w + 1) / workers
                guard hi > lo else { return }
                let aBlock = transA ? a + lo : a + lo * lda
                _sgemm(transA, transB, hi - lo, n, k, alpha, aBlock, lda, b, ldb, beta, c + lo * ldc, ldc)
            }
        } else {
            // Split columns of C: each block uses the matching columns of op(B).
            ComputeThreads.parallelFor(workers) { w in
                let lo = n * w / workers, hi = n * (w + 1) / workers
                guard hi > lo else { return }
                let bBlock = transB ? b + lo * ldb : b + lo
                _sgemm(transA, transB, m, hi - lo, k, alpha, a, lda, bBlock, ldb, beta, c + lo, ldc)
            }
        }
    }

    /// With `beta = 0`, OpenBLAS first zeroes all of C in a separate pass, then its kernel writes C again; for a
    /// C of tens of megabytes (TUSS's qkv projection is 53 MB) both passes go to memory. Such products (C above
    /// `zeroedSplitFloats`, 8 MB: the sgemm 1024³ reference's 4 MB C is never split) run in row blocks of about
    /// `zeroedBlockFloats`, so the zeroed block is still in L2 when the kernel writes it. The blocks share the
    /// product's K loop, so every element is computed exactly as in one call.
    static let zeroedBlockFloats = 1 << 18
    static let zeroedSplitFloats = 1 << 21

    static func _sgemm(
        _ transA: Bool, _ transB: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float,
        _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int,
        _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int
    ) {
        if m == 1 {
            // One row of C (a streamed frame, one query): a matrix-vector product. sgemm would pack all of op(B)
            // for a single row, which costs more than the product itself.
            if beta == 0 { c.update(repeating: 0, count: n) }
            let incA = Int32(transA ? lda : 1)
            if transB {
                cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(n), Int32(k), alpha, b, Int32(ldb), a, incA, beta, c, 1)
            } else {
                cblas_sgemv(CblasRowMajor, CblasTrans, Int32(k), Int32(n), alpha, b, Int32(ldb), a, incA, beta, c, 1)
            }
            return
        }
        let block = max(256, zeroedBlockFloats / max(n, 1))
        if beta == 0 && m * n > zeroedSplitFloats && m > 2 * block {
            var r = 0
            while r < m {
                let rows = min(block, m - r)
                let aBlock = transA ? a + r : a + r * lda
                _sgemmCall(transA, transB, rows, n, k, alpha, aBlock, lda, b, ldb, beta, c + r * ldc, ldc)
                r += rows
            }
            return
        }
        _sgemmCall(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
    }

    static func _sgemmCall(
        _ transA: Bool, _ transB: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float,
        _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int,
        _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int
    ) {
        cblas_sgemm(
            CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
            Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// Multiplies two row-major tensors: `[m, k] × [k, n] → [m, n]`.
    public static func matmul(_ a: Tensor, _ b: Tensor) -> Tensor {
        precondition(a.rank == 2 && b.rank == 2 && a.shape[1] == b.shape[0], "matmul: shapes \(a.shape) × \(b.shape)")
        let m = a.shape[0], k = a.shape[1], n = b.shape[1]
        var out = Tensor(zeros: [m, n])
        a.data.withUnsafeBufferPointer { pa in
            b.data.withUnsafeBufferPointer { pb in
                out.data.withUnsafeMutableBufferPointer { pc in
                    gemm(m: m, n: n, k: k, a: pa.baseAddress!, lda: k, b: pb.baseAddress!, ldb: n,
                         c: pc.baseAddress!, ldc: n)
                }
            }
        }
        return out
    }

    /// Multiplies batches of row-major matrices: `[batch, m, k] × [batch, k, n] → [batch, m, n]`.
    ///
    /// Batches run in parallel with single-threaded products, which beats splitting each small product.
    public static func batchedMatmul(_ a: Tensor, _ b: Tensor) -> Tensor {
        precondition(a.rank == 3 && b.rank == 3 && a.shape[0] == b.shape[0] && a.shape[2] == b.shape[1],
                     "batchedMatmul: shapes \(a.shape) × \(b.shape)")
        let batch = a.shape[0], m = a.shape[1], k = a.shape[2], n = b.shape[2]
        var out = Tensor(zeros: [batch, m, n])
        a.data.withUnsafeBufferPointer { pa in
            b.data.withUnsafeBufferPointer { pb in
                out.data.withUnsafeMutableBufferPointer { pc in
                    let pa = pa.baseAddress!, pb = pb.baseAddress!, pc = pc.baseAddress!
                    ComputeThreads.parallelFor(batch) { i in
                        gemm(m: m, n: n, k: k, a: pa + i * m * k, lda: k, b: pb + i * k * n, ldb: n,
                             c: pc + i * m * n, ldc: n, parallel: false)
                    }
                }
            }
        }
        return out
    }
}
