/* SPDX-License-Identifier: MIT */
/*
 * kivis/sqlite.h - the SQLite backend: one database file, WAL mode.
 *
 * The store is one table `kv(k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT
 * ROWID` in the database file at `path` (SQLite adds `path-wal` and
 * `path-shm` beside it while it is open).  SQLite orders blobs by memcmp,
 * shorter first on a common prefix: the kivis key order, so the table's
 * primary key index is the ordered store.
 *
 * Transactions: each kivis transaction runs on a connection of its own,
 * taken from a pool the storage keeps (one connection per transaction open
 * at once).  A write transaction is BEGIN IMMEDIATE; a read-only one is
 * BEGIN DEFERRED and reads the snapshot of the commit that was the latest
 * at its first read.  In WAL mode readers never block the writer, nor the
 * writer the readers.
 *
 * Durability: a KIVIS_SYNC commit is on stable storage when commit returns
 * (the WAL file is flushed, as synchronous=FULL does); a KIVIS_NOSYNC commit
 * is atomic and consistent but the last ones may be lost in a system crash
 * (synchronous=NORMAL: the WAL is flushed at checkpoints only).  A process
 * crash loses nothing committed either way.  If the flush of a KIVIS_SYNC
 * commit itself fails (an I/O error after the commit reached the WAL),
 * commit says KIVIS_EIO although other transactions may already see the
 * commit; this can only happen when the storage's previous commit was
 * KIVIS_NOSYNC (see docs/storage.md).
 *
 * Borrowed results (storage.h): a value returned by get is a copy in the
 * transaction's memory (SQLite's row buffer dies at the next statement),
 * kept until the next put or del in the transaction, or its end.  A long
 * read-only transaction therefore holds every value it has read until it
 * ends.  Keys and values returned by a cursor live in the cursor until its
 * next step (no copy of the value).
 *
 * Keys are 1 to max_key_size bytes (KIVIS_SQLITE_MAX_KEY by default);
 * longer ones fail with KIVIS_EKEYSIZE before anything is written.  A key
 * and value together are limited by SQLite's SQLITE_LIMIT_LENGTH (10^9
 * bytes by default); a put over it is KIVIS_EINVAL.
 *
 * Errors: SQLITE_FULL is KIVIS_EFULL, SQLITE_CORRUPT and SQLITE_NOTADB
 * KIVIS_ECORRUPT, SQLITE_BUSY and SQLITE_LOCKED KIVIS_EBUSY, SQLITE_NOMEM
 * KIVIS_ENOMEM, anything else KIVIS_EIO.  When SQLite itself rolls a
 * transaction back after an error (it may on a full disk, an I/O error or
 * out of memory), every later call in it returns that error, and commit
 * fails with it: nothing of the transaction is applied.  The same holds
 * when puts queued in the transaction cannot be written: a put copies its
 * key and value to a queue that goes to SQLite in multi-row INSERTs when
 * full and before the next get, cursor step, del or commit, and the call
 * that writes it fails with the error (KIVIS_EFULL, say) for every later
 * call and the commit too (see docs/storage.md).
 *
 * Memory: the backend's own objects (storage, transactions, cursors, copied
 * values) come from the allocator in the options; SQLite allocates its
 * connections, statements, page caches and statement journals (kept in
 * memory: temp_store = MEMORY, a statement's changed pages) with its own
 * allocator.
 *
 * Threads and processes: one storage may be shared by any number of
 * threads; a transaction and its cursors are used by one thread at a time.
 * Read-only transactions run in parallel with each other and with one
 * write transaction.  A second write transaction on the thread that holds
 * one gets KIVIS_EBUSY at once; one from another thread, or from another
 * process with the same file open, waits up to busy_timeout_ms for the
 * writer to end and then gets KIVIS_EBUSY.
 */
#ifndef KIVIS_SQLITE_H
#define KIVIS_SQLITE_H

#include "storage.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kivis_sqlite_options {
    /** Allocator for the backend's own objects; NULL for the default. */
    const kivis_allocator *allocator;
    /** Longest key accepted, in bytes; 0 for KIVIS_SQLITE_MAX_KEY. */
    size_t max_key_size;
    /** How long a writer waits for another writer, in milliseconds:
     *  0 for KIVIS_SQLITE_BUSY_TIMEOUT_MS, negative to fail at once. */
    int busy_timeout_ms;
    /** Page cache of each pooled connection, in bytes (PRAGMA cache_size):
     *  0 for SQLite's default of 2 MiB.  A store larger than its cache
     *  reads the rest from the file at every miss. */
    size_t cache_size;
    /** How much of the database file each connection reads through a
     *  memory map instead of read(2) (PRAGMA mmap_size), in bytes: 0 for
     *  none (SQLite's default).  SQLite caps it at its build's
     *  SQLITE_MAX_MMAP_SIZE.  An I/O error on a mapped page is a SIGBUS,
     *  not KIVIS_EIO: SQLite's own caveat of memory-mapped I/O. */
    size_t mmap_size;
} kivis_sqlite_options;

#define KIVIS_SQLITE_MAX_KEY 4096
#define KIVIS_SQLITE_BUSY_TIMEOUT_MS 5000

/**
 * Open (creating if needed) the SQLite database file at `path`, switch it
 * to WAL mode and create the kv table if missing.  opts may be NULL.  The
 * caller owns *out and frees it with kivis_storage_close.
 * @return KIVIS_OK; KIVIS_EINVAL (NULL path, or "" or ":memory:", which
 *         name no file that the pooled connections could share, or a
 *         max_key_size over SQLite's length limit); KIVIS_EIO (the file
 *         cannot be created or opened, or WAL mode is refused);
 *         KIVIS_ECORRUPT (not an SQLite database, or a damaged one: the
 *         file is left as it was); KIVIS_EBUSY (another process holds the
 *         database locked past busy_timeout_ms); KIVIS_ENOMEM.
 *         *out = NULL on failure.
 */
int kivis_sqlite_open(const char *path, const kivis_sqlite_options *opts,
                      kivis_storage **out);

/**
 * As kivis_sqlite_open, for a kivis database that exists already: nothing
 * is created, and a file that is not one is left exactly as it was (not
 * even switched to WAL mode).  For tools that must not create a store.
 * @return as kivis_sqlite_open; KIVIS_EIO also for a missing file;
 *         KIVIS_NOTFOUND for an SQLite database without the kv table.
 */
int kivis_sqlite_open_existing(const char *path, const kivis_sqlite_options *opts,
                               kivis_storage **out);

/**
 * Write a compacted copy of the database to the new file `dest`, which
 * must not exist: SQLite's online backup (sqlite3_backup_*) copies every
 * page in one read transaction, so the copy is the state of one commit
 * while writers in this and other processes go on (WAL mode), then VACUUM
 * on the copy drops its free pages.  The copy is an ordinary kivis SQLite
 * database (kivis_sqlite_open opens it).  On failure nothing is left at
 * dest.
 * @return KIVIS_OK; KIVIS_EINVAL (st is not an SQLite storage, dest is
 *         NULL, empty, ":memory:" or exists); KIVIS_EIO (dest cannot be
 *         created or written); KIVIS_EFULL; KIVIS_ECORRUPT (the source is
 *         damaged); KIVIS_ENOMEM.
 */
int kivis_sqlite_backup(kivis_storage *st, const char *dest);

/**
 * Compact the database in place: VACUUM rewrites it without free pages,
 * then a WAL checkpoint (TRUNCATE) moves everything into the database file
 * and empties the WAL.  It is a write: it waits for this storage's writer,
 * and for other processes' up to busy_timeout_ms; readers of other
 * processes delay the WAL truncation, not the VACUUM.
 * @return KIVIS_OK; KIVIS_EINVAL (st is not an SQLite storage); KIVIS_EBUSY
 *         (a writer held on past the busy timeout, or this thread has a
 *         write transaction open); KIVIS_EFULL (no room for the rewritten
 *         copy); KIVIS_EIO; KIVIS_ENOMEM.
 */
int kivis_sqlite_vacuum(kivis_storage *st);

#ifdef __cplusplus
}
#endif

#endif /* KIVIS_SQLITE_H */
