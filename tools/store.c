/*
 * tools/store.c - opening a store of any backend for the kivis tool.
 *
 * A store is named by a URI, "<scheme>:<location>", or by a plain path
 * whose backend is told by its shape (sniffing).  Each backend is one row
 * of `backends`: its scheme, how to recognise it, how to open it without
 * creating anything, and its backup and compaction.  A new backend (a
 * PostgreSQL conninfo, etcd endpoints) is one more row; a network one has
 * no shape and is reached by its URI only.  LMDB is always there; SQLite
 * and RocksDB where the build has them (`make demo` builds LMDB alone).
 */
#include "cli.h"

#include <kivis/inspect.h>
#include <kivis/lmdb.h>
#ifdef KIVIS_WITH_ROCKSDB
#include <kivis/rocksdb.h> /* optional backend */
#endif
#ifdef KIVIS_WITH_SQLITE
#include <kivis/sqlite.h> /* optional backend */
#endif

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int cli_fail(const char *fmt, ...)
{
    va_list ap;
    fputs("kivis: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return EXIT_ERROR;
}

/* ---- shapes ------------------------------------------------------------- */

static bool is_dir(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static bool has_file(const char *dir, const char *name)
{
    char path[4096];
    struct stat sb;
    return (size_t)snprintf(path, sizeof path, "%s/%s", dir, name) < sizeof path &&
           stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}


static const char *lmdb_shape(const char *path)
{
    if (!is_dir(path))
        return "it is not a directory";
    return has_file(path, "data.mdb") ? NULL : "the directory has no data.mdb";
}

#ifdef KIVIS_WITH_SQLITE
/* The 16 bytes every SQLite database file starts with. */
static const char sqlite_magic[16] = "SQLite format 3";

static const char *sqlite_shape(const char *path)
{
    if (is_dir(path))
        return "it is a directory, not a file";
    char head[sizeof sqlite_magic];
    FILE *fp = fopen(path, "rb");
    size_t n = fp ? fread(head, 1, sizeof head, fp) : 0;
    if (fp)
        fclose(fp);
    return n == sizeof head && !memcmp(head, sqlite_magic, sizeof head)
               ? NULL
               : "the file does not start with \"SQLite format 3\"";
}

static int sqlite_open_existing(const char *path, kivis_storage **out)
{
    return kivis_sqlite_open_existing(path, NULL, out);
}
#endif

#ifdef KIVIS_WITH_ROCKSDB
static bool has_prefixed_file(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    bool found = false;
    for (struct dirent *e; d && !found && (e = readdir(d));)
        found = !strncmp(e->d_name, prefix, strlen(prefix));
    if (d)
        closedir(d);
    return found;
}

static const char *rocksdb_shape(const char *path)
{
    if (!is_dir(path))
        return "it is not a directory";
    return has_file(path, "CURRENT") && has_prefixed_file(path, "MANIFEST-")
               ? NULL
               : "the directory has no CURRENT and MANIFEST-* files";
}

static int rocksdb_open_existing(const char *path, kivis_storage **out)
{
    kivis_rocksdb_options o;
    memset(&o, 0, sizeof o);
    o.no_create = 1;
    return kivis_rocksdb_open(path, &o, out);
}
#endif

/* ---- opening without creating ------------------------------------------ */

static int lmdb_open_existing(const char *path, kivis_storage **out)
{
    return kivis_lmdb_open(path, NULL, out); /* the shape proved data.mdb */
}

static void lmdb_stats(kivis_storage *st, FILE *out)
{
    size_t map = kivis_lmdb_map_size(st);
    fprintf(out, "map size %zu bytes (%.1f MiB)\n", map, (double)map / (1024.0 * 1024.0));
    fprintf(out, "layout   %s\n", kivis_lmdb_layout(st) == 2
                                      ? "2 (a database per key space)"
                                      : "1 (one database; kivis backup converts)");
}

static const cli_backend backends[] = {
    {"lmdb", "an LMDB directory", lmdb_shape, lmdb_open_existing, kivis_lmdb_backup,
     NULL,
     "LMDB cannot shrink its file while other processes may map it; "
     "`kivis backup` writes a compacted copy (in layout 2, whatever the "
     "store's): stop the writers, then move DEST/data.mdb over the store's "
     "data.mdb",
     lmdb_stats},
#ifdef KIVIS_WITH_SQLITE
    {"sqlite", "an SQLite database file", sqlite_shape, sqlite_open_existing,
     kivis_sqlite_backup, kivis_sqlite_vacuum, NULL, NULL},
#endif
#ifdef KIVIS_WITH_ROCKSDB
    {"rocksdb", "a RocksDB directory", rocksdb_shape, rocksdb_open_existing,
     kivis_rocksdb_checkpoint, kivis_rocksdb_compact, NULL, NULL},
#endif
};

enum { NBACKENDS = sizeof backends / sizeof backends[0] };

void cli_print_schemes(FILE *out)
{
    for (size_t i = 0; i < NBACKENDS; i++)
        fprintf(out, "%s%s:", i ? ", " : "", backends[i].scheme);
}

/* ---- locating ----------------------------------------------------------- */

/* "lmdb:/x" names the backend of scheme lmdb; "/x", "./a:b" and "a:b" with
 * an unknown scheme are paths. */
static const cli_backend *by_scheme(const char *arg, const char **location)
{
    const char *colon = strchr(arg, ':');
    for (size_t i = 0; colon && i < NBACKENDS; i++)
        if (strlen(backends[i].scheme) == (size_t)(colon - arg) &&
            !strncmp(arg, backends[i].scheme, (size_t)(colon - arg))) {
            *location = colon + 1;
            return &backends[i];
        }
    return NULL;
}

/* What a path that no backend recognises is, for the message. */
static void describe(const char *path, char *buf, size_t n)
{
    struct stat sb;
    if (stat(path, &sb) != 0) {
        snprintf(buf, n, "%s", strerror(errno));
    } else if (S_ISDIR(sb.st_mode)) {
        DIR *d = opendir(path);
        unsigned entries = 0;
        for (struct dirent *e; d && (e = readdir(d));)
            entries += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
        if (d)
            closedir(d);
        if (entries)
            snprintf(buf, n, "a directory of %u entr%s, without LMDB's data.mdb "
                             "or RocksDB's CURRENT and MANIFEST",
                     entries, entries == 1 ? "y" : "ies");
        else
            snprintf(buf, n, "an empty directory");
    } else if (!S_ISREG(sb.st_mode)) {
        snprintf(buf, n, "neither a file nor a directory");
    } else if (sb.st_size == 0) {
        snprintf(buf, n, "an empty file");
    } else {
        unsigned char head[64];
        FILE *fp = fopen(path, "rb");
        size_t got = fp ? fread(head, 1, sizeof head, fp) : 0, text = 0;
        if (fp)
            fclose(fp);
        for (size_t i = 0; i < got; i++)
            text += head[i] == '\n' || head[i] == '\t' || head[i] == '\r' ||
                    (head[i] >= 0x20 && head[i] < 0x7f) || head[i] >= 0x80;
        snprintf(buf, n, "a %s file of %" PRIu64 " bytes, not an SQLite database",
                 got && text == got ? "text" : "binary", (uint64_t)sb.st_size);
    }
}

static int check_exists(const char *name, const char *path)
{
    struct stat sb;
    if (stat(path, &sb) == 0)
        return 0;
    if (errno == ENOENT)
        return cli_fail("%s: no such file or directory (the tool opens existing "
                        "stores only)", name);
    return cli_fail("%s: %s", name, strerror(errno));
}

int cli_locate(const char *arg, const cli_backend **backend, const char **location)
{
    if (!arg[0])
        return cli_fail("the store is an empty argument: give a path or a URI "
                        "such as lmdb:DIR");
    const cli_backend *b = by_scheme(arg, location);
    if (b && !(*location)[0])
        return cli_fail("%s: the URI names no store after '%s:'", arg, b->scheme);
    if (b && !b->shape) {
        *backend = b;
        return 0;
    }
    const char *path = b ? *location : arg;
    int status = check_exists(arg, path);
    if (status)
        return status;
    if (b) {
        const char *lacks = b->shape(path);
        if (lacks)
            return cli_fail("%s is not %s: %s", arg, b->what, lacks);
        *backend = b;
        return 0;
    }
    for (size_t i = 0; i < NBACKENDS; i++)
        if (backends[i].shape && !backends[i].shape(path)) {
            *backend = &backends[i];
            *location = path;
            return 0;
        }
    char what[256];
    describe(path, what, sizeof what);
    return cli_fail("%s is not a kivis store: it is %s", arg, what);
}

/* ---- opening ------------------------------------------------------------ */

static int open_failed(const cli_store *s, int rc)
{
    if (rc == KIVIS_ECORRUPT || rc == KIVIS_EVERSION)
        return cli_fail("%s is not a kivis store (not a valid %s: %s)", s->name,
                        s->backend->scheme, kivis_strerror(rc));
    if (rc == KIVIS_NOTFOUND)
        return cli_fail("%s is not a kivis store (a %s database without kivis's "
                        "data)", s->name, s->backend->scheme);
    if (rc == KIVIS_EBUSY)
        return cli_fail("%s: in use: another process holds it locked (%s)", s->name,
                        kivis_strerror(rc));
    return cli_fail("%s: cannot open: %s", s->name, kivis_strerror(rc));
}

int cli_open_storage(cli_store *s, const char *arg)
{
    memset(s, 0, sizeof *s);
    s->name = arg;
    int status = cli_locate(arg, &s->backend, &s->location);
    if (status)
        return status;
    int rc = s->backend->open(s->location, &s->st);
    if (rc)
        return open_failed(s, rc);
    rc = kivis_schema_load(s->st, NULL, &s->schema);
    if (rc == KIVIS_NOTFOUND)
        return cli_fail("%s is not a kivis store (no stored schema)", arg);
    if (rc == KIVIS_ECORRUPT)
        return cli_fail("%s: damaged store: the stored schema is corrupt", arg);
    if (rc)
        return cli_fail("%s: reading the stored schema: %s", arg, kivis_strerror(rc));
    return 0;
}

int cli_open(cli_store *s, const char *arg)
{
    int status = cli_open_storage(s, arg);
    if (status)
        return status;
    char err[256] = "";
    kivis_options o;
    memset(&o, 0, sizeof o);
    o.errbuf = err;
    o.errbuf_size = sizeof err;
    int rc = kivis_open(s->st, s->schema, &o, &s->db);
    if (rc)
        return cli_fail("%s: cannot open the database: %s%s%s", arg, kivis_strerror(rc),
                        err[0] ? ": " : "", err);
    return 0;
}

void cli_close(cli_store *s)
{
    kivis_close(s->db);
    kivis_schema_free(s->schema, NULL);
    kivis_storage_close(s->st);
    s->db = NULL;
    s->schema = NULL;
    s->st = NULL;
}

/* KIVIS_ECORRUPT during a walk is the backend finding a bad page or a
 * stored key that does not decode: either way the store is damaged. */
int cli_read_failed(const cli_store *s, const char *doing, const char *table, int rc)
{
    const char *detail = s->db ? kivis_errmsg(s->db) : "";
    return cli_fail("%s: %s%s%s%s: %s%s%s", s->name,
                    rc == KIVIS_ECORRUPT ? "the store is damaged: " : "", doing,
                    table ? " " : "", table ? table : "", kivis_strerror(rc),
                    detail[0] ? ": " : "", detail);
}
