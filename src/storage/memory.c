/*
 * src/storage/memory.c - the in-memory backend (see kivis/memory.h).
 *
 * Committed data lives in one B+tree, with a point hash of its keys beside
 * it unless the options say otherwise.  A read-only transaction reads that
 * tree directly, so it sees each commit as soon as it lands (read
 * committed); its cursors keep a copy of their current key and seek back to
 * it when the tree changed between two steps, and hand out runs of a leaf's
 * entries (kivis_cursor_page) stamped with the tree's version, which a
 * commit moves.  A write transaction is an
 * overlay over an internal read-only transaction, and its commit applies
 * the write set to the tree in one kivis__btree_apply, which either applies
 * everything or, out of memory, nothing.
 */
#include <kivis/memory.h>
#include <kivis/overlay.h>

#include "btree.h"
#include "feedhub.h"

#include <string.h>

typedef struct memory_storage {
    kivis_storage st; /* first: what the caller holds */
    kivis_allocator alloc;
    size_t max_key;
    kivis_btree *tree;
    kivis__feedhub *hub; /* the change feed */
    bool writing; /* a write transaction is open */
} memory_storage;

typedef struct memory_txn {
    kivis_storage_txn txn; /* first: what the caller holds */
    memory_storage *ms;
    bool writer_base; /* the base of the open write transaction */
} memory_txn;

enum cursor_state { UNPLACED, PLACED, ENDED };

/* A leaf (of the tree at one version) whose end was compared with the far
 * bound going in direction dir: when every key in it is short of the bound
 * (whole), steps inside it need not compare; else each step compares its
 * own key, but not the leaf's end again. */
typedef struct clear_leaf {
    const kivis_bt_leaf *leaf;
    uint64_t version;
    int dir;
    bool whole;
} clear_leaf;

typedef struct memory_cursor {
    kivis_storage_cursor cur; /* first: what the caller holds */
    memory_storage *ms;
    kivis_bt_range range; /* bounds, and the current key to find it again */
    enum cursor_state state;
    kivis_bt_iter it;
    clear_leaf clear;
} memory_cursor;

static const kivis_slice no_slice = {NULL, 0};

static memory_storage *storage_of(kivis_storage *st)
{
    return (memory_storage *)st;
}

static void *ms_malloc(const memory_storage *ms, size_t n)
{
    return ms->alloc.malloc(ms->alloc.ctx, n);
}

static void ms_free(const memory_storage *ms, void *p)
{
    ms->alloc.free(ms->alloc.ctx, p);
}

/* ---- cursors ---------------------------------------------------------- */

static int seek(memory_cursor *c, int dir, const kivis_slice *target)
{
    return kivis__range_seek(c->ms->tree, &c->range, dir, target, &c->it);
}

/* One entry on from the current key, which a commit may have moved or
 * deleted since: then find the first entry past the key's copy. */
static int step(memory_cursor *c, int dir)
{
    if (c->it.version == kivis__btree_version(c->ms->tree))
        return dir > 0 ? kivis__btree_next(&c->it) : kivis__btree_prev(&c->it);
    kivis_slice last = kivis__range_last(&c->range);
    int rc = seek(c, dir, &last);
    if (rc == KIVIS_OK && kivis__key_cmp(kivis__bt_iter_key(&c->it), last) == 0)
        rc = dir > 0 ? kivis__btree_next(&c->it) : kivis__btree_prev(&c->it);
    return rc;
}

/* Whether the leaf the cursor stands on had its end compared with the far
 * bound going in direction dir, at this version of the tree. */
static bool leaf_known(const memory_cursor *c, int dir)
{
    const clear_leaf *cl = &c->clear;
    return cl->leaf == c->it.leaf && cl->version == c->it.version && cl->dir == dir;
}

/* Whether every key of the leaf the cursor stands on is short of the far
 * bound going in direction dir (short_of_far found it so at this version). */
static bool leaf_clear(const memory_cursor *c, int dir)
{
    return leaf_known(c, dir) && c->clear.whole;
}

/* Whether the entry the iterator landed on (moving in direction dir) is
 * short of the far bound.  The leaf's end is compared with the bound once
 * a leaf, when its first entry passes: if the end is short of it, so is
 * every key in the leaf, and no step in it compares again. */
static bool short_of_far(memory_cursor *c, int dir)
{
    bool known = leaf_known(c, dir);
    if (known && c->clear.whole)
        return true;
    if (!kivis__range_short_of_far(&c->range, kivis__bt_iter_key(&c->it), dir))
        return false;
    if (!known)
        c->clear = (clear_leaf){c->it.leaf, c->it.version, dir,
                                kivis__range_short_of_far(&c->range,
                                                          kivis__bt_iter_leaf_end(&c->it, dir), dir)};
    return true;
}

/* Report where the iterator landed (rc from a seek or step in direction
 * dir). */
static int settle(memory_cursor *c, int dir, int rc, kivis_slice *key,
                  kivis_slice *value)
{
    if (rc == KIVIS_OK && !short_of_far(c, dir))
        rc = KIVIS_NOTFOUND;
    if (rc == KIVIS_OK && (rc = kivis__range_remember(&c->range, &c->ms->alloc,
                                                     kivis__bt_iter_key(&c->it))) != KIVIS_OK)
        c->it.version = ~kivis__btree_version(c->ms->tree); /* so the next step seeks from the old copy */
    if (rc == KIVIS_NOTFOUND)
        c->state = ENDED;
    if (rc != KIVIS_OK)
        return rc;
    c->state = PLACED;
    *key = kivis__bt_iter_key(&c->it);
    if (value)
        *value = kivis__bt_iter_value(&c->it);
    return KIVIS_OK;
}

static int cursor_move(memory_cursor *c, int op, const kivis_slice *target)
{
    int dir = kivis__op_dir(op);
    if (op != KIVIS_NEXT && op != KIVIS_PREV)
        return seek(c, dir, target);
    if (c->state == UNPLACED)
        return seek(c, dir, NULL);
    if (c->state == ENDED)
        return KIVIS_NOTFOUND;
    return step(c, dir);
}

static int mc_get(kivis_storage_cursor *cur, int op, kivis_slice *key,
                  kivis_slice *value)
{
    memory_cursor *c = (memory_cursor *)cur;
    kivis_slice buf;
    const kivis_slice *target;
    int rc = kivis__cursor_args(op, key, value, &buf, &target);
    if (rc)
        return rc;
    rc = cursor_move(c, op, target);
    return settle(c, kivis__op_dir(op), rc, key, value);
}

/* One step as mc_get, then the rest of the leaf when no key in it can pass
 * the far bound: those take no comparison and no call each, and the key
 * copy is kept once, of the last.  The views are the tree's, so they go
 * stale with its version (storage.h, kivis_cursor_page). */
static int mc_page(kivis_storage_cursor *cur, int op, kivis_cursor_entry *out,
                   size_t cap, size_t *n, const uint64_t **stamp)
{
    memory_cursor *c = (memory_cursor *)cur;
    int rc = mc_get(cur, op, &out[0].key, &out[0].value);
    if (rc)
        return rc;
    int dir = kivis__op_dir(op);
    size_t more = 0;
    if (leaf_clear(c, dir))
        more = kivis__btree_leaf_run(&c->it, dir, out + 1, cap - 1);
    if (more && kivis__range_remember(&c->range, &c->ms->alloc, out[more].key)) {
        /* back onto the first entry, whose copy is kept */
        c->it.slot = dir > 0 ? c->it.slot - (unsigned)more : c->it.slot + (unsigned)more;
        more = 0;
    }
    *n = 1 + more;
    *stamp = kivis__btree_version_at(c->ms->tree);
    return KIVIS_OK;
}

static void mc_close(kivis_storage_cursor *cur)
{
    memory_cursor *c = (memory_cursor *)cur;
    kivis__range_free(&c->range, &c->ms->alloc);
    ms_free(c->ms, c);
}

static const kivis_cursor_methods memory_cursor_methods = {mc_get, mc_close,
                                                          mc_page};

/* ---- read-only transactions ------------------------------------------- */

static int rd_get(kivis_storage_txn *txn, kivis_slice key, kivis_slice *value)
{
    memory_storage *ms = ((memory_txn *)txn)->ms;
    *value = no_slice;
    if (key.len == 0 || !key.data)
        return KIVIS_EINVAL;
    return kivis__btree_get(ms->tree, key, value);
}

static int rd_put(kivis_storage_txn *txn, kivis_slice key, kivis_slice value)
{
    (void)txn, (void)key, (void)value;
    return KIVIS_EINVAL;
}

static int rd_del(kivis_storage_txn *txn, kivis_slice key)
{
    (void)txn, (void)key;
    return KIVIS_EINVAL;
}

static int rd_cursor_open(kivis_storage_txn *txn, kivis_slice lo,
                          kivis_slice hi, kivis_storage_cursor **out)
{
    memory_storage *ms = ((memory_txn *)txn)->ms;
    *out = NULL;
    if (!lo.data && lo.len)
        return KIVIS_EINVAL;
    memory_cursor *c = ms_malloc(ms, sizeof *c);
    if (!c)
        return KIVIS_ENOMEM;
    memset(c, 0, sizeof *c);
    c->cur.methods = &memory_cursor_methods;
    c->ms = ms;
    c->state = UNPLACED;
    if (kivis__range_init(&c->range, &ms->alloc, lo, hi) != KIVIS_OK) {
        ms_free(ms, c);
        return KIVIS_ENOMEM;
    }
    *out = &c->cur;
    return KIVIS_OK;
}

static void rd_abort(kivis_storage_txn *txn)
{
    memory_txn *t = (memory_txn *)txn;
    if (t->writer_base)
        t->ms->writing = false;
    ms_free(t->ms, t);
}

static int rd_commit(kivis_storage_txn *txn, int durability)
{
    (void)durability;
    rd_abort(txn);
    return KIVIS_OK;
}

static const kivis_txn_methods read_txn_methods = {
    rd_get, rd_put, rd_del, rd_cursor_open, rd_commit, rd_abort,
    NULL, NULL, /* discard is del: local reads cost no round trip */
    NULL, /* cursor_follow */
};

static int read_txn_new(memory_storage *ms, memory_txn **out)
{
    memory_txn *t = ms_malloc(ms, sizeof *t);
    *out = t;
    if (!t)
        return KIVIS_ENOMEM;
    t->txn.methods = &read_txn_methods;
    t->txn.storage = &ms->st;
    t->txn.flags = KIVIS_TXN_RDONLY;
    t->ms = ms;
    t->writer_base = false;
    return KIVIS_OK;
}

/* ---- the storage ------------------------------------------------------ */

static int committed(void *ctx, kivis_slice key)
{
    kivis_slice v;
    return kivis__btree_get(((memory_storage *)ctx)->tree, key, &v);
}

/* Apply the batch, and feed its changes once it is in. */
static int memory_apply(void *ctx, const kivis_batch_op *ops, size_t n,
                        int durability)
{
    (void)durability; /* nothing is persisted */
    memory_storage *ms = ctx;
    kivis__change *changes;
    size_t nchanges;
    int known = kivis__feed_classify(ms->hub, &ms->alloc, ops, n, committed, ms,
                                     &changes, &nchanges);
    int rc = kivis__btree_apply(ms->tree, ops, n);
    if (rc == KIVIS_OK && known == KIVIS_OK)
        kivis__feedhub_publish(ms->hub, changes, nchanges);
    else if (rc == KIVIS_OK)
        kivis__feedhub_lost(ms->hub);
    if (changes)
        ms_free(ms, changes);
    return rc;
}

static int ms_begin(kivis_storage *st, unsigned flags, kivis_storage_txn **out)
{
    memory_storage *ms = storage_of(st);
    *out = NULL;
    if (flags & ~KIVIS_TXN_RDONLY)
        return KIVIS_EINVAL;
    bool rdonly = flags & KIVIS_TXN_RDONLY;
    if (!rdonly && ms->writing)
        return KIVIS_EBUSY;
    memory_txn *t;
    if (read_txn_new(ms, &t) != KIVIS_OK)
        return KIVIS_ENOMEM;
    if (rdonly) {
        *out = &t->txn;
        return KIVIS_OK;
    }
    t->writer_base = true;
    ms->writing = true;
    return kivis_overlay_begin(st, &t->txn, memory_apply, ms, &ms->alloc, out);
}

static size_t ms_max_key_size(kivis_storage *st)
{
    return storage_of(st)->max_key;
}

static int ms_feed_open(kivis_storage *st, uint64_t after, kivis_feed **out)
{
    return kivis__feedhub_open(storage_of(st)->hub, after, out);
}

static void ms_close(kivis_storage *st)
{
    memory_storage *ms = storage_of(st);
    kivis__feedhub_release(ms->hub);
    kivis__btree_free(ms->tree);
    ms_free(ms, ms);
}

static const kivis_storage_methods memory_methods = {
    KIVIS_STORAGE_VERSION, "memory", ms_close, ms_max_key_size, ms_begin,
    ms_feed_open,
};

int kivis_memory_open(const kivis_memory_options *opts, kivis_storage **out)
{
    const kivis_allocator *alloc = opts && opts->allocator ? opts->allocator
                                                           : kivis_default_allocator();
    *out = NULL;
    memory_storage *ms = alloc->malloc(alloc->ctx, sizeof *ms);
    if (!ms)
        return KIVIS_ENOMEM;
    memset(ms, 0, sizeof *ms);
    ms->st.methods = &memory_methods;
    ms->alloc = *alloc;
    ms->max_key = opts && opts->max_key_size ? opts->max_key_size
                                             : KIVIS_MEMORY_MAX_KEY;
    bool hashed = !(opts && opts->no_point_hash);
    if (kivis__btree_new(alloc, &ms->tree) != KIVIS_OK ||
        (hashed && kivis__btree_hash_points(ms->tree) != KIVIS_OK) ||
        kivis__feedhub_new(alloc, &ms->hub) != KIVIS_OK) {
        kivis__feedhub_release(ms->hub);
        kivis__btree_free(ms->tree);
        ms_free(ms, ms);
        return KIVIS_ENOMEM;
    }
    *out = &ms->st;
    return KIVIS_OK;
}

size_t kivis_memory_bytes(kivis_storage *st)
{
    memory_storage *ms = storage_of(st);
    return sizeof *ms + kivis__btree_bytes(ms->tree) + kivis__feedhub_bytes(ms->hub);
}
