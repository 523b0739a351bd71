/*
 * test_faulty.c - the fault-injecting wrapper: what it counts, what an armed
 * fault does to the call and to the store underneath, and that it owns and
 * frees what it should.  (That it is otherwise invisible is the conformance
 * suite's job: test_conformance faulty.)
 */
#include "testutil.h"

#include <kivis/faulty.h>
#include <kivis/memory.h>

#include <stdlib.h>
#include <string.h>

#define S(s) kivis_slice_make((s), sizeof(s) - 1)

static const kivis_slice NONE = {NULL, 0};

/* The inner memory store and the wrapper allocate through separate
 * counters, so each side's leaks and allocation failures are its own. */
typedef struct fixture {
    kt_alloc inner_alloc, wrap_alloc;
    kivis_storage *inner; /* borrowed view; the wrapper owns it */
    kivis_storage *st;    /* the wrapper */
} fixture;

static kivis_storage *open_inner(kt_alloc *a)
{
    kivis_memory_options opts = {.allocator = &a->iface};
    kivis_storage *st = NULL;
    assert_int_equal(kivis_memory_open(&opts, &st), KIVIS_OK);
    return st;
}

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof *fx);
    assert_non_null(fx);
    kt_alloc_init(&fx->inner_alloc);
    kt_alloc_init(&fx->wrap_alloc);
    fx->inner = open_inner(&fx->inner_alloc);
    int rc = kivis_faulty_open(fx->inner, &fx->wrap_alloc.iface, &fx->st);
    assert_int_equal(rc, KIVIS_OK);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    kivis_storage_close(fx->st); /* closes the inner store too */
    assert_int_equal(fx->wrap_alloc.live_blocks, 0);
    assert_int_equal(fx->inner_alloc.live_blocks, 0);
    assert_int_equal(fx->inner_alloc.live_bytes, 0);
    free(fx);
    return 0;
}

static unsigned long reads(fixture *fx)
{
    return kivis_faulty_count(fx->st, KIVIS_FAULT_READ);
}

static unsigned long writes(fixture *fx)
{
    return kivis_faulty_count(fx->st, KIVIS_FAULT_WRITE);
}

static kivis_storage_txn *begin(kivis_storage *st, unsigned flags)
{
    kivis_storage_txn *t = NULL;
    assert_int_equal(kivis_storage_begin(st, flags, &t), KIVIS_OK);
    return t;
}

static kivis_storage_cursor *cursor_all(kivis_storage_txn *t)
{
    kivis_storage_cursor *c = NULL;
    assert_int_equal(kivis_txn_cursor(t, NONE, NONE, &c), KIVIS_OK);
    return c;
}

static void put(kivis_storage_txn *t, kivis_slice key, kivis_slice value)
{
    assert_int_equal(kivis_txn_put(t, key, value), KIVIS_OK);
}

/* Commit a=1, b=2, c=3 through the wrapper: 4 writes, no reads. */
static void load_abc(fixture *fx)
{
    kivis_storage_txn *t = begin(fx->st, 0);
    put(t, S("a"), S("1"));
    put(t, S("b"), S("2"));
    put(t, S("c"), S("3"));
    assert_int_equal(kivis_txn_commit(t, KIVIS_SYNC), KIVIS_OK);
}

static void assert_dump(kivis_storage *st, const char *want)
{
    char *d = kt_dump(st);
    assert_string_equal(d, want);
    free(d);
}

static const char abc_dump[] = "61=31\n62=32\n63=33\n";

/* ---- opening ------------------------------------------------------------ */

static void test_open_rejects_bad_arguments(void **state)
{
    (void)state;
    kivis_storage *out = (kivis_storage *)&out;
    assert_int_equal(kivis_faulty_open(NULL, NULL, &out), KIVIS_EINVAL);
    assert_null(out);
    kt_alloc a;
    kt_alloc_init(&a);
    kivis_storage *inner = open_inner(&a);
    assert_int_equal(kivis_faulty_open(inner, NULL, NULL), KIVIS_EINVAL);
    kivis_storage_close(inner); /* still ours */
    assert_int_equal(a.live_blocks, 0);
}

static void test_open_without_memory_leaves_inner_to_caller(void **state)
{
    (void)state;
    kt_alloc in, wrap;
    kt_alloc_init(&in);
    kt_alloc_init(&wrap);
    kivis_storage *inner = open_inner(&in), *out = inner;
    kt_alloc_fail_at(&wrap, 1);
    assert_int_equal(kivis_faulty_open(inner, &wrap.iface, &out), KIVIS_ENOMEM);
    assert_null(out);
    assert_int_equal(wrap.live_blocks, 0);
    kivis_storage_txn *t = begin(inner, 0); /* inner still works */
    put(t, S("k"), S("v"));
    assert_int_equal(kivis_txn_commit(t, KIVIS_SYNC), KIVIS_OK);
    kivis_storage_close(inner);
    assert_int_equal(in.live_blocks, 0);
}

static void test_default_allocator(void **state)
{
    (void)state;
    kivis_storage *inner = NULL, *st = NULL;
    assert_int_equal(kivis_memory_open(NULL, &inner), KIVIS_OK);
    assert_int_equal(kivis_faulty_open(inner, NULL, &st), KIVIS_OK);
    kivis_storage_txn *t = begin(st, 0);
    put(t, S("k"), S("v"));
    assert_int_equal(kivis_txn_commit(t, KIVIS_SYNC), KIVIS_OK);
    assert_dump(st, "6b=76\n");
    kivis_storage_close(st);
}

static void test_identity_and_delegation(void **state)
{
    fixture *fx = *state;
    assert_int_equal(kivis_storage_check(fx->st), KIVIS_OK);
    assert_int_equal(fx->st->methods->version, KIVIS_STORAGE_VERSION);
    assert_string_equal(fx->st->methods->name, "faulty");
    assert_int_equal(kivis_storage_max_key(fx->st),
                     kivis_storage_max_key(fx->inner));
    kivis_storage_txn *t = begin(fx->st, KIVIS_TXN_RDONLY);
    assert_ptr_equal(t->storage, fx->st);
    assert_int_equal(t->flags, KIVIS_TXN_RDONLY);
    kivis_txn_abort(t);
    /* Writes go to the inner store. */
    load_abc(fx);
    assert_dump(fx->inner, abc_dump);
}

/* ---- counting ----------------------------------------------------------- */

static void test_counts_reads_and_writes(void **state)
{
    fixture *fx = *state;
    assert_int_equal(reads(fx), 0);
    assert_int_equal(writes(fx), 0);
    load_abc(fx);                      /* 3 puts + commit */
    assert_int_equal(writes(fx), 4);
    assert_int_equal(reads(fx), 0);

    kivis_storage_txn *t = begin(fx->st, 0);
    kivis_slice v;
    assert_int_equal(kivis_txn_get(t, S("a"), &v), KIVIS_OK);
    assert_int_equal(kivis_txn_get(t, S("zz"), &v), KIVIS_NOTFOUND);
    assert_int_equal(kivis_txn_del(t, S("b")), KIVIS_OK);
    assert_int_equal(kivis_txn_del(t, S("zz")), KIVIS_NOTFOUND);
    kivis_storage_cursor *c = cursor_all(t);
    kivis_slice k;
    int steps = 0;
    while (kivis_cursor_get(c, KIVIS_NEXT, &k, &v) == KIVIS_OK)
        steps++;
    assert_int_equal(steps, 2);        /* a, c: and one NOTFOUND step */
    kivis_cursor_close(c);
    assert_int_equal(reads(fx), 2 + 3);
    assert_int_equal(writes(fx), 4 + 2);
    kivis_txn_abort(t);                /* abort is not a write */
    assert_int_equal(writes(fx), 6);

    t = begin(fx->st, KIVIS_TXN_RDONLY);
    assert_int_equal(kivis_txn_get(t, S("a"), &v), KIVIS_OK);
    assert_int_equal(kivis_txn_commit(t, KIVIS_SYNC), KIVIS_OK);
    assert_int_equal(reads(fx), 6);
    assert_int_equal(writes(fx), 6);  /* a read-only commit is not a write */

    t = begin(fx->st, 0);
    assert_int_equal(kivis_txn_commit(t, KIVIS_SYNC), KIVIS_OK);
    assert_int_equal(writes(fx), 7);  /* a read-write commit is, if empty */
}

static void test_rejected_calls_still_count(void **state)
{
    fixture *fx = *state;
    kivis_storage_txn *t = begin(fx->st, KIVIS_TXN_RDONLY);
    assert_int_equal(kivis_txn_put(t, S("a"), S("1")), KIVIS_EINVAL);
    assert_int_equal(kivis_txn_del(t, S("a")), KIVIS_EINVAL);
    kivis_slice v;
    assert_int_equal(kivis_txn_get(t, NONE, &v), KIVIS_EINVAL);
    kivis_txn_abort(t);
    assert_int_equal(writes(fx), 2);
    assert_int_equal(reads(fx), 1);
}

/* ---- write faults ------------------------------------------------------- */

static void test_nth_put_fails_and_never_lands(void **state)
{
    fixture *fx = *state;
    kivis_faulty_fail(fx->st, KIVIS_FAULT_WRITE, 2, KIVIS_EIO);
    kivis_storage_txn *t = begin(fx->st, 0);
    put(t, S("a"), S("1"));
    assert_int_equal(kivis_txn_put(t, S("b"), S("2")), KIVIS_EIO);
    kivis_slice v = S("garbage");
    assert_int_equal(kivis_txn_get(t, S("b"), &v), KIVIS_NOTFOUND);
    put(t, S("c"), S("3"));
    assert_int_equal(kivis_txn_commit(t, KIVIS_SYNC), KIVIS_OK);
    assert_dump(fx->st, "61=31\n63=33\n");
    assert_int_equal(writes(fx), 4); /* the failed put counts */
}

static void test_failed_del_keeps_the_key(void **state)
{
    fixture *fx = *state;
    load_abc(fx);
    kivis_faulty_fail(fx->st, KIVIS_FAULT_WRITE, 1, KIVIS_EFULL);
    kivis_storage_txn *t = begin(fx->st, 0);
    assert_int_equal(kivis_txn_del(t, S("b")), KIVIS_EFULL);
    kivis_slice v;
    assert_int_equal(kivis_txn_get(t, S("b"), &v), KIVIS_OK);
    assert_int_equal(kivis_txn_commit(t, KIVIS_SYNC), KIVIS_OK);
    assert_dump(fx->st, abc_dump);
}

static void test_failed_commit_leaves_store_unchanged(void **state)
{
    fixture *fx = *state;
    load_abc(fx);
    char *before = kt_dump(fx->st);

    kivis_storage_txn *t = begin(fx->st, 0);
    put(t, S("a"), S("changed"));
    put(t, S("d"), S("4"));
    assert_int_equal(kivis_txn_del(t, S("b")), KIVIS_OK);
    kivis_faulty_fail(fx->st, KIVIS_FAULT_WRITE, 1, KIVIS_EIO); /* the commit */
    assert_int_equal(kivis_txn_commit(t, KIVIS_SYNC), KIVIS_EIO);

    char *after = kt_dump(fx->st);
    assert_string_equal(before, after);
    assert_int_equal(fx->wrap_alloc.live_blocks, 1); /* the storage only */
    /* The inner write transaction ended: a new writer is welcome. */
    t = begin(fx->st, 0);
    put(t, S("e"), S("5"));
    assert_int_equal(kivis_txn_commit(t, KIVIS_SYNC), KIVIS_OK);
    assert_int_equal(kt_count(fx->st), 4);
    free(before);
    free(after);
}

/* ---- read faults -------------------------------------------------------- */

static void test_read_fault_on_get(void **state)
{
    fixture *fx = *state;
    load_abc(fx);
    kivis_faulty_fail(fx->st, KIVIS_FAULT_READ, 2, KIVIS_ECORRUPT);
    kivis_storage_txn *t = begin(fx->st, KIVIS_TXN_RDONLY);
    kivis_slice v;
    assert_int_equal(kivis_txn_get(t, S("a"), &v), KIVIS_OK);
    v = S("garbage");
    assert_int_equal(kivis_txn_get(t, S("a"), &v), KIVIS_ECORRUPT);
    assert_null(v.data);
    assert_int_equal(v.len, 0);
    assert_int_equal(kivis_txn_get(t, S("a"), &v), KIVIS_OK);
    assert_memory_equal(v.data, "1", 1);
    kivis_txn_abort(t);
}

static void expect_step(kivis_storage_cursor *c, int op, int rc,
                        const char *want_key)
{
    kivis_slice k = NONE, v = NONE;
    assert_int_equal(kivis_cursor_get(c, op, &k, &v), rc);
    if (want_key) {
        assert_int_equal(k.len, strlen(want_key));
        assert_memory_equal(k.data, want_key, k.len);
    }
}

static void test_read_fault_on_cursor_step(void **state)
{
    fixture *fx = *state;
    load_abc(fx);
    kivis_storage_txn *t = begin(fx->st, KIVIS_TXN_RDONLY);
    kivis_storage_cursor *c = cursor_all(t);
    expect_step(c, KIVIS_FIRST, KIVIS_OK, "a");
    kivis_faulty_fail(fx->st, KIVIS_FAULT_READ, 2, KIVIS_EIO);
    expect_step(c, KIVIS_NEXT, KIVIS_OK, "b");
    expect_step(c, KIVIS_NEXT, KIVIS_EIO, NULL);
    /* The failed step never reached the inner cursor: it is still on b. */
    expect_step(c, KIVIS_NEXT, KIVIS_OK, "c");
    kivis_faulty_fail(fx->st, KIVIS_FAULT_READ, 1, KIVIS_EIO);
    expect_step(c, KIVIS_SEEK_GE, KIVIS_EIO, NULL);
    expect_step(c, KIVIS_PREV, KIVIS_OK, "b");
    kivis_cursor_close(c);
    kivis_txn_abort(t);
    assert_int_equal(reads(fx), 6);
}

/* ---- arming ------------------------------------------------------------- */

static void test_arming_fires_once(void **state)
{
    fixture *fx = *state;
    kivis_faulty_fail(fx->st, KIVIS_FAULT_WRITE, 1, KIVIS_EIO);
    kivis_storage_txn *t = begin(fx->st, 0);
    assert_int_equal(kivis_txn_put(t, S("a"), S("1")), KIVIS_EIO);
    for (int i = 0; i < 10; i++)
        put(t, S("a"), S("1"));
    assert_int_equal(kivis_txn_commit(t, KIVIS_SYNC), KIVIS_OK);
    assert_dump(fx->st, "61=31\n");

    /* Arming again counts from the new call, not from open. */
    kivis_faulty_fail(fx->st, KIVIS_FAULT_WRITE, 3, KIVIS_EIO);
    t = begin(fx->st, 0);
    put(t, S("b"), S("2"));
    put(t, S("c"), S("3"));
    assert_int_equal(kivis_txn_put(t, S("d"), S("4")), KIVIS_EIO);
    put(t, S("d"), S("4"));
    assert_int_equal(kivis_txn_commit(t, KIVIS_SYNC), KIVIS_OK);
    assert_int_equal(kt_count(fx->st), 4);
}

static void test_disarm_and_independent_kinds(void **state)
{
    fixture *fx = *state;
    kivis_faulty_fail(fx->st, KIVIS_FAULT_WRITE, 1, KIVIS_EIO);
    kivis_faulty_fail(fx->st, KIVIS_FAULT_WRITE, 0, KIVIS_EIO); /* disarm */
    kivis_faulty_fail(fx->st, KIVIS_FAULT_READ, 1, KIVIS_EIO);
    load_abc(fx); /* writes only: the read fault waits */
    kivis_storage_txn *t = begin(fx->st, KIVIS_TXN_RDONLY);
    kivis_slice v;
    assert_int_equal(kivis_txn_get(t, S("a"), &v), KIVIS_EIO);
    assert_int_equal(kivis_txn_get(t, S("a"), &v), KIVIS_OK);
    kivis_txn_abort(t);
    assert_dump(fx->st, abc_dump);
}

/* ---- ownership and allocation ------------------------------------------- */

static void test_alloc_failure_in_begin_and_cursor_open(void **state)
{
    fixture *fx = *state;
    load_abc(fx);
    kivis_storage_txn *t = (kivis_storage_txn *)&t;
    kt_alloc_fail_at(&fx->wrap_alloc, 1);
    assert_int_equal(kivis_storage_begin(fx->st, 0, &t), KIVIS_ENOMEM);
    assert_null(t);
    t = begin(fx->st, 0); /* no inner write txn was left behind */

    kivis_storage_cursor *c = (kivis_storage_cursor *)&c;
    kt_alloc_fail_at(&fx->wrap_alloc, 1);
    assert_int_equal(kivis_txn_cursor(t, NONE, NONE, &c), KIVIS_ENOMEM);
    assert_null(c);
    c = cursor_all(t);
    expect_step(c, KIVIS_LAST, KIVIS_OK, "c");
    kivis_cursor_close(c);
    kivis_txn_abort(t);
}

static void test_close_frees_everything(void **state)
{
    (void)state;
    kt_alloc a;
    kt_alloc_init(&a);
    kivis_storage *inner = open_inner(&a), *st = NULL;
    long before = a.live_blocks;
    assert_int_equal(kivis_faulty_open(inner, &a.iface, &st), KIVIS_OK);
    assert_true(a.live_blocks > before); /* the wrapper uses the allocator */

    kivis_storage_txn *t = begin(st, 0);
    for (int i = 0; i < 100; i++) {
        char k[8];
        k[0] = 'k';
        k[1] = (char)('0' + i / 10);
        k[2] = (char)('0' + i % 10);
        put(t, kivis_slice_make(k, 3), S("value"));
    }
    kivis_storage_cursor *c = cursor_all(t);
    expect_step(c, KIVIS_FIRST, KIVIS_OK, "k00");
    kivis_cursor_close(c);
    assert_int_equal(kivis_txn_commit(t, KIVIS_SYNC), KIVIS_OK);
    kivis_storage_close(st);
    assert_int_equal(a.live_blocks, 0);
    assert_int_equal(a.live_bytes, 0);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_rejects_bad_arguments),
        cmocka_unit_test(test_open_without_memory_leaves_inner_to_caller),
        cmocka_unit_test(test_default_allocator),
        T(test_identity_and_delegation),
        T(test_counts_reads_and_writes),
        T(test_rejected_calls_still_count),
        T(test_nth_put_fails_and_never_lands),
        T(test_failed_del_keeps_the_key),
        T(test_failed_commit_leaves_store_unchanged),
        T(test_read_fault_on_get),
        T(test_read_fault_on_cursor_step),
        T(test_arming_fires_once),
        T(test_disarm_and_independent_kinds),
        T(test_alloc_failure_in_begin_and_cursor_open),
        cmocka_unit_test(test_close_frees_everything),
    };
    return cmocka_run_group_tests_name("faulty", tests, NULL, NULL);
}
