/*
 * bench/engines/eng_lmdb.c - raw LMDB written by hand, as an expert would:
 * a main table (8-byte big-endian key -> packed record) and an index table
 * (name | 0x00 | big-endian key -> empty), both written in one transaction.
 *
 * Throughput runs open the environment with MDB_NOSYNC, durable ones
 * without.  The map is sized up front.  The load appends to the main table
 * with MDB_APPEND (keys arrive in order).  Reads share one read-only
 * transaction per BENCH_READ_BATCH operations (mdb_txn_reset / renew).
 */
#include "bench.h"

#include <lmdb.h>

#include <stdlib.h>
#include <string.h>

typedef struct lmdb_handle {
    MDB_env *env;
    MDB_dbi main, index;
    MDB_txn *rtxn; /* the reused read transaction */
} lmdb_handle;

static void check(int rc, const char *what)
{
    if (rc)
        bench_die("lmdb", what, mdb_strerror(rc));
}

static void *lm_open(const void *arg, const char *dir, size_t n, bool durable)
{
    (void)arg;
    lmdb_handle *h = calloc(1, sizeof *h);
    if (!h)
        bench_die("lmdb", "open", "out of memory");
    check(mdb_env_create(&h->env), "mdb_env_create");
    check(mdb_env_set_mapsize(h->env, bench_map_size(n)), "mdb_env_set_mapsize");
    check(mdb_env_set_maxdbs(h->env, 2), "mdb_env_set_maxdbs");
    check(mdb_env_open(h->env, dir, durable ? 0 : MDB_NOSYNC, 0644),
          "mdb_env_open");
    MDB_txn *t;
    check(mdb_txn_begin(h->env, NULL, 0, &t), "mdb_txn_begin");
    check(mdb_dbi_open(t, "user", MDB_CREATE, &h->main), "mdb_dbi_open");
    check(mdb_dbi_open(t, "user_by_name", MDB_CREATE, &h->index),
          "mdb_dbi_open");
    check(mdb_txn_commit(t), "mdb_txn_commit");
    check(mdb_txn_begin(h->env, NULL, MDB_RDONLY, &h->rtxn), "mdb_txn_begin");
    mdb_txn_reset(h->rtxn);
    return h;
}

static void lm_close(void *hp)
{
    lmdb_handle *h = hp;
    mdb_txn_abort(h->rtxn);
    mdb_env_close(h->env);
    free(h);
}

/* Index key: name | 0x00 | big-endian key.  Returns its length. */
static size_t index_key(const char *name, size_t nl, uint64_t key,
                        unsigned char *out)
{
    memcpy(out, name, nl);
    out[nl] = 0;
    bench_be64(key, out + nl + 1);
    return nl + 9;
}

static void put_record(lmdb_handle *h, MDB_txn *t, uint64_t key,
                       const char *name, const char *email, uint32_t age,
                       unsigned flags)
{
    unsigned char kb[8], vb[BENCH_VALUE_MAX], ib[BENCH_NAME_MAX + 9];
    bench_be64(key, kb);
    MDB_val k = {8, kb}, v = {bench_pack(name, email, age, vb), vb};
    check(mdb_put(t, h->main, &k, &v, flags), "mdb_put user");
    MDB_val ik = {index_key(name, strlen(name), key, ib), ib}, none = {0, ""};
    check(mdb_put(t, h->index, &ik, &none, 0), "mdb_put user_by_name");
}

static void lm_load(void *hp, const bench_user *u, size_t first, size_t n,
                    size_t txn_size, bench_result *r)
{
    lmdb_handle *h = hp;
    n += first;
    for (size_t i = first; i < n; i += txn_size) {
        MDB_txn *t;
        check(mdb_txn_begin(h->env, NULL, 0, &t), "mdb_txn_begin");
        for (size_t j = i; j < n && j < i + txn_size; j++) {
            put_record(h, t, j + 1, u[j].name, u[j].email, u[j].age,
                       MDB_APPEND);
            r->rows++;
            r->sum += j + 1;
        }
        check(mdb_txn_commit(t), "mdb_txn_commit");
    }
}

/* The read transaction, renewed every BENCH_READ_BATCH operations. */
static MDB_txn *read_txn(lmdb_handle *h, size_t i)
{
    if (i % BENCH_READ_BATCH == 0) {
        if (i)
            mdb_txn_reset(h->rtxn);
        check(mdb_txn_renew(h->rtxn), "mdb_txn_renew");
    }
    return h->rtxn;
}

/* The read transaction for operation i and a cursor on dbi in it (*c is
 * opened on the first operation, renewed with the transaction). */
static MDB_txn *read_cursor(lmdb_handle *h, size_t i, MDB_dbi dbi,
                            MDB_cursor **c)
{
    MDB_txn *t = read_txn(h, i);
    if (!*c)
        check(mdb_cursor_open(t, dbi, c), "mdb_cursor_open");
    else if (i % BENCH_READ_BATCH == 0)
        check(mdb_cursor_renew(t, *c), "mdb_cursor_renew");
    return t;
}

static void end_reads(lmdb_handle *h, MDB_cursor *c)
{
    mdb_cursor_close(c);
    mdb_txn_reset(h->rtxn);
}

static void fetch(lmdb_handle *h, MDB_txn *t, uint64_t key, bench_result *r)
{
    unsigned char kb[8];
    bench_be64(key, kb);
    MDB_val k = {8, kb}, v;
    check(mdb_get(t, h->main, &k, &v), "mdb_get");
    bench_row row;
    bench_unpack(v.mv_data, v.mv_size, key, &row, r);
}

static void lm_get(void *hp, const uint64_t *keys, size_t n, bench_result *r)
{
    lmdb_handle *h = hp;
    for (size_t i = 0; i < n; i++)
        fetch(h, read_txn(h, i), keys[i], r);
    mdb_txn_reset(h->rtxn);
}

static void lm_by_name(void *hp, const char *const *names, size_t n,
                       bench_result *r)
{
    lmdb_handle *h = hp;
    MDB_cursor *c = NULL;
    for (size_t i = 0; i < n; i++) {
        MDB_txn *t = read_cursor(h, i, h->index, &c);
        size_t nl = strlen(names[i]);
        unsigned char prefix[BENCH_NAME_MAX + 1];
        memcpy(prefix, names[i], nl);
        prefix[nl] = 0;
        MDB_val k = {nl + 1, prefix}, v;
        int rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
        while (rc == 0 && k.mv_size == nl + 9 &&
               !memcmp(k.mv_data, prefix, nl + 1)) {
            fetch(h, t, bench_get_be64((unsigned char *)k.mv_data + nl + 1),
                  r);
            rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
        }
        if (rc && rc != MDB_NOTFOUND)
            check(rc, "mdb_cursor_get");
    }
    end_reads(h, c);
}

static void lm_scan(void *hp, const uint64_t *starts, size_t n, size_t len,
                    bench_result *r)
{
    lmdb_handle *h = hp;
    MDB_cursor *c = NULL;
    for (size_t i = 0; i < n; i++) {
        read_cursor(h, i, h->main, &c);
        unsigned char kb[8];
        bench_be64(starts[i], kb);
        MDB_val k = {8, kb}, v;
        int rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
        for (; rc == 0; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
            uint64_t key = bench_get_be64(k.mv_data);
            if (key >= starts[i] + len)
                break;
            bench_row row;
            bench_unpack(v.mv_data, v.mv_size, key, &row, r);
        }
        if (rc && rc != MDB_NOTFOUND)
            check(rc, "mdb_cursor_get");
    }
    end_reads(h, c);
}

/* Read the old record (its name finds the old index entry), rewrite both. */
static void lm_rename(void *hp, const uint64_t *keys, const char *const *names,
                      size_t n, size_t txn_size, bench_result *r)
{
    lmdb_handle *h = hp;
    for (size_t i = 0; i < n; i += txn_size) {
        MDB_txn *t;
        check(mdb_txn_begin(h->env, NULL, 0, &t), "mdb_txn_begin");
        for (size_t j = i; j < n && j < i + txn_size; j++) {
            bench_row old;
            unsigned char kb[8], ib[BENCH_NAME_MAX + 9];
            bench_be64(keys[j], kb);
            MDB_val k = {8, kb}, v;
            check(mdb_get(t, h->main, &k, &v), "mdb_get");
            bench_result seen = {0, 0};
            bench_unpack(v.mv_data, v.mv_size, keys[j], &old, &seen);
            MDB_val ik = {index_key(old.name, strlen(old.name), keys[j], ib), ib};
            check(mdb_del(t, h->index, &ik, NULL), "mdb_del user_by_name");
            put_record(h, t, keys[j], names[j], old.email, old.age, 0);
            r->rows++;
            r->sum += keys[j];
        }
        check(mdb_txn_commit(t), "mdb_txn_commit");
    }
}

static void lm_remove(void *hp, const uint64_t *keys, size_t n,
                      size_t txn_size, bench_result *r)
{
    lmdb_handle *h = hp;
    for (size_t i = 0; i < n; i += txn_size) {
        MDB_txn *t;
        check(mdb_txn_begin(h->env, NULL, 0, &t), "mdb_txn_begin");
        for (size_t j = i; j < n && j < i + txn_size; j++) {
            unsigned char kb[8], ib[BENCH_NAME_MAX + 9];
            bench_be64(keys[j], kb);
            MDB_val k = {8, kb}, v;
            check(mdb_get(t, h->main, &k, &v), "mdb_get");
            const unsigned char *p = v.mv_data;
            MDB_val ik = {index_key((const char *)p + BENCH_NAME_AT, p[4],
                                    keys[j], ib),
                          ib};
            check(mdb_del(t, h->index, &ik, NULL), "mdb_del user_by_name");
            check(mdb_del(t, h->main, &k, NULL), "mdb_del user");
            r->rows++;
            r->sum += keys[j];
        }
        check(mdb_txn_commit(t), "mdb_txn_commit");
    }
}

static const char *lm_version(void)
{
    return mdb_version(NULL, NULL, NULL);
}

const bench_engine bench_lmdb = {"lmdb", NULL, true, true, lm_version,
                                 lm_open, lm_close, lm_load, lm_get,
                                 lm_by_name, lm_scan, lm_rename, lm_remove,
                                 NULL};
