/*
 * src/storage/btree.h - an in-memory B+tree map from byte keys to byte
 * values, ordered by memcmp (shorter first on a common prefix).  Internal:
 * the memory backend stores its committed data in one, and the overlay
 * keeps a transaction's write set in another.
 *
 * The tree copies keys and values in; get and iterators return views into
 * it, valid until the next modification of the tree.  All memory comes from
 * the allocator given at creation.  Not thread-safe.
 */
#ifndef KIVIS_BTREE_H
#define KIVIS_BTREE_H

#include <kivis/common.h>
#include <kivis/overlay.h> /* kivis_batch_op */

#include <stdbool.h>
#include <string.h>

typedef struct kivis_btree kivis_btree;
typedef struct kivis_bt_leaf kivis_bt_leaf;

/* A position in the tree.  Plain value, no allocation.  Valid while
 * kivis__btree_version(tree) is unchanged. */
typedef struct kivis_bt_iter {
    const kivis_btree *tree;
    kivis_bt_leaf *leaf;
    unsigned slot;
    uint64_t version;
} kivis_bt_iter;

int kivis__btree_new(const kivis_allocator *alloc, kivis_btree **out);
void kivis__btree_free(kivis_btree *t);
/* Remove every entry (keeps the tree usable). */
void kivis__btree_clear(kivis_btree *t);

size_t kivis__btree_count(const kivis_btree *t);
/* Bytes currently held through the allocator (nodes, keys, values). */
size_t kivis__btree_bytes(const kivis_btree *t);
/* Changes on every successful modification. */
uint64_t kivis__btree_version(const kivis_btree *t);
/* Where the version is kept, for a reader that holds views across calls
 * and must see a modification that made them stale. */
const uint64_t *kivis__btree_version_at(const kivis_btree *t);

/* Keep a hash of every key from now on (pointhash.h), so that gets no
 * longer descend the tree; puts then also reserve its growth.  For large
 * trees read by key.  KIVIS_OK, or KIVIS_ENOMEM with nothing changed. */
int kivis__btree_hash_points(kivis_btree *t);
/* KIVIS_OK with *value, or KIVIS_NOTFOUND. */
int kivis__btree_get(const kivis_btree *t, kivis_slice key, kivis_slice *value);
/* Insert or overwrite.  KIVIS_ENOMEM leaves the tree unchanged. */
int kivis__btree_put(kivis_btree *t, kivis_slice key, kivis_slice value);
/* KIVIS_OK if removed, KIVIS_NOTFOUND if absent.  Never fails otherwise. */
int kivis__btree_del(kivis_btree *t, kivis_slice key);
/* Apply ops atomically: all, or on KIVIS_ENOMEM none (memory is reserved
 * before the first change).  Ops must be in strictly increasing key order
 * (KIVIS_EINVAL otherwise, nothing applied). */
int kivis__btree_apply(kivis_btree *t, const kivis_batch_op *ops, size_t n);

/* Positioning: KIVIS_OK with *it on an entry, or KIVIS_NOTFOUND. */
int kivis__btree_first(const kivis_btree *t, kivis_bt_iter *it);
int kivis__btree_last(const kivis_btree *t, kivis_bt_iter *it);
int kivis__btree_seek_ge(const kivis_btree *t, kivis_slice key, kivis_bt_iter *it);
int kivis__btree_seek_le(const kivis_btree *t, kivis_slice key, kivis_bt_iter *it);
/* Step a valid iterator.  KIVIS_NOTFOUND past either end; KIVIS_EINVAL
 * for an iterator made stale by a modification of the tree. */
int kivis__btree_next(kivis_bt_iter *it);
int kivis__btree_prev(kivis_bt_iter *it);
kivis_slice kivis__bt_iter_key(const kivis_bt_iter *it);
kivis_slice kivis__bt_iter_value(const kivis_bt_iter *it);
/* The entries after the iterator's own in direction dir (> 0 forward)
 * within its leaf, at most max of them, into out; the iterator moves onto
 * the last one taken.  Returns how many (0 at the leaf's edge).  For a
 * valid iterator: one step each, without a check or a call between. */
size_t kivis__btree_leaf_run(kivis_bt_iter *it, int dir,
                             kivis_cursor_entry *out, size_t max);
/* The key that ends the iterator's leaf going in direction dir: its last
 * (dir > 0) or its first entry's.  Every key of the leaf lies at or before
 * it, so one comparison with it bounds them all. */
kivis_slice kivis__bt_iter_leaf_end(const kivis_bt_iter *it, int dir);

/* ---- cursor ranges (btrange.c) ------------------------------------------
 * What a storage cursor over a tree keeps: its bounds [lo, hi) and a copy
 * of the last key it returned, to find its place again after the tree
 * changed.  Shared by the memory backend's and the overlay's cursors. */
typedef struct kivis_bt_range {
    kivis_slice lo, hi; /* copies in one block headed by lo.data;
                           hi.data == NULL: no upper bound */
    unsigned char *last;
    size_t last_len, last_cap;
} kivis_bt_range;

/* Copy the bounds.  KIVIS_OK or KIVIS_ENOMEM (r left empty). */
int kivis__range_init(kivis_bt_range *r, const kivis_allocator *a,
                      kivis_slice lo, kivis_slice hi);
void kivis__range_free(kivis_bt_range *r, const kivis_allocator *a);
bool kivis__range_has(const kivis_bt_range *r, kivis_slice key);
/* The direction a cursor op moves in: 1 for FIRST, NEXT and SEEK_GE, -1
 * for LAST, PREV and SEEK_LE. */
static inline int kivis__op_dir(int op)
{
    return op == KIVIS_FIRST || op == KIVIS_NEXT || op == KIVIS_SEEK_GE ? 1 : -1;
}

/* Whether key, reached moving in direction dir (> 0 forward) by a seek
 * clipped to the range's near bound or a step from a key inside it, is
 * short of the far bound: below hi going forward, at or above lo going
 * back.  The near bound holds by construction, so one comparison is left. */
bool kivis__range_short_of_far(const kivis_bt_range *r, kivis_slice key,
                               int dir);
/* Keep a copy of `key` as the last key returned.  KIVIS_ENOMEM keeps the
 * previous copy. */
int kivis__range_remember(kivis_bt_range *r, const kivis_allocator *a,
                          kivis_slice key);
kivis_slice kivis__range_last(const kivis_bt_range *r);
/* Place `it` on the first entry >= target (dir > 0) or the last entry
 * <= target (dir < 0), clipped to the range's bounds; target NULL means
 * the range's start (dir > 0) or end (dir < 0).  The entry found may still
 * lie past the far bound: check it with kivis__range_short_of_far. */
int kivis__range_seek(const kivis_btree *t, const kivis_bt_range *r, int dir,
                      const kivis_slice *target, kivis_bt_iter *it);

/* The common start of a cursor's get: check op and arguments, take a SEEK
 * op's target out of *key (*target = NULL for the other ops), and clear
 * the outputs.  KIVIS_OK or KIVIS_EINVAL. */
/* The key check every backend's get, put and del start with: KIVIS_EINVAL
 * for an empty key, KIVIS_EKEYSIZE for one over max_key, else KIVIS_OK. */
int kivis__check_key(kivis_slice key, size_t max_key);

int kivis__cursor_args(int op, kivis_slice *key, kivis_slice *value,
                       kivis_slice *target_buf, const kivis_slice **target);

/* memcmp order with shorter-first tie break: <0, 0, >0.  Inline: cursors
 * compare a key a step with it (a call was a third of the cost). */
static inline int kivis__key_cmp(kivis_slice a, kivis_slice b)
{
    size_t n = a.len < b.len ? a.len : b.len;
    int c = n ? memcmp(a.data, b.data, n) : 0;
    if (c)
        return c;
    return (a.len > b.len) - (a.len < b.len);
}

/* Check every structural invariant (order, fill, separators, links, counts).
 * For tests.  true when sound. */
bool kivis__btree_check(const kivis_btree *t);

#endif /* KIVIS_BTREE_H */
