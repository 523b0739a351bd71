/*
 * src/storage/sketch.h - how often keys were read lately, approximately:
 * TinyLFU's doorkeeper and frequency sketch, for the layered storage's
 * admission (kivis_layered_options.admit_window).  Internal.
 *
 * A read is recorded by its key's 64-bit hash.  Its first read in the
 * sample only sets two bits of the doorkeeper (a Bloom filter, both bits in
 * one 64-bit word), so the
 * many keys read once cost no counter; later reads go to a count-min
 * sketch of 4-bit counters (saturating at 15), four per key, all four in
 * one 64-byte block (one cache line a record) and raised conservatively
 * (only those at the minimum).  The estimate is the doorkeeper's bit plus
 * the smallest of the four counters: never less than the key's reads in the
 * sample, more only where keys collide.
 *
 * Aging: every `sample` records the counters are halved and the doorkeeper
 * emptied, so the estimates follow what is read now rather than what was
 * read once long ago.  All memory comes from the allocator given at
 * creation.  Not thread-safe.
 */
#ifndef KIVIS_SKETCH_H
#define KIVIS_SKETCH_H

#include <kivis/common.h>

#include <stddef.h>
#include <stdint.h>

typedef struct kivis_sketch {
    uint64_t *counters;   /* blocks of 8 words, 16 counters a word */
    size_t block_mask;    /* blocks - 1, blocks a power of two */
    uint64_t *door;       /* the doorkeeper's bits */
    size_t door_mask;     /* words - 1, words a power of two */
    size_t sample, seen;  /* records between agings, and since the last */
} kivis_sketch;

/* A sketch aging every `sample` records (> 0): a doorkeeper of at least 16
 * bits and a table of at least 2 counters per record of the sample.
 * KIVIS_OK, KIVIS_EINVAL (sample 0 or past 2^40), or KIVIS_ENOMEM. */
int kivis__sketch_init(kivis_sketch *s, const kivis_allocator *a,
                       size_t sample);
void kivis__sketch_free(kivis_sketch *s, const kivis_allocator *a);

/* Record one read of the key hashed to h; its estimate, this read counted. */
unsigned kivis__sketch_record(kivis_sketch *s, uint64_t h);

/* The estimated reads of the key hashed to h in the sample (0 to 16). */
unsigned kivis__sketch_estimate(const kivis_sketch *s, uint64_t h);

#endif /* KIVIS_SKETCH_H */
