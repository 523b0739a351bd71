/*
 * src/storage/lru.h - recency bookkeeping for a bounded cache: which keys
 * it holds, how many bytes each costs, and which was used least recently.
 * Internal to the layered storage, which keeps one per bounded tier and one
 * for its negative cache.
 *
 * Keys map (through a point hash, pointhash.h) to nodes of an intrusive
 * doubly linked list, oldest first.  Using a key again is one probe and a
 * reference bit set, as CLOCK does, not a relink: a relink writes the
 * node's two neighbours and the newest node, three more cache lines per
 * cache hit in a large cache.  The bit buys the key a second chance when it
 * comes up for eviction (kivis__lru_victim).  Only tracking a new key may
 * allocate, and
 * in a steady state it does not: the nodes of forgotten keys are kept for
 * reuse (a cache at its bound forgets one key for each it tracks).  All
 * memory comes from the allocator given at creation.  Not thread-safe.
 */
#ifndef KIVIS_LRU_H
#define KIVIS_LRU_H

#include <kivis/common.h>

#include <stdbool.h>

typedef struct kivis_lru kivis_lru;
typedef struct kivis_lru_node kivis_lru_node;

int kivis__lru_new(const kivis_allocator *alloc, kivis_lru **out);
void kivis__lru_free(kivis_lru *l);
/* Forget every key (keeps the bookkeeping usable). */
void kivis__lru_clear(kivis_lru *l);

/* Track `key` as costing `size` bytes and make it the newest; a key already
 * tracked gets the new size.  KIVIS_ENOMEM leaves everything as it was. */
int kivis__lru_add(kivis_lru *l, kivis_slice key, size_t size);
/* The hash every kivis_lru uses for key: computed once, it serves each
 * bookkeeping a get consults (and the admission sketch). */
uint64_t kivis__lru_hash(kivis_slice key);
/* The node tracking `key` (hash = kivis__lru_hash(key)), or NULL. */
kivis_lru_node *kivis__lru_find(const kivis_lru *l, uint64_t hash,
                                kivis_slice key);
/* Mark n used since the eviction walk last passed it. */
void kivis__lru_mark(kivis_lru_node *n);
/* Mark `key` used (kivis__lru_mark).  false if it is not tracked. */
bool kivis__lru_touch(kivis_lru *l, kivis_slice key);
/* true if `key` is tracked, with its size in *size (size may be NULL). */
bool kivis__lru_has(const kivis_lru *l, kivis_slice key, size_t *size);
/* Stop tracking `key`; nothing if it is not tracked.  Never fails. */
void kivis__lru_remove(kivis_lru *l, kivis_slice key);

size_t kivis__lru_count(const kivis_lru *l);
/* Sum of the sizes of the tracked keys. */
size_t kivis__lru_bytes(const kivis_lru *l);

/* The next key to evict after `after` (NULL: the first): the oldest node
 * past it that is not marked used.  Marked ones on the way get their second
 * chance: unmarked and moved to the newest end.  So the victims returned
 * one after another are always the oldest nodes, in order, and forgetting
 * that many of the oldest forgets exactly them.  NULL: none left. */
const kivis_lru_node *kivis__lru_victim(kivis_lru *l, const kivis_lru_node *after);

/* Walk from the least recently used key towards the newest: the oldest
 * node (NULL when empty), then the next newer one (NULL past the newest).
 * Nodes stay valid until their key is removed or the bookkeeping cleared. */
const kivis_lru_node *kivis__lru_oldest(const kivis_lru *l);
const kivis_lru_node *kivis__lru_newer(const kivis_lru_node *n);
kivis_slice kivis__lru_key(const kivis_lru_node *n);
size_t kivis__lru_size(const kivis_lru_node *n);
uint64_t kivis__lru_node_hash(const kivis_lru_node *n);

#endif /* KIVIS_LRU_H */
