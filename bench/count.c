/*
 * bench/count.c - bench_count: what counting and the distinct values of an
 * index cost against reading the records, through the API kivis-gen
 * generates from bench/users.kvs, on the memory backend and LMDB.
 *
 * N users (default 100,000), each named after one of 200 "countries", so
 * that "records per country" is the distinct names of the name index with
 * their counts.  Every figure is the best of 9 runs (CPU time), in ns per record
 * (per index entry for the index phases), all of them inside one read
 * transaction as a reader that groups its reads would run them:
 *
 *   scan decode      user_scan + user_next_into: every record decoded
 *   count            user_count: the record keys stepped, nothing decoded
 *   index keys       user_by_name_range + user_next_key: primary keys of
 *                    the index entries, no record fetched
 *   index count      user_count_by_name_range(NULL, NULL)
 *   group decode     records per country the old way: the name index with
 *                    every record fetched and decoded, grouped by name
 *   distinct         user_distinct_name: the same groups and counts, one
 *                    name decoded a group
 *   distinct seek    user_distinct_name_next without counts: the names
 *                    alone, one seek past each group
 *
 *   bench_count [N]
 */
#include "users.kivis.h"

#include <kivis/lmdb.h>
#include <kivis/memory.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define COUNTRIES 200
#define RUNS 9

static void check(users_db *db, int rc, const char *what)
{
    if (rc == KIVIS_OK)
        return;
    fprintf(stderr, "bench_count: %s: %s (%s)\n", what, kivis_strerror(rc),
            users_errmsg(db));
    exit(1);
}

static void check_end(users_db *db, int rc, const char *what)
{
    check(db, rc == KIVIS_NOTFOUND ? KIVIS_OK : rc, what);
}

/* CPU time of the process: on a loaded machine, time spent descheduled
 * would swamp phases of a few milliseconds. */
static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* In transactions of LOAD_TXN records, as bench_engines loads. */
#define LOAD_TXN 1000

static void load(users_db *db, size_t n)
{
    char name[32], email[64];
    for (size_t i = 0; i < n; i++) {
        if (i % LOAD_TXN == 0)
            check(db, users_begin(db), "begin");
        snprintf(name, sizeof name, "country-%03zu", (i * 7919) % COUNTRIES);
        snprintf(email, sizeof email, "user%zu@example.org", i);
        user u = {name, email, (uint32_t)(i % 90)};
        check(db, user_put(db, &u, NULL), "user_put");
        if (i % LOAD_TXN == LOAD_TXN - 1 || i == n - 1)
            check(db, users_commit(db), "commit");
    }
}

/* ---- the phases: each returns what it counted, to check them all -------- */

static uint64_t scan_decode(users_db *db)
{
    user_cursor c;
    user u;
    char buf[128];
    uint64_t n = 0;
    int rc;
    check(db, user_scan(db, NULL, NULL, 0, &c), "user_scan");
    while ((rc = user_next_into(&c, NULL, &u, buf, sizeof buf)) == KIVIS_OK)
        n += u.age < 1000;
    user_close(&c);
    check_end(db, rc, "user_next_into");
    return n;
}

static uint64_t count(users_db *db)
{
    uint64_t n;
    check(db, user_count(db, &n), "user_count");
    return n;
}

static uint64_t index_keys(users_db *db)
{
    user_cursor c;
    user_key k;
    uint64_t n = 0;
    int rc;
    check(db, user_by_name_range(db, NULL, NULL, 0, &c), "user_by_name_range");
    while ((rc = user_next_key(&c, &k)) == KIVIS_OK)
        n += k.id > 0;
    user_close(&c);
    check_end(db, rc, "user_next_key");
    return n;
}

static uint64_t index_count(users_db *db)
{
    uint64_t n;
    check(db, user_count_by_name_range(db, NULL, NULL, &n), "user_count_by_name_range");
    return n;
}

/* Groups seen and their counts summed must come out as COUNTRIES and N:
 * the phases below return groups * 2^32 + records. */
static uint64_t group_decode(users_db *db)
{
    user_cursor c;
    user u;
    char buf[128], last[32] = "";
    uint64_t groups = 0, n = 0;
    int rc;
    check(db, user_by_name_range(db, NULL, NULL, 0, &c), "user_by_name_range");
    while ((rc = user_next_into(&c, NULL, &u, buf, sizeof buf)) == KIVIS_OK) {
        if (strcmp(u.name, last) != 0) {
            snprintf(last, sizeof last, "%s", u.name);
            groups++;
        }
        n++;
    }
    user_close(&c);
    check_end(db, rc, "user_next_into");
    return groups << 32 | n;
}

static uint64_t distinct(users_db *db)
{
    user_distinct_name_cursor c;
    const char *name;
    uint64_t groups = 0, n = 0, k;
    int rc;
    check(db, user_distinct_name(db, 0, &c), "user_distinct_name");
    while ((rc = user_distinct_name_next(&c, &name, &k)) == KIVIS_OK) {
        groups += name[0] != '\0';
        n += k;
    }
    user_distinct_name_close(&c);
    check_end(db, rc, "user_distinct_name_next");
    return groups << 32 | n;
}

/* The names alone: user_distinct_name_next without a count passes over
 * each group by one seek. */
static uint64_t distinct_seek(users_db *db)
{
    user_distinct_name_cursor c;
    const char *name;
    uint64_t groups = 0;
    int rc;
    check(db, user_distinct_name(db, 0, &c), "user_distinct_name");
    while ((rc = user_distinct_name_next(&c, &name, NULL)) == KIVIS_OK)
        groups += name[0] != '\0';
    user_distinct_name_close(&c);
    check_end(db, rc, "user_distinct_name_next");
    return groups << 32;
}

typedef struct phase {
    const char *name;
    uint64_t (*run)(users_db *db);
} phase;

static const phase phases[] = {
    {"scan decode", scan_decode}, {"count", count},
    {"index keys", index_keys},   {"index count", index_count},
    {"group decode", group_decode}, {"distinct", distinct},
    {"distinct seek", distinct_seek},
};

/* Best of RUNS, in ns per record; each result must equal the first. */
static double best_ns(users_db *db, const phase *p, size_t n, uint64_t *out)
{
    double best = 1e30;
    for (int r = 0; r < RUNS; r++) {
        check(db, users_begin_read(db), "begin_read");
        double t0 = now();
        uint64_t got = p->run(db);
        double t = now() - t0;
        users_abort(db);
        if (r && got != *out) {
            fprintf(stderr, "bench_count: %s gave %llu, then %llu\n", p->name,
                    (unsigned long long)*out, (unsigned long long)got);
            exit(1);
        }
        *out = got;
        best = t < best ? t : best;
    }
    return best * 1e9 / (double)n;
}

static void run_backend(const char *backend, kivis_storage *st, size_t n)
{
    users_db *db;
    check(NULL, users_open(st, NULL, &db), "users_open");
    load(db, n);
    uint64_t want[] = {n, n, n, n, (uint64_t)COUNTRIES << 32 | n,
                       (uint64_t)COUNTRIES << 32 | n, (uint64_t)COUNTRIES << 32};
    double base = 0;
    for (size_t i = 0; i < sizeof phases / sizeof phases[0]; i++) {
        uint64_t got = 0;
        double ns = best_ns(db, &phases[i], n, &got);
        if (got != want[i]) {
            fprintf(stderr, "bench_count: %s on %s gave %llu, not %llu\n",
                    phases[i].name, backend, (unsigned long long)got,
                    (unsigned long long)want[i]);
            exit(1);
        }
        base = i ? base : ns;
        printf("%-8s %-14s %8.1f ns/record  %6.1f%% of scan decode\n", backend,
               phases[i].name, ns, 100 * ns / base);
    }
    users_close(db);
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? (size_t)strtoull(argv[1], NULL, 10) : 100000;
    if (!n) {
        fprintf(stderr, "usage: bench_count [N > 0]\n");
        return 2;
    }
    printf("%zu users, %d names; best of %d runs\n", n, COUNTRIES, RUNS);
    kivis_storage *st;
    check(NULL, kivis_memory_open(NULL, &st), "memory open");
    run_backend("memory", st, n);
    kivis_storage_close(st);

    char dir[] = "/tmp/bench_count.XXXXXX";
    if (!mkdtemp(dir)) {
        perror("bench_count: mkdtemp");
        return 1;
    }
    kivis_lmdb_options lo = {0};
    lo.map_size = ((size_t)1 << 30) + n * 2048;
    check(NULL, kivis_lmdb_open(dir, &lo, &st), "lmdb open");
    run_backend("lmdb", st, n);
    kivis_storage_close(st);
    char path[64];
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/lock.mdb", dir);
    unlink(path);
    rmdir(dir);
    return 0;
}
