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
 *
 * Layout 2 (docs/storage.md, "LMDB layout"): each key space (storage.h)
 * whose two leading ids are one byte each, table below KS_TABLES and slot
 * below KS_SLOTS, has a named LMDB database of its own, created by its
 * first put; every other key lives in the named database DEFAULT_DB.  So
 * an auto-increment load appends to its records' database (MDB_APPEND),
 * whose pages then fill.  Cursors merge the default database with the key
 * spaces' databases, which follow each other in key order.  A store that
 * 091b1d6 or earlier wrote (layout 1: every key in the unnamed database,
 * and no DEFAULT_DB) is read and written as it is.
 *
 * Database handles: LMDB's mdb_dbi_open must not race another one, and a
 * transaction can use only the handles the environment had when it began.
 * This process registers handles in ls->ks, each with the epoch at which
 * it became usable; a transaction notes the epoch and the count of named
 * databases (ls->main_seen) the registry covers before it begins, and
 * uses no handle of a later epoch.  When its snapshot holds more named
 * databases than that count (another process created some), it ends its
 * MDB txn, opens their handles in a read txn of its own (refresh_handles)
 * and begins again.  Only the writer creates databases, under dbi_lock;
 * their handles are pending (usable by that writer only) until it commits,
 * and dropped when its MDB txn ends otherwise, as LMDB drops them.
 */
#include <kivis/lmdb.h>

#include "btree.h" /* kivis_bt_range, kivis__key_cmp */
#include "feedhub.h"

#include <lmdb.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
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

/* Key spaces with a database of their own: one-byte table ids (all of
 * them) and slots 0..7 (records, metadata, 6 indexes).  Registry index
 * table * KS_SLOTS + slot, which is also their key order; DEFAULT_KS is
 * the default database's entry. */
enum {
    KS_TABLES = 128,
    KS_SLOTS = 8,
    KS_COUNT = KS_TABLES * KS_SLOTS,
    DEFAULT_KS = KS_COUNT,
    MAX_DBS = KS_COUNT + 1,
    /* A put that failed to append skips this many append attempts on its
     * database before it tries again: a database written out of order pays
     * an extra descent of its right edge once in that many puts. */
    APPEND_RETRY = 16,
    /* Puts of a backup's conversion to layout 2 per transaction. */
    COPY_BATCH = 4096,
};

/* Names in the unnamed database: NAME_PREFIX + four hex digits (table,
 * slot) for a key space, DEFAULT_DB for the rest of the keys.  That
 * DEFAULT_DB exists is what marks a store as layout 2. */
static const char NAME_PREFIX[] = "kivis2:";
static const char DEFAULT_DB[] = "kivis2:default";
enum { NAME_LEN = sizeof NAME_PREFIX - 1 + 4, NAME_SIZE = sizeof DEFAULT_DB };

/* ls->ks entries: 0 (no handle), else epoch << 32 | dbi, the epoch
 * PENDING while the handle belongs to the uncommitted writer. */
#define PENDING 0xffffffffu

typedef struct lmdb_storage {
    kivis_storage st; /* first: what the caller holds */
    kivis_allocator alloc;
    MDB_env *env;
    MDB_dbi main;  /* the unnamed database: layout 1's every key */
    bool legacy;   /* layout 1 */
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
    uint32_t epoch;   /* guarded by lock: the latest registration's */
    size_t main_seen; /* guarded by lock: named databases registered */
    pthread_mutex_t dbi_lock; /* around mdb_dbi_open and registrations */
    _Atomic uint64_t ks[MAX_DBS]; /* the handle registry (see above) */
    _Atomic int ks_top;           /* 1 + the highest key space registered */
    /* Per database: appends to skip before trying again (the writer's). */
    unsigned char append_skip[MAX_DBS];
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
    uint32_t epoch;    /* handles of later epochs are not this txn's */
    size_t seen;       /* ls->main_seen when it began */
    unsigned created;  /* databases this writer created (pending) */
} lmdb_txn;

enum cursor_state { UNPLACED, PLACED, ENDED };

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

/* ---- key spaces and their databases ---------------------------------- */

/* The registry index of the key space holding key, or DEFAULT_KS. */
static int ks_of_key(kivis_slice key)
{
    const unsigned char *p = key.data;
    if (key.len >= 2 && p[0] < KS_TABLES && p[1] < KS_SLOTS)
        return p[0] * KS_SLOTS + p[1];
    return DEFAULT_KS;
}

/* Where key falls among the key spaces: true with *ks its own, or false
 * with *ks the first key space whose keys all sort after it (KS_COUNT:
 * none).  An id below KS_TABLES is one byte, so a one-byte key sorts just
 * before its table's key spaces, a second byte of KS_SLOTS or more after
 * them. */
static bool ks_locate(kivis_slice key, int *ks)
{
    const unsigned char *p = key.data;
    if ((*ks = ks_of_key(key)) != DEFAULT_KS)
        return true;
    if (key.len == 0)
        *ks = 0;
    else if (p[0] >= KS_TABLES)
        *ks = KS_COUNT;
    else
        *ks = (p[0] + (key.len > 1)) * KS_SLOTS;
    return false;
}

static void ks_name(int ks, char name[NAME_SIZE])
{
    if (ks == DEFAULT_KS)
        memcpy(name, DEFAULT_DB, sizeof DEFAULT_DB);
    else
        snprintf(name, NAME_SIZE, "%s%02x%02x", NAME_PREFIX, ks / KS_SLOTS,
                 ks % KS_SLOTS);
}

/* The registry index a name of the unnamed database stands for, or -1
 * (not one of this backend's names). */
static int ks_of_name(MDB_val name)
{
    char buf[NAME_SIZE];
    if (name.mv_size == sizeof DEFAULT_DB - 1 &&
        memcmp(name.mv_data, DEFAULT_DB, name.mv_size) == 0)
        return DEFAULT_KS;
    if (name.mv_size != NAME_LEN)
        return -1;
    unsigned t, sl;
    memcpy(buf, name.mv_data, NAME_LEN);
    buf[NAME_LEN] = '\0';
    if (memcmp(buf, NAME_PREFIX, sizeof NAME_PREFIX - 1) != 0 ||
        sscanf(buf + sizeof NAME_PREFIX - 1, "%2x%2x", &t, &sl) != 2 ||
        t >= KS_TABLES || sl >= KS_SLOTS)
        return -1;
    int ks = (int)(t * KS_SLOTS + sl);
    ks_name(ks, buf); /* only the canonical spelling */
    return memcmp(buf, name.mv_data, NAME_LEN) == 0 ? ks : -1;
}

static void ks_register(lmdb_storage *ls, int ks, uint32_t epoch, MDB_dbi dbi)
{
    atomic_store(&ls->ks[ks], (uint64_t)epoch << 32 | dbi);
    if (ks != DEFAULT_KS && atomic_load(&ls->ks_top) <= ks)
        atomic_store(&ls->ks_top, ks + 1);
}

/* The handle of key space ks that lt may use: false when there is none,
 * which means the key space has no database in lt's snapshot (see
 * refresh_handles), i.e. it is empty there. */
static bool ks_handle(const lmdb_txn *lt, int ks, MDB_dbi *dbi)
{
    uint64_t w = atomic_load_explicit(&lt->ls->ks[ks], memory_order_acquire);
    uint32_t epoch = (uint32_t)(w >> 32);
    if (!w || (epoch == PENDING ? (lt->txn.flags & KIVIS_TXN_RDONLY) != 0
                                : epoch > lt->epoch))
        return false;
    *dbi = (MDB_dbi)(uint32_t)w;
    return true;
}

/* The database that holds key for lt (false: none yet, see ks_handle). */
static bool route(const lmdb_txn *lt, kivis_slice key, MDB_dbi *dbi)
{
    if (lt->ls->legacy) {
        *dbi = lt->ls->main;
        return true;
    }
    return ks_handle(lt, ks_of_key(key), dbi);
}

/* Create key space ks's database in the writer's MDB txn: pending until
 * the txn commits (settle_created). */
static int ks_create(lmdb_txn *lt, int ks, MDB_dbi *dbi)
{
    lmdb_storage *ls = lt->ls;
    char name[NAME_SIZE];
    ks_name(ks, name);
    pthread_mutex_lock(&ls->dbi_lock);
    int rc = mdb_dbi_open(lt->t, name, MDB_CREATE, dbi);
    if (rc == MDB_SUCCESS) {
        ks_register(ls, ks, PENDING, *dbi);
        lt->created++;
    }
    pthread_mutex_unlock(&ls->dbi_lock);
    return rc;
}

/* The writer's MDB txn ended: its new databases' handles become everyone's
 * (kept, after a commit) or are gone (LMDB closed them). */
static void settle_created(lmdb_txn *lt, bool kept)
{
    lmdb_storage *ls = lt->ls;
    if (!lt->created)
        return;
    pthread_mutex_lock(&ls->dbi_lock);
    pthread_mutex_lock(&ls->lock);
    uint32_t epoch = kept ? ++ls->epoch : 0;
    int top = atomic_load(&ls->ks_top);
    for (int ks = 0; ks < top; ks++) {
        uint64_t w = atomic_load(&ls->ks[ks]);
        if (w && (uint32_t)(w >> 32) == PENDING)
            atomic_store(&ls->ks[ks], kept ? (uint64_t)epoch << 32 | (uint32_t)w : 0);
    }
    pthread_mutex_unlock(&ls->lock);
    pthread_mutex_unlock(&ls->dbi_lock);
    lt->created = 0;
}

/* Named databases in the snapshot of t. */
static size_t named_dbs(const lmdb_storage *ls, MDB_txn *t)
{
    MDB_stat st;
    return mdb_stat(t, ls->main, &st) == MDB_SUCCESS ? st.ms_entries : 0;
}

/* Whether lt's snapshot holds databases its registry view lacks. */
static bool handles_stale(const lmdb_txn *lt)
{
    return !lt->ls->legacy && named_dbs(lt->ls, lt->t) > lt->seen;
}

/* Open a handle for each of this backend's databases in t that the
 * registry lacks; their registry entries get `epoch`.  Called with
 * dbi_lock held.  @return the MDB status of the walk. */
static int open_unregistered(lmdb_storage *ls, MDB_txn *t, uint32_t epoch)
{
    MDB_cursor *mc;
    int rc = mdb_cursor_open(t, ls->main, &mc);
    if (rc)
        return rc;
    MDB_val k, v;
    for (rc = mdb_cursor_get(mc, &k, &v, MDB_FIRST); rc == MDB_SUCCESS;
         rc = mdb_cursor_get(mc, &k, &v, MDB_NEXT)) {
        int ks = ks_of_name(k);
        char name[NAME_SIZE];
        MDB_dbi dbi;
        if (ks < 0 || atomic_load(&ls->ks[ks]))
            continue;
        ks_name(ks, name);
        if ((rc = mdb_dbi_open(t, name, 0, &dbi)) != MDB_SUCCESS)
            break;
        ks_register(ls, ks, epoch, dbi);
    }
    mdb_cursor_close(mc);
    return rc == MDB_NOTFOUND ? MDB_SUCCESS : rc;
}

static int begin_mdb(lmdb_storage *ls, bool rdonly, MDB_txn **t);
static void count_out(lmdb_storage *ls);
static void count_in(lmdb_storage *ls);

/* Register the handles of every database the newest snapshot holds, in a
 * read txn of its own whose commit hands them to the environment.  The
 * caller is counted in ls->active and holds no MDB txn; it steps out of
 * the count while it waits for dbi_lock (a map growth may be waiting for
 * it).  No writer of this process can have a pending database meanwhile:
 * its snapshot, the newest, held no unregistered one when it began, and
 * none can be committed while it writes, so this opens none then.
 * @return a kivis status. */
static int refresh_handles(lmdb_storage *ls)
{
    count_out(ls);
    pthread_mutex_lock(&ls->dbi_lock);
    count_in(ls);
    MDB_txn *t;
    int rc = begin_mdb(ls, true, &t);
    if (rc == KIVIS_OK) {
        pthread_mutex_lock(&ls->lock);
        uint32_t epoch = ls->epoch + 1; /* usable once t has committed */
        pthread_mutex_unlock(&ls->lock);
        size_t n = named_dbs(ls, t);
        int mrc = open_unregistered(ls, t, epoch);
        mdb_txn_commit(t); /* a read txn's commit keeps its new handles */
        rc = status_of(mrc);
        pthread_mutex_lock(&ls->lock);
        ls->epoch = epoch;
        if (rc == KIVIS_OK && n > ls->main_seen)
            ls->main_seen = n;
        pthread_mutex_unlock(&ls->lock);
    }
    pthread_mutex_unlock(&ls->dbi_lock);
    return rc;
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

/* Step out of ls->active while waiting for something a map growth may
 * have to wait for, and back in. */
static void count_out(lmdb_storage *ls)
{
    pthread_mutex_lock(&ls->lock);
    ls->active--;
    pthread_cond_broadcast(&ls->idle);
    pthread_mutex_unlock(&ls->lock);
}

static void count_in(lmdb_storage *ls)
{
    pthread_mutex_lock(&ls->lock);
    while (ls->growing)
        pthread_cond_wait(&ls->idle, &ls->lock);
    ls->active++;
    pthread_mutex_unlock(&ls->lock);
}

/* Note the registry's state before lt's MDB txn begins (see the top). */
static void note_registry(lmdb_txn *lt)
{
    lmdb_storage *ls = lt->ls;
    pthread_mutex_lock(&ls->lock);
    lt->epoch = ls->epoch;
    lt->seen = ls->main_seen;
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

/* A put into database ks/dbi: appended (MDB_APPEND, which splits a full
 * last page by starting a new one, so pages fill) when the key sorts
 * after the database's last key.  LMDB checks that itself and refuses
 * with MDB_KEYEXIST, changing nothing, so a wrong guess costs a descent
 * of the right edge and a plain put; after one, the database skips
 * APPEND_RETRY appends. */
static int put_in(lmdb_txn *lt, int ks, MDB_dbi dbi, MDB_val *key, MDB_val *val)
{
    unsigned char *skip = &lt->ls->append_skip[ks];
    if (*skip) {
        --*skip;
        return mdb_put(lt->t, dbi, key, val, 0);
    }
    int rc = mdb_put(lt->t, dbi, key, val, MDB_APPEND);
    if (rc != MDB_KEYEXIST)
        return rc;
    *skip = APPEND_RETRY;
    return mdb_put(lt->t, dbi, key, val, 0);
}

static int apply_op(lmdb_txn *lt, unsigned char op, kivis_slice k, kivis_slice v)
{
    MDB_val key = to_val(k), val = to_val(v);
    MDB_dbi dbi;
    int ks = lt->ls->legacy ? DEFAULT_KS : ks_of_key(k);
    if (op == LOG_DEL) {
        if (!route(lt, k, &dbi))
            return MDB_SUCCESS; /* its key space has no database */
        int rc = mdb_del(lt->t, dbi, &key, NULL);
        return rc == MDB_NOTFOUND ? MDB_SUCCESS : rc;
    }
    if (!route(lt, k, &dbi)) {
        int rc = ks_create(lt, ks, &dbi);
        if (rc)
            return rc;
    }
    return put_in(lt, ks, dbi, &key, &val);
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
        settle_created(lt, false); /* the replay creates them again */
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
    MDB_dbi dbi;
    if (!route(lt, key, &dbi))
        return KIVIS_NOTFOUND; /* its key space has no database */
    rc = mdb_get(lt->t, dbi, &k, &v);
    if (rc == MDB_SUCCESS)
        *value = to_slice(v);
    return status_of(rc);
}

/* A delete of a key that must be there: MDB_NOTFOUND when it is not, with
 * nothing changed.  One search (mdb_del's own), where looking the key up
 * first and then deleting it searched twice. */
static int del_present(lmdb_txn *lt, MDB_dbi dbi, kivis_slice k)
{
    MDB_val key = to_val(k);
    return mdb_del(lt->t, dbi, &key, NULL);
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
    MDB_dbi dbi = 0;
    if (op == LOG_DEL && !route(lt, key, &dbi))
        return KIVIS_NOTFOUND; /* its key space has no database yet */
    /* the feed set tolerates a touch of a key that turns out absent: it
     * settles each key against its state before the transaction */
    if ((rc = kivis__feedset_touch(&lt->fs, txn, key)) != KIVIS_OK)
        return rc;
    rc = log_append(lt, op, key, value);
    if (rc)
        return rc;
    lt->writes++;
    rc = op == LOG_DEL ? del_present(lt, dbi, key) : apply_op(lt, op, key, value);
    if (rc == MDB_MAP_FULL)
        return recover_full(lt); /* replays this write too */
    int status = rc == MDB_NOTFOUND ? KIVIS_NOTFOUND : classify_write_error(lt, rc);
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
    lt->t = NULL;
    settle_created(lt, false);
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
        settle_created(lt, rc == MDB_SUCCESS);
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

/* ---- cursors ----------------------------------------------------------
 *
 * A cursor merges two sources: the default database (layout 1: the only
 * one) and the chain of key-space databases, which hold disjoint key
 * ranges in registry order, so the chain is one ordered source walked a
 * database at a time.  Each source keeps a head: the entry it offers in
 * the cursor's direction; the cursor returns the nearer head.  Stepping
 * on moves only the source just returned from, while nothing was written
 * and the direction holds; otherwise both are placed again from the last
 * key returned. */

enum { DEFAULT_SRC = 0, CHAIN_SRC = 1 };

typedef struct source {
    MDB_cursor *mc;
    int ks;       /* the chain's database mc is on; -1 none */
    bool has;     /* key and val hold the head */
    MDB_val key, val;
} source;

typedef struct lmdb_cursor {
    kivis_storage_cursor cur; /* first: what the caller holds */
    lmdb_txn *lt;
    uint64_t gen, writes; /* of lt when the sources were last placed */
    kivis_bt_range range;
    enum cursor_state state;
    int dir;  /* the direction the heads lie in; 0: not placed */
    int from; /* the source of the last entry returned */
    source src[2];
} lmdb_cursor;

static void source_close(lmdb_cursor *c, source *s)
{
    /* Only a cursor of a live MDB txn is still LMDB's to free. */
    if (s->mc && c->lt->t && c->gen == c->lt->gen)
        mdb_cursor_close(s->mc);
    s->mc = NULL;
    s->ks = -1;
    s->has = false;
}

/* A replay ended the MDB txn that owned the sources' cursors and freed
 * them: forget them. */
static int cursor_attach(lmdb_cursor *c)
{
    lmdb_txn *lt = c->lt;
    if (!lt->t)
        return KIVIS_EFULL;
    if (c->gen != lt->gen) {
        for (int i = 0; i < 2; i++) {
            c->src[i].mc = NULL;
            c->src[i].ks = -1;
            c->src[i].has = false;
        }
        c->gen = lt->gen;
        c->dir = 0;
    }
    return KIVIS_OK;
}

/* Put s's MDB cursor on database ks (DEFAULT_KS: the default one).
 * MDB_NOTFOUND when lt has no database for it. */
static int source_on(lmdb_cursor *c, source *s, int ks)
{
    if (s->mc && s->ks == ks)
        return MDB_SUCCESS;
    source_close(c, s);
    MDB_dbi dbi;
    if (c->lt->ls->legacy && ks == DEFAULT_KS)
        dbi = c->lt->ls->main;
    else if (!ks_handle(c->lt, ks, &dbi))
        return MDB_NOTFOUND;
    int rc = mdb_cursor_open(c->lt->t, dbi, &s->mc);
    if (rc)
        s->mc = NULL;
    else
        s->ks = ks;
    return rc;
}

/* First entry > from (strict) or >= from; from empty: the first. */
static int db_ge(MDB_cursor *mc, kivis_slice from, bool strict, MDB_val *k, MDB_val *v)
{
    if (from.len == 0)
        return mdb_cursor_get(mc, k, v, MDB_FIRST);
    *k = to_val(from);
    int rc = mdb_cursor_get(mc, k, v, MDB_SET_RANGE);
    if (rc == MDB_SUCCESS && strict && kivis__key_cmp(to_slice(*k), from) == 0)
        rc = mdb_cursor_get(mc, k, v, MDB_NEXT);
    return rc;
}

/* Last entry < bound (strict) or <= bound; bound.data NULL: the last. */
static int db_le(MDB_cursor *mc, kivis_slice bound, bool strict, MDB_val *k, MDB_val *v)
{
    if (!bound.data)
        return mdb_cursor_get(mc, k, v, MDB_LAST);
    *k = to_val(bound);
    int rc = mdb_cursor_get(mc, k, v, MDB_SET_RANGE);
    if (rc == MDB_NOTFOUND)
        return mdb_cursor_get(mc, k, v, MDB_LAST);
    if (rc)
        return rc;
    int cmp = kivis__key_cmp(to_slice(*k), bound);
    if (cmp > 0 || (cmp == 0 && strict))
        return mdb_cursor_get(mc, k, v, MDB_PREV);
    return MDB_SUCCESS;
}

/* The chain's head from database ks on in direction dir: the first entry
 * of the first non-empty database (the last of the last, going back). */
static int chain_walk(lmdb_cursor *c, int ks, int dir)
{
    source *s = &c->src[CHAIN_SRC];
    int top = atomic_load(&c->lt->ls->ks_top);
    if (ks >= top)
        ks = dir > 0 ? top : top - 1;
    for (; ks >= 0 && ks < top; ks += dir) {
        int rc = source_on(c, s, ks);
        if (rc == MDB_SUCCESS)
            rc = mdb_cursor_get(s->mc, &s->key, &s->val, dir > 0 ? MDB_FIRST : MDB_LAST);
        if (rc != MDB_NOTFOUND)
            return rc;
    }
    return MDB_NOTFOUND;
}

/* The chain's head at `at`: >= (> if strict) going forward, <= (<)
 * going back, at.data NULL going back meaning the very end. */
static int chain_place(lmdb_cursor *c, int dir, kivis_slice at, bool strict)
{
    source *s = &c->src[CHAIN_SRC];
    int ks;
    if (dir < 0 && !at.data)
        return chain_walk(c, KS_COUNT, -1);
    bool inside = ks_locate(at, &ks);
    if (inside) {
        int rc = source_on(c, s, ks);
        if (rc == MDB_SUCCESS)
            rc = dir > 0 ? db_ge(s->mc, at, strict, &s->key, &s->val)
                         : db_le(s->mc, at, strict, &s->key, &s->val);
        if (rc != MDB_NOTFOUND)
            return rc;
    }
    /* Not inside: ks is the first key space past at. */
    return chain_walk(c, dir > 0 ? ks + inside : ks - 1, dir);
}

static int default_place(lmdb_cursor *c, int dir, kivis_slice at, bool strict)
{
    source *s = &c->src[DEFAULT_SRC];
    int rc = source_on(c, s, DEFAULT_KS);
    if (rc)
        return rc;
    return dir > 0 ? db_ge(s->mc, at, strict, &s->key, &s->val)
                   : db_le(s->mc, at, strict, &s->key, &s->val);
}

/* An MDB status into s's head: found, or ended (not an error). */
static int head_of(source *s, int rc)
{
    s->has = rc == MDB_SUCCESS;
    return rc == MDB_NOTFOUND ? MDB_SUCCESS : rc;
}

/* Place both heads for direction dir (see chain_place). */
static int place(lmdb_cursor *c, int dir, kivis_slice at, bool strict)
{
    int rc = head_of(&c->src[DEFAULT_SRC], default_place(c, dir, at, strict));
    if (rc == MDB_SUCCESS)
        rc = head_of(&c->src[CHAIN_SRC], chain_place(c, dir, at, strict));
    c->dir = rc == MDB_SUCCESS ? dir : 0;
    return rc;
}

/* Move the source the last entry came from one entry on. */
static int advance(lmdb_cursor *c, int dir)
{
    source *s = &c->src[c->from];
    int rc = mdb_cursor_get(s->mc, &s->key, &s->val, dir > 0 ? MDB_NEXT : MDB_PREV);
    if (rc == MDB_NOTFOUND && c->from == CHAIN_SRC)
        rc = chain_walk(c, s->ks + dir, dir);
    return head_of(s, rc);
}

/* The source whose head comes first in direction dir; -1 when both ended.
 * Sources hold disjoint keys, so their heads never tie. */
static int nearer(const lmdb_cursor *c, int dir)
{
    const source *d = &c->src[DEFAULT_SRC], *k = &c->src[CHAIN_SRC];
    if (!d->has || !k->has)
        return d->has ? DEFAULT_SRC : k->has ? CHAIN_SRC : -1;
    int cmp = kivis__key_cmp(to_slice(d->key), to_slice(k->key));
    return (cmp < 0) == (dir > 0) ? DEFAULT_SRC : CHAIN_SRC;
}

/* Heads at the first entry >= target, clipped to lo (target NULL: the
 * range's start). */
static int seek_ge(lmdb_cursor *c, const kivis_slice *target)
{
    kivis_slice from = target && kivis__key_cmp(*target, c->range.lo) > 0
                           ? *target : c->range.lo;
    return place(c, 1, from, false);
}

/* Heads at the last entry <= target, clipped below hi (target NULL: the
 * range's end). */
static int seek_le(lmdb_cursor *c, const kivis_slice *target)
{
    const kivis_slice hi = c->range.hi;
    if (target && target->len && (!hi.data || kivis__key_cmp(*target, hi) < 0))
        return place(c, -1, *target, false);
    if ((target && !target->len) || (hi.data && hi.len == 0))
        return MDB_NOTFOUND; /* no key is <= the empty key */
    return place(c, -1, hi, hi.data != NULL);
}

/* The last key returned: in a read-only txn the head it came from, which
 * nothing moves; in a write txn the copy kept of it. */
static kivis_slice last_key(const lmdb_cursor *c)
{
    if (c->lt->txn.flags & KIVIS_TXN_RDONLY)
        return to_slice(c->src[c->from].key);
    return kivis__range_last(&c->range);
}

/* One entry on from the last key returned: by advancing its source when
 * nothing moved under the heads, else by placing them past that key. */
static int step(lmdb_cursor *c, int dir)
{
    if (c->dir == dir && c->writes == c->lt->writes)
        return advance(c, dir);
    return place(c, dir, last_key(c), true);
}

static int move(lmdb_cursor *c, int op, const kivis_slice *target)
{
    int dir = kivis__op_dir(op);
    if (op == KIVIS_NEXT || op == KIVIS_PREV) {
        if (c->state == ENDED)
            return MDB_NOTFOUND;
        if (c->state == PLACED)
            return step(c, dir);
        target = NULL;
    }
    return dir > 0 ? seek_ge(c, target) : seek_le(c, target);
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
    int dir = kivis__op_dir(op);
    rc = move(c, op, target);
    int from = rc == MDB_SUCCESS ? nearer(c, dir) : -1;
    if (rc == MDB_SUCCESS && from < 0)
        rc = MDB_NOTFOUND;
    MDB_val k = {0, NULL}, v = {0, NULL};
    if (rc == MDB_SUCCESS) {
        k = c->src[from].key;
        v = c->src[from].val;
        if (!kivis__range_short_of_far(&c->range, to_slice(k), dir))
            rc = MDB_NOTFOUND;
    }
    /* Only a write or a replay moves what is under a cursor (see step), and
     * neither happens in a read-only transaction. */
    if (rc == MDB_SUCCESS && !(c->lt->txn.flags & KIVIS_TXN_RDONLY))
        rc = kivis__range_remember(&c->range, &c->lt->ls->alloc, to_slice(k))
                 ? ENOMEM : MDB_SUCCESS;
    if (rc == MDB_NOTFOUND)
        c->state = ENDED;
    if (rc)
        return status_of(rc);
    c->from = from;
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
    for (int i = 0; i < 2; i++)
        source_close(c, &c->src[i]);
    kivis__range_free(&c->range, &ls->alloc);
    ls_free(ls, c);
}

/* How far a page may run on from the last entry returned without looking
 * at the other source: to the nearer of the range's far bound and the
 * other source's head.  A key passes while dir * cmp(key of the edge, key)
 * is > 0, or == 0 where the edge is the range's low bound (inclusive). */
typedef struct page_edge {
    kivis_slice key;
    bool none, inclusive;
} page_edge;

static page_edge page_edge_of(const lmdb_cursor *c, int dir)
{
    const source *o = &c->src[!c->from];
    kivis_slice far = dir > 0 ? c->range.hi : c->range.lo;
    page_edge e = {far, dir > 0 ? !far.data : far.len == 0, dir < 0};
    if (o->has && (e.none || dir * kivis__key_cmp(far, to_slice(o->key)) >= 0))
        e = (page_edge){to_slice(o->key), false, false};
    return e;
}

static bool short_of_edge(const page_edge *e, int dir, MDB_val k)
{
    if (e->none)
        return true;
    int d = dir * kivis__key_cmp(e->key, to_slice(k));
    return d > 0 || (d == 0 && e->inclusive);
}

/* Up to max entries on from the last one returned, from its source's
 * database alone: one mdb_cursor_get and one comparison each.  Where the
 * run stops short (the edge, the database's end, an error), the MDB
 * cursor has gone one past the source's head, so the next step places
 * the heads again from that head, the last key returned. */
static size_t page_on(lmdb_cursor *c, int dir, kivis_cursor_entry *out,
                      size_t max)
{
    source *s = &c->src[c->from];
    page_edge e = page_edge_of(c, dir);
    MDB_cursor_op op = dir > 0 ? MDB_NEXT : MDB_PREV;
    size_t n = 0;
    while (n < max) {
        MDB_val k, v;
        if (mdb_cursor_get(s->mc, &k, &v, op) != MDB_SUCCESS ||
            !short_of_edge(&e, dir, k)) {
            c->dir = 0;
            break;
        }
        s->key = k;
        s->val = v;
        out[n++] = (kivis_cursor_entry){to_slice(k), to_slice(v)};
    }
    return n;
}

/* One step as lc_get, then, in a read-only transaction (where the last
 * key returned is its source's head, not a copy to keep), the run on from
 * it.  The views are the MDB txn's pages: nothing ends them before the
 * transaction, so no stamp. */
static int lc_page(kivis_storage_cursor *cur, int op, kivis_cursor_entry *out,
                   size_t cap, size_t *n, const uint64_t **stamp)
{
    lmdb_cursor *c = (lmdb_cursor *)cur;
    *stamp = NULL;
    int rc = lc_get(cur, op, &out[0].key, &out[0].value);
    *n = rc == KIVIS_OK;
    if (rc == KIVIS_OK && (c->lt->txn.flags & KIVIS_TXN_RDONLY))
        *n += page_on(c, kivis__op_dir(op), out + 1, cap - 1);
    return rc;
}

static const kivis_cursor_methods lmdb_cursor_methods = {lc_get, lc_close,
                                                        lc_page};

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
    c->gen = lt->gen;
    c->state = UNPLACED;
    c->src[DEFAULT_SRC].ks = c->src[CHAIN_SRC].ks = -1;
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
/* Begin lt's MDB txn (lt->epoch and lt->seen noted before) with a handle
 * for every database its snapshot holds: when it holds some this process
 * has not registered, register them and begin again.
 * @return a kivis status; KIVIS_EBUSY when other processes keep creating
 *         databases meanwhile. */
static int begin_fresh(lmdb_txn *lt, bool rdonly)
{
    for (int tries = 0; tries < ADOPT_TRIES; tries++) {
        int rc = begin_mdb(lt->ls, rdonly, &lt->t);
        if (rc || !handles_stale(lt))
            return rc;
        mdb_txn_abort(lt->t);
        lt->t = NULL;
        if ((rc = refresh_handles(lt->ls)) != KIVIS_OK)
            return rc;
        note_registry(lt);
    }
    return KIVIS_EBUSY;
}

/* A reader: a renewed spare when there is one, else a new MDB txn. */
static int reader_begin(lmdb_storage *ls, kivis_storage_txn **out)
{
    pthread_mutex_lock(&ls->lock);
    while (ls->growing)
        pthread_cond_wait(&ls->idle, &ls->lock);
    ls->active++;
    lmdb_txn *lt = ls->nspare ? ls->spare[--ls->nspare] : NULL;
    uint32_t epoch = ls->epoch; /* before the snapshot: see the top */
    size_t seen = ls->main_seen;
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
    lt->epoch = epoch;
    lt->seen = seen;
    if (lt->t && handles_stale(lt)) {
        mdb_txn_abort(lt->t);
        lt->t = NULL;
    }
    if (!lt->t) {
        int rc = begin_fresh(lt, true);
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
    note_registry(lt);
    kivis__feedset_begin(&lt->fs, ls->hub, &ls->alloc);
    rc = begin_fresh(lt, false);
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
    pthread_mutex_destroy(&ls->dbi_lock);
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

/* The layout of t's snapshot: 2 when DEFAULT_DB exists, 1 when other keys
 * do (what 091b1d6 and earlier wrote: no named database; a key spelled
 * like DEFAULT_DB there is MDB_INCOMPATIBLE), 0 for an empty store.
 * A handle opened here goes with t. */
static int read_layout(lmdb_storage *ls, MDB_txn *t, int *layout)
{
    MDB_dbi dbi;
    int rc = mdb_dbi_open(t, NULL, 0, &ls->main);
    if (rc == MDB_SUCCESS)
        rc = mdb_dbi_open(t, DEFAULT_DB, 0, &dbi);
    *layout = rc == MDB_SUCCESS ? 2 : named_dbs(ls, t) ? 1 : 0;
    return rc == MDB_NOTFOUND || rc == MDB_INCOMPATIBLE ? MDB_SUCCESS : rc;
}

/* The layout from a read txn of its own, so kivis_lmdb_open writes nothing
 * to an existing store; for layout 2, the same txn registers the handles
 * of every database it holds, and its commit hands them to the
 * environment (no other thread has the storage yet). */
static int layout_of(lmdb_storage *ls, int *layout)
{
    MDB_txn *t;
    txn_enter(ls, false);
    int rc = begin_mdb(ls, true, &t);
    if (rc == KIVIS_OK) {
        int mrc = read_layout(ls, t, layout);
        ls->legacy = *layout == 1;
        if (mrc == MDB_SUCCESS && *layout == 2) {
            ls->main_seen = named_dbs(ls, t);
            mrc = open_unregistered(ls, t, 0);
        }
        mdb_txn_commit(t);
        rc = status_of(mrc);
    }
    txn_leave(ls, false);
    return rc;
}

/* Mark an empty store as layout 2 by creating DEFAULT_DB, under the
 * writer lock; a store another process filled meanwhile keeps its own. */
static int create_layout(lmdb_storage *ls, int *layout)
{
    MDB_txn *t;
    int rc = writer_lock(ls);
    if (rc)
        return rc;
    txn_enter(ls, false);
    rc = begin_mdb(ls, false, &t);
    if (rc == KIVIS_OK) {
        MDB_dbi dbi;
        int mrc = read_layout(ls, t, layout);
        if (mrc == MDB_SUCCESS && *layout == 0) {
            mrc = mdb_dbi_open(t, DEFAULT_DB, MDB_CREATE, &dbi);
            *layout = 2;
        }
        rc = status_of(mrc == MDB_SUCCESS ? mdb_txn_commit(t) : mrc);
        if (mrc)
            mdb_txn_abort(t);
    }
    txn_leave(ls, false);
    writer_unlock(ls);
    return rc;
}

/* Find the store's layout (making an empty one layout 2) and, for layout
 * 2, register the handles of the databases it holds. */
static int open_layout(lmdb_storage *ls)
{
    int layout;
    int rc = layout_of(ls, &layout);
    if (rc || layout != 0)
        return rc;
    rc = create_layout(ls, &layout);
    ls->legacy = layout == 1;
    if (rc == KIVIS_OK && !ls->legacy) {
        txn_enter(ls, false);
        rc = refresh_handles(ls);
        txn_leave(ls, false);
    }
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
        rc = mdb_env_set_maxdbs(ls->env, MAX_DBS);
    if (!rc)
        rc = mdb_env_open(ls->env, path, MDB_NOTLS, 0644);
    int status = rc == ENOENT || rc == EACCES ? KIVIS_EIO : status_of(rc);
    if (status == KIVIS_OK)
        status = check_data_size(ls);
    if (status == KIVIS_OK)
        status = open_writer_lock(ls, path);
    if (status == KIVIS_OK)
        status = open_layout(ls);
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
    pthread_mutex_init(&ls->dbi_lock, NULL);
    pthread_cond_init(&ls->idle, NULL);
    int rc = kivis__feedhub_new(a, &ls->hub);
    if (rc == KIVIS_OK)
        rc = open_env(ls, path, opts);
    if (rc) {
        kivis__feedhub_release(ls->hub);
        pthread_cond_destroy(&ls->idle);
        pthread_mutex_destroy(&ls->lock);
        pthread_mutex_destroy(&ls->write_lock);
        pthread_mutex_destroy(&ls->dbi_lock);
        a->free(a->ctx, ls);
        return rc;
    }
    *out = &ls->st;
    return KIVIS_OK;
}

/* ---- backup ------------------------------------------------------------- */

int kivis_lmdb_layout(kivis_storage *st)
{
    if (!st || st->methods != &lmdb_storage_methods)
        return KIVIS_EINVAL;
    return storage_of(st)->legacy ? 1 : 2;
}

/* Unlink dest/file (file without a leading slash). */
static void unlink_in(const char *dest, const char *file)
{
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dest, file) < sizeof path)
        unlink(path);
}

/* What kivis_lmdb_open adds beside data.mdb, which a copy leaves out. */
static void remove_lock_files(const char *dest)
{
    unlink_in(dest, "lock.mdb");
    unlink_in(dest, WRITER_LOCK_FILE + 1);
}

/* Put every entry of cursor c into `to`, COPY_BATCH a transaction; the
 * last commit is synced. */
static int copy_entries(kivis_storage_cursor *c, kivis_storage *to)
{
    kivis_storage_txn *w = NULL;
    kivis_slice k, v;
    size_t n = 0;
    int rc;
    while ((rc = kivis_cursor_get(c, KIVIS_NEXT, &k, &v)) == KIVIS_OK) {
        if (!w && (rc = kivis_storage_begin(to, 0, &w)) != KIVIS_OK)
            return rc;
        if ((rc = kivis_txn_put(w, k, v)) != KIVIS_OK)
            break;
        if (++n % COPY_BATCH == 0) {
            rc = kivis_txn_commit(w, KIVIS_NOSYNC);
            w = NULL;
            if (rc)
                return rc;
        }
    }
    if (rc != KIVIS_NOTFOUND) {
        if (w)
            kivis_txn_abort(w);
        return rc;
    }
    if (!w && (rc = kivis_storage_begin(to, 0, &w)) != KIVIS_OK)
        return rc;
    return kivis_txn_commit(w, KIVIS_SYNC);
}

/* A layout 1 store's backup: a layout 2 store at dest (an empty directory
 * this created) holding one read transaction's snapshot of every key,
 * written in key order, so every database is appended to. */
static int backup_converted(lmdb_storage *ls, const char *dest)
{
    kivis_lmdb_options o;
    memset(&o, 0, sizeof o);
    o.allocator = &ls->alloc;
    kivis_storage *to;
    int rc = kivis_lmdb_open(dest, &o, &to);
    if (rc)
        return rc;
    kivis_storage_txn *r;
    kivis_storage_cursor *c = NULL;
    rc = lm_begin(&ls->st, KIVIS_TXN_RDONLY, &r);
    if (rc == KIVIS_OK) {
        rc = lm_cursor_open(r, no_slice, no_slice, &c);
        if (rc == KIVIS_OK)
            rc = copy_entries(c, to);
        kivis_cursor_close(c);
        lm_abort(r);
    }
    kivis_storage_close(to);
    remove_lock_files(dest); /* a copy, as mdb_env_copy2's: data.mdb alone */
    return rc;
}

int kivis_lmdb_backup(kivis_storage *st, const char *dest)
{
    if (!st || st->methods != &lmdb_storage_methods || !dest || !dest[0])
        return KIVIS_EINVAL;
    if (mkdir(dest, 0755) != 0)
        return errno == EEXIST ? KIVIS_EINVAL : KIVIS_EIO;
    /* mdb_env_copy2 reads one read transaction's snapshot, so writers of
     * this or other processes go on meanwhile; MDB_CP_COMPACT writes only
     * the pages in use, renumbered, and no free list.  A layout 1 store is
     * copied entry by entry into layout 2 instead. */
    lmdb_storage *ls = storage_of(st);
    int rc = ls->legacy ? backup_converted(ls, dest)
                        : status_of(mdb_env_copy2(ls->env, dest, MDB_CP_COMPACT));
    if (rc) {
        unlink_in(dest, "data.mdb");
        remove_lock_files(dest);
        rmdir(dest);
    }
    return rc;
}
