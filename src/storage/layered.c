/*
 * src/storage/layered.c - cache tiers in front of an authoritative storage
 * (kivis/layered.h).
 *
 * A layered transaction is a transaction on the authority plus bookkeeping:
 * the keys it wrote (their reads go to the authority's transaction, which
 * has read-your-writes) with their new values (for the cache update after
 * commit), and the copies of values it served from cache tiers.
 *
 * Where a get's time goes decides the shape of the read path:
 *  - tier reads: each cache tier is read in one read-only transaction of
 *    its own, begun by the transaction's first get that reaches the tier
 *    and kept to its end (not one per get);
 *  - hits: the value is copied into an arena of the transaction (a bump
 *    allocator whose first chunk is kept by the storage between
 *    transactions), since another transaction's commit or a fill may
 *    delete it from the tier while the caller still holds it;
 *  - fills: queued in the transaction (key and value copied into a second
 *    arena) and written in batches, one NOSYNC write transaction per tier
 *    for up to FILL_BATCH entries, at the transaction's end or when the
 *    queue is full, not one write transaction per get;
 *  - LRU bookkeeping: a hash probe and a relink per hit (lru.h).
 * No tier write transaction is held open: a fill or a commit's update is
 * one short transaction, so it never waits on one of the same tier.
 *
 * Coherence rests on two rules.  (1) A cache tier is changed only with
 * values the authority has committed: fills carry what a read returned,
 * and a commit's writes reach the caches only after the authority's commit
 * succeeded.  (2) A fill must not bring back a value older than one a
 * commit has since put in the cache.  Every commit that wrote, and every
 * kivis_layered_invalidate, bumps a generation counter; a transaction fills
 * (and adds negative entries) only while the generation is the one it
 * began in, so a reader whose authority snapshot predates a commit never
 * writes that snapshot's values over the commit's.
 *
 * Offline (layered.h): each begin first catches up with the authority's
 * feed (catch_up).  What the feed delivered is kept as owed until the
 * caches took it (settle), so nothing is lost when the authority goes
 * away between the feed and a mirror's read of the values.  A transaction
 * reads through the caches (online) only when nothing is owed; offline,
 * a read-only one has no authority transaction and the tiers answer.
 *
 * Bounded tiers keep LRU bookkeeping (lru.h) that covers at least every key
 * the tier holds: a key is tracked before it is written to the tier and
 * forgotten only after its deletion committed, so a failed tier write can
 * leave bookkeeping for a key the tier lacks (harmless: its bytes count
 * until evicted) but never a key the bookkeeping cannot find.  That is what
 * lets a commit invalidate a bounded tier by looking only at tracked keys.
 */
#include <kivis/layered.h>

#include "btree.h"
#include "lru.h"
#include "sketch.h"

#include <string.h>
#include <time.h>

typedef struct tier {
    kivis_storage *st;
    size_t max_bytes; /* 0: unbounded */
    unsigned flags;
    bool usable;      /* false after a failure that may have left it stale */
    kivis_lru *lru;   /* bounded tiers only */
    kivis_layered_tier_stats stats;
} tier;

/* A bump allocator: copies live until the whole arena is reset.  Chunks
 * never move, so a copy's address stays valid until then. */
typedef struct chunk {
    struct chunk *next;
    size_t used, cap;
    unsigned char bytes[];
} chunk;

typedef struct arena {
    chunk *head; /* the chunk being filled; older ones follow */
} arena;

typedef struct layered_storage {
    kivis_storage base; /* first: what the caller holds */
    kivis_allocator alloc;
    chunk *spare;       /* an arena chunk kept between transactions */
    struct pending_fill *spare_fills; /* a fill queue, likewise */
    tier *tiers;        /* fastest first; tiers[n - 1] is the authority */
    size_t n;
    size_t max_key;
    uint64_t generation; /* see rule (2) above */
    kivis_lru *negative; /* keys known missing; NULL: no negative cache */
    size_t negative_max;
    kivis_layered_negative_stats neg;
    /* The authority's change feed, followed at every begin; NULL when the
     * authority has none. */
    kivis_feed *feed;
    bool feed_down; /* its last read failed */
    kivis_layered_feed_stats fst;
    /* What the feed delivered that the caches have not taken yet (see
     * settle): these keys, or everything (owed_all: a resync, a key set
     * out of memory, a mirror that could not be copied). */
    kivis_btree *owed;
    bool owed_all;
    /* Reaching the authority (see catch_up). */
    bool offline;        /* the last attempt found it unreachable */
    uint64_t retry_ms;   /* between attempts while offline */
    uint64_t retry_at;   /* when the next attempt is due (now_ms) */
    uint64_t resyncs_at_outage; /* fst.resyncs when the outage began */
    kivis_layered_offline_stats ost;
    /* Admission (admit_window): how often keys were read lately; its
     * counters are NULL when admission is off. */
    kivis_sketch sketch;
    bool hashed; /* some bookkeeping is keyed by kivis__lru_hash */
} layered_storage;

/* A read-through fill waiting for its batch: key = value goes into every
 * usable cache tier faster than tier `from`. */
typedef struct pending_fill {
    size_t from;
    kivis_slice key, value; /* in the batch's arena */
    uint64_t hash;          /* kivis__lru_hash(key), if ls->hashed */
    /* For the tier being written (write_fills): whether it takes the fill,
     * and whether its bookkeeping counted an older, larger size. */
    bool take, resize;
} pending_fill;

typedef struct fill_batch {
    pending_fill *items; /* FILL_BATCH of them, allocated at the first fill */
    size_t count;
    arena bytes;
} fill_batch;

/* How a transaction reads, chosen at its begin (see set_mode). */
enum txn_mode {
    TXN_ONLINE,  /* the caches are current: read through them */
    TXN_OFFLINE, /* the authority is unreachable: the tiers answer alone */
    TXN_DIRECT   /* the caches may be behind the feed: read the authority */
};

typedef struct layered_txn {
    kivis_storage_txn base; /* first: what the caller holds */
    kivis_storage_txn *auth;   /* NULL in an offline transaction */
    enum txn_mode mode;
    kivis_storage_txn *mirror; /* read-only, on tiers[mirror_tier], for scans */
    size_t mirror_tier;
    uint64_t generation;       /* the storage's at begin */
    kivis_btree *puts;         /* key -> new value (write transactions) */
    kivis_btree *dels;         /* key -> "" for deleted keys */
    bool lost_track;           /* a write is in the authority but not here */
    arena copies;              /* values served from cache tiers */
    fill_batch fills;          /* read-through fills not yet written */
    kivis_storage_txn *reads[]; /* per cache tier: its read-only
                                 * transaction, or NULL until first used */
} layered_txn;

#define FILL_BATCH 256           /* fills queued before they are written */
#define CHUNK_BYTES (16u << 10)  /* an arena chunk, unless a value is larger */

static const kivis_storage_methods layered_methods, layered_methods_v4;
static const kivis_txn_methods layered_txn_methods, layered_txn_methods_ahead;

static const kivis_slice no_slice = {NULL, 0};

static layered_storage *as_layered(kivis_storage *st)
{
    if (!st || (st->methods != &layered_methods && st->methods != &layered_methods_v4))
        return NULL;
    return (layered_storage *)st;
}

static layered_storage *owner(const layered_txn *t)
{
    return (layered_storage *)t->base.storage;
}

static void *ls_malloc(const layered_storage *ls, size_t n)
{
    return ls->alloc.malloc(ls->alloc.ctx, n);
}

static void ls_free(const layered_storage *ls, void *p)
{
    ls->alloc.free(ls->alloc.ctx, p);
}

static tier *authority(layered_storage *ls)
{
    return &ls->tiers[ls->n - 1];
}

static bool is_mirror(const tier *tr)
{
    return tr->flags & KIVIS_TIER_MIRROR;
}

/* What an entry costs a bounded tier; SIZE_MAX (too big for any bound)
 * if the sum overflows. */
static size_t entry_size(kivis_slice key, kivis_slice value)
{
    return value.len > SIZE_MAX - key.len ? SIZE_MAX : key.len + value.len;
}

static int check_key(const layered_storage *ls, kivis_slice key)
{
    if (key.len == 0 || !key.data)
        return KIVIS_EINVAL;
    return key.len > ls->max_key ? KIVIS_EKEYSIZE : KIVIS_OK;
}

/* A commit of a short cache-tier write transaction, or its abort when an
 * earlier step failed.  Caches need no durability of their own: what they
 * lose in a crash is read through again. */
static int finish_write(kivis_storage_txn *w, int rc)
{
    if (rc != KIVIS_OK) {
        kivis_txn_abort(w);
        return rc;
    }
    return kivis_txn_commit(w, KIVIS_NOSYNC);
}

/* ---- arenas: copies of served values and of queued fills --------------- */

/* A chunk with room for len more bytes at the head of a, or NULL. */
static chunk *room_for(layered_storage *ls, arena *a, size_t len)
{
    if (a->head && a->head->cap - a->head->used >= len)
        return a->head;
    chunk *c = NULL;
    if (len <= CHUNK_BYTES && ls->spare) {
        c = ls->spare;
        ls->spare = NULL;
    } else {
        size_t cap = len > CHUNK_BYTES ? len : CHUNK_BYTES;
        if (cap > SIZE_MAX - sizeof *c)
            return NULL;
        c = ls_malloc(ls, sizeof *c + cap);
        if (!c)
            return NULL;
        c->cap = cap;
    }
    c->used = 0;
    c->next = a->head;
    a->head = c;
    return c;
}

/* Copy s into arena a: *s then names the copy.  KIVIS_ENOMEM leaves *s. */
static int arena_copy(layered_storage *ls, arena *a, kivis_slice *s)
{
    chunk *c = room_for(ls, a, s->len);
    if (!c)
        return KIVIS_ENOMEM;
    unsigned char *p = c->bytes + c->used;
    if (s->len)
        memcpy(p, s->data, s->len);
    c->used += s->len;
    s->data = p;
    return KIVIS_OK;
}

/* Free every copy; one standard chunk goes back to the storage for the
 * next transaction, so a transaction of a few gets allocates nothing. */
static void arena_reset(layered_storage *ls, arena *a)
{
    while (a->head) {
        chunk *next = a->head->next;
        if (!ls->spare && a->head->cap == CHUNK_BYTES)
            ls->spare = a->head;
        else
            ls_free(ls, a->head);
        a->head = next;
    }
}

static int keep_copy(layered_txn *t, kivis_slice *value)
{
    return arena_copy(owner(t), &t->copies, value);
}

static void drop_copies(layered_txn *t)
{
    arena_reset(owner(t), &t->copies);
}

/* ---- bounded tiers: eviction ------------------------------------------- */

/*
 * Delete in `w` the victims (kivis__lru_victim: the least recently used
 * keys, those used since the last walk given a second chance) until the
 * others fit in max_bytes, counting them in *evicted.  The bookkeeping
 * still tracks them until forget_evicted, after w committed (see the top
 * of the file); they are its oldest.
 */
static int evict_over_bound(tier *tr, kivis_storage_txn *w, size_t *evicted)
{
    size_t held = kivis__lru_bytes(tr->lru);
    const kivis_lru_node *nd = NULL;
    *evicted = 0;
    while (held > tr->max_bytes && (nd = kivis__lru_victim(tr->lru, nd))) {
        int rc = kivis_txn_del(w, kivis__lru_key(nd));
        if (rc != KIVIS_OK && rc != KIVIS_NOTFOUND)
            return rc;
        held -= kivis__lru_size(nd);
        ++*evicted;
    }
    return KIVIS_OK;
}

/* After the deletions of evict_over_bound committed: forget those keys,
 * the oldest ones. */
static void forget_evicted(tier *tr, size_t evicted)
{
    for (; evicted > 0; evicted--) {
        const kivis_lru_node *oldest = kivis__lru_oldest(tr->lru);
        kivis__lru_remove(tr->lru, kivis__lru_key(oldest));
        tr->stats.evictions++;
    }
}

/* ---- read-through: fills, queued and written in batches ----------------- */

/* Whether fill f goes into tier i: found in a slower tier, and not larger
 * than a bounded tier's whole bound (it could never fit). */
static bool fills_tier(const tier *tr, size_t i, const pending_fill *f)
{
    return f->from > i &&
           !(tr->lru && entry_size(f->key, f->value) > tr->max_bytes);
}

/* Whether the key hashed to h was read more often lately than the one
 * bounded tier tr would evict next (TinyLFU's comparison; ties keep what
 * is cached).  *next: that victim, found after `claimed`. */
static bool hotter_than_victim(layered_storage *ls, tier *tr, uint64_t h,
                               const kivis_lru_node *claimed,
                               const kivis_lru_node **next)
{
    *next = kivis__lru_victim(tr->lru, claimed);
    return !*next || kivis__sketch_estimate(&ls->sketch, h) >
                         kivis__sketch_estimate(&ls->sketch, kivis__lru_node_hash(*next));
}

/*
 * Decide which of the batch's fills tier i takes (each fill's take): those
 * found in a slower tier that could fit its bound at all and, with
 * admission on, where the fill would make a bounded tier evict, only those
 * hotter than the key they would displace.  The victims claimed so are
 * the ones evict_over_bound deletes after the puts: the oldest, in order.
 */
static void choose_fills(layered_storage *ls, tier *tr, size_t i, fill_batch *b)
{
    size_t held = tr->lru ? kivis__lru_bytes(tr->lru) : 0;
    const kivis_lru_node *claimed = NULL, *next;
    for (size_t k = 0; k < b->count; k++) {
        pending_fill *f = &b->items[k];
        f->take = fills_tier(tr, i, f);
        if (!f->take || !tr->lru)
            continue;
        size_t size = entry_size(f->key, f->value);
        if (ls->sketch.counters && held + size > tr->max_bytes) {
            if (!hotter_than_victim(ls, tr, f->hash, claimed, &next)) {
                f->take = false;
                tr->stats.unadmitted++;
                continue;
            }
            /* Claim victims until it fits (only the first was compared:
             * entries of one cache are mostly of a size). */
            while (next && held + size > tr->max_bytes) {
                held -= kivis__lru_size(next) < held ? kivis__lru_size(next) : held;
                claimed = next;
                next = held + size > tr->max_bytes ? kivis__lru_victim(tr->lru, claimed) : NULL;
            }
        }
        held += size;
    }
}

/* Track the fills tier tr takes before it can hold them (see the top of
 * the file), each with the larger of its old and new size in case the
 * write fails and an old value stays. */
static int track_fills(tier *tr, fill_batch *b)
{
    for (size_t k = 0; k < b->count; k++) {
        pending_fill *f = &b->items[k];
        size_t size = entry_size(f->key, f->value), old = 0;
        if (!f->take)
            continue;
        f->resize = kivis__lru_has(tr->lru, f->key, &old) && old > size;
        int rc = kivis__lru_add(tr->lru, f->key, f->resize ? old : size);
        if (rc != KIVIS_OK)
            return rc;
    }
    return KIVIS_OK;
}

/* After the batch committed: the keys it left in the tier cost their new
 * sizes (an update of a tracked key, which cannot fail). */
static void settle_fills(tier *tr, const fill_batch *b)
{
    for (size_t k = 0; k < b->count; k++) {
        const pending_fill *f = &b->items[k];
        if (f->take && f->resize && kivis__lru_has(tr->lru, f->key, NULL))
            kivis__lru_add(tr->lru, f->key, entry_size(f->key, f->value));
    }
}

/* Write the batch's fills for cache tier i in one transaction of its own:
 * the puts, then (bounded) the deletions of the least recently used keys
 * that no longer fit, which may be some of the batch's own when the batch
 * is larger than the bound.  Failures are counted and otherwise dropped:
 * the values were only copies. */
static void write_fills(layered_storage *ls, tier *tr, size_t i, fill_batch *b)
{
    size_t evicted = 0, written = 0;
    kivis_storage_txn *w;
    int rc = kivis_storage_begin(tr->st, 0, &w);
    if (rc != KIVIS_OK) {
        tr->stats.errors++;
        return;
    }
    choose_fills(ls, tr, i, b);
    if (tr->lru)
        rc = track_fills(tr, b);
    for (size_t k = 0; rc == KIVIS_OK && k < b->count; k++) {
        const pending_fill *f = &b->items[k];
        if (!f->take)
            continue;
        rc = kivis_txn_put(w, f->key, f->value);
        written++;
    }
    if (rc == KIVIS_OK && tr->lru)
        rc = evict_over_bound(tr, w, &evicted);
    rc = finish_write(w, rc);
    if (rc != KIVIS_OK) {
        tr->stats.errors++;
        return;
    }
    tr->stats.fills += written;
    if (tr->lru) {
        forget_evicted(tr, evicted);
        settle_fills(tr, b);
    }
}

/* Whether some cache tier faster than `from` takes fills (mirrors already
 * hold everything). */
static bool has_fill_target(const layered_storage *ls, size_t from)
{
    for (size_t i = 0; i < from; i++)
        if (ls->tiers[i].usable && !is_mirror(&ls->tiers[i]))
            return true;
    return false;
}

/* Write the queued fills into every usable cache tier, unless a commit or
 * invalidate since the transaction began may have put something newer
 * there (rule 2), then empty the queue. */
static void flush_fills(layered_txn *t)
{
    layered_storage *ls = owner(t);
    fill_batch *b = &t->fills;
    if (b->count && t->generation == ls->generation)
        for (size_t i = 0; i + 1 < ls->n; i++)
            if (ls->tiers[i].usable && !is_mirror(&ls->tiers[i]))
                write_fills(ls, &ls->tiers[i], i, b);
    b->count = 0;
    arena_reset(ls, &b->bytes);
}

/* A fill that could not be queued (out of memory) is dropped, and counted
 * as an error of each tier it would have gone to. */
static void drop_fill(layered_storage *ls, size_t from)
{
    for (size_t i = 0; i < from; i++)
        if (ls->tiers[i].usable && !is_mirror(&ls->tiers[i]))
            ls->tiers[i].stats.errors++;
}

static pending_fill *fill_slots(layered_storage *ls)
{
    pending_fill *items = ls->spare_fills;
    ls->spare_fills = NULL;
    return items ? items : ls_malloc(ls, FILL_BATCH * sizeof *items);
}

/* A value found in tier `from` will go into every faster usable cache
 * tier: queued here, written by flush_fills when the queue is full or the
 * transaction ends. */
static void queue_fill(layered_txn *t, size_t from, uint64_t hash,
                       kivis_slice key, kivis_slice value)
{
    layered_storage *ls = owner(t);
    fill_batch *b = &t->fills;
    if (t->generation != ls->generation || !has_fill_target(ls, from))
        return;
    if (!b->items && !(b->items = fill_slots(ls))) {
        drop_fill(ls, from);
        return;
    }
    pending_fill f = {from, key, value, hash, false, false};
    if (arena_copy(ls, &b->bytes, &f.key) != KIVIS_OK ||
        arena_copy(ls, &b->bytes, &f.value) != KIVIS_OK) {
        drop_fill(ls, from);
        return;
    }
    b->items[b->count++] = f;
    if (b->count == FILL_BATCH)
        flush_fills(t);
}

static void free_fills(layered_txn *t)
{
    layered_storage *ls = owner(t);
    arena_reset(ls, &t->fills.bytes);
    if (!ls->spare_fills)
        ls->spare_fills = t->fills.items;
    else
        ls_free(ls, t->fills.items);
    t->fills.items = NULL;
}

/* ---- the negative cache ------------------------------------------------ */

static bool negative_hit(layered_storage *ls, uint64_t hash, kivis_slice key)
{
    kivis_lru_node *n = ls->negative ? kivis__lru_find(ls->negative, hash, key) : NULL;
    if (!n)
        return false;
    kivis__lru_mark(n);
    ls->neg.hits++;
    return true;
}

/* Remember a key that a final answer (authority or mirror) said is missing. */
static void remember_missing(layered_txn *t, kivis_slice key)
{
    layered_storage *ls = owner(t);
    if (!ls->negative || t->generation != ls->generation ||
        kivis__lru_touch(ls->negative, key))
        return;
    if (kivis__lru_count(ls->negative) >= ls->negative_max) {
        const kivis_lru_node *victim = kivis__lru_victim(ls->negative, NULL);
        kivis__lru_remove(ls->negative, kivis__lru_key(victim));
        ls->neg.evictions++;
    }
    if (kivis__lru_add(ls->negative, key, 1) == KIVIS_OK)
        ls->neg.additions++;
}

/* ---- gets -------------------------------------------------------------- */

static void count_answer(tier *tr, int rc)
{
    tr->stats.reads++;
    if (rc == KIVIS_OK)
        tr->stats.hits++;
    else if (rc == KIVIS_NOTFOUND)
        tr->stats.misses++;
    else
        tr->stats.errors++;
}

/* Tier i's read-only transaction for t: begun by the first get that
 * reaches the tier, kept until t ends. */
static int tier_reader(layered_txn *t, size_t i, kivis_storage_txn **r)
{
    if (!t->reads[i]) {
        int rc = kivis_storage_begin(owner(t)->tiers[i].st, KIVIS_TXN_RDONLY,
                                     &t->reads[i]);
        if (rc != KIVIS_OK)
            return rc;
    }
    *r = t->reads[i];
    return KIVIS_OK;
}

static void end_tier_readers(layered_txn *t)
{
    for (size_t i = 0; i + 1 < owner(t)->n; i++)
        if (t->reads[i]) {
            kivis_txn_abort(t->reads[i]);
            t->reads[i] = NULL;
        }
}

/* Ask cache tier i, copying a value found (a memory tier's read
 * transaction reads committed state, so a fill or another transaction's
 * commit may free the tier's value while the caller holds it).  A bounded
 * tier holds no key its bookkeeping lacks, so such a key is a miss without
 * asking the tier; a hit marks the key used.  hash: kivis__lru_hash(key)
 * when ls->hashed.  KIVIS_OK, KIVIS_NOTFOUND, or an error, which the caller
 * treats as "ask the next tier". */
static int cache_get(layered_txn *t, size_t i, uint64_t hash, kivis_slice key,
                     kivis_slice *value)
{
    tier *tr = &owner(t)->tiers[i];
    kivis_lru_node *tracked = tr->lru ? kivis__lru_find(tr->lru, hash, key) : NULL;
    kivis_storage_txn *r;
    int rc = tr->lru && !tracked ? KIVIS_NOTFOUND : tier_reader(t, i, &r);
    if (rc == KIVIS_OK)
        rc = kivis_txn_get(r, key, value);
    if (rc == KIVIS_OK)
        rc = keep_copy(t, value);
    count_answer(tr, rc);
    if (rc == KIVIS_OK && tracked)
        kivis__lru_mark(tracked);
    if (rc != KIVIS_OK)
        *value = no_slice;
    return rc;
}

static int authority_get(layered_txn *t, kivis_slice key, kivis_slice *value)
{
    int rc = kivis_txn_get(t->auth, key, value);
    count_answer(authority(owner(t)), rc);
    return rc;
}

/* Keys this transaction wrote are read from the authority's transaction,
 * the only place that has the transaction's own writes. */
static bool wrote(const layered_txn *t, kivis_slice key)
{
    kivis_slice v;
    if (t->lost_track)
        return true;
    if (!t->puts)
        return false;
    return kivis__btree_get(t->puts, key, &v) == KIVIS_OK ||
           kivis__btree_get(t->dels, key, &v) == KIVIS_OK;
}

/* Whether a value read from tier `from` may fill the faster tiers: always
 * without admission; else when its key was read before in the sketch's
 * sample (`reads`, the sketch's estimate with this read, at least 2).
 * Where a fill would make a bounded tier evict, choose_fills asks more. */
static bool admitted(layered_storage *ls, size_t from, unsigned reads)
{
    if (!ls->sketch.counters || reads >= 2)
        return true;
    for (size_t i = 0; i < from; i++)
        ls->tiers[i].stats.unadmitted++;
    return false;
}

/* An answer from the tiers: counted when the transaction is offline, as
 * one the authority may since have changed. */
static int tier_answer(layered_txn *t, int rc)
{
    if (t->mode == TXN_OFFLINE)
        owner(t)->ost.answers++;
    return rc;
}

/* What a read no tier can answer gets offline. */
static int unavailable(layered_txn *t)
{
    owner(t)->ost.unavailable++;
    return KIVIS_EUNAVAILABLE;
}

/* Whether t's gets all go to the authority (see lt_get). */
static bool reads_authority(const layered_txn *t)
{
    return !(t->base.flags & KIVIS_TXN_RDONLY) || t->mode == TXN_DIRECT;
}

static int lt_get(kivis_storage_txn *txn, kivis_slice key, kivis_slice *value)
{
    layered_txn *t = (layered_txn *)txn;
    layered_storage *ls = owner(t);
    *value = no_slice;
    int rc = check_key(ls, key);
    if (rc != KIVIS_OK)
        return rc == KIVIS_EKEYSIZE ? KIVIS_NOTFOUND : rc;
    /* A write transaction reads the authority: its conflict checks
     * (PostgreSQL's SERIALIZABLE, etcd's compares) must see every read, or
     * a read-modify-write over a cached value would lose another client's
     * update (the feed delivers it only at the next begin).  A read-only
     * one has no writes of its own to read back. */
    if (reads_authority(t))
        return authority_get(t, key, value);
    uint64_t hash = ls->hashed ? kivis__lru_hash(key) : 0;
    if (negative_hit(ls, hash, key))
        return tier_answer(t, KIVIS_NOTFOUND);
    /* TinyLFU counts every read, hits too: a cached key's count is what a
     * new key must beat to displace it. */
    unsigned reads = ls->sketch.counters ? kivis__sketch_record(&ls->sketch, hash) : 0;
    for (size_t i = 0; i + 1 < ls->n; i++) {
        tier *tr = &ls->tiers[i];
        if (!tr->usable)
            continue;
        rc = cache_get(t, i, hash, key, value);
        if (rc == KIVIS_OK) {
            if (i > 0 && admitted(ls, i, reads))
                queue_fill(t, i, hash, key, *value);
            return tier_answer(t, KIVIS_OK);
        }
        if (rc == KIVIS_NOTFOUND && is_mirror(tr)) {
            remember_missing(t, key);
            return tier_answer(t, KIVIS_NOTFOUND);
        }
    }
    if (t->mode == TXN_OFFLINE)
        return unavailable(t);
    rc = authority_get(t, key, value);
    if (rc == KIVIS_OK && admitted(ls, ls->n - 1, reads))
        queue_fill(t, ls->n - 1, hash, key, *value);
    else if (rc == KIVIS_NOTFOUND)
        remember_missing(t, key);
    return rc;
}

/* ---- writes ------------------------------------------------------------ */

/* Validation shared by put and del; on success the copies served so far
 * die, as storage.h lets every borrowed result die at the next write. */
static int check_write(layered_txn *t, kivis_slice key)
{
    if (t->base.flags & KIVIS_TXN_RDONLY)
        return KIVIS_EINVAL;
    int rc = check_key(owner(t), key);
    if (rc == KIVIS_OK)
        drop_copies(t);
    return rc;
}

/* Record a write the authority has taken.  Each step that can fail comes
 * first, so a failure leaves the key's old record; then the write is
 * untracked and lost_track makes the transaction conservative instead
 * (every read to the authority, every cache emptied at commit). */
static void track_put(layered_txn *t, kivis_slice key, kivis_slice value)
{
    if (kivis__btree_put(t->puts, key, value) != KIVIS_OK)
        t->lost_track = true;
    kivis__btree_del(t->dels, key);
}

static void track_del(layered_txn *t, kivis_slice key)
{
    if (kivis__btree_put(t->dels, key, no_slice) != KIVIS_OK)
        t->lost_track = true;
    kivis__btree_del(t->puts, key);
}

static int lt_put(kivis_storage_txn *txn, kivis_slice key, kivis_slice value)
{
    layered_txn *t = (layered_txn *)txn;
    int rc = check_write(t, key);
    if (rc == KIVIS_OK)
        rc = kivis_txn_put(t->auth, key, value);
    if (rc == KIVIS_OK)
        track_put(t, key, value);
    return rc;
}

/* del, or discard (a blind delete where the authority offers one): either
 * way the key leaves the caches at commit. */
static int delete_key(kivis_storage_txn *txn, kivis_slice key, bool blind)
{
    layered_txn *t = (layered_txn *)txn;
    int rc = check_write(t, key);
    if (rc == KIVIS_OK)
        rc = blind ? kivis_txn_discard(t->auth, key) : kivis_txn_del(t->auth, key);
    if (rc == KIVIS_OK)
        track_del(t, key);
    return rc;
}

static int lt_del(kivis_storage_txn *txn, kivis_slice key)
{
    return delete_key(txn, key, false);
}

static int lt_discard(kivis_storage_txn *txn, kivis_slice key)
{
    return delete_key(txn, key, true);
}

/* Whether a get of `key` will be answered without the authority, as far
 * as the bookkeeping knows at no cost: a usable mirror answers every key,
 * a bounded tier tracks what it holds, the negative cache what is
 * missing.  An unbounded plain cache is not known: the authority is asked
 * ahead anyway. */
static bool answered_above(const layered_txn *t, kivis_slice key)
{
    const layered_storage *ls = owner(t);
    if (wrote(t, key))
        return false;
    if (ls->negative && kivis__lru_has(ls->negative, key, NULL))
        return true;
    for (size_t i = 0; i + 1 < ls->n; i++) {
        const tier *tr = &ls->tiers[i];
        if (tr->usable && (is_mirror(tr) ||
                           (tr->lru && kivis__lru_has(tr->lru, key, NULL))))
            return true;
    }
    return false;
}

/* Read ahead, from the authority, the keys no cache tier will answer
 * (every key, in a transaction whose gets all go to the authority). */
static int lt_prefetch(kivis_storage_txn *txn, const kivis_slice *keys, size_t n)
{
    layered_txn *t = (layered_txn *)txn;
    if (reads_authority(t))
        return kivis_txn_prefetch(t->auth, keys, n);
    kivis_slice *ask = n <= SIZE_MAX / sizeof *ask
                           ? ls_malloc(owner(t), n * sizeof *ask) : NULL;
    if (!ask)
        return KIVIS_ENOMEM;
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (!answered_above(t, keys[i]))
            ask[m++] = keys[i];
    int rc = kivis_txn_prefetch(t->auth, ask, m);
    ls_free(owner(t), ask);
    return rc;
}

/* ---- cursors ----------------------------------------------------------- */

/* The fastest usable mirror, or n - 1 (the authority) if there is none. */
static size_t scan_tier(const layered_storage *ls)
{
    for (size_t i = 0; i + 1 < ls->n; i++)
        if (ls->tiers[i].usable && is_mirror(&ls->tiers[i]))
            return i;
    return ls->n - 1;
}

/* The transaction a read-only layered transaction scans in: a read-only
 * transaction of the fastest usable mirror, begun by the first cursor and
 * kept to the end, or else the authority's (NULL offline: none). */
static kivis_storage_txn *scan_txn(layered_txn *t)
{
    layered_storage *ls = owner(t);
    if (!(t->base.flags & KIVIS_TXN_RDONLY))
        return t->auth; /* only it sees this transaction's writes */
    if (t->mode == TXN_DIRECT)
        return t->auth; /* a mirror may be behind the feed */
    if (t->mirror) /* kept to the end: its cursors may still be open */
        return ls->tiers[t->mirror_tier].usable ? t->mirror : t->auth;
    size_t i = scan_tier(ls);
    if (i == ls->n - 1 || kivis_storage_begin(ls->tiers[i].st, KIVIS_TXN_RDONLY,
                                              &t->mirror) != KIVIS_OK)
        return t->auth;
    t->mirror_tier = i;
    return t->mirror;
}

/* The cursor handed out is the scanned tier's own: nothing to add to it.
 * A following cursor's hint goes to that tier too: on the authority, the
 * rows it reads with each page answer the gets that miss the caches (a
 * tier without cursor_follow opens a plain cursor). */
static int lt_cursor_follow(kivis_storage_txn *txn, kivis_slice lo, kivis_slice hi,
                            kivis_slice prefix, size_t tail,
                            kivis_storage_cursor **out)
{
    layered_txn *t = (layered_txn *)txn;
    layered_storage *ls = owner(t);
    kivis_storage_txn *s = scan_txn(t);
    if (!s) {
        *out = NULL;
        return unavailable(t);
    }
    int rc = kivis_txn_cursor_follow(s, lo, hi, prefix, tail, out);
    if (rc != KIVIS_OK)
        return rc;
    ls->tiers[s == t->auth ? ls->n - 1 : t->mirror_tier].stats.scans++;
    return s == t->auth ? KIVIS_OK : tier_answer(t, KIVIS_OK);
}

static int lt_cursor_open(kivis_storage_txn *txn, kivis_slice lo,
                          kivis_slice hi, kivis_storage_cursor **out)
{
    return lt_cursor_follow(txn, lo, hi, kivis_slice_make(NULL, 0), 0, out);
}

/* ---- write-through ----------------------------------------------------- */

/* One short write transaction carrying (part of) a commit into a tier. */
typedef struct tier_write {
    tier *tr;
    kivis_storage_txn *w;
    uint64_t written, removed;
} tier_write;

/* value NULL: the key was deleted. */
typedef int (*written_fn)(tier_write *tw, kivis_slice key,
                          const kivis_slice *value);

static int each_in(kivis_btree *set, bool deleted, written_fn fn,
                   tier_write *tw)
{
    kivis_bt_iter it;
    for (int rc = kivis__btree_first(set, &it); rc == KIVIS_OK;
         rc = kivis__btree_next(&it)) {
        kivis_slice v = kivis__bt_iter_value(&it);
        rc = fn(tw, kivis__bt_iter_key(&it), deleted ? NULL : &v);
        if (rc != KIVIS_OK)
            return rc;
    }
    return KIVIS_OK;
}

static int each_written(const layered_txn *t, written_fn fn, tier_write *tw)
{
    int rc = each_in(t->dels, true, fn, tw);
    return rc == KIVIS_OK ? each_in(t->puts, false, fn, tw) : rc;
}

static int del_counted(tier_write *tw, kivis_slice key)
{
    int rc = kivis_txn_del(tw->w, key);
    if (rc == KIVIS_OK)
        tw->removed++;
    return rc == KIVIS_NOTFOUND ? KIVIS_OK : rc;
}

/* Write-update: the tier takes the new value or the deletion. */
static int apply_one(tier_write *tw, kivis_slice key, const kivis_slice *value)
{
    if (!value)
        return del_counted(tw, key);
    tw->written++;
    return kivis_txn_put(tw->w, key, *value);
}

/* Write-invalidate: the key leaves the tier (a bounded tier can hold only
 * keys its bookkeeping tracks, so only those are looked for). */
static int drop_one(tier_write *tw, kivis_slice key, const kivis_slice *value)
{
    (void)value;
    if (tw->tr->lru && !kivis__lru_has(tw->tr->lru, key, NULL))
        return KIVIS_OK;
    return del_counted(tw, key);
}

static int forget_one(tier_write *tw, kivis_slice key, const kivis_slice *value)
{
    (void)value;
    kivis__lru_remove(tw->tr->lru, key);
    return KIVIS_OK;
}

/* Run fn over the transaction's writes in one write transaction of tr;
 * the counters move only if it commits. */
static int write_tier(tier *tr, const layered_txn *t, written_fn fn)
{
    tier_write tw = {tr, NULL, 0, 0};
    int rc = kivis_storage_begin(tr->st, 0, &tw.w);
    if (rc != KIVIS_OK)
        return rc;
    rc = finish_write(tw.w, each_written(t, fn, &tw));
    if (rc != KIVIS_OK)
        return rc;
    tr->stats.updates += tw.written;
    tr->stats.invalidations += tw.removed;
    if (tr->lru)
        each_written(t, forget_one, &tw);
    return KIVIS_OK;
}

/*
 * Bring cache tier tr in line with a committed transaction.  Unbounded
 * tiers take the new values; bounded ones drop the written keys (a bulk
 * write must not flush the hot set, and a drop cannot need an eviction).
 * If that fails, the written keys are dropped instead; if that fails too,
 * or a mirror (which a drop would make incomplete) failed, the tier may
 * hold old values and is taken out of service.
 */
static void update_tier(tier *tr, const layered_txn *t)
{
    int rc = write_tier(tr, t, tr->lru ? drop_one : apply_one);
    if (rc == KIVIS_OK)
        return;
    tr->stats.errors++;
    if (!is_mirror(tr) && write_tier(tr, t, drop_one) == KIVIS_OK)
        return;
    tr->usable = false;
}

/* The keys of `set` are not missing any more (or may not be). */
static void forget_negatives_in(layered_storage *ls, kivis_btree *set)
{
    kivis_bt_iter it;
    if (!ls->negative)
        return;
    for (int rc = kivis__btree_first(set, &it); rc == KIVIS_OK;
         rc = kivis__btree_next(&it)) {
        kivis_slice key = kivis__bt_iter_key(&it);
        if (kivis__lru_has(ls->negative, key, NULL)) {
            kivis__lru_remove(ls->negative, key);
            ls->neg.invalidations++;
        }
    }
}

static void forget_negatives(layered_storage *ls, const layered_txn *t)
{
    forget_negatives_in(ls, t->puts);
}

static int invalidate_all(layered_storage *ls);

/* After the authority committed t's writes. */
static void write_through(layered_storage *ls, const layered_txn *t)
{
    ls->generation++;
    if (t->lost_track) {
        invalidate_all(ls);
        return;
    }
    forget_negatives(ls, t);
    for (size_t i = 0; i + 1 < ls->n; i++)
        if (ls->tiers[i].usable)
            update_tier(&ls->tiers[i], t);
}

/* ---- transactions ------------------------------------------------------ */

static bool has_writes(const layered_txn *t)
{
    return t->lost_track ||
           (t->puts && kivis__btree_count(t->puts) + kivis__btree_count(t->dels) > 0);
}

static void txn_free(layered_txn *t)
{
    layered_storage *ls = owner(t);
    if (t->mirror)
        kivis_txn_abort(t->mirror);
    end_tier_readers(t);
    free_fills(t);
    drop_copies(t);
    kivis__btree_free(t->puts);
    kivis__btree_free(t->dels);
    ls_free(ls, t);
}

/* The authority commits first; the caches hear of it only if it did. */
static int lt_commit(kivis_storage_txn *txn, int durability)
{
    layered_txn *t = (layered_txn *)txn;
    flush_fills(t); /* before this commit makes them stale (rule 2) */
    end_tier_readers(t);
    int rc = t->auth ? kivis_txn_commit(t->auth, durability) : KIVIS_OK;
    if (rc == KIVIS_OK && has_writes(t))
        write_through(owner(t), t);
    txn_free(t);
    return rc;
}

static void lt_abort(kivis_storage_txn *txn)
{
    layered_txn *t = (layered_txn *)txn;
    flush_fills(t);
    if (t->auth)
        kivis_txn_abort(t->auth);
    txn_free(t);
}

static const kivis_txn_methods layered_txn_methods = {
    lt_get, lt_put, lt_del, lt_cursor_open, lt_commit, lt_abort,
    lt_discard, NULL, lt_cursor_follow,
};

/* For an authority that reads ahead (kivis_txn_prefetches). */
static const kivis_txn_methods layered_txn_methods_ahead = {
    lt_get, lt_put, lt_del, lt_cursor_open, lt_commit, lt_abort,
    lt_discard, lt_prefetch, lt_cursor_follow,
};

static int new_write_sets(layered_txn *t)
{
    const kivis_allocator *a = &owner(t)->alloc;
    if (kivis__btree_new(a, &t->puts) != KIVIS_OK ||
        kivis__btree_new(a, &t->dels) != KIVIS_OK)
        return KIVIS_ENOMEM;
    return KIVIS_OK;
}

/* ---- following the authority's feed ------------------------------------ */

static bool has_mirror(layered_storage *ls)
{
    for (size_t i = 0; i + 1 < ls->n; i++)
        if (ls->tiers[i].usable && is_mirror(&ls->tiers[i]))
            return true;
    return false;
}

/* A key the caches must take from the feed (settle does it). */
static void owe(layered_storage *ls, kivis_slice key)
{
    if (!ls->owed_all && kivis__btree_put(ls->owed, key, no_slice) != KIVIS_OK)
        ls->owed_all = true; /* cannot say which: everything */
}

/* Everything is read again from the authority (invalidate_all). */
static void forget_owed(layered_storage *ls)
{
    ls->owed_all = false;
    if (ls->owed)
        kivis__btree_clear(ls->owed);
}

/* Read every change the feed has, without waiting, into what is owed.
 * @return KIVIS_OK (drained to its end) or the feed's error; the feed
 * goes on from its last change at the next call (storage.h), so an outage
 * loses nothing unless the log was trimmed meanwhile (a resync). */
static int drain_feed(layered_storage *ls)
{
    kivis_change c;
    int rc;
    while ((rc = kivis_feed_next(ls->feed, 0, &c)) == KIVIS_OK) {
        if (c.kind == KIVIS_CHANGE_RESYNC) {
            ls->fst.resyncs++;
            ls->owed_all = true;
        } else {
            ls->fst.changes++;
            owe(ls, c.key);
        }
    }
    if (rc == KIVIS_NOTFOUND) {
        ls->feed_down = false;
        return KIVIS_OK;
    }
    if (!ls->feed_down) {
        ls->feed_down = true;
        ls->fst.outages++;
    }
    return rc;
}

/* Read the values of keys[0..n) in r into fed->puts (a key not found
 * stays a deletion), read ahead first: over a remote authority that is one
 * request for the batch, not a round trip a key (a failed read-ahead only
 * loses the hint). */
static int read_fed_batch(kivis_storage_txn *r, layered_txn *fed,
                          const kivis_slice *keys, size_t n)
{
    (void)kivis_txn_prefetch(r, keys, n);
    int rc = KIVIS_OK;
    for (size_t i = 0; i < n && rc == KIVIS_OK; i++) {
        kivis_slice v;
        rc = kivis_txn_get(r, keys[i], &v);
        if (rc == KIVIS_OK)
            rc = kivis__btree_put(fed->puts, keys[i], v);
        else if (rc == KIVIS_NOTFOUND)
            rc = KIVIS_OK;
    }
    return rc;
}

/* A mirror must stay complete: the fed keys' values are read from the
 * authority into fed->puts, FED_BATCH keys at a time, and a key found
 * there is no deletion. */
static int read_fed_values(layered_storage *ls, layered_txn *fed)
{
    enum { FED_BATCH = 1024 };
    kivis_slice *keys = ls_malloc(ls, FED_BATCH * sizeof *keys);
    kivis_storage_txn *r = NULL;
    kivis_bt_iter it;
    size_t n = 0;
    int rc = keys ? kivis_storage_begin(authority(ls)->st, KIVIS_TXN_RDONLY, &r)
                  : KIVIS_ENOMEM;
    for (int more = rc == KIVIS_OK ? kivis__btree_first(fed->dels, &it) : KIVIS_NOTFOUND;
         more == KIVIS_OK && rc == KIVIS_OK; more = kivis__btree_next(&it)) {
        keys[n++] = kivis__bt_iter_key(&it);
        if (n == FED_BATCH) {
            rc = read_fed_batch(r, fed, keys, n);
            n = 0;
        }
    }
    if (rc == KIVIS_OK)
        rc = read_fed_batch(r, fed, keys, n);
    if (r)
        kivis_txn_abort(r);
    ls_free(ls, keys);
    for (int more = rc == KIVIS_OK ? kivis__btree_first(fed->puts, &it) : KIVIS_NOTFOUND;
         more == KIVIS_OK; more = kivis__btree_next(&it))
        kivis__btree_del(fed->dels, kivis__bt_iter_key(&it));
    return rc;
}

/*
 * Give the caches what is owed, as a commit of our own would (write_through):
 * the fed keys leave every cache tier and the negative cache, and a mirror
 * takes their values instead; a resync empties the caches and copies the
 * authority into each mirror again.  When the authority cannot be read for
 * a mirror's values, nothing is applied and it stays owed.
 * @return KIVIS_OK (nothing owed any more), else what kept it owed.
 */
static int settle(layered_storage *ls)
{
    if (ls->owed_all) {
        invalidate_all(ls); /* a mirror it cannot copy stays owed */
        return ls->owed_all ? KIVIS_EUNAVAILABLE : KIVIS_OK;
    }
    if (!kivis__btree_count(ls->owed))
        return KIVIS_OK;
    layered_txn fed;
    memset(&fed, 0, sizeof fed);
    fed.base.storage = &ls->base;
    fed.dels = ls->owed;
    int rc = kivis__btree_new(&ls->alloc, &fed.puts);
    if (rc == KIVIS_OK && has_mirror(ls))
        rc = read_fed_values(ls, &fed);
    else if (rc == KIVIS_OK) /* another client may have added them */
        forget_negatives_in(ls, fed.dels);
    if (rc == KIVIS_OK) {
        write_through(ls, &fed);
        kivis__btree_clear(ls->owed);
    } else if (rc != KIVIS_EUNAVAILABLE) {
        ls->owed_all = true; /* no way to say which values: copy them all */
        rc = settle(ls);
    }
    kivis__btree_free(fed.puts);
    return rc;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Bring the caches up to date with the authority before a transaction
 * reads them: drain the feed and settle what it owes.  While offline this
 * is tried at most every retry_ms.  @return KIVIS_OK (current: the feed,
 * if any, is drained and nothing is owed); KIVIS_EUNAVAILABLE (the
 * authority is unreachable, or was at the last try less than retry_ms
 * ago); another error of the feed (the caches may be behind it). */
static int catch_up(layered_storage *ls)
{
    if (ls->offline) {
        if (now_ms() < ls->retry_at)
            return KIVIS_EUNAVAILABLE;
        ls->ost.retries++;
    }
    if (!ls->feed)
        return KIVIS_OK;
    int rc = drain_feed(ls);
    /* After a failure what was drained stays owed: applying it may need
     * the authority (a mirror's values), and offline reads take the tiers
     * as they were anyway. */
    return rc != KIVIS_OK ? rc : settle(ls);
}

static void now_unreachable(layered_storage *ls)
{
    uint64_t now = now_ms();
    if (!ls->offline) {
        ls->offline = true;
        ls->ost.outages++;
        ls->resyncs_at_outage = ls->fst.resyncs;
    }
    if (now >= ls->retry_at) /* a try failed, not one skipped */
        ls->retry_at = now + ls->retry_ms;
}

static void now_reachable(layered_storage *ls)
{
    if (!ls->offline)
        return;
    ls->offline = false;
    ls->retry_at = 0;
    ls->ost.recoveries++;
    if (ls->feed && ls->fst.resyncs == ls->resyncs_at_outage)
        ls->ost.resumed++;
}

/* The transaction's mode, from `reach` (catch_up's answer, or the
 * authority's begin failing with KIVIS_EUNAVAILABLE).  Offline, a
 * read-only transaction is answered by the tiers and a read-write one is
 * refused: it could only fail at commit. */
static int set_mode(layered_txn *t, int reach)
{
    layered_storage *ls = owner(t);
    if (reach != KIVIS_EUNAVAILABLE) {
        now_reachable(ls);
        t->mode = reach == KIVIS_OK ? TXN_ONLINE : TXN_DIRECT;
        return KIVIS_OK;
    }
    now_unreachable(ls);
    if (!(t->base.flags & KIVIS_TXN_RDONLY)) {
        ls->ost.refused_writes++;
        return KIVIS_EUNAVAILABLE;
    }
    t->mode = TXN_OFFLINE;
    ls->ost.transactions++;
    return KIVIS_OK;
}

static int ls_begin(kivis_storage *st, unsigned flags, kivis_storage_txn **out)
{
    layered_storage *ls = (layered_storage *)st;
    *out = NULL;
    if (flags & ~KIVIS_TXN_RDONLY)
        return KIVIS_EINVAL;
    int reach = catch_up(ls);
    size_t size = sizeof(layered_txn) + (ls->n - 1) * sizeof(kivis_storage_txn *);
    layered_txn *t = ls_malloc(ls, size);
    if (!t)
        return KIVIS_ENOMEM;
    memset(t, 0, size);
    t->base.methods = &layered_txn_methods;
    t->base.storage = st;
    t->base.flags = flags;
    t->generation = ls->generation;
    int rc = flags & KIVIS_TXN_RDONLY ? KIVIS_OK : new_write_sets(t);
    if (rc == KIVIS_OK && reach != KIVIS_EUNAVAILABLE) {
        rc = kivis_storage_begin(authority(ls)->st, flags, &t->auth);
        if (rc == KIVIS_EUNAVAILABLE)
            reach = rc;
    }
    if (rc == KIVIS_OK || rc == KIVIS_EUNAVAILABLE)
        rc = set_mode(t, reach);
    if (rc != KIVIS_OK) {
        txn_free(t);
        return rc;
    }
    if (t->auth && kivis_txn_prefetches(t->auth))
        t->base.methods = &layered_txn_methods_ahead;
    *out = &t->base;
    return KIVIS_OK;
}

/* ---- emptying and refilling tiers -------------------------------------- */

/* Delete every entry in w.  Keys are copied out of the cursor first: a
 * cursor's key is only borrowed until the next write. */
static int delete_all(layered_storage *ls, kivis_storage_txn *w,
                      uint64_t *removed)
{
    size_t cap = kivis_storage_max_key(w->storage);
    unsigned char *buf = ls_malloc(ls, cap);
    if (!buf)
        return KIVIS_ENOMEM;
    kivis_storage_cursor *c = NULL;
    kivis_slice k, v;
    int rc = kivis_txn_cursor(w, no_slice, no_slice, &c);
    while (rc == KIVIS_OK && (rc = kivis_cursor_get(c, KIVIS_NEXT, &k, &v)) == KIVIS_OK) {
        if (k.len > cap) {
            rc = KIVIS_ECORRUPT; /* a key the tier says it cannot hold */
            break;
        }
        memcpy(buf, k.data, k.len);
        rc = kivis_txn_del(w, kivis_slice_make(buf, k.len));
        if (rc == KIVIS_OK)
            ++*removed;
    }
    kivis_cursor_close(c);
    ls_free(ls, buf);
    return rc == KIVIS_NOTFOUND ? KIVIS_OK : rc;
}

/* Put every entry of the authority's committed state into w. */
static int copy_authority(layered_storage *ls, kivis_storage_txn *w,
                          uint64_t *copied)
{
    kivis_storage_txn *r;
    kivis_storage_cursor *c = NULL;
    kivis_slice k, v;
    int rc = kivis_storage_begin(authority(ls)->st, KIVIS_TXN_RDONLY, &r);
    if (rc != KIVIS_OK)
        return rc;
    rc = kivis_txn_cursor(r, no_slice, no_slice, &c);
    while (rc == KIVIS_OK && (rc = kivis_cursor_get(c, KIVIS_NEXT, &k, &v)) == KIVIS_OK) {
        rc = kivis_txn_put(w, k, v);
        if (rc == KIVIS_OK)
            ++*copied;
    }
    kivis_cursor_close(c);
    kivis_txn_abort(r);
    return rc == KIVIS_NOTFOUND ? KIVIS_OK : rc;
}

/* Empty cache tier tr, or make mirror tr a copy of the authority again, in
 * one transaction; usable again only if that committed.  A mirror that
 * could not be copied because the authority is unreachable keeps what it
 * held (its transaction was aborted) for offline reads, when a feed will
 * tell us the authority is back: the copy is then owed (settle). */
static int refill_tier(layered_storage *ls, tier *tr)
{
    uint64_t removed = 0, copied = 0;
    kivis_storage_txn *w;
    int rc = kivis_storage_begin(tr->st, 0, &w);
    if (rc == KIVIS_OK) {
        rc = delete_all(ls, w, &removed);
        if (rc == KIVIS_OK && is_mirror(tr))
            rc = copy_authority(ls, w, &copied);
        rc = finish_write(w, rc);
    }
    if (rc != KIVIS_OK) {
        tr->stats.errors++;
        if (rc == KIVIS_EUNAVAILABLE && is_mirror(tr) && ls->feed)
            ls->owed_all = true;
        else
            tr->usable = false;
        return rc;
    }
    tr->stats.invalidations += removed;
    tr->stats.updates += copied;
    if (tr->lru)
        kivis__lru_clear(tr->lru);
    tr->usable = true;
    return KIVIS_OK;
}

static void clear_negatives(layered_storage *ls)
{
    if (!ls->negative)
        return;
    ls->neg.invalidations += kivis__lru_count(ls->negative);
    kivis__lru_clear(ls->negative);
}

static int invalidate_all(layered_storage *ls)
{
    int first = KIVIS_OK;
    ls->generation++; /* open transactions may read older snapshots */
    clear_negatives(ls);
    forget_owed(ls); /* everything is read again */
    for (size_t i = 0; i + 1 < ls->n; i++) {
        int rc = refill_tier(ls, &ls->tiers[i]);
        if (first == KIVIS_OK)
            first = rc;
    }
    return first;
}

/* ---- the storage ------------------------------------------------------- */

static size_t ls_max_key_size(kivis_storage *st)
{
    return ((layered_storage *)st)->max_key;
}

/* Free the layered storage; close_tiers: also the tier storages it owns. */
static void layered_free(layered_storage *ls, bool close_tiers)
{
    kivis_feed_close(ls->feed); /* before the authority it reads */
    kivis__btree_free(ls->owed);
    for (size_t i = 0; ls->tiers && i < ls->n; i++) {
        kivis__lru_free(ls->tiers[i].lru);
        if (close_tiers)
            kivis_storage_close(ls->tiers[i].st);
    }
    kivis__lru_free(ls->negative);
    kivis__sketch_free(&ls->sketch, &ls->alloc);
    ls_free(ls, ls->spare);
    ls_free(ls, ls->spare_fills);
    ls_free(ls, ls->tiers);
    ls_free(ls, ls);
}

static void ls_close(kivis_storage *st)
{
    layered_free((layered_storage *)st, true);
}

static const kivis_storage_methods layered_methods = {
    KIVIS_STORAGE_VERSION, "layered", ls_close, ls_max_key_size, ls_begin,
};

/* The same, for a stack with a tier older than version 5: the cursors a
 * layered transaction hands out are a tier's own (lt_cursor_follow), and
 * the stack's version is what kivis_cursor_pages reads to decide whether
 * a cursor's table has a page member, which an older tier's has not. */
static const kivis_storage_methods layered_methods_v4 = {
    4, "layered", ls_close, ls_max_key_size, ls_begin,
};

/* The oldest interface version among the tiers. */
static int oldest_tier_version(const kivis_layered_tier *tiers, size_t n)
{
    int v = KIVIS_STORAGE_VERSION;
    for (size_t i = 0; i < n; i++)
        if (tiers[i].st->methods->version < v)
            v = tiers[i].st->methods->version;
    return v;
}

static bool repeated(const kivis_layered_tier *tiers, size_t i)
{
    for (size_t j = 0; j < i; j++)
        if (tiers[j].st == tiers[i].st)
            return true;
    return false;
}

static int check_tiers(const kivis_layered_tier *tiers, size_t n)
{
    if (!tiers || n == 0)
        return KIVIS_EINVAL;
    for (size_t i = 0; i < n; i++) {
        const kivis_layered_tier *t = &tiers[i];
        int rc = kivis_storage_check(t->st);
        if (rc != KIVIS_OK)
            return rc;
        bool last = i == n - 1, mirror = t->flags & KIVIS_TIER_MIRROR;
        if (repeated(tiers, i) || (t->flags & ~KIVIS_TIER_MIRROR) ||
            (last && (t->flags || t->max_bytes)) || (mirror && t->max_bytes))
            return KIVIS_EINVAL;
    }
    return KIVIS_OK;
}

/* Track what a bounded tier already holds (a persistent cache), in key
 * order as a stand-in for recency, and trim it to its bound. */
static int load_bounded(tier *tr)
{
    kivis_storage_txn *r, *w;
    kivis_storage_cursor *c = NULL;
    kivis_slice k, v;
    size_t evicted = 0;
    int rc = kivis_storage_begin(tr->st, KIVIS_TXN_RDONLY, &r);
    if (rc != KIVIS_OK)
        return rc;
    rc = kivis_txn_cursor(r, no_slice, no_slice, &c);
    while (rc == KIVIS_OK && (rc = kivis_cursor_get(c, KIVIS_NEXT, &k, &v)) == KIVIS_OK)
        rc = kivis__lru_add(tr->lru, k, entry_size(k, v));
    kivis_cursor_close(c);
    kivis_txn_abort(r);
    if (rc != KIVIS_NOTFOUND)
        return rc;
    if (kivis__lru_bytes(tr->lru) <= tr->max_bytes)
        return KIVIS_OK;
    rc = kivis_storage_begin(tr->st, 0, &w);
    if (rc != KIVIS_OK)
        return rc;
    rc = finish_write(w, evict_over_bound(tr, w, &evicted));
    if (rc == KIVIS_OK)
        forget_evicted(tr, evicted);
    return rc;
}

static int init_tiers(layered_storage *ls, const kivis_layered_tier *tiers)
{
    ls->max_key = SIZE_MAX;
    for (size_t i = 0; i < ls->n; i++) {
        tier *tr = &ls->tiers[i];
        tr->st = tiers[i].st;
        tr->max_bytes = tiers[i].max_bytes;
        tr->flags = tiers[i].flags;
        tr->usable = true;
        size_t mk = kivis_storage_max_key(tr->st);
        if (mk < ls->max_key)
            ls->max_key = mk;
        if (!tr->max_bytes)
            continue;
        int rc = kivis__lru_new(&ls->alloc, &tr->lru);
        if (rc == KIVIS_OK)
            rc = load_bounded(tr);
        if (rc != KIVIS_OK)
            return rc;
    }
    return KIVIS_OK;
}

/* Admission: a sketch whose sample is admit_window reads (sketch.h). */
static int init_admission(layered_storage *ls, const kivis_layered_options *opts)
{
    size_t window = opts ? opts->admit_window : 0;
    return window ? kivis__sketch_init(&ls->sketch, &ls->alloc, window) : KIVIS_OK;
}

/* Whether a get needs its key's kivis__lru_hash: for a bounded tier's
 * bookkeeping, the negative cache or the sketch. */
static bool needs_hash(const layered_storage *ls)
{
    for (size_t i = 0; i + 1 < ls->n; i++)
        if (ls->tiers[i].lru)
            return true;
    return ls->negative || ls->sketch.counters;
}

/* Follow the authority's feed when it carries other clients' commits
 * (PostgreSQL's); without one the caches follow this storage's own writes
 * only, as before. */
static int init_feed(layered_storage *ls)
{
    int rc = kivis_feed_open(authority(ls)->st, KIVIS_FEED_NOW, &ls->feed);
    if (rc == KIVIS_ENOTSUP) {
        ls->feed = NULL;
        return KIVIS_OK;
    }
    if (rc != KIVIS_OK)
        return rc;
    /* A feed of this storage object's commits alone says nothing the
     * write-through has not (the layered storage owns the authority). */
    if (!(ls->feed->flags & KIVIS_FEED_SHARED)) {
        kivis_feed_close(ls->feed);
        ls->feed = NULL;
        return KIVIS_OK;
    }
    ls->fst.following = 1;
    /* What persistent tiers kept from an earlier run missed the changes
     * made while nobody followed the feed: the first begin empties the
     * caches and copies the mirrors again (settle), as after a resync. */
    ls->owed_all = true;
    return kivis__btree_new(&ls->alloc, &ls->owed);
}

#define OFFLINE_RETRY_MS 1000 /* offline_retry_ms's default */

static void init_retry(layered_storage *ls, const kivis_layered_options *opts)
{
    int ms = opts ? opts->offline_retry_ms : 0;
    ls->retry_ms = ms == 0 ? OFFLINE_RETRY_MS : ms < 0 ? 0 : (uint64_t)ms;
}

static int init_negative(layered_storage *ls, const kivis_layered_options *opts)
{
    ls->negative_max = opts ? opts->negative_max : 0;
    if (!ls->negative_max)
        return KIVIS_OK;
    return kivis__lru_new(&ls->alloc, &ls->negative);
}

int kivis_layered_open(const kivis_layered_tier *tiers, size_t n,
                       const kivis_layered_options *opts, kivis_storage **out)
{
    if (!out)
        return KIVIS_EINVAL;
    *out = NULL;
    int rc = check_tiers(tiers, n);
    if (rc != KIVIS_OK)
        return rc;
    const kivis_allocator *a = opts && opts->allocator ? opts->allocator
                                                       : kivis_default_allocator();
    layered_storage *ls = a->malloc(a->ctx, sizeof *ls);
    if (!ls)
        return KIVIS_ENOMEM;
    memset(ls, 0, sizeof *ls);
    ls->base.methods = oldest_tier_version(tiers, n) >= 5 ? &layered_methods
                                                          : &layered_methods_v4;
    ls->alloc = *a;
    ls->n = n;
    init_retry(ls, opts);
    ls->tiers = n <= SIZE_MAX / sizeof(tier) ? ls_malloc(ls, n * sizeof(tier)) : NULL;
    rc = ls->tiers ? KIVIS_OK : KIVIS_ENOMEM;
    if (rc == KIVIS_OK) {
        memset(ls->tiers, 0, n * sizeof(tier));
        rc = init_tiers(ls, tiers);
    }
    if (rc == KIVIS_OK)
        rc = init_negative(ls, opts);
    if (rc == KIVIS_OK)
        rc = init_admission(ls, opts);
    if (rc == KIVIS_OK)
        ls->hashed = needs_hash(ls);
    if (rc == KIVIS_OK)
        rc = init_feed(ls);
    if (rc != KIVIS_OK) {
        layered_free(ls, false); /* the tiers stay the caller's */
        return rc;
    }
    *out = &ls->base;
    return KIVIS_OK;
}

int kivis_layered_stats(kivis_storage *st, size_t tier_index,
                        kivis_layered_tier_stats *out)
{
    layered_storage *ls = as_layered(st);
    if (!out)
        return KIVIS_EINVAL;
    memset(out, 0, sizeof *out);
    if (!ls || tier_index >= ls->n)
        return KIVIS_EINVAL;
    const tier *tr = &ls->tiers[tier_index];
    *out = tr->stats;
    out->entries = tr->lru ? kivis__lru_count(tr->lru) : 0;
    out->bytes = tr->lru ? kivis__lru_bytes(tr->lru) : 0;
    out->usable = tr->usable;
    return KIVIS_OK;
}

/* The layered storage behind st for a stats getter, *out (size bytes)
 * zeroed first; NULL when out is NULL or st is not a layered storage. */
static layered_storage *stats_source(kivis_storage *st, void *out, size_t size)
{
    if (!out)
        return NULL;
    memset(out, 0, size);
    return as_layered(st);
}

int kivis_layered_feed_stats_get(kivis_storage *st, kivis_layered_feed_stats *out)
{
    layered_storage *ls = stats_source(st, out, sizeof *out);
    if (!ls)
        return KIVIS_EINVAL;
    *out = ls->fst;
    return KIVIS_OK;
}

int kivis_layered_offline_stats_get(kivis_storage *st,
                                    kivis_layered_offline_stats *out)
{
    layered_storage *ls = stats_source(st, out, sizeof *out);
    if (!ls)
        return KIVIS_EINVAL;
    *out = ls->ost;
    out->offline = ls->offline;
    return KIVIS_OK;
}

int kivis_layered_txn_offline(const kivis_storage_txn *txn)
{
    if (!txn || txn->methods != &layered_txn_methods)
        return 0;
    return ((const layered_txn *)txn)->mode == TXN_OFFLINE;
}

int kivis_layered_negative_stats_get(kivis_storage *st,
                                     kivis_layered_negative_stats *out)
{
    layered_storage *ls = stats_source(st, out, sizeof *out);
    if (!ls)
        return KIVIS_EINVAL;
    *out = ls->neg;
    out->entries = ls->negative ? kivis__lru_count(ls->negative) : 0;
    return KIVIS_OK;
}

int kivis_layered_invalidate(kivis_storage *st)
{
    layered_storage *ls = as_layered(st);
    return ls ? invalidate_all(ls) : KIVIS_EINVAL;
}
