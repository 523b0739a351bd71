/*
 * The LMDB backend beyond the conformance suite: map growth and its limit,
 * persistence of records, indexes and ids across reopen, schema changes on
 * reopen, durability modes, bad paths, and readers in other threads never
 * seeing half a transaction.
 */
#include "testutil.h"
#include "petsutil.h"

#include <kivis.h>
#include <kivis/inspect.h>
#include <kivis/lmdb.h>

#include <pthread.h>
#include <sched.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

typedef struct fx {
    char dir[256];
    kivis_storage *st;
} fx;

static void fx_open(fx *f, size_t map, size_t max)
{
    kivis_lmdb_options o = {NULL, map, max, 0};
    assert_int_equal(kivis_lmdb_open(f->dir, &o, &f->st), KIVIS_OK);
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    kt_tempdir(f->dir, sizeof f->dir);
    fx_open(f, 0, 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    kivis_storage_close(f->st);
    kt_rmdir(f->dir);
    free(f);
    return 0;
}

static void reopen(fx *f, size_t map, size_t max)
{
    kivis_storage_close(f->st);
    fx_open(f, map, max);
}

static int put_n(kivis_storage *st, int from, int n, size_t vlen)
{
    kivis_storage_txn *t;
    int rc = kivis_storage_begin(st, 0, &t);
    if (rc)
        return rc;
    char *val = calloc(1, vlen);
    for (int i = from; i < from + n && rc == KIVIS_OK; i++) {
        char key[32];
        snprintf(key, sizeof key, "k%08d", i);
        memset(val, 'a' + i % 26, vlen);
        rc = kivis_txn_put(t, kivis_slice_make(key, strlen(key)),
                           kivis_slice_make(val, vlen));
    }
    free(val);
    if (rc) {
        kivis_txn_abort(t);
        return rc;
    }
    return kivis_txn_commit(t, KIVIS_SYNC);
}

static void test_map_grows_transparently(void **state)
{
    fx *f = *state;
    reopen(f, 1 << 20, 0);
    assert_int_equal(kivis_lmdb_map_size(f->st), 1 << 20);
    /* 16 MiB in one transaction, then more in others. */
    assert_int_equal(put_n(f->st, 0, 4096, 4096), KIVIS_OK);
    assert_int_equal(put_n(f->st, 4096, 2048, 4096), KIVIS_OK);
    assert_true(kivis_lmdb_map_size(f->st) >= (size_t)24 << 20);
    assert_int_equal(kt_count(f->st), 6144);
    reopen(f, 1 << 20, 0); /* the file remembers its size */
    assert_int_equal(kt_count(f->st), 6144);
}

static void test_size_limit_is_efull_and_consistent(void **state)
{
    fx *f = *state;
    reopen(f, 1 << 20, 4 << 20);
    assert_int_equal(put_n(f->st, 0, 256, 4096), KIVIS_OK);
    char *before = kt_dump(f->st);
    assert_int_equal(put_n(f->st, 256, 2048, 4096), KIVIS_EFULL);
    char *after = kt_dump(f->st);
    assert_string_equal(before, after);
    free(after);
    reopen(f, 0, 4 << 20); /* still openable, still the same */
    after = kt_dump(f->st);
    assert_string_equal(before, after);
    free(after);
    free(before);
    /* Small writes still fit. */
    assert_int_equal(put_n(f->st, 9000, 4, 64), KIVIS_OK);
}

static void test_engine_efull_leaves_store_unchanged(void **state)
{
    fx *f = *state;
    reopen(f, 1 << 20, 2 << 20);
    kivis_db *db;
    assert_int_equal(kivis_open(f->st, &pets_schema, NULL, &db), KIVIS_OK);
    static uint8_t big[256 << 10];
    int rc = KIVIS_OK;
    int stored = 0;
    for (int i = 0; i < 64 && rc == KIVIS_OK; i++) {
        big[0] = (uint8_t)i;
        blob b = {{big, sizeof big}};
        char *before = kt_dump(f->st);
        rc = kivis_put(db, PETS_BLOB, &b, NULL);
        if (rc == KIVIS_OK) {
            stored++;
        } else {
            assert_int_equal(rc, KIVIS_EFULL);
            char *after = kt_dump(f->st);
            assert_string_equal(before, after);
            free(after);
        }
        free(before);
    }
    assert_int_equal(rc, KIVIS_EFULL);
    assert_true(stored > 2);
    kivis_close(db);
}

/* Index entries under `name`, counted without fetching the records: some
 * tests here read through a schema whose user record is not pets'. */
static size_t entries_named(kivis_db *db, const char *name)
{
    kivis_query q = {PETS_USER, USER_BY_NAME, KIVIS_Q_EQ, &name, NULL, NULL, 0, 0};
    kivis_scan *s;
    assert_int_equal(kivis_scan_open(db, &q, &s), KIVIS_OK);
    size_t n = 0;
    while (kivis_scan_next(s, NULL, NULL) == KIVIS_OK)
        n++;
    kivis_scan_close(s);
    return n;
}

static void test_records_indexes_and_ids_persist(void **state)
{
    fx *f = *state;
    kivis_db *db;
    assert_int_equal(kivis_open(f->st, &pets_schema, NULL, &db), KIVIS_OK);
    for (int i = 0; i < 100; i++)
        kt_put_user(db, i % 2 ? "odd" : "even", (uint32_t)i);
    user_key last = {100};
    assert_int_equal(kivis_remove(db, PETS_USER, &last), KIVIS_OK);
    kivis_close(db);
    reopen(f, 0, 0);
    assert_int_equal(kivis_open(f->st, &pets_schema, NULL, &db), KIVIS_OK);
    assert_int_equal(entries_named(db, "odd"), 49);
    assert_int_equal(entries_named(db, "even"), 50);
    user u;
    user_key k = {42};
    assert_int_equal(kivis_get(db, PETS_USER, &k, &u), KIVIS_OK);
    assert_int_equal(u.age, 41);
    kivis_record_clear(db, PETS_USER, &u);
    assert_int_equal(kt_put_user(db, "new", 7).id, 101); /* 100 was issued */
    kivis_close(db);
}

static void test_schema_change_on_reopen(void **state)
{
    fx *f = *state;
    kivis_db *db;
    assert_int_equal(kivis_open(f->st, &pets_schema, NULL, &db), KIVIS_OK);
    kt_put_user(db, "ann", 30);
    kt_put_user(db, "bob", 40);
    kivis_close(db);
    reopen(f, 0, 0);
    char *before = kt_dump(f->st);
    /* Incompatible: user.age retyped.  Refused, named, nothing changed. */
    kivis_field fields[3];
    memcpy(fields, pets_schema.tables[PETS_USER].record->fields, sizeof fields);
    fields[2].kind = KIVIS_I64;
    fields[2].size = 8;
    kivis_struct_desc ud = *pets_schema.tables[PETS_USER].record;
    ud.fields = fields;
    kivis_table_desc tables[4];
    memcpy(tables, pets_schema.tables, sizeof tables);
    tables[PETS_USER].record = &ud;
    kivis_schema_desc changed = {"pets", 4, tables, 0, NULL, 0, NULL};
    char msg[200];
    kivis_options o = {NULL, KIVIS_SYNC, msg, sizeof msg, 0, NULL, NULL, NULL};
    assert_int_equal(kivis_open(f->st, &changed, &o, &db), KIVIS_ESCHEMA);
    assert_non_null(strstr(msg, "user"));
    assert_non_null(strstr(msg, "age"));
    char *after = kt_dump(f->st);
    assert_string_equal(before, after);
    free(after);
    free(before);
    /* Compatible: a new index on age is built over the stored users. */
    static const kivis_index_desc idx[] = {{"name", 0, 0}, {"age", 2, 0}};
    memcpy(tables, pets_schema.tables, sizeof tables);
    tables[PETS_USER].nindexes = 2;
    tables[PETS_USER].indexes = idx;
    kivis_schema_desc more = {"pets", 4, tables, 0, NULL, 0, NULL};
    assert_int_equal(kivis_open(f->st, &more, NULL, &db), KIVIS_OK);
    kivis_close(db);
    reopen(f, 0, 0);
    assert_int_equal(kivis_open(f->st, &more, NULL, &db), KIVIS_OK);
    uint32_t lo = 35;
    kivis_query q = {PETS_USER, 1, KIVIS_Q_RANGE, &lo, NULL, NULL, 0, 0};
    kivis_scan *s;
    assert_int_equal(kivis_scan_open(db, &q, &s), KIVIS_OK);
    user_key k;
    assert_int_equal(kivis_scan_next(s, &k, NULL), KIVIS_OK);
    assert_int_equal(k.id, 2);
    assert_int_equal(kivis_scan_next(s, &k, NULL), KIVIS_NOTFOUND);
    kivis_scan_close(s);
    kivis_close(db);
}

/* The pets schema grown compatibly: user gains a trailing field, and a
 * new record `note` appears. */
typedef struct user2 {
    char *name;
    char *email;
    uint32_t age;
    int64_t score; /* new */
} user2;
typedef struct note_key { uint64_t id; } note_key;
typedef struct note { char *text; } note;

static const kivis_field user2_fields[] = {
    {"name", KIVIS_STRING, 0, offsetof(user2, name), sizeof(char *), NULL, NULL, 0},
    {"email", KIVIS_STRING, 0, offsetof(user2, email), sizeof(char *), NULL, NULL, 0},
    {"age", KIVIS_U32, 0, offsetof(user2, age), 4, NULL, NULL, 0},
    {"score", KIVIS_I64, 0, offsetof(user2, score), 8, NULL, NULL, 0},
};
static const kivis_struct_desc user2_desc = {"user", sizeof(user2), 4, user2_fields, NULL};
static const kivis_field note_key_fields[] = {
    {"id", KIVIS_U64, 0, offsetof(note_key, id), 8, NULL, NULL, 0}};
static const kivis_struct_desc note_key_desc = {"note_key", sizeof(note_key), 1,
                                                note_key_fields, NULL};
static const kivis_field note_fields[] = {
    {"text", KIVIS_STRING, 0, offsetof(note, text), sizeof(char *), NULL, NULL, 0}};
static const kivis_struct_desc note_desc = {"note", sizeof(note), 1, note_fields, NULL};

static void test_appended_field_and_new_record(void **state)
{
    fx *f = *state;
    kivis_db *db;
    assert_int_equal(kivis_open(f->st, &pets_schema, NULL, &db), KIVIS_OK);
    kt_put_user(db, "old", 70);
    kivis_close(db);
    reopen(f, 0, 0);
    kivis_table_desc tables[5];
    memcpy(tables, pets_schema.tables, 4 * sizeof *tables);
    tables[PETS_USER].record = &user2_desc;
    tables[4] = (kivis_table_desc){"note", &note_desc, &note_key_desc, KIVIS_KEY_AUTO,
                                   NULL, NULL, 0, NULL};
    kivis_schema_desc grown = {"pets", 5, tables, 0, NULL, 0, NULL};
    assert_int_equal(kivis_open(f->st, &grown, NULL, &db), KIVIS_OK);
    user2 u;
    user_key k = {1};
    assert_int_equal(kivis_get(db, PETS_USER, &k, &u), KIVIS_OK);
    assert_string_equal(u.name, "old");
    assert_int_equal(u.age, 70);
    assert_int_equal(u.score, 0); /* written before the field existed */
    kivis_record_clear(db, PETS_USER, &u);
    user2 nu = {"new", "n@x", 1, -5};
    assert_int_equal(kivis_put(db, PETS_USER, &nu, &k), KIVIS_OK);
    note n = {"hello"};
    note_key nk;
    assert_int_equal(kivis_put(db, 4, &n, &nk), KIVIS_OK);
    assert_int_equal(nk.id, 1);
    kivis_close(db);
    reopen(f, 0, 0);
    assert_int_equal(kivis_open(f->st, &grown, NULL, &db), KIVIS_OK);
    assert_int_equal(kivis_get(db, PETS_USER, &k, &u), KIVIS_OK);
    assert_int_equal(u.score, -5);
    kivis_record_clear(db, PETS_USER, &u);
    assert_int_equal(entries_named(db, "new"), 1);
    kivis_close(db);
    /* The old schema still opens: its records are a prefix of the stored
     * ones, but dropping a field is refused. */
    char msg[200];
    kivis_options o = {NULL, KIVIS_SYNC, msg, sizeof msg, 0, NULL, NULL, NULL};
    assert_int_equal(kivis_open(f->st, &pets_schema, &o, &db), KIVIS_ESCHEMA);
    assert_non_null(strstr(msg, "score"));
}

static void test_nosync_commits_are_kept(void **state)
{
    fx *f = *state;
    kivis_options o = {NULL, KIVIS_NOSYNC, NULL, 0, 0, NULL, NULL, NULL};
    kivis_db *db;
    assert_int_equal(kivis_open(f->st, &pets_schema, &o, &db), KIVIS_OK);
    for (int i = 0; i < 50; i++)
        kt_put_user(db, "bulk", (uint32_t)i);
    kivis_close(db);
    reopen(f, 0, 0);
    assert_int_equal(kivis_open(f->st, &pets_schema, NULL, &db), KIVIS_OK);
    assert_int_equal(entries_named(db, "bulk"), 50);
    kivis_close(db);
}

/* A real full disk: a 2 MiB tmpfs under a store whose map could grow to
 * 64 MiB.  Needs root and mount(2); skipped where either is missing. */
static void test_full_disk_is_efull_and_consistent(void **state)
{
    (void)state;
    char dir[256], store[300];
    kt_tempdir(dir, sizeof dir);
    if (geteuid() != 0 || mount("tmpfs", dir, "tmpfs", 0, "size=2m") != 0) {
        kt_rmdir(dir);
        skip();
    }
    snprintf(store, sizeof store, "%s/db", dir);
    kivis_lmdb_options o = {NULL, 1 << 20, 64 << 20, 0};
    kivis_storage *st;
    assert_int_equal(kivis_lmdb_open(store, &o, &st), KIVIS_OK);
    int rc = KIVIS_OK, batches = 0;
    char *before = NULL;
    while (rc == KIVIS_OK && batches < 100) {
        free(before);
        before = kt_dump(st);
        rc = put_n(st, batches * 64, 64, 4096);
        batches += rc == KIVIS_OK;
    }
    assert_int_equal(rc, KIVIS_EFULL);
    assert_true(batches > 0);
    char *after = kt_dump(st);
    assert_string_equal(before, after);
    free(after);
    kivis_storage_close(st);
    assert_int_equal(kivis_lmdb_open(store, &o, &st), KIVIS_OK);
    after = kt_dump(st);
    assert_string_equal(before, after); /* openable, and what was committed */
    free(after);
    free(before);
    kivis_storage_close(st);
    umount(dir);
    kt_rmdir(dir);
}

static void test_limits_and_writers(void **state)
{
    fx *f = *state;
    assert_int_equal(kivis_storage_max_key(f->st), 511);
    kivis_storage_txn *t, *t2;
    assert_int_equal(kivis_storage_begin(f->st, 0, &t), KIVIS_OK);
    assert_int_equal(kivis_storage_begin(f->st, 0, &t2), KIVIS_EBUSY);
    assert_null(t2);
    char key[512];
    memset(key, 'k', sizeof key);
    assert_int_equal(kivis_txn_put(t, kivis_slice_make(key, 512), kivis_slice_make("v", 1)),
                     KIVIS_EKEYSIZE);
    assert_int_equal(kivis_txn_put(t, kivis_slice_make(key, 511), kivis_slice_make("v", 1)),
                     KIVIS_OK);
    assert_int_equal(kivis_txn_commit(t, KIVIS_SYNC), KIVIS_OK);
    assert_int_equal(kt_count(f->st), 1);
}

static void test_bad_paths(void **state)
{
    (void)state;
    kivis_storage *st = (kivis_storage *)1;
    assert_int_equal(kivis_lmdb_open(NULL, NULL, &st), KIVIS_EINVAL);
    assert_null(st);
    char dir[256], path[300];
    kt_tempdir(dir, sizeof dir);
    /* A regular file where the directory should be. */
    snprintf(path, sizeof path, "%s/file", dir);
    FILE *fp = fopen(path, "w");
    fputs("not a directory", fp);
    fclose(fp);
    assert_int_equal(kivis_lmdb_open(path, NULL, &st), KIVIS_EIO);
    unlink(path);
    /* A directory whose data.mdb is not an LMDB file. */
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    fp = fopen(path, "w");
    for (int i = 0; i < 4096; i++)
        fputc(i * 7, fp);
    fclose(fp);
    assert_int_equal(kivis_lmdb_open(dir, NULL, &st), KIVIS_ECORRUPT);
    assert_null(st);
    kt_rmdir(dir);
}

/* ---- readers in threads never see half a transaction ------------------- */

typedef struct race {
    kivis_storage *st;
    int stop; /* atomic */
    int torn; /* reads that saw an odd half of a pair */
    long reads;
} race;

/* Every write transaction writes two keys a<i> and b<i>; a reader sees
 * both of each pair or neither. */
static void *reader(void *arg)
{
    race *r = arg;
    while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
        kivis_storage_txn *t;
        if (kivis_storage_begin(r->st, KIVIS_TXN_RDONLY, &t) != KIVIS_OK)
            continue;
        kivis_storage_cursor *c;
        kivis_slice none = {NULL, 0}, k, v;
        long a = 0, b = 0;
        if (kivis_txn_cursor(t, none, none, &c) == KIVIS_OK) {
            while (kivis_cursor_get(c, KIVIS_NEXT, &k, &v) == KIVIS_OK)
                *(((const char *)k.data)[0] == 'a' ? &a : &b) += 1;
            kivis_cursor_close(c);
        }
        kivis_txn_abort(t);
        if (a != b)
            __atomic_add_fetch(&r->torn, 1, __ATOMIC_RELAXED);
        __atomic_add_fetch(&r->reads, 1, __ATOMIC_RELAXED);
    }
    return NULL;
}

static void test_readers_never_see_half_a_transaction(void **state)
{
    fx *f = *state;
    reopen(f, 1 << 20, 0); /* growth happens while readers run */
    race r = {f->st, 0, 0, 0};
    pthread_t th[3];
    for (int i = 0; i < 3; i++)
        assert_int_equal(pthread_create(&th[i], NULL, reader, &r), 0);
    char val[2048];
    memset(val, 'v', sizeof val);
    for (int i = 0; i < 400; i++) {
        kivis_storage_txn *t;
        assert_int_equal(kivis_storage_begin(f->st, 0, &t), KIVIS_OK);
        char ka[16], kb[16];
        snprintf(ka, sizeof ka, "a%06d", i);
        snprintf(kb, sizeof kb, "b%06d", i);
        assert_int_equal(kivis_txn_put(t, kivis_slice_make(ka, strlen(ka)),
                                       kivis_slice_make(val, sizeof val)),
                         KIVIS_OK);
        assert_int_equal(kivis_txn_put(t, kivis_slice_make(kb, strlen(kb)),
                                       kivis_slice_make(val, sizeof val)),
                         KIVIS_OK);
        assert_int_equal(kivis_txn_commit(t, KIVIS_NOSYNC), KIVIS_OK);
    }
    __atomic_store_n(&r.stop, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(__atomic_load_n(&r.torn, __ATOMIC_ACQUIRE), 0);
    assert_true(__atomic_load_n(&r.reads, __ATOMIC_ACQUIRE) > 0);
    assert_int_equal(kt_count(f->st), 800);
}

/* ---- two writers on one storage while the map grows --------------------- */

/* User 1 is a counter: its age, read and rewritten in the caller's write
 * transaction. */
static int bump_counter(kivis_db *db)
{
    user_key k = {1};
    user u;
    int rc = kivis_get(db, PETS_USER, &k, &u);
    if (rc)
        return rc;
    u.age++;
    rc = kivis_insert(db, PETS_USER, &k, &u);
    kivis_record_clear(db, PETS_USER, &u);
    return rc;
}

static void pause_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

typedef struct helper {
    kivis_db *db;
    int started; /* atomic: set just before the call that blocks or waits */
    int rc;
} helper;

static void wait_started(helper *h)
{
    while (!__atomic_load_n(&h->started, __ATOMIC_ACQUIRE))
        sched_yield();
}

/* A second writer: begins (and waits there), increments, commits. */
static void *bump_in_own_txn(void *arg)
{
    helper *h = arg;
    __atomic_store_n(&h->started, 1, __ATOMIC_RELEASE);
    h->rc = kivis_begin(h->db);
    if (h->rc == KIVIS_OK && (h->rc = bump_counter(h->db)) == KIVIS_OK)
        h->rc = kivis_commit(h->db);
    else if (h->rc == KIVIS_OK)
        kivis_abort(h->db);
    return NULL;
}

static uint32_t counter_of(kivis_db *db)
{
    user_key k = {1};
    user u;
    assert_int_equal(kivis_get(db, PETS_USER, &k, &u), KIVIS_OK);
    uint32_t age = u.age;
    kivis_record_clear(db, PETS_USER, &u);
    return age;
}

/* Writer A holds a write transaction with one increment in it; writer B,
 * another thread with its own db on the same storage, waits in
 * kivis_begin; A's next put outgrows the map, and the growth has to wait
 * for a reader in a third thread.  Growth ends A's MDB transaction and
 * replays A's writes: B must not commit in between, or A's replayed
 * increment, computed before B's, overwrites it. */
static void test_second_writer_waits_out_map_growth(void **state)
{
    fx *f = *state;
    reopen(f, 128 << 10, 0);
    kivis_db *a, *b, *r;
    assert_int_equal(kivis_open(f->st, &pets_schema, NULL, &a), KIVIS_OK);
    assert_int_equal(kivis_open(f->st, &pets_schema, NULL, &b), KIVIS_OK);
    assert_int_equal(kivis_open(f->st, &pets_schema, NULL, &r), KIVIS_OK);
    assert_int_equal(kt_put_user(a, "counter", 0).id, 1);
    size_t map_before = kivis_lmdb_map_size(f->st);

    kt_held_reader reader_h = {r, 300, 0, -1};
    helper writer_h = {b, 0, -1};
    pthread_t rt, wt;
    assert_int_equal(pthread_create(&rt, NULL, kt_hold_read_txn, &reader_h), 0);
    kt_wait_holding(&reader_h);
    assert_int_equal(kivis_begin(a), KIVIS_OK);
    assert_int_equal(bump_counter(a), KIVIS_OK);
    assert_int_equal(pthread_create(&wt, NULL, bump_in_own_txn, &writer_h), 0);
    wait_started(&writer_h);
    pause_ms(100); /* B is blocked in kivis_begin by now */
    static uint8_t big[512 << 10]; /* four times the map */
    memset(big, 0x5a, sizeof big);
    blob bl = {{big, sizeof big}};
    blob_key bk;
    assert_int_equal(kivis_put(a, PETS_BLOB, &bl, &bk), KIVIS_OK);
    assert_int_equal(kivis_commit(a), KIVIS_OK);
    pthread_join(wt, NULL);
    pthread_join(rt, NULL);

    assert_int_equal(reader_h.rc, KIVIS_OK);
    assert_int_equal(writer_h.rc, KIVIS_OK);
    assert_true(kivis_lmdb_map_size(f->st) > map_before);
    assert_int_equal(counter_of(a), 2);
    blob got;
    assert_int_equal(kivis_get(a, PETS_BLOB, &bk, &got), KIVIS_OK);
    assert_int_equal(got.data.len, sizeof big);
    kivis_record_clear(a, PETS_BLOB, &got);
    assert_int_equal(kivis_check(a, NULL, NULL, NULL), KIVIS_OK);
    kivis_close(r);
    kivis_close(b);
    kivis_close(a);
}

/* ---- a data file shorter than its meta page says ------------------------ */

static unsigned char *read_file(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    struct stat sb;
    assert_int_equal(fstat(fileno(fp), &sb), 0);
    *len = (size_t)sb.st_size;
    unsigned char *buf = malloc(*len);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, *len, fp), *len);
    fclose(fp);
    return buf;
}

static void write_file(const char *path, const unsigned char *buf, size_t len)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(buf, 1, len, fp), len);
    assert_int_equal(fclose(fp), 0);
}

/* data.mdb cut short (a copy interrupted, a full disk under a careless
 * tool): the pages its meta page counts are not all there, and reading
 * one past the end of the file would be SIGBUS.  Open refuses it and
 * writes nothing; the whole file opens again. */
static void test_short_data_file_is_ecorrupt(void **state)
{
    fx *f = *state;
    kivis_db *db;
    assert_int_equal(kivis_open(f->st, &pets_schema, NULL, &db), KIVIS_OK);
    static uint8_t big[300 << 10];
    memset(big, 0xa5, sizeof big);
    blob bl = {{big, sizeof big}};
    assert_int_equal(kivis_put(db, PETS_BLOB, &bl, NULL), KIVIS_OK);
    for (int i = 0; i < 500; i++)
        kt_put_user(db, "short", (uint32_t)i);
    kivis_close(db);
    kivis_storage_close(f->st);
    f->st = NULL; /* teardown's, once reopened at the end */
    char path[300];
    snprintf(path, sizeof path, "%s/data.mdb", f->dir);
    size_t full;
    unsigned char *whole = read_file(path, &full);
    assert_true(full > 200000 + 8192);
    const size_t cuts[] = {1, 4096, 8192, 8192 + 100, 12288, 200000, full / 2,
                           full - 4096, full - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        write_file(path, whole, cuts[i]);
        kivis_storage *st = (kivis_storage *)1;
        assert_int_equal(kivis_lmdb_open(f->dir, NULL, &st), KIVIS_ECORRUPT);
        assert_null(st);
        size_t len;
        unsigned char *after = read_file(path, &len);
        assert_int_equal(len, cuts[i]); /* nothing written */
        assert_memory_equal(after, whole, len);
        free(after);
    }
    write_file(path, whole, full);
    free(whole);
    fx_open(f, 0, 0);
    assert_int_equal(kivis_open(f->st, &pets_schema, NULL, &db), KIVIS_OK);
    assert_int_equal(kt_users_named(db, "short"), 500);
    assert_int_equal(kivis_check(db, NULL, NULL, NULL), KIVIS_OK);
    kivis_close(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_map_grows_transparently, setup, teardown),
        cmocka_unit_test_setup_teardown(test_size_limit_is_efull_and_consistent, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_engine_efull_leaves_store_unchanged, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_records_indexes_and_ids_persist, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_schema_change_on_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_appended_field_and_new_record, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_nosync_commits_are_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limits_and_writers, setup, teardown),
        cmocka_unit_test(test_full_disk_is_efull_and_consistent),
        cmocka_unit_test(test_bad_paths),
        cmocka_unit_test_setup_teardown(test_readers_never_see_half_a_transaction, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_second_writer_waits_out_map_growth, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_short_data_file_is_ecorrupt, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
