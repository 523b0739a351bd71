/*
 * src/storage/overlay.c - write transactions made of a write set over a
 * read-only base transaction (see kivis/overlay.h).
 *
 * The write set is a B+tree from key to a tagged value: one tag byte (put
 * or delete) followed by the value.  Reads look there first, then in the
 * base.  A cursor merges two sorted streams, the base cursor and the write
 * set, over the same range; a tombstone hides the base entry of its key.
 */
#include <kivis/overlay.h>

#include "btree.h"

#include <string.h>

enum { TAG_DEL = 0, TAG_PUT = 1 };

typedef struct overlay_txn {
    kivis_storage_txn txn; /* first: what the caller holds */
    kivis_storage_txn *base;
    kivis_apply_fn apply;
    void *apply_ctx;
    kivis_allocator alloc;
    kivis_btree *writes;
    unsigned char *scratch; /* where a tagged value is assembled */
    size_t scratch_cap;
} overlay_txn;

enum cursor_state { UNPLACED, PLACED, ENDED };

typedef struct overlay_cursor {
    kivis_storage_cursor cur; /* first: what the caller holds */
    overlay_txn *o;
    kivis_storage_cursor *base;
    kivis_bt_range range;   /* bounds, and the key returned last */
    enum cursor_state state;
    int dir;                /* +1 or -1: direction of the last move */
    bool base_on;           /* the base stream sits on base_key/base_value */
    kivis_slice base_key, base_value;
    bool w_on;              /* the write stream sits on w */
    kivis_bt_iter w;
} overlay_cursor;

static const kivis_slice no_slice = {NULL, 0};

static overlay_txn *txn_of(kivis_storage_txn *txn)
{
    return (overlay_txn *)txn;
}

static void *ov_malloc(const overlay_txn *o, size_t n)
{
    return o->alloc.malloc(o->alloc.ctx, n);
}

static void ov_free(const overlay_txn *o, void *p)
{
    o->alloc.free(o->alloc.ctx, p);
}

static bool slice_ok(kivis_slice s)
{
    return s.data || s.len == 0;
}

static int check_key(const overlay_txn *o, kivis_slice key)
{
    return kivis__check_key(key, kivis_storage_max_key(o->txn.storage));
}

/* ---- the write set ---------------------------------------------------- */

static bool is_tombstone(kivis_slice tagged)
{
    return ((const unsigned char *)tagged.data)[0] == TAG_DEL;
}

static kivis_slice untag(kivis_slice tagged)
{
    return kivis_slice_make((const unsigned char *)tagged.data + 1,
                            tagged.len - 1);
}

static int write_tagged(overlay_txn *o, kivis_slice key, unsigned char tag,
                        kivis_slice value)
{
    if (value.len == SIZE_MAX)
        return KIVIS_ENOMEM;
    size_t need = value.len + 1;
    if (need > o->scratch_cap) {
        unsigned char *p = o->alloc.realloc(o->alloc.ctx, o->scratch, need);
        if (!p)
            return KIVIS_ENOMEM;
        o->scratch = p;
        o->scratch_cap = need;
    }
    o->scratch[0] = tag;
    if (value.len)
        memcpy(o->scratch + 1, value.data, value.len);
    return kivis__btree_put(o->writes, key, kivis_slice_make(o->scratch, need));
}

/* ---- transaction methods ---------------------------------------------- */

static int ov_get(kivis_storage_txn *txn, kivis_slice key, kivis_slice *value)
{
    overlay_txn *o = txn_of(txn);
    kivis_slice tagged;
    *value = no_slice;
    if (key.len == 0 || !key.data)
        return KIVIS_EINVAL;
    if (kivis__btree_get(o->writes, key, &tagged) != KIVIS_OK)
        return kivis_txn_get(o->base, key, value);
    if (is_tombstone(tagged))
        return KIVIS_NOTFOUND;
    *value = untag(tagged);
    return KIVIS_OK;
}

static int ov_put(kivis_storage_txn *txn, kivis_slice key, kivis_slice value)
{
    overlay_txn *o = txn_of(txn);
    int rc = check_key(o, key);
    if (rc != KIVIS_OK)
        return rc;
    if (!slice_ok(value))
        return KIVIS_EINVAL;
    return write_tagged(o, key, TAG_PUT, value);
}

static int ov_del(kivis_storage_txn *txn, kivis_slice key)
{
    overlay_txn *o = txn_of(txn);
    kivis_slice current;
    int rc = check_key(o, key);
    if (rc == KIVIS_OK)
        rc = ov_get(txn, key, &current);
    if (rc != KIVIS_OK)
        return rc;
    return write_tagged(o, key, TAG_DEL, no_slice);
}

static void txn_free(overlay_txn *o)
{
    kivis__btree_free(o->writes);
    ov_free(o, o->scratch);
    ov_free(o, o);
}

static void ov_abort(kivis_storage_txn *txn)
{
    overlay_txn *o = txn_of(txn);
    kivis_txn_abort(o->base);
    txn_free(o);
}

/* The write set as a batch in key order, borrowing its bytes. */
static kivis_batch_op *make_batch(const overlay_txn *o, size_t *n)
{
    *n = kivis__btree_count(o->writes);
    if (*n > SIZE_MAX / sizeof(kivis_batch_op))
        return NULL;
    kivis_batch_op *ops = ov_malloc(o, *n * sizeof *ops);
    if (!ops)
        return NULL;
    kivis_bt_iter it;
    size_t i = 0;
    for (int rc = kivis__btree_first(o->writes, &it); rc == KIVIS_OK;
         rc = kivis__btree_next(&it), i++) {
        kivis_slice tagged = kivis__bt_iter_value(&it);
        ops[i].key = kivis__bt_iter_key(&it);
        ops[i].del = is_tombstone(tagged);
        ops[i].value = untag(tagged);
    }
    return ops;
}

static int ov_commit(kivis_storage_txn *txn, int durability)
{
    overlay_txn *o = txn_of(txn);
    size_t n = 0;
    kivis_batch_op *ops = NULL;
    if (kivis__btree_count(o->writes) > 0) {
        ops = make_batch(o, &n);
        if (!ops) {
            ov_abort(txn);
            return KIVIS_ENOMEM;
        }
    }
    kivis_txn_abort(o->base);
    int rc = n ? o->apply(o->apply_ctx, ops, n, durability) : KIVIS_OK;
    ov_free(o, ops);
    txn_free(o);
    return rc;
}

/* ---- cursors: the two streams ----------------------------------------- */

static kivis_slice w_key(const overlay_cursor *c)
{
    return kivis__bt_iter_key(&c->w);
}

static void w_settle(overlay_cursor *c, int rc)
{
    c->w_on = rc == KIVIS_OK && kivis__range_has(&c->range, w_key(c));
}

/* Place the write stream on the first entry >= target (dir > 0) or the
 * last <= target (dir < 0), within range; target NULL: the range's end. */
static void w_seek(overlay_cursor *c, int dir, const kivis_slice *target)
{
    w_settle(c, kivis__range_seek(c->o->writes, &c->range, dir, target, &c->w));
}

static void w_step(overlay_cursor *c, int dir)
{
    w_settle(c, dir > 0 ? kivis__btree_next(&c->w) : kivis__btree_prev(&c->w));
}

static int base_move(overlay_cursor *c, int op, kivis_slice target)
{
    c->base_key = target;
    int rc = kivis_cursor_get(c->base, op, &c->base_key, &c->base_value);
    c->base_on = rc == KIVIS_OK;
    return rc == KIVIS_NOTFOUND ? KIVIS_OK : rc;
}

static int base_seek(overlay_cursor *c, int dir, const kivis_slice *target)
{
    if (!target)
        return base_move(c, dir > 0 ? KIVIS_FIRST : KIVIS_LAST, no_slice);
    return base_move(c, dir > 0 ? KIVIS_SEEK_GE : KIVIS_SEEK_LE, *target);
}

static int base_step(overlay_cursor *c, int dir)
{
    return base_move(c, dir > 0 ? KIVIS_NEXT : KIVIS_PREV, no_slice);
}

static int seek_both(overlay_cursor *c, int dir, const kivis_slice *target)
{
    w_seek(c, dir, target);
    return base_seek(c, dir, target);
}

/*
 * Move both streams strictly past the last key in direction dir.  A stream
 * that already moved that way sits on the first key not before the last
 * one, so at most one step is needed; otherwise (direction change, or the
 * write set changed under its iterator) it is sought again.
 */
static int pass_last(overlay_cursor *c, int dir)
{
    kivis_slice last = kivis__range_last(&c->range);
    int rc = KIVIS_OK;
    bool same_way = c->dir == dir;
    if (!same_way)
        rc = base_seek(c, dir, &last);
    if (rc == KIVIS_OK && c->base_on && kivis__key_cmp(c->base_key, last) == 0)
        rc = base_step(c, dir);
    if (!same_way || c->w.version != kivis__btree_version(c->o->writes))
        w_seek(c, dir, &last);
    if (c->w_on && kivis__key_cmp(w_key(c), last) == 0)
        w_step(c, dir);
    return rc;
}

/* ---- cursors: merging ------------------------------------------------- */

static int emit(overlay_cursor *c, int dir, kivis_slice k, kivis_slice v,
                kivis_slice *key, kivis_slice *value)
{
    int rc = kivis__range_remember(&c->range, &c->o->alloc, k);
    if (rc != KIVIS_OK) {
        c->dir = 0; /* the streams moved on: seek them again from the old key */
        return rc;
    }
    c->state = PLACED;
    c->dir = dir;
    *key = k;
    if (value)
        *value = v;
    return KIVIS_OK;
}

/* Return the nearer of the two streams in direction dir, the write set
 * winning a tie, and stepping over tombstones and what they hide. */
static int merge(overlay_cursor *c, int dir, kivis_slice *key,
                 kivis_slice *value)
{
    int rc = KIVIS_OK;
    while (rc == KIVIS_OK && (c->w_on || c->base_on)) {
        int order = !c->w_on ? 1 : !c->base_on ? -1
                  : dir * kivis__key_cmp(w_key(c), c->base_key);
        if (order > 0)
            return emit(c, dir, c->base_key, c->base_value, key, value);
        if (order == 0)
            rc = base_step(c, dir);
        kivis_slice tagged = kivis__bt_iter_value(&c->w);
        if (rc == KIVIS_OK && !is_tombstone(tagged))
            return emit(c, dir, w_key(c), untag(tagged), key, value);
        w_step(c, dir);
    }
    if (rc == KIVIS_OK) {
        c->state = ENDED;
        rc = KIVIS_NOTFOUND;
    }
    return rc;
}

static int cursor_move(overlay_cursor *c, int op, const kivis_slice *target,
                       kivis_slice *key, kivis_slice *value)
{
    int dir = kivis__op_dir(op);
    bool step = op == KIVIS_NEXT || op == KIVIS_PREV;
    if (step && c->state == ENDED)
        return KIVIS_NOTFOUND;
    int rc = step && c->state == PLACED ? pass_last(c, dir)
                                        : seek_both(c, dir, target);
    if (rc == KIVIS_OK)
        rc = merge(c, dir, key, value);
    return rc;
}

static int oc_get(kivis_storage_cursor *cur, int op, kivis_slice *key,
                  kivis_slice *value)
{
    overlay_cursor *c = (overlay_cursor *)cur;
    kivis_slice buf;
    const kivis_slice *target;
    int rc = kivis__cursor_args(op, key, value, &buf, &target);
    if (rc)
        return rc;
    rc = cursor_move(c, op, target, key, value);
    if (rc != KIVIS_OK) {
        *key = no_slice;
        if (value)
            *value = no_slice;
    }
    return rc;
}

static void oc_close(kivis_storage_cursor *cur)
{
    overlay_cursor *c = (overlay_cursor *)cur;
    const overlay_txn *o = c->o;
    kivis_cursor_close(c->base);
    kivis__range_free(&c->range, &o->alloc);
    ov_free(o, c);
}

static const kivis_cursor_methods overlay_cursor_methods = {oc_get, oc_close,
                                                           NULL /* page */};

static int ov_cursor_open(kivis_storage_txn *txn, kivis_slice lo,
                          kivis_slice hi, kivis_storage_cursor **out)
{
    overlay_txn *o = txn_of(txn);
    *out = NULL;
    if (!slice_ok(lo))
        return KIVIS_EINVAL;
    overlay_cursor *c = ov_malloc(o, sizeof *c);
    if (!c)
        return KIVIS_ENOMEM;
    memset(c, 0, sizeof *c);
    c->cur.methods = &overlay_cursor_methods;
    c->o = o;
    c->state = UNPLACED;
    int rc = kivis__range_init(&c->range, &o->alloc, lo, hi);
    if (rc != KIVIS_OK) {
        ov_free(o, c);
        return rc;
    }
    rc = kivis_txn_cursor(o->base, lo, hi, &c->base);
    if (rc != KIVIS_OK) {
        oc_close(&c->cur);
        return rc;
    }
    *out = &c->cur;
    return KIVIS_OK;
}

/* Reads not in the write set come from the base: it may read ahead. */
static int ov_prefetch(kivis_storage_txn *txn, const kivis_slice *keys, size_t n)
{
    return kivis_txn_prefetch(txn_of(txn)->base, keys, n);
}

/* discard stays NULL here (del, which reports): a backend offers the blind
 * delete through kivis_overlay_discard only where a read costs. */
static const kivis_txn_methods overlay_txn_methods = {
    ov_get, ov_put, ov_del, ov_cursor_open, ov_commit, ov_abort,
    NULL, ov_prefetch,
    NULL, /* cursor_follow */
};

int kivis_overlay_discard(kivis_storage_txn *txn, kivis_slice key)
{
    if (!txn || txn->methods != &overlay_txn_methods)
        return KIVIS_EINVAL;
    overlay_txn *o = txn_of(txn);
    int rc = check_key(o, key);
    return rc == KIVIS_OK ? write_tagged(o, key, TAG_DEL, no_slice) : rc;
}

int kivis_overlay_begin(kivis_storage *st, kivis_storage_txn *base,
                        kivis_apply_fn apply, void *ctx,
                        const kivis_allocator *alloc, kivis_storage_txn **out)
{
    *out = NULL;
    if (!alloc)
        alloc = kivis_default_allocator();
    overlay_txn *o = alloc->malloc(alloc->ctx, sizeof *o);
    if (!o) {
        kivis_txn_abort(base);
        return KIVIS_ENOMEM;
    }
    memset(o, 0, sizeof *o);
    o->alloc = *alloc;
    if (kivis__btree_new(alloc, &o->writes) != KIVIS_OK) {
        ov_free(o, o);
        kivis_txn_abort(base);
        return KIVIS_ENOMEM;
    }
    o->txn.methods = &overlay_txn_methods;
    o->txn.storage = st;
    o->txn.flags = 0;
    o->base = base;
    o->apply = apply;
    o->apply_ctx = ctx;
    *out = &o->txn;
    return KIVIS_OK;
}
