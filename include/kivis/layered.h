/* SPDX-License-Identifier: MIT */
/*
 * kivis/layered.h - a stack of storages used as one: caches in front of an
 * authoritative store (read-through, write-through, LRU by bytes).
 *
 * Tiers are given fastest first; the last one is the authority, the only
 * tier whose contents are the truth.  The others are caches of it:
 *
 *  - get: each usable cache tier is asked in turn; the first that has the
 *    key answers and the faster tiers are filled with the value
 *    (read-through); if none has it, the authority's transaction answers
 *    and fills every cache tier.  A key missing from the authority (or from
 *    a tier flagged KIVIS_TIER_MIRROR) may be remembered in a bounded
 *    negative cache, so that asking again touches no tier.
 *  - put and del go to the authority's transaction only.  Keys a
 *    transaction wrote are read back from the authority's transaction
 *    (read-your-writes).  Commit commits the authority first; only if that
 *    succeeds are the writes applied to the cache tiers (write-through):
 *    unbounded tiers take the new values and deletions, bounded tiers drop
 *    the written keys they hold (the next read brings the new value in).
 *    If the authority's commit fails, no cache tier is touched, so no tier
 *    ever holds a value the authority lacks.
 *  - cursors (range scans, index lookups) are the authority transaction's,
 *    or in a read-only transaction those of the fastest usable mirror
 *    tier; never a partial cache's.
 *
 * Failures.  A cache tier that fails a read is skipped (the next tier
 * answers).  A failed fill is dropped.  If a cache tier fails to take a
 * commit's writes, the written keys are deleted from it instead; if that
 * fails too, or the tier is a mirror, the tier is marked unusable: it is
 * never read, filled or scanned again until kivis_layered_invalidate
 * empties it (or, for a mirror, copies the authority into it again).
 *
 * Consistency with writers that bypass this handle (another process, or
 * another client of the authority):
 *  - When the authority's change feed carries other clients' commits
 *    (KIVIS_FEED_SHARED: PostgreSQL's does), the layered storage follows
 *    it: every transaction begins by draining it (without waiting), and
 *    the keys it names leave every cache tier and the negative cache (a
 *    mirror takes their new values instead).  So a transaction sees every
 *    change the feed had delivered when it began; the delay from another
 *    client's commit is the feed's (test_coherence measures it: p99 a few
 *    milliseconds on loopback).  A feed gap (KIVIS_CHANGE_RESYNC: a
 *    trimmed log) or a failing feed (the server gone) empties every cache
 *    tier, once per outage; kivis_layered_feed_stats_get counts both.  Our
 *    own commits come back through the feed too and drop the keys we just
 *    wrote: the next read of each refills it.
 *  - Otherwise (local authorities, whose feeds carry only this storage
 *    object's commits, or none): a cache tier keeps serving the values it
 *    held, and the negative cache keeps reporting keys missing, until the
 *    entry is evicted or kivis_layered_invalidate is called.
 * Keys not cached are read from the authority and so are current; cursors
 * always show the authority (or a mirror).  Through this handle alone, a
 * get returns the transaction's own write or a value at least as new as
 * the one committed when the transaction began: transactions are
 * read-committed, not snapshots.
 *
 * Ownership: kivis_layered_open takes ownership of every tier storage and
 * closes them when the layered storage is closed; on failure they stay the
 * caller's.  A tier must not be used directly while it is in the stack.
 *
 * Threads: a layered storage, its transactions and cursors are used by one
 * thread at a time (it keeps unlocked bookkeeping).  Several transactions
 * may be open at once, as the authority allows.
 *
 * Cost.  A layered transaction reads each cache tier in one read-only
 * transaction of that tier, begun by its first get that reaches the tier
 * and ended with it; the authority's transaction is begun with it.  The
 * fills of a transaction are queued and written in batches of up to 256,
 * one short NOSYNC write transaction per cache tier per batch, when the
 * queue is full and when the transaction ends (commit or abort; a fill
 * whose transaction saw a commit or an invalidate is dropped, as before).
 * So a transaction of many gets pays a tier's transaction once, not per
 * get; a transaction of one get (kivis_get outside a transaction) still
 * pays one per tier it reaches, and a miss still writes every faster tier.
 *
 * Memory: a value served from a cache tier is copied into the transaction
 * (a commit, or a fill, may delete it from the tier while the caller
 * holds it); the copies live in chunks of 16 KiB, one of which the storage
 * keeps between transactions, and are freed at the next put or del of the
 * transaction and at its end.  Queued fills are copied likewise.  A write
 * transaction also keeps a copy of every key and value it wrote, for the
 * cache update.
 */
#ifndef KIVIS_LAYERED_H
#define KIVIS_LAYERED_H

#include "storage.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Tier flag: the tier holds everything the authority has (a complete
 *  local copy).  A miss there is final, and read-only transactions scan
 *  it instead of the authority.  A mirror cannot be bounded. */
#define KIVIS_TIER_MIRROR 0x1u

typedef struct kivis_layered_tier {
    /** The tier's storage; the layered storage takes it over on success. */
    kivis_storage *st;
    /** Cache tiers: bound on the bytes cached (sum of key and value
     *  lengths), least recently used entries evicted first; 0: unbounded.
     *  Must be 0 for the authority and for a mirror. */
    size_t max_bytes;
    /** 0 or KIVIS_TIER_MIRROR (not on the authority). */
    unsigned flags;
} kivis_layered_tier;

typedef struct kivis_layered_options {
    /** Allocator for the layered storage's own memory; NULL: default.
     *  It must outlive the storage. */
    const kivis_allocator *allocator;
    /** Most keys remembered as missing (least recently used forgotten
     *  first); 0: no negative cache. */
    size_t negative_max;
    /** Admission to the cache tiers.  0 (the default): a value read from a
     *  slower tier fills every faster cache tier at once.  N > 0: only on
     *  its second miss among the last N misses (a doorkeeper, as TinyLFU
     *  has: a bit filter of N bytes, cleared every N misses), so a scan or a
     *  uniform sweep of keys read once does not push out the hot keys or
     *  pay a fill per read.  Fills the doorkeeper turns away count in
     *  each cache tier's stats (unadmitted). */
    size_t admit_window;
} kivis_layered_options;

/**
 * Stack `n` tiers, fastest first; tiers[n - 1] is the authority.  opts may
 * be NULL.  A bounded tier that already holds entries (a persistent cache)
 * is scanned and trimmed to its bound.  max_key_size is the smallest of the
 * tiers'.  The caller owns *out (kivis_storage_close closes the tiers too).
 * @return KIVIS_OK; KIVIS_EINVAL (n == 0, a NULL or repeated storage, a
 *         bad flag or bound); KIVIS_EVERSION (a tier's method table);
 *         KIVIS_ENOMEM; an error of a bounded tier being scanned.
 *         On failure *out = NULL and every tier is still the caller's.
 */
int kivis_layered_open(const kivis_layered_tier *tiers, size_t n,
                       const kivis_layered_options *opts, kivis_storage **out);

typedef struct kivis_layered_tier_stats {
    uint64_t reads;         /* gets that reached this tier */
    uint64_t hits;          /* ... and found the key */
    uint64_t misses;        /* ... and did not */
    uint64_t fills;         /* entries written by read-through */
    uint64_t updates;       /* entries written by write-through */
    uint64_t evictions;     /* entries evicted to stay within max_bytes */
    uint64_t invalidations; /* entries deleted for writes or invalidate */
    uint64_t scans;         /* cursors opened on this tier */
    uint64_t errors;        /* failed reads, fills and updates */
    uint64_t unadmitted;    /* fills turned away by admit_window */
    size_t entries;         /* bounded tiers: entries held (else 0) */
    size_t bytes;           /* bounded tiers: key + value bytes held */
    int usable;             /* 0 once a failure made the tier unusable */
} kivis_layered_tier_stats;

/**
 * Counters of tier `tier` (0 = fastest, n - 1 = the authority) since open.
 * @return KIVIS_OK, or KIVIS_EINVAL (not a layered storage, tier >= n).
 *         *out is zeroed on failure.
 */
int kivis_layered_stats(kivis_storage *st, size_t tier,
                        kivis_layered_tier_stats *out);

typedef struct kivis_layered_negative_stats {
    uint64_t hits;          /* gets answered "not found" from it */
    uint64_t additions;     /* keys remembered as missing */
    uint64_t evictions;     /* forgotten to stay within negative_max */
    uint64_t invalidations; /* forgotten because they were written */
    size_t entries;         /* keys remembered now */
} kivis_layered_negative_stats;

/** How the caches follow the authority's change feed (storage.h). */
typedef struct kivis_layered_feed_stats {
    int following;     /* 1: the authority feeds, and the caches follow it */
    uint64_t changes;  /* changes by other clients applied to the caches */
    uint64_t resyncs;  /* feed gaps (a trimmed log): caches emptied */
    uint64_t outages;  /* feed failures (a lost connection): caches emptied */
} kivis_layered_feed_stats;

/** Counters of the feed the caches follow.  KIVIS_OK or KIVIS_EINVAL. */
int kivis_layered_feed_stats_get(kivis_storage *st, kivis_layered_feed_stats *out);

/** Counters of the negative cache.  KIVIS_OK or KIVIS_EINVAL. */
int kivis_layered_negative_stats_get(kivis_storage *st,
                                     kivis_layered_negative_stats *out);

/**
 * Drop every cached entry: empty each cache tier and the negative cache,
 * and copy the authority into each mirror again, so that what other writers
 * committed to the authority is seen.  A tier emptied (or a mirror copied)
 * becomes usable again; one that fails is left unusable.  Transactions
 * open across the call fill no cache afterwards.
 * @return KIVIS_OK, KIVIS_EINVAL (not a layered storage), or the first
 *         tier error (the other tiers are still processed).
 */
int kivis_layered_invalidate(kivis_storage *st);

#ifdef __cplusplus
}
#endif

#endif /* KIVIS_LAYERED_H */
