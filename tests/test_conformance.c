/*
 * test_conformance.c - the storage conformance suite.  Every backend must
 * pass all of it; it checks what kivis/storage.h promises and nothing a
 * single backend merely happens to do.
 *
 *   test_conformance BACKEND    run the suite on one backend
 *   test_conformance            run it on every backend in the table
 *
 * Adding a backend is one entry in `backends` below.  Each test gets a fresh
 * store opened through a counting allocator, and the teardown checks that
 * closing it gave every byte back.
 *
 * Many checks run once per "view": the same visible contents reached by
 * different routes (committed and read in a read-only or a read-write
 * transaction, written in the open transaction, or a mix of committed,
 * pending and deleted keys), because backends with overlays (memory) merge
 * their pending writes over the committed state, and that merge is where
 * cursor bugs hide.
 */
#include "etcdcluster.h"
#include "pgserver.h"
#include "testutil.h"

#include <kivis/etcd.h>
#include <kivis/faulty.h>
#include <kivis/layered.h>
#include <kivis/lmdb.h>
#include <kivis/sqlite.h>
#include <kivis/memory.h>
#include <kivis/postgres.h>
#include <kivis/rocksdb.h>

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- backends ----------------------------------------------------------- */

typedef struct backend {
    const char *name;
    /** Open a new, empty store whose every allocation goes through alloc. */
    int (*open)(const kivis_allocator *alloc, kivis_storage **out);
    /** Close *st and open the same store again into *st, for backends that
     *  persist; NULL where nothing survives a close. */
    int (*reopen)(const kivis_allocator *alloc, kivis_storage **st);
    /** After the store is closed for good: remove what it left on disk. */
    void (*cleanup)(void);
    /** The most writes one commit may hold, 0 for no limit (etcd: its
     *  --max-txn-ops, one op spent on the commit's marker). */
    unsigned max_commit_writes;
    /** The largest value it stores, 0 for no limit below 4 MiB (etcd: a
     *  request, base64 and all, is at most --max-request-bytes). */
    size_t max_value;
} backend;

static int open_memory(const kivis_allocator *alloc, kivis_storage **out)
{
    kivis_memory_options opts = {.allocator = alloc};
    return kivis_memory_open(&opts, out);
}

/* The tree alone, without the point hash that answers gets by default. */
static int open_memory_tree(const kivis_allocator *alloc, kivis_storage **out)
{
    kivis_memory_options opts = {.allocator = alloc, .no_point_hash = true};
    return kivis_memory_open(&opts, out);
}

/* The fault wrapper, unarmed, must be invisible. */
static int open_faulty(const kivis_allocator *alloc, kivis_storage **out)
{
    kivis_storage *inner;
    int rc = open_memory(alloc, &inner);
    if (rc != KIVIS_OK)
        return rc;
    rc = kivis_faulty_open(inner, alloc, out);
    if (rc != KIVIS_OK)
        kivis_storage_close(inner);
    return rc;
}

/* LMDB starts with a 1 MiB map so that the large tests make it grow. */
static char lmdb_dir[256];

static int open_lmdb_dir(const kivis_allocator *alloc, kivis_storage **out)
{
    kivis_lmdb_options opts = {alloc, 1 << 20, 0, 0};
    return kivis_lmdb_open(lmdb_dir, &opts, out);
}

static int open_lmdb(const kivis_allocator *alloc, kivis_storage **out)
{
    kt_tempdir(lmdb_dir, sizeof lmdb_dir);
    return open_lmdb_dir(alloc, out);
}

static int reopen_lmdb(const kivis_allocator *alloc, kivis_storage **st)
{
    kivis_storage_close(*st);
    *st = NULL;
    return open_lmdb_dir(alloc, st);
}

static void cleanup_lmdb(void)
{
    kt_rmdir(lmdb_dir);
}

/* SQLite: a database file in a fresh directory (with its -wal, -shm). */
static char sqlite_dir[256], sqlite_path[300];

static int open_sqlite_file(const kivis_allocator *alloc, kivis_storage **out)
{
    kivis_sqlite_options opts = {alloc, 0, 0, 0, 0};
    return kivis_sqlite_open(sqlite_path, &opts, out);
}

static int open_sqlite(const kivis_allocator *alloc, kivis_storage **out)
{
    kt_tempdir(sqlite_dir, sizeof sqlite_dir);
    snprintf(sqlite_path, sizeof sqlite_path, "%s/kv.db", sqlite_dir);
    return open_sqlite_file(alloc, out);
}

static int reopen_sqlite(const kivis_allocator *alloc, kivis_storage **st)
{
    kivis_storage_close(*st);
    *st = NULL;
    return open_sqlite_file(alloc, st);
}

static void cleanup_sqlite(void)
{
    kt_rmdir(sqlite_dir);
}

/* RocksDB with a 64 KiB memtable, so that the large tests flush SST files
 * and read back through the block cache, not only the memtable. */
static char rocksdb_dir[256];

static int open_rocksdb_dir(const kivis_allocator *alloc, kivis_storage **out)
{
    kivis_rocksdb_options opts = {alloc, 0, 0, 64 << 10};
    return kivis_rocksdb_open(rocksdb_dir, &opts, out);
}

static int open_rocksdb(const kivis_allocator *alloc, kivis_storage **out)
{
    kt_tempdir(rocksdb_dir, sizeof rocksdb_dir);
    return open_rocksdb_dir(alloc, out);
}

static int reopen_rocksdb(const kivis_allocator *alloc, kivis_storage **st)
{
    kivis_storage_close(*st);
    *st = NULL;
    return open_rocksdb_dir(alloc, st);
}

static void cleanup_rocksdb(void)
{
    kt_rmdir(rocksdb_dir);
}

/* PostgreSQL: a table of its own on the test's private server
 * (tests/support/pgserver.h), dropped before each test and after. */
static int open_postgres_table(const kivis_allocator *alloc, const char *table,
                               kivis_storage **out)
{
    kivis_postgres_options opts = {alloc, NULL, table, 0};
    return kivis_postgres_open(kt_pg_start(), &opts, out);
}

static void drop_table(const char *table)
{
    char sql[100];
    snprintf(sql, sizeof sql, "DROP TABLE IF EXISTS %s", table);
    kt_pg_exec(sql);
}

static int open_postgres(const kivis_allocator *alloc, kivis_storage **out)
{
    drop_table("conformance_kv");
    return open_postgres_table(alloc, "conformance_kv", out);
}

static int reopen_postgres(const kivis_allocator *alloc, kivis_storage **st)
{
    kivis_storage_close(*st);
    *st = NULL;
    return open_postgres_table(alloc, "conformance_kv", st);
}

static void cleanup_postgres(void)
{
    drop_table("conformance_kv");
}

/* etcd: a prefix of its own on the test's private three-member cluster
 * (tests/support/etcdcluster.h), wiped before each test and after. */
#define ETCD_PREFIX "conformance/"

static int open_etcd_prefix(const kivis_allocator *alloc, kivis_storage **out)
{
    kivis_etcd_options opts = {.allocator = alloc, .prefix = ETCD_PREFIX};
    return kivis_etcd_open(kt_etcd_start(), &opts, out);
}

static int open_etcd(const kivis_allocator *alloc, kivis_storage **out)
{
    kt_etcd_start();
    kt_etcd_wipe(ETCD_PREFIX);
    return open_etcd_prefix(alloc, out);
}

static int reopen_etcd(const kivis_allocator *alloc, kivis_storage **st)
{
    kivis_storage_close(*st);
    *st = NULL;
    return open_etcd_prefix(alloc, st);
}

static void cleanup_etcd(void)
{
    kt_etcd_wipe(ETCD_PREFIX);
}

/*
 * Layered stacks, fastest tier first, the authority last.  A stack is a
 * list of tier specs; a new backend kind (SQLite, ...) is one more case in
 * open_tier, a new stack one more list and one LAYERED_BACKEND line.  The
 * memory tiers are bounded well below what the suite writes, so entries
 * are evicted throughout; the negative cache is small for the same reason.
 */
enum tier_kind { TIER_MEMORY, TIER_LMDB, TIER_SQLITE, TIER_POSTGRES, TIER_ETCD };

typedef struct tier_spec {
    enum tier_kind kind;
    size_t max_bytes;
    unsigned flags;
} tier_spec;

#define MAX_TIERS 4
#define STACK_NEGATIVE_MAX 64

static char tier_dirs[MAX_TIERS][256]; /* LMDB and SQLite tiers' directories */

static const tier_spec stack_mem_lmdb[] = {
    {TIER_MEMORY, 64u << 10, 0},
    {TIER_LMDB, 0, 0},
};
static const tier_spec stack_mem_lmdb_lmdb[] = {
    {TIER_MEMORY, 64u << 10, 0},
    {TIER_LMDB, 0, 0}, /* an unbounded persistent cache */
    {TIER_LMDB, 0, 0},
};
static const tier_spec stack_mem_sqlite_lmdb[] = {
    {TIER_MEMORY, 64u << 10, 0},
    {TIER_SQLITE, 256u << 10, 0}, /* a bounded persistent cache */
    {TIER_LMDB, 0, 0},
};
static const tier_spec stack_mem_postgres[] = {
    {TIER_MEMORY, 64u << 10, 0},
    {TIER_POSTGRES, 0, 0},
};
static const tier_spec stack_mem_lmdb_mirror_postgres[] = {
    {TIER_MEMORY, 16u << 10, 0},
    {TIER_LMDB, 0, KIVIS_TIER_MIRROR},
    {TIER_POSTGRES, 0, 0},
};
static const tier_spec stack_mem_lmdb_etcd[] = {
    {TIER_MEMORY, 64u << 10, 0},
    {TIER_LMDB, 0, 0}, /* an unbounded persistent cache */
    {TIER_ETCD, 0, 0},
};
static const tier_spec stack_mirror[] = {
    {TIER_MEMORY, 16u << 10, 0},
    {TIER_MEMORY, 0, KIVIS_TIER_MIRROR},
    {TIER_LMDB, 0, 0},
};

/* Tier i of a stack; fresh: in new directories, else in the last ones. */
static int open_tier(const tier_spec *ts, size_t i, bool fresh,
                     const kivis_allocator *alloc, kivis_storage **out)
{
    kivis_lmdb_options lmdb = {alloc, 1 << 20, 0, 0};
    switch (ts->kind) {
    case TIER_MEMORY:
        return open_memory(alloc, out);
    case TIER_LMDB:
        if (fresh)
            kt_tempdir(tier_dirs[i], sizeof tier_dirs[i]);
        return kivis_lmdb_open(tier_dirs[i], &lmdb, out);
    case TIER_SQLITE: {
        char path[300];
        kivis_sqlite_options so = {alloc, 0, 0, 0, 0};
        if (fresh)
            kt_tempdir(tier_dirs[i], sizeof tier_dirs[i]);
        if ((size_t)snprintf(path, sizeof path, "%s/cache.db", tier_dirs[i]) >=
            sizeof path)
            return KIVIS_EINVAL;
        return kivis_sqlite_open(path, &so, out);
    }
    case TIER_POSTGRES:
        if (fresh)
            drop_table("layered_kv");
        return open_postgres_table(alloc, "layered_kv", out);
    case TIER_ETCD:
        return fresh ? open_etcd(alloc, out) : open_etcd_prefix(alloc, out);
    }
    return KIVIS_EINVAL;
}

static int open_stack(const tier_spec *spec, size_t n, bool fresh,
                      const kivis_allocator *alloc, kivis_storage **out)
{
    kivis_layered_tier tiers[MAX_TIERS];
    kivis_layered_options opts = {alloc, STACK_NEGATIVE_MAX, 0, 0};
    bool mirrored = false;
    size_t opened = 0;
    int rc = KIVIS_OK;
    assert_true(n <= MAX_TIERS);
    for (; opened < n && rc == KIVIS_OK; opened++) {
        tiers[opened].max_bytes = spec[opened].max_bytes;
        tiers[opened].flags = spec[opened].flags;
        mirrored |= (spec[opened].flags & KIVIS_TIER_MIRROR) != 0;
        rc = open_tier(&spec[opened], opened, fresh, alloc, &tiers[opened].st);
    }
    if (rc == KIVIS_OK)
        rc = kivis_layered_open(tiers, n, &opts, out);
    if (rc != KIVIS_OK) {
        for (size_t i = 0; i < opened; i++)
            kivis_storage_close(tiers[i].st);
        return rc;
    }
    /* A memory mirror comes back empty: copy the authority into it. */
    return mirrored && !fresh ? kivis_layered_invalidate(*out) : KIVIS_OK;
}

static int reopen_stack(const tier_spec *spec, size_t n,
                        const kivis_allocator *alloc, kivis_storage **st)
{
    kivis_storage_close(*st);
    *st = NULL;
    return open_stack(spec, n, false, alloc, st);
}

static void cleanup_stack(const tier_spec *spec, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (spec[i].kind == TIER_POSTGRES)
            drop_table("layered_kv");
        else if (spec[i].kind == TIER_ETCD)
            cleanup_etcd();
        else if (spec[i].kind != TIER_MEMORY)
            kt_rmdir(tier_dirs[i]);
}

#define STACK_LEN(spec) (sizeof(spec) / sizeof((spec)[0]))
#define LAYERED_BACKEND(name, spec)                                          \
    static int open_##name(const kivis_allocator *alloc, kivis_storage **out) \
    {                                                                       \
        return open_stack(spec, STACK_LEN(spec), true, alloc, out);         \
    }                                                                       \
    static int reopen_##name(const kivis_allocator *alloc,                  \
                             kivis_storage **st)                            \
    {                                                                       \
        return reopen_stack(spec, STACK_LEN(spec), alloc, st);              \
    }                                                                       \
    static void cleanup_##name(void)                                        \
    {                                                                       \
        cleanup_stack(spec, STACK_LEN(spec));                               \
    }

LAYERED_BACKEND(layered, stack_mem_lmdb)
LAYERED_BACKEND(layered3, stack_mem_lmdb_lmdb)
LAYERED_BACKEND(layered_mirror, stack_mirror)
LAYERED_BACKEND(layered_sqlite, stack_mem_sqlite_lmdb)
LAYERED_BACKEND(layered_postgres, stack_mem_postgres)
LAYERED_BACKEND(layered_mirror_postgres, stack_mem_lmdb_mirror_postgres)
LAYERED_BACKEND(layered_etcd, stack_mem_lmdb_etcd)

#define LAYERED_ENTRY(name) {#name, open_##name, reopen_##name, cleanup_##name, 0, 0}

static const backend backends[] = {
    {"memory", open_memory, NULL, NULL, 0, 0},
    {"memory_tree", open_memory_tree, NULL, NULL, 0, 0},
    {"faulty", open_faulty, NULL, NULL, 0, 0},
    {"lmdb", open_lmdb, reopen_lmdb, cleanup_lmdb, 0, 0},
    {"sqlite", open_sqlite, reopen_sqlite, cleanup_sqlite, 0, 0},
    {"rocksdb", open_rocksdb, reopen_rocksdb, cleanup_rocksdb, 0, 0},
    {"postgres", open_postgres, reopen_postgres, cleanup_postgres, 0, 0},
    {"etcd", open_etcd, reopen_etcd, cleanup_etcd, 1023, 1u << 20},
    LAYERED_ENTRY(layered),         /* memory (64 KiB) over LMDB */
    LAYERED_ENTRY(layered3),        /* memory (64 KiB) over LMDB over LMDB */
    LAYERED_ENTRY(layered_mirror),  /* memory (16 KiB) over a memory mirror
                                       over LMDB */
    LAYERED_ENTRY(layered_sqlite),  /* memory (64 KiB) over SQLite (256 KiB)
                                       over LMDB */
    LAYERED_ENTRY(layered_postgres), /* memory (64 KiB) over PostgreSQL */
    LAYERED_ENTRY(layered_mirror_postgres), /* memory (16 KiB) over an LMDB
                                               mirror over PostgreSQL */
    /* memory (64 KiB) over LMDB over etcd, which sets the limits */
    {"layered_etcd", open_layered_etcd, reopen_layered_etcd, cleanup_layered_etcd,
     1023, 1u << 20},
};

static const backend *g_backend; /* the one under test */
static const char *g_view = "";  /* named in failure messages, */
static int g_case = -1;          /* with the table case if >= 0 */

/* ---- fixture ------------------------------------------------------------ */

typedef struct fixture {
    kt_alloc alloc;
    kivis_storage *st;
} fixture;

static void fx_open(fixture *fx)
{
    assert_int_equal(g_backend->open(&fx->alloc.iface, &fx->st), KIVIS_OK);
    assert_non_null(fx->st);
}

static void fx_close(fixture *fx)
{
    kivis_storage_close(fx->st);
    fx->st = NULL;
    if (g_backend->cleanup)
        g_backend->cleanup();
    assert_int_equal(fx->alloc.live_blocks, 0);
    assert_int_equal(fx->alloc.live_bytes, 0);
}

static void fx_reset(fixture *fx)
{
    fx_close(fx);
    fx_open(fx);
}

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof *fx);
    assert_non_null(fx);
    kt_alloc_init(&fx->alloc);
    fx_open(fx);
    g_view = "";
    g_case = -1;
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    fx_close(fx);
    free(fx);
    return 0;
}

/* ---- slices, keys and values -------------------------------------------- */

/* K: an initializer for a literal key (embedded NULs count); S: the slice;
 * KP: a pointer to one, for the "expected entry" parameters below. */
#define K(s) {(s), sizeof(s) - 1}
#define S(s) kivis_slice_make((s), sizeof(s) - 1)
#define KP(s) (&(kivis_slice)K(s))

static const kivis_slice NONE = {NULL, 0}; /* lo: from the start; hi: no end */

typedef struct keyset {
    const kivis_slice *keys; /* strictly increasing */
    size_t n;
} keyset;

#define KEYSET(a) {(a), sizeof(a) / sizeof((a)[0])}

/* The order storage.h defines: memcmp, shorter first on a common prefix. */
static int key_cmp(kivis_slice a, kivis_slice b)
{
    size_t n = a.len < b.len ? a.len : b.len;
    int c = n ? memcmp(a.data, b.data, n) : 0;
    if (c)
        return c;
    return (a.len > b.len) - (a.len < b.len);
}

static bool slice_eq(kivis_slice a, kivis_slice b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.data, b.data, a.len) == 0);
}

#define VALUE_BUF 72

/* The value every keyset key is stored with, so that a cursor returning a
 * key with another key's value is caught. */
static kivis_slice value_of(kivis_slice key, uint8_t buf[VALUE_BUF])
{
    assert_true(key.len + 2 <= VALUE_BUF);
    buf[0] = 'v';
    buf[1] = '=';
    memcpy(buf + 2, key.data, key.len);
    return kivis_slice_make(buf, key.len + 2);
}

/* Hex for failure messages; a few rotating buffers so one message can
 * show several slices. */
static const char *hex(kivis_slice s)
{
    static char bufs[4][100];
    static unsigned next;
    char *b = bufs[next++ % 4];
    const uint8_t *p = s.data;
    size_t shown = s.len < 40 ? s.len : 40;
    if (!p)
        return "(null)";
    for (size_t i = 0; i < shown; i++)
        sprintf(b + 2 * i, "%02x", p[i]);
    sprintf(b + 2 * shown, "%s/%zu", shown < s.len ? "..." : "", s.len);
    return b;
}

/* "[view, case n] " for failure messages, or "" outside any view. */
static const char *where(void)
{
    static char buf[96];
    if (!*g_view)
        return "";
    if (g_case < 0)
        snprintf(buf, sizeof buf, "[%s] ", g_view);
    else
        snprintf(buf, sizeof buf, "[%s, case %d] ", g_view, g_case);
    return buf;
}

static const char *const op_names[] = {"FIRST", "LAST",    "NEXT",
                                       "PREV",  "SEEK_GE", "SEEK_LE"};

/* ---- transactions ------------------------------------------------------- */

static kivis_storage_txn *begin(kivis_storage *st, unsigned flags)
{
    kivis_storage_txn *t = NULL;
    assert_int_equal(kivis_storage_begin(st, flags, &t), KIVIS_OK);
    assert_non_null(t);
    return t;
}

static void commit(kivis_storage_txn *t)
{
    assert_int_equal(kivis_txn_commit(t, KIVIS_SYNC), KIVIS_OK);
}

static void put(kivis_storage_txn *t, kivis_slice key, kivis_slice value)
{
    assert_int_equal(kivis_txn_put(t, key, value), KIVIS_OK);
}

static void put_keyed(kivis_storage_txn *t, kivis_slice key)
{
    uint8_t vb[VALUE_BUF];
    put(t, key, value_of(key, vb));
}

static kivis_storage_cursor *cursor(kivis_storage_txn *t, kivis_slice lo,
                                    kivis_slice hi)
{
    kivis_storage_cursor *c = NULL;
    assert_int_equal(kivis_txn_cursor(t, lo, hi, &c), KIVIS_OK);
    assert_non_null(c);
    return c;
}

static kivis_storage_cursor *cursor_all(kivis_storage_txn *t)
{
    return cursor(t, NONE, NONE);
}

/* Fail unless the store holds exactly what `want` (a kt_dump) shows. */
static void expect_dump(kivis_storage *st, const char *want)
{
    char *d = kt_dump(st);
    assert_string_equal(d, want);
    free(d);
}

/* Commit keys[from], keys[from + step], ... in one transaction. */
static void load_every(kivis_storage *st, const keyset *ks, size_t from,
                       size_t step)
{
    kivis_storage_txn *t = begin(st, 0);
    for (size_t i = from; i < ks->n; i += step)
        put_keyed(t, ks->keys[i]);
    commit(t);
}

/* ---- expectations with the caller's line in the message ----------------- */

/* Fail unless (rc, key, value) is the entry want_key/want_value, or
 * KIVIS_NOTFOUND when want_key is NULL.  key may be NULL for gets. */
static void check_entry(const char *file, int line, const char *what, int rc,
                        const kivis_slice *key, kivis_slice value,
                        const kivis_slice *want_key, kivis_slice want_value)
{
    bool ok;
    if (!want_key)
        ok = rc == KIVIS_NOTFOUND;
    else
        ok = rc == KIVIS_OK && (!key || slice_eq(*key, *want_key)) &&
             slice_eq(value, want_value);
    if (ok)
        return;
    print_error("%s:%d: %s%s: expected %s key=%s value=%s, got %s "
                "key=%s value=%s\n",
                file, line, where(), what,
                want_key ? "KIVIS_OK" : "KIVIS_NOTFOUND",
                want_key ? hex(*want_key) : "-",
                want_key ? hex(want_value) : "-", kivis_errname(rc),
                key ? hex(*key) : "-", rc == KIVIS_OK ? hex(value) : "-");
    fail();
}

static void expect_cursor_v(const char *file, int line,
                            kivis_storage_cursor *c, int op,
                            const kivis_slice *seek, const kivis_slice *want,
                            kivis_slice want_value)
{
    kivis_slice k = seek ? *seek : NONE, v = NONE;
    char what[160];
    snprintf(what, sizeof what, "cursor %s%s%s", op_names[op],
             seek ? " " : "", seek ? hex(*seek) : "");
    int rc = kivis_cursor_get(c, op, &k, &v);
    check_entry(file, line, what, rc, &k, v, want, want_value);
}

static void expect_cursor(const char *file, int line, kivis_storage_cursor *c,
                          int op, const kivis_slice *seek,
                          const kivis_slice *want)
{
    uint8_t vb[VALUE_BUF];
    kivis_slice wv = want ? value_of(*want, vb) : NONE;
    expect_cursor_v(file, line, c, op, seek, want, wv);
}

static void expect_get_v(const char *file, int line, kivis_storage_txn *t,
                         kivis_slice key, const kivis_slice *want_value)
{
    kivis_slice v = S("garbage");
    char what[160];
    snprintf(what, sizeof what, "get %s", hex(key));
    int rc = kivis_txn_get(t, key, &v);
    check_entry(file, line, what, rc, NULL, v, want_value ? &key : NULL,
                want_value ? *want_value : NONE);
    if (rc == KIVIS_NOTFOUND && (v.data || v.len)) {
        print_error("%s:%d: %s%s: KIVIS_NOTFOUND must set {NULL, 0}\n",
                    file, line, where(), what);
        fail();
    }
}

static void expect_get_keyed(const char *file, int line, kivis_storage_txn *t,
                             kivis_slice key, bool present)
{
    uint8_t vb[VALUE_BUF];
    kivis_slice v = value_of(key, vb);
    expect_get_v(file, line, t, key, present ? &v : NULL);
}

/* Cursor op expecting keyset-style entry (value_of) or NOTFOUND (NULL). */
#define EXPECT_CUR(c, op, seek, want) \
    expect_cursor(__FILE__, __LINE__, (c), (op), (seek), (want))
#define EXPECT_CUR_V(c, op, seek, want, value) \
    expect_cursor_v(__FILE__, __LINE__, (c), (op), (seek), (want), (value))
/* get expecting the value_of(key) entry, or NOTFOUND. */
#define EXPECT_HAS(t, key) \
    expect_get_keyed(__FILE__, __LINE__, (t), (key), true)
#define EXPECT_MISSING(t, key) \
    expect_get_keyed(__FILE__, __LINE__, (t), (key), false)
#define EXPECT_GET_V(t, key, value) \
    expect_get_v(__FILE__, __LINE__, (t), (key), (value))

/* Walk [lo, hi) four ways (FIRST+NEXT, NEXT from unpositioned, LAST+PREV,
 * PREV from unpositioned) and expect exactly want[0..n) in order. */
static void expect_walks(const char *file, int line, kivis_storage_txn *t,
                         kivis_slice lo, kivis_slice hi,
                         const kivis_slice *want, size_t n)
{
    static const int starts[4] = {KIVIS_FIRST, KIVIS_NEXT, KIVIS_LAST,
                                  KIVIS_PREV};
    for (int w = 0; w < 4; w++) {
        bool forward = w < 2;
        int step = forward ? KIVIS_NEXT : KIVIS_PREV;
        kivis_storage_cursor *c = cursor(t, lo, hi);
        for (size_t i = 0; i <= n; i++) {
            const kivis_slice *k = i == n ? NULL
                                   : forward ? &want[i]
                                             : &want[n - 1 - i];
            expect_cursor(file, line, c, i == 0 ? starts[w] : step, NULL, k);
        }
        expect_cursor(file, line, c, step, NULL, NULL); /* stays at end */
        kivis_cursor_close(c);
    }
}

/* Walk [lo, hi) in direction `forward` by runs of at most cap entries
 * (kivis_cursor_page) between single steps (kivis_cursor_get) and expect
 * exactly want[0..n) (reversed going back): a run holds the entries the
 * same number of steps would have returned, and leaves the cursor on its
 * last one.  The end is KIVIS_NOTFOUND with no entry, and stays. */
static void expect_page_walk(const char *file, int line, kivis_storage_txn *t,
                             kivis_slice lo, kivis_slice hi,
                             const kivis_slice *want, size_t n, bool forward,
                             size_t cap)
{
    enum { CAP_MAX = 64 };
    int op = forward ? KIVIS_NEXT : KIVIS_PREV;
    kivis_storage_cursor *c = cursor(t, lo, hi);
    kivis_cursor_entry run[CAP_MAX];
    size_t i = 0;
    for (bool by_page = true;; by_page = !by_page) {
        const kivis_slice *k = i >= n ? NULL : forward ? &want[i] : &want[n - 1 - i];
        if (!by_page) {
            expect_cursor(file, line, c, op, NULL, k);
            i++;
            continue;
        }
        size_t got = 99;
        const uint64_t *stamp;
        int rc = kivis_cursor_page(t, c, op, run, cap, &got, &stamp);
        if (!k) {
            check_entry(file, line, "page at the end", rc, NULL, NONE, NULL, NONE);
            assert_int_equal(got, 0);
            break;
        }
        assert_int_equal(rc, KIVIS_OK);
        assert_true(got >= 1 && got <= cap && i + got <= n);
        for (size_t j = 0; j < got; j++, i++) {
            uint8_t vb[VALUE_BUF];
            const kivis_slice *w = forward ? &want[i] : &want[n - 1 - i];
            check_entry(file, line, "page entry", KIVIS_OK, &run[j].key,
                        run[j].value, w, value_of(*w, vb));
        }
    }
    size_t got = 99;
    const uint64_t *stamp;
    assert_int_equal(kivis_cursor_page(t, c, op, run, cap, &got, &stamp),
                     KIVIS_NOTFOUND);
    assert_int_equal(got, 0);
    expect_cursor(file, line, c, op, NULL, NULL);
    kivis_cursor_close(c);
}

/* expect_walks, and the same entries by runs both ways. */
static void expect_walks_and_pages(const char *file, int line,
                                   kivis_storage_txn *t, kivis_slice lo,
                                   kivis_slice hi, const kivis_slice *want,
                                   size_t n)
{
    expect_walks(file, line, t, lo, hi, want, n);
    expect_page_walk(file, line, t, lo, hi, want, n, true, 3);
    expect_page_walk(file, line, t, lo, hi, want, n, false, 64);
}

#define EXPECT_WALKS(t, lo, hi, want, n) \
    expect_walks_and_pages(__FILE__, __LINE__, (t), (lo), (hi), (want), (n))

static void expect_contents(const char *file, int line, kivis_storage_txn *t,
                            const keyset *ks)
{
    expect_walks_and_pages(file, line, t, NONE, NONE, ks->keys, ks->n);
}

#define EXPECT_CONTENTS(t, ks) expect_contents(__FILE__, __LINE__, (t), (ks))

/* ---- views -------------------------------------------------------------- */

enum view {
    VIEW_COMMITTED_RO, /* committed, read in a read-only txn */
    VIEW_COMMITTED_RW, /* committed, read in a read-write txn */
    VIEW_PENDING,      /* written in the open txn, nothing committed */
    VIEW_MIXED,        /* some committed, some pending, decoys deleted */
    VIEW_COUNT
};

static const char *const view_names[VIEW_COUNT] = {
    "committed, read-only txn", "committed, read-write txn",
    "pending in the txn", "mixed committed/pending/deleted"};

/* A key that is not in ks, sorting right after ks->keys[i]: committed and
 * then deleted in the mixed view, so that tombstones sit among the keys. */
static bool decoy_of(const keyset *ks, size_t i, uint8_t buf[VALUE_BUF],
                     kivis_slice *out)
{
    kivis_slice k = ks->keys[i];
    assert_true(k.len + 2 <= VALUE_BUF);
    memcpy(buf, k.data, k.len);
    buf[k.len] = 0x00;
    buf[k.len + 1] = 0x7f;
    *out = kivis_slice_make(buf, k.len + 2);
    for (size_t j = 0; j < ks->n; j++)
        if (slice_eq(ks->keys[j], *out))
            return false;
    return true;
}

static void put_or_del_decoys(kivis_storage_txn *t, const keyset *ks, bool del)
{
    uint8_t buf[VALUE_BUF];
    kivis_slice d;
    for (size_t i = 0; i < ks->n; i++) {
        if (!decoy_of(ks, i, buf, &d))
            continue;
        if (del)
            assert_int_equal(kivis_txn_del(t, d), KIVIS_OK);
        else
            put_keyed(t, d);
    }
}

static kivis_storage_txn *open_mixed_view(kivis_storage *st, const keyset *ks)
{
    kivis_storage_txn *t = begin(st, 0);
    for (size_t i = 0; i < ks->n; i += 2)
        put_keyed(t, ks->keys[i]);
    put_or_del_decoys(t, ks, false);
    commit(t);
    t = begin(st, 0);
    for (size_t i = 1; i < ks->n; i += 2)
        put_keyed(t, ks->keys[i]);
    for (size_t i = 0; i < ks->n; i += 4) /* pending over committed */
        put_keyed(t, ks->keys[i]);
    put_or_del_decoys(t, ks, true);
    return t;
}

/* A fresh store and a transaction in which exactly ks is visible. */
static kivis_storage_txn *open_view(fixture *fx, const keyset *ks, enum view v)
{
    fx_reset(fx);
    g_view = view_names[v];
    kivis_storage_txn *t;
    switch (v) {
    case VIEW_COMMITTED_RO:
        load_every(fx->st, ks, 0, 1);
        return begin(fx->st, KIVIS_TXN_RDONLY);
    case VIEW_COMMITTED_RW:
        load_every(fx->st, ks, 0, 1);
        return begin(fx->st, 0);
    case VIEW_PENDING:
        t = begin(fx->st, 0);
        for (size_t i = 0; i < ks->n; i++)
            put_keyed(t, ks->keys[i]);
        return t;
    default:
        return open_mixed_view(fx->st, ks);
    }
}

typedef void (*view_check)(kivis_storage_txn *t, const keyset *ks);

static void for_views(fixture *fx, const keyset *ks, enum view from,
                      view_check check)
{
    for (int v = from; v < VIEW_COUNT; v++) {
        kivis_storage_txn *t = open_view(fx, ks, (enum view)v);
        EXPECT_CONTENTS(t, ks);
        check(t, ks);
        kivis_txn_abort(t);
    }
    g_view = "";
}

static void for_each_view(fixture *fx, const keyset *ks, view_check check)
{
    for_views(fx, ks, VIEW_COMMITTED_RO, check);
}

static void for_each_write_view(fixture *fx, const keyset *ks,
                                view_check check)
{
    for_views(fx, ks, VIEW_COMMITTED_RW, check);
}

/* A test that runs `check` on the keyset `set` in every (write) view. */
#define TEST_IN_EACH_VIEW(test, set, check)                                   \
    static void test(void **state)                                           \
    {                                                                        \
        for_each_view(*state, &(set), (check));                              \
    }
#define TEST_IN_EACH_WRITE_VIEW(test, set, check)                             \
    static void test(void **state)                                           \
    {                                                                        \
        for_each_write_view(*state, &(set), (check));                        \
    }

/* ---- basics ------------------------------------------------------------- */

static void test_methods_and_handles(void **state)
{
    fixture *fx = *state;
    assert_int_equal(kivis_storage_check(fx->st), KIVIS_OK);
    assert_int_equal(fx->st->methods->version, KIVIS_STORAGE_VERSION);
    assert_non_null(fx->st->methods->name);
    assert_true(fx->st->methods->name[0] != '\0');
    assert_true(kivis_storage_max_key(fx->st) >= 255);

    kivis_storage_txn *t = begin(fx->st, KIVIS_TXN_RDONLY);
    assert_ptr_equal(t->storage, fx->st);
    assert_int_equal(t->flags, KIVIS_TXN_RDONLY);
    kivis_txn_abort(t);
    t = begin(fx->st, 0);
    assert_ptr_equal(t->storage, fx->st);
    assert_int_equal(t->flags, 0);
    kivis_txn_abort(t);
}

static void test_empty_store(void **state)
{
    fixture *fx = *state;
    kivis_storage_txn *t = begin(fx->st, KIVIS_TXN_RDONLY);
    kivis_storage_cursor *c = cursor_all(t);
    for (int op = KIVIS_FIRST; op <= KIVIS_SEEK_LE; op++)
        EXPECT_CUR(c, op, KP("a"), NULL);
    kivis_cursor_close(c);
    EXPECT_MISSING(t, S("a"));
    kivis_txn_abort(t);
}

/* ---- key order ---------------------------------------------------------- */

/* The order storage.h defines, written out by hand. */
static const kivis_slice ordered_keys[] = {
    K("\x00"),     K("\x00\x00"), K("\x00\x01"), K("\x00\xff"),
    K("\x01"),     K("a"),        K("a\x00"),    K("a\x00\x00"),
    K("a\x00\x01"), K("a\x01"),   K("ab"),       K("abc"),
    K("a\x7f"),    K("a\x80"),    K("a\xff"),    K("a\xff\x00"),
    K("a\xff\xff"), K("b"),       K("\x7f"),     K("\x80"),
    K("\xfe\xff"), K("\xff"),     K("\xff\x00"), K("\xff\xff"),
    K("\xff\xff\xff"),
};

/* ks is all of the store: check it in t, commit t, check it again. */
static void expect_contents_across_commit(kivis_storage *st,
                                          kivis_storage_txn *t,
                                          const keyset *ks)
{
    g_view = "written in this txn";
    EXPECT_CONTENTS(t, ks);
    commit(t);
    t = begin(st, KIVIS_TXN_RDONLY);
    g_view = "committed";
    EXPECT_CONTENTS(t, ks);
    kivis_txn_abort(t);
    g_view = "";
}

static void test_order_fixed_binary_keys(void **state)
{
    fixture *fx = *state;
    keyset ks = KEYSET(ordered_keys);
    for (size_t i = 1; i < ks.n; i++)
        assert_true(key_cmp(ks.keys[i - 1], ks.keys[i]) < 0);

    kivis_storage_txn *t = begin(fx->st, 0);
    for (size_t i = ks.n; i-- > 0;) /* worst order for a naive list */
        put_keyed(t, ks.keys[i]);
    expect_contents_across_commit(fx->st, t, &ks);
}

#define RANDOM_KEYS 800
#define RANDOM_KEY_MAX 6

typedef struct random_keys {
    uint8_t bytes[RANDOM_KEYS][RANDOM_KEY_MAX];
    kivis_slice keys[RANDOM_KEYS]; /* sorted, distinct */
    size_t n;
} random_keys;

static int qsort_key_cmp(const void *a, const void *b)
{
    return key_cmp(*(const kivis_slice *)a, *(const kivis_slice *)b);
}

/* Short keys over an alphabet heavy in 0x00 and 0xff, so that prefixes,
 * embedded NULs and high bytes are everywhere. */
static void make_random_keys(random_keys *rk, uint64_t seed)
{
    static const uint8_t alphabet[] = {0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff};
    for (size_t i = 0; i < RANDOM_KEYS; i++) {
        size_t len = 1 + kt_rand(&seed) % RANDOM_KEY_MAX;
        for (size_t j = 0; j < len; j++)
            rk->bytes[i][j] = alphabet[kt_rand(&seed) % sizeof alphabet];
        rk->keys[i] = kivis_slice_make(rk->bytes[i], len);
    }
    qsort(rk->keys, RANDOM_KEYS, sizeof rk->keys[0], qsort_key_cmp);
    rk->n = 0;
    for (size_t i = 0; i < RANDOM_KEYS; i++)
        if (rk->n == 0 || !slice_eq(rk->keys[rk->n - 1], rk->keys[i]))
            rk->keys[rk->n++] = rk->keys[i];
}

static void test_order_random_binary_keys(void **state)
{
    fixture *fx = *state;
    random_keys *rk = malloc(sizeof *rk);
    assert_non_null(rk);
    make_random_keys(rk, 0xC0FFEE);
    keyset ks = {rk->keys, rk->n};

    /* Insert in a shuffled order, in several transactions. */
    size_t order[RANDOM_KEYS];
    uint64_t seed = 42;
    for (size_t i = 0; i < ks.n; i++)
        order[i] = i;
    for (size_t i = ks.n; i > 1; i--) {
        size_t j = kt_rand(&seed) % i, tmp = order[i - 1];
        order[i - 1] = order[j];
        order[j] = tmp;
    }
    kivis_storage_txn *t = begin(fx->st, 0);
    for (size_t i = 0; i < ks.n; i++) {
        put_keyed(t, ks.keys[order[i]]);
        if (i % 97 == 96) {
            commit(t);
            t = begin(fx->st, 0);
        }
    }
    expect_contents_across_commit(fx->st, t, &ks);
    free(rk);
}

/* ---- values ------------------------------------------------------------- */

static void test_empty_value(void **state)
{
    fixture *fx = *state;
    kivis_slice empty_ptr = {"x", 0};
    kivis_storage_txn *t = begin(fx->st, 0);
    put(t, S("a"), NONE);
    put(t, S("b"), empty_ptr);
    EXPECT_GET_V(t, S("a"), &NONE);
    EXPECT_GET_V(t, S("b"), &NONE);
    commit(t);

    t = begin(fx->st, KIVIS_TXN_RDONLY);
    EXPECT_GET_V(t, S("a"), &NONE);
    EXPECT_GET_V(t, S("b"), &NONE);
    kivis_storage_cursor *c = cursor_all(t);
    EXPECT_CUR_V(c, KIVIS_FIRST, NULL, KP("a"), NONE);
    EXPECT_CUR_V(c, KIVIS_NEXT, NULL, KP("b"), NONE);
    EXPECT_CUR_V(c, KIVIS_NEXT, NULL, NULL, NONE);
    kivis_cursor_close(c);
    kivis_txn_abort(t);
    assert_int_equal(kt_count(fx->st), 2);
}

#define HUGE_VALUE (4u << 20)

static void test_huge_value(void **state)
{
    fixture *fx = *state;
    size_t huge = g_backend->max_value ? g_backend->max_value : HUGE_VALUE;
    uint8_t *big = malloc(huge);
    assert_non_null(big);
    uint64_t seed = 7;
    for (size_t i = 0; i < huge; i++)
        big[i] = (uint8_t)kt_rand(&seed);
    kivis_slice bv = kivis_slice_make(big, huge);

    kivis_storage_txn *t = begin(fx->st, 0);
    put(t, S("big"), bv);
    put(t, S("c"), S("small"));
    EXPECT_GET_V(t, S("big"), &bv);
    commit(t);

    t = begin(fx->st, KIVIS_TXN_RDONLY);
    EXPECT_GET_V(t, S("big"), &bv);
    kivis_storage_cursor *c = cursor_all(t);
    EXPECT_CUR_V(c, KIVIS_FIRST, NULL, KP("big"), bv);
    kivis_cursor_close(c);
    kivis_txn_abort(t);

    t = begin(fx->st, 0);
    put(t, S("big"), S("now small"));
    commit(t);
    t = begin(fx->st, KIVIS_TXN_RDONLY);
    EXPECT_GET_V(t, S("big"), KP("now small"));
    kivis_txn_abort(t);
    free(big);
}

static void test_overwrite(void **state)
{
    fixture *fx = *state;
    kivis_storage_txn *t = begin(fx->st, 0);
    put(t, S("k"), S("one"));
    put(t, S("k"), S("two, longer"));
    EXPECT_GET_V(t, S("k"), KP("two, longer"));
    commit(t);

    t = begin(fx->st, 0);
    EXPECT_GET_V(t, S("k"), KP("two, longer"));
    put(t, S("k"), S("3"));
    EXPECT_GET_V(t, S("k"), KP("3"));
    kivis_storage_cursor *c = cursor_all(t);
    EXPECT_CUR_V(c, KIVIS_FIRST, NULL, KP("k"), S("3"));
    EXPECT_CUR_V(c, KIVIS_NEXT, NULL, NULL, NONE);
    kivis_cursor_close(c);
    commit(t);

    t = begin(fx->st, KIVIS_TXN_RDONLY);
    EXPECT_GET_V(t, S("k"), KP("3"));
    kivis_txn_abort(t);
    assert_int_equal(kt_count(fx->st), 1);
}

/* ---- keys: bad sizes and missing keys ----------------------------------- */

static void test_empty_key_is_einval(void **state)
{
    fixture *fx = *state;
    kivis_slice empty_ptr = {"x", 0};
    kivis_storage_txn *t = begin(fx->st, 0);
    put(t, S("a"), S("1"));
    assert_int_equal(kivis_txn_put(t, NONE, S("v")), KIVIS_EINVAL);
    assert_int_equal(kivis_txn_put(t, empty_ptr, S("v")), KIVIS_EINVAL);
    assert_int_equal(kivis_txn_del(t, NONE), KIVIS_EINVAL);
    kivis_slice v = S("garbage");
    assert_int_equal(kivis_txn_get(t, NONE, &v), KIVIS_EINVAL);
    assert_null(v.data);
    assert_int_equal(v.len, 0);
    commit(t);
    expect_dump(fx->st, "61=31\n");
}

static uint8_t *pattern_key(size_t len)
{
    uint8_t *k = malloc(len);
    assert_non_null(k);
    for (size_t i = 0; i < len; i++)
        k[i] = (uint8_t)(i * 31 + 7);
    return k;
}

static void test_max_key_size(void **state)
{
    fixture *fx = *state;
    size_t max = kivis_storage_max_key(fx->st);
    if (max > (64u << 20))
        skip(); /* no practical limit to probe */
    uint8_t *buf = pattern_key(max + 1);
    kivis_slice at_max = kivis_slice_make(buf, max);
    kivis_slice over = kivis_slice_make(buf, max + 1);

    kivis_storage_txn *t = begin(fx->st, 0);
    put(t, at_max, S("max"));
    EXPECT_GET_V(t, at_max, KP("max"));
    commit(t);
    char *before = kt_dump(fx->st);

    t = begin(fx->st, 0);
    assert_int_equal(kivis_txn_put(t, over, S("over")), KIVIS_EKEYSIZE);
    assert_int_equal(kivis_txn_del(t, over), KIVIS_EKEYSIZE);
    kivis_slice v = S("garbage");
    int rc = kivis_txn_get(t, over, &v);
    assert_true(rc == KIVIS_NOTFOUND || rc == KIVIS_EKEYSIZE);
    assert_null(v.data);
    EXPECT_GET_V(t, at_max, KP("max")); /* its max-length prefix untouched */
    kivis_storage_cursor *c = cursor_all(t);
    EXPECT_CUR_V(c, KIVIS_FIRST, NULL, &at_max, S("max"));
    EXPECT_CUR_V(c, KIVIS_NEXT, NULL, NULL, NONE);
    kivis_cursor_close(c);
    commit(t);

    expect_dump(fx->st, before);
    free(before);
    free(buf);
}

static void test_missing_keys(void **state)
{
    fixture *fx = *state;
    kivis_storage_txn *t = begin(fx->st, 0);
    EXPECT_MISSING(t, S("ab"));
    assert_int_equal(kivis_txn_del(t, S("ab")), KIVIS_NOTFOUND);
    put_keyed(t, S("ab"));
    put_keyed(t, S("gone"));
    commit(t);

    static const kivis_slice near[] = {K("a"), K("ab\x00"), K("abc"),
                                       K("aa"), K("b"), K("\xff")};
    for (int ro = 0; ro < 2; ro++) {
        t = begin(fx->st, ro ? KIVIS_TXN_RDONLY : 0);
        for (size_t i = 0; i < sizeof near / sizeof near[0]; i++)
            EXPECT_MISSING(t, near[i]);
        EXPECT_HAS(t, S("ab"));
        kivis_txn_abort(t);
    }

    t = begin(fx->st, 0);
    for (size_t i = 0; i < sizeof near / sizeof near[0]; i++)
        assert_int_equal(kivis_txn_del(t, near[i]), KIVIS_NOTFOUND);
    assert_int_equal(kivis_txn_del(t, S("gone")), KIVIS_OK);
    assert_int_equal(kivis_txn_del(t, S("gone")), KIVIS_NOTFOUND);
    EXPECT_MISSING(t, S("gone"));
    put_keyed(t, S("new"));
    assert_int_equal(kivis_txn_del(t, S("new")), KIVIS_OK);
    assert_int_equal(kivis_txn_del(t, S("new")), KIVIS_NOTFOUND);
    commit(t);
    assert_int_equal(kt_count(fx->st), 1);
}

/* ---- ranges ------------------------------------------------------------- */

static const kivis_slice range_keys[] = {
    K("\x00"),      /* 0 */
    K("\x00\xff"),  /* 1 */
    K("a"),         /* 2 */
    K("b"),         /* 3 */
    K("b\x00"),     /* 4 */
    K("b\x00\x00"), /* 5 */
    K("ba"),        /* 6 */
    K("b\xff"),     /* 7 */
    K("c"),         /* 8 */
    K("\xff"),      /* 9 */
    K("\xff\xff"),  /* 10 */
};

typedef struct range_case {
    kivis_slice lo, hi;
    size_t first, count; /* the expected keys: range_keys[first, +count) */
} range_case;

static const range_case range_cases[] = {
    {{NULL, 0}, {NULL, 0}, 0, 11},           /* everything */
    {K("b"), {NULL, 0}, 3, 8},               /* no upper bound */
    {{NULL, 0}, K("b"), 0, 3},               /* from the start */
    {K("b"), K("c"), 3, 5},                  /* bounds on keys */
    {K("b\x00"), K("ba"), 4, 2},             /* prefix bounds */
    {K("b\x00\x00\x00"), K("b\xff\x00"), 6, 2}, /* bounds between keys */
    {K("b"), K("b"), 0, 0},                  /* lo == hi */
    {K("b\xff\x00"), K("c"), 0, 0},          /* empty gap between keys */
    {K("c"), K("b"), 0, 0},                  /* lo > hi */
    {K("\xff\xff\x00"), {NULL, 0}, 0, 0},    /* past the last key */
    {{NULL, 0}, K("\x00"), 0, 0},            /* before the first key */
    {{NULL, 0}, K("\x00\x00"), 0, 1},        /* hi just past the first */
    {K("\x00"), K("\xff\xff\xff"), 0, 11},   /* bounds around everything */
    {K("\x00\x00"), K("\xff\xff"), 1, 9},    /* hi excludes the last */
};

static const keyset range_set = KEYSET(range_keys);

static void check_ranges(kivis_storage_txn *t, const keyset *ks)
{
    for (size_t i = 0; i < sizeof range_cases / sizeof range_cases[0]; i++) {
        const range_case *rc = &range_cases[i];
        g_case = (int)i;
        EXPECT_WALKS(t, rc->lo, rc->hi, ks->keys + rc->first, rc->count);
    }
    g_case = -1;
}

TEST_IN_EACH_VIEW(test_range_bounds, range_set, check_ranges)

/* ---- cursor ops --------------------------------------------------------- */

static void check_first_last(kivis_storage_txn *t, const keyset *ks)
{
    const kivis_slice *k = ks->keys;
    kivis_storage_cursor *c = cursor_all(t);
    EXPECT_CUR(c, KIVIS_FIRST, NULL, &k[0]);
    EXPECT_CUR(c, KIVIS_LAST, NULL, &k[10]);
    EXPECT_CUR(c, KIVIS_FIRST, NULL, &k[0]);
    kivis_cursor_close(c);

    c = cursor(t, S("b"), S("c"));
    EXPECT_CUR(c, KIVIS_LAST, NULL, &k[7]);
    EXPECT_CUR(c, KIVIS_FIRST, NULL, &k[3]);
    kivis_cursor_close(c);

    c = cursor(t, S("b\xff\x00"), S("c"));
    EXPECT_CUR(c, KIVIS_FIRST, NULL, NULL);
    EXPECT_CUR(c, KIVIS_LAST, NULL, NULL);
    kivis_cursor_close(c);
}

TEST_IN_EACH_VIEW(test_cursor_first_last, range_set, check_first_last)

static void check_unpositioned(kivis_storage_txn *t, const keyset *ks)
{
    const kivis_slice *k = ks->keys;
    kivis_storage_cursor *c = cursor(t, S("a"), S("c"));
    EXPECT_CUR(c, KIVIS_NEXT, NULL, &k[2]); /* NEXT = FIRST */
    EXPECT_CUR(c, KIVIS_NEXT, NULL, &k[3]);
    kivis_cursor_close(c);
    c = cursor(t, S("a"), S("c"));
    EXPECT_CUR(c, KIVIS_PREV, NULL, &k[7]); /* PREV = LAST */
    EXPECT_CUR(c, KIVIS_PREV, NULL, &k[6]);
    kivis_cursor_close(c);
}

TEST_IN_EACH_VIEW(test_cursor_unpositioned, range_set, check_unpositioned)

typedef struct seek_case {
    kivis_slice lo, hi;
    int op;
    kivis_slice key;
    int want; /* index into range_keys, -1 for KIVIS_NOTFOUND */
} seek_case;

#define ALL {NULL, 0}, {NULL, 0}
#define B_TO_C K("b"), K("c")

static const seek_case seek_cases[] = {
    {ALL, KIVIS_SEEK_GE, K("b"), 3},               /* exact */
    {ALL, KIVIS_SEEK_LE, K("b"), 3},
    {ALL, KIVIS_SEEK_GE, K("\x00"), 0},            /* exact, first */
    {ALL, KIVIS_SEEK_LE, K("\x00"), 0},
    {ALL, KIVIS_SEEK_GE, K("\x00\x00"), 1},        /* between, by prefix */
    {ALL, KIVIS_SEEK_LE, K("\x00\x00"), 0},
    {ALL, KIVIS_SEEK_GE, K("b\x00\x01"), 6},       /* between */
    {ALL, KIVIS_SEEK_LE, K("b\x00\x01"), 5},
    {ALL, KIVIS_SEEK_GE, K("bb"), 7},
    {ALL, KIVIS_SEEK_LE, K("bb"), 6},
    {ALL, KIVIS_SEEK_GE, K("\xff\xff\xff"), -1},   /* after all */
    {ALL, KIVIS_SEEK_LE, K("\xff\xff\xff"), 10},
    {ALL, KIVIS_SEEK_LE, K("\xff\xff"), 10},
    {K("a"), {NULL, 0}, KIVIS_SEEK_LE, K("\x00\xff"), -1}, /* below lo */
    {K("a"), {NULL, 0}, KIVIS_SEEK_GE, K("\x00\xff"), 2},
    {B_TO_C, KIVIS_SEEK_GE, K("a"), 3},            /* below the range */
    {B_TO_C, KIVIS_SEEK_LE, K("a"), -1},
    {B_TO_C, KIVIS_SEEK_GE, K("c"), -1},           /* at hi, excluded */
    {B_TO_C, KIVIS_SEEK_LE, K("c"), 7},
    {B_TO_C, KIVIS_SEEK_GE, K("z"), -1},           /* above the range */
    {B_TO_C, KIVIS_SEEK_LE, K("z"), 7},
    {B_TO_C, KIVIS_SEEK_GE, K("b\xff\x00"), -1},   /* gap before hi */
    {B_TO_C, KIVIS_SEEK_LE, K("b\xff\x00"), 7},
    {B_TO_C, KIVIS_SEEK_GE, K("b\x00"), 4},
    {B_TO_C, KIVIS_SEEK_LE, K("b\x00\x01"), 5},
    {K("b"), K("b"), KIVIS_SEEK_GE, K("b"), -1},   /* empty range */
    {K("b"), K("b"), KIVIS_SEEK_LE, K("b"), -1},
};

static void check_seeks(kivis_storage_txn *t, const keyset *ks)
{
    for (size_t i = 0; i < sizeof seek_cases / sizeof seek_cases[0]; i++) {
        const seek_case *sc = &seek_cases[i];
        g_case = (int)i;
        kivis_storage_cursor *c = cursor(t, sc->lo, sc->hi);
        EXPECT_CUR(c, sc->op, &sc->key,
                   sc->want < 0 ? NULL : &ks->keys[sc->want]);
        kivis_cursor_close(c);
    }
    g_case = -1;
}

TEST_IN_EACH_VIEW(test_cursor_seek, range_set, check_seeks)

/* After a seek, NEXT and PREV move from the entry found. */
static void check_seek_then_step(kivis_storage_txn *t, const keyset *ks)
{
    const kivis_slice *k = ks->keys;
    kivis_storage_cursor *c = cursor_all(t);
    EXPECT_CUR(c, KIVIS_SEEK_GE, KP("b\x00\x01"), &k[6]);
    EXPECT_CUR(c, KIVIS_NEXT, NULL, &k[7]);
    EXPECT_CUR(c, KIVIS_PREV, NULL, &k[6]);
    EXPECT_CUR(c, KIVIS_PREV, NULL, &k[5]);
    EXPECT_CUR(c, KIVIS_SEEK_LE, KP("b\x00\x01"), &k[5]);
    EXPECT_CUR(c, KIVIS_NEXT, NULL, &k[6]);
    EXPECT_CUR(c, KIVIS_SEEK_GE, KP("\xff\xff"), &k[10]);
    EXPECT_CUR(c, KIVIS_PREV, NULL, &k[9]);
    EXPECT_CUR(c, KIVIS_SEEK_LE, KP("\x00"), &k[0]);
    EXPECT_CUR(c, KIVIS_NEXT, NULL, &k[1]);
    kivis_cursor_close(c);
}

TEST_IN_EACH_VIEW(test_cursor_seek_then_step, range_set, check_seek_then_step)

/* A run goes on from where a seek put the cursor, and only NEXT and PREV
 * take a run, of at least one entry. */
static void check_seek_then_page(kivis_storage_txn *t, const keyset *ks)
{
    const kivis_slice *k = ks->keys;
    kivis_storage_cursor *c = cursor_all(t);
    kivis_cursor_entry run[4];
    size_t n = 99;
    const uint64_t *stamp;
    EXPECT_CUR(c, KIVIS_SEEK_GE, KP("b\x00\x01"), &k[6]);
    assert_int_equal(kivis_cursor_page(t, c, KIVIS_NEXT, run, 1, &n, &stamp), KIVIS_OK);
    assert_int_equal(n, 1);
    assert_true(slice_eq(run[0].key, k[7]));
    EXPECT_CUR(c, KIVIS_SEEK_LE, KP("b\x00\x01"), &k[5]);
    assert_int_equal(kivis_cursor_page(t, c, KIVIS_PREV, run, 4, &n, &stamp), KIVIS_OK);
    assert_true(n >= 1 && n <= 4);
    for (size_t i = 0; i < n; i++)
        assert_true(slice_eq(run[i].key, k[4 - i]));
    assert_int_equal(kivis_cursor_page(t, c, KIVIS_FIRST, run, 4, &n, &stamp),
                     KIVIS_EINVAL);
    assert_int_equal(kivis_cursor_page(t, c, KIVIS_NEXT, run, 0, &n, &stamp),
                     KIVIS_EINVAL);
    assert_int_equal(n, 0);
    kivis_cursor_close(c);
}

TEST_IN_EACH_VIEW(test_cursor_seek_then_page, range_set, check_seek_then_page)

/* A commit lands while a read transaction holds a run: either the run's
 * stamp moved, or (a page method's run) its views still hold what they
 * held, a snapshot's pages; the next run goes on after the run's last
 * entry either way: at the key after it, or past that key where the
 * commit deleted it and the transaction sees commits. */
static void test_page_views_across_commit(void **state)
{
    fixture *fx = *state;
    enum { N = 100 };
    char names[N][8];
    kivis_slice keys[N];
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], "p%03d", i);
        keys[i] = kivis_slice_make(names[i], 4);
    }
    keyset ks = {keys, N};
    load_every(fx->st, &ks, 0, 1);
    kivis_storage_txn *r = begin(fx->st, KIVIS_TXN_RDONLY);
    kivis_storage_cursor *c = cursor_all(r);
    kivis_cursor_entry run[16];
    size_t n = 0;
    const uint64_t *stamp;
    assert_int_equal(kivis_cursor_page(r, c, KIVIS_NEXT, run, 16, &n, &stamp), KIVIS_OK);
    uint64_t at = stamp ? *stamp : 0;

    kivis_storage_txn *w = NULL;
    int rc = kivis_storage_begin(fx->st, 0, &w);
    if (rc == KIVIS_EBUSY) { /* no writer beside a reader here */
        kivis_cursor_close(c);
        kivis_txn_abort(r);
        skip();
    }
    assert_int_equal(rc, KIVIS_OK);
    assert_true(n >= 1 && n + 2 < N);
    assert_int_equal(kivis_txn_del(w, keys[n]), KIVIS_OK);
    commit(w);

    if (stamp) {
        assert_true(*stamp != at);
    } else if (kivis_cursor_pages(r, c)) { /* else a get's view, as ever */
        for (size_t i = 0; i < n; i++) {
            uint8_t vb[VALUE_BUF];
            check_entry(__FILE__, __LINE__, "run after a commit", KIVIS_OK,
                        &run[i].key, run[i].value, &keys[i],
                        value_of(keys[i], vb));
        }
    }
    size_t more = 0;
    assert_int_equal(kivis_cursor_page(r, c, KIVIS_NEXT, run, 16, &more, &stamp),
                     KIVIS_OK);
    assert_true(slice_eq(run[0].key, keys[n]) || slice_eq(run[0].key, keys[n + 1]));
    kivis_cursor_close(c);
    kivis_txn_abort(r);
}

/* Past either end the cursor stays there until FIRST, LAST or a SEEK. */
static void check_end_sticky(kivis_storage_cursor *c, const kivis_slice *first,
                             const kivis_slice *last)
{
    EXPECT_CUR(c, KIVIS_LAST, NULL, last);
    EXPECT_CUR(c, KIVIS_NEXT, NULL, NULL);
    EXPECT_CUR(c, KIVIS_NEXT, NULL, NULL);
    EXPECT_CUR(c, KIVIS_PREV, NULL, NULL);
    EXPECT_CUR(c, KIVIS_FIRST, NULL, first);
    EXPECT_CUR(c, KIVIS_PREV, NULL, NULL);
    EXPECT_CUR(c, KIVIS_PREV, NULL, NULL);
    EXPECT_CUR(c, KIVIS_NEXT, NULL, NULL);
    EXPECT_CUR(c, KIVIS_LAST, NULL, last);
    EXPECT_CUR(c, KIVIS_SEEK_GE, KP("\xff\xff\xff\xff"), NULL);
    EXPECT_CUR(c, KIVIS_PREV, NULL, NULL);
    EXPECT_CUR(c, KIVIS_NEXT, NULL, NULL);
    EXPECT_CUR(c, KIVIS_SEEK_LE, KP("\x00"), NULL); /* below lo */
    EXPECT_CUR(c, KIVIS_NEXT, NULL, NULL);
    EXPECT_CUR(c, KIVIS_PREV, NULL, NULL);
    EXPECT_CUR(c, KIVIS_SEEK_GE, first, first);
    EXPECT_CUR(c, KIVIS_PREV, NULL, NULL);
}

static void check_notfound_sticky(kivis_storage_txn *t, const keyset *ks)
{
    const kivis_slice *k = ks->keys;
    kivis_storage_cursor *c = cursor(t, S("\x00\x00"), NONE);
    check_end_sticky(c, &k[1], &k[10]);
    kivis_cursor_close(c);
    /* Inside a range the ends are the bounds, not the store's ends. */
    c = cursor(t, S("b"), S("c"));
    check_end_sticky(c, &k[3], &k[7]);
    kivis_cursor_close(c);
}

TEST_IN_EACH_VIEW(test_cursor_notfound_sticky, range_set, check_notfound_sticky)

static void check_zigzag(kivis_storage_txn *t, const keyset *ks)
{
    kivis_storage_cursor *c = cursor_all(t);
    EXPECT_CUR(c, KIVIS_FIRST, NULL, &ks->keys[0]);
    for (size_t i = 1; i < ks->n; i++) {
        EXPECT_CUR(c, KIVIS_NEXT, NULL, &ks->keys[i]);
        EXPECT_CUR(c, KIVIS_PREV, NULL, &ks->keys[i - 1]);
        EXPECT_CUR(c, KIVIS_NEXT, NULL, &ks->keys[i]);
    }
    kivis_cursor_close(c);
}

/* Plain reverse walks are in every view's EXPECT_CONTENTS. */
TEST_IN_EACH_VIEW(test_cursor_reverse_and_zigzag, range_set, check_zigzag)

/* ---- cursors across writes in the same transaction ---------------------- */

static const kivis_slice sparse_keys[] = {K("a"), K("c"), K("e"), K("g"),
                                          K("i")};
static const keyset sparse_set = KEYSET(sparse_keys);

/* A scripted scenario: writes and steps of one cursor over the whole range,
 * each step with the entry storage.h says it must return. */
typedef struct step {
    int act;           /* a kivis_cursor_op, or STEP_PUT / STEP_DEL */
    kivis_slice key;   /* the key written or deleted, or the seek key */
    kivis_slice want;  /* the entry a cursor op returns; NOTFOUND if NULL */
    kivis_slice value; /* written or expected value; value_of(key) if NULL */
} step;

enum { STEP_PUT = 100, STEP_DEL };

#define NIL {NULL, 0}
#define GO(op, k) {KIVIS_##op, NIL, K(k), NIL}
#define GO_V(op, k, v) {KIVIS_##op, NIL, K(k), K(v)}
#define GO_END(op) {KIVIS_##op, NIL, NIL, NIL}
#define SEEK_TO(op, s, k) {KIVIS_##op, K(s), K(k), NIL}
#define SEEK_PAST(op, s) {KIVIS_##op, K(s), NIL, NIL}
#define PUT(k) {STEP_PUT, K(k), NIL, NIL}
#define PUT_V(k, v) {STEP_PUT, K(k), NIL, K(v)}
#define DEL(k) {STEP_DEL, K(k), NIL, NIL}

static const step *g_script; /* the one check_script runs */
static size_t g_script_len;

static void run_step(kivis_storage_txn *t, kivis_storage_cursor *c,
                     const step *s)
{
    uint8_t vb[VALUE_BUF];
    if (s->act == STEP_DEL) {
        assert_int_equal(kivis_txn_del(t, s->key), KIVIS_OK);
    } else if (s->act == STEP_PUT) {
        put(t, s->key, s->value.data ? s->value : value_of(s->key, vb));
    } else {
        kivis_slice v = s->value;
        if (!v.data && s->want.data)
            v = value_of(s->want, vb);
        expect_cursor_v(__FILE__, __LINE__, c, s->act,
                        s->key.data ? &s->key : NULL,
                        s->want.data ? &s->want : NULL, v);
    }
}

static void check_script(kivis_storage_txn *t, const keyset *ks)
{
    (void)ks;
    kivis_storage_cursor *c = cursor_all(t);
    for (size_t i = 0; i < g_script_len; i++) {
        g_case = (int)i; /* failures name the step */
        run_step(t, c, &g_script[i]);
    }
    g_case = -1;
    kivis_cursor_close(c);
}

#define TEST_SCRIPT(test, script)                                           \
    static void test(void **state)                                         \
    {                                                                      \
        g_script = (script);                                               \
        g_script_len = sizeof(script) / sizeof((script)[0]);               \
        for_each_write_view(*state, &sparse_set, check_script);            \
    }

/* Each runs over a, c, e, g, i. */
static const step writes_ahead[] = {
    SEEK_TO(SEEK_GE, "e", "e"),
    PUT("f"), GO(NEXT, "f"),
    DEL("g"), GO(NEXT, "i"),
    PUT("h"), GO(PREV, "h"),
    PUT("h\x00"), GO(NEXT, "h\x00"), /* right after the current key */
    GO(NEXT, "i"),
    DEL("i"), GO(PREV, "h\x00"),
    GO_END(NEXT),
};
TEST_SCRIPT(test_cursor_sees_writes_ahead, writes_ahead)

static const step writes_behind[] = {
    SEEK_TO(SEEK_LE, "e", "e"),
    PUT("d"), GO(PREV, "d"),
    DEL("c"), GO(PREV, "a"),
    PUT("b"), GO(NEXT, "b"),
    PUT("a\xff"), GO(PREV, "a\xff"), /* right before the current key */
    DEL("a"), GO_END(PREV),
};
TEST_SCRIPT(test_cursor_sees_writes_behind, writes_behind)

static const step current_rewritten[] = {
    SEEK_TO(SEEK_GE, "e", "e"),
    DEL("e"), GO(NEXT, "g"), GO(PREV, "c"),
    DEL("c"), GO(PREV, "a"), GO(NEXT, "g"), /* now a, g, i */
    DEL("g"), PUT("g"), GO(NEXT, "i"),      /* not g a second time */
    GO(PREV, "g"),
    PUT_V("g", "changed"), GO(NEXT, "i"),   /* overwritten in place */
    GO_V(PREV, "g", "changed"), GO(PREV, "a"),
};
TEST_SCRIPT(test_cursor_current_deleted_or_rewritten, current_rewritten)

/* The end is sticky even when writes add keys beyond it. */
static const step end_after_writes[] = {
    GO(LAST, "i"), GO_END(NEXT),
    PUT("j"), GO_END(NEXT), GO_END(PREV), GO(LAST, "j"),
    GO(FIRST, "a"), GO_END(PREV),
    PUT("0"), GO_END(PREV), GO_END(NEXT), GO(FIRST, "0"),
    SEEK_PAST(SEEK_GE, "z"),
    PUT("z"), GO_END(NEXT), SEEK_TO(SEEK_GE, "z", "z"),
};
TEST_SCRIPT(test_cursor_end_stays_after_writes, end_after_writes)

static void check_opened_before_writes(kivis_storage_txn *t, const keyset *ks)
{
    (void)ks;
    kivis_storage_cursor *in = cursor(t, S("b"), S("h"));
    kivis_storage_cursor *all = cursor_all(t);
    put_keyed(t, S("b"));
    put_keyed(t, S("h"));    /* == hi: outside `in` */
    put_keyed(t, S("a\xff")); /* < lo: outside `in` */
    EXPECT_CUR(in, KIVIS_NEXT, NULL, KP("b"));
    EXPECT_CUR(all, KIVIS_PREV, NULL, KP("i"));
    EXPECT_CUR(in, KIVIS_LAST, NULL, KP("g"));
    EXPECT_CUR(in, KIVIS_NEXT, NULL, NULL);
    EXPECT_CUR(all, KIVIS_PREV, NULL, KP("h"));
    EXPECT_CUR(in, KIVIS_SEEK_LE, KP("a\xff"), NULL);
    EXPECT_CUR(all, KIVIS_SEEK_LE, KP("b"), KP("b"));
    EXPECT_CUR(all, KIVIS_PREV, NULL, KP("a\xff"));
    EXPECT_CUR(in, KIVIS_FIRST, NULL, KP("b"));
    EXPECT_CUR(in, KIVIS_NEXT, NULL, KP("c"));
    kivis_cursor_close(in);
    kivis_cursor_close(all);
}

TEST_IN_EACH_WRITE_VIEW(test_cursor_opened_before_writes, sparse_set,
                        check_opened_before_writes)

/* ---- transactions ------------------------------------------------------- */

static void test_read_your_writes(void **state)
{
    fixture *fx = *state;
    load_every(fx->st, &sparse_set, 0, 1); /* a c e g i */
    kivis_storage_txn *t = begin(fx->st, 0);
    put_keyed(t, S("d"));
    EXPECT_HAS(t, S("d"));
    put(t, S("a"), S("new a"));
    EXPECT_GET_V(t, S("a"), KP("new a"));
    assert_int_equal(kivis_txn_del(t, S("c")), KIVIS_OK);
    EXPECT_MISSING(t, S("c"));
    assert_int_equal(kivis_txn_del(t, S("d")), KIVIS_OK);
    EXPECT_MISSING(t, S("d"));
    put_keyed(t, S("c"));
    EXPECT_HAS(t, S("c"));

    kivis_storage_cursor *c = cursor_all(t);
    EXPECT_CUR_V(c, KIVIS_FIRST, NULL, KP("a"), S("new a"));
    EXPECT_CUR(c, KIVIS_NEXT, NULL, KP("c"));
    EXPECT_CUR(c, KIVIS_NEXT, NULL, KP("e"));
    EXPECT_CUR(c, KIVIS_SEEK_GE, KP("d"), KP("e"));
    EXPECT_CUR(c, KIVIS_SEEK_LE, KP("d"), KP("c"));
    kivis_cursor_close(c);
    commit(t);

    t = begin(fx->st, KIVIS_TXN_RDONLY);
    EXPECT_GET_V(t, S("a"), KP("new a"));
    EXPECT_HAS(t, S("c"));
    EXPECT_MISSING(t, S("d"));
    kivis_txn_abort(t);
    assert_int_equal(kt_count(fx->st), 5);
}

/* discard deletes like del, reporting a missing key only as NOTFOUND or
 * OK (a blind delete); prefetch changes no answer, before or after writes,
 * in read-only and write transactions. */
static void test_discard_and_prefetch(void **state)
{
    fixture *fx = *state;
    load_every(fx->st, &sparse_set, 0, 1); /* a c e g i */
    kivis_slice ask[5] = {S("a"), S("b"), S("c"), S("a"), S("zz")};
    kivis_storage_txn *t = begin(fx->st, KIVIS_TXN_RDONLY);
    assert_int_equal(kivis_txn_prefetch(t, ask, 5), KIVIS_OK);
    EXPECT_HAS(t, S("a"));
    EXPECT_MISSING(t, S("b"));
    EXPECT_HAS(t, S("c"));
    EXPECT_MISSING(t, S("zz"));
    assert_int_equal(kivis_txn_discard(t, S("a")), KIVIS_EINVAL);
    kivis_txn_abort(t);

    t = begin(fx->st, 0);
    put(t, S("b"), S("new b"));
    assert_int_equal(kivis_txn_discard(t, S("c")), KIVIS_OK);
    int rc = kivis_txn_discard(t, S("d"));
    assert_true(rc == KIVIS_OK || rc == KIVIS_NOTFOUND);
    assert_int_equal(kivis_txn_discard(t, S("")), KIVIS_EINVAL);
    assert_int_equal(kivis_txn_prefetch(t, ask, 5), KIVIS_OK);
    EXPECT_GET_V(t, S("b"), KP("new b"));
    EXPECT_MISSING(t, S("c"));
    EXPECT_MISSING(t, S("d"));
    EXPECT_HAS(t, S("a"));
    commit(t);
    t = begin(fx->st, KIVIS_TXN_RDONLY);
    EXPECT_GET_V(t, S("b"), KP("new b"));
    EXPECT_MISSING(t, S("c"));
    EXPECT_MISSING(t, S("d"));
    kivis_txn_abort(t);
    assert_int_equal(kt_count(fx->st), 5); /* a b e g i */
}

/* A reader must not see a writer's uncommitted writes (where the backend
 * allows a reader beside a writer at all). */
static void expect_reader_sees(kivis_storage *st, const char *want_dump)
{
    kivis_storage_txn *r = NULL;
    int rc = kivis_storage_begin(st, KIVIS_TXN_RDONLY, &r);
    if (rc == KIVIS_EBUSY)
        return;
    assert_int_equal(rc, KIVIS_OK);
    kivis_txn_abort(r);
    expect_dump(st, want_dump);
}

static void test_abort_discards_everything(void **state)
{
    fixture *fx = *state;
    load_every(fx->st, &sparse_set, 0, 1);
    char *before = kt_dump(fx->st);

    kivis_storage_txn *t = begin(fx->st, 0);
    put_keyed(t, S("b"));
    put(t, S("a"), S("changed"));
    assert_int_equal(kivis_txn_del(t, S("e")), KIVIS_OK);
    for (int i = 0; i < 200; i++) {
        char k[16];
        int n = snprintf(k, sizeof k, "k%03d", i);
        put(t, kivis_slice_make(k, (size_t)n), S("x"));
    }
    expect_reader_sees(fx->st, before);
    kivis_storage_cursor *c = cursor_all(t);
    EXPECT_CUR_V(c, KIVIS_FIRST, NULL, KP("a"), S("changed"));
    kivis_cursor_close(c);
    kivis_txn_abort(t);

    expect_dump(fx->st, before);
    /* And the store takes a new writer. */
    t = begin(fx->st, 0);
    EXPECT_HAS(t, S("e"));
    EXPECT_MISSING(t, S("b"));
    kivis_txn_abort(t);
    free(before);
}

#define MANY_WRITES 20000

static kivis_slice numbered_key(char buf[16], unsigned i)
{
    int n = snprintf(buf, 16, "n%08u", i);
    return kivis_slice_make(buf, (size_t)n);
}

static void test_commit_many_writes_atomically(void **state)
{
    fixture *fx = *state;
    char k[16];
    /* 1000 puts, then many more puts and 500 deletes, in one commit each */
    unsigned limit = g_backend->max_commit_writes;
    unsigned many = limit ? limit - 500 : MANY_WRITES;
    kivis_storage_txn *t = begin(fx->st, 0);
    for (unsigned i = 0; i < 1000; i++)
        put_keyed(t, numbered_key(k, i));
    commit(t);
    char *before = kt_dump(fx->st);

    t = begin(fx->st, 0);
    for (unsigned i = 0; i < many; i++)
        put_keyed(t, numbered_key(k, 1000 + i));
    for (unsigned i = 0; i < 1000; i += 2)
        assert_int_equal(kivis_txn_del(t, numbered_key(k, i)), KIVIS_OK);
    expect_reader_sees(fx->st, before);
    commit(t);

    assert_int_equal(kt_count(fx->st), many + 500);
    t = begin(fx->st, KIVIS_TXN_RDONLY);
    for (unsigned i = 0; i < 1000 + many; i++) {
        kivis_slice key = numbered_key(k, i);
        expect_get_keyed(__FILE__, __LINE__, t, key, i >= 1000 || i % 2);
    }
    kivis_txn_abort(t);
    free(before);
}

static void test_commit_without_writes(void **state)
{
    fixture *fx = *state;
    load_every(fx->st, &sparse_set, 0, 1);
    char *before = kt_dump(fx->st);

    commit(begin(fx->st, 0)); /* nothing at all */
    commit(begin(fx->st, KIVIS_TXN_RDONLY));
    kivis_storage_txn *t = begin(fx->st, 0); /* reads only */
    EXPECT_HAS(t, S("a"));
    kivis_storage_cursor *c = cursor_all(t);
    EXPECT_CUR(c, KIVIS_LAST, NULL, KP("i"));
    kivis_cursor_close(c);
    commit(t);
    t = begin(fx->st, 0); /* writes that cancel out */
    put_keyed(t, S("new"));
    assert_int_equal(kivis_txn_del(t, S("new")), KIVIS_OK);
    commit(t);
    assert_int_equal(kivis_txn_commit(begin(fx->st, 0), KIVIS_NOSYNC),
                     KIVIS_OK);

    expect_dump(fx->st, before);
    free(before);
}

static void test_rdonly_rejects_writes(void **state)
{
    fixture *fx = *state;
    load_every(fx->st, &sparse_set, 0, 1);
    char *before = kt_dump(fx->st);
    kivis_storage_txn *t = begin(fx->st, KIVIS_TXN_RDONLY);
    assert_int_equal(kivis_txn_put(t, S("b"), S("x")), KIVIS_EINVAL);
    assert_int_equal(kivis_txn_put(t, S("a"), S("x")), KIVIS_EINVAL);
    assert_int_equal(kivis_txn_del(t, S("a")), KIVIS_EINVAL);
    assert_int_equal(kivis_txn_del(t, S("b")), KIVIS_EINVAL);
    EXPECT_HAS(t, S("a")); /* still readable */
    EXPECT_MISSING(t, S("b"));
    g_view = "read-only after rejected writes";
    EXPECT_CONTENTS(t, &sparse_set);
    commit(t);
    expect_dump(fx->st, before);
    free(before);
}

static void test_reopen_keeps_commits(void **state)
{
    fixture *fx = *state;
    if (!g_backend->reopen)
        skip(); /* nothing persists across a close */
    load_every(fx->st, &range_set, 0, 1);
    kivis_storage_txn *t = begin(fx->st, 0);
    put_keyed(t, S("aborted"));
    kivis_txn_abort(t);
    char *before = kt_dump(fx->st);
    assert_int_equal(g_backend->reopen(&fx->alloc.iface, &fx->st), KIVIS_OK);
    expect_dump(fx->st, before);
    free(before);
}

/* ---- borrowed results --------------------------------------------------- */

#define BORROW_VALUE 65536

static uint8_t *filled(size_t n, uint8_t byte)
{
    uint8_t *p = malloc(n);
    assert_non_null(p);
    memset(p, byte, n);
    return p;
}

/* Read every borrowed result as late as storage.h allows: right before the
 * next write in the transaction, after other gets and other cursors' steps.
 * The sanitizers catch a view that died early. */
static void check_borrowed(kivis_storage *st, bool rw, kivis_slice big_a,
                           kivis_slice big_p)
{
    kivis_storage_txn *t = begin(st, rw ? 0 : KIVIS_TXN_RDONLY);
    if (rw)
        put(t, S("p"), big_p); /* a pending value too */
    kivis_slice ga, gb, gp = NONE, k1, v1, k2, v2, k, v;
    assert_int_equal(kivis_txn_get(t, S("a"), &ga), KIVIS_OK);
    assert_int_equal(kivis_txn_get(t, S("b"), &gb), KIVIS_OK);
    if (rw)
        assert_int_equal(kivis_txn_get(t, S("p"), &gp), KIVIS_OK);
    kivis_storage_cursor *c1 = cursor_all(t), *c2 = cursor_all(t);
    kivis_storage_cursor *walker = cursor_all(t);
    assert_int_equal(kivis_cursor_get(c1, KIVIS_FIRST, &k1, &v1), KIVIS_OK);
    assert_int_equal(kivis_cursor_get(c2, KIVIS_LAST, &k2, &v2), KIVIS_OK);
    while (kivis_cursor_get(walker, KIVIS_NEXT, &k, &v) == KIVIS_OK)
        assert_int_equal(kivis_txn_get(t, S("c"), &v), KIVIS_OK);
    kivis_cursor_close(walker);

    assert_true(slice_eq(ga, big_a));
    assert_true(slice_eq(gb, S("v=b")));
    assert_true(slice_eq(k1, S("a")) && slice_eq(v1, big_a));
    assert_true(rw ? slice_eq(k2, S("p")) && slice_eq(v2, big_p)
                   : slice_eq(k2, S("d")) && slice_eq(v2, S("v=d")));
    assert_true(slice_eq(gp, rw ? big_p : NONE));
    if (rw)
        put(t, S("z"), S("the next write"));
    kivis_cursor_close(c1);
    kivis_cursor_close(c2);
    kivis_txn_abort(t);
}

static void test_borrowed_results_live_until_next_write(void **state)
{
    fixture *fx = *state;
    uint8_t *va = filled(BORROW_VALUE, 'A'), *vp = filled(BORROW_VALUE, 'P');
    kivis_slice big_a = kivis_slice_make(va, BORROW_VALUE);
    kivis_storage_txn *t = begin(fx->st, 0);
    put(t, S("a"), big_a);
    put_keyed(t, S("b"));
    put_keyed(t, S("c"));
    put_keyed(t, S("d"));
    commit(t);
    check_borrowed(fx->st, false, big_a, NONE);
    check_borrowed(fx->st, true, big_a, kivis_slice_make(vp, BORROW_VALUE));
    free(va);
    free(vp);
}

/* ---- differential test against a reference model ------------------------ */

#define DIFF_SEED 0x4B495649u /* "KIVI"; KIVIS_TEST_SEED overrides */
#define DIFF_TXNS 400
#define DIFF_MAX_OPS 60
#define DIFF_KEY_MAX 4
#define DIFF_CURSORS 2

/* The model: a sorted array of owned entries. */
typedef struct mentry {
    uint8_t *key, *val;
    size_t klen, vlen;
} mentry;

typedef struct model {
    mentry *e;
    size_t n, cap;
} model;

static kivis_slice mkey(const model *m, size_t i)
{
    return kivis_slice_make(m->e[i].key, m->e[i].klen);
}

static kivis_slice mval(const model *m, size_t i)
{
    return kivis_slice_make(m->e[i].val, m->e[i].vlen);
}

static uint8_t *dup_bytes(kivis_slice s)
{
    uint8_t *p = malloc(s.len ? s.len : 1);
    assert_non_null(p);
    if (s.len)
        memcpy(p, s.data, s.len);
    return p;
}

/* First index whose key is >= k (or > k when strictly). */
static size_t model_bound(const model *m, kivis_slice k, bool strictly)
{
    size_t lo = 0, hi = m->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = key_cmp(mkey(m, mid), k);
        if (c < 0 || (strictly && c == 0))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static long model_find(const model *m, kivis_slice k)
{
    size_t i = model_bound(m, k, false);
    return i < m->n && key_cmp(mkey(m, i), k) == 0 ? (long)i : -1;
}

static void model_put(model *m, kivis_slice k, kivis_slice v)
{
    size_t i = model_bound(m, k, false);
    if (i < m->n && key_cmp(mkey(m, i), k) == 0) {
        free(m->e[i].val);
    } else {
        if (m->n == m->cap) {
            m->cap = m->cap ? 2 * m->cap : 64;
            m->e = realloc(m->e, m->cap * sizeof *m->e);
            assert_non_null(m->e);
        }
        memmove(&m->e[i + 1], &m->e[i], (m->n - i) * sizeof *m->e);
        m->n++;
        m->e[i].key = dup_bytes(k);
        m->e[i].klen = k.len;
    }
    m->e[i].val = dup_bytes(v);
    m->e[i].vlen = v.len;
}

static bool model_del(model *m, kivis_slice k)
{
    long i = model_find(m, k);
    if (i < 0)
        return false;
    free(m->e[i].key);
    free(m->e[i].val);
    memmove(&m->e[i], &m->e[i + 1], (m->n - (size_t)i - 1) * sizeof *m->e);
    m->n--;
    return true;
}

static void model_free(model *m)
{
    for (size_t i = 0; i < m->n; i++) {
        free(m->e[i].key);
        free(m->e[i].val);
    }
    free(m->e);
    memset(m, 0, sizeof *m);
}

static void model_copy(model *dst, const model *src)
{
    memset(dst, 0, sizeof *dst);
    for (size_t i = 0; i < src->n; i++)
        model_put(dst, mkey(src, i), mval(src, i));
}

/* A storage cursor and where the model says it stands. */
typedef struct mcursor {
    kivis_storage_cursor *cur;
    uint8_t lo[DIFF_KEY_MAX], hi[DIFF_KEY_MAX], at[DIFF_KEY_MAX];
    size_t lolen, hilen, atlen;
    bool bounded;                        /* hi applies */
    enum { MC_UNSET, MC_AT, MC_END } state;
    /* A following cursor (tail > 0): its entries name prefix + their
     * last tail bytes. */
    uint8_t prefix[DIFF_KEY_MAX];
    size_t prefix_len, tail;
} mcursor;

static kivis_slice mc_lo(const mcursor *c)
{
    return c->lolen ? kivis_slice_make(c->lo, c->lolen) : NONE;
}

static kivis_slice mc_hi(const mcursor *c)
{
    return c->bounded ? kivis_slice_make(c->hi, c->hilen) : NONE;
}

static bool mc_below_hi(const model *m, const mcursor *c, long i)
{
    return i >= 0 && (size_t)i < m->n &&
           (!c->bounded || key_cmp(mkey(m, (size_t)i), mc_hi(c)) < 0);
}

static bool mc_from_lo(const model *m, const mcursor *c, long i)
{
    return i >= 0 && (size_t)i < m->n &&
           key_cmp(mkey(m, (size_t)i), mc_lo(c)) >= 0;
}

static long mc_first(const model *m, const mcursor *c)
{
    long i = (long)model_bound(m, mc_lo(c), false);
    return mc_below_hi(m, c, i) ? i : -1;
}

static long mc_last(const model *m, const mcursor *c)
{
    size_t end = c->bounded ? model_bound(m, mc_hi(c), false) : m->n;
    long i = (long)end - 1;
    return mc_from_lo(m, c, i) ? i : -1;
}

/* The entry `op` must land on: its model index, or -1 for NOTFOUND. */
static long mc_expect(const model *m, const mcursor *c, int op,
                      kivis_slice seek)
{
    kivis_slice at = kivis_slice_make(c->at, c->atlen);
    long i, last;
    if ((op == KIVIS_NEXT || op == KIVIS_PREV) && c->state == MC_END)
        return -1;
    if (op == KIVIS_NEXT && c->state == MC_UNSET)
        op = KIVIS_FIRST;
    if (op == KIVIS_PREV && c->state == MC_UNSET)
        op = KIVIS_LAST;
    switch (op) {
    case KIVIS_FIRST:
        return mc_first(m, c);
    case KIVIS_LAST:
        return mc_last(m, c);
    case KIVIS_NEXT:
        i = (long)model_bound(m, at, true);
        return mc_below_hi(m, c, i) ? i : -1;
    case KIVIS_PREV:
        i = (long)model_bound(m, at, false) - 1;
        return mc_from_lo(m, c, i) ? i : -1;
    case KIVIS_SEEK_GE:
        if (key_cmp(seek, mc_lo(c)) < 0)
            seek = mc_lo(c);
        i = (long)model_bound(m, seek, false);
        return mc_below_hi(m, c, i) ? i : -1;
    default: /* KIVIS_SEEK_LE */
        i = (long)model_bound(m, seek, true) - 1;
        last = mc_last(m, c);
        if (i > last)
            i = last;
        return mc_from_lo(m, c, i) ? i : -1;
    }
}

typedef struct diff {
    fixture *fx;
    uint64_t seed, rng;
    int txn_no, op_no;
    model base, work; /* committed; as the open transaction sees it */
    mcursor curs[DIFF_CURSORS];
    int ncur;
} diff;

static void diff_fail(const diff *d, const char *what, int rc, kivis_slice k,
                      kivis_slice v, const model *m, long want)
{
    print_error("differential test failed: seed=0x%" PRIx64
                " (rerun with KIVIS_TEST_SEED=0x%" PRIx64 ") txn %d op %d\n"
                "  %s: expected %s key=%s value=%s, got %s key=%s value=%s\n",
                d->seed, d->seed, d->txn_no, d->op_no, what,
                want < 0 ? "KIVIS_NOTFOUND" : "KIVIS_OK",
                want < 0 ? "-" : hex(mkey(m, (size_t)want)),
                want < 0 ? "-" : hex(mval(m, (size_t)want)),
                kivis_errname(rc), rc ? "-" : hex(k), rc ? "-" : hex(v));
    fail();
}

static void diff_check_rc(const diff *d, const char *what, int rc, int want)
{
    if (rc == want)
        return;
    print_error("differential test failed: seed=0x%" PRIx64 " txn %d op %d\n"
                "  %s: expected %s, got %s\n",
                d->seed, d->txn_no, d->op_no, what, kivis_errname(want),
                kivis_errname(rc));
    fail();
}

static size_t rnd(diff *d, size_t n)
{
    return (size_t)(kt_rand(&d->rng) % n);
}

/* A key of 1..DIFF_KEY_MAX bytes from four letters: about 340 keys in all,
 * so collisions, prefixes, NULs and 0xff are common. */
static size_t random_key(diff *d, uint8_t *buf)
{
    static const uint8_t alphabet[] = {0x00, 0x01, 'a', 0xff};
    size_t len = 1 + rnd(d, DIFF_KEY_MAX);
    for (size_t i = 0; i < len; i++)
        buf[i] = alphabet[rnd(d, sizeof alphabet)];
    return len;
}

static kivis_slice random_value(diff *d, uint8_t *buf, size_t cap)
{
    size_t r = rnd(d, 16), len = r == 0 ? 0 : r == 1 ? rnd(d, cap) : rnd(d, 24);
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)kt_rand(&d->rng);
    return kivis_slice_make(buf, len);
}

/* Get k in t: the answer m gives. */
static void diff_check_get(diff *d, kivis_storage_txn *t, kivis_slice k,
                           const model *m, const char *what)
{
    kivis_slice v = S("garbage");
    long want = model_find(m, k);
    int rc = kivis_txn_get(t, k, &v);
    if (want < 0 ? rc != KIVIS_NOTFOUND || v.data || v.len
                 : rc != KIVIS_OK || !slice_eq(v, mval(m, (size_t)want)))
        diff_fail(d, what, rc, k, v, m, want);
}

/* Half the time after a following cursor's step to k: the get of the key
 * k names, which the backend may answer from what the step read. */
static void diff_get_followed(diff *d, kivis_storage_txn *t, const mcursor *c,
                              kivis_slice k, const model *m)
{
    if (!c->tail || k.len < c->tail || rnd(d, 2))
        return;
    uint8_t fk[2 * DIFF_KEY_MAX];
    memcpy(fk, c->prefix, c->prefix_len);
    memcpy(fk + c->prefix_len, (const uint8_t *)k.data + k.len - c->tail, c->tail);
    diff_check_get(d, t, kivis_slice_make(fk, c->prefix_len + c->tail), m,
                   "get of a followed key");
}

static void diff_cursor_step(diff *d, kivis_storage_txn *t, mcursor *c,
                             const model *m)
{
    uint8_t sk[DIFF_KEY_MAX];
    int op = (int)rnd(d, 6);
    kivis_slice seek = kivis_slice_make(sk, random_key(d, sk));
    kivis_slice k = seek, v = NONE;
    long want = mc_expect(m, c, op, seek);
    int rc = kivis_cursor_get(c->cur, op, &k, &v);
    char what[120];
    snprintf(what, sizeof what, "cursor [%s, %s) %s %s", hex(mc_lo(c)),
             c->bounded ? hex(mc_hi(c)) : "end", op_names[op],
             op >= KIVIS_SEEK_GE ? hex(seek) : "");
    if (want < 0 ? rc != KIVIS_NOTFOUND
                 : rc != KIVIS_OK || !slice_eq(k, mkey(m, (size_t)want)) ||
                       !slice_eq(v, mval(m, (size_t)want)))
        diff_fail(d, what, rc, k, v, m, want);
    c->state = want < 0 ? MC_END : MC_AT;
    if (want >= 0) {
        memcpy(c->at, k.data, k.len);
        c->atlen = k.len;
        diff_get_followed(d, t, c, k, m);
    }
}

static void diff_cursor_open(diff *d, kivis_storage_txn *t, mcursor *c)
{
    memset(c, 0, sizeof *c);
    if (rnd(d, 2))
        c->lolen = random_key(d, c->lo);
    c->bounded = rnd(d, 2);
    if (c->bounded)
        c->hilen = random_key(d, c->hi);
    if (rnd(d, 2)) { /* following: a prefix of 0..2 bytes, tail 1..rest */
        uint8_t key[DIFF_KEY_MAX];
        c->prefix_len = random_key(d, key) % 3;
        memcpy(c->prefix, key, c->prefix_len);
        c->tail = 1 + rnd(d, DIFF_KEY_MAX - c->prefix_len);
    }
    c->cur = NULL;
    int rc = kivis_txn_cursor_follow(t, mc_lo(c), mc_hi(c),
                                     kivis_slice_make(c->prefix, c->prefix_len),
                                     c->tail, &c->cur);
    diff_check_rc(d, "cursor open", rc, KIVIS_OK);
}

/* Walk the whole store in t forward, or backward, against m. */
static void diff_compare_all(diff *d, kivis_storage_txn *t, const model *m,
                             bool backward)
{
    kivis_storage_cursor *c = cursor_all(t);
    int op = backward ? KIVIS_PREV : KIVIS_NEXT;
    for (size_t i = 0; i <= m->n; i++) {
        long want = i == m->n ? -1 : backward ? (long)(m->n - 1 - i) : (long)i;
        kivis_slice k = NONE, v = NONE;
        int rc = kivis_cursor_get(c, op, &k, &v);
        if (want < 0 ? rc != KIVIS_NOTFOUND
                     : rc != KIVIS_OK || !slice_eq(k, mkey(m, (size_t)want)) ||
                           !slice_eq(v, mval(m, (size_t)want)))
            diff_fail(d, backward ? "full walk backward" : "full walk forward",
                      rc, k, v, m, want);
    }
    kivis_cursor_close(c);
}

static void diff_put(diff *d, kivis_storage_txn *t)
{
    uint8_t kb[DIFF_KEY_MAX], vb[600];
    kivis_slice k = kivis_slice_make(kb, random_key(d, kb));
    kivis_slice v = random_value(d, vb, sizeof vb);
    diff_check_rc(d, "put", kivis_txn_put(t, k, v), KIVIS_OK);
    model_put(&d->work, k, v);
}

static void diff_del(diff *d, kivis_storage_txn *t)
{
    uint8_t kb[DIFF_KEY_MAX];
    kivis_slice k = kivis_slice_make(kb, random_key(d, kb));
    int want = model_del(&d->work, k) ? KIVIS_OK : KIVIS_NOTFOUND;
    diff_check_rc(d, "del", kivis_txn_del(t, k), want);
}

static void diff_get(diff *d, kivis_storage_txn *t)
{
    uint8_t kb[DIFF_KEY_MAX];
    diff_check_get(d, t, kivis_slice_make(kb, random_key(d, kb)), &d->work, "get");
}

static void diff_toggle_cursor(diff *d, kivis_storage_txn *t)
{
    if (d->ncur < DIFF_CURSORS) {
        diff_cursor_open(d, t, &d->curs[d->ncur++]);
        return;
    }
    size_t i = rnd(d, (size_t)d->ncur);
    kivis_cursor_close(d->curs[i].cur);
    d->curs[i] = d->curs[--d->ncur];
}

static void diff_random_op(diff *d, kivis_storage_txn *t, bool rw)
{
    size_t r = rnd(d, 100);
    if (r < 35 && rw)
        diff_put(d, t);
    else if (r < 55 && rw)
        diff_del(d, t);
    else if (r < 75)
        diff_get(d, t);
    else if (r < 95 && d->ncur > 0)
        diff_cursor_step(d, t, &d->curs[rnd(d, (size_t)d->ncur)], &d->work);
    else
        diff_toggle_cursor(d, t);
    if (d->op_no % 16 == 15)
        diff_compare_all(d, t, &d->work, rnd(d, 2));
}

static void diff_close_cursors(diff *d)
{
    while (d->ncur > 0)
        kivis_cursor_close(d->curs[--d->ncur].cur);
}

/* After a transaction: the whole store, then random walks, in a reader. */
static void diff_verify_store(diff *d)
{
    kivis_storage_txn *t = begin(d->fx->st, KIVIS_TXN_RDONLY);
    diff_compare_all(d, t, &d->base, false);
    diff_compare_all(d, t, &d->base, true);
    for (int w = 0; w < 3; w++) {
        mcursor c;
        diff_cursor_open(d, t, &c);
        for (int s = 0; s < 12; s++)
            diff_cursor_step(d, t, &c, &d->base);
        kivis_cursor_close(c.cur);
    }
    kivis_txn_abort(t);
}

static void diff_run_txn(diff *d)
{
    bool rw = rnd(d, 8) != 0;
    kivis_storage_txn *t = begin(d->fx->st, rw ? 0 : KIVIS_TXN_RDONLY);
    model_copy(&d->work, &d->base);
    size_t nops = 1 + rnd(d, DIFF_MAX_OPS);
    for (d->op_no = 0; (size_t)d->op_no < nops; d->op_no++)
        diff_random_op(d, t, rw);
    diff_close_cursors(d);
    d->op_no = -1; /* the end of the transaction */
    if (rnd(d, 4) != 0) {
        diff_check_rc(d, "commit", kivis_txn_commit(t, KIVIS_NOSYNC), KIVIS_OK);
        model t_model = d->base;
        d->base = d->work;
        d->work = t_model;
    } else {
        kivis_txn_abort(t);
    }
    model_free(&d->work);
    diff_verify_store(d);
}

static uint64_t diff_seed(void)
{
    const char *env = getenv("KIVIS_TEST_SEED");
    return env ? strtoull(env, NULL, 0) : DIFF_SEED;
}

static void test_differential_random(void **state)
{
    diff d;
    memset(&d, 0, sizeof d);
    d.fx = *state;
    d.seed = d.rng = diff_seed();
    print_message("  differential seed 0x%" PRIx64 "\n", d.seed);
    for (d.txn_no = 0; d.txn_no < DIFF_TXNS; d.txn_no++)
        diff_run_txn(&d);
    model_free(&d.base);
}

/* ---- the suite ---------------------------------------------------------- */

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

static const struct CMUnitTest tests[] = {
    T(test_methods_and_handles),
    T(test_empty_store),
    T(test_order_fixed_binary_keys),
    T(test_order_random_binary_keys),
    T(test_empty_value),
    T(test_huge_value),
    T(test_overwrite),
    T(test_empty_key_is_einval),
    T(test_max_key_size),
    T(test_missing_keys),
    T(test_range_bounds),
    T(test_cursor_first_last),
    T(test_cursor_unpositioned),
    T(test_cursor_seek),
    T(test_cursor_seek_then_step),
    T(test_cursor_seek_then_page),
    T(test_page_views_across_commit),
    T(test_cursor_notfound_sticky),
    T(test_cursor_reverse_and_zigzag),
    T(test_cursor_sees_writes_ahead),
    T(test_cursor_sees_writes_behind),
    T(test_cursor_current_deleted_or_rewritten),
    T(test_cursor_end_stays_after_writes),
    T(test_cursor_opened_before_writes),
    T(test_read_your_writes),
    T(test_discard_and_prefetch),
    T(test_abort_discards_everything),
    T(test_commit_many_writes_atomically),
    T(test_commit_without_writes),
    T(test_rdonly_rejects_writes),
    T(test_reopen_keeps_commits),
    T(test_borrowed_results_live_until_next_write),
    T(test_differential_random),
};

static int run_suite(const backend *b)
{
    char name[64];
    snprintf(name, sizeof name, "conformance/%s", b->name);
    g_backend = b;
    return cmocka_run_group_tests_name(name, tests, NULL, NULL);
}

int main(int argc, char **argv)
{
    size_t nb = sizeof backends / sizeof backends[0];
    int failed = 0, ran = 0;
    if (argc > 2) {
        fprintf(stderr, "usage: %s [backend]\n", argv[0]);
        return 2;
    }
    for (size_t i = 0; i < nb; i++) {
        if (argc == 2 && strcmp(argv[1], backends[i].name) != 0)
            continue;
        ran++;
        failed += run_suite(&backends[i]);
    }
    if (!ran) {
        fprintf(stderr, "%s: unknown backend '%s'; known:", argv[0], argv[1]);
        for (size_t i = 0; i < nb; i++)
            fprintf(stderr, " %s", backends[i].name);
        fprintf(stderr, "\n");
        return 2;
    }
    return failed ? 1 : 0;
}
