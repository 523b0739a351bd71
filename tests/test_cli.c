/*
 * test_cli - kivis_schema_load, kivis_check / kivis_stats, and the kivis
 * command-line tool.
 *
 *   test_cli               the library tests
 *   test_cli <kivis-path>  the tool's tests, running that binary
 */
#include "testutil.h"

#include <kivis.h>
#include <kivis/inspect.h>
#include <kivis/lmdb.h>
#include <kivis/rocksdb.h>
#include <kivis/sqlite.h>

#include "petsutil.h"

#include <sqlite3.h>

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *kivis_tool, *kivis_gen, *golden_dir;

/* ---- a demo store --------------------------------------------------------- */

enum backend { LMDB, SQLITE, ROCKSDB };
static const char *const scheme[] = {"lmdb", "sqlite", "rocksdb"};

typedef struct fixture {
    char dir[256];
    char path[300]; /* the store: dir itself, or a file in it (SQLite) */
    enum backend backend;
    kivis_storage *st;
} fixture;

static int open_backend(enum backend b, const char *path, kivis_storage **st)
{
    switch (b) {
    case SQLITE: return kivis_sqlite_open(path, NULL, st);
    case ROCKSDB: return kivis_rocksdb_open(path, NULL, st);
    default: return kivis_lmdb_open(path, NULL, st);
    }
}

static void open_storage(fixture *f)
{
    assert_int_equal(open_backend(f->backend, f->path, &f->st), KIVIS_OK);
}

static void fill_demo(kivis_storage *st)
{
    kivis_db *db;
    assert_int_equal(kivis_open(st, &pets_schema, NULL, &db), KIVIS_OK);
    user ann = {"Ann", "ann@example.com", 31}, bob = {"Bob \"B\"", "bob\n", 40};
    user_key uk;
    assert_int_equal(kivis_put(db, PETS_USER, &ann, &uk), KIVIS_OK);
    assert_int_equal(kivis_put(db, PETS_USER, &bob, NULL), KIVIS_OK);
    toy t = {TOY_MOUSE, 2};
    assert_int_equal(kivis_put(db, PETS_TOY, &t, NULL), KIVIS_OK);
    pet p = {"Rex", uk, {TOY_MOUSE, 2}, false, 0};
    assert_int_equal(kivis_put(db, PETS_PET, &p, NULL), KIVIS_OK);
    uint8_t bytes[] = {0xde, 0xad, 0x00, 0x01};
    blob b = {{bytes, sizeof bytes}};
    assert_int_equal(kivis_put(db, PETS_BLOB, &b, NULL), KIVIS_OK);
    kivis_close(db);
}

static int setup_backend(void **state, enum backend b)
{
    fixture *f = calloc(1, sizeof *f);
    kt_tempdir(f->dir, sizeof f->dir);
    f->backend = b;
    if (b == SQLITE)
        snprintf(f->path, sizeof f->path, "%s/pets.db", f->dir);
    else if (b == ROCKSDB)
        snprintf(f->path, sizeof f->path, "%s/pets.rocks", f->dir);
    else
        snprintf(f->path, sizeof f->path, "%s", f->dir);
    open_storage(f);
    fill_demo(f->st);
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return setup_backend(state, LMDB);
}

static int setup_sqlite(void **state)
{
    return setup_backend(state, SQLITE);
}

static int setup_rocksdb(void **state)
{
    return setup_backend(state, ROCKSDB);
}

/* kt_rmdir, into subdirectories too (RocksDB stores, backups). */
static void rm_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) {
        unlink(dir);
        return;
    }
    char path[4096];
    for (struct dirent *e; (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (unlink(path) != 0)
            rm_tree(path);
    }
    closedir(d);
    rmdir(dir);
}

static int teardown(void **state)
{
    fixture *f = *state;
    kivis_storage_close(f->st);
    rm_tree(f->dir);
    free(f);
    return 0;
}

/* Raw access to the store, for damaging it. */
static void raw_put(kivis_storage *st, const void *k, size_t kn, const void *v,
                    size_t vn)
{
    kivis_storage_txn *txn;
    assert_int_equal(kivis_storage_begin(st, 0, &txn), KIVIS_OK);
    assert_int_equal(kivis_txn_put(txn, kivis_slice_make(k, kn), kivis_slice_make(v, vn)),
                     KIVIS_OK);
    assert_int_equal(kivis_txn_commit(txn, KIVIS_SYNC), KIVIS_OK);
}

/* Delete the first key starting with prefix. */
static void raw_del_first(kivis_storage *st, const uint8_t *prefix, size_t n)
{
    kivis_storage_txn *txn;
    kivis_storage_cursor *cur;
    kivis_slice k, v;
    uint8_t hi[8];
    memcpy(hi, prefix, n);
    hi[n - 1]++;
    assert_int_equal(kivis_storage_begin(st, 0, &txn), KIVIS_OK);
    assert_int_equal(kivis_txn_cursor(txn, kivis_slice_make(prefix, n),
                                      kivis_slice_make(hi, n), &cur),
                     KIVIS_OK);
    assert_int_equal(kivis_cursor_get(cur, KIVIS_FIRST, &k, &v), KIVIS_OK);
    uint8_t key[512];
    memcpy(key, k.data, k.len);
    size_t klen = k.len;
    kivis_cursor_close(cur);
    assert_int_equal(kivis_txn_del(txn, kivis_slice_make(key, klen)), KIVIS_OK);
    assert_int_equal(kivis_txn_commit(txn, KIVIS_SYNC), KIVIS_OK);
}

/* ---- kivis_schema_load ---------------------------------------------------- */

static void assert_same_struct(const kivis_struct_desc *a, const kivis_struct_desc *b)
{
    assert_int_equal(a->size, b->size);
    assert_int_equal(a->nfields, b->nfields);
    for (uint32_t i = 0; i < a->nfields; i++) {
        const kivis_field *x = &a->fields[i], *y = &b->fields[i];
        assert_string_equal(x->name, y->name);
        assert_int_equal(x->kind, y->kind);
        assert_int_equal(x->count, y->count);
        assert_int_equal(x->offset, y->offset);
        assert_int_equal(x->size, y->size);
        if (x->kind == KIVIS_STRUCT) {
            assert_string_equal(x->type->name, y->type->name);
            assert_same_struct(x->type, y->type);
        }
        if (x->kind == KIVIS_ENUM) {
            assert_string_equal(x->enm->name, y->enm->name);
            assert_int_equal(x->enm->count, y->enm->count);
            for (uint32_t e = 0; e < x->enm->count; e++) {
                assert_string_equal(x->enm->names[e], y->enm->names[e]);
                assert_int_equal(x->enm->values[e], y->enm->values[e]);
            }
        }
    }
}

static void test_schema_load_matches_compiled(void **state)
{
    fixture *f = *state;
    kivis_schema_desc *s;
    assert_int_equal(kivis_schema_load(f->st, NULL, &s), KIVIS_OK);
    assert_string_equal(s->name, pets_schema.name);
    assert_int_equal(s->ntables, pets_schema.ntables);
    for (uint32_t t = 0; t < s->ntables; t++) {
        const kivis_table_desc *a = &s->tables[t], *b = &pets_schema.tables[t];
        assert_string_equal(a->name, b->name);
        assert_int_equal(a->key_kind, b->key_kind);
        assert_same_struct(a->record, b->record);
        assert_same_struct(a->key, b->key);
        assert_string_equal(a->key->name, b->key->name);
        assert_int_equal(a->nindexes, b->nindexes);
        for (uint32_t i = 0; i < a->nindexes; i++) {
            assert_string_equal(a->indexes[i].name, b->indexes[i].name);
            assert_int_equal(a->indexes[i].field, b->indexes[i].field);
            assert_int_equal(a->indexes[i].flags, b->indexes[i].flags);
        }
        if (a->key_kind == KIVIS_KEY_FIELDS)
            for (uint32_t i = 0; i < a->key->nfields; i++)
                assert_int_equal(a->key_fields[i], b->key_fields[i]);
    }
    kivis_schema_free(s, NULL);
}

static void test_schema_load_reads_records(void **state)
{
    fixture *f = *state;
    kt_alloc a;
    kt_alloc_init(&a);
    kivis_schema_desc *s;
    assert_int_equal(kivis_schema_load(f->st, &a.iface, &s), KIVIS_OK);
    kivis_db *db;
    kivis_options o = {&a.iface, 0, NULL, 0, 0, NULL, NULL, NULL};
    assert_int_equal(kivis_open(f->st, s, &o, &db), KIVIS_OK);
    /* Buffers of the loaded sizes, read through the compiled types: the
     * computed layout must be the compiler's. */
    user_key uk = {2};
    user *u = malloc(s->tables[PETS_USER].record->size);
    assert_int_equal(kivis_get(db, PETS_USER, &uk, u), KIVIS_OK);
    assert_string_equal(u->name, "Bob \"B\"");
    assert_int_equal(u->age, 40);
    kivis_record_clear(db, PETS_USER, u);
    free(u);

    kivis_query q = {PETS_PET, -1, KIVIS_Q_ALL, NULL, NULL, NULL, 0, 0};
    kivis_scan *scan;
    pet_key pk;
    pet p;
    assert_int_equal(kivis_scan_open(db, &q, &scan), KIVIS_OK);
    assert_int_equal(kivis_scan_next(scan, &pk, &p), KIVIS_OK);
    assert_string_equal(p.name, "Rex");
    assert_int_equal(p.owner.id, 1);
    assert_int_equal(p.favourite_toy.kind, TOY_MOUSE);
    assert_int_equal(p.favourite_toy.color, 2);
    assert_int_equal(kivis_scan_next(scan, &pk, &p), KIVIS_NOTFOUND);
    kivis_scan_close(scan);

    /* Derived keys have no function: writes are refused, nothing written. */
    size_t before = kt_count(f->st);
    blob b = {{NULL, 0}};
    assert_int_equal(kivis_put(db, PETS_BLOB, &b, NULL), KIVIS_ENOTSUP);
    assert_int_equal(kt_count(f->st), before);
    /* Ordinary tables write, and the compiled schema still opens. */
    user nu = {"Cy", "", 5};
    assert_int_equal(kivis_put(db, PETS_USER, &nu, NULL), KIVIS_OK);
    kivis_close(db);
    kivis_schema_free(s, &a.iface);
    assert_int_equal(a.live_blocks, 0);
    assert_int_equal(kivis_open(f->st, &pets_schema, NULL, &db), KIVIS_OK);
    kivis_close(db);
}

/* ---- kivis_schema_layout -------------------------------------------------- */

enum { MAX_COPIES = 64 };

typedef struct copies {
    void *p[MAX_COPIES];
    int n;
} copies;

static void *keep(copies *c, void *p)
{
    assert_non_null(p);
    assert_true(c->n < MAX_COPIES);
    return c->p[c->n++] = p;
}

/* A writable copy of sd and of the structs it nests, every offset and size
 * cleared (char[N] keeps its N): what kivis_schema_layout fills in. */
static kivis_struct_desc *unlaid_copy(copies *c, const kivis_struct_desc *sd)
{
    kivis_struct_desc *copy = keep(c, malloc(sizeof *copy));
    kivis_field *fields = keep(c, calloc(sd->nfields + 1, sizeof *fields));
    *copy = *sd;
    copy->size = 0;
    copy->fields = fields;
    for (uint32_t i = 0; i < sd->nfields; i++) {
        fields[i] = sd->fields[i];
        fields[i].offset = 0;
        if (fields[i].kind != KIVIS_CHARS)
            fields[i].size = 0;
        if (fields[i].kind == KIVIS_STRUCT)
            fields[i].type = unlaid_copy(c, fields[i].type);
    }
    return copy;
}

static void test_schema_layout_matches_compiled(void **state)
{
    (void)state;
    copies c = {{NULL}, 0};
    kivis_table_desc tables[8];
    assert_true(pets_schema.ntables <= 8);
    for (uint32_t t = 0; t < pets_schema.ntables; t++) {
        tables[t] = pets_schema.tables[t];
        tables[t].record = unlaid_copy(&c, tables[t].record);
        tables[t].key = unlaid_copy(&c, tables[t].key);
    }
    kivis_schema_desc s = pets_schema;
    s.tables = tables;
    assert_int_equal(kivis_schema_layout(&s), KIVIS_OK);
    /* The C compiler's layout, an optional field's presence flag and
     * nested key structs included. */
    for (uint32_t t = 0; t < s.ntables; t++) {
        assert_same_struct(tables[t].record, pets_schema.tables[t].record);
        assert_same_struct(tables[t].key, pets_schema.tables[t].key);
    }
    kivis_field *f = (kivis_field *)tables[0].record->fields;
    uint32_t kind = f->kind;
    f->kind = 99;
    assert_int_equal(kivis_schema_layout(&s), KIVIS_EINVAL);
    f->kind = kind;
    assert_int_equal(kivis_schema_layout(NULL), KIVIS_EINVAL);
    while (c.n)
        free(c.p[--c.n]);
}

static void test_schema_load_no_schema(void **state)
{
    (void)state;
    char dir[256];
    kt_tempdir(dir, sizeof dir);
    kivis_storage *st;
    assert_int_equal(kivis_lmdb_open(dir, NULL, &st), KIVIS_OK);
    kivis_schema_desc *s = (kivis_schema_desc *)&s;
    assert_int_equal(kivis_schema_load(st, NULL, &s), KIVIS_NOTFOUND);
    assert_null(s);
    assert_int_equal(kivis_schema_load(NULL, NULL, &s), KIVIS_EINVAL);
    kivis_storage_close(st);
    kt_rmdir(dir);
}

/* Every truncation and every single-byte change of the stored schema
 * fails cleanly or loads a descriptor that frees without leaks. */
static void test_schema_load_malformed(void **state)
{
    fixture *f = *state;
    static const uint8_t key[] = {0, 0, 's', 'c', 'h', 'e', 'm', 'a'};
    kivis_storage_txn *txn;
    kivis_slice v;
    assert_int_equal(kivis_storage_begin(f->st, KIVIS_TXN_RDONLY, &txn), KIVIS_OK);
    assert_int_equal(kivis_txn_get(txn, kivis_slice_make(key, sizeof key), &v), KIVIS_OK);
    size_t n = v.len;
    uint8_t *good = malloc(n), *bad = malloc(n);
    memcpy(good, v.data, n);
    kivis_txn_abort(txn);
    kt_alloc a;
    kt_alloc_init(&a);
    kivis_schema_desc *s;
    for (size_t len = 0; len < n; len++) {
        raw_put(f->st, key, sizeof key, good, len);
        assert_int_equal(kivis_schema_load(f->st, &a.iface, &s), KIVIS_ECORRUPT);
    }
    for (size_t i = 0; i < n; i += 3) {
        memcpy(bad, good, n);
        bad[i] ^= 0x5a;
        raw_put(f->st, key, sizeof key, bad, n);
        int rc = kivis_schema_load(f->st, &a.iface, &s);
        assert_true(rc == KIVIS_OK || rc == KIVIS_ECORRUPT || rc == KIVIS_EVERSION);
        kivis_schema_free(rc ? NULL : s, &a.iface);
    }
    assert_int_equal(a.live_blocks, 0);
    raw_put(f->st, key, sizeof key, good, n);
    free(good);
    free(bad);
}

/* ---- kivis_check ------------------------------------------------------------ */

typedef struct found {
    int kinds[8];
    int n;
    char table[32], index[32];
} found;

static void collect(void *ctx, const kivis_check_problem *p)
{
    found *fd = ctx;
    assert_non_null(p->key_hex);
    assert_non_null(p->message);
    if (fd->n < 8)
        fd->kinds[fd->n] = p->kind;
    if (!fd->n) {
        snprintf(fd->table, sizeof fd->table, "%s", p->table ? p->table : "");
        snprintf(fd->index, sizeof fd->index, "%s", p->index ? p->index : "");
    }
    fd->n++;
}

/* Check the fixture's store with its stored schema; *problems (may be
 * NULL) receives the count, *users the user table's record count. */
static int check_store(fixture *f, found *fd, uint64_t *problems, uint64_t *users)
{
    kivis_schema_desc *s;
    kivis_db *db;
    memset(fd, 0, sizeof *fd);
    assert_int_equal(kivis_schema_load(f->st, NULL, &s), KIVIS_OK);
    assert_int_equal(kivis_open(f->st, s, NULL, &db), KIVIS_OK);
    kivis_check_stats st;
    memset(&st, 0, sizeof st);
    int rc = kivis_check(db, collect, fd, &st);
    if (problems)
        *problems = st.problems;
    if (users)
        *users = st.tables[PETS_USER].records;
    kivis_stats_free(db, &st);
    kivis_close(db);
    kivis_schema_free(s, NULL);
    return rc;
}

static void progress_count(void *ctx, uint64_t done, uint64_t total)
{
    uint64_t *calls = ctx;
    assert_true(done <= total);
    ++*calls;
}

static void test_check_good_store(void **state)
{
    fixture *f = *state;
    found fd;
    kivis_check_stats st;
    uint64_t calls = 0;
    memset(&st, 0, sizeof st);
    st.progress = progress_count;
    st.progress_ctx = &calls;
    kivis_schema_desc *s;
    kivis_db *db;
    memset(&fd, 0, sizeof fd);
    assert_int_equal(kivis_schema_load(f->st, NULL, &s), KIVIS_OK);
    assert_int_equal(kivis_open(f->st, s, NULL, &db), KIVIS_OK);
    assert_int_equal(kivis_check(db, collect, &fd, &st), KIVIS_OK);
    assert_int_equal(fd.n, 0);
    assert_int_equal(st.problems, 0);
    assert_true(calls >= 1);
    assert_int_equal(st.ntables, 4);
    assert_int_equal(st.keys, kt_count(f->st));
    assert_string_equal(st.tables[PETS_USER].name, "user");
    assert_int_equal(st.tables[PETS_USER].records, 2);
    assert_int_equal(st.tables[PETS_USER].index_entries, 2);
    assert_int_equal(st.tables[PETS_TOY].records, 1);
    assert_int_equal(st.tables[PETS_TOY].index_entries, 0);
    assert_int_equal(st.tables[PETS_PET].records, 1);
    /* favourite_toy, chip (absent: an entry too) and owner's cascade */
    assert_int_equal(st.tables[PETS_PET].index_entries, 3);
    assert_int_equal(st.tables[PETS_BLOB].records, 1);
    assert_true(st.tables[PETS_USER].key_bytes > 0);
    assert_true(st.tables[PETS_USER].value_bytes > 0);
    kivis_stats_free(db, &st);

    kivis_check_stats counts;
    memset(&counts, 0, sizeof counts);
    assert_int_equal(kivis_stats(db, &counts), KIVIS_OK);
    assert_int_equal(counts.tables[PETS_USER].records, 2);
    assert_int_equal(counts.keys, kt_count(f->st));
    kivis_stats_free(db, &counts);
    kivis_close(db);
    kivis_schema_free(s, NULL);
}

/* Table user has id 1 and its index "name" slot 2 in a fresh store. */
static const uint8_t user_by_name[] = {0x01, 0x02};

static void test_check_missing_entry(void **state)
{
    fixture *f = *state;
    found fd;
    raw_del_first(f->st, user_by_name, sizeof user_by_name);
    assert_int_equal(check_store(f, &fd, NULL, NULL), KIVIS_ECORRUPT);
    assert_int_equal(fd.n, 1);
    assert_int_equal(fd.kinds[0], KIVIS_CHECK_MISSING_ENTRY);
    assert_string_equal(fd.table, "user");
    assert_string_equal(fd.index, "name");
}

static void test_check_stale_entry(void **state)
{
    fixture *f = *state;
    found fd;
    /* "Zed" pointing at user 1 (whose name is Ann), then at user 99. */
    static const uint8_t wrong_value[] = {0x01, 0x02, 'Z', 'e', 'd', 0, 0, 0, 0, 0, 0, 0, 0, 1};
    static const uint8_t no_record[] = {0x01, 0x02, 'A', 'n', 'n', 0, 0, 0, 0, 0, 0, 0, 0, 99};
    raw_put(f->st, wrong_value, sizeof wrong_value, "", 0);
    assert_int_equal(check_store(f, &fd, NULL, NULL), KIVIS_ECORRUPT);
    assert_int_equal(fd.n, 1);
    assert_int_equal(fd.kinds[0], KIVIS_CHECK_STALE_ENTRY);
    assert_string_equal(fd.index, "name");
    raw_put(f->st, no_record, sizeof no_record, "", 0);
    assert_int_equal(check_store(f, &fd, NULL, NULL), KIVIS_ECORRUPT);
    assert_int_equal(fd.n, 2);
    assert_int_equal(fd.kinds[0], KIVIS_CHECK_STALE_ENTRY);
    assert_int_equal(fd.kinds[1], KIVIS_CHECK_STALE_ENTRY);
}

static void test_check_corrupt_value(void **state)
{
    fixture *f = *state;
    found fd;
    static const uint8_t user1[] = {0x01, 0x00, 0, 0, 0, 0, 0, 0, 0, 1};
    static const uint8_t garbage[] = {0x01, 0x01, 0x03, 0xff};
    uint64_t problems, users;
    raw_put(f->st, user1, sizeof user1, garbage, sizeof garbage);
    assert_int_equal(check_store(f, &fd, &problems, &users), KIVIS_ECORRUPT);
    assert_int_equal(fd.n, 1);
    assert_int_equal(fd.kinds[0], KIVIS_CHECK_BAD_RECORD);
    assert_string_equal(fd.table, "user");
    assert_int_equal(problems, 1);
    assert_int_equal(users, 2); /* counted though it does not decode */
}

static void test_check_unknown_keys(void **state)
{
    fixture *f = *state;
    found fd;
    static const uint8_t unknown_table[] = {0x50, 0x00, 0x01};
    static const uint8_t unknown_slot[] = {0x01, 0x09, 0x01};
    raw_put(f->st, unknown_table, sizeof unknown_table, "x", 1);
    assert_int_equal(check_store(f, &fd, NULL, NULL), KIVIS_ECORRUPT);
    assert_int_equal(fd.n, 1);
    assert_int_equal(fd.kinds[0], KIVIS_CHECK_UNKNOWN_TABLE);
    raw_del_first(f->st, unknown_table, sizeof unknown_table);
    raw_put(f->st, unknown_slot, sizeof unknown_slot, "", 0);
    assert_int_equal(check_store(f, &fd, NULL, NULL), KIVIS_ECORRUPT);
    assert_int_equal(fd.n, 1);
    assert_int_equal(fd.kinds[0], KIVIS_CHECK_UNKNOWN_SLOT);
    assert_string_equal(fd.table, "user");
}

/* ---- the kivis tool ------------------------------------------------------- */

typedef struct run_result {
    int status;
    char *out, *err;
} run_result;

static char *slurp(const char *path)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    char *buf = calloc(1, 1 << 16);
    size_t n = fread(buf, 1, (1 << 16) - 1, fp);
    buf[n] = '\0';
    fclose(fp);
    return buf;
}

/* Run the tool with args (NULL-terminated), capturing stdout and stderr. */
static run_result run_tool(const char *const *args)
{
    char dir[256], out[300], err[300];
    kt_tempdir(dir, sizeof dir);
    snprintf(out, sizeof out, "%s/out", dir);
    snprintf(err, sizeof err, "%s/err", dir);
    char *argv[16] = {(char *)kivis_tool};
    for (int i = 0; args[i] && i < 14; i++)
        argv[i + 1] = (char *)args[i];
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int e = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (o < 0 || e < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0)
            _exit(127);
        execv(kivis_tool, argv);
        _exit(127);
    }
    int ws;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    assert_true(WIFEXITED(ws));
    run_result r = {WEXITSTATUS(ws), slurp(out), slurp(err)};
    kt_rmdir(dir);
    return r;
}

static void run_free(run_result *r)
{
    free(r->out);
    free(r->err);
}

/* Run `kivis cmd <store> [arg]` on the fixture's store, which the tool
 * opens itself: this process lets go of it meanwhile. */
static run_result run_on(fixture *f, const char *cmd, const char *arg)
{
    kivis_storage_close(f->st);
    f->st = NULL;
    run_result r = run_tool((const char *const[]){cmd, f->path, arg, NULL});
    open_storage(f);
    return r;
}

static void test_tool_check_ok(void **state)
{
    fixture *f = *state;
    run_result r = run_on(f, "check", NULL);
    assert_int_equal(r.status, 0);
    KT_ASSERT_CONTAINS(r.out, "ok: 0 problems in 5 records and 5 index entries of 4 tables");
    assert_string_equal(r.err, ""); /* no bar: stderr is not a terminal */
    run_free(&r);
}

static void test_tool_check_problems(void **state)
{
    fixture *f = *state;
    raw_del_first(f->st, user_by_name, sizeof user_by_name);
    run_result r = run_on(f, "check", NULL);
    assert_int_equal(r.status, 1);
    KT_ASSERT_CONTAINS(r.out, "problem: user.name missing index entry: the record has no "
                           "entry in index name\n    key 0100");
    KT_ASSERT_CONTAINS(r.out, "FAILED: 1 problem in 5 records and 4 index entries");
    run_free(&r);
}

/* A pet whose owner is gone, written with pets_schema less its cascade
 * (the owner index that carries it dropped): pet.owner has no referential
 * action then, so check passes and warns. */
static void test_tool_check_warns_dangling(void **state)
{
    fixture *f = *state;
    kivis_table_desc tables[4];
    kivis_schema_desc no_action = kt_pets_without_cascade(tables);
    kivis_db *db;
    assert_int_equal(kivis_open(f->st, &no_action, NULL, &db), KIVIS_OK);
    pet p = {"Stray", {42}, {TOY_MOUSE, 2}, false, 0};
    assert_int_equal(kivis_put(db, PETS_PET, &p, NULL), KIVIS_OK);
    kivis_close(db);
    run_result r = run_on(f, "check", NULL);
    assert_int_equal(r.status, 0);
    KT_ASSERT_CONTAINS(r.out, "ok: 0 problems in 6 records");
    KT_ASSERT_CONTAINS(r.out, "warning: 1 foreign key without a referential action "
                           "names a missing record\n");
    run_free(&r);
}

/* The line `kivis check` ends with, as kivis_check through the
 * application's schema (`schema`, opened on the fixture) counts: the two
 * must give the same verdict on the same store. */
static void api_check_line(fixture *f, const kivis_schema_desc *schema, char *line,
                           size_t n, found *fd)
{
    kivis_db *db;
    assert_int_equal(kivis_open(f->st, schema, NULL, &db), KIVIS_OK);
    kivis_check_stats st;
    memset(&st, 0, sizeof st);
    memset(fd, 0, sizeof *fd);
    int rc = kivis_check(db, collect, fd, &st);
    uint64_t records = 0, entries = 0;
    for (uint32_t i = 0; i < st.ntables; i++)
        records += st.tables[i].records, entries += st.tables[i].index_entries;
    snprintf(line, n,
             "%s: %llu problem%s in %llu records and %llu index entries of %u tables\n",
             rc ? "FAILED" : "ok", (unsigned long long)st.problems,
             st.problems == 1 ? "" : "s", (unsigned long long)records,
             (unsigned long long)entries, (unsigned)st.ntables);
    kivis_stats_free(db, &st);
    kivis_close(db);
}

/* The application renamed table user to member (and dropped the cascade
 * of pet.owner, whose user is no member): the store keeps user's records,
 * and the API's check (through the application's schema) and the tool's
 * (through the stored one) agree, clean or damaged. */
static void test_tool_check_agrees_with_api(void **state)
{
    fixture *f = *state;
    kivis_table_desc tables[4];
    kivis_schema_desc renamed = kt_pets_without_cascade(tables);
    tables[PETS_USER].name = "member";
    char line[160];
    found fd;
    api_check_line(f, &renamed, line, sizeof line, &fd);
    assert_string_equal(line, "ok: 0 problems in 5 records and 4 index entries of 5 tables\n");
    run_result r = run_on(f, "check", NULL);
    assert_int_equal(r.status, 0);
    KT_ASSERT_CONTAINS(r.out, line);
    run_free(&r);

    raw_del_first(f->st, user_by_name, sizeof user_by_name); /* kept user's */
    api_check_line(f, &renamed, line, sizeof line, &fd);
    assert_int_equal(fd.n, 1);
    assert_int_equal(fd.kinds[0], KIVIS_CHECK_MISSING_ENTRY);
    assert_string_equal(fd.table, "user");
    r = run_on(f, "check", NULL);
    assert_int_equal(r.status, 1);
    KT_ASSERT_CONTAINS(r.out, "problem: user.name missing index entry");
    KT_ASSERT_CONTAINS(r.out, line);
    run_free(&r);
}

static void test_tool_dump(void **state)
{
    fixture *f = *state;
    run_result r = run_on(f, "dump", NULL);
    assert_int_equal(r.status, 0);
    KT_ASSERT_CONTAINS(r.out, "user {1} => {name: \"Ann\", email: \"ann@example.com\", age: 31}\n");
    KT_ASSERT_CONTAINS(r.out, "user {2} => {name: \"Bob \\\"B\\\"\", email: \"bob\\n\", age: 40}\n");
    KT_ASSERT_CONTAINS(r.out, "toy {TOY_MOUSE, 2} => {kind: TOY_MOUSE, color: 2}\n");
    KT_ASSERT_CONTAINS(r.out, "pet {1} => {name: \"Rex\", owner: user_key{1}, "
                           "favourite_toy: toy_key{TOY_MOUSE, 2}, chip: null}\n");
    KT_ASSERT_CONTAINS(r.out, "=> {data: x'dead0001'}\n");
    run_free(&r);

    r = run_on(f, "dump", "pet");
    assert_int_equal(r.status, 0);
    assert_null(strstr(r.out, "user {"));
    KT_ASSERT_CONTAINS(r.out, "pet {1}");
    run_free(&r);

    r = run_on(f, "dump", "nosuch");
    assert_int_equal(r.status, 2);
    KT_ASSERT_CONTAINS(r.err, "no table 'nosuch'");
    run_free(&r);
}

static void test_tool_stats(void **state)
{
    fixture *f = *state;
    run_result r = run_on(f, "stats", NULL);
    assert_int_equal(r.status, 0);
    KT_ASSERT_CONTAINS(r.out, "schema   pets, 4 tables\n");
    KT_ASSERT_CONTAINS(r.out, "map size ");
    KT_ASSERT_CONTAINS(r.out, "layout   2 (a database per key space)\n");
    KT_ASSERT_CONTAINS(r.out, "table               records  index entries");
    KT_ASSERT_CONTAINS(r.out, "\nuser                      2              2 ");
    KT_ASSERT_CONTAINS(r.out, "\ntotal                     5              5 ");
    run_free(&r);
}

static void test_tool_errors(void **state)
{
    (void)state;
    char dir[256], missing[300], data[300];
    kt_tempdir(dir, sizeof dir);
    snprintf(missing, sizeof missing, "%s/none", dir);

    run_result r = run_tool((const char *const[]){"check", missing, NULL});
    assert_int_equal(r.status, 2);
    KT_ASSERT_CONTAINS(r.err, "kivis: ");
    KT_ASSERT_CONTAINS(r.err, "/none: no such file or directory (the tool opens existing "
                           "stores only)\n");
    struct stat sb;
    assert_int_not_equal(stat(missing, &sb), 0); /* not created */
    run_free(&r);

    r = run_tool((const char *const[]){"dump", dir, NULL}); /* empty directory */
    assert_int_equal(r.status, 2);
    KT_ASSERT_CONTAINS(r.err, "is not a kivis store");
    run_free(&r);

    snprintf(data, sizeof data, "%s/data.mdb", dir); /* not LMDB */
    FILE *fp = fopen(data, "wb");
    for (int i = 0; i < 4096; i++)
        fputc('x', fp);
    fclose(fp);
    r = run_tool((const char *const[]){"stats", dir, NULL});
    assert_int_equal(r.status, 2);
    KT_ASSERT_CONTAINS(r.err, "is not a kivis store");
    run_free(&r);
    kt_rmdir(dir);

    kt_tempdir(dir, sizeof dir); /* LMDB, but no kivis schema */
    kivis_storage *st;
    assert_int_equal(kivis_lmdb_open(dir, NULL, &st), KIVIS_OK);
    kivis_storage_close(st);
    r = run_tool((const char *const[]){"check", dir, NULL});
    assert_int_equal(r.status, 2);
    KT_ASSERT_CONTAINS(r.err, "is not a kivis store (no stored schema)\n");
    run_free(&r);

    assert_int_equal(kivis_lmdb_open(dir, NULL, &st), KIVIS_OK); /* damaged schema */
    static const uint8_t key[] = {0, 0, 's', 'c', 'h', 'e', 'm', 'a'};
    raw_put(st, key, sizeof key, "KVS\x01", 4);
    kivis_storage_close(st);
    r = run_tool((const char *const[]){"check", dir, NULL});
    assert_int_equal(r.status, 2);
    KT_ASSERT_CONTAINS(r.err, "damaged store");
    run_free(&r);
    kt_rmdir(dir);
}

static void test_tool_usage(void **state)
{
    (void)state;
    run_result r = run_tool((const char *const[]){"--help", NULL});
    assert_int_equal(r.status, 0);
    KT_ASSERT_CONTAINS(r.out, "usage: kivis [--help | --version] <command>");
    run_free(&r);
    r = run_tool((const char *const[]){"check", "--help", NULL});
    assert_int_equal(r.status, 0);
    KT_ASSERT_CONTAINS(r.out, "usage: kivis check [--no-progress] <store>");
    run_free(&r);
    r = run_tool((const char *const[]){"--version", NULL});
    assert_int_equal(r.status, 0);
    KT_ASSERT_CONTAINS(r.out, "kivis 0.1.0\n");
    run_free(&r);
    r = run_tool((const char *const[]){"frobnicate", NULL});
    assert_int_equal(r.status, 2);
    KT_ASSERT_CONTAINS(r.err, "unknown command 'frobnicate'");
    run_free(&r);
    r = run_tool((const char *const[]){"stats", NULL});
    assert_int_equal(r.status, 2);
    KT_ASSERT_CONTAINS(r.err, "no store given");
    run_free(&r);
    r = run_tool((const char *const[]){NULL});
    assert_int_equal(r.status, 2);
    run_free(&r);
}


/* ---- every command on every persistent backend ------------------------- */

/* Run the tool with args on the fixture's store, which this process lets
 * go of meanwhile (RocksDB allows one process at a time). */
static run_result run_store(fixture *f, const char *const *args)
{
    kivis_storage_close(f->st);
    f->st = NULL; /* teardown's close stays right if an assertion fails */
    run_result r = run_tool(args);
    open_storage(f);
    return r;
}

static void expect(fixture *f, const char *const *args, int status, const char *out,
                   const char *err)
{
    run_result r = run_store(f, args);
    if (r.status != status)
        fail_msg("kivis %s %s: exit %d, not %d\nstdout: %s\nstderr: %s", args[0],
                 args[1] ? args[1] : "", r.status, status, r.out, r.err);
    if (out)
        KT_ASSERT_CONTAINS(r.out, out);
    if (err)
        KT_ASSERT_CONTAINS(r.err, err);
    run_free(&r);
}

static void test_tool_commands(void **state)
{
    fixture *f = *state;
    const char *p = f->path;
    char uri[400], dest[400], line[128];
    snprintf(uri, sizeof uri, "%s:%s", scheme[f->backend], p);
    snprintf(line, sizeof line, "backend  %s\n", scheme[f->backend]);

    expect(f, (const char *const[]){"check", p, NULL}, 0,
           "ok: 0 problems in 5 records and 5 index entries of 4 tables", NULL);
    expect(f, (const char *const[]){"check", uri, NULL}, 0, "ok: 0 problems", NULL);
    expect(f, (const char *const[]){"dump", uri, "user", NULL}, 0,
           "user {2} => {name: \"Bob \\\"B\\\"\", email: \"bob\\n\", age: 40}\n", NULL);
    expect(f, (const char *const[]){"stats", p, NULL}, 0, line, NULL);
    expect(f, (const char *const[]){"schema", p, NULL}, 0,
           "schema pets;\n\nenum toy_kind { TOY_BALL, TOY_MOUSE };\n", NULL);

    /* get: keys as dump prints them, braces optional, fields by name. */
    expect(f, (const char *const[]){"get", p, "user", "1", NULL}, 0,
           "user {1} => {name: \"Ann\", email: \"ann@example.com\", age: 31}\n", NULL);
    expect(f, (const char *const[]){"get", p, "user", "{1}", NULL}, 0, "user {1} =>", NULL);
    expect(f, (const char *const[]){"get", p, "toy", "{TOY_MOUSE, 2}", NULL}, 0,
           "toy {TOY_MOUSE, 2} => {kind: TOY_MOUSE, color: 2}\n", NULL);
    expect(f, (const char *const[]){"get", p, "toy", "TOY_MOUSE,2", NULL}, 0,
           "toy {TOY_MOUSE, 2} =>", NULL);
    expect(f, (const char *const[]){"get", p, "toy", "{color: 2, kind: 1}", NULL}, 0,
           "toy {TOY_MOUSE, 2} =>", NULL);
    expect(f, (const char *const[]){"get", p, "user", "9", NULL}, 1, "",
           "user has no record with key 9");
    expect(f, (const char *const[]){"get", p, "toy", "{TOY_CAR, 2}", NULL}, 2, "",
           "'TOY_CAR' is not a value of enum toy_kind");
    expect(f, (const char *const[]){"get", p, "toy", "TOY_MOUSE", NULL}, 2, "",
           "toy_key has 2 fields, 1 given");
    expect(f, (const char *const[]){"get", p, "user", "abc", NULL}, 2, "",
           "expected a number for id");
    expect(f, (const char *const[]){"get", p, "toy", "{TOY_BALL, 256}", NULL}, 2, "",
           "256 is out of range for color");

    /* find: a value of the indexed field's type. */
    expect(f, (const char *const[]){"find", p, "user", "name", "Ann", NULL}, 0,
           "user {1} => {name: \"Ann\"", NULL);
    expect(f, (const char *const[]){"find", p, "user", "name", "\"Bob \\\"B\\\"\"", NULL},
           0, "user {2} =>", NULL);
    expect(f, (const char *const[]){"find", uri, "pet", "favourite_toy",
                                    "toy_key{TOY_MOUSE, 2}", NULL},
           0, "pet {1} => {name: \"Rex\"", NULL);
    expect(f, (const char *const[]){"find", p, "user", "name", "Zed", NULL}, 1, "",
           "no record of user has name Zed");
    expect(f, (const char *const[]){"find", p, "user", "age", "31", NULL}, 2, "",
           "table user has no index 'age'; its indexes: name");

    /* backup: a new store of the same backend, holding the same records. */
    snprintf(dest, sizeof dest, "%s/copy", f->dir);
    expect(f, (const char *const[]){"backup", p, dest, NULL}, 0, "written to", NULL);
    expect(f, (const char *const[]){"check", dest, NULL}, 0,
           "ok: 0 problems in 5 records and 5 index entries of 4 tables", NULL);
    expect(f, (const char *const[]){"stats", dest, NULL}, 0, line, NULL);
    run_result a = run_store(f, (const char *const[]){"dump", p, NULL});
    run_result b = run_store(f, (const char *const[]){"dump", dest, NULL});
    assert_string_equal(a.out, b.out);
    run_free(&a);
    run_free(&b);
    expect(f, (const char *const[]){"backup", p, dest, NULL}, 2, "",
           "already exists: backup writes a new copy only");

    /* compact: in place where the backend can. */
    if (f->backend == LMDB) {
        expect(f, (const char *const[]){"compact", p, NULL}, 2, "", "kivis backup");
    } else {
        expect(f, (const char *const[]){"compact", p, NULL}, 0, "compacted", NULL);
        expect(f, (const char *const[]){"check", p, NULL}, 0, "ok: 0 problems in 5", NULL);
    }
}

/* ---- paths that are no kivis store -------------------------------------- */

static void write_file(const char *path, const void *data, size_t n)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(data, 1, n, fp), n);
    fclose(fp);
}

/* Every command on path (plain, then as each backend's URI) exits 2 with
 * `message` (plain) and leaves the path as it was. */
static void expect_refused(const char *path, const char *message)
{
    static const char *const cmds[] = {"check", "dump", "stats", "schema", "compact"};
    char *before = NULL;
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    if (S_ISREG(sb.st_mode))
        before = slurp(path);
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        run_result r = run_tool((const char *const[]){cmds[i], path, NULL});
        assert_int_equal(r.status, 2);
        KT_ASSERT_CONTAINS(r.err, message);
        run_free(&r);
    }
    for (int b = LMDB; b <= ROCKSDB; b++) {
        char uri[400];
        snprintf(uri, sizeof uri, "%s:%s", scheme[b], path);
        run_result r = run_tool((const char *const[]){"check", uri, NULL});
        assert_int_equal(r.status, 2);
        KT_ASSERT_CONTAINS(r.err, "is not ");
        run_free(&r);
    }
    run_result r = run_tool((const char *const[]){"get", path, "user", "1", NULL});
    assert_int_equal(r.status, 2);
    run_free(&r);
    struct stat after;
    assert_int_equal(stat(path, &after), 0);
    assert_int_equal(after.st_mode, sb.st_mode);
    if (before) {
        char *now = slurp(path);
        assert_memory_equal(before, now, (size_t)sb.st_size < 65535 ? (size_t)sb.st_size : 65535);
        free(now);
        free(before);
    } else {
        DIR *d = opendir(path);
        int entries = 0;
        for (struct dirent *e; (e = readdir(d));)
            entries++;
        closedir(d);
        assert_int_equal(entries, 2); /* still empty: nothing created */
    }
}

static void test_tool_alien_paths(void **state)
{
    (void)state;
    char dir[256], path[300];
    kt_tempdir(dir, sizeof dir);

    snprintf(path, sizeof path, "%s/random.bin", dir);
    unsigned char noise[4096];
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < sizeof noise; i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        noise[i] = (unsigned char)x;
    }
    write_file(path, noise, sizeof noise);
    expect_refused(path, "random.bin is not a kivis store: it is a binary file of "
                         "4096 bytes, not an SQLite database\n");

    snprintf(path, sizeof path, "%s/notes.txt", dir);
    write_file(path, "remember the milk\n", 18);
    expect_refused(path, "notes.txt is not a kivis store: it is a text file of 18 bytes");

    snprintf(path, sizeof path, "%s/empty", dir);
    assert_int_equal(mkdir(path, 0755), 0);
    expect_refused(path, "empty is not a kivis store: it is an empty directory\n");

    /* The SQLite magic, then garbage: SQLite's own verdict. */
    snprintf(path, sizeof path, "%s/fake.db", dir);
    memcpy(noise, "SQLite format 3", 16);
    write_file(path, noise, sizeof noise);
    expect_refused(path, "is not a kivis store (not a valid sqlite");

    /* A real SQLite database of someone else's: not touched, not WAL. */
    snprintf(path, sizeof path, "%s/other.db", dir);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "CREATE TABLE t(x); INSERT INTO t VALUES (1);",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    expect_refused(path, "other.db is not a kivis store (a sqlite database without "
                         "kivis's data)");

    /* RocksDB's file names over garbage. */
    snprintf(path, sizeof path, "%s/fake.rocks", dir);
    assert_int_equal(mkdir(path, 0755), 0);
    char file[400];
    snprintf(file, sizeof file, "%s/CURRENT", path);
    write_file(file, "MANIFEST-000001\n", 16);
    snprintf(file, sizeof file, "%s/MANIFEST-000001", path);
    write_file(file, noise, 512);
    run_result r = run_tool((const char *const[]){"check", path, NULL});
    assert_int_equal(r.status, 2);
    KT_ASSERT_CONTAINS(r.err, "fake.rocks");
    run_free(&r);

    /* Missing paths and empty arguments: a sentence, nothing created. */
    snprintf(path, sizeof path, "%s/none", dir);
    r = run_tool((const char *const[]){"stats", path, NULL});
    assert_int_equal(r.status, 2);
    KT_ASSERT_CONTAINS(r.err, "/none: no such file or directory (the tool opens existing "
                           "stores only)\n");
    run_free(&r);
    char uri[400];
    snprintf(uri, sizeof uri, "sqlite:%s", path);
    r = run_tool((const char *const[]){"stats", uri, NULL});
    assert_int_equal(r.status, 2);
    KT_ASSERT_CONTAINS(r.err, "no such file or directory");
    run_free(&r);
    struct stat sb;
    assert_int_not_equal(stat(path, &sb), 0);
    r = run_tool((const char *const[]){"check", "", NULL});
    assert_int_equal(r.status, 2);
    assert_string_equal(r.err, "kivis: the store is an empty argument: give a path or "
                               "a URI such as lmdb:DIR\n");
    run_free(&r);
    r = run_tool((const char *const[]){"check", "lmdb:", NULL});
    assert_int_equal(r.status, 2);
    KT_ASSERT_CONTAINS(r.err, "lmdb:: the URI names no store after 'lmdb:'");
    run_free(&r);
    rm_tree(dir);
}

/* ---- backup while another process writes ------------------------------ */

/* A child writing users one transaction at a time until killed. */
static pid_t start_writer(const fixture *f)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        kivis_storage *st;
        kivis_db *db;
        if (open_backend(f->backend, f->path, &st) || kivis_open(st, &pets_schema, NULL, &db))
            _exit(3);
        for (uint32_t i = 0;; i++) {
            char name[32];
            snprintf(name, sizeof name, "writer %u", (unsigned)i);
            user u = {name, "w@example.com", i};
            if (kivis_begin(db) || kivis_put(db, PETS_USER, &u, NULL) ||
                kivis_put(db, PETS_USER, &u, NULL) || kivis_commit(db))
                _exit(4);
        }
    }
    return pid;
}

static void test_tool_backup_while_writing(void **state)
{
    fixture *f = *state;
    kivis_storage_close(f->st);
    f->st = NULL;
    pid_t writer = start_writer(f);
    struct timespec wait = {0, 100 * 1000 * 1000}; /* let it commit some */
    nanosleep(&wait, NULL);
    char dest[400];
    snprintf(dest, sizeof dest, "%s/copy", f->dir);
    run_result r = run_tool((const char *const[]){"backup", f->path, dest, NULL});
    int ws;
    assert_int_equal(waitpid(writer, &ws, WNOHANG), 0); /* it wrote all along */
    kill(writer, SIGKILL);
    assert_int_equal(waitpid(writer, &ws, 0), writer);
    if (r.status != 0)
        fail_msg("backup: exit %d: %s", r.status, r.err);
    run_free(&r);
    open_storage(f);
    r = run_store(f, (const char *const[]){"check", dest, NULL});
    assert_int_equal(r.status, 0);
    KT_ASSERT_CONTAINS(r.out, "ok: 0 problems in ");
    run_free(&r);
    /* The copy holds the writer's records: an odd number of users would
     * be half a transaction. */
    kivis_storage *copy;
    kivis_db *db;
    assert_int_equal(open_backend(f->backend, dest, &copy), KIVIS_OK);
    assert_int_equal(kivis_open(copy, &pets_schema, NULL, &db), KIVIS_OK);
    kivis_check_stats st;
    memset(&st, 0, sizeof st);
    assert_int_equal(kivis_stats(db, &st), KIVIS_OK);
    assert_true(st.tables[PETS_USER].records > 2);
    assert_int_equal(st.tables[PETS_USER].records % 2, 0);
    kivis_stats_free(db, &st);
    kivis_close(db);
    kivis_storage_close(copy);
}

/* RocksDB lets one process open a database: the tool says so. */
static void test_tool_rocksdb_in_use(void **state)
{
    fixture *f = *state;
    char dest[400];
    snprintf(dest, sizeof dest, "%s/copy", f->dir);
    run_result r = run_tool((const char *const[]){"backup", f->path, dest, NULL});
    assert_int_equal(r.status, 2);
    KT_ASSERT_CONTAINS(r.err, "in use: another process holds it locked");
    run_free(&r);
    struct stat sb;
    assert_int_not_equal(stat(dest, &sb), 0);
}

/* ---- the stored schema through kivis-gen -------------------------------- */

static void run_status(const char *const *argv, int want)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    int ws;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    assert_true(WIFEXITED(ws));
    assert_int_equal(WEXITSTATUS(ws), want);
}

static void assert_same_file(const char *a, const char *b)
{
    char *x = slurp(a), *y = slurp(b);
    assert_string_equal(x, y);
    free(x);
    free(y);
}

/* kivis schema prints what kivis-gen compiles into the very files it
 * makes from examples/pets/pets.kvs (tests/gen/golden): the same
 * descriptor, layouts and API. */
static void test_tool_schema_roundtrip(void **state)
{
    fixture *f = *state;
    if (!kivis_gen || !golden_dir)
        skip();
    run_result r = run_on(f, "schema", NULL);
    assert_int_equal(r.status, 0);
    char kvs[400], out[400], got[500], want[500];
    snprintf(kvs, sizeof kvs, "%s/pets.kvs", f->dir);
    write_file(kvs, r.out, strlen(r.out));
    run_free(&r);
    snprintf(out, sizeof out, "%s/gen", f->dir);
    assert_int_equal(mkdir(out, 0755), 0);
    run_status((const char *const[]){kivis_gen, "-o", out, kvs, NULL}, 0);
    for (int i = 0; i < 2; i++) {
        snprintf(got, sizeof got, "%s/pets.kivis.%s", out, i ? "c" : "h");
        snprintf(want, sizeof want, "%s/pets.kivis.%s", golden_dir, i ? "c" : "h");
        assert_same_file(got, want);
    }
}

/* [[optional]] fields: the schema says so, dump prints an absent one as
 * null and a present "" or 0 as itself, and kivis-gen takes the schema. */
static void test_tool_optional(void **state)
{
    (void)state;
    typedef struct item { uint32_t n; bool has_age; uint32_t age; char *nick; } item;
    static const kivis_field item_fields[] = {
        {"n", KIVIS_U32, 0, offsetof(item, n), 4, NULL, NULL, 0},
        {"age", KIVIS_U32, 0, offsetof(item, age), 4, NULL, NULL, KIVIS_FIELD_OPTIONAL},
        {"nick", KIVIS_STRING, 0, offsetof(item, nick), sizeof(char *), NULL, NULL,
         KIVIS_FIELD_OPTIONAL},
    };
    static const kivis_field key_fields[] = {
        {"id", KIVIS_U64, 0, 0, 8, NULL, NULL, 0}};
    static const kivis_struct_desc item_desc = {"item", sizeof(item), 3, item_fields, NULL};
    static const kivis_struct_desc key_desc = {"item_key", 8, 1, key_fields, NULL};
    static const kivis_index_desc indexes[] = {{"age", 1, 0}};
    static const kivis_table_desc tables[] = {
        {"item", &item_desc, &key_desc, KIVIS_KEY_AUTO, NULL, NULL, 1, indexes}};
    static const kivis_schema_desc items = {"items", 1, tables, 0, NULL, 0, NULL};

    char dir[256], kvs[300];
    kt_tempdir(dir, sizeof dir);
    kivis_storage *st;
    kivis_db *db;
    assert_int_equal(kivis_lmdb_open(dir, NULL, &st), KIVIS_OK);
    assert_int_equal(kivis_open(st, &items, NULL, &db), KIVIS_OK);
    item none = {1, false, 5, NULL}, zero = {2, true, 0, ""};
    assert_int_equal(kivis_put(db, 0, &none, NULL), KIVIS_OK);
    assert_int_equal(kivis_put(db, 0, &zero, NULL), KIVIS_OK);
    kivis_close(db);
    kivis_storage_close(st);

    run_result r = run_tool((const char *const[]){"dump", dir, "item", NULL});
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "item {1} => {n: 1, age: null, nick: null}\n"
                               "item {2} => {n: 2, age: 0, nick: \"\"}\n");
    run_free(&r);
    r = run_tool((const char *const[]){"schema", dir, NULL});
    assert_int_equal(r.status, 0);
    KT_ASSERT_CONTAINS(r.out, "struct item {\n    uint32_t n;\n"
                           "    [[index]] [[optional]] uint32_t age;\n"
                           "    [[optional]] char *nick;\n};\n");
    snprintf(kvs, sizeof kvs, "%s/items.kvs", dir);
    write_file(kvs, r.out, strlen(r.out));
    run_free(&r);
    if (kivis_gen)
        run_status((const char *const[]){kivis_gen, "-o", dir, kvs, NULL}, 0);
    rm_tree(dir);
}

/* The derived key of test_tool_schema_every_kind's notes. */
static int note_derive(const void *rec, void *key)
{
    (void)rec;
    memset(key, 0, 16);
    return KIVIS_OK;
}

/* Every kind and key strategy: the printed schema is the one written. */
static void test_tool_schema_every_kind(void **state)
{
    (void)state;
    /* enum shade { RED, GREEN = 5, BLUE }; [[embedded]] struct point; a
     * record of every kind keyed by a string and an int, with a unique
     * and an array index, and a derived-key record. */
    static const char *const shade_names[] = {"RED", "GREEN", "BLUE"};
    static const int32_t shade_values[] = {0, 5, 6};
    static const kivis_enum_desc shade = {"shade", 3, shade_names, shade_values};
    typedef struct point { int32_t x, y; } point;
    static const kivis_field point_fields[] = {
        {"x", KIVIS_I32, 0, offsetof(point, x), 4, NULL, NULL, 0},
        {"y", KIVIS_I32, 0, offsetof(point, y), 4, NULL, NULL, 0},
    };
    static const kivis_struct_desc point_desc = {"point", sizeof(point), 2, point_fields, NULL};
    typedef struct cell {
        char *sheet; int64_t row; uint8_t u8; uint16_t u16s[3]; int8_t i8; int16_t i16;
        bool flag; float f32; double f64; enum { E0 } colour; char code[8];
        kivis_bytes data; point at; point corners[2];
    } cell;
    typedef struct cell_key { char *sheet; int64_t row; } cell_key;
#define F(n, k, c, sz, t, e, fl) {#n, k, c, offsetof(cell, n), sz, t, e, fl}
    static const kivis_field cell_fields[] = {
        F(sheet, KIVIS_STRING, 0, sizeof(char *), NULL, NULL, KIVIS_FIELD_KEY),
        F(row, KIVIS_I64, 0, 8, NULL, NULL, KIVIS_FIELD_KEY),
        F(u8, KIVIS_U8, 0, 1, NULL, NULL, 0),
        F(u16s, KIVIS_U16, 3, 2, NULL, NULL, 0),
        F(i8, KIVIS_I8, 0, 1, NULL, NULL, 0),
        F(i16, KIVIS_I16, 0, 2, NULL, NULL, 0),
        F(flag, KIVIS_BOOL, 0, sizeof(bool), NULL, NULL, 0),
        F(f32, KIVIS_F32, 0, 4, NULL, NULL, 0),
        F(f64, KIVIS_F64, 0, 8, NULL, NULL, 0),
        F(colour, KIVIS_ENUM, 0, sizeof(int), NULL, &shade, 0),
        F(code, KIVIS_CHARS, 0, 8, NULL, NULL, 0),
        F(data, KIVIS_BYTES, 0, sizeof(kivis_bytes), NULL, NULL, 0),
        F(at, KIVIS_STRUCT, 0, sizeof(point), &point_desc, NULL, 0),
        F(corners, KIVIS_STRUCT, 2, sizeof(point), &point_desc, NULL, 0),
    };
#undef F
    static const kivis_field cell_key_fields[] = {
        {"sheet", KIVIS_STRING, 0, offsetof(cell_key, sheet), sizeof(char *), NULL, NULL,
         KIVIS_FIELD_KEY},
        {"row", KIVIS_I64, 0, offsetof(cell_key, row), 8, NULL, NULL, KIVIS_FIELD_KEY},
    };
    static const kivis_struct_desc cell_desc = {"cell", sizeof(cell), 14, cell_fields, NULL};
    static const kivis_struct_desc cell_key_desc = {"cell_key", sizeof(cell_key), 2,
                                                    cell_key_fields, NULL};
    static const uint32_t cell_key_map[] = {0, 1};
    static const kivis_index_desc cell_indexes[] = {
        {"code", 10, KIVIS_INDEX_UNIQUE}, {"u16s", 3, 0}, {"at", 12, 0}};
    typedef struct note { char text[16]; } note;
    typedef struct note_key note_key;
    struct note_key { uint64_t hash; uint32_t len; };
    static const kivis_field note_fields[] = {
        {"text", KIVIS_CHARS, 0, 0, 16, NULL, NULL, 0}};
    static const kivis_field note_key_fields[] = {
        {"hash", KIVIS_U64, 0, offsetof(note_key, hash), 8, NULL, NULL, 0},
        {"len", KIVIS_U32, 0, offsetof(note_key, len), 4, NULL, NULL, 0}};
    static const kivis_struct_desc note_desc = {"note", sizeof(note), 1, note_fields, NULL};
    static const kivis_struct_desc note_key_desc = {"note_key", sizeof(note_key), 2,
                                                    note_key_fields, NULL};
    /* foreign keys with referential actions: one through kivis-gen's
     * hidden index, one on a declared [[index]] */
    typedef struct link { cell_key target; note_key about; } link;
    typedef struct link_key { uint64_t id; } link_key;
    static const kivis_field link_fields[] = {
        {"target", KIVIS_STRUCT, 0, offsetof(link, target), sizeof(cell_key),
         &cell_key_desc, NULL, 0},
        {"about", KIVIS_STRUCT, 0, offsetof(link, about), sizeof(note_key),
         &note_key_desc, NULL, 0}};
    static const kivis_field link_key_fields[] = {
        {"id", KIVIS_U64, 0, 0, 8, NULL, NULL, 0}};
    static const kivis_struct_desc link_desc = {"link", sizeof(link), 2, link_fields, NULL};
    static const kivis_struct_desc link_key_desc = {"link_key", sizeof(link_key), 1,
                                                    link_key_fields, NULL};
    static const kivis_index_desc link_indexes[] = {
        {"about", 1, KIVIS_INDEX_RESTRICT},
        {"target", 0, KIVIS_INDEX_CASCADE | KIVIS_INDEX_HIDDEN}};
    static const kivis_table_desc tables[] = {
        {"cell", &cell_desc, &cell_key_desc, KIVIS_KEY_FIELDS, cell_key_map, NULL, 3,
         cell_indexes},
        {"note", &note_desc, &note_key_desc, KIVIS_KEY_DERIVED, NULL, note_derive, 0, NULL},
        {"link", &link_desc, &link_key_desc, KIVIS_KEY_AUTO, NULL, NULL, 2, link_indexes},
    };
    static const kivis_schema_desc sheets = {"sheets", 3, tables, 0, NULL, 0, NULL};
    static const char expected[] =
        "schema sheets;\n\n"
        "enum shade { RED, GREEN = 5, BLUE };\n\n"
        "[[embedded]]\nstruct point {\n    int32_t x;\n    int32_t y;\n};\n\n"
        "struct cell {\n"
        "    [[key]] char *sheet;\n"
        "    [[key]] int64_t row;\n"
        "    uint8_t u8;\n"
        "    [[index]] uint16_t u16s[3];\n"
        "    int8_t i8;\n"
        "    int16_t i16;\n"
        "    bool flag;\n"
        "    float f32;\n"
        "    double f64;\n"
        "    enum shade colour;\n"
        "    [[unique]] char code[8];\n"
        "    kivis_bytes data;\n"
        "    [[index]] point at;\n"
        "    point corners[2];\n"
        "};\n\n"
        "[[derived_key(uint64_t hash, uint32_t len)]]\n"
        "struct note {\n    char text[16];\n};\n\n"
        "struct link {\n"
        "    [[references(cascade)]] cell_key target;\n"
        "    [[index]] [[references(restrict)]] note_key about;\n"
        "};\n\n";

    char dir[256], kvs[300];
    kt_tempdir(dir, sizeof dir);
    kivis_storage *st;
    kivis_db *db;
    assert_int_equal(kivis_lmdb_open(dir, NULL, &st), KIVIS_OK);
    char err[256] = "";
    kivis_options o = {NULL, 0, err, sizeof err, 0, NULL, NULL, NULL};
    if (kivis_open(st, &sheets, &o, &db) != KIVIS_OK)
        fail_msg("kivis_open: %s", err);
    kivis_close(db);
    kivis_storage_close(st);
    run_result r = run_tool((const char *const[]){"schema", dir, NULL});
    assert_int_equal(r.status, 0);
    KT_ASSERT_CONTAINS(r.out, expected);
    assert_string_equal(r.err, "");
    snprintf(kvs, sizeof kvs, "%s/sheets.kvs", dir);
    write_file(kvs, r.out, strlen(r.out));
    run_free(&r);
    if (kivis_gen)
        run_status((const char *const[]){kivis_gen, "-o", dir, kvs, NULL}, 0);
    rm_tree(dir);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest lib[] = {
        cmocka_unit_test_setup_teardown(test_schema_load_matches_compiled, setup, teardown),
        cmocka_unit_test_setup_teardown(test_schema_load_reads_records, setup, teardown),
        cmocka_unit_test(test_schema_layout_matches_compiled),
        cmocka_unit_test(test_schema_load_no_schema),
        cmocka_unit_test_setup_teardown(test_schema_load_malformed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_good_store, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_missing_entry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_stale_entry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_corrupt_value, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_unknown_keys, setup, teardown),
    };
    const struct CMUnitTest tool[] = {
        cmocka_unit_test_setup_teardown(test_tool_check_ok, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tool_check_problems, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tool_check_warns_dangling, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tool_check_agrees_with_api, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tool_dump, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tool_stats, setup, teardown),
        cmocka_unit_test(test_tool_errors),
        cmocka_unit_test(test_tool_usage),
        cmocka_unit_test_setup_teardown(test_tool_commands, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tool_commands, setup_sqlite, teardown),
        cmocka_unit_test_setup_teardown(test_tool_commands, setup_rocksdb, teardown),
        cmocka_unit_test(test_tool_alien_paths),
        cmocka_unit_test_setup_teardown(test_tool_backup_while_writing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tool_backup_while_writing, setup_sqlite,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_tool_rocksdb_in_use, setup_rocksdb, teardown),
        cmocka_unit_test_setup_teardown(test_tool_schema_roundtrip, setup, teardown),
        cmocka_unit_test(test_tool_schema_every_kind),
        cmocka_unit_test(test_tool_optional),
    };
    if (argc > 1) {
        kivis_tool = argv[1];
        kivis_gen = argc > 2 ? argv[2] : NULL;
        golden_dir = argc > 3 ? argv[3] : NULL;
        return cmocka_run_group_tests_name("kivis tool", tool, NULL, NULL);
    }
    return cmocka_run_group_tests_name("inspect", lib, NULL, NULL);
}
