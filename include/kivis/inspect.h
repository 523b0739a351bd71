/* SPDX-License-Identifier: MIT */
/*
 * kivis/inspect.h - reading a store without its compiled schema, and
 * verifying it: what the `kivis` command-line tool is built on.
 *
 * kivis_schema_load turns the stored schema of table 0 into a runtime
 * descriptor, so that kivis_open, kivis_get and kivis_scan work on any
 * kivis store, including tables no compiled schema declares any more.
 * kivis_check walks a whole database and reports every inconsistency
 * between records and index entries; kivis_stats only counts.
 */
#ifndef KIVIS_INSPECT_H
#define KIVIS_INSPECT_H

#include "../kivis.h"

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- the stored schema as a descriptor -------------------------------- */

/**
 * Build a complete descriptor from the schema stored in `st`: every table
 * in stored order (so table i of the descriptor is the i-th stored table),
 * fields with kinds, array counts, char[N] sizes, enums, nested structs
 * and foreign keys (a KIVIS_STRUCT named after the referenced key type),
 * key strategies and indexes.  Struct layouts (offsets, sizes) are those
 * a C compiler of this ABI gives the declared structs, so records can be
 * read into buffers of `record->size` bytes.  Record structs are named
 * after their table, key structs "<table>_key".  A KIVIS_KEY_DERIVED table
 * gets a derive_key that returns KIVIS_ENOTSUP: its records can be read,
 * not written.
 *
 * The descriptor and all it points to are owned by the caller and freed
 * with kivis_schema_free, with the same allocator, after every db opened
 * with it is closed.  alloc may be NULL for the default allocator.
 * @return KIVIS_OK; KIVIS_NOTFOUND (no stored schema: an empty store or
 *         not a kivis store); KIVIS_ECORRUPT (malformed stored schema);
 *         KIVIS_EVERSION (a stored schema format this build cannot read);
 *         KIVIS_EINVAL (NULL st or out); KIVIS_ENOMEM; storage errors.
 *         *out = NULL on failure.
 */
int kivis_schema_load(kivis_storage *st, const kivis_allocator *alloc,
                      kivis_schema_desc **out);

/**
 * Lay out a descriptor built at run time (the kivis tool builds one from a
 * .kvs file to migrate a store to it) exactly as kivis_schema_load lays
 * out the stored schema's: every field's element `size` and `offset`, and
 * every struct's `size`, nested structs first, as a C compiler of this ABI
 * would lay out the declared structs (`bool has_F;` before an optional
 * F).  The caller fills in the rest: names, kinds, counts, flags, a
 * KIVIS_CHARS field's size N, a KIVIS_STRUCT field's `type`, a KIVIS_ENUM
 * field's `enm`, tables, keys, indexes and changes.  A KIVIS_KEY_DERIVED
 * table without derive_key gets one returning KIVIS_ENOTSUP (the store's
 * records can be read and migrated, not written).
 *
 * The structs, fields and tables are written through the descriptor's
 * const pointers: they must be the caller's writable memory, not static
 * const data.  A struct reached twice is laid out twice, the same way.
 * @return KIVIS_OK; KIVIS_EINVAL (NULL s, a table without record or key,
 *         an unknown kind, a KIVIS_STRUCT without type, char[0], nesting
 *         deeper than 16, a struct over 1 GiB).
 */
int kivis_schema_layout(kivis_schema_desc *s);

/** Free a descriptor from kivis_schema_load.  NULL is a no-op. */
void kivis_schema_free(kivis_schema_desc *s, const kivis_allocator *alloc);

/* ---- verification ------------------------------------------------------ */

/** What kind of inconsistency kivis_check found. */
typedef enum kivis_check_kind {
    KIVIS_CHECK_BAD_RECORD = 1, /* a record whose key or value does not decode */
    KIVIS_CHECK_MISSING_ENTRY,  /* a record lacks one of its index entries */
    KIVIS_CHECK_STALE_ENTRY,    /* an index entry whose record is missing or
                                   holds another value */
    KIVIS_CHECK_BAD_ENTRY,      /* an index entry that does not decode */
    KIVIS_CHECK_UNKNOWN_TABLE,  /* a key under a table id the schema lacks */
    KIVIS_CHECK_UNKNOWN_SLOT,   /* a key under a known table but no record
                                   range or index of it */
    KIVIS_CHECK_DANGLING_REF    /* a record whose foreign-key field with a
                                   referential action names a missing record */
} kivis_check_kind;

/** One problem, valid only during the report callback. */
typedef struct kivis_check_problem {
    kivis_check_kind kind;
    const char *table;   /* the table's name; NULL for an unknown table */
    const char *index;   /* the index's name, or NULL */
    const char *key_hex; /* the offending storage key, lowercase hex */
    const char *message; /* one line, no trailing newline */
} kivis_check_problem;

/** Receives each problem; ctx is kivis_check's ctx. */
typedef void (*kivis_check_fn)(void *ctx, const kivis_check_problem *problem);

/** Counts of one table. */
typedef struct kivis_table_stats {
    const char *name; /* the table's name (borrowed from the schema, or
                         held by the stats for a kept table) */
    bool kept;        /* stored but not named by the db's schema
                         (kivis_kept_tables): walked with its stored layout */
    uint64_t records;
    uint64_t index_entries;
    uint64_t key_bytes;   /* of its records and index entries */
    uint64_t value_bytes; /* of its records */
} kivis_table_stats;

/**
 * Counts of a whole database.  Zero it, optionally set progress, and hand
 * it to kivis_check or kivis_stats; free it with kivis_stats_free.
 */
typedef struct kivis_check_stats {
    /* in: called every few thousand keys with ctx and the keys visited so
     * far out of the total (a first pass counts them); may be NULL. */
    void (*progress)(void *ctx, uint64_t done, uint64_t total);
    void *progress_ctx;
    /* out */
    uint32_t ntables;          /* the db's schema's tables + kept tables */
    kivis_table_stats *tables; /* one per schema table, in schema order,
                                  then one per kept table, in stored order */
    uint64_t keys;             /* every key in the store, metadata too */
    uint64_t key_bytes;
    uint64_t value_bytes;
    uint64_t problems; /* kivis_check: how many were reported */
    /* kivis_check: foreign-key fields without a referential action that
     * name a missing record.  Not problems: nothing promised otherwise. */
    uint64_t warnings;
} kivis_check_stats;

/**
 * Verify the database: every record decodes; every index entry decodes,
 * points at a live record, and holds the re-encoded value of that record's
 * field; every record has each of its index entries; no key lies under an
 * unknown table id or slot; every foreign-key field with a referential
 * action names a stored record (KIVIS_CHECK_DANGLING_REF).  A foreign-key
 * field without one (a KIVIS_STRUCT field of a table's key type) naming a
 * missing record is counted in stats->warnings, not reported.  Tables the store holds that the db's schema
 * does not name (kivis_kept_tables) are verified too, with the layout the
 * stored schema gives them, so the verdict does not depend on which schema
 * the db was opened with: through the application's schema it is the same
 * as through kivis_schema_load's (the kivis tool's).  Everything is read in
 * one read transaction (the user's transaction when one is open).  Each problem goes to
 * `report` (may be NULL) and is counted in stats->problems.
 * stats may be NULL; when given, the caller frees it with kivis_stats_free.
 * @return KIVIS_OK (consistent); KIVIS_ECORRUPT (problems were found);
 *         KIVIS_EINVAL; KIVIS_ENOMEM; storage errors (the walk stopped).
 */
int kivis_check(kivis_db *db, kivis_check_fn report, void *ctx,
                kivis_check_stats *stats);

/**
 * Count records, index entries and bytes per table without decoding
 * anything: the same walk as kivis_check, minus the verification.
 * Free stats with kivis_stats_free.
 * @return KIVIS_OK; KIVIS_EINVAL; KIVIS_ENOMEM; storage errors.
 */
int kivis_stats(kivis_db *db, kivis_check_stats *stats);

/** Free what kivis_check or kivis_stats allocated in stats (the tables
 *  array), keeping its other counts.  db must be the one that filled it. */
void kivis_stats_free(kivis_db *db, kivis_check_stats *stats);

#ifdef __cplusplus
}
#endif

#endif /* KIVIS_INSPECT_H */
