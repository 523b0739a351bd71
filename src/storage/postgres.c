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
#include "feedhub.h" /* kivis__feed_wait */
#include "paged.h"   /* the cursors */

#include <libpq-fe.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <poll.h>
#include <string.h>
#include <time.h>

#define BYTEA_OID 17
#define INT8_OID 20
#define MAX_QUEUE 8      /* statements in one request at most */
#define FEED_BATCH "512" /* changes a feed reads at once (whole commits: more) */
#define FEED_BATCH_ROWS 512 /* the same, as a number */
#define TRIM_EVERY 1024  /* a storage trims the change log after so many commits */
#define FEED_TRIM_SECONDS 10 /* and an open feed every so often */

/* ---- statements --------------------------------------------------------- */

/* Prepared on every connection.  Pages take $1 the key to start from, $2
 * the row limit, $3 the far bound of the cursor's range (hi going forward,
 * lo going back; unused by the unbounded forward pages). */
enum stmt {
    S_GET, S_UPSERT, S_DELETE, S_GET_MANY,
    S_GE, S_GT, S_GE_HI, S_GT_HI, S_LE, S_LT, S_LAST,
    S_FOLLOW_GE_HI, S_FOLLOW_GT_HI,
    S_COUNT
};

#define FOLLOW_PAGE(from)                                                        \
    "SELECT e.k, e.v, e.rk, r.v FROM (SELECT k, v, CASE WHEN octet_length(k) >= $5"  \
    " THEN $4 || substring(k from octet_length(k) - $5::int + 1) END AS rk"          \
    " FROM %1$s WHERE " from " AND k < $3 ORDER BY k LIMIT $2) e"                      \
    " LEFT JOIN %1$s r ON r.k = e.rk ORDER BY e.k"

static const char *const stmt_fmt[S_COUNT] = {
    "SELECT v FROM %s WHERE k = $1",
    ("INSERT INTO %s(k, v) SELECT * FROM unnest($1::bytea[], $2::bytea[]) "
     "ON CONFLICT (k) DO UPDATE SET v = excluded.v"),
    "DELETE FROM %s WHERE k = ANY($1::bytea[])",
    "SELECT k, v FROM %s WHERE k = ANY($1::bytea[])",
    "SELECT k, v FROM %s WHERE k >= $1 ORDER BY k LIMIT $2",
    "SELECT k, v FROM %s WHERE k > $1 ORDER BY k LIMIT $2",
    "SELECT k, v FROM %s WHERE k >= $1 AND k < $3 ORDER BY k LIMIT $2",
    "SELECT k, v FROM %s WHERE k > $1 AND k < $3 ORDER BY k LIMIT $2",
    "SELECT k, v FROM %s WHERE k <= $1 AND k >= $3 ORDER BY k DESC LIMIT $2",
    "SELECT k, v FROM %s WHERE k < $1 AND k >= $3 ORDER BY k DESC LIMIT $2",
    "SELECT k, v FROM %s WHERE k >= $3 ORDER BY k DESC LIMIT $2",
    /* A following cursor's forward pages (see pc_fetch): each row with the
     * key its last $5 bytes name after the prefix $4, and that row's value
     * (NULL: absent), read in the same statement. */
    FOLLOW_PAGE("k >= $1"),
    FOLLOW_PAGE("k > $1"),
};

/* The change feed's statements, text built at open (see ensure_feed). */
enum {
    F_FETCH, F_NOW, F_LISTEN, F_TRIM,
    /* a commit's own logging (see write_queries): */
    F_QUIET, F_WRITE, F_SPLIT,
    F_COUNT
};

static const char *const stmt_name[S_COUNT] = {
    "kv_get", "kv_upsert", "kv_delete", "kv_get_many", "kv_ge", "kv_gt", "kv_ge_hi",
    "kv_gt_hi", "kv_le", "kv_lt", "kv_last", "kv_follow_ge_hi", "kv_follow_gt_hi",
};

#define FOLLOW_TYPES {BYTEA_OID, INT8_OID, BYTEA_OID, BYTEA_OID, INT8_OID}

static const Oid stmt_types[S_COUNT][5] = {
    {BYTEA_OID}, {0, 0}, {0}, {0},
    {BYTEA_OID, INT8_OID, BYTEA_OID}, {BYTEA_OID, INT8_OID, BYTEA_OID},
    {BYTEA_OID, INT8_OID, BYTEA_OID}, {BYTEA_OID, INT8_OID, BYTEA_OID},
    {BYTEA_OID, INT8_OID, BYTEA_OID}, {BYTEA_OID, INT8_OID, BYTEA_OID},
    {BYTEA_OID, INT8_OID, BYTEA_OID},
    FOLLOW_TYPES, FOLLOW_TYPES,
};

static const int stmt_nparams[S_COUNT] = {1, 2, 1, 1, 3, 3, 3, 3, 3, 3, 3, 5, 5};

static const int binary[5] = {1, 1, 1, 1, 1};

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
    char *feed_sql[F_COUNT]; /* the change feed's statements; NULL: no feed */
    unsigned long commits; /* write commits, atomic: every TRIM_EVERY trims */
    int upserts_due;       /* commits to send as upserts, atomic (see pg_apply) */
    int upserts_window;    /* upserts_due after the next miss, atomic */
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
    pg_txn *base;  /* what it read (its get cache); owned by ov */
    kivis_storage_txn *ov;
    bool applied; /* the overlay's commit reached apply */
} pg_writer;

#define FOLLOW_PREFIX_MAX 16

typedef struct pg_cursor {
    kivis_paged pc; /* first: its first is what the caller holds */
    pg_txn *t;
    PGresult *page; /* rows in key order going pc.dir */
    /* A following cursor (kivis_txn_cursor_follow): tail > 0. */
    size_t tail;
    size_t prefix_len;
    unsigned char prefix[FOLLOW_PREFIX_MAX];
} pg_cursor;

static const kivis_slice no_slice = {NULL, 0};

/* ---- errors ------------------------------------------------------------- */

static _Thread_local char errmsg_buf[512];
static _Thread_local char sqlstate_buf[6]; /* of the last failed statement */

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
    snprintf(sqlstate_buf, sizeof sqlstate_buf, "%s", state ? state : "");
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
    const char *val[5];
    int len[5];
} query;

/* A slice as a binary parameter; never NULL, which would send SQL NULL. */
static void param(query *q, int i, kivis_slice s)
{
    q->val[i] = s.len ? s.data : "";
    q->len[i] = (int)s.len;
}

static int queue(PGconn *pc, const query *q)
{
    int ok = q->sql ? PQsendQueryParams(pc, q->sql, q->n, NULL, q->val, q->len, binary, 1)
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

/* Every statement reads or writes kv by its primary key, and the plan
 * without the parameters' values is the index's whatever they are; a plan
 * made for the values of a key array of 1,000 elements costs a millisecond
 * to make and, on a table of tens of thousands of rows, scans the whole
 * table.  A server without the setting (older than 12) keeps its own. */
static const char GENERIC_PLANS[] =
    "SELECT set_config(name, 'force_generic_plan', false) FROM pg_catalog.pg_settings"
    " WHERE name = 'plan_cache_mode'";

/* Choose generic plans and prepare every statement, in one round trip. */
static int prepare_all(pg_storage *s, PGconn *pc)
{
    if (!PQsendQueryParams(pc, GENERIC_PLANS, 0, NULL, NULL, NULL, NULL, 0))
        return status_of(pc, NULL);
    for (int i = 0; i < S_COUNT; i++)
        if (!PQsendPrepare(pc, stmt_name[i], s->sql[i], stmt_nparams[i], stmt_types[i]))
            return status_of(pc, NULL);
    int rc = sync_for_reply(pc);
    return rc == KIVIS_OK ? read_replies(pc, S_COUNT + 1, NULL) : rc;
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

/* ---- bytea[] parameters ------------------------------------------------ */

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

/* Allocate an array of `count` elements of `payload` bytes in all and write
 * its header; returns where the first element goes (NULL: out->p is NULL
 * too, nothing to send for count 0, else KIVIS_ENOMEM or too big in *rc). */
static unsigned char *array_start(pg_storage *s, size_t count, size_t payload,
                                  array_buf *out, int *rc)
{
    size_t bytes = 20 + 4 * count + payload;
    out->p = NULL;
    out->len = 0;
    *rc = KIVIS_OK;
    if (!count)
        return NULL;
    if (payload > 0x3fffffffu || bytes > 0x3fffffffu || count > 0x7fffffffu) {
        *rc = KIVIS_EINVAL; /* over a protocol message's 1 GB */
        return NULL;
    }
    unsigned char *p = out->p = s_malloc(s, bytes);
    if (!p) {
        *rc = KIVIS_ENOMEM;
        return NULL;
    }
    out->len = bytes;
    p = put_u32(put_u32(put_u32(p, 1), 0), BYTEA_OID);
    return put_u32(put_u32(p, (uint32_t)count), 1);
}

static unsigned char *array_elem(unsigned char *p, kivis_slice e)
{
    p = put_u32(p, (uint32_t)e.len);
    if (e.len)
        memcpy(p, e.data, e.len);
    return p + e.len;
}

/* How a commit sends a write (see pg_apply): a put of a key the
 * transaction did not read as present is inserted, a put of one it read
 * as present updated, a delete deleted. */
enum op_kind { OP_INSERT, OP_UPDATE, OP_DELETE };
#define KIND(k) (1u << (k))
#define PUTS (KIND(OP_INSERT) | KIND(OP_UPDATE))

static enum op_kind kind_of(const kivis_batch_op *ops, const unsigned char *kinds, size_t i)
{
    return ops[i].del ? OP_DELETE : kinds ? (enum op_kind)kinds[i] : OP_INSERT;
}

/* The keys (values: want_values) of the ops whose kind is in the mask
 * `want` (kinds NULL: every put is OP_INSERT). */
static int make_array(pg_storage *s, const kivis_batch_op *ops, const unsigned char *kinds,
                      size_t n, unsigned want, bool want_values, array_buf *out)
{
    size_t count = 0, payload = 0;
    for (size_t i = 0; i < n; i++)
        if (want & KIND(kind_of(ops, kinds, i))) {
            count++;
            payload += want_values ? ops[i].value.len : ops[i].key.len;
        }
    int rc;
    unsigned char *p = array_start(s, count, payload, out, &rc);
    for (size_t i = 0; p && i < n; i++)
        if (want & KIND(kind_of(ops, kinds, i)))
            p = array_elem(p, want_values ? ops[i].value : ops[i].key);
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

/* The keys of `keys` the cache cannot answer, as a bytea[] (none: a->p
 * NULL). */
static int uncached_keys(const pg_txn *t, const kivis_slice *keys, size_t n,
                         array_buf *a)
{
    size_t count = 0, payload = 0;
    kivis_slice v;
    for (size_t i = 0; i < n; i++)
        if (keys[i].len && keys[i].len <= t->s->max_key &&
            cache_get(t, keys[i], &v) < 0) {
            count++;
            payload += keys[i].len;
        }
    int rc;
    unsigned char *p = array_start(t->s, count, payload, a, &rc);
    for (size_t i = 0; p && i < n; i++)
        if (keys[i].len && keys[i].len <= t->s->max_key &&
            cache_get(t, keys[i], &v) < 0)
            p = array_elem(p, keys[i]);
    return rc;
}

/* Read every key the cache cannot answer in one statement, and cache what
 * it found and what it did not: the gets that follow cost no round trip. */
static int pg_prefetch(kivis_storage_txn *txn, const kivis_slice *keys, size_t n)
{
    pg_txn *t = txn_of(txn);
    array_buf a;
    int rc = uncached_keys(t, keys, n, &a);
    if (rc != KIVIS_OK || !a.p)
        return rc;
    query q = {.id = S_GET_MANY, .n = 1};
    q.val[0] = (const char *)a.p;
    q.len[0] = (int)a.len;
    PGresult *r = NULL;
    rc = request(t->s, t->c, &q, 1, &r);
    s_free(t->s, a.p);
    for (int row = 0; rc == KIVIS_OK && row < PQntuples(r); row++) {
        kivis_slice v = column(r, row, 1);
        rc = cache_put(t, column(r, row, 0), &v);
    }
    PQclear(r);
    kivis_slice v;
    for (size_t i = 0; rc == KIVIS_OK && i < n; i++)
        if (keys[i].len && keys[i].len <= t->s->max_key &&
            cache_get(t, keys[i], &v) < 0)
            rc = cache_put(t, keys[i], NULL);
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

/* A read-only transaction gives its connection back and ends.  The base
 * of a write transaction is left to the writer, which still has to commit
 * and, at its commit, asks the base's get cache what it read (pg_apply,
 * after the overlay ended the base): the writer frees it (writer_end). */
static void pg_abort(kivis_storage_txn *txn)
{
    pg_txn *t = txn_of(txn);
    if (t->borrowed)
        return;
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
static int pg_cursor_follow(kivis_storage_txn *txn, kivis_slice lo, kivis_slice hi,
                            kivis_slice prefix, size_t tail, kivis_storage_cursor **out);

static const kivis_txn_methods pg_txn_methods = {
    pg_get, pg_put, pg_del, pg_cursor_open, pg_commit, pg_abort,
    NULL, pg_prefetch, pg_cursor_follow,
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

/* Keep the rows a following page read beside its entries (columns 2 and
 * 3: the key, the value or NULL when absent) for the transaction's gets.
 * A hint: a row that cannot be kept is read again by its get. */
static void cache_followed(pg_txn *t, const PGresult *r)
{
    kivis_slice unused;
    for (int row = 0; row < PQntuples(r); row++) {
        if (PQgetisnull(r, row, 2))
            continue; /* an entry shorter than the tail names nothing */
        kivis_slice k = column(r, row, 2), v = column(r, row, 3);
        if (k.len > t->s->max_key || cache_get(t, k, &unused) >= 0)
            continue;
        if (cache_put(t, k, PQgetisnull(r, row, 3) ? NULL : &v) != KIVIS_OK)
            return;
    }
}

/* The page of rows from *from going dir (paged.h), by the statement that
 * matches the direction, the bound and whether from is included. */
static int pc_fetch(kivis_paged *p, int dir, const kivis_slice *from, bool inclusive,
                    long limit, size_t *n, bool *complete)
{
    pg_cursor *c = (pg_cursor *)p;
    bool hi = p->range.hi.data != NULL;
    bool follow = c->tail && dir > 0 && hi;
    enum stmt id = follow ? (inclusive ? S_FOLLOW_GE_HI : S_FOLLOW_GT_HI)
                   : dir > 0 ? (inclusive ? (hi ? S_GE_HI : S_GE) : (hi ? S_GT_HI : S_GT))
                   : !from ? S_LAST
                   : inclusive ? S_LE : S_LT;
    char lim[8], tail[8];
    query q = {.id = id, .n = follow ? 5 : 3};
    param(&q, 0, from ? *from : no_slice);
    int8_param(&q, 1, lim, limit);
    param(&q, 2, dir > 0 ? p->range.hi : p->range.lo);
    if (follow) {
        param(&q, 3, kivis_slice_make(c->prefix, c->prefix_len));
        int8_param(&q, 4, tail, (int64_t)c->tail);
    }
    PGresult *r = NULL;
    int rc = request(c->t->s, c->t->c, &q, 1, &r);
    if (rc != KIVIS_OK)
        return rc;
    if (follow)
        cache_followed(c->t, r);
    PQclear(c->page);
    c->page = r;
    *n = (size_t)PQntuples(r);
    *complete = (long)*n < limit;
    return KIVIS_OK;
}

static void pc_entry(const kivis_paged *p, size_t i, kivis_slice *key, kivis_slice *value)
{
    const pg_cursor *c = (const pg_cursor *)p;
    *key = column(c->page, (int)i, 0);
    if (value)
        *value = column(c->page, (int)i, 1);
}

static const kivis_paged_source pg_pages = {pc_fetch, pc_entry};

static int pc_get(kivis_storage_cursor *cur, int op, kivis_slice *key,
                  kivis_slice *value)
{
    pg_cursor *c = cursor_of(cur);
    if (c->t->c->dead) { /* the arguments checked and cleared all the same */
        kivis_slice buf;
        const kivis_slice *target;
        int rc = kivis__cursor_args(op, key, value, &buf, &target);
        return rc != KIVIS_OK ? rc : c->t->c->dead;
    }
    return kivis__paged_get(&c->pc, op, key, value);
}

static void pc_close(kivis_storage_cursor *cur)
{
    pg_cursor *c = cursor_of(cur);
    PQclear(c->page);
    kivis__paged_free(&c->pc, &c->t->s->alloc);
}

static const kivis_cursor_methods pg_cursor_methods = {pc_get, pc_close,
                                                      NULL /* page */};

static int pg_cursor_open(kivis_storage_txn *txn, kivis_slice lo, kivis_slice hi,
                          kivis_storage_cursor **out)
{
    pg_txn *t = txn_of(txn);
    kivis_paged *p;
    int rc = kivis__paged_new(sizeof(pg_cursor), &pg_cursor_methods, &pg_pages, &t->s->alloc, lo, hi, &p);
    if (rc == KIVIS_OK)
        ((pg_cursor *)p)->t = t;
    *out = rc == KIVIS_OK ? &p->cur : NULL;
    return rc;
}

/* A cursor whose forward pages also read the rows their entries name
 * (kivis_txn_cursor_follow); a prefix too long to keep: a plain one. */
static int pg_cursor_follow(kivis_storage_txn *txn, kivis_slice lo, kivis_slice hi,
                            kivis_slice prefix, size_t tail, kivis_storage_cursor **out)
{
    int rc = pg_cursor_open(txn, lo, hi, out);
    if (rc != KIVIS_OK || prefix.len > FOLLOW_PREFIX_MAX || tail > INT32_MAX)
        return rc;
    pg_cursor *c = cursor_of(*out);
    c->tail = tail;
    c->prefix_len = prefix.len;
    if (prefix.len)
        memcpy(c->prefix, prefix.data, prefix.len);
    return KIVIS_OK;
}

/* ---- write transactions ------------------------------------------------- */

static pg_writer *writer_of(kivis_storage_txn *txn)
{
    return (pg_writer *)txn;
}

/* An empty array (a->p NULL) is sent as SQL NULL: unnest and = ANY then
 * find no rows, as with an empty array. */
static void array_param(query *q, int i, const array_buf *a)
{
    q->val[i] = (const char *)a->p;
    q->len[i] = (int)a->len;
}

static const query commit_query = {.sql = "COMMIT"};
static const query nosync_query = {.sql = "SET LOCAL synchronous_commit = off"};
static const query savepoint_query = {.sql = "SAVEPOINT kivis_write"};
static const query back_query = {.sql = "ROLLBACK TO SAVEPOINT kivis_write"};

/* A commit's arrays: the keys and values to insert (every put, sent as an
 * upsert), the keys to delete, the keys and values to update. */
enum { A_INS_K, A_INS_V, A_DEL_K, A_UPD_K, A_UPD_V, A_COUNT };

/* How a commit is sent: every put as an upsert; split into inserts and
 * updates; or, after a split one failed, as an upsert again. */
enum commit_mode { C_UPSERT, C_SPLIT, C_RETRY };

/* Commits sent as upserts after a split one failed: puts over keys the
 * transactions did not read (blind overwrites) then cost no second trip.
 * Each miss that follows a miss doubles the window, up to UPSERTS_MAX: a
 * program whose every commit overwrites blindly (a counter it keeps in
 * memory) pays the second trip a handful of times, not once every 17
 * commits; a split commit that succeeds starts the window again. */
#define UPSERTS_AFTER_MISS 16
#define UPSERTS_MAX 4096

/* The statements that write arr into q; their number.  Where the store has
 * a change log, the trigger is told to stand aside and one statement writes
 * and logs the commit (F_QUIET, then F_WRITE or F_SPLIT, see feed_fmt); a
 * split commit inserts under a savepoint, to go back to when a key was
 * there after all (see pg_apply). */
static int write_queries(const pg_storage *s, const array_buf arr[A_COUNT],
                         enum commit_mode mode, query *q)
{
    int n = 0;
    if (s->feed_sql[F_WRITE]) {
        if (mode == C_RETRY)
            q[n++] = back_query;
        q[n++] = (query){.sql = s->feed_sql[F_QUIET]};
        if (mode == C_SPLIT)
            q[n++] = savepoint_query;
        q[n] = (query){.sql = s->feed_sql[mode == C_SPLIT ? F_SPLIT : F_WRITE],
                       .n = mode == C_SPLIT ? 5 : 3};
        for (int i = 0; i < q[n].n; i++)
            array_param(&q[n], i, &arr[i]);
        return n + 1;
    }
    if (arr[A_INS_K].len) {
        q[n] = (query){.id = S_UPSERT, .n = 2};
        array_param(&q[n], 0, &arr[A_INS_K]);
        array_param(&q[n++], 1, &arr[A_INS_V]);
    }
    if (arr[A_DEL_K].len) {
        q[n] = (query){.id = S_DELETE, .n = 1};
        array_param(&q[n++], 0, &arr[A_DEL_K]);
    }
    return n;
}

/* Send the writes and COMMIT in one round trip. */
static int send_commit(pg_writer *w, const array_buf arr[A_COUNT], enum commit_mode mode,
                       int durability)
{
    query q[MAX_QUEUE];
    int n = 0;
    if (durability == KIVIS_NOSYNC && mode != C_RETRY) /* a retry's is in force */
        q[n++] = nosync_query;
    n += write_queries(w->s, arr, mode, q + n);
    q[n++] = commit_query;
    PGresult *r = NULL;
    int rc = request(w->s, w->c, q, n, &r);
    PQclear(r);
    if (rc == KIVIS_OK)
        w->c->open = false;
    return rc;
}

/* Each op's kind: a put of a key the transaction read as present (its
 * get cache) an update, another put an insert (NULL: out of memory). */
static unsigned char *op_kinds(pg_writer *w, const kivis_batch_op *ops, size_t n)
{
    unsigned char *kinds = s_malloc(w->s, n ? n : 1);
    kivis_slice v;
    for (size_t i = 0; kinds && i < n; i++)
        kinds[i] = ops[i].del ? OP_DELETE
                   : cache_get(w->base, ops[i].key, &v) == KIVIS_OK ? OP_UPDATE
                                                                   : OP_INSERT;
    return kinds;
}

/* Build the arrays of ops (kinds NULL: every put upserted) and commit. */
static int commit_ops(pg_writer *w, const kivis_batch_op *ops, size_t n,
                      enum commit_mode mode, int durability)
{
    static const struct {
        unsigned want;
        bool values;
    } part[A_COUNT] = {{KIND(OP_INSERT), false}, {KIND(OP_INSERT), true},
                       {KIND(OP_DELETE), false}, {KIND(OP_UPDATE), false},
                       {KIND(OP_UPDATE), true}};
    unsigned char *kinds = mode == C_SPLIT ? op_kinds(w, ops, n) : NULL;
    int rc = mode == C_SPLIT && !kinds ? KIVIS_ENOMEM : KIVIS_OK;
    array_buf arr[A_COUNT] = {{NULL, 0}};
    for (int i = 0; rc == KIVIS_OK && i < A_COUNT; i++)
        rc = make_array(w->s, ops, kinds, n, part[i].want, part[i].values, &arr[i]);
    if (rc == KIVIS_OK)
        rc = send_commit(w, arr, mode, durability);
    for (int i = 0; i < A_COUNT; i++)
        s_free(w->s, arr[i].p);
    s_free(w->s, kinds);
    return rc;
}

/* A split commit failed on a key that was there: upsert for a window of
 * commits, twice as long as the last one. */
static void note_miss(pg_storage *s)
{
    int window = __atomic_load_n(&s->upserts_window, __ATOMIC_RELAXED);
    __atomic_store_n(&s->upserts_due, window, __ATOMIC_RELAXED);
    __atomic_store_n(&s->upserts_window, window < UPSERTS_MAX ? 2 * window : window,
                     __ATOMIC_RELAXED);
}

/* Whether this commit may be split (a store with a change log, no split
 * commit failing lately). */
static bool split_now(pg_storage *s)
{
    if (!s->feed_sql[F_SPLIT])
        return false;
    int due = __atomic_load_n(&s->upserts_due, __ATOMIC_RELAXED);
    return due <= 0 || __atomic_sub_fetch(&s->upserts_due, 1, __ATOMIC_RELAXED) < 0;
}

/* The overlay's apply: the transaction's whole write set, in key order.
 * Most puts are of keys that are not there (new records, new index
 * entries) or of keys the transaction read (an update rewrites the record
 * it read): a plain INSERT and an UPDATE skip the probe and the
 * speculative insertion of INSERT ... ON CONFLICT, a fifth of a load's
 * server time.  A put over a key the transaction did not read fails the
 * INSERT (unique violation); the commit then goes back to its savepoint
 * and upserts, in a second round trip.  A key inserted by a concurrent
 * transaction fails the upsert as it did before (serialization failure:
 * the row is not in the snapshot). */
static int pg_apply(void *ctx, const kivis_batch_op *ops, size_t n, int durability)
{
    pg_writer *w = ctx;
    w->applied = true;
    if (w->c->dead)
        return w->c->dead;
    if (!split_now(w->s))
        return commit_ops(w, ops, n, C_UPSERT, durability);
    int rc = commit_ops(w, ops, n, C_SPLIT, durability);
    if (rc == KIVIS_OK)
        __atomic_store_n(&w->s->upserts_window, UPSERTS_AFTER_MISS, __ATOMIC_RELAXED);
    if (rc != KIVIS_EIO || !sqlstate_is(sqlstate_buf, "23505"))
        return rc;
    note_miss(w->s);
    w->c->dead = KIVIS_OK;
    return commit_ops(w, ops, n, C_RETRY, durability);
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

/* A delete of an index entry need not cost a read: queue it blind. */
static int wr_discard(kivis_storage_txn *txn, kivis_slice key)
{
    return kivis_overlay_discard(writer_of(txn)->ov, key);
}

static int wr_prefetch(kivis_storage_txn *txn, const kivis_slice *keys, size_t n)
{
    return kivis_txn_prefetch(writer_of(txn)->ov, keys, n);
}

static int wr_cursor_open(kivis_storage_txn *txn, kivis_slice lo, kivis_slice hi,
                          kivis_storage_cursor **out)
{
    return kivis_txn_cursor(writer_of(txn)->ov, lo, hi, out);
}

/* Every TRIM_EVERY commits, trim the change log on the connection just
 * used, without waiting: its reply is dropped before the connection's next
 * request (drain), as a read-only transaction's ROLLBACK is. */
static void trim_sometimes(pg_storage *s, pg_conn *c)
{
    if (!s->feed_sql[0] || __atomic_add_fetch(&s->commits, 1, __ATOMIC_RELAXED) % TRIM_EVERY)
        return;
    query trim = {.sql = s->feed_sql[F_TRIM]};
    if (queue(c->pc, &trim) == KIVIS_OK && PQpipelineSync(c->pc))
        c->owed++;
}

static void writer_end(pg_writer *w)
{
    txn_free(w->base);
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
    if (rc == KIVIS_OK && w->applied)
        trim_sometimes(w->s, w->c);
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
    wr_discard, wr_prefetch,
    NULL, /* cursor_follow */
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
        w->base = base;
        if (rc == KIVIS_OK) /* its abort leaves base to us (pg_abort) */
            rc = kivis_overlay_begin(&s->st, &base->txn, pg_apply, w, &s->alloc, &w->ov);
        if (rc != KIVIS_OK) {
            if (base)
                txn_free(base);
            conn_give(s, w->c);
        }
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
    for (int i = 0; i < F_COUNT; i++)
        s_free(s, s->feed_sql[i]);
    s_free(s, s->conninfo);
    pthread_mutex_destroy(&s->lock);
    s_free(s, s);
}

static void pg_close(kivis_storage *st)
{
    storage_free(storage_of(st));
}

typedef struct pg_feed {
    kivis_feed feed; /* first: what the caller holds */
    pg_storage *s;
    PGconn *pc;      /* a connection of its own, LISTENing, not pipelined */
    uint64_t at;     /* the last position returned */
    PGresult *rows;  /* the last batch read, rows [row, nrows) not returned */
    int row, nrows;
    time_t trimmed;  /* when this feed last trimmed the log */
    /* The log may hold changes after `at` that were not read: since the
     * connection was made, a NOTIFY came, or the last batch was full.
     * Otherwise asking for changes needs no query, only a look at what
     * the socket brought (a feed drained at every begin of a cache must
     * not cost a round trip each time). */
    bool behind;
} pg_feed;

static uint64_t int8_at(const PGresult *r, int row, int col)
{
    const unsigned char *p = (const unsigned char *)PQgetvalue(r, row, col);
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

/* A statement on the feed's connection; the reply or NULL (status in *rc). */
static PGresult *feed_exec(pg_feed *f, int which, const char *param, int *rc)
{
    const char *vals[1] = {param};
    atomic_fetch_add_explicit(&round_trips, 1, memory_order_relaxed);
    PGresult *r = PQexecParams(f->pc, f->s->feed_sql[which], param ? 1 : 0, NULL,
                               vals, NULL, NULL, which == F_FETCH);
    *rc = result_ok(r) ? KIVIS_OK : status_of(f->pc, r);
    if (*rc != KIVIS_OK) {
        PQclear(r);
        return NULL;
    }
    return r;
}

/* Connect (again) and LISTEN before anything is read, so that no commit
 * falls between the read and the wait. */
static int feed_connect(pg_feed *f)
{
    if (f->pc)
        PQfinish(f->pc);
    f->pc = NULL;
    int rc = connect_raw(f->s, &f->pc);
    if (rc == KIVIS_OK)
        PQclear(feed_exec(f, F_LISTEN, NULL, &rc));
    f->behind = true; /* commits may have come while nobody listened */
    return rc;
}

static void feed_trim_sometimes(pg_feed *f)
{
    time_t now = time(NULL);
    if (now - f->trimmed < FEED_TRIM_SECONDS)
        return;
    int rc;
    PQclear(feed_exec(f, F_TRIM, NULL, &rc));
    f->trimmed = now;
}

/* Read the next batch: one row per change after f->at (the log's commit
 * rows unnested, see FEED_ROWS_AFTER).  KIVIS_OK with a resync in *out
 * when the log was trimmed past f->at, KIVIS_NOTFOUND when the batch holds
 * changes (or nothing), or an error. */
static int feed_fetch(pg_feed *f, kivis_change *out)
{
    char at[24];
    snprintf(at, sizeof at, "%llu", (unsigned long long)f->at);
    int rc;
    PQclear(f->rows);
    f->rows = feed_exec(f, F_FETCH, at, &rc);
    f->row = 0;
    f->nrows = 0;
    if (!f->rows)
        return rc;
    int n = PQntuples(f->rows);
    if (n == 0 || PQgetisnull(f->rows, 0, 0))
        return KIVIS_EIO; /* the one-row table is missing its row */
    f->nrows = PQgetisnull(f->rows, 0, 1) ? 0 : n;
    uint64_t horizon = int8_at(f->rows, 0, 0);
    if (horizon <= f->at)
        return KIVIS_NOTFOUND;
    f->at = horizon;
    *out = (kivis_change){horizon, KIVIS_CHANGE_RESYNC, {NULL, 0}};
    return KIVIS_OK;
}

static int kind_of_op(char op)
{
    return op == 'I' ? KIVIS_CHANGE_INSERT
         : op == 'U' ? KIVIS_CHANGE_UPDATE : KIVIS_CHANGE_DELETE;
}

/* Drop what NOTIFY brought in.  @return whether anything came: a NOTIFY,
 * or any bytes at all, since the server talks unasked only to notify or
 * to say it is going (an error message, then the end of the stream), and
 * a read of the log then finds out which. */
static bool feed_notified(pg_feed *f)
{
    struct pollfd p = {PQsocket(f->pc), POLLIN, 0};
    bool any = p.fd >= 0 && poll(&p, 1, 0) > 0;
    PGnotify *n;
    PQconsumeInput(f->pc);
    while ((n = PQnotifies(f->pc)) != NULL) {
        PQfreemem(n);
        any = true;
    }
    return any;
}

static int pf_next(kivis_feed *feed, int timeout_ms, kivis_change *out)
{
    pg_feed *f = (pg_feed *)feed;
    struct timespec start;
    bool connected = false; /* by this call: a failure is then the server's */
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        if (f->row < f->nrows) {
            int i = f->row++;
            f->at = int8_at(f->rows, i, 1);
            *out = (kivis_change){f->at, kind_of_op(PQgetvalue(f->rows, i, 2)[0]),
                                  {PQgetvalue(f->rows, i, 3),
                                   (size_t)PQgetlength(f->rows, i, 3)}};
            return KIVIS_OK;
        }
        if (PQstatus(f->pc) != CONNECTION_OK) {
            int rc = feed_connect(f);
            if (rc != KIVIS_OK)
                return rc;
            connected = true;
        }
        if (feed_notified(f))
            f->behind = true;
        /* A connection that broke while idle (the server restarted since
         * the last call) is replaced once, as a transaction's is. */
        if (!connected && PQstatus(f->pc) != CONNECTION_OK)
            continue;
        if (f->behind) {
            int rc = feed_fetch(f, out);
            if (rc == KIVIS_EUNAVAILABLE && !connected && PQstatus(f->pc) != CONNECTION_OK)
                continue;
            if (rc != KIVIS_NOTFOUND)
                return rc;
            /* FEED_BATCH_ROWS changes or more: more may wait (a batch
             * holds fewer only when it reached the end of the log) */
            f->behind = f->nrows >= FEED_BATCH_ROWS;
            if (!f->nrows)
                feed_trim_sometimes(f);
            continue; /* NOTIFYs may have come in with the reply */
        }
        if (timeout_ms == 0)
            return KIVIS_NOTFOUND;
        int ready = kivis__feed_wait(PQsocket(f->pc), &start, timeout_ms);
        if (ready <= 0)
            return ready == 0 ? KIVIS_NOTFOUND : KIVIS_EIO;
    }
}

static int pf_fd(kivis_feed *feed)
{
    return PQsocket(((pg_feed *)feed)->pc);
}

static void pf_close(kivis_feed *feed)
{
    pg_feed *f = (pg_feed *)feed;
    PQclear(f->rows);
    PQfinish(f->pc);
    s_free(f->s, f);
}

static const kivis_feed_methods pg_feed_methods = {pf_next, pf_fd, pf_close};

/* KIVIS_FEED_NOW starts after every position committed when the feed
 * LISTENs: a commit still drawing positions holds the log's lock, so it
 * is not visible yet and its positions are above the ones read. */
static int pg_feed_open(kivis_storage *st, uint64_t after, kivis_feed **out)
{
    pg_storage *s = storage_of(st);
    *out = NULL;
    if (!s->feed_sql[0])
        return KIVIS_ENOTSUP;
    pg_feed *f = s_malloc(s, sizeof *f);
    if (!f)
        return KIVIS_ENOMEM;
    memset(f, 0, sizeof *f);
    f->feed.methods = &pg_feed_methods;
    f->feed.flags = KIVIS_FEED_SHARED; /* the change log has every client's */
    f->s = s;
    f->at = after;
    f->trimmed = time(NULL);
    int rc = feed_connect(f);
    if (rc == KIVIS_OK && after == KIVIS_FEED_NOW) {
        PGresult *r = feed_exec(f, F_NOW, NULL, &rc);
        if (r && !PQgetisnull(r, 0, 0))
            f->at = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
        PQclear(r);
    }
    if (rc != KIVIS_OK) {
        pf_close(&f->feed);
        return rc;
    }
    *out = &f->feed;
    return KIVIS_OK;
}

static const kivis_storage_methods pg_storage_methods = {
    KIVIS_STORAGE_VERSION, "postgres", pg_close, pg_max_key, pg_begin,
    pg_feed_open,
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
        size_t n = strlen(stmt_fmt[i]) + 2 * strlen(name) + 1; /* FOLLOW_PAGE: twice */
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

/* ---- the change feed ----------------------------------------------------
 *
 * The change log <table>_changes holds one row per logged commit: pos, the
 * position of its last key; ops and keys, one element per key written
 * ('I', 'U', 'D'); at, when it was logged.  Positions still name keys: a
 * row of n keys owns the n positions pos - n + 1 ... pos, one per key in
 * array order, drawn from the log's sequence by <table>_feed_draw(n),
 * which first takes a transaction-level advisory lock that only the
 * change log's writers take, so positions are handed out in commit order:
 * the lock is held from the draw until the commit is visible, and the
 * next committer draws after that.  Concurrent writers still run at once;
 * only their commits queue, for the time of the log insert.  The draw also
 * NOTIFYs kivis_feed_<table oid>, which wakes the feeds (each LISTENs on a
 * connection of its own) at commit.
 *
 * A kivis commit writes and logs in one statement (F_WRITE).  Writers that
 * are not kivis are logged by a deferred constraint trigger on the table,
 * one row of one key per row write, at commit time.  <table>_feed holds
 * one row: horizon (every position up to it is trimmed), keep_rows (how
 * many of the newest keys the trim keeps, in whole commits) and keep_age.
 *
 * A log of the earlier format, one row per key (pos, op, k, at), is
 * converted at open, in the setup's transaction and under the log's lock:
 * each row becomes a commit of one key at the same position, so a feed
 * resuming from a position read before the conversion goes on after it. */

static const char feed_setup_fmt[] =
    "BEGIN;"
    "SELECT pg_advisory_xact_lock(1801812339, 0);"
    "CREATE TABLE IF NOT EXISTS @1 (pos bigserial PRIMARY KEY, ops \"char\"[] NOT NULL,"
    " keys bytea[] NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp());"
    "DO $kivis$ BEGIN"
    " IF EXISTS (SELECT 1 FROM pg_catalog.pg_attribute WHERE attrelid = to_regclass(@7)"
    "  AND attname = 'k' AND NOT attisdropped) THEN"
    "  PERFORM pg_advisory_xact_lock(1801812339, (@6::bigint % 2147483647)::int);"
    "  ALTER TABLE @1 ADD COLUMN ops \"char\"[], ADD COLUMN keys bytea[];"
    "  UPDATE @1 SET ops = ARRAY[op], keys = ARRAY[k];"
    "  ALTER TABLE @1 DROP COLUMN op, DROP COLUMN k,"
    "   ALTER COLUMN ops SET NOT NULL, ALTER COLUMN keys SET NOT NULL;"
    " END IF;"
    " END $kivis$;"
    /* lz4 compresses a commit's keys several times faster than the default
     * pglz (a 3,000-key row: 1.1 ms against 6.6, median); a server built
     * without it, or older than 14, keeps pglz */
    "DO $kivis$ BEGIN"
    " EXECUTE format('ALTER TABLE %s ALTER COLUMN ops SET COMPRESSION lz4,"
    " ALTER COLUMN keys SET COMPRESSION lz4', to_regclass(@7));"
    " EXCEPTION WHEN OTHERS THEN NULL;"
    " END $kivis$;"
    "CREATE TABLE IF NOT EXISTS @2 (one boolean PRIMARY KEY DEFAULT true CHECK (one),"
    " horizon bigint NOT NULL DEFAULT 0, keep_rows bigint NOT NULL DEFAULT 1000000,"
    " keep_age interval NOT NULL DEFAULT '1 day');"
    "INSERT INTO @2 DEFAULT VALUES ON CONFLICT DO NOTHING;"
    "CREATE OR REPLACE FUNCTION @8(n bigint) RETURNS bigint LANGUAGE plpgsql AS $kivis$"
    " DECLARE first bigint;"
    " BEGIN"
    "  PERFORM pg_advisory_xact_lock(1801812339, (@6::bigint % 2147483647)::int);"
    "  PERFORM pg_notify('kivis_feed_@6', '');"
    "  first := nextval(pg_get_serial_sequence(@7, 'pos')::regclass);"
    "  IF n > 1 THEN"
    "   PERFORM setval(pg_get_serial_sequence(@7, 'pos')::regclass, first + n - 1);"
    "  END IF;"
    "  RETURN first + n - 1;"
    " END $kivis$;"
    "CREATE OR REPLACE FUNCTION @3() RETURNS trigger LANGUAGE plpgsql AS $kivis$"
    " BEGIN"
    "  INSERT INTO @1(pos, ops, keys) VALUES (@8(1), ARRAY[left(TG_OP, 1)::\"char\"],"
    "   ARRAY[CASE WHEN TG_OP = 'DELETE' THEN OLD.k ELSE NEW.k END]);"
    "  RETURN NULL;"
    " END $kivis$;"
    "CREATE OR REPLACE FUNCTION @4() RETURNS bigint LANGUAGE plpgsql AS $kivis$"
    " DECLARE m record; newest bigint; cut bigint;"
    " BEGIN"
    "  SELECT horizon, keep_rows, keep_age INTO m FROM @2 FOR UPDATE;"
    "  SELECT max(pos) INTO newest FROM @1;"
    "  SELECT max(pos) INTO cut FROM (SELECT pos, at FROM @1 ORDER BY pos LIMIT 100000) o"
    "   WHERE at < clock_timestamp() - m.keep_age;"
    "  cut := greatest(cut, newest - m.keep_rows);"
    /* whole commits only: the last one that ends at or below the cut */
    "  SELECT max(pos) INTO cut FROM @1 WHERE pos <= cut;"
    "  IF cut > m.horizon THEN"
    "   DELETE FROM @1 WHERE pos <= cut;"
    "   UPDATE @2 SET horizon = cut;"
    "   RETURN cut;"
    "  END IF;"
    "  RETURN m.horizon;"
    " END $kivis$;"
    "DROP TRIGGER IF EXISTS kivis_feed ON @5;"
    "CREATE CONSTRAINT TRIGGER kivis_feed AFTER INSERT OR UPDATE OR DELETE ON @5"
    " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW"
    " WHEN (current_setting('kivis.logged', true) IS DISTINCT FROM 'on')"
    " EXECUTE FUNCTION @3();"
    "COMMIT";

/* The log rows after $1 whose changes after $1 start within the first
 * FEED_BATCH: a batch holds whole commits (but for the first, when $1 is
 * inside it), at least FEED_BATCH changes unless the log ends first.  base
 * is the position before a row's first key; it is worked out once per row,
 * as cardinality() reads (detoasts) the whole array. */
#define FEED_ROWS_AFTER                                                          \
    "(SELECT base, ops, keys, sum(least(pos - base, pos - $1)) OVER (ORDER BY pos)" \
    " - least(pos - base, pos - $1) AS before"                                   \
    " FROM (SELECT pos, pos - cardinality(keys) AS base, ops, keys FROM @1"     \
    " WHERE pos > $1::bigint ORDER BY pos LIMIT " FEED_BATCH ") r)"

static const char *const feed_fmt[F_COUNT] = {
    /* the horizon, then the changes after $1 (FEED_ROWS_AFTER), each key
     * at its own position, in one snapshot */
    "SELECT m.horizon, c.pos, c.op, c.k FROM @2 m LEFT JOIN LATERAL"
    " (SELECT l.base + e.i AS pos, e.op, e.k"
    " FROM " FEED_ROWS_AFTER " l, unnest(l.ops, l.keys) WITH ORDINALITY e(op, k, i)"
    " WHERE l.before < " FEED_BATCH " AND l.base + e.i > $1::bigint) c ON true"
    " ORDER BY c.pos",
    /* every position committed so far (see pg_feed_open) */
    "SELECT greatest((SELECT horizon FROM @2), (SELECT max(pos) FROM @1))",
    "LISTEN kivis_feed_@6",
    "SELECT @4()",
    /* A commit through this backend logs its own writes, in one statement
     * that writes them too, instead of a trigger call per row: the trigger
     * is told to stand aside (kivis.logged, for this transaction only),
     * then the upsert and the delete return their keys and kinds (xmax = 0:
     * the upsert inserted), aggregated into one log row whose positions
     * are drawn last (after the aggregate has read every write), under the
     * lock that makes positions follow commit order. */
    "SELECT set_config('kivis.logged', 'on', true)",
    "WITH u AS (INSERT INTO @5(k, v) SELECT * FROM unnest($1::bytea[], $2::bytea[])"
    " ON CONFLICT (k) DO UPDATE SET v = excluded.v"
    " RETURNING (CASE WHEN xmax = 0 THEN 'I' ELSE 'U' END)::\"char\" AS op, k),"
    " d AS (DELETE FROM @5 WHERE k = ANY($3::bytea[]) RETURNING 'D'::\"char\" AS op, k),"
    " w AS (SELECT array_agg(op) AS ops, array_agg(k) AS keys"
    " FROM (SELECT op, k FROM u UNION ALL SELECT op, k FROM d) x)"
    " INSERT INTO @1(pos, ops, keys) SELECT @8(cardinality(keys)), ops, keys FROM w"
    " WHERE keys IS NOT NULL",
    /* The same, split (see pg_apply): $1, $2 inserted, $4, $5 updated
     * (rows of the transaction's snapshot: a concurrent change fails it
     * as a serialization failure), $3 deleted. */
    "WITH i AS (INSERT INTO @5(k, v) SELECT * FROM unnest($1::bytea[], $2::bytea[])"
    " RETURNING 'I'::\"char\" AS op, k),"
    " u AS (UPDATE @5 t SET v = n.v FROM unnest($4::bytea[], $5::bytea[]) n(k, v)"
    " WHERE t.k = n.k RETURNING 'U'::\"char\" AS op, t.k),"
    " d AS (DELETE FROM @5 WHERE k = ANY($3::bytea[]) RETURNING 'D'::\"char\" AS op, k),"
    " w AS (SELECT array_agg(op) AS ops, array_agg(k) AS keys FROM (SELECT op, k FROM i"
    " UNION ALL SELECT op, k FROM u UNION ALL SELECT op, k FROM d) x)"
    " INSERT INTO @1(pos, ops, keys) SELECT @8(cardinality(keys)), ops, keys FROM w"
    " WHERE keys IS NOT NULL",
};

/* "schema"."table<suffix>", quoted. */
static char *qualified(pg_storage *s, PGconn *pc, const char *schema,
                       const char *table, const char *suffix)
{
    char name[200];
    if ((size_t)snprintf(name, sizeof name, "%s%s", table, suffix) >= sizeof name)
        return NULL;
    char *qs = PQescapeIdentifier(pc, schema, strlen(schema));
    char *qt = PQescapeIdentifier(pc, name, strlen(name));
    char *out = NULL;
    if (qs && qt && (out = s_malloc(s, strlen(qs) + strlen(qt) + 2)))
        sprintf(out, "%s.%s", qs, qt);
    PQfreemem(qs);
    PQfreemem(qt);
    return out;
}

#define FEED_NAMES 8

/* fmt with each @1..@8 replaced by names[0..7]. */
static char *feed_text(pg_storage *s, const char *fmt, char *const names[FEED_NAMES])
{
    size_t n = 1;
    for (const char *p = fmt; *p; p++)
        n += p[0] == '@' && p[1] >= '1' && p[1] <= '8' ? strlen(names[*++p - '1']) : 1;
    char *out = s_malloc(s, n), *o = out;
    for (const char *p = fmt; out && *p; p++) {
        if (p[0] == '@' && p[1] >= '1' && p[1] <= '8') {
            const char *name = names[*++p - '1'];
            memcpy(o, name, strlen(name));
            o += strlen(name);
        } else {
            *o++ = *p;
        }
    }
    if (out)
        *o = '\0';
    return out;
}

/* Whether the trigger and a log of the current format are there (an
 * older trigger, without the WHEN, or a log of one row per key, is made
 * again or converted); oid receives the table's. */
static bool feed_ready(PGconn *pc, const char *kv, const char *changes, char oid[24])
{
    const char *vals[2] = {kv, changes};
    PGresult *r = PQexecParams(pc,
                               "SELECT c.oid, EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t"
                               " WHERE t.tgrelid = c.oid AND t.tgname = 'kivis_feed'"
                               " AND pg_catalog.pg_get_triggerdef(t.oid) LIKE '%kivis.logged%')"
                               " AND EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a"
                               " WHERE a.attrelid = to_regclass($2) AND a.attname = 'keys'"
                               " AND NOT a.attisdropped)"
                               " FROM pg_catalog.pg_class c WHERE c.oid = to_regclass($1)",
                               2, NULL, vals, NULL, NULL, 0);
    bool ok = result_ok(r) && PQntuples(r) == 1;
    bool exists = ok && PQgetvalue(r, 0, 1)[0] == 't';
    if (ok)
        snprintf(oid, 24, "%s", PQgetvalue(r, 0, 0));
    else
        oid[0] = '\0';
    PQclear(r);
    return exists;
}

/* str as an SQL string literal, in memory of s (NULL: out of memory). */
static char *literal(pg_storage *s, PGconn *pc, const char *str)
{
    if (!str)
        return NULL;
    char *lit = PQescapeLiteral(pc, str, strlen(str));
    char *out = lit ? s_strdup(s, lit) : NULL;
    PQfreemem(lit);
    return out;
}

/* Create the change log and its trigger unless they are there, or convert
 * a log of the earlier format.  A store whose user may not create them
 * opens without a feed (feed_open is then KIVIS_ENOTSUP); only running out
 * of memory fails the open. */
static int ensure_feed(pg_storage *s, PGconn *pc, const char *schema, const char *table)
{
    char oid[24] = "";
    char *names[FEED_NAMES] = {qualified(s, pc, schema, table, "_changes"),
                               qualified(s, pc, schema, table, "_feed"),
                               qualified(s, pc, schema, table, "_feed_log"),
                               qualified(s, pc, schema, table, "_feed_trim"),
                               qualified(s, pc, schema, table, ""), oid, NULL,
                               qualified(s, pc, schema, table, "_feed_draw")};
    names[6] = literal(s, pc, names[0]);
    int rc = KIVIS_OK;
    for (int i = 0; i < FEED_NAMES; i++)
        if (!names[i])
            rc = KIVIS_ENOMEM;
    bool ready = rc == KIVIS_OK && feed_ready(pc, names[4], names[0], oid);
    if (rc == KIVIS_OK && !ready && oid[0]) {
        char *setup = feed_text(s, feed_setup_fmt, names);
        PGresult *r = setup ? PQexec(pc, setup) : NULL;
        const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        ready = result_ok(r) || sqlstate_is(state, "42710"); /* a racing opener made it */
        if (!ready)
            keep_message(PQresultErrorMessage(r));
        PQclear(r);
        if (PQtransactionStatus(pc) != PQTRANS_IDLE)
            PQclear(PQexec(pc, "ROLLBACK"));
        s_free(s, setup);
        rc = setup ? KIVIS_OK : KIVIS_ENOMEM;
    }
    for (int i = 0; ready && rc == KIVIS_OK && i < F_COUNT; i++)
        if (!(s->feed_sql[i] = feed_text(s, feed_fmt[i], names)))
            rc = KIVIS_ENOMEM;
    for (int i = 0; i < FEED_NAMES; i++)
        if (i != 5) /* oid: on the stack */
            s_free(s, names[i]);
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
        rc = ensure_feed(s, pc, schema, table);
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
    s->upserts_window = UPSERTS_AFTER_MISS;
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
