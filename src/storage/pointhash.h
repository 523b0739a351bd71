/*
 * src/storage/pointhash.h - a hash table beside a B+tree that finds a key's
 * entry in one probe, for the point gets of the memory backend.
 *
 * Why: a get that descends a tree of a million entries takes a cache miss
 * (and, past the TLB's reach, a page walk) at every level; through the hash
 * it takes one for the slot and one for the entry, however large the tree.
 * The tree stays the only order: the table knows nothing of ranges.
 *
 * Open addressing with linear probing: a slot holds an item pointer and the
 * full 64-bit hash of its key, so a probe reads no item whose hash differs,
 * and deletes shift later slots back (no tombstones, no allocation).  At
 * most 3/4 of the slots are used.  Items are the owner's: the table never
 * reads them; lookups hand candidates to the owner's compare.
 *
 * Memory comes from the allocator given to each call.  Not thread-safe.
 */
#ifndef KIVIS_POINTHASH_H
#define KIVIS_POINTHASH_H

#include <kivis/common.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct kivis_ph_slot {
    uint64_t hash;
    void *item; /* NULL: empty */
} kivis_ph_slot;

typedef struct kivis_pointhash {
    kivis_ph_slot *slot;
    size_t cap;   /* 0, or a power of two */
    size_t count; /* items held */
    uint64_t seed; /* mixed into every hash: other tables, other collisions */
} kivis_pointhash;

/* An empty table (no allocation) whose hashes depend on seed. */
void kivis__ph_init(kivis_pointhash *h, uint64_t seed);

/* Free the slots; the table is empty and unallocated again. */
void kivis__ph_free(kivis_pointhash *h, const kivis_allocator *a);

/* Forget every item, keeping the slots. */
void kivis__ph_clear(kivis_pointhash *h);

/* Bytes of slots held. */
size_t kivis__ph_bytes(const kivis_pointhash *h);

/* A 64-bit hash of key's bytes under seed, for any table of keys (this one,
 * the engine's record cache). */
uint64_t kivis__hash_bytes(uint64_t seed, kivis_slice key);

/* The hash of a key in this table. */
uint64_t kivis__ph_hash(const kivis_pointhash *h, kivis_slice key);

/* Make room for n items in all, so that the inserts that follow cannot fail.
 * KIVIS_OK, or KIVIS_ENOMEM with the table as it was. */
int kivis__ph_reserve(kivis_pointhash *h, const kivis_allocator *a, size_t n);

/* Add item (not NULL) under hash; room must have been reserved. */
void kivis__ph_insert(kivis_pointhash *h, uint64_t hash, void *item);

/* Put item where old is (same hash); old must be in the table. */
void kivis__ph_replace(kivis_pointhash *h, uint64_t hash, const void *old,
                       void *item);

/* Take item (held under hash) out of the table. */
void kivis__ph_remove(kivis_pointhash *h, uint64_t hash, const void *item);

/* Whether item is held under hash (for invariant checks). */
bool kivis__ph_holds(const kivis_pointhash *h, uint64_t hash,
                     const void *item);

/* Walking the candidates of a hash, for the owner's lookup:
 *   for (size_t i = kivis__ph_first(h, hash); ...; i = kivis__ph_next(h, i))
 * stops at a slot whose item is NULL; compare only where the hash matches. */
static inline size_t kivis__ph_first(const kivis_pointhash *h, uint64_t hash)
{
    return (size_t)hash & (h->cap - 1);
}

static inline size_t kivis__ph_next(const kivis_pointhash *h, size_t i)
{
    return (i + 1) & (h->cap - 1);
}

#endif /* KIVIS_POINTHASH_H */
