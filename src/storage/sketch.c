/* The layered storage's frequency sketch (sketch.h says what and why). */
#include "sketch.h"

#include <stdbool.h>
#include <string.h>

#define WORDS_PER_BLOCK 8   /* 64 bytes: one cache line */
#define COUNTERS_PER_WORD 16
#define COUNTER_MAX 15u
#define HALVE_MASK 0x7777777777777777u /* each counter's top bit after >> 1 */
#define SAMPLE_MAX ((size_t)1 << 40)

/* Where the key hashed to h keeps its four counters: in block
 * (h >> 24) & block_mask, counter i in word 2i or 2i + 1 (bit i of h) at
 * nibble (h >> (4 + 4i)) & 15: the low 20 bits pick inside the block, the
 * bits from 24 up pick the block. */
#define WORD(h, i) (2 * (i) + (unsigned)((h) >> (i) & 1))
#define SHIFT(h, i) (4 * (unsigned)((h) >> (4 + 4 * (i)) & 15))

static inline uint64_t *block_of(const kivis_sketch *s, uint64_t h)
{
    return s->counters + ((size_t)(h >> 24) & s->block_mask) * WORDS_PER_BLOCK;
}

static inline unsigned min2(unsigned a, unsigned b)
{
    return a < b ? a : b;
}

static inline unsigned counter(const uint64_t *block, uint64_t h, unsigned i)
{
    return (unsigned)(block[WORD(h, i)] >> SHIFT(h, i) & COUNTER_MAX);
}

/* The smallest of h's four counters (written out: as a loop it was
 * neither unrolled nor inlined, and this runs on every get). */
static inline unsigned smallest(const uint64_t *block, uint64_t h)
{
    return min2(min2(counter(block, h, 0), counter(block, h, 1)),
                min2(counter(block, h, 2), counter(block, h, 3)));
}

/* Counter i of h, raised if it is at m, the minimum (branch-free). */
static inline void raise_at(uint64_t *block, uint64_t h, unsigned i, unsigned m)
{
    block[WORD(h, i)] += (uint64_t)(counter(block, h, i) == m) << SHIFT(h, i);
}

/* The doorkeeper's word for h and its two bits there (a blocked Bloom
 * filter: one load a lookup), from a remix of h so that they do not follow
 * the counters' choice. */
static inline uint64_t *door_word(const kivis_sketch *s, uint64_t h, uint64_t *bits)
{
    uint64_t g = (h ^ h >> 31) * 0xbf58476d1ce4e5b9u;
    *bits = (uint64_t)1 << (g >> 52 & 63) | (uint64_t)1 << (g >> 58);
    return s->door + ((size_t)g & s->door_mask);
}

static size_t pow2_at_least(size_t n, size_t floor)
{
    size_t p = floor;
    while (p < n)
        p *= 2;
    return p;
}

int kivis__sketch_init(kivis_sketch *s, const kivis_allocator *a, size_t sample)
{
    memset(s, 0, sizeof *s);
    if (sample == 0 || sample > SAMPLE_MAX)
        return KIVIS_EINVAL;
    /* 16 doorkeeper bits and 2 counters per record of the sample.  A key
     * read once that the doorkeeper takes for one read before is a fill for
     * nothing, which costs more than the miss itself: with 8 bits 1.9% of
     * the bench's uniform pass was filled, with 16 0.6% (two bits a key,
     * both in one word).  The counters hold the sample twice over. */
    size_t door_words = pow2_at_least(sample / 4, 1);
    size_t blocks = pow2_at_least(sample * 2 / (WORDS_PER_BLOCK * COUNTERS_PER_WORD), 1);
    size_t counter_bytes = blocks * WORDS_PER_BLOCK * sizeof(uint64_t);
    s->door = a->malloc(a->ctx, door_words * sizeof(uint64_t));
    s->counters = a->malloc(a->ctx, counter_bytes);
    if (!s->door || !s->counters) {
        kivis__sketch_free(s, a);
        return KIVIS_ENOMEM;
    }
    memset(s->door, 0, door_words * sizeof(uint64_t));
    memset(s->counters, 0, counter_bytes);
    s->door_mask = door_words - 1;
    s->block_mask = blocks - 1;
    s->sample = sample;
    return KIVIS_OK;
}

void kivis__sketch_free(kivis_sketch *s, const kivis_allocator *a)
{
    if (s->door)
        a->free(a->ctx, s->door);
    if (s->counters)
        a->free(a->ctx, s->counters);
    memset(s, 0, sizeof *s);
}

/* Halve every counter, empty the doorkeeper. */
static void age(kivis_sketch *s)
{
    size_t words = (s->block_mask + 1) * WORDS_PER_BLOCK;
    for (size_t i = 0; i < words; i++)
        s->counters[i] = s->counters[i] >> 1 & HALVE_MASK;
    memset(s->door, 0, (s->door_mask + 1) * sizeof(uint64_t));
    s->seen = 0;
}

unsigned kivis__sketch_record(kivis_sketch *s, uint64_t h)
{
    uint64_t *block = block_of(s, h), bits;
    uint64_t *door = door_word(s, h, &bits);
    unsigned m = smallest(block, h);
    if ((*door & bits) != bits) {
        *door |= bits;
    } else if (m < COUNTER_MAX) {
        /* Conservative update: only the counters at the minimum rise, so
         * a key's collisions inflate its estimate less. */
        raise_at(block, h, 0, m);
        raise_at(block, h, 1, m);
        raise_at(block, h, 2, m);
        raise_at(block, h, 3, m);
        m++;
    }
    if (++s->seen >= s->sample)
        age(s);
    return 1 + m;
}

unsigned kivis__sketch_estimate(const kivis_sketch *s, uint64_t h)
{
    uint64_t bits;
    const uint64_t *door = door_word(s, h, &bits);
    return ((*door & bits) == bits ? 1u : 0u) + smallest(block_of(s, h), h);
}
