/*
 * src/storage/postgres.c - the PostgreSQL backend (see kivis/postgres.h).
 *
 * Every connection runs in libpq's pipeline mode, so that the statements a
 * call needs (BEGIN with the first read, the batch writes with COMMIT) go
 * out together and come back in one round trip: a request queues its
 * statements, sends a Sync and reads their replies up to it.  The end of a
 * read-only transaction (ROLLBACK) is queued without waiting; its reply is
 * read, and dropped, in front of the connection's next request.
 *
 * A read-only transaction reads the server directly.  A write transaction
 * is an overlay (kivis/overlay.h) over such a reading transaction on the
 * same connection (SERIALIZABLE instead of READ ONLY): the server sees its
 * writes only at commit, as two array statements (upsert, delete) in front
 * of COMMIT.  Buffering beats sending each write in the pipeline: del must
 * say whether the key was there (a round trip either way, which the get
 * cache below answers when the record engine has read the key before), and
 * the batch is one statement per kind however many writes it holds.
 *
 * Reads are cached per transaction: the snapshot cannot change under it, so
 * a key read once is never fetched again, and a cursor reads pages of rows
 * (the rows past the page's last one are asked for only when stepped to).
 */
#include <kivis/postgres.h>

#include <kivis/overlay.h>

#include "btree.h" /* the get cache, kivis_bt_range, kivis__key_cmp */

#include <libpq-fe.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define BYTEA_OID 17
#define INT8_OID 20
#define PAGE_FIRST 16    /* rows in a cursor's first page */
#define PAGE_GROWTH 8    /* each next page going the same way: 8 times */
#define PAGE_MAX 1024    /* rows in a page at most */
#define MAX_QUEUE 6      /* statements in one request at most */

/* ---- statements --------------------------------------------------------- */

/* Prepared on every connection.  Pages take $1 the key to start from, $2
 * the row limit, $3 the far bound of the cursor's range (hi going forward,
 * lo going back; unused by the unbounded forward pages). */
enum stmt {
    S_GET, S_UPSERT, S_DELETE,
    S_GE, S_GT, S_GE_HI, S_GT_HI, S_LE, S_LT, S_LAST,
    S_COUNT
};

static const char *const stmt_fmt[S_COUNT] = {
    "SELECT v FROM %s WHERE k = $1",
    ("INSERT INTO %s(k, v) SELECT * FROM unnest($1::bytea[], $2::bytea[]) "
     "ON CONFLICT (k) DO UPDATE SET v = excluded.v"),
    "DELETE FROM %s WHERE k = ANY($1::bytea[])",
    "SELECT k, v FROM %s WHERE k >= $1 ORDER BY k LIMIT $2",
    "SELECT k, v FROM %s WHERE k > $1 ORDER BY k LIMIT $2",
    "SELECT k, v FROM %s WHERE k >= $1 AND k < $3 ORDER BY k LIMIT $2",
    "SELECT k, v FROM %s WHERE k > $1 AND k < $3 ORDER BY k LIMIT $2",
    "SELECT k, v FROM %s WHERE k <= $1 AND k >= $3 ORDER BY k DESC LIMIT $2",
    "SELECT k, v FROM %s WHERE k < $1 AND k >= $3 ORDER BY k DESC LIMIT $2",
    "SELECT k, v FROM %s WHERE k >= $3 ORDER BY k DESC LIMIT $2",
};

static const char *const stmt_name[S_COUNT] = {
    "kv_get", "kv_upsert", "kv_delete", "kv_ge", "kv_gt", "kv_ge_hi",
    "kv_gt_hi", "kv_le", "kv_lt", "kv_last",
};

static const Oid stmt_types[S_COUNT][3] = {
    {BYTEA_OID}, {0, 0}, {0},
    {BYTEA_OID, INT8_OID, BYTEA_OID}, {BYTEA_OID, INT8_OID, BYTEA_OID},
    {BYTEA_OID, INT8_OID, BYTEA_OID}, {BYTEA_OID, INT8_OID, BYTEA_OID},
    {BYTEA_OID, INT8_OID, BYTEA_OID}, {BYTEA_OID, INT8_OID, BYTEA_OID},
    {BYTEA_OID, INT8_OID, BYTEA_OID},
};

static const int stmt_nparams[S_COUNT] = {1, 2, 1, 3, 3, 3, 3, 3, 3, 3};

static const int binary[3] = {1, 1, 1};

static const char BEGIN_READ[] = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";
static const char BEGIN_WRITE[] = "BEGIN ISOLATION LEVEL SERIALIZABLE";

/* ---- objects ------------------------------------------------------------ */

typedef struct pg_conn {
    PGconn *pc;
    const char *begin;  /* BEGIN to send in front of the next statement */
    bool open;          /* a transaction block is (or may be) open */
    int dead;           /* the error that ended the current transaction */
    int owed;           /* Syncs sent whose replies are still unread */
    struct pg_conn *next;
} pg_conn;

typedef struct pg_storage {
    kivis_storage st; /* first: what the caller holds */
    kivis_allocator alloc;
    char *conninfo;
    char *sql[S_COUNT];
    size_t max_key;
    pthread_mutex_t lock; /* guards idle */
    pg_conn *idle;        /* the pool */
} pg_storage;

/* A reading transaction: read-only, or the base of a write one. */
typedef struct pg_txn {
    kivis_storage_txn txn; /* first: what the caller holds */
    pg_storage *s;
    pg_conn *c;
    bool borrowed;      /* c belongs to the write transaction over it */
    kivis_btree *cache; /* key -> a cached_value * (NULL: absent) */
} pg_txn;

typedef struct cached_value {
    size_t len;
    unsigned char data[];
} cached_value;

typedef struct pg_writer {
    kivis_storage_txn txn; /* first: what the caller holds */
    pg_storage *s;
    pg_conn *c;
    kivis_storage_txn *ov;
    bool applied; /* the overlay's commit reached apply */
} pg_writer;

enum cursor_state { UNPLACED, PLACED, ENDED };

typedef struct pg_cursor {
    kivis_storage_cursor cur; /* first: what the caller holds */
    pg_txn *t;
    kivis_bt_range range; /* the bounds (range.last unused) */
    enum cursor_state state;
    PGresult *page; /* rows in key order going `dir` */
    int dir;        /* +1 ascending, -1 descending */
    int rows, at;   /* rows in the page, the current one */
    bool complete;  /* the page reaches the range's end going `dir` */
    int limit;      /* rows asked for in the next page */
} pg_cursor;

static const kivis_slice no_slice = {NULL, 0};

/* ---- errors ------------------------------------------------------------- */

static _Thread_local char errmsg_buf[512];

const char *kivis_postgres_errmsg(void)
{
    return errmsg_buf;
}

static void keep_message(const char *msg)
{
    snprintf(errmsg_buf, sizeof errmsg_buf, "%s", msg ? msg : "");
    size_t n = strlen(errmsg_buf);
    while (n && errmsg_buf[n - 1] == '\n')
        errmsg_buf[--n] = '\0';
}

static bool sqlstate_is(const char *state, const char *want)
{
    return state && strncmp(state, want, strlen(want)) == 0;
}

/* The status of a failed statement (r may be NULL: no reply at all). */
static int status_of(PGconn *pc, const PGresult *r)
{
    if (PQstatus(pc) == CONNECTION_BAD || !r) {
        keep_message(PQerrorMessage(pc));
        return KIVIS_EUNAVAILABLE;
    }
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    keep_message(PQresultErrorMessage(r));
    if (sqlstate_is(state, "40001") || sqlstate_is(state, "40P01"))
        return KIVIS_ECONFLICT;
    if (sqlstate_is(state, "08") || sqlstate_is(state, "57P0"))
        return KIVIS_EUNAVAILABLE;
    if (sqlstate_is(state, "53100"))
        return KIVIS_EFULL;
    if (sqlstate_is(state, "53200"))
        return KIVIS_ENOMEM;
    if (sqlstate_is(state, "XX001") || sqlstate_is(state, "XX002"))
        return KIVIS_ECORRUPT;
    if (sqlstate_is(state, "42501") || sqlstate_is(state, "3F000") ||
        sqlstate_is(state, "22001") || sqlstate_is(state, "54000"))
        return KIVIS_EINVAL;
    return KIVIS_EIO;
}

static bool result_ok(const PGresult *r)
{
    ExecStatusType st = PQresultStatus(r);
    return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
}

/* ---- memory ------------------------------------------------------------- */

static void *s_malloc(const pg_storage *s, size_t n)
{
    return s->alloc.malloc(s->alloc.ctx, n);
}

static void s_free(const pg_storage *s, void *p)
{
    s->alloc.free(s->alloc.ctx, p);
}

static char *s_strdup(const pg_storage *s, const char *str)
{
    size_t n = strlen(str) + 1;
    char *p = s_malloc(s, n);
    if (p)
        memcpy(p, str, n);
    return p;
}

/* ---- requests ----------------------------------------------------------- */

static atomic_ullong round_trips;

unsigned long long kivis_postgres_round_trips(void)
{
    return atomic_load_explicit(&round_trips, memory_order_relaxed);
}

/* Send a Sync whose replies will be waited for: one round trip. */
static int sync_for_reply(PGconn *pc)
{
    atomic_fetch_add_explicit(&round_trips, 1, memory_order_relaxed);
    return PQpipelineSync(pc) ? KIVIS_OK : status_of(pc, NULL);
}

/* A statement to queue: prepared (sql NULL) or one-off text. */
typedef struct query {
    enum stmt id;
    const char *sql;
    int n;
    const char *val[3];
    int len[3];
} query;

/* A slice as a binary parameter; never NULL, which would send SQL NULL. */
static void param(query *q, int i, kivis_slice s)
{
    q->val[i] = s.len ? s.data : "";
    q->len[i] = (int)s.len;
}

static int queue(PGconn *pc, const query *q)
{
    int ok = q->sql ? PQsendQueryParams(pc, q->sql, 0, NULL, NULL, NULL, NULL, 1)
                    : PQsendQueryPrepared(pc, stmt_name[q->id], q->n, q->val,
                                          q->len, binary, 1);
    return ok ? KIVIS_OK : status_of(pc, NULL);
}

/* Read the replies of one Sync: n statements, then the Sync itself.
 * res (may be NULL) receives each statement's reply; the first failure's
 * status is returned. */
static int read_replies(PGconn *pc, int n, PGresult **res)
{
    int rc = KIVIS_OK;
    for (int i = 0; i < n; i++) {
        PGresult *r, *first = NULL;
        while ((r = PQgetResult(pc)) != NULL) {
            if (!first)
                first = r;
            else
                PQclear(r);
        }
        if (!first)
            return status_of(pc, NULL);
        if (rc == KIVIS_OK && !result_ok(first))
            rc = PQresultStatus(first) == PGRES_PIPELINE_ABORTED
                     ? KIVIS_EIO : status_of(pc, first);
        if (res)
            res[i] = first;
        else
            PQclear(first);
    }
    PGresult *sync = PQgetResult(pc);
    bool synced = sync && PQresultStatus(sync) == PGRES_PIPELINE_SYNC;
    PQclear(sync);
    return synced ? rc : status_of(pc, NULL);
}

/* Read and drop the replies owed by earlier requests (ends of read-only
 * transactions: one statement each). */
static int drain(pg_conn *c)
{
    while (c->owed > 0) {
        c->owed--;
        int rc = read_replies(c->pc, 1, NULL);
        if (rc == KIVIS_EUNAVAILABLE)
            return rc;
    }
    return KIVIS_OK;
}

static void clear_all(PGresult **res, int n)
{
    for (int i = 0; i < n; i++) {
        PQclear(res[i]);
        res[i] = NULL;
    }
}

/* One round trip: the transaction's BEGIN if not sent yet, then the n
 * queries, then Sync; *last receives the last query's reply when the
 * request succeeds.  The first failure ends the transaction (c->dead). */
static int round_trip(pg_conn *c, const query *q, int n, PGresult **last)
{
    query all[MAX_QUEUE + 1];
    PGresult *res[MAX_QUEUE + 1] = {NULL};
    int m = 0;
    if (c->begin) {
        all[m++] = (query){.sql = c->begin};
        c->begin = NULL;
        c->open = true;
    }
    memcpy(all + m, q, (size_t)n * sizeof *q);
    m += n;
    int rc = drain(c);
    for (int i = 0; rc == KIVIS_OK && i < m; i++)
        rc = queue(c->pc, &all[i]);
    if (rc == KIVIS_OK)
        rc = sync_for_reply(c->pc);
    if (rc == KIVIS_OK)
        rc = read_replies(c->pc, m, res);
    if (rc == KIVIS_OK && last) {
        *last = res[m - 1];
        res[m - 1] = NULL;
    }
    clear_all(res, m);
    if (rc != KIVIS_OK)
        c->dead = rc;
    return rc;
}

/* ---- connections -------------------------------------------------------- */

static void ignore_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

/* Prepare every statement, in one round trip. */
static int prepare_all(pg_storage *s, PGconn *pc)
{
    for (int i = 0; i < S_COUNT; i++)
        if (!PQsendPrepare(pc, stmt_name[i], s->sql[i], stmt_nparams[i], stmt_types[i]))
            return status_of(pc, NULL);
    int rc = sync_for_reply(pc);
    return rc == KIVIS_OK ? read_replies(pc, S_COUNT, NULL) : rc;
}

/* A new libpq connection, not yet in pipeline mode. */
static int connect_raw(const pg_storage *s, PGconn **out)
{
    PGconn *pc = PQconnectdb(s->conninfo);
    if (!pc)
        return KIVIS_ENOMEM;
    if (PQstatus(pc) != CONNECTION_OK) {
        keep_message(PQerrorMessage(pc));
        PQfinish(pc);
        return KIVIS_EUNAVAILABLE;
    }
    PQsetNoticeProcessor(pc, ignore_notice, NULL);
    *out = pc;
    return KIVIS_OK;
}

static int enter_pipeline(pg_storage *s, PGconn *pc)
{
    if (!PQenterPipelineMode(pc))
        return status_of(pc, NULL);
    return prepare_all(s, pc);
}

static void conn_close(pg_storage *s, pg_conn *c)
{
    PQfinish(c->pc);
    s_free(s, c);
}

static int conn_open(pg_storage *s, pg_conn **out)
{
    pg_conn *c = s_malloc(s, sizeof *c);
    if (!c)
        return KIVIS_ENOMEM;
    memset(c, 0, sizeof *c);
    int rc = connect_raw(s, &c->pc);
    if (rc == KIVIS_OK)
        rc = enter_pipeline(s, c->pc);
    if (rc != KIVIS_OK) {
        if (c->pc)
            PQfinish(c->pc);
        s_free(s, c);
        return rc;
    }
    *out = c;
    return KIVIS_OK;
}

/* Replace a connection found broken by a new one, in place. */
static int conn_renew(pg_storage *s, pg_conn *c)
{
    PGconn *pc;
    int rc = connect_raw(s, &pc);
    if (rc != KIVIS_OK)
        return rc;
    rc = enter_pipeline(s, pc);
    if (rc != KIVIS_OK) {
        PQfinish(pc);
        return rc;
    }
    PQfinish(c->pc);
    c->pc = pc;
    c->owed = 0;
    return KIVIS_OK;
}

static int conn_take(pg_storage *s, const char *begin, pg_conn **out)
{
    pthread_mutex_lock(&s->lock);
    pg_conn *c = s->idle;
    if (c)
        s->idle = c->next;
    pthread_mutex_unlock(&s->lock);
    int rc = c ? KIVIS_OK : conn_open(s, &c);
    if (rc != KIVIS_OK)
        return rc;
    c->begin = begin;
    c->open = false;
    c->dead = KIVIS_OK;
    c->next = NULL;
    *out = c;
    return KIVIS_OK;
}

/* Back to the pool once the transaction is ended on the server (without
 * waiting for the reply), or closed if the connection broke. */
static void conn_give(pg_storage *s, pg_conn *c)
{
    static const query rollback = {.sql = "ROLLBACK"};
    bool sent = PQstatus(c->pc) == CONNECTION_OK;
    if (sent && c->open)
        sent = queue(c->pc, &rollback) == KIVIS_OK && PQpipelineSync(c->pc) &&
               ++c->owed > 0;
    if (!sent) {
        conn_close(s, c);
        return;
    }
    c->open = false;
    c->begin = NULL;
    pthread_mutex_lock(&s->lock);
    c->next = s->idle;
    s->idle = c;
    pthread_mutex_unlock(&s->lock);
}

/* A request of a transaction.  When the transaction's first request finds
 * its pooled connection broken (the server restarted since), nothing has
 * happened in the transaction yet: connect again and send it once more. */
static int request(pg_storage *s, pg_conn *c, const query *q, int n, PGresult **last)
{
    if (c->dead)
        return c->dead;
    const char *begin = c->begin;
    int rc = round_trip(c, q, n, last);
    if (rc == KIVIS_EUNAVAILABLE && begin && conn_renew(s, c) == KIVIS_OK) {
        c->dead = KIVIS_OK;
        c->begin = begin;
        rc = round_trip(c, q, n, last);
    }
    return rc;
}

/* ---- the get cache ------------------------------------------------------ */

static void cache_free(pg_txn *t)
{
    if (!t->cache)
        return;
    kivis_bt_iter it;
    for (int rc = kivis__btree_first(t->cache, &it); rc == KIVIS_OK;
         rc = kivis__btree_next(&it)) {
        cached_value *cv;
        memcpy(&cv, kivis__bt_iter_value(&it).data, sizeof cv);
        s_free(t->s, cv);
    }
    kivis__btree_free(t->cache);
    t->cache = NULL;
}

/* KIVIS_OK or KIVIS_NOTFOUND from the cache; -1 when the key is not in it. */
static int cache_get(const pg_txn *t, kivis_slice key, kivis_slice *value)
{
    kivis_slice ptr;
    if (!t->cache || kivis__btree_get(t->cache, key, &ptr) != KIVIS_OK)
        return -1;
    cached_value *cv;
    memcpy(&cv, ptr.data, sizeof cv);
    if (!cv)
        return KIVIS_NOTFOUND;
    *value = kivis_slice_make(cv->data, cv->len);
    return KIVIS_OK;
}

/* Remember a get's outcome (found: its value); NULL value: absent. */
static int cache_put(pg_txn *t, kivis_slice key, const kivis_slice *value)
{
    if (!t->cache && kivis__btree_new(&t->s->alloc, &t->cache) != KIVIS_OK)
        return KIVIS_ENOMEM;
    cached_value *cv = NULL;
    if (value) {
        cv = s_malloc(t->s, sizeof *cv + value->len);
        if (!cv)
            return KIVIS_ENOMEM;
        cv->len = value->len;
        if (value->len)
            memcpy(cv->data, value->data, value->len);
    }
    if (kivis__btree_put(t->cache, key, kivis_slice_make(&cv, sizeof cv)) != KIVIS_OK) {
        s_free(t->s, cv);
        return KIVIS_ENOMEM;
    }
    return KIVIS_OK;
}

/* ---- reading transactions ----------------------------------------------- */

static pg_txn *txn_of(kivis_storage_txn *t)
{
    return (pg_txn *)t;
}

static kivis_slice column(const PGresult *r, int row, int col)
{
    return kivis_slice_make(PQgetvalue(r, row, col), (size_t)PQgetlength(r, row, col));
}

static int pg_get(kivis_storage_txn *txn, kivis_slice key, kivis_slice *value)
{
    pg_txn *t = txn_of(txn);
    *value = no_slice;
    int rc = kivis__check_key(key, t->s->max_key);
    if (rc != KIVIS_OK)
        return rc;
    rc = cache_get(t, key, value);
    if (rc >= 0)
        return rc;
    query q = {.id = S_GET, .n = 1};
    param(&q, 0, key);
    PGresult *r = NULL;
    rc = request(t->s, t->c, &q, 1, &r);
    if (rc != KIVIS_OK)
        return rc;
    kivis_slice v = PQntuples(r) ? column(r, 0, 0) : no_slice;
    rc = cache_put(t, key, PQntuples(r) ? &v : NULL);
    PQclear(r);
    if (rc == KIVIS_OK)
        rc = cache_get(t, key, value);
    return rc;
}

/* A reading transaction never writes: the write transaction's overlay
 * takes every put and del before they could reach one. */
static int pg_put(kivis_storage_txn *txn, kivis_slice key, kivis_slice value)
{
    (void)txn;
    (void)key;
    (void)value;
    return KIVIS_EINVAL;
}

static int pg_del(kivis_storage_txn *txn, kivis_slice key)
{
    (void)txn;
    (void)key;
    return KIVIS_EINVAL;
}

static void txn_free(pg_txn *t)
{
    cache_free(t);
    s_free(t->s, t);
}

/* A read-only transaction gives its connection back; the base of a write
 * transaction leaves it to the writer, which still has to commit. */
static void pg_abort(kivis_storage_txn *txn)
{
    pg_txn *t = txn_of(txn);
    if (!t->borrowed)
        conn_give(t->s, t->c);
    txn_free(t);
}

static int pg_commit(kivis_storage_txn *txn, int durability)
{
    (void)durability;
    pg_txn *t = txn_of(txn);
    int rc = t->c->dead;
    pg_abort(txn); /* nothing to apply */
    return rc;
}

static int pg_cursor_open(kivis_storage_txn *txn, kivis_slice lo, kivis_slice hi,
                          kivis_storage_cursor **out);

static const kivis_txn_methods pg_txn_methods = {
    pg_get, pg_put, pg_del, pg_cursor_open, pg_commit, pg_abort,
};

static int read_txn_new(pg_storage *s, const char *begin, pg_conn *c, pg_txn **out)
{
    pg_txn *t = s_malloc(s, sizeof *t);
    if (!t)
        return KIVIS_ENOMEM;
    memset(t, 0, sizeof *t);
    t->txn.methods = &pg_txn_methods;
    t->txn.storage = &s->st;
    t->txn.flags = KIVIS_TXN_RDONLY;
    t->s = s;
    int rc = c ? KIVIS_OK : conn_take(s, begin, &c);
    if (rc != KIVIS_OK) {
        s_free(s, t);
        return rc;
    }
    t->c = c;
    t->borrowed = begin == BEGIN_WRITE;
    *out = t;
    return KIVIS_OK;
}

/* ---- cursors ------------------------------------------------------------ */

static pg_cursor *cursor_of(kivis_storage_cursor *cur)
{
    return (pg_cursor *)cur;
}

static void int8_param(query *q, int i, char buf[8], int64_t v)
{
    for (int b = 7; b >= 0; b--, v >>= 8)
        buf[b] = (char)(v & 0xff);
    q->val[i] = buf;
    q->len[i] = 8;
}

/* Fetch the page of rows from `from` going dir, by statement id; the old
 * page stays when the fetch fails.  KIVIS_NOTFOUND for an empty page.
 * The first page is small: most cursors read a key or a few (the highest
 * id, a unique check, a short index range).  One that keeps going gets
 * pages 8 times larger, 16, 128, then 1024 rows: a round trip costs as much
 * as sending some hundred rows, so a walk over 1,000 rows takes 3 round
 * trips instead of the 6 that doubling takes, and over-reads 8 times at
 * worst what a cursor stopping early uses. */
static int fetch(pg_cursor *c, enum stmt id, int dir, kivis_slice from, bool more)
{
    c->limit = !more ? PAGE_FIRST
               : c->limit < PAGE_MAX / PAGE_GROWTH ? c->limit * PAGE_GROWTH
               : PAGE_MAX;
    char limit[8];
    query q = {.id = id, .n = 3};
    param(&q, 0, from);
    int8_param(&q, 1, limit, c->limit);
    param(&q, 2, dir > 0 ? c->range.hi : c->range.lo);
    PGresult *r = NULL;
    int rc = request(c->t->s, c->t->c, &q, 1, &r);
    if (rc != KIVIS_OK)
        return rc;
    PQclear(c->page);
    c->page = r;
    c->dir = dir;
    c->rows = PQntuples(r);
    c->at = 0;
    c->complete = c->rows < c->limit;
    return c->rows ? KIVIS_OK : KIVIS_NOTFOUND;
}

static kivis_slice current_key(const pg_cursor *c)
{
    return column(c->page, c->at, 0);
}

/* First entry >= target (NULL: the range's start), below hi. */
static int seek_ge(pg_cursor *c, const kivis_slice *target)
{
    kivis_slice from = target && kivis__key_cmp(*target, c->range.lo) > 0
                           ? *target : c->range.lo;
    return fetch(c, c->range.hi.data ? S_GE_HI : S_GE, 1, from, false);
}

/* Last entry <= target (NULL: the range's end), at or above lo. */
static int seek_le(pg_cursor *c, const kivis_slice *target)
{
    const kivis_slice hi = c->range.hi;
    if (target && (!hi.data || kivis__key_cmp(*target, hi) < 0))
        return fetch(c, S_LE, -1, *target, false);
    if (!hi.data)
        return fetch(c, S_LAST, -1, no_slice, false);
    return fetch(c, S_LT, -1, hi, false); /* hi is exclusive */
}

/* The neighbour of the current entry going dir: in the page when it has
 * one, else from the server, past the current key. */
static int step(pg_cursor *c, int dir)
{
    if (dir == c->dir && c->at + 1 < c->rows) {
        c->at++;
        return KIVIS_OK;
    }
    if (dir != c->dir && c->at > 0) {
        c->at--;
        return KIVIS_OK;
    }
    if (dir == c->dir && c->complete)
        return KIVIS_NOTFOUND;
    enum stmt id = dir < 0 ? S_LT : c->range.hi.data ? S_GT_HI : S_GT;
    return fetch(c, id, dir, current_key(c), dir == c->dir);
}

static int move(pg_cursor *c, int op, const kivis_slice *target)
{
    int dir = kivis__op_dir(op);
    if (op == KIVIS_NEXT || op == KIVIS_PREV) {
        if (c->state == ENDED)
            return KIVIS_NOTFOUND;
        if (c->state == PLACED)
            return step(c, dir);
        target = NULL; /* never placed: FIRST or LAST */
    }
    return dir > 0 ? seek_ge(c, target) : seek_le(c, target);
}

static int pc_get(kivis_storage_cursor *cur, int op, kivis_slice *key,
                  kivis_slice *value)
{
    pg_cursor *c = cursor_of(cur);
    kivis_slice buf;
    const kivis_slice *target;
    int rc = kivis__cursor_args(op, key, value, &buf, &target);
    if (rc == KIVIS_OK)
        rc = c->t->c->dead;
    if (rc == KIVIS_OK)
        rc = move(c, op, target);
    if (rc == KIVIS_NOTFOUND)
        c->state = ENDED;
    if (rc != KIVIS_OK)
        return rc;
    c->state = PLACED;
    *key = current_key(c);
    if (value)
        *value = column(c->page, c->at, 1);
    return KIVIS_OK;
}

static void pc_close(kivis_storage_cursor *cur)
{
    pg_cursor *c = cursor_of(cur);
    PQclear(c->page);
    kivis__range_free(&c->range, &c->t->s->alloc);
    s_free(c->t->s, c);
}

static const kivis_cursor_methods pg_cursor_methods = {pc_get, pc_close};

static int pg_cursor_open(kivis_storage_txn *txn, kivis_slice lo, kivis_slice hi,
                          kivis_storage_cursor **out)
{
    pg_txn *t = txn_of(txn);
    *out = NULL;
    if (!lo.data && lo.len)
        return KIVIS_EINVAL;
    pg_cursor *c = s_malloc(t->s, sizeof *c);
    if (!c)
        return KIVIS_ENOMEM;
    memset(c, 0, sizeof *c);
    c->cur.methods = &pg_cursor_methods;
    c->t = t;
    c->state = UNPLACED;
    if (kivis__range_init(&c->range, &t->s->alloc, lo, hi) != KIVIS_OK) {
        s_free(t->s, c);
        return KIVIS_ENOMEM;
    }
    *out = &c->cur;
    return KIVIS_OK;
}

/* ---- write transactions ------------------------------------------------- */

static pg_writer *writer_of(kivis_storage_txn *txn)
{
    return (pg_writer *)txn;
}

/* A bytea[] in binary array format: ndim, has-null, element type, length,
 * lower bound, then each element as its length and bytes. */
typedef struct array_buf {
    unsigned char *p;
    size_t len;
} array_buf;

static unsigned char *put_u32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
    return p + 4;
}

/* The keys (values: want_values) of the ops with del == want_del. */
static int make_array(pg_storage *s, const kivis_batch_op *ops, size_t n,
                      int want_del, bool want_values, array_buf *out)
{
    size_t count = 0, bytes = 20;
    for (size_t i = 0; i < n; i++)
        if (ops[i].del == want_del) {
            count++;
            bytes += 4 + (want_values ? ops[i].value.len : ops[i].key.len);
        }
    out->p = NULL;
    out->len = 0;
    if (!count)
        return KIVIS_OK;
    if (bytes > 0x3fffffffu || count > 0x7fffffffu)
        return KIVIS_EINVAL; /* over a protocol message's 1 GB */
    unsigned char *p = out->p = s_malloc(s, bytes);
    if (!p)
        return KIVIS_ENOMEM;
    p = put_u32(put_u32(put_u32(p, 1), 0), BYTEA_OID);
    p = put_u32(put_u32(p, (uint32_t)count), 1);
    for (size_t i = 0; i < n; i++) {
        if (ops[i].del != want_del)
            continue;
        kivis_slice e = want_values ? ops[i].value : ops[i].key;
        p = put_u32(p, (uint32_t)e.len);
        if (e.len)
            memcpy(p, e.data, e.len);
        p += e.len;
    }
    out->len = bytes;
    return KIVIS_OK;
}

static void array_param(query *q, int i, const array_buf *a)
{
    q->val[i] = (const char *)a->p;
    q->len[i] = (int)a->len;
}

static const query commit_query = {.sql = "COMMIT"};
static const query nosync_query = {.sql = "SET LOCAL synchronous_commit = off"};

/* Send the writes and COMMIT in one round trip. */
static int send_commit(pg_writer *w, const array_buf arr[3], int durability)
{
    query q[4];
    int n = 0;
    if (durability == KIVIS_NOSYNC)
        q[n++] = nosync_query;
    if (arr[0].len) {
        q[n] = (query){.id = S_UPSERT, .n = 2};
        array_param(&q[n], 0, &arr[0]);
        array_param(&q[n++], 1, &arr[1]);
    }
    if (arr[2].len) {
        q[n] = (query){.id = S_DELETE, .n = 1};
        array_param(&q[n++], 0, &arr[2]);
    }
    q[n++] = commit_query;
    PGresult *r = NULL;
    int rc = request(w->s, w->c, q, n, &r);
    PQclear(r);
    if (rc == KIVIS_OK)
        w->c->open = false;
    return rc;
}

/* The overlay's apply: the transaction's whole write set, in key order. */
static int pg_apply(void *ctx, const kivis_batch_op *ops, size_t n, int durability)
{
    pg_writer *w = ctx;
    w->applied = true;
    if (w->c->dead)
        return w->c->dead;
    array_buf arr[3] = {{NULL, 0}, {NULL, 0}, {NULL, 0}};
    int rc = make_array(w->s, ops, n, 0, false, &arr[0]);
    if (rc == KIVIS_OK)
        rc = make_array(w->s, ops, n, 0, true, &arr[1]);
    if (rc == KIVIS_OK)
        rc = make_array(w->s, ops, n, 1, false, &arr[2]);
    if (rc == KIVIS_OK)
        rc = send_commit(w, arr, durability);
    for (int i = 0; i < 3; i++)
        s_free(w->s, arr[i].p);
    return rc;
}

static int wr_get(kivis_storage_txn *txn, kivis_slice key, kivis_slice *value)
{
    return kivis_txn_get(writer_of(txn)->ov, key, value);
}

static int wr_put(kivis_storage_txn *txn, kivis_slice key, kivis_slice value)
{
    return kivis_txn_put(writer_of(txn)->ov, key, value);
}

static int wr_del(kivis_storage_txn *txn, kivis_slice key)
{
    return kivis_txn_del(writer_of(txn)->ov, key);
}

static int wr_cursor_open(kivis_storage_txn *txn, kivis_slice lo, kivis_slice hi,
                          kivis_storage_cursor **out)
{
    return kivis_txn_cursor(writer_of(txn)->ov, lo, hi, out);
}

static void writer_end(pg_writer *w)
{
    conn_give(w->s, w->c);
    s_free(w->s, w);
}

/* A write transaction that wrote nothing still commits what it read: under
 * SERIALIZABLE that commit can fail too. */
static int wr_commit(kivis_storage_txn *txn, int durability)
{
    pg_writer *w = writer_of(txn);
    int rc = kivis_txn_commit(w->ov, durability);
    if (rc == KIVIS_OK && !w->applied && w->c->open)
        rc = request(w->s, w->c, &commit_query, 1, NULL);
    if (rc == KIVIS_OK)
        w->c->open = false;
    writer_end(w);
    return rc;
}

static void wr_abort(kivis_storage_txn *txn)
{
    pg_writer *w = writer_of(txn);
    kivis_txn_abort(w->ov);
    writer_end(w);
}

static const kivis_txn_methods write_txn_methods = {
    wr_get, wr_put, wr_del, wr_cursor_open, wr_commit, wr_abort,
};

static int write_txn_new(pg_storage *s, kivis_storage_txn **out)
{
    pg_writer *w = s_malloc(s, sizeof *w);
    if (!w)
        return KIVIS_ENOMEM;
    memset(w, 0, sizeof *w);
    pg_txn *base = NULL;
    int rc = conn_take(s, BEGIN_WRITE, &w->c);
    if (rc == KIVIS_OK) {
        rc = read_txn_new(s, BEGIN_WRITE, w->c, &base);
        if (rc == KIVIS_OK) /* owns base from here, even on failure */
            rc = kivis_overlay_begin(&s->st, &base->txn, pg_apply, w, &s->alloc, &w->ov);
        if (rc != KIVIS_OK)
            conn_give(s, w->c);
    }
    if (rc != KIVIS_OK) {
        s_free(s, w);
        return rc;
    }
    w->txn.methods = &write_txn_methods;
    w->txn.storage = &s->st;
    w->txn.flags = 0;
    w->s = s;
    *out = &w->txn;
    return KIVIS_OK;
}

/* ---- the storage -------------------------------------------------------- */

static pg_storage *storage_of(kivis_storage *st)
{
    return (pg_storage *)st;
}

static int pg_begin(kivis_storage *st, unsigned flags, kivis_storage_txn **out)
{
    pg_storage *s = storage_of(st);
    *out = NULL;
    if (flags & ~KIVIS_TXN_RDONLY)
        return KIVIS_EINVAL;
    if (!(flags & KIVIS_TXN_RDONLY))
        return write_txn_new(s, out);
    pg_txn *t;
    int rc = read_txn_new(s, BEGIN_READ, NULL, &t);
    if (rc == KIVIS_OK)
        *out = &t->txn;
    return rc;
}

static size_t pg_max_key(kivis_storage *st)
{
    return storage_of(st)->max_key;
}

static void storage_free(pg_storage *s)
{
    while (s->idle) {
        pg_conn *c = s->idle;
        s->idle = c->next;
        conn_close(s, c);
    }
    for (int i = 0; i < S_COUNT; i++)
        s_free(s, s->sql[i]);
    s_free(s, s->conninfo);
    pthread_mutex_destroy(&s->lock);
    s_free(s, s);
}

static void pg_close(kivis_storage *st)
{
    storage_free(storage_of(st));
}

static const kivis_storage_methods pg_storage_methods = {
    KIVIS_STORAGE_VERSION, "postgres", pg_close, pg_max_key, pg_begin,
};

/* The statements' text over "schema"."table", quoted by the server's
 * rules. */
static int build_sql(pg_storage *s, PGconn *pc, const char *schema, const char *table)
{
    char *qs = PQescapeIdentifier(pc, schema, strlen(schema));
    char *qt = PQescapeIdentifier(pc, table, strlen(table));
    int rc = qs && qt ? KIVIS_OK : KIVIS_EINVAL;
    char name[600];
    if (rc == KIVIS_OK &&
        (size_t)snprintf(name, sizeof name, "%s.%s", qs, qt) >= sizeof name)
        rc = KIVIS_EINVAL;
    for (int i = 0; rc == KIVIS_OK && i < S_COUNT; i++) {
        size_t n = strlen(stmt_fmt[i]) + strlen(name) + 1;
        s->sql[i] = s_malloc(s, n);
        if (!s->sql[i])
            rc = KIVIS_ENOMEM;
        else
            snprintf(s->sql[i], n, stmt_fmt[i], name);
    }
    PQfreemem(qs);
    PQfreemem(qt);
    return rc;
}

/* Create the table unless it is there: a user who may use the table but
 * not create one in its schema still opens the store.  Two processes
 * creating it at once: the loser's duplicate error is success. */
static int ensure_table(PGconn *pc, const char *schema, const char *table)
{
    const char *vals[2] = {schema, table};
    PGresult *r = PQexecParams(pc,
                               "SELECT 1 FROM pg_catalog.pg_tables "
                               "WHERE schemaname = $1 AND tablename = $2",
                               2, NULL, vals, NULL, NULL, 0);
    int rc = result_ok(r) ? KIVIS_OK : status_of(pc, r);
    bool exists = rc == KIVIS_OK && PQntuples(r) > 0;
    PQclear(r);
    if (rc != KIVIS_OK || exists)
        return rc;
    char *qs = PQescapeIdentifier(pc, schema, strlen(schema));
    char *qt = PQescapeIdentifier(pc, table, strlen(table));
    char sql[700];
    rc = qs && qt ? KIVIS_OK : KIVIS_EINVAL;
    if (rc == KIVIS_OK &&
        (size_t)snprintf(sql, sizeof sql,
                         "CREATE TABLE IF NOT EXISTS %s.%s "
                         "(k bytea PRIMARY KEY, v bytea NOT NULL)",
                         qs, qt) >= sizeof sql)
        rc = KIVIS_EINVAL;
    PQfreemem(qs);
    PQfreemem(qt);
    if (rc != KIVIS_OK)
        return rc;
    r = PQexec(pc, sql);
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    rc = result_ok(r) || sqlstate_is(state, "42P07") || sqlstate_is(state, "23505")
             ? KIVIS_OK : status_of(pc, r);
    PQclear(r);
    return rc;
}

/* The first connection: the table, the statements, the pool's first. */
static int first_connection(pg_storage *s, const kivis_postgres_options *o)
{
    const char *schema = o && o->schema ? o->schema : "public";
    const char *table = o && o->table ? o->table : "kv";
    PGconn *pc;
    int rc = connect_raw(s, &pc);
    if (rc != KIVIS_OK)
        return rc;
    rc = ensure_table(pc, schema, table);
    if (rc == KIVIS_OK)
        rc = build_sql(s, pc, schema, table);
    if (rc == KIVIS_OK)
        rc = enter_pipeline(s, pc);
    pg_conn *c = rc == KIVIS_OK ? s_malloc(s, sizeof *c) : NULL;
    if (rc == KIVIS_OK && !c)
        rc = KIVIS_ENOMEM;
    if (rc != KIVIS_OK) {
        PQfinish(pc);
        return rc;
    }
    memset(c, 0, sizeof *c);
    c->pc = pc;
    s->idle = c;
    return KIVIS_OK;
}

int kivis_postgres_open(const char *conninfo, const kivis_postgres_options *opts,
                        kivis_storage **out)
{
    if (!out)
        return KIVIS_EINVAL;
    *out = NULL;
    keep_message("");
    size_t max_key = opts && opts->max_key_size ? opts->max_key_size
                                                : KIVIS_POSTGRES_MAX_KEY;
    if (!conninfo || max_key > KIVIS_POSTGRES_MAX_KEY)
        return KIVIS_EINVAL;
    const kivis_allocator *a = opts && opts->allocator ? opts->allocator
                                                       : kivis_default_allocator();
    pg_storage *s = a->malloc(a->ctx, sizeof *s);
    if (!s)
        return KIVIS_ENOMEM;
    memset(s, 0, sizeof *s);
    s->st.methods = &pg_storage_methods;
    s->alloc = *a;
    s->max_key = max_key;
    pthread_mutex_init(&s->lock, NULL);
    s->conninfo = s_strdup(s, conninfo);
    int rc = s->conninfo ? first_connection(s, opts) : KIVIS_ENOMEM;
    if (rc != KIVIS_OK) {
        storage_free(s);
        return rc;
    }
    *out = &s->st;
    return KIVIS_OK;
}
