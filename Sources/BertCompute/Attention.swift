import CKernels
import CSupport

// Scaled dot-product attention of one head with the packed micro-kernel. Through BLAS, each head
// is two small products (scores 128×128 over k = 32 for MiniLM, then 128×32 over k = 128), and
// OpenBLAS packs both operands and zeroes C on every call: at 8x128 that made attention about 12%
// of the forward for 5% of its multiply-adds. Here K and V are packed once per head into the
// kernel's panel order (K scaled by 1/√d on the way), and six query rows at a time go through
// scores, softmax and the product with V while their scores are still in L1.

extension BLAS {
    /// Whether `fusedAttention` handles this head size (its products run in panels of 16 columns).
    public static func canFuseAttention(headSize d: Int) -> Bool { d > 0 && d % PackedWeights.panelWidth == 0 }

    /// Floats of scratch one `fusedAttention` call needs for `len` keys.
    public static func fusedAttentionScratch(keys len: Int, headSize d: Int) -> Int {
        let padded = paddedKeys(len)
        return padded * d + len * d + 6 * padded
    }

    /// Keys rounded up to whole panels of 16 (the scores' row length).
    static func paddedKeys(_ len: Int) -> Int { (len + 15) / 16 * 16 }

    /// out[i, :] = softmax(scale · q[i]·Kᵀ) · V for the query rows 0..<rows, over the keys 0..<len.
    /// q, k and v are row-major with leading dimension `ld` (the fused QKV buffer), out has `ldo`.
    /// `scratch` holds `fusedAttentionScratch(keys:headSize:)` floats. d must pass `canFuseAttention`.
    /// `native`: the tiles in CKernels' AVX-512 kernel (only where the CPU has it), else in Swift.
    public static func fusedAttention(
        q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
        ld: Int, keys len: Int, headSize d: Int, rows: Int, scale: Float,
        out: UnsafeMutablePointer<Float>, ldo: Int, scratch: UnsafeMutablePointer<Float>,
        native: Bool = nativeFloatKernels
    ) {
        precondition(
            canFuseAttention(headSize: d), "fusedAttention needs a head size that is a multiple of 16 (got \(d))")
        guard rows > 0 else { return }
        precondition(len > 0, "fusedAttention needs at least one key")
        let padded = paddedKeys(len)
        let keyPanels = scratch  // padded/16 panels of d×16: scale·K[16j + c][p] at j·16d + 16p + c
        let valuePanels = scratch + padded * d  // d/16 panels of len×16: V[p][16j + c] at j·16·len + 16p + c
        let scores = valuePanels + len * d  // 6 rows of `padded`
        // The head's rows of Q, K and V are usually not in cache yet (one 4·d-byte slice of each
        // 12·H-byte QKV row): ask for them a few rows ahead while packing K.
        let ahead = 8
        for key in 0..<min(ahead, len) { prefetchRow(q, k, v, key, ld: ld, d: d, rows: rows) }
        for key in 0..<padded {
            let panel = keyPanels + (key / 16) * 16 * d + key % 16
            if key < len {
                if key + ahead < len { prefetchRow(q, k, v, key + ahead, ld: ld, d: d, rows: rows) }
                let row = k + key * ld
                for p in 0..<d { panel[16 * p] = row[p] * scale }
            } else {
                for p in 0..<d { panel[16 * p] = 0 }  // padding keys: never read by softmax or V
            }
        }
        for j in 0..<(d / 16) {
            var dst = valuePanels + j * 16 * len
            var src = v + 16 * j
            for _ in 0..<len {
                store8(load8(src), dst); store8(load8(src + 8), dst + 8)
                dst += 16
                src += ld
            }
        }
        // Softmax's division is applied to the d outputs of a row rather than to its len weights.
        var inverseSums = SIMD8<Float>()
        let native = native && nativeFloatKernels
        var i = 0
        while i + 6 <= rows {
            for j in 0..<(padded / 16) {
                tile(
                    6, kc: d, a: q + i * ld, lda: ld, b: keyPanels + j * 16 * d, c: scores + 16 * j, ldc: padded, native
                )
            }
            for r in 0..<6 { inverseSums[r] = Kernels.expShifted(scores + r * padded, count: len) }
            for j in 0..<(d / 16) {
                tile(
                    6, kc: len, a: scores, lda: padded, b: valuePanels + j * 16 * len, c: out + i * ldo + 16 * j,
                    ldc: ldo, native)
            }
            for r in 0..<6 { Kernels.scale(out + (i + r) * ldo, count: d, by: inverseSums[r]) }
            i += 6
        }
        while i < rows {
            for j in 0..<(padded / 16) {
                tile(1, kc: d, a: q + i * ld, lda: ld, b: keyPanels + j * 16 * d, c: scores + 16 * j, ldc: 0, native)
            }
            let inverseSum = Kernels.expShifted(scores, count: len)
            for j in 0..<(d / 16) {
                tile(
                    1, kc: len, a: scores, lda: 0, b: valuePanels + j * 16 * len, c: out + i * ldo + 16 * j, ldc: 0,
                    native)
            }
            Kernels.scale(out + i * ldo, count: d, by: inverseSum)
            i += 1
        }
    }

    /// C[0..<rows, 0..<16] = A · panel over `kc` inputs (rows is 6 or 1): CKernels' tile when
    /// `native`, else the Swift micro-kernel.
    @inline(__always)
    static func tile(
        _ rows: Int, kc: Int, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>,
        c: UnsafeMutablePointer<Float>, ldc: Int, _ native: Bool
    ) {
        if native {
            bert_f32_tile(Int64(rows), Int64(kc), a, Int64(lda), b, c, Int64(ldc), nil, 0)
        } else if rows == 6 {
            kernel6x16(kc: kc, a: a, lda: lda, b: b, c: c, ldc: ldc, bias: nil, accumulate: false)
        } else {
            kernel1x16(kc: kc, a: a, b: b, c: c, bias: nil, accumulate: false)
        }
    }

    /// Prefetches row `r` of the head's K and V slices (and of Q when it has that row).
    @inline(__always)
    static func prefetchRow(
        _ q: UnsafePointer<Float>, _ k: UnsafePointer<Float>, _ v: UnsafePointer<Float>, _ r: Int,
        ld: Int, d: Int, rows: Int
    ) {
        var p = 0
        while p < d {
            bert_prefetch(k + r * ld + p)
            bert_prefetch(v + r * ld + p)
            if r < rows { bert_prefetch(q + r * ld + p) }
            p += 16
        }
    }
}
