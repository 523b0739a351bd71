/*
 * bench/engines/bench.h - the side-by-side benchmark: one workload, many
 * engines (docs/bench.md).
 *
 * The driver (main.c) builds the data set (data.c), then runs every phase on
 * every engine through the method table below and times each call.  An
 * engine is one bench_engine entry; kivis over any kivis_storage is one
 * kivis_backend (eng_kivis.c) plus one entry.
 */
#ifndef BENCH_H
#define BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* The record: user { [[index]] char *name; char *email; uint32_t age; }.
 * Record i of the data set has key i + 1 in every engine. */
typedef struct bench_user {
    const char *name;
    const char *email;
    uint32_t age;
} bench_user;

/* What a phase returned: rows seen and an order-independent checksum of
 * their keys and fields, compared across engines (they must all agree). */
typedef struct bench_result {
    uint64_t rows;
    uint64_t sum;
} bench_result;

/* Longest name and email the data set makes, NUL included. */
#define BENCH_NAME_MAX 32
#define BENCH_EMAIL_MAX 64

/* A record as an engine read it back: the strings copied out of the store,
 * as a caller that keeps them would. */
typedef struct bench_row {
    uint64_t key;
    char name[BENCH_NAME_MAX];
    char email[BENCH_EMAIL_MAX];
    uint32_t age;
} bench_row;

/* Count one row (strings of the given lengths) into r. */
static inline void bench_account(bench_result *r, uint64_t key,
                                 const char *name, size_t name_len,
                                 const char *email, size_t email_len,
                                 uint32_t age)
{
    r->rows++;
    r->sum += key * 31u + age * 7u + name_len * 3u + email_len +
              (unsigned char)name[0] * 5u +
              (email_len ? (unsigned char)email[email_len - 1] : 0u);
}

/* ---- the byte format of the hand-written engines (LMDB, Berkeley DB) -- */

/* Keys: 8 bytes big-endian, so that byte order is numeric order. */
static inline void bench_be64(uint64_t v, unsigned char out[8])
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        out[i] = (unsigned char)v;
}

static inline uint64_t bench_get_be64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

/* Values: age (4 bytes little-endian) | name length (1 byte) | name | email.
 * The secondary-index callbacks find the name at BENCH_NAME_AT. */
#define BENCH_NAME_AT 5
#define BENCH_VALUE_MAX (BENCH_NAME_AT + BENCH_NAME_MAX + BENCH_EMAIL_MAX)

static inline size_t bench_pack(const char *name, const char *email,
                                uint32_t age, unsigned char *out)
{
    size_t nl = strlen(name), el = strlen(email);
    for (int i = 0; i < 4; i++)
        out[i] = (unsigned char)(age >> (8 * i));
    out[4] = (unsigned char)nl;
    memcpy(out + BENCH_NAME_AT, name, nl);
    memcpy(out + BENCH_NAME_AT + nl, email, el);
    return BENCH_NAME_AT + nl + el;
}

/* Decode a packed value into row (copying the strings) and count it. */
static inline void bench_unpack(const void *value, size_t len, uint64_t key,
                                bench_row *row, bench_result *r)
{
    const unsigned char *p = value;
    size_t nl = p[4], el = len - BENCH_NAME_AT - nl;
    row->key = key;
    row->age = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
               (uint32_t)p[3] << 24;
    memcpy(row->name, p + BENCH_NAME_AT, nl);
    row->name[nl] = '\0';
    memcpy(row->email, p + BENCH_NAME_AT + nl, el);
    row->email[el] = '\0';
    bench_account(r, key, row->name, nl, row->email, el, row->age);
}

/* The LMDB map size for n records, set up front (sparse): room to spare
 * without a 64 GiB mapping that valgrind cannot make. */
static inline size_t bench_map_size(size_t n)
{
    return ((size_t)1 << 30) + n * 2048;
}

/* SQLite's tuning, raw and under kivis: a 256 MiB page cache a
 * connection, reads of the first GiB of the file through a memory map. */
#define BENCH_SQLITE_CACHE ((size_t)256 << 20)
#define BENCH_SQLITE_MMAP ((size_t)1 << 30)

/* Reads are grouped this many to a read transaction where the engine's
 * API has read transactions. */
#define BENCH_READ_BATCH 1000

/*
 * An engine.  Every function dies (bench_die) on an error; ops run in the
 * order load, get, by_name, scan, rename, remove on one open handle.
 */
typedef struct bench_engine {
    const char *name;
    const void *arg;  /* the engine's own configuration (kivis: its backend) */
    bool on_disk;     /* the durable phase means something */
    bool scaling;     /* part of --scaling */
    /* The library and its version, for the report ("LMDB 0.9.24"). */
    const char *(*version)(void);
    /* Open a fresh, empty store in the (existing, empty) directory `dir`
     * for about n records; durable: every commit is flushed to disk before
     * it returns. */
    void *(*open)(const void *arg, const char *dir, size_t n, bool durable);
    void (*close)(void *h);
    /* Store u[first..first+n) under keys first+1..first+n (the store holds
     * keys 1..first already), txn_size records per transaction; counts rows
     * and keys.  Writes (load, rename, remove) use write transactions of
     * txn_size records. */
    void (*load)(void *h, const bench_user *u, size_t first, size_t n,
                 size_t txn_size, bench_result *r);
    /* Fetch each key and read its fields. */
    void (*get)(void *h, const uint64_t *keys, size_t n, bench_result *r);
    /* Every record whose name equals names[i], for each i. */
    void (*by_name)(void *h, const char *const *names, size_t n,
                    bench_result *r);
    /* Records with keys in [starts[i], starts[i] + len), for each i. */
    void (*scan)(void *h, const uint64_t *starts, size_t n, size_t len,
                 bench_result *r);
    /* Set the name of record keys[i] to names[i] (the index follows), the
     * way the engine's API changes one field; counts rows and keys only. */
    void (*rename)(void *h, const uint64_t *keys, const char *const *names,
                   size_t n, size_t txn_size, bench_result *r);
    /* Remove records keys[i] (and their index entries). */
    void (*remove)(void *h, const uint64_t *keys, size_t n, size_t txn_size,
                   bench_result *r);
    /* Round trips to a database server so far (the driver takes the
     * difference around each phase); NULL for an engine without a server. */
    unsigned long long (*round_trips)(void *h);
} bench_engine;

/* The engines, in eng_*.c. */
extern const bench_engine bench_kivis_memory, bench_kivis_lmdb, bench_kivis_sqlite,
    bench_kivis_rocksdb, bench_kivis_layered, bench_kivis_layered_full,
    bench_kivis_layered_admit;
extern const bench_engine bench_lmdb, bench_sqlite, bench_rocksdb, bench_bdb;

#ifdef KIVIS_WITH_POSTGRES
#include <kivis/storage.h>

/* PostgreSQL (eng_postgres.c): raw libpq, and for kivis a storage over a
 * fresh database on the benchmark's private server (named after dir), and
 * the backend's round trips (kivis_postgres_round_trips). */
extern const bench_engine bench_postgres, bench_kivis_postgres,
    bench_kivis_layered_postgres;
int bench_postgres_storage(const char *dir, kivis_storage **out);
unsigned long long bench_postgres_backend_trips(void *h);
#endif

#ifdef KIVIS_WITH_ETCD
#include <kivis/storage.h>

/* etcd (eng_etcd.c): raw requests to the JSON gateway, and for kivis a
 * storage under a fresh prefix on the benchmark's private three-member
 * cluster (named after dir), and the backend's requests. */
extern const bench_engine bench_etcd, bench_kivis_etcd, bench_kivis_layered_etcd;
int bench_etcd_storage(const char *dir, kivis_storage **out);
unsigned long long bench_etcd_backend_trips(void *h);
#endif

/* Print "bench_engines: <engine>: <what>: <detail>" and exit(1). */
_Noreturn void bench_die(const char *engine, const char *what,
                         const char *detail);

/* The data set (data.c). */
typedef struct bench_data {
    size_t n;
    bench_user *users;         /* n records; users[i] has key i + 1 */
    uint64_t *get_keys;        /* n keys, a random permutation of 1..n */
    uint64_t *zipf_keys;       /* n keys drawn Zipf(1.0) by rank, rank r
                                  being get_keys[r - 1]: a skewed workload */
    const char **lookup_names; /* n_lookups names of stored records */
    size_t n_lookups;
    uint64_t *scan_starts;     /* n_scans first keys of scan_len-key ranges */
    size_t n_scans, scan_len;
    uint64_t *rename_keys;     /* n_renames distinct keys ... */
    const char **new_names;    /* ... and a new, different name for each */
    size_t n_renames;
    uint64_t *remove_keys;     /* n_removes distinct keys */
    size_t n_removes;
    char *arena;               /* every string above */
} bench_data;

/* Build the data set for n records (deterministic for a given n). */
void bench_data_make(bench_data *d, size_t n);
void bench_data_free(bench_data *d);

#endif /* BENCH_H */
