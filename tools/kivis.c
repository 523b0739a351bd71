/*
 * kivis - inspect and verify a kivis store from the command line.
 *
 *   kivis check <store>          verify records and index entries
 *   kivis dump <store> [table]   print records, decoded by the stored schema
 *   kivis stats <store>          tables, counts, bytes, map size
 *
 * The store is an LMDB directory.  Everything is read with the schema
 * stored in the database itself (kivis_schema_load), so the tool needs no
 * generated code and reads tables no compiled schema declares any more.
 * It never creates a store: a missing path is an error, not a new one.
 *
 * Exit status: 0 success (check: consistent), 1 check found problems,
 * 2 usage, I/O or open errors, or a damaged store.
 *
 * A command reads the store in a child process (run_isolated): LMDB maps
 * the data file and trusts its pages, so a damaged file can fault inside
 * liblmdb, and only a separate process turns that into an answer.
 */
#include <kivis.h>
#include <kivis/inspect.h>
#include <kivis/lmdb.h>

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

enum { EXIT_PROBLEMS = 1, EXIT_ERROR = 2 };

static const char usage_main[] =
    "usage: kivis <command> [options] <store> [args]\n"
    "\n"
    "Inspect and verify a kivis store (an LMDB directory), decoded with the\n"
    "schema stored in the store itself.\n"
    "\n"
    "commands:\n"
    "  check <store>          verify every record and index entry\n"
    "  dump <store> [table]   print records, one line each\n"
    "  stats <store>          tables, record and index counts, bytes\n"
    "\n"
    "options:\n"
    "  -h, --help             this help (kivis <command> --help: the command's)\n"
    "  --version              print the version\n"
    "\n"
    "exit status: 0 ok, 1 check found problems, 2 usage or I/O error or a\n"
    "damaged store\n";

static const char usage_check[] =
    "usage: kivis check <store>\n"
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
    "usage: kivis dump <store> [table]\n"
    "\n"
    "Print every record of every table (or of one table), in key order:\n"
    "  <table> {<key>} => {<field>: <value>, ...}\n"
    "Strings are quoted and escaped, bytes are x'hex', enums print by name,\n"
    "arrays as [..], nested structs as {field: value}, foreign keys as\n"
    "user_key{3}.\n";

static const char usage_stats[] =
    "usage: kivis stats <store>\n"
    "\n"
    "Print the schema's tables with their record and index entry counts, key\n"
    "and value bytes, and the LMDB map size.  Nothing is decoded.\n";

/* ---- opening a store --------------------------------------------------- */

typedef struct store {
    const char *path;
    kivis_storage *st;
    kivis_schema_desc *schema;
    kivis_db *db;
} store;

static int fail(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

static int fail(const char *fmt, ...)
{
    va_list ap;
    fputs("kivis: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return EXIT_ERROR;
}

/* kivis_lmdb_open creates what is missing; the tool must not, so the
 * path has to be an existing directory holding an LMDB data file. */
static int check_path(const char *path)
{
    struct stat sb;
    if (stat(path, &sb) != 0)
        return fail("%s: %s", path,
                    errno == ENOENT ? "no such file or directory" : strerror(errno));
    if (!S_ISDIR(sb.st_mode))
        return fail("%s is not a kivis store (not an LMDB directory)", path);
    char data[4096];
    snprintf(data, sizeof data, "%s/data.mdb", path);
    if (stat(data, &sb) != 0)
        return fail("%s is not a kivis store (no LMDB data file)", path);
    return 0;
}

static int open_store(store *s, const char *path)
{
    memset(s, 0, sizeof *s);
    s->path = path;
    int status = check_path(path);
    if (status)
        return status;
    int rc = kivis_lmdb_open(path, NULL, &s->st);
    if (rc == KIVIS_ECORRUPT || rc == KIVIS_EVERSION)
        return fail("%s is not a kivis store (not a valid LMDB environment: %s)",
                    path, kivis_strerror(rc));
    if (rc)
        return fail("%s: cannot open: %s", path, kivis_strerror(rc));
    rc = kivis_schema_load(s->st, NULL, &s->schema);
    if (rc == KIVIS_NOTFOUND)
        return fail("%s is not a kivis store (no stored schema)", path);
    if (rc == KIVIS_ECORRUPT)
        return fail("%s: damaged store: the stored schema is corrupt", path);
    if (rc)
        return fail("%s: reading the stored schema: %s", path, kivis_strerror(rc));
    char err[256] = "";
    kivis_options o;
    memset(&o, 0, sizeof o);
    o.errbuf = err;
    o.errbuf_size = sizeof err;
    rc = kivis_open(s->st, s->schema, &o, &s->db);
    if (rc)
        return fail("%s: cannot open the database: %s%s%s", path,
                    kivis_strerror(rc), err[0] ? ": " : "", err);
    return 0;
}

static void close_store(store *s)
{
    kivis_close(s->db);
    kivis_schema_free(s->schema, NULL);
    kivis_storage_close(s->st);
}

/* A command's walk stopped on rc.  KIVIS_ECORRUPT there is LMDB finding a
 * bad page (MDB_CORRUPTED, MDB_PAGE_NOTFOUND, MDB_INVALID) or a stored key
 * that does not decode: either way the store is damaged. */
static int read_failed(const store *s, const char *cmd, const char *table, int rc)
{
    const char *detail = kivis_errmsg(s->db);
    return fail("%s: %s%s%s%s: %s%s%s", s->path,
                rc == KIVIS_ECORRUPT ? "the store is damaged: " : "", cmd,
                table ? " " : "", table ? table : "", kivis_strerror(rc),
                detail[0] ? ": " : "", detail);
}

/* ---- printing values --------------------------------------------------- */

static bool is_key_type(const kivis_schema_desc *schema, const char *name)
{
    size_t n = strlen(name);
    if (n < 5 || strcmp(name + n - 4, "_key"))
        return false;
    for (uint32_t i = 0; i < schema->ntables; i++)
        if (strlen(schema->tables[i].name) == n - 4 &&
            !strncmp(schema->tables[i].name, name, n - 4))
            return true;
    return false;
}

static void print_string(FILE *out, const char *s, size_t n)
{
    fputc('"', out);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        switch (ch) {
        case '"': fputs("\\\"", out); break;
        case '\\': fputs("\\\\", out); break;
        case '\n': fputs("\\n", out); break;
        case '\r': fputs("\\r", out); break;
        case '\t': fputs("\\t", out); break;
        default:
            if (ch < 0x20 || ch == 0x7f)
                fprintf(out, "\\x%02x", ch);
            else
                fputc(ch, out);
        }
    }
    fputc('"', out);
}

static void print_enum(FILE *out, const kivis_enum_desc *e, int32_t v)
{
    for (uint32_t i = 0; i < e->count; i++)
        if (e->values[i] == v) {
            fputs(e->names[i], out);
            return;
        }
    fprintf(out, "%" PRId32, v);
}

static void print_struct(FILE *out, const kivis_schema_desc *schema,
                         const kivis_struct_desc *sd, const char *p,
                         bool positional);

/* One element of field f at p. */
static void print_element(FILE *out, const kivis_schema_desc *schema,
                          const kivis_field *f, const char *p)
{
    union { uint8_t u8; uint16_t u16; uint32_t u32; uint64_t u64; int8_t i8;
            int16_t i16; int32_t i32; int64_t i64; float f32; double f64;
            bool b; char *s; kivis_bytes bytes; } v;
    if (f->kind != KIVIS_CHARS && f->kind != KIVIS_STRUCT)
        memcpy(&v, p, f->size);
    switch (f->kind) {
    case KIVIS_U8: fprintf(out, "%" PRIu8, v.u8); break;
    case KIVIS_U16: fprintf(out, "%" PRIu16, v.u16); break;
    case KIVIS_U32: fprintf(out, "%" PRIu32, v.u32); break;
    case KIVIS_U64: fprintf(out, "%" PRIu64, v.u64); break;
    case KIVIS_I8: fprintf(out, "%" PRId8, v.i8); break;
    case KIVIS_I16: fprintf(out, "%" PRId16, v.i16); break;
    case KIVIS_I32: fprintf(out, "%" PRId32, v.i32); break;
    case KIVIS_I64: fprintf(out, "%" PRId64, v.i64); break;
    case KIVIS_BOOL: fputs(v.b ? "true" : "false", out); break;
    case KIVIS_F32: fprintf(out, "%.9g", (double)v.f32); break;
    case KIVIS_F64: fprintf(out, "%.17g", v.f64); break;
    case KIVIS_ENUM: print_enum(out, f->enm, v.i32); break;
    case KIVIS_STRING: print_string(out, v.s ? v.s : "", v.s ? strlen(v.s) : 0); break;
    case KIVIS_CHARS: print_string(out, p, strnlen(p, f->size)); break;
    case KIVIS_BYTES:
        fputs("x'", out);
        for (size_t i = 0; i < v.bytes.len; i++)
            fprintf(out, "%02x", v.bytes.data[i]);
        fputc('\'', out);
        break;
    case KIVIS_STRUCT: {
        bool fk = is_key_type(schema, f->type->name);
        if (fk)
            fputs(f->type->name, out);
        print_struct(out, schema, f->type, p, fk);
        break;
    }
    default: fputs("?", out);
    }
}

static void print_field(FILE *out, const kivis_schema_desc *schema,
                        const kivis_field *f, const char *base)
{
    const char *p = base + f->offset;
    if (!f->count) {
        print_element(out, schema, f, p);
        return;
    }
    fputc('[', out);
    for (uint32_t i = 0; i < f->count; i++) {
        fputs(i ? ", " : "", out);
        print_element(out, schema, f, p + i * f->size);
    }
    fputc(']', out);
}

/* {a: 1, b: 2}, or {1, 2} for keys. */
static void print_struct(FILE *out, const kivis_schema_desc *schema,
                         const kivis_struct_desc *sd, const char *p,
                         bool positional)
{
    fputc('{', out);
    for (uint32_t i = 0; i < sd->nfields; i++) {
        fputs(i ? ", " : "", out);
        if (!positional)
            fprintf(out, "%s: ", sd->fields[i].name);
        print_field(out, schema, &sd->fields[i], p);
    }
    fputc('}', out);
}

/* ---- commands ------------------------------------------------------------ */

static int dump_table(store *s, uint32_t t, FILE *out)
{
    const kivis_table_desc *td = &s->schema->tables[t];
    void *key = calloc(1, td->key->size), *rec = calloc(1, td->record->size);
    kivis_query q;
    memset(&q, 0, sizeof q);
    q.table = t;
    q.index = -1;
    kivis_scan *scan = NULL;
    int rc = key && rec ? kivis_scan_open(s->db, &q, &scan) : KIVIS_ENOMEM;
    while (!rc && (rc = kivis_scan_next(scan, key, rec)) == KIVIS_OK) {
        fprintf(out, "%s ", td->name);
        print_struct(out, s->schema, td->key, key, true);
        fputs(" => ", out);
        print_struct(out, s->schema, td->record, rec, false);
        fputc('\n', out);
        kivis_key_clear(s->db, t, key);
        kivis_record_clear(s->db, t, rec);
    }
    kivis_scan_close(scan);
    free(key);
    free(rec);
    if (rc == KIVIS_NOTFOUND)
        return 0;
    return read_failed(s, "dump", td->name, rc);
}

static int cmd_dump(store *s, const char *table)
{
    int status = 0;
    if (table) {
        int t = kivis_table(s->db, table);
        if (t < 0)
            return fail("%s: no table '%s' (kivis stats lists them)", s->path, table);
        status = dump_table(s, (uint32_t)t, stdout);
    }
    for (uint32_t t = 0; !table && !status && t < s->schema->ntables; t++)
        status = dump_table(s, t, stdout);
    return status;
}

static void print_table_line(const char *name, uint64_t records, uint64_t entries,
                             uint64_t kbytes, uint64_t vbytes)
{
    printf("%-16s %10" PRIu64 " %14" PRIu64 " %12" PRIu64 " %12" PRIu64 "\n", name,
           records, entries, kbytes, vbytes);
}

static int cmd_stats(store *s)
{
    kivis_check_stats st;
    memset(&st, 0, sizeof st);
    int rc = kivis_stats(s->db, &st);
    if (rc) {
        kivis_stats_free(s->db, &st);
        return read_failed(s, "stats", NULL, rc);
    }
    printf("store    %s\n", s->path);
    printf("schema   %s, %" PRIu32 " tables\n", s->schema->name, s->schema->ntables);
    printf("map size %zu bytes (%.1f MiB)\n", kivis_lmdb_map_size(s->st),
           (double)kivis_lmdb_map_size(s->st) / (1024.0 * 1024.0));
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

static const char *kind_name(kivis_check_kind k)
{
    switch (k) {
    case KIVIS_CHECK_BAD_RECORD: return "bad record";
    case KIVIS_CHECK_MISSING_ENTRY: return "missing index entry";
    case KIVIS_CHECK_STALE_ENTRY: return "stale index entry";
    case KIVIS_CHECK_BAD_ENTRY: return "bad index entry";
    case KIVIS_CHECK_UNKNOWN_TABLE: return "unknown table";
    case KIVIS_CHECK_UNKNOWN_SLOT: return "unknown index";
    }
    return "problem";
}

typedef struct check_ui {
    bool bar;   /* stderr is a terminal */
    bool drawn; /* a bar is on the screen */
} check_ui;

static void clear_bar(check_ui *ui)
{
    if (ui->drawn)
        fputs("\r\033[K", stderr);
    ui->drawn = false;
}

static void report_problem(void *ctx, const kivis_check_problem *p)
{
    clear_bar(ctx);
    printf("problem: %s%s%s %s: %s\n    key %s\n", p->table ? p->table : "?",
           p->index ? "." : "", p->index ? p->index : "", kind_name(p->kind),
           p->message, p->key_hex);
}

static void draw_bar(void *ctx, uint64_t done, uint64_t total)
{
    check_ui *ui = ctx;
    if (!ui->bar || total < 2 * 4096)
        return; /* small stores finish before a bar helps */
    int width = 40, filled = (int)(total ? done * (uint64_t)width / total : 0);
    fprintf(stderr, "\r[%.*s%*s] %3d%% %" PRIu64 "/%" PRIu64 " keys", filled,
            "########################################", width - filled, "",
            (int)(total ? done * 100 / total : 100), done, total);
    ui->drawn = true;
}

static int cmd_check(store *s)
{
    check_ui ui = {isatty(STDERR_FILENO) != 0, false};
    kivis_check_stats st;
    memset(&st, 0, sizeof st);
    st.progress = draw_bar;
    st.progress_ctx = &ui;
    int rc = kivis_check(s->db, report_problem, &ui, &st);
    clear_bar(&ui);
    uint64_t records = 0, entries = 0;
    for (uint32_t i = 0; i < st.ntables; i++)
        records += st.tables[i].records, entries += st.tables[i].index_entries;
    kivis_stats_free(s->db, &st);
    if (rc && (rc != KIVIS_ECORRUPT || !st.problems)) /* the walk stopped */
        return read_failed(s, "check", NULL, rc);
    printf("%s: %" PRIu64 " problem%s in %" PRIu64 " records and %" PRIu64
           " index entries of %" PRIu32 " tables\n",
           rc ? "FAILED" : "ok", st.problems, st.problems == 1 ? "" : "s",
           records, entries, s->schema->ntables);
    return rc ? EXIT_PROBLEMS : 0;
}

/* ---- main -------------------------------------------------------------- */

static bool is_help(const char *a)
{
    return !strcmp(a, "-h") || !strcmp(a, "--help");
}

static int usage_error(const char *usage, const char *fmt, const char *arg)
{
    fputs("kivis: ", stderr);
    fprintf(stderr, fmt, arg);
    fputs("\n\n", stderr);
    fputs(usage, stderr);
    return EXIT_ERROR;
}

typedef struct command {
    const char *name;
    const char *usage;
    int min_args, max_args; /* after the command: store and more */
} command;

static const command commands[] = {
    {"check", usage_check, 1, 1},
    {"dump", usage_dump, 1, 2},
    {"stats", usage_stats, 1, 1},
};

static int run(const command *c, char **args, int nargs)
{
    store s;
    int status = open_store(&s, args[0]);
    if (!status) {
        if (!strcmp(c->name, "check"))
            status = cmd_check(&s);
        else if (!strcmp(c->name, "dump"))
            status = cmd_dump(&s, nargs > 1 ? args[1] : NULL);
        else
            status = cmd_stats(&s);
    }
    close_store(&s);
    if (fflush(stdout) != 0 || ferror(stdout))
        status = fail("writing the output: %s", strerror(errno));
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
static int run_isolated(const command *c, char **args, int nargs)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return fail("%s: cannot start the reading process: %s", args[0], strerror(errno));
    if (pid == 0)
        exit(run(c, args, nargs));
    int ws;
    while (waitpid(pid, &ws, 0) < 0)
        if (errno != EINTR)
            return fail("%s: waiting for the reading process: %s", args[0],
                        strerror(errno));
    if (WIFEXITED(ws))
        return WEXITSTATUS(ws);
    int sig = WTERMSIG(ws);
    const char *name = fault_name(sig);
    if (name)
        return fail("%s: the store is damaged (reading it raised %s)", args[0], name);
    signal(sig, SIG_DFL);
    raise(sig);
    return EXIT_ERROR;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage_error(usage_main, "%s", "no command given");
    if (is_help(argv[1])) {
        fputs(usage_main, stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("kivis %d.%d.%d\n", KIVIS_VERSION_MAJOR, KIVIS_VERSION_MINOR,
               KIVIS_VERSION_PATCH);
        return 0;
    }
    const command *c = NULL;
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name))
            c = &commands[i];
    if (!c)
        return usage_error(usage_main, "unknown command '%s'", argv[1]);
    char **args = argv + 2;
    int nargs = argc - 2;
    for (int i = 0; i < nargs; i++) {
        if (is_help(args[i])) {
            fputs(c->usage, stdout);
            return 0;
        }
        if (args[i][0] == '-' && args[i][1])
            return usage_error(c->usage, "unknown option '%s'", args[i]);
    }
    if (nargs < c->min_args)
        return usage_error(c->usage, "%s: no store given", c->name);
    if (nargs > c->max_args)
        return usage_error(c->usage, "too many arguments after '%s'", args[c->max_args - 1]);
    return run_isolated(c, args, nargs);
}
