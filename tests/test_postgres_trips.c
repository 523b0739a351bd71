/*
 * test_postgres_trips.c - the PostgreSQL backend's round trips, counted by
 * kivis_postgres_round_trips on a private server (tests/support/pgserver.h):
 * what kivis/postgres.h promises a get, a commit and a cursor cost, the
 * figures the benchmark's PostgreSQL table rests on (docs/bench.md).
 */
#include "pgserver.h"
#include "testutil.h"

#include <kivis/postgres.h>

#include <stdio.h>
#include <string.h>

#define KEYS 1000

static unsigned long long mark;

/* Round trips since the last call. */
static unsigned long long trips(void)
{
    unsigned long long now = kivis_postgres_round_trips(), d = now - mark;
    mark = now;
    return d;
}

static kivis_slice key_of(unsigned i, unsigned char buf[3])
{
    buf[0] = 'k';
    buf[1] = (unsigned char)(i >> 8);
    buf[2] = (unsigned char)i;
    return kivis_slice_make(buf, 3);
}

/* A fresh table holding keys 0..KEYS-1 ("k" and two bytes big-endian),
 * written by one transaction: its commit is one round trip. */
static kivis_storage *filled(const char *table)
{
    char sql[120];
    snprintf(sql, sizeof sql, "DROP TABLE IF EXISTS %s", table);
    kt_pg_exec(sql);
    kivis_postgres_options o = {NULL, NULL, table, 0};
    kivis_storage *st = NULL;
    assert_int_equal(kivis_postgres_open(kt_pg_start(), &o, &st), KIVIS_OK);
    kivis_storage_txn *t;
    trips();
    assert_int_equal(kivis_storage_begin(st, 0, &t), KIVIS_OK);
    for (unsigned i = 0; i < KEYS; i++) {
        unsigned char k[3];
        assert_int_equal(kivis_txn_put(t, key_of(i, k), kivis_slice_make("value", 5)),
                         KIVIS_OK);
    }
    assert_int_equal(trips(), 0);
    assert_int_equal(kivis_txn_commit(t, KIVIS_NOSYNC), KIVIS_OK);
    assert_int_equal(trips(), 1);
    return st;
}

/* A get is one round trip, BEGIN included; the same key (found or not)
 * again is answered from the transaction's cache; ending a read-only
 * transaction does not wait. */
static void test_get_round_trips(void **state)
{
    (void)state;
    kivis_storage *st = filled("trips_get");
    kivis_storage_txn *t;
    kivis_slice v;
    unsigned char k[3];
    assert_int_equal(kivis_storage_begin(st, KIVIS_TXN_RDONLY, &t), KIVIS_OK);
    assert_int_equal(trips(), 0);
    assert_int_equal(kivis_txn_get(t, key_of(7, k), &v), KIVIS_OK);
    assert_int_equal(trips(), 1);
    assert_int_equal(kivis_txn_get(t, key_of(7, k), &v), KIVIS_OK);
    assert_int_equal(kivis_txn_get(t, kivis_slice_make("zz", 2), &v), KIVIS_NOTFOUND);
    assert_int_equal(kivis_txn_get(t, kivis_slice_make("zz", 2), &v), KIVIS_NOTFOUND);
    assert_int_equal(trips(), 1);
    assert_int_equal(kivis_txn_commit(t, KIVIS_SYNC), KIVIS_OK);
    assert_int_equal(trips(), 0);
    /* a del after a get of its key asks nothing more */
    assert_int_equal(kivis_storage_begin(st, 0, &t), KIVIS_OK);
    assert_int_equal(kivis_txn_get(t, key_of(8, k), &v), KIVIS_OK);
    assert_int_equal(kivis_txn_del(t, key_of(8, k)), KIVIS_OK);
    assert_int_equal(trips(), 1);
    assert_int_equal(kivis_txn_commit(t, KIVIS_NOSYNC), KIVIS_OK);
    assert_int_equal(trips(), 1);
    kivis_storage_close(st);
}

/* Walk [lo, hi) over `n` keys from key `from`: every key once, in order. */
static void walk(kivis_storage *st, unsigned from, unsigned n)
{
    kivis_storage_txn *t;
    kivis_storage_cursor *c;
    unsigned char lo[3], hi[3];
    assert_int_equal(kivis_storage_begin(st, KIVIS_TXN_RDONLY, &t), KIVIS_OK);
    assert_int_equal(kivis_txn_cursor(t, key_of(from, lo), key_of(from + n, hi), &c),
                     KIVIS_OK);
    kivis_slice k, v;
    unsigned seen = 0;
    for (int op = KIVIS_FIRST; kivis_cursor_get(c, op, &k, &v) == KIVIS_OK;
         op = KIVIS_NEXT) {
        unsigned char want[3];
        kivis_slice w = key_of(from + seen++, want);
        assert_memory_equal(k.data, w.data, 3);
    }
    assert_int_equal(seen, n);
    kivis_cursor_close(c);
    kivis_txn_abort(t);
}

/* A cursor's first page is small (a seek that reads one key costs one
 * round trip and little else); the pages after it grow fast enough that a
 * walk over 1,000 keys takes 3 round trips, not the 6 that doubling from
 * 16 would. */
static void test_cursor_round_trips(void **state)
{
    (void)state;
    kivis_storage *st = filled("trips_cursor");
    walk(st, 100, 10);
    assert_int_equal(trips(), 1);
    walk(st, 0, KEYS);
    assert_int_equal(trips(), 3);
    kivis_storage_close(st);
}

int main(void)
{
    kt_pg_start();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_round_trips),
        cmocka_unit_test(test_cursor_round_trips),
    };
    return cmocka_run_group_tests_name("postgres_trips", tests, NULL, NULL);
}
