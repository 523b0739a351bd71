/*
 * Counts, existence and distinct index values (kivis_count, kivis_exists,
 * kivis_distinct_*), on every backend: each figure is checked against what
 * a decoding scan of the same range returns, on empty tables, in ranges,
 * and inside a write transaction that sees its own writes.
 *
 *   test_count            every backend
 *   test_count BACKEND    one of memory, lmdb, sqlite, rocksdb, layered,
 *                         postgres
 */
#define KT_WITH_ETCD /* the programs that run on etcd too */
#include "backends.h"

#include <kivis.h>
#include <kivis/etcd.h>
#include <kivis/layered.h>
#include <kivis/lmdb.h>
#include <kivis/memory.h>
#include <kivis/postgres.h>
#include <kivis/rocksdb.h>
#include <kivis/sqlite.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers --------------------------------------------------------------- */

enum { NUSERS = 60, NNAMES = 7 };

/* User i is named "n<i % 7>" (ages i): names n0..n6, n0 nine times, the
 * others eight or nine. */
static void put_users(kivis_db *db)
{
    char name[16];
    for (int i = 0; i < NUSERS; i++) {
        snprintf(name, sizeof name, "n%d", i % NNAMES);
        kt_put_user(db, name, (uint32_t)i);
    }
}

static uint64_t count(kivis_db *db, const kivis_query *q)
{
    uint64_t n = 12345;
    assert_int_equal(kivis_count(db, q, &n), KIVIS_OK);
    return n;
}

/* The same range walked by a scan that decodes every key and record. */
static uint64_t decoded(kivis_db *db, const kivis_query *q)
{
    kivis_scan *s;
    assert_int_equal(kivis_scan_open(db, q, &s), KIVIS_OK);
    uint64_t n = 0;
    int rc;
    user_key k;
    user u;
    while ((rc = kivis_scan_next(s, &k, &u)) == KIVIS_OK) {
        kivis_record_clear(db, PETS_USER, &u);
        n++;
    }
    assert_int_equal(rc, KIVIS_NOTFOUND);
    kivis_scan_close(s);
    return n;
}

/* kivis_count of q equals `want` and the decoding scan's figure. */
static void assert_count(kivis_db *db, const kivis_query *q, uint64_t want)
{
    assert_int_equal(count(db, q), want);
    assert_int_equal(decoded(db, q), want);
}

static kivis_query users_all(void)
{
    return (kivis_query){PETS_USER, -1, KIVIS_Q_ALL, NULL, NULL, NULL, 0, 0};
}

static kivis_query names_eq(const char **name)
{
    return (kivis_query){PETS_USER, USER_BY_NAME, KIVIS_Q_EQ, name, NULL, NULL, 0, 0};
}

static kivis_query names_range(const char **lo, const char **hi)
{
    return (kivis_query){PETS_USER, USER_BY_NAME, KIVIS_Q_RANGE, lo, hi, NULL, 0, 0};
}

/* Users named "n<j>" among the first n put by put_users. */
static uint64_t named(int n, int j)
{
    return (uint64_t)(n / NNAMES + (j < n % NNAMES));
}

/* ---- counts ------------------------------------------------------------------ */

static void test_count_empty(void **state)
{
    fx *f = *state;
    kivis_query q = users_all();
    assert_count(f->db, &q, 0);
    const char *name = "n1";
    q = names_eq(&name);
    assert_count(f->db, &q, 0);
    q = names_range(NULL, NULL);
    assert_count(f->db, &q, 0);
    kivis_query pets = {PETS_PET, PET_BY_FAVOURITE_TOY, KIVIS_Q_ALL, NULL, NULL, NULL, 0, 0};
    assert_int_equal(count(f->db, &pets), 0);
    user_key k = {1};
    assert_int_equal(kivis_exists(f->db, PETS_USER, &k), KIVIS_NOTFOUND);
}

static void test_count_table_value_and_ranges(void **state)
{
    fx *f = *state;
    put_users(f->db);
    kivis_query q = users_all();
    assert_count(f->db, &q, NUSERS);
    char name[16];
    const char *p = name;
    for (int j = 0; j < NNAMES; j++) {
        snprintf(name, sizeof name, "n%d", j);
        q = names_eq(&p);
        assert_count(f->db, &q, named(NUSERS, j));
    }
    const char *none = "n";
    q = names_eq(&none);
    assert_count(f->db, &q, 0);
    const char *lo = "n2", *hi = "n5";
    q = names_range(&lo, &hi); /* n2, n3, n4 */
    assert_count(f->db, &q, named(NUSERS, 2) + named(NUSERS, 3) + named(NUSERS, 4));
    q = names_range(&lo, NULL);
    assert_count(f->db, &q, NUSERS - named(NUSERS, 0) - named(NUSERS, 1));
    q = names_range(NULL, &lo);
    assert_count(f->db, &q, named(NUSERS, 0) + named(NUSERS, 1));
    q = names_range(&hi, &lo); /* empty: lo above hi */
    assert_count(f->db, &q, 0);
    q = (kivis_query){PETS_USER, USER_BY_NAME, KIVIS_Q_PREFIX, NULL, NULL, "n", 1, 0};
    assert_count(f->db, &q, NUSERS);
    user_key k10 = {10}, k25 = {25};
    q = (kivis_query){PETS_USER, -1, KIVIS_Q_RANGE, &k10, &k25, NULL, 0, 0};
    assert_count(f->db, &q, 15);
    q.flags = KIVIS_REVERSE;
    assert_count(f->db, &q, 15);
}

/* A write transaction counts its own writes; the abort takes them back. */
static void test_count_sees_own_writes(void **state)
{
    fx *f = *state;
    put_users(f->db);
    const char *n3 = "n3", *zed = "zed";
    kivis_query all = users_all(), q3 = names_eq(&n3), qz = names_eq(&zed);
    assert_int_equal(kivis_begin(f->db), KIVIS_OK);
    kt_put_user(f->db, "zed", 1);
    kt_put_user(f->db, "zed", 2);
    user_key first = {1}, fourth = {4}; /* n0 and n3 */
    assert_int_equal(kivis_remove(f->db, PETS_USER, &first), KIVIS_OK);
    assert_int_equal(kivis_remove(f->db, PETS_USER, &fourth), KIVIS_OK);
    assert_count(f->db, &all, NUSERS); /* two added, two removed */
    assert_count(f->db, &q3, named(NUSERS, 3) - 1);
    assert_count(f->db, &qz, 2);
    assert_int_equal(kivis_exists(f->db, PETS_USER, &first), KIVIS_NOTFOUND);
    user_key zk = {NUSERS + 1};
    assert_int_equal(kivis_exists(f->db, PETS_USER, &zk), KIVIS_OK);
    kivis_abort(f->db);
    assert_count(f->db, &all, NUSERS);
    assert_count(f->db, &q3, named(NUSERS, 3));
    assert_count(f->db, &qz, 0);
    assert_int_equal(kivis_exists(f->db, PETS_USER, &first), KIVIS_OK);
    assert_int_equal(kivis_exists(f->db, PETS_USER, &zk), KIVIS_NOTFOUND);
}

static void test_count_refuses_bad_queries(void **state)
{
    fx *f = *state;
    kivis_query q = users_all();
    uint64_t n = 7;
    assert_int_equal(kivis_count(f->db, &q, NULL), KIVIS_EINVAL);
    assert_int_equal(kivis_count(NULL, &q, &n), KIVIS_EINVAL);
    assert_int_equal(n, 0);
    n = 7;
    assert_int_equal(kivis_count(f->db, NULL, &n), KIVIS_EINVAL);
    assert_int_equal(n, 0);
    q.index = 3;
    assert_int_equal(kivis_count(f->db, &q, &n), KIVIS_EINVAL);
    assert_non_null(strstr(kivis_errmsg(f->db), "no index 3"));
    q = (kivis_query){PETS_USER, USER_BY_NAME, KIVIS_Q_EQ, NULL, NULL, NULL, 0, 0};
    assert_int_equal(kivis_count(f->db, &q, &n), KIVIS_EINVAL);
    user_key k = {1};
    assert_int_equal(kivis_exists(f->db, 9, &k), KIVIS_EINVAL);
    assert_int_equal(kivis_exists(f->db, PETS_USER, NULL), KIVIS_EINVAL);
}

/* ---- existence --------------------------------------------------------------- */

static void test_exists(void **state)
{
    fx *f = *state;
    user_key k = kt_put_user(f->db, "ann", 1), other = {k.id + 1};
    assert_int_equal(kivis_exists(f->db, PETS_USER, &k), KIVIS_OK);
    assert_int_equal(kivis_exists(f->db, PETS_USER, &other), KIVIS_NOTFOUND);
    toy_key tk = {TOY_MOUSE, 3};
    assert_int_equal(kivis_exists(f->db, PETS_TOY, &tk), KIVIS_NOTFOUND);
    toy t = {TOY_MOUSE, 3};
    assert_int_equal(kivis_put(f->db, PETS_TOY, &t, NULL), KIVIS_OK);
    assert_int_equal(kivis_exists(f->db, PETS_TOY, &tk), KIVIS_OK);
    assert_int_equal(kivis_remove(f->db, PETS_USER, &k), KIVIS_OK);
    assert_int_equal(kivis_exists(f->db, PETS_USER, &k), KIVIS_NOTFOUND);
}

/* ---- distinct values ------------------------------------------------------------ */

/* The distinct names of q without their counts (count NULL: one seek a
 * group), checked as walk_names does. */
static int seek_names(kivis_db *db, const kivis_query *q, int first, int step)
{
    kivis_distinct *d;
    assert_int_equal(kivis_distinct_open(db, q, &d), KIVIS_OK);
    const char *name;
    int groups = 0, rc;
    char want[16];
    while ((rc = kivis_distinct_next(d, &name, NULL)) == KIVIS_OK) {
        snprintf(want, sizeof want, "n%d", first + step * groups++);
        assert_string_equal(name, want);
    }
    assert_int_equal(rc, KIVIS_NOTFOUND);
    kivis_distinct_close(d);
    return groups;
}

/* Walk the distinct names of q, checking each against put_users' numbers
 * (value and count), `first` the first name expected, `step` +1 or -1;
 * the same without counts must give the same names. */
static int walk_names(kivis_db *db, const kivis_query *q, int first, int step)
{
    kivis_distinct *d;
    assert_int_equal(kivis_distinct_open(db, q, &d), KIVIS_OK);
    const char *name;
    uint64_t n;
    int groups = 0, rc;
    char want[16];
    while ((rc = kivis_distinct_next(d, &name, &n)) == KIVIS_OK) {
        int j = first + step * groups++;
        snprintf(want, sizeof want, "n%d", j);
        assert_string_equal(name, want);
        assert_int_equal(n, named(NUSERS, j));
    }
    assert_int_equal(rc, KIVIS_NOTFOUND);
    assert_null(name);
    assert_int_equal(n, 0);
    assert_int_equal(kivis_distinct_next(d, &name, &n), KIVIS_NOTFOUND);
    kivis_distinct_close(d);
    assert_int_equal(seek_names(db, q, first, step), groups);
    return groups;
}

static void test_distinct_names(void **state)
{
    fx *f = *state;
    kivis_query q = names_range(NULL, NULL);
    assert_int_equal(walk_names(f->db, &q, 0, 1), 0); /* empty */
    put_users(f->db);
    assert_int_equal(walk_names(f->db, &q, 0, 1), NNAMES);
    const char *lo = "n2", *hi = "n5";
    q = names_range(&lo, &hi);
    assert_int_equal(walk_names(f->db, &q, 2, 1), 3);
    q.flags = KIVIS_REVERSE;
    assert_int_equal(walk_names(f->db, &q, 4, -1), 3);
    q = names_eq(&lo);
    assert_int_equal(walk_names(f->db, &q, 2, 1), 1);
    /* one user per name: groups of one, the last entry its own group */
    kt_put_user(f->db, "z", 0);
    kivis_distinct *d;
    q = names_range(&hi, NULL);
    assert_int_equal(kivis_distinct_open(f->db, &q, &d), KIVIS_OK);
    const char *name;
    uint64_t n, total = 0;
    int groups = 0;
    while (kivis_distinct_next(d, &name, &n) == KIVIS_OK) {
        groups++;
        total += n;
    }
    assert_string_equal(name ? name : "", ""); /* zeroed at the end */
    kivis_distinct_close(d);
    assert_int_equal(groups, 3); /* n5, n6, z */
    assert_int_equal(total, named(NUSERS, 5) + named(NUSERS, 6) + 1);
}

/* A struct-valued index: pets grouped by favourite toy. */
static void test_distinct_struct_values(void **state)
{
    fx *f = *state;
    toy_key toys[] = {{TOY_BALL, 1}, {TOY_BALL, 2}, {TOY_MOUSE, 1}};
    unsigned want[] = {3, 1, 2};
    user_key owner = kt_put_user(f->db, "ann", 30);
    for (unsigned t = 0; t < 3; t++)
        for (unsigned i = 0; i < want[t]; i++) {
            pet p = {"rex", owner, toys[t], false, 0};
            assert_int_equal(kivis_put(f->db, PETS_PET, &p, NULL), KIVIS_OK);
        }
    kivis_query q = {PETS_PET, PET_BY_FAVOURITE_TOY, KIVIS_Q_ALL, NULL, NULL, NULL, 0, 0};
    kivis_distinct *d;
    assert_int_equal(kivis_distinct_open(f->db, &q, &d), KIVIS_OK);
    toy_key v;
    uint64_t n;
    for (unsigned t = 0; t < 3; t++) {
        assert_int_equal(kivis_distinct_next(d, &v, &n), KIVIS_OK);
        assert_int_equal(v.kind, toys[t].kind);
        assert_int_equal(v.color, toys[t].color);
        assert_int_equal(n, want[t]);
    }
    assert_int_equal(kivis_distinct_next(d, NULL, NULL), KIVIS_NOTFOUND);
    kivis_distinct_close(d);
    assert_int_equal(count(f->db, &q), 6);
    q.mode = KIVIS_Q_EQ;
    q.lo = &toys[2];
    assert_int_equal(count(f->db, &q), 2);
}

/* Inside a write transaction it sees the writes, and ends with it. */
static void test_distinct_in_txn(void **state)
{
    fx *f = *state;
    put_users(f->db);
    assert_int_equal(kivis_begin(f->db), KIVIS_OK);
    kt_put_user(f->db, "n0", 100);
    kt_put_user(f->db, "a", 100);
    kivis_query q = names_range(NULL, NULL);
    kivis_distinct *d;
    assert_int_equal(kivis_distinct_open(f->db, &q, &d), KIVIS_OK);
    const char *name;
    uint64_t n;
    assert_int_equal(kivis_distinct_next(d, &name, &n), KIVIS_OK);
    assert_string_equal(name, "a");
    assert_int_equal(n, 1);
    assert_int_equal(kivis_distinct_next(d, &name, &n), KIVIS_OK);
    assert_string_equal(name, "n0");
    assert_int_equal(n, named(NUSERS, 0) + 1);
    /* names written after it opened are not visited, sought or stepped */
    kt_put_user(f->db, "n1", 101);
    kt_put_user(f->db, "n10", 101);
    kt_put_user(f->db, "n4", 101);
    assert_int_equal(kivis_distinct_next(d, &name, NULL), KIVIS_OK);
    assert_string_equal(name, "n1");
    assert_int_equal(kivis_distinct_next(d, &name, &n), KIVIS_OK);
    assert_string_equal(name, "n2");
    assert_int_equal(n, named(NUSERS, 2));
    assert_int_equal(kivis_distinct_next(d, &name, NULL), KIVIS_OK);
    assert_string_equal(name, "n3");
    assert_int_equal(kivis_distinct_next(d, &name, &n), KIVIS_OK);
    assert_string_equal(name, "n4");
    assert_int_equal(n, named(NUSERS, 4));
    assert_int_equal(kivis_commit(f->db), KIVIS_OK);
    assert_int_equal(kivis_distinct_next(d, &name, &n), KIVIS_EINVAL);
    kivis_distinct_close(d);
    /* and one left open over kivis_close is only closed */
    assert_int_equal(kivis_distinct_open(f->db, &q, &d), KIVIS_OK);
    assert_int_equal(kivis_distinct_next(d, &name, &n), KIVIS_OK);
    kivis_close(f->db);
    f->db = NULL;
    assert_int_equal(kivis_distinct_next(d, &name, &n), KIVIS_EINVAL);
    kivis_distinct_close(d);
    assert_int_equal(kivis_open(f->st, &pets_schema, NULL, &f->db), KIVIS_OK);
}

static void test_distinct_refuses_record_queries(void **state)
{
    fx *f = *state;
    kivis_query q = users_all();
    kivis_distinct *d = (kivis_distinct *)&q;
    assert_int_equal(kivis_distinct_open(f->db, &q, &d), KIVIS_EINVAL);
    assert_null(d);
    assert_int_equal(kivis_distinct_open(f->db, NULL, &d), KIVIS_EINVAL);
    assert_int_equal(kivis_distinct_next(NULL, NULL, NULL), KIVIS_EINVAL);
    kivis_distinct_close(NULL);
}

/* ---- key-only index scans ------------------------------------------------------- */

/* An index scan with record_out NULL yields every key without fetching a
 * record: it passes over an entry whose record is gone (the storage
 * edited under the engine), which a fetching scan reports as corrupt. */
static void test_key_only_index_scan_fetches_nothing(void **state)
{
    fx *f = *state;
    put_users(f->db);
    /* remove every record key of the user table from under the index */
    kivis_storage_txn *t;
    assert_int_equal(kivis_storage_begin(f->st, 0, &t), KIVIS_OK);
    kivis_storage_cursor *c;
    assert_int_equal(kivis_txn_cursor(t, kivis_slice_make(NULL, 0),
                                      kivis_slice_make(NULL, 0), &c), KIVIS_OK);
    /* the record keys are tableid | 0x00 | 8-byte id: 10 bytes for user
     * (table id 1); index entries carry a name and are longer */
    kivis_slice k, v;
    int removed = 0;
    while (kivis_cursor_get(c, KIVIS_NEXT, &k, &v) == KIVIS_OK) {
        const uint8_t *b = k.data;
        if (k.len == 10 && b[0] == 1 && b[1] == 0) {
            assert_int_equal(kivis_txn_del(t, k), KIVIS_OK);
            removed++;
        }
    }
    kivis_cursor_close(c);
    assert_int_equal(kivis_txn_commit(t, KIVIS_SYNC), KIVIS_OK);
    assert_int_equal(removed, NUSERS);
    kivis_query all = users_all(), names = names_range(NULL, NULL);
    assert_int_equal(count(f->db, &all), 0);
    kivis_scan *s;
    assert_int_equal(kivis_scan_open(f->db, &names, &s), KIVIS_OK);
    user_key key;
    uint64_t keys = 0;
    int rc;
    while ((rc = kivis_scan_next(s, &key, NULL)) == KIVIS_OK)
        keys++;
    assert_int_equal(rc, KIVIS_NOTFOUND);
    kivis_scan_close(s);
    assert_int_equal(keys, NUSERS);
    assert_int_equal(count(f->db, &names), NUSERS);
    assert_int_equal(kivis_scan_open(f->db, &names, &s), KIVIS_OK);
    user u;
    assert_int_equal(kivis_scan_next(s, &key, &u), KIVIS_ECORRUPT);
    kivis_scan_close(s);
}

#define T(fn) KT_BACKEND_TEST(fn)

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        T(test_count_empty),
        T(test_count_table_value_and_ranges),
        T(test_count_sees_own_writes),
        T(test_count_refuses_bad_queries),
        T(test_exists),
        T(test_distinct_names),
        T(test_distinct_struct_values),
        T(test_distinct_in_txn),
        T(test_distinct_refuses_record_queries),
        T(test_key_only_index_scan_fetches_nothing),
    };
    return kt_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
