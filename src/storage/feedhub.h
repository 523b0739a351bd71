/*
 * src/storage/feedhub.h - the in-process change feed of the local backends
 * (memory, LMDB, SQLite, RocksDB).  Internal.
 *
 * A hub holds the changes of the last commits made through one storage
 * object in a ring (positions are consecutive), and hands out kivis_feed
 * objects that read it.  Nothing is recorded until the first feed opens,
 * so a storage that is never watched pays one flag test per commit.  The
 * backend publishes each commit after it is durable and visible, while it
 * still holds its writer lock, so the ring's order is the commit order.
 *
 * Positions start at the wall clock in nanoseconds when the hub is made,
 * so that a position kept from an earlier life of the store is below
 * every position of this one and resumes with KIVIS_CHANGE_RESYNC instead
 * of silently skipping changes.
 *
 * Thread-safe: publishers and feeds in any threads.  The hub is reference
 * counted: the storage drops its reference at close, each feed its own.
 */
#ifndef KIVIS_FEEDHUB_H
#define KIVIS_FEEDHUB_H

#include <kivis/overlay.h>

#include <stdbool.h>

typedef struct kivis__feedhub kivis__feedhub;

/* One change to publish: kind is KIVIS_CHANGE_INSERT, _UPDATE or _DELETE. */
typedef struct kivis__change {
    kivis_slice key;
    int kind;
} kivis__change;

int kivis__feedhub_new(const kivis_allocator *alloc, kivis__feedhub **out);
/* The storage's reference; the hub goes with the last feed.  NULL: no-op. */
void kivis__feedhub_release(kivis__feedhub *h);
/* Bytes the hub holds through its allocator, its open feeds' included. */
size_t kivis__feedhub_bytes(kivis__feedhub *h);
/* A feed has been opened: commits must be published. */
bool kivis__feedhub_recording(kivis__feedhub *h);
/* Append one commit's changes (n may be 0).  Cannot fail: when a copy runs
 * out of memory the commit is fed as one KIVIS_CHANGE_RESYNC instead. */
void kivis__feedhub_publish(kivis__feedhub *h, const kivis__change *c, size_t n);
/* A commit whose changes are unknown (it began before the first feed, or
 * they could not be collected): fed as one KIVIS_CHANGE_RESYNC. */
void kivis__feedhub_lost(kivis__feedhub *h);
/* Wait until fd polls readable or timeout_ms (-1: forever) counted from
 * start (CLOCK_MONOTONIC) has passed.  @return 1 readable (or a signal),
 * 0 timed out, -1 poll failed. */
struct timespec;
int kivis__feed_wait(int fd, const struct timespec *start, int timeout_ms);
/* kivis_storage_methods.feed_open over the hub. */
int kivis__feedhub_open(kivis__feedhub *h, uint64_t after, kivis_feed **out);

/* ---- the changes of an overlay commit (memory, RocksDB) ----------------
 * existed(ctx, key) reads the committed state before the batch applies:
 * KIVIS_OK (there), KIVIS_NOTFOUND, or an error.  *out (free with the
 * allocator) receives a change per op that changes something; NULL and 0
 * when the hub is not recording.  @return KIVIS_OK, KIVIS_ENOMEM or
 * existed's error (then publish kivis__feedhub_lost after the apply). */
typedef int (*kivis__existed_fn)(void *ctx, kivis_slice key);
int kivis__feed_classify(kivis__feedhub *h, const kivis_allocator *alloc,
                         const kivis_batch_op *ops, size_t n,
                         kivis__existed_fn existed, void *ctx,
                         kivis__change **out, size_t *nout);

/* ---- the changes of a native transaction (LMDB, SQLite) ----------------
 * The keys a write transaction touched, each with whether it existed
 * before the transaction's first write of it.  Zero it, begin it with the
 * transaction, touch each key before writing it, settle it before the
 * commit and publish it after a successful one; free it in every case. */
typedef struct kivis__feedset {
    struct kivis_btree *keys; /* key -> one byte of flags, NULL until needed */
    const kivis_allocator *alloc;
    kivis__change *changes;   /* what settle found */
    size_t nchanges;
    bool on;    /* the hub recorded when the transaction began */
    bool wrote; /* a key was touched */
    bool lost;  /* a settle failed: publish as lost */
} kivis__feedset;

void kivis__feedset_begin(kivis__feedset *fs, kivis__feedhub *h,
                          const kivis_allocator *alloc);
/* Before writing key in txn (read through txn's get).  @return KIVIS_OK,
 * KIVIS_ENOMEM or the get's error: then do not write. */
int kivis__feedset_touch(kivis__feedset *fs, kivis_storage_txn *txn,
                         kivis_slice key);
/* Before commit: read whether each touched key exists now.  A failure
 * marks the set lost (the commit is fed as KIVIS_CHANGE_RESYNC). */
void kivis__feedset_settle(kivis__feedset *fs, kivis_storage_txn *txn);
/* After a successful commit, under the writer lock. */
void kivis__feedset_publish(kivis__feedset *fs, kivis__feedhub *h);
void kivis__feedset_free(kivis__feedset *fs);

#endif /* KIVIS_FEEDHUB_H */
