#ifndef BERT_SUPPORT_H
#define BERT_SUPPORT_H

// What Swift cannot say itself: a software prefetch, so the small-row matrix kernel can ask for the
// next weight rows while it computes with the current ones (the hardware prefetcher alone leaves
// memory idle most of the time there).
static inline void bert_prefetch(const void *address) {
    __builtin_prefetch(address, 0, 3);
}

#endif
