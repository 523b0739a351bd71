/*
 * The hierarchy across machines (kivis/layered.h): shops that read one
 * price list kept in PostgreSQL, each through caches of its own.
 *
 *   tier 0  memory B+tree   bounded to 16 KiB, LRU   (the hot prices)
 *   tier 1  LMDB in DIR     bounded to 4 MiB, LRU    (what this shop reads,
 *                                                     on its own disk)
 *   tier 2  PostgreSQL      the authority            (shared by every shop)
 *
 * One process writes, another reads; the reader's caches learn of the
 * writer's commits through the authority's change feed, which the layered
 * storage drains at the beginning of each transaction.
 *
 *   example_remote load   CONNINFO          the price list: ITEMS prices, version 0
 *   example_remote reader CONNINFO DIR N    warm the caches, print "ready", then
 *                                           read until update N is seen; report
 *   example_remote writer CONNINFO DIR N    N updates of the HOT prices, one
 *                                           every WRITE_PACE_US, round robin
 *
 * examples/remote/run.sh runs the three against a private server and
 * prints the reader's report (README.md beside this file explains it).
 *
 * The invalidation delay is measured with the wall clock: the writer
 * stamps each update with CLOCK_REALTIME just before its commit, the
 * reader subtracts the stamp from CLOCK_REALTIME when it first reads the
 * new version.  Both processes run on one machine here, so they share the
 * clock; across machines the clocks must be synchronised (PTP, or NTP to
 * well under the delay measured), or the delay measured as a round trip:
 * the reader answering each version it sees and the writer timing it.
 */
#define _XOPEN_SOURCE 700 /* clock_gettime, clock_nanosleep, nanosleep */

#include "remote.kivis.h"

#include <kivis/layered.h>
#include <kivis/lmdb.h>
#include <kivis/memory.h>
#include <kivis/postgres.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum {
    ITEMS = 2000,            /* prices in the list */
    HOT = 32,                /* the first HOT change; every shop reads them */
    BROWSED = 400,           /* the reader also browses the first BROWSED */
    BROWSE_PER_SWEEP = 8,    /* ... this many per sweep, in turn */
    WRITE_PACE_US = 4000,    /* one update every 4 ms */
    READ_PAUSE_US = 200,     /* between the reader's sweeps */
    IDLE_TIMEOUT_S = 10,     /* the reader gives up after this long with no news */
    MEMORY_BYTES = 16 << 10, /* holds the hot prices, not the browsed ones */
    LMDB_BYTES = 4 << 20,    /* holds everything this shop reads */
};

static const char *const tier_names[] = {"memory", "lmdb", "postgres"};
static const char *const aisles[] = {"dairy", "bakery", "produce", "frozen", "pantry"};

static void check(remote_db *db, int rc, const char *what)
{
    if (rc == KIVIS_OK)
        return;
    fprintf(stderr, "remote: %s: %s (%s)\n", what, kivis_strerror(rc),
            db ? remote_errmsg(db) : kivis_postgres_errmsg());
    exit(1);
}

static int64_t wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static double mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void pause_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

static price_key key_of(unsigned item)
{
    price_key k;
    snprintf(k.sku, sizeof k.sku, "SKU-%06u", item);
    return k;
}

/* The price of `item` at update `version` (0: as loaded). */
static price price_of(unsigned item, uint64_t version, char *title, size_t n)
{
    price p;
    memset(&p, 0, sizeof p);
    snprintf(p.sku, sizeof p.sku, "SKU-%06u", item);
    snprintf(title, n, "article %u", item);
    p.title = title;
    snprintf(p.aisle, sizeof p.aisle, "%s", aisles[item % 5]);
    p.cents = 100 + (uint32_t)((item * 37 + version * 11) % 900);
    p.version = version;
    return p;
}

/* The hot price update `version` (1..N) changes: round robin. */
static unsigned item_of_update(uint64_t version)
{
    return (unsigned)((version - 1) % HOT);
}

static kivis_storage *open_postgres(const char *conninfo)
{
    kivis_storage *pg = NULL;
    check(NULL, kivis_postgres_open(conninfo, NULL, &pg), "connecting to PostgreSQL");
    return pg;
}

/* memory -> LMDB in dir -> PostgreSQL; the stack owns the tiers after this. */
static kivis_storage *open_stack(const char *conninfo, const char *dir)
{
    kivis_storage *mem = NULL, *disk = NULL, *stack = NULL;
    kivis_storage *pg = open_postgres(conninfo);
    int rc = kivis_memory_open(NULL, &mem);
    if (rc == KIVIS_OK)
        rc = kivis_lmdb_open(dir, NULL, &disk);
    kivis_layered_tier tiers[] = {{mem, MEMORY_BYTES, 0}, {disk, LMDB_BYTES, 0}, {pg, 0, 0}};
    kivis_layered_options lo = {.negative_max = 1024};
    if (rc == KIVIS_OK)
        rc = kivis_layered_open(tiers, 3, &lo, &stack);
    if (rc != KIVIS_OK) {
        kivis_storage_close(mem);
        kivis_storage_close(disk);
        kivis_storage_close(pg);
        fprintf(stderr, "remote: opening the tiers (LMDB in %s): %s\n", dir,
                kivis_strerror(rc));
        exit(1);
    }
    return stack;
}

static remote_db *open_db(kivis_storage *st)
{
    remote_db *db = NULL;
    char err[256] = "";
    kivis_options o = {NULL, KIVIS_SYNC, err, sizeof err, 0, NULL, NULL, NULL};
    if (remote_open(st, &o, &db) != KIVIS_OK) {
        fprintf(stderr, "remote: opening the database: %s\n", err);
        exit(1);
    }
    return db;
}

/* ---- load --------------------------------------------------------------- */

static int run_load(const char *conninfo)
{
    kivis_storage *pg = open_postgres(conninfo);
    remote_db *db = open_db(pg);
    char title[32];
    check(db, remote_begin(db), "begin");
    for (unsigned i = 0; i < ITEMS; i++) {
        price p = price_of(i, 0, title, sizeof title);
        p.stamped_ns = wall_ns();
        check(db, price_put(db, &p, NULL), "price_put");
    }
    check(db, remote_commit(db), "commit");
    printf("load: %d prices, %d of them hot\n", ITEMS, HOT);
    remote_close(db);
    kivis_storage_close(pg);
    return 0;
}

/* ---- timings ------------------------------------------------------------ */

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* "median X ms, p99 Y ms, max Z ms" of v[0..n) (sorted in place). */
static void print_distribution(double *v, size_t n)
{
    if (n == 0) {
        printf("none\n");
        return;
    }
    qsort(v, n, sizeof v[0], by_value);
    printf("median %.3f ms, p99 %.3f ms, max %.3f ms\n", v[n / 2], v[n * 99 / 100],
           v[n - 1]);
}

static double *samples(uint64_t n)
{
    double *v = calloc(n ? n : 1, sizeof *v);
    if (!v) {
        fprintf(stderr, "remote: out of memory\n");
        exit(1);
    }
    return v;
}

/* ---- writer ------------------------------------------------------------- */

static void next_tick(struct timespec *t)
{
    t->tv_nsec += WRITE_PACE_US * 1000L;
    if (t->tv_nsec >= 1000000000L) {
        t->tv_nsec -= 1000000000L;
        t->tv_sec++;
    }
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, t, NULL);
}

static int run_writer(const char *conninfo, const char *dir, uint64_t n)
{
    kivis_storage *st = open_stack(conninfo, dir);
    remote_db *db = open_db(st);
    double *commit_ms = samples(n), t0 = mono_ms();
    char title[32];
    struct timespec tick;
    clock_gettime(CLOCK_MONOTONIC, &tick);
    for (uint64_t v = 1; v <= n; v++) {
        price p = price_of(item_of_update(v), v, title, sizeof title);
        check(db, remote_begin(db), "begin");
        double c0 = mono_ms();
        p.stamped_ns = wall_ns(); /* the insert waits for the commit to be sent */
        check(db, price_put(db, &p, NULL), "price_put");
        check(db, remote_commit(db), "commit");
        commit_ms[v - 1] = mono_ms() - c0;
        next_tick(&tick);
    }
    double secs = (mono_ms() - t0) / 1e3;
    printf("writer: %llu updates in %.1f s (%.0f/s); commit ",
           (unsigned long long)n, secs, (double)n / secs);
    print_distribution(commit_ms, n);
    free(commit_ms);
    remote_close(db);
    kivis_storage_close(st);
    return 0;
}

/* ---- reader ------------------------------------------------------------- */

typedef struct follower {
    remote_db *db;
    uint64_t n;              /* updates expected */
    uint64_t last[HOT];      /* version of each hot price last read */
    uint64_t seen;           /* new versions read */
    double *delay_ms;        /* stamp -> first read, one per version seen */
    unsigned browse;         /* next browsed price */
    unsigned long long sweeps;
    double sweep_ms;         /* time spent in them */
    uint64_t warm_reads;     /* gets that reached the authority while warming */
} follower;

static price read_price(follower *f, unsigned item, char *buf, size_t size)
{
    price p;
    check(f->db, price_get_into(f->db, key_of(item), &p, buf, size), "price_get");
    return p;
}

/* Read every hot price and the next few browsed ones in one transaction
 * (whose begin drains the feed); note each hot price's new version. */
static void sweep(follower *f)
{
    char buf[64];
    double t0 = mono_ms();
    check(f->db, remote_begin_read(f->db), "begin_read");
    for (unsigned i = 0; i < HOT; i++) {
        price p = read_price(f, i, buf, sizeof buf);
        if (p.version <= f->last[i])
            continue;
        f->delay_ms[f->seen++] = (double)(wall_ns() - p.stamped_ns) / 1e6;
        f->last[i] = p.version;
    }
    for (unsigned j = 0; j < BROWSE_PER_SWEEP; j++) {
        read_price(f, HOT + f->browse, buf, sizeof buf);
        f->browse = (f->browse + 1) % (BROWSED - HOT);
    }
    check(f->db, remote_commit(f->db), "commit");
    f->sweeps++;
    f->sweep_ms += mono_ms() - t0;
}

/* Every hot price shows the last of the n updates that changed it. */
static int converged(const follower *f)
{
    for (uint64_t v = f->n; v > 0 && v + HOT > f->n; v--)
        if (f->last[item_of_update(v)] != v)
            return 0;
    return 1;
}

/* Read the list once through, then the browsed prices twice, so that the
 * hot prices sit in memory and the browsed ones on disk. */
static void warm(follower *f, kivis_storage *st)
{
    char buf[64];
    check(f->db, remote_begin_read(f->db), "begin_read");
    for (unsigned i = 0; i < HOT; i++)
        f->last[i] = read_price(f, i, buf, sizeof buf).version;
    check(f->db, remote_commit(f->db), "commit");
    for (unsigned i = 0; i < 2 * (BROWSED - HOT) / BROWSE_PER_SWEEP; i++)
        sweep(f);
    f->seen = 0;
    f->sweeps = 0;
    f->sweep_ms = 0;
    kivis_layered_tier_stats auth;
    check(NULL, kivis_layered_stats(st, 2, &auth), "kivis_layered_stats");
    f->warm_reads = auth.reads;
}

/* Prices in one aisle: an index lookup, which the authority answers. */
static size_t count_aisle(remote_db *db, const char *aisle)
{
    price_cursor cur;
    check(db, price_by_aisle(db, aisle, 0, &cur), "price_by_aisle");
    size_t n = 0;
    price p;
    int rc;
    while ((rc = price_next(&cur, NULL, &p)) == KIVIS_OK) {
        n++;
        price_clear(db, &p);
    }
    price_close(&cur);
    check(db, rc == KIVIS_NOTFOUND ? KIVIS_OK : rc, "price_next");
    return n;
}

static void print_tiers(kivis_storage *st)
{
    printf("%-9s %9s %9s %9s %7s %12s %8s %8s\n", "tier", "reads", "hits",
           "hit rate", "fills", "invalidated", "evicted", "entries");
    for (size_t t = 0; t < 3; t++) {
        kivis_layered_tier_stats s;
        check(NULL, kivis_layered_stats(st, t, &s), "kivis_layered_stats");
        double rate = s.reads ? 100.0 * (double)s.hits / (double)s.reads : 0;
        printf("%-9s %9llu %9llu %8.1f%% %7llu %12llu %8llu %8zu\n", tier_names[t],
               (unsigned long long)s.reads, (unsigned long long)s.hits, rate,
               (unsigned long long)s.fills, (unsigned long long)s.invalidations,
               (unsigned long long)s.evictions, s.entries);
    }
}

static void print_report(follower *f, kivis_storage *st)
{
    printf("reader: %llu of %llu updates seen (%llu never read), %s\n",
           (unsigned long long)f->seen, (unsigned long long)f->n,
           (unsigned long long)(f->n - f->seen),
           converged(f) ? "converged" : "NOT converged");
    print_tiers(st);
    kivis_layered_feed_stats fs;
    check(NULL, kivis_layered_feed_stats_get(st, &fs), "kivis_layered_feed_stats_get");
    printf("feed: %s, %llu changes applied, %llu resyncs, %llu outages\n",
           fs.following ? "following" : "NOT following", (unsigned long long)fs.changes,
           (unsigned long long)fs.resyncs, (unsigned long long)fs.outages);
    printf("invalidation delay (writer's stamp -> reader's first read): ");
    print_distribution(f->delay_ms, f->seen);
    kivis_layered_tier_stats auth;
    check(NULL, kivis_layered_stats(st, 2, &auth), "kivis_layered_stats");
    double sweeps = f->sweeps ? (double)f->sweeps : 1;
    printf("sweeps: %llu of %d reads, %.3f ms each on average, %.2f of the reads "
           "reaching the authority\n",
           f->sweeps, HOT + BROWSE_PER_SWEEP, f->sweep_ms / sweeps,
           (double)(auth.reads - f->warm_reads) / sweeps);
}

static int run_reader(const char *conninfo, const char *dir, uint64_t n)
{
    /* A cache kept on disk from an earlier run missed what changed while
     * this process was away: the stack empties it at its first begin. */
    kivis_storage *st = open_stack(conninfo, dir);
    follower f = {open_db(st), n, {0}, 0, samples(n), 0, 0, 0, 0};
    warm(&f, st);
    printf("reader: ready\n");
    fflush(stdout);
    double news = mono_ms();
    while (!converged(&f) && mono_ms() - news < IDLE_TIMEOUT_S * 1e3) {
        uint64_t before = f.seen;
        sweep(&f);
        if (f.seen != before)
            news = mono_ms();
        pause_us(READ_PAUSE_US);
    }
    print_report(&f, st);
    printf("index lookup aisle=dairy: %zu prices (answered by the authority)\n",
           count_aisle(f.db, "dairy"));
    int ok = converged(&f);
    free(f.delay_ms);
    remote_close(f.db);
    kivis_storage_close(st);
    return ok ? 0 : 1;
}

static uint64_t count_arg(const char *s)
{
    char *end;
    unsigned long long n = strtoull(s, &end, 10);
    if (*end || n == 0 || n > 100000000) {
        fprintf(stderr, "remote: not an update count: %s\n", s);
        exit(2);
    }
    return n;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc == 3 && !strcmp(argv[1], "load"))
        return run_load(argv[2]);
    if (argc == 5 && !strcmp(argv[1], "reader"))
        return run_reader(argv[2], argv[3], count_arg(argv[4]));
    if (argc == 5 && !strcmp(argv[1], "writer"))
        return run_writer(argv[2], argv[3], count_arg(argv[4]));
    fprintf(stderr,
            "usage: %s load CONNINFO\n"
            "       %s reader CONNINFO DIR N\n"
            "       %s writer CONNINFO DIR N\n",
            argv[0], argv[0], argv[0]);
    return 2;
}
