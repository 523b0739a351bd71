/* SPDX-License-Identifier: MIT */
/*
 * kivis/jsonl.h - JSON Lines export and import of a kivis database,
 * through its schema (libkivis-jsonl, built when jansson is found:
 * KIVIS_WITH_JSON).
 *
 * One record per line, members in this order (docs/cli.md, "JSON Lines"):
 *
 *   {"table":"user","key":{"id":1},"record":{"name":"Ann","age":31}}
 *
 * Key and record members follow the schema's field order.  Integers are
 * JSON integers, except a uint64_t above INT64_MAX, which is a string of
 * its decimal digits; floats are the shortest decimal that reads back to
 * the same bits, with "Infinity", "-Infinity", "NaN" (the default NaN) and
 * "NaN:0x<bits>" (any other NaN) as strings; bools are true/false; enums
 * their declared names; strings and char[N] JSON strings; kivis_bytes
 * base64 (RFC 4648, padded); arrays JSON arrays; nested structs and
 * foreign keys (a referenced table's key) objects.  Export, import and
 * export again gives the same bytes, whatever the backends.
 *
 * This layer sits above the record engine: it uses kivis.h, the schema
 * descriptors and kivis/inspect.h only, never the codec or storage bytes.
 */
#ifndef KIVIS_JSONL_H
#define KIVIS_JSONL_H

#include "../kivis.h"

#include <stdbool.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/** One rejected line of an import, valid during the callback only. */
typedef struct kivis_jsonl_error {
    uint64_t line;       /* 1-based line of the input; 0 when not a line's */
    const char *table;   /* the line's table, "" before it is known */
    const char *field;   /* the field's path ("where.x", "samples[2]"), or "" */
    const char *message; /* one line, no trailing newline */
} kivis_jsonl_error;

/** Options of an export or import.  Zero-initialised means defaults. */
typedef struct kivis_jsonl_options {
    /** import: lines per write transaction; 0 for 1000. */
    size_t batch;
    /** import: false (default) stops at the first bad line, aborting its
     *  batch; true reports it, leaves it out, and goes on. */
    bool skip_bad;
    /** Called with ctx for each bad line (import) and each failure; may
     *  be NULL. */
    void (*error)(void *ctx, const kivis_jsonl_error *e);
    /** Called every few hundred records with the records done so far and
     *  the input bytes read (import; 0 on export); may be NULL. */
    void (*progress)(void *ctx, uint64_t records, uint64_t bytes);
    void *ctx;
} kivis_jsonl_options;

/** What an export or import did.  The first error is kept in it. */
typedef struct kivis_jsonl_report {
    uint64_t lines;    /* import: lines read (blank ones included) */
    uint64_t records;  /* records written to out, or committed to the db */
    uint64_t rejected; /* import: bad lines */
    uint64_t line;     /* the first error: its line (0: none or not a line's) */
    char table[64];    /* and its table, field and message ("" if none) */
    char field[128];
    char message[256];
} kivis_jsonl_report;

/**
 * Write the records of `tables` (ntables names; NULL or 0 for every table
 * of the db's schema, in schema order), each table in key order, one line
 * per record, all read in one read transaction of db's (none may be open).
 * report (may be NULL) counts the records and keeps the failure.
 * @return KIVIS_OK; KIVIS_NOTFOUND (a table name the schema lacks: nothing
 *         written); KIVIS_EIO (writing `out` failed); KIVIS_EINVAL;
 *         KIVIS_ENOMEM; errors of the reads (KIVIS_ECORRUPT ...).
 */
int kivis_export_jsonl(kivis_db *db, const char *const *tables, size_t ntables,
                       FILE *out, const kivis_jsonl_options *opts,
                       kivis_jsonl_report *report);

/**
 * Read JSON Lines from `in` and store each record under its key
 * (kivis_insert: a record already under that key is replaced).  Each line
 * is checked against db's schema before it is written: one object with
 * exactly "table", "key" and "record", a known table, every field present
 * once, no unknown field, each value of its field's type and range (char[N]
 * length, enum names, base64, array lengths), strings valid UTF-8 without
 * NUL; then the engine checks keys and unique indexes.  A KEY_FIELDS or
 * KEY_DERIVED table's key must be the one its record gives.
 *
 * Lines are written in batches of opts->batch, one write transaction each
 * (none may be open on db).  A bad line is reported with its line number,
 * table and field; by default the import stops there, its batch aborted (no
 * record of it written; earlier batches stay committed); with skip_bad it
 * is left out and the batch goes on.  Blank lines are skipped.
 * @return KIVIS_OK (with skip_bad, also when lines were rejected: see
 *         report->rejected); KIVIS_EINVAL (a bad line, or bad arguments);
 *         the engine's code for a line it refused (KIVIS_ECONSTRAINT,
 *         KIVIS_EKEYSIZE, ...); KIVIS_EIO (reading `in`); KIVIS_ENOMEM;
 *         storage errors (the batch aborted).
 */
int kivis_import_jsonl(kivis_db *db, FILE *in, const kivis_jsonl_options *opts,
                       kivis_jsonl_report *report);

/**
 * Open a db over the schema stored in `st` (kivis_schema_load) that can
 * import into every table: a KEY_DERIVED table, whose key function the
 * store cannot hold, takes the key the imported line gives.  Outside
 * kivis_import_jsonl such a table is read-only (KIVIS_ENOTSUP), as with
 * any loaded schema.  opts as kivis_open's (may be NULL).  Close with
 * kivis_jsonl_close.
 * @return as kivis_schema_load and kivis_open.
 */
int kivis_jsonl_open(kivis_storage *st, const kivis_options *opts, kivis_db **out);

/** Close a db from kivis_jsonl_open and free its schema.  NULL is a no-op. */
void kivis_jsonl_close(kivis_db *db);

#ifdef __cplusplus
}
#endif

#endif /* KIVIS_JSONL_H */
