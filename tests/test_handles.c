/*
 * Handles meeting each other, on every backend: scans that outlive their
 * db, a storage closed under its dbs, and scans in a write transaction that
 * write into their own range (the Halloween problem: a scan must visit the
 * keys its range held when it opened, each once, whatever the loop writes).
 *
 *   test_handles            every backend
 *   test_handles BACKEND    one of memory, lmdb, sqlite, rocksdb, layered,
 *                           postgres (on a private server, pgserver.h)
 */
#include "backends.h"

#include <kivis.h>
#include <kivis/layered.h>
#include <kivis/lmdb.h>
#include <kivis/memory.h>
#include <kivis/postgres.h>
#include <kivis/rocksdb.h>
#include <kivis/sqlite.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- misuse: closing in the wrong order ---------------------------------- */

static kivis_scan *open_user_scan(kivis_db *db)
{
    kivis_query q = {PETS_USER, -1, KIVIS_Q_ALL, NULL, NULL, NULL, 0, 0};
    kivis_scan *s;
    assert_int_equal(kivis_scan_open(db, &q, &s), KIVIS_OK);
    return s;
}

/* A scan outside a transaction holds a read transaction of its own;
 * kivis_close ends it, and the scan can then only be closed. */
static void test_close_db_under_own_scan(void **state)
{
    fx *f = *state;
    kt_put_user(f->db, "ann", 1);
    kt_put_user(f->db, "bob", 2);
    kivis_scan *s = open_user_scan(f->db);
    user_key k;
    user u;
    assert_int_equal(kivis_scan_next(s, &k, &u), KIVIS_OK);
    kivis_record_clear(f->db, PETS_USER, &u);
    kivis_close(f->db);
    f->db = NULL;
    assert_int_equal(kivis_scan_next(s, &k, &u), KIVIS_EINVAL);
    assert_null(u.name);
    char buf[64];
    assert_int_equal(kivis_scan_next_into(s, &k, &u, buf, sizeof buf), KIVIS_EINVAL);
    kivis_scan_close(s); /* frees the scan alone, with the db's allocator */
    /* The scan's reader is gone: a writer on a new handle commits. */
    assert_int_equal(kivis_open(f->st, &pets_schema, NULL, &f->db), KIVIS_OK);
    kt_put_user(f->db, "cy", 3);
    assert_int_equal(kt_users_named(f->db, "cy"), 1);
}

static void test_close_db_under_txn_scan(void **state)
{
    fx *f = *state;
    kt_put_user(f->db, "ann", 1);
    assert_int_equal(kivis_begin(f->db), KIVIS_OK);
    kt_put_user(f->db, "bob", 2);
    kivis_scan *s = open_user_scan(f->db);
    kivis_close(f->db); /* aborts the transaction: bob is not stored */
    f->db = NULL;
    user_key k;
    assert_int_equal(kivis_scan_next(s, &k, NULL), KIVIS_EINVAL);
    kivis_scan_close(s);
    assert_int_equal(kivis_open(f->st, &pets_schema, NULL, &f->db), KIVIS_OK);
    assert_int_equal(kt_users_named(f->db, "ann"), 1);
    assert_int_equal(kt_users_named(f->db, "bob"), 0);
}

static void test_storage_close_refused_while_dbs_are_open(void **state)
{
    fx *f = *state;
    kivis_db *second;
    assert_int_equal(kivis_open(f->st, &pets_schema, NULL, &second), KIVIS_OK);
    assert_int_equal(kivis_storage_close(f->st), KIVIS_EBUSY);
    kivis_close(second);
    assert_int_equal(kivis_storage_close(f->st), KIVIS_EBUSY);
    /* Refused means untouched: the handle still works. */
    kt_put_user(f->db, "ann", 1);
    assert_int_equal(kt_users_named(f->db, "ann"), 1);
    /* A failed open leaves no count behind. */
    kivis_schema_desc renamed = pets_schema;
    renamed.ntables = 0;
    assert_int_not_equal(kivis_open(f->st, &renamed, NULL, &second), KIVIS_OK);
    kivis_close(f->db);
    f->db = NULL;
    assert_int_equal(kivis_storage_close(f->st), KIVIS_OK);
    assert_int_equal(kt_backend_open(f->dir, &f->st), KIVIS_OK); /* for teardown */
}

/* ---- scans that write into their own range ------------------------------- */

enum { NUSERS = 40 };

static void put_users(kivis_db *db)
{
    char name[16];
    for (int i = 0; i < NUSERS; i++) {
        snprintf(name, sizeof name, "n%03d", i * 10);
        kt_put_user(db, name, (uint32_t)i);
    }
}

/* Walk the name index inside a write transaction, renaming each visited
 * user by `shift` (in tens: +1 lands between this name and the next, +100
 * beyond every name, negative ones behind).  Returns the visits. */
static int rename_while_scanning(kivis_db *db, int shift, bool reverse)
{
    assert_int_equal(kivis_begin(db), KIVIS_OK);
    kivis_query q = {PETS_USER, USER_BY_NAME, KIVIS_Q_ALL, NULL, NULL, NULL, 0,
                     reverse ? KIVIS_REVERSE : 0};
    kivis_scan *s;
    assert_int_equal(kivis_scan_open(db, &q, &s), KIVIS_OK);
    int visits = 0, rc;
    user_key k;
    user u;
    char name[16];
    while (visits <= 4 * NUSERS && (rc = kivis_scan_next(s, &k, &u)) == KIVIS_OK) {
        visits++;
        int n = atoi(u.name + 1);
        snprintf(name, sizeof name, "n%03d", n + shift);
        kivis_record_clear(db, PETS_USER, &u);
        user nu = {name, "x@example.org", 0};
        assert_int_equal(kivis_insert(db, PETS_USER, &k, &nu), KIVIS_OK);
    }
    kivis_scan_close(s);
    assert_int_equal(kivis_commit(db), KIVIS_OK);
    return visits;
}

/* Every user moved by shift exactly once: the names are the old ones + shift. */
static void assert_each_renamed_once(kivis_db *db, int shift)
{
    char name[16];
    for (int i = 0; i < NUSERS; i++) {
        snprintf(name, sizeof name, "n%03d", i * 10 + shift);
        assert_int_equal(kt_users_named(db, name), 1);
    }
}

static void test_rename_forward_between(void **state)
{
    fx *f = *state;
    put_users(f->db);
    assert_int_equal(rename_while_scanning(f->db, 1, false), NUSERS);
    assert_each_renamed_once(f->db, 1);
}

static void test_rename_forward_beyond(void **state)
{
    fx *f = *state;
    put_users(f->db);
    assert_int_equal(rename_while_scanning(f->db, 500, false), NUSERS);
    assert_each_renamed_once(f->db, 500);
}

static void test_rename_backward_in_reverse(void **state)
{
    fx *f = *state;
    put_users(f->db);
    assert_int_equal(rename_while_scanning(f->db, -1, true), NUSERS);
    assert_each_renamed_once(f->db, -1);
}

/* Moving behind a forward scan (or ahead of a reverse one) was always
 * safe; it stays exact. */
static void test_rename_behind(void **state)
{
    fx *f = *state;
    put_users(f->db);
    assert_int_equal(rename_while_scanning(f->db, -1, false), NUSERS);
    assert_each_renamed_once(f->db, -1);
    assert_int_equal(rename_while_scanning(f->db, 2, true), NUSERS);
    assert_each_renamed_once(f->db, 1);
}

/* A primary-key scan that inserts records ahead of itself (auto-increment
 * ids land past the last one) visits only those there at open; records it
 * removes before reaching them are not visited; a key removed and put back
 * is visited once. */
static void test_key_scan_inserts_and_removes(void **state)
{
    fx *f = *state;
    for (int i = 0; i < 10; i++)
        kt_put_user(f->db, "u", (uint32_t)i);
    assert_int_equal(kivis_begin(f->db), KIVIS_OK);
    kivis_scan *s = open_user_scan(f->db);
    user_key k, nine = {9}, five = {5};
    user u;
    assert_int_equal(kivis_remove(f->db, PETS_USER, &nine), KIVIS_OK);
    assert_int_equal(kivis_get(f->db, PETS_USER, &five, &u), KIVIS_OK);
    assert_int_equal(kivis_remove(f->db, PETS_USER, &five), KIVIS_OK);
    assert_int_equal(kivis_insert(f->db, PETS_USER, &five, &u), KIVIS_OK);
    kivis_record_clear(f->db, PETS_USER, &u);
    int visits = 0, rc;
    uint64_t seen = 0;
    while (visits < 100 && (rc = kivis_scan_next(s, &k, NULL)) == KIVIS_OK) {
        visits++;
        assert_true(k.id >= 1 && k.id <= 10);
        seen |= 1ull << k.id;
        kt_put_user(f->db, "new", 0);
    }
    assert_int_equal(rc, KIVIS_NOTFOUND);
    assert_int_equal(visits, 9); /* 1..10 without 9 */
    assert_true(seen == (0x7FEull & ~(1ull << 9)));
    kivis_scan_close(s);
    assert_int_equal(kivis_commit(f->db), KIVIS_OK);
    assert_int_equal(kt_users_named(f->db, "new"), 9);
}

#define T(fn) KT_BACKEND_TEST(fn)

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        T(test_close_db_under_own_scan),
        T(test_close_db_under_txn_scan),
        T(test_storage_close_refused_while_dbs_are_open),
        T(test_rename_forward_between),
        T(test_rename_forward_beyond),
        T(test_rename_backward_in_reverse),
        T(test_rename_behind),
        T(test_key_scan_inserts_and_removes),
    };
    return kt_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
