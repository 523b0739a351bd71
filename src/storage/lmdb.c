/*
 * src/storage/lmdb.c - the LMDB backend (see kivis/lmdb.h).
 *
 * Transactions map onto MDB transactions.  A write transaction also keeps
 * a redo log of its writes: when LMDB reports the map full, the MDB
 * transaction is already dead, so the backend aborts it, grows the map,
 * begins a new one and replays the log.  Cursors keep their bounds and the
 * last key they returned (kivis_bt_range), and find their place again from
 * that key after any write in their transaction or a replay, which gives
 * the cursor contract of storage.h whatever LMDB does with its own cursors.
 *
 * Between that abort and the replay LMDB's own writer lock is free, so a
 * write transaction also holds kivis's writer lock from before its
 * mdb_txn_begin to after its end: a mutex for this process's threads and
 * an flock on WRITER_LOCK_FILE for other processes.  No other kivis writer
 * can then commit in the gap and have its commit overwritten by a replay
 * computed before it (docs/storage.md, "LMDB").
 */
#include <kivis/lmdb.h>

#include "btree.h" /* kivis_bt_range, kivis__key_cmp */
#include "feedhub.h"

#include <lmdb.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

/* Readers are short in practice; one that outlives this wait (say, held
 * open by the writing thread itself) turns the growth into KIVIS_EFULL. */
#define GROW_WAIT_SECONDS 10

/* Times a transaction begins again after adopting a map another process
 * grew, before it gives up with KIVIS_EBUSY (each time, the other process
 * grew the map once more in between). */
enum { SPARE_READERS = 4, ADOPT_TRIES = 8 };

/* In the environment directory, beside data.mdb and lock.mdb. */
static const char WRITER_LOCK_FILE[] = "/kivis-writer.lock";

typedef struct lmdb_storage {
    kivis_storage st; /* first: what the caller holds */
    kivis_allocator alloc;
    MDB_env *env;
    MDB_dbi dbi;
    size_t max_key;
    size_t map_max;
    kivis__feedhub *hub; /* the change feed of commits through this storage */
    pthread_mutex_t write_lock; /* held by this process's write transaction */
    int writer_fd;              /* WRITER_LOCK_FILE, flock()ed along */
    pthread_mutex_t lock; /* guards the fields below */
    pthread_cond_t idle;  /* signalled when a transaction ends */
    unsigned active;      /* transactions open or beginning through this storage */
    bool growing;         /* the map is being resized: hold new transactions */
    bool writing;
    pthread_t writer;
    bool nosync; /* MDB_NOSYNC currently set on the env */
    /* Ended read transactions kept reset (mdb_txn_reset) for the next
     * reader: renewing one keeps its reader slot, which saves a malloc and
     * the lock-file mutex that a fresh mdb_txn_begin takes (LMDB's own
     * advice for frequent short readers; MDB_NOTLS lets any thread renew). */
    struct lmdb_txn *spare[SPARE_READERS];
    unsigned nspare;
} lmdb_storage;

typedef struct lmdb_txn {
    kivis_storage_txn txn; /* first: what the caller holds */
    lmdb_storage *ls;
    MDB_txn *t;
    uint64_t gen;    /* bumps when t is replaced by a replay */
    uint64_t writes; /* bumps on every write, so cursors re-seek */
    unsigned char *log; /* redo log: op, klen, vlen, key, value ... */
    size_t log_len, log_cap;
    kivis__feedset fs; /* what a writer changed, for the feed */
} lmdb_txn;

enum cursor_state { UNPLACED, PLACED, ENDED };

typedef struct lmdb_cursor {
    kivis_storage_cursor cur; /* first: what the caller holds */
    lmdb_txn *lt;
    MDB_cursor *mc;
    uint64_t gen, writes; /* of lt when mc was last positioned */
    kivis_bt_range range;
    enum cursor_state state;
} lmdb_cursor;

static const kivis_slice no_slice = {NULL, 0};

static MDB_val to_val(kivis_slice s)
{
    MDB_val v;
    v.mv_size = s.len;
    v.mv_data = (void *)s.data;
    return v;
}

static kivis_slice to_slice(MDB_val v)
{
    return kivis_slice_make(v.mv_data, v.mv_size);
}

/* LMDB and errno codes to kivis statuses. */
static int status_of(int rc)
{
    switch (rc) {
    case MDB_SUCCESS:
        return KIVIS_OK;
    case MDB_NOTFOUND:
        return KIVIS_NOTFOUND;
    case MDB_MAP_FULL:
    case ENOSPC:
    case EDQUOT:
        return KIVIS_EFULL;
    case MDB_BAD_VALSIZE:
        return KIVIS_EKEYSIZE;
    case MDB_READERS_FULL:
        return KIVIS_EBUSY;
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
    case MDB_INVALID:
        return KIVIS_ECORRUPT;
    case MDB_VERSION_MISMATCH:
        return KIVIS_EVERSION;
    case ENOMEM:
        return KIVIS_ENOMEM;
    case EINVAL:
        return KIVIS_EINVAL;
    default:
        return KIVIS_EIO;
    }
}

static void *ls_malloc(const lmdb_storage *ls, size_t n)
{
    return ls->alloc.malloc(ls->alloc.ctx, n);
}

static void ls_free(const lmdb_storage *ls, void *p)
{
    ls->alloc.free(ls->alloc.ctx, p);
}

/* ---- transaction bookkeeping and map growth --------------------------- */

/* Transactions count themselves before their MDB txn exists, and wait
 * while the map is resized.  A writer does so once kivis's writer lock is
 * its own (writer_lock): one still waiting for it must not hold a growing
 * writer up. */
static void txn_enter(lmdb_storage *ls, bool writer)
{
    pthread_mutex_lock(&ls->lock);
    while (ls->growing)
        pthread_cond_wait(&ls->idle, &ls->lock);
    ls->active++;
    if (writer) {
        ls->writing = true;
        ls->writer = pthread_self();
    }
    pthread_mutex_unlock(&ls->lock);
}

static void txn_leave(lmdb_storage *ls, bool writer)
{
    pthread_mutex_lock(&ls->lock);
    ls->active--;
    if (writer)
        ls->writing = false;
    pthread_cond_broadcast(&ls->idle);
    pthread_mutex_unlock(&ls->lock);
}

/* kivis's writer lock, taken before a write transaction's mdb_txn_begin
 * and released after its end: the mutex orders this process's threads
 * (they share one open file, and an flock belongs to the open file, not
 * to a thread), the flock other processes.  The kernel drops the flock of
 * a process that dies, as LMDB's robust mutex does its own lock. */
static int writer_lock(lmdb_storage *ls)
{
    pthread_mutex_lock(&ls->write_lock);
    int rc;
    while ((rc = flock(ls->writer_fd, LOCK_EX)) != 0 && errno == EINTR)
        ;
    if (rc == 0)
        return KIVIS_OK;
    pthread_mutex_unlock(&ls->write_lock);
    return KIVIS_EIO;
}

static void writer_unlock(lmdb_storage *ls)
{
    flock(ls->writer_fd, LOCK_UN);
    pthread_mutex_unlock(&ls->write_lock);
}

/* Free every spare reader.  Called with ls->lock held, or at close. */
static void drop_spares(lmdb_storage *ls)
{
    while (ls->nspare) {
        struct lmdb_txn *lt = ls->spare[--ls->nspare];
        mdb_txn_abort(lt->t);
        ls_free(ls, lt);
    }
}

/* Resize the map to `size` (0: the size another process gave it, as its
 * meta page says).  The caller is counted in ls->active and holds no MDB
 * txn; it steps out of the count while it waits, up to GROW_WAIT_SECONDS,
 * for this process's other transactions to end, and new ones wait for it.
 * One resize at a time: a second one waits for the first, then resizes
 * again (harmless: LMDB keeps the map at least as big as the data).
 * @return KIVIS_OK, KIVIS_EBUSY (the wait timed out), or LMDB's error as
 *         a kivis status. */
static int remap(lmdb_storage *ls, size_t size)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += GROW_WAIT_SECONDS;
    int rc = KIVIS_OK;
    pthread_mutex_lock(&ls->lock);
    ls->active--;
    pthread_cond_broadcast(&ls->idle);
    while (ls->growing)
        pthread_cond_wait(&ls->idle, &ls->lock);
    ls->growing = true;
    while (ls->active > 0 && rc == KIVIS_OK)
        if (pthread_cond_timedwait(&ls->idle, &ls->lock, &deadline) == ETIMEDOUT)
            rc = KIVIS_EBUSY;
    if (rc == KIVIS_OK) {
        drop_spares(ls); /* no reset txn outlives the old mapping */
        rc = status_of(mdb_env_set_mapsize(ls->env, size));
    }
    ls->growing = false;
    ls->active++;
    pthread_cond_broadcast(&ls->idle);
    pthread_mutex_unlock(&ls->lock);
    return rc;
}

/* Double the map for the writer that found it full (its MDB txn is gone).
 * Past map_max, or when other transactions outlast the wait: KIVIS_EFULL. */
static int grow_map(lmdb_storage *ls)
{
    MDB_envinfo info;
    mdb_env_info(ls->env, &info);
    if (info.me_mapsize >= ls->map_max)
        return KIVIS_EFULL;
    size_t size = info.me_mapsize > ls->map_max / 2 ? ls->map_max : info.me_mapsize * 2;
    int rc = remap(ls, size);
    return rc == KIVIS_EBUSY ? KIVIS_EFULL : rc;
}

/* ---- the redo log ------------------------------------------------------- */

enum { LOG_PUT = 1, LOG_DEL = 2 };

static int log_append(lmdb_txn *lt, unsigned char op, kivis_slice k, kivis_slice v)
{
    size_t need = 1 + 2 * sizeof(size_t) + k.len + v.len;
    if (lt->log_len + need > lt->log_cap) {
        size_t cap = (lt->log_len + need) * 2;
        unsigned char *p = lt->ls->alloc.realloc(lt->ls->alloc.ctx, lt->log, cap);
        if (!p)
            return KIVIS_ENOMEM;
        lt->log = p;
        lt->log_cap = cap;
    }
    unsigned char *p = lt->log + lt->log_len;
    *p++ = op;
    memcpy(p, &k.len, sizeof k.len);
    memcpy(p + sizeof k.len, &v.len, sizeof v.len);
    p += 2 * sizeof(size_t);
    if (k.len)
        memcpy(p, k.data, k.len);
    if (v.len)
        memcpy(p + k.len, v.data, v.len);
    lt->log_len += need;
    return KIVIS_OK;
}

static int apply_op(lmdb_txn *lt, unsigned char op, kivis_slice k, kivis_slice v)
{
    MDB_val key = to_val(k), val = to_val(v);
    int rc = op == LOG_PUT ? mdb_put(lt->t, lt->ls->dbi, &key, &val, 0)
                           : mdb_del(lt->t, lt->ls->dbi, &key, NULL);
    return rc == MDB_NOTFOUND && op == LOG_DEL ? MDB_SUCCESS : rc;
}

/* Begin a fresh MDB write txn and redo every logged write in it. */
static int replay(lmdb_txn *lt)
{
    int rc = mdb_txn_begin(lt->ls->env, NULL, 0, &lt->t);
    if (rc) {
        lt->t = NULL;
        return rc;
    }
    lt->gen++;
    for (size_t off = 0; off < lt->log_len && !rc;) {
        const unsigned char *p = lt->log + off;
        size_t klen, vlen;
        memcpy(&klen, p + 1, sizeof klen);
        memcpy(&vlen, p + 1 + sizeof klen, sizeof vlen);
        const unsigned char *k = p + 1 + 2 * sizeof(size_t);
        rc = apply_op(lt, p[0], kivis_slice_make(k, klen), kivis_slice_make(k + klen, vlen));
        off += 1 + 2 * sizeof(size_t) + klen + vlen;
    }
    return rc;
}

/* After MDB_MAP_FULL killed lt->t: grow, replay, and retry until the map
 * holds everything or can grow no more. */
static int recover_full(lmdb_txn *lt)
{
    int rc = MDB_MAP_FULL;
    while (rc == MDB_MAP_FULL) {
        if (lt->t)
            mdb_txn_abort(lt->t);
        lt->t = NULL;
        int grown = grow_map(lt->ls);
        if (grown != KIVIS_OK)
            return grown;
        rc = replay(lt);
    }
    return status_of(rc);
}

/* LMDB reports a short write as EIO, which is how a full disk shows up:
 * call it full when the disk lacks room for this transaction's writes
 * (the redo log's size) plus some slack. */
static int classify_write_error(const lmdb_txn *lt, int rc)
{
    if (rc != MDB_SUCCESS && rc != EIO && rc != ENOSPC)
        return status_of(rc);
    if (rc == MDB_SUCCESS)
        return KIVIS_OK;
    const char *path = NULL;
    struct statvfs vfs;
    if (mdb_env_get_path(lt->ls->env, &path) == 0 && statvfs(path, &vfs) == 0 &&
        (unsigned long long)vfs.f_bavail * vfs.f_frsize < lt->log_len + (1u << 20))
        return KIVIS_EFULL;
    return status_of(rc);
}

/* ---- transaction methods ---------------------------------------------- */

static lmdb_txn *txn_of(kivis_storage_txn *txn)
{
    return (lmdb_txn *)txn;
}

static int check_key(const lmdb_txn *lt, kivis_slice key)
{
    return kivis__check_key(key, lt->ls->max_key);
}

static int lm_get(kivis_storage_txn *txn, kivis_slice key, kivis_slice *value)
{
    lmdb_txn *lt = txn_of(txn);
    *value = no_slice;
    int rc = check_key(lt, key);
    if (rc == KIVIS_EKEYSIZE)
        return KIVIS_NOTFOUND; /* cannot have been stored */
    if (rc)
        return rc;
    if (!lt->t)
        return KIVIS_EFULL; /* a failed growth left no MDB txn */
    MDB_val k = to_val(key), v;
    rc = mdb_get(lt->t, lt->ls->dbi, &k, &v);
    if (rc == MDB_SUCCESS)
        *value = to_slice(v);
    return status_of(rc);
}

static int write_op(kivis_storage_txn *txn, unsigned char op, kivis_slice key,
                    kivis_slice value)
{
    lmdb_txn *lt = txn_of(txn);
    if (txn->flags & KIVIS_TXN_RDONLY)
        return KIVIS_EINVAL;
    int rc = check_key(lt, key);
    if (rc)
        return rc;
    if (!value.data && value.len)
        return KIVIS_EINVAL;
    if (!lt->t)
        return KIVIS_EFULL;
    if (op == LOG_DEL) {
        MDB_val k = to_val(key), v;
        rc = mdb_get(lt->t, lt->ls->dbi, &k, &v);
        if (rc)
            return status_of(rc);
    }
    if ((rc = kivis__feedset_touch(&lt->fs, txn, key)) != KIVIS_OK)
        return rc;
    rc = log_append(lt, op, key, value);
    if (rc)
        return rc;
    lt->writes++;
    rc = apply_op(lt, op, key, value);
    if (rc == MDB_MAP_FULL)
        return recover_full(lt); /* replays this write too */
    int status = classify_write_error(lt, rc);
    if (rc)
        lt->log_len -= 1 + 2 * sizeof(size_t) + key.len + value.len;
    return status;
}

static int lm_put(kivis_storage_txn *txn, kivis_slice key, kivis_slice value)
{
    return write_op(txn, LOG_PUT, key, value);
}

static int lm_del(kivis_storage_txn *txn, kivis_slice key)
{
    return write_op(txn, LOG_DEL, key, no_slice);
}

static void txn_end(lmdb_txn *lt)
{
    lmdb_storage *ls = lt->ls;
    bool writer = !(lt->txn.flags & KIVIS_TXN_RDONLY);
    kivis__feedset_free(&lt->fs);
    ls_free(ls, lt->log);
    ls_free(ls, lt);
    txn_leave(ls, writer);
    if (writer)
        writer_unlock(ls);
}

/* End a reader by parking it reset in the spare pool (or freeing it when
 * the pool is full). */
static void reader_park(lmdb_txn *lt)
{
    lmdb_storage *ls = lt->ls;
    mdb_txn_reset(lt->t);
    pthread_mutex_lock(&ls->lock);
    if (ls->nspare < SPARE_READERS) {
        ls->spare[ls->nspare++] = lt;
        lt = NULL;
    }
    ls->active--;
    pthread_cond_broadcast(&ls->idle);
    pthread_mutex_unlock(&ls->lock);
    if (lt) {
        mdb_txn_abort(lt->t);
        ls_free(ls, lt);
    }
}

static void lm_abort(kivis_storage_txn *txn)
{
    lmdb_txn *lt = txn_of(txn);
    if ((txn->flags & KIVIS_TXN_RDONLY) && lt->t) {
        reader_park(lt);
        return;
    }
    if (lt->t)
        mdb_txn_abort(lt->t);
    txn_end(lt);
}

static void set_sync(lmdb_storage *ls, int durability)
{
    bool nosync = durability == KIVIS_NOSYNC;
    if (nosync != ls->nosync) {
        mdb_env_set_flags(ls->env, MDB_NOSYNC, nosync);
        ls->nosync = nosync;
    }
}

static int lm_commit(kivis_storage_txn *txn, int durability)
{
    lmdb_txn *lt = txn_of(txn);
    if (!lt->t) {
        lm_abort(txn);
        return KIVIS_EFULL;
    }
    if (txn->flags & KIVIS_TXN_RDONLY) {
        lm_abort(txn);
        return KIVIS_OK;
    }
    set_sync(lt->ls, durability); /* we hold the write lock */
    kivis__feedset_settle(&lt->fs, txn);
    int status;
    for (;;) {
        int rc = mdb_txn_commit(lt->t); /* frees the MDB txn, whatever it says */
        lt->t = NULL;
        if (rc != MDB_MAP_FULL) {
            status = classify_write_error(lt, rc);
            break;
        }
        status = recover_full(lt); /* grow, replay, then commit again */
        if (status != KIVIS_OK)
            break;
    }
    if (status == KIVIS_OK) /* before lm_abort lets the next writer in */
        kivis__feedset_publish(&lt->fs, lt->ls->hub);
    lm_abort(txn); /* frees; lt->t is NULL unless recovery failed midway */
    return status;
}

/* ---- cursors ---------------------------------------------------------- */

static int cursor_attach(lmdb_cursor *c)
{
    lmdb_txn *lt = c->lt;
    if (!lt->t)
        return KIVIS_EFULL;
    if (c->mc && c->gen == lt->gen)
        return KIVIS_OK;
    /* A replay ended the MDB txn that owned the old cursor and freed it. */
    c->mc = NULL;
    int rc = mdb_cursor_open(lt->t, lt->ls->dbi, &c->mc);
    if (rc) {
        c->mc = NULL;
        return status_of(rc);
    }
    c->gen = lt->gen;
    return KIVIS_OK;
}

static int mc_op(lmdb_cursor *c, MDB_cursor_op op, MDB_val *k, MDB_val *v)
{
    return mdb_cursor_get(c->mc, k, v, op);
}

/* First entry >= target, clipped to lo (target NULL: the range's start). */
static int seek_ge(lmdb_cursor *c, const kivis_slice *target, MDB_val *k, MDB_val *v)
{
    kivis_slice from = target && kivis__key_cmp(*target, c->range.lo) > 0
                           ? *target : c->range.lo;
    if (from.len == 0)
        return mc_op(c, MDB_FIRST, k, v);
    *k = to_val(from);
    return mc_op(c, MDB_SET_RANGE, k, v);
}

/* Last entry < bound (strict) or <= bound. */
static int seek_below(lmdb_cursor *c, kivis_slice bound, bool strict, MDB_val *k,
                      MDB_val *v)
{
    *k = to_val(bound);
    int rc = mc_op(c, MDB_SET_RANGE, k, v);
    if (rc == MDB_NOTFOUND)
        return mc_op(c, MDB_LAST, k, v);
    if (rc)
        return rc;
    int cmp = kivis__key_cmp(to_slice(*k), bound);
    if (cmp > 0 || (cmp == 0 && strict))
        return mc_op(c, MDB_PREV, k, v);
    return MDB_SUCCESS;
}

/* Last entry <= target, clipped below hi (target NULL: the range's end). */
static int seek_le(lmdb_cursor *c, const kivis_slice *target, MDB_val *k, MDB_val *v)
{
    const kivis_slice hi = c->range.hi;
    if (target && target->len && (!hi.data || kivis__key_cmp(*target, hi) < 0))
        return seek_below(c, *target, false, k, v);
    if (target && !target->len)
        return MDB_NOTFOUND; /* no key is <= the empty key */
    if (!hi.data)
        return mc_op(c, MDB_LAST, k, v);
    if (hi.len == 0)
        return MDB_NOTFOUND;
    return seek_below(c, hi, true, k, v);
}

/* One entry on from the last key returned: directly when nothing moved
 * under the cursor, else by seeking past the remembered key. */
static int step(lmdb_cursor *c, int dir, MDB_val *k, MDB_val *v)
{
    if (c->writes == c->lt->writes && c->gen == c->lt->gen)
        return mc_op(c, dir > 0 ? MDB_NEXT : MDB_PREV, k, v);
    kivis_slice last = kivis__range_last(&c->range);
    int rc = dir > 0 ? seek_ge(c, &last, k, v) : seek_le(c, &last, k, v);
    if (rc == MDB_SUCCESS && kivis__key_cmp(to_slice(*k), last) == 0)
        rc = mc_op(c, dir > 0 ? MDB_NEXT : MDB_PREV, k, v);
    return rc;
}

static int move(lmdb_cursor *c, int op, const kivis_slice *target, MDB_val *k,
                MDB_val *v)
{
    int dir = kivis__op_dir(op);
    if (op == KIVIS_NEXT || op == KIVIS_PREV) {
        if (c->state == ENDED)
            return MDB_NOTFOUND;
        if (c->state == PLACED)
            return step(c, dir, k, v);
        target = NULL;
    }
    return dir > 0 ? seek_ge(c, target, k, v) : seek_le(c, target, k, v);
}

static int lc_get(kivis_storage_cursor *cur, int op, kivis_slice *key,
                  kivis_slice *value)
{
    lmdb_cursor *c = (lmdb_cursor *)cur;
    kivis_slice buf;
    const kivis_slice *target;
    int rc = kivis__cursor_args(op, key, value, &buf, &target);
    if (!rc)
        rc = cursor_attach(c);
    if (rc)
        return rc;
    MDB_val k, v;
    rc = move(c, op, target, &k, &v);
    if (rc == MDB_SUCCESS &&
        !kivis__range_short_of_far(&c->range, to_slice(k), kivis__op_dir(op)))
        rc = MDB_NOTFOUND;
    /* Only a write or a replay moves what is under a cursor (see step), and
     * neither happens in a read-only transaction. */
    if (rc == MDB_SUCCESS && !(c->lt->txn.flags & KIVIS_TXN_RDONLY))
        rc = kivis__range_remember(&c->range, &c->lt->ls->alloc, to_slice(k))
                 ? ENOMEM : MDB_SUCCESS;
    if (rc == MDB_NOTFOUND)
        c->state = ENDED;
    if (rc)
        return status_of(rc);
    c->state = PLACED;
    c->writes = c->lt->writes;
    *key = to_slice(k);
    if (value)
        *value = to_slice(v);
    return KIVIS_OK;
}

static void lc_close(kivis_storage_cursor *cur)
{
    lmdb_cursor *c = (lmdb_cursor *)cur;
    lmdb_storage *ls = c->lt->ls;
    /* Only a cursor of a live MDB txn is still LMDB's to free. */
    if (c->mc && c->lt->t && c->gen == c->lt->gen)
        mdb_cursor_close(c->mc);
    kivis__range_free(&c->range, &ls->alloc);
    ls_free(ls, c);
}

static const kivis_cursor_methods lmdb_cursor_methods = {lc_get, lc_close};

static int lm_cursor_open(kivis_storage_txn *txn, kivis_slice lo, kivis_slice hi,
                          kivis_storage_cursor **out)
{
    lmdb_txn *lt = txn_of(txn);
    *out = NULL;
    if (!lo.data && lo.len)
        return KIVIS_EINVAL;
    lmdb_cursor *c = ls_malloc(lt->ls, sizeof *c);
    if (!c)
        return KIVIS_ENOMEM;
    memset(c, 0, sizeof *c);
    c->cur.methods = &lmdb_cursor_methods;
    c->lt = lt;
    c->state = UNPLACED;
    if (kivis__range_init(&c->range, &lt->ls->alloc, lo, hi) != KIVIS_OK) {
        ls_free(lt->ls, c);
        return KIVIS_ENOMEM;
    }
    int rc = cursor_attach(c);
    if (rc) {
        lc_close(&c->cur);
        return rc;
    }
    *out = &c->cur;
    return KIVIS_OK;
}

static const kivis_txn_methods lmdb_txn_methods = {
    lm_get, lm_put, lm_del, lm_cursor_open, lm_commit, lm_abort,
    NULL, NULL, /* discard is del: local reads cost no round trip */
    NULL, /* cursor_follow */
};

/* ---- the storage ------------------------------------------------------ */

static lmdb_storage *storage_of(kivis_storage *st)
{
    return (lmdb_storage *)st;
}

/* A second write txn on the thread that holds one would deadlock in LMDB. */
static int claim_writer(lmdb_storage *ls)
{
    pthread_mutex_lock(&ls->lock);
    bool mine = ls->writing && pthread_equal(ls->writer, pthread_self());
    pthread_mutex_unlock(&ls->lock);
    return mine ? KIVIS_EBUSY : KIVIS_OK;
}

/* Begin the MDB txn of a transaction counted in ls->active.  LMDB says
 * MDB_MAP_RESIZED at begin when the committed data reaches past this
 * process's map (another process grew it): adopt the size the meta page
 * records and begin again.
 * @return a kivis status: KIVIS_EBUSY when this process's other
 *         transactions outlast the wait, or the map keeps moving. */
static int begin_mdb(lmdb_storage *ls, bool rdonly, MDB_txn **t)
{
    for (int tries = 0; tries < ADOPT_TRIES; tries++) {
        int rc = mdb_txn_begin(ls->env, NULL, rdonly ? MDB_RDONLY : 0, t);
        if (rc != MDB_MAP_RESIZED) {
            if (rc)
                *t = NULL;
            return status_of(rc);
        }
        *t = NULL;
        if ((rc = remap(ls, 0)) != KIVIS_OK)
            return rc;
    }
    return KIVIS_EBUSY;
}

static void txn_init(lmdb_txn *lt, lmdb_storage *ls, unsigned flags)
{
    memset(lt, 0, sizeof *lt);
    lt->txn.methods = &lmdb_txn_methods;
    lt->txn.storage = &ls->st;
    lt->txn.flags = flags;
    lt->ls = ls;
}

/* A reader: a renewed spare when there is one, else a new MDB txn. */
static int reader_begin(lmdb_storage *ls, kivis_storage_txn **out)
{
    pthread_mutex_lock(&ls->lock);
    while (ls->growing)
        pthread_cond_wait(&ls->idle, &ls->lock);
    ls->active++;
    lmdb_txn *lt = ls->nspare ? ls->spare[--ls->nspare] : NULL;
    pthread_mutex_unlock(&ls->lock);
    if (lt && mdb_txn_renew(lt->t) != MDB_SUCCESS) {
        mdb_txn_abort(lt->t); /* e.g. MDB_MAP_RESIZED: begin_mdb adopts it */
        lt->t = NULL;
    }
    if (!lt) {
        if (!(lt = ls_malloc(ls, sizeof *lt))) {
            txn_leave(ls, false);
            return KIVIS_ENOMEM;
        }
        txn_init(lt, ls, KIVIS_TXN_RDONLY);
    }
    if (!lt->t) {
        int rc = begin_mdb(ls, true, &lt->t);
        if (rc) {
            ls_free(ls, lt);
            txn_leave(ls, false);
            return rc;
        }
    }
    *out = &lt->txn;
    return KIVIS_OK;
}

static int lm_begin(kivis_storage *st, unsigned flags, kivis_storage_txn **out)
{
    lmdb_storage *ls = storage_of(st);
    *out = NULL;
    if (flags & ~KIVIS_TXN_RDONLY)
        return KIVIS_EINVAL;
    bool rdonly = flags & KIVIS_TXN_RDONLY;
    if (rdonly)
        return reader_begin(ls, out);
    if (claim_writer(ls))
        return KIVIS_EBUSY;
    lmdb_txn *lt = ls_malloc(ls, sizeof *lt);
    if (!lt)
        return KIVIS_ENOMEM;
    txn_init(lt, ls, flags);
    int rc = writer_lock(ls);
    if (rc) {
        ls_free(ls, lt);
        return rc;
    }
    txn_enter(ls, true);
    kivis__feedset_begin(&lt->fs, ls->hub, &ls->alloc);
    rc = begin_mdb(ls, false, &lt->t);
    if (rc) {
        txn_end(lt); /* leaves, and lets the next writer in */
        return rc;
    }
    *out = &lt->txn;
    return KIVIS_OK;
}

static size_t lm_max_key(kivis_storage *st)
{
    return storage_of(st)->max_key;
}

static int lm_feed_open(kivis_storage *st, uint64_t after, kivis_feed **out)
{
    return kivis__feedhub_open(storage_of(st)->hub, after, out);
}

static void lm_close(kivis_storage *st)
{
    lmdb_storage *ls = storage_of(st);
    kivis__feedhub_release(ls->hub);
    drop_spares(ls);
    mdb_env_close(ls->env);
    close(ls->writer_fd);
    pthread_cond_destroy(&ls->idle);
    pthread_mutex_destroy(&ls->lock);
    pthread_mutex_destroy(&ls->write_lock);
    ls_free(ls, ls);
}

static const kivis_storage_methods lmdb_storage_methods = {
    KIVIS_STORAGE_VERSION, "lmdb", lm_close, lm_max_key, lm_begin,
    lm_feed_open,
};

size_t kivis_lmdb_map_size(kivis_storage *st)
{
    /* mdb_env_info reads the meta pages through the map: not while
     * another thread remaps it (remap does so under ls->lock). */
    lmdb_storage *ls = storage_of(st);
    MDB_envinfo info;
    pthread_mutex_lock(&ls->lock);
    mdb_env_info(ls->env, &info);
    pthread_mutex_unlock(&ls->lock);
    return info.me_mapsize;
}

/* A data file shorter than its meta page says (cut by a copy, or by a
 * tool, never by LMDB) would SIGBUS at the first read of a missing page:
 * refuse it before any page past the metas is read or written.  LMDB
 * writes each page it allocates when the allocating txn commits, before
 * the meta page that counts it, so a sound file holds at least
 * me_last_pgno + 1 pages (without MDB_WRITEMAP, as here, no more either). */
static int check_data_size(lmdb_storage *ls)
{
    MDB_envinfo info;
    MDB_stat stat;
    mdb_filehandle_t fd;
    struct stat sb;
    if (mdb_env_info(ls->env, &info) || mdb_env_stat(ls->env, &stat) ||
        mdb_env_get_fd(ls->env, &fd) || fstat(fd, &sb))
        return KIVIS_EIO;
    unsigned long long need = ((unsigned long long)info.me_last_pgno + 1) * stat.ms_psize;
    return (unsigned long long)sb.st_size < need ? KIVIS_ECORRUPT : KIVIS_OK;
}

static int open_writer_lock(lmdb_storage *ls, const char *path)
{
    size_t n = strlen(path);
    char *file = ls_malloc(ls, n + sizeof WRITER_LOCK_FILE);
    if (!file)
        return KIVIS_ENOMEM;
    memcpy(file, path, n);
    memcpy(file + n, WRITER_LOCK_FILE, sizeof WRITER_LOCK_FILE);
    ls->writer_fd = open(file, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    ls_free(ls, file);
    return ls->writer_fd < 0 ? KIVIS_EIO : KIVIS_OK;
}

/* The main DB's handle, from a read txn: opening the unnamed DB writes
 * nothing, so neither does kivis_lmdb_open on an existing store. */
static int open_main_dbi(lmdb_storage *ls)
{
    MDB_txn *t;
    txn_enter(ls, false);
    int rc = begin_mdb(ls, true, &t);
    if (rc == KIVIS_OK) {
        rc = status_of(mdb_dbi_open(t, NULL, 0, &ls->dbi));
        mdb_txn_abort(t);
    }
    txn_leave(ls, false);
    return rc;
}

static int open_env(lmdb_storage *ls, const char *path, const kivis_lmdb_options *o)
{
    size_t map = o && o->map_size ? o->map_size : KIVIS_LMDB_MAP_SIZE;
    unsigned readers = o && o->max_readers ? o->max_readers : 126;
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        return KIVIS_EIO;
    int rc = mdb_env_create(&ls->env);
    if (rc)
        return status_of(rc);
    rc = mdb_env_set_mapsize(ls->env, map);
    if (!rc)
        rc = mdb_env_set_maxreaders(ls->env, readers);
    if (!rc)
        rc = mdb_env_open(ls->env, path, MDB_NOTLS, 0644);
    int status = rc == ENOENT || rc == EACCES ? KIVIS_EIO : status_of(rc);
    if (status == KIVIS_OK)
        status = check_data_size(ls);
    if (status == KIVIS_OK)
        status = open_writer_lock(ls, path);
    if (status == KIVIS_OK)
        status = open_main_dbi(ls);
    if (status) {
        if (ls->writer_fd >= 0)
            close(ls->writer_fd);
        mdb_env_close(ls->env);
        ls->env = NULL;
        return status;
    }
    ls->max_key = (size_t)mdb_env_get_maxkeysize(ls->env);
    return KIVIS_OK;
}

int kivis_lmdb_open(const char *path, const kivis_lmdb_options *opts,
                    kivis_storage **out)
{
    if (!out)
        return KIVIS_EINVAL;
    *out = NULL;
    if (!path)
        return KIVIS_EINVAL;
    const kivis_allocator *a = opts && opts->allocator ? opts->allocator
                                                       : kivis_default_allocator();
    lmdb_storage *ls = a->malloc(a->ctx, sizeof *ls);
    if (!ls)
        return KIVIS_ENOMEM;
    memset(ls, 0, sizeof *ls);
    ls->st.methods = &lmdb_storage_methods;
    ls->alloc = *a;
    ls->map_max = opts && opts->map_size_max ? opts->map_size_max
                                             : KIVIS_LMDB_MAP_SIZE_MAX;
    ls->writer_fd = -1;
    pthread_mutex_init(&ls->lock, NULL);
    pthread_mutex_init(&ls->write_lock, NULL);
    pthread_cond_init(&ls->idle, NULL);
    int rc = kivis__feedhub_new(a, &ls->hub);
    if (rc == KIVIS_OK)
        rc = open_env(ls, path, opts);
    if (rc) {
        kivis__feedhub_release(ls->hub);
        pthread_cond_destroy(&ls->idle);
        pthread_mutex_destroy(&ls->lock);
        pthread_mutex_destroy(&ls->write_lock);
        a->free(a->ctx, ls);
        return rc;
    }
    *out = &ls->st;
    return KIVIS_OK;
}

/* ---- backup ------------------------------------------------------------- */

int kivis_lmdb_backup(kivis_storage *st, const char *dest)
{
    if (!st || st->methods != &lmdb_storage_methods || !dest || !dest[0])
        return KIVIS_EINVAL;
    if (mkdir(dest, 0755) != 0)
        return errno == EEXIST ? KIVIS_EINVAL : KIVIS_EIO;
    /* mdb_env_copy2 reads one read transaction's snapshot, so writers of
     * this or other processes go on meanwhile; MDB_CP_COMPACT writes only
     * the pages in use, renumbered, and no free list. */
    int rc = mdb_env_copy2(storage_of(st)->env, dest, MDB_CP_COMPACT);
    if (rc) {
        char data[4096];
        if ((size_t)snprintf(data, sizeof data, "%s/data.mdb", dest) < sizeof data)
            unlink(data);
        rmdir(dest);
        return status_of(rc);
    }
    return KIVIS_OK;
}
