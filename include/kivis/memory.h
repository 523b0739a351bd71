/* SPDX-License-Identifier: MIT */
/*
 * kivis/memory.h - the in-memory backend: a B+tree over memcmp-ordered keys.
 *
 * Committed data lives in one B+tree; write transactions are overlays
 * (kivis/overlay.h) applied atomically on commit.  Nothing is persisted.
 *
 * Threads: none of it is thread-safe; a memory storage, its transactions and
 * cursors are used by one thread at a time.  Any number of read-only
 * transactions may be open alongside one write transaction; a second write
 * transaction gets KIVIS_EBUSY.  Read-only transactions read the latest
 * committed state at each step (read committed), not a snapshot.
 */
#ifndef KIVIS_MEMORY_H
#define KIVIS_MEMORY_H

#include "storage.h"

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kivis_memory_options {
    /** Allocator for every byte the backend holds; NULL for the default.
     *  It must outlive the storage. */
    const kivis_allocator *allocator;
    /** Longest key accepted; 0 for the default, KIVIS_MEMORY_MAX_KEY. */
    size_t max_key_size;
    /** Keep no hash of the keys beside the tree.  By default a hash finds
     *  the key of a get (and of each record an index lookup returns) in
     *  about two cache misses, where the tree takes one or more per level
     *  (four at a million keys); it costs 21 to 43 bytes a key (16-byte
     *  slots, 3/8 to 3/4 of them used) and a little time per new key.
     *  Set this for stores read mostly by scans. */
    bool no_point_hash;
} kivis_memory_options;

#define KIVIS_MEMORY_MAX_KEY 16384

/**
 * Open an empty in-memory storage.  opts may be NULL.
 * The caller owns *out and frees it with kivis_storage_close.
 * @return KIVIS_OK, KIVIS_ENOMEM (and *out = NULL).
 */
int kivis_memory_open(const kivis_memory_options *opts, kivis_storage **out);

/** Bytes the backend holds through its allocator (nodes, keys, values,
 *  and the change feed's ring and open feeds). */
size_t kivis_memory_bytes(kivis_storage *st);

#ifdef __cplusplus
}
#endif

#endif /* KIVIS_MEMORY_H */
