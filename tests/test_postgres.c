/*
 * test_postgres.c - the PostgreSQL backend on a real server (a private one,
 * tests/support/pgserver.h): what the conformance suite cannot see.  Key
 * order against the memory backend, the table's creation and the user's
 * rights, concurrent writers (ECONFLICT, two processes incrementing one
 * counter through the record engine), the network failing (refused, server
 * restarted mid-transaction, connection dropped at commit, a crash in the
 * middle of a workload) and faults injected through the faulty backend.
 */
#include "petsutil.h"
#include "pgserver.h"
#include "testutil.h"

#include <kivis/faulty.h>
#include <kivis/memory.h>
#include <kivis/postgres.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define S(s) kivis_slice_make((s), sizeof(s) - 1)

static kivis_storage *open_table(const char *conninfo, const char *table)
{
    kivis_postgres_options o = {NULL, NULL, table, 0};
    kivis_storage *st = NULL;
    int rc = kivis_postgres_open(conninfo, &o, &st);
    if (rc != KIVIS_OK)
        fail_msg("open %s: %s: %s", table, kivis_errname(rc), kivis_postgres_errmsg());
    return st;
}

/* A fresh table `table` on the test server. */
static kivis_storage *fresh(const char *table)
{
    char sql[120];
    snprintf(sql, sizeof sql, "DROP TABLE IF EXISTS %s", table);
    kt_pg_exec(sql);
    return open_table(kt_pg_start(), table);
}

static void put_commit(kivis_storage *st, kivis_slice k, kivis_slice v)
{
    kivis_storage_txn *t;
    assert_int_equal(kivis_storage_begin(st, 0, &t), KIVIS_OK);
    assert_int_equal(kivis_txn_put(t, k, v), KIVIS_OK);
    assert_int_equal(kivis_txn_commit(t, KIVIS_SYNC), KIVIS_OK);
}

/* ---- order and the table ------------------------------------------------ */

/* bytea's order is the kivis order: the same keys come out of a cursor in
 * the same sequence as from the memory backend. */
static void test_order_matches_memory(void **state)
{
    (void)state;
    static const kivis_slice keys[] = {
        {"\xff", 1}, {"a", 1}, {"\x00", 1}, {"ab", 2}, {"\x00\x00", 2},
        {"\x01", 1}, {"\xff\x00", 2}, {"b", 1}, {"a\x00", 2}, {"\x80", 1},
        {"\x7f\xff", 2}, {"aa", 2},
    };
    size_t n = sizeof keys / sizeof keys[0];
    kivis_storage *pg = fresh("order_kv"), *mem;
    assert_int_equal(kivis_memory_open(NULL, &mem), KIVIS_OK);
    kivis_storage *both[2] = {pg, mem};
    for (int b = 0; b < 2; b++) {
        kivis_storage_txn *t;
        assert_int_equal(kivis_storage_begin(both[b], 0, &t), KIVIS_OK);
        for (size_t i = 0; i < n; i++)
            assert_int_equal(kivis_txn_put(t, keys[i], S("v")), KIVIS_OK);
        assert_int_equal(kivis_txn_commit(t, KIVIS_SYNC), KIVIS_OK);
    }
    char *pg_dump = kt_dump(pg), *mem_dump = kt_dump(mem);
    assert_string_equal(pg_dump, mem_dump);
    free(pg_dump);
    free(mem_dump);
    kivis_storage_close(pg);
    kivis_storage_close(mem);
}

/* The table is created when missing; a user who may not create it gets
 * KIVIS_EINVAL and the server's reason, and opens it once it exists and he
 * has the rights on it. */
static void test_table_creation_and_rights(void **state)
{
    (void)state;
    kt_pg_exec("DROP TABLE IF EXISTS rights_kv");
    kt_pg_exec("DROP ROLE IF EXISTS weak");
    kt_pg_exec("CREATE ROLE weak LOGIN");
    kivis_postgres_options o = {NULL, NULL, "rights_kv", 0};
    kivis_storage *st = NULL;
    const char *weak = kt_pg_conninfo("postgres", "weak");
    assert_int_equal(kivis_postgres_open(weak, &o, &st), KIVIS_EINVAL);
    assert_null(st);
    assert_non_null(strstr(kivis_postgres_errmsg(), "permission denied"));

    kivis_postgres_options nowhere = {NULL, "no_such_schema", "kv", 0};
    assert_int_equal(kivis_postgres_open(kt_pg_start(), &nowhere, &st), KIVIS_EINVAL);
    assert_non_null(strstr(kivis_postgres_errmsg(), "no_such_schema"));

    st = open_table(kt_pg_start(), "rights_kv"); /* created by the superuser */
    put_commit(st, S("k"), S("v"));
    kivis_storage_close(st);
    kt_pg_exec("GRANT SELECT, INSERT, UPDATE, DELETE ON rights_kv TO weak");
    st = open_table(weak, "rights_kv");
    char buf[8];
    assert_int_equal(kt_get_once(st, S("k"), buf, sizeof buf), KIVIS_OK);
    assert_string_equal(buf, "v");
    kivis_storage_close(st);
    kt_pg_exec("DROP TABLE rights_kv");
    kt_pg_exec("DROP ROLE weak");
}

/* ---- concurrency -------------------------------------------------------- */

/* Two writers read and write the same key: the second commit is
 * KIVIS_ECONFLICT and applies nothing. */
static void test_conflict_is_econflict(void **state)
{
    (void)state;
    kivis_storage *a = fresh("conflict_kv"), *b = open_table(kt_pg_start(), "conflict_kv");
    kt_conflicting_writers(a, b);
    kivis_storage_close(a);
    kivis_storage_close(b);
}

/* The same through the record engine: kivis_commit says KIVIS_ECONFLICT. */
static void test_conflict_through_record_engine(void **state)
{
    (void)state;
    kivis_storage *a = fresh("conflict_db"), *b = open_table(kt_pg_start(), "conflict_db");
    kivis_db *da, *db;
    assert_int_equal(kivis_open(a, &pets_schema, NULL, &da), KIVIS_OK);
    assert_int_equal(kivis_open(b, &pets_schema, NULL, &db), KIVIS_OK);
    user_key k = kt_put_user(da, "counter", 0);
    user ua, ub;
    assert_int_equal(kivis_begin(da), KIVIS_OK);
    assert_int_equal(kivis_begin(db), KIVIS_OK);
    assert_int_equal(kivis_get(da, PETS_USER, &k, &ua), KIVIS_OK);
    assert_int_equal(kivis_get(db, PETS_USER, &k, &ub), KIVIS_OK);
    ua.age++;
    ub.age++;
    assert_int_equal(kivis_insert(da, PETS_USER, &k, &ua), KIVIS_OK);
    assert_int_equal(kivis_insert(db, PETS_USER, &k, &ub), KIVIS_OK);
    assert_int_equal(kivis_commit(da), KIVIS_OK);
    assert_int_equal(kivis_commit(db), KIVIS_ECONFLICT);
    kivis_record_clear(da, PETS_USER, &ua);
    kivis_record_clear(db, PETS_USER, &ub);
    assert_int_equal(kivis_get(da, PETS_USER, &k, &ua), KIVIS_OK);
    assert_int_equal(ua.age, 1);
    kivis_record_clear(da, PETS_USER, &ua);
    kivis_close(da);
    kivis_close(db);
    kivis_storage_close(a);
    kivis_storage_close(b);
}

#define INCREMENTS 100

/* A child's storage: table arg on the test server, NULL when it fails. */
static kivis_storage *open_child_table(void *arg)
{
    kivis_postgres_options o = {NULL, NULL, arg, 0};
    kivis_storage *st = NULL;
    return kivis_postgres_open(kt_pg_start(), &o, &st) == KIVIS_OK ? st : NULL;
}

/* Two processes increment one counter: not one increment is lost.  The
 * parent's store is closed while they run, so that they inherit none of
 * its memory. */
static void test_two_process_counter(void **state)
{
    (void)state;
    kivis_storage *st = fresh("counter_kv");
    kivis_db *db;
    assert_int_equal(kivis_open(st, &pets_schema, NULL, &db), KIVIS_OK);
    user_key k = kt_put_user(db, "counter", 0);
    kivis_close(db);
    kivis_storage_close(st);
    kt_increments_in_processes(open_child_table, "counter_kv", k, 2, INCREMENTS);
    st = open_table(kt_pg_start(), "counter_kv");
    assert_int_equal(kivis_open(st, &pets_schema, NULL, &db), KIVIS_OK);
    user u;
    assert_int_equal(kivis_get(db, PETS_USER, &k, &u), KIVIS_OK);
    assert_int_equal(u.age, 2 * INCREMENTS);
    kivis_record_clear(db, PETS_USER, &u);
    kivis_close(db);
    kivis_storage_close(st);
}

/* ---- the network -------------------------------------------------------- */

static void test_refused_is_eunavailable(void **state)
{
    (void)state;
    kivis_storage *st = NULL;
    /* Port 1 on the loopback: nothing listens there. */
    assert_int_equal(kivis_postgres_open("host=127.0.0.1 port=1 connect_timeout=2",
                                         NULL, &st),
                     KIVIS_EUNAVAILABLE);
    assert_null(st);
    assert_true(strlen(kivis_postgres_errmsg()) > 0);
}

/* A write transaction whose server restarts under it: EUNAVAILABLE,
 * nothing applied, and the next transactions (a pooled connection too)
 * connect again on their own. */
static void test_restart_mid_transaction(void **state)
{
    (void)state;
    kivis_storage *st = fresh("restart_kv");
    char buf[8];
    assert_int_equal(kt_get_once(st, S("x"), buf, sizeof buf), KIVIS_NOTFOUND);
    kivis_storage_txn *t, *idle_holder;
    kivis_slice v;
    /* Two connections in use, so that the pool keeps two after. */
    assert_int_equal(kivis_storage_begin(st, 0, &t), KIVIS_OK);
    assert_int_equal(kivis_storage_begin(st, KIVIS_TXN_RDONLY, &idle_holder), KIVIS_OK);
    assert_int_equal(kivis_txn_get(idle_holder, S("x"), &v), KIVIS_NOTFOUND);
    kivis_txn_abort(idle_holder);
    assert_int_equal(kivis_txn_get(t, S("x"), &v), KIVIS_NOTFOUND);
    assert_int_equal(kivis_txn_put(t, S("x"), S("lost")), KIVIS_OK);
    kt_pg_restart(false);
    assert_int_equal(kivis_txn_commit(t, KIVIS_SYNC), KIVIS_EUNAVAILABLE);
    assert_int_equal(kt_get_once(st, S("x"), buf, sizeof buf), KIVIS_NOTFOUND);
    put_commit(st, S("x"), S("kept"));
    assert_int_equal(kt_get_once(st, S("x"), buf, sizeof buf), KIVIS_OK);
    assert_string_equal(buf, "kept");
    kivis_storage_close(st);
}

/* The server drops the connection right before commit (the backend is
 * terminated): EUNAVAILABLE, nothing applied, no SIGPIPE. */
static void test_connection_dropped_at_commit(void **state)
{
    (void)state;
    kt_pg_exec("DROP TABLE IF EXISTS dropped_kv");
    char conninfo[500];
    snprintf(conninfo, sizeof conninfo, "%s application_name=victim", kt_pg_start());
    kivis_storage *st = open_table(conninfo, "dropped_kv");
    kivis_storage_txn *t;
    kivis_slice v;
    assert_int_equal(kivis_storage_begin(st, 0, &t), KIVIS_OK);
    assert_int_equal(kivis_txn_get(t, S("y"), &v), KIVIS_NOTFOUND);
    assert_int_equal(kivis_txn_put(t, S("y"), S("lost")), KIVIS_OK);
    assert_int_equal(kivis_txn_put(t, S("z"), S("lost")), KIVIS_OK);
    kt_pg_exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
               "WHERE application_name = 'victim'");
    assert_int_equal(kivis_txn_commit(t, KIVIS_SYNC), KIVIS_EUNAVAILABLE);
    char buf[8];
    assert_int_equal(kt_get_once(st, S("y"), buf, sizeof buf), KIVIS_NOTFOUND);
    assert_int_equal(kt_get_once(st, S("z"), buf, sizeof buf), KIVIS_NOTFOUND);
    put_commit(st, S("y"), S("kept"));
    kivis_storage_close(st);
}

#define WORKLOAD_TXNS 300
#define CRASH_AFTER 60

static int commit_pair(kivis_storage *st, unsigned i)
{
    char a[16], b[16], v[16];
    int la = snprintf(a, sizeof a, "a%05u", i), lb = snprintf(b, sizeof b, "b%05u", i);
    int lv = snprintf(v, sizeof v, "%u", i);
    kivis_storage_txn *t;
    int rc = kivis_storage_begin(st, 0, &t);
    if (rc != KIVIS_OK)
        return rc;
    rc = kivis_txn_put(t, kivis_slice_make(a, (size_t)la), kivis_slice_make(v, (size_t)lv));
    if (rc == KIVIS_OK)
        rc = kivis_txn_put(t, kivis_slice_make(b, (size_t)lb),
                           kivis_slice_make(v, (size_t)lv));
    if (rc != KIVIS_OK) {
        kivis_txn_abort(t);
        return rc;
    }
    return kivis_txn_commit(t, KIVIS_SYNC);
}

/* The workload: each transaction writes two keys; every commit reported
 * OK is written to `out`.  Unavailable: wait and retry the transaction. */
static void workload_child(int out)
{
    kivis_storage *st;
    kivis_postgres_options o = {NULL, NULL, "workload_kv", 0};
    if (kivis_postgres_open(kt_pg_start(), &o, &st) != KIVIS_OK)
        _exit(1);
    time_t deadline = time(NULL) + 60;
    for (unsigned i = 0; i < WORKLOAD_TXNS;) {
        int rc = commit_pair(st, i);
        if (rc == KIVIS_OK) {
            if (write(out, &i, sizeof i) != sizeof i)
                _exit(1);
            i++;
        } else if (rc != KIVIS_EUNAVAILABLE || time(NULL) > deadline) {
            fprintf(stderr, "workload: %s\n", kivis_errname(rc));
            _exit(1);
        } else {
            nanosleep(&(struct timespec){0, 20000000L}, NULL);
        }
    }
    kivis_storage_close(st);
    _exit(0);
}

/* The server crashes (immediate stop) in the middle of a workload: every
 * transaction reported committed is there afterwards, and none is there
 * by half. */
static void test_crash_in_workload(void **state)
{
    (void)state;
    kivis_storage_close(fresh("workload_kv"));
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t kid = fork();
    assert_true(kid >= 0);
    if (kid == 0) {
        close(fds[0]);
        workload_child(fds[1]);
    }
    close(fds[1]);
    unsigned i, reported = 0;
    bool seen[WORKLOAD_TXNS] = {false};
    while (read(fds[0], &i, sizeof i) == sizeof i) {
        assert_true(i < WORKLOAD_TXNS);
        seen[i] = true;
        if (++reported == CRASH_AFTER)
            kt_pg_restart(true);
    }
    close(fds[0]);
    int status;
    assert_int_equal(waitpid(kid, &status, 0), kid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    kivis_storage *st = open_table(kt_pg_start(), "workload_kv");
    for (i = 0; i < WORKLOAD_TXNS; i++) {
        char a[16], b[16], va[16], vb[16];
        snprintf(a, sizeof a, "a%05u", i);
        snprintf(b, sizeof b, "b%05u", i);
        int ra = kt_get_once(st, kivis_slice_make(a, 6), va, sizeof va);
        int rb = kt_get_once(st, kivis_slice_make(b, 6), vb, sizeof vb);
        assert_int_equal(ra, rb);
        if (seen[i])
            assert_int_equal(ra, KIVIS_OK);
    }
    kivis_storage_close(st);
}

/* ---- faults through the faulty backend ---------------------------------- */

/* Each write of a record-engine transaction in turn fails (as a conflict
 * or a lost server would): the transaction reports it, nothing of it is
 * stored, and the next one goes through. */
static void test_faults_over_postgres(void **state)
{
    (void)state;
    kivis_storage *pg = fresh("faulty_kv"), *st;
    assert_int_equal(kivis_faulty_open(pg, NULL, &st), KIVIS_OK);
    kivis_db *db;
    assert_int_equal(kivis_open(st, &pets_schema, NULL, &db), KIVIS_OK);
    static const int faults[] = {KIVIS_ECONFLICT, KIVIS_EUNAVAILABLE};
    for (unsigned n = 1; n <= 6; n++) {
        int fault = faults[n % 2];
        kivis_faulty_fail(st, KIVIS_FAULT_WRITE, n, fault);
        int rc = kivis_begin(db);
        for (int i = 0; rc == KIVIS_OK && i < 2; i++) {
            user u = {"faulted", "f@example.org", (uint32_t)i};
            rc = kivis_put(db, PETS_USER, &u, NULL);
        }
        if (rc == KIVIS_OK)
            rc = kivis_commit(db);
        else
            kivis_abort(db);
        kivis_faulty_fail(st, KIVIS_FAULT_WRITE, 0, 0);
        if (rc == KIVIS_OK)
            continue; /* n past this transaction's writes */
        assert_int_equal(rc, fault);
        assert_int_equal(kt_users_named(db, "faulted"), 0);
    }
    kt_put_user(db, "after", 1);
    assert_int_equal(kt_users_named(db, "after"), 1);
    kivis_close(db);
    kivis_storage_close(st);
}

int main(void)
{
    signal(SIGPIPE, SIG_DFL); /* a SIGPIPE must kill the test, not hide */
    kt_pg_start();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_matches_memory),
        cmocka_unit_test(test_table_creation_and_rights),
        cmocka_unit_test(test_conflict_is_econflict),
        cmocka_unit_test(test_conflict_through_record_engine),
        cmocka_unit_test(test_two_process_counter),
        cmocka_unit_test(test_refused_is_eunavailable),
        cmocka_unit_test(test_restart_mid_transaction),
        cmocka_unit_test(test_connection_dropped_at_commit),
        cmocka_unit_test(test_crash_in_workload),
        cmocka_unit_test(test_faults_over_postgres),
    };
    return cmocka_run_group_tests_name("postgres", tests, NULL, NULL);
}
