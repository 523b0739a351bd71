/*
 * bench/engines/eng_sqlite.c - SQLite as an expert would use it: a WITHOUT
 * ROWID table keyed by the integer id, an index on name, prepared statements
 * only, WAL journal, a 256 MiB page cache and memory-mapped reads.
 *
 * Throughput runs use synchronous=NORMAL, durable ones synchronous=FULL (in
 * WAL mode: the WAL is flushed at every commit).  NORMAL is what kivis over
 * SQLite runs for KIVIS_NOSYNC: commits are not flushed, checkpoints are,
 * so a power cut may lose the last commits but never tears the database.
 * OFF would also skip the checkpoints' flushes, a weaker promise than the
 * kivis engine's, and its time would leave out the fdatasyncs kivis pays.
 * Writes and reads run in explicit transactions (BEGIN ... COMMIT); reads
 * BENCH_READ_BATCH to one.
 */
#include "bench.h"

#include <sqlite3.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    S_BEGIN, S_COMMIT, S_INSERT, S_GET, S_BY_NAME, S_SCAN, S_RENAME, S_REMOVE,
    S_COUNT
};

static const char *const sql[S_COUNT] = {
    "BEGIN",
    "COMMIT",
    "INSERT INTO user(id, name, email, age) VALUES (?, ?, ?, ?)",
    "SELECT name, email, age FROM user WHERE id = ?",
    "SELECT id, name, email, age FROM user WHERE name = ?",
    "SELECT id, name, email, age FROM user WHERE id >= ? AND id < ? ORDER BY id",
    "UPDATE user SET name = ? WHERE id = ?",
    "DELETE FROM user WHERE id = ?",
};

typedef struct sqlite_handle {
    sqlite3 *db;
    sqlite3_stmt *st[S_COUNT];
} sqlite_handle;

static void check(sqlite_handle *h, int rc, int want, const char *what)
{
    if (rc != want)
        bench_die("sqlite", what, sqlite3_errmsg(h->db));
}

static void exec(sqlite_handle *h, const char *stmt)
{
    check(h, sqlite3_exec(h->db, stmt, NULL, NULL, NULL), SQLITE_OK, stmt);
}

/* Run a statement that returns no rows, then reset it. */
static void step_done(sqlite_handle *h, int s)
{
    check(h, sqlite3_step(h->st[s]), SQLITE_DONE, sql[s]);
    sqlite3_reset(h->st[s]);
}

static void *sq_open(const void *arg, const char *dir, size_t n, bool durable)
{
    (void)arg;
    (void)n;
    sqlite_handle *h = calloc(1, sizeof *h);
    if (!h)
        bench_die("sqlite", "open", "out of memory");
    char path[4096];
    snprintf(path, sizeof path, "%s/bench.sqlite", dir);
    if (sqlite3_open(path, &h->db) != SQLITE_OK)
        bench_die("sqlite", "sqlite3_open", sqlite3_errmsg(h->db));
    exec(h, "PRAGMA journal_mode = WAL");
    exec(h, durable ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL");
    char pragma[64];
    snprintf(pragma, sizeof pragma, "PRAGMA cache_size = -%zu",
             (size_t)BENCH_SQLITE_CACHE / 1024);
    exec(h, pragma);
    snprintf(pragma, sizeof pragma, "PRAGMA mmap_size = %zu",
             (size_t)BENCH_SQLITE_MMAP);
    exec(h, pragma);
    exec(h, "CREATE TABLE user (id INTEGER PRIMARY KEY, name TEXT NOT NULL, "
            "email TEXT NOT NULL, age INTEGER NOT NULL) WITHOUT ROWID");
    exec(h, "CREATE INDEX user_by_name ON user(name)");
    for (int s = 0; s < S_COUNT; s++)
        check(h, sqlite3_prepare_v2(h->db, sql[s], -1, &h->st[s], NULL),
              SQLITE_OK, sql[s]);
    return h;
}

static void sq_close(void *hp)
{
    sqlite_handle *h = hp;
    for (int s = 0; s < S_COUNT; s++)
        sqlite3_finalize(h->st[s]);
    if (sqlite3_close(h->db) != SQLITE_OK)
        bench_die("sqlite", "sqlite3_close", sqlite3_errmsg(h->db));
    free(h);
}

/* Begin a transaction before operation i of a group of `every`, commit
 * after the last one (i + 1 == n or a full group). */
static void txn_edge(sqlite_handle *h, size_t i, size_t n, size_t every,
                     bool end)
{
    if (!end && i % every == 0)
        step_done(h, S_BEGIN);
    if (end && ((i + 1) % every == 0 || i + 1 == n))
        step_done(h, S_COMMIT);
}

static void sq_load(void *hp, const bench_user *u, size_t first, size_t n,
                    size_t txn_size, bench_result *r)
{
    sqlite_handle *h = hp;
    sqlite3_stmt *s = h->st[S_INSERT];
    for (size_t i = 0; i < n; i++) {
        const bench_user *v = &u[first + i];
        txn_edge(h, i, n, txn_size, false);
        sqlite3_bind_int64(s, 1, (sqlite3_int64)(first + i + 1));
        sqlite3_bind_text(s, 2, v->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 3, v->email, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 4, v->age);
        step_done(h, S_INSERT);
        r->rows++;
        r->sum += first + i + 1;
        txn_edge(h, i, n, txn_size, true);
    }
}

/* Copy a row's name, email and age columns out and count it. */
static void read_row(sqlite3_stmt *s, uint64_t key, int name_col,
                     int email_col, int age_col, bench_result *r)
{
    bench_row row;
    const unsigned char *name = sqlite3_column_text(s, name_col);
    size_t nl = (size_t)sqlite3_column_bytes(s, name_col);
    const unsigned char *email = sqlite3_column_text(s, email_col);
    size_t el = (size_t)sqlite3_column_bytes(s, email_col);
    row.key = key;
    row.age = (uint32_t)sqlite3_column_int64(s, age_col);
    memcpy(row.name, name, nl + 1);
    memcpy(row.email, email, el + 1);
    bench_account(r, key, row.name, nl, row.email, el, row.age);
}

static void sq_get(void *hp, const uint64_t *keys, size_t n, bench_result *r)
{
    sqlite_handle *h = hp;
    sqlite3_stmt *s = h->st[S_GET];
    for (size_t i = 0; i < n; i++) {
        txn_edge(h, i, n, BENCH_READ_BATCH, false);
        sqlite3_bind_int64(s, 1, (sqlite3_int64)keys[i]);
        check(h, sqlite3_step(s), SQLITE_ROW, sql[S_GET]);
        read_row(s, keys[i], 0, 1, 2, r);
        sqlite3_reset(s);
        txn_edge(h, i, n, BENCH_READ_BATCH, true);
    }
}

/* Step statement si to its end, counting every row; the key is column 0. */
static void read_rows(sqlite_handle *h, int si, int name_col, int email_col,
                      int age_col, bench_result *r)
{
    sqlite3_stmt *s = h->st[si];
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        read_row(s, (uint64_t)sqlite3_column_int64(s, 0), name_col, email_col,
                 age_col, r);
    check(h, rc, SQLITE_DONE, sql[si]);
    sqlite3_reset(s);
}

static void sq_by_name(void *hp, const char *const *names, size_t n,
                       bench_result *r)
{
    sqlite_handle *h = hp;
    sqlite3_stmt *s = h->st[S_BY_NAME];
    for (size_t i = 0; i < n; i++) {
        txn_edge(h, i, n, BENCH_READ_BATCH, false);
        sqlite3_bind_text(s, 1, names[i], -1, SQLITE_STATIC);
        read_rows(h, S_BY_NAME, 1, 2, 3, r);
        txn_edge(h, i, n, BENCH_READ_BATCH, true);
    }
}

static void sq_scan(void *hp, const uint64_t *starts, size_t n, size_t len,
                    bench_result *r)
{
    sqlite_handle *h = hp;
    sqlite3_stmt *s = h->st[S_SCAN];
    for (size_t i = 0; i < n; i++) {
        txn_edge(h, i, n, BENCH_READ_BATCH, false);
        sqlite3_bind_int64(s, 1, (sqlite3_int64)starts[i]);
        sqlite3_bind_int64(s, 2, (sqlite3_int64)(starts[i] + len));
        read_rows(h, S_SCAN, 1, 2, 3, r);
        txn_edge(h, i, n, BENCH_READ_BATCH, true);
    }
}

static void sq_rename(void *hp, const uint64_t *keys, const char *const *names,
                      size_t n, size_t txn_size, bench_result *r)
{
    sqlite_handle *h = hp;
    sqlite3_stmt *s = h->st[S_RENAME];
    for (size_t i = 0; i < n; i++) {
        txn_edge(h, i, n, txn_size, false);
        sqlite3_bind_text(s, 1, names[i], -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 2, (sqlite3_int64)keys[i]);
        step_done(h, S_RENAME);
        r->rows += (uint64_t)sqlite3_changes(h->db);
        r->sum += keys[i];
        txn_edge(h, i, n, txn_size, true);
    }
}

static void sq_remove(void *hp, const uint64_t *keys, size_t n,
                      size_t txn_size, bench_result *r)
{
    sqlite_handle *h = hp;
    sqlite3_stmt *s = h->st[S_REMOVE];
    for (size_t i = 0; i < n; i++) {
        txn_edge(h, i, n, txn_size, false);
        sqlite3_bind_int64(s, 1, (sqlite3_int64)keys[i]);
        step_done(h, S_REMOVE);
        r->rows += (uint64_t)sqlite3_changes(h->db);
        r->sum += keys[i];
        txn_edge(h, i, n, txn_size, true);
    }
}

static const char *sq_version(void)
{
    static char v[64];
    snprintf(v, sizeof v, "SQLite %s", sqlite3_libversion());
    return v;
}

const bench_engine bench_sqlite = {"sqlite", NULL, true, false, sq_version,
                                   sq_open, sq_close, sq_load, sq_get,
                                   sq_by_name, sq_scan, sq_rename, sq_remove,
                                   NULL};
