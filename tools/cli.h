/*
 * tools/cli.h - the parts of the kivis command-line tool (tools/kivis.c):
 * opening a store of any backend (store.c), the value notation dump prints
 * and get/find parse (notation.c), the stored schema as .kvs source
 * (kvs.c), a .kvs file as a descriptor (kvsload.c), migrating a store to
 * it (migrate.c) and progress bars (progress.c).
 */
#ifndef KIVIS_TOOLS_CLI_H
#define KIVIS_TOOLS_CLI_H

#include <kivis.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

enum { EXIT_PROBLEMS = 1, EXIT_ERROR = 2 };

/** Print "kivis: <message>" on stderr.  @return EXIT_ERROR. */
int cli_fail(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

/* ---- stores (store.c) ------------------------------------------------- */

/** One backend the tool opens: a row of store.c's table. */
typedef struct cli_backend {
    const char *scheme; /* "lmdb": the URI scheme, "lmdb:PATH" */
    const char *what;   /* "an LMDB directory", for messages */
    /* A local store is a path that must exist; NULL for a network one.
     * @return NULL when `path` has this backend's shape, else what it
     * lacks ("no data.mdb in it"). */
    const char *(*shape)(const char *path);
    /* Open an existing store; never creates one. */
    int (*open)(const char *location, kivis_storage **out);
    /* A consistent, compacted copy at dest (which does not exist). */
    int (*backup)(kivis_storage *st, const char *dest);
    /* Compact in place; NULL when the backend cannot while others may
     * have the store open (compact_hint says what to do instead). */
    int (*compact)(kivis_storage *st);
    const char *compact_hint;
    /* Extra lines for `kivis stats` (map size ...); may be NULL. */
    void (*stats)(kivis_storage *st, FILE *out);
} cli_backend;

/** An open store and its stored schema. */
typedef struct cli_store {
    const char *name; /* as the user wrote it */
    const char *location; /* after the scheme */
    const cli_backend *backend;
    kivis_storage *st;
    kivis_schema_desc *schema;
    kivis_db *db;
} cli_store;

/** Find the backend of `arg` (a URI or a plain path, sniffed), without
 *  opening it.  On failure prints why.  @return 0 or EXIT_ERROR. */
int cli_locate(const char *arg, const cli_backend **backend, const char **location);

/** Locate and open `arg` and load its stored schema into s->schema, with
 *  no db (s->db NULL).  On failure prints why; close the store either
 *  way.  @return 0 or EXIT_ERROR. */
int cli_open_storage(cli_store *s, const char *arg);

/** cli_open_storage, then open a db with the stored schema.
 *  @return 0 or EXIT_ERROR. */
int cli_open(cli_store *s, const char *arg);

/** Close what cli_open opened. */
void cli_close(cli_store *s);

/** A storage error rc while `doing` (may be NULL) on s: print it.
 *  @return EXIT_ERROR. */
int cli_read_failed(const cli_store *s, const char *doing, const char *table, int rc);

/** The schemes the tool knows, for the usage text: "lmdb, sqlite, ...". */
void cli_print_schemes(FILE *out);

/* ---- notation (notation.c) -------------------------------------------- */

/** Whether `name` is some table's key type ("user_key"): a foreign key. */
bool cli_is_key_type(const kivis_schema_desc *schema, const char *name);

/** Print a struct as dump does: {a: 1, b: 2}, or {1, 2} when positional. */
void cli_print_struct(FILE *out, const kivis_schema_desc *schema,
                      const kivis_struct_desc *sd, const void *p, bool positional);

/** Print one field's value (an array as [..]) at base + f->offset. */
void cli_print_field(FILE *out, const kivis_schema_desc *schema,
                     const kivis_field *f, const void *base);

/** Print "<table> {<key>} => {<record>}\n", a line of dump. */
void cli_print_record(FILE *out, const kivis_schema_desc *schema,
                      const kivis_table_desc *td, const void *key, const void *rec);

/**
 * Parse `text`, written as dump prints it, into the struct sd at p (zeroed
 * by the caller, sd->size bytes).  The braces around the whole struct may
 * be left out ("TOY_MOUSE, 2"), and a struct with one string field takes
 * the text itself when it is not quoted.  Strings and blobs are malloc'd:
 * free them with cli_free_struct, also on failure.
 * @return 0, or -1 with a message in err.
 */
int cli_parse_struct(const kivis_schema_desc *schema, const kivis_struct_desc *sd,
                     const char *text, void *p, char *err, size_t errlen);

/** As cli_parse_struct, for one field's value (an array is [..]) at
 *  base + f->offset; a string field takes unquoted text as it is. */
int cli_parse_field(const kivis_schema_desc *schema, const kivis_field *f,
                    const char *text, void *base, char *err, size_t errlen);

/** Free the strings and blobs cli_parse_* allocated in the struct at p. */
void cli_free_struct(const kivis_struct_desc *sd, void *p);

/** As cli_free_struct, for one field at base + f->offset. */
void cli_free_field(const kivis_field *f, void *base);

/* ---- the stored schema as .kvs source (kvs.c) ------------------------- */

/** Print the schema as a .kvs file kivis-gen accepts, which generates a
 *  descriptor equal to it.  @return 0, or 1 when something is not
 *  expressible in .kvs (noted in a comment where it is). */
int cli_print_kvs(FILE *out, const kivis_schema_desc *schema);

/* ---- a schema file as a descriptor (kvsload.c) ------------------------ */

/**
 * Parse and check the .kvs file at `path` as kivis-gen does (its
 * diagnostics on stderr) and build the runtime descriptor kivis-gen's
 * code would hold for it, declared changes included, laid out as
 * kivis_schema_load lays out a stored schema.  Free it with cli_kvs_free
 * after every db opened with it is closed.
 * @return 0, or EXIT_ERROR with why printed (*out NULL).
 */
int cli_kvs_load(const char *path, kivis_schema_desc **out);

void cli_kvs_free(kivis_schema_desc *schema);

/* ---- migrating a store (migrate.c) ------------------------------------ */

/**
 * `kivis migrate`: open the store at `store` with the schema of the .kvs
 * file `kvs`, which kivis_open migrates it to, drawing a bar on stderr for
 * each rewrite and index build unless `quiet`, and print what changed.
 * The store is only ever changed by a migration that completes.
 * @return 0, or EXIT_ERROR (a bad schema file, a change the store cannot
 *         take, an unreadable store) with why printed.
 */
int cli_migrate(const char *store, const char *kvs, bool quiet);

/* ---- progress bars (progress.c) --------------------------------------- */

typedef struct cli_progress {
    bool on;    /* stderr is a terminal and bars are wanted */
    bool drawn; /* a bar is on the screen */
    const char *unit; /* "keys", "records", "MiB" */
} cli_progress;

/** Bars on when stderr is a terminal, unless `quiet`. */
void cli_progress_init(cli_progress *p, const char *unit, bool quiet);

/** Draw done/total (total 0: unknown, a counter without a bar). */
void cli_progress_draw(cli_progress *p, uint64_t done, uint64_t total);

/** Erase the bar, if one is drawn. */
void cli_progress_clear(cli_progress *p);

/** Watch a file or directory grow while a backend copies into it: a
 *  thread draws its size against `total` bytes (0: unknown) until
 *  cli_watch_stop.  Does nothing when p is off. */
typedef struct cli_watch cli_watch;
cli_watch *cli_watch_start(cli_progress *p, const char *path, uint64_t total);
void cli_watch_stop(cli_watch *w);

/** Bytes under path: a file's size, or a directory's files added up. */
uint64_t cli_path_bytes(const char *path);

#endif /* KIVIS_TOOLS_CLI_H */
