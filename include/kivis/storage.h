/* SPDX-License-Identifier: MIT */
/*
 * kivis/storage.h - the byte-level storage interface under the record engine.
 *
 * A backend is three small method tables: one for the storage, one for its
 * transactions and one for its cursors.  Every object starts with a pointer
 * to its method table (SQLite's sqlite3_file / sqlite3_io_methods pattern),
 * so wrappers (faulty, layered) compose by delegation.  A backend knows
 * nothing of records, schemas or key encodings: it stores byte keys and
 * byte values ordered by memcmp, shorter key first on a common prefix.
 *
 * Transactions are the only way in.  A backend with native transactions
 * (LMDB, SQLite, PostgreSQL) maps them one to one; a backend whose store only
 * offers an atomic batch apply (memory, RocksDB, etcd) builds its write
 * transactions with kivis_overlay_begin (kivis/overlay.h), which gives
 * read-your-writes and turns commit into one atomic batch.
 *
 * Ownership and lifetimes
 *  - Keys and values passed in are borrowed for the duration of the call;
 *    the backend copies what it keeps.
 *  - A value or key returned by get, cursor_get or cursor_page is a
 *    borrowed view into the backend (no copy, as with LMDB).  It stays
 *    valid until the next write (put, del) in the same transaction, the
 *    next operation on the same cursor (for cursor results), or the end of
 *    the transaction, whichever comes first (and see kivis_cursor_page's
 *    stamp for stores that change under their readers).  Copy it to keep
 *    it longer.
 *  - commit and abort always end the transaction and free it, whether or not
 *    commit succeeds.  Close every cursor of a transaction before ending it.
 *
 * Keys: 1 to max_key_size bytes; an empty key is KIVIS_EINVAL and a longer
 * one KIVIS_EKEYSIZE, both before anything is written.  Values: 0 bytes up to
 * the backend's own limit (any size for memory).
 *
 * Key spaces: the record engine starts every key with two order-preserving,
 * prefix-free ids, id(table) id(slot) (one byte 00..7F, or 0x80|hi, lo;
 * docs/design.md, "On-disk layout"), so the keys sharing those two ids form
 * one contiguous range of the key order, a key space.  A backend MAY keep
 * key spaces apart (LMDB gives some a database of its own), but it never
 * interprets anything else of a key, and every byte key must still work as
 * above, whether or not it starts with two ids: order, cursors and their
 * bounds are memcmp order over all keys together.
 *
 * Threads: each backend documents what may run in parallel.  A transaction
 * and its cursors are used by one thread at a time.
 */
#ifndef KIVIS_STORAGE_H
#define KIVIS_STORAGE_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/** The interface version this header describes.  Method tables only grow:
 *  a version-N table has every member of versions 1..N. */
#define KIVIS_STORAGE_VERSION 5

/* Version history: 1 the storage, transaction and cursor tables; 2 adds
 * kivis_storage_methods.feed_open (NULL: the backend has no change feed);
 * 3 adds kivis_txn_methods.discard and .prefetch (NULL: not offered), for
 * backends where a read is a network round trip; 4 adds
 * kivis_txn_methods.cursor_follow (NULL: not offered); 5 adds
 * kivis_cursor_methods.page (NULL: not offered), a run of entries a call.
 * The storage table's version speaks for the transaction and cursor tables
 * of its transactions. */

typedef struct kivis_storage kivis_storage;
typedef struct kivis_storage_txn kivis_storage_txn;
typedef struct kivis_storage_cursor kivis_storage_cursor;
typedef struct kivis_feed kivis_feed;

/** kivis_storage_begin flags */
#define KIVIS_TXN_RDONLY 0x1u

/** Durability of a commit.  Each backend maps it to its own knob
 *  (LMDB: MDB_NOSYNC; SQLite: synchronous=NORMAL; memory ignores it). */
enum kivis_durability {
    KIVIS_SYNC = 0,   /* the commit is on stable storage when commit returns */
    KIVIS_NOSYNC = 1  /* atomic and consistent, but may be lost in a crash */
};

/** Cursor operations, after LMDB's MDB_cursor_op. */
enum kivis_cursor_op {
    KIVIS_FIRST = 0,  /* first entry in the cursor's range */
    KIVIS_LAST,       /* last entry in the cursor's range */
    KIVIS_NEXT,       /* entry after the current one (FIRST if never positioned) */
    KIVIS_PREV,       /* entry before the current one (LAST if never positioned) */
    KIVIS_SEEK_GE,    /* first entry with key >= *key (and in range) */
    KIVIS_SEEK_LE     /* last entry with key <= *key (and in range) */
};

typedef struct kivis_storage_methods {
    int version;      /* KIVIS_STORAGE_VERSION the table was written for */
    const char *name; /* "memory", "lmdb", ... */
    /** Release the storage.  Every transaction must have ended. */
    void (*close)(kivis_storage *st);
    /** Longest key this backend accepts, in bytes. */
    size_t (*max_key_size)(kivis_storage *st);
    /**
     * Start a transaction.  flags: 0 for read-write, KIVIS_TXN_RDONLY for a
     * read-only one.  @return KIVIS_OK, KIVIS_EBUSY (a write transaction is
     * already active and the backend does not queue), KIVIS_ENOMEM, KIVIS_EIO.
     * *out is NULL on failure.
     */
    int (*begin)(kivis_storage *st, unsigned flags, kivis_storage_txn **out);
    /* ---- version 2 ---- */
    /**
     * Optional (NULL: no change feed).  Open a feed of the changes committed
     * after position `after` (KIVIS_FEED_NOW: after the open), see
     * kivis_feed_open.  @return KIVIS_OK, KIVIS_ENOMEM, KIVIS_EUNAVAILABLE,
     * KIVIS_EIO, KIVIS_ENOTSUP (this store cannot feed, e.g. PostgreSQL
     * without the right to create the change log).  *out NULL on failure.
     */
    int (*feed_open)(kivis_storage *st, uint64_t after, kivis_feed **out);
} kivis_storage_methods;

typedef struct kivis_txn_methods {
    /** KIVIS_OK and *value set (borrowed, see above), or KIVIS_NOTFOUND with
     *  *value = {NULL, 0} (also for a key longer than max_key_size, which
     *  cannot be stored: KIVIS_EKEYSIZE is allowed too); errors:
     *  KIVIS_EINVAL (empty key), KIVIS_EIO, KIVIS_ECORRUPT. */
    int (*get)(kivis_storage_txn *txn, kivis_slice key, kivis_slice *value);
    /** Insert or overwrite.  KIVIS_OK, KIVIS_EINVAL (empty key, read-only
     *  transaction), KIVIS_EKEYSIZE, KIVIS_ENOMEM, KIVIS_EFULL, KIVIS_EIO. */
    int (*put)(kivis_storage_txn *txn, kivis_slice key, kivis_slice value);
    /** KIVIS_OK if the key was there, KIVIS_NOTFOUND if not, or an error. */
    int (*del)(kivis_storage_txn *txn, kivis_slice key);
    /**
     * Open a cursor over the keys k with lo <= k < hi.  lo = {NULL, 0} starts
     * at the first key; hi.data == NULL means no upper bound, while a
     * non-NULL hi of length 0 is an empty range.  lo >= hi is an empty range.
     * A failed put or del changes nothing and leaves the transaction usable
     * (poisoning is the record engine's business).  The cursor
     * sees the transaction's writes: each step reflects every put and del
     * made so far, and after writes NEXT still returns the first key greater
     * than the last one returned (PREV: the last key less than it).
     */
    int (*cursor_open)(kivis_storage_txn *txn, kivis_slice lo, kivis_slice hi,
                       kivis_storage_cursor **out);
    /** Make the writes durable per `durability` and end the transaction.
     *  On failure nothing of it is applied.  Always frees txn. */
    int (*commit)(kivis_storage_txn *txn, int durability);
    /** Discard the writes and end the transaction.  Always frees txn. */
    void (*abort)(kivis_storage_txn *txn);
    /* ---- version 3 ---- */
    /** Optional (NULL: kivis_txn_discard falls back to del).  See
     *  kivis_txn_discard. */
    int (*discard)(kivis_storage_txn *txn, kivis_slice key);
    /** Optional (NULL: kivis_txn_prefetch does nothing).  See
     *  kivis_txn_prefetch. */
    int (*prefetch)(kivis_storage_txn *txn, const kivis_slice *keys, size_t n);
    /* ---- version 4 ---- */
    /** Optional (NULL: kivis_txn_cursor_follow opens a plain cursor).  See
     *  kivis_txn_cursor_follow. */
    int (*cursor_follow)(kivis_storage_txn *txn, kivis_slice lo, kivis_slice hi,
                         kivis_slice prefix, size_t tail,
                         kivis_storage_cursor **out);
} kivis_txn_methods;

/** One entry of a run kivis_cursor_page hands over: borrowed views. */
typedef struct kivis_cursor_entry {
    kivis_slice key, value;
} kivis_cursor_entry;

typedef struct kivis_cursor_methods {
    /**
     * Move the cursor by `op` and return its entry.  For the SEEK ops *key is
     * the input.  @return KIVIS_OK with *key and *value set (borrowed), or
     * KIVIS_NOTFOUND when no entry qualifies, which leaves the cursor at its
     * end: NEXT and PREV then keep returning KIVIS_NOTFOUND until FIRST, LAST
     * or a SEEK places it again.  Errors: KIVIS_EINVAL, KIVIS_ENOMEM (a
     * backend that copies the current key), KIVIS_EIO; after an error the
     * cursor is where it was before the call.
     */
    int (*get)(kivis_storage_cursor *cur, int op, kivis_slice *key,
               kivis_slice *value);
    /** Free the cursor. */
    void (*close)(kivis_storage_cursor *cur);
    /* ---- version 5 ---- */
    /** Optional (NULL: kivis_cursor_page takes one get a call).  See
     *  kivis_cursor_page. */
    int (*page)(kivis_storage_cursor *cur, int op, kivis_cursor_entry *out,
                size_t cap, size_t *n, const uint64_t **stamp);
} kivis_cursor_methods;

/* Every backend object embeds one of these as its first member, zeroed
 * before methods is set (the record engine owns `handles`). */
struct kivis_storage {
    const kivis_storage_methods *methods;
    unsigned long handles; /* kivis_db handles open on it (kivis_open) */
};
struct kivis_storage_txn {
    const kivis_txn_methods *methods;
    kivis_storage *storage; /* the storage the transaction belongs to */
    unsigned flags;         /* the flags it was begun with */
};
struct kivis_storage_cursor {
    const kivis_cursor_methods *methods;
};

/* ---- change feeds (interface version 2) ---------------------------------
 *
 * A feed is a pull-based subscription to the keys that commits of a store
 * write or delete: kivis_feed_next returns them one at a time, in commit
 * order, and kivis_feed_fd gives a descriptor to poll(2) on, so a consumer
 * may block in kivis_feed_next, poll many feeds in an event loop, or drain
 * one at the start of each of its own operations.  Nothing runs inside a
 * committing thread on the consumer's behalf.  Only committed changes are
 * fed: an aborted or failed transaction never appears.  Values are not
 * carried: a consumer reads the key if it needs the value. */

/** kivis_change.kind */
enum kivis_change_kind {
    KIVIS_CHANGE_INSERT = 1, /* the key was absent before the write */
    KIVIS_CHANGE_UPDATE = 2, /* the key was there and was written again */
    KIVIS_CHANGE_DELETE = 3, /* the key was there and was deleted */
    /* Changes up to `pos` were lost to this feed (trimmed from the log,
     * from an earlier life of an in-process feed, or the feed ran out of
     * memory): re-read what you keep, then carry on with the changes after
     * it.  key is empty. */
    KIVIS_CHANGE_RESYNC = 4
};

/** kivis_feed_open's `after` for "only commits made after the open". */
#define KIVIS_FEED_NOW 0u

/** One committed change. */
typedef struct kivis_change {
    uint64_t pos;    /* position: strictly increasing in commit order, never
                        0; positions may skip values */
    int kind;        /* enum kivis_change_kind */
    kivis_slice key; /* borrowed until the next kivis_feed_next or close */
} kivis_change;

typedef struct kivis_feed_methods {
    /** See kivis_feed_next. */
    int (*next)(kivis_feed *f, int timeout_ms, kivis_change *out);
    /** See kivis_feed_fd. */
    int (*fd)(kivis_feed *f);
    /** Free the feed. */
    void (*close)(kivis_feed *f);
} kivis_feed_methods;

/** kivis_feed.flags: the feed carries the commits of other clients (other
 *  processes or connections), not only those made through this storage
 *  object.  A cache over the store learns from it what it cannot see. */
#define KIVIS_FEED_SHARED 0x1u

struct kivis_feed {
    const kivis_feed_methods *methods;
    unsigned flags; /* KIVIS_FEED_SHARED, or 0 */
};

/**
 * Open a change feed on `st`.  after = KIVIS_FEED_NOW feeds the commits
 * made after this call; after = a position a feed of this store returned
 * feeds every change after it (resume), or, when the store no longer has
 * all of them, starts with a KIVIS_CHANGE_RESYNC change.  A feed is used by
 * one thread at a time, which need not be the writers'; close it before
 * the storage (a feed left open past kivis_storage_close only ever returns
 * KIVIS_NOTFOUND).
 * @return KIVIS_OK; KIVIS_ENOTSUP (no feed: a version-1 table, feed_open
 *         NULL, or the backend's refusal); KIVIS_EINVAL (NULL argument);
 *         backend errors.  *out = NULL on failure.
 */
static inline int kivis_feed_open(kivis_storage *st, uint64_t after,
                                  kivis_feed **out)
{
    if (out)
        *out = NULL;
    if (!st || !out)
        return KIVIS_EINVAL;
    if (st->methods->version < 2 || !st->methods->feed_open)
        return KIVIS_ENOTSUP;
    return st->methods->feed_open(st, after, out);
}

/**
 * The next change, waiting up to timeout_ms for one (0: do not wait; -1:
 * wait as long as it takes).  Every change of a commit is fed before any
 * of a later commit.  Local backends feed each key once per commit with
 * the commit's net effect (a key both inserted and deleted there is not
 * fed); PostgreSQL feeds every row write of a commit, so a client's
 * transaction that writes a key twice feeds it twice.
 * @return KIVIS_OK (*out set); KIVIS_NOTFOUND (nothing new in time);
 *         KIVIS_EUNAVAILABLE, KIVIS_EIO, KIVIS_ENOMEM (the feed stays
 *         usable: a later call goes on from the last change returned).
 */
static inline int kivis_feed_next(kivis_feed *f, int timeout_ms,
                                  kivis_change *out)
{
    return f->methods->next(f, timeout_ms, out);
}

/**
 * A descriptor that polls readable when kivis_feed_next may have a change
 * for you: call kivis_feed_next(f, 0, ...) until KIVIS_NOTFOUND, then poll.
 * Owned by the feed: never read, write or close it.  Changes when a lost
 * connection is replaced, so ask again after each kivis_feed_next.
 * @return the descriptor, or -1 if the feed has none.
 */
static inline int kivis_feed_fd(kivis_feed *f)
{
    return f->methods->fd(f);
}

/** Close a feed.  NULL is a no-op. */
static inline void kivis_feed_close(kivis_feed *f)
{
    if (f)
        f->methods->close(f);
}

/* Thin dispatchers, so callers read as plain function calls. */

/**
 * Close a storage and free it.  Refused while a kivis_db is open on it
 * (kivis_open counts them, kivis_close uncounts): closing under a live
 * handle would free what the handle uses.  NULL is a no-op.
 * @return KIVIS_OK (closed and freed); KIVIS_EBUSY (handles are open: the
 *         storage stays open and usable, close it after them).
 */
int kivis_storage_close(kivis_storage *st);
static inline size_t kivis_storage_max_key(kivis_storage *st)
{
    return st->methods->max_key_size(st);
}
static inline int kivis_storage_begin(kivis_storage *st, unsigned flags,
                                      kivis_storage_txn **out)
{
    return st->methods->begin(st, flags, out);
}
static inline int kivis_txn_get(kivis_storage_txn *t, kivis_slice k,
                                kivis_slice *v)
{
    return t->methods->get(t, k, v);
}
static inline int kivis_txn_put(kivis_storage_txn *t, kivis_slice k,
                                kivis_slice v)
{
    return t->methods->put(t, k, v);
}
static inline int kivis_txn_del(kivis_storage_txn *t, kivis_slice k)
{
    return t->methods->del(t, k);
}

/**
 * Delete `key` if it is there, without having to find out whether it was:
 * where that costs a read (a server round trip), a backend may queue the
 * delete blind.  Same arguments and errors as del, except the answer for a
 * key that was absent: KIVIS_NOTFOUND when the backend knows it at no cost
 * (every local backend, whose discard is its del), KIVIS_OK when it did not
 * look (PostgreSQL).  So a caller that treats KIVIS_NOTFOUND as damage
 * still catches it where checking is free.
 */
static inline int kivis_txn_discard(kivis_storage_txn *t, kivis_slice k)
{
    if (t->storage->methods->version >= 3 && t->methods->discard)
        return t->methods->discard(t, k);
    return t->methods->del(t, k);
}

/**
 * A hint: the transaction is about to get `keys` (n of them, borrowed for
 * the call).  A backend whose gets are round trips reads them all in one
 * and answers the gets from what it read; the others ignore it.  It never
 * changes what a get returns.  @return KIVIS_OK, or an error of the reads
 * (the hint is then lost and the gets read for themselves; callers may
 * ignore it).
 */
static inline int kivis_txn_prefetch(kivis_storage_txn *t,
                                     const kivis_slice *keys, size_t n)
{
    if (t->storage->methods->version >= 3 && t->methods->prefetch && n)
        return t->methods->prefetch(t, keys, n);
    return KIVIS_OK;
}

/** Whether kivis_txn_prefetch can do anything on t (so that a caller
 *  collects keys only for a backend that reads them ahead). */
static inline int kivis_txn_prefetches(const kivis_storage_txn *t)
{
    return t->storage->methods->version >= 3 && t->methods->prefetch;
}

/** Whether kivis_txn_cursor_follow opens a following cursor on t (rather
 *  than a plain one), so that a caller works out the prefix and tail only
 *  for a backend that uses them. */
static inline int kivis_txn_follows(const kivis_storage_txn *t)
{
    return t->storage->methods->version >= 4 && t->methods->cursor_follow;
}

static inline int kivis_txn_cursor(kivis_storage_txn *t, kivis_slice lo,
                                   kivis_slice hi, kivis_storage_cursor **out)
{
    return t->methods->cursor_open(t, lo, hi, out);
}

/**
 * kivis_txn_cursor with a hint: every key in [lo, hi) that is at least
 * `tail` bytes long ends with `tail` bytes which, after `prefix`, form the
 * key of a row the caller is about to get (an entry pointing at a row).  A
 * backend whose reads are round trips reads those rows in the same request
 * as each page of the cursor, so that their gets (and a prefetch of them)
 * cost nothing more; SQLite reads each in the step's own query, so that
 * the get that follows the step runs no statement; the others open a plain
 * cursor (kivis_txn_follows).  Like prefetch, it
 * never changes what a step or a get returns; the storage knows only that
 * those bytes are a key, nothing of what it holds.  Same errors as
 * kivis_txn_cursor.
 */
static inline int kivis_txn_cursor_follow(kivis_storage_txn *t, kivis_slice lo,
                                          kivis_slice hi, kivis_slice prefix,
                                          size_t tail, kivis_storage_cursor **out)
{
    if (kivis_txn_follows(t) && tail)
        return t->methods->cursor_follow(t, lo, hi, prefix, tail, out);
    return t->methods->cursor_open(t, lo, hi, out);
}
static inline int kivis_txn_commit(kivis_storage_txn *t, int durability)
{
    return t->methods->commit(t, durability);
}
static inline void kivis_txn_abort(kivis_storage_txn *t)
{
    t->methods->abort(t);
}
static inline int kivis_cursor_get(kivis_storage_cursor *c, int op,
                                   kivis_slice *k, kivis_slice *v)
{
    return c->methods->get(c, op, k, v);
}
/** Whether kivis_cursor_page can hand over more than one entry a call on
 *  cursors of t (the cursor table has a page method).  t's storage
 *  speaks for the cursor's table: a storage that hands out cursors of
 *  another storage (the layered one, a tier's own) gives the oldest
 *  version among them. */
static inline int kivis_cursor_pages(const kivis_storage_txn *t,
                                     const kivis_storage_cursor *c)
{
    return t->storage->methods->version >= 5 && c->methods->page;
}

/**
 * Move cursor c of transaction t by op (KIVIS_NEXT or KIVIS_PREV) up to
 * `cap` entries at once: out[0..*n) are the entries *n successive
 * kivis_cursor_get(c, op) calls would have returned, and the cursor is
 * left on the last of them, as those calls would have left it.  A backend
 * returns as many as it can cheaply (LMDB: up to cap from one database;
 * memory: the rest of a B+tree leaf; without a page method: one), so *n
 * may be less than cap before the end.
 *
 * The views live as long as a cursor_get result: until the next call on
 * c, the next write in t, or t's end.  Where the store can change under a
 * read transaction between two calls (memory: a read-only transaction
 * sees each commit as it lands, and a commit may free what the views
 * point at), *stamp points at a counter that every such change moves, and
 * the views are good only while it keeps the value it had when the call
 * returned; elsewhere *stamp is NULL.  So a caller that keeps a run across
 * its own calls compares the counter before it reads the next entry.
 * Without a page method the run is one entry from cursor_get, its view
 * no longer-lived than a cursor_get result (on a store that changes
 * under its readers, only until the next commit), and *stamp is NULL:
 * use it before anything can commit.
 * @return KIVIS_OK with 1 <= *n <= cap; KIVIS_NOTFOUND (*n = 0) at the end,
 *         as cursor_get; KIVIS_EINVAL (another op, cap 0); the errors of
 *         cursor_get, met before any entry (one met after some ends the
 *         run early: the next call meets it again), with *n = 0 and the
 *         cursor where it was.
 */
static inline int kivis_cursor_page(kivis_storage_txn *t,
                                    kivis_storage_cursor *c, int op,
                                    kivis_cursor_entry *out, size_t cap,
                                    size_t *n, const uint64_t **stamp)
{
    *n = 0;
    *stamp = NULL;
    if ((op != KIVIS_NEXT && op != KIVIS_PREV) || cap == 0)
        return KIVIS_EINVAL;
    if (kivis_cursor_pages(t, c))
        return c->methods->page(c, op, out, cap, n, stamp);
    int rc = c->methods->get(c, op, &out[0].key, &out[0].value);
    *n = rc == KIVIS_OK;
    return rc;
}

/** Close a cursor.  NULL is a no-op. */
static inline void kivis_cursor_close(kivis_storage_cursor *c)
{
    if (c)
        c->methods->close(c);
}

/**
 * Check that a backend's method table is one this library can drive.
 * @return KIVIS_OK, or KIVIS_EVERSION if its version is 0 or newer than
 *         KIVIS_STORAGE_VERSION, or KIVIS_EINVAL if st is NULL.
 */
int kivis_storage_check(const kivis_storage *st);

#ifdef __cplusplus
}
#endif

#endif /* KIVIS_STORAGE_H */
