#if canImport(Accelerate)
    import Accelerate
#elseif canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Row-major single-precision matrix products through CBLAS (OpenBLAS on Linux, Accelerate on
/// Apple platforms). BLAS itself is kept single-threaded: we split the work over our own threads,
/// which scales better for BERT's many small products (per-head attention) and avoids
/// oversubscribing the cores.
public enum BLAS {
    /// The library behind the products, loaded at the first product (or by `configure`).
    public static var library: String { Loaded.shared.name }

    /// Loads BLAS single-threaded (idempotent; entry points call it before starting threads).
    public static func configure() { _ = Loaded.shared }

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
        #if canImport(Accelerate)
            cblas_sgemm(
                CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
        #else
            if let product = Loaded.shared.sgemm {
                // CBLAS's enumerations: CblasRowMajor 101, CblasNoTrans 111, CblasTrans 112.
                product(
                    101, transA ? 112 : 111, transB ? 112 : 111, Int32(m), Int32(n), Int32(k), alpha, a,
                    Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
            } else {
                referenceSgemm(
                    transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b,
                    ldb: ldb, beta: beta, c: c, ldc: ldc)
            }
        #endif
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

    /// The product without a BLAS library, the one CBLAS defines (beta 0 overwrites C, NaN and all):
    /// rows of C accumulated from contiguous rows of op(B), or dot products over contiguous rows of
    /// A and B when B is transposed. Correct at any shape, several times slower than OpenBLAS.
    public static func referenceSgemm(
        transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
        alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0,
        c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        for i in 0..<m {
            let row = c + i * ldc
            if beta == 0 {
                row.update(repeating: 0, count: n)
            } else if beta != 1 {
                for j in 0..<n { row[j] *= beta }
            }
            if transB && !transA {
                let x = a + i * lda
                for j in 0..<n {
                    let y = b + j * ldb
                    var s: Float = 0
                    for p in 0..<k { s += x[p] * y[p] }
                    row[j] += alpha * s
                }
                continue
            }
            for p in 0..<k {
                let x = alpha * (transA ? a[p * lda + i] : a[i * lda + p])
                if transB {
                    for j in 0..<n { row[j] += x * b[j * ldb + p] }
                } else {
                    let y = b + p * ldb
                    for j in 0..<n { row[j] += x * y[j] }
                }
            }
        }
    }

    /// The BLAS library, opened at run time rather than linked: OpenBLAS starts its own threads
    /// when it is loaded, and they spin for about 0.1 s, taking a core from ours. Loading it with
    /// OPENBLAS_NUM_THREADS=1 starts none, and a command that needs no products (tokenize) never
    /// loads it at all. Without a library the products use `referenceSgemm`, with a warning.
    final class Loaded: Sendable {
        typealias Product =
            @convention(c) (
                Int32, Int32, Int32, Int32, Int32, Int32, Float, UnsafePointer<Float>, Int32,
                UnsafePointer<Float>, Int32, Float, UnsafeMutablePointer<Float>, Int32
            ) -> Void
        typealias SetThreads = @convention(c) (Int32) -> Void

        let name: String
        let sgemm: Product?

        /// Shared libraries tried in order: OpenBLAS (Debian's and others' names), then any CBLAS.
        static let candidates = [
            "libopenblas.so.0", "libopenblas.so", "libopenblasp.so.0", "libopenblaso.so.0", "libcblas.so.3",
            "libblas.so.3",
        ]

        static let shared = Loaded()

        private init() {
            #if canImport(Accelerate)
                name = "Accelerate"
                sgemm = nil
            #elseif canImport(Glibc) || canImport(Musl)
                // OpenBLAS reads its thread count once, when loaded (the OpenMP build reads
                // OMP_NUM_THREADS); the user's values are put back for child processes.
                let variables = ["OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"]
                let saved = variables.map { name in getenv(name).map { String(cString: $0) } }
                for v in variables { setenv(v, "1", 1) }
                defer {
                    for (v, old) in zip(variables, saved) {
                        if let old { setenv(v, old, 1) } else { unsetenv(v) }
                    }
                }
                for candidate in Self.candidates {
                    guard let handle = dlopen(candidate, RTLD_NOW | RTLD_LOCAL),
                        let symbol = dlsym(handle, "cblas_sgemm")
                    else { continue }
                    if let set = dlsym(handle, "openblas_set_num_threads") {
                        unsafeBitCast(set, to: SetThreads.self)(1)
                    }
                    name = candidate
                    sgemm = unsafeBitCast(symbol, to: Product.self)
                    return
                }
                name = "built-in reference product"
                sgemm = nil
                let message =
                    "warning: no BLAS library found (tried \(Self.candidates.joined(separator: ", "))): matrix "
                    + "products use a slow built-in kernel. Install OpenBLAS (apt-get install libopenblas0).\n"
                _ = message.withCString { write(2, $0, strlen($0)) }
            #else
                name = "built-in reference product"
                sgemm = nil
            #endif
        }
    }
}
