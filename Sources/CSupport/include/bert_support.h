#ifndef BERT_SUPPORT_H
#define BERT_SUPPORT_H

#include <stdint.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

// What Swift cannot say itself: a software prefetch, so the small-row matrix kernel can ask for the
// next weight rows while it computes with the current ones (the hardware prefetcher alone leaves
// memory idle most of the time there).
static inline void bert_prefetch(const void *address) {
    __builtin_prefetch(address, 0, 3);
}

// The classes of 64 ASCII bytes as bit masks (bit i for byte i), for the tokenizer's fast path:
// letters and digits, whitespace (space, tab, line feed, carriage return), and the other printable
// bytes 0x21...0x7E (BERT's ASCII punctuation). A byte in none of them (a control character, a
// byte of a multi-byte character) takes the tokenizer's general path. Swift has no way to turn a
// vector comparison into a bit mask (movemask), hence C.
typedef struct {
    uint64_t alnum;
    uint64_t space;
    uint64_t punct;
} bert_ascii_classes;

static inline bert_ascii_classes bert_classify_ascii64(const uint8_t *p) {
    bert_ascii_classes r = {0, 0, 0};
#if defined(__SSE2__)
    for (int k = 0; k < 4; k++) {
        __m128i v = _mm_loadu_si128((const __m128i *)(p + 16 * k));
        // Signed byte comparisons: bytes >= 0x80 are negative and fall in no class.
        __m128i digit = _mm_and_si128(_mm_cmpgt_epi8(v, _mm_set1_epi8('0' - 1)), _mm_cmpgt_epi8(_mm_set1_epi8('9' + 1), v));
        __m128i folded = _mm_or_si128(v, _mm_set1_epi8(0x20));
        __m128i letter = _mm_and_si128(_mm_cmpgt_epi8(folded, _mm_set1_epi8('a' - 1)), _mm_cmpgt_epi8(_mm_set1_epi8('z' + 1), folded));
        __m128i space = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8(' ')), _mm_cmpeq_epi8(v, _mm_set1_epi8('\t'))),
                                     _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('\n')), _mm_cmpeq_epi8(v, _mm_set1_epi8('\r'))));
        __m128i printable = _mm_and_si128(_mm_cmpgt_epi8(v, _mm_set1_epi8(0x20)), _mm_cmpgt_epi8(_mm_set1_epi8(0x7F), v));
        uint64_t a = (uint16_t)_mm_movemask_epi8(_mm_or_si128(digit, letter));
        uint64_t s = (uint16_t)_mm_movemask_epi8(space);
        uint64_t q = (uint16_t)_mm_movemask_epi8(printable);
        r.alnum |= a << (16 * k);
        r.space |= s << (16 * k);
        r.punct |= (q & ~a) << (16 * k);
    }
#else
    for (int i = 0; i < 64; i++) {
        uint8_t b = p[i], f = b | 0x20;
        uint64_t bit = (uint64_t)1 << i;
        if ((b >= '0' && b <= '9') || (f >= 'a' && f <= 'z')) r.alnum |= bit;
        else if (b == ' ' || b == '\t' || b == '\n' || b == '\r') r.space |= bit;
        else if (b > 0x20 && b < 0x7F) r.punct |= bit;
    }
#endif
    return r;
}

#endif
