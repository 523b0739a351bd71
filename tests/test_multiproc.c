/*
 * Several processes on one LMDB store: reader processes, each with its own
 * kivis_lmdb_open of the path, scan the store over and over while the
 * parent commits multi-record transactions.  Each transaction adds a batch
 * of BATCH users sharing a batch number (user.age, and the indexed name
 * "b<batch>") and removes the oldest one, KEEP - 1 batches back, so a reader that
 * sees a batch at all must see all of it: through a full table scan, an
 * index scan and an exact index lookup, each in its own read transaction.
 * Readers report violations through their exit status.
 *
 * Runs for RUN_MS milliseconds (KIVIS_TEST_SCALE=small: a third of it).
 */
#include "testutil.h"
#include "pets_schema.h"

#include <kivis.h>
#include <kivis/lmdb.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define READERS 3
#define BATCH 7    /* users per transaction */
#define KEEP 20    /* batches alive at once */
#define RUN_MS 3000
#define MAX_BATCHES 1000000

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void batch_name(uint32_t batch, char *buf, size_t n)
{
    snprintf(buf, n, "b%07" PRIu32, batch);
}

/* ---- readers -------------------------------------------------------- */

typedef struct reader {
    int id;
    kivis_db *db;
    uint64_t rng;
    uint32_t *count; /* per batch, reused by every pass */
    long passes, lookups, violations;
} reader;

static void violation(reader *r, const char *how, uint32_t batch, uint32_t n)
{
    if (r->violations++ < 5)
        fprintf(stderr, "reader %d: %s saw %" PRIu32 " of batch %" PRIu32
                " (0 or %d expected)\n", r->id, how, n, batch, BATCH);
}

/* Count the users per batch that one scan yields, and check the counts.
 * @return the highest batch seen, or 0. */
static uint32_t scan_batches(reader *r, int32_t index, const char *how)
{
    kivis_query q = {PETS_USER, index, KIVIS_Q_ALL, NULL, NULL, NULL, 0, 0};
    kivis_scan *s;
    user u;
    uint32_t lo = UINT32_MAX, hi = 0;
    int rc = kivis_scan_open(r->db, &q, &s);
    while (rc == KIVIS_OK && (rc = kivis_scan_next(s, NULL, &u)) == KIVIS_OK) {
        uint32_t b = u.age;
        kivis_record_clear(r->db, PETS_USER, &u);
        if (b == 0 || b >= MAX_BATCHES) {
            violation(r, "a stray record in a scan", b, 1);
            continue;
        }
        r->count[b]++;
        lo = b < lo ? b : lo;
        hi = b > hi ? b : hi;
    }
    kivis_scan_close(s);
    if (rc != KIVIS_NOTFOUND) {
        fprintf(stderr, "reader %d: %s: %s\n", r->id, how, kivis_strerror(rc));
        r->violations++;
    }
    for (uint32_t b = lo; b <= hi && hi; b++) {
        if (r->count[b] != 0 && r->count[b] != BATCH)
            violation(r, how, b, r->count[b]);
        r->count[b] = 0;
    }
    return hi;
}

/* An exact index lookup of one batch's name. */
static void lookup_batch(reader *r, uint32_t b)
{
    char name[16];
    const char *np = name;
    batch_name(b, name, sizeof name);
    kivis_query q = {PETS_USER, USER_BY_NAME, KIVIS_Q_EQ, &np, NULL, NULL, 0, 0};
    kivis_scan *s;
    user u;
    uint32_t n = 0;
    int rc = kivis_scan_open(r->db, &q, &s);
    while (rc == KIVIS_OK && (rc = kivis_scan_next(s, NULL, &u)) == KIVIS_OK) {
        n += u.age == b;
        kivis_record_clear(r->db, PETS_USER, &u);
    }
    kivis_scan_close(s);
    if (rc != KIVIS_NOTFOUND) {
        fprintf(stderr, "reader %d: lookup: %s\n", r->id, kivis_strerror(rc));
        r->violations++;
    }
    if (n != 0 && n != BATCH)
        violation(r, "an index lookup", b, n);
    r->lookups++;
}

static int reader_loop(reader *r, double deadline)
{
    while (now_ms() < deadline) {
        uint32_t hi = scan_batches(r, -1, "a table scan");
        scan_batches(r, USER_BY_NAME, "an index scan");
        /* The newest batch the table scan saw, the one being removed
         * about now, and one that may be committed at any moment. */
        if (hi) {
            lookup_batch(r, hi);
            lookup_batch(r, hi >= KEEP ? hi - KEEP + 1 : 1);
            lookup_batch(r, hi + 1 + (uint32_t)(kt_rand(&r->rng) % 3));
        }
        r->passes++;
    }
    return r->violations == 0;
}

static _Noreturn void reader_run(const char *dir, int id, double deadline)
{
    reader r = {id, NULL, (uint64_t)id * 7919u, NULL, 0, 0, 0};
    kivis_storage *st;
    int ok = kivis_lmdb_open(dir, NULL, &st) == KIVIS_OK &&
             kivis_open(st, &pets_schema, NULL, &r.db) == KIVIS_OK &&
             (r.count = calloc(MAX_BATCHES, sizeof *r.count)) != NULL;
    if (ok)
        ok = reader_loop(&r, deadline);
    else
        fprintf(stderr, "reader %d: cannot open the store\n", id);
    printf("multiproc: reader %d: %ld passes, %ld lookups, %ld violations\n",
           id, r.passes, r.lookups, r.violations);
    fflush(stdout);
    free(r.count);
    kivis_close(r.db);
    kivis_storage_close(st);
    /* _exit: the cmocka state inherited from the parent is not ours. */
    _exit(ok && r.passes > 0 ? 0 : 1);
}

/* ---- the writer ----------------------------------------------------- */

/* One transaction: batch b in, batch b - KEEP + 1 out (slots of `keys`
 * are reused modulo KEEP). */
static void write_batch(kivis_db *db, uint32_t b, user_key keys[][BATCH])
{
    char name[16];
    batch_name(b, name, sizeof name);
    assert_int_equal(kivis_begin(db), KIVIS_OK);
    for (int i = 0; i < BATCH; i++) {
        user u = {name, (char *)"batch@multiproc.test", b};
        assert_int_equal(kivis_put(db, PETS_USER, &u, &keys[b % KEEP][i]),
                         KIVIS_OK);
        /* The old batch goes user by user, interleaved with the new one. */
        if (b >= KEEP)
            assert_int_equal(kivis_remove(db, PETS_USER, &keys[(b + 1) % KEEP][i]),
                             KIVIS_OK);
    }
    assert_int_equal(kivis_commit(db), KIVIS_OK);
}

/* The directory lives in setup/teardown so that a failure removes it. */
static int setup(void **state)
{
    char *dir = calloc(1, 256);
    assert_non_null(dir);
    kt_tempdir(dir, 256);
    *state = dir;
    return 0;
}

static int teardown(void **state)
{
    kt_rmdir(*state);
    free(*state);
    return 0;
}

static void test_readers_in_processes_see_whole_batches(void **state)
{
    const char *dir = *state;
    const char *scale = getenv("KIVIS_TEST_SCALE");
    double run_ms = scale && !strcmp(scale, "small") ? RUN_MS / 3 : RUN_MS;
    kivis_storage *st;
    kivis_db *db;
    kivis_options o = {NULL, KIVIS_NOSYNC, NULL, 0, 0};
    /* The store and its schema exist before any reader opens it. */
    assert_int_equal(kivis_lmdb_open(dir, NULL, &st), KIVIS_OK);
    assert_int_equal(kivis_open(st, &pets_schema, &o, &db), KIVIS_OK);
    kivis_close(db);
    kivis_storage_close(st);

    /* Fork before the writer opens: LMDB forbids using an environment
     * across fork, so each process opens its own. */
    double deadline = now_ms() + run_ms;
    pid_t pids[READERS];
    fflush(NULL);
    for (int i = 0; i < READERS; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0)
            reader_run(dir, i + 1, deadline);
    }

    static user_key keys[KEEP][BATCH];
    uint32_t b = 0;
    assert_int_equal(kivis_lmdb_open(dir, NULL, &st), KIVIS_OK);
    assert_int_equal(kivis_open(st, &pets_schema, &o, &db), KIVIS_OK);
    while (now_ms() < deadline && b + 1 < MAX_BATCHES)
        write_batch(db, ++b, keys);
    kivis_close(db);
    kivis_storage_close(st);

    int failed = 0;
    for (int i = 0; i < READERS; i++) {
        int status;
        assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
        failed += !WIFEXITED(status) || WEXITSTATUS(status) != 0;
    }
    printf("multiproc: writer committed %" PRIu32 " batches of %d users\n", b,
           BATCH);
    assert_int_equal(failed, 0);
    assert_true(b > KEEP);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_readers_in_processes_see_whole_batches,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
