/* The typed record cache: per table, up to `capacity` decoded records keyed
 * by their encoded primary key, in a chained hash table with an LRU list.
 *
 * Coherence rule: the cache only ever holds what committed storage held when
 * a get outside any transaction read it, and every put, insert and remove
 * through the handle drops the key before it writes.  So a get can never
 * see a value older than this handle's own last write, and a transaction's
 * uncommitted writes never reach the cache (gets inside a transaction
 * bypass it).  Writers other than this handle are not seen until the entry
 * is evicted or kivis_cache_clear drops it (documented in kivis.h). */
#include "engine.h"
#include "storage/pointhash.h"

#include <string.h>

typedef struct cache_entry {
    struct cache_entry *chain;      /* next in the hash bucket */
    struct cache_entry *newer, *older; /* LRU list */
    uint64_t hash;
    size_t klen;
    void *record;                   /* decoded record, owned members deep */
    uint8_t key[];                  /* encoded primary key (with prefix) */
} cache_entry;

struct kivis_rcache {
    size_t capacity, count;
    size_t nbuckets;        /* a power of two, >= 2 * capacity */
    cache_entry **buckets;
    cache_entry *newest, *oldest;
    kivis_cache_stats stats;
};

/* Buckets are picked by kivis__hash_bytes, the hash of the memory backend's
 * point hash, with a fixed seed. */
static cache_entry **bucket_of(kivis_rcache *c, uint64_t hash)
{
    return &c->buckets[hash & (c->nbuckets - 1)];
}

static void lru_unlink(kivis_rcache *c, cache_entry *e)
{
    if (e->newer)
        e->newer->older = e->older;
    else
        c->newest = e->older;
    if (e->older)
        e->older->newer = e->newer;
    else
        c->oldest = e->newer;
}

static void lru_push_newest(kivis_rcache *c, cache_entry *e)
{
    e->newer = NULL;
    e->older = c->newest;
    if (c->newest)
        c->newest->newer = e;
    c->newest = e;
    if (!c->oldest)
        c->oldest = e;
}

static cache_entry **find_slot(kivis_rcache *c, uint64_t hash, kivis_slice key)
{
    cache_entry **pp = bucket_of(c, hash);
    for (; *pp; pp = &(*pp)->chain) {
        cache_entry *e = *pp;
        if (e->hash == hash && e->klen == key.len &&
            !memcmp(e->key, key.data, key.len))
            break;
    }
    return pp;
}

static void entry_free(kivis_db *db, const kivis_table_state *ts, cache_entry *e)
{
    kivis__struct_free(ts->desc->record, e->record, &db->alloc);
    kivis__free(db, e);
}

/* Unlink *pp from its bucket and the LRU list and free it. */
static void remove_at(kivis_db *db, const kivis_table_state *ts,
                      cache_entry **pp)
{
    cache_entry *e = *pp;
    *pp = e->chain;
    lru_unlink(ts->cache, e);
    ts->cache->count--;
    entry_free(db, ts, e);
}

static void evict_oldest(kivis_db *db, const kivis_table_state *ts)
{
    kivis_rcache *c = ts->cache;
    cache_entry *e = c->oldest;
    remove_at(db, ts, find_slot(c, e->hash, kivis_slice_make(e->key, e->klen)));
    c->stats.evictions++;
}

static void drop_all(kivis_db *db, const kivis_table_state *ts)
{
    kivis_rcache *c = ts->cache;
    for (cache_entry *e = c->newest, *older; e; e = older) {
        older = e->older;
        entry_free(db, ts, e);
    }
    memset(c->buckets, 0, c->nbuckets * sizeof *c->buckets);
    c->newest = c->oldest = NULL;
    c->count = 0;
}

/* ---- engine hooks (engine.h) ------------------------------------------- */

int kivis__cache_get(kivis_db *db, const kivis_table_state *ts, kivis_slice key,
                     void *record_out, const kivis_allocator *a)
{
    kivis_rcache *c = ts->cache;
    if (db->txn) {
        c->stats.bypasses++;
        return KIVIS_NOTFOUND;
    }
    cache_entry **pp = find_slot(c, kivis__hash_bytes(0, key), key);
    if (!*pp) {
        c->stats.misses++;
        return KIVIS_NOTFOUND;
    }
    c->stats.hits++;
    lru_unlink(c, *pp);
    lru_push_newest(c, *pp);
    return kivis__struct_copy(ts->desc->record, record_out, (*pp)->record, a);
}

void kivis__cache_fill(kivis_db *db, const kivis_table_state *ts,
                       kivis_slice key, const void *record)
{
    kivis_rcache *c = ts->cache;
    if (db->txn)
        return;
    uint64_t hash = kivis__hash_bytes(0, key);
    if (*find_slot(c, hash, key))
        return;
    /* One block: the entry, its key, then the record at an aligned offset. */
    size_t rec_off = (sizeof(cache_entry) + key.len + sizeof(max_align_t) - 1) /
                     sizeof(max_align_t) * sizeof(max_align_t);
    cache_entry *e = kivis__alloc(db, rec_off + ts->desc->record->size);
    if (!e)
        return; /* a cache that cannot grow just misses again */
    e->record = (char *)e + rec_off;
    if (kivis__struct_copy(ts->desc->record, e->record, record, &db->alloc)) {
        kivis__free(db, e);
        return;
    }
    if (c->count == c->capacity)
        evict_oldest(db, ts);
    e->hash = hash;
    e->klen = key.len;
    memcpy(e->key, key.data, key.len);
    cache_entry **b = bucket_of(c, hash);
    e->chain = *b;
    *b = e;
    lru_push_newest(c, e);
    c->count++;
}

void kivis__cache_drop(kivis_db *db, const kivis_table_state *ts,
                       kivis_slice key)
{
    kivis_rcache *c = ts->cache;
    cache_entry **pp = find_slot(c, kivis__hash_bytes(0, key), key);
    if (*pp) {
        remove_at(db, ts, pp);
        c->stats.invalidations++;
    }
}

void kivis__cache_free(kivis_db *db, kivis_table_state *ts)
{
    if (!ts->cache)
        return;
    drop_all(db, ts);
    kivis__free(db, ts->cache->buckets);
    kivis__free(db, ts->cache);
    ts->cache = NULL;
}

/* ---- public API -------------------------------------------------------- */

static int cache_table(const kivis_db *db, uint32_t table)
{
    return db && table < db->schema->ntables ? KIVIS_OK : KIVIS_EINVAL;
}

int kivis_cache_enable(kivis_db *db, uint32_t table, size_t max_records)
{
    if (cache_table(db, table))
        return KIVIS_EINVAL;
    kivis_table_state *ts = &db->tables[table];
    if (max_records > SIZE_MAX / 4 / sizeof(cache_entry *))
        return kivis__fail(db, KIVIS_EINVAL, "%s: cache of %zu records is too large",
                           ts->desc->name, max_records);
    kivis__cache_free(db, ts);
    if (max_records == 0)
        return KIVIS_OK;
    size_t nb = 16;
    while (nb < 2 * max_records)
        nb *= 2;
    kivis_rcache *c = kivis__alloc(db, sizeof *c);
    cache_entry **buckets = kivis__alloc(db, nb * sizeof *buckets);
    if (!c || !buckets) {
        kivis__free(db, c);
        kivis__free(db, buckets);
        return kivis__fail(db, KIVIS_ENOMEM, "%s: no memory for the record cache",
                           ts->desc->name);
    }
    memset(c, 0, sizeof *c);
    memset(buckets, 0, nb * sizeof *buckets);
    c->capacity = max_records;
    c->nbuckets = nb;
    c->buckets = buckets;
    ts->cache = c;
    return KIVIS_OK;
}

int kivis_cache_get_stats(const kivis_db *db, uint32_t table, kivis_cache_stats *out)
{
    if (!out || cache_table(db, table))
        return KIVIS_EINVAL;
    const kivis_rcache *c = db->tables[table].cache;
    memset(out, 0, sizeof *out);
    if (!c)
        return KIVIS_NOTFOUND;
    *out = c->stats;
    out->records = c->count;
    out->capacity = c->capacity;
    return KIVIS_OK;
}

void kivis_cache_clear(kivis_db *db, uint32_t table)
{
    if (cache_table(db, table) || !db->tables[table].cache)
        return;
    db->tables[table].cache->stats.invalidations += db->tables[table].cache->count;
    drop_all(db, &db->tables[table]);
}
