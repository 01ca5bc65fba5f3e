// FP32 products with AVX-512 (chosen at run time, as the low-precision kernels are): the plain
// `swift build` targets baseline x86-64, where Swift's own vectors are SSE without FMA, so these
// C kernels carry the instruction set the CPU reports instead (see include/bert_kernels.h).
#include "bert_kernels.h"

#include <math.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define F32_TARGET __attribute__((target("avx512f,avx512vl,fma")))
#endif

int bert_f32_fast(void) {
#if defined(__x86_64__)
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

#if defined(__x86_64__)
// mr rows (1..6) by np panels (1..2) of 16 columns over kc inputs: C = (accumulate ? C : bias or
// 0) + A[:, 0..kc) · panel. A's rows have leading dimension lda; a panel holds 16 columns per
// input (16p + c), panels `stride` floats apart.
F32_TARGET static inline __attribute__((always_inline)) void tile_f32(int mr, int np, int64_t kc, const float *a,
                                                                     int64_t lda, const float *b, int64_t stride,
                                                                     float *c, int64_t ldc, const float *bias,
                                                                     int accumulate) {
    __m512 acc[6][2];
    for (int r = 0; r < mr; r++)
        for (int q = 0; q < np; q++)
            acc[r][q] = accumulate ? _mm512_loadu_ps(c + r * ldc + 16 * q)
                        : bias     ? _mm512_loadu_ps(bias + 16 * q)
                                   : _mm512_setzero_ps();
    for (int64_t p = 0; p < kc; p++) {
        __m512 w0 = _mm512_loadu_ps(b + 16 * p);
        __m512 w1 = np > 1 ? _mm512_loadu_ps(b + stride + 16 * p) : w0;
        for (int r = 0; r < mr; r++) {
            __m512 x = _mm512_set1_ps(a[r * lda + p]);
            acc[r][0] = _mm512_fmadd_ps(x, w0, acc[r][0]);
            if (np > 1) acc[r][1] = _mm512_fmadd_ps(x, w1, acc[r][1]);
        }
    }
    for (int r = 0; r < mr; r++)
        for (int q = 0; q < np; q++) _mm512_storeu_ps(c + r * ldc + 16 * q, acc[r][q]);
}

#define F32_CASE(MR, NP)                                                                                         \
    case (MR) * 4 + (NP):                                                                                        \
        tile_f32(MR, NP, kc, a, lda, b, stride, c, ldc, bias, accumulate);                                       \
        break;

F32_TARGET static void tile_f32_any(int mr, int np, int64_t kc, const float *a, int64_t lda, const float *b,
                                    int64_t stride, float *c, int64_t ldc, const float *bias, int accumulate) {
    switch (mr * 4 + np) {
        F32_CASE(1, 1) F32_CASE(2, 1) F32_CASE(3, 1) F32_CASE(4, 1) F32_CASE(5, 1) F32_CASE(6, 1)
        F32_CASE(1, 2) F32_CASE(2, 2) F32_CASE(3, 2) F32_CASE(4, 2) F32_CASE(5, 2) F32_CASE(6, 2)
    }
}
#endif

void bert_f32_tile(int64_t mr, int64_t kc, const float *a, int64_t lda, const float *panel, float *c, int64_t ldc,
                   const float *bias, int accumulate) {
#if defined(__x86_64__)
    tile_f32_any((int)mr, 1, kc, a, lda, panel, 0, c, ldc, bias, accumulate);
#endif
}

#if defined(__x86_64__)
// The blocking of the packed product: inputs in blocks of up to 256 (six rows of A stay in L1),
// rows in passes of up to 480 (their block of A stays in L2), panels in groups of 8 (128 KB of
// weights in L2 while every row of the pass meets them).
F32_TARGET static void gemm_f32_packed_avx512(const float *a, int64_t lda, const float *packed, int64_t k,
                                              const float *bias, float *c, int64_t ldc, int64_t r0, int64_t r1,
                                              int64_t p0, int64_t p1) {
    int64_t rows = r1 - r0;
    int64_t passes = (rows + 479) / 480;
    int64_t mc = ((rows + passes - 1) / passes + 5) / 6 * 6;
    for (int64_t pc = 0; pc < k;) {
        int64_t blocks = (k - pc + 255) / 256;
        int64_t kc = (k - pc + blocks - 1) / blocks;
        int first = pc == 0;
        for (int64_t ic = r0; ic < r1; ic += mc) {
            int64_t end = ic + mc < r1 ? ic + mc : r1;
            for (int64_t qc = p0; qc < p1; qc += 8) {
                int64_t qend = qc + 8 < p1 ? qc + 8 : p1;
                for (int64_t i = ic; i < end; i += 6) {
                    int mr = (int)(end - i < 6 ? end - i : 6);
                    for (int64_t q = qc; q < qend; q += 2) {
                        int np = (int)(qend - q < 2 ? qend - q : 2);
                        tile_f32_any(mr, np, kc, a + i * lda + pc, lda, packed + q * 16 * k + 16 * pc, 16 * k,
                                     c + i * ldc + 16 * q, ldc, first && bias ? bias + 16 * q : 0, !first);
                    }
                }
            }
        }
        pc += kc;
    }
}
#endif

void bert_gemm_f32_packed(const float *a, int64_t lda, const float *packed, int64_t k, const float *bias, float *c,
                          int64_t ldc, int64_t r0, int64_t r1, int64_t p0, int64_t p1) {
#if defined(__x86_64__)
    gemm_f32_packed_avx512(a, lda, packed, k, bias, c, ldc, r0, r1, p0, p1);
#endif
}

#if defined(__x86_64__)
// Few rows: each weight row is streamed once and meets every row of A while it is in L1 (two
// rows of A against four of W per pass: 8 accumulators); the tail of k is a masked load.
F32_TARGET static void gemm_f32_small_avx512(int64_t m, int64_t k, const float *a, int64_t lda, const float *b,
                                             int64_t ldb, const float *bias, float *c, int64_t ldc, int64_t j0,
                                             int64_t j1) {
    __mmask16 tail = (__mmask16)((1u << (k & 15)) - 1);
    int64_t k16 = k & ~(int64_t)15;
    int64_t j = j0;
    for (; j + 4 <= j1; j += 4) {
        const float *w0 = b + j * ldb, *w1 = w0 + ldb, *w2 = w1 + ldb, *w3 = w2 + ldb;
        int64_t i = 0;
        for (; i + 2 <= m; i += 2) {
            const float *x0 = a + i * lda, *x1 = x0 + lda;
            // The next block of weight rows, one line of it per pass over A, so memory streams
            // while this block computes.
            const float *ahead = w0 + (4 + ((i >> 1) & 3)) * ldb;
            __m512 s[2][4];
            for (int r = 0; r < 2; r++)
                for (int q = 0; q < 4; q++) s[r][q] = _mm512_setzero_ps();
            int64_t p = 0;
            for (; p < k16; p += 16) {
                _mm_prefetch((const char *)(ahead + p), _MM_HINT_T0);
                __m512 a0 = _mm512_loadu_ps(x0 + p), a1 = _mm512_loadu_ps(x1 + p);
                __m512 v0 = _mm512_loadu_ps(w0 + p), v1 = _mm512_loadu_ps(w1 + p);
                __m512 v2 = _mm512_loadu_ps(w2 + p), v3 = _mm512_loadu_ps(w3 + p);
                s[0][0] = _mm512_fmadd_ps(a0, v0, s[0][0]); s[0][1] = _mm512_fmadd_ps(a0, v1, s[0][1]);
                s[0][2] = _mm512_fmadd_ps(a0, v2, s[0][2]); s[0][3] = _mm512_fmadd_ps(a0, v3, s[0][3]);
                s[1][0] = _mm512_fmadd_ps(a1, v0, s[1][0]); s[1][1] = _mm512_fmadd_ps(a1, v1, s[1][1]);
                s[1][2] = _mm512_fmadd_ps(a1, v2, s[1][2]); s[1][3] = _mm512_fmadd_ps(a1, v3, s[1][3]);
            }
            if (tail) {
                __m512 a0 = _mm512_maskz_loadu_ps(tail, x0 + p), a1 = _mm512_maskz_loadu_ps(tail, x1 + p);
                __m512 v0 = _mm512_maskz_loadu_ps(tail, w0 + p), v1 = _mm512_maskz_loadu_ps(tail, w1 + p);
                __m512 v2 = _mm512_maskz_loadu_ps(tail, w2 + p), v3 = _mm512_maskz_loadu_ps(tail, w3 + p);
                s[0][0] = _mm512_fmadd_ps(a0, v0, s[0][0]); s[0][1] = _mm512_fmadd_ps(a0, v1, s[0][1]);
                s[0][2] = _mm512_fmadd_ps(a0, v2, s[0][2]); s[0][3] = _mm512_fmadd_ps(a0, v3, s[0][3]);
                s[1][0] = _mm512_fmadd_ps(a1, v0, s[1][0]); s[1][1] = _mm512_fmadd_ps(a1, v1, s[1][1]);
                s[1][2] = _mm512_fmadd_ps(a1, v2, s[1][2]); s[1][3] = _mm512_fmadd_ps(a1, v3, s[1][3]);
            }
            for (int r = 0; r < 2; r++)
                for (int q = 0; q < 4; q++)
                    c[(i + r) * ldc + j + q] = (bias ? bias[j + q] : 0) + _mm512_reduce_add_ps(s[r][q]);
        }
        for (; i < m; i++) {
            const float *x = a + i * lda;
            __m512 s[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
            int64_t p = 0;
            for (; p < k16; p += 16) {
                __m512 x0 = _mm512_loadu_ps(x + p);
                s[0] = _mm512_fmadd_ps(x0, _mm512_loadu_ps(w0 + p), s[0]);
                s[1] = _mm512_fmadd_ps(x0, _mm512_loadu_ps(w1 + p), s[1]);
                s[2] = _mm512_fmadd_ps(x0, _mm512_loadu_ps(w2 + p), s[2]);
                s[3] = _mm512_fmadd_ps(x0, _mm512_loadu_ps(w3 + p), s[3]);
            }
            if (tail) {
                __m512 x0 = _mm512_maskz_loadu_ps(tail, x + p);
                s[0] = _mm512_fmadd_ps(x0, _mm512_maskz_loadu_ps(tail, w0 + p), s[0]);
                s[1] = _mm512_fmadd_ps(x0, _mm512_maskz_loadu_ps(tail, w1 + p), s[1]);
                s[2] = _mm512_fmadd_ps(x0, _mm512_maskz_loadu_ps(tail, w2 + p), s[2]);
                s[3] = _mm512_fmadd_ps(x0, _mm512_maskz_loadu_ps(tail, w3 + p), s[3]);
            }
            for (int q = 0; q < 4; q++) c[i * ldc + j + q] = (bias ? bias[j + q] : 0) + _mm512_reduce_add_ps(s[q]);
        }
    }
    for (; j < j1; j++) {
        const float *w = b + j * ldb;
        for (int64_t i = 0; i < m; i++) {
            const float *x = a + i * lda;
            __m512 s = _mm512_setzero_ps();
            int64_t p = 0;
            for (; p < k16; p += 16) s = _mm512_fmadd_ps(_mm512_loadu_ps(x + p), _mm512_loadu_ps(w + p), s);
            if (tail) s = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, x + p), _mm512_maskz_loadu_ps(tail, w + p), s);
            c[i * ldc + j] = (bias ? bias[j] : 0) + _mm512_reduce_add_ps(s);
        }
    }
}
#endif

void bert_gemm_f32_small(int64_t m, int64_t k, const float *a, int64_t lda, const float *b, int64_t ldb,
                         const float *bias, float *c, int64_t ldc, int64_t j0, int64_t j1) {
#if defined(__x86_64__)
    gemm_f32_small_avx512(m, k, a, lda, b, ldb, bias, c, ldc, j0, j1);
#endif
}

// ---- Elementwise work of the forward pass: GELU, softmax's exponentials and LayerNorm, with the
// polynomials of SIMDMath.swift (the same constants; here with AVX-512 and FMA).

#if defined(__x86_64__)
// x where it is not past `limit` in the direction of `cmp`, else limit (NaN stays NaN).
#define CLAMP_ABOVE(x, v) _mm512_mask_mov_ps((x), _mm512_cmp_ps_mask((x), _mm512_set1_ps(v), _CMP_GT_OQ), _mm512_set1_ps(v))
#define CLAMP_BELOW(x, v) _mm512_mask_mov_ps((x), _mm512_cmp_ps_mask((x), _mm512_set1_ps(v), _CMP_LT_OQ), _mm512_set1_ps(v))

// e^x, relative error below 2e-7 on [-87, 88]; 0 below -87, clamped above 88.
F32_TARGET static inline __m512 exp16(__m512 x) {
    __mmask16 tiny = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87), _CMP_LT_OQ);
    x = CLAMP_ABOVE(x, 88);
    x = CLAMP_BELOW(x, -87);
    const float shifter = 12582912.0f;  // 1.5·2^23: adding it rounds to an integer in the low bits
    __m512 shifted = _mm512_fmadd_ps(x, _mm512_set1_ps(1.4426950408889634f), _mm512_set1_ps(shifter));
    __m512 n = _mm512_sub_ps(shifted, _mm512_set1_ps(shifter));
    __m512 r = _mm512_fmadd_ps(n, _mm512_set1_ps(-0.693145751953125f), x);
    r = _mm512_fmadd_ps(n, _mm512_set1_ps(-1.4286067653301870e-06f), r);
    __m512 p = _mm512_set1_ps(1.0f / 5040);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1));
    __m512i bits = _mm512_slli_epi32(
        _mm512_add_epi32(_mm512_sub_epi32(_mm512_castps_si512(shifted), _mm512_set1_epi32(0x4B400000)),
                         _mm512_set1_epi32(127)),
        23);
    __m512 result = _mm512_mul_ps(p, _mm512_castsi512_ps(bits));
    return _mm512_mask_mov_ps(result, tiny, _mm512_setzero_ps());
}

// erf(x) = x·P(x²)/Q(x²) on x clamped to [-4, 4]: absolute error below 5e-7.
F32_TARGET static inline __m512 erf16(__m512 x) {
    x = CLAMP_ABOVE(x, 4);
    x = CLAMP_BELOW(x, -4);
    __m512 x2 = _mm512_mul_ps(x, x);
    __m512 p = _mm512_set1_ps(-2.72614225801306e-10f);
    p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(2.77068142495902e-08f));
    p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(-2.10102402082508e-06f));
    p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(-5.69250639462346e-05f));
    p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(-7.34990630326855e-04f));
    p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(-2.95459980854025e-03f));
    p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(-1.60960333262415e-02f));
    __m512 q = _mm512_set1_ps(-1.45660718464996e-05f);
    q = _mm512_fmadd_ps(q, x2, _mm512_set1_ps(-2.13374055278905e-04f));
    q = _mm512_fmadd_ps(q, x2, _mm512_set1_ps(-1.68282697438203e-03f));
    q = _mm512_fmadd_ps(q, x2, _mm512_set1_ps(-7.37332916720468e-03f));
    q = _mm512_fmadd_ps(q, x2, _mm512_set1_ps(-1.42647390514189e-02f));
    return _mm512_div_ps(_mm512_mul_ps(x, p), q);
}

F32_TARGET static inline __m512 gelu16(__m512 x) {
    __m512 e = erf16(_mm512_mul_ps(x, _mm512_set1_ps(0.7071067811865475f)));
    return _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), x), _mm512_add_ps(_mm512_set1_ps(1), e));
}

static inline __mmask16 first(int64_t n) { return (__mmask16)((1u << n) - 1); }

F32_TARGET static void gelu_avx512(const float *x, float *y, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, gelu16(_mm512_loadu_ps(x + i)));
    if (i < n) {
        __mmask16 m = first(n - i);
        _mm512_mask_storeu_ps(y + i, m, gelu16(_mm512_maskz_loadu_ps(m, x + i)));
    }
}

F32_TARGET static float exp_shifted_avx512(float *x, int64_t n) {
    __m512 top = _mm512_set1_ps(-INFINITY);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) top = _mm512_max_ps(top, _mm512_loadu_ps(x + i));
    if (i < n) top = _mm512_max_ps(top, _mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), first(n - i), x + i));
    __m512 m = _mm512_set1_ps(_mm512_reduce_max_ps(top));
    __m512 sum = _mm512_setzero_ps();
    for (i = 0; i + 16 <= n; i += 16) {
        __m512 e = exp16(_mm512_sub_ps(_mm512_loadu_ps(x + i), m));
        _mm512_storeu_ps(x + i, e);
        sum = _mm512_add_ps(sum, e);
    }
    if (i < n) {
        __mmask16 k = first(n - i);
        __m512 e = exp16(_mm512_sub_ps(_mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), k, x + i), m));
        _mm512_mask_storeu_ps(x + i, k, e);
        sum = _mm512_add_ps(sum, e);
    }
    return 1 / _mm512_reduce_add_ps(sum);
}

F32_TARGET static void layer_norm_avx512(const float *x, float *y, const float *gamma, const float *beta, float eps,
                                         int64_t n, float *mean_out, float *rstd_out) {
    __m512 acc = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) acc = _mm512_add_ps(acc, _mm512_loadu_ps(x + i));
    if (i < n) acc = _mm512_add_ps(acc, _mm512_maskz_loadu_ps(first(n - i), x + i));
    float mean = _mm512_reduce_add_ps(acc) / (float)n;
    __m512 m = _mm512_set1_ps(mean);
    acc = _mm512_setzero_ps();
    for (i = 0; i + 16 <= n; i += 16) {
        __m512 d = _mm512_sub_ps(_mm512_loadu_ps(x + i), m);
        acc = _mm512_fmadd_ps(d, d, acc);
    }
    if (i < n) {
        __m512 d = _mm512_maskz_sub_ps(first(n - i), _mm512_maskz_loadu_ps(first(n - i), x + i), m);
        acc = _mm512_fmadd_ps(d, d, acc);
    }
    float rstd = 1 / sqrtf(_mm512_reduce_add_ps(acc) / (float)n + eps);
    __m512 s = _mm512_set1_ps(rstd);
    for (i = 0; i + 16 <= n; i += 16) {
        __m512 v = _mm512_mul_ps(_mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(x + i), m), s), _mm512_loadu_ps(gamma + i));
        _mm512_storeu_ps(y + i, _mm512_add_ps(v, _mm512_loadu_ps(beta + i)));
    }
    if (i < n) {
        __mmask16 k = first(n - i);
        __m512 v = _mm512_mul_ps(_mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), m), s),
                                 _mm512_maskz_loadu_ps(k, gamma + i));
        _mm512_mask_storeu_ps(y + i, k, _mm512_add_ps(v, _mm512_maskz_loadu_ps(k, beta + i)));
    }
    if (mean_out) *mean_out = mean;
    if (rstd_out) *rstd_out = rstd;
}
#endif

void bert_gelu_erf(const float *x, float *y, int64_t n) {
#if defined(__x86_64__)
    gelu_avx512(x, y, n);
#endif
}

float bert_exp_shifted(float *x, int64_t n) {
#if defined(__x86_64__)
    return exp_shifted_avx512(x, n);
#else
    return 0;
#endif
}

void bert_layer_norm(const float *x, float *y, const float *gamma, const float *beta, float eps, int64_t n,
                     float *mean, float *rstd) {
#if defined(__x86_64__)
    layer_norm_avx512(x, y, gamma, beta, eps, n, mean, rstd);
#endif
}
