// Low-precision matrix products (see include/bert_kernels.h). The AVX-512 kernels carry their
// instruction sets in per-function target attributes, so this file builds with no flags and the
// functions run only on a CPU that reports those sets (checked once, at the first call).
#include "bert_kernels.h"

#include <math.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define BERT_X86 1
#define VNNI_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))
#define BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
#define BW_TARGET __attribute__((target("avx512f,avx512bw,avx512vl")))
#endif

// __builtin_cpu_supports reads the CPU model the runtime filled in at load: cheap enough per call.
int bert_cpu_has_vnni(void) {
#if BERT_X86
    return __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl");
#else
    return 0;
#endif
}

int bert_cpu_has_bf16(void) {
#if BERT_X86
    return __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl");
#else
    return 0;
#endif
}

// ---------------------------------------------------------------------------------------- int8

void bert_pack_s8(const int8_t *w, int64_t n, int64_t k, int8_t *packed) {
    int64_t k4 = (k + 3) / 4;
    for (int64_t q = 0; q < n / 16; q++) {
        int8_t *panel = packed + q * k4 * 64;
        for (int64_t g = 0; g < k4; g++)
            for (int c = 0; c < 16; c++)
                for (int e = 0; e < 4; e++) {
                    int64_t p = 4 * g + e;
                    panel[64 * g + 4 * c + e] = p < k ? w[(16 * q + c) * k + p] : 0;
                }
    }
}

void bert_add_outliers(const float *ao, int64_t o, const float *wt, int64_t n, float *c, int64_t ldc, int64_t r0,
                       int64_t r1) {
    for (int64_t i = r0; i < r1; i++) {
        float *row = c + i * ldc;
        for (int64_t t = 0; t < o; t++) {
            float v = ao[i * o + t];
            if (v == 0) continue;
            const float *w = wt + t * n;
            for (int64_t j = 0; j < n; j++) row[j] += v * w[j];  // vectorised by clang
        }
    }
}

// One row's scale and zero point from its range (0 included, so that 0 is exact: padding, and
// the skipped columns).
static inline void row_range(float lo, float hi, float *scale, int32_t *zero) {
    if (lo > 0) lo = 0;
    if (hi < 0) hi = 0;
    float s = hi > lo ? (hi - lo) / 255.0f : 1.0f;
    int32_t z = (int32_t)nearbyintf(-lo / s);
    *scale = s;
    *zero = z < 0 ? 0 : (z > 255 ? 255 : z);
}

static inline uint8_t quantize_one(float x, float inverse, int32_t zero) {
    int32_t v = (int32_t)nearbyintf(x * inverse) + zero;
    return (uint8_t)(v < 0 ? 0 : (v > 255 ? 255 : v));
}

// An element within the int8 range's limit, else 0 (it is multiplied in float).
static inline float kept(float x, float limit) { return fabsf(x) <= limit ? x : 0; }

void bert_quantize_rows_u8_portable(const float *a, int64_t lda, int64_t k, int64_t r0, int64_t r1, float limit,
                                    uint8_t *q, int64_t ldq, float *scales, int32_t *zeros, uint8_t *outliers) {
    for (int64_t i = r0; i < r1; i++) {
        const float *row = a + i * lda;
        float lo = 0, hi = 0;
        for (int64_t p = 0; p < k; p++) {
            if (!(fabsf(row[p]) <= limit)) outliers[p] = 1;
            lo = fminf(lo, kept(row[p], limit));
            hi = fmaxf(hi, kept(row[p], limit));
        }
        float scale;
        int32_t zero;
        row_range(lo, hi, &scale, &zero);
        float inverse = 1.0f / scale;
        uint8_t *out = q + i * ldq;
        for (int64_t p = 0; p < k; p++) out[p] = quantize_one(kept(row[p], limit), inverse, zero);
        for (int64_t p = k; p < ldq; p++) out[p] = (uint8_t)zero;
        scales[i] = scale;
        zeros[i] = zero;
    }
}

#if BERT_X86
// 16 inputs of a row with those past the limit zeroed (0 is in every row's range and quantizes
// to the zero point, so a left-out element adds nothing). The comparison is ordered: NaN is out.
BW_TARGET static inline __m512 load_kept(const float *row, __m512 limit, int64_t p) {
    __m512 x = _mm512_loadu_ps(row + p);
    __mmask16 in = _mm512_cmp_ps_mask(_mm512_abs_ps(x), limit, _CMP_LE_OQ);
    return _mm512_maskz_mov_ps(in, x);
}

// The same, marking the columns of the inputs left out (rare: BERT's few outlier features).
BW_TARGET static inline __m512 load_kept_marking(const float *row, __m512 limit, int64_t p, uint8_t *outliers) {
    __m512 x = _mm512_loadu_ps(row + p);
    __mmask16 in = _mm512_cmp_ps_mask(_mm512_abs_ps(x), limit, _CMP_LE_OQ);
    if (in != 0xffff)
        for (int e = 0; e < 16; e++)
            if (!((in >> e) & 1)) outliers[p + e] = 1;
    return _mm512_maskz_mov_ps(in, x);
}

BW_TARGET static void quantize_rows_avx512(const float *a, int64_t lda, int64_t k, int64_t r0, int64_t r1,
                                           float limit, uint8_t *q, int64_t ldq, float *scales, int32_t *zeros,
                                           uint8_t *outliers) {
    __m512 vlimit = _mm512_set1_ps(limit);
    for (int64_t i = r0; i < r1; i++) {
        const float *row = a + i * lda;
        __m512 vlo = _mm512_setzero_ps(), vhi = _mm512_setzero_ps();
        int64_t p = 0;
        for (; p + 16 <= k; p += 16) {
            __m512 x = load_kept_marking(row, vlimit, p, outliers);
            vlo = _mm512_min_ps(vlo, x);
            vhi = _mm512_max_ps(vhi, x);
        }
        float lo = _mm512_reduce_min_ps(vlo), hi = _mm512_reduce_max_ps(vhi);
        for (; p < k; p++) {
            if (!(fabsf(row[p]) <= limit)) outliers[p] = 1;
            lo = fminf(lo, kept(row[p], limit));
            hi = fmaxf(hi, kept(row[p], limit));
        }
        float scale;
        int32_t zero;
        row_range(lo, hi, &scale, &zero);
        float inverse = 1.0f / scale;
        __m512 inv = _mm512_set1_ps(inverse);
        __m512i z = _mm512_set1_epi32(zero), top = _mm512_set1_epi32(255), bottom = _mm512_setzero_si512();
        uint8_t *out = q + i * ldq;
        for (p = 0; p + 16 <= k; p += 16) {
            // Rounded to nearest (even), as nearbyintf: the default MXCSR mode.
            __m512i v = _mm512_add_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(load_kept(row, vlimit, p), inv)), z);
            v = _mm512_min_epi32(_mm512_max_epi32(v, bottom), top);
            _mm_storeu_si128((__m128i *)(out + p), _mm512_cvtepi32_epi8(v));
        }
        for (; p < k; p++) out[p] = quantize_one(kept(row[p], limit), inverse, zero);
        for (p = k; p < ldq; p++) out[p] = (uint8_t)zero;
        scales[i] = scale;
        zeros[i] = zero;
    }
}
#endif

void bert_quantize_rows_u8(const float *a, int64_t lda, int64_t k, int64_t r0, int64_t r1, float limit,
                           uint8_t *q, int64_t ldq, float *scales, int32_t *zeros, uint8_t *outliers) {
#if BERT_X86
    if (bert_cpu_has_vnni()) {
        quantize_rows_avx512(a, lda, k, r0, r1, limit, q, ldq, scales, zeros, outliers);
        return;
    }
#endif
    bert_quantize_rows_u8_portable(a, lda, k, r0, r1, limit, q, ldq, scales, zeros, outliers);
}

void bert_gemm_u8s8_portable(const uint8_t *q, int64_t ldq, const float *ascale, const int32_t *azero,
                             const int8_t *packed, int64_t k4, const float *wscale, const int32_t *wsum,
                             const float *bias, float *c, int64_t ldc, int64_t r0, int64_t r1, int64_t p0,
                             int64_t p1) {
    for (int64_t i = r0; i < r1; i++) {
        const uint8_t *arow = q + i * ldq;
        for (int64_t panel = p0; panel < p1; panel++) {
            const int8_t *w = packed + panel * k4 * 64;
            for (int col = 0; col < 16; col++) {
                int32_t acc = 0;
                for (int64_t g = 0; g < k4; g++)
                    for (int e = 0; e < 4; e++) acc += (int32_t)arow[4 * g + e] * (int32_t)w[64 * g + 4 * col + e];
                int64_t j = panel * 16 + col;
                c[i * ldc + j] = fmaf((float)(acc - azero[i] * wsum[j]), wscale[j] * ascale[i], bias[j]);
            }
        }
    }
}

#if BERT_X86
// One tile: mr rows (up to 6) by np panels (up to 4) of 16 columns, accumulated over every input
// group in registers (24 accumulators at most), then dequantized and stored. Inlined with constant
// mr and np, so every loop unrolls and the accumulators stay in registers.
VNNI_TARGET static inline __attribute__((always_inline)) void tile_u8s8(
    const uint8_t *q, int64_t ldq, const float *ascale, const int32_t *azero, const int8_t *packed, int64_t k4,
    const float *wscale, const int32_t *wsum, const float *bias, float *c, int64_t ldc, int64_t i0, int mr,
    int64_t panel0, int np) {
    __m512i acc[6][4];
    for (int r = 0; r < mr; r++)
        for (int p = 0; p < np; p++) acc[r][p] = _mm512_setzero_si512();
    const int8_t *w[4];
    for (int p = 0; p < np; p++) w[p] = packed + (panel0 + p) * k4 * 64;
    const uint8_t *arow[6];
    for (int r = 0; r < mr; r++) arow[r] = q + (i0 + r) * ldq;
    for (int64_t g = 0; g < k4; g++) {
        __m512i b[4];
        for (int p = 0; p < np; p++) b[p] = _mm512_loadu_si512((const void *)(w[p] + 64 * g));
        for (int r = 0; r < mr; r++) {
            int32_t four;
            memcpy(&four, arow[r] + 4 * g, 4);
            __m512i a = _mm512_set1_epi32(four);
            for (int p = 0; p < np; p++) acc[r][p] = _mm512_dpbusd_epi32(acc[r][p], a, b[p]);
        }
    }
    for (int p = 0; p < np; p++) {
        int64_t col = (panel0 + p) * 16;
        __m512 ws = _mm512_loadu_ps(wscale + col), bs = _mm512_loadu_ps(bias + col);
        __m512i sums = _mm512_loadu_si512((const void *)(wsum + col));
        for (int r = 0; r < mr; r++) {
            __m512 s = _mm512_mul_ps(ws, _mm512_set1_ps(ascale[i0 + r]));
            __m512i comp = _mm512_mullo_epi32(sums, _mm512_set1_epi32(azero[i0 + r]));
            __m512 v = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(acc[r][p], comp)), s, bs);
            _mm512_storeu_ps(c + (i0 + r) * ldc + col, v);
        }
    }
}

#define U8S8_CASE(MR, NP)                                                                                        \
    case (MR) * 8 + (NP):                                                                                        \
        tile_u8s8(q, ldq, ascale, azero, packed, k4, wscale, wsum, bias, c, ldc, i, MR, panel, NP);              \
        break;
#define U8S8_ROW(MR) U8S8_CASE(MR, 1) U8S8_CASE(MR, 2) U8S8_CASE(MR, 3) U8S8_CASE(MR, 4)

VNNI_TARGET static void gemm_u8s8_vnni(const uint8_t *q, int64_t ldq, const float *ascale, const int32_t *azero,
                                       const int8_t *packed, int64_t k4, const float *wscale, const int32_t *wsum,
                                       const float *bias, float *c, int64_t ldc, int64_t r0, int64_t r1, int64_t p0,
                                       int64_t p1) {
    // Rows in blocks that stay in L2 (48 rows of up to 4 KB), meeting every group of 4 panels.
    for (int64_t rb = r0; rb < r1; rb += 48) {
        int64_t re = rb + 48 < r1 ? rb + 48 : r1;
        for (int64_t panel = p0; panel < p1; panel += 4) {
            int np = (int)(p1 - panel < 4 ? p1 - panel : 4);
            for (int64_t i = rb; i < re; i += 6) {
                int mr = (int)(re - i < 6 ? re - i : 6);
                switch (mr * 8 + np) {
                    U8S8_ROW(1) U8S8_ROW(2) U8S8_ROW(3) U8S8_ROW(4) U8S8_ROW(5) U8S8_ROW(6)
                }
            }
        }
    }
}
#endif

void bert_gemm_u8s8(const uint8_t *q, int64_t ldq, const float *ascale, const int32_t *azero, const int8_t *packed,
                    int64_t k4, const float *wscale, const int32_t *wsum, const float *bias, float *c, int64_t ldc,
                    int64_t r0, int64_t r1, int64_t p0, int64_t p1) {
#if BERT_X86
    if (bert_cpu_has_vnni()) {
        gemm_u8s8_vnni(q, ldq, ascale, azero, packed, k4, wscale, wsum, bias, c, ldc, r0, r1, p0, p1);
        return;
    }
#endif
    bert_gemm_u8s8_portable(q, ldq, ascale, azero, packed, k4, wscale, wsum, bias, c, ldc, r0, r1, p0, p1);
}

// ---------------------------------------------------------------------------------------- bf16

void bert_pack_bf16(const float *w, int64_t n, int64_t k, uint16_t *packed) {
    int64_t k2 = (k + 1) / 2;
    for (int64_t q = 0; q < n / 16; q++) {
        uint16_t *panel = packed + q * k2 * 32;
        for (int64_t g = 0; g < k2; g++)
            for (int c = 0; c < 16; c++)
                for (int e = 0; e < 2; e++) {
                    int64_t p = 2 * g + e;
                    panel[32 * g + 2 * c + e] = p < k ? bert_bf16_from_float(w[(16 * q + c) * k + p]) : 0;
                }
    }
}

#if BERT_X86
// The same rounding as bert_bf16_from_float, 16 at a time; returns how many inputs it converted.
BW_TARGET static int64_t convert_row_bf16_avx512(const float *row, int64_t k, uint16_t *out) {
    __m512i half = _mm512_set1_epi32(0x7fff), one = _mm512_set1_epi32(1);
    int64_t p = 0;
    for (; p + 16 <= k; p += 16) {
        __m512i u = _mm512_castps_si512(_mm512_loadu_ps(row + p));
        __m512i r = _mm512_add_epi32(half, _mm512_and_si512(_mm512_srli_epi32(u, 16), one));
        __m512i v = _mm512_srli_epi32(_mm512_add_epi32(u, r), 16);
        _mm256_storeu_si256((__m256i *)(out + p), _mm512_cvtepi32_epi16(v));
    }
    return p;
}
#endif

static void convert_rows_bf16(const float *a, int64_t lda, int64_t k, int64_t r0, int64_t r1, uint16_t *b,
                              int64_t ldb, int fast) {
    for (int64_t i = r0; i < r1; i++) {
        const float *row = a + i * lda;
        uint16_t *out = b + i * ldb;
        int64_t p = 0;
#if BERT_X86
        if (fast && bert_cpu_has_bf16()) p = convert_row_bf16_avx512(row, k, out);
#endif
        for (; p < k; p++) out[p] = bert_bf16_from_float(row[p]);
        for (; p < ldb; p++) out[p] = 0;
    }
}

void bert_convert_rows_bf16(const float *a, int64_t lda, int64_t k, int64_t r0, int64_t r1, uint16_t *b,
                            int64_t ldb) {
    convert_rows_bf16(a, lda, k, r0, r1, b, ldb, 1);
}

void bert_convert_rows_bf16_portable(const float *a, int64_t lda, int64_t k, int64_t r0, int64_t r1, uint16_t *b,
                                     int64_t ldb) {
    convert_rows_bf16(a, lda, k, r0, r1, b, ldb, 0);
}

void bert_gemm_bf16_portable(const uint16_t *a, int64_t lda, const uint16_t *packed, int64_t k2, const float *bias,
                             float *c, int64_t ldc, int64_t r0, int64_t r1, int64_t p0, int64_t p1) {
    for (int64_t i = r0; i < r1; i++) {
        const uint16_t *arow = a + i * lda;
        for (int64_t panel = p0; panel < p1; panel++) {
            const uint16_t *w = packed + panel * k2 * 32;
            for (int col = 0; col < 16; col++) {
                float acc = 0;
                for (int64_t g = 0; g < k2; g++) {
                    // As vdpbf16ps: the odd product, then the even one, each added with rounding.
                    acc += bert_float_from_bf16(arow[2 * g + 1]) * bert_float_from_bf16(w[32 * g + 2 * col + 1]);
                    acc += bert_float_from_bf16(arow[2 * g]) * bert_float_from_bf16(w[32 * g + 2 * col]);
                }
                int64_t j = panel * 16 + col;
                c[i * ldc + j] = acc + bias[j];
            }
        }
    }
}

#if BERT_X86
BF16_TARGET static inline __attribute__((always_inline)) void tile_bf16(const uint16_t *a, int64_t lda,
                                                                       const uint16_t *packed, int64_t k2,
                                                                       const float *bias, float *c, int64_t ldc,
                                                                       int64_t i0, int mr, int64_t panel0, int np) {
    __m512 acc[6][4];
    for (int r = 0; r < mr; r++)
        for (int p = 0; p < np; p++) acc[r][p] = _mm512_setzero_ps();
    const uint16_t *w[4];
    for (int p = 0; p < np; p++) w[p] = packed + (panel0 + p) * k2 * 32;
    const uint16_t *arow[6];
    for (int r = 0; r < mr; r++) arow[r] = a + (i0 + r) * lda;
    for (int64_t g = 0; g < k2; g++) {
        __m512bh b[4];
        for (int p = 0; p < np; p++) b[p] = (__m512bh)_mm512_loadu_si512((const void *)(w[p] + 32 * g));
        for (int r = 0; r < mr; r++) {
            int32_t two;
            memcpy(&two, arow[r] + 2 * g, 4);
            __m512bh x = (__m512bh)_mm512_set1_epi32(two);
            for (int p = 0; p < np; p++) acc[r][p] = _mm512_dpbf16_ps(acc[r][p], x, b[p]);
        }
    }
    for (int p = 0; p < np; p++) {
        int64_t col = (panel0 + p) * 16;
        __m512 bs = _mm512_loadu_ps(bias + col);
        for (int r = 0; r < mr; r++) _mm512_storeu_ps(c + (i0 + r) * ldc + col, _mm512_add_ps(acc[r][p], bs));
    }
}

#define BF16_CASE(MR, NP)                                                                                        \
    case (MR) * 8 + (NP):                                                                                        \
        tile_bf16(a, lda, packed, k2, bias, c, ldc, i, MR, panel, NP);                                           \
        break;
#define BF16_ROW(MR) BF16_CASE(MR, 1) BF16_CASE(MR, 2) BF16_CASE(MR, 3) BF16_CASE(MR, 4)

BF16_TARGET static void gemm_bf16_avx512(const uint16_t *a, int64_t lda, const uint16_t *packed, int64_t k2,
                                         const float *bias, float *c, int64_t ldc, int64_t r0, int64_t r1, int64_t p0,
                                         int64_t p1) {
    for (int64_t rb = r0; rb < r1; rb += 24) {
        int64_t re = rb + 24 < r1 ? rb + 24 : r1;
        for (int64_t panel = p0; panel < p1; panel += 4) {
            int np = (int)(p1 - panel < 4 ? p1 - panel : 4);
            for (int64_t i = rb; i < re; i += 6) {
                int mr = (int)(re - i < 6 ? re - i : 6);
                switch (mr * 8 + np) {
                    BF16_ROW(1) BF16_ROW(2) BF16_ROW(3) BF16_ROW(4) BF16_ROW(5) BF16_ROW(6)
                }
            }
        }
    }
}
#endif

void bert_gemm_bf16(const uint16_t *a, int64_t lda, const uint16_t *packed, int64_t k2, const float *bias, float *c,
                    int64_t ldc, int64_t r0, int64_t r1, int64_t p0, int64_t p1) {
#if BERT_X86
    if (bert_cpu_has_bf16()) {
        gemm_bf16_avx512(a, lda, packed, k2, bias, c, ldc, r0, r1, p0, p1);
        return;
    }
#endif
    bert_gemm_bf16_portable(a, lda, packed, k2, bias, c, ldc, r0, r1, p0, p1);
}
