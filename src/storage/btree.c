/*
 * src/storage/btree.c - the in-memory B+tree behind the memory backend and
 * the overlay write sets.
 *
 * Layout, chosen for memory (1M records of 16+64 bytes must stay within
 * twice their raw size, malloc overhead included) and for speed:
 *  - every record is one allocation, an `entry`: two 16-bit lengths, then
 *    the key bytes, then the value bytes (longer lengths go after the
 *    header as size_t);
 *  - leaves hold up to LEAF_CAP entry pointers plus, next to each, a "hint":
 *    8 key bytes as a big-endian integer.  Every node records a prefix that
 *    all its keys share, and the hint is taken right after it, so that it
 *    holds the bytes where the node's keys differ (kivis keys all begin with
 *    the same table and slot bytes, and integer keys with zeros).  Hints
 *    order like keys, so a binary search mostly compares integers in one
 *    contiguous array and only touches an entry on a tie;
 *  - a separator in an inner node is not a copy of a key but a pointer to
 *    the entry that is the least key of the subtree on its right.  Splits,
 *    merges and borrows therefore move pointers and never allocate, so a
 *    delete cannot fail, and an insert needs only its entry plus the nodes
 *    its splits take, which are reserved before the tree is touched;
 *  - a tree may keep a point hash (pointhash.h) of every entry, so that a
 *    get finds its key without descending: the memory backend's committed
 *    tree does, an overlay's small write set does not.
 */
#include "btree.h"
#include "pointhash.h"

#include <assert.h>
#include <string.h>

#define LEAF_CAP 64
#define LEAF_MIN (LEAF_CAP / 2)
#define INNER_CAP 64 /* children */
#define INNER_MIN (INNER_CAP / 2)
/* Every non-root inner node has >= INNER_MIN children, so 16 levels would
 * hold more entries than an address space. */
#define MAX_DEPTH 16

/* A length that does not fit 16 bits is stored as WIDE, and both real
 * lengths then follow the header as size_t. */
#define WIDE UINT16_MAX

typedef struct entry {
    uint16_t klen;
    uint16_t vlen;
    unsigned char bytes[];
} entry;

/* Bytes of a node's shared prefix kept in the node itself; a longer prefix
 * is read from the node's first key, which costs one more cache miss. */
#define PREFIX_INLINE 16

/* Every key in a node begins with the same `len` bytes, the first of which
 * are in `head`.  It need not be the longest such prefix: dropping keys
 * keeps it true, and a new key that does not share it shortens it. */
typedef struct prefix {
    size_t len;
    unsigned char head[PREFIX_INLINE];
} prefix;

/* Both node kinds start with `count` and then their prefix, so these can be
 * read from either. */
struct kivis_bt_leaf {
    unsigned count;
    prefix px;
    kivis_bt_leaf *prev, *next;
    uint64_t hint[LEAF_CAP];
    entry *ent[LEAF_CAP];
};

typedef struct inner {
    unsigned count; /* children */
    prefix px;
    uint64_t hint[INNER_CAP - 1];
    entry *sep[INNER_CAP - 1]; /* sep[i] is the least key under child[i+1] */
    void *child[INNER_CAP];
} inner;

/* Nodes reserved for the splits of one modification, chained through their
 * first bytes while unused. */
typedef struct spare {
    struct spare *next;
} spare;

typedef struct spares {
    spare *list;
    size_t n;
} spares;

struct kivis_btree {
    kivis_allocator alloc;
    void *root; /* a leaf when depth == 0 */
    unsigned depth; /* inner levels above the leaves */
    size_t count;
    size_t bytes;
    uint64_t version;
    kivis_bt_leaf *head, *tail;
    spares spare_leaves, spare_inners;
    kivis_pointhash points; /* every entry, when cap != 0 */
};

/* The way down to a key: node[d] is the inner node at level d and idx[d] the
 * child taken; slot is the key's lower bound in the leaf. */
typedef struct path {
    inner *node[MAX_DEPTH];
    unsigned idx[MAX_DEPTH];
    kivis_bt_leaf *leaf;
    unsigned slot;
    bool found;
} path;

/* ---- keys and entries ------------------------------------------------- */

/* Spelled out so that compilers make it one load and a byte swap. */
static inline uint64_t load_be64(const unsigned char *p)
{
    return (uint64_t)p[0] << 56 | (uint64_t)p[1] << 48 | (uint64_t)p[2] << 40 |
           (uint64_t)p[3] << 32 | (uint64_t)p[4] << 24 | (uint64_t)p[5] << 16 |
           (uint64_t)p[6] << 8 | (uint64_t)p[7];
}

/* The 8 key bytes from `skip` on, zero-padded, as a big-endian integer: of
 * two keys that share their first `skip` bytes, the one with the smaller
 * hint is the smaller key. */
static inline uint64_t hint_at(kivis_slice key, size_t skip)
{
    const unsigned char *p = key.data;
    if (key.len >= skip + 8)
        return load_be64(p + skip);
    unsigned char b[8] = {0};
    if (key.len > skip)
        memcpy(b, p + skip, key.len - skip);
    return load_be64(b);
}

static bool entry_is_wide(const entry *e)
{
    return e->klen == WIDE;
}

static void entry_wide_lens(const entry *e, size_t lens[2])
{
    memcpy(lens, e->bytes, 2 * sizeof(size_t));
}

static kivis_slice entry_key(const entry *e)
{
    if (!entry_is_wide(e))
        return kivis_slice_make(e->bytes, e->klen);
    size_t lens[2];
    entry_wide_lens(e, lens);
    return kivis_slice_make(e->bytes + sizeof lens, lens[0]);
}

static kivis_slice entry_value(const entry *e)
{
    if (!entry_is_wide(e))
        return kivis_slice_make(e->bytes + e->klen, e->vlen);
    size_t lens[2];
    entry_wide_lens(e, lens);
    return kivis_slice_make(e->bytes + sizeof lens + lens[0], lens[1]);
}

/* Bytes an entry for these lengths takes; 0 when that overflows size_t. */
static size_t entry_size_for(size_t klen, size_t vlen, bool wide)
{
    size_t head = sizeof(entry) + (wide ? 2 * sizeof(size_t) : 0);
    if (klen > SIZE_MAX - head || vlen > SIZE_MAX - head - klen)
        return 0;
    return head + klen + vlen;
}

static size_t entry_size(const entry *e)
{
    kivis_slice k = entry_key(e), v = entry_value(e);
    return entry_size_for(k.len, v.len, entry_is_wide(e));
}

static void *tree_malloc(kivis_btree *t, size_t n)
{
    void *p = t->alloc.malloc(t->alloc.ctx, n);
    if (p)
        t->bytes += n;
    return p;
}

static void tree_free(kivis_btree *t, void *p, size_t n)
{
    t->alloc.free(t->alloc.ctx, p);
    t->bytes -= n;
}

static entry *entry_new(kivis_btree *t, kivis_slice key, kivis_slice value)
{
    bool wide = key.len >= WIDE || value.len >= WIDE;
    size_t size = entry_size_for(key.len, value.len, wide);
    entry *e = size ? tree_malloc(t, size) : NULL;
    if (!e)
        return NULL;
    unsigned char *p = e->bytes;
    if (wide) {
        size_t lens[2] = {key.len, value.len};
        e->klen = e->vlen = WIDE;
        memcpy(p, lens, sizeof lens);
        p += sizeof lens;
    } else {
        e->klen = (uint16_t)key.len;
        e->vlen = (uint16_t)value.len;
    }
    if (key.len)
        memcpy(p, key.data, key.len);
    if (value.len)
        memcpy(p + key.len, value.data, value.len);
    return e;
}

static void entry_free(kivis_btree *t, entry *e)
{
    tree_free(t, e, entry_size(e));
}

/* ---- the point hash --------------------------------------------------- */

static uint64_t point_hash(const kivis_btree *t, const entry *e)
{
    return kivis__ph_hash(&t->points, entry_key(e));
}

/* The entry of key through the point hash (which the tree must have), or
 * NULL. */
static entry *point_find(const kivis_btree *t, kivis_slice key)
{
    const kivis_pointhash *h = &t->points;
    uint64_t hash = kivis__ph_hash(h, key);
    for (size_t i = kivis__ph_first(h, hash); h->slot[i].item;
         i = kivis__ph_next(h, i)) {
        entry *e = h->slot[i].item;
        if (h->slot[i].hash == hash && kivis__key_cmp(key, entry_key(e)) == 0)
            return e;
    }
    return NULL;
}

/* Room in the point hash, if any, for `more` new keys. */
static int points_reserve(kivis_btree *t, size_t more)
{
    if (!t->points.cap)
        return KIVIS_OK;
    if (more > SIZE_MAX - t->count)
        return KIVIS_ENOMEM;
    return kivis__ph_reserve(&t->points, &t->alloc, t->count + more);
}

/* ---- node prefixes and slots ---------------------------------------- */

/* The sorted keys of one node, leaf or inner, seen alike: n hints and
 * entries (an inner node's separators) and the prefix they share. */
typedef struct slots {
    prefix *px;
    uint64_t *hint;
    entry **ent;
    unsigned n;
} slots;

static slots leaf_slots(kivis_bt_leaf *l)
{
    return (slots){&l->px, l->hint, l->ent, l->count};
}

static slots inner_slots(inner *in)
{
    return (slots){&in->px, in->hint, in->sep, in->count - 1};
}

/* The prefix bytes: in the node, or in its first key when too long. */
static const unsigned char *prefix_bytes(slots s)
{
    if (s.px->len <= PREFIX_INLINE)
        return s.px->head;
    return entry_key(s.ent[0]).data;
}

static size_t common_length(const unsigned char *a, size_t alen,
                            const unsigned char *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen, i = 0;
    while (i < n && a[i] == b[i])
        i++;
    return i;
}

/* Compare key with the node's prefix: < 0 when key sorts before every key
 * of the node, > 0 when after every one, 0 when it starts with the prefix. */
static int prefix_cmp(slots s, kivis_slice key)
{
    size_t len = s.px->len;
    if (len == 0)
        return 0;
    /* Prefixes are short, mostly: comparing 8 bytes at a time in line
     * beats a call to memcmp. */
    size_t n = key.len < len ? key.len : len, i = 0;
    const unsigned char *k = key.data, *p = prefix_bytes(s);
    for (; i + 8 <= n; i += 8) {
        uint64_t a = load_be64(k + i), b = load_be64(p + i);
        if (a != b)
            return a < b ? -1 : 1;
    }
    for (; i < n; i++)
        if (k[i] != p[i])
            return k[i] < p[i] ? -1 : 1;
    return key.len < len ? -1 : 0;
}

static void prefix_set(prefix *px, kivis_slice key, size_t len)
{
    px->len = len;
    if (len)
        memcpy(px->head, key.data, len < PREFIX_INLINE ? len : PREFIX_INLINE);
}

/* Shorten the prefix to `len`: the hints move right by the dropped bytes,
 * which every key shares, so no entry has to be read. */
static void prefix_shorten(slots s, size_t len)
{
    size_t drop = s.px->len - len;
    if (drop == 0)
        return;
    const unsigned char *p = prefix_bytes(s) + len;
    unsigned take = drop < 8 ? (unsigned)drop : 8;
    uint64_t top = 0;
    for (unsigned i = 0; i < take; i++)
        top = top << 8 | p[i];
    for (unsigned i = 0; i < s.n; i++)
        s.hint[i] = take == 8 ? top : top << 8 * (8 - take) | s.hint[i] >> 8 * take;
    s.px->len = len;
}

/* Make the node's prefix one that key shares too, and return key's hint
 * in that node.  Called before key's entry goes into the slots. */
static uint64_t slots_admit(slots s, kivis_slice key)
{
    if (s.n == 0) {
        prefix_set(s.px, key, key.len);
    } else if (prefix_cmp(s, key) != 0) {
        size_t len = common_length(key.data, key.len, prefix_bytes(s), s.px->len);
        prefix_shorten(s, len);
    }
    return hint_at(key, s.px->len);
}

/* Set the node's prefix to the longest its keys share (that of the first
 * and the last, as they are sorted) and every hint after it. */
static void slots_refit(slots s)
{
    if (s.n == 0) {
        s.px->len = 0;
        return;
    }
    kivis_slice first = entry_key(s.ent[0]), last = entry_key(s.ent[s.n - 1]);
    prefix_set(s.px, first, common_length(first.data, first.len, last.data, last.len));
    for (unsigned i = 0; i < s.n; i++)
        s.hint[i] = hint_at(entry_key(s.ent[i]), s.px->len);
}

/* After a split each half keeps its node's prefix, which stays true; refit
 * a half only when its keys share at least half a hint more, as sequential
 * string keys do, since a refit reads every entry. */
static void slots_tighten(slots s)
{
    kivis_slice first = entry_key(s.ent[0]), last = entry_key(s.ent[s.n - 1]);
    if (common_length(first.data, first.len, last.data, last.len) >= s.px->len + 4)
        slots_refit(s);
}

/* ---- searching -------------------------------------------------------- */

/* Ask for every cache line of the node's hints at once: the misses of a
 * binary search then overlap instead of following one another, which is
 * most of the time a lookup takes once the tree outgrows the caches. */
static inline void prefetch_hints(slots s)
{
#if defined(__GNUC__) || defined(__clang__)
    const char *p = (const char *)s.hint, *end = (const char *)(s.hint + s.n);
    for (; p < end; p += 64)
        __builtin_prefetch(p);
#else
    (void)s;
#endif
}

/* First slot whose key is >= key; *eq tells whether it is equal. */
static unsigned lower_bound(slots s, kivis_slice key, bool *eq)
{
    *eq = false;
    if (s.n == 0)
        return 0;
    int c = prefix_cmp(s, key);
    if (c)
        return c < 0 ? 0 : s.n;
    uint64_t hint = hint_at(key, s.px->len);
    prefetch_hints(s);
    unsigned lo = 0, hi = s.n;
    while (lo < hi) {
        unsigned mid = lo + (hi - lo) / 2;
        if (hint != s.hint[mid])
            c = hint < s.hint[mid] ? -1 : 1;
        else
            c = kivis__key_cmp(key, entry_key(s.ent[mid]));
        if (c == 0) {
            *eq = true;
            return mid;
        }
        if (c > 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void descend(const kivis_btree *t, kivis_slice key, path *p)
{
    void *n = t->root;
    bool eq;
    for (unsigned d = 0; d < t->depth; d++) {
        inner *in = n;
        unsigned i = lower_bound(inner_slots(in), key, &eq);
        i += eq; /* a key equal to sep[i] lives under child[i+1] */
        p->node[d] = in;
        p->idx[d] = i;
        n = in->child[i];
    }
    p->leaf = n;
    p->slot = lower_bound(leaf_slots(p->leaf), key, &p->found);
}

/* ---- node memory ------------------------------------------------------ */

static void spares_push(spares *s, void *node)
{
    spare *sp = node;
    sp->next = s->list;
    s->list = sp;
    s->n++;
}

static void *spares_pop(spares *s)
{
    spare *sp = s->list;
    assert(sp && "a split ran past the nodes reserved for it");
    s->list = sp->next;
    s->n--;
    return sp;
}

static bool spares_fill(kivis_btree *t, spares *s, size_t want, size_t size)
{
    while (s->n < want) {
        void *node = tree_malloc(t, size);
        if (!node)
            return false;
        spares_push(s, node);
    }
    return true;
}

static void spares_drain(kivis_btree *t, spares *s, size_t size)
{
    while (s->n)
        tree_free(t, spares_pop(s), size);
}

static void release_spares(kivis_btree *t)
{
    spares_drain(t, &t->spare_leaves, sizeof(kivis_bt_leaf));
    spares_drain(t, &t->spare_inners, sizeof(inner));
}

/* Have at least `leaves` leaves and `inners` inner nodes on hand, or none
 * (false) so that a failure leaves no trace. */
static bool reserve(kivis_btree *t, size_t leaves, size_t inners)
{
    if (spares_fill(t, &t->spare_leaves, leaves, sizeof(kivis_bt_leaf)) &&
        spares_fill(t, &t->spare_inners, inners, sizeof(inner)))
        return true;
    release_spares(t);
    return false;
}

static kivis_bt_leaf *take_leaf(kivis_btree *t)
{
    kivis_bt_leaf *l = spares_pop(&t->spare_leaves);
    l->count = 0;
    l->prev = l->next = NULL;
    return l;
}

static inner *take_inner(kivis_btree *t)
{
    inner *in = spares_pop(&t->spare_inners);
    in->count = 0;
    return in;
}

static unsigned node_count(const void *node)
{
    return *(const unsigned *)node;
}

/* ---- slot arrays ------------------------------------------------------ */

static void slots_insert(uint64_t *hints, entry **ents, unsigned n,
                         unsigned at, uint64_t hint, entry *e)
{
    memmove(hints + at + 1, hints + at, (n - at) * sizeof *hints);
    memmove(ents + at + 1, ents + at, (n - at) * sizeof *ents);
    hints[at] = hint;
    ents[at] = e;
}

static void slots_remove(uint64_t *hints, entry **ents, unsigned n,
                         unsigned at)
{
    memmove(hints + at, hints + at + 1, (n - at - 1) * sizeof *hints);
    memmove(ents + at, ents + at + 1, (n - at - 1) * sizeof *ents);
}

static void slots_copy(uint64_t *dh, entry **de, const uint64_t *sh,
                       entry *const *se, unsigned n)
{
    memcpy(dh, sh, n * sizeof *dh);
    memcpy(de, se, n * sizeof *de);
}

static void children_insert(void **child, unsigned n, unsigned at, void *c)
{
    memmove(child + at + 1, child + at, (n - at) * sizeof *child);
    child[at] = c;
}

static void children_remove(void **child, unsigned n, unsigned at)
{
    memmove(child + at, child + at + 1, (n - at - 1) * sizeof *child);
}

/* ---- insertion -------------------------------------------------------- */

/* Make separator i of `in` the entry e. */
static void set_sep(inner *in, unsigned i, entry *e)
{
    in->hint[i] = slots_admit(inner_slots(in), entry_key(e));
    in->sep[i] = e;
}

/* The entry that is the least key of the path's leaf changed to e: update
 * the one separator that points at it, if the leaf is not leftmost. */
static void set_leaf_min(const kivis_btree *t, path *p, entry *e)
{
    for (unsigned d = t->depth; d-- > 0;) {
        if (p->idx[d] > 0) {
            set_sep(p->node[d], p->idx[d] - 1, e);
            return;
        }
    }
}

static void replace_at(kivis_btree *t, path *p, entry *e)
{
    entry *old = p->leaf->ent[p->slot];
    p->leaf->ent[p->slot] = e;
    if (t->points.cap)
        kivis__ph_replace(&t->points, point_hash(t, e), old, e);
    if (p->slot == 0)
        set_leaf_min(t, p, e);
    entry_free(t, old);
}

static void link_after(kivis_btree *t, kivis_bt_leaf *left,
                       kivis_bt_leaf *right)
{
    right->prev = left;
    right->next = left->next;
    if (left->next)
        left->next->prev = right;
    else
        t->tail = right;
    left->next = right;
}

/* Insert into a full leaf by splitting it; returns the new right half. */
static kivis_bt_leaf *split_leaf(kivis_btree *t, kivis_bt_leaf *leaf,
                                 unsigned at, uint64_t hint, entry *e)
{
    uint64_t hints[LEAF_CAP + 1];
    entry *ents[LEAF_CAP + 1];
    slots_copy(hints, ents, leaf->hint, leaf->ent, LEAF_CAP);
    slots_insert(hints, ents, LEAF_CAP, at, hint, e);

    kivis_bt_leaf *right = take_leaf(t);
    unsigned keep = (LEAF_CAP + 1) / 2;
    slots_copy(leaf->hint, leaf->ent, hints, ents, keep);
    slots_copy(right->hint, right->ent, hints + keep, ents + keep,
               LEAF_CAP + 1 - keep);
    leaf->count = keep;
    right->count = LEAF_CAP + 1 - keep;
    right->px = leaf->px;
    slots_tighten(leaf_slots(leaf));
    slots_tighten(leaf_slots(right));
    link_after(t, leaf, right);
    return right;
}

/* Insert separator sep (with its hint in `in`) and its right child at child
 * index at + 1 into a full inner node by splitting it.  The middle separator
 * moves up: it is returned in *sep, and the new right half in *child. */
static void split_inner(kivis_btree *t, inner *in, unsigned at, uint64_t hint,
                        entry **sep, void **child)
{
    uint64_t hints[INNER_CAP];
    entry *seps[INNER_CAP];
    void *kids[INNER_CAP + 1];
    slots_copy(hints, seps, in->hint, in->sep, INNER_CAP - 1);
    slots_insert(hints, seps, INNER_CAP - 1, at, hint, *sep);
    memcpy(kids, in->child, sizeof in->child);
    children_insert(kids, INNER_CAP, at + 1, *child);

    inner *right = take_inner(t);
    unsigned keep = (INNER_CAP + 1 + 1) / 2; /* children left of the cut */
    unsigned moved = INNER_CAP + 1 - keep;
    slots_copy(in->hint, in->sep, hints, seps, keep - 1);
    memcpy(in->child, kids, keep * sizeof *kids);
    slots_copy(right->hint, right->sep, hints + keep, seps + keep, moved - 1);
    memcpy(right->child, kids + keep, moved * sizeof *kids);
    in->count = keep;
    right->count = moved;
    right->px = in->px;
    slots_tighten(inner_slots(in));
    slots_tighten(inner_slots(right));
    *sep = seps[keep - 1];
    *child = right;
}

/* A split below produced `child`, whose least key is `sep`: hang it right
 * of the path, splitting full inner nodes on the way up. */
static void push_up(kivis_btree *t, path *p, entry *sep, void *child)
{
    for (unsigned d = t->depth; d-- > 0;) {
        inner *in = p->node[d];
        unsigned at = p->idx[d];
        uint64_t hint = slots_admit(inner_slots(in), entry_key(sep));
        if (in->count < INNER_CAP) {
            slots_insert(in->hint, in->sep, in->count - 1, at, hint, sep);
            children_insert(in->child, in->count, at + 1, child);
            in->count++;
            return;
        }
        split_inner(t, in, at, hint, &sep, &child);
    }
    assert(t->depth + 1 < MAX_DEPTH);
    inner *root = take_inner(t);
    root->count = 2;
    root->child[0] = t->root;
    root->child[1] = child;
    root->sep[0] = sep;
    slots_refit(inner_slots(root));
    t->root = root;
    t->depth++;
}

/* Insert e, a key not in the tree, where p leads.  Needs the spare nodes
 * that splits_for_insert counted. */
static void insert_at(kivis_btree *t, path *p, entry *e)
{
    kivis_bt_leaf *leaf = p->leaf;
    uint64_t hint = slots_admit(leaf_slots(leaf), entry_key(e));
    if (leaf->count < LEAF_CAP) {
        slots_insert(leaf->hint, leaf->ent, leaf->count, p->slot, hint, e);
        leaf->count++;
    } else {
        kivis_bt_leaf *right = split_leaf(t, leaf, p->slot, hint, e);
        push_up(t, p, right->ent[0], right);
    }
    if (t->points.cap)
        kivis__ph_insert(&t->points, point_hash(t, e), e);
    t->count++;
}

/* Nodes that inserting one new key where p leads will split into. */
static void splits_for_insert(const kivis_btree *t, const path *p,
                              size_t *leaves, size_t *inners)
{
    *leaves = *inners = 0;
    if (p->leaf->count < LEAF_CAP)
        return;
    *leaves = 1;
    for (unsigned d = t->depth; d-- > 0;) {
        if (p->node[d]->count < INNER_CAP)
            return;
        ++*inners;
    }
    ++*inners; /* a new root */
}

/* ---- deletion --------------------------------------------------------- */

/* Only a right sibling is ever unlinked, so it is never the head. */
static void unlink_leaf(kivis_btree *t, kivis_bt_leaf *leaf)
{
    leaf->prev->next = leaf->next;
    if (leaf->next)
        leaf->next->prev = leaf->prev;
    else
        t->tail = leaf->prev;
}

static void remove_child(inner *parent, unsigned i)
{
    slots_remove(parent->hint, parent->sep, parent->count - 1, i - 1);
    children_remove(parent->child, parent->count, i);
    parent->count--;
}

/* Fold parent->child[i+1] into parent->child[i]. */
static void merge_leaves(kivis_btree *t, inner *parent, unsigned i)
{
    kivis_bt_leaf *left = parent->child[i], *right = parent->child[i + 1];
    slots_copy(left->hint + left->count, left->ent + left->count, right->hint,
               right->ent, right->count);
    left->count += right->count;
    slots_refit(leaf_slots(left));
    unlink_leaf(t, right);
    remove_child(parent, i + 1);
    tree_free(t, right, sizeof *right);
}

static void merge_inners(kivis_btree *t, inner *parent, unsigned i)
{
    inner *left = parent->child[i], *right = parent->child[i + 1];
    unsigned n = left->count;
    left->sep[n - 1] = parent->sep[i]; /* its hint comes with the refit */
    slots_copy(left->hint + n, left->sep + n, right->hint, right->sep,
               right->count - 1);
    memcpy(left->child + n, right->child, right->count * sizeof *right->child);
    left->count += right->count;
    slots_refit(inner_slots(left));
    remove_child(parent, i + 1);
    tree_free(t, right, sizeof *right);
}

/* Move the last entry of child[i-1] to the front of child[i]. */
static void borrow_leaf_from_left(inner *parent, unsigned i)
{
    kivis_bt_leaf *left = parent->child[i - 1], *n = parent->child[i];
    entry *e = left->ent[--left->count];
    uint64_t hint = slots_admit(leaf_slots(n), entry_key(e));
    slots_insert(n->hint, n->ent, n->count, 0, hint, e);
    n->count++;
    set_sep(parent, i - 1, e);
}

/* Move the first entry of child[i+1] to the end of child[i]. */
static void borrow_leaf_from_right(inner *parent, unsigned i)
{
    kivis_bt_leaf *n = parent->child[i], *right = parent->child[i + 1];
    entry *e = right->ent[0];
    n->hint[n->count] = slots_admit(leaf_slots(n), entry_key(e));
    n->ent[n->count] = e;
    n->count++;
    slots_remove(right->hint, right->ent, right->count, 0);
    right->count--;
    set_sep(parent, i, right->ent[0]);
}

/* Rotate the last child of child[i-1] through the parent into child[i]. */
static void borrow_inner_from_left(inner *parent, unsigned i)
{
    inner *left = parent->child[i - 1], *n = parent->child[i];
    entry *down = parent->sep[i - 1];
    uint64_t hint = slots_admit(inner_slots(n), entry_key(down));
    slots_insert(n->hint, n->sep, n->count - 1, 0, hint, down);
    children_insert(n->child, n->count, 0, left->child[left->count - 1]);
    n->count++;
    set_sep(parent, i - 1, left->sep[left->count - 2]);
    left->count--;
}

static void borrow_inner_from_right(inner *parent, unsigned i)
{
    inner *n = parent->child[i], *right = parent->child[i + 1];
    entry *down = parent->sep[i];
    n->hint[n->count - 1] = slots_admit(inner_slots(n), entry_key(down));
    n->sep[n->count - 1] = down;
    n->child[n->count] = right->child[0];
    n->count++;
    set_sep(parent, i, right->sep[0]);
    slots_remove(right->hint, right->sep, right->count - 1, 0);
    children_remove(right->child, right->count, 0);
    right->count--;
}

/* parent->child[i] fell below its minimum: merge it with a sibling when
 * both fit in one node, else borrow one slot from that sibling. */
static void fix_underflow(kivis_btree *t, inner *parent, unsigned i,
                          bool leaves)
{
    unsigned l = i > 0 ? i - 1 : 0; /* the pair (l, l+1) */
    unsigned cap = leaves ? LEAF_CAP : INNER_CAP;
    unsigned both = node_count(parent->child[l]) + node_count(parent->child[l + 1]);
    if (both <= cap) {
        if (leaves)
            merge_leaves(t, parent, l);
        else
            merge_inners(t, parent, l);
    } else if (i > 0) {
        if (leaves)
            borrow_leaf_from_left(parent, i);
        else
            borrow_inner_from_left(parent, i);
    } else {
        if (leaves)
            borrow_leaf_from_right(parent, i);
        else
            borrow_inner_from_right(parent, i);
    }
}

static void rebalance(kivis_btree *t, const path *p)
{
    for (unsigned d = t->depth; d-- > 0;) {
        bool leaves = d + 1 == t->depth;
        void *child = p->node[d]->child[p->idx[d]];
        if (node_count(child) >= (leaves ? LEAF_MIN : INNER_MIN))
            return;
        fix_underflow(t, p->node[d], p->idx[d], leaves);
    }
    if (t->depth > 0 && node_count(t->root) == 1) {
        inner *old = t->root;
        t->root = old->child[0];
        t->depth--;
        tree_free(t, old, sizeof *old);
    }
}

static void delete_at(kivis_btree *t, path *p)
{
    kivis_bt_leaf *leaf = p->leaf;
    entry *dead = leaf->ent[p->slot];
    if (t->points.cap)
        kivis__ph_remove(&t->points, point_hash(t, dead), dead);
    slots_remove(leaf->hint, leaf->ent, leaf->count, p->slot);
    leaf->count--;
    if (p->slot == 0 && leaf->count > 0)
        set_leaf_min(t, p, leaf->ent[0]);
    rebalance(t, p);
    entry_free(t, dead);
    t->count--;
}

/* ---- the tree --------------------------------------------------------- */

static void use_as_root(kivis_btree *t, kivis_bt_leaf *leaf)
{
    leaf->count = 0;
    leaf->px.len = 0;
    leaf->prev = leaf->next = NULL;
    t->root = t->head = t->tail = leaf;
    t->depth = 0;
}

int kivis__btree_new(const kivis_allocator *alloc, kivis_btree **out)
{
    *out = NULL;
    if (!alloc)
        alloc = kivis_default_allocator();
    kivis_btree *t = alloc->malloc(alloc->ctx, sizeof *t);
    if (!t)
        return KIVIS_ENOMEM;
    memset(t, 0, sizeof *t);
    t->alloc = *alloc;
    /* where the tree lives varies from run to run (ASLR), and so do the
     * keys that collide in its point hash */
    kivis__ph_init(&t->points, (uint64_t)(uintptr_t)t * 0x9e3779b97f4a7c15u);
    t->bytes = sizeof *t;
    kivis_bt_leaf *root = tree_malloc(t, sizeof *root);
    if (!root) {
        alloc->free(alloc->ctx, t);
        return KIVIS_ENOMEM;
    }
    use_as_root(t, root);
    *out = t;
    return KIVIS_OK;
}

/* Free the subtree at `node`, `levels` inner levels high, except `keep`. */
static void free_subtree(kivis_btree *t, void *node, unsigned levels,
                         const void *keep)
{
    if (levels == 0) {
        kivis_bt_leaf *leaf = node;
        for (unsigned i = 0; i < leaf->count; i++)
            entry_free(t, leaf->ent[i]);
        if (leaf != keep)
            tree_free(t, leaf, sizeof *leaf);
        return;
    }
    inner *in = node;
    for (unsigned i = 0; i < in->count; i++)
        free_subtree(t, in->child[i], levels - 1, keep);
    tree_free(t, in, sizeof *in);
}

void kivis__btree_clear(kivis_btree *t)
{
    kivis_bt_leaf *keep = t->head;
    free_subtree(t, t->root, t->depth, keep);
    use_as_root(t, keep);
    kivis__ph_clear(&t->points);
    t->count = 0;
    t->version++;
}

void kivis__btree_free(kivis_btree *t)
{
    if (!t)
        return;
    free_subtree(t, t->root, t->depth, NULL);
    kivis__ph_free(&t->points, &t->alloc);
    kivis_allocator a = t->alloc;
    a.free(a.ctx, t);
}

size_t kivis__btree_count(const kivis_btree *t)
{
    return t->count;
}

size_t kivis__btree_bytes(const kivis_btree *t)
{
    return t->bytes + kivis__ph_bytes(&t->points);
}

int kivis__btree_hash_points(kivis_btree *t)
{
    if (t->points.cap)
        return KIVIS_OK;
    if (kivis__ph_reserve(&t->points, &t->alloc, t->count) != KIVIS_OK)
        return KIVIS_ENOMEM;
    for (kivis_bt_leaf *l = t->head; l; l = l->next)
        for (unsigned i = 0; i < l->count; i++)
            kivis__ph_insert(&t->points, point_hash(t, l->ent[i]), l->ent[i]);
    return KIVIS_OK;
}

uint64_t kivis__btree_version(const kivis_btree *t)
{
    return t->version;
}

const uint64_t *kivis__btree_version_at(const kivis_btree *t)
{
    return &t->version;
}

int kivis__btree_get(const kivis_btree *t, kivis_slice key, kivis_slice *value)
{
    if (t->points.cap) {
        entry *e = point_find(t, key);
        *value = e ? entry_value(e) : kivis_slice_make(NULL, 0);
        return e ? KIVIS_OK : KIVIS_NOTFOUND;
    }
    path p;
    descend(t, key, &p);
    if (!p.found) {
        *value = kivis_slice_make(NULL, 0);
        return KIVIS_NOTFOUND;
    }
    *value = entry_value(p.leaf->ent[p.slot]);
    return KIVIS_OK;
}

int kivis__btree_put(kivis_btree *t, kivis_slice key, kivis_slice value)
{
    path p;
    descend(t, key, &p);
    size_t leaves = 0, inners = 0;
    if (!p.found) {
        splits_for_insert(t, &p, &leaves, &inners);
        if (points_reserve(t, 1) != KIVIS_OK)
            return KIVIS_ENOMEM;
    }
    entry *e = entry_new(t, key, value);
    if (!e)
        return KIVIS_ENOMEM;
    if (!reserve(t, leaves, inners)) {
        entry_free(t, e);
        return KIVIS_ENOMEM;
    }
    if (p.found)
        replace_at(t, &p, e);
    else
        insert_at(t, &p, e);
    t->version++;
    return KIVIS_OK;
}

int kivis__btree_del(kivis_btree *t, kivis_slice key)
{
    path p;
    descend(t, key, &p);
    if (!p.found)
        return KIVIS_NOTFOUND;
    delete_at(t, &p);
    t->version++;
    return KIVIS_OK;
}

/* ---- batches ---------------------------------------------------------- */

/*
 * An upper bound on the nodes a batch of sorted inserts splits off.
 *
 * Inserts that land in one node (and in the nodes split off it) form a
 * group.  Once a group has split, each of its nodes holds at least cap/2,
 * so a group ending with `total` slots spans at most 2*total/cap nodes.
 * Ops come in key order, so a node's group is contiguous in the batch; its
 * splits are inserts into its parent's group.  Every put is counted as a
 * new key, which only over-reserves.
 */
typedef struct bound {
    const void *node[MAX_DEPTH + 1]; /* current group per level, leaf last */
    size_t added[MAX_DEPTH + 1];
    size_t leaves, inners;
} bound;

static size_t group_splits(size_t count, size_t added, size_t cap)
{
    if (count + added <= cap)
        return 0;
    return 2 * (count + added) / cap - 1;
}

/* Inner nodes added above a root that split `s` times: a new root over
 * the s + 1 nodes, which may split in turn (its own splits are new nodes
 * too), and so on up until a new root does not split. */
static size_t root_growth(size_t s)
{
    size_t made = 0;
    while (s > 0) {
        size_t more = group_splits(1, s, INNER_CAP); /* the new root's */
        made += 1 + more;
        s = more;
    }
    return made;
}

/* Close the groups at levels >= from, deepest first. */
static void bound_close(bound *b, unsigned depth, unsigned from)
{
    for (unsigned d = depth + 1; d-- > from;) {
        if (!b->node[d])
            continue;
        bool leaf = d == depth;
        size_t s = group_splits(node_count(b->node[d]), b->added[d],
                                leaf ? LEAF_CAP : INNER_CAP);
        if (leaf)
            b->leaves += s;
        else
            b->inners += s;
        if (d > 0)
            b->added[d - 1] += s;
        else
            b->inners += root_growth(s);
        b->node[d] = NULL;
        b->added[d] = 0;
    }
}

static const void *path_node(const kivis_btree *t, const path *p, unsigned d)
{
    return d < t->depth ? (const void *)p->node[d] : (const void *)p->leaf;
}

/* Start groups for the nodes of p that differ from the current ones. */
static void bound_open(bound *b, const kivis_btree *t, const path *p)
{
    unsigned d = 0;
    while (d <= t->depth && b->node[d] == path_node(t, p, d))
        d++;
    bound_close(b, t->depth, d);
    for (; d <= t->depth; d++)
        b->node[d] = path_node(t, p, d);
}

static bool leaf_holds(const kivis_bt_leaf *leaf, kivis_slice key)
{
    return !leaf->next || kivis__key_cmp(key, entry_key(leaf->next->ent[0])) < 0;
}

static void bound_splits(const kivis_btree *t, const kivis_batch_op *ops,
                         size_t n, size_t *leaves, size_t *inners)
{
    bound b;
    memset(&b, 0, sizeof b);
    path p;
    p.leaf = NULL;
    for (size_t i = 0; i < n; i++) {
        if (ops[i].del)
            continue;
        if (!p.leaf || !leaf_holds(p.leaf, ops[i].key)) {
            descend(t, ops[i].key, &p);
            bound_open(&b, t, &p);
        }
        b.added[t->depth]++;
    }
    bound_close(&b, t->depth, 0);
    *leaves = b.leaves;
    *inners = b.inners;
}

static bool ops_sorted(const kivis_batch_op *ops, size_t n)
{
    for (size_t i = 1; i < n; i++)
        if (kivis__key_cmp(ops[i - 1].key, ops[i].key) >= 0)
            return false;
    return true;
}

/* Free the first `made` entries of an array of `n`, and the array. */
static void free_entries(kivis_btree *t, entry **ents, size_t made, size_t n)
{
    for (size_t i = 0; i < made; i++)
        entry_free(t, ents[i]);
    tree_free(t, ents, n * sizeof *ents);
}

/* Copy every put of the batch into a new entry; NULL if memory runs out. */
static entry **make_entries(kivis_btree *t, const kivis_batch_op *ops,
                            size_t n, size_t puts)
{
    if (puts > SIZE_MAX / sizeof(entry *))
        return NULL;
    entry **ents = tree_malloc(t, puts * sizeof *ents);
    if (!ents)
        return NULL;
    size_t made = 0;
    for (size_t i = 0; i < n; i++) {
        if (ops[i].del)
            continue;
        ents[made] = entry_new(t, ops[i].key, ops[i].value);
        if (!ents[made]) {
            free_entries(t, ents, made, puts);
            return NULL;
        }
        made++;
    }
    return ents;
}

/* Puts run before deletes: the keys are distinct, so the order does not
 * change the result, and this way every split happens while the nodes
 * reserved for it are still counted right (deletes only free memory). */
static void apply_reserved(kivis_btree *t, const kivis_batch_op *ops,
                           size_t n, entry **ents)
{
    path p;
    size_t next = 0;
    for (size_t i = 0; i < n; i++) {
        if (ops[i].del)
            continue;
        descend(t, ops[i].key, &p);
        if (p.found)
            replace_at(t, &p, ents[next++]);
        else
            insert_at(t, &p, ents[next++]);
    }
    for (size_t i = 0; i < n; i++) {
        if (!ops[i].del)
            continue;
        descend(t, ops[i].key, &p);
        if (p.found)
            delete_at(t, &p);
    }
}

int kivis__btree_apply(kivis_btree *t, const kivis_batch_op *ops, size_t n)
{
    if (n == 0)
        return KIVIS_OK;
    if (!ops_sorted(ops, n))
        return KIVIS_EINVAL;
    size_t puts = 0;
    for (size_t i = 0; i < n; i++)
        puts += !ops[i].del;
    size_t leaves, inners;
    bound_splits(t, ops, n, &leaves, &inners);
    if (points_reserve(t, puts) != KIVIS_OK)
        return KIVIS_ENOMEM;
    entry **ents = make_entries(t, ops, n, puts);
    if (!ents)
        return KIVIS_ENOMEM;
    if (!reserve(t, leaves, inners)) {
        free_entries(t, ents, puts, puts);
        return KIVIS_ENOMEM;
    }
    apply_reserved(t, ops, n, ents);
    tree_free(t, ents, puts * sizeof *ents);
    release_spares(t);
    t->version++;
    return KIVIS_OK;
}

/* ---- iteration -------------------------------------------------------- */

static int iter_at(const kivis_btree *t, kivis_bt_leaf *leaf, unsigned slot,
                   kivis_bt_iter *it)
{
    it->tree = t;
    it->version = t->version;
    if (!leaf || slot >= leaf->count) {
        it->leaf = NULL;
        it->slot = 0;
        return KIVIS_NOTFOUND;
    }
    it->leaf = leaf;
    it->slot = slot;
    return KIVIS_OK;
}

int kivis__btree_first(const kivis_btree *t, kivis_bt_iter *it)
{
    return iter_at(t, t->head, 0, it);
}

int kivis__btree_last(const kivis_btree *t, kivis_bt_iter *it)
{
    return iter_at(t, t->tail, t->tail->count - 1, it);
}

int kivis__btree_seek_ge(const kivis_btree *t, kivis_slice key,
                         kivis_bt_iter *it)
{
    path p;
    descend(t, key, &p);
    if (p.slot < p.leaf->count)
        return iter_at(t, p.leaf, p.slot, it);
    return iter_at(t, p.leaf->next, 0, it);
}

int kivis__btree_seek_le(const kivis_btree *t, kivis_slice key,
                         kivis_bt_iter *it)
{
    path p;
    descend(t, key, &p);
    if (p.found)
        return iter_at(t, p.leaf, p.slot, it);
    if (p.slot > 0)
        return iter_at(t, p.leaf, p.slot - 1, it);
    kivis_bt_leaf *prev = p.leaf->prev;
    return iter_at(t, prev, prev ? prev->count - 1 : 0, it);
}

static bool iter_usable(const kivis_bt_iter *it)
{
    return it->leaf && it->version == it->tree->version;
}

int kivis__btree_next(kivis_bt_iter *it)
{
    if (!iter_usable(it))
        return KIVIS_EINVAL;
    if (it->slot + 1 < it->leaf->count) {
        it->slot++;
        return KIVIS_OK;
    }
    if (!it->leaf->next)
        return KIVIS_NOTFOUND;
    it->leaf = it->leaf->next;
    it->slot = 0;
    return KIVIS_OK;
}

int kivis__btree_prev(kivis_bt_iter *it)
{
    if (!iter_usable(it))
        return KIVIS_EINVAL;
    if (it->slot > 0) {
        it->slot--;
        return KIVIS_OK;
    }
    if (!it->leaf->prev)
        return KIVIS_NOTFOUND;
    it->leaf = it->leaf->prev;
    it->slot = it->leaf->count - 1;
    return KIVIS_OK;
}

kivis_slice kivis__bt_iter_key(const kivis_bt_iter *it)
{
    return entry_key(it->leaf->ent[it->slot]);
}

kivis_slice kivis__bt_iter_value(const kivis_bt_iter *it)
{
    return entry_value(it->leaf->ent[it->slot]);
}

size_t kivis__btree_leaf_run(kivis_bt_iter *it, int dir,
                             kivis_cursor_entry *out, size_t max)
{
    const kivis_bt_leaf *leaf = it->leaf;
    size_t left = dir > 0 ? leaf->count - 1 - it->slot : it->slot;
    size_t n = left < max ? left : max;
    for (size_t i = 1; i <= n; i++) {
        const entry *e = leaf->ent[dir > 0 ? it->slot + i : it->slot - i];
        out[i - 1] = (kivis_cursor_entry){entry_key(e), entry_value(e)};
    }
    it->slot = dir > 0 ? it->slot + (unsigned)n : it->slot - (unsigned)n;
    return n;
}

kivis_slice kivis__bt_iter_leaf_end(const kivis_bt_iter *it, int dir)
{
    return entry_key(it->leaf->ent[dir > 0 ? it->leaf->count - 1 : 0]);
}

/* ---- checking --------------------------------------------------------- */

typedef struct checker {
    const kivis_btree *t;
    const kivis_bt_leaf *prev_leaf;
    size_t entries;
    size_t bytes;
} checker;

/* Every key in [lo, hi) (NULL: unbounded), strictly increasing, starting
 * with the node's prefix, hints right, and the first one is lo itself:
 * separators are exact minima. */
static bool check_slots(slots s, const entry *lo, const entry *hi,
                        bool first_is_lo)
{
    const uint64_t *hints = s.hint;
    entry *const *ents = s.ent;
    unsigned n = s.n;
    size_t inline_len = s.px->len < PREFIX_INLINE ? s.px->len : PREFIX_INLINE;
    for (unsigned i = 0; i < n; i++) {
        kivis_slice k = entry_key(ents[i]);
        if (k.len < s.px->len || (inline_len && memcmp(k.data, s.px->head, inline_len)) ||
            memcmp(k.data, entry_key(ents[0]).data, s.px->len))
            return false;
        if (hints[i] != hint_at(k, s.px->len))
            return false;
        if (i > 0 && kivis__key_cmp(entry_key(ents[i - 1]), k) >= 0)
            return false;
        if (lo && kivis__key_cmp(entry_key(lo), k) > 0)
            return false;
        if (hi && kivis__key_cmp(k, entry_key(hi)) >= 0)
            return false;
    }
    return !first_is_lo || !lo || (n > 0 && ents[0] == lo);
}

static bool check_leaf(checker *c, const kivis_bt_leaf *leaf, const entry *lo,
                       const entry *hi)
{
    const kivis_btree *t = c->t;
    bool is_root = leaf == t->root;
    if (leaf->count > LEAF_CAP || (!is_root && leaf->count < LEAF_MIN))
        return false;
    if (!check_slots(leaf_slots((kivis_bt_leaf *)leaf), lo, hi, true))
        return false;
    if (leaf->prev != c->prev_leaf)
        return false;
    if (c->prev_leaf ? c->prev_leaf->next != leaf : t->head != leaf)
        return false;
    c->prev_leaf = leaf;
    c->entries += leaf->count;
    c->bytes += sizeof *leaf;
    for (unsigned i = 0; i < leaf->count; i++) {
        c->bytes += entry_size(leaf->ent[i]);
        if (t->points.cap && !kivis__ph_holds(&t->points, point_hash(t, leaf->ent[i]), leaf->ent[i]))
            return false;
    }
    return true;
}

static bool check_node(checker *c, const void *node, unsigned levels,
                       const entry *lo, const entry *hi)
{
    if (levels == 0)
        return check_leaf(c, node, lo, hi);
    const inner *in = node;
    unsigned min = in == c->t->root ? 2 : INNER_MIN;
    if (in->count < min || in->count > INNER_CAP)
        return false;
    if (!check_slots(inner_slots((inner *)in), lo, hi, false))
        return false;
    c->bytes += sizeof *in;
    for (unsigned i = 0; i < in->count; i++) {
        const entry *clo = i == 0 ? lo : in->sep[i - 1];
        const entry *chi = i + 1 == in->count ? hi : in->sep[i];
        if (!check_node(c, in->child[i], levels - 1, clo, chi))
            return false;
    }
    return true;
}

bool kivis__btree_check(const kivis_btree *t)
{
    checker c = {t, NULL, 0, sizeof *t};
    if (t->depth >= MAX_DEPTH || !check_node(&c, t->root, t->depth, NULL, NULL))
        return false;
    if (t->tail != c.prev_leaf || t->tail->next)
        return false;
    if (t->spare_leaves.n || t->spare_inners.n)
        return false;
    if (t->points.cap && t->points.count != t->count)
        return false;
    return c.entries == t->count && c.bytes == t->bytes;
}
