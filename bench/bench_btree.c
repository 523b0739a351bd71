/*
 * bench/bench_btree.c - memory and speed of the memory backend and of the
 * B+tree under it, on N records of 16-byte random keys and 64-byte values
 * (N = 1,000,000 unless given as the first argument).
 *
 * Memory is reported two ways: bytes held through the allocator
 * (kivis_memory_bytes) and the growth of the resident set, which includes
 * malloc's own overhead.  Both are compared with the raw 80 bytes a record.
 */
#include <kivis/memory.h>

#include "rng.h"
#include "storage/btree.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define KEY_LEN 16
#define VAL_LEN 64
#define TXN_PUTS 1000

typedef struct dataset {
    size_t n;
    unsigned char (*key)[KEY_LEN];
    unsigned char value[VAL_LEN];
    size_t *order; /* a random permutation, for random gets */
} dataset;

static void dataset_make(dataset *d, size_t n)
{
    uint64_t s = 0x9E3779B97F4A7C15ull;
    d->n = n;
    d->key = malloc(n * KEY_LEN);
    d->order = malloc(n * sizeof *d->order);
    if (!d->key || !d->order) {
        fprintf(stderr, "bench_btree: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++) {
        uint64_t a = bench_rng_next(&s), b = bench_rng_next(&s);
        memcpy(d->key[i], &a, 8);
        memcpy(d->key[i] + 8, &b, 8);
        d->order[i] = i;
    }
    for (size_t i = n; i > 1; i--) {
        size_t j = bench_rng_next(&s) % i, t = d->order[i - 1];
        d->order[i - 1] = d->order[j];
        d->order[j] = t;
    }
    memset(d->value, 'v', VAL_LEN);
}

static kivis_slice key_at(const dataset *d, size_t i)
{
    return kivis_slice_make(d->key[i], KEY_LEN);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long rss_bytes(void)
{
    long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &size, &resident) != 2)
            resident = 0;
        fclose(f);
    }
    return resident * sysconf(_SC_PAGESIZE);
}

static void check(int rc, const char *what)
{
    if (rc != KIVIS_OK) {
        fprintf(stderr, "bench_btree: %s: %s\n", what, kivis_strerror(rc));
        exit(1);
    }
}

static void report_rate(const char *what, size_t ops, double secs)
{
    printf("  %-28s %10.0f ops/s  (%.3f s)\n", what, (double)ops / secs, secs);
}

static void bench_load(kivis_storage *st, const dataset *d)
{
    kivis_slice v = kivis_slice_make(d->value, VAL_LEN);
    double t0 = now();
    for (size_t i = 0; i < d->n; i += TXN_PUTS) {
        kivis_storage_txn *txn;
        check(kivis_storage_begin(st, 0, &txn), "begin");
        for (size_t j = i; j < d->n && j < i + TXN_PUTS; j++)
            check(kivis_txn_put(txn, key_at(d, j), v), "put");
        check(kivis_txn_commit(txn, KIVIS_NOSYNC), "commit");
    }
    report_rate("put (txns of 1000)", d->n, now() - t0);
}

static void bench_get(kivis_storage *st, const dataset *d)
{
    kivis_storage_txn *txn;
    kivis_slice v;
    check(kivis_storage_begin(st, KIVIS_TXN_RDONLY, &txn), "begin");
    double t0 = now();
    for (size_t i = 0; i < d->n; i++)
        check(kivis_txn_get(txn, key_at(d, d->order[i]), &v), "get");
    report_rate("random get", d->n, now() - t0);
    kivis_txn_abort(txn);
}

static void bench_scan(kivis_storage *st, const dataset *d)
{
    kivis_storage_txn *txn;
    kivis_storage_cursor *cur;
    kivis_slice none = {NULL, 0}, k, v;
    size_t seen = 0;
    check(kivis_storage_begin(st, KIVIS_TXN_RDONLY, &txn), "begin");
    check(kivis_txn_cursor(txn, none, none, &cur), "cursor");
    double t0 = now();
    while (kivis_cursor_get(cur, KIVIS_NEXT, &k, &v) == KIVIS_OK)
        seen++;
    report_rate("full scan", seen, now() - t0);
    if (seen != d->n)
        fprintf(stderr, "bench_btree: scan saw %zu of %zu\n", seen, d->n);
    kivis_cursor_close(cur);
    kivis_txn_abort(txn);
}

static void bench_memory_backend(const dataset *d)
{
    double raw = (double)d->n * (KEY_LEN + VAL_LEN);
    long rss0 = rss_bytes();
    kivis_storage *st;
    check(kivis_memory_open(NULL, &st), "open");
    printf("memory backend, %zu records of %d+%d bytes (raw %.1f MB)\n", d->n,
           KEY_LEN, VAL_LEN, raw / 1e6);
    bench_load(st, d);
    long grown = rss_bytes() - rss0;
    size_t bytes = kivis_memory_bytes(st);
    printf("  allocator bytes %12zu  %6.1f B/record  %.2fx raw\n", bytes,
           (double)bytes / (double)d->n, (double)bytes / raw);
    printf("  RSS growth      %12ld  %6.1f B/record  %.2fx raw\n", grown,
           (double)grown / (double)d->n, (double)grown / raw);
    bench_get(st, d);
    bench_scan(st, d);
    kivis_storage_close(st);
}

static void bench_raw_btree(const dataset *d)
{
    kivis_btree *t;
    kivis_slice v = kivis_slice_make(d->value, VAL_LEN), got;
    check(kivis__btree_new(NULL, &t), "btree_new");
    printf("raw kivis__btree\n");
    double t0 = now();
    for (size_t i = 0; i < d->n; i++)
        check(kivis__btree_put(t, key_at(d, i), v), "btree_put");
    report_rate("put", d->n, now() - t0);
    t0 = now();
    for (size_t i = 0; i < d->n; i++)
        check(kivis__btree_get(t, key_at(d, d->order[i]), &got), "btree_get");
    report_rate("random get", d->n, now() - t0);
    t0 = now();
    for (size_t i = 0; i < d->n; i++)
        check(kivis__btree_del(t, key_at(d, d->order[i])), "btree_del");
    report_rate("random del", d->n, now() - t0);
    kivis__btree_free(t);
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000000;
    dataset d;
    dataset_make(&d, n ? n : 1);
    bench_memory_backend(&d);
    bench_raw_btree(&d);
    free(d.key);
    free(d.order);
    return 0;
}
