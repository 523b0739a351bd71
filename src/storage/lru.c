/*
 * src/storage/lru.c - recency bookkeeping for bounded caches (lru.h).
 *
 * A point hash (pointhash.h) maps each key to its node; the nodes form a
 * doubly linked list from the oldest (head) to the newest (tail) and carry
 * their own copy of the key and its hash, so that an eviction walk can name
 * the keys to delete, and a removal find its slot, without hashing again.
 * Why a hash and not an ordered index: a cache hit touches its key on every
 * get, and a probe costs one or two cache misses where a tree descent
 * costs one or more per level; nothing here needs the keys' order.
 *
 * The nodes of removed keys go to a free list (up to SPARE_MAX) and are
 * reused by later adds whose key fits, so that a cache at its bound, which
 * forgets a key for each one it tracks, does not allocate per fill.
 */
#include "lru.h"

#include "pointhash.h"

#include <string.h>

#define LRU_SEED 0x6c72755f63616368u /* any constant: hashes stay in memory */
#define SPARE_MAX 1024               /* free nodes kept for reuse */
#define KEY_ROUND 16                 /* key room rounded up, for reuse */

struct kivis_lru_node {
    kivis_lru_node *older, *newer; /* the recency list; spares: newer only */
    uint64_t hash;
    size_t size;
    bool used; /* marked since the eviction walk passed (CLOCK's bit) */
    size_t key_len, key_cap;
    unsigned char key[]; /* key_cap bytes, key_len used */
};

struct kivis_lru {
    kivis_allocator alloc;
    kivis_pointhash index; /* key -> node */
    kivis_lru_node *oldest, *newest;
    size_t count, bytes;
    kivis_lru_node *spare; /* removed nodes kept for reuse, via newer */
    size_t spares;
};

static bool node_is(const kivis_lru_node *n, uint64_t hash, kivis_slice key)
{
    return n->hash == hash && n->key_len == key.len &&
           memcmp(n->key, key.data, key.len) == 0;
}

static kivis_lru_node *find_hashed(const kivis_lru *l, uint64_t hash,
                                   kivis_slice key)
{
    const kivis_pointhash *h = &l->index;
    if (!h->cap)
        return NULL;
    for (size_t i = kivis__ph_first(h, hash); h->slot[i].item;
         i = kivis__ph_next(h, i))
        if (h->slot[i].hash == hash && node_is(h->slot[i].item, hash, key))
            return h->slot[i].item;
    return NULL;
}

static kivis_lru_node *find(const kivis_lru *l, kivis_slice key)
{
    return find_hashed(l, kivis__lru_hash(key), key);
}

uint64_t kivis__lru_hash(kivis_slice key)
{
    return kivis__hash_bytes(LRU_SEED, key);
}

kivis_lru_node *kivis__lru_find(const kivis_lru *l, uint64_t hash,
                                kivis_slice key)
{
    return find_hashed(l, hash, key);
}

static void unlink_node(kivis_lru *l, kivis_lru_node *n)
{
    if (n->older)
        n->older->newer = n->newer;
    else
        l->oldest = n->newer;
    if (n->newer)
        n->newer->older = n->older;
    else
        l->newest = n->older;
    n->older = n->newer = NULL;
}

static void append_newest(kivis_lru *l, kivis_lru_node *n)
{
    n->older = l->newest;
    n->newer = NULL;
    if (l->newest)
        l->newest->newer = n;
    else
        l->oldest = n;
    l->newest = n;
}

int kivis__lru_new(const kivis_allocator *alloc, kivis_lru **out)
{
    *out = NULL;
    kivis_lru *l = alloc->malloc(alloc->ctx, sizeof *l);
    if (!l)
        return KIVIS_ENOMEM;
    memset(l, 0, sizeof *l);
    l->alloc = *alloc;
    kivis__ph_init(&l->index, LRU_SEED);
    *out = l;
    return KIVIS_OK;
}

static void free_list(kivis_lru *l, kivis_lru_node *n)
{
    while (n) {
        kivis_lru_node *next = n->newer;
        l->alloc.free(l->alloc.ctx, n);
        n = next;
    }
}

static void free_nodes(kivis_lru *l)
{
    free_list(l, l->oldest);
    l->oldest = l->newest = NULL;
    l->count = l->bytes = 0;
}

void kivis__lru_free(kivis_lru *l)
{
    if (!l)
        return;
    free_nodes(l);
    free_list(l, l->spare);
    kivis__ph_free(&l->index, &l->alloc);
    l->alloc.free(l->alloc.ctx, l);
}

void kivis__lru_clear(kivis_lru *l)
{
    free_nodes(l);
    kivis__ph_clear(&l->index);
}

static void resize(kivis_lru *l, kivis_lru_node *n, size_t size)
{
    l->bytes = l->bytes - n->size + size;
    n->size = size;
}

/* A node with room for key: a spare if the first one fits (keys of one
 * cache are mostly of a few lengths), else a new one.  NULL: out of
 * memory. */
static kivis_lru_node *node_for(kivis_lru *l, size_t key_len)
{
    kivis_lru_node *n = l->spare;
    if (n && n->key_cap >= key_len) {
        l->spare = n->newer;
        l->spares--;
        return n;
    }
    size_t cap = key_len <= SIZE_MAX - KEY_ROUND ? (key_len + KEY_ROUND - 1) / KEY_ROUND * KEY_ROUND
                                                 : key_len;
    if (cap > SIZE_MAX - sizeof *n)
        return NULL;
    n = l->alloc.malloc(l->alloc.ctx, sizeof *n + cap);
    if (n)
        n->key_cap = cap;
    return n;
}

static void drop_node(kivis_lru *l, kivis_lru_node *n)
{
    if (l->spares >= SPARE_MAX) {
        l->alloc.free(l->alloc.ctx, n);
        return;
    }
    n->older = NULL;
    n->newer = l->spare;
    l->spare = n;
    l->spares++;
}

int kivis__lru_add(kivis_lru *l, kivis_slice key, size_t size)
{
    uint64_t hash = kivis__lru_hash(key);
    kivis_lru_node *n = find_hashed(l, hash, key);
    if (n) {
        resize(l, n, size);
        unlink_node(l, n);
        append_newest(l, n);
        return KIVIS_OK;
    }
    if (kivis__ph_reserve(&l->index, &l->alloc, l->count + 1) != KIVIS_OK)
        return KIVIS_ENOMEM;
    n = node_for(l, key.len);
    if (!n)
        return KIVIS_ENOMEM;
    n->hash = hash;
    n->size = 0;
    n->used = false;
    n->key_len = key.len;
    memcpy(n->key, key.data, key.len);
    kivis__ph_insert(&l->index, hash, n);
    append_newest(l, n);
    l->count++;
    resize(l, n, size);
    return KIVIS_OK;
}

void kivis__lru_mark(kivis_lru_node *n)
{
    n->used = true;
}

bool kivis__lru_touch(kivis_lru *l, kivis_slice key)
{
    kivis_lru_node *n = find(l, key);
    if (n)
        kivis__lru_mark(n);
    return n != NULL;
}

const kivis_lru_node *kivis__lru_victim(kivis_lru *l, const kivis_lru_node *after)
{
    kivis_lru_node *n = after ? after->newer : l->oldest;
    while (n && n->used) { /* each pass unmarks one: the walk ends */
        kivis_lru_node *next = n->newer;
        n->used = false;
        if (next) {
            unlink_node(l, n);
            append_newest(l, n);
        }
        n = next ? next : n;
    }
    return n;
}

bool kivis__lru_has(const kivis_lru *l, kivis_slice key, size_t *size)
{
    const kivis_lru_node *n = find(l, key);
    if (n && size)
        *size = n->size;
    return n != NULL;
}

void kivis__lru_remove(kivis_lru *l, kivis_slice key)
{
    kivis_lru_node *n = find(l, key);
    if (!n)
        return;
    kivis__ph_remove(&l->index, n->hash, n);
    unlink_node(l, n);
    l->count--;
    l->bytes -= n->size;
    drop_node(l, n);
}

size_t kivis__lru_count(const kivis_lru *l)
{
    return l->count;
}

size_t kivis__lru_bytes(const kivis_lru *l)
{
    return l->bytes;
}

const kivis_lru_node *kivis__lru_oldest(const kivis_lru *l)
{
    return l->oldest;
}

const kivis_lru_node *kivis__lru_newer(const kivis_lru_node *n)
{
    return n->newer;
}

kivis_slice kivis__lru_key(const kivis_lru_node *n)
{
    return kivis_slice_make(n->key, n->key_len);
}

size_t kivis__lru_size(const kivis_lru_node *n)
{
    return n->size;
}

uint64_t kivis__lru_node_hash(const kivis_lru_node *n)
{
    return n->hash;
}
