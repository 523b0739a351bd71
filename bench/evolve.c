/*
 * bench_evolve - how long kivis_open takes to migrate a big table: N
 * records (default 10^6) written to LMDB with schema v1, then opened with
 * a v2 that widens two fields (int32_t -> int64_t, float -> double), so
 * every record is rewritten and both indexes rebuilt in the open's one
 * write transaction.  Prints the time of the fill, of the migrating open,
 * of a second open (nothing left to do) and the process's peak RSS.
 *
 *   bench_evolve [N] [dir]     (dir: a new directory under /tmp by default)
 */
#include <kivis.h>
#include <kivis/lmdb.h>

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

typedef struct item_key { uint64_t id; } item_key;
typedef struct item_v1 { char name[16]; int32_t stars; float weight; uint32_t tag; } item_v1;
typedef struct item_v2 { char name[16]; int64_t stars; double weight; uint32_t tag; } item_v2;

#define F(st, m, k, sz) {#m, k, 0, offsetof(st, m), sz, NULL, NULL, 0}

static const kivis_field key_fields[] = {F(item_key, id, KIVIS_U64, 8)};
static const kivis_struct_desc key_desc = {"item_key", sizeof(item_key), 1, key_fields, NULL};
static const kivis_field v1_fields[] = {
    F(item_v1, name, KIVIS_CHARS, 16), F(item_v1, stars, KIVIS_I32, 4),
    F(item_v1, weight, KIVIS_F32, 4), F(item_v1, tag, KIVIS_U32, 4)};
static const kivis_field v2_fields[] = {
    F(item_v2, name, KIVIS_CHARS, 16), F(item_v2, stars, KIVIS_I64, 8),
    F(item_v2, weight, KIVIS_F64, 8), F(item_v2, tag, KIVIS_U32, 4)};
static const kivis_struct_desc v1_desc = {"item", sizeof(item_v1), 4, v1_fields, NULL};
static const kivis_struct_desc v2_desc = {"item", sizeof(item_v2), 4, v2_fields, NULL};
static const kivis_index_desc indexes[] = {{"stars", 1, 0}, {"tag", 3, 0}};
static const kivis_table_desc v1_table = {"item", &v1_desc, &key_desc, KIVIS_KEY_AUTO,
                                          NULL, NULL, 2, indexes};
static const kivis_table_desc v2_table = {"item", &v2_desc, &key_desc, KIVIS_KEY_AUTO,
                                          NULL, NULL, 2, indexes};
static const kivis_schema_desc v1 = {"bench", 1, &v1_table, 0, NULL, 0, NULL};
static const kivis_schema_desc v2 = {"bench", 1, &v2_table, 0, NULL, 0, NULL};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void check(int rc, const char *what)
{
    if (rc) {
        fprintf(stderr, "bench_evolve: %s: %s\n", what, kivis_strerror(rc));
        exit(1);
    }
}

static void fill(kivis_storage *st, uint64_t n)
{
    kivis_db *db;
    check(kivis_open(st, &v1, NULL, &db), "open v1");
    for (uint64_t i = 0; i < n; i++) {
        if (i % 100000 == 0)
            check(i ? kivis_commit(db) : KIVIS_OK, "commit");
        if (i % 100000 == 0)
            check(kivis_begin(db), "begin");
        item_v1 r;
        memset(&r, 0, sizeof r);
        snprintf(r.name, sizeof r.name, "item %u", (unsigned)(i % 1000000000u));
        r.stars = (int32_t)(i % 1000) - 500;
        r.weight = (float)i / 4;
        r.tag = (uint32_t)(i % 97);
        check(kivis_put(db, 0, &r, NULL), "put");
    }
    check(kivis_commit(db), "commit");
    kivis_close(db);
}

static void progress(void *ctx, const kivis_progress *p)
{
    (void)ctx;
    if (p->done == p->total)
        printf("  progress: %s %s %llu/%llu\n", p->table,
               p->phase == KIVIS_PROGRESS_REWRITE ? "rewritten" : "indexed",
               (unsigned long long)p->done, (unsigned long long)p->total);
}

static double timed_open(kivis_storage *st)
{
    kivis_options o = {.progress = progress};
    kivis_db *db;
    double t = now();
    check(kivis_open(st, &v2, &o, &db), "open v2");
    t = now() - t;
    kivis_close(db);
    return t;
}

int main(int argc, char **argv)
{
    uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000;
    char tmpl[] = "/tmp/bench_evolve.XXXXXX";
    const char *dir = argc > 2 ? argv[2] : mkdtemp(tmpl);
    if (!dir) {
        perror("mkdtemp");
        return 1;
    }
    kivis_storage *st;
    check(kivis_lmdb_open(dir, NULL, &st), "lmdb");
    double t = now();
    fill(st, n);
    printf("fill v1: %llu records in %.2f s\n", (unsigned long long)n, now() - t);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    long before = ru.ru_maxrss;
    printf("migrating open (v1 -> v2): %.2f s\n", timed_open(st));
    printf("second open (nothing to do): %.3f s\n", timed_open(st));
    getrusage(RUSAGE_SELF, &ru);
    printf("peak RSS: %ld MiB after the fill, %ld MiB after the migration\n",
           before / 1024, ru.ru_maxrss / 1024);
    check(kivis_storage_close(st), "close");
    printf("store left in %s\n", dir);
    return 0;
}
