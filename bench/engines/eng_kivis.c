/*
 * bench/engines/eng_kivis.c - kivis through the API kivis-gen generates from
 * bench/users.kvs (user_put, user_get, user_by_name, ...), over any
 * kivis_storage.  A backend is one opener; adding one is a kivis_backend and
 * a bench_engine entry at the end of this file.
 *
 * Writes run in kivis_begin/kivis_commit transactions of txn_size records.
 * Reads run BENCH_READ_BATCH to a kivis_begin_read transaction, as the raw
 * LMDB and SQLite engines group theirs, and decode with user_get_into and
 * user_next_into: the strings land in a buffer of the caller's, as the raw
 * engines memcpy theirs into a row, instead of being allocated.
 */
#include "bench.h"
#include "users.kivis.h"

#include <kivis/layered.h>
#include <kivis/lmdb.h>
#include <kivis/memory.h>
#include <kivis/rocksdb.h>
#include <kivis/sqlite.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Open a storage for about n records in the empty directory dir (which it
 * may ignore). */
typedef int (*kivis_storage_opener)(const char *dir, size_t n,
                                    kivis_storage **out);

typedef struct kivis_backend {
    const char *engine; /* the bench_engine's name, for messages */
    kivis_storage_opener open;
} kivis_backend;

typedef struct kivis_handle {
    const kivis_backend *be;
    kivis_storage *st;
    users_db *db;
} kivis_handle;

static void check(kivis_handle *h, int rc, const char *what)
{
    if (rc != KIVIS_OK)
        bench_die(h->be->engine, what,
                  users_errmsg(h->db)[0] ? users_errmsg(h->db)
                                         : kivis_strerror(rc));
}

/* A cursor ends with KIVIS_NOTFOUND; anything else is an error. */
static void check_end(kivis_handle *h, int rc, const char *what)
{
    check(h, rc == KIVIS_NOTFOUND ? KIVIS_OK : rc, what);
}

/* Room for a user's strings: the longest name and email, NULs included. */
typedef unsigned char strings_buf[BENCH_NAME_MAX + BENCH_EMAIL_MAX];

static void account(bench_result *r, user_key k, const user *u)
{
    bench_account(r, k.id, u->name, strlen(u->name), u->email,
                  strlen(u->email), u->age);
}

static void *kv_open(const void *arg, const char *dir, size_t n, bool durable)
{
    const kivis_backend *be = arg;
    kivis_handle *h = calloc(1, sizeof *h);
    if (!h)
        bench_die(be->engine, "open", "out of memory");
    h->be = be;
    int rc = be->open(dir, n, &h->st);
    if (rc)
        bench_die(be->engine, "storage open", kivis_strerror(rc));
    char err[256] = "";
    kivis_options o = {0};
    o.durability = durable ? KIVIS_SYNC : KIVIS_NOSYNC;
    o.errbuf = err;
    o.errbuf_size = sizeof err;
    if ((rc = users_open(h->st, &o, &h->db)))
        bench_die(be->engine, "kivis_open", err);
    return h;
}

static void kv_close(void *hp)
{
    kivis_handle *h = hp;
    users_close(h->db);
    kivis_storage_close(h->st);
    free(h);
}

static void kv_load(void *hp, const bench_user *u, size_t first, size_t n,
                    size_t txn_size, bench_result *r)
{
    kivis_handle *h = hp;
    n += first;
    for (size_t i = first; i < n; i += txn_size) {
        check(h, users_begin(h->db), "kivis_begin");
        for (size_t j = i; j < n && j < i + txn_size; j++) {
            user rec = {(char *)u[j].name, (char *)u[j].email, u[j].age};
            user_key k;
            check(h, user_put(h->db, &rec, &k), "user_put");
            if (k.id != j + 1)
                bench_die(h->be->engine, "user_put", "unexpected key");
            r->rows++;
            r->sum += k.id;
        }
        check(h, users_commit(h->db), "kivis_commit");
    }
}

/* The read transaction for operation i: a new one every BENCH_READ_BATCH. */
static void read_batch(kivis_handle *h, size_t i)
{
    if (i % BENCH_READ_BATCH)
        return;
    if (i)
        check(h, users_commit(h->db), "kivis_commit (read)");
    check(h, users_begin_read(h->db), "kivis_begin_read");
}

static void end_reads(kivis_handle *h)
{
    check(h, users_commit(h->db), "kivis_commit (read)");
}

static void kv_get(void *hp, const uint64_t *keys, size_t n, bench_result *r)
{
    kivis_handle *h = hp;
    for (size_t i = 0; i < n; i++) {
        read_batch(h, i);
        user_key k = {keys[i]};
        user u;
        strings_buf buf;
        check(h, user_get_into(h->db, k, &u, buf, sizeof buf), "user_get_into");
        account(r, k, &u);
    }
    end_reads(h);
}

static void kv_by_name(void *hp, const char *const *names, size_t n,
                       bench_result *r)
{
    kivis_handle *h = hp;
    for (size_t i = 0; i < n; i++) {
        user_cursor c;
        user_key k;
        user u;
        strings_buf buf;
        int rc;
        read_batch(h, i);
        check(h, user_by_name(h->db, names[i], 0, &c), "user_by_name");
        while ((rc = user_next_into(&c, &k, &u, buf, sizeof buf)) == KIVIS_OK)
            account(r, k, &u);
        user_close(&c);
        check_end(h, rc, "user_next");
    }
    end_reads(h);
}

static void kv_scan(void *hp, const uint64_t *starts, size_t n, size_t len,
                    bench_result *r)
{
    kivis_handle *h = hp;
    for (size_t i = 0; i < n; i++) {
        user_key lo = {starts[i]}, hi = {starts[i] + len}, k;
        user_cursor c;
        user u;
        strings_buf buf;
        int rc;
        read_batch(h, i);
        check(h, user_scan(h->db, &lo, &hi, 0, &c), "user_scan");
        while ((rc = user_next_into(&c, &k, &u, buf, sizeof buf)) == KIVIS_OK)
            account(r, k, &u);
        user_close(&c);
        check_end(h, rc, "user_next");
    }
    end_reads(h);
}

/* Tell the backend which records the write transaction starting at
 * keys[i] will touch (user_prefetch: one request for all of them where
 * reads are round trips, PostgreSQL; nothing elsewhere). */
static void prefetch_txn(kivis_handle *h, const uint64_t *keys, size_t i,
                         size_t n, size_t txn_size)
{
    enum { MAX_PREFETCH = 1024 };
    user_key batch[MAX_PREFETCH];
    size_t m = 0;
    for (size_t j = i; j < n && j < i + txn_size && m < MAX_PREFETCH; j++)
        batch[m++] = (user_key){keys[j]};
    check(h, user_prefetch(h->db, batch, m), "user_prefetch");
}

/* Read, change the name, write back: user_update replaces the index entry. */
static void kv_rename(void *hp, const uint64_t *keys, const char *const *names,
                      size_t n, size_t txn_size, bench_result *r)
{
    kivis_handle *h = hp;
    for (size_t i = 0; i < n; i += txn_size) {
        check(h, users_begin(h->db), "kivis_begin");
        prefetch_txn(h, keys, i, n, txn_size);
        for (size_t j = i; j < n && j < i + txn_size; j++) {
            user_key k = {keys[j]};
            user u;
            strings_buf buf;
            check(h, user_get_into(h->db, k, &u, buf, sizeof buf), "user_get_into");
            u.name = (char *)names[j];
            check(h, user_update(h->db, k, &u), "user_update");
            r->rows++;
            r->sum += k.id;
        }
        check(h, users_commit(h->db), "kivis_commit");
    }
}

static void kv_remove(void *hp, const uint64_t *keys, size_t n,
                      size_t txn_size, bench_result *r)
{
    kivis_handle *h = hp;
    for (size_t i = 0; i < n; i += txn_size) {
        check(h, users_begin(h->db), "kivis_begin");
        prefetch_txn(h, keys, i, n, txn_size);
        for (size_t j = i; j < n && j < i + txn_size; j++) {
            check(h, user_remove(h->db, (user_key){keys[j]}), "user_remove");
            r->rows++;
            r->sum += keys[j];
        }
        check(h, users_commit(h->db), "kivis_commit");
    }
}

/* ---- backends --------------------------------------------------------- */

static int open_memory(const char *dir, size_t n, kivis_storage **out)
{
    (void)dir;
    (void)n;
    return kivis_memory_open(NULL, out);
}

/* The map is sized up front, as for raw LMDB (no growth during the run). */
static int open_lmdb(const char *dir, size_t n, kivis_storage **out)
{
    kivis_lmdb_options o = {0};
    o.map_size = bench_map_size(n);
    return kivis_lmdb_open(dir, &o, out);
}

/* The page cache and memory map raw SQLite gets (eng_sqlite.c). */
static int open_sqlite(const char *dir, size_t n, kivis_storage **out)
{
    (void)n;
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/kv.sqlite", dir) >= sizeof path)
        return KIVIS_EINVAL;
    kivis_sqlite_options o = {0};
    o.cache_size = BENCH_SQLITE_CACHE;
    o.mmap_size = BENCH_SQLITE_MMAP;
    return kivis_sqlite_open(path, &o, out);
}

static int open_rocksdb(const char *dir, size_t n, kivis_storage **out)
{
    (void)n;
    return kivis_rocksdb_open(dir, NULL, out);
}

/* The memory backend as a cache over `authority` (opened by the opener,
 * closed here on failure), bounded to max_bytes (0: none), admitting a key
 * on its second miss within admit_window misses (0: on the first). */
static int open_layered_over(kivis_storage_opener authority, const char *dir,
                             size_t n, size_t max_bytes, size_t admit_window,
                             kivis_storage **out)
{
    kivis_storage *mem = NULL, *auth = NULL;
    int rc = kivis_memory_open(NULL, &mem);
    if (!rc)
        rc = authority(dir, n, &auth);
    kivis_layered_tier tiers[] = {{mem, max_bytes, 0}, {auth, 0, 0}};
    kivis_layered_options o = {NULL, 0, admit_window, 0};
    if (!rc)
        rc = kivis_layered_open(tiers, 2, &o, out);
    if (rc) {
        kivis_storage_close(mem);
        kivis_storage_close(auth);
    }
    return rc;
}

static int open_layered(const char *dir, size_t n, kivis_storage **out)
{
    return open_layered_over(open_lmdb, dir, n, n * 16 + (1u << 20), 0, out);
}

/* The same cache with TinyLFU admission over a window of about n / 8
 * reads: keys read once (the uniform phase) do not fill it.  Wider windows
 * admit more of the Zipf tail, whose fills cost more than its hits save
 * (docs/bench.md). */
static int open_layered_admit(const char *dir, size_t n, kivis_storage **out)
{
    return open_layered_over(open_lmdb, dir, n, n * 16 + (1u << 20),
                             n / 8 + 1024, out);
}

/* A cache that holds everything: what the layering costs over memory. */
static int open_layered_full(const char *dir, size_t n, kivis_storage **out)
{
    return open_layered_over(open_lmdb, dir, n, 0, 0, out);
}

#ifdef KIVIS_WITH_POSTGRES
/* A fresh database on the benchmark's server (eng_postgres.c). */
static int open_postgres(const char *dir, size_t n, kivis_storage **out)
{
    (void)n;
    return bench_postgres_storage(dir, out);
}

/* Memory over PostgreSQL, the cache bounded to about a tenth of the data
 * (16 bytes of cache per record; a record and an index entry take ~110). */
static int open_layered_postgres(const char *dir, size_t n, kivis_storage **out)
{
    return open_layered_over(open_postgres, dir, n, n * 16 + (1u << 20), 0, out);
}
#endif

#ifdef KIVIS_WITH_ETCD
/* A fresh prefix on the benchmark's etcd cluster (eng_etcd.c). */
static int open_etcd(const char *dir, size_t n, kivis_storage **out)
{
    (void)n;
    return bench_etcd_storage(dir, out);
}

/* Memory over etcd, the cache bounded to about a tenth of the data (16
 * bytes a record), without the MiB the others add: at the etcd table's N
 * (10^4) that MiB alone would hold every record. */
static int open_layered_etcd(const char *dir, size_t n, kivis_storage **out)
{
    return open_layered_over(open_etcd, dir, n, n * 16, 0, out);
}
#endif

#define KV_STR_(x) #x
#define KV_STR(x) KV_STR_(x)

static const char *kv_version(void)
{
    return "kivis " KV_STR(KIVIS_VERSION_MAJOR) "." KV_STR(
        KIVIS_VERSION_MINOR) "." KV_STR(KIVIS_VERSION_PATCH);
}

/* One engine per backend: its name, opener, whether it is on disk, whether
 * --scaling runs it, and its round trips to a server (NULL: none). */
#define KIVIS_SERVER_ENGINE(name, opener, on_disk, scaling, trips)             \
    {name, &(const kivis_backend){name, opener}, on_disk, scaling, kv_version, \
     kv_open, kv_close, kv_load, kv_get, kv_by_name, kv_scan, kv_rename,      \
     kv_remove, trips}
#define KIVIS_ENGINE(name, opener, on_disk, scaling)                           \
    KIVIS_SERVER_ENGINE(name, opener, on_disk, scaling, NULL)

const bench_engine bench_kivis_memory =
    KIVIS_ENGINE("kivis-memory", open_memory, false, true);
const bench_engine bench_kivis_lmdb =
    KIVIS_ENGINE("kivis-lmdb", open_lmdb, true, true);
const bench_engine bench_kivis_layered =
    KIVIS_ENGINE("kivis-layered", open_layered, true, false);
const bench_engine bench_kivis_layered_full =
    KIVIS_ENGINE("kivis-layered-full", open_layered_full, true, false);
const bench_engine bench_kivis_layered_admit =
    KIVIS_ENGINE("kivis-layered-admit", open_layered_admit, true, false);
const bench_engine bench_kivis_sqlite =
    KIVIS_ENGINE("kivis-sqlite", open_sqlite, true, false);
const bench_engine bench_kivis_rocksdb =
    KIVIS_ENGINE("kivis-rocksdb", open_rocksdb, true, false);
#ifdef KIVIS_WITH_POSTGRES
const bench_engine bench_kivis_postgres = KIVIS_SERVER_ENGINE(
    "kivis-postgres", open_postgres, true, false, bench_postgres_backend_trips);
const bench_engine bench_kivis_layered_postgres =
    KIVIS_SERVER_ENGINE("kivis-layered-postgres", open_layered_postgres, true,
                        false, bench_postgres_backend_trips);
#endif
#ifdef KIVIS_WITH_ETCD
const bench_engine bench_kivis_etcd = KIVIS_SERVER_ENGINE(
    "kivis-etcd", open_etcd, true, false, bench_etcd_backend_trips);
const bench_engine bench_kivis_layered_etcd = KIVIS_SERVER_ENGINE(
    "kivis-layered-etcd", open_layered_etcd, true, false, bench_etcd_backend_trips);
#endif
