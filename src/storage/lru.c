/*
 * src/storage/lru.c - recency bookkeeping for bounded caches (lru.h).
 *
 * The B+tree maps each key to the address of its node; the nodes form a
 * doubly linked list from the oldest (head) to the newest (tail) and carry
 * their own copy of the key, so that an eviction walk can name the keys to
 * delete without a tree lookup.
 */
#include "lru.h"

#include "btree.h"

#include <string.h>

struct kivis_lru_node {
    kivis_lru_node *older, *newer;
    size_t size;
    size_t key_len;
    unsigned char key[]; /* key_len bytes */
};

struct kivis_lru {
    kivis_allocator alloc;
    kivis_btree *index; /* key -> kivis_lru_node * (the pointer's bytes) */
    kivis_lru_node *oldest, *newest;
    size_t count, bytes;
};

static kivis_lru_node *node_of(kivis_slice stored)
{
    kivis_lru_node *n;
    memcpy(&n, stored.data, sizeof n);
    return n;
}

static kivis_lru_node *find(const kivis_lru *l, kivis_slice key)
{
    kivis_slice stored;
    if (kivis__btree_get(l->index, key, &stored) != KIVIS_OK)
        return NULL;
    return node_of(stored);
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
    if (kivis__btree_new(alloc, &l->index) != KIVIS_OK) {
        alloc->free(alloc->ctx, l);
        return KIVIS_ENOMEM;
    }
    *out = l;
    return KIVIS_OK;
}

static void free_nodes(kivis_lru *l)
{
    kivis_lru_node *n = l->oldest;
    while (n) {
        kivis_lru_node *next = n->newer;
        l->alloc.free(l->alloc.ctx, n);
        n = next;
    }
    l->oldest = l->newest = NULL;
    l->count = l->bytes = 0;
}

void kivis__lru_free(kivis_lru *l)
{
    if (!l)
        return;
    free_nodes(l);
    kivis__btree_free(l->index);
    l->alloc.free(l->alloc.ctx, l);
}

void kivis__lru_clear(kivis_lru *l)
{
    free_nodes(l);
    kivis__btree_clear(l->index);
}

static void resize(kivis_lru *l, kivis_lru_node *n, size_t size)
{
    l->bytes = l->bytes - n->size + size;
    n->size = size;
}

int kivis__lru_add(kivis_lru *l, kivis_slice key, size_t size)
{
    kivis_lru_node *n = find(l, key);
    if (n) {
        resize(l, n, size);
        unlink_node(l, n);
        append_newest(l, n);
        return KIVIS_OK;
    }
    if (key.len > SIZE_MAX - sizeof *n)
        return KIVIS_ENOMEM;
    n = l->alloc.malloc(l->alloc.ctx, sizeof *n + key.len);
    if (!n)
        return KIVIS_ENOMEM;
    n->size = 0;
    n->key_len = key.len;
    memcpy(n->key, key.data, key.len);
    if (kivis__btree_put(l->index, key, kivis_slice_make(&n, sizeof n)) != KIVIS_OK) {
        l->alloc.free(l->alloc.ctx, n);
        return KIVIS_ENOMEM;
    }
    append_newest(l, n);
    l->count++;
    resize(l, n, size);
    return KIVIS_OK;
}

bool kivis__lru_touch(kivis_lru *l, kivis_slice key)
{
    kivis_lru_node *n = find(l, key);
    if (!n)
        return false;
    unlink_node(l, n);
    append_newest(l, n);
    return true;
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
    kivis__btree_del(l->index, key);
    unlink_node(l, n);
    l->count--;
    l->bytes -= n->size;
    l->alloc.free(l->alloc.ctx, n);
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
