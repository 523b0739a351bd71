/*
 * test_postgres_commit.c - how a PostgreSQL commit writes its puts
 * (src/storage/postgres.c, pg_apply): a put of a key the transaction read
 * as present is an UPDATE, any other put a plain INSERT under a savepoint;
 * a put over a key that is there but was not read fails that INSERT, and
 * the commit goes back to the savepoint and upserts (and the storage's
 * next commits upsert from the start, for a window that doubles while
 * every try misses).  Checked: the values
 * stored and the kinds the change feed reports on each path (read present,
 * read absent, not read, blind overwrite, deletes beside them), the round
 * trips of each path, and the conflicts a concurrent writer causes: a key
 * read absent that another transaction inserts, a key read present that
 * another deletes or rewrites.  Runs against a private server (pgserver.h).
 */
#include "pgserver.h"
#include "testutil.h"

#include <kivis/postgres.h>

#include <stdio.h>
#include <string.h>

/* ---- stores, writes, reads ---------------------------------------------- */

static kivis_slice s_(const char *s)
{
    return kivis_slice_make(s, strlen(s));
}

/* A fresh store on table `table` (its change log dropped with it). */
static kivis_storage *fresh_store(const char *table)
{
    kt_pg_drop_store(table);
    kivis_postgres_options o = {NULL, NULL, table, 0};
    kivis_storage *st;
    assert_int_equal(kivis_postgres_open(kt_pg_start(), &o, &st), KIVIS_OK);
    return st;
}

/* A second handle on the same table: its own connections, a concurrent
 * writer. */
static kivis_storage *other_handle(const char *table)
{
    kivis_postgres_options o = {NULL, NULL, table, 0};
    kivis_storage *st;
    assert_int_equal(kivis_postgres_open(kt_pg_start(), &o, &st), KIVIS_OK);
    return st;
}

static kivis_storage_txn *begin_write(kivis_storage *st)
{
    kivis_storage_txn *t;
    assert_int_equal(kivis_storage_begin(st, 0, &t), KIVIS_OK);
    return t;
}

static void put(kivis_storage_txn *t, const char *key, const char *value)
{
    assert_int_equal(kivis_txn_put(t, s_(key), s_(value)), KIVIS_OK);
}

/* Commit the keys (value = key) in one transaction, read nothing. */
static void fill(kivis_storage *st, const char *const *keys, size_t n)
{
    kivis_storage_txn *t = begin_write(st);
    for (size_t i = 0; i < n; i++)
        put(t, keys[i], keys[i]);
    assert_int_equal(kivis_txn_commit(t, KIVIS_SYNC), KIVIS_OK);
}

/* Read `key` in t: want NULL when it must be absent. */
static void expect_in(kivis_storage_txn *t, const char *key, const char *want)
{
    kivis_slice v;
    int rc = kivis_txn_get(t, s_(key), &v);
    kt_expect_answer(rc, v, want);
}

/* The committed value of `key` (NULL: absent), read in a new transaction. */
static void expect(kivis_storage *st, const char *key, const char *want)
{
    kivis_storage_txn *t;
    assert_int_equal(kivis_storage_begin(st, KIVIS_TXN_RDONLY, &t), KIVIS_OK);
    expect_in(t, key, want);
    kivis_txn_abort(t);
}

/* The next n changes of f are exactly keys[i] with kinds[i], in any order
 * (a commit's order is the server's), then nothing. */
static void expect_changes(kivis_feed *f, const char *const *keys, const int *kinds, size_t n)
{
    bool seen[16] = {false};
    assert_true(n <= 16);
    for (size_t i = 0; i < n; i++) {
        kivis_change c;
        assert_int_equal(kivis_feed_next(f, 5000, &c), KIVIS_OK);
        size_t j = 0;
        while (j < n && (c.key.len != strlen(keys[j]) ||
                         memcmp(c.key.data, keys[j], c.key.len) != 0))
            j++;
        if (j == n)
            fail_msg("change %zu: a key not written (%.*s)", i, (int)c.key.len,
                     (const char *)c.key.data);
        assert_false(seen[j]);
        seen[j] = true;
        if (c.kind != kinds[j])
            fail_msg("%s: kind %d, want %d", keys[j], c.kind, kinds[j]);
    }
    kivis_change c;
    assert_int_equal(kivis_feed_next(f, 0, &c), KIVIS_NOTFOUND);
}

/* Commit t; the round trips its commit took. */
static unsigned long long commit_trips(kivis_storage_txn *t, int want_rc)
{
    unsigned long long before = kivis_postgres_round_trips();
    assert_int_equal(kivis_txn_commit(t, KIVIS_NOSYNC), want_rc);
    return kivis_postgres_round_trips() - before;
}

/* ---- tests -------------------------------------------------------------- */

/* Every put the transaction read first: the one read present is updated,
 * the one read absent inserted, the one never read inserted, beside a
 * delete; one round trip, and the feed says which was which. */
static void test_puts_after_reads(void **state)
{
    (void)state;
    kivis_storage *st = fresh_store("commit_read");
    const char *old[] = {"a", "b", "d"};
    fill(st, old, 3);
    kivis_feed *f;
    assert_int_equal(kivis_feed_open(st, KIVIS_FEED_NOW, &f), KIVIS_OK);

    kivis_storage_txn *t = begin_write(st);
    expect_in(t, "a", "a");
    expect_in(t, "c", NULL);
    put(t, "a", "a2"); /* read present: an update */
    put(t, "c", "c2"); /* read absent: an insert */
    put(t, "e", "e2"); /* not read, not there: an insert */
    assert_int_equal(kivis_txn_del(t, s_("d")), KIVIS_OK);
    assert_int_equal(commit_trips(t, KIVIS_OK), 1);

    expect(st, "a", "a2");
    expect(st, "b", "b");
    expect(st, "c", "c2");
    expect(st, "d", NULL);
    expect(st, "e", "e2");
    const char *keys[] = {"a", "c", "e", "d"};
    const int kinds[] = {KIVIS_CHANGE_UPDATE, KIVIS_CHANGE_INSERT, KIVIS_CHANGE_INSERT,
                         KIVIS_CHANGE_DELETE};
    expect_changes(f, keys, kinds, 4);
    kivis_feed_close(f);
    assert_int_equal(kivis_storage_close(st), KIVIS_OK);
}

/* A put over a key that is there but was not read: the INSERT fails, the
 * commit goes back to its savepoint and upserts (a second round trip), and
 * nothing of the failed attempt remains: every write once, each logged
 * once with its kind, the positions after the last commit's.  The next
 * commits upsert from the start (one round trip, blind overwrites too). */
static void test_blind_overwrite(void **state)
{
    (void)state;
    kivis_storage *st = fresh_store("commit_blind");
    const char *old[] = {"a", "b", "c"};
    fill(st, old, 3);
    kivis_feed *f;
    assert_int_equal(kivis_feed_open(st, KIVIS_FEED_NOW, &f), KIVIS_OK);

    kivis_storage_txn *t = begin_write(st);
    expect_in(t, "a", "a");
    put(t, "a", "a2");  /* read present */
    put(t, "aa", "n1"); /* new, sorted before the blind one */
    put(t, "b", "b2");  /* there, never read: fails the INSERT */
    put(t, "z", "n2");  /* new, after it */
    assert_int_equal(kivis_txn_del(t, s_("c")), KIVIS_OK);
    assert_int_equal(commit_trips(t, KIVIS_OK), 2);

    expect(st, "a", "a2");
    expect(st, "aa", "n1");
    expect(st, "b", "b2");
    expect(st, "c", NULL);
    expect(st, "z", "n2");
    const char *keys[] = {"a", "aa", "b", "z", "c"};
    const int kinds[] = {KIVIS_CHANGE_UPDATE, KIVIS_CHANGE_INSERT, KIVIS_CHANGE_UPDATE,
                         KIVIS_CHANGE_INSERT, KIVIS_CHANGE_DELETE};
    expect_changes(f, keys, kinds, 5);

    t = begin_write(st);
    put(t, "b", "b3"); /* blind again: upserted at once */
    put(t, "y", "n3");
    assert_int_equal(commit_trips(t, KIVIS_OK), 1);
    expect(st, "b", "b3");
    expect(st, "y", "n3");
    const char *keys2[] = {"b", "y"};
    const int kinds2[] = {KIVIS_CHANGE_UPDATE, KIVIS_CHANGE_INSERT};
    expect_changes(f, keys2, kinds2, 2);
    kivis_feed_close(f);
    assert_int_equal(kivis_storage_close(st), KIVIS_OK);
}

/* Every commit overwrites a key blindly (as a counter kept in memory
 * would be written): the first goes back to its savepoint, the next 16
 * upsert from the start, the 18th tries again and misses, and the window
 * doubles: 2 second trips in 50 commits, not one every 17. */
static void test_blind_every_commit(void **state)
{
    (void)state;
    kivis_storage *st = fresh_store("commit_blind_all");
    const char *old[] = {"counter"};
    fill(st, old, 1);
    unsigned long long trips = 0;
    for (int i = 0; i < 50; i++) {
        char key[16], value[16];
        snprintf(key, sizeof key, "r%02d", i);
        snprintf(value, sizeof value, "%d", i);
        kivis_storage_txn *t = begin_write(st);
        put(t, "counter", value);
        put(t, key, value);
        trips += commit_trips(t, KIVIS_OK);
    }
    assert_int_equal(trips, 50 + 2);
    expect(st, "counter", "49");
    expect(st, "r49", "49");
    assert_int_equal(kivis_storage_close(st), KIVIS_OK);
}

/* A commit that only deletes, and one of a single put: the statement with
 * empty insert and update arrays writes and logs what there is. */
static void test_edges(void **state)
{
    (void)state;
    kivis_storage *st = fresh_store("commit_edges");
    const char *old[] = {"a", "b"};
    fill(st, old, 2);
    kivis_feed *f;
    assert_int_equal(kivis_feed_open(st, KIVIS_FEED_NOW, &f), KIVIS_OK);

    kivis_storage_txn *t = begin_write(st);
    assert_int_equal(kivis_txn_del(t, s_("a")), KIVIS_OK);
    assert_int_equal(commit_trips(t, KIVIS_OK), 1);
    const char *keys[] = {"a"};
    const int del[] = {KIVIS_CHANGE_DELETE};
    expect_changes(f, keys, del, 1);

    t = begin_write(st);
    expect_in(t, "b", "b");
    put(t, "b", "");    /* an empty value, read present */
    assert_int_equal(commit_trips(t, KIVIS_OK), 1);
    expect(st, "b", "");
    const char *keys2[] = {"b"};
    const int upd[] = {KIVIS_CHANGE_UPDATE};
    expect_changes(f, keys2, upd, 1);

    t = begin_write(st); /* put and delete of the same new key: nothing */
    put(t, "c", "c");
    assert_int_equal(kivis_txn_del(t, s_("c")), KIVIS_OK);
    assert_int_equal(kivis_txn_commit(t, KIVIS_NOSYNC), KIVIS_OK);
    expect(st, "c", NULL);
    kivis_change c;
    assert_int_equal(kivis_feed_next(f, 200, &c), KIVIS_NOTFOUND);
    kivis_feed_close(f);
    assert_int_equal(kivis_storage_close(st), KIVIS_OK);
}

/* A key the transaction read as absent, inserted and committed by another
 * transaction before its commit: the commit is a conflict (retryable),
 * not an error, and the other's value stays. */
static void test_read_absent_inserted_meanwhile(void **state)
{
    (void)state;
    kivis_storage *st = fresh_store("commit_absent");
    kivis_storage *other = other_handle("commit_absent");
    kivis_storage_txn *t = begin_write(st);
    expect_in(t, "k", NULL);

    kivis_storage_txn *o = begin_write(other);
    put(o, "k", "theirs");
    assert_int_equal(kivis_txn_commit(o, KIVIS_NOSYNC), KIVIS_OK);

    put(t, "k", "mine");
    put(t, "n", "mine");
    assert_int_equal(kivis_txn_commit(t, KIVIS_NOSYNC), KIVIS_ECONFLICT);
    expect(st, "k", "theirs");
    expect(st, "n", NULL);
    assert_int_equal(kivis_storage_close(other), KIVIS_OK);
    assert_int_equal(kivis_storage_close(st), KIVIS_OK);
}

/* A key the transaction read as present (an update), deleted or rewritten
 * by another transaction before its commit: a conflict, and the other's
 * write stays. */
static void test_read_present_changed_meanwhile(void **state)
{
    (void)state;
    kivis_storage *st = fresh_store("commit_present");
    kivis_storage *other = other_handle("commit_present");
    const char *old[] = {"d", "r"};
    fill(st, old, 2);

    for (int rewrite = 0; rewrite < 2; rewrite++) {
        const char *key = rewrite ? "r" : "d";
        kivis_storage_txn *t = begin_write(st);
        expect_in(t, key, key);

        kivis_storage_txn *o = begin_write(other);
        if (rewrite)
            put(o, key, "theirs");
        else
            assert_int_equal(kivis_txn_del(o, s_(key)), KIVIS_OK);
        assert_int_equal(kivis_txn_commit(o, KIVIS_NOSYNC), KIVIS_OK);

        put(t, key, "mine");
        assert_int_equal(kivis_txn_commit(t, KIVIS_NOSYNC), KIVIS_ECONFLICT);
        expect(st, key, rewrite ? "theirs" : NULL);
    }
    assert_int_equal(kivis_storage_close(other), KIVIS_OK);
    assert_int_equal(kivis_storage_close(st), KIVIS_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_puts_after_reads),
        cmocka_unit_test(test_blind_overwrite),
        cmocka_unit_test(test_blind_every_commit),
        cmocka_unit_test(test_edges),
        cmocka_unit_test(test_read_absent_inserted_meanwhile),
        cmocka_unit_test(test_read_present_changed_meanwhile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
