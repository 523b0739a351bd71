/*
 * Record scans outside a write transaction, on every backend: the path a
 * table scan takes when no write of its transaction can reach it (one
 * storage step and one decode an entry, the far bound compared once a
 * leaf on the memory backend).  Each test is an edge where that path
 * must still behave as the general one: a buffer too small midway, a
 * corrupt value, commits landing between two steps.
 *
 *   test_scan_plain            every backend
 *   test_scan_plain BACKEND    one of them (backends.h)
 */
#define _GNU_SOURCE /* memmem */
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

static kivis_scan *user_range(kivis_db *db, uint64_t lo, uint64_t hi,
                              uint32_t flags)
{
    user_key l = {lo}, h = {hi};
    kivis_query q = {PETS_USER, -1, KIVIS_Q_RANGE, &l, &h, NULL, 0, flags};
    kivis_scan *s;
    assert_int_equal(kivis_scan_open(db, &q, &s), KIVIS_OK);
    return s;
}

static void put_users(kivis_db *db, const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        kt_put_user(db, names[i], (uint32_t)i);
}

/* The next record into a buffer of `size` bytes: rc, and the key's id
 * (0 on a failure, whose outputs are zeroed). */
static void expect_next(kivis_scan *s, void *buf, size_t size, int rc,
                        uint64_t id, user *u)
{
    user_key k;
    assert_int_equal(kivis_scan_next_into(s, &k, u, buf, size), rc);
    assert_int_equal(k.id, id);
    if (rc != KIVIS_OK) {
        assert_null(u->name);
        assert_null(u->email);
    }
}

/* A record that does not fit midway: ETOOSMALL with both outputs zeroed,
 * then the same record again with room, and the scan goes on from it;
 * both ways. */
static void check_too_small_midway(kivis_db *db, uint32_t flags,
                                   const uint64_t order[3])
{
    kivis_scan *s = user_range(db, 1, 4, flags);
    user u;
    char buf[128], tiny[4];
    expect_next(s, buf, sizeof buf, KIVIS_OK, order[0], &u);
    expect_next(s, tiny, sizeof tiny, KIVIS_ETOOSMALL, 0, &u);
    expect_next(s, buf, sizeof buf, KIVIS_OK, order[1], &u);
    assert_string_equal(u.name, order[1] == 2 ? "a-long-name-2" : "ann");
    expect_next(s, buf, sizeof buf, KIVIS_OK, order[2], &u);
    expect_next(s, buf, sizeof buf, KIVIS_NOTFOUND, 0, &u);
    kivis_scan_close(s);
}

static void test_too_small_midway(void **state)
{
    fx *f = *state;
    static const char *const names[] = {"ann", "a-long-name-2", "cy", "dan"};
    put_users(f->db, names, 4);
    check_too_small_midway(f->db, 0, (const uint64_t[3]){1, 2, 3});
    check_too_small_midway(f->db, KIVIS_REVERSE, (const uint64_t[3]){3, 2, 1});
}

/* The storage key and value of the record whose value holds `text`. */
static void find_value(kivis_storage_txn *txn, const char *text, char *key,
                       size_t *klen, char *value, size_t *vlen)
{
    kivis_storage_cursor *c;
    assert_int_equal(kivis_txn_cursor(txn, kivis_slice_make(NULL, 0),
                                      kivis_slice_make(NULL, 0), &c),
                     KIVIS_OK);
    kivis_slice k, v;
    while (kivis_cursor_get(c, KIVIS_NEXT, &k, &v) == KIVIS_OK)
        if (v.len > strlen(text) && v.len <= 64 && k.len <= 64 &&
            memmem(v.data, v.len, text, strlen(text))) {
            memcpy(key, k.data, *klen = k.len);
            memcpy(value, v.data, *vlen = v.len);
            kivis_cursor_close(c);
            return;
        }
    fail_msg("no value holds %s", text);
}

/* Bytes that are not UTF-8 in a stored name: the scan reports the record
 * corrupt (outputs zeroed), and steps on past it to the next one. */
static void test_corrupt_value_midway(void **state)
{
    fx *f = *state;
    static const char *const names[] = {"ann", "bob-corrupt", "cy"};
    put_users(f->db, names, 3);
    kivis_storage_txn *txn;
    assert_int_equal(kivis_storage_begin(f->st, 0, &txn), KIVIS_OK);
    char key[64], value[64];
    size_t klen = 0, vlen = 0;
    find_value(txn, "bob-corrupt", key, &klen, value, &vlen);
    char *at = memmem(value, vlen, "bob-corrupt", 11);
    at[3] = (char)0xFF; /* never in UTF-8 */
    assert_int_equal(kivis_txn_put(txn, kivis_slice_make(key, klen),
                                   kivis_slice_make(value, vlen)),
                     KIVIS_OK);
    assert_int_equal(kivis_txn_commit(txn, KIVIS_SYNC), KIVIS_OK);

    kivis_scan *s = user_range(f->db, 1, 100, 0);
    user_key k;
    user u;
    char buf[128];
    expect_next(s, buf, sizeof buf, KIVIS_OK, 1, &u);
    expect_next(s, buf, sizeof buf, KIVIS_ECORRUPT, 0, &u);
    assert_non_null(strstr(kivis_errmsg(f->db), "corrupt"));
    assert_int_equal(kivis_scan_next(s, &k, &u), KIVIS_OK);
    assert_int_equal(k.id, 3);
    assert_string_equal(u.name, "cy");
    kivis_record_clear(f->db, PETS_USER, &u);
    assert_int_equal(kivis_scan_next(s, &k, NULL), KIVIS_NOTFOUND);
    kivis_scan_close(s);
}

/* Commits land between two steps of a scan in a read transaction: it
 * removes every record after the first and adds records past the scan's
 * bound.  Whatever the backend shows of them (a snapshot, or the
 * committed state), the scan returns ids in order, each once, and none at
 * or past its bound, although the leaf it was in was wholly inside the
 * bound when it left the first record. */
static void test_commits_between_steps(void **state)
{
    fx *f = *state;
    enum { N = 40, BOUND = N + 1 };
    for (int i = 0; i < N; i++)
        kt_put_user(f->db, "u", (uint32_t)i);
    assert_int_equal(kivis_begin_read(f->db), KIVIS_OK);
    kivis_scan *s = user_range(f->db, 1, BOUND, 0);
    user_key k;
    assert_int_equal(kivis_scan_next(s, &k, NULL), KIVIS_OK);
    assert_int_equal(k.id, 1);

    kivis_db *writer;
    assert_int_equal(kivis_open(f->st, &pets_schema, NULL, &writer), KIVIS_OK);
    assert_int_equal(kivis_begin(writer), KIVIS_OK);
    for (uint64_t id = 2; id <= N; id++) {
        user_key del = {id};
        assert_int_equal(kivis_remove(writer, PETS_USER, &del), KIVIS_OK);
    }
    for (uint64_t id = BOUND; id < BOUND + 8; id++) {
        user_key ins = {id};
        user u = {"past", "", 0};
        assert_int_equal(kivis_insert(writer, PETS_USER, &ins, &u), KIVIS_OK);
    }
    assert_int_equal(kivis_commit(writer), KIVIS_OK);
    kivis_close(writer);

    uint64_t last = 1;
    int rc;
    while ((rc = kivis_scan_next(s, &k, NULL)) == KIVIS_OK) {
        assert_true(k.id > last);
        assert_true(k.id < BOUND);
        last = k.id;
    }
    assert_int_equal(rc, KIVIS_NOTFOUND);
    kivis_scan_close(s);
    assert_int_equal(kivis_commit(f->db), KIVIS_OK);
}

enum { MANY = 100 }; /* users: more than a few runs of entries */

static void put_many(kivis_db *db)
{
    assert_int_equal(kivis_begin(db), KIVIS_OK);
    for (uint32_t i = 0; i < MANY; i++)
        kt_put_user(db, "u", i);
    assert_int_equal(kivis_commit(db), KIVIS_OK);
}

/* Scan [lo, hi) (both ways) and expect exactly its ids, then the end,
 * twice; with `tight` the record at index `tight` of the walk meets a
 * buffer too small first, and is returned again after. */
static void expect_ids(kivis_db *db, uint64_t lo, uint64_t hi, uint32_t flags,
                       size_t tight)
{
    kivis_scan *s = user_range(db, lo, hi, flags);
    bool reverse = flags & KIVIS_REVERSE;
    user u;
    char buf[128], tiny[4];
    for (uint64_t i = 0; i < hi - lo; i++) {
        uint64_t id = reverse ? hi - 1 - i : lo + i;
        if (i == tight)
            expect_next(s, tiny, sizeof tiny, KIVIS_ETOOSMALL, 0, &u);
        expect_next(s, buf, sizeof buf, KIVIS_OK, id, &u);
        assert_string_equal(u.name, "u");
        assert_int_equal(u.age, id - 1);
    }
    expect_next(s, buf, sizeof buf, KIVIS_NOTFOUND, 0, &u);
    expect_next(s, buf, sizeof buf, KIVIS_NOTFOUND, 0, &u);
    kivis_scan_close(s);
}

/* Scans that end at their bounds inside a run of entries and at a run's
 * edges (the scan takes up to 32 entries a run), both ways, an empty one,
 * and a buffer too small in the middle of a run. */
static void test_runs_end_at_bounds(void **state)
{
    fx *f = *state;
    put_many(f->db);
    static const uint64_t ranges[][2] = {
        {1, MANY + 1}, {5, 6}, {5, 36}, {5, 37}, {5, 38}, {2, 66}, {33, 98},
        {40, 40}};
    for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++)
        for (int rev = 0; rev < 2; rev++)
            expect_ids(f->db, ranges[i][0], ranges[i][1],
                       rev ? KIVIS_REVERSE : 0, SIZE_MAX);
    expect_ids(f->db, 1, MANY + 1, 0, 40);
    expect_ids(f->db, 1, MANY + 1, KIVIS_REVERSE, 40);
}

/* A commit lands while the scan holds a run of entries it has not
 * returned yet: it rewrites every record ahead and deletes every third.
 * Whatever the backend shows (its snapshot, or the committed state), it
 * shows all of it: every record after the commit is the old one, or every
 * one is new and none deleted; never the run's old entries, then new ones. */
static void check_commit_midrun(kivis_db *db, kivis_storage *st, uint32_t flags)
{
    bool reverse = flags & KIVIS_REVERSE;
    assert_int_equal(kivis_begin_read(db), KIVIS_OK);
    kivis_scan *s = user_range(db, 1, MANY + 1, flags);
    user_key k;
    user u;
    char buf[128];
    assert_int_equal(kivis_scan_next_into(s, &k, &u, buf, sizeof buf), KIVIS_OK);
    uint64_t first = k.id;

    kivis_db *writer;
    assert_int_equal(kivis_open(st, &pets_schema, NULL, &writer), KIVIS_OK);
    assert_int_equal(kivis_begin(writer), KIVIS_OK);
    for (uint64_t id = 1; id <= MANY; id++) {
        user_key key = {id};
        user nu = {"new", "", 0};
        if (id == first)
            continue;
        assert_int_equal(id % 3 ? kivis_update(writer, PETS_USER, &key, &nu)
                                : kivis_remove(writer, PETS_USER, &key),
                         KIVIS_OK);
    }
    assert_int_equal(kivis_commit(writer), KIVIS_OK);
    kivis_close(writer);

    int rc, olds = 0, news = 0;
    uint64_t last = first;
    while ((rc = kivis_scan_next_into(s, &k, &u, buf, sizeof buf)) == KIVIS_OK) {
        assert_true(reverse ? k.id < last : k.id > last);
        last = k.id;
        if (strcmp(u.name, "new") == 0) {
            news++;
            assert_true(k.id % 3 != 0);
        } else {
            olds++;
        }
    }
    assert_int_equal(rc, KIVIS_NOTFOUND);
    if (olds && news)
        fail_msg("%d old records and %d new after the commit", olds, news);
    assert_int_equal(olds + news, olds ? MANY - 1 : MANY - 1 - MANY / 3);
    kivis_scan_close(s);
    assert_int_equal(kivis_commit(db), KIVIS_OK);
}

static void test_commit_midrun(void **state)
{
    fx *f = *state;
    put_many(f->db);
    check_commit_midrun(f->db, f->st, 0);
    kivis_db *db = f->db; /* the records again, for the reverse scan */
    assert_int_equal(kivis_begin(db), KIVIS_OK);
    for (uint64_t id = 1; id <= MANY; id++) {
        user_key key = {id};
        user u = {"u", "x@example.org", (uint32_t)(id - 1)};
        assert_int_equal(id % 3 ? kivis_update(db, PETS_USER, &key, &u)
                                : kivis_insert(db, PETS_USER, &key, &u),
                         KIVIS_OK);
    }
    assert_int_equal(kivis_commit(db), KIVIS_OK);
    check_commit_midrun(db, f->st, KIVIS_REVERSE);
}

/* The scan's read transaction ends while it holds a run: the next read
 * is refused, as for any scan used after its transaction. */
static void test_txn_ends_midrun(void **state)
{
    fx *f = *state;
    put_many(f->db);
    assert_int_equal(kivis_begin_read(f->db), KIVIS_OK);
    kivis_scan *s = user_range(f->db, 1, MANY + 1, 0);
    user_key k;
    assert_int_equal(kivis_scan_next(s, &k, NULL), KIVIS_OK);
    assert_int_equal(kivis_commit(f->db), KIVIS_OK);
    assert_int_equal(kivis_scan_next(s, &k, NULL), KIVIS_EINVAL);
    assert_int_equal(k.id, 0);
    kivis_scan_close(s);
}

/* A write in the scan's own transaction: the scan is no longer the plain
 * kind, and visits the keys its range held at open, each once. */
static void test_write_in_scan_txn(void **state)
{
    fx *f = *state;
    static const char *const names[] = {"ann", "bob", "cy"};
    put_users(f->db, names, 3);
    assert_int_equal(kivis_begin(f->db), KIVIS_OK);
    kivis_scan *s = user_range(f->db, 1, 100, 0);
    user_key k;
    user u;
    char buf[128];
    int visits = 0, rc;
    while (visits < 10 &&
           (rc = kivis_scan_next_into(s, &k, &u, buf, sizeof buf)) == KIVIS_OK) {
        visits++;
        assert_int_equal(k.id, (uint64_t)visits);
        kt_put_user(f->db, "new", 0); /* inside the range, after the scan */
    }
    assert_int_equal(rc, KIVIS_NOTFOUND);
    assert_int_equal(visits, 3);
    kivis_scan_close(s);
    assert_int_equal(kivis_commit(f->db), KIVIS_OK);
    assert_int_equal(kt_users_named(f->db, "new"), 3);
}

/* A memory store opened without a key limit (max_key_size SIZE_MAX):
 * its record scans read an entry a call rather than reserve room for the
 * longest key the store takes, and return every record. */
static void test_memory_without_key_limit(void **state)
{
    (void)state;
    kivis_memory_options mo = {.max_key_size = SIZE_MAX};
    kivis_storage *st;
    kivis_db *db;
    assert_int_equal(kivis_memory_open(&mo, &st), KIVIS_OK);
    assert_int_equal(kivis_open(st, &pets_schema, NULL, &db), KIVIS_OK);
    for (uint32_t i = 0; i < 100; i++)
        kt_put_user(db, "ann", i);
    for (int reverse = 0; reverse < 2; reverse++) {
        kivis_scan *s = user_range(db, 1, 1000, reverse ? KIVIS_REVERSE : 0);
        user_key k;
        user u;
        char buf[128];
        uint64_t seen = 0;
        int rc;
        while ((rc = kivis_scan_next_into(s, &k, &u, buf, sizeof buf)) == KIVIS_OK)
            assert_int_equal(k.id, reverse ? 100 - seen++ : ++seen);
        assert_int_equal(rc, KIVIS_NOTFOUND);
        assert_int_equal(seen, 100);
        kivis_scan_close(s);
    }
    kivis_close(db);
    kivis_storage_close(st);
}

#define T(fn) KT_BACKEND_TEST(fn)

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        T(test_too_small_midway),
        T(test_corrupt_value_midway),
        T(test_commits_between_steps),
        T(test_write_in_scan_txn),
        T(test_runs_end_at_bounds),
        T(test_commit_midrun),
        T(test_txn_ends_midrun),
    };
    int rc = kt_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
    const struct CMUnitTest memory_tests[] = {
        cmocka_unit_test(test_memory_without_key_limit),
    };
    if (argc < 2 || !strcmp(argv[1], "memory"))
        rc |= cmocka_run_group_tests_name("memory options", memory_tests, NULL, NULL);
    return rc;
}
