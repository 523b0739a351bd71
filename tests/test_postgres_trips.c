/*
 * test_postgres_trips.c - the PostgreSQL backend's round trips, counted by
 * kivis_postgres_round_trips on a private server (tests/support/pgserver.h):
 * what kivis/postgres.h promises a get, a commit and a cursor cost, the
 * figures the benchmark's PostgreSQL table rests on (docs/bench.md).
 */
#include "petsutil.h"
#include "pgserver.h"
#include "testutil.h"

#include <kivis/faulty.h>
#include <kivis/layered.h>
#include <kivis/memory.h>
#include <kivis/postgres.h>

#include <stdio.h>
#include <string.h>
#include <time.h>

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
static const char *table_fresh(const char *table);

static kivis_storage *filled(const char *table)
{
    kivis_postgres_options o = {NULL, NULL, table_fresh(table), 0};
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

/* kivis_txn_cursor_follow: the entries of [lo, hi) are those of a plain
 * cursor, either way; going forward, each page brings the rows the
 * entries' tails name (after the prefix), so their gets, found or not,
 * ask nothing more; an entry shorter than the tail names nothing. */
static void test_cursor_follow_round_trips(void **state)
{
    (void)state;
    kivis_storage *st = filled("trips_follow");
    static const char *const entries[] = {"e", "e\x00\x05", "e\xff\xff"};
    kivis_storage_txn *t;
    assert_int_equal(kivis_storage_begin(st, 0, &t), KIVIS_OK);
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(kivis_txn_put(t, kivis_slice_make(entries[i], i ? 3 : 1),
                                       kivis_slice_make("", 0)),
                         KIVIS_OK);
    assert_int_equal(kivis_txn_commit(t, KIVIS_NOSYNC), KIVIS_OK);
    trips();
    assert_int_equal(kivis_storage_begin(st, KIVIS_TXN_RDONLY, &t), KIVIS_OK);
    kivis_storage_cursor *c;
    assert_int_equal(kivis_txn_cursor_follow(t, kivis_slice_make("e", 1),
                                             kivis_slice_make("f", 1),
                                             kivis_slice_make("k", 1), 2, &c),
                     KIVIS_OK);
    kivis_slice k, v;
    size_t seen = 0;
    for (int op = KIVIS_FIRST; kivis_cursor_get(c, op, &k, &v) == KIVIS_OK;
         op = KIVIS_NEXT, seen++) {
        assert_int_equal(k.len, seen ? 3 : 1);
        assert_memory_equal(k.data, entries[seen], k.len);
    }
    assert_int_equal(seen, 3);
    assert_int_equal(trips(), 1);
    assert_int_equal(kivis_txn_get(t, kivis_slice_make("k\x00\x05", 3), &v), KIVIS_OK);
    assert_int_equal(v.len, 5);
    assert_memory_equal(v.data, "value", 5);
    assert_int_equal(kivis_txn_get(t, kivis_slice_make("k\xff\xff", 3), &v), KIVIS_NOTFOUND);
    assert_int_equal(trips(), 0);
    assert_int_equal(kivis_cursor_get(c, KIVIS_LAST, &k, &v), KIVIS_OK);
    assert_memory_equal(k.data, entries[2], 3);
    assert_int_equal(kivis_cursor_get(c, KIVIS_PREV, &k, &v), KIVIS_OK);
    assert_memory_equal(k.data, entries[1], 3);
    kivis_cursor_close(c);
    kivis_txn_abort(t);
    kivis_storage_close(st);
}

/* A prefetch reads every key the transaction has not read yet in one
 * round trip, found or not; the gets after it ask nothing. */
static void test_prefetch_round_trips(void **state)
{
    (void)state;
    kivis_storage *st = filled("trips_prefetch");
    kivis_storage_txn *t;
    unsigned char b[5][3];
    kivis_slice keys[6] = {key_of(1, b[0]), key_of(2, b[1]), key_of(1, b[0]),
                           key_of(900, b[2]), kivis_slice_make("zz", 2),
                           key_of(3, b[3])};
    kivis_slice v;
    for (int write = 0; write < 2; write++) {
        assert_int_equal(kivis_storage_begin(st, write ? 0 : KIVIS_TXN_RDONLY, &t),
                         KIVIS_OK);
        assert_int_equal(kivis_txn_get(t, keys[5], &v), KIVIS_OK);
        assert_int_equal(trips(), 1);
        assert_int_equal(kivis_txn_prefetch(t, keys, 6), KIVIS_OK);
        assert_int_equal(trips(), 1);
        assert_int_equal(kivis_txn_prefetch(t, keys, 6), KIVIS_OK);
        for (int i = 0; i < 6; i++) {
            int rc = kivis_txn_get(t, keys[i], &v);
            assert_int_equal(rc, i == 4 ? KIVIS_NOTFOUND : KIVIS_OK);
            if (rc == KIVIS_OK)
                assert_memory_equal(v.data, "value", 5);
        }
        assert_int_equal(trips(), 0);
        kivis_txn_abort(t);
    }
    kivis_storage_close(st);
}

/* A layered stack's write transaction reads the authority (never a
 * cache), so its prefetch must ask the authority for every key, cached or
 * not: the gets that follow then cost nothing.  (It once left out the keys
 * a bounded tier held, and each of their gets was a round trip.) */
static void test_layered_write_prefetch(void **state)
{
    (void)state;
    enum { N = 8 };
    kivis_storage *mem;
    assert_int_equal(kivis_memory_open(NULL, &mem), KIVIS_OK);
    kivis_layered_tier tiers[2] = {{mem, 1u << 20, 0}, {filled("trips_layered"), 0, 0}};
    kivis_storage *st;
    assert_int_equal(kivis_layered_open(tiers, 2, NULL, &st), KIVIS_OK);
    unsigned char b[N][3];
    kivis_slice keys[N], v;
    for (unsigned i = 0; i < N; i++)
        keys[i] = key_of(i, b[i]);
    kivis_storage_txn *t;
    assert_int_equal(kivis_storage_begin(st, KIVIS_TXN_RDONLY, &t), KIVIS_OK);
    for (unsigned i = 0; i < N; i++) /* the memory tier now holds them */
        assert_int_equal(kivis_txn_get(t, keys[i], &v), KIVIS_OK);
    kivis_txn_abort(t);
    assert_int_equal(kivis_storage_begin(st, 0, &t), KIVIS_OK);
    trips();
    assert_int_equal(kivis_txn_prefetch(t, keys, N), KIVIS_OK);
    assert_int_equal(trips(), 1);
    for (unsigned i = 0; i < N; i++) {
        assert_int_equal(kivis_txn_get(t, keys[i], &v), KIVIS_OK);
        assert_memory_equal(v.data, "value", 5);
    }
    assert_int_equal(trips(), 0);
    kivis_txn_abort(t);
    kivis_storage_close(st);
}

/* A discard queues the delete without asking whether the key is there;
 * the commit deletes it (and a missing key stays missing). */
static void test_discard_round_trips(void **state)
{
    (void)state;
    kivis_storage *st = filled("trips_discard");
    kivis_storage_txn *t;
    unsigned char k[3];
    kivis_slice v;
    assert_int_equal(kivis_storage_begin(st, 0, &t), KIVIS_OK);
    assert_int_equal(kivis_txn_discard(t, key_of(5, k)), KIVIS_OK);
    assert_int_equal(kivis_txn_discard(t, kivis_slice_make("nothere", 7)), KIVIS_OK);
    assert_int_equal(trips(), 0);
    assert_int_equal(kivis_txn_get(t, key_of(5, k), &v), KIVIS_NOTFOUND);
    assert_int_equal(kivis_txn_commit(t, KIVIS_NOSYNC), KIVIS_OK);
    assert_int_equal(trips(), 1);
    assert_int_equal(kivis_storage_begin(st, KIVIS_TXN_RDONLY, &t), KIVIS_OK);
    assert_int_equal(kivis_txn_get(t, key_of(5, k), &v), KIVIS_NOTFOUND);
    assert_int_equal(kivis_txn_get(t, key_of(6, k), &v), KIVIS_OK);
    assert_int_equal(kivis_txn_get(t, kivis_slice_make("nothere", 7), &v), KIVIS_NOTFOUND);
    kivis_txn_abort(t);
    trips();
    kivis_storage_close(st);
}

/* `table` dropped, ready to be created again. */
static const char *table_fresh(const char *table)
{
    char sql[120];
    snprintf(sql, sizeof sql, "DROP TABLE IF EXISTS %s", table);
    kt_pg_exec(sql);
    return table;
}

/* The pets schema over a store on `table`, less the cascade of pet.owner:
 * with it, each user's remove also looks for her pets (a round trip of its
 * own), which is not what these counts are about. */
static kivis_db *pets_on(const char *table, kivis_storage **st)
{
    static kivis_table_desc tables[4]; /* the db keeps the descriptor */
    static kivis_schema_desc schema;
    schema = kt_pets_without_cascade(tables);
    kivis_postgres_options o = {NULL, NULL, table, 0};
    kivis_db *db = NULL;
    assert_int_equal(kivis_postgres_open(kt_pg_start(), &o, st), KIVIS_OK);
    assert_int_equal(kivis_open(*st, &schema, NULL, &db), KIVIS_OK);
    return db;
}

/* The record engine over PostgreSQL: an index lookup of `per` records is
 * one round trip (each page of entries comes with the records they name,
 * kivis_txn_cursor_follow; it was two: the entries, then every record in
 * one prefetch), not one per record; an update (kivis_update) that changes the indexed
 * field, and a remove, are one round trip each (the old record's read:
 * its old index entry goes blind). */
static void test_record_round_trips(void **state)
{
    (void)state;
    enum { PER = 20 }; /* 10 a name: one batch of entries (16 at most) */
    kivis_storage *st;
    kivis_db *db = pets_on(table_fresh("trips_records"), &st);
    user_key keys[PER];
    assert_int_equal(kivis_begin(db), KIVIS_OK);
    for (int i = 0; i < PER; i++)
        keys[i] = kt_put_user(db, i % 2 ? "odd" : "even", (uint32_t)i);
    kt_put_user(db, "other", 99);
    assert_int_equal(kivis_commit(db), KIVIS_OK);

    assert_int_equal(kivis_begin_read(db), KIVIS_OK);
    trips();
    assert_int_equal(kt_users_named(db, "odd"), PER / 2);
    assert_int_equal(trips(), 1);
    assert_int_equal(kt_users_named(db, "even"), PER / 2);
    assert_int_equal(trips(), 1);
    assert_int_equal(kivis_commit(db), KIVIS_OK);
    /* More records than the first page's 16 entries: a page each. */
    assert_int_equal(kivis_begin(db), KIVIS_OK);
    for (int i = 0; i < 20; i++)
        kt_put_user(db, "many", (uint32_t)i);
    assert_int_equal(kivis_commit(db), KIVIS_OK);
    assert_int_equal(kivis_begin_read(db), KIVIS_OK);
    trips();
    assert_int_equal(kt_users_named(db, "many"), 20);
    assert_int_equal(trips(), 2);
    assert_int_equal(kivis_commit(db), KIVIS_OK);

    assert_int_equal(kivis_begin(db), KIVIS_OK);
    trips();
    user u = {"renamed", "x@example.org", 1};
    assert_int_equal(kivis_update(db, PETS_USER, &keys[1], &u), KIVIS_OK);
    assert_int_equal(trips(), 1);
    assert_int_equal(kivis_remove(db, PETS_USER, &keys[3]), KIVIS_OK);
    assert_int_equal(trips(), 1);
    assert_int_equal(kivis_commit(db), KIVIS_OK);
    trips();
    assert_int_equal(kt_users_named(db, "odd"), PER / 2 - 2);
    assert_int_equal(kt_users_named(db, "renamed"), 1);
    kivis_close(db);
    assert_int_equal(kivis_storage_close(st), KIVIS_OK);
}

/* An index lookup through a stack over PostgreSQL costs what it costs on
 * the bare backend: the faulty backend and a layered stack pass
 * kivis_txn_cursor_follow down, so the entries' page brings the records
 * (a layered lookup that the memory tier answers afterwards still reads
 * the entries from the authority).  Both took a round trip more per
 * lookup when they opened plain cursors. */
static void lookup_round_trips_over(kivis_storage *st)
{
    static kivis_table_desc tables[4];
    static kivis_schema_desc schema;
    schema = kt_pets_without_cascade(tables);
    kivis_db *db;
    assert_int_equal(kivis_open(st, &schema, NULL, &db), KIVIS_OK);
    assert_int_equal(kivis_begin(db), KIVIS_OK);
    for (int i = 0; i < 10; i++)
        kt_put_user(db, i % 2 ? "odd" : "even", (uint32_t)i);
    assert_int_equal(kivis_commit(db), KIVIS_OK);
    for (int again = 0; again < 2; again++) {
        assert_int_equal(kivis_begin_read(db), KIVIS_OK);
        trips();
        assert_int_equal(kt_users_named(db, "odd"), 5);
        assert_int_equal(trips(), 1);
        assert_int_equal(kivis_commit(db), KIVIS_OK);
    }
    kivis_close(db);
    assert_int_equal(kivis_storage_close(st), KIVIS_OK);
}

static void test_faulty_lookup_round_trips(void **state)
{
    (void)state;
    kivis_postgres_options o = {NULL, NULL, table_fresh("trips_faulty"), 0};
    kivis_storage *pg, *st;
    assert_int_equal(kivis_postgres_open(kt_pg_start(), &o, &pg), KIVIS_OK);
    assert_int_equal(kivis_faulty_open(pg, NULL, &st), KIVIS_OK);
    lookup_round_trips_over(st);
}

static void test_layered_lookup_round_trips(void **state)
{
    (void)state;
    kivis_postgres_options o = {NULL, NULL, table_fresh("trips_layered_lookup"), 0};
    kivis_storage *mem, *pg, *st;
    assert_int_equal(kivis_memory_open(NULL, &mem), KIVIS_OK);
    assert_int_equal(kivis_postgres_open(kt_pg_start(), &o, &pg), KIVIS_OK);
    kivis_layered_tier tiers[2] = {{mem, 1u << 20, 0}, {pg, 0, 0}};
    assert_int_equal(kivis_layered_open(tiers, 2, NULL, &st), KIVIS_OK);
    lookup_round_trips_over(st);
}

/* A mirror takes the values of the keys another client wrote, read from
 * the authority when a begin settles the feed: all of them in one round
 * trip (a prefetch), not one a key. */
static void test_mirror_feed_round_trips(void **state)
{
    (void)state;
    enum { N = 100 };
    kivis_storage *mem, *pg, *st, *other;
    const char *table = table_fresh("trips_mirror_feed");
    kivis_postgres_options o = {NULL, NULL, table, 0};
    assert_int_equal(kivis_memory_open(NULL, &mem), KIVIS_OK);
    assert_int_equal(kivis_postgres_open(kt_pg_start(), &o, &pg), KIVIS_OK);
    assert_int_equal(kivis_postgres_open(kt_pg_start(), &o, &other), KIVIS_OK);
    kivis_layered_tier tiers[2] = {{mem, 0, KIVIS_TIER_MIRROR}, {pg, 0, 0}};
    assert_int_equal(kivis_layered_open(tiers, 2, NULL, &st), KIVIS_OK);
    kivis_storage_txn *t; /* the first begin copies the authority */
    assert_int_equal(kivis_storage_begin(st, KIVIS_TXN_RDONLY, &t), KIVIS_OK);
    kivis_txn_abort(t);
    assert_int_equal(kivis_storage_begin(other, 0, &t), KIVIS_OK);
    for (unsigned i = 0; i < N; i++) {
        unsigned char k[3];
        assert_int_equal(kivis_txn_put(t, key_of(i, k), kivis_slice_make("fed", 3)),
                         KIVIS_OK);
    }
    assert_int_equal(kivis_txn_commit(t, KIVIS_NOSYNC), KIVIS_OK);
    kivis_layered_feed_stats fs = {0};
    unsigned long long settled = 0;
    for (int i = 0; i < 1000 && fs.changes < N; i++) {
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
        trips();
        assert_int_equal(kivis_storage_begin(st, KIVIS_TXN_RDONLY, &t), KIVIS_OK);
        kivis_txn_abort(t);
        settled = trips();
        assert_int_equal(kivis_layered_feed_stats_get(st, &fs), KIVIS_OK);
    }
    assert_int_equal(fs.changes, N);
    /* the feed's read of the changes; the values' snapshot and one read */
    if (settled > 3)
        fail_msg("%llu round trips to settle %d fed keys", settled, N);
    assert_int_equal(kivis_storage_begin(st, KIVIS_TXN_RDONLY, &t), KIVIS_OK);
    unsigned char k[3];
    kivis_slice v;
    trips();
    assert_int_equal(kivis_txn_get(t, key_of(N - 1, k), &v), KIVIS_OK);
    assert_int_equal(v.len, 3);
    assert_memory_equal(v.data, "fed", 3);
    assert_int_equal(trips(), 0); /* from the mirror */
    kivis_txn_abort(t);
    assert_int_equal(kivis_storage_close(other), KIVIS_OK);
    assert_int_equal(kivis_storage_close(st), KIVIS_OK);
}

/* A transaction of auto-increment puts reads the table's counter (one
 * round trip) and sends everything with its commit (one more): no seek of
 * the highest stored id once the counter exists, whatever the number of
 * puts.  The first transaction on an empty table still seeks (no counter:
 * the store may predate it). */
static void test_auto_id_round_trips(void **state)
{
    (void)state;
    kivis_storage *st;
    kivis_db *db = pets_on(table_fresh("trips_auto_ids"), &st);
    trips();
    assert_int_equal(kivis_begin(db), KIVIS_OK);
    assert_int_equal(kt_put_user(db, "first", 1).id, 1);
    assert_int_equal(trips(), 2);
    assert_int_equal(kivis_commit(db), KIVIS_OK);
    assert_int_equal(trips(), 1);
    for (uint64_t txn = 0; txn < 2; txn++) {
        assert_int_equal(kivis_begin(db), KIVIS_OK);
        for (uint64_t i = 0; i < 10; i++)
            assert_int_equal(kt_put_user(db, "more", 2).id, 2 + txn * 10 + i);
        assert_int_equal(trips(), 1);
        assert_int_equal(kivis_commit(db), KIVIS_OK);
        assert_int_equal(trips(), 1);
    }
    kivis_close(db);
    assert_int_equal(kivis_storage_close(st), KIVIS_OK);
}

/* The counter read once and written at commit stays a conflict-checked
 * read: two handles that put in transactions open at once draw the same
 * id, and the second commit fails with KIVIS_ECONFLICT instead of
 * overwriting the first one's record; run again, it gets the next id. */
static void test_auto_ids_of_two_writers(void **state)
{
    (void)state;
    kivis_storage *st;
    kivis_db *a = pets_on(table_fresh("trips_two_writers"), &st), *b;
    assert_int_equal(kivis_open(st, &pets_schema, NULL, &b), KIVIS_OK);
    assert_int_equal(kt_put_user(a, "first", 1).id, 1);
    assert_int_equal(kivis_begin(a), KIVIS_OK);
    assert_int_equal(kivis_begin(b), KIVIS_OK);
    assert_int_equal(kt_put_user(a, "from a", 2).id, 2);
    assert_int_equal(kt_put_user(b, "from b", 3).id, 2);
    assert_int_equal(kivis_commit(a), KIVIS_OK);
    assert_int_equal(kivis_commit(b), KIVIS_ECONFLICT);
    assert_int_equal(kivis_begin(b), KIVIS_OK);
    assert_int_equal(kt_put_user(b, "from b", 3).id, 3);
    assert_int_equal(kivis_commit(b), KIVIS_OK);
    assert_int_equal(kt_users_named(a, "from a"), 1);
    assert_int_equal(kt_users_named(a, "from b"), 1);
    kivis_close(b);
    kivis_close(a);
    assert_int_equal(kivis_storage_close(st), KIVIS_OK);
}

/* kivis_prefetch: a write transaction that reads, renames and removes
 * records it named beforehand costs one round trip for all their reads
 * (and its commit), not one a record; results are those of plain reads
 * (a key not stored is still KIVIS_NOTFOUND); outside a transaction it
 * does nothing; bad arguments are refused. */
static void test_record_prefetch(void **state)
{
    (void)state;
    enum { N = 30 };
    kivis_storage *st;
    kivis_db *db = pets_on(table_fresh("trips_prefetch"), &st);
    user_key keys[N + 1];
    assert_int_equal(kivis_begin(db), KIVIS_OK);
    for (int i = 0; i < N; i++)
        keys[i] = kt_put_user(db, "before", (uint32_t)i);
    assert_int_equal(kivis_commit(db), KIVIS_OK);
    keys[N] = (user_key){keys[N - 1].id + 1000}; /* not stored */

    trips();
    assert_int_equal(kivis_prefetch(db, PETS_USER, keys, N + 1), KIVIS_OK);
    assert_int_equal(trips(), 0); /* outside a transaction: nothing */
    assert_int_equal(kivis_prefetch(db, PETS_USER, NULL, 1), KIVIS_EINVAL);
    assert_int_equal(kivis_prefetch(db, 99, keys, 1), KIVIS_EINVAL);

    assert_int_equal(kivis_begin(db), KIVIS_OK);
    trips();
    assert_int_equal(kivis_prefetch(db, PETS_USER, keys, N + 1), KIVIS_OK);
    assert_int_equal(trips(), 1);
    for (int i = 0; i < N; i++) {
        user u;
        assert_int_equal(kivis_get(db, PETS_USER, &keys[i], &u), KIVIS_OK);
        assert_int_equal(u.age, (uint32_t)i);
        kivis_record_clear(db, PETS_USER, &u);
        if (i % 2) {
            user renamed = {"after", "x@example.org", (uint32_t)i};
            assert_int_equal(kivis_update(db, PETS_USER, &keys[i], &renamed), KIVIS_OK);
        } else {
            assert_int_equal(kivis_remove(db, PETS_USER, &keys[i]), KIVIS_OK);
        }
    }
    user none;
    assert_int_equal(kivis_get(db, PETS_USER, &keys[N], &none), KIVIS_NOTFOUND);
    assert_int_equal(trips(), 0);
    assert_int_equal(kivis_commit(db), KIVIS_OK);
    assert_int_equal(trips(), 1);
    assert_int_equal(kt_users_named(db, "after"), N / 2);
    assert_int_equal(kt_users_named(db, "before"), 0);
    kivis_close(db);
    assert_int_equal(kivis_storage_close(st), KIVIS_OK);
}

/* A scan reading ahead returns what a plain scan does, in both directions,
 * across batches (16, 128, then 1,024 entries), and gives an entry again
 * after a buffer too small for it. */
static void test_read_ahead_scans(void **state)
{
    (void)state;
    enum { MANY = 300 };
    kivis_storage *st;
    kivis_db *db = pets_on(table_fresh("trips_ahead"), &st);
    assert_int_equal(kivis_begin(db), KIVIS_OK);
    for (int i = 0; i < MANY; i++)
        kt_put_user(db, "same", (uint32_t)i);
    assert_int_equal(kivis_commit(db), KIVIS_OK);
    const char *name = "same";
    for (int rev = 0; rev < 2; rev++) {
        kivis_query q = {PETS_USER, USER_BY_NAME, KIVIS_Q_EQ, &name, NULL, NULL,
                         0, rev ? KIVIS_REVERSE : 0};
        kivis_scan *s;
        assert_int_equal(kivis_scan_open(db, &q, &s), KIVIS_OK);
        user_key k;
        user u;
        char buf[64];
        for (int i = 0; i < MANY; i++) {
            uint64_t want = rev ? (uint64_t)(MANY - i) : (uint64_t)i + 1;
            if (i % 50 == 7) /* too small: the same entry comes again */
                assert_int_equal(kivis_scan_next_into(s, &k, &u, buf, 4),
                                 KIVIS_ETOOSMALL);
            assert_int_equal(kivis_scan_next_into(s, &k, &u, buf, sizeof buf),
                             KIVIS_OK);
            assert_int_equal(k.id, want);
            assert_int_equal(u.age, want - 1);
            assert_string_equal(u.name, "same");
        }
        assert_int_equal(kivis_scan_next(s, &k, &u), KIVIS_NOTFOUND);
        kivis_scan_close(s);
    }
    trips();
    kivis_close(db);
    kivis_storage_close(st);
}

/* A feed asked for changes when none came costs no round trip (a cache
 * drains it at every begin); a commit's NOTIFY makes it read the log. */
static void test_idle_feed_costs_nothing(void **state)
{
    (void)state;
    kivis_storage *st = filled("trips_feed");
    kivis_feed *f;
    kivis_change ch;
    assert_int_equal(kivis_feed_open(st, KIVIS_FEED_NOW, &f), KIVIS_OK);
    assert_int_equal(kivis_feed_next(f, 0, &ch), KIVIS_NOTFOUND);
    trips();
    for (int i = 0; i < 100; i++)
        assert_int_equal(kivis_feed_next(f, 0, &ch), KIVIS_NOTFOUND);
    assert_int_equal(trips(), 0);
    kivis_storage_txn *t;
    unsigned char k[3];
    assert_int_equal(kivis_storage_begin(st, 0, &t), KIVIS_OK);
    assert_int_equal(kivis_txn_put(t, key_of(9, k), kivis_slice_make("new", 3)), KIVIS_OK);
    assert_int_equal(kivis_txn_commit(t, KIVIS_NOSYNC), KIVIS_OK);
    assert_int_equal(kivis_feed_next(f, 5000, &ch), KIVIS_OK);
    assert_int_equal(ch.kind, KIVIS_CHANGE_UPDATE);
    assert_memory_equal(ch.key.data, k, 3);
    assert_int_equal(kivis_feed_next(f, 0, &ch), KIVIS_NOTFOUND);
    trips();
    for (int i = 0; i < 100; i++)
        assert_int_equal(kivis_feed_next(f, 0, &ch), KIVIS_NOTFOUND);
    assert_int_equal(trips(), 0);
    kivis_feed_close(f);
    kivis_storage_close(st);
}

int main(void)
{
    kt_pg_start();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_round_trips),
        cmocka_unit_test(test_cursor_round_trips),
        cmocka_unit_test(test_cursor_follow_round_trips),
        cmocka_unit_test(test_prefetch_round_trips),
        cmocka_unit_test(test_layered_write_prefetch),
        cmocka_unit_test(test_discard_round_trips),
        cmocka_unit_test(test_record_round_trips),
        cmocka_unit_test(test_faulty_lookup_round_trips),
        cmocka_unit_test(test_layered_lookup_round_trips),
        cmocka_unit_test(test_mirror_feed_round_trips),
        cmocka_unit_test(test_auto_id_round_trips),
        cmocka_unit_test(test_auto_ids_of_two_writers),
        cmocka_unit_test(test_record_prefetch),
        cmocka_unit_test(test_read_ahead_scans),
        cmocka_unit_test(test_idle_feed_costs_nothing),
    };
    return cmocka_run_group_tests_name("postgres_trips", tests, NULL, NULL);
}
