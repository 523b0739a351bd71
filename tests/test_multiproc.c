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
 *
 * Then writer processes: each commit of each process increments a shared
 * counter record and adds an indexed record, while the map grows over and
 * over (see test_writers_in_processes_lose_nothing).
 */
#include "testutil.h"
#include "petsutil.h"

#include <kivis.h>
#include <kivis/inspect.h>
#include <kivis/lmdb.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
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

/* At least one pass, however late the reader got going: under valgrind
 * on a busy machine its open alone can outlast the run, and a reader that
 * checked nothing proves nothing (it then failed the test for its 0
 * passes). */
static int reader_loop(reader *r, double deadline)
{
    do {
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
    } while (now_ms() < deadline);
    return r->violations == 0;
}

static _Noreturn void reader_run(const char *dir, int id, const void *arg)
{
    double deadline = *(const double *)arg;
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

/* ---- child processes ------------------------------------------------ */

typedef void (*child_main)(const char *dir, int id, const void *arg);

/* Fork n children, each running run(dir, 1..n, arg), which must _exit.  Fork
 * before the parent opens the store: LMDB forbids using an environment
 * across fork, so each process opens its own. */
static void spawn(pid_t *pids, int n, child_main run, const char *dir, const void *arg)
{
    fflush(NULL);
    for (int i = 0; i < n; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0)
            run(dir, i + 1, arg);
    }
}

/* Wait for the children.  @return how many failed. */
static int reap(const pid_t *pids, int n)
{
    int failed = 0;
    for (int i = 0; i < n; i++) {
        int status;
        assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
        failed += !WIFEXITED(status) || WEXITSTATUS(status) != 0;
    }
    return failed;
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
    kivis_options o = {NULL, KIVIS_NOSYNC, NULL, 0, 0, NULL, NULL, NULL};
    /* The store and its schema exist before any reader opens it. */
    assert_int_equal(kivis_lmdb_open(dir, NULL, &st), KIVIS_OK);
    assert_int_equal(kivis_open(st, &pets_schema, &o, &db), KIVIS_OK);
    kivis_close(db);
    kivis_storage_close(st);

    double deadline = now_ms() + run_ms;
    pid_t pids[READERS];
    spawn(pids, READERS, reader_run, dir, &deadline);

    static user_key keys[KEEP][BATCH];
    uint32_t b = 0;
    assert_int_equal(kivis_lmdb_open(dir, NULL, &st), KIVIS_OK);
    assert_int_equal(kivis_open(st, &pets_schema, &o, &db), KIVIS_OK);
    /* At least KEEP + 1 batches, so that removals happen too, however slow
     * the machine (valgrind on a loaded one wrote 7 in the run time). */
    while ((now_ms() < deadline || b <= KEEP) && b + 1 < MAX_BATCHES)
        write_batch(db, ++b, keys);
    kivis_close(db);
    kivis_storage_close(st);

    int failed = reap(pids, READERS);
    printf("multiproc: writer committed %" PRIu32 " batches of %d users\n", b,
           BATCH);
    assert_int_equal(failed, 0);
    assert_true(b > KEEP);
}

/* ---- writers in processes, the map growing under them ----------------- */

#define WRITERS 2
#define COMMITS 5000      /* in all; KIVIS_MULTIPROC_COMMITS=n for a long run */
#define SMALL_COMMITS 600 /* KIVIS_TEST_SCALE=small (valgrind) */
#define SESSION 40        /* commits between reopens */
#define SMALL_MAP (128 << 10)

/* What one writer process counts; any error fails it. */
typedef struct wstats {
    long commits, busy, errors, reads;
    long resizes; /* commits after which this process's map was bigger */
} wstats;

static void werror(wstats *w, int id, const char *what, int rc)
{
    if (w->errors++ < 5)
        fprintf(stderr, "writer %d: %s: %s\n", id, what, kivis_strerror(rc));
}

/* One commit: the counter (user 1) + 1, and a new user named after it.
 * KIVIS_EBUSY from begin means "retry the transaction" (kivis/lmdb.h). */
static void rmw_commit(kivis_db *db, int id, long n, wstats *w)
{
    int rc;
    while ((rc = kivis_begin(db)) == KIVIS_EBUSY)
        w->busy++;
    if (rc) {
        werror(w, id, "begin", rc);
        return;
    }
    user_key k = {1};
    user u;
    if ((rc = kivis_get(db, PETS_USER, &k, &u)) != KIVIS_OK) {
        werror(w, id, "get", rc);
        kivis_abort(db);
        return;
    }
    u.age++;
    rc = kivis_insert(db, PETS_USER, &k, &u);
    kivis_record_clear(db, PETS_USER, &u);
    char name[32], email[200];
    snprintf(name, sizeof name, "w%d-%ld", id, n);
    memset(email, 'e', sizeof email - 1);
    email[sizeof email - 1] = '\0';
    user nu = {name, email, (uint32_t)n};
    if (rc == KIVIS_OK)
        rc = kivis_put(db, PETS_USER, &nu, NULL);
    if (rc == KIVIS_OK)
        rc = kivis_commit(db);
    else
        kivis_abort(db);
    if (rc)
        werror(w, id, "put/commit", rc);
    else
        w->commits++;
}

/* A reader thread beside the writer in each process: the counter never
 * goes back, and its transactions overlap the writer's growths and the
 * other process's. */
typedef struct counter_reader {
    kivis_db *db;
    int id;
    int stop; /* atomic */
    long errors, reads;
} counter_reader;

static void *read_counter(void *arg)
{
    counter_reader *r = arg;
    uint32_t last = 0;
    while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
        user_key k = {1};
        user u;
        int rc = kivis_begin_read(r->db);
        if (rc == KIVIS_EBUSY)
            continue;
        if (rc == KIVIS_OK)
            rc = kivis_get(r->db, PETS_USER, &k, &u);
        kivis_abort(r->db);
        if (rc) {
            if (r->errors++ < 5)
                fprintf(stderr, "reader %d: %s\n", r->id, kivis_strerror(rc));
            continue;
        }
        if (u.age < last && r->errors++ < 5)
            fprintf(stderr, "reader %d: counter went back %u -> %u\n", r->id, last,
                    u.age);
        last = u.age;
        kivis_record_clear(r->db, PETS_USER, &u);
        r->reads++;
        struct timespec breath = {0, 20000}; /* leave the writer a core */
        nanosleep(&breath, NULL);
    }
    return NULL;
}

/* Sessions of SESSION commits, each on a fresh open with a small map, so
 * that the map is just big enough at every start and grows soon. */
static void writer_session(const char *dir, int id, long *n, long end, wstats *w)
{
    kivis_lmdb_options lo = {NULL, SMALL_MAP, 0, 0};
    kivis_options o = {NULL, KIVIS_NOSYNC, NULL, 0, 0, NULL, NULL, NULL};
    kivis_storage *st;
    kivis_db *db, *rdb;
    int rc = kivis_lmdb_open(dir, &lo, &st);
    if (rc) {
        werror(w, id, "open", rc);
        return;
    }
    if ((rc = kivis_open(st, &pets_schema, &o, &db)) != KIVIS_OK ||
        (rc = kivis_open(st, &pets_schema, &o, &rdb)) != KIVIS_OK) {
        werror(w, id, "kivis_open", rc);
        kivis_storage_close(st);
        return;
    }
    counter_reader r = {rdb, id, 0, 0, 0};
    pthread_t th;
    bool reading = pthread_create(&th, NULL, read_counter, &r) == 0;
    for (long stop = *n + SESSION; *n < stop && *n < end && w->errors == 0; ++*n) {
        size_t map = kivis_lmdb_map_size(st);
        rmw_commit(db, id, *n, w);
        w->resizes += kivis_lmdb_map_size(st) != map;
    }
    __atomic_store_n(&r.stop, 1, __ATOMIC_RELEASE);
    if (reading)
        pthread_join(th, NULL);
    w->errors += r.errors + !reading;
    w->reads += r.reads;
    kivis_close(rdb);
    kivis_close(db);
    kivis_storage_close(st);
}

static _Noreturn void writer_run(const char *dir, int id, const void *arg)
{
    long commits = *(const long *)arg;
    wstats w = {0, 0, 0, 0, 0};
    for (long n = 0; n < commits && w.errors == 0;)
        writer_session(dir, id, &n, commits, &w);
    printf("multiproc: writer %d: %ld commits (%ld resized the map), %ld busy "
           "retries, %ld reads, %ld errors\n", id, w.commits, w.resizes, w.busy, w.reads,
           w.errors);
    fflush(stdout);
    _exit(w.errors == 0 && w.commits == commits ? 0 : 1);
}

static long writer_commits(void)
{
    const char *n = getenv("KIVIS_MULTIPROC_COMMITS");
    const char *scale = getenv("KIVIS_TEST_SCALE");
    if (n && atol(n) > 0)
        return atol(n);
    return scale && !strcmp(scale, "small") ? SMALL_COMMITS : COMMITS;
}

/* Read-modify-write commits from two processes on a map that starts at
 * 128 KiB: a growth ends the writer's MDB transaction and replays its
 * writes, and no other process may commit in between (it would be
 * overwritten); a process whose map another one grew adopts the new size
 * even with a reader open beside it.  In the end the counter holds every
 * commit and every index entry matches its record. */
static void test_writers_in_processes_lose_nothing(void **state)
{
    const char *dir = *state;
    long total = writer_commits(), each = total / WRITERS;
    kivis_lmdb_options lo = {NULL, SMALL_MAP, 0, 0};
    kivis_storage *st;
    kivis_db *db;
    assert_int_equal(kivis_lmdb_open(dir, &lo, &st), KIVIS_OK);
    assert_int_equal(kivis_open(st, &pets_schema, NULL, &db), KIVIS_OK);
    user c = {(char *)"counter", (char *)"", 0};
    user_key ck;
    assert_int_equal(kivis_put(db, PETS_USER, &c, &ck), KIVIS_OK);
    assert_int_equal(ck.id, 1);
    kivis_close(db);
    kivis_storage_close(st);

    double start = now_ms();
    pid_t pids[WRITERS];
    spawn(pids, WRITERS, writer_run, dir, &each);
    int failed = reap(pids, WRITERS);
    double ms = now_ms() - start;

    assert_int_equal(kivis_lmdb_open(dir, &lo, &st), KIVIS_OK);
    assert_int_equal(kivis_open(st, &pets_schema, NULL, &db), KIVIS_OK);
    user u;
    assert_int_equal(kivis_get(db, PETS_USER, &ck, &u), KIVIS_OK);
    kivis_check_stats cs;
    memset(&cs, 0, sizeof cs);
    int check = kivis_check(db, NULL, NULL, &cs);
    printf("multiproc: %d writers, %ld commits in %.0f ms: counter %" PRIu32
           ", %" PRIu64 " users, data %zu KiB, check: %" PRIu64 " problems\n",
           WRITERS, each * WRITERS, ms, u.age, cs.tables[PETS_USER].records,
           kivis_lmdb_map_size(st) >> 10, cs.problems);
    uint64_t users = cs.tables[PETS_USER].records;
    uint32_t counter = u.age;
    kivis_record_clear(db, PETS_USER, &u);
    kivis_stats_free(db, &cs);
    kivis_close(db);
    kivis_storage_close(st);
    assert_int_equal(failed, 0);
    assert_int_equal(counter, each * WRITERS);
    assert_int_equal(users, (uint64_t)each * WRITERS + 1);
    assert_int_equal(check, KIVIS_OK);
}

/* ---- a map another process grew, with a reader open here --------------- */

/* Child: once the parent says so (a byte on fd), grow the map far past
 * SMALL_MAP with one big blob. */
static _Noreturn void grow_elsewhere(const char *dir, int id, const void *arg)
{
    (void)id;
    char go;
    int ok = read(*(const int *)arg, &go, 1) == 1;
    kivis_lmdb_options lo = {NULL, SMALL_MAP, 0, 0};
    kivis_storage *st = NULL;
    kivis_db *db = NULL;
    static uint8_t big[1 << 20];
    blob b = {{big, sizeof big}};
    ok = ok && kivis_lmdb_open(dir, &lo, &st) == KIVIS_OK &&
         kivis_open(st, &pets_schema, NULL, &db) == KIVIS_OK &&
         kivis_put(db, PETS_BLOB, &b, NULL) == KIVIS_OK;
    kivis_close(db);
    kivis_storage_close(st);
    _exit(ok ? 0 : 1);
}

/* Another process grows the map past this one's while a thread here holds
 * a read transaction: this process's next writer adopts the new size once
 * the reader is done (LMDB's MDB_MAP_RESIZED), where it used to fail with
 * KIVIS_EIO. */
static void test_map_grown_elsewhere_is_adopted_beside_a_reader(void **state)
{
    const char *dir = *state;
    kivis_lmdb_options lo = {NULL, SMALL_MAP, 0, 0};
    kivis_storage *st;
    kivis_db *a, *r;
    assert_int_equal(kivis_lmdb_open(dir, &lo, &st), KIVIS_OK);
    assert_int_equal(kivis_open(st, &pets_schema, NULL, &a), KIVIS_OK);
    kivis_close(a);
    kivis_storage_close(st);
    int go[2];
    assert_int_equal(pipe(go), 0);
    pid_t child;
    spawn(&child, 1, grow_elsewhere, dir, &go[0]);
    close(go[0]);

    assert_int_equal(kivis_lmdb_open(dir, &lo, &st), KIVIS_OK);
    assert_int_equal(kivis_open(st, &pets_schema, NULL, &a), KIVIS_OK);
    assert_int_equal(kivis_open(st, &pets_schema, NULL, &r), KIVIS_OK);
    size_t before = kivis_lmdb_map_size(st);
    kt_put_user(a, "here", 1);
    kt_held_reader sr = {r, 300, 0, -1};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, kt_hold_read_txn, &sr), 0);
    kt_wait_holding(&sr);
    assert_int_equal(write(go[1], "g", 1), 1);
    close(go[1]);
    assert_int_equal(reap(&child, 1), 0);

    assert_int_equal(kivis_begin(a), KIVIS_OK); /* waits for the reader */
    user u = {(char *)"after", (char *)"", 2};
    assert_int_equal(kivis_put(a, PETS_USER, &u, NULL), KIVIS_OK);
    assert_int_equal(kivis_commit(a), KIVIS_OK);
    pthread_join(th, NULL);
    assert_int_equal(sr.rc, KIVIS_OK);
    assert_true(kivis_lmdb_map_size(st) >= before + (1 << 20));
    assert_int_equal(kt_users_named(a, "after"), 1);
    assert_int_equal(kivis_check(a, NULL, NULL, NULL), KIVIS_OK);
    kivis_close(r);
    kivis_close(a);
    kivis_storage_close(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_readers_in_processes_see_whole_batches,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_writers_in_processes_lose_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_map_grown_elsewhere_is_adopted_beside_a_reader,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
