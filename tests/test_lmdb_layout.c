/*
 * The LMDB backend's layout 2 (docs/storage.md, "LMDB layout"): a
 * database per key space and a default one.  Cursors over keys of every
 * kind (in key spaces, short, with ids past the ones that get a database)
 * agree with the memory backend step for step; an auto-increment load
 * appends, so its records' pages fill; a write transaction that created a
 * key space's database and aborted, or replayed after map growth, leaves
 * nothing behind; processes create key spaces under each other; a store
 * 091b1d6 wrote (every key in LMDB's unnamed database) opens, reads and
 * writes as it is, and kivis_lmdb_backup turns it into layout 2.
 */
#include "testutil.h"

#include <kivis/lmdb.h>
#include <kivis/memory.h>

#include <lmdb.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- helpers ------------------------------------------------------------ */

static kivis_storage *open_store(const char *dir, size_t map)
{
    kivis_lmdb_options o = {NULL, map, 0, 0};
    kivis_storage *st;
    assert_int_equal(kivis_lmdb_open(dir, &o, &st), KIVIS_OK);
    return st;
}

static kivis_slice sl(const void *p, size_t n)
{
    return kivis_slice_make(p, n);
}

/* A key of key space (table, slot), both one-byte ids, then a big-endian
 * u64: the shape of a record's key. */
static size_t space_key(unsigned char *buf, int table, int slot, uint64_t id)
{
    buf[0] = (unsigned char)table;
    buf[1] = (unsigned char)slot;
    for (int i = 0; i < 8; i++)
        buf[2 + i] = (unsigned char)(id >> (56 - 8 * i));
    return 10;
}

static void put1(kivis_storage_txn *t, kivis_slice k, const char *v)
{
    assert_int_equal(kivis_txn_put(t, k, sl(v, strlen(v))), KIVIS_OK);
}

/* The named databases of the environment at dir, read with LMDB itself:
 * whether `name` is one, and the stat of it. */
static int raw_stat(const char *dir, const char *name, MDB_stat *out)
{
    MDB_env *env;
    MDB_txn *t;
    MDB_dbi dbi;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 8), 0);
    assert_int_equal(mdb_env_open(env, dir, MDB_RDONLY, 0644), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &t), 0);
    int rc = mdb_dbi_open(t, name, 0, &dbi);
    if (rc == 0)
        rc = mdb_stat(t, dbi, out);
    mdb_txn_abort(t);
    mdb_env_close(env);
    return rc;
}

/* ---- cursors across databases agree with the memory backend ------------- */

/* Bytes that sit on the edges of the key-space split: table ids 0..127 are
 * one byte (0x80 and up start a two-byte id), slots below 8 get a
 * database. */
static const unsigned char first_bytes[] = {0x00, 0x01, 0x05, 0x7f, 0x80, 0xff};
static const unsigned char second_bytes[] = {0x00, 0x01, 0x07, 0x08, 0x10, 0x7f, 0x80, 0xff};
static const unsigned char tail_bytes[] = {0x00, 0x01, 0x7f, 0xff};

static size_t random_key(uint64_t *rng, unsigned char *buf, size_t min_len)
{
    size_t len = min_len + kt_rand(rng) % (5 - min_len);
    for (size_t i = 0; i < len; i++) {
        if (i == 0)
            buf[i] = first_bytes[kt_rand(rng) % sizeof first_bytes];
        else if (i == 1)
            buf[i] = second_bytes[kt_rand(rng) % sizeof second_bytes];
        else
            buf[i] = tail_bytes[kt_rand(rng) % sizeof tail_bytes];
    }
    return len;
}

typedef struct pair {
    kivis_storage_txn *t[2]; /* LMDB, memory */
    kivis_storage_cursor *c[2];
} pair;

static void same_result(int rc0, kivis_slice k0, kivis_slice v0, int rc1,
                        kivis_slice k1, kivis_slice v1)
{
    assert_int_equal(rc0, rc1);
    if (rc0 != KIVIS_OK)
        return;
    assert_int_equal(k0.len, k1.len);
    assert_memory_equal(k0.data, k1.data, k0.len);
    assert_int_equal(v0.len, v1.len);
    if (v0.len)
        assert_memory_equal(v0.data, v1.data, v0.len);
}

static void open_cursors(pair *p, uint64_t *rng)
{
    unsigned char lo[8], hi[8];
    size_t lo_len = kt_rand(rng) % 3 ? 0 : random_key(rng, lo, 1);
    unsigned r = (unsigned)(kt_rand(rng) % 4);
    kivis_slice h = r == 0 ? sl(hi, random_key(rng, hi, 1))
                  : r == 1 ? sl(hi, 0) /* an empty range */
                           : sl(NULL, 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(kivis_txn_cursor(p->t[i], sl(lo_len ? lo : NULL, lo_len), h,
                                          &p->c[i]),
                         KIVIS_OK);
}

static void close_cursors(pair *p)
{
    for (int i = 0; i < 2; i++) {
        kivis_cursor_close(p->c[i]);
        p->c[i] = NULL;
    }
}

/* One random cursor op on both, the same answer from both. */
static void cursor_op(pair *p, uint64_t *rng)
{
    static const int ops[] = {KIVIS_FIRST, KIVIS_LAST, KIVIS_NEXT, KIVIS_NEXT,
                              KIVIS_NEXT, KIVIS_PREV, KIVIS_PREV, KIVIS_SEEK_GE,
                              KIVIS_SEEK_LE};
    int op = ops[kt_rand(rng) % (sizeof ops / sizeof ops[0])];
    unsigned char target[8];
    size_t tlen = random_key(rng, target, 0);
    kivis_slice k[2], v[2];
    int rc[2];
    for (int i = 0; i < 2; i++) {
        k[i] = sl(target, tlen);
        rc[i] = kivis_cursor_get(p->c[i], op, &k[i], &v[i]);
    }
    same_result(rc[0], k[0], v[0], rc[1], k[1], v[1]);
}

/* A random put or delete on both. */
static void write_op(pair *p, uint64_t *rng)
{
    unsigned char key[8], val[4];
    size_t klen = random_key(rng, key, 1);
    uint64_t x = kt_rand(rng);
    memcpy(val, &x, sizeof val);
    int rc[2];
    for (int i = 0; i < 2; i++)
        rc[i] = x % 4 == 0 ? kivis_txn_del(p->t[i], sl(key, klen))
                           : kivis_txn_put(p->t[i], sl(key, klen), sl(val, x % 5));
    assert_int_equal(rc[0], rc[1]);
}

static void cursor_rounds(pair *p, uint64_t *rng, int rounds, bool writes)
{
    for (int r = 0; r < rounds; r++) {
        open_cursors(p, rng);
        for (int i = 0; i < 40; i++) {
            if (writes && kt_rand(rng) % 4 == 0)
                write_op(p, rng);
            cursor_op(p, rng);
        }
        close_cursors(p);
    }
}

static void test_cursors_merge_databases_in_key_order(void **state)
{
    (void)state;
    char dir[256];
    kt_tempdir(dir, sizeof dir);
    kivis_storage *st[2] = {open_store(dir, 0), NULL};
    assert_int_equal(kivis_memory_open(NULL, &st[1]), KIVIS_OK);
    uint64_t rng = 0x5eed1a70u;
    for (int round = 0; round < 6; round++) {
        pair p;
        memset(&p, 0, sizeof p);
        for (int i = 0; i < 2; i++)
            assert_int_equal(kivis_storage_begin(st[i], 0, &p.t[i]), KIVIS_OK);
        for (int i = 0; i < 60; i++)
            write_op(&p, &rng);
        cursor_rounds(&p, &rng, 20, true);
        for (int i = 0; i < 2; i++)
            assert_int_equal(kivis_txn_commit(p.t[i], KIVIS_NOSYNC), KIVIS_OK);
        for (int i = 0; i < 2; i++)
            assert_int_equal(kivis_storage_begin(st[i], KIVIS_TXN_RDONLY, &p.t[i]),
                             KIVIS_OK);
        cursor_rounds(&p, &rng, 20, false);
        for (int i = 0; i < 2; i++)
            kivis_txn_abort(p.t[i]);
    }
    char *d[2] = {kt_dump(st[0]), kt_dump(st[1])};
    assert_string_equal(d[0], d[1]);
    free(d[0]);
    free(d[1]);
    kivis_storage_close(st[0]);
    kivis_storage_close(st[1]);
    /* The keys in key spaces went to databases of their own. */
    MDB_stat ms;
    assert_int_equal(raw_stat(dir, "kivis2:0100", &ms), 0);
    assert_true(ms.ms_entries > 0);
    kt_rmdir(dir);
}

/* ---- an auto-increment load appends -------------------------------------- */

enum { LOAD_N = 10000, LOAD_TXN = 100, VALUE_LEN = 100 };

/* What the record engine writes for an auto-increment put: the record in
 * key space (1, 0), an index entry in (1, 2) in another order, the counter
 * in (1, 1). */
static void load(kivis_storage *st)
{
    unsigned char key[32], val[VALUE_LEN];
    uint64_t rng = 42;
    for (uint64_t i = 1; i <= LOAD_N; i += LOAD_TXN) {
        kivis_storage_txn *t;
        assert_int_equal(kivis_storage_begin(st, 0, &t), KIVIS_OK);
        for (uint64_t id = i; id < i + LOAD_TXN; id++) {
            memset(val, (int)(id % 251), sizeof val);
            assert_int_equal(kivis_txn_put(t, sl(key, space_key(key, 1, 0, id)),
                                           sl(val, sizeof val)),
                             KIVIS_OK);
            size_t n = space_key(key, 1, 2, kt_rand(&rng));
            n += space_key(key + n - 2, 1, 2, id) - 2; /* name, then the id */
            assert_int_equal(kivis_txn_put(t, sl(key, n), sl("", 0)), KIVIS_OK);
            assert_int_equal(kivis_txn_put(t, sl("\x01\x01seq", 5), sl(&id, sizeof id)),
                             KIVIS_OK);
        }
        assert_int_equal(kivis_txn_commit(t, KIVIS_NOSYNC), KIVIS_OK);
    }
}

static void test_auto_increment_load_fills_record_pages(void **state)
{
    (void)state;
    char dir[256];
    kt_tempdir(dir, sizeof dir);
    kivis_storage *st = open_store(dir, 0);
    load(st);
    kivis_storage_close(st);
    MDB_stat ms;
    assert_int_equal(raw_stat(dir, "kivis2:0100", &ms), 0);
    assert_int_equal(ms.ms_entries, LOAD_N);
    /* A leaf node: an 8-byte header, the key, the value, a 2-byte slot;
     * a page holds what fits after its 16-byte header.  Appends leave each
     * page but the last full; splits in the middle would leave them about
     * half full. */
    size_t node = 8 + 10 + VALUE_LEN + 2, per_page = (ms.ms_psize - 16) / node;
    size_t full = (LOAD_N + per_page - 1) / per_page;
    printf("records: %zu leaf pages, %zu if full\n", (size_t)ms.ms_leaf_pages, full);
    assert_true(ms.ms_leaf_pages <= full + 1);
    kt_rmdir(dir);
}

/* ---- databases a write transaction created -------------------------------- */

static int get_in(kivis_storage *st, kivis_slice k)
{
    char buf[4096];
    return kt_get_once(st, k, buf, sizeof buf);
}

static void test_aborted_creation_leaves_nothing(void **state)
{
    (void)state;
    char dir[256];
    kt_tempdir(dir, sizeof dir);
    kivis_storage *st = open_store(dir, 0);
    unsigned char a[10], b[10];
    kivis_slice ka = sl(a, space_key(a, 3, 0, 1)), kb = sl(b, space_key(b, 3, 1, 1));
    kivis_storage_txn *t;
    assert_int_equal(kivis_storage_begin(st, 0, &t), KIVIS_OK);
    put1(t, ka, "a");
    kivis_storage_cursor *c;
    kivis_slice k, v;
    assert_int_equal(kivis_txn_cursor(t, sl(NULL, 0), sl(NULL, 0), &c), KIVIS_OK);
    assert_int_equal(kivis_cursor_get(c, KIVIS_FIRST, &k, &v), KIVIS_OK);
    assert_int_equal(k.len, ka.len);
    kivis_cursor_close(c);
    kivis_txn_abort(t);

    assert_int_equal(get_in(st, ka), KIVIS_NOTFOUND);
    assert_int_equal(kt_count(st), 0);
    /* Again, committed this time, beside a second key space. */
    assert_int_equal(kivis_storage_begin(st, 0, &t), KIVIS_OK);
    put1(t, kb, "b");
    put1(t, ka, "a");
    assert_int_equal(kivis_txn_commit(t, KIVIS_SYNC), KIVIS_OK);
    assert_int_equal(get_in(st, ka), KIVIS_OK);
    assert_int_equal(get_in(st, kb), KIVIS_OK);
    kivis_storage_close(st);
    st = open_store(dir, 0);
    assert_int_equal(kt_count(st), 2);
    kivis_storage_close(st);
    MDB_stat ms;
    assert_int_equal(raw_stat(dir, "kivis2:0300", &ms), 0);
    assert_int_equal(ms.ms_entries, 1);
    kt_rmdir(dir);
}

/* Map growth replays a transaction whose creations the abort undid. */
static void test_growth_replays_created_key_spaces(void **state)
{
    (void)state;
    char dir[256];
    kt_tempdir(dir, sizeof dir);
    kivis_storage *st = open_store(dir, 64 << 10);
    size_t map = kivis_lmdb_map_size(st);
    kivis_storage_txn *t;
    assert_int_equal(kivis_storage_begin(st, 0, &t), KIVIS_OK);
    static char val[2000];
    memset(val, 'v', sizeof val);
    unsigned char key[10];
    for (int table = 0; table < 100; table++)
        for (int slot = 0; slot < 3; slot++)
            assert_int_equal(kivis_txn_put(t, sl(key, space_key(key, table, slot, 7)),
                                           sl(val, sizeof val)),
                             KIVIS_OK);
    assert_int_equal(kivis_txn_commit(t, KIVIS_SYNC), KIVIS_OK);
    assert_true(kivis_lmdb_map_size(st) > map);
    kivis_storage_close(st);
    st = open_store(dir, 0);
    assert_int_equal(kt_count(st), 300);
    assert_int_equal(get_in(st, sl(key, space_key(key, 99, 2, 7))), KIVIS_OK);
    kivis_storage_close(st);
    MDB_stat ms;
    assert_int_equal(raw_stat(dir, "kivis2:6302", &ms), 0);
    assert_int_equal(ms.ms_entries, 1);
    kt_rmdir(dir);
}

/* ---- processes ------------------------------------------------------------ */

/* In a child: once a byte comes through gate (-1: at once), create key
 * spaces (table, slot) for table in [from, to), one transaction each,
 * and exit 0 when every write went in. */
static void child_creates(const char *dir, int from, int to, int slot, int gate)
{
    kivis_storage *st;
    char go;
    if (gate >= 0 && read(gate, &go, 1) != 1)
        _exit(4);
    if (kivis_lmdb_open(dir, NULL, &st) != KIVIS_OK)
        _exit(1);
    for (int table = from; table < to; table++) {
        kivis_storage_txn *t;
        unsigned char key[10];
        if (kivis_storage_begin(st, 0, &t) ||
            kivis_txn_put(t, sl(key, space_key(key, table, slot, 1)), sl("c", 1)) ||
            kivis_txn_put(t, sl("zz", 2), sl("c", 1)) ||
            kivis_txn_commit(t, KIVIS_SYNC))
            _exit(2);
    }
    kivis_storage_close(st);
    _exit(0);
}

static void wait_ok(pid_t pid)
{
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* Fork a child running child_creates; before this process opens the
 * store, as LMDB wants an environment opened after fork. */
static pid_t spawn_creator(const char *dir, int from, int to, int slot, int gate)
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        child_creates(dir, from, to, slot, gate);
    return pid;
}

static void test_processes_create_key_spaces(void **state)
{
    (void)state;
    char dir[256];
    kt_tempdir(dir, sizeof dir);
    /* Two processes create key spaces at once, interleaved in key order,
     * once the gate opens. */
    int gate[2];
    assert_int_equal(pipe(gate), 0);
    pid_t a = spawn_creator(dir, 10, 40, 0, gate[0]);
    pid_t b = spawn_creator(dir, 10, 40, 3, gate[0]);
    kivis_storage *st = open_store(dir, 0);
    unsigned char key[10];
    kivis_storage_txn *t, *old;
    assert_int_equal(kivis_storage_begin(st, 0, &t), KIVIS_OK);
    put1(t, sl(key, space_key(key, 1, 0, 1)), "p");
    assert_int_equal(kivis_txn_commit(t, KIVIS_SYNC), KIVIS_OK);
    /* A reader from before the other processes wrote. */
    assert_int_equal(kivis_storage_begin(st, KIVIS_TXN_RDONLY, &old), KIVIS_OK);
    assert_int_equal(write(gate[1], "gg", 2), 2);
    close(gate[0]);
    close(gate[1]);
    /* Meanwhile this process reads, and writes a key space of its own. */
    for (int i = 0; i < 30; i++) {
        assert_true(kt_count(st) >= 1);
        assert_int_equal(kivis_storage_begin(st, 0, &t), KIVIS_OK);
        put1(t, sl(key, space_key(key, 50 + i, 1, 1)), "p");
        assert_int_equal(kivis_txn_commit(t, KIVIS_NOSYNC), KIVIS_OK);
    }
    wait_ok(a);
    wait_ok(b);

    kivis_slice v;
    assert_int_equal(kivis_txn_get(old, sl(key, space_key(key, 10, 0, 1)), &v),
                     KIVIS_NOTFOUND);
    kivis_txn_abort(old);
    assert_int_equal(kt_count(st), 1 + 30 + 60 + 1);
    /* Write into a key space another process created, and a new one. */
    assert_int_equal(kivis_storage_begin(st, 0, &t), KIVIS_OK);
    put1(t, sl(key, space_key(key, 20, 3, 2)), "p");
    put1(t, sl(key, space_key(key, 90, 0, 1)), "p");
    assert_int_equal(kivis_txn_commit(t, KIVIS_SYNC), KIVIS_OK);
    char *mine = kt_dump(st);
    kivis_storage_close(st);

    /* Another process sees what this one sees, in the same order. */
    fflush(NULL);
    pid_t c = fork();
    if (c == 0) {
        kivis_storage *other;
        if (kivis_lmdb_open(dir, NULL, &other) != KIVIS_OK)
            _exit(1);
        char *theirs = kt_dump(other);
        int same = strcmp(mine, theirs) == 0;
        free(theirs);
        free(mine);
        kivis_storage_close(other);
        _exit(same ? 0 : 3);
    }
    wait_ok(c);
    free(mine);
    MDB_stat ms;
    assert_int_equal(raw_stat(dir, "kivis2:1403", &ms), 0);
    assert_int_equal(ms.ms_entries, 2);
    kt_rmdir(dir);
}

/* Readers in threads while this process's writer and another process
 * create key spaces: every scan is in order, never shrinks, and sees
 * each writer's commits whole (the keys of one commit, in two key
 * spaces, both or neither). */
typedef struct scanner {
    kivis_storage *st;
    atomic_bool *stop;
    long scans;
} scanner;

static int key_cmp(kivis_slice a, kivis_slice b)
{
    int c = memcmp(a.data, b.data, a.len < b.len ? a.len : b.len);
    return c ? c : (a.len > b.len) - (a.len < b.len);
}

static void *scan_loop(void *arg)
{
    scanner *sc = arg;
    size_t last = 0;
    while (!atomic_load(sc->stop)) {
        kivis_storage_txn *t;
        kivis_storage_cursor *c;
        kivis_slice k, v, prev = sl(NULL, 0);
        unsigned char prev_buf[16];
        size_t n = 0, slot[8] = {0};
        assert_int_equal(kivis_storage_begin(sc->st, KIVIS_TXN_RDONLY, &t), KIVIS_OK);
        assert_int_equal(kivis_txn_cursor(t, sl(NULL, 0), sl(NULL, 0), &c), KIVIS_OK);
        while (kivis_cursor_get(c, KIVIS_NEXT, &k, &v) == KIVIS_OK) {
            const unsigned char *p = k.data;
            if (n++)
                assert_true(key_cmp(prev, k) < 0);
            assert_true(k.len <= sizeof prev_buf);
            memcpy(prev_buf, k.data, k.len);
            prev = sl(prev_buf, k.len);
            if (k.len == 10 && p[1] < 8)
                slot[p[1]]++;
        }
        kivis_cursor_close(c);
        kivis_txn_abort(t);
        assert_true(n >= last);
        assert_int_equal(slot[3], slot[4]); /* this process's commits, whole */
        last = n;
        sc->scans++;
    }
    return NULL;
}

static void test_readers_in_threads_beside_creations(void **state)
{
    (void)state;
    char dir[256];
    kt_tempdir(dir, sizeof dir);
    pid_t child = spawn_creator(dir, 60, 100, 2, -1);
    kivis_storage *st = open_store(dir, 0);
    atomic_bool stop = false;
    scanner sc[2] = {{st, &stop, 0}, {st, &stop, 0}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, scan_loop, &sc[i]), 0);
    unsigned char key[10];
    for (int table = 0; table < 50; table++) {
        kivis_storage_txn *t;
        assert_int_equal(kivis_storage_begin(st, 0, &t), KIVIS_OK);
        put1(t, sl(key, space_key(key, table, 3, 1)), "w");
        put1(t, sl(key, space_key(key, table, 4, 1)), "w");
        assert_int_equal(kivis_txn_commit(t, KIVIS_NOSYNC), KIVIS_OK);
    }
    wait_ok(child);
    atomic_store(&stop, true);
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    assert_true(sc[0].scans > 0 && sc[1].scans > 0);
    assert_int_equal(kt_count(st), 100 + 40 + 1);
    kivis_storage_close(st);
    MDB_stat ms;
    assert_int_equal(raw_stat(dir, "kivis2:3104", &ms), 0);
    kt_rmdir(dir);
}

/* ---- a store 091b1d6 wrote ------------------------------------------------ */

/* Write a layout 1 store with LMDB itself: every key in the unnamed
 * database, as 091b1d6 and earlier wrote them. */
static void write_layout1(const char *dir, const kivis_slice *keys, size_t n)
{
    MDB_env *env;
    MDB_txn *t;
    MDB_dbi dbi;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_open(env, dir, 0, 0644), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &t), 0);
    assert_int_equal(mdb_dbi_open(t, NULL, 0, &dbi), 0);
    for (size_t i = 0; i < n; i++) {
        MDB_val k = {keys[i].len, (void *)keys[i].data}, v = {1, "o"};
        assert_int_equal(mdb_put(t, dbi, &k, &v, 0), 0);
    }
    assert_int_equal(mdb_txn_commit(t), 0);
    mdb_env_close(env);
}

static void test_layout1_store_opens_and_converts(void **state)
{
    (void)state;
    char dir[256], copy[300];
    kt_tempdir(dir, sizeof dir);
    unsigned char r[10], m[10];
    const kivis_slice keys[] = {sl(r, space_key(r, 1, 0, 5)), sl(m, space_key(m, 1, 2, 9)),
                                sl("\x01", 1), sl("zz", 2), sl("\x81\x00\x02", 3)};
    size_t n = sizeof keys / sizeof keys[0];
    write_layout1(dir, keys, n);

    kivis_storage *st = open_store(dir, 0);
    assert_int_equal(kivis_lmdb_layout(st), 1);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(get_in(st, keys[i]), KIVIS_OK);
    kivis_storage_txn *t;
    unsigned char k[10];
    assert_int_equal(kivis_storage_begin(st, 0, &t), KIVIS_OK);
    put1(t, sl(k, space_key(k, 1, 0, 6)), "new");
    put1(t, sl(k, space_key(k, 4, 0, 1)), "new");
    assert_int_equal(kivis_txn_del(t, keys[3]), KIVIS_OK);
    assert_int_equal(kivis_txn_commit(t, KIVIS_SYNC), KIVIS_OK);
    char *before = kt_dump(st);
    kivis_storage_close(st);
    /* Still layout 1: nothing was converted behind the caller's back. */
    MDB_stat ms;
    assert_int_equal(raw_stat(dir, "kivis2:default", &ms), MDB_NOTFOUND);

    st = open_store(dir, 0);
    char *again = kt_dump(st);
    assert_string_equal(before, again);
    snprintf(copy, sizeof copy, "%s/copy", dir);
    assert_int_equal(kivis_lmdb_backup(st, copy), KIVIS_OK);
    kivis_storage_close(st);

    assert_int_equal(raw_stat(copy, "kivis2:0100", &ms), 0);
    assert_int_equal(ms.ms_entries, 2);
    st = open_store(copy, 0);
    assert_int_equal(kivis_lmdb_layout(st), 2);
    char *converted = kt_dump(st);
    assert_string_equal(before, converted);
    kivis_storage_close(st);
    free(before);
    free(again);
    free(converted);
    kt_rmdir(copy);
    kt_rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cursors_merge_databases_in_key_order),
        cmocka_unit_test(test_auto_increment_load_fills_record_pages),
        cmocka_unit_test(test_aborted_creation_leaves_nothing),
        cmocka_unit_test(test_growth_replays_created_key_spaces),
        cmocka_unit_test(test_processes_create_key_spaces),
        cmocka_unit_test(test_readers_in_threads_beside_creations),
        cmocka_unit_test(test_layout1_store_opens_and_converts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
