/*
 * Four storage tiers behind one typed API (kivis/layered.h):
 *
 *   tier 0  memory B+tree   bounded to 256 KiB, LRU     (hot records)
 *   tier 1  SQLite file     bounded to 2 MiB, LRU       (warm, survives restarts)
 *   tier 2  LMDB archive    unbounded cache             (every record read or written)
 *   tier 3  RocksDB         the authority               (the truth)
 *
 * It loads a catalogue through the stack (write-through), reads it with a
 * skewed (Zipf) pattern as real traffic does, runs an index lookup (served
 * by the authority, never by a partial cache) and prints, per tier, how
 * many reads reached it and how many it answered.
 *
 *   example_tiers            in a fresh temporary directory, removed after
 *   example_tiers --keep DIR in DIR (created), kept
 *
 * A deployment spanning machines would put a networked ordered store
 * last (docs/design.md, "The layered cache"); RocksDB stands in for it
 * here, as the embedded store with the same ordered-key contract.
 */
#define _XOPEN_SOURCE 700 /* mkdtemp, nftw */

#include "tiers.kivis.h"

#include <kivis/layered.h>
#include <kivis/lmdb.h>
#include <kivis/memory.h>
#include <kivis/rocksdb.h>
#include <kivis/sqlite.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

enum { PRODUCTS = 20000, READS = 100000, MISSING_READS = 2000 };

static const char *const tier_names[] = {"memory", "sqlite", "lmdb", "rocksdb"};

static void check(tiers_db *db, int rc, const char *what)
{
    if (rc == KIVIS_OK)
        return;
    fprintf(stderr, "tiers: %s: %s (%s)\n", what, kivis_strerror(rc),
            tiers_errmsg(db));
    exit(1);
}

static void path_in(char *buf, size_t n, const char *dir, const char *name)
{
    if ((size_t)snprintf(buf, n, "%s/%s", dir, name) >= n) {
        fprintf(stderr, "tiers: path too long: %s\n", dir);
        exit(2);
    }
}

/* Open the four tiers and stack them; the stack owns them after this. */
static kivis_storage *open_stack(const char *dir)
{
    char path[4096];
    kivis_storage *mem = NULL, *sql = NULL, *arc = NULL, *auth = NULL, *st = NULL;
    int rc = kivis_memory_open(NULL, &mem);
    path_in(path, sizeof path, dir, "cache.sqlite");
    if (!rc)
        rc = kivis_sqlite_open(path, NULL, &sql);
    path_in(path, sizeof path, dir, "archive.lmdb");
    if (!rc)
        rc = kivis_lmdb_open(path, NULL, &arc);
    path_in(path, sizeof path, dir, "authority.rocksdb");
    if (!rc)
        rc = kivis_rocksdb_open(path, NULL, &auth);
    kivis_layered_tier tiers[] = {
        {mem, 256 << 10, 0}, {sql, 2 << 20, 0}, {arc, 0, 0}, {auth, 0, 0}};
    kivis_layered_options opts = {.negative_max = 1024};
    if (!rc)
        rc = kivis_layered_open(tiers, 4, &opts, &st);
    if (rc) {
        fprintf(stderr, "tiers: opening the stack in %s: %s\n", dir,
                kivis_strerror(rc));
        kivis_storage_close(mem);
        kivis_storage_close(sql);
        kivis_storage_close(arc);
        kivis_storage_close(auth);
        exit(1);
    }
    return st;
}

static const char *const brands[] = {"acme", "globex", "initech", "umbrella",
                                     "hooli", "stark", "wayne", "tyrell"};

static void load(tiers_db *db)
{
    char title[64];
    for (int i = 0; i < PRODUCTS; i++) {
        if (i % 1000 == 0)
            check(db, tiers_begin(db), "begin");
        snprintf(title, sizeof title, "product %d", i);
        product p = {(char *)brands[i % 8], title, (uint32_t)(100 + i % 9000)};
        check(db, product_put(db, &p, NULL), "product_put");
        if (i % 1000 == 999)
            check(db, tiers_commit(db), "commit");
    }
}

/* Ranks 1..n drawn with probability proportional to 1 / rank^s. */
typedef struct zipf {
    double *cdf;
    size_t n;
    uint64_t state;
} zipf;

static void zipf_init(zipf *z, size_t n, double s, uint64_t seed)
{
    z->cdf = malloc(n * sizeof *z->cdf);
    if (!z->cdf)
        exit(1);
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        z->cdf[i] = sum += 1.0 / pow((double)(i + 1), s);
    for (size_t i = 0; i < n; i++)
        z->cdf[i] /= sum;
    z->n = n;
    z->state = seed;
}

static size_t zipf_next(zipf *z)
{
    z->state ^= z->state << 13; /* xorshift64 */
    z->state ^= z->state >> 7;
    z->state ^= z->state << 17;
    double u = (double)(z->state >> 11) / 9007199254740992.0;
    size_t lo = 0, hi = z->n - 1;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (z->cdf[mid] < u)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo + 1;
}

/* Read by a Zipf draw over a shuffled id order, so that the hot records
 * are spread over the key space as in real catalogues. */
static void read_skewed(tiers_db *db)
{
    zipf z;
    zipf_init(&z, PRODUCTS, 1.0, 42);
    for (int i = 0; i < READS; i++) {
        size_t rank = zipf_next(&z);
        product_key k = {(rank * 7919) % PRODUCTS + 1};
        product p;
        check(db, product_get(db, k, &p), "product_get");
        product_clear(db, &p);
    }
    for (int i = 0; i < MISSING_READS; i++) { /* a few ids that never were */
        product_key k = {PRODUCTS + 1 + (uint64_t)(i % 50)};
        product p;
        if (product_get(db, k, &p) != KIVIS_NOTFOUND)
            check(db, KIVIS_ECORRUPT, "a missing product was found");
    }
    free(z.cdf);
}

static size_t count_brand(tiers_db *db, const char *brand)
{
    product_cursor cur;
    check(db, product_by_brand(db, brand, 0, &cur), "product_by_brand");
    size_t n = 0;
    product p;
    int rc;
    while ((rc = product_next(&cur, NULL, &p)) == KIVIS_OK) {
        n++;
        product_clear(db, &p);
    }
    product_close(&cur);
    check(db, rc == KIVIS_NOTFOUND ? KIVIS_OK : rc, "product_next");
    return n;
}

static int remove_entry(const char *path, const struct stat *sb, int flag,
                        struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    return flag == FTW_DP ? rmdir(path) : unlink(path);
}

static void print_stats(kivis_storage *st)
{
    printf("%-8s %9s %9s %8s %8s %8s %9s %10s\n", "tier", "reads", "hits",
           "hit rate", "fills", "evicted", "entries", "bytes");
    for (size_t t = 0; t < 4; t++) {
        kivis_layered_tier_stats s;
        if (kivis_layered_stats(st, t, &s) != KIVIS_OK)
            exit(1);
        double rate = s.reads ? 100.0 * (double)s.hits / (double)s.reads : 0;
        printf("%-8s %9llu %9llu %7.1f%% %8llu %8llu %9zu %10zu\n", tier_names[t],
               (unsigned long long)s.reads, (unsigned long long)s.hits, rate,
               (unsigned long long)s.fills, (unsigned long long)s.evictions,
               s.entries, s.bytes);
    }
    kivis_layered_negative_stats ns;
    if (kivis_layered_negative_stats_get(st, &ns) == KIVIS_OK)
        printf("negative cache: %llu hits, %zu keys remembered\n",
               (unsigned long long)ns.hits, ns.entries);
}

int main(int argc, char **argv)
{
    char tmp[] = "/tmp/kivis-tiers-XXXXXX";
    const char *dir;
    int keep = argc == 3 && !strcmp(argv[1], "--keep");
    if (keep) {
        dir = argv[2];
        mkdir(dir, 0755);
    } else if (argc == 1) {
        if (!(dir = mkdtemp(tmp))) {
            perror("tiers: mkdtemp");
            return 2;
        }
    } else {
        fprintf(stderr, "usage: %s [--keep DIR]\n", argv[0]);
        return 2;
    }
    kivis_storage *st = open_stack(dir);
    tiers_db *db;
    kivis_options o = {NULL, KIVIS_NOSYNC, NULL, 0, 0, NULL, NULL, NULL};
    if (tiers_open(st, &o, &db) != KIVIS_OK) {
        fprintf(stderr, "tiers: kivis_open failed\n");
        return 1;
    }
    load(db);
    printf("loaded %d products through memory -> sqlite -> lmdb -> rocksdb\n",
           PRODUCTS);
    read_skewed(db);
    printf("%d Zipf(1.0) reads and %d reads of missing ids:\n", READS,
           MISSING_READS);
    print_stats(st);
    size_t acme = count_brand(db, "acme");
    printf("index lookup brand=acme: %zu products (answered by the authority)\n",
           acme);
    if (acme != PRODUCTS / 8)
        check(db, KIVIS_ECORRUPT, "index lookup count");
    tiers_close(db);
    kivis_storage_close(st);
    if (!keep && nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        fprintf(stderr, "tiers: could not remove %s\n", dir);
    return 0;
}
