/* SPDX-License-Identifier: MIT */
/*
 * kivis/lmdb.h - the LMDB backend: persistent, crash-safe, zero-copy reads.
 *
 * One LMDB environment (a directory holding data.mdb and lock.mdb) per
 * storage.  Kivis transactions map one to one onto LMDB transactions;
 * values returned by get and cursors point into the memory map (no copy).
 *
 * The map grows by itself: when a write finds it full, the backend aborts
 * the LMDB transaction, doubles the map size (up to map_size_max), replays
 * the transaction's writes and goes on; the caller sees nothing.  Growing
 * needs every other transaction of this process on the storage to end
 * first; the writer waits up to ten seconds for them, and past map_size_max or
 * that wait the write fails with KIVIS_EFULL, the transaction stays usable
 * for abort, and the database stays consistent and openable.  A full disk
 * is KIVIS_EFULL too (LMDB reports a short write as EIO; when the disk
 * then lacks room for the transaction, the backend says KIVIS_EFULL).
 *
 * Durability: kivis commits with KIVIS_SYNC flush to disk before returning
 * (LMDB's default); KIVIS_NOSYNC commits skip the flush (MDB_NOSYNC): they
 * are atomic and consistent, and the next synced commit makes them durable,
 * but a system crash may lose them.  A process crash loses nothing
 * committed either way.
 *
 * Keys are at most mdb_env_get_maxkeysize() bytes (511 with Debian's
 * liblmdb); longer ones fail with KIVIS_EKEYSIZE before anything is written.
 *
 * Threads and processes: open a path once per process and share the
 * storage; any number of threads may run read-only transactions in
 * parallel with one write transaction (further writers wait for it; a
 * second write transaction on the same thread gets KIVIS_EBUSY).  Other
 * processes may open the same path at the same time.  A write transaction
 * holds kivis's own writer lock from begin to commit or abort (a mutex,
 * and an flock on kivis-writer.lock in the directory for other processes;
 * a dead process's is released by the kernel), so that no other kivis
 * writer commits while map growth replays it.  Programs writing the
 * environment with LMDB directly do not take that lock: do not let them
 * write while kivis does.
 *
 * When another process has grown the map past this process's, a begin
 * adopts the new size, which needs this process's other transactions on
 * the storage to end: it waits up to ten seconds for them, then fails with
 * KIVIS_EBUSY, which means: nothing happened, retry the transaction (after
 * ending this thread's other transactions, if it holds any).
 */
#ifndef KIVIS_LMDB_H
#define KIVIS_LMDB_H

#include "storage.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kivis_lmdb_options {
    /** Allocator for the backend's own objects; NULL for the default. */
    const kivis_allocator *allocator;
    /** Initial map size in bytes; 0 for KIVIS_LMDB_MAP_SIZE. */
    size_t map_size;
    /** Largest the map may grow to; 0 for KIVIS_LMDB_MAP_SIZE_MAX. */
    size_t map_size_max;
    /** Reader slots (threads with read transactions at once); 0: 126. */
    unsigned max_readers;
} kivis_lmdb_options;

#define KIVIS_LMDB_MAP_SIZE ((size_t)64 << 20)
#define KIVIS_LMDB_MAP_SIZE_MAX ((size_t)1 << 40)

/**
 * Open (creating if needed) the LMDB environment in directory `path`,
 * itself created if missing.  opts may be NULL.  The caller owns *out and
 * frees it with kivis_storage_close.
 * @return KIVIS_OK; KIVIS_EINVAL (NULL path); KIVIS_EIO (the directory
 *         or its files cannot be created or opened; errno tells why);
 *         KIVIS_ECORRUPT (not an LMDB environment, or a damaged one, e.g.
 *         a data.mdb shorter than its meta page says: refused before
 *         anything is read past the meta pages or written);
 *         KIVIS_EVERSION (LMDB format mismatch); KIVIS_EBUSY (other
 *         processes kept growing the map while it opened: retry);
 *         KIVIS_ENOMEM.  *out = NULL on failure.
 */
int kivis_lmdb_open(const char *path, const kivis_lmdb_options *opts,
                    kivis_storage **out);

/** The current map size in bytes (it grows as the database does). */
size_t kivis_lmdb_map_size(kivis_storage *st);

/**
 * The store's layout (docs/storage.md, "LMDB layout"): 2 for a store this
 * version created, whose key spaces (kivis/storage.h) with one-byte table
 * and slot ids below 128 and 8 each have an LMDB database of their own;
 * 1 for a store 091b1d6 or earlier wrote, every key in LMDB's unnamed
 * database, which this version reads and writes as it is.
 * kivis_lmdb_backup of a layout 1 store writes a layout 2 copy.
 * @return 1, 2, or KIVIS_EINVAL (st is not an LMDB storage).
 */
int kivis_lmdb_layout(kivis_storage *st);

/**
 * Write a compacted copy of the environment into directory `dest`, which
 * this creates and which must not exist yet: a new data.mdb holding only
 * the pages in use (mdb_env_copy2 with MDB_CP_COMPACT).  The copy is the
 * snapshot of one read transaction, so writers in this and other processes
 * go on meanwhile and the copy holds exactly the commits before it began.
 * A layout 1 store's copy is a layout 2 store (kivis_lmdb_layout): its
 * entries, read in one read transaction, put in key order, so each
 * database's pages fill.  On failure nothing is left at dest.
 * @return KIVIS_OK; KIVIS_EINVAL (st is not an LMDB storage, dest is NULL,
 *         empty or exists); KIVIS_EIO (dest cannot be created or
 *         written); KIVIS_EFULL; KIVIS_ENOMEM.
 */
int kivis_lmdb_backup(kivis_storage *st, const char *dest);

#ifdef __cplusplus
}
#endif

#endif /* KIVIS_LMDB_H */
