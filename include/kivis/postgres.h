/*
 * kivis/postgres.h - the PostgreSQL backend: a store on a database server,
 * shared by every process that connects to it.
 *
 * The store is one table `kv(k bytea PRIMARY KEY, v bytea NOT NULL)` (its
 * schema and name in the options), created when missing.  bytea compares
 * by memcmp, shorter first on a common prefix: the kivis key order, so the
 * primary key's B-tree is the ordered store.
 *
 * Transactions.  Each kivis transaction runs on a connection of its own,
 * taken from a pool the storage keeps (one connection per transaction open
 * at once; a broken one is dropped and the next transaction connects anew).
 *  - A read-only transaction is REPEATABLE READ, READ ONLY: one snapshot.
 *  - A write transaction is SERIALIZABLE.  Its reads run on the server in
 *    that transaction; its writes collect in the transaction's memory
 *    (read-your-writes, kivis/overlay.h) and reach the server at commit, in
 *    one round trip: one multi-row insert of the keys the transaction did
 *    not read as present, one multi-row update of those it did, one
 *    multi-row delete, COMMIT.  A put over a key that is there but was not
 *    read (a blind overwrite) fails the insert; the commit then goes back
 *    to a savepoint and upserts every put, a second round trip (and the
 *    storage's next 16 commits upsert from the start, a window that
 *    doubles while every try misses).
 *    PostgreSQL's serializable isolation makes any concurrent interleaving
 *    equal to some serial order, so two clients' read-modify-write of the
 *    same key never lose an update: one of them fails with KIVIS_ECONFLICT.
 *  - KIVIS_ECONFLICT (serialization failure 40001 or deadlock 40P01, from
 *    any call of the transaction, commit included) means nothing of the
 *    transaction was applied.  Retry the whole transaction: abort it if it
 *    is still open, begin again and redo every read and write (kivis_begin
 *    ... kivis_commit); values read in the failed attempt are stale.
 *  - Any number of write transactions, from any threads and processes, run
 *    at once; there is no KIVIS_EBUSY.
 *
 * Round trips.  Statements are prepared once per connection and take and
 * return binary bytea.  A get is one round trip (BEGIN rides along with
 * the first statement of a transaction) and its result is kept for the
 * transaction: a second get of the same key is answered locally;
 * kivis_txn_prefetch reads many keys in one round trip, and
 * kivis_txn_discard queues a delete without one (storage.h).  A cursor
 * reads pages of rows (16, then 128, then 1024 while it keeps going the
 * same way) and steps through a page without a round trip.  The end of a
 * read-only transaction is sent without waiting for its reply.
 * kivis_postgres_round_trips counts them.
 *
 * Durability: a KIVIS_SYNC commit returns once the server has flushed it
 * (synchronous_commit as configured on the server, `on` by default); a
 * KIVIS_NOSYNC commit sets synchronous_commit = off for that transaction:
 * atomic and consistent, but the last ones may be lost if the server
 * crashes.
 *
 * The network.  A refused or lost connection is KIVIS_EUNAVAILABLE, from
 * open, begin or any call; the transaction is then dead (abort it) and the
 * server rolls back whatever it had not committed.  A commit whose reply
 * never came is the one case where the outcome is unknown: the server may
 * have committed it just before the connection broke.  See
 * docs/storage.md for how to find out.  libpq keeps SIGPIPE away from the
 * process on a broken socket.
 *
 * Borrowed results (storage.h): a value returned by get lives until the end
 * of the transaction (it is the transaction's cache); keys and values of a
 * cursor until its next step.
 *
 * Keys are 1 to max_key_size bytes (KIVIS_POSTGRES_MAX_KEY by default: a
 * B-tree entry must fit in a third of an 8 KiB page); longer ones fail with
 * KIVIS_EKEYSIZE before anything is sent.  Values up to 1 GB (bytea's
 * limit) minus the request around them.
 *
 * Errors: 40001 and 40P01 are KIVIS_ECONFLICT; a lost connection, class 08
 * and 57P01-57P03 (server shutting down or starting) KIVIS_EUNAVAILABLE;
 * 53100 (disk full) KIVIS_EFULL; 53200 KIVIS_ENOMEM; XX001/XX002 (data
 * corrupted) KIVIS_ECORRUPT; anything else KIVIS_EIO.  The server's last
 * message is kept in kivis_postgres_errmsg.
 *
 * Change feed (kivis_feed_open): a change log beside the table
 * (<table>_changes, <table>_feed, created at open when the user may;
 * otherwise the store opens without a feed) of one row per commit, which
 * a kivis commit writes in the statement that writes the table and a
 * trigger writes for other clients; woken by LISTEN/NOTIFY, fed in commit
 * order and carrying every client's writes.  A position names one key: a
 * commit's keys have consecutive positions and a feed resumes after any
 * of them.  A log of the earlier format (a row per key) is converted at
 * open; see docs/storage.md.
 * Threads: one storage may be shared by any number of threads; a
 * transaction and its cursors are used by one thread at a time.
 */
#ifndef KIVIS_POSTGRES_H
#define KIVIS_POSTGRES_H

#include "storage.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kivis_postgres_options {
    /** Allocator for the backend's own objects; NULL for the default
     *  (libpq allocates its connections and results with malloc). */
    const kivis_allocator *allocator;
    /** The schema of the table; NULL for "public".  Must exist. */
    const char *schema;
    /** The table; NULL for "kv".  Created when missing. */
    const char *table;
    /** Longest key accepted, in bytes; 0 for KIVIS_POSTGRES_MAX_KEY, at
     *  most KIVIS_POSTGRES_MAX_KEY. */
    size_t max_key_size;
} kivis_postgres_options;

#define KIVIS_POSTGRES_MAX_KEY 2000

/**
 * Connect to the server named by `conninfo` (libpq's connection string:
 * "host=... port=... dbname=... user=..." or a postgresql:// URI; "" takes
 * libpq's defaults and PG* environment variables) and create the table when
 * missing.  opts may be NULL.  The caller owns *out and frees it with
 * kivis_storage_close.
 * @return KIVIS_OK; KIVIS_EUNAVAILABLE (the server cannot be reached or
 *         refuses the login); KIVIS_EINVAL (NULL conninfo, a max_key_size
 *         over the limit, no such schema, or the user may not create or
 *         use the table: the server's reason is in kivis_postgres_errmsg);
 *         KIVIS_EIO (another server error); KIVIS_ENOMEM.  *out = NULL on
 *         failure.
 */
int kivis_postgres_open(const char *conninfo, const kivis_postgres_options *opts,
                        kivis_storage **out);

/**
 * The server's or libpq's message for the last error the backend met in the
 * calling thread (a failed open included), "" when none yet.
 * @return a string of this thread, valid until its next call into the
 *         backend.
 */
const char *kivis_postgres_errmsg(void);

/**
 * How many requests this process's PostgreSQL storages have sent and
 * waited for the replies of, each one round trip to a server, since the
 * process started (every storage and thread counted together).  For
 * measuring: take the difference around the work.  The end of a read-only
 * transaction, sent without waiting, is not one.
 */
unsigned long long kivis_postgres_round_trips(void);

#ifdef __cplusplus
}
#endif

#endif /* KIVIS_POSTGRES_H */
