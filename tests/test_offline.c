/*
 * Offline reads in the layered storage (kivis/layered.h, "Offline"): a
 * memory cache and a memory mirror over PostgreSQL (a private server,
 * pgserver.h) whose server is stopped in the middle of the run.  While it
 * is down, the cache and the mirror answer reads, scans included, and each
 * answer is counted as offline; a key no tier holds is KIVIS_EUNAVAILABLE
 * without a mirror; writes fail with KIVIS_EUNAVAILABLE and change no tier;
 * the server is tried again only every offline_retry_ms.  When it is back,
 * another client's writes made meanwhile reach the cache, the negative
 * cache and the mirror: through the resumed feed, or, when the change log
 * was trimmed, through a resync.  Last, the record engine over the same
 * stack: kivis_get and an index scan while the server is down.
 */
#include "testutil.h"
#include "pgserver.h"
#include "petsutil.h"

#include <kivis.h>
#include <kivis/layered.h>
#include <kivis/memory.h>
#include <kivis/postgres.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RETRY_MS 300

typedef struct fx {
    kivis_storage *stack;   /* cache + mirror over PostgreSQL */
    kivis_storage *cache;   /* its tier 0 (bounded memory) */
    kivis_storage *mirror;  /* its tier 1 (memory, KIVIS_TIER_MIRROR) */
    kivis_storage *bare;    /* a cache over PostgreSQL, no mirror */
    kivis_storage *other;   /* another client of the same table */
} fx;

static const kivis_postgres_options table = {NULL, NULL, "offline_kv", 0};

static kivis_storage *postgres(void)
{
    kivis_storage *pg;
    assert_int_equal(kivis_postgres_open(kt_pg_start(), &table, &pg), KIVIS_OK);
    return pg;
}

/* Memory tiers (a bounded cache, then an optional mirror) over a new
 * PostgreSQL client; retry_ms as offline_retry_ms. */
static kivis_storage *stack(kivis_storage **cache, kivis_storage **mirror,
                            int retry_ms)
{
    kivis_layered_tier tiers[3];
    size_t n = 0;
    assert_int_equal(kivis_memory_open(NULL, cache), KIVIS_OK);
    tiers[n++] = (kivis_layered_tier){*cache, 1u << 20, 0};
    if (mirror) {
        assert_int_equal(kivis_memory_open(NULL, mirror), KIVIS_OK);
        tiers[n++] = (kivis_layered_tier){*mirror, 0, KIVIS_TIER_MIRROR};
    }
    tiers[n++] = (kivis_layered_tier){postgres(), 0, 0};
    kivis_layered_options lo = {NULL, 64, 0, retry_ms};
    kivis_storage *st;
    assert_int_equal(kivis_layered_open(tiers, n, &lo, &st), KIVIS_OK);
    return st;
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    kt_pg_exec("DROP TABLE IF EXISTS offline_kv CASCADE");
    f->stack = stack(&f->cache, &f->mirror, RETRY_MS);
    kivis_storage *bare_cache;
    f->bare = stack(&bare_cache, NULL, -1); /* tries at every begin */
    f->other = postgres();
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    assert_int_equal(kivis_storage_close(f->stack), KIVIS_OK);
    assert_int_equal(kivis_storage_close(f->bare), KIVIS_OK);
    assert_int_equal(kivis_storage_close(f->other), KIVIS_OK);
    free(f);
    return 0;
}

static kivis_slice str(const char *s)
{
    return kivis_slice_make(s, strlen(s));
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* One write transaction: put k = v, or delete k when v is NULL.
 * @return the commit's status (the begin's if it failed). */
static int write1(kivis_storage *st, const char *k, const char *v)
{
    kivis_storage_txn *t;
    int rc = kivis_storage_begin(st, 0, &t);
    if (rc != KIVIS_OK)
        return rc;
    rc = v ? kivis_txn_put(t, str(k), str(v)) : kivis_txn_del(t, str(k));
    assert_true(rc == KIVIS_OK || rc == KIVIS_NOTFOUND);
    return kivis_txn_commit(t, KIVIS_SYNC);
}

/* k's value in txn into buf ("" when missing); the get's status. */
static int get_in(kivis_storage_txn *t, const char *k, char buf[64])
{
    kivis_slice v;
    int rc = kivis_txn_get(t, str(k), &v);
    assert_true(v.len < 64);
    memcpy(buf, rc == KIVIS_OK ? v.data : "", rc == KIVIS_OK ? v.len : 0);
    buf[rc == KIVIS_OK ? v.len : 0] = '\0';
    return rc;
}

/* k's value in a read transaction of st ("" when missing). */
static const char *get(kivis_storage *st, const char *k, char buf[64])
{
    kivis_storage_txn *t;
    assert_int_equal(kivis_storage_begin(st, KIVIS_TXN_RDONLY, &t), KIVIS_OK);
    int rc = get_in(t, k, buf);
    assert_true(rc == KIVIS_OK || rc == KIVIS_NOTFOUND);
    kivis_txn_abort(t);
    return buf;
}

/* The keys of a scan over everything in txn, "k1 k2 ...". */
static int scan_keys(kivis_storage_txn *t, char *out, size_t cap)
{
    kivis_storage_cursor *c;
    kivis_slice k, v, none = {NULL, 0};
    int rc = kivis_txn_cursor(t, none, none, &c);
    out[0] = '\0';
    if (rc != KIVIS_OK)
        return rc;
    while ((rc = kivis_cursor_get(c, KIVIS_NEXT, &k, &v)) == KIVIS_OK) {
        size_t len = strlen(out);
        snprintf(out + len, cap - len, "%s%.*s", len ? " " : "", (int)k.len,
                 (const char *)k.data);
    }
    kivis_cursor_close(c);
    return rc == KIVIS_NOTFOUND ? KIVIS_OK : rc;
}

static kivis_layered_offline_stats offline_stats(kivis_storage *st)
{
    kivis_layered_offline_stats s;
    assert_int_equal(kivis_layered_offline_stats_get(st, &s), KIVIS_OK);
    return s;
}

static kivis_layered_feed_stats feed_stats(kivis_storage *st)
{
    kivis_layered_feed_stats s;
    assert_int_equal(kivis_layered_feed_stats_get(st, &s), KIVIS_OK);
    return s;
}

/* k1..k5 = v1..v5 through the stack; k1 and k2 read into both caches,
 * "nk" remembered missing by the bare one. */
static void populate(fx *f)
{
    char buf[64], k[8], v[8];
    for (int i = 1; i <= 5; i++) {
        snprintf(k, sizeof k, "k%d", i);
        snprintf(v, sizeof v, "v%d", i);
        assert_int_equal(write1(f->stack, k, v), KIVIS_OK);
    }
    for (int i = 0; i < 2; i++) { /* the second read of each is a hit */
        assert_string_equal(get(f->stack, "k1", buf), "v1");
        assert_string_equal(get(f->bare, "k1", buf), "v1");
        assert_string_equal(get(f->bare, "k2", buf), "v2");
        assert_string_equal(get(f->bare, "nk", buf), "");
    }
    kivis_layered_tier_stats ts;
    assert_int_equal(kivis_layered_stats(f->bare, 0, &ts), KIVIS_OK);
    assert_int_equal(ts.entries, 2);
    kivis_layered_negative_stats ns;
    assert_int_equal(kivis_layered_negative_stats_get(f->bare, &ns), KIVIS_OK);
    assert_int_equal(ns.entries, 1);
}

/* The stack with its mirror, offline: the cache and the mirror answer,
 * scans included, and every answer is counted. */
static void read_stack_offline(fx *f)
{
    char buf[64], keys[128];
    kivis_layered_offline_stats before = offline_stats(f->stack);
    kivis_storage_txn *t;
    assert_int_equal(kivis_storage_begin(f->stack, KIVIS_TXN_RDONLY, &t), KIVIS_OK);
    assert_int_equal(kivis_layered_txn_offline(t), 1);
    assert_int_equal(get_in(t, "k1", buf), KIVIS_OK); /* the cache */
    assert_string_equal(buf, "v1");
    assert_int_equal(get_in(t, "k3", buf), KIVIS_OK); /* the mirror */
    assert_string_equal(buf, "v3");
    assert_int_equal(get_in(t, "zz", buf), KIVIS_NOTFOUND); /* the mirror's miss */
    assert_int_equal(scan_keys(t, keys, sizeof keys), KIVIS_OK);
    assert_string_equal(keys, "k1 k2 k3 k4 k5");
    kivis_txn_abort(t);
    kivis_layered_offline_stats s = offline_stats(f->stack);
    assert_int_equal(s.offline, 1);
    assert_int_equal(s.answers - before.answers, 4);
    assert_int_equal(s.unavailable, 0);
}

/* The stack without a mirror, offline: what the cache and the negative
 * cache hold is answered, the rest (a get, a scan) is unavailable. */
static void read_bare_offline(fx *f)
{
    char buf[64], keys[128];
    kivis_storage_txn *t;
    assert_int_equal(kivis_storage_begin(f->bare, KIVIS_TXN_RDONLY, &t), KIVIS_OK);
    assert_int_equal(kivis_layered_txn_offline(t), 1);
    assert_int_equal(get_in(t, "k2", buf), KIVIS_OK);
    assert_string_equal(buf, "v2");
    assert_int_equal(get_in(t, "nk", buf), KIVIS_NOTFOUND); /* negative cache */
    assert_int_equal(get_in(t, "k3", buf), KIVIS_EUNAVAILABLE);
    assert_int_equal(scan_keys(t, keys, sizeof keys), KIVIS_EUNAVAILABLE);
    kivis_txn_abort(t);
    kivis_layered_offline_stats s = offline_stats(f->bare);
    assert_int_equal(s.answers, 2);
    assert_int_equal(s.unavailable, 2);
    assert_int_equal(s.transactions, 1);
}

/* Writes fail with KIVIS_EUNAVAILABLE and leave every tier as it was:
 * a write begun before the server went down at its commit, later ones at
 * their begin; the other client cannot write either. */
static void writes_refused(fx *f, kivis_storage_txn *begun_online)
{
    char *cache = kt_dump(f->cache), *mirror = kt_dump(f->mirror);
    kivis_layered_tier_stats ts0, ts1;
    assert_int_equal(kivis_layered_stats(f->stack, 1, &ts0), KIVIS_OK);
    assert_int_equal(kivis_txn_commit(begun_online, KIVIS_SYNC), KIVIS_EUNAVAILABLE);
    assert_int_equal(write1(f->stack, "k1", "lost"), KIVIS_EUNAVAILABLE);
    assert_int_equal(write1(f->stack, "k9", NULL), KIVIS_EUNAVAILABLE);
    assert_int_equal(write1(f->other, "k1", "lost"), KIVIS_EUNAVAILABLE);
    assert_int_equal(kivis_layered_stats(f->stack, 1, &ts1), KIVIS_OK);
    assert_int_equal(ts1.updates, ts0.updates);
    assert_int_equal(ts1.invalidations, ts0.invalidations);
    char *cache2 = kt_dump(f->cache), *mirror2 = kt_dump(f->mirror);
    assert_string_equal(cache2, cache);
    assert_string_equal(mirror2, mirror);
    free(cache);
    free(mirror);
    free(cache2);
    free(mirror2);
    assert_true(offline_stats(f->stack).refused_writes >= 2);
}

/* While offline the server is tried at most every RETRY_MS: begins in
 * between do not try it (or, at -1, every begin does). */
static void retries_paced(fx *f)
{
    char buf[64];
    sleep_ms(RETRY_MS + 50);
    uint64_t tried = offline_stats(f->stack).retries;
    for (int i = 0; i < 5; i++)
        assert_string_equal(get(f->stack, "k1", buf), "v1");
    assert_int_equal(offline_stats(f->stack).retries, tried + 1);
    tried = offline_stats(f->bare).retries;
    for (int i = 0; i < 5; i++)
        assert_string_equal(get(f->bare, "k1", buf), "v1");
    assert_int_equal(offline_stats(f->bare).retries, tried + 5);
}

/* What the other client wrote while the stack was away, seen by every
 * tier once it is back: the cache, the negative cache and the mirror. */
static void caught_up(fx *f)
{
    char buf[64], keys[128];
    kivis_storage_txn *t;
    sleep_ms(RETRY_MS + 50); /* the next begin tries again */
    assert_int_equal(kivis_storage_begin(f->stack, KIVIS_TXN_RDONLY, &t), KIVIS_OK);
    assert_int_equal(kivis_layered_txn_offline(t), 0);
    assert_int_equal(get_in(t, "k1", buf), KIVIS_OK);
    assert_string_equal(buf, "v1b");
    assert_int_equal(get_in(t, "k3", buf), KIVIS_NOTFOUND);
    assert_int_equal(get_in(t, "k6", buf), KIVIS_OK);
    assert_string_equal(buf, "v6");
    assert_int_equal(scan_keys(t, keys, sizeof keys), KIVIS_OK); /* the mirror */
    assert_string_equal(keys, "k1 k2 k4 k5 k6 nk");
    kivis_txn_abort(t);
    assert_string_equal(get(f->mirror, "k1", buf), "v1b");
    assert_string_equal(get(f->mirror, "k3", buf), "");
    assert_string_equal(get(f->bare, "k1", buf), "v1b");
    assert_string_equal(get(f->bare, "nk", buf), "new");
    kivis_layered_offline_stats s = offline_stats(f->stack);
    assert_int_equal(s.offline, 0);
    assert_int_equal(s.outages, 1);
    assert_int_equal(s.recoveries, 1);
    /* and writes go through again */
    assert_int_equal(write1(f->stack, "k2", "v2b"), KIVIS_OK);
    assert_string_equal(get(f->stack, "k2", buf), "v2b");
}

/* Another client's writes while our stack has not yet come back. */
static void other_writes(fx *f)
{
    assert_int_equal(write1(f->other, "k1", "v1b"), KIVIS_OK);
    assert_int_equal(write1(f->other, "k3", NULL), KIVIS_OK);
    assert_int_equal(write1(f->other, "k6", "v6"), KIVIS_OK);
    assert_int_equal(write1(f->other, "nk", "new"), KIVIS_OK);
}

static void test_offline_then_the_feed_resumes(void **state)
{
    fx *f = *state;
    populate(f);
    kivis_storage_txn *w;
    assert_int_equal(kivis_storage_begin(f->stack, 0, &w), KIVIS_OK);
    assert_int_equal(kivis_txn_put(w, str("k4"), str("lost")), KIVIS_OK);

    kt_pg_stop(false);
    read_stack_offline(f);
    read_bare_offline(f);
    writes_refused(f, w);
    retries_paced(f);

    kt_pg_resume();
    other_writes(f);
    uint64_t changes = feed_stats(f->stack).changes;
    caught_up(f);
    kivis_layered_feed_stats fs = feed_stats(f->stack);
    assert_int_equal(fs.resyncs, 0);
    assert_true(fs.changes >= changes + 4);
    assert_int_equal(fs.outages, 1);
    assert_int_equal(offline_stats(f->stack).resumed, 1);
    assert_int_equal(offline_stats(f->bare).recoveries, 1);
    assert_int_equal(offline_stats(f->bare).resumed, 1);
}

/* The change log trimmed while the stack was away: the feed resumes with
 * a gap, so the caches are emptied and the mirror copied again.  Before
 * that, an invalidate while the server is down empties the cache but
 * leaves the mirror, which it cannot copy, answering. */
static void test_offline_then_a_resync(void **state)
{
    fx *f = *state;
    populate(f);
    kt_pg_stop(true);
    read_stack_offline(f);
    assert_int_equal(kivis_layered_invalidate(f->stack), KIVIS_EUNAVAILABLE);
    kivis_layered_tier_stats ts;
    assert_int_equal(kivis_layered_stats(f->stack, 0, &ts), KIVIS_OK);
    assert_int_equal(ts.entries, 0);
    assert_int_equal(kivis_layered_stats(f->stack, 1, &ts), KIVIS_OK);
    assert_int_equal(ts.usable, 1);
    read_stack_offline(f); /* k1 from the mirror now */
    kt_pg_resume();
    other_writes(f);
    kt_pg_exec("UPDATE offline_kv_feed SET keep_rows = 0");
    kt_pg_exec("SELECT offline_kv_feed_trim()");
    caught_up(f);
    assert_int_equal(feed_stats(f->stack).resyncs, 1);
    assert_int_equal(offline_stats(f->stack).resumed, 0);
    assert_int_equal(feed_stats(f->bare).resyncs, 1);
}

/* The record engine over the stack: kivis_get and an index scan answer
 * while the server is down (counted offline), kivis_put is refused. */
static void test_records_offline(void **state)
{
    fx *f = *state;
    kivis_db *db;
    kivis_options o = {NULL, KIVIS_SYNC, NULL, 0, 0, NULL, NULL, NULL};
    assert_int_equal(kivis_open(f->stack, &pets_schema, &o, &db), KIVIS_OK);
    user_key k = kt_put_user(db, "ada", 36);
    kt_put_user(db, "bob", 41);

    kt_pg_stop(false);
    uint64_t answers = offline_stats(f->stack).answers;
    user u;
    assert_int_equal(kivis_get(db, PETS_USER, &k, &u), KIVIS_OK);
    assert_string_equal(u.name, "ada");
    kivis_record_clear(db, PETS_USER, &u);
    assert_int_equal(kt_users_named(db, "bob"), 1);
    assert_true(offline_stats(f->stack).answers > answers);
    user nu = {(char *)"cy", (char *)"x@example.org", 7};
    user_key nk;
    assert_int_equal(kivis_put(db, PETS_USER, &nu, &nk), KIVIS_EUNAVAILABLE);
    assert_int_equal(kt_users_named(db, "cy"), 0);

    kt_pg_resume();
    sleep_ms(RETRY_MS + 50);
    kt_put_user(db, "cy", 7);
    assert_int_equal(kt_users_named(db, "cy"), 1);
    assert_int_equal(offline_stats(f->stack).offline, 0);
    kivis_close(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_offline_then_the_feed_resumes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_offline_then_a_resync, setup, teardown),
        cmocka_unit_test_setup_teardown(test_records_offline, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
