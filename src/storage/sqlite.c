/*
 * src/storage/sqlite.c - the SQLite backend (see kivis/sqlite.h).
 *
 * Transactions run on pooled connections, each with its statements
 * prepared once.  Cursors keep their bounds and the last key they returned
 * (kivis_bt_range).  A seek runs a query ordered from its key in the
 * cursor's direction, and steps in that direction read on in the same
 * query, one row a step, as long as the transaction has written nothing
 * since it started (SQLite leaves a query's results undefined once its
 * connection changes the table under it).  Any other step, and every step
 * after a write, starts a new query from the last key returned: the cursor
 * contract of storage.h (the transaction's writes are seen, NEXT goes on
 * after the last key returned) for one index probe per seek.  A following
 * cursor (kivis_txn_cursor_follow) runs the same probes joined to the rows
 * its entries name, and keeps each step's row as the last get (probe_sql).
 *
 * Queued puts.  A put does not run a statement of its own: it is copied to
 * the transaction's queue, and the queue goes to SQLite in multi-row
 * INSERTs (PUT_ROWS rows a statement, smaller ones for a tail) when it is
 * full, and before anything that must see it runs: a get, a cursor step,
 * a del, commit.  A load, puts one after another, thus costs one statement
 * per PUT_ROWS records; a get-put-put turn (an update) one INSERT for its
 * two puts.  Rows of one INSERT are written in order, so a key put twice
 * in it keeps the later value.  When an INSERT of the queue fails, some of
 * its puts (which each returned KIVIS_OK) are lost, so the transaction is
 * dead from there: the call that wrote the queue and every later one fail
 * with that status, and commit fails with nothing applied.  (A full write
 * set with read-your-writes, the overlay RocksDB uses, was measured and
 * not kept: docs/bench.md.)
 *
 * Durability.  SQLite refuses to change `synchronous` inside a transaction,
 * while kivis names the durability only at commit.  Every connection runs
 * with synchronous=NORMAL or FULL, never OFF: in WAL mode OFF also skips the
 * fsyncs of checkpoints, so a checkpoint followed by a WAL restart could
 * lose or tear commits in a power cut, which KIVIS_NOSYNC does not allow
 * ("atomic and consistent").  NORMAL is exactly KIVIS_NOSYNC: commits are
 * not flushed, checkpoints are.  A write transaction begins with FULL when
 * the storage's last commit was KIVIS_SYNC and with NORMAL after a
 * KIVIS_NOSYNC one, so that a steady workload of either kind commits the
 * way SQLite itself does.  When a KIVIS_SYNC commit runs under NORMAL, the
 * backend flushes the WAL file after COMMIT through SQLite's own file
 * handle (SQLITE_FCNTL_JOURNAL_POINTER, xSync): COMMIT has written the
 * frames with write(2), so the flush makes them durable, and any frames a
 * checkpoint already moved into the database file were flushed there by
 * that checkpoint (NORMAL) before the WAL could be restarted over them.
 * A KIVIS_NOSYNC commit under FULL is flushed needlessly but correctly.
 */
#include <kivis/sqlite.h>

#include "btree.h" /* kivis_bt_range, kivis__cursor_args, kivis__key_cmp */
#include "feedhub.h"

#include <sqlite3.h>

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Room in a record for its header beside the key and value bytes. */
#define RECORD_OVERHEAD 32
/* Get results are copied into chunks of this size (larger values get a
 * chunk of their own). */
#define ARENA_CHUNK 4096
/* The longest key whose last get is answered again (record keys are short;
 * a fixed buffer costs the get a memcpy and no allocation). */
#define LAST_KEY_MAX 64

/* The rows of the INSERTs that write queued puts, largest first.  A
 * multi-row INSERT costs SQLite more per row when it writes few of them
 * (two rows cost more than two one-row INSERTs): no sizes between. */
enum { PUT_SIZES = 3, PUT_ROWS = 64 };
static const size_t put_rows[PUT_SIZES] = {PUT_ROWS, 16, 1};

/* Statements prepared once per connection.  No PRAGMA among them: SQLite
 * applies `PRAGMA synchronous = x` when it compiles the statement, not
 * when it runs it, so a cached one would act once, at prepare time. */
enum stmt_id {
    S_GET, S_DEL, S_BEGIN_READ, S_BEGIN_WRITE, S_COMMIT, S_ROLLBACK, S_COUNT
};

static const char *const stmt_sql[S_COUNT] = {
    "SELECT v FROM kv WHERE k = ?1",
    "DELETE FROM kv WHERE k = ?1",
    "BEGIN DEFERRED",
    "BEGIN IMMEDIATE",
    "COMMIT",
    "ROLLBACK",
};

/* Cursor probes: ?1 the key to probe from, ?2 the far bound of the
 * cursor's range (hi going forward, lo going back); ordered in the probe's
 * direction, without LIMIT, so that the cursor's next steps that way read
 * on (SQLite computes rows as they are stepped to, so none is read ahead).  A forward probe of an
 * unbounded cursor has no ?2: "k < ?2 OR ?2 IS NULL" would cost the planner
 * its upper bound and scan to the end of the table past hi.  Going back, lo
 * is always there (the empty blob sorts below every key).  P_LAST is the
 * last key of an unbounded range: from lo (?2) down from the top. */
enum probe { P_GE, P_GT, P_LE, P_LT, P_LAST, P_COUNT };

/* The probes of a following cursor (kivis_txn_cursor_follow) add a third
 * column: the value of the row whose key is the cursor's prefix followed
 * by the last tail bytes of the entry's key, NULL when there is no such
 * row or the key is shorter than the tail.  SQLite runs it as one
 * primary-key search per row inside the probe's own VM program, where a
 * get would cost a statement; a join, not a scalar subquery, which would
 * open its cursor again at every row.  The key searched for comes from
 * FOLLOWED_FN (followed_key below), given the cursor as a pointer (?3):
 * built in the cursor's buffer, it costs no allocation, where the same key
 * in SQL (CAST(?prefix || substr(kv.k, -?tail) AS BLOB)) cost four
 * allocations a row, 13% of an index lookup. */
#define FOLLOWED_FN "kivis_followed_key"
#define PLAIN_SOURCE "kv.k, kv.v FROM kv"
#define FOLLOW_SOURCE                                                           \
    "kv.k, kv.v, r.v FROM kv LEFT JOIN kv AS r ON r.k = " FOLLOWED_FN "(?3, kv.k)"
#define PROBES(source)                                                          \
    {                                                                           \
        {                                                                       \
            "SELECT " source " WHERE kv.k >= ?1 ORDER BY kv.k",                 \
            "SELECT " source " WHERE kv.k > ?1 ORDER BY kv.k",                  \
            "SELECT " source " WHERE kv.k <= ?1 AND kv.k >= ?2 ORDER BY kv.k DESC", \
            "SELECT " source " WHERE kv.k < ?1 AND kv.k >= ?2 ORDER BY kv.k DESC",  \
            "SELECT " source " WHERE kv.k >= ?2 ORDER BY kv.k DESC",            \
        },                                                                      \
        {                                                                       \
            "SELECT " source " WHERE kv.k >= ?1 AND kv.k < ?2 ORDER BY kv.k",   \
            "SELECT " source " WHERE kv.k > ?1 AND kv.k < ?2 ORDER BY kv.k",    \
            "SELECT " source " WHERE kv.k <= ?1 AND kv.k >= ?2 ORDER BY kv.k DESC", \
            "SELECT " source " WHERE kv.k < ?1 AND kv.k >= ?2 ORDER BY kv.k DESC",  \
            "SELECT " source " WHERE kv.k >= ?2 ORDER BY kv.k DESC",            \
        },                                                                      \
    }

/* [following][bounded][probe] */
static const char *const probe_sql[2][2][P_COUNT] = {
    PROBES(PLAIN_SOURCE),
    PROBES(FOLLOW_SOURCE),
};

typedef struct sq_conn {
    sqlite3 *db;
    sqlite3_stmt *stmt[S_COUNT];
    sqlite3_stmt *puts[PUT_SIZES]; /* by put_rows, prepared on first use */
    /* Probes of a closed cursor, [following][bounded][probe], kept for the
     * next one: engine scans open many short cursors. */
    sqlite3_stmt *spare[2][2][P_COUNT];
    bool sync_full; /* synchronous = FULL (else NORMAL) */
    struct sq_conn *next;
} sq_conn;

typedef struct sq_storage {
    kivis_storage st; /* first: what the caller holds */
    kivis_allocator alloc;
    char *path;
    size_t max_key;
    int busy_ms;
    size_t cache_size, mmap_size; /* each connection's, in bytes; 0: SQLite's */
    bool no_create; /* open only an existing database with a kv table */
    pthread_mutex_t lock; /* guards the fields below */
    pthread_cond_t writer_done;
    sq_conn *idle;    /* the pool */
    bool writing;     /* a write transaction of this storage is open */
    pthread_t writer; /* its thread */
    bool last_nosync; /* durability of the last commit */
    kivis__feedhub *hub; /* the change feed of commits through this storage */
} sq_storage;

/* A queued put: its key and value bytes in sq_txn.queue. */
typedef struct queued {
    size_t at, key_len, value_len;
} queued;

/* Chunked memory for get results, see sq_get. */
typedef struct chunk {
    struct chunk *next;
    size_t cap, used;
    unsigned char data[];
} chunk;

typedef struct sq_txn {
    kivis_storage_txn txn; /* first: what the caller holds */
    sq_storage *s;
    sq_conn *c;
    chunk *arena;
    bool wrote; /* a put or del reached SQLite */
    uint64_t writes; /* puts and dels so far: a cursor's query is stale
                        once this moved on since it started */
    int dead;   /* SQLite rolled the transaction back, or queued puts were
                   lost: this status */
    queued queued[PUT_ROWS]; /* puts not yet written (see the top) */
    size_t nqueued;
    unsigned char *queue; /* their bytes */
    size_t queue_len, queue_cap;
    kivis__feedset fs; /* what a writer changed, for the feed */
    /* The last get and its answer, in the arena, given again without a
     * statement: a read-modify-write reads its record twice (the caller's
     * get, then the record engine's own), and the arena's release at the
     * next write ends both together. */
    bool has_last, last_found;
    size_t last_key_len;
    unsigned char last_key[LAST_KEY_MAX]; /* longer keys are not kept */
    kivis_slice last_value;
} sq_txn;

enum cursor_state { UNPLACED, PLACED, ENDED };

typedef struct sq_cursor {
    kivis_storage_cursor cur; /* first: what the caller holds */
    sq_txn *t;
    kivis_bt_range range;
    enum cursor_state state;
    bool bounded; /* range.hi.data != NULL: which probe_sql row */
    /* A following cursor (tail > 0): each row it returns also reads the
     * row named by prefix + the key's last tail bytes, for the next get. */
    size_t tail, prefix_len;
    unsigned char followed[LAST_KEY_MAX]; /* the prefix, then a tail */
    sqlite3_stmt *probe[P_COUNT]; /* prepared on first use */
    sqlite3_stmt *live; /* the probe holding the row returned last */
    bool live_forward;    /* live's direction */
    uint64_t live_writes; /* t->writes when live started */
} sq_cursor;

static const kivis_slice no_slice = {NULL, 0};

/* SQLite result codes (primary or extended) to kivis statuses. */
static int status_of(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_ROW:
    case SQLITE_DONE:
        return KIVIS_OK;
    case SQLITE_NOMEM:
        return KIVIS_ENOMEM;
    case SQLITE_FULL:
        return KIVIS_EFULL;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return KIVIS_EBUSY;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        return KIVIS_ECORRUPT;
    case SQLITE_TOOBIG:
        return KIVIS_EINVAL; /* put checks sizes first; kept for safety */
    default:
        return KIVIS_EIO;
    }
}

static void *s_malloc(const sq_storage *s, size_t n)
{
    return s->alloc.malloc(s->alloc.ctx, n);
}

static void s_free(const sq_storage *s, void *p)
{
    s->alloc.free(s->alloc.ctx, p);
}

/* Bind a byte string as a blob.  SQLITE_STATIC: every caller steps and
 * resets the statement while `s` is still borrowed. */
static int bind_blob(sqlite3_stmt *st, int i, kivis_slice s)
{
    /* A NULL pointer would bind SQL NULL: an empty blob must stay a blob. */
    return sqlite3_bind_blob(st, i, s.len ? s.data : "", (int)s.len, SQLITE_STATIC);
}

/* Column i of the current row as a slice; an empty blob as "" (SQLite
 * gives NULL), so that a found value is never mistaken for no value. */
static kivis_slice column(sqlite3_stmt *st, int i)
{
    const void *p = sqlite3_column_blob(st, i);
    size_t n = (size_t)sqlite3_column_bytes(st, i);
    return kivis_slice_make(p ? p : "", p ? n : 0);
}

/* Run a statement that returns no rows.  @return an SQLite code. */
static int step_done(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Run a cached statement that returns no rows.  @return an SQLite code. */
static int run(sq_conn *c, enum stmt_id id)
{
    return step_done(c->stmt[id]);
}

/* ---- connections -------------------------------------------------------- */

static void finalize_all(sqlite3_stmt **st, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        sqlite3_finalize(st[i]);
        st[i] = NULL;
    }
}

static void conn_close(sq_storage *s, sq_conn *c)
{
    finalize_all(c->stmt, S_COUNT);
    finalize_all(c->puts, PUT_SIZES);
    for (int follows = 0; follows < 2; follows++)
        for (int bounded = 0; bounded < 2; bounded++)
            finalize_all(c->spare[follows][bounded], P_COUNT);
    sqlite3_close(c->db);
    s_free(s, c);
}

/* WAL is what lets readers run beside the writer; a database that cannot
 * use it (say, on a file system without shared memory) is refused. */
static int enable_wal(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return status_of(rc);
    rc = sqlite3_step(st);
    int status = KIVIS_EIO; /* no row, or a mode other than WAL */
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        status = status_of(rc);
    else if (rc == SQLITE_ROW &&
             sqlite3_stricmp((const char *)sqlite3_column_text(st, 0), "wal") == 0)
        status = KIVIS_OK;
    sqlite3_finalize(st);
    return status;
}

/* no_create: a database without the kv table is not a kivis store, and is
 * left as it was (not even switched to WAL).  @return KIVIS_OK when the
 * table is there, KIVIS_NOTFOUND when not, else an error. */
static int has_kv_table(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db,
                                "SELECT 1 FROM sqlite_master WHERE type = 'table' "
                                "AND name = 'kv'",
                                -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? KIVIS_OK : rc == SQLITE_DONE ? KIVIS_NOTFOUND : status_of(rc);
}

/* The options' page cache and memory map for this connection (before
 * its first read: the map is set up at the first read after the pragma). */
static int size_caches(const sq_storage *s, sqlite3 *db)
{
    char sql[128];
    int rc = SQLITE_OK;
    if (s->cache_size) { /* a negative size is in KiB */
        snprintf(sql, sizeof sql, "PRAGMA cache_size = -%zu",
                 (s->cache_size + 1023) / 1024);
        rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    }
    if (rc == SQLITE_OK && s->mmap_size) {
        snprintf(sql, sizeof sql, "PRAGMA mmap_size = %zu", s->mmap_size);
        rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    }
    return status_of(rc);
}

static void followed_key(sqlite3_context *ctx, int argc, sqlite3_value **argv);

static int conn_setup(const sq_storage *s, sq_conn *c)
{
    int rc = sqlite3_busy_timeout(c->db, s->busy_ms > 0 ? s->busy_ms : 0);
    if (rc != SQLITE_OK)
        return status_of(rc);
    int status = s->no_create ? has_kv_table(c->db) : KIVIS_OK;
    if (status)
        return status;
    status = enable_wal(c->db);
    if (!status)
        status = size_caches(s, c->db);
    if (status)
        return status;
    /* temp_store: a multi-row INSERT of the queue may abort halfway (NOT
     * NULL), so SQLite keeps a statement journal of the pages it changes,
     * in memory up to 64 KiB and then in a temporary file: a 64-row INSERT
     * spilled, and a load wrote three times as many bytes there as to the
     * WAL.  In memory the journal is a copy of the pages, never a write(2). */
    rc = sqlite3_exec(c->db,
                      "PRAGMA synchronous = FULL;"
                      "PRAGMA temp_store = MEMORY;"
                      "CREATE TABLE IF NOT EXISTS kv("
                      "k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID;",
                      NULL, NULL, NULL);
    c->sync_full = true;
    if (rc == SQLITE_OK) /* DIRECTONLY: never from a schema or trigger */
        rc = sqlite3_create_function_v2(c->db, FOLLOWED_FN, 2,
                                        SQLITE_UTF8 | SQLITE_DETERMINISTIC |
                                            SQLITE_DIRECTONLY,
                                        NULL, followed_key, NULL, NULL, NULL);
    for (int i = 0; rc == SQLITE_OK && i < S_COUNT; i++)
        rc = sqlite3_prepare_v3(c->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
                                &c->stmt[i], NULL);
    return rc == SQLITE_OK ? KIVIS_OK : status_of(rc);
}

static int conn_open(sq_storage *s, sq_conn **out)
{
    sq_conn *c = s_malloc(s, sizeof *c);
    if (!c)
        return KIVIS_ENOMEM;
    memset(c, 0, sizeof *c);
    /* NOMUTEX: a connection serves one transaction, used by one thread at
     * a time; the pool's mutex orders its hand-over between threads. */
    int create = s->no_create ? 0 : SQLITE_OPEN_CREATE;
    int rc = sqlite3_open_v2(s->path, &c->db,
                             SQLITE_OPEN_READWRITE | create | SQLITE_OPEN_NOMUTEX |
                                 SQLITE_OPEN_EXRESCODE,
                             NULL);
    int status = rc == SQLITE_OK ? conn_setup(s, c)
                 : c->db         ? status_of(rc)
                                 : KIVIS_ENOMEM;
    if (status) {
        conn_close(s, c);
        return status;
    }
    *out = c;
    return KIVIS_OK;
}

static int conn_take(sq_storage *s, sq_conn **out)
{
    pthread_mutex_lock(&s->lock);
    sq_conn *c = s->idle;
    if (c)
        s->idle = c->next;
    pthread_mutex_unlock(&s->lock);
    if (!c)
        return conn_open(s, out);
    *out = c;
    return KIVIS_OK;
}

/* Back to the pool, unless it is stuck in a transaction SQLite would not
 * end: then it is no use to anyone. */
static void conn_give(sq_storage *s, sq_conn *c)
{
    if (!sqlite3_get_autocommit(c->db)) {
        conn_close(s, c);
        return;
    }
    pthread_mutex_lock(&s->lock);
    c->next = s->idle;
    s->idle = c;
    pthread_mutex_unlock(&s->lock);
}

/* ---- the writer --------------------------------------------------------- */

/* One write transaction per storage at a time.  Another thread's waits up
 * to busy_ms here (SQLite's busy handler then covers other processes);
 * the writer's own thread would only wait on itself. */
static int writer_enter(sq_storage *s, bool *nosync)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    int ms = s->busy_ms > 0 ? s->busy_ms : 0;
    deadline.tv_sec += ms / 1000;
    deadline.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    int rc = KIVIS_OK;
    pthread_mutex_lock(&s->lock);
    if (s->writing && pthread_equal(s->writer, pthread_self()))
        rc = KIVIS_EBUSY;
    while (rc == KIVIS_OK && s->writing)
        if (pthread_cond_timedwait(&s->writer_done, &s->lock, &deadline) == ETIMEDOUT)
            rc = KIVIS_EBUSY;
    if (rc == KIVIS_OK) {
        s->writing = true;
        s->writer = pthread_self();
        *nosync = s->last_nosync;
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

/* committed: record `nosync` as the durability of the last commit. */
static void writer_leave(sq_storage *s, bool committed, bool nosync)
{
    pthread_mutex_lock(&s->lock);
    s->writing = false;
    if (committed)
        s->last_nosync = nosync;
    pthread_cond_broadcast(&s->writer_done);
    pthread_mutex_unlock(&s->lock);
}

/* Set the connection's synchronous level for the commit expected (see the
 * top of this file), then take SQLite's write lock. */
static int begin_write(sq_conn *c, bool nosync)
{
    if (c->sync_full == nosync) {
        int rc = sqlite3_exec(c->db, nosync ? "PRAGMA synchronous = NORMAL"
                                            : "PRAGMA synchronous = FULL",
                              NULL, NULL, NULL);
        if (rc != SQLITE_OK)
            return status_of(rc);
        c->sync_full = !nosync;
    }
    return status_of(run(c, S_BEGIN_WRITE));
}

/* Flush the WAL with SQLite's own handle of it, as synchronous=FULL would
 * at commit (this also syncs the directory of a WAL file just created). */
static int sync_wal(sq_conn *c)
{
    sqlite3_file *f = NULL;
    int rc = sqlite3_file_control(c->db, "main", SQLITE_FCNTL_JOURNAL_POINTER, &f);
    if (rc != SQLITE_OK || !f || !f->pMethods)
        return KIVIS_EIO;
    rc = f->pMethods->xSync(f, SQLITE_SYNC_NORMAL);
    return rc == SQLITE_OK ? KIVIS_OK : KIVIS_EIO;
}

/* ---- the get arena ------------------------------------------------------ */

/* Copy a get result into the transaction's arena. */
static int arena_copy(sq_txn *t, kivis_slice v, kivis_slice *out)
{
    chunk *ch = t->arena;
    if (v.len == 0) {
        *out = kivis_slice_make("", 0);
        return KIVIS_OK;
    }
    if (!ch || ch->cap - ch->used < v.len) {
        size_t cap = v.len > ARENA_CHUNK ? v.len : ARENA_CHUNK;
        ch = s_malloc(t->s, sizeof *ch + cap);
        if (!ch)
            return KIVIS_ENOMEM;
        ch->cap = cap;
        ch->used = 0;
        ch->next = t->arena;
        t->arena = ch;
    }
    unsigned char *p = ch->data + ch->used;
    memcpy(p, v.data, v.len);
    ch->used += v.len;
    *out = kivis_slice_make(p, v.len);
    return KIVIS_OK;
}

/* End every get result.  One standard chunk stays for the next gets, so
 * that a get-put loop does not allocate at every turn; keep_none frees it
 * too, at the end of the transaction. */
static void arena_release(sq_txn *t, bool keep_none)
{
    chunk *keep = NULL;
    while (t->arena) {
        chunk *ch = t->arena;
        t->arena = ch->next;
        if (!keep && !keep_none && ch->cap == ARENA_CHUNK) {
            keep = ch;
            keep->used = 0;
        } else {
            s_free(t->s, ch);
        }
    }
    if (keep)
        keep->next = NULL;
    t->arena = keep;
    t->has_last = false; /* its copies are gone */
}

/* ---- transactions ------------------------------------------------------- */

static sq_txn *txn_of(kivis_storage_txn *t)
{
    return (sq_txn *)t;
}

/* The status of a failed step.  When SQLite has rolled the whole
 * transaction back on its own, every later call must fail with it: the
 * connection would otherwise go on in autocommit mode and commit each
 * later write by itself. */
static int failed(sq_txn *t, int rc)
{
    int status = status_of(rc);
    if (status == KIVIS_OK)
        status = KIVIS_EIO;
    if (sqlite3_get_autocommit(t->c->db))
        t->dead = status;
    return status;
}

static int check_key(const sq_txn *t, kivis_slice key)
{
    return kivis__check_key(key, t->s->max_key);
}

static bool is_last_get(const sq_txn *t, kivis_slice key)
{
    return t->has_last && key.len == t->last_key_len &&
           memcmp(key.data, t->last_key, key.len) == 0;
}

static int last_answer(const sq_txn *t, kivis_slice *value)
{
    *value = t->last_found ? t->last_value : no_slice;
    return t->last_found ? KIVIS_OK : KIVIS_NOTFOUND;
}

static void remember_last_get(sq_txn *t, kivis_slice key, bool found,
                              kivis_slice value)
{
    t->has_last = key.len <= LAST_KEY_MAX;
    if (t->has_last)
        memcpy(t->last_key, key.data, key.len);
    t->last_key_len = key.len;
    t->last_found = found;
    t->last_value = value;
}

/* ---- queued puts -------------------------------------------------------- */

/* The INSERT of put_rows[size] rows, prepared on its first use. */
static int put_stmt(sq_txn *t, int size, sqlite3_stmt **out)
{
    static const char head[] = "INSERT OR REPLACE INTO kv(k, v) VALUES (?, ?)";
    static const char more[] = ", (?, ?)";
    sqlite3_stmt **st = &t->c->puts[size];
    if (!*st) {
        char sql[sizeof head + (PUT_ROWS - 1) * (sizeof more - 1)];
        size_t len = sizeof head - 1;
        memcpy(sql, head, len);
        for (size_t i = 1; i < put_rows[size]; i++, len += sizeof more - 1)
            memcpy(sql + len, more, sizeof more - 1);
        sql[len] = '\0';
        int rc = sqlite3_prepare_v3(t->c->db, sql, (int)len + 1,
                                    SQLITE_PREPARE_PERSISTENT, st, NULL);
        if (rc != SQLITE_OK)
            return failed(t, rc);
    }
    *out = *st;
    return KIVIS_OK;
}

/* Insert put_rows[size] queued puts from the first'th with one statement. */
static int insert_rows(sq_txn *t, int size, size_t first)
{
    sqlite3_stmt *st;
    int rc = put_stmt(t, size, &st);
    if (rc)
        return rc;
    for (size_t i = 0; i < put_rows[size]; i++) {
        const queued *q = &t->queued[first + i];
        const unsigned char *key = t->queue + q->at;
        bind_blob(st, (int)(2 * i + 1), kivis_slice_make(key, q->key_len));
        bind_blob(st, (int)(2 * i + 2),
                  kivis_slice_make(key + q->key_len, q->value_len));
    }
    rc = step_done(st);
    return rc == SQLITE_OK ? KIVIS_OK : failed(t, rc);
}

/* Write the queued puts in order, each INSERT the largest the rest fills.
 * A failure kills the transaction (see the top). */
static int write_queue(sq_txn *t)
{
    int rc = KIVIS_OK;
    size_t done = 0;
    t->writes++; /* the cursors' queries are stale */
    for (int size = 0; rc == KIVIS_OK && done < t->nqueued;) {
        if (put_rows[size] > t->nqueued - done) {
            size++;
            continue;
        }
        rc = insert_rows(t, size, done);
        done += put_rows[size];
    }
    t->nqueued = 0;
    t->queue_len = 0;
    if (rc)
        t->dead = rc;
    return rc;
}

/* Before a read or a delete: the queued puts, if any, into SQLite. */
static inline int flush_puts(sq_txn *t)
{
    return t->nqueued ? write_queue(t) : KIVIS_OK;
}

/* Copy a put to the queue.  @return KIVIS_OK, KIVIS_ENOMEM. */
static int queue_put(sq_txn *t, kivis_slice key, kivis_slice value)
{
    size_t need = key.len + value.len;
    if (need > t->queue_cap - t->queue_len) {
        size_t cap = t->queue_cap ? t->queue_cap : ARENA_CHUNK;
        while (cap - t->queue_len < need)
            cap *= 2;
        unsigned char *p = t->s->alloc.realloc(t->s->alloc.ctx, t->queue, cap);
        if (!p)
            return KIVIS_ENOMEM;
        t->queue = p;
        t->queue_cap = cap;
    }
    queued *q = &t->queued[t->nqueued++];
    q->at = t->queue_len;
    q->key_len = key.len;
    q->value_len = value.len;
    memcpy(t->queue + q->at, key.data, key.len);
    if (value.len)
        memcpy(t->queue + q->at + key.len, value.data, value.len);
    t->queue_len += need;
    return KIVIS_OK;
}

/* SQLite's row buffer dies at the statement's next use, but storage.h
 * keeps a get result alive until the next write: copy it into the arena,
 * which the next put or del (or the end of the transaction) releases. */
static int sq_get(kivis_storage_txn *txn, kivis_slice key, kivis_slice *value)
{
    sq_txn *t = txn_of(txn);
    *value = no_slice;
    int rc = check_key(t, key);
    if (rc)
        return rc == KIVIS_EKEYSIZE ? KIVIS_NOTFOUND : rc; /* never stored */
    if (t->dead)
        return t->dead;
    if (is_last_get(t, key)) /* never true with puts queued: a put ends it */
        return last_answer(t, value);
    rc = flush_puts(t);
    if (rc)
        return rc;
    sqlite3_stmt *st = t->c->stmt[S_GET];
    bind_blob(st, 1, key);
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW)
        rc = arena_copy(t, column(st, 0), value);
    else
        rc = step == SQLITE_DONE ? KIVIS_NOTFOUND : failed(t, step);
    sqlite3_reset(st);
    if (rc == KIVIS_OK || rc == KIVIS_NOTFOUND)
        remember_last_get(t, key, rc == KIVIS_OK, *value);
    return rc;
}

/* Run a put or delete, bound by the caller. */
static int write_stmt(sq_txn *t, enum stmt_id id)
{
    t->wrote = true;
    t->writes++;
    int rc = run(t->c, id);
    return rc == SQLITE_OK ? KIVIS_OK : failed(t, rc);
}

static int write_check(const sq_txn *t, kivis_slice key)
{
    if (t->txn.flags & KIVIS_TXN_RDONLY)
        return KIVIS_EINVAL;
    int rc = check_key(t, key);
    return rc ? rc : t->dead;
}

/* Key and value must fit in one SQLite record. */
static int check_value(const sq_txn *t, kivis_slice key, kivis_slice value)
{
    if (!value.data && value.len)
        return KIVIS_EINVAL;
    size_t limit = (size_t)sqlite3_limit(t->c->db, SQLITE_LIMIT_LENGTH, -1);
    return value.len > limit - RECORD_OVERHEAD - key.len ? KIVIS_EINVAL : KIVIS_OK;
}

static int sq_put(kivis_storage_txn *txn, kivis_slice key, kivis_slice value)
{
    sq_txn *t = txn_of(txn);
    int rc = write_check(t, key);
    if (!rc)
        rc = check_value(t, key, value);
    if (!rc)
        rc = kivis__feedset_touch(&t->fs, txn, key);
    if (!rc) {
        t->wrote = true;
        rc = queue_put(t, key, value);
    }
    if (!rc && t->nqueued == PUT_ROWS)
        rc = flush_puts(t);
    arena_release(t, false); /* after the copy: key or value may be a get result */
    return rc;
}

static int sq_del(kivis_storage_txn *txn, kivis_slice key)
{
    sq_txn *t = txn_of(txn);
    int rc = write_check(t, key);
    if (!rc)
        rc = kivis__feedset_touch(&t->fs, txn, key);
    if (!rc)
        rc = flush_puts(t); /* the puts before the delete come first */
    if (!rc) {
        bind_blob(t->c->stmt[S_DEL], 1, key);
        rc = write_stmt(t, S_DEL);
    }
    if (!rc && sqlite3_changes(t->c->db) == 0)
        rc = KIVIS_NOTFOUND;
    arena_release(t, false);
    return rc;
}

/* Free the transaction; the connection goes back to the pool. */
static void txn_end(sq_txn *t, bool committed, int durability)
{
    sq_storage *s = t->s;
    arena_release(t, true);
    s_free(s, t->queue);
    kivis__feedset_free(&t->fs);
    conn_give(s, t->c);
    if (!(t->txn.flags & KIVIS_TXN_RDONLY))
        writer_leave(s, committed, durability == KIVIS_NOSYNC);
    s_free(s, t);
}

static void sq_abort(kivis_storage_txn *txn)
{
    sq_txn *t = txn_of(txn);
    if (!sqlite3_get_autocommit(t->c->db))
        run(t->c, S_ROLLBACK);
    txn_end(t, false, KIVIS_SYNC);
}

static int sq_commit(kivis_storage_txn *txn, int durability)
{
    sq_txn *t = txn_of(txn);
    int rc = t->dead;
    if (!rc && !(txn->flags & KIVIS_TXN_RDONLY)) {
        kivis__feedset_settle(&t->fs, txn); /* its gets may write the queue */
        rc = flush_puts(t);
        rc = rc ? rc : t->dead;
    }
    if (!rc && !(txn->flags & KIVIS_TXN_RDONLY)) {
        rc = run(t->c, S_COMMIT);
        rc = rc == SQLITE_OK ? KIVIS_OK : failed(t, rc);
    }
    if (rc || (txn->flags & KIVIS_TXN_RDONLY)) {
        sq_abort(txn); /* a read-only one has nothing to commit */
        return rc;
    }
    kivis__feedset_publish(&t->fs, t->s->hub); /* still the only writer */
    if (durability != KIVIS_NOSYNC && !t->c->sync_full && t->wrote)
        rc = sync_wal(t->c);
    txn_end(t, true, durability);
    return rc;
}

/* ---- cursors ------------------------------------------------------------ */

/* Prepare probe p, or take it from the connection's spares. */
static int probe_stmt(sq_cursor *c, enum probe p, sqlite3_stmt **out)
{
    sqlite3_stmt **st = &c->probe[p];
    sqlite3_stmt **spare = &c->t->c->spare[c->tail > 0][c->bounded][p];
    if (!*st && *spare) {
        *st = *spare;
        *spare = NULL;
    }
    if (!*st) {
        int rc = sqlite3_prepare_v3(c->t->c->db, probe_sql[c->tail > 0][c->bounded][p], -1,
                                    SQLITE_PREPARE_PERSISTENT, st, NULL);
        if (rc != SQLITE_OK)
            return failed(c->t, rc);
    }
    *out = *st;
    return KIVIS_OK;
}

/* The key an entry names (the caller checked key.len >= c->tail), in the
 * cursor's buffer until the next. */
static kivis_slice followed_of(sq_cursor *c, kivis_slice key)
{
    memcpy(c->followed + c->prefix_len,
           (const unsigned char *)key.data + key.len - c->tail, c->tail);
    return kivis_slice_make(c->followed, c->prefix_len + c->tail);
}

/* FOLLOWED_FN(cursor, k): the key entry k names, NULL for one shorter than
 * the tail.  SQLITE_STATIC: the search that takes it runs in the same
 * step, before the cursor's buffer can change. */
static void followed_key(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    sq_cursor *c = sqlite3_value_pointer(argv[0], FOLLOWED_FN);
    const void *k = sqlite3_value_blob(argv[1]);
    size_t n = (size_t)sqlite3_value_bytes(argv[1]);
    if (!c || !k || n < c->tail) {
        sqlite3_result_null(ctx);
        return;
    }
    kivis_slice f = followed_of(c, kivis_slice_make(k, n));
    sqlite3_result_blob(ctx, f.data, (int)f.len, SQLITE_STATIC);
}

/* Bind probe p's parameters: from `key`, within the far bound, and what
 * a following cursor follows. */
static void bind_probe(sq_cursor *c, sqlite3_stmt *st, enum probe p,
                       kivis_slice key)
{
    bool forward = p == P_GE || p == P_GT;
    bind_blob(st, 1, key);
    if (c->bounded || !forward) /* see probe_sql */
        bind_blob(st, 2, forward ? c->range.hi : c->range.lo);
    if (c->tail)
        sqlite3_bind_pointer(st, 3, c, FOLLOWED_FN, NULL);
}

/* The first (forward probes) or last (backward) entry from `key`, within
 * the range's far bound; the row stays in the probe until the cursor's
 * next probe, and so do *v and the key it gives. */
static int probe(sq_cursor *c, enum probe p, kivis_slice key, kivis_slice *k,
                 kivis_slice *v)
{
    sqlite3_stmt *st = NULL;
    int rc = probe_stmt(c, p, &st);
    if (rc)
        return rc;
    if (c->live)
        sqlite3_reset(c->live);
    c->live = NULL;
    bind_probe(c, st, p, key);
    rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_reset(st);
        return rc == SQLITE_DONE ? KIVIS_NOTFOUND : failed(c->t, rc);
    }
    c->live = st;
    c->live_forward = p == P_GE || p == P_GT;
    c->live_writes = c->t->writes;
    *k = column(st, 0);
    *v = column(st, 1);
    return KIVIS_OK;
}

/* First entry >= target (NULL: the range's start), below hi. */
static int seek_ge(sq_cursor *c, const kivis_slice *target, kivis_slice *k,
                   kivis_slice *v)
{
    kivis_slice from = target && kivis__key_cmp(*target, c->range.lo) > 0
                           ? *target : c->range.lo;
    return probe(c, P_GE, from, k, v);
}

/* Last entry <= target (NULL: the range's end), at or above lo. */
static int seek_le(sq_cursor *c, const kivis_slice *target, kivis_slice *k,
                   kivis_slice *v)
{
    const kivis_slice hi = c->range.hi;
    if (target && (!hi.data || kivis__key_cmp(*target, hi) < 0))
        return probe(c, P_LE, *target, k, v);
    if (!hi.data)
        return probe(c, P_LAST, no_slice, k, v);
    return probe(c, P_LT, hi, k, v); /* hi is exclusive */
}

/* Step the live query to its next row, when it goes the way asked and
 * nothing was written since it started: its rows come in order from the
 * key it started at, so that row is the first past the last one returned.
 * @return false when it cannot serve (*rc untouched), else true with the
 * step's status in *rc. */
static bool read_on(sq_cursor *c, bool forward, int *rc, kivis_slice *k,
                    kivis_slice *v)
{
    sqlite3_stmt *st = c->live;
    if (!st || c->live_forward != forward || c->live_writes != c->t->writes)
        return false;
    int step = sqlite3_step(st);
    if (step != SQLITE_ROW) {
        sqlite3_reset(st);
        c->live = NULL;
        *rc = step == SQLITE_DONE ? KIVIS_NOTFOUND : failed(c->t, step);
        return true;
    }
    *k = column(st, 0);
    *v = column(st, 1);
    *rc = KIVIS_OK;
    return true;
}

static int move(sq_cursor *c, int op, const kivis_slice *target, kivis_slice *k,
                kivis_slice *v)
{
    bool forward = op == KIVIS_FIRST || op == KIVIS_NEXT || op == KIVIS_SEEK_GE;
    if (op == KIVIS_NEXT || op == KIVIS_PREV) {
        int rc;
        if (c->state == ENDED)
            return KIVIS_NOTFOUND;
        if (c->state == PLACED && read_on(c, forward, &rc, k, v))
            return rc;
        if (c->state == PLACED)
            return probe(c, forward ? P_GT : P_LT, kivis__range_last(&c->range), k, v);
        target = NULL; /* never placed: FIRST or LAST */
    }
    return forward ? seek_ge(c, target, k, v) : seek_le(c, target, k, v);
}

/* A following cursor has just returned `key` from the live probe: its
 * followed row (or its absence) becomes the transaction's last get, copied
 * into the arena as sq_get would, so that the get that comes next runs no
 * statement and is ended by the same writes.  A hint: a row that cannot be
 * kept is read by its get.  Keys shorter than the tail name nothing. */
static void remember_followed(sq_cursor *c, kivis_slice key)
{
    sq_txn *t = c->t;
    if (key.len < c->tail)
        return;
    kivis_slice k = followed_of(c, key), v = no_slice;
    bool found = sqlite3_column_type(c->live, 2) != SQLITE_NULL;
    if (found && arena_copy(t, column(c->live, 2), &v) != KIVIS_OK)
        return;
    remember_last_get(t, k, found, v);
}

static int sc_get(kivis_storage_cursor *cur, int op, kivis_slice *key,
                  kivis_slice *value)
{
    sq_cursor *c = (sq_cursor *)cur;
    kivis_slice buf, k, v;
    const kivis_slice *target;
    int rc = kivis__cursor_args(op, key, value, &buf, &target);
    if (!rc)
        rc = c->t->dead;
    if (!rc)
        rc = flush_puts(c->t); /* a cursor sees them */
    if (!rc)
        rc = move(c, op, target, &k, &v);
    if (rc == KIVIS_OK && !kivis__range_has(&c->range, k))
        rc = KIVIS_NOTFOUND;
    if (rc == KIVIS_OK)
        rc = kivis__range_remember(&c->range, &c->t->s->alloc, k);
    if (rc == KIVIS_ENOMEM && c->live) { /* the row is not returned: the */
        sqlite3_reset(c->live);          /* next step probes for it again */
        c->live = NULL;
    }
    if (rc == KIVIS_NOTFOUND)
        c->state = ENDED;
    if (rc)
        return rc;
    c->state = PLACED;
    *key = kivis__range_last(&c->range);
    if (c->tail)
        remember_followed(c, *key);
    if (value)
        *value = v;
    return KIVIS_OK;
}

/* Give the probes to the connection's spares where a slot is free. */
static void sc_close(kivis_storage_cursor *cur)
{
    sq_cursor *c = (sq_cursor *)cur;
    sq_conn *conn = c->t->c;
    for (int p = 0; p < P_COUNT; p++) {
        sqlite3_stmt **spare = &conn->spare[c->tail > 0][c->bounded][p];
        if (c->probe[p] && !*spare) {
            sqlite3_reset(c->probe[p]);
            if (c->tail) /* its ?3 points at this cursor */
                sqlite3_clear_bindings(c->probe[p]);
            *spare = c->probe[p];
        } else {
            sqlite3_finalize(c->probe[p]);
        }
    }
    kivis__range_free(&c->range, &c->t->s->alloc);
    s_free(c->t->s, c);
}

static const kivis_cursor_methods sq_cursor_methods = {sc_get, sc_close,
                                                      NULL /* page */};

static int cursor_new(sq_txn *t, kivis_slice lo, kivis_slice hi, sq_cursor **out)
{
    *out = NULL;
    if (!lo.data && lo.len)
        return KIVIS_EINVAL;
    sq_cursor *c = s_malloc(t->s, sizeof *c);
    if (!c)
        return KIVIS_ENOMEM;
    memset(c, 0, sizeof *c);
    c->cur.methods = &sq_cursor_methods;
    c->t = t;
    c->state = UNPLACED;
    c->bounded = hi.data != NULL;
    if (kivis__range_init(&c->range, &t->s->alloc, lo, hi) != KIVIS_OK) {
        s_free(t->s, c);
        return KIVIS_ENOMEM;
    }
    *out = c;
    return KIVIS_OK;
}

static int sq_cursor_open(kivis_storage_txn *txn, kivis_slice lo, kivis_slice hi,
                          kivis_storage_cursor **out)
{
    sq_cursor *c;
    int rc = cursor_new(txn_of(txn), lo, hi, &c);
    *out = c ? &c->cur : NULL;
    return rc;
}

/* A cursor whose probes also read the rows their entries name (see
 * probe_sql).  Followed keys too long to be a remembered get (prefix and
 * tail over LAST_KEY_MAX) would gain nothing: a plain cursor then. */
static int sq_cursor_follow(kivis_storage_txn *txn, kivis_slice lo, kivis_slice hi,
                            kivis_slice prefix, size_t tail,
                            kivis_storage_cursor **out)
{
    sq_cursor *c;
    int rc = cursor_new(txn_of(txn), lo, hi, &c);
    *out = c ? &c->cur : NULL;
    if (rc || tail > LAST_KEY_MAX || prefix.len > LAST_KEY_MAX - tail)
        return rc;
    c->tail = tail;
    c->prefix_len = prefix.len;
    if (prefix.len)
        memcpy(c->followed, prefix.data, prefix.len);
    return KIVIS_OK;
}

static const kivis_txn_methods sq_txn_methods = {
    sq_get, sq_put, sq_del, sq_cursor_open, sq_commit, sq_abort,
    NULL, NULL, /* discard is del: local reads cost no round trip */
    sq_cursor_follow,
};

/* ---- the storage -------------------------------------------------------- */

static sq_storage *storage_of(kivis_storage *st)
{
    return (sq_storage *)st;
}

/* A connection with its transaction begun; the writer slot already held
 * for a write transaction. */
static int begin_on_conn(sq_storage *s, bool rdonly, bool nosync, sq_conn **out)
{
    int rc = conn_take(s, out);
    if (rc)
        return rc;
    rc = rdonly ? status_of(run(*out, S_BEGIN_READ)) : begin_write(*out, nosync);
    if (rc) {
        conn_give(s, *out);
        *out = NULL;
    }
    return rc;
}

static int sq_begin(kivis_storage *st, unsigned flags, kivis_storage_txn **out)
{
    sq_storage *s = storage_of(st);
    *out = NULL;
    if (flags & ~KIVIS_TXN_RDONLY)
        return KIVIS_EINVAL;
    bool rdonly = flags & KIVIS_TXN_RDONLY, nosync = false;
    sq_txn *t = s_malloc(s, sizeof *t);
    if (!t)
        return KIVIS_ENOMEM;
    memset(t, 0, sizeof *t);
    int rc = rdonly ? KIVIS_OK : writer_enter(s, &nosync);
    if (!rc) {
        rc = begin_on_conn(s, rdonly, nosync, &t->c);
        if (rc && !rdonly)
            writer_leave(s, false, false);
    }
    if (rc) {
        s_free(s, t);
        return rc;
    }
    t->txn.methods = &sq_txn_methods;
    t->txn.storage = st;
    t->txn.flags = flags;
    t->s = s;
    if (!rdonly)
        kivis__feedset_begin(&t->fs, s->hub, &s->alloc);
    *out = &t->txn;
    return KIVIS_OK;
}

static size_t sq_max_key(kivis_storage *st)
{
    return storage_of(st)->max_key;
}

static void storage_free(sq_storage *s)
{
    while (s->idle) {
        sq_conn *c = s->idle;
        s->idle = c->next;
        conn_close(s, c);
    }
    kivis__feedhub_release(s->hub);
    pthread_cond_destroy(&s->writer_done);
    pthread_mutex_destroy(&s->lock);
    s_free(s, s->path);
    s_free(s, s);
}

static int sq_feed_open(kivis_storage *st, uint64_t after, kivis_feed **out)
{
    return kivis__feedhub_open(storage_of(st)->hub, after, out);
}

static void sq_close(kivis_storage *st)
{
    storage_free(storage_of(st));
}

static const kivis_storage_methods sq_storage_methods = {
    KIVIS_STORAGE_VERSION, "sqlite", sq_close, sq_max_key, sq_begin,
    sq_feed_open,
};

/* "" and ":memory:" open a private database per connection. */
static bool names_a_file(const char *path)
{
    return path[0] != '\0' && strcmp(path, ":memory:") != 0;
}

static int init_storage(sq_storage *s, const char *path, const kivis_sqlite_options *o,
                        bool no_create)
{
    s->max_key = o && o->max_key_size ? o->max_key_size : KIVIS_SQLITE_MAX_KEY;
    s->busy_ms = o && o->busy_timeout_ms ? o->busy_timeout_ms
                                         : KIVIS_SQLITE_BUSY_TIMEOUT_MS;
    s->cache_size = o ? o->cache_size : 0;
    s->mmap_size = o ? o->mmap_size : 0;
    s->no_create = no_create;
    size_t n = strlen(path) + 1;
    s->path = s_malloc(s, n);
    if (!s->path)
        return KIVIS_ENOMEM;
    memcpy(s->path, path, n);
    int rc = kivis__feedhub_new(&s->alloc, &s->hub);
    if (rc)
        return rc;
    /* The first connection creates the table and proves the file. */
    sq_conn *c;
    rc = conn_open(s, &c);
    if (rc)
        return rc;
    s->idle = c;
    size_t limit = (size_t)sqlite3_limit(c->db, SQLITE_LIMIT_LENGTH, -1);
    return s->max_key > limit - RECORD_OVERHEAD ? KIVIS_EINVAL : KIVIS_OK;
}

static int open_storage(const char *path, const kivis_sqlite_options *opts,
                        bool no_create, kivis_storage **out)
{
    if (!out)
        return KIVIS_EINVAL;
    *out = NULL;
    if (!path || !names_a_file(path))
        return KIVIS_EINVAL;
    const kivis_allocator *a = opts && opts->allocator ? opts->allocator
                                                       : kivis_default_allocator();
    sq_storage *s = a->malloc(a->ctx, sizeof *s);
    if (!s)
        return KIVIS_ENOMEM;
    memset(s, 0, sizeof *s);
    s->st.methods = &sq_storage_methods;
    s->alloc = *a;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->writer_done, NULL);
    int rc = init_storage(s, path, opts, no_create);
    if (rc) {
        storage_free(s);
        return rc;
    }
    *out = &s->st;
    return KIVIS_OK;
}

int kivis_sqlite_open(const char *path, const kivis_sqlite_options *opts,
                      kivis_storage **out)
{
    return open_storage(path, opts, false, out);
}

int kivis_sqlite_open_existing(const char *path, const kivis_sqlite_options *opts,
                               kivis_storage **out)
{
    return open_storage(path, opts, true, out);
}

/* ---- backup and vacuum -------------------------------------------------- */

static bool is_sqlite(const kivis_storage *st)
{
    return st && st->methods == &sq_storage_methods;
}

/* Remove a database file and the files SQLite keeps beside it. */
static void remove_database(const char *path)
{
    static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
    char name[4096];
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++)
        if ((size_t)snprintf(name, sizeof name, "%s%s", path, suffixes[i]) < sizeof name)
            unlink(name);
}

/* Copy every page of c's database into `to` in one step: one read
 * transaction on the source, so the copy is one commit's state; in WAL
 * mode writers go on meanwhile. */
static int copy_pages(sq_conn *c, sqlite3 *to)
{
    sqlite3_backup *b = sqlite3_backup_init(to, "main", c->db, "main");
    if (!b)
        return status_of(sqlite3_extended_errcode(to));
    int rc;
    while ((rc = sqlite3_backup_step(b, -1)) == SQLITE_BUSY || rc == SQLITE_LOCKED)
        sqlite3_sleep(10);
    int fin = sqlite3_backup_finish(b);
    return status_of(rc == SQLITE_DONE ? fin : rc);
}

int kivis_sqlite_backup(kivis_storage *st, const char *dest)
{
    if (!is_sqlite(st) || !dest || !names_a_file(dest))
        return KIVIS_EINVAL;
    struct stat sb;
    if (stat(dest, &sb) == 0 || errno != ENOENT)
        return KIVIS_EINVAL;
    sq_storage *s = storage_of(st);
    sq_conn *c;
    int status = conn_take(s, &c);
    if (status)
        return status;
    sqlite3 *to = NULL;
    int rc = sqlite3_open_v2(dest, &to, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    status = rc != SQLITE_OK ? (to ? status_of(rc) : KIVIS_ENOMEM) : copy_pages(c, to);
    conn_give(s, c);
    /* The copy is private: compact it, then let close fold its WAL in. */
    if (!status)
        status = status_of(sqlite3_exec(to, "VACUUM", NULL, NULL, NULL));
    if (sqlite3_close(to) != SQLITE_OK && !status)
        status = KIVIS_EIO;
    if (status)
        remove_database(dest);
    return status;
}

int kivis_sqlite_vacuum(kivis_storage *st)
{
    if (!is_sqlite(st))
        return KIVIS_EINVAL;
    sq_storage *s = storage_of(st);
    bool nosync;
    int status = writer_enter(s, &nosync); /* no writer of this storage */
    if (status)
        return status;
    sq_conn *c;
    status = conn_take(s, &c);
    if (!status) { /* VACUUM's copy of the database: a file, not memory */
        status = status_of(sqlite3_exec(c->db,
                                        "PRAGMA temp_store = DEFAULT; VACUUM;"
                                        "PRAGMA wal_checkpoint(TRUNCATE);",
                                        NULL, NULL, NULL));
        int rc = sqlite3_exec(c->db, "PRAGMA temp_store = MEMORY", NULL, NULL, NULL);
        status = status ? status : status_of(rc);
        conn_give(s, c);
    }
    writer_leave(s, false, false);
    return status;
}
