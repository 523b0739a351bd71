/*
 * faulty.c - a storage wrapper that counts reads and writes and fails the
 * armed one (kivis/faulty.h).
 *
 * Every object here (storage, transaction, cursor) is the wrapper's own and
 * holds the inner object it delegates to, so the inner backend never sees a
 * call that was failed.  An injected fault leaves the inner objects exactly
 * as they were: a failed put or del is never forwarded, a failed cursor step
 * does not move the inner cursor, and a failed commit aborts the inner
 * transaction so none of its writes land.  Faults do not poison the
 * transaction; the record engine above does that for real errors and
 * injected ones alike.
 */
#include <kivis/faulty.h>

#include <string.h>

/* One counter per fault kind.  fire_at is an absolute count, so arming
 * "the n-th from now" is a single addition and firing is one compare. */
typedef struct fault_counter {
    unsigned long seen;
    unsigned long fire_at; /* 0: disarmed */
    int rc;
} fault_counter;

typedef struct faulty_storage {
    kivis_storage base; /* first: the storage handle callers hold */
    kivis_storage *inner;
    kivis_allocator alloc;
    fault_counter counters[2]; /* indexed by enum kivis_fault_kind */
} faulty_storage;

typedef struct faulty_txn {
    kivis_storage_txn base;
    kivis_storage_txn *inner;
} faulty_txn;

typedef struct faulty_cursor {
    kivis_storage_cursor base;
    kivis_storage_cursor *inner;
    faulty_storage *owner; /* where its steps are counted */
} faulty_cursor;

static const kivis_storage_methods faulty_storage_methods;
static const kivis_txn_methods faulty_txn_methods, faulty_txn_methods_ahead;
static const kivis_cursor_methods faulty_cursor_methods;

static const kivis_slice empty_slice = {NULL, 0};

/* The wrapper behind a handle, or NULL if the handle is another backend's:
 * kivis_faulty_fail and kivis_faulty_count take any kivis_storage. */
static faulty_storage *as_faulty(kivis_storage *st)
{
    if (!st || st->methods != &faulty_storage_methods)
        return NULL;
    return (faulty_storage *)st;
}

static faulty_storage *txn_owner(const faulty_txn *t)
{
    return (faulty_storage *)t->base.storage;
}

static int valid_kind(int kind)
{
    return kind == KIVIS_FAULT_READ || kind == KIVIS_FAULT_WRITE;
}

/* Count one operation of `kind`; the armed rc if it is the one to fail,
 * else KIVIS_OK.  Disarms on firing: each arming fires once. */
static int fault_tick(faulty_storage *f, int kind)
{
    fault_counter *c = &f->counters[kind];
    c->seen++;
    if (c->fire_at == 0 || c->seen != c->fire_at)
        return KIVIS_OK;
    c->fire_at = 0;
    return c->rc;
}

static void *faulty_malloc(faulty_storage *f, size_t size)
{
    return f->alloc.malloc(f->alloc.ctx, size);
}

static void faulty_free(faulty_storage *f, void *p)
{
    f->alloc.free(f->alloc.ctx, p);
}

/* ---- cursors ------------------------------------------------------------ */

static int faulty_cursor_get(kivis_storage_cursor *cur, int op,
                             kivis_slice *key, kivis_slice *value)
{
    faulty_cursor *c = (faulty_cursor *)cur;
    int rc = fault_tick(c->owner, KIVIS_FAULT_READ);
    if (rc == KIVIS_OK)
        return kivis_cursor_get(c->inner, op, key, value);
    *key = empty_slice;
    *value = empty_slice;
    return rc;
}

static void faulty_cursor_close(kivis_storage_cursor *cur)
{
    faulty_cursor *c = (faulty_cursor *)cur;
    kivis_cursor_close(c->inner);
    faulty_free(c->owner, c);
}

/* The inner cursor, following (tail > 0) or plain, wrapped so that its
 * steps fail as injected.  The hint goes down, so that over PostgreSQL a
 * faulty stack costs the bare backend's round trips and fault runs take
 * the same paths. */
static int faulty_cursor_follow(kivis_storage_txn *txn, kivis_slice lo, kivis_slice hi,
                                kivis_slice prefix, size_t tail,
                                kivis_storage_cursor **out)
{
    faulty_txn *t = (faulty_txn *)txn;
    faulty_storage *f = txn_owner(t);
    *out = NULL;
    faulty_cursor *c = faulty_malloc(f, sizeof *c);
    if (!c)
        return KIVIS_ENOMEM;
    int rc = kivis_txn_cursor_follow(t->inner, lo, hi, prefix, tail, &c->inner);
    if (rc != KIVIS_OK) {
        faulty_free(f, c);
        return rc;
    }
    c->base.methods = &faulty_cursor_methods;
    c->owner = f;
    *out = &c->base;
    return KIVIS_OK;
}

static int faulty_cursor_open(kivis_storage_txn *txn, kivis_slice lo,
                              kivis_slice hi, kivis_storage_cursor **out)
{
    return faulty_cursor_follow(txn, lo, hi, empty_slice, 0, out);
}

/* ---- transactions ------------------------------------------------------- */

static int faulty_get(kivis_storage_txn *txn, kivis_slice key,
                      kivis_slice *value)
{
    faulty_txn *t = (faulty_txn *)txn;
    int rc = fault_tick(txn_owner(t), KIVIS_FAULT_READ);
    if (rc == KIVIS_OK)
        return kivis_txn_get(t->inner, key, value);
    *value = empty_slice;
    return rc;
}

static int faulty_put(kivis_storage_txn *txn, kivis_slice key,
                      kivis_slice value)
{
    faulty_txn *t = (faulty_txn *)txn;
    int rc = fault_tick(txn_owner(t), KIVIS_FAULT_WRITE);
    return rc == KIVIS_OK ? kivis_txn_put(t->inner, key, value) : rc;
}

static int faulty_del(kivis_storage_txn *txn, kivis_slice key)
{
    faulty_txn *t = (faulty_txn *)txn;
    int rc = fault_tick(txn_owner(t), KIVIS_FAULT_WRITE);
    return rc == KIVIS_OK ? kivis_txn_del(t->inner, key) : rc;
}

/* A write like del, failing where del would. */
static int faulty_discard(kivis_storage_txn *txn, kivis_slice key)
{
    faulty_txn *t = (faulty_txn *)txn;
    int rc = fault_tick(txn_owner(t), KIVIS_FAULT_WRITE);
    return rc == KIVIS_OK ? kivis_txn_discard(t->inner, key) : rc;
}

/* A read: a fault loses the hint, and the gets then read for themselves. */
static int faulty_prefetch(kivis_storage_txn *txn, const kivis_slice *keys,
                           size_t n)
{
    faulty_txn *t = (faulty_txn *)txn;
    int rc = fault_tick(txn_owner(t), KIVIS_FAULT_READ);
    return rc == KIVIS_OK ? kivis_txn_prefetch(t->inner, keys, n) : rc;
}

static int faulty_commit(kivis_storage_txn *txn, int durability)
{
    faulty_txn *t = (faulty_txn *)txn;
    faulty_storage *f = txn_owner(t);
    int rc = KIVIS_OK;
    if (!(t->base.flags & KIVIS_TXN_RDONLY))
        rc = fault_tick(f, KIVIS_FAULT_WRITE);
    if (rc == KIVIS_OK)
        rc = kivis_txn_commit(t->inner, durability);
    else
        kivis_txn_abort(t->inner);
    faulty_free(f, t);
    return rc;
}

static void faulty_abort(kivis_storage_txn *txn)
{
    faulty_txn *t = (faulty_txn *)txn;
    kivis_txn_abort(t->inner);
    faulty_free(txn_owner(t), t);
}

static int faulty_begin(kivis_storage *st, unsigned flags,
                        kivis_storage_txn **out)
{
    faulty_storage *f = (faulty_storage *)st;
    *out = NULL;
    faulty_txn *t = faulty_malloc(f, sizeof *t);
    if (!t)
        return KIVIS_ENOMEM;
    int rc = kivis_storage_begin(f->inner, flags, &t->inner);
    if (rc != KIVIS_OK) {
        faulty_free(f, t);
        return rc;
    }
    /* prefetch only over a backend that reads ahead, so that callers do
     * not collect keys for nothing */
    t->base.methods = kivis_txn_prefetches(t->inner) ? &faulty_txn_methods_ahead
                                                     : &faulty_txn_methods;
    t->base.storage = st;
    t->base.flags = flags;
    *out = &t->base;
    return KIVIS_OK;
}

/* ---- storage ------------------------------------------------------------ */

static size_t faulty_max_key_size(kivis_storage *st)
{
    return kivis_storage_max_key(((faulty_storage *)st)->inner);
}

static void faulty_close(kivis_storage *st)
{
    faulty_storage *f = (faulty_storage *)st;
    kivis_storage_close(f->inner);
    faulty_free(f, f);
}

static const kivis_storage_methods faulty_storage_methods = {
    KIVIS_STORAGE_VERSION, "faulty", faulty_close, faulty_max_key_size,
    faulty_begin};

static const kivis_txn_methods faulty_txn_methods = {
    faulty_get, faulty_put,    faulty_del,
    faulty_cursor_open, faulty_commit, faulty_abort,
    faulty_discard, NULL, faulty_cursor_follow};

static const kivis_txn_methods faulty_txn_methods_ahead = {
    faulty_get, faulty_put,    faulty_del,
    faulty_cursor_open, faulty_commit, faulty_abort,
    faulty_discard, faulty_prefetch, faulty_cursor_follow};

static const kivis_cursor_methods faulty_cursor_methods = {
    faulty_cursor_get, faulty_cursor_close, NULL /* page */};

int kivis_faulty_open(kivis_storage *inner, const kivis_allocator *alloc,
                      kivis_storage **out)
{
    if (!out)
        return KIVIS_EINVAL;
    *out = NULL;
    if (kivis_storage_check(inner) != KIVIS_OK)
        return KIVIS_EINVAL;
    if (!alloc)
        alloc = kivis_default_allocator();
    faulty_storage *f = alloc->malloc(alloc->ctx, sizeof *f);
    if (!f)
        return KIVIS_ENOMEM;
    memset(f, 0, sizeof *f);
    f->base.methods = &faulty_storage_methods;
    f->inner = inner;
    f->alloc = *alloc;
    *out = &f->base;
    return KIVIS_OK;
}

void kivis_faulty_fail(kivis_storage *faulty, int kind, unsigned long n,
                       int rc)
{
    faulty_storage *f = as_faulty(faulty);
    if (!f || !valid_kind(kind))
        return;
    fault_counter *c = &f->counters[kind];
    c->fire_at = n ? c->seen + n : 0;
    c->rc = rc;
}

unsigned long kivis_faulty_count(kivis_storage *faulty, int kind)
{
    faulty_storage *f = as_faulty(faulty);
    if (!f || !valid_kind(kind))
        return 0;
    return f->counters[kind].seen;
}
