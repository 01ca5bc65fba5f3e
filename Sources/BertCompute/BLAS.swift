#if canImport(Accelerate)
    import Accelerate
#else
    import COpenBLAS
#endif

/// Row-major single-precision matrix products through CBLAS (OpenBLAS on Linux, Accelerate on
/// Apple platforms). BLAS itself is kept single-threaded: we split the work over our own threads,
/// which scales better for BERT's many small products (per-head attention) and avoids
/// oversubscribing the cores.
public enum BLAS {
    nonisolated(unsafe) private static var configured = false

    /// Makes BLAS single-threaded (idempotent; called by every entry point).
    @inline(__always)
    public static func configure() {
        if configured { return }
        configured = true
        #if !canImport(Accelerate)
            openblas_set_num_threads(1)
        #endif
    }

    /// C[m×n] = alpha · op(A) · op(B) + beta · C, all row-major with leading dimensions.
    /// op(A) is m×k (A is k×m when transA), op(B) is k×n (B is n×k when transB).
    @inline(__always)
    public static func sgemm(
        transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
        alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0,
        c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        if m == 0 || n == 0 { return }
        configure()
        cblas_sgemm(
            CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
            Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// The same product split over `threads` parts (default `Compute.threads`): by rows of C when
    /// there are enough, otherwise by columns (small batches), so every thread gets a large,
    /// contiguous panel.
    public static func parallelSgemm(
        transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
        alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0,
        c: UnsafeMutablePointer<Float>, ldc: Int, threads parts: Int? = nil
    ) {
        let threads = max(1, parts ?? Compute.threads)
        if threads <= 1 || m * n * k < 64 * 64 * 64 {
            sgemm(
                transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
            return
        }
        nonisolated(unsafe) let a = a, b = b, c = c
        // Each thread packs its share of one operand and all of the other: split the larger
        // dimension, so the big operand (the weights, when rows are few) is packed once in all.
        if m >= 32 * threads && (m >= n || n < 64 * threads) {
            Compute.parallelRanges(m, parts: threads, granularity: 16) { rows in
                let aStart = transA ? a + rows.lowerBound : a + rows.lowerBound * lda
                sgemm(
                    transA: transA, transB: transB, m: rows.count, n: n, k: k, alpha: alpha,
                    a: aStart, lda: lda, b: b, ldb: ldb, beta: beta,
                    c: c + rows.lowerBound * ldc, ldc: ldc)
            }
        } else {
            Compute.parallelRanges(n, parts: threads, granularity: 16) { cols in
                let bStart = transB ? b + cols.lowerBound * ldb : b + cols.lowerBound
                sgemm(
                    transA: transA, transB: transB, m: m, n: cols.count, k: k, alpha: alpha,
                    a: a, lda: lda, b: bStart, ldb: ldb, beta: beta,
                    c: c + cols.lowerBound, ldc: ldc)
            }
        }
    }
}
