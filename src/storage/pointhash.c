/* The point hash beside the memory backend's B+tree (pointhash.h says why). */
#include "pointhash.h"

#include <string.h>

#define PH_MIN_CAP 16

void kivis__ph_init(kivis_pointhash *h, uint64_t seed)
{
    h->slot = NULL;
    h->cap = 0;
    h->count = 0;
    h->seed = seed;
}

void kivis__ph_free(kivis_pointhash *h, const kivis_allocator *a)
{
    a->free(a->ctx, h->slot);
    kivis__ph_init(h, h->seed);
}

void kivis__ph_clear(kivis_pointhash *h)
{
    if (h->cap)
        memset(h->slot, 0, h->cap * sizeof *h->slot);
    h->count = 0;
}

size_t kivis__ph_bytes(const kivis_pointhash *h)
{
    return h->cap * sizeof *h->slot;
}

/* murmur3's finalizer: every input bit reaches every output bit. */
static uint64_t fmix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdu;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53u;
    x ^= x >> 33;
    return x;
}

/* In the machine's byte order: hashes live only in memory, never on disk,
 * so they need not agree across machines, and this is one load. */
static uint64_t load64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* The last n (1..7) bytes as a word, read as at most two overlapping loads
 * (of 4 bytes, or of 1 and 2) instead of a byte loop. */
static uint64_t load_tail(const unsigned char *p, size_t n)
{
    uint32_t a, b;
    if (n >= 4) {
        memcpy(&a, p, 4);
        memcpy(&b, p + n - 4, 4);
        return (uint64_t)a << 32 | b;
    }
    return (uint64_t)p[0] << 16 | (uint64_t)p[n / 2] << 8 | p[n - 1];
}

/* Keys are short (a table id and an integer or a string): eight bytes a
 * round, each round a multiply, then the finalizer.  The length goes in
 * first: the tail's bytes overlap, so only with the length does every key
 * get its own input. */
uint64_t kivis__hash_bytes(uint64_t seed, kivis_slice key)
{
    const unsigned char *p = key.data;
    size_t n = key.len;
    uint64_t x = seed ^ (uint64_t)n * 0x9e3779b97f4a7c15u;
    for (; n >= 8; p += 8, n -= 8)
        x = (x ^ load64(p)) * 0xbf58476d1ce4e5b9u ^ x >> 31;
    if (n)
        x = (x ^ load_tail(p, n)) * 0x94d049bb133111ebu ^ x >> 29;
    return fmix64(x);
}

uint64_t kivis__ph_hash(const kivis_pointhash *h, kivis_slice key)
{
    return kivis__hash_bytes(h->seed, key);
}

static size_t slot_of(const kivis_pointhash *h, uint64_t hash,
                      const void *item)
{
    size_t i = kivis__ph_first(h, hash);
    while (h->slot[i].item != item)
        i = kivis__ph_next(h, i);
    return i;
}

static void place(kivis_ph_slot *slot, size_t cap, uint64_t hash, void *item)
{
    size_t i = (size_t)hash & (cap - 1);
    while (slot[i].item)
        i = (i + 1) & (cap - 1);
    slot[i].hash = hash;
    slot[i].item = item;
}

/* At most 3/4 full, linear probing stays short: on average 2.5 slots for
 * a key that is there and 8.5 for one that is not (Knuth), 40 and 136
 * bytes read in a row, one to three cache lines. */
static bool fits(size_t cap, size_t n)
{
    return n <= cap / 4 * 3;
}

int kivis__ph_reserve(kivis_pointhash *h, const kivis_allocator *a, size_t n)
{
    if (h->cap && fits(h->cap, n))
        return KIVIS_OK;
    size_t cap = h->cap ? h->cap : PH_MIN_CAP;
    while (!fits(cap, n)) {
        if (cap > SIZE_MAX / 2 / sizeof *h->slot)
            return KIVIS_ENOMEM;
        cap *= 2;
    }
    kivis_ph_slot *slot = a->malloc(a->ctx, cap * sizeof *slot);
    if (!slot)
        return KIVIS_ENOMEM;
    memset(slot, 0, cap * sizeof *slot);
    for (size_t i = 0; i < h->cap; i++)
        if (h->slot[i].item)
            place(slot, cap, h->slot[i].hash, h->slot[i].item);
    a->free(a->ctx, h->slot);
    h->slot = slot;
    h->cap = cap;
    return KIVIS_OK;
}

void kivis__ph_insert(kivis_pointhash *h, uint64_t hash, void *item)
{
    place(h->slot, h->cap, hash, item);
    h->count++;
}

void kivis__ph_replace(kivis_pointhash *h, uint64_t hash, const void *old,
                       void *item)
{
    h->slot[slot_of(h, hash, old)].item = item;
}

/* Whether the slot at `home` lies cyclically in (gap, at]: then the item at
 * `at` may not move back into the gap, or a probe from home would stop at
 * the gap before reaching it. */
static bool stays(size_t gap, size_t at, size_t home)
{
    return gap <= at ? gap < home && home <= at : gap < home || home <= at;
}

void kivis__ph_remove(kivis_pointhash *h, uint64_t hash, const void *item)
{
    size_t gap = slot_of(h, hash, item);
    for (size_t at = kivis__ph_next(h, gap); h->slot[at].item;
         at = kivis__ph_next(h, at)) {
        if (stays(gap, at, kivis__ph_first(h, h->slot[at].hash)))
            continue;
        h->slot[gap] = h->slot[at];
        gap = at;
    }
    h->slot[gap].item = NULL;
    h->count--;
}

bool kivis__ph_holds(const kivis_pointhash *h, uint64_t hash,
                     const void *item)
{
    if (!h->cap)
        return false;
    for (size_t i = kivis__ph_first(h, hash); h->slot[i].item;
         i = kivis__ph_next(h, i))
        if (h->slot[i].item == item)
            return h->slot[i].hash == hash;
    return false;
}
