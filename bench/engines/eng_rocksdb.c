/*
 * bench/engines/eng_rocksdb.c - raw RocksDB through its C API, written by
 * hand as an expert would for this workload: one key space with a prefix a
 * table, records under 'u' | 8-byte big-endian key (packed value, as raw
 * LMDB's), the index on name under 'n' | name | 0x00 | big-endian key
 * (empty value), a write transaction one WriteBatch (records and index
 * entries together, atomic), applied with one rocksdb_write.
 *
 * The store is tuned as kivis_rocksdb_open tunes its own (an 8 MiB LRU
 * block cache, 64 MiB memtables, the info log off), so that the two differ
 * in what kivis adds, not in RocksDB's settings.  Throughput runs write
 * without sync (the write-ahead log is written, not flushed), durable ones
 * with it.  Reads run BENCH_READ_BATCH to a snapshot (the read transaction
 * RocksDB has); gets are pinned (no copy of the value before the row's own),
 * index walks and scans keep one iterator a batch and seek it.
 *
 * Writes within a transaction read the committed state: the keys a
 * transaction renames or removes are distinct, so no read needs an earlier
 * write of its own batch (a general engine would need WriteBatchWithIndex).
 */
#include "bench.h"

#include <rocksdb/c.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef BENCH_ROCKSDB_VERSION
#define BENCH_ROCKSDB_VERSION "(version unknown)"
#endif

#define BLOCK_CACHE ((size_t)8 << 20)   /* KIVIS_ROCKSDB_CACHE_SIZE */
#define WRITE_BUFFER ((size_t)64 << 20) /* KIVIS_ROCKSDB_WRITE_BUFFER */
#define INFO_LOG_HEADER_LEVEL 5         /* nothing in the info log */

#define RECORD_PREFIX 'u'
#define INDEX_PREFIX 'n'
#define RECORD_KEY_LEN 9
#define INDEX_KEY_MAX (1 + BENCH_NAME_MAX + 9)

typedef struct rocks_handle {
    rocksdb_t *db;
    rocksdb_writeoptions_t *wo;
    rocksdb_readoptions_t *latest; /* writes' reads: the committed state */
    rocksdb_readoptions_t *ro;     /* the read batch's snapshot */
    const rocksdb_snapshot_t *snap;
    rocksdb_writebatch_t *wb; /* reused by every write transaction */
} rocks_handle;

static void check(char *err, const char *what)
{
    if (err)
        bench_die("rocksdb", what, err);
}

static void *rk_open(const void *arg, const char *dir, size_t n, bool durable)
{
    (void)arg;
    (void)n;
    rocks_handle *h = calloc(1, sizeof *h);
    if (!h)
        bench_die("rocksdb", "open", "out of memory");
    rocksdb_options_t *opt = rocksdb_options_create();
    rocksdb_block_based_table_options_t *table =
        rocksdb_block_based_options_create();
    rocksdb_cache_t *cache = rocksdb_cache_create_lru(BLOCK_CACHE);
    rocksdb_block_based_options_set_block_cache(table, cache);
    rocksdb_options_set_block_based_table_factory(opt, table);
    rocksdb_cache_destroy(cache);
    rocksdb_block_based_options_destroy(table);
    rocksdb_options_set_create_if_missing(opt, 1);
    rocksdb_options_set_write_buffer_size(opt, WRITE_BUFFER);
    rocksdb_options_set_info_log_level(opt, INFO_LOG_HEADER_LEVEL);
    char *err = NULL;
    h->db = rocksdb_open(opt, dir, &err);
    rocksdb_options_destroy(opt);
    check(err, "rocksdb_open");
    h->wo = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(h->wo, durable);
    h->latest = rocksdb_readoptions_create();
    h->wb = rocksdb_writebatch_create();
    return h;
}

static void rk_close(void *hp)
{
    rocks_handle *h = hp;
    rocksdb_writebatch_destroy(h->wb);
    rocksdb_readoptions_destroy(h->latest);
    rocksdb_writeoptions_destroy(h->wo);
    rocksdb_close(h->db);
    free(h);
}

static void record_key(uint64_t key, unsigned char out[RECORD_KEY_LEN])
{
    out[0] = RECORD_PREFIX;
    bench_be64(key, out + 1);
}

/* 'n' | name | 0x00, then the big-endian key when key_too.  Returns the
 * length. */
static size_t index_key(const char *name, size_t nl, uint64_t key,
                        bool key_too, unsigned char *out)
{
    out[0] = INDEX_PREFIX;
    memcpy(out + 1, name, nl);
    out[1 + nl] = 0;
    if (!key_too)
        return nl + 2;
    bench_be64(key, out + nl + 2);
    return nl + 10;
}

static void put_record(rocks_handle *h, uint64_t key, const char *name,
                       const char *email, uint32_t age)
{
    unsigned char kb[RECORD_KEY_LEN], vb[BENCH_VALUE_MAX], ib[INDEX_KEY_MAX];
    record_key(key, kb);
    size_t vl = bench_pack(name, email, age, vb);
    rocksdb_writebatch_put(h->wb, (char *)kb, sizeof kb, (char *)vb, vl);
    size_t il = index_key(name, strlen(name), key, true, ib);
    rocksdb_writebatch_put(h->wb, (char *)ib, il, "", 0);
}

/* Apply the transaction's batch and empty it for the next. */
static void commit(rocks_handle *h)
{
    char *err = NULL;
    rocksdb_write(h->db, h->wo, h->wb, &err);
    check(err, "rocksdb_write");
    rocksdb_writebatch_clear(h->wb);
}

static void rk_load(void *hp, const bench_user *u, size_t first, size_t n,
                    size_t txn_size, bench_result *r)
{
    rocks_handle *h = hp;
    n += first;
    for (size_t i = first; i < n; i += txn_size) {
        for (size_t j = i; j < n && j < i + txn_size; j++) {
            put_record(h, j + 1, u[j].name, u[j].email, u[j].age);
            r->rows++;
            r->sum += j + 1;
        }
        commit(h);
    }
}

/* ---- reads: a snapshot every BENCH_READ_BATCH operations --------------- */

static void end_reads(rocks_handle *h)
{
    if (!h->snap)
        return;
    rocksdb_readoptions_destroy(h->ro);
    rocksdb_release_snapshot(h->db, h->snap);
    h->ro = NULL;
    h->snap = NULL;
}

/* The read options of operation i: a new snapshot at each batch. */
static rocksdb_readoptions_t *read_batch(rocks_handle *h, size_t i)
{
    if (i % BENCH_READ_BATCH == 0) {
        end_reads(h);
        h->snap = rocksdb_create_snapshot(h->db);
        h->ro = rocksdb_readoptions_create();
        rocksdb_readoptions_set_snapshot(h->ro, h->snap);
    }
    return h->ro;
}

/* A pinned record, or NULL when absent. */
static rocksdb_pinnableslice_t *get_record(rocks_handle *h,
                                           const rocksdb_readoptions_t *ro,
                                           uint64_t key)
{
    unsigned char kb[RECORD_KEY_LEN];
    record_key(key, kb);
    char *err = NULL;
    rocksdb_pinnableslice_t *p =
        rocksdb_get_pinned(h->db, ro, (char *)kb, sizeof kb, &err);
    check(err, "rocksdb_get_pinned");
    return p;
}

static void fetch(rocks_handle *h, const rocksdb_readoptions_t *ro,
                  uint64_t key, bench_result *r)
{
    rocksdb_pinnableslice_t *p = get_record(h, ro, key);
    if (!p)
        bench_die("rocksdb", "get", "record missing");
    size_t len;
    const char *v = rocksdb_pinnableslice_value(p, &len);
    bench_row row;
    bench_unpack(v, len, key, &row, r);
    rocksdb_pinnableslice_destroy(p);
}

static void rk_get(void *hp, const uint64_t *keys, size_t n, bench_result *r)
{
    rocks_handle *h = hp;
    for (size_t i = 0; i < n; i++)
        fetch(h, read_batch(h, i), keys[i], r);
    end_reads(h);
}

/* The iterator of operation i, on the batch's snapshot: created with it. */
static rocksdb_iterator_t *batch_iterator(rocks_handle *h, size_t i,
                                          rocksdb_iterator_t *it)
{
    if (i % BENCH_READ_BATCH == 0) {
        if (it)
            rocksdb_iter_destroy(it);
        it = rocksdb_create_iterator(h->db, read_batch(h, i));
    }
    return it;
}

static void end_iteration(rocks_handle *h, rocksdb_iterator_t *it)
{
    char *err = NULL;
    if (it) {
        rocksdb_iter_get_error(it, &err);
        rocksdb_iter_destroy(it);
    }
    check(err, "rocksdb_iter");
    end_reads(h);
}

static void rk_by_name(void *hp, const char *const *names, size_t n,
                       bench_result *r)
{
    rocks_handle *h = hp;
    rocksdb_iterator_t *it = NULL;
    for (size_t i = 0; i < n; i++) {
        it = batch_iterator(h, i, it);
        unsigned char prefix[INDEX_KEY_MAX];
        size_t nl = strlen(names[i]);
        size_t pl = index_key(names[i], nl, 0, false, prefix);
        for (rocksdb_iter_seek(it, (char *)prefix, pl); rocksdb_iter_valid(it);
             rocksdb_iter_next(it)) {
            size_t kl;
            const char *k = rocksdb_iter_key(it, &kl);
            if (kl != pl + 8 || memcmp(k, prefix, pl))
                break;
            fetch(h, h->ro, bench_get_be64((const unsigned char *)k + pl), r);
        }
    }
    end_iteration(h, it);
}

static void rk_scan(void *hp, const uint64_t *starts, size_t n, size_t len,
                    bench_result *r)
{
    rocks_handle *h = hp;
    rocksdb_iterator_t *it = NULL;
    for (size_t i = 0; i < n; i++) {
        it = batch_iterator(h, i, it);
        unsigned char kb[RECORD_KEY_LEN];
        record_key(starts[i], kb);
        for (rocksdb_iter_seek(it, (char *)kb, sizeof kb); rocksdb_iter_valid(it);
             rocksdb_iter_next(it)) {
            size_t kl, vl;
            const unsigned char *k =
                (const unsigned char *)rocksdb_iter_key(it, &kl);
            if (kl != RECORD_KEY_LEN || k[0] != RECORD_PREFIX)
                break;
            uint64_t key = bench_get_be64(k + 1);
            if (key >= starts[i] + len)
                break;
            const char *v = rocksdb_iter_value(it, &vl);
            bench_row row;
            bench_unpack(v, vl, key, &row, r);
        }
    }
    end_iteration(h, it);
}

/* ---- rename and remove: read the record, batch the changes ------------- */

/* The record of key as it is committed, unpacked into *row. */
static void read_current(rocks_handle *h, uint64_t key, bench_row *row)
{
    rocksdb_pinnableslice_t *p = get_record(h, h->latest, key);
    if (!p)
        bench_die("rocksdb", "read", "record missing");
    size_t len;
    const char *v = rocksdb_pinnableslice_value(p, &len);
    bench_result seen = {0, 0};
    bench_unpack(v, len, key, row, &seen);
    rocksdb_pinnableslice_destroy(p);
}

static void delete_index_entry(rocks_handle *h, const char *name, uint64_t key)
{
    unsigned char ib[INDEX_KEY_MAX];
    size_t il = index_key(name, strlen(name), key, true, ib);
    rocksdb_writebatch_delete(h->wb, (char *)ib, il);
}

static void rk_rename(void *hp, const uint64_t *keys, const char *const *names,
                      size_t n, size_t txn_size, bench_result *r)
{
    rocks_handle *h = hp;
    for (size_t i = 0; i < n; i += txn_size) {
        for (size_t j = i; j < n && j < i + txn_size; j++) {
            bench_row old;
            read_current(h, keys[j], &old);
            delete_index_entry(h, old.name, keys[j]);
            put_record(h, keys[j], names[j], old.email, old.age);
            r->rows++;
            r->sum += keys[j];
        }
        commit(h);
    }
}

static void rk_remove(void *hp, const uint64_t *keys, size_t n,
                      size_t txn_size, bench_result *r)
{
    rocks_handle *h = hp;
    for (size_t i = 0; i < n; i += txn_size) {
        for (size_t j = i; j < n && j < i + txn_size; j++) {
            bench_row old;
            read_current(h, keys[j], &old);
            delete_index_entry(h, old.name, keys[j]);
            unsigned char kb[RECORD_KEY_LEN];
            record_key(keys[j], kb);
            rocksdb_writebatch_delete(h->wb, (char *)kb, sizeof kb);
            r->rows++;
            r->sum += keys[j];
        }
        commit(h);
    }
}

static const char *rk_version(void)
{
    return "RocksDB " BENCH_ROCKSDB_VERSION;
}

const bench_engine bench_rocksdb = {"rocksdb", NULL, true, false, rk_version,
                                    rk_open, rk_close, rk_load, rk_get,
                                    rk_by_name, rk_scan, rk_rename, rk_remove,
                                    NULL};
