/* SPDX-License-Identifier: MIT */
/*
 * kivis/overlay.h - write transactions for backends that only apply batches.
 *
 * A backend whose store offers reads of its committed state plus one atomic
 * "apply these writes" call (the memory B+tree, RocksDB write batches, etcd
 * txn) gets full kivis transactions from this helper: writes collect in an
 * ordered in-memory write set, reads and cursors merge that set over the
 * committed state (read-your-writes), and commit hands every write to the
 * backend's apply callback at once, in key order.
 */
#ifndef KIVIS_OVERLAY_H
#define KIVIS_OVERLAY_H

#include "storage.h"

#ifdef __cplusplus
extern "C" {
#endif

/** One write of a batch.  del != 0 means delete `key` (value unused). */
typedef struct kivis_batch_op {
    kivis_slice key;
    kivis_slice value;
    int del;
} kivis_batch_op;

/**
 * Apply `n` writes atomically: all of them or, on error, none.  Ops are in
 * strictly increasing key order, one per key.  Their bytes are borrowed for
 * the call.  Returns KIVIS_OK or an error (KIVIS_ENOMEM, KIVIS_EIO, ...).
 */
typedef int (*kivis_apply_fn)(void *ctx, const kivis_batch_op *ops, size_t n,
                              int durability);

/**
 * Begin a write transaction over `base`, a read-only transaction of the same
 * backend that reads its committed state.
 *
 * The new transaction takes ownership of `base` (on success and on failure).
 * Its commit first ends `base`, then calls apply(ctx, ...) once, unless
 * nothing was written.  Its storage is `st`; it rejects keys longer than
 * kivis_storage_max_key(st).  `alloc` (NULL for the default) serves the
 * write set.
 * @return KIVIS_OK, KIVIS_ENOMEM.
 */
int kivis_overlay_begin(kivis_storage *st, kivis_storage_txn *base,
                        kivis_apply_fn apply, void *ctx,
                        const kivis_allocator *alloc, kivis_storage_txn **out);

/**
 * Delete `key` in overlay transaction `txn` without reading the base: the
 * blind delete a backend may offer as its discard method (storage.h) when
 * a read of the base is a round trip.  Reads in the transaction then see
 * the key absent, and commit hands the backend a delete for it whether or
 * not it existed.  (The overlay's own del reads the base to report
 * KIVIS_NOTFOUND.)
 * @return KIVIS_OK; KIVIS_EINVAL (txn is not an overlay transaction, an
 *         empty key); KIVIS_EKEYSIZE; KIVIS_ENOMEM.
 */
int kivis_overlay_discard(kivis_storage_txn *txn, kivis_slice key);

#ifdef __cplusplus
}
#endif

#endif /* KIVIS_OVERLAY_H */
