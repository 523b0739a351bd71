/*
 * bench/engines/eng_bdb.c - Berkeley DB 5.3 as an expert would use it: a
 * btree primary (8-byte big-endian key -> packed record) and a sorted-
 * duplicates btree secondary on name kept by DB->associate, in a
 * transactional environment (private regions, 256 MiB cache, 16 MiB log
 * buffer, old logs removed automatically).
 *
 * Throughput runs set DB_TXN_NOSYNC; durable ones flush the log at every
 * commit (the default).  Writes run in transactions of txn_size records;
 * reads run outside transactions (each call is atomic on its own, the usual
 * Berkeley DB read path; locking still applies).
 */
#define _DEFAULT_SOURCE /* u_int32_t and friends in <db.h> */
#include "bench.h"

#include <db.h>

#include <stdlib.h>
#include <string.h>

typedef struct bdb_handle {
    DB_ENV *env;
    DB *main, *by_name;
} bdb_handle;

static void check(int rc, const char *what)
{
    if (rc)
        bench_die("bdb", what, db_strerror(rc));
}

/* The secondary key: the name inside the packed record. */
static int name_of(DB *sec, const DBT *pkey, const DBT *pdata, DBT *skey)
{
    (void)sec;
    (void)pkey;
    const unsigned char *p = pdata->data;
    memset(skey, 0, sizeof *skey);
    skey->data = (void *)(p + BENCH_NAME_AT);
    skey->size = p[4];
    return 0;
}

static DBT dbt(const void *data, size_t size)
{
    DBT d;
    memset(&d, 0, sizeof d);
    d.data = (void *)data;
    d.size = (u_int32_t)size;
    return d;
}

static void *bdb_open(const void *arg, const char *dir, size_t n,
                      bool durable)
{
    (void)arg;
    (void)n;
    bdb_handle *h = calloc(1, sizeof *h);
    if (!h)
        bench_die("bdb", "open", "out of memory");
    check(db_env_create(&h->env, 0), "db_env_create");
    DB_ENV *e = h->env;
    check(e->set_cachesize(e, 0, 256u << 20, 1), "set_cachesize");
    check(e->set_lk_max_locks(e, 100000), "set_lk_max_locks");
    check(e->set_lk_max_objects(e, 100000), "set_lk_max_objects");
    check(e->set_lk_max_lockers(e, 10000), "set_lk_max_lockers");
    check(e->set_lg_bsize(e, 16u << 20), "set_lg_bsize");
    check(e->log_set_config(e, DB_LOG_AUTO_REMOVE, 1), "log_set_config");
    if (!durable)
        check(e->set_flags(e, DB_TXN_NOSYNC, 1), "set_flags");
    check(e->open(e, dir,
                  DB_CREATE | DB_PRIVATE | DB_INIT_TXN | DB_INIT_LOCK |
                      DB_INIT_LOG | DB_INIT_MPOOL,
                  0),
          "DB_ENV->open");
    check(db_create(&h->main, e, 0), "db_create");
    check(h->main->open(h->main, NULL, "user.db", NULL, DB_BTREE,
                        DB_CREATE | DB_AUTO_COMMIT, 0644),
          "DB->open user");
    check(db_create(&h->by_name, e, 0), "db_create");
    check(h->by_name->set_flags(h->by_name, DB_DUPSORT), "set_flags");
    check(h->by_name->open(h->by_name, NULL, "user_by_name.db", NULL, DB_BTREE,
                           DB_CREATE | DB_AUTO_COMMIT, 0644),
          "DB->open user_by_name");
    check(h->main->associate(h->main, NULL, h->by_name, name_of, 0),
          "DB->associate");
    return h;
}

static void bdb_close(void *hp)
{
    bdb_handle *h = hp;
    check(h->by_name->close(h->by_name, 0), "DB->close");
    check(h->main->close(h->main, 0), "DB->close");
    check(h->env->close(h->env, 0), "DB_ENV->close");
    free(h);
}

static DB_TXN *begin(bdb_handle *h)
{
    DB_TXN *t;
    check(h->env->txn_begin(h->env, NULL, &t, 0), "txn_begin");
    return t;
}

static void put_record(bdb_handle *h, DB_TXN *t, uint64_t key,
                       const char *name, const char *email, uint32_t age)
{
    unsigned char kb[8], vb[BENCH_VALUE_MAX];
    bench_be64(key, kb);
    DBT k = dbt(kb, 8), v = dbt(vb, bench_pack(name, email, age, vb));
    check(h->main->put(h->main, t, &k, &v, 0), "DB->put");
}

static void bdb_load(void *hp, const bench_user *u, size_t first, size_t n,
                     size_t txn_size, bench_result *r)
{
    bdb_handle *h = hp;
    n += first;
    for (size_t i = first; i < n; i += txn_size) {
        DB_TXN *t = begin(h);
        for (size_t j = i; j < n && j < i + txn_size; j++) {
            put_record(h, t, j + 1, u[j].name, u[j].email, u[j].age);
            r->rows++;
            r->sum += j + 1;
        }
        check(t->commit(t, 0), "DB_TXN->commit");
    }
}

static void bdb_get(void *hp, const uint64_t *keys, size_t n, bench_result *r)
{
    bdb_handle *h = hp;
    for (size_t i = 0; i < n; i++) {
        unsigned char kb[8];
        bench_be64(keys[i], kb);
        DBT k = dbt(kb, 8), v = dbt(NULL, 0);
        check(h->main->get(h->main, NULL, &k, &v, 0), "DB->get");
        bench_row row;
        bench_unpack(v.data, v.size, keys[i], &row, r);
    }
}

static void bdb_by_name(void *hp, const char *const *names, size_t n,
                        bench_result *r)
{
    bdb_handle *h = hp;
    for (size_t i = 0; i < n; i++) {
        DBC *c;
        check(h->by_name->cursor(h->by_name, NULL, &c, 0), "DB->cursor");
        DBT sk = dbt(names[i], strlen(names[i])), pk = dbt(NULL, 0),
            v = dbt(NULL, 0);
        int rc = c->pget(c, &sk, &pk, &v, DB_SET);
        for (; rc == 0; rc = c->pget(c, &sk, &pk, &v, DB_NEXT_DUP)) {
            bench_row row;
            bench_unpack(v.data, v.size, bench_get_be64(pk.data), &row, r);
        }
        if (rc != DB_NOTFOUND)
            check(rc, "DBC->pget");
        check(c->close(c), "DBC->close");
    }
}

static void bdb_scan(void *hp, const uint64_t *starts, size_t n, size_t len,
                     bench_result *r)
{
    bdb_handle *h = hp;
    DBC *c;
    check(h->main->cursor(h->main, NULL, &c, 0), "DB->cursor");
    for (size_t i = 0; i < n; i++) {
        unsigned char kb[8];
        bench_be64(starts[i], kb);
        DBT k = dbt(kb, 8), v = dbt(NULL, 0);
        int rc = c->get(c, &k, &v, DB_SET_RANGE);
        for (; rc == 0; rc = c->get(c, &k, &v, DB_NEXT)) {
            uint64_t key = bench_get_be64(k.data);
            if (key >= starts[i] + len)
                break;
            bench_row row;
            bench_unpack(v.data, v.size, key, &row, r);
        }
        if (rc && rc != DB_NOTFOUND)
            check(rc, "DBC->get");
    }
    check(c->close(c), "DBC->close");
}

/* Read the record with a write lock, write it back with the new name; the
 * secondary follows through DB->associate. */
static void bdb_rename(void *hp, const uint64_t *keys, const char *const *names,
                       size_t n, size_t txn_size, bench_result *r)
{
    bdb_handle *h = hp;
    for (size_t i = 0; i < n; i += txn_size) {
        DB_TXN *t = begin(h);
        for (size_t j = i; j < n && j < i + txn_size; j++) {
            unsigned char kb[8];
            bench_be64(keys[j], kb);
            DBT k = dbt(kb, 8), v = dbt(NULL, 0);
            check(h->main->get(h->main, t, &k, &v, DB_RMW), "DB->get");
            bench_row old;
            bench_result seen = {0, 0};
            bench_unpack(v.data, v.size, keys[j], &old, &seen);
            put_record(h, t, keys[j], names[j], old.email, old.age);
            r->rows++;
            r->sum += keys[j];
        }
        check(t->commit(t, 0), "DB_TXN->commit");
    }
}

static void bdb_remove(void *hp, const uint64_t *keys, size_t n,
                       size_t txn_size, bench_result *r)
{
    bdb_handle *h = hp;
    for (size_t i = 0; i < n; i += txn_size) {
        DB_TXN *t = begin(h);
        for (size_t j = i; j < n && j < i + txn_size; j++) {
            unsigned char kb[8];
            bench_be64(keys[j], kb);
            DBT k = dbt(kb, 8);
            check(h->main->del(h->main, t, &k, 0), "DB->del");
            r->rows++;
            r->sum += keys[j];
        }
        check(t->commit(t, 0), "DB_TXN->commit");
    }
}

static const char *bdb_version(void)
{
    return db_version(NULL, NULL, NULL);
}

const bench_engine bench_bdb = {"bdb", NULL, true, false, bdb_version,
                                bdb_open, bdb_close, bdb_load, bdb_get,
                                bdb_by_name, bdb_scan, bdb_rename, bdb_remove,
                                NULL};
