/*
 * bench/engines/eng_postgres.c - PostgreSQL: the private server the
 * benchmark starts, raw libpq by hand (engine "postgres", the reference of
 * the PostgreSQL table) and the storage kivis runs over (eng_kivis.c).
 *
 * The server is the tests' (tests/support/pgserver.c): initdb in a new
 * directory under $TMPDIR, postgres on a free port of 127.0.0.1, reached
 * through its unix socket, stopped and removed when the program ends.  Unlike
 * the tests' it runs with fsync on, so that the durable phase flushes.  It is
 * started by the first store opened on it; each store is a fresh database.
 *
 * Raw libpq, as an expert would write it: a table with the record's columns,
 * its name indexed (COLLATE "C": byte order, as kivis compares), every
 * statement prepared, parameters and results binary, and the connection in
 * pipeline mode.  A read is one round trip; a write transaction queues its
 * BEGIN, statements and COMMIT and waits once, at the commit.  Reads run
 * BENCH_READ_BATCH to a REPEATABLE READ READ ONLY transaction (kivis's read
 * transactions); writes in READ COMMITTED, PostgreSQL's default, enough for
 * single-row statements (kivis needs SERIALIZABLE: it decides on absent keys
 * too).  Throughput: synchronous_commit off for the session, as kivis's
 * KIVIS_NOSYNC sets it for each commit.
 */
#include "bench.h"

#include <kivis/postgres.h>

#include "pgserver.h"

#include <libpq-fe.h>

#include <stdio.h>
#include <stdlib.h>

#define INT8_OID 20
#define INT4_OID 23
#define TEXT_OID 25

/* ---- the server --------------------------------------------------------- */

/* The database for the store in dir: a fresh one named after the
 * directory's last part (engine and run), letters and digits kept.  The
 * server checkpoints first, so that no store pays for the dirty pages of
 * the stores before it (the durable phase runs after the others, one
 * engine after another: the first one would pay the checkpoint). */
static const char *fresh_database(const char *dir)
{
    static bool configured;
    if (!configured) {
        kt_pg_configure("-c fsync=on");
        configured = true;
    }
    kt_pg_exec("CHECKPOINT");
    const char *base = strrchr(dir, '/');
    base = base ? base + 1 : dir;
    char name[64];
    size_t n = 0;
    for (; *base && n + 1 < sizeof name; base++)
        name[n++] = (*base >= 'a' && *base <= 'z') || (*base >= '0' && *base <= '9')
                        ? *base : '_';
    name[n] = '\0';
    return kt_pg_fresh_db(name);
}

int bench_postgres_storage(const char *dir, kivis_storage **out)
{
    return kivis_postgres_open(fresh_database(dir), NULL, out);
}

unsigned long long bench_postgres_backend_trips(void *h)
{
    (void)h;
    return kivis_postgres_round_trips();
}

/* ---- raw libpq ---------------------------------------------------------- */

enum stmt { S_INSERT, S_GET, S_BY_NAME, S_SCAN, S_RENAME, S_REMOVE, S_COUNT };

static const struct {
    const char *name, *sql;
    int nparams;
    Oid types[4];
} stmts[S_COUNT] = {
    {"ins", "INSERT INTO users(id, name, email, age) VALUES ($1, $2, $3, $4)", 4,
     {INT8_OID, TEXT_OID, TEXT_OID, INT4_OID}},
    {"get", "SELECT id, name, email, age FROM users WHERE id = $1", 1, {INT8_OID}},
    {"by_name", "SELECT id, name, email, age FROM users WHERE name = $1", 1,
     {TEXT_OID}},
    {"scan", "SELECT id, name, email, age FROM users WHERE id >= $1 AND id < $2 "
             "ORDER BY id", 2, {INT8_OID, INT8_OID}},
    {"rename", "UPDATE users SET name = $2 WHERE id = $1", 2, {INT8_OID, TEXT_OID}},
    {"remove", "DELETE FROM users WHERE id = $1", 1, {INT8_OID}},
};

static const int binary[4] = {1, 1, 1, 1};

typedef struct pg_handle {
    PGconn *pc;
    int queued;                   /* statements sent since the last Sync */
    unsigned long long trips;     /* Syncs waited for */
} pg_handle;

static void pg_fail(pg_handle *h, const char *what, const PGresult *r)
{
    bench_die("postgres", what,
              r && PQresultErrorMessage(r)[0] ? PQresultErrorMessage(r)
                                              : PQerrorMessage(h->pc));
}

static void queue_sql(pg_handle *h, const char *sql)
{
    if (!PQsendQueryParams(h->pc, sql, 0, NULL, NULL, NULL, NULL, 1))
        pg_fail(h, sql, NULL);
    h->queued++;
}

/* Parameters: int8 and int4 in network order, text as its bytes. */
typedef struct params {
    int n, n8;
    const char *val[4];
    int len[4];
    unsigned char i8[2][8], i4[4];
} params;

static void p_int8(params *p, uint64_t v)
{
    unsigned char *b = p->i8[p->n8++];
    bench_be64(v, b);
    p->val[p->n] = (const char *)b;
    p->len[p->n++] = 8;
}

static void p_text(params *p, const char *s)
{
    p->val[p->n] = s;
    p->len[p->n++] = (int)strlen(s);
}

static void p_int4(params *p, uint32_t v)
{
    for (int i = 3; i >= 0; i--, v >>= 8)
        p->i4[i] = (unsigned char)v;
    p->val[p->n] = (const char *)p->i4;
    p->len[p->n++] = 4;
}

static void queue_stmt(pg_handle *h, enum stmt s, const params *p)
{
    if (!PQsendQueryPrepared(h->pc, stmts[s].name, p->n, p->val, p->len, binary, 1))
        pg_fail(h, stmts[s].name, NULL);
    h->queued++;
}

static uint32_t get_be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Copy a result's rows (id, name, email, age) out and count them. */
static void account_rows(const PGresult *res, bench_result *r)
{
    for (int i = 0, n = PQntuples(res); i < n; i++) {
        bench_row row;
        size_t nl = (size_t)PQgetlength(res, i, 1), el = (size_t)PQgetlength(res, i, 2);
        row.key = bench_get_be64((const unsigned char *)PQgetvalue(res, i, 0));
        memcpy(row.name, PQgetvalue(res, i, 1), nl);
        row.name[nl] = '\0';
        memcpy(row.email, PQgetvalue(res, i, 2), el);
        row.email[el] = '\0';
        row.age = get_be32((const unsigned char *)PQgetvalue(res, i, 3));
        bench_account(r, row.key, row.name, nl, row.email, el, row.age);
    }
}

/* A statement's reply: rows are counted into r; an UPDATE or DELETE must
 * have hit its one row. */
static void take_reply(pg_handle *h, PGresult *res, bench_result *r)
{
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_TUPLES_OK)
        account_rows(res, r);
    else if (st != PGRES_COMMAND_OK)
        pg_fail(h, "statement", res);
    else if ((!strncmp(PQcmdStatus(res), "UPDATE", 6) ||
              !strncmp(PQcmdStatus(res), "DELETE", 6)) &&
             strcmp(PQcmdTuples(res), "1"))
        bench_die("postgres", PQcmdStatus(res), "expected one row");
}

/* One round trip: Sync, then the replies of every statement queued. */
static void round_trip(pg_handle *h, bench_result *r)
{
    if (!PQpipelineSync(h->pc))
        pg_fail(h, "sync", NULL);
    h->trips++;
    for (; h->queued > 0; h->queued--) {
        PGresult *res = PQgetResult(h->pc), *extra;
        if (!res)
            pg_fail(h, "reply", NULL);
        take_reply(h, res, r);
        PQclear(res);
        while ((extra = PQgetResult(h->pc)) != NULL)
            PQclear(extra);
    }
    PGresult *sync = PQgetResult(h->pc);
    if (PQresultStatus(sync) != PGRES_PIPELINE_SYNC)
        pg_fail(h, "sync", sync);
    PQclear(sync);
}

static void exec_now(pg_handle *h, const char *sql)
{
    queue_sql(h, sql);
    bench_result ignored = {0, 0};
    round_trip(h, &ignored);
}

static void *pg_open(const void *arg, const char *dir, size_t n, bool durable)
{
    (void)arg;
    (void)n;
    pg_handle *h = calloc(1, sizeof *h);
    if (!h)
        bench_die("postgres", "open", "out of memory");
    h->pc = PQconnectdb(fresh_database(dir));
    if (PQstatus(h->pc) != CONNECTION_OK)
        pg_fail(h, "connect", NULL);
    if (!PQenterPipelineMode(h->pc))
        pg_fail(h, "pipeline mode", NULL);
    exec_now(h, "CREATE TABLE users (id bigint PRIMARY KEY, name text COLLATE \"C\" "
                "NOT NULL, email text NOT NULL, age integer NOT NULL)");
    exec_now(h, "CREATE INDEX users_name ON users (name)");
    if (!durable)
        exec_now(h, "SET synchronous_commit = off");
    for (int i = 0; i < S_COUNT; i++)
        if (!PQsendPrepare(h->pc, stmts[i].name, stmts[i].sql, stmts[i].nparams,
                           stmts[i].types))
            pg_fail(h, "prepare", NULL);
        else
            h->queued++;
    bench_result ignored = {0, 0};
    round_trip(h, &ignored);
    return h;
}

static void pg_close(void *hp)
{
    pg_handle *h = hp;
    PQfinish(h->pc);
    free(h);
}

static const char *pg_version(void)
{
    static char v[32];
    int lib = PQlibVersion();
    snprintf(v, sizeof v, "libpq %d.%d", lib / 10000, lib % 10000);
    return v;
}

static unsigned long long pg_trips(void *hp)
{
    return ((pg_handle *)hp)->trips;
}

static void pg_load(void *hp, const bench_user *u, size_t first, size_t n,
                    size_t txn_size, bench_result *r)
{
    pg_handle *h = hp;
    n += first;
    for (size_t i = first; i < n; i += txn_size) {
        queue_sql(h, "BEGIN");
        for (size_t j = i; j < n && j < i + txn_size; j++) {
            params p = {0};
            p_int8(&p, j + 1);
            p_text(&p, u[j].name);
            p_text(&p, u[j].email);
            p_int4(&p, u[j].age);
            queue_stmt(h, S_INSERT, &p);
            r->rows++;
            r->sum += j + 1;
        }
        queue_sql(h, "COMMIT");
        round_trip(h, r);
    }
}

/* Read transactions of BENCH_READ_BATCH ops: COMMIT and BEGIN ride along
 * with the op that starts a batch, the last COMMIT goes alone. */
static void read_batch(pg_handle *h, size_t i)
{
    if (i % BENCH_READ_BATCH)
        return;
    if (i)
        queue_sql(h, "COMMIT");
    queue_sql(h, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
}

/* Read op i of a phase: one statement, one round trip. */
static void read_op(pg_handle *h, size_t i, enum stmt s, const params *p,
                    bench_result *r)
{
    read_batch(h, i);
    queue_stmt(h, s, p);
    round_trip(h, r);
}

static void end_reads(pg_handle *h, bench_result *r)
{
    queue_sql(h, "COMMIT");
    round_trip(h, r);
}

static void pg_get(void *hp, const uint64_t *keys, size_t n, bench_result *r)
{
    pg_handle *h = hp;
    for (size_t i = 0; i < n; i++) {
        params p = {0};
        p_int8(&p, keys[i]);
        uint64_t before = r->rows;
        read_op(h, i, S_GET, &p, r);
        if (r->rows != before + 1)
            bench_die("postgres", "get", "no such record");
    }
    end_reads(h, r);
}

static void pg_by_name(void *hp, const char *const *names, size_t n,
                       bench_result *r)
{
    pg_handle *h = hp;
    for (size_t i = 0; i < n; i++) {
        params p = {0};
        p_text(&p, names[i]);
        read_op(h, i, S_BY_NAME, &p, r);
    }
    end_reads(h, r);
}

static void pg_scan(void *hp, const uint64_t *starts, size_t n, size_t len,
                    bench_result *r)
{
    pg_handle *h = hp;
    for (size_t i = 0; i < n; i++) {
        params p = {0};
        p_int8(&p, starts[i]);
        p_int8(&p, starts[i] + len);
        read_op(h, i, S_SCAN, &p, r);
    }
    end_reads(h, r);
}

/* Write transactions: BEGIN, one statement per op, COMMIT, one round trip. */
static void write_txns(pg_handle *h, enum stmt s, const uint64_t *keys,
                       const char *const *names, size_t n, size_t txn_size,
                       bench_result *r)
{
    for (size_t i = 0; i < n; i += txn_size) {
        queue_sql(h, "BEGIN");
        for (size_t j = i; j < n && j < i + txn_size; j++) {
            params p = {0};
            p_int8(&p, keys[j]);
            if (names)
                p_text(&p, names[j]);
            queue_stmt(h, s, &p);
            r->rows++;
            r->sum += keys[j];
        }
        queue_sql(h, "COMMIT");
        round_trip(h, r);
    }
}

static void pg_rename(void *hp, const uint64_t *keys, const char *const *names,
                      size_t n, size_t txn_size, bench_result *r)
{
    write_txns(hp, S_RENAME, keys, names, n, txn_size, r);
}

static void pg_remove(void *hp, const uint64_t *keys, size_t n, size_t txn_size,
                      bench_result *r)
{
    write_txns(hp, S_REMOVE, keys, NULL, n, txn_size, r);
}

const bench_engine bench_postgres = {
    "postgres", NULL, true, false, pg_version, pg_open, pg_close,
    pg_load, pg_get, pg_by_name, pg_scan, pg_rename, pg_remove, pg_trips,
};
