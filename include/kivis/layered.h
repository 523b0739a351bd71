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
 * empties it (or, for a mirror, copies the authority into it again).  A
 * mirror whose copy fails because the authority is unreachable keeps its
 * contents and stays usable (offline) when a feed is followed: the copy
 * is retried when the authority is back (see "Offline").
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
 *    trimmed log) empties every cache tier and copies the authority into
 *    each mirror again.  A failing feed (the server gone) empties nothing:
 *    the feed resumes from its last change when the server is back, and
 *    the changes it missed reach the caches then, key by key (see
 *    "Offline" below); kivis_layered_feed_stats_get counts both.  Our
 *    own commits come back through the feed too and drop the keys we just
 *    wrote: the next read of each refills it.  What tiers held before the
 *    open (a persistent cache or mirror of an earlier run) missed what
 *    changed while nobody followed the feed, so the first transaction
 *    after the open empties every cache tier and copies each mirror again.
 *  - Otherwise (local authorities, whose feeds carry only this storage
 *    object's commits, or none): a cache tier keeps serving the values it
 *    held, and the negative cache keeps reporting keys missing, until the
 *    entry is evicted or kivis_layered_invalidate is called.
 * Keys not cached are read from the authority and so are current; cursors
 * always show the authority (or a mirror).  Through this handle alone, a
 * get in a read-only transaction returns a value at least as new as the
 * one committed when the transaction began: read-only transactions are
 * read-committed, not snapshots.  A read-write transaction reads the
 * authority alone (never a cache tier), so that the authority's own
 * isolation covers its reads: with PostgreSQL or etcd, a read-modify-write
 * that raced another client's commit fails with KIVIS_ECONFLICT instead of
 * losing that update.  All of this holds while the authority
 * is reachable; offline answers are flagged, as follows.
 *
 * Offline.  Each begin first brings the caches up to date (drains the feed
 * and applies it).  When that, or the authority's own begin, fails with
 * KIVIS_EUNAVAILABLE, the authority is unreachable and the storage is
 * offline:
 *  - A read-only transaction still begins, offline
 *    (kivis_layered_txn_offline says so): gets are answered by the cache
 *    tiers, the negative cache and the mirrors alone, with what they held
 *    when the authority was last reached (fills between cache tiers go on).
 *    A key no tier has is "not found" if a usable mirror exists (it was
 *    complete then), else KIVIS_EUNAVAILABLE: nothing can tell.  Cursors
 *    are the fastest usable mirror's; without one, KIVIS_EUNAVAILABLE.
 *    Every answer so given may be stale, and is counted: `answers` in
 *    kivis_layered_offline_stats_get (a found value, a "not found", an
 *    opened cursor), `unavailable` for the refusals; `offline` says the
 *    state.  A caller that holds only the storage (kivis_db over it) reads
 *    those counters around its reads.
 *  - A read-write begin fails with KIVIS_EUNAVAILABLE and changes no tier.
 *    (A write transaction whose authority fails after it began fails at
 *    commit, or before, with no tier touched: the caches only hear of a
 *    commit the authority made.)
 *  - The authority is tried again at a begin at most every
 *    offline_retry_ms (default 1 s), so readers answered offline do not
 *    hammer a server that is down; begins in between are offline, or
 *    refused, without contacting it.
 *  - When a try succeeds the storage is back online, and before that
 *    transaction reads anything the caches take what the feed missed: it
 *    resumes from the last change it delivered (PostgreSQL's change log
 *    keeps them), so the keys changed meanwhile leave every cache tier and
 *    the negative cache, and mirrors take their new values; if the log no
 *    longer holds them (trimmed: a resync), every cache tier is emptied and
 *    each mirror copied again.  `recoveries` and `resumed` count the two
 *    ways back.  Keys fed while a mirror could not read their values (the
 *    authority gone between the feed and the read), or a mirror copy that
 *    failed the same way, stay owed and are applied at the next begin that
 *    reaches the authority; until then transactions are offline, or, if
 *    the authority answers but the feed fails in another way, read the
 *    authority only (no cache, no mirror) so they never see a value the
 *    caches missed a change of.
 *  - Without a shared feed (a local authority, or PostgreSQL without the
 *    right to create its change log) the storage is offline only when the
 *    authority's begin fails; PostgreSQL's begin reuses a pooled
 *    connection without a round trip, so then the first get that reaches
 *    the server fails with KIVIS_EUNAVAILABLE instead.
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
     *  slower tier fills every faster cache tier at once.  N > 0: TinyLFU.
     *  Every read through the caches is counted (a doorkeeper bit filter
     *  for a key's first read, then a count-min sketch of 4-bit counters,
     *  about 3N bytes in all), and every N reads the counts are halved and
     *  the doorkeeper emptied.  A key fills the caches only when it was
     *  read before in that window (so a scan or a uniform sweep of keys
     *  read once neither pushes out the hot keys nor pays a fill per
     *  read), and a bounded tier that would have to evict for it takes it
     *  only if it was read more often than the key it would evict.  Fills
     *  turned away count in each cache tier's stats (unadmitted). */
    size_t admit_window;
    /** While the authority is unreachable, the least time between two
     *  begins that try it again, in milliseconds.  0: the default, 1000;
     *  negative: every begin tries.  (0 is the default, as for the other
     *  members, so that a zeroed struct is the usual setting.) */
    int offline_retry_ms;
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
    uint64_t outages;  /* feed failures (a lost connection): caches kept,
                          the feed resumes when it can */
} kivis_layered_feed_stats;

/** Counters of the feed the caches follow.  KIVIS_OK or KIVIS_EINVAL. */
int kivis_layered_feed_stats_get(kivis_storage *st, kivis_layered_feed_stats *out);

/** Reads while the authority is unreachable (see "Offline" above). */
typedef struct kivis_layered_offline_stats {
    int offline;             /* 1: the last try found the authority
                                unreachable; read-only begins are offline */
    uint64_t outages;        /* times it was found unreachable after not */
    uint64_t retries;        /* begins that tried it again while offline */
    uint64_t recoveries;     /* times it was reached again */
    uint64_t resumed;        /* ... of which the feed resumed with no gap:
                                the caches took each missed change */
    uint64_t transactions;   /* read-only transactions begun offline */
    uint64_t answers;        /* offline answers (may be stale): gets found
                                or not found, cursors opened */
    uint64_t unavailable;    /* offline reads refused: KIVIS_EUNAVAILABLE */
    uint64_t refused_writes; /* read-write begins refused offline */
} kivis_layered_offline_stats;

/** Counters of reads while the authority is unreachable, and the state.
 *  Compare `answers` before and after a read to tell whether it was
 *  answered offline.  KIVIS_OK or KIVIS_EINVAL (not a layered storage). */
int kivis_layered_offline_stats_get(kivis_storage *st,
                                    kivis_layered_offline_stats *out);

/** 1 if `txn` is a layered transaction begun offline (its answers come
 *  from the tiers alone and may be stale), else 0. */
int kivis_layered_txn_offline(const kivis_storage_txn *txn);

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
