/*
 * The typed record cache in front of kivis_get: counters, deep copies,
 * invalidation by every write through the handle, transactions, LRU
 * eviction, what another writer's changes look like, and running out of
 * memory.
 */
#include "testutil.h"
#include "pets_schema.h"

#include <kivis.h>
#include <kivis/memory.h>

#include <stdlib.h>
#include <string.h>

typedef struct fx {
    kt_alloc a;
    kivis_storage *st;
    kivis_db *db;
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    kt_alloc_init(&f->a);
    kivis_memory_options mo = {.allocator = &f->a.iface};
    assert_int_equal(kivis_memory_open(&mo, &f->st), KIVIS_OK);
    kivis_options o = {&f->a.iface, KIVIS_SYNC, NULL, 0, 0, NULL, NULL, NULL};
    assert_int_equal(kivis_open(f->st, &pets_schema, &o, &f->db), KIVIS_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    kivis_close(f->db);
    kivis_storage_close(f->st);
    assert_int_equal(f->a.live_blocks, 0);
    free(f);
    return 0;
}

static user_key add_user(kivis_db *db, const char *name, uint32_t age)
{
    user u = {(char *)name, "x@example.org", age};
    user_key k;
    assert_int_equal(kivis_put(db, PETS_USER, &u, &k), KIVIS_OK);
    return k;
}

static kivis_cache_stats stats(fx *f)
{
    kivis_cache_stats s;
    assert_int_equal(kivis_cache_get_stats(f->db, PETS_USER, &s), KIVIS_OK);
    return s;
}

/* Get user k and check its name (NULL: expect KIVIS_NOTFOUND). */
static void expect_user(fx *f, user_key k, const char *name)
{
    user u;
    int rc = kivis_get(f->db, PETS_USER, &k, &u);
    if (!name) {
        assert_int_equal(rc, KIVIS_NOTFOUND);
        return;
    }
    assert_int_equal(rc, KIVIS_OK);
    assert_string_equal(u.name, name);
    kivis_record_clear(f->db, PETS_USER, &u);
}

static void test_hits_and_misses_are_counted(void **state)
{
    fx *f = *state;
    user_key a = add_user(f->db, "ann", 30), b = add_user(f->db, "bob", 40);
    assert_int_equal(kivis_cache_enable(f->db, PETS_USER, 10), KIVIS_OK);
    expect_user(f, a, "ann");
    expect_user(f, a, "ann");
    expect_user(f, b, "bob");
    expect_user(f, a, "ann");
    kivis_cache_stats s = stats(f);
    assert_int_equal(s.hits, 2);
    assert_int_equal(s.misses, 2);
    assert_int_equal(s.records, 2);
    assert_int_equal(s.capacity, 10);
    /* A missing key is not cached: it misses every time. */
    user_key none = {999};
    expect_user(f, none, NULL);
    expect_user(f, none, NULL);
    assert_int_equal(stats(f).misses, 4);
    assert_int_equal(stats(f).records, 2);
}

static void test_hit_is_a_deep_copy(void **state)
{
    fx *f = *state;
    user_key a = add_user(f->db, "ann", 30);
    assert_int_equal(kivis_cache_enable(f->db, PETS_USER, 4), KIVIS_OK);
    user u1, u2;
    assert_int_equal(kivis_get(f->db, PETS_USER, &a, &u1), KIVIS_OK);
    assert_int_equal(kivis_get(f->db, PETS_USER, &a, &u2), KIVIS_OK);
    assert_int_equal(stats(f).hits, 1);
    assert_ptr_not_equal(u1.name, u2.name);
    u2.name[0] = 'X'; /* the caller owns its copy */
    kivis_record_clear(f->db, PETS_USER, &u2);
    kivis_record_clear(f->db, PETS_USER, &u1);
    expect_user(f, a, "ann");
    /* Bytes members too (blob has a derived key and a kivis_bytes). */
    assert_int_equal(kivis_cache_enable(f->db, PETS_BLOB, 4), KIVIS_OK);
    blob bl = {{(uint8_t *)"\0\1\2", 3}}, got;
    blob_key bk;
    assert_int_equal(kivis_put(f->db, PETS_BLOB, &bl, &bk), KIVIS_OK);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(kivis_get(f->db, PETS_BLOB, &bk, &got), KIVIS_OK);
        assert_int_equal(got.data.len, 3);
        assert_memory_equal(got.data.data, "\0\1\2", 3);
        kivis_record_clear(f->db, PETS_BLOB, &got);
    }
    kivis_cache_stats s;
    assert_int_equal(kivis_cache_get_stats(f->db, PETS_BLOB, &s), KIVIS_OK);
    assert_int_equal(s.hits, 1);
}

static void test_writes_through_the_handle_invalidate(void **state)
{
    fx *f = *state;
    user_key a = add_user(f->db, "ann", 30);
    assert_int_equal(kivis_cache_enable(f->db, PETS_USER, 4), KIVIS_OK);
    expect_user(f, a, "ann");
    user nu = {"anna", "a@x", 31};
    assert_int_equal(kivis_insert(f->db, PETS_USER, &a, &nu), KIVIS_OK);
    assert_int_equal(stats(f).invalidations, 1);
    expect_user(f, a, "anna"); /* a miss that refills */
    expect_user(f, a, "anna");
    assert_int_equal(stats(f).hits, 1);
    assert_int_equal(kivis_remove(f->db, PETS_USER, &a), KIVIS_OK);
    assert_int_equal(stats(f).invalidations, 2);
    expect_user(f, a, NULL);
    assert_int_equal(stats(f).records, 0);
}

static void test_transactions_bypass_and_abort_leaves_no_trace(void **state)
{
    fx *f = *state;
    user_key a = add_user(f->db, "ann", 30);
    assert_int_equal(kivis_cache_enable(f->db, PETS_USER, 4), KIVIS_OK);
    expect_user(f, a, "ann");
    assert_int_equal(kivis_begin(f->db), KIVIS_OK);
    user nu = {"anna", "a@x", 31};
    assert_int_equal(kivis_insert(f->db, PETS_USER, &a, &nu), KIVIS_OK);
    expect_user(f, a, "anna"); /* the transaction's own write */
    assert_int_equal(stats(f).bypasses, 1);
    assert_int_equal(stats(f).records, 0); /* dropped, not refilled */
    kivis_abort(f->db);
    expect_user(f, a, "ann"); /* the committed value, read again */
    assert_int_equal(stats(f).misses, 2);
    assert_int_equal(kivis_begin(f->db), KIVIS_OK);
    assert_int_equal(kivis_insert(f->db, PETS_USER, &a, &nu), KIVIS_OK);
    assert_int_equal(kivis_commit(f->db), KIVIS_OK);
    expect_user(f, a, "anna"); /* the commit's value, read and cached */
    expect_user(f, a, "anna");
    assert_int_equal(stats(f).misses, 3);
    assert_int_equal(stats(f).hits, 1);
}

static void test_lru_eviction(void **state)
{
    fx *f = *state;
    user_key a = add_user(f->db, "a", 1), b = add_user(f->db, "b", 2),
             c = add_user(f->db, "c", 3);
    assert_int_equal(kivis_cache_enable(f->db, PETS_USER, 2), KIVIS_OK);
    expect_user(f, a, "a");
    expect_user(f, b, "b");
    expect_user(f, a, "a"); /* a is now the most recent */
    expect_user(f, c, "c"); /* evicts b, the least recent */
    kivis_cache_stats s = stats(f);
    assert_int_equal(s.evictions, 1);
    assert_int_equal(s.records, 2);
    expect_user(f, a, "a");
    assert_int_equal(stats(f).hits, 2);
    expect_user(f, b, "b"); /* a miss again; evicts c */
    assert_int_equal(stats(f).misses, 4);
    assert_int_equal(stats(f).evictions, 2);
}

/* A second handle on the same store stands for any other writer: the
 * cached handle keeps serving its copy until the entry is dropped. */
static void test_other_writers_are_seen_after_clear(void **state)
{
    fx *f = *state;
    user_key a = add_user(f->db, "ann", 30);
    assert_int_equal(kivis_cache_enable(f->db, PETS_USER, 4), KIVIS_OK);
    expect_user(f, a, "ann");
    kivis_db *other;
    kivis_options o = {&f->a.iface, KIVIS_SYNC, NULL, 0, 0, NULL, NULL, NULL};
    assert_int_equal(kivis_open(f->st, &pets_schema, &o, &other), KIVIS_OK);
    user nu = {"anna", "a@x", 31};
    assert_int_equal(kivis_insert(other, PETS_USER, &a, &nu), KIVIS_OK);
    kivis_close(other);
    expect_user(f, a, "ann"); /* stale, as documented */
    kivis_cache_clear(f->db, PETS_USER);
    assert_int_equal(stats(f).invalidations, 1);
    expect_user(f, a, "anna");
}

static void test_enable_disable_and_bad_arguments(void **state)
{
    fx *f = *state;
    kivis_cache_stats s;
    assert_int_equal(kivis_cache_get_stats(f->db, PETS_USER, &s), KIVIS_NOTFOUND);
    assert_int_equal(s.capacity, 0);
    assert_int_equal(kivis_cache_enable(f->db, 99, 4), KIVIS_EINVAL);
    assert_int_equal(kivis_cache_enable(NULL, PETS_USER, 4), KIVIS_EINVAL);
    assert_int_equal(kivis_cache_enable(f->db, PETS_USER, SIZE_MAX), KIVIS_EINVAL);
    assert_int_equal(kivis_cache_get_stats(f->db, PETS_USER, NULL), KIVIS_EINVAL);
    user_key a = add_user(f->db, "ann", 30);
    assert_int_equal(kivis_cache_enable(f->db, PETS_USER, 4), KIVIS_OK);
    expect_user(f, a, "ann");
    assert_int_equal(kivis_cache_enable(f->db, PETS_USER, 8), KIVIS_OK);
    assert_int_equal(stats(f).records, 0); /* a new bound starts empty */
    assert_int_equal(kivis_cache_enable(f->db, PETS_USER, 0), KIVIS_OK);
    assert_int_equal(kivis_cache_get_stats(f->db, PETS_USER, &s), KIVIS_NOTFOUND);
    expect_user(f, a, "ann");
    kivis_cache_clear(f->db, PETS_USER); /* no cache: a no-op */
}

/* Fail the n-th allocation of a get, for n = 1, 2, ... until one runs
 * clean: the get is KIVIS_OK or KIVIS_ENOMEM with the record zeroed, and
 * nothing leaks.  Run on a miss (storage read, decode, fill) and on a hit
 * (the copy out of the cache). */
static void oom_sweep_get(fx *f, user_key k, int want_hit)
{
    for (unsigned long n = 1;; n++) {
        kivis_cache_clear(f->db, PETS_USER);
        long blocks = f->a.live_blocks;
        if (want_hit)
            expect_user(f, k, "ann");
        uint64_t hits = stats(f).hits;
        unsigned long failures = f->a.failures;
        kt_alloc_fail_at(&f->a, n);
        user u;
        int rc = kivis_get(f->db, PETS_USER, &k, &u);
        failures = f->a.failures - failures;
        kt_alloc_fail_at(&f->a, 0);
        assert_int_equal(stats(f).hits, hits + (want_hit ? 1 : 0));
        if (rc == KIVIS_OK) {
            assert_string_equal(u.name, "ann");
            kivis_record_clear(f->db, PETS_USER, &u);
        } else {
            assert_int_equal(rc, KIVIS_ENOMEM);
            assert_null(u.name);
        }
        kivis_cache_clear(f->db, PETS_USER);
        assert_int_equal(f->a.live_blocks, blocks);
        if (rc == KIVIS_OK && !failures)
            break; /* ran clean: every position was tried */
        assert_true(n < 100);
    }
}

static void test_out_of_memory(void **state)
{
    fx *f = *state;
    user_key a = add_user(f->db, "ann", 30);
    assert_int_equal(kivis_cache_enable(f->db, PETS_USER, 4), KIVIS_OK);
    oom_sweep_get(f, a, 0);
    oom_sweep_get(f, a, 1);
    expect_user(f, a, "ann");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
        T(test_hits_and_misses_are_counted),
        T(test_hit_is_a_deep_copy),
        T(test_writes_through_the_handle_invalidate),
        T(test_transactions_bypass_and_abort_leaves_no_trace),
        T(test_lru_eviction),
        T(test_other_writers_are_seen_after_clear),
        T(test_enable_disable_and_bad_arguments),
        T(test_out_of_memory),
#undef T
    };
    return cmocka_run_group_tests_name("cache", tests, NULL, NULL);
}
