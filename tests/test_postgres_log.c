/*
 * test_postgres_log.c - PostgreSQL's change log of one row per commit
 * (docs/storage.md, "PostgreSQL"): a commit larger than a feed's batch is
 * one log row, read whole and by feeds resuming at each of its positions;
 * the trim keeps whole commits; writers that are not kivis (the trigger)
 * interleave with kivis commits in commit order; and a store whose log is
 * in the earlier one-row-per-key format is converted at open with changes
 * pending, which a feed then delivers once each at their old positions.
 * Runs against a private server (pgserver.h).
 */
#include "pgserver.h"
#include "testutil.h"

#include <kivis/postgres.h>

#include <libpq-fe.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BIG 520 /* changes in the large commit: more than a feed's batch (512) */

/* ---- SQL on a connection of the test's own ------------------------------ */

static PGconn *sql_connect(void)
{
    PGconn *c = PQconnectdb(kt_pg_start());
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    return c;
}

static void sql_on(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
}

/* The one number `sql` selects (NULL: -1). */
static long long sql_number(const char *sql)
{
    PGconn *c = sql_connect();
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
        fail_msg("%s: %s", sql, PQresultErrorMessage(r));
    long long v = PQgetisnull(r, 0, 0) ? -1 : atoll(PQgetvalue(r, 0, 0));
    PQclear(r);
    PQfinish(c);
    return v;
}

/* ---- stores and changes ------------------------------------------------- */

static kivis_storage *open_store(const char *table)
{
    kivis_postgres_options o = {NULL, NULL, table, 0};
    kivis_storage *st;
    assert_int_equal(kivis_postgres_open(kt_pg_start(), &o, &st), KIVIS_OK);
    return st;
}

/* A change as the test expects or saw it. */
typedef struct change {
    int kind;
    char key[16];
    uint64_t pos;
} change;

static kivis_slice key_of(const change *c)
{
    return kivis_slice_make(c->key, strlen(c->key));
}

/* Commit the n changes (inserts and updates put, deletes del). */
static void commit_changes(kivis_storage *st, const change *c, size_t n)
{
    kivis_storage_txn *t;
    assert_int_equal(kivis_storage_begin(st, 0, &t), KIVIS_OK);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(c[i].kind == KIVIS_CHANGE_DELETE
                             ? kivis_txn_del(t, key_of(&c[i]))
                             : kivis_txn_put(t, key_of(&c[i]), kivis_slice_make("v", 1)),
                         KIVIS_OK);
    assert_int_equal(kivis_txn_commit(t, KIVIS_SYNC), KIVIS_OK);
}

static change make(int kind, const char *key)
{
    change c = {kind, "", 0};
    snprintf(c.key, sizeof c.key, "%s", key);
    return c;
}

/* Read n changes into out. */
static void read_some(kivis_feed *f, change *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        kivis_change c;
        int rc = kivis_feed_next(f, 5000, &c);
        if (rc != KIVIS_OK)
            fail_msg("change %zu of %zu: %s", i, n, kivis_errname(rc));
        assert_true(c.key.len < sizeof out[i].key);
        out[i].kind = c.kind;
        memcpy(out[i].key, c.key.data, c.key.len);
        out[i].key[c.key.len] = '\0';
        out[i].pos = c.pos;
    }
}

/* Read exactly n changes into out, then find nothing more. */
static void read_changes(kivis_feed *f, change *out, size_t n)
{
    read_some(f, out, n);
    kivis_change c;
    assert_int_equal(kivis_feed_next(f, 0, &c), KIVIS_NOTFOUND);
}

static bool same_change(const change *a, const change *b)
{
    return a->kind == b->kind && strcmp(a->key, b->key) == 0;
}

/* got holds the commits of want, in order; each commit's n[i] changes in
 * any order (the log keeps a commit's writes in the order the server
 * wrote them), every change once, positions strictly increasing. */
static void assert_commits(const change *got, const change *want, const size_t *n,
                           size_t commits)
{
    size_t at = 0;
    for (size_t i = 0; i < commits; at += n[i++]) {
        for (size_t j = 0; j < n[i]; j++) {
            size_t hits = 0;
            for (size_t g = 0; g < n[i]; g++)
                hits += same_change(&got[at + g], &want[at + j]);
            if (hits != 1)
                fail_msg("commit %zu: %s (kind %d) fed %zu times", i, want[at + j].key,
                         want[at + j].kind, hits);
        }
    }
    for (size_t i = 1; i < at; i++)
        assert_true(got[i].pos > got[i - 1].pos);
}

/* The large commit: BIG changes over keys k000 ... (updates, deletes,
 * inserts in turn) of a store where k000 ... k<BIG> exist. */
static void big_commit(change *c)
{
    for (int i = 0; i < BIG; i++) {
        char key[16];
        snprintf(key, sizeof key, i % 3 == 2 ? "n%03d" : "k%03d", i);
        c[i] = make(i % 3 == 0 ? KIVIS_CHANGE_UPDATE
                    : i % 3 == 1 ? KIVIS_CHANGE_DELETE : KIVIS_CHANGE_INSERT, key);
    }
}

/* A new store `table` whose keys k000 ... k<BIG> one commit inserted. */
static kivis_storage *filled_store(const char *table)
{
    kt_pg_drop_store(table);
    kivis_storage *st = open_store(table);
    static change c[BIG];
    for (int i = 0; i < BIG; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%03d", i);
        c[i] = make(KIVIS_CHANGE_INSERT, key);
    }
    commit_changes(st, c, BIG);
    return st;
}

/* Commit the large commit, then one of the key "tail"; want[BIG + 1]
 * receives their changes. */
static void commit_big_and_tail(kivis_storage *st, change *want)
{
    big_commit(want);
    want[BIG] = make(KIVIS_CHANGE_INSERT, "tail");
    commit_changes(st, want, BIG);
    commit_changes(st, &want[BIG], 1);
}

/* ---- tests -------------------------------------------------------------- */

/* A commit of BIG changes is one log row; a feed reads it whole, with
 * consecutive positions, and a feed opened after any of its positions
 * (or the one before it) delivers the changes after that position: the
 * next two checked at every position, all of them to the end of the next
 * commit at every 32nd and the last few (a feed's open costs a connection,
 * its reads are cheap). */
static void test_large_commit_resumed_at_every_position(void **state)
{
    (void)state;
    kivis_storage *st = filled_store("log_big");
    kivis_feed *f;
    assert_int_equal(kivis_feed_open(st, KIVIS_FEED_NOW, &f), KIVIS_OK);
    long long rows = sql_number("SELECT count(*) FROM log_big_changes");
    static change want[BIG + 1], got[BIG + 1], again[BIG + 1];
    commit_big_and_tail(st, want);
    assert_int_equal(sql_number("SELECT count(*) FROM log_big_changes"), rows + 2);
    read_changes(f, got, BIG + 1);
    kivis_feed_close(f);
    const size_t n[2] = {BIG, 1};
    assert_commits(got, want, n, 2);
    assert_int_equal(got[BIG - 1].pos - got[0].pos, BIG - 1);

    for (size_t i = 0; i <= BIG + 1; i++) {
        uint64_t after = i ? got[i - 1].pos : got[0].pos - 1;
        assert_int_equal(kivis_feed_open(st, after, &f), KIVIS_OK);
        size_t left = BIG + 1 - i, n_read = i % 32 == 0 || left < 3 ? left : 2;
        if (n_read == left)
            read_changes(f, again, left);
        else
            read_some(f, again, n_read);
        for (size_t j = i; j < i + n_read; j++) {
            assert_true(same_change(&again[j - i], &got[j]));
            assert_int_equal(again[j - i].pos, got[j].pos);
        }
        kivis_feed_close(f);
    }
    assert_int_equal(kivis_storage_close(st), KIVIS_OK);
}

/* keep_rows counts keys, and the trim takes whole commits only: with the
 * newest 5 keys to keep and the last commits of BIG and 1 keys, both stay
 * and a feed from the start resyncs to the end of the fill. */
static void test_trim_keeps_whole_commits(void **state)
{
    (void)state;
    kivis_storage *st = filled_store("log_trim");
    static change want[BIG + 1], got[BIG + 1];
    commit_big_and_tail(st, want);
    kt_pg_exec("UPDATE log_trim_feed SET keep_rows = 5");
    long long horizon = sql_number("SELECT log_trim_feed_trim()");
    assert_int_equal(sql_number("SELECT count(*) FROM log_trim_changes"), 2);
    kivis_feed *f;
    assert_int_equal(kivis_feed_open(st, 1, &f), KIVIS_OK);
    kivis_change c;
    assert_int_equal(kivis_feed_next(f, 5000, &c), KIVIS_OK);
    assert_int_equal(c.kind, KIVIS_CHANGE_RESYNC);
    assert_int_equal(c.pos, horizon);
    read_changes(f, got, BIG + 1);
    const size_t n[2] = {BIG, 1};
    assert_commits(got, want, n, 2);
    assert_true(got[0].pos > (uint64_t)horizon);
    kivis_feed_close(f);
    assert_int_equal(kivis_storage_close(st), KIVIS_OK);
}

/* Writers that are not kivis (plain SQL, the trigger logs them a row per
 * row write) interleave with kivis commits; the feed has every change
 * once, commit by commit in commit order: a foreign transaction that
 * wrote before a kivis commit but commits after it comes after it. */
static void test_foreign_writes_interleave(void **state)
{
    (void)state;
    kt_pg_drop_store("log_mixed");
    kivis_storage *st = open_store("log_mixed");
    kivis_feed *f;
    assert_int_equal(kivis_feed_open(st, KIVIS_FEED_NOW, &f), KIVIS_OK);
    const change want[] = {
        make(KIVIS_CHANGE_INSERT, "a"), make(KIVIS_CHANGE_INSERT, "b"),
        make(KIVIS_CHANGE_INSERT, "x"), make(KIVIS_CHANGE_INSERT, "y"),
        make(KIVIS_CHANGE_UPDATE, "a"),
        make(KIVIS_CHANGE_DELETE, "b"), make(KIVIS_CHANGE_INSERT, "c"),
        make(KIVIS_CHANGE_INSERT, "d"),
        make(KIVIS_CHANGE_INSERT, "late"),
        make(KIVIS_CHANGE_DELETE, "x"),
        make(KIVIS_CHANGE_UPDATE, "y"),
    };
    const size_t n[] = {2, 3, 2, 1, 1, 1, 1};
    commit_changes(st, want, 2);
    PGconn *other = sql_connect();
    sql_on(other, "BEGIN; INSERT INTO log_mixed VALUES ('\\x78', ''), ('\\x79', '');"
                  " UPDATE log_mixed SET v = '\\x01' WHERE k = '\\x61'; COMMIT");
    commit_changes(st, &want[5], 2);
    sql_on(other, "BEGIN; INSERT INTO log_mixed VALUES ('\\x6c617465', '')");
    commit_changes(st, &want[7], 1); /* while the other transaction is open */
    sql_on(other, "COMMIT");
    sql_on(other, "BEGIN; INSERT INTO log_mixed VALUES ('\\x7a', ''); ROLLBACK");
    sql_on(other, "DELETE FROM log_mixed WHERE k = '\\x78'");
    PQfinish(other);
    commit_changes(st, &want[10], 1);
    change got[11];
    read_changes(f, got, 11);
    assert_commits(got, want, n, 7);
    kivis_feed_close(f);
    assert_int_equal(kivis_storage_close(st), KIVIS_OK);
}

/* The log setup of the earlier format (one row per key: pos, op, k, at),
 * as kivis created it, over the table log_old. */
static const char old_setup[] =
    "BEGIN;"
    "SELECT pg_advisory_xact_lock(1801812339, 0);"
    "CREATE TABLE IF NOT EXISTS log_old_changes (pos bigserial PRIMARY KEY,"
    " op \"char\" NOT NULL, k bytea NOT NULL,"
    " at timestamptz NOT NULL DEFAULT clock_timestamp());"
    "CREATE TABLE IF NOT EXISTS log_old_feed (one boolean PRIMARY KEY DEFAULT true"
    " CHECK (one), horizon bigint NOT NULL DEFAULT 0,"
    " keep_rows bigint NOT NULL DEFAULT 1000000,"
    " keep_age interval NOT NULL DEFAULT '1 day');"
    "INSERT INTO log_old_feed DEFAULT VALUES ON CONFLICT DO NOTHING;"
    "CREATE OR REPLACE FUNCTION log_old_feed_log() RETURNS trigger LANGUAGE plpgsql"
    " AS $kivis$"
    " BEGIN"
    "  PERFORM pg_advisory_xact_lock(1801812339, (TG_RELID::bigint % 2147483647)::int);"
    "  INSERT INTO log_old_changes(op, k) VALUES (left(TG_OP, 1)::\"char\","
    "   CASE WHEN TG_OP = 'DELETE' THEN OLD.k ELSE NEW.k END);"
    "  PERFORM pg_notify('kivis_feed_' || TG_RELID::bigint, '');"
    "  RETURN NULL;"
    " END $kivis$;"
    "CREATE OR REPLACE FUNCTION log_old_feed_trim() RETURNS bigint LANGUAGE plpgsql"
    " AS $kivis$"
    " DECLARE m record; newest bigint; cut bigint;"
    " BEGIN"
    "  SELECT horizon, keep_rows, keep_age INTO m FROM log_old_feed FOR UPDATE;"
    "  SELECT max(pos) INTO newest FROM log_old_changes;"
    "  SELECT max(pos) INTO cut FROM (SELECT pos, at FROM log_old_changes ORDER BY pos"
    "   LIMIT 100000) o WHERE at < clock_timestamp() - m.keep_age;"
    "  cut := greatest(cut, newest - m.keep_rows);"
    "  IF cut > m.horizon THEN"
    "   DELETE FROM log_old_changes WHERE pos <= cut;"
    "   UPDATE log_old_feed SET horizon = cut;"
    "   RETURN cut;"
    "  END IF;"
    "  RETURN m.horizon;"
    " END $kivis$;"
    "DROP TRIGGER IF EXISTS kivis_feed ON log_old;"
    "CREATE CONSTRAINT TRIGGER kivis_feed AFTER INSERT OR UPDATE OR DELETE ON log_old"
    " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW"
    " WHEN (current_setting('kivis.logged', true) IS DISTINCT FROM 'on')"
    " EXECUTE FUNCTION log_old_feed_log();"
    "COMMIT";

/* A log of the earlier format with changes a consumer has not read yet
 * (it read up to the second): the open converts it, and a feed resuming
 * after the second change's position delivers the rest once each, at the
 * positions they had, then the commits made after the conversion, kivis's
 * and the trigger's. */
static void test_old_format_log_converted(void **state)
{
    (void)state;
    kt_pg_drop_store("log_old");
    kt_pg_exec("CREATE TABLE log_old (k bytea PRIMARY KEY, v bytea NOT NULL)");
    kt_pg_exec(old_setup);
    kt_pg_exec("BEGIN; INSERT INTO log_old VALUES ('\\x61', ''), ('\\x62', ''), ('\\x63', '');"
               " COMMIT");
    kt_pg_exec("UPDATE log_old SET v = '\\x01' WHERE k = '\\x61'");
    kt_pg_exec("DELETE FROM log_old WHERE k = '\\x62'");
    long long second = sql_number("SELECT pos FROM log_old_changes ORDER BY pos"
                                  " OFFSET 1 LIMIT 1");
    long long newest = sql_number("SELECT max(pos) FROM log_old_changes");

    kivis_storage *st = open_store("log_old");
    assert_int_equal(sql_number("SELECT count(*) FROM pg_attribute WHERE attrelid ="
                                " 'log_old_changes'::regclass AND attname IN ('op', 'k')"
                                " AND NOT attisdropped"), 0);
    assert_int_equal(sql_number("SELECT count(*) FROM log_old_changes"), 5);
    kivis_feed *f;
    assert_int_equal(kivis_feed_open(st, (uint64_t)second, &f), KIVIS_OK);
    const change want[] = {
        make(KIVIS_CHANGE_INSERT, "c"), make(KIVIS_CHANGE_UPDATE, "a"),
        make(KIVIS_CHANGE_DELETE, "b"),
        make(KIVIS_CHANGE_INSERT, "d"), make(KIVIS_CHANGE_INSERT, "e"),
        make(KIVIS_CHANGE_DELETE, "c"),
    };
    commit_changes(st, &want[3], 2);
    kt_pg_exec("DELETE FROM log_old WHERE k = '\\x63'");
    change got[6];
    read_changes(f, got, 6);
    const size_t n[] = {1, 1, 1, 2, 1};
    assert_commits(got, want, n, 5);
    assert_int_equal(got[0].pos, second + 1);
    assert_int_equal(got[2].pos, newest);
    kivis_feed_close(f);
    assert_int_equal(kivis_storage_close(st), KIVIS_OK);

    /* opened again: nothing to convert, the log as it was */
    st = open_store("log_old");
    assert_int_equal(kivis_feed_open(st, (uint64_t)newest, &f), KIVIS_OK);
    read_changes(f, got, 3);
    assert_commits(got, &want[3], &n[3], 2);
    kivis_feed_close(f);
    assert_int_equal(kivis_storage_close(st), KIVIS_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_large_commit_resumed_at_every_position),
        cmocka_unit_test(test_trim_keeps_whole_commits),
        cmocka_unit_test(test_foreign_writes_interleave),
        cmocka_unit_test(test_old_format_log_converted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
