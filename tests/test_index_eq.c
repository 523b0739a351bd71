/*
 * Index lookups by one value (KIVIS_Q_EQ on an index), on every backend.
 * Such a scan takes each entry's primary key from past the bytes it
 * searched for rather than skipping the entry's value (src/core/scan.c,
 * skip_entry_value): these tests hold it to what a value skip returned.
 * Names whose encodings share a prefix or need escapes ("a", "a\x01",
 * "a\x02", "ab") return only their own records, forward and in reverse,
 * after a buffer too small, and an entry cut short in the store is
 * KIVIS_ECORRUPT without ending the scan.
 *
 *   test_index_eq            every backend
 *   test_index_eq BACKEND    one of memory, lmdb, sqlite, rocksdb, layered,
 *                            postgres
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

/* Names whose key encodings begin alike: "a\x01" and "a\x02" are escaped
 * (0x01 0x02 and 0x01 0x03 after the "a"), "ab" and "a" share the "a". */
static const char *const names[] = {"a\x01", "a", "ab", "a\x02", "b", "a"};
enum { NNAMES = sizeof names / sizeof names[0], ROUNDS = 5 };

/* ROUNDS users of each name, the names interleaved; user i (id i + 1)
 * has age i. */
static void put_users(kivis_db *db)
{
    for (uint32_t i = 0; i < ROUNDS * NNAMES; i++)
        kt_put_user(db, names[i % NNAMES], i);
}

static kivis_query by_name(const char **name, unsigned flags)
{
    kivis_query q = {PETS_USER, USER_BY_NAME, KIVIS_Q_EQ, name, NULL, NULL, 0, flags};
    return q;
}

/* The ids of the users named `name`, in order (reverse: descending),
 * each checked against its name and age; how many there were. */
static size_t expected_ids(const char *name, bool reverse, uint64_t *ids)
{
    size_t n = 0;
    for (uint32_t i = 0; i < ROUNDS * NNAMES; i++)
        if (!strcmp(names[i % NNAMES], name))
            ids[n++] = i + 1;
    for (size_t i = 0; reverse && i < n / 2; i++) {
        uint64_t t = ids[i];
        ids[i] = ids[n - 1 - i];
        ids[n - 1 - i] = t;
    }
    return n;
}

/* Scan the users named `name`, decoding each into a buffer; check the ids
 * and records against expected_ids. */
static void check_lookup(kivis_db *db, const char *name, unsigned flags)
{
    uint64_t want[ROUNDS * NNAMES];
    size_t n = expected_ids(name, flags & KIVIS_REVERSE, want), got = 0;
    kivis_query q = by_name(&name, flags);
    kivis_scan *s;
    assert_int_equal(kivis_scan_open(db, &q, &s), KIVIS_OK);
    user_key k;
    user u;
    char buf[64];
    int rc;
    while ((rc = kivis_scan_next_into(s, &k, &u, buf, sizeof buf)) == KIVIS_OK) {
        assert_true(got < n);
        assert_int_equal(k.id, want[got]);
        assert_string_equal(u.name, name);
        assert_int_equal(u.age, k.id - 1);
        got++;
    }
    assert_int_equal(rc, KIVIS_NOTFOUND);
    assert_int_equal(got, n);
    kivis_scan_close(s);
}

/* No user is named `name`: the scan ends at once, either way. */
static void check_none(kivis_db *db, const char *name)
{
    for (unsigned flags = 0; flags <= KIVIS_REVERSE; flags += KIVIS_REVERSE) {
        kivis_query q = by_name(&name, flags);
        kivis_scan *s;
        assert_int_equal(kivis_scan_open(db, &q, &s), KIVIS_OK);
        user_key k;
        user u;
        char buf[64];
        assert_int_equal(kivis_scan_next_into(s, &k, &u, buf, sizeof buf), KIVIS_NOTFOUND);
        kivis_scan_close(s);
    }
}

static void test_eq_returns_only_its_own_name(void **state)
{
    fx *f = *state;
    put_users(f->db);
    static const char *const asked[] = {"a", "a\x01", "a\x02", "ab", "b"};
    for (size_t i = 0; i < sizeof asked / sizeof asked[0]; i++) {
        check_lookup(f->db, asked[i], 0);
        check_lookup(f->db, asked[i], KIVIS_REVERSE);
    }
}

static void test_eq_of_absent_names_is_empty(void **state)
{
    fx *f = *state;
    check_none(f->db, "a"); /* an empty table */
    put_users(f->db);
    static const char *const absent[] = {"", "\x01", "a\x01\x01", "aa", "c"};
    for (size_t i = 0; i < sizeof absent / sizeof absent[0]; i++)
        check_none(f->db, absent[i]);
}

/* A buffer too small leaves the scan on its record: the retry returns it,
 * then the rest. */
static void test_eq_after_a_short_buffer(void **state)
{
    fx *f = *state;
    put_users(f->db);
    const char *name = "a\x01";
    uint64_t want[ROUNDS * NNAMES];
    size_t n = expected_ids(name, false, want);
    kivis_query q = by_name(&name, 0);
    kivis_scan *s;
    assert_int_equal(kivis_scan_open(f->db, &q, &s), KIVIS_OK);
    user_key k;
    user u;
    char buf[64];
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(kivis_scan_next_into(s, &k, &u, buf, 2), KIVIS_ETOOSMALL);
        assert_int_equal(kivis_scan_next_into(s, &k, &u, buf, sizeof buf), KIVIS_OK);
        assert_int_equal(k.id, want[i]);
        assert_string_equal(u.name, name);
    }
    assert_int_equal(kivis_scan_next_into(s, &k, &u, buf, sizeof buf), KIVIS_NOTFOUND);
    kivis_scan_close(s);
}

/* The storage key of the index entry of user id 1 (named names[0]), found
 * among the store's keys as the one longer than a record key (table 1,
 * slot 0, 8 bytes) that starts with table 1 and ends with id 1. */
static size_t first_entry(kivis_storage *st, uint8_t *out, size_t size)
{
    static const uint8_t id1[8] = {0, 0, 0, 0, 0, 0, 0, 1};
    kivis_storage_txn *t;
    assert_int_equal(kivis_storage_begin(st, KIVIS_TXN_RDONLY, &t), KIVIS_OK);
    kivis_storage_cursor *c;
    assert_int_equal(kivis_txn_cursor(t, kivis_slice_make(NULL, 0),
                                      kivis_slice_make(NULL, 0), &c), KIVIS_OK);
    kivis_slice k, v;
    size_t n = 0;
    while (!n && kivis_cursor_get(c, KIVIS_NEXT, &k, &v) == KIVIS_OK) {
        const uint8_t *b = k.data;
        if (k.len > 10 && k.len <= size && b[0] == 1 && b[1] != 0 &&
            !memcmp(b + k.len - 8, id1, 8)) {
            memcpy(out, b, k.len);
            n = k.len;
        }
    }
    kivis_cursor_close(c);
    kivis_txn_abort(t);
    assert_true(n > 0);
    return n;
}

static void put_raw(kivis_storage *st, const uint8_t *key, size_t len)
{
    kivis_storage_txn *t;
    assert_int_equal(kivis_storage_begin(st, 0, &t), KIVIS_OK);
    assert_int_equal(kivis_txn_put(t, kivis_slice_make(key, len),
                                   kivis_slice_make("", 0)), KIVIS_OK);
    assert_int_equal(kivis_txn_commit(t, KIVIS_SYNC), KIVIS_OK);
}

/* Entries whose primary key is missing or cut short sort first among the
 * name's: each is KIVIS_ECORRUPT, and the scan goes on to the records. */
static void test_eq_entry_cut_short_is_corrupt(void **state)
{
    fx *f = *state;
    put_users(f->db);
    uint8_t entry[64];
    size_t len = first_entry(f->st, entry, sizeof entry);
    put_raw(f->st, entry, len - 8); /* the name, no primary key */
    put_raw(f->st, entry, len - 5); /* three bytes of one */
    const char *name = names[0];
    uint64_t want[ROUNDS * NNAMES];
    size_t n = expected_ids(name, false, want);
    kivis_query q = by_name(&name, 0);
    kivis_scan *s;
    assert_int_equal(kivis_scan_open(f->db, &q, &s), KIVIS_OK);
    user_key k;
    user u;
    char buf[64];
    assert_int_equal(kivis_scan_next_into(s, &k, &u, buf, sizeof buf), KIVIS_ECORRUPT);
    assert_int_equal(kivis_scan_next_into(s, &k, &u, buf, sizeof buf), KIVIS_ECORRUPT);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(kivis_scan_next_into(s, &k, &u, buf, sizeof buf), KIVIS_OK);
        assert_int_equal(k.id, want[i]);
    }
    assert_int_equal(kivis_scan_next_into(s, &k, &u, buf, sizeof buf), KIVIS_NOTFOUND);
    kivis_scan_close(s);
}

#define T(fn) KT_BACKEND_TEST(fn)

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        T(test_eq_returns_only_its_own_name),
        T(test_eq_of_absent_names_is_empty),
        T(test_eq_after_a_short_buffer),
        T(test_eq_entry_cut_short_is_corrupt),
    };
    return kt_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
