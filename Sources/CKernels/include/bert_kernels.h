#ifndef BERT_KERNELS_H
#define BERT_KERNELS_H

#include <stdint.h>

// Low-precision matrix products for inference, chosen at run time from what the CPU reports:
// each fast kernel is compiled for its instructions with a per-function target attribute (no
// build flags), and a portable C version of the same arithmetic runs everywhere else.
//
// Both compute C[i, j] = bias[j] + (A[i, :] · W[j, :]) for rows i of A (float, row-major) and
// output columns j in 16-column panels of a W packed once ahead of time.

// What this CPU runs: 1 when the instruction set's kernel is used, 0 when the portable one is.
int bert_cpu_has_vnni(void);   // AVX512_VNNI (vpdpbusd: u8 x s8 -> s32)
int bert_cpu_has_bf16(void);   // AVX512_BF16 (vdpbf16ps: bf16 pairs -> f32)

// ---- int8: weights symmetric per output row (s8, scale sw[j]); activations asymmetric per row
// (u8 = round(a / sa[i]) + z[i], the range [min, max] of the row, 0 included, over 0..255), since
// vpdpbusd multiplies unsigned by signed bytes. The zero point's share, z[i] · Σ_p W[j, p], is
// subtracted with the weights' row sums `wsum[j]`.

// Packed W: panel q (16 output rows) holds, for each group g of 4 inputs, 64 bytes: row 16q + c's
// inputs 4g..4g+3 at byte 64g + 4c. k4 = ceil(k / 4) groups; missing inputs are 0.
void bert_pack_s8(const int8_t *w, int64_t n, int64_t k, int8_t *packed);

// Quantizes rows [r0, r1) of A (m x k, leading dimension lda) into q (leading dimension ldq =
// 4 * k4, padded with the zero point), with each row's scale and zero point. An element that is
// not within [-limit, limit] (NaN included) is left out: it counts as 0, and the caller multiplies
// it in float (bert_add_outliers), and its column is marked in `outliers` (k bytes, set to 1;
// never cleared). Each row's result depends on that row alone.
void bert_quantize_rows_u8(const float *a, int64_t lda, int64_t k, int64_t r0, int64_t r1, float limit,
                           uint8_t *q, int64_t ldq, float *scales, int32_t *zeros, uint8_t *outliers);

// The elements left out, in float: C[i, :] += ao[i, t] * wt[t, :] for rows i in [r0, r1) and each
// t in [0, o) with ao[i, t] != 0 (ao: m x o, row-major; wt: o x n, row-major), in order of t.
void bert_add_outliers(const float *ao, int64_t o, const float *wt, int64_t n, float *c, int64_t ldc, int64_t r0,
                       int64_t r1);

// C rows [r0, r1), panels [p0, p1) of the int8 product. packed: bert_pack_s8's layout; k4: its
// groups; wscale and wsum: per output row of W; ascale and azero: per row of A.
void bert_gemm_u8s8(const uint8_t *q, int64_t ldq, const float *ascale, const int32_t *azero, const int8_t *packed,
                    int64_t k4, const float *wscale, const int32_t *wsum, const float *bias, float *c, int64_t ldc,
                    int64_t r0, int64_t r1, int64_t p0, int64_t p1);

// ---- bf16: weights and activations rounded to bfloat16 (nearest, ties to even), products
// accumulated in float.

// Packed W: panel q holds, for each pair g of inputs, 64 bytes: row 16q + c's inputs 2g, 2g+1 as
// bf16 at byte 64g + 4c. k2 = ceil(k / 2) pairs; a missing input is 0.
void bert_pack_bf16(const float *w, int64_t n, int64_t k, uint16_t *packed);

// Rows [r0, r1) of A as bf16 into b (leading dimension ldb = 2 * k2, padded with 0).
void bert_convert_rows_bf16(const float *a, int64_t lda, int64_t k, int64_t r0, int64_t r1, uint16_t *b,
                            int64_t ldb);

// C rows [r0, r1), panels [p0, p1) of the bf16 product.
void bert_gemm_bf16(const uint16_t *a, int64_t lda, const uint16_t *packed, int64_t k2, const float *bias, float *c,
                    int64_t ldc, int64_t r0, int64_t r1, int64_t p0, int64_t p1);

// The portable kernels, whatever the CPU (the tests check the fast ones against them too).
void bert_quantize_rows_u8_portable(const float *a, int64_t lda, int64_t k, int64_t r0, int64_t r1, float limit,
                                    uint8_t *q, int64_t ldq, float *scales, int32_t *zeros, uint8_t *outliers);
void bert_convert_rows_bf16_portable(const float *a, int64_t lda, int64_t k, int64_t r0, int64_t r1, uint16_t *b,
                                     int64_t ldb);
void bert_gemm_u8s8_portable(const uint8_t *q, int64_t ldq, const float *ascale, const int32_t *azero,
                             const int8_t *packed, int64_t k4, const float *wscale, const int32_t *wsum,
                             const float *bias, float *c, int64_t ldc, int64_t r0, int64_t r1, int64_t p0,
                             int64_t p1);
void bert_gemm_bf16_portable(const uint16_t *a, int64_t lda, const uint16_t *packed, int64_t k2, const float *bias,
                             float *c, int64_t ldc, int64_t r0, int64_t r1, int64_t p0, int64_t p1);

// ---- FP32 with AVX-512 and FMA, for the build that targets baseline x86-64 (where Swift's own
// vectors are SSE without FMA). Only when bert_f32_fast() is 1; callers keep their own otherwise.
int bert_f32_fast(void);

// One tile against a panel of 16 columns (PackedWeights' layout: 16 floats per input): C[r, 0..16)
// = (accumulate ? C : bias, or 0 when bias is NULL) + Σ_p A[r, p] · panel[16p + c], for rows
// r < mr (1 to 6) and inputs p < kc.
void bert_f32_tile(int64_t mr, int64_t kc, const float *a, int64_t lda, const float *panel, float *c, int64_t ldc,
                   const float *bias, int accumulate);

// C rows [r0, r1), panels [p0, p1) of bias + A · Wᵀ with W packed (panel q: W[16q + c][p] at
// q·16k + 16p + c). Overwrites C.
void bert_gemm_f32_packed(const float *a, int64_t lda, const float *packed, int64_t k, const float *bias, float *c,
                          int64_t ldc, int64_t r0, int64_t r1, int64_t p0, int64_t p1);

// Few rows: C[i, j] = bias[j] + A[i, :] · B[j, :] for rows i < m and columns j in [j0, j1), B
// row-major (n x k, leading dimension ldb) as torch.nn.Linear stores it. Overwrites C.
void bert_gemm_f32_small(int64_t m, int64_t k, const float *a, int64_t lda, const float *b, int64_t ldb,
                         const float *bias, float *c, int64_t ldc, int64_t j0, int64_t j1);

// y[i] = GELU(x[i]) = x·Φ(x) (erf form) for i < n; y may equal x.
void bert_gelu_erf(const float *x, float *y, int64_t n);

// x[i] = e^(x[i] − max x) for i < n (n >= 1); returns 1 / Σ x[i].
float bert_exp_shifted(float *x, int64_t n);

// One row's LayerNorm: y = (x − mean) / √(var + eps) · gamma + beta (biased variance); y may equal
// x; mean and rstd (1/√(var + eps)) are stored when not NULL.
void bert_layer_norm(const float *x, float *y, const float *gamma, const float *beta, float eps, int64_t n,
                     float *mean, float *rstd);

// Float to bfloat16, nearest with ties to even (NaN stays NaN).
static inline uint16_t bert_bf16_from_float(float x) {
    union { float f; uint32_t u; } v = {x};
    if ((v.u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((v.u >> 16) | 0x40);
    uint32_t rounding = 0x7fffu + ((v.u >> 16) & 1u);
    return (uint16_t)((v.u + rounding) >> 16);
}

static inline float bert_float_from_bf16(uint16_t b) {
    union { uint32_t u; float f; } v = {(uint32_t)b << 16};
    return v.f;
}

#endif
