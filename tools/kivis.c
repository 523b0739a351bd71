/*
 * kivis - inspect, query, verify, back up and compact a kivis store of any
 * backend from the command line (docs/cli.md).
 *
 *   kivis check   STORE                  verify records and index entries
 *   kivis dump    STORE [TABLE]          print records, decoded
 *   kivis stats   STORE                  tables, counts, bytes
 *   kivis schema  STORE                  the stored schema as .kvs source
 *   kivis get     STORE TABLE KEY        one record by primary key
 *   kivis find    STORE TABLE INDEX VAL  records by an index value
 *   kivis backup  STORE DEST             a consistent, compacted copy
 *   kivis compact STORE                  give free space back
 *   kivis export  STORE [TABLE...]       records as JSON Lines
 *   kivis import  STORE FILE             JSON Lines into the store
 *   kivis migrate STORE SCHEMA.kvs       migrate to a new schema
 *
 * STORE is a URI (lmdb:DIR, sqlite:FILE, rocksdb:DIR) or a plain path whose
 * backend is recognised by its files (store.c).  Everything is read with
 * the schema stored in the database itself (kivis_schema_load), so the tool
 * needs no generated code; migrate alone opens the store with another
 * schema, a .kvs file's (migrate.c).  It never creates a store: a missing
 * path is an error, not a new one.
 *
 * Exit status: 0 success; 1 check found problems, or get/find found no
 * record; 2 usage, I/O or open errors, or a damaged store.
 *
 * A command runs in a child process (run_isolated): LMDB maps the data file
 * and trusts its pages, so a damaged file can fault inside liblmdb, and
 * only a separate process turns that into an answer.
 */
#include "cli.h"

#include <kivis/inspect.h>
#ifdef KIVIS_WITH_JSON
#include <kivis/jsonl.h>
#endif

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char usage_main[] =
    "usage: kivis [--help | --version] <command> [options] <store> [args]\n"
    "\n"
    "Inspect, query, verify, back up and compact a kivis store, decoded with\n"
    "the schema stored in the store itself, or migrate it to a schema file.\n"
    "\n"
    "commands:\n"
    "  check <store>                   verify every record, index entry and\n"
    "                                  foreign key\n"
    "  dump [-o FILE] <store> [table]  print records, one line each\n"
    "  stats <store>                   tables, record and index counts, bytes\n"
    "  schema <store>                  the stored schema as .kvs source\n"
    "  get <store> <table> <key>       one record by its key\n"
    "  find <store> <table> <index> <value>\n"
    "                                  the records with that index value\n"
    "  backup <store> <dest>           a consistent, compacted copy at dest\n"
    "  compact <store>                 give the store's free space back\n"
    "  export [-o FILE] <store> [table...]\n"
    "                                  records as JSON Lines\n"
    "  import [--batch N] [--skip-bad] <store> <file>\n"
    "                                  JSON Lines into the store\n"
    "  migrate <store> <schema.kvs>    migrate the store to the schema of a\n"
    "                                  .kvs file (its declared changes)\n"
    "\n"
    "<store> is lmdb:DIR, sqlite:FILE, rocksdb:DIR, or a path: a directory\n"
    "with data.mdb is LMDB, one with CURRENT and MANIFEST-* RocksDB, a file\n"
    "starting with \"SQLite format 3\" SQLite.  Nothing is ever created.\n"
    "\n"
    "options:\n"
    "  -h, --help       this help (kivis <command> --help: the command's)\n"
    "  --version        print the version\n"
    "  --no-progress    (check, dump, backup, compact, export, import,\n"
    "                   migrate) no progress bar; one is drawn on stderr\n"
    "                   only when it is a terminal\n"
    "\n"
    "exit status: 0 ok, 1 check found problems, get/find found nothing or\n"
    "import --skip-bad left lines out, 2 usage or I/O error, a damaged store\n"
    "or a bad line\n";

static const char usage_check[] =
    "usage: kivis check [--no-progress] <store>\n"
    "\n"
    "Verify the store: every record decodes; every index entry decodes, points\n"
    "at a live record and holds that record's field value; every record has\n"
    "each of its index entries; no key lies under an unknown table or index.\n"
    "Each problem is printed on stdout as\n"
    "  problem: <table>[.<index>] <kind>: <message>\n"
    "    key <hex>\n"
    "and a summary line ends the report.  A progress bar is drawn on stderr\n"
    "when it is a terminal.\n"
    "\n"
    "exit status: 0 consistent, 1 problems found, 2 error or a damaged store\n";

static const char usage_dump[] =
    "usage: kivis dump [-o FILE] [--no-progress] <store> [table]\n"
    "\n"
    "Print every record of every table (or of one table), in key order:\n"
    "  <table> {<key>} => {<field>: <value>, ...}\n"
    "Strings are quoted and escaped, bytes are x'hex', enums print by name,\n"
    "arrays as [..], nested structs as {field: value}, foreign keys as\n"
    "user_key{3}.  get and find read keys and values written the same way.\n"
    "\n"
    "  -o, --output FILE  write to FILE (created or truncated), with a progress\n"
    "                     bar on stderr when it is a terminal\n";

static const char usage_stats[] =
    "usage: kivis stats <store>\n"
    "\n"
    "Print the schema's tables with their record and index entry counts, key\n"
    "and value bytes (and the map size of an LMDB store).  Nothing is decoded.\n";

static const char usage_schema[] =
    "usage: kivis schema <store>\n"
    "\n"
    "Print the schema stored in the store as .kvs source: kivis-gen compiles\n"
    "it into the C API of the store, without the original schema file.\n";

static const char usage_get[] =
    "usage: kivis get <store> <table> <key>\n"
    "\n"
    "Print the record with that primary key, as dump prints it.  The key is\n"
    "written as dump prints it, braces optional:\n"
    "  kivis get pets.db user 1\n"
    "  kivis get pets.db toy '{TOY_MOUSE, 2}'     (or 'TOY_MOUSE, 2')\n"
    "A key of one string field may be given unquoted.  Put -- before a key\n"
    "that starts with '-'.\n"
    "\n"
    "exit status: 0 found, 1 no such record, 2 error\n";

static const char usage_find[] =
    "usage: kivis find <store> <table> <index> <value>\n"
    "\n"
    "Print the records whose indexed field equals the value, in index order,\n"
    "as dump prints them.  The value is written as dump prints that field:\n"
    "  kivis find pets.db user name Ann           (or '\"Ann\"')\n"
    "  kivis find pets.db pet favourite_toy 'toy_key{TOY_MOUSE, 2}'\n"
    "The indexes are the [[index]] and [[unique]] fields (kivis schema).\n"
    "\n"
    "exit status: 0 found, 1 no record has it, 2 error\n";

static const char usage_backup[] =
    "usage: kivis backup [--no-progress] <store> <dest>\n"
    "\n"
    "Write a consistent copy of the store to dest, which must not exist,\n"
    "while other processes go on using the store: LMDB copies one read\n"
    "transaction's snapshot, compacted (dest is a directory); SQLite uses its\n"
    "online backup, then VACUUMs the copy (dest is a file); RocksDB writes a\n"
    "checkpoint (dest is a directory; the store must not be open in another\n"
    "process).  The copy is a store of the same backend.\n";

static const char usage_compact[] =
    "usage: kivis compact [--no-progress] <store>\n"
    "\n"
    "Give free space back: SQLite VACUUMs the file; RocksDB compacts every\n"
    "level.  LMDB cannot shrink a file other processes may map: write a\n"
    "compacted copy with kivis backup instead.\n";

static const char usage_export[] =
    "usage: kivis export [-o FILE] [--no-progress] <store> [table...]\n"
    "\n"
    "Write the records of every table (or of the tables named, in that order)\n"
    "as JSON Lines, tables in schema order, records in key order, one line\n"
    "each, read in one transaction:\n"
    "  {\"table\":\"user\",\"key\":{\"id\":1},\"record\":{\"name\":\"Ann\",...}}\n"
    "Every value reads back exactly: a uint64 above INT64_MAX is a decimal\n"
    "string, floats the shortest decimal of their bits, NaN and infinities\n"
    "strings, bytes base64, enums their names, nested structs and foreign keys\n"
    "objects (docs/cli.md).  kivis import reads it into any store.\n"
    "\n"
    "  -o, --output FILE  write to FILE (created or truncated), with a progress\n"
    "                     bar on stderr when it is a terminal\n"
    "\n"
    "Built without JSON support (no jansson), the tool lacks this command.\n";

static const char usage_import[] =
    "usage: kivis import [--batch N] [--skip-bad] [--no-progress] <store> <file>\n"
    "\n"
    "Read JSON Lines as kivis export writes them (file '-' is stdin) and\n"
    "store each record under its key, replacing one already there.  Each line\n"
    "is checked against the stored schema first: known table, every field\n"
    "given once and no other, types, ranges, char[N] lengths, enum names,\n"
    "base64, UTF-8; then unique indexes and keys.  A bad line is reported as\n"
    "  kivis: <file>:<line>: <table>.<field>: <what is wrong>\n"
    "\n"
    "  --batch N     lines per write transaction (default 1000)\n"
    "  --skip-bad    report bad lines and leave them out; without it the\n"
    "                import stops at the first, and nothing of its batch is\n"
    "                written (earlier batches stay)\n"
    "\n"
    "The store must exist (kivis creates nothing): a new one is made by the\n"
    "application, or by backup of an empty one.\n"
    "\n"
    "exit status: 0 all imported, 1 --skip-bad left lines out, 2 error or a\n"
    "bad line\n";

static const char usage_migrate[] =
    "usage: kivis migrate [--no-progress] <store> <schema.kvs>\n"
    "\n"
    "Migrate the store to the schema of a .kvs file: the file is parsed and\n"
    "checked as kivis-gen does (its diagnostics, and nothing else happens when\n"
    "it has errors), then the store is opened with it, which applies the\n"
    "changes it declares ([[was(old)]], [[dropped(...)]], widened fields, new\n"
    "and dropped indexes; docs/schema.md, \"Evolving a schema\") in one write\n"
    "transaction: rewritten records, index builds.  A change the store cannot\n"
    "take (a narrowed field, another type) is refused with the reason, and\n"
    "the store is left as it was.  A bar follows each rewrite and index\n"
    "build on stderr when it is a terminal; a summary line ends it:\n"
    "  migrated <store> to schema <name> in <s> s: <n> tables changed,\n"
    "  <n> records rewritten, <n> indexes built over <n> records\n"
    "or, when the store holds that schema already, says so.\n"
    "\n"
    "exit status: 0 migrated or already there, 2 a bad schema file, a\n"
    "refused change or an error\n";

/* ---- options ------------------------------------------------------------ */

enum { OPT_NO_PROGRESS = 0x100, OPT_VERSION, OPT_BATCH, OPT_SKIP_BAD };

typedef struct options {
    bool quiet;         /* --no-progress */
    const char *output; /* dump -o, export -o */
    size_t batch;       /* import --batch */
    bool skip_bad;      /* import --skip-bad */
} options;

/* ---- check ---------------------------------------------------------------- */

static const char *kind_name(kivis_check_kind k)
{
    switch (k) {
    case KIVIS_CHECK_BAD_RECORD: return "bad record";
    case KIVIS_CHECK_MISSING_ENTRY: return "missing index entry";
    case KIVIS_CHECK_STALE_ENTRY: return "stale index entry";
    case KIVIS_CHECK_BAD_ENTRY: return "bad index entry";
    case KIVIS_CHECK_UNKNOWN_TABLE: return "unknown table";
    case KIVIS_CHECK_UNKNOWN_SLOT: return "unknown index";
    case KIVIS_CHECK_DANGLING_REF: return "dangling reference";
    }
    return "problem";
}

static void report_problem(void *ctx, const kivis_check_problem *p)
{
    cli_progress_clear(ctx);
    printf("problem: %s%s%s %s: %s\n    key %s\n", p->table ? p->table : "?",
           p->index ? "." : "", p->index ? p->index : "", kind_name(p->kind),
           p->message, p->key_hex);
}

static void draw_keys(void *ctx, uint64_t done, uint64_t total)
{
    if (total >= 2 * 4096) /* small stores finish before a bar helps */
        cli_progress_draw(ctx, done, total);
}

static int cmd_check(cli_store *s, char **args, const options *o)
{
    (void)args;
    cli_progress bar;
    cli_progress_init(&bar, "keys", o->quiet);
    kivis_check_stats st;
    memset(&st, 0, sizeof st);
    st.progress = draw_keys;
    st.progress_ctx = &bar;
    int rc = kivis_check(s->db, report_problem, &bar, &st);
    cli_progress_clear(&bar);
    uint64_t records = 0, entries = 0;
    for (uint32_t i = 0; i < st.ntables; i++)
        records += st.tables[i].records, entries += st.tables[i].index_entries;
    kivis_stats_free(s->db, &st);
    if (rc && (rc != KIVIS_ECORRUPT || !st.problems)) /* the walk stopped */
        return cli_read_failed(s, "check", NULL, rc);
    printf("%s: %" PRIu64 " problem%s in %" PRIu64 " records and %" PRIu64
           " index entries of %" PRIu32 " tables\n",
           rc ? "FAILED" : "ok", st.problems, st.problems == 1 ? "" : "s",
           records, entries, s->schema->ntables);
    if (st.warnings)
        printf("warning: %" PRIu64 " foreign key%s without a referential action "
               "name%s a missing record\n",
               st.warnings, st.warnings == 1 ? "" : "s", st.warnings == 1 ? "s" : "");
    return rc ? EXIT_PROBLEMS : 0;
}

/* ---- dump, get, find ---------------------------------------------------- */

static int table_named(const cli_store *s, const char *name, uint32_t *t)
{
    if (!name[0])
        return cli_fail("the table name is an empty argument (kivis stats lists "
                        "the tables)");
    int found = kivis_table(s->db, name);
    if (found < 0)
        return cli_fail("%s: no table '%s' (kivis stats lists them)", s->name, name);
    *t = (uint32_t)found;
    return 0;
}

/* Walk a scan, printing each record as dump does.  *count receives how
 * many; bar (may be off) advances per record. */
static int print_scan(cli_store *s, const kivis_query *q, FILE *out, cli_progress *bar,
                      uint64_t *count, uint64_t total)
{
    const kivis_table_desc *td = &s->schema->tables[q->table];
    void *key = calloc(1, td->key->size), *rec = calloc(1, td->record->size);
    kivis_scan *scan = NULL;
    int rc = key && rec ? kivis_scan_open(s->db, q, &scan) : KIVIS_ENOMEM;
    while (!rc && (rc = kivis_scan_next(scan, key, rec)) == KIVIS_OK) {
        cli_print_record(out, s->schema, td, key, rec);
        kivis_key_clear(s->db, q->table, key);
        kivis_record_clear(s->db, q->table, rec);
        if (++*count % 1024 == 0)
            cli_progress_draw(bar, *count, total);
    }
    kivis_scan_close(scan);
    free(key);
    free(rec);
    return rc == KIVIS_NOTFOUND ? 0 : rc;
}

/* How many records the dump will print, for its bar: a walk that decodes
 * nothing. */
static uint64_t count_records(cli_store *s, const char *table, uint32_t t)
{
    kivis_check_stats st;
    memset(&st, 0, sizeof st);
    uint64_t n = 0;
    if (kivis_stats(s->db, &st) == KIVIS_OK)
        for (uint32_t i = 0; i < st.ntables && i < s->schema->ntables; i++)
            n += !table || i == t ? st.tables[i].records : 0;
    kivis_stats_free(s->db, &st);
    return n;
}

static int dump_to(cli_store *s, const char *table, FILE *out, const options *o)
{
    uint32_t only = 0;
    int status = table ? table_named(s, table, &only) : 0;
    if (status)
        return status;
    cli_progress bar;
    cli_progress_init(&bar, "records", o->quiet || isatty(fileno(out)));
    uint64_t total = bar.on ? count_records(s, table, only) : 0, count = 0;
    for (uint32_t t = table ? only : 0; t < (table ? only + 1 : s->schema->ntables); t++) {
        kivis_query q;
        memset(&q, 0, sizeof q);
        q.table = t;
        q.index = -1;
        int rc = print_scan(s, &q, out, &bar, &count, total);
        if (rc) {
            cli_progress_clear(&bar);
            return cli_read_failed(s, "dump", s->schema->tables[t].name, rc);
        }
    }
    cli_progress_clear(&bar);
    return 0;
}

static int cmd_dump(cli_store *s, char **args, const options *o)
{
    if (!o->output)
        return dump_to(s, args[1], stdout, o);
    FILE *out = fopen(o->output, "w");
    if (!out)
        return cli_fail("%s: cannot write: %s", o->output, strerror(errno));
    int status = dump_to(s, args[1], out, o);
    if ((fclose(out) != 0) && !status)
        status = cli_fail("%s: writing: %s", o->output, strerror(errno));
    return status;
}

static int cmd_get(cli_store *s, char **args, const options *o)
{
    (void)o;
    uint32_t t = 0;
    int status = table_named(s, args[1], &t);
    if (status)
        return status;
    const kivis_table_desc *td = &s->schema->tables[t];
    void *key = calloc(1, td->key->size), *rec = calloc(1, td->record->size);
    char err[256];
    if (!key || !rec)
        status = cli_fail("out of memory");
    else if (cli_parse_struct(s->schema, td->key, args[2], key, err, sizeof err))
        status = cli_fail("%s key '%s': %s", td->name, args[2], err);
    int rc = status ? KIVIS_OK : kivis_get(s->db, t, key, rec);
    if (!status && rc == KIVIS_OK)
        cli_print_record(stdout, s->schema, td, key, rec);
    else if (!status && rc == KIVIS_NOTFOUND)
        status = (fprintf(stderr, "kivis: %s has no record with key %s\n", td->name,
                          args[2]),
                  EXIT_PROBLEMS);
    else if (!status)
        status = cli_read_failed(s, "get", td->name, rc);
    if (rc == KIVIS_OK && rec)
        kivis_record_clear(s->db, t, rec);
    if (key)
        cli_free_struct(td->key, key);
    free(key);
    free(rec);
    return status;
}

static int cmd_find(cli_store *s, char **args, const options *o)
{
    (void)o;
    uint32_t t = 0;
    int status = table_named(s, args[1], &t);
    if (status)
        return status;
    const kivis_table_desc *td = &s->schema->tables[t];
    int ix = kivis_index(s->db, t, args[2]);
    if (ix < 0) {
        fprintf(stderr, "kivis: %s: table %s has no index '%s'; its indexes:", s->name,
                td->name, args[2]);
        for (uint32_t i = 0; i < td->nindexes; i++)
            fprintf(stderr, " %s", td->indexes[i].name);
        fputs(td->nindexes ? "\n" : " none\n", stderr);
        return EXIT_ERROR;
    }
    /* The value, laid out as the field alone (offset 0). */
    kivis_field f = td->record->fields[td->indexes[ix].field];
    f.offset = 0;
    void *value = calloc(f.count ? f.count : 1, f.size);
    char err[256];
    if (!value)
        return cli_fail("out of memory");
    if (cli_parse_field(s->schema, &f, args[3], value, err, sizeof err)) {
        cli_free_field(&f, value);
        free(value);
        return cli_fail("%s.%s value '%s': %s", td->name, args[2], args[3], err);
    }
    kivis_query q;
    memset(&q, 0, sizeof q);
    q.table = t;
    q.index = ix;
    q.mode = KIVIS_Q_EQ;
    q.lo = value;
    cli_progress off = {false, false, ""};
    uint64_t count = 0;
    int rc = print_scan(s, &q, stdout, &off, &count, 0);
    cli_free_field(&f, value);
    free(value);
    if (rc)
        return cli_read_failed(s, "find", td->name, rc);
    if (!count)
        fprintf(stderr, "kivis: no record of %s has %s %s\n", td->name, args[2], args[3]);
    return count ? 0 : EXIT_PROBLEMS;
}

/* ---- stats, schema ------------------------------------------------------ */

static void print_table_line(const char *name, uint64_t records, uint64_t entries,
                             uint64_t kbytes, uint64_t vbytes)
{
    printf("%-16s %10" PRIu64 " %14" PRIu64 " %12" PRIu64 " %12" PRIu64 "\n", name,
           records, entries, kbytes, vbytes);
}

static int cmd_stats(cli_store *s, char **args, const options *o)
{
    (void)args;
    (void)o;
    kivis_check_stats st;
    memset(&st, 0, sizeof st);
    int rc = kivis_stats(s->db, &st);
    if (rc) {
        kivis_stats_free(s->db, &st);
        return cli_read_failed(s, "stats", NULL, rc);
    }
    printf("store    %s\n", s->name);
    printf("backend  %s\n", s->backend->scheme);
    printf("schema   %s, %" PRIu32 " tables\n", s->schema->name, s->schema->ntables);
    if (s->backend->stats)
        s->backend->stats(s->st, stdout);
    printf("keys     %" PRIu64 " (%" PRIu64 " key bytes, %" PRIu64 " value bytes)\n\n",
           st.keys, st.key_bytes, st.value_bytes);
    printf("%-16s %10s %14s %12s %12s\n", "table", "records", "index entries",
           "key bytes", "value bytes");
    uint64_t r = 0, e = 0, k = 0, v = 0;
    for (uint32_t i = 0; i < st.ntables; i++) {
        const kivis_table_stats *t = &st.tables[i];
        print_table_line(t->name, t->records, t->index_entries, t->key_bytes,
                         t->value_bytes);
        r += t->records, e += t->index_entries, k += t->key_bytes, v += t->value_bytes;
    }
    print_table_line("total", r, e, k, v);
    kivis_stats_free(s->db, &st);
    return 0;
}

static int cmd_schema(cli_store *s, char **args, const options *o)
{
    (void)args;
    (void)o;
    if (cli_print_kvs(stdout, s->schema))
        fprintf(stderr, "kivis: %s: part of the stored schema has no .kvs spelling "
                        "(see the comments in the output)\n", s->name);
    return 0;
}

/* ---- backup, compact ---------------------------------------------------- */

static int cmd_backup(cli_store *s, char **args, const options *o)
{
    const char *dest = args[1];
    struct stat sb;
    if (!dest[0])
        return cli_fail("the destination is an empty argument: give a new path");
    if (stat(dest, &sb) == 0)
        return cli_fail("%s already exists: backup writes a new copy only", dest);
    cli_progress bar;
    cli_progress_init(&bar, "KiB", o->quiet);
    cli_watch *w = cli_watch_start(&bar, dest, cli_path_bytes(s->location));
    int rc = s->backend->backup(s->st, dest);
    cli_watch_stop(w);
    if (rc)
        return cli_fail("%s: backup to %s failed: %s", s->name, dest, kivis_strerror(rc));
    printf("backup of %s written to %s (%s, %" PRIu64 " bytes)\n", s->name, dest,
           s->backend->scheme, cli_path_bytes(dest));
    return 0;
}

static int cmd_compact(cli_store *s, char **args, const options *o)
{
    (void)args;
    if (!s->backend->compact)
        return cli_fail("%s: cannot compact in place: %s", s->name,
                        s->backend->compact_hint);
    uint64_t before = cli_path_bytes(s->location);
    cli_progress bar;
    cli_progress_init(&bar, "KiB", o->quiet);
    cli_watch *w = cli_watch_start(&bar, s->location, 0);
    int rc = s->backend->compact(s->st);
    cli_watch_stop(w);
    if (rc)
        return cli_fail("%s: compacting failed: %s", s->name, kivis_strerror(rc));
    printf("compacted %s: %" PRIu64 " bytes before, %" PRIu64 " after\n", s->name,
           before, cli_path_bytes(s->location));
    return 0;
}

/* ---- export, import ----------------------------------------------------- */

#ifdef KIVIS_WITH_JSON
/* A bar drawn from the library's progress callback. */
typedef struct transfer_bar {
    const char *file; /* import: the input, for messages */
    cli_progress bar;
    uint64_t total;
} transfer_bar;

static void draw_records(void *ctx, uint64_t records, uint64_t bytes)
{
    (void)bytes;
    transfer_bar *tb = ctx;
    cli_progress_draw(&tb->bar, records, tb->total);
}

static int export_to(cli_store *s, char **tables, int ntables, FILE *out,
                     const options *o)
{
    transfer_bar tb = {NULL, {false, false, ""}, 0};
    cli_progress_init(&tb.bar, "records", o->quiet || isatty(fileno(out)));
    tb.total = tb.bar.on && !ntables ? count_records(s, NULL, 0) : 0;
    kivis_jsonl_options jo;
    memset(&jo, 0, sizeof jo);
    jo.progress = draw_records;
    jo.ctx = &tb;
    kivis_jsonl_report r;
    int rc = kivis_export_jsonl(s->db, (const char *const *)tables, (size_t)ntables,
                                out, &jo, &r);
    cli_progress_clear(&tb.bar);
    if (rc == KIVIS_NOTFOUND)
        return cli_fail("%s: %s (kivis stats lists the tables)", s->name, r.message);
    if (rc)
        return cli_fail("%s: export%s%s: %s", s->name, r.table[0] ? " of " : "",
                        r.table, r.message);
    return 0;
}

static int cmd_export(cli_store *s, char **args, const options *o)
{
    int ntables = 0;
    while (args[1 + ntables])
        ntables++;
    if (!o->output)
        return export_to(s, args + 1, ntables, stdout, o);
    FILE *out = fopen(o->output, "w");
    if (!out)
        return cli_fail("%s: cannot write: %s", o->output, strerror(errno));
    int status = export_to(s, args + 1, ntables, out, o);
    if ((fclose(out) != 0) && !status)
        status = cli_fail("%s: writing: %s", o->output, strerror(errno));
    return status;
}

static void report_bad_line(void *ctx, const kivis_jsonl_error *e)
{
    transfer_bar *ic = ctx;
    cli_progress_clear(&ic->bar);
    if (e->line)
        fprintf(stderr, "kivis: %s:%" PRIu64 ": %s%s%s%s%s\n", ic->file, e->line,
                e->table, e->table[0] && e->field[0] ? "." : "", e->field,
                e->table[0] || e->field[0] ? ": " : "", e->message);
}

static void draw_bytes(void *ctx, uint64_t records, uint64_t bytes)
{
    (void)records;
    transfer_bar *ic = ctx;
    cli_progress_draw(&ic->bar, bytes / 1024, ic->total);
}

static int cmd_import(cli_store *s, char **args, const options *o)
{
    bool std_in = !strcmp(args[1], "-");
    FILE *in = std_in ? stdin : fopen(args[1], "r");
    if (!in)
        return cli_fail("%s: cannot read: %s", args[1], strerror(errno));
    transfer_bar ic = {std_in ? "stdin" : args[1], {false, false, ""}, 0};
    cli_progress_init(&ic.bar, "KiB", o->quiet);
    ic.total = std_in ? 0 : cli_path_bytes(args[1]) / 1024;
    kivis_db *db = NULL;
    char err[256] = "";
    kivis_options ko;
    memset(&ko, 0, sizeof ko);
    ko.errbuf = err;
    ko.errbuf_size = sizeof err;
    int rc = kivis_jsonl_open(s->st, &ko, &db);
    if (rc) {
        if (!std_in)
            fclose(in);
        return cli_fail("%s: cannot open the database: %s%s%s", s->name,
                        kivis_strerror(rc), err[0] ? ": " : "", err);
    }
    kivis_jsonl_options jo;
    memset(&jo, 0, sizeof jo);
    jo.batch = o->batch;
    jo.skip_bad = o->skip_bad;
    jo.error = report_bad_line;
    jo.progress = draw_bytes;
    jo.ctx = &ic;
    kivis_jsonl_report r;
    rc = kivis_import_jsonl(db, in, &jo, &r);
    cli_progress_clear(&ic.bar);
    kivis_jsonl_close(db);
    if (!std_in)
        fclose(in);
    if (rc && !r.line) /* not a line's fault: the store or the file */
        return cli_fail("%s: import from %s: %s", s->name, ic.file, r.message);
    fprintf(stderr, "kivis: imported %" PRIu64 " records from %" PRIu64 " lines of %s"
                    "%s", r.records, r.lines, ic.file, rc ? ", then stopped" : "");
    if (r.rejected)
        fprintf(stderr, "; %" PRIu64 " bad line%s%s", r.rejected,
                r.rejected == 1 ? "" : "s", rc ? "" : " left out");
    fputc('\n', stderr);
    return rc ? EXIT_ERROR : r.rejected ? EXIT_PROBLEMS : 0;
}
#endif

/* ---- migrate ------------------------------------------------------------ */

/* The store is opened by cli_migrate, with the file's schema. */
static int cmd_migrate(cli_store *s, char **args, const options *o)
{
    (void)s;
    return cli_migrate(args[0], args[1], o->quiet);
}

/* ---- commands ----------------------------------------------------------- */

/* OPENS_ITSELF: run() leaves the store to the command, which opens it with
 * another schema than the stored one. */
enum { ALLOW_PROGRESS = 1, ALLOW_OUTPUT = 2, ALLOW_IMPORT = 4, OPENS_ITSELF = 8 };

typedef struct command {
    const char *name;
    const char *usage;
    int (*run)(cli_store *s, char **args, const options *o);
    int min_args, max_args; /* after the command: the store and more */
    const char *needs;      /* what is missing below min_args */
    unsigned allow;         /* ALLOW_* */
} command;

static const command commands[] = {
    {"check", usage_check, cmd_check, 1, 1, "a store", ALLOW_PROGRESS},
    {"dump", usage_dump, cmd_dump, 1, 2, "a store", ALLOW_PROGRESS | ALLOW_OUTPUT},
    {"stats", usage_stats, cmd_stats, 1, 1, "a store", 0},
    {"schema", usage_schema, cmd_schema, 1, 1, "a store", 0},
    {"get", usage_get, cmd_get, 3, 3, "a store, a table and a key", 0},
    {"find", usage_find, cmd_find, 4, 4, "a store, a table, an index and a value", 0},
    {"backup", usage_backup, cmd_backup, 2, 2, "a store and a destination",
     ALLOW_PROGRESS},
    {"compact", usage_compact, cmd_compact, 1, 1, "a store", ALLOW_PROGRESS},
#ifdef KIVIS_WITH_JSON
    {"export", usage_export, cmd_export, 1, INT_MAX, "a store",
     ALLOW_PROGRESS | ALLOW_OUTPUT},
    {"import", usage_import, cmd_import, 2, 2, "a store and a file",
     ALLOW_PROGRESS | ALLOW_IMPORT},
#endif
    {"migrate", usage_migrate, cmd_migrate, 2, 2, "a store and a schema file",
     ALLOW_PROGRESS | OPENS_ITSELF},
};

static int usage_error(const char *usage, const char *fmt, const char *arg)
{
    fputs("kivis: ", stderr);
    fprintf(stderr, fmt, arg);
    fputs("\n\n", stderr);
    fputs(usage, stderr);
    return EXIT_ERROR;
}

static int run(const command *c, char **args, const options *o)
{
    cli_store s;
    memset(&s, 0, sizeof s);
    int status = c->allow & OPENS_ITSELF ? 0 : cli_open(&s, args[0]);
    if (!status)
        status = c->run(&s, args, o);
    cli_close(&s);
    if (fflush(stdout) != 0 || ferror(stdout))
        status = cli_fail("writing the output: %s", strerror(errno));
    return status;
}

/* ---- process isolation ------------------------------------------------ */

/* What a damaged LMDB file does to its reader: a read past the end of a
 * truncated map raises SIGBUS, a bad page header sends LMDB after a wild
 * pointer (SIGSEGV, SIGFPE, SIGILL) or into its own assertion (SIGABRT). */
static const struct fault_signal {
    int sig;
    const char *name;
} fault_signals[] = {{SIGBUS, "SIGBUS"}, {SIGSEGV, "SIGSEGV"}, {SIGABRT, "SIGABRT"},
                     {SIGFPE, "SIGFPE"}, {SIGILL, "SIGILL"}};

static const char *fault_name(int sig)
{
    for (size_t i = 0; i < sizeof fault_signals / sizeof fault_signals[0]; i++)
        if (fault_signals[i].sig == sig)
            return fault_signals[i].name;
    return NULL;
}

/* Run the command in a child process writing to our stdout and stderr, so
 * its output streams and its exit status passes through; a child killed by
 * a fault signal means a damaged store (exit 2).  Any other signal (SIGPIPE
 * from a closed pipe, SIGINT, SIGTERM) kills this process the same way. */
static int run_isolated(const command *c, char **args, const options *o)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return cli_fail("%s: cannot start the reading process: %s", args[0],
                        strerror(errno));
    if (pid == 0)
        exit(run(c, args, o));
    int ws;
    while (waitpid(pid, &ws, 0) < 0)
        if (errno != EINTR)
            return cli_fail("%s: waiting for the reading process: %s", args[0],
                            strerror(errno));
    if (WIFEXITED(ws))
        return WEXITSTATUS(ws);
    int sig = WTERMSIG(ws);
    const char *name = fault_name(sig);
    if (name)
        return cli_fail("%s: the store is damaged (reading it raised %s)", args[0], name);
    signal(sig, SIG_DFL);
    raise(sig);
    return EXIT_ERROR;
}

/* ---- main -------------------------------------------------------------- */

static const struct option long_options[] = {
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, OPT_VERSION},
    {"no-progress", no_argument, NULL, OPT_NO_PROGRESS},
    {"output", required_argument, NULL, 'o'},
    {"batch", required_argument, NULL, OPT_BATCH},
    {"skip-bad", no_argument, NULL, OPT_SKIP_BAD},
    {NULL, 0, NULL, 0},
};

/* The option getopt_long just refused, for the message. */
static const char *bad_option(char **argv, int optopt_seen)
{
    static char shortopt[3] = "-?";
    if (optopt_seen && optopt_seen < OPT_NO_PROGRESS) {
        shortopt[1] = (char)optopt_seen;
        return shortopt;
    }
    return argv[optind - 1];
}

/* The command's options, then its arguments.  @return -1 to run, else an
 * exit status (help, or a usage error). */
static int parse_command(const command *c, int argc, char **argv, options *o,
                         char ***args, int *nargs)
{
    memset(o, 0, sizeof *o);
    optind = 0; /* GNU getopt: start over, argv[0] being the command */
    int opt;
    while ((opt = getopt_long(argc, argv, "ho:", long_options, NULL)) != -1) {
        if (opt == 'h') {
            fputs(c->usage, stdout);
            return 0;
        }
        if (opt == OPT_NO_PROGRESS && (c->allow & ALLOW_PROGRESS))
            o->quiet = true;
        else if (opt == OPT_SKIP_BAD && (c->allow & ALLOW_IMPORT))
            o->skip_bad = true;
        else if (opt == OPT_BATCH && (c->allow & ALLOW_IMPORT)) {
            char *end;
            unsigned long long n = strtoull(optarg, &end, 10);
            if (!optarg[0] || *end || !n || n > SIZE_MAX || optarg[0] == '-')
                return usage_error(c->usage, "--batch takes a positive number, not "
                                             "'%s'", optarg);
            o->batch = (size_t)n;
        }
        else if (opt == 'o' && (c->allow & ALLOW_OUTPUT) && optarg[0])
            o->output = optarg;
        else if (opt == 'o' && (c->allow & ALLOW_OUTPUT))
            return usage_error(c->usage, "%s", "-o needs a file name, not an empty "
                                               "argument");
        else if (opt == ':' || (opt == '?' && optopt == 'o'))
            return usage_error(c->usage, "%s", "-o needs a file name");
        else
            return usage_error(c->usage,
                               "unknown option '%s' (put -- before an argument that "
                               "starts with '-')",
                               opt == '?' ? bad_option(argv, optopt) : argv[optind - 1]);
    }
    *args = argv + optind;
    *nargs = argc - optind;
    if (*nargs < c->min_args)
        return *nargs ? usage_error(c->usage, "%s", "too few arguments")
                      : usage_error(c->usage, "%s: no store given", c->name);
    if (*nargs > c->max_args)
        return usage_error(c->usage, "too many arguments after '%s'",
                           (*args)[c->max_args - 1]);
    return -1;
}

int main(int argc, char **argv)
{
    opterr = 0; /* our messages, with the usage */
    int opt;
    while ((opt = getopt_long(argc, argv, "+h", long_options, NULL)) != -1) {
        if (opt == 'h') {
            fputs(usage_main, stdout);
            return 0;
        }
        if (opt == OPT_VERSION) {
            printf("kivis %d.%d.%d\n", KIVIS_VERSION_MAJOR, KIVIS_VERSION_MINOR,
                   KIVIS_VERSION_PATCH);
            return 0;
        }
        return usage_error(usage_main, "unknown option '%s' before the command",
                           opt == '?' ? bad_option(argv, optopt) : argv[optind - 1]);
    }
    if (optind >= argc)
        return usage_error(usage_main, "%s", "no command given");
    const command *c = NULL;
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[optind], commands[i].name))
            c = &commands[i];
    if (!c)
        return usage_error(usage_main, argv[optind][0] ? "unknown command '%s'"
                                                       : "the command is an empty "
                                                         "argument%s",
                           argv[optind]);
    options o;
    char **args = NULL;
    int nargs, status = parse_command(c, argc - optind, argv + optind, &o, &args, &nargs);
    return status >= 0 ? status : run_isolated(c, args, &o);
}
