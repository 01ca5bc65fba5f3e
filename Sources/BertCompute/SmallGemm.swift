import CKernels
import CSupport

// Matrix products with few rows (one short sentence: 1x16 tokens). OpenBLAS packs both operands
// on every call, which for 16 rows costs about as much as the arithmetic; here each weight row is
// streamed once from memory and multiplied against all input rows while it sits in L1.

/// 8 Float lanes (one AVX register): the vector width of the small-row and packed products.
public typealias Vec8 = SIMD8<Float>

@inline(__always)
func load8(_ p: UnsafePointer<Float>) -> Vec8 { UnsafeRawPointer(p).loadUnaligned(as: Vec8.self) }

@inline(__always)
func store8(_ v: Vec8, _ p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: Vec8.self) }

/// acc + a·b, fused when the build targets a CPU with FMA (the bench and demo builds pass
/// `-Xswiftc -DBERT_FMA` with `-target-cpu native`); at the default target, fma would be a
/// library call per lane, so multiply and add are kept apart there.
@inline(__always)
func madd(_ acc: Vec8, _ a: Vec8, _ b: Vec8) -> Vec8 {
    #if BERT_FMA
        return acc.addingProduct(a, b)
    #else
        return acc + a * b
    #endif
}

extension BLAS {
    /// The row count up to which `smallGemmNT` beats BLAS (measured on a 2-core Zen 4).
    public static let smallRowLimit = 24

    /// C[i, j] = bias[j] + Σ_k A[i, k]·B[j, k] for i in 0..<m and j in `cols` (A is m×k, B is n×k,
    /// both row-major: torch.nn.Linear's x·Wᵀ + b). Overwrites C. `native`: CKernels' AVX-512
    /// kernel (only where the CPU has it), else the Swift one (tests run both).
    public static func smallGemmNT(
        m: Int, k: Int, a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int, bias: UnsafePointer<Float>? = nil,
        c: UnsafeMutablePointer<Float>, ldc: Int, cols: Range<Int>, native: Bool = nativeFloatKernels
    ) {
        if native && nativeFloatKernels {
            bert_gemm_f32_small(
                Int64(m), Int64(k), a, Int64(lda), b, Int64(ldb), bias, c, Int64(ldc), Int64(cols.lowerBound),
                Int64(cols.upperBound))
            return
        }
        let k8 = k & ~7
        var j = cols.lowerBound
        while j + 4 <= cols.upperBound {
            let b0 = b + j * ldb, b1 = b0 + ldb, b2 = b1 + ldb, b3 = b2 + ldb
            var i = 0
            while i + 2 <= m {
                let a0 = a + i * lda, a1 = a0 + lda
                var s00 = Vec8(), s01 = Vec8(), s02 = Vec8(), s03 = Vec8()
                var s10 = Vec8(), s11 = Vec8(), s12 = Vec8(), s13 = Vec8()
                var p = 0
                // Ask for the next block of weight rows, spread over the passes over A, so memory
                // streams while we compute (each pass prefetches one next row, every cache line).
                let prefetchRow = b0 + (4 + ((i >> 1) & 3)) * ldb  // past the end is harmless: prefetches never fault
                while p < k8 {
                    if p & 15 == 0 { bert_prefetch(prefetchRow + p) }
                    let x0 = load8(a0 + p), x1 = load8(a1 + p)
                    let w0 = load8(b0 + p), w1 = load8(b1 + p), w2 = load8(b2 + p), w3 = load8(b3 + p)
                    s00 = madd(s00, x0, w0); s01 = madd(s01, x0, w1); s02 = madd(s02, x0, w2); s03 = madd(s03, x0, w3)
                    s10 = madd(s10, x1, w0); s11 = madd(s11, x1, w1); s12 = madd(s12, x1, w2); s13 = madd(s13, x1, w3)
                    p += 8
                }
                let z0 = bias?[j] ?? 0, z1 = bias?[j + 1] ?? 0, z2 = bias?[j + 2] ?? 0, z3 = bias?[j + 3] ?? 0
                var r00 = z0 + s00.sum(), r01 = z1 + s01.sum(), r02 = z2 + s02.sum(), r03 = z3 + s03.sum()
                var r10 = z0 + s10.sum(), r11 = z1 + s11.sum(), r12 = z2 + s12.sum(), r13 = z3 + s13.sum()
                while p < k {
                    let x0 = a0[p], x1 = a1[p]
                    r00 += x0 * b0[p]; r01 += x0 * b1[p]; r02 += x0 * b2[p]; r03 += x0 * b3[p]
                    r10 += x1 * b0[p]; r11 += x1 * b1[p]; r12 += x1 * b2[p]; r13 += x1 * b3[p]
                    p += 1
                }
                let c0 = c + i * ldc + j, c1 = c0 + ldc
                c0[0] = r00; c0[1] = r01; c0[2] = r02; c0[3] = r03
                c1[0] = r10; c1[1] = r11; c1[2] = r12; c1[3] = r13
                i += 2
            }
            if i < m {
                for q in 0..<4 { c[i * ldc + j + q] = (bias?[j + q] ?? 0) + dot(a + i * lda, b + (j + q) * ldb, k) }
            }
            j += 4
        }
        while j < cols.upperBound {
            for i in 0..<m { c[i * ldc + j] = (bias?[j] ?? 0) + dot(a + i * lda, b + j * ldb, k) }
            j += 1
        }
    }

    @inline(__always)
    static func dot(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ k: Int) -> Float {
        var s = Vec8()
        var p = 0
        while p + 8 <= k { s = madd(s, load8(x + p), load8(y + p)); p += 8 }
        var r = s.sum()
        while p < k { r += x[p] * y[p]; p += 1 }
        return r
    }
}
