/*
 * tests/support/testutil.h - helpers shared by the test programs:
 * an allocator that counts and fails on demand, and a full store dump.
 */
#ifndef KIVIS_TESTUTIL_H
#define KIVIS_TESTUTIL_H

#include <kivis.h>
#include <kivis/common.h>
#include <kivis/storage.h>

#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <setjmp.h>
#include <cmocka.h>

/* An allocator that tracks live blocks and bytes, and can fail the n-th
 * allocation (malloc or growing realloc) counted from kt_alloc_fail_at. */
typedef struct kt_alloc {
    kivis_allocator iface;  /* hand &a->iface to kivis */
    unsigned long calls;    /* allocations attempted since fail_at */
    unsigned long fail_at;  /* 0: never fail */
    unsigned long failures; /* how many were failed */
    long live_blocks;
    long long live_bytes;
    long long peak_bytes;
} kt_alloc;

void kt_alloc_init(kt_alloc *a);
/* Fail the n-th allocation from now (n >= 1); 0 disarms.  Resets calls. */
void kt_alloc_fail_at(kt_alloc *a, unsigned long n);

/* A printable dump of every key/value in the store ("hexkey=hexvalue\n"
 * lines in key order), read in one read-only transaction.  Caller frees
 * with free().  Fails the test on any storage error. */
char *kt_dump(kivis_storage *st);

/* kivis_check finds no problem in db (every index entry where it belongs,
 * no dangling reference with an action); fails the test otherwise. */
void kt_check_clean(kivis_db *db);

/* Fail, showing both, unless the text hay contains needle. */
#define KT_ASSERT_CONTAINS(hay, needle)                                       \
    do {                                                                      \
        if (!strstr((hay), (needle)))                                         \
            fail_msg("missing \"%s\" in:\n%s", (needle), (hay));              \
    } while (0)

/* Number of entries in the store. */
size_t kt_count(kivis_storage *st);

/* The value of k read in a new read-only transaction, as a C string in
 * buf (fails the test when it does not fit).  @return the status of the
 * begin or the get: KIVIS_OK, KIVIS_NOTFOUND, ... */
int kt_get_once(kivis_storage *st, kivis_slice k, char *buf, size_t cap);

/* Assert a get's answer: rc KIVIS_OK and v the bytes of `want`, or
 * KIVIS_NOTFOUND when want is NULL. */
void kt_expect_answer(int rc, kivis_slice v, const char *want);

/* Two writers on one store (a and b, two storages of it) read key "c"
 * and write it, b a key "other" too: a commits first, b's commit is
 * KIVIS_ECONFLICT and leaves nothing of itself.  Fails the test when not. */
void kt_conflicting_writers(kivis_storage *a, kivis_storage *b);

/* A new empty directory under $TMPDIR (or /tmp), its path in buf. */
void kt_tempdir(char *buf, size_t n);
/* Remove a directory and the plain files directly inside it. */
void kt_rmdir(const char *dir);

/* What kt_kill_halfway runs in its child: an open of a store whose
 * migration reports to `progress` (with `progress_ctx`).  It should not
 * return: the child is killed first. */
typedef void (*kt_child_fn)(void *arg, kivis_progress_fn progress,
                            void *progress_ctx);

/* Fork, run child(arg, ...) in the child process and SIGKILL it once its
 * progress reports half its total (the child then waits in the callback).
 * Fails the test unless the child got halfway and died of the kill. */
void kt_kill_halfway(kt_child_fn child, void *arg);

/* Deterministic PRNG (xorshift64*), so failures reproduce from the seed. */
uint64_t kt_rand(uint64_t *state);

#endif
