/* SPDX-License-Identifier: MIT */
/*
 * kivis.h - the record engine: a typed database over a kivis_storage.
 *
 * A kivis_db binds a schema descriptor (kivis/schema.h) to a storage
 * (kivis/storage.h).  Generated code (kivis-gen) wraps these calls in typed
 * functions; they are usable directly with hand-written descriptors.
 *
 * Layout in the storage (docs/design.md, "On-disk layout"):
 *   record       tableid | 0x00           | key(primary key)
 *   index entry  tableid | index + 2      | key(field value) | key(primary key)
 *   metadata     table id 0 holds the stored schema and the
 *                auto-increment counters
 * Ids are order-preserving varints; key() is the order-preserving encoding.
 *
 * Atomicity: every put, add, insert, update or remove writes the record
 * and all of its index entries in one storage transaction.  Between kivis_begin and
 * kivis_commit all operations on the handle share one transaction, see its
 * writes (index lookups included), and land together or not at all.
 *
 * Errors: functions return KIVIS_OK, KIVIS_NOTFOUND or a negative code;
 * kivis_errmsg(db) holds the detail of the last failure on the handle.  An
 * error raised after an operation has started writing poisons the current
 * transaction: everything but kivis_abort then returns KIVIS_EBADTXN.
 * Errors found before any write (bad argument, unique violation, key too
 * long, wrong enum value, bad UTF-8, KIVIS_EEXIST from kivis_add,
 * KIVIS_NOTFOUND from kivis_update) leave the transaction usable.
 *
 * Memory: every allocation goes through the allocator given in
 * kivis_options.  A get or scan into a record or key with char * or
 * kivis_bytes members allocates them; kivis_record_clear / kivis_key_clear
 * frees them.  Records of fixed-size fields never allocate.
 *
 * Threads: a kivis_db is used by one thread at a time.  Several handles may
 * share one storage where the backend allows it; the storage must outlive
 * every handle on it (kivis_storage_close refuses with KIVIS_EBUSY while
 * one is open).
 */
#ifndef KIVIS_H
#define KIVIS_H

#include "kivis/common.h"
#include "kivis/schema.h"
#include "kivis/storage.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The project's one version: kivis --version and kivis-gen --version print
 * these (kivis-gen builds its string from them). */
#define KIVIS_VERSION_MAJOR 0
#define KIVIS_VERSION_MINOR 1
#define KIVIS_VERSION_PATCH 0

typedef struct kivis_db kivis_db;
typedef struct kivis_scan kivis_scan;

/** What kivis_open is doing when it reports progress. */
typedef enum kivis_progress_phase {
    /** Rewriting the records of `table` from their stored layout into the
     *  schema's (a field dropped, moved, widened or made optional). */
    KIVIS_PROGRESS_REWRITE = 1,
    /** Reading the records of `table` to write the entries of `indexes`
     *  of its indexes: ones new to the store, or all of them after its
     *  records were rewritten.  One pass builds them together. */
    KIVIS_PROGRESS_INDEX
} kivis_progress_phase;

/**
 * One report of a migration at kivis_open: `done` of the `total` records
 * of table `table` (its name in the schema opened) have been handled in
 * `phase`.  A table's rewrite, when it has one, comes before its index
 * build.  The struct only grows at its end.
 */
typedef struct kivis_progress {
    uint32_t phase;     /* kivis_progress_phase */
    const char *table;
    uint32_t indexes;   /* KIVIS_PROGRESS_INDEX: how many indexes the pass
                           builds; 0 for a rewrite */
    uint64_t done;
    uint64_t total;     /* the table's records, counted before the pass */
} kivis_progress;

/**
 * Told the progress of a migration at kivis_open.  Each pass over a
 * table's records (a rewrite, an index build) is reported with done = 0
 * before its first record, every so many records in between, and done =
 * total after its last; all of it inside the open's one write
 * transaction, so nothing is committed until kivis_open returns KIVIS_OK.
 * `p` is valid during the call only.
 */
typedef void (*kivis_progress_fn)(void *ctx, const kivis_progress *p);

/** Options for kivis_open.  Zero-initialised means all defaults; the
 *  members only grow at the end. */
typedef struct kivis_options {
    /** Allocator for everything the db allocates; NULL for the default.
     *  It must outlive the db. */
    const kivis_allocator *allocator;
    /** KIVIS_SYNC (default) or KIVIS_NOSYNC for every commit. */
    int durability;
    /** Optional: where kivis_open writes the detail of a failure (it has
     *  no handle to carry it), NUL-terminated and cut to errbuf_size. */
    char *errbuf;
    size_t errbuf_size;
    /** KIVIS_OPEN_* flags; 0 for none. */
    unsigned flags;
    /** Optional: told how far kivis_open has come in rewriting the
     *  records of a table whose declared schema changes need it and in
     *  building indexes over stored records (docs/schema.md, "Evolving a
     *  schema"); NULL for silence. */
    kivis_progress_fn progress;
    void *progress_ctx; /* progress's first argument */
    /** Optional: the last argument of every typed migration's function
     *  (kivis_migration, kivis/schema.h) this open calls. */
    void *migrate_ctx;
} kivis_options;

/** kivis_options.flags: open a store written under another schema name and
 *  rename it to the name of the schema given (the tables still have to
 *  match as on any open).  Without it such a store is refused. */
#define KIVIS_OPEN_RENAME_SCHEMA 0x1u

/**
 * Open a database over `st` with `schema`.
 *
 * On an empty store the schema is written to table 0.  Otherwise the stored
 * schema is read and checked:
 * - a store written under another schema name is refused with
 *   KIVIS_ESCHEMA ("the store holds schema 'a', not 'b'") unless
 *   opts->flags has KIVIS_OPEN_RENAME_SCHEMA;
 * - tables the store does not know yet are added (new ids, never reusing
 *   old ones), fields appended to a table and indexes added or dropped are
 *   applied (docs/engine.md), a new index built over the stored records
 *   (opts->progress follows the build);
 * - the changes schema->changes declares (renamed and dropped tables and
 *   fields) are applied, and so are fields moved, widened (int32_t to
 *   int64_t, an unsigned type to a wider one, float to double, char[N] to
 *   char[M] with M > N or to char *), made [[optional]], and enums that
 *   gained values: the records of a table whose values change are
 *   rewritten and its indexes rebuilt (opts->progress follows both);
 * - a table stored in the old layout of one of schema->migrations (typed
 *   migrations, kivis-gen --previous) has every record converted by its
 *   function (called with opts->migrate_ctx) and written back under the
 *   same key, and its indexes rebuilt (opts->progress follows both); a failing function fails the open
 *   with its status, a changed key with KIVIS_ESCHEMA;
 * - a unique index new to the store that its records violate fails with
 *   KIVIS_ECONSTRAINT listing the first keys that collide and how many;
 * - tables the store holds but `schema` does not name (and does not
 *   declare dropped) are kept with their records, untouched
 *   (kivis_kept_tables lists them);
 * - any other difference fails with KIVIS_ESCHEMA and a message naming the
 *   table and field and what changed ("field 'age' was uint32_t, now
 *   int16_t").
 * All of it happens in one write transaction: on failure, or a crash
 * before it commits, nothing is changed.
 *
 * The db does not own `st`; close the db first.  `schema` must outlive it.
 * On failure the detail goes to opts->errbuf when one is given.
 * @return KIVIS_OK; KIVIS_EINVAL (NULL argument, malformed descriptor);
 *         KIVIS_ESCHEMA; KIVIS_ECONSTRAINT; KIVIS_ECORRUPT (unreadable
 *         stored schema or record); KIVIS_EVERSION; KIVIS_ENOMEM; storage errors.  *out = NULL on error.
 */
int kivis_open(kivis_storage *st, const kivis_schema_desc *schema,
               const kivis_options *opts, kivis_db **out);

/**
 * The tables the store held at kivis_open that the db's schema does not
 * name: dropped from the schema or renamed in it.  Their records stay in
 * the store (opening never deletes data by omission); kivis_check and
 * kivis_stats walk and count them with their stored layout.
 * @return how many; *names (when names is not NULL) receives their names,
 *         in stored order, valid until kivis_close.  0 for a NULL db.
 */
uint32_t kivis_kept_tables(const kivis_db *db, const char *const **names);

/**
 * Close a handle, aborting an open transaction.  Scans still open on it
 * are ended: kivis_scan_next on them returns KIVIS_EINVAL and
 * kivis_scan_close only frees them.  The handle must not be used after
 * this (as with free).  NULL is a no-op.
 */
void kivis_close(kivis_db *db);

/**
 * Detail of the last failure on this handle; "" if none.  An error about
 * a field names the record and the field path, with the element of an
 * array: "user.tags[2]: string is not valid UTF-8", "note.labels[0].on:
 * value out of range for its field".
 * Valid until the next call on the handle.  db may be NULL (gives "").
 */
const char *kivis_errmsg(const kivis_db *db);

/** The schema descriptor db was opened with (borrowed: the caller's, as
 *  given to kivis_open); NULL for a NULL db. */
const kivis_schema_desc *kivis_db_schema(const kivis_db *db);

/**
 * Check that db was opened with exactly `schema` (the same descriptor
 * object).  Generated functions call it first, so that a handle cast from
 * another schema's type is refused instead of misread.  One comparison.
 * @return KIVIS_OK; KIVIS_ESCHEMA (kivis_errmsg names both schemas);
 *         KIVIS_EINVAL (NULL argument).
 */
int kivis_db_expect(kivis_db *db, const kivis_schema_desc *schema);

/** Find a table by name.  @return its position in the schema, or -1. */
int kivis_table(const kivis_db *db, const char *name);

/** Find an index of a table by name.  @return its position, or -1. */
int kivis_index(const kivis_db *db, uint32_t table, const char *name);

/* ---- transactions --------------------------------------------------- */

/**
 * Begin a write transaction on the handle.  Until kivis_commit or
 * kivis_abort, every operation on the handle runs inside it.
 * @return KIVIS_OK, KIVIS_EINVAL (one is already open), KIVIS_EBUSY,
 *         KIVIS_ENOMEM, storage errors.
 */
int kivis_begin(kivis_db *db);

/**
 * Begin a read-only transaction: until kivis_commit or kivis_abort (either
 * ends it), gets, scans and index lookups on the handle read one
 * transaction of the backend (a consistent snapshot on LMDB, SQLite and
 * RocksDB), which also saves beginning one per read.  Writes fail with
 * KIVIS_EINVAL and leave the transaction usable.  Gets inside it bypass the
 * record cache.
 * @return as kivis_begin.
 */
int kivis_begin_read(kivis_db *db);

/**
 * Commit the open transaction atomically.  The transaction ends whatever
 * the result; on failure none of it is applied.
 * @return KIVIS_OK; KIVIS_EINVAL (none open); KIVIS_EBADTXN (poisoned: it was
 *         aborted instead); storage errors (KIVIS_EIO, KIVIS_EFULL, ...).
 */
int kivis_commit(kivis_db *db);

/** Abort the open transaction, if any, discarding its writes. */
void kivis_abort(kivis_db *db);

/* ---- records -------------------------------------------------------- */

/**
 * Store `record` under the key its table's strategy gives: the next
 * auto-increment id (one past the highest the table ever issued, so an id
 * is never reused after its record is removed; the table's counter is
 * written in the same transaction), its [[key]] fields, or derive_key.
 * An existing record under that key is replaced together with its index
 * entries (an upsert: kivis_add refuses to replace, kivis_update refuses
 * to create).  key_out (may be NULL) receives the key; it owns no memory
 * of the db's (string key fields point into `record`).
 * @return KIVIS_OK; KIVIS_EINVAL; KIVIS_ECONSTRAINT (a [[unique]] index
 *         already holds the value, or a field with a referential action
 *         names a record that does not exist; nothing written); KIVIS_EKEYSIZE;
 *         KIVIS_EOVERFLOW (auto-increment ids exhausted); KIVIS_EUTF8;
 *         KIVIS_ERANGE (enum value not declared, unterminated char[N]);
 *         KIVIS_EBADTXN; KIVIS_ENOMEM; storage errors.
 */
int kivis_put(kivis_db *db, uint32_t table, const void *record,
              void *key_out);

/**
 * Store `record` under the explicit `key` (insert or overwrite: an
 * upsert, as kivis_put; an overwrite removes the old record's index
 * entries in the same write).
 * For KEY_FIELDS and KEY_DERIVED tables the key must equal the one the
 * record's fields give, else KIVIS_EINVAL.  For an auto-increment table a
 * key above every id issued raises the table's counter to it.  Codes as
 * kivis_put.
 */
int kivis_insert(kivis_db *db, uint32_t table, const void *key,
                 const void *record);

/**
 * Add `record` under the key its table's strategy gives, only when no
 * record is there: kivis_put that never replaces.  For an auto-increment
 * table the key is a new id, as with kivis_put; for a table keyed by its
 * fields or by derive_key, a record already under that key (for a derived
 * key: another record deriving the same key) fails with KIVIS_EEXIST and
 * nothing is written.  key_out as in kivis_put (zeroed on failure).
 * @return KIVIS_OK; KIVIS_EEXIST; codes as kivis_put.
 */
int kivis_add(kivis_db *db, uint32_t table, const void *record,
              void *key_out);

/**
 * Replace the record under `key` with `record`, only when one is there:
 * KIVIS_NOTFOUND (nothing written) when the key holds none.  Index entries
 * are moved as by an overwrite.  `key` may be NULL for KEY_FIELDS and
 * KEY_DERIVED tables: the key the record's own fields give; a key given
 * must equal that one (KIVIS_EINVAL otherwise).  An auto-increment table
 * needs the key (the record does not hold its id).
 * @return KIVIS_OK; KIVIS_NOTFOUND; codes as kivis_put.
 */
int kivis_update(kivis_db *db, uint32_t table, const void *key,
                 const void *record);

/**
 * Fetch the record under `key` into *record_out (overwritten; the caller
 * clears it with kivis_record_clear when it holds owned members).
 * @return KIVIS_OK; KIVIS_NOTFOUND (record_out zeroed); KIVIS_ECORRUPT;
 *         KIVIS_EINVAL; KIVIS_ENOMEM (record_out zeroed); storage errors.
 */
int kivis_get(kivis_db *db, uint32_t table, const void *key,
              void *record_out);

/**
 * kivis_get without allocating: the record's strings and blobs (char *,
 * kivis_bytes members) are placed in buf, size bytes of the caller's,
 * as getpwnam_r does.  The record then owns nothing: do not clear it; its
 * pointers live as long as buf, which one record needs at most the sum of
 * its strings' lengths plus one each, and its blobs' lengths.
 * @return as kivis_get; KIVIS_ETOOSMALL when buf is too small (record_out
 *         zeroed, kivis_errmsg says how many bytes it needed at least).
 */
int kivis_get_into(kivis_db *db, uint32_t table, const void *key,
                   void *record_out, void *buf, size_t size);

/**
 * A hint, inside a transaction: its next gets, updates and removes will
 * touch the records of `keys` (an array of n key structs of the table,
 * borrowed for the call).  A backend whose reads are round trips
 * (PostgreSQL) reads them all in one request and answers those reads from
 * it; the others do nothing.  Results never change.  Use it before a loop
 * that reads or rewrites many known records in one transaction.  Outside a
 * transaction it does nothing (there is nothing to keep the reads in).
 * @return KIVIS_OK; KIVIS_EINVAL (NULL db, keys with n > 0, no such
 *         table); KIVIS_EUTF8, KIVIS_ERANGE, KIVIS_EKEYSIZE (a key no
 *         record could have); KIVIS_EBADTXN; KIVIS_ENOMEM; the read's
 *         storage error (the transaction is still usable: each read then
 *         asks for itself).
 */
int kivis_prefetch(kivis_db *db, uint32_t table, const void *keys, size_t n);

/**
 * Remove the record under `key` and its index entries.  When fields with a
 * referential action refer to it (kivis_index_desc, KIVIS_INDEX_RESTRICT /
 * KIVIS_INDEX_CASCADE), the records they belong to are found first, by
 * prefix scans of their indexes: restrict anywhere in what the remove
 * reaches fails it; cascade removes them too (and theirs, each once), all
 * in the one transaction.
 * @return KIVIS_OK; KIVIS_NOTFOUND (nothing there); KIVIS_ECONSTRAINT (a
 *         restrict; nothing removed, a user transaction stays usable);
 *         errors as kivis_put.
 */
int kivis_remove(kivis_db *db, uint32_t table, const void *key);

/**
 * Free what a get or scan allocated inside a record (char *, kivis_bytes
 * members) and zero it.  Only for records filled by this db.
 */
void kivis_record_clear(kivis_db *db, uint32_t table, void *record);

/** As kivis_record_clear, for a key struct filled by a scan. */
void kivis_key_clear(kivis_db *db, uint32_t table, void *key);

/* ---- typed record cache --------------------------------------------- */

/** Counters of one table's record cache (kivis_cache_get_stats). */
typedef struct kivis_cache_stats {
    uint64_t hits;          /* kivis_get answered from the cache */
    uint64_t misses;        /* kivis_get outside a transaction that read storage */
    uint64_t bypasses;      /* kivis_get inside a transaction (never cached) */
    uint64_t invalidations; /* entries dropped by put, insert, remove, clear */
    uint64_t evictions;     /* entries dropped to make room (least recently used) */
    size_t records;         /* entries held now */
    size_t capacity;        /* the bound given to kivis_cache_enable */
} kivis_cache_stats;

/**
 * Put a cache of up to `max_records` decoded records in front of
 * kivis_get for `table` (0 removes it; a new bound empties it).  A get
 * outside a transaction is answered from the cache when it holds the key
 * (a deep copy into record_out, still cleared with kivis_record_clear), and
 * otherwise fills it after reading storage.  Gets inside a transaction
 * bypass the cache, so uncommitted writes never enter it.  Every put,
 * insert and remove through this handle drops the key first, committed or
 * not.  Writes by other handles or processes are not seen through a cached
 * key until it is evicted or kivis_cache_clear drops it.  Scans and index
 * lookups always read storage.  A cache that runs out of memory only misses.
 * Memory: the db's allocator; freed by kivis_close.
 * @return KIVIS_OK; KIVIS_EINVAL (no such table, absurd bound); KIVIS_ENOMEM.
 */
int kivis_cache_enable(kivis_db *db, uint32_t table, size_t max_records);

/** Read the counters of `table`'s cache into *out.
 *  @return KIVIS_OK; KIVIS_NOTFOUND (no cache: *out zeroed); KIVIS_EINVAL. */
int kivis_cache_get_stats(const kivis_db *db, uint32_t table,
                          kivis_cache_stats *out);

/** Drop every entry of `table`'s cache (after another writer changed the
 *  store).  Counters stay; the dropped entries count as invalidations. */
void kivis_cache_clear(kivis_db *db, uint32_t table);

/* ---- scans and index lookups ---------------------------------------- */

/** kivis_query.mode */
enum kivis_query_mode {
    KIVIS_Q_ALL = 0, /* every entry */
    KIVIS_Q_EQ,      /* entries whose key (or indexed value) equals lo */
    KIVIS_Q_RANGE,   /* lo <= value < hi; a NULL bound is unbounded */
    KIVIS_Q_PREFIX,  /* first key field / indexed value (string or bytes)
                        starts with prefix[0..prefix_len) */
    KIVIS_Q_ABSENT   /* entries of a non-unique index over an [[optional]]
                        field whose value is absent (lo, hi unused) */
};

/** kivis_query.flags */
#define KIVIS_REVERSE 0x1u /* highest first */

/**
 * What a scan visits.  With index < 0 it walks the table by primary key and
 * lo/hi point at key structs.  With index >= 0 it walks that index and lo/hi
 * point at a value of the indexed field's C type (for a char * field, at a
 * char *).  Entries come in key order (index order, then primary key).
 * Over an [[optional]] field, EQ, RANGE and PREFIX only meet present values
 * (a RANGE without lo starts at the lowest present one), ALL meets the
 * absent ones first, and KIVIS_Q_ABSENT meets only those; a unique index
 * holds no absent values.  kivis_distinct_open over ALL gives the absent
 * ones as a first group whose value is zeroed, which a present zero also
 * is: a RANGE without bounds leaves them out.
 */
typedef struct kivis_query {
    uint32_t table;
    int32_t index;
    uint32_t mode;
    const void *lo;
    const void *hi;
    const void *prefix;
    size_t prefix_len;
    uint32_t flags;
} kivis_query;

/**
 * Open a scan.  Outside a transaction it runs in a read transaction of its
 * own (a snapshot) until closed.  Inside one it sees the writes made before
 * it opened, and visits the keys its range held at open, each at most once:
 * keys the transaction writes into its range while it runs are not visited
 * unless they were there at open, keys removed before it reaches them are
 * not visited, and the others are read as they are when reached (no
 * Halloween problem: a loop that moves each record to a later index value
 * meets each once).  When that transaction ends (commit or abort) the scan
 * ends too: kivis_scan_next then returns KIVIS_EINVAL, and it must still be
 * closed.  kivis_close ends every scan of the db likewise.
 * @return KIVIS_OK; KIVIS_EINVAL (bad table, index, mode or bounds);
 *         KIVIS_ENOMEM; storage errors.
 */
int kivis_scan_open(kivis_db *db, const kivis_query *q, kivis_scan **out);

/**
 * Step to the next entry.  key_out (a key struct) and record_out may each
 * be NULL; what they receive is owned by the caller (kivis_key_clear,
 * kivis_record_clear).  With record_out NULL nothing but the key is
 * decoded: a record scan leaves the value undecoded, and an index scan
 * reads only its index entries (the primary key is their tail) and never
 * fetches a record, which makes a key-only index scan as cheap as a count.
 * @return KIVIS_OK; KIVIS_NOTFOUND at the end; KIVIS_ECORRUPT (an index
 *         entry whose record is missing, or undecodable bytes); errors.
 */
int kivis_scan_next(kivis_scan *scan, void *key_out, void *record_out);

/**
 * kivis_scan_next without allocating: strings and blobs of the key and the
 * record go into buf (size bytes), as in kivis_get_into; clear neither.
 * On KIVIS_ETOOSMALL the scan stays where it was: the next call (with a
 * larger buffer) returns the same entry, or the one after it if a write
 * removed it meanwhile.
 * @return as kivis_scan_next; KIVIS_ETOOSMALL (key_out and record_out
 *         zeroed).
 */
int kivis_scan_next_into(kivis_scan *scan, void *key_out, void *record_out,
                         void *buf, size_t size);

/** Close a scan.  NULL is a no-op. */
void kivis_scan_close(kivis_scan *scan);

/* ---- counts, existence and distinct values ---------------------------- */

/**
 * Count the entries of q's range, exactly: records for a primary-key query
 * (index < 0), index entries for an index query (one per record whose
 * indexed value is in range; EQ, RANGE and PREFIX as for kivis_scan_open).
 * It steps the storage cursor over the range a scan would visit and
 * decodes nothing: no value is decoded and no record fetched, so it costs
 * a fraction of a decoding scan (docs/bench.md) but still one step per
 * entry, not a stored total.  Inside a transaction it counts what the
 * transaction sees, its own writes included; outside one, a snapshot.
 * KIVIS_REVERSE is accepted and changes nothing.
 * @return KIVIS_OK with *out set; KIVIS_EINVAL (NULL argument, or a query
 *         kivis_scan_open refuses); KIVIS_EBADTXN; KIVIS_ENOMEM; storage
 *         errors.  *out is 0 on any error.
 */
int kivis_count(kivis_db *db, const kivis_query *q, uint64_t *out);

/**
 * Whether a record is stored under `key` (a key struct of the table): one
 * storage get of the record key; the value is not decoded and the record
 * cache is not consulted.  Sees the open transaction's writes.
 * @return KIVIS_OK (stored); KIVIS_NOTFOUND; KIVIS_EINVAL (NULL argument,
 *         no such table); KIVIS_EUTF8, KIVIS_ERANGE (a key field no record
 *         could hold); KIVIS_EKEYSIZE; KIVIS_EBADTXN; storage errors.
 */
int kivis_exists(kivis_db *db, uint32_t table, const void *key);

typedef struct kivis_distinct kivis_distinct;

/**
 * Open an iteration over the distinct values of an index inside q's range
 * (q->index >= 0, any mode; KIVIS_REVERSE walks them highest first): each
 * value once, in index order, with the number of records holding it.  It
 * walks the index entries only, never a record: an entry whose encoded
 * value has the bytes of the current group's (the key encoding is
 * prefix-free) is counted without decoding, and each group's value is
 * decoded once.  It runs on a scan and follows its rules (kivis_scan_open):
 * outside a transaction a snapshot of its own, inside one it sees the
 * transaction's writes and ends with it; kivis_close ends it too.
 * @return KIVIS_OK; KIVIS_EINVAL (NULL argument, a record query, or a
 *         query kivis_scan_open refuses); KIVIS_ENOMEM; storage errors.
 */
int kivis_distinct_open(kivis_db *db, const kivis_query *q,
                        kivis_distinct **out);

/**
 * The next distinct value and how many index entries (records) hold it.
 * value_out (may be NULL) points at a value of the indexed field's C type,
 * as a query bound does (for a char * field, at a char *).  Its strings
 * and blobs belong to the iteration: valid until the next call or
 * kivis_distinct_close, never freed by the caller.  Counting steps over
 * every entry of the group; with count NULL the group is passed over by
 * one seek of the storage cursor instead, so listing the values alone
 * costs about one lookup per value, whatever the records per value.
 * @return KIVIS_OK; KIVIS_NOTFOUND at the end; KIVIS_ECORRUPT (an entry
 *         that does not decode); errors as kivis_scan_next.  value_out is
 *         zeroed and *count 0 on anything but KIVIS_OK.
 */
int kivis_distinct_next(kivis_distinct *d, void *value_out, uint64_t *count);

/** Close a distinct-value iteration, freeing its last value.  NULL is a
 *  no-op; allowed after kivis_close of its db. */
void kivis_distinct_close(kivis_distinct *d);

/* ---- watches: committed changes of one table -------------------------- */

typedef struct kivis_watch kivis_watch;

/** What kivis_watch_next reports besides the key. */
typedef struct kivis_watch_event {
    int kind;     /* KIVIS_CHANGE_INSERT, _UPDATE, _DELETE (a remove), or
                     _RESYNC: changes were lost, re-read the table */
    uint64_t pos; /* the storage feed's position: resume after it */
} kivis_watch_event;

/**
 * Watch the records of `table`: the key and kind of each record a commit
 * inserts, updates or removes, after the commit, in commit order, never
 * for an aborted transaction.  It rides on the storage's change feed
 * (kivis_feed_open), so it sees every commit through the same storage
 * object (any handle, any thread) and, on PostgreSQL, every client's.
 * Index entries and other tables are filtered out.  after: KIVIS_FEED_NOW
 * or a kivis_watch_event.pos seen before (resume).  The watch may be read
 * by another thread than the db's; close it before the db.
 * @return KIVIS_OK; KIVIS_EINVAL (bad table, NULL argument); KIVIS_ENOTSUP
 *         (the storage has no feed); KIVIS_ENOMEM; feed errors.
 */
int kivis_watch_open(kivis_db *db, uint32_t table, uint64_t after,
                     kivis_watch **out);

/**
 * The next change of the table, waiting up to timeout_ms (0: not at all,
 * -1: forever).  key_out (a key struct of the table; may be NULL) receives
 * the record's key, zeroed for a resync; clear it with kivis_key_clear.
 * On PostgreSQL a client transaction that writes a record twice reports it
 * twice; local backends report each record once per commit, with the
 * commit's net kind.
 * @return KIVIS_OK; KIVIS_NOTFOUND (nothing in time); KIVIS_ECORRUPT (an
 *         undecodable key); KIVIS_ENOMEM; feed errors.
 */
int kivis_watch_next(kivis_watch *w, int timeout_ms, kivis_watch_event *ev,
                     void *key_out);

/** The feed's descriptor to poll(2) on (kivis_feed_fd): drain
 *  kivis_watch_next(w, 0, ...) until KIVIS_NOTFOUND, then poll.  -1 if none. */
int kivis_watch_fd(const kivis_watch *w);

/** Close a watch.  NULL is a no-op. */
void kivis_watch_close(kivis_watch *w);

#ifdef __cplusplus
}
#endif

#endif /* KIVIS_H */
