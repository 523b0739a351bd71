/* SPDX-License-Identifier: MIT */
/*
 * kivis/rocksdb.h - the RocksDB backend: persistent, log-structured, for
 * write-heavy stores larger than memory.
 *
 * One RocksDB database (a directory of SST files, a write-ahead log, a
 * MANIFEST and a LOCK file) per storage, in its default column family,
 * ordered by RocksDB's bytewise comparator, which is storage.h's order.
 *
 * Transactions: a read-only transaction reads one RocksDB snapshot taken at
 * begin, so it sees the same committed state to its end.  A write
 * transaction is an overlay (kivis/overlay.h) over such a snapshot; its
 * commit is one atomic RocksDB write batch.  Values from get are pinned
 * RocksDB slices that the transaction keeps until its next put or del, or
 * its end: a long read-only transaction doing many gets holds every value
 * it got (cursors hold only their current entry).
 *
 * Durability: a KIVIS_SYNC commit returns once its batch is in the
 * write-ahead log on stable storage (WriteOptions::sync); a KIVIS_NOSYNC
 * commit is in the log in the OS page cache, so a process crash loses
 * nothing committed, a system crash may lose the latest NOSYNC commits, and
 * the log never replays half a batch.
 *
 * Keys are at most KIVIS_ROCKSDB_MAX_KEY bytes; longer ones fail with
 * KIVIS_EKEYSIZE before anything is written.  Values may be up to 4 GiB - 1
 * (RocksDB's own limit), but every value of a write transaction is held in
 * memory until commit.
 *
 * Errors: a full disk is KIVIS_EFULL, damaged files KIVIS_ECORRUPT, a
 * database another process (or another storage of this process) has open
 * KIVIS_EBUSY, any other RocksDB failure KIVIS_EIO.
 *
 * A full disk: the commit that finds it full (its log append, or an
 * earlier background flush of the memtable to an SST) fails with
 * KIVIS_EFULL and applies nothing; every commit that returned KIVIS_OK
 * stays.  RocksDB then refuses writes (its background-error state) with
 * KIVIS_EFULL; reads go on.  After a failed log append only a reopen
 * (kivis_storage_close, then kivis_rocksdb_open) ends that state; after a
 * failed flush RocksDB also resumes by itself a few seconds after space is
 * freed.  The reopen replays the log into a new SST, so it needs free
 * space about the size of the unflushed log, else it fails with
 * KIVIS_EFULL and changes nothing.  RocksDB's info LOG file is kept empty:
 * librocksdb 7.8 aborts the process when it writes a log line after one
 * failed on a full disk, so the backend logs nothing there.
 *
 * Threads and processes: one storage per directory and process, as RocksDB
 * locks the directory.  Any number of threads may run read-only
 * transactions in parallel with one write transaction; a further writer
 * waits for the active one to end, except on the thread that holds it,
 * where begin returns KIVIS_EBUSY instead of deadlocking.  A transaction
 * and its cursors are used by one thread at a time.
 */
#ifndef KIVIS_ROCKSDB_H
#define KIVIS_ROCKSDB_H

#include "storage.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kivis_rocksdb_options {
    /** Allocator for the backend's own objects (transactions, cursors and
     *  their bookkeeping); NULL for the default.  RocksDB allocates its
     *  caches, memtables and blocks itself. */
    const kivis_allocator *allocator;
    /** Nonzero: fail with KIVIS_EIO if the database does not exist yet.
     *  Zero (the default, as with kivis_lmdb_open) creates it. */
    int no_create;
    /** Block cache capacity in bytes; 0 for KIVIS_ROCKSDB_CACHE_SIZE. */
    size_t block_cache_size;
    /** Memtable size in bytes before a flush to disk; 0 for
     *  KIVIS_ROCKSDB_WRITE_BUFFER (RocksDB's default). */
    size_t write_buffer_size;
} kivis_rocksdb_options;

#define KIVIS_ROCKSDB_CACHE_SIZE ((size_t)8 << 20)
#define KIVIS_ROCKSDB_WRITE_BUFFER ((size_t)64 << 20)
/** Longest key: room for any composite index key, while keeping RocksDB's
 *  index blocks (which repeat keys) and the overlay's copies small. */
#define KIVIS_ROCKSDB_MAX_KEY ((size_t)1 << 16)

/**
 * Open (creating it unless opts->no_create) the RocksDB database in
 * directory `path`.  opts may be NULL.  The caller owns *out and frees it
 * with kivis_storage_close.
 * @return KIVIS_OK; KIVIS_EINVAL (NULL path or out); KIVIS_EBUSY (the
 *         database is open elsewhere); KIVIS_ECORRUPT (damaged or not a
 *         RocksDB database); KIVIS_EFULL (no room to recover the log);
 *         KIVIS_EIO (missing with no_create, unreadable, other failures);
 *         KIVIS_ENOMEM.  *out = NULL on failure.
 */
int kivis_rocksdb_open(const char *path, const kivis_rocksdb_options *opts,
                       kivis_storage **out);

/**
 * Write a consistent copy of the database into directory `dest`, which
 * must not exist: a RocksDB checkpoint (rocksdb_checkpoint_create).  The
 * memtable is flushed first, then the live SST files are hard-linked (or
 * copied, across file systems) with a MANIFEST of that state, so the copy
 * holds exactly the commits before the call and costs little space; writes
 * through this storage go on meanwhile.  The copy opens with
 * kivis_rocksdb_open.  Another process cannot take a checkpoint while this
 * one has the database open (RocksDB's lock).
 * @return KIVIS_OK; KIVIS_EINVAL (st is not a RocksDB storage, dest is NULL,
 *         empty or exists); KIVIS_EFULL; KIVIS_EIO.
 */
int kivis_rocksdb_checkpoint(kivis_storage *st, const char *dest);

/**
 * Compact the whole key range (rocksdb_compact_range): rewrite the SST
 * files into the bottom level, dropping overwritten and deleted entries.
 * Runs in the calling thread until done; transactions may go on meanwhile.
 * RocksDB's C API reports no error from it: a failed compaction leaves the
 * files as they were.
 * @return KIVIS_OK; KIVIS_EINVAL (st is not a RocksDB storage).
 */
int kivis_rocksdb_compact(kivis_storage *st);

#ifdef __cplusplus
}
#endif

#endif /* KIVIS_ROCKSDB_H */
