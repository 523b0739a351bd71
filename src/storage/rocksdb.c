/*
 * src/storage/rocksdb.c - the RocksDB backend (see kivis/rocksdb.h).
 *
 * RocksDB offers snapshots, iterators and atomic write batches, not
 * read-write transactions, so this is a batch-only backend like memory.c:
 *  - a read-only transaction is a snapshot plus the read options that pin
 *    every read to it;
 *  - a write transaction is an overlay (kivis/overlay.h) over such a read
 *    transaction, wrapped so that it holds the process's writer slot until
 *    its batch has landed, and so that its writes can release the pinned
 *    results of earlier gets (storage.h lets them die at the next write);
 *  - commit writes the overlay's batch with one rocksdb_write.
 * A snapshot never changes, so a cursor's iterator never needs to find its
 * place again, except after an iterator error, when it seeks back to the
 * last key it returned (kept in a kivis_bt_range).
 */
#include <kivis/rocksdb.h>
#include <kivis/overlay.h>

#include "feedhub.h"

#include "btree.h" /* kivis_bt_range, kivis__key_cmp, kivis__cursor_args */

#include <rocksdb/c.h>

#include <pthread.h>
#include <stdbool.h>
#include <string.h>

/* RocksDB's info LOG must stay empty.  librocksdb 7.8 (Debian 12) is built
 * with assertions, and its file writer asserts when a file whose earlier
 * write failed is written again: on a full disk the info log's buffered
 * lines fail to reach the file, and the next line (the error handler
 * reporting the failed commit) aborts the host process.  The C API can
 * neither plug in another logger nor open without the file, so the level
 * is the highest there is, HEADER_LEVEL, at which librocksdb 7.8 writes
 * nothing to the file at all (not even at open; tests/test_rocksdb.c
 * checks it stays empty on a full disk).  The empty LOG is still renamed
 * to LOG.old.* on each open; keep one of those, not RocksDB's thousand. */
#define INFO_LOG_HEADER_LEVEL 5 /* rocksdb::InfoLogLevel::HEADER_LEVEL */
#define KEEP_LOG_FILES 1

typedef struct rocks_storage {
    kivis_storage st; /* first: what the caller holds */
    kivis_allocator alloc;
    rocksdb_t *db;
    rocksdb_writeoptions_t *sync, *nosync;
    rocksdb_readoptions_t *latest; /* reads of the newest committed state */
    kivis__feedhub *hub;           /* the change feed */
    pthread_mutex_t lock; /* guards writing and writer */
    pthread_cond_t idle;  /* signalled when the writer slot frees up */
    bool writing;
    pthread_t writer;
} rocks_storage;

/* A read-only transaction, or the base of a write transaction. */
typedef struct rocks_txn {
    kivis_storage_txn txn; /* first: what the caller holds */
    rocks_storage *rs;
    const rocksdb_snapshot_t *snap;
    rocksdb_readoptions_t *ro;
    rocksdb_pinnableslice_t **pins; /* values handed out by get, but last's */
    size_t npins, pins_cap;
    /* The last get and its answer, given again without asking RocksDB: the
     * record engine reads a record, then reads it again to update or
     * remove it, and a RocksDB get is a memtable and level search.  The
     * snapshot never changes, so the answer stays right; a write
     * transaction's own writes are the overlay's, above this. */
    bool has_last;
    unsigned char *last_key;
    size_t last_len, last_cap;
    rocksdb_pinnableslice_t *last; /* its value; NULL: not found */
} rocks_txn;

/* A write transaction: the overlay over a rocks_txn. */
typedef struct rocks_writer {
    kivis_storage_txn txn; /* first: what the caller holds */
    rocks_storage *rs;
    kivis_storage_txn *ov; /* owns base */
    rocks_txn *base;
} rocks_writer;

enum cursor_state { UNPLACED, PLACED, ENDED };

typedef struct rocks_cursor {
    kivis_storage_cursor cur; /* first: what the caller holds */
    rocks_txn *rt;
    rocksdb_readoptions_t *ro; /* the snapshot plus this cursor's bounds */
    rocksdb_iterator_t *it;
    kivis_bt_range range; /* the bounds' bytes (ro points at them), last key */
    enum cursor_state state;
    bool empty; /* lo >= hi: nothing to iterate */
    bool lost;  /* the iterator is not on range.last: seek back to it */
} rocks_cursor;

static const kivis_slice no_slice = {NULL, 0};

/* A RocksDB error string (Status::ToString) to a kivis status; frees it.
 * The C API gives only the text, so the status's class is read from it. */
static int status_of(char *err)
{
    int rc = KIVIS_EIO;
    if (strstr(err, "No space left") || strstr(err, "quota exceeded"))
        rc = KIVIS_EFULL;
    else if (strstr(err, "Corruption"))
        rc = KIVIS_ECORRUPT;
    else if (strstr(err, "While lock file") || strstr(err, "lock hold by"))
        rc = KIVIS_EBUSY; /* another process, or another storage here */
    rocksdb_free(err);
    return rc;
}

static void *rs_malloc(const rocks_storage *rs, size_t n)
{
    return rs->alloc.malloc(rs->alloc.ctx, n);
}

static void rs_free(const rocks_storage *rs, void *p)
{
    rs->alloc.free(rs->alloc.ctx, p);
}

static bool key_ok(kivis_slice key)
{
    return key.len != 0 && key.data;
}

/* ---- the writer slot -------------------------------------------------- */

/* Wait for the active writer to finish, unless it is this thread, which
 * would wait for itself forever. */
static int writer_enter(rocks_storage *rs)
{
    pthread_mutex_lock(&rs->lock);
    bool mine = rs->writing && pthread_equal(rs->writer, pthread_self());
    while (!mine && rs->writing)
        pthread_cond_wait(&rs->idle, &rs->lock);
    if (!mine) {
        rs->writing = true;
        rs->writer = pthread_self();
    }
    pthread_mutex_unlock(&rs->lock);
    return mine ? KIVIS_EBUSY : KIVIS_OK;
}

static void writer_leave(rocks_storage *rs)
{
    pthread_mutex_lock(&rs->lock);
    rs->writing = false;
    pthread_cond_signal(&rs->idle);
    pthread_mutex_unlock(&rs->lock);
}

/* ---- cursors ---------------------------------------------------------- */

static kivis_slice it_key(rocksdb_iterator_t *it)
{
    size_t len;
    const char *k = rocksdb_iter_key(it, &len);
    return kivis_slice_make(k, len);
}

static kivis_slice it_value(rocksdb_iterator_t *it)
{
    size_t len;
    const char *v = rocksdb_iter_value(it, &len);
    return kivis_slice_make(v, len);
}

/* First entry >= target (dir > 0) or last entry <= target (dir < 0);
 * target NULL, or one outside the bounds, means the range's start or end.
 * The iterator's own bounds clip the result to the range. */
static void seek(rocks_cursor *c, int dir, const kivis_slice *target)
{
    const kivis_bt_range *r = &c->range;
    if (dir > 0 && target && kivis__key_cmp(*target, r->lo) > 0)
        rocksdb_iter_seek(c->it, target->data, target->len);
    else if (dir > 0)
        rocksdb_iter_seek_to_first(c->it);
    else if (target && (!r->hi.data || kivis__key_cmp(*target, r->hi) < 0))
        rocksdb_iter_seek_for_prev(c->it, target->data, target->len);
    else
        rocksdb_iter_seek_to_last(c->it);
}

static void step(rocks_cursor *c, int dir)
{
    if (!c->lost) {
        (dir > 0 ? rocksdb_iter_next : rocksdb_iter_prev)(c->it);
        return;
    }
    kivis_slice last = kivis__range_last(&c->range);
    seek(c, dir, &last);
    if (rocksdb_iter_valid(c->it) && kivis__key_cmp(it_key(c->it), last) == 0)
        (dir > 0 ? rocksdb_iter_next : rocksdb_iter_prev)(c->it);
}

/* Move the iterator for `op`; false when the op cannot place it at all. */
static bool move(rocks_cursor *c, int op, const kivis_slice *target)
{
    int dir = kivis__op_dir(op);
    bool stepping = op == KIVIS_NEXT || op == KIVIS_PREV;
    if (c->empty || (stepping && c->state == ENDED))
        return false;
    if (op == KIVIS_SEEK_LE && target->len == 0)
        return false; /* no key is <= the empty key */
    if (stepping && c->state == PLACED)
        step(c, dir);
    else
        seek(c, dir, target);
    return true;
}

/* A RocksDB iterator may keep failing once it has failed, even when sought
 * elsewhere: start over with a fresh one on the same snapshot and bounds. */
static void renew(rocks_cursor *c)
{
    rocksdb_iter_destroy(c->it);
    c->it = rocksdb_create_iterator(c->rt->rs->db, c->ro);
}

/* Report where the iterator landed.  A failure leaves state alone (the
 * cursor stays on range.last) but marks the iterator as elsewhere. */
static int settle(rocks_cursor *c, kivis_slice *key, kivis_slice *value)
{
    if (!rocksdb_iter_valid(c->it)) {
        char *err = NULL;
        rocksdb_iter_get_error(c->it, &err);
        c->lost = true;
        if (err) {
            renew(c);
            return status_of(err);
        }
        c->state = ENDED;
        return KIVIS_NOTFOUND;
    }
    kivis_slice k = it_key(c->it);
    if (!kivis__range_has(&c->range, k)) { /* the bounds already ensure it */
        c->lost = true;
        c->state = ENDED;
        return KIVIS_NOTFOUND;
    }
    if (kivis__range_remember(&c->range, &c->rt->rs->alloc, k) != KIVIS_OK) {
        c->lost = true;
        return KIVIS_ENOMEM;
    }
    c->lost = false;
    c->state = PLACED;
    *key = k;
    if (value)
        *value = it_value(c->it);
    return KIVIS_OK;
}

static int rc_get(kivis_storage_cursor *cur, int op, kivis_slice *key,
                  kivis_slice *value)
{
    rocks_cursor *c = (rocks_cursor *)cur;
    kivis_slice buf;
    const kivis_slice *target;
    int rc = kivis__cursor_args(op, key, value, &buf, &target);
    if (rc)
        return rc;
    if (!move(c, op, target)) {
        c->state = ENDED;
        return KIVIS_NOTFOUND;
    }
    return settle(c, key, value);
}

static void rc_close(kivis_storage_cursor *cur)
{
    rocks_cursor *c = (rocks_cursor *)cur;
    const rocks_storage *rs = c->rt->rs;
    if (c->it)
        rocksdb_iter_destroy(c->it);
    if (c->ro)
        rocksdb_readoptions_destroy(c->ro);
    kivis__range_free(&c->range, &rs->alloc);
    rs_free(rs, c);
}

static const kivis_cursor_methods rocks_cursor_methods = {rc_get, rc_close,
                                                         NULL /* page */};

/* Read options on the transaction's snapshot, bounded to the range: the
 * iterator then skips what lies outside instead of returning it. */
static rocksdb_readoptions_t *bounded_options(const rocks_txn *rt,
                                              const kivis_bt_range *r)
{
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_readoptions_set_snapshot(ro, rt->snap);
    if (r->lo.len)
        rocksdb_readoptions_set_iterate_lower_bound(ro, r->lo.data, r->lo.len);
    if (r->hi.data)
        rocksdb_readoptions_set_iterate_upper_bound(ro, r->hi.data, r->hi.len);
    return ro;
}

static int rt_cursor_open(kivis_storage_txn *txn, kivis_slice lo,
                          kivis_slice hi, kivis_storage_cursor **out)
{
    rocks_txn *rt = (rocks_txn *)txn;
    *out = NULL;
    if (!lo.data && lo.len)
        return KIVIS_EINVAL;
    rocks_cursor *c = rs_malloc(rt->rs, sizeof *c);
    if (!c)
        return KIVIS_ENOMEM;
    memset(c, 0, sizeof *c);
    c->cur.methods = &rocks_cursor_methods;
    c->rt = rt;
    c->state = UNPLACED;
    if (kivis__range_init(&c->range, &rt->rs->alloc, lo, hi) != KIVIS_OK) {
        rs_free(rt->rs, c);
        return KIVIS_ENOMEM;
    }
    /* RocksDB wants lower < upper; an empty range never touches it. */
    c->empty = hi.data && kivis__key_cmp(c->range.lo, c->range.hi) >= 0;
    if (!c->empty) {
        c->ro = bounded_options(rt, &c->range);
        c->it = rocksdb_create_iterator(rt->rs->db, c->ro);
    }
    *out = &c->cur;
    return KIVIS_OK;
}

/* ---- read-only transactions ------------------------------------------- */

static void release_pins(rocks_txn *rt)
{
    for (size_t i = 0; i < rt->npins; i++)
        rocksdb_pinnableslice_destroy(rt->pins[i]);
    rt->npins = 0;
}

static int reserve_pin(rocks_txn *rt)
{
    if (rt->npins < rt->pins_cap)
        return KIVIS_OK;
    size_t cap = rt->pins_cap ? rt->pins_cap * 2 : 8;
    void *p = rt->rs->alloc.realloc(rt->rs->alloc.ctx, rt->pins, cap * sizeof *rt->pins);
    if (!p)
        return KIVIS_ENOMEM;
    rt->pins = p;
    rt->pins_cap = cap;
    return KIVIS_OK;
}

/* Room for a key of len bytes in last_key. */
static int reserve_last_key(rocks_txn *rt, size_t len)
{
    if (len <= rt->last_cap)
        return KIVIS_OK;
    size_t cap = len < 64 ? 64 : len;
    void *p = rt->rs->alloc.realloc(rt->rs->alloc.ctx, rt->last_key, cap);
    if (!p)
        return KIVIS_ENOMEM;
    rt->last_key = p;
    rt->last_cap = cap;
    return KIVIS_OK;
}

static bool is_last(const rocks_txn *rt, kivis_slice key)
{
    return rt->has_last && key.len == rt->last_len &&
           memcmp(key.data, rt->last_key, key.len) == 0;
}

/* The last get's answer, again. */
static int last_answer(const rocks_txn *rt, kivis_slice *value)
{
    if (!rt->last)
        return KIVIS_NOTFOUND;
    size_t len;
    const char *v = rocksdb_pinnableslice_value(rt->last, &len);
    *value = kivis_slice_make(v, len);
    return KIVIS_OK;
}

/* p (NULL: not found) becomes the last get's answer; the one before keeps
 * its pin until release_pins (reserve_pin made room), since it was handed
 * out. */
static void remember_last(rocks_txn *rt, kivis_slice key,
                          rocksdb_pinnableslice_t *p)
{
    if (rt->last)
        rt->pins[rt->npins++] = rt->last;
    rt->last = p;
    memcpy(rt->last_key, key.data, key.len);
    rt->last_len = key.len;
    rt->has_last = true;
}

/* The value stays pinned (in the block cache, or copied by RocksDB out of
 * a memtable) until release_pins, or longer as the last get's: the
 * lifetime storage.h promises. */
static int rt_get(kivis_storage_txn *txn, kivis_slice key, kivis_slice *value)
{
    rocks_txn *rt = (rocks_txn *)txn;
    *value = no_slice;
    if (!key_ok(key))
        return KIVIS_EINVAL;
    if (key.len > KIVIS_ROCKSDB_MAX_KEY)
        return KIVIS_NOTFOUND; /* cannot have been stored */
    if (is_last(rt, key))
        return last_answer(rt, value);
    if (reserve_pin(rt) != KIVIS_OK || reserve_last_key(rt, key.len) != KIVIS_OK)
        return KIVIS_ENOMEM;
    char *err = NULL;
    rocksdb_pinnableslice_t *p = rocksdb_get_pinned(rt->rs->db, rt->ro, key.data,
                                                    key.len, &err);
    if (err)
        return status_of(err);
    remember_last(rt, key, p);
    return last_answer(rt, value);
}

static int rt_put(kivis_storage_txn *txn, kivis_slice key, kivis_slice value)
{
    (void)txn, (void)key, (void)value;
    return KIVIS_EINVAL;
}

static int rt_del(kivis_storage_txn *txn, kivis_slice key)
{
    (void)txn, (void)key;
    return KIVIS_EINVAL;
}

static void rt_abort(kivis_storage_txn *txn)
{
    rocks_txn *rt = (rocks_txn *)txn;
    const rocks_storage *rs = rt->rs;
    release_pins(rt);
    if (rt->last)
        rocksdb_pinnableslice_destroy(rt->last);
    rs_free(rs, rt->last_key);
    rs_free(rs, rt->pins);
    rocksdb_readoptions_destroy(rt->ro);
    rocksdb_release_snapshot(rs->db, rt->snap);
    rs_free(rs, rt);
}

static int rt_commit(kivis_storage_txn *txn, int durability)
{
    (void)durability;
    rt_abort(txn);
    return KIVIS_OK;
}

static const kivis_txn_methods read_txn_methods = {
    rt_get, rt_put, rt_del, rt_cursor_open, rt_commit, rt_abort,
    NULL, NULL, /* discard is del: local reads cost no round trip */
    NULL, /* cursor_follow */
};

static int read_txn_new(rocks_storage *rs, rocks_txn **out)
{
    rocks_txn *rt = rs_malloc(rs, sizeof *rt);
    *out = rt;
    if (!rt)
        return KIVIS_ENOMEM;
    memset(rt, 0, sizeof *rt);
    rt->txn.methods = &read_txn_methods;
    rt->txn.storage = &rs->st;
    rt->txn.flags = KIVIS_TXN_RDONLY;
    rt->rs = rs;
    rt->snap = rocksdb_create_snapshot(rs->db);
    rt->ro = rocksdb_readoptions_create();
    rocksdb_readoptions_set_snapshot(rt->ro, rt->snap);
    return KIVIS_OK;
}

/* ---- write transactions ----------------------------------------------- */

/* The writes as one RocksDB write batch. */
static int write_batch(rocks_storage *rs, const kivis_batch_op *ops, size_t n,
                       int durability)
{
    rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
    for (size_t i = 0; i < n; i++) {
        if (ops[i].del)
            rocksdb_writebatch_delete(wb, ops[i].key.data, ops[i].key.len);
        else
            rocksdb_writebatch_put(wb, ops[i].key.data, ops[i].key.len,
                                   ops[i].value.data, ops[i].value.len);
    }
    char *err = NULL;
    rocksdb_write(rs->db, durability == KIVIS_NOSYNC ? rs->nosync : rs->sync, wb, &err);
    rocksdb_writebatch_destroy(wb);
    return err ? status_of(err) : KIVIS_OK;
}

/* Whether key is in the store: the writer slot is held, so nothing
 * commits between this read and the batch. */
static int committed(void *ctx, kivis_slice key)
{
    rocks_storage *rs = ctx;
    char *err = NULL;
    rocksdb_pinnableslice_t *p = rocksdb_get_pinned(rs->db, rs->latest, key.data,
                                                    key.len, &err);
    if (err)
        return status_of(err);
    rocksdb_pinnableslice_destroy(p);
    return p ? KIVIS_OK : KIVIS_NOTFOUND;
}

/* Write the batch, and feed its changes once it is in. */
static int rocks_apply(void *ctx, const kivis_batch_op *ops, size_t n,
                       int durability)
{
    rocks_storage *rs = ctx;
    kivis__change *changes;
    size_t nchanges;
    int known = kivis__feed_classify(rs->hub, &rs->alloc, ops, n, committed, rs,
                                     &changes, &nchanges);
    int rc = write_batch(rs, ops, n, durability);
    if (rc == KIVIS_OK && known == KIVIS_OK)
        kivis__feedhub_publish(rs->hub, changes, nchanges);
    else if (rc == KIVIS_OK)
        kivis__feedhub_lost(rs->hub);
    if (changes)
        rs_free(rs, changes);
    return rc;
}

static rocks_writer *writer_of(kivis_storage_txn *txn)
{
    return (rocks_writer *)txn;
}

static int wr_get(kivis_storage_txn *txn, kivis_slice key, kivis_slice *value)
{
    return kivis_txn_get(writer_of(txn)->ov, key, value);
}

/* After a write (whose bytes may be an earlier get's result): the gets'
 * pins are no longer promised to anyone. */
static int written(rocks_writer *w, int rc)
{
    if (rc == KIVIS_OK)
        release_pins(w->base);
    return rc;
}

static int wr_put(kivis_storage_txn *txn, kivis_slice key, kivis_slice value)
{
    rocks_writer *w = writer_of(txn);
    return written(w, kivis_txn_put(w->ov, key, value));
}

static int wr_del(kivis_storage_txn *txn, kivis_slice key)
{
    rocks_writer *w = writer_of(txn);
    return written(w, kivis_txn_del(w->ov, key));
}

/* A delete of an index entry need not read: a RocksDB get is a search of
 * the memtables and levels, not the free check storage.h's discard has in
 * mind, so the delete is queued blind (a tombstone either way). */
static int wr_discard(kivis_storage_txn *txn, kivis_slice key)
{
    rocks_writer *w = writer_of(txn);
    return written(w, kivis_overlay_discard(w->ov, key));
}

static int wr_cursor_open(kivis_storage_txn *txn, kivis_slice lo, kivis_slice hi,
                          kivis_storage_cursor **out)
{
    return kivis_txn_cursor(writer_of(txn)->ov, lo, hi, out);
}

/* The writer slot is held until the batch has landed, so that the next
 * writer's snapshot includes it. */
static int wr_commit(kivis_storage_txn *txn, int durability)
{
    rocks_writer *w = writer_of(txn);
    rocks_storage *rs = w->rs;
    int rc = kivis_txn_commit(w->ov, durability);
    rs_free(rs, w);
    writer_leave(rs);
    return rc;
}

static void wr_abort(kivis_storage_txn *txn)
{
    rocks_writer *w = writer_of(txn);
    rocks_storage *rs = w->rs;
    kivis_txn_abort(w->ov);
    rs_free(rs, w);
    writer_leave(rs);
}

static const kivis_txn_methods write_txn_methods = {
    wr_get, wr_put, wr_del, wr_cursor_open, wr_commit, wr_abort,
    wr_discard, NULL, /* no prefetch: a get costs no round trip */
    NULL, /* cursor_follow */
};

/* Called holding the writer slot; gives it back on failure. */
static int write_txn_new(rocks_storage *rs, kivis_storage_txn **out)
{
    rocks_writer *w = rs_malloc(rs, sizeof *w);
    rocks_txn *base = NULL;
    int rc = w ? read_txn_new(rs, &base) : KIVIS_ENOMEM;
    if (rc == KIVIS_OK)
        rc = kivis_overlay_begin(&rs->st, &base->txn, rocks_apply, rs, &rs->alloc,
                                 &w->ov); /* owns base from here, even on failure */
    if (rc != KIVIS_OK) {
        rs_free(rs, w);
        writer_leave(rs);
        return rc;
    }
    w->txn.methods = &write_txn_methods;
    w->txn.storage = &rs->st;
    w->txn.flags = 0;
    w->rs = rs;
    w->base = base;
    *out = &w->txn;
    return KIVIS_OK;
}

/* ---- the storage ------------------------------------------------------ */

static rocks_storage *storage_of(kivis_storage *st)
{
    return (rocks_storage *)st;
}

static int rk_begin(kivis_storage *st, unsigned flags, kivis_storage_txn **out)
{
    rocks_storage *rs = storage_of(st);
    *out = NULL;
    if (flags & ~KIVIS_TXN_RDONLY)
        return KIVIS_EINVAL;
    if (!(flags & KIVIS_TXN_RDONLY)) {
        int rc = writer_enter(rs);
        return rc == KIVIS_OK ? write_txn_new(rs, out) : rc;
    }
    rocks_txn *rt;
    if (read_txn_new(rs, &rt) != KIVIS_OK)
        return KIVIS_ENOMEM;
    *out = &rt->txn;
    return KIVIS_OK;
}

static size_t rk_max_key_size(kivis_storage *st)
{
    (void)st;
    return KIVIS_ROCKSDB_MAX_KEY;
}

/* Everything but the allocation itself, which open_db may not have made. */
static void storage_destroy(rocks_storage *rs)
{
    if (rs->db)
        rocksdb_close(rs->db);
    if (rs->sync)
        rocksdb_writeoptions_destroy(rs->sync);
    if (rs->nosync)
        rocksdb_writeoptions_destroy(rs->nosync);
    if (rs->latest)
        rocksdb_readoptions_destroy(rs->latest);
    kivis__feedhub_release(rs->hub);
    pthread_cond_destroy(&rs->idle);
    pthread_mutex_destroy(&rs->lock);
}

static int rk_feed_open(kivis_storage *st, uint64_t after, kivis_feed **out)
{
    return kivis__feedhub_open(storage_of(st)->hub, after, out);
}

static void rk_close(kivis_storage *st)
{
    rocks_storage *rs = storage_of(st);
    storage_destroy(rs);
    rs_free(rs, rs);
}

static const kivis_storage_methods rocks_methods = {
    KIVIS_STORAGE_VERSION, "rocksdb", rk_close, rk_max_key_size, rk_begin,
    rk_feed_open,
};

static rocksdb_options_t *db_options(const kivis_rocksdb_options *o)
{
    size_t cache_size = o && o->block_cache_size ? o->block_cache_size
                                                 : KIVIS_ROCKSDB_CACHE_SIZE;
    size_t buffer = o && o->write_buffer_size ? o->write_buffer_size
                                              : KIVIS_ROCKSDB_WRITE_BUFFER;
    rocksdb_options_t *opt = rocksdb_options_create();
    rocksdb_block_based_table_options_t *table = rocksdb_block_based_options_create();
    rocksdb_cache_t *cache = rocksdb_cache_create_lru(cache_size);
    rocksdb_block_based_options_set_block_cache(table, cache);
    rocksdb_options_set_block_based_table_factory(opt, table);
    /* The options hold their own references to the table factory and cache. */
    rocksdb_cache_destroy(cache);
    rocksdb_block_based_options_destroy(table);
    rocksdb_options_set_create_if_missing(opt, !(o && o->no_create));
    rocksdb_options_set_write_buffer_size(opt, buffer);
    rocksdb_options_set_info_log_level(opt, INFO_LOG_HEADER_LEVEL);
    rocksdb_options_set_keep_log_file_num(opt, KEEP_LOG_FILES);
    return opt;
}

static int open_db(rocks_storage *rs, const char *path, const kivis_rocksdb_options *o)
{
    rocksdb_options_t *opt = db_options(o);
    char *err = NULL;
    rs->db = rocksdb_open(opt, path, &err);
    rocksdb_options_destroy(opt);
    if (err) {
        rs->db = NULL;
        return status_of(err);
    }
    rs->sync = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(rs->sync, 1);
    rs->nosync = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(rs->nosync, 0);
    rs->latest = rocksdb_readoptions_create();
    return kivis__feedhub_new(&rs->alloc, &rs->hub);
}

int kivis_rocksdb_open(const char *path, const kivis_rocksdb_options *opts,
                       kivis_storage **out)
{
    if (!out)
        return KIVIS_EINVAL;
    *out = NULL;
    if (!path)
        return KIVIS_EINVAL;
    const kivis_allocator *a = opts && opts->allocator ? opts->allocator
                                                       : kivis_default_allocator();
    rocks_storage *rs = a->malloc(a->ctx, sizeof *rs);
    if (!rs)
        return KIVIS_ENOMEM;
    memset(rs, 0, sizeof *rs);
    rs->st.methods = &rocks_methods;
    rs->alloc = *a;
    pthread_mutex_init(&rs->lock, NULL);
    pthread_cond_init(&rs->idle, NULL);
    int rc = open_db(rs, path, opts);
    if (rc != KIVIS_OK) {
        storage_destroy(rs);
        rs_free(rs, rs);
        return rc;
    }
    *out = &rs->st;
    return KIVIS_OK;
}

/* ---- checkpoint and compaction ------------------------------------------ */

static bool is_rocksdb(const kivis_storage *st)
{
    return st && st->methods == &rocks_methods;
}

int kivis_rocksdb_checkpoint(kivis_storage *st, const char *dest)
{
    if (!is_rocksdb(st) || !dest || !dest[0])
        return KIVIS_EINVAL;
    char *err = NULL;
    rocksdb_checkpoint_t *cp = rocksdb_checkpoint_object_create(storage_of(st)->db, &err);
    if (err)
        return status_of(err);
    /* log_size_for_flush 0: flush the memtable first, so the checkpoint is
     * SST files (hard links where the file system allows) and no log. */
    rocksdb_checkpoint_create(cp, dest, 0, &err);
    rocksdb_checkpoint_object_destroy(cp);
    if (!err)
        return KIVIS_OK;
    if (strstr(err, "exists")) { /* RocksDB refuses an existing dest */
        rocksdb_free(err);
        return KIVIS_EINVAL;
    }
    return status_of(err);
}

int kivis_rocksdb_compact(kivis_storage *st)
{
    if (!is_rocksdb(st))
        return KIVIS_EINVAL;
    rocksdb_compact_range(storage_of(st)->db, NULL, 0, NULL, 0);
    return KIVIS_OK;
}
