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

#include "pets_schema.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *kivis_tool;

/* ---- a demo store --------------------------------------------------------- */

typedef struct fixture {
    char dir[256];
    kivis_storage *st;
} fixture;

static void open_storage(fixture *f)
{
    assert_int_equal(kivis_lmdb_open(f->dir, NULL, &f->st), KIVIS_OK);
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
    pet p = {"Rex", {1}, {TOY_MOUSE, 2}};
    assert_int_equal(kivis_put(db, PETS_PET, &p, NULL), KIVIS_OK);
    uint8_t bytes[] = {0xde, 0xad, 0x00, 0x01};
    blob b = {{bytes, sizeof bytes}};
    assert_int_equal(kivis_put(db, PETS_BLOB, &b, NULL), KIVIS_OK);
    kivis_close(db);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    kt_tempdir(f->dir, sizeof f->dir);
    open_storage(f);
    fill_demo(f->st);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    kivis_storage_close(f->st);
    kt_rmdir(f->dir);
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
    kivis_options o = {&a.iface, 0, NULL, 0, 0};
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
    assert_int_equal(st.tables[PETS_PET].index_entries, 1);
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
    run_result r = run_tool((const char *const[]){cmd, f->dir, arg, NULL});
    open_storage(f);
    return r;
}

#define ASSERT_CONTAINS(hay, needle)                                          \
    do {                                                                      \
        if (!strstr((hay), (needle)))                                         \
            fail_msg("missing \"%s\" in:\n%s", (needle), (hay));              \
    } while (0)

static void test_tool_check_ok(void **state)
{
    fixture *f = *state;
    run_result r = run_on(f, "check", NULL);
    assert_int_equal(r.status, 0);
    ASSERT_CONTAINS(r.out, "ok: 0 problems in 5 records and 3 index entries of 4 tables");
    assert_string_equal(r.err, ""); /* no bar: stderr is not a terminal */
    run_free(&r);
}

static void test_tool_check_problems(void **state)
{
    fixture *f = *state;
    raw_del_first(f->st, user_by_name, sizeof user_by_name);
    run_result r = run_on(f, "check", NULL);
    assert_int_equal(r.status, 1);
    ASSERT_CONTAINS(r.out, "problem: user.name missing index entry: the record has no "
                           "entry in index name\n    key 0100");
    ASSERT_CONTAINS(r.out, "FAILED: 1 problem in 5 records and 2 index entries");
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

/* The application renamed table user to member: the store keeps user's
 * records, and the API's check (through the application's schema) and the
 * tool's (through the stored one) agree, clean or damaged. */
static void test_tool_check_agrees_with_api(void **state)
{
    fixture *f = *state;
    kivis_table_desc tables[4];
    memcpy(tables, pets_schema.tables, sizeof tables);
    tables[PETS_USER].name = "member";
    kivis_schema_desc renamed = {"pets", 4, tables};
    char line[160];
    found fd;
    api_check_line(f, &renamed, line, sizeof line, &fd);
    assert_string_equal(line, "ok: 0 problems in 5 records and 3 index entries of 5 tables\n");
    run_result r = run_on(f, "check", NULL);
    assert_int_equal(r.status, 0);
    ASSERT_CONTAINS(r.out, line);
    run_free(&r);

    raw_del_first(f->st, user_by_name, sizeof user_by_name); /* kept user's */
    api_check_line(f, &renamed, line, sizeof line, &fd);
    assert_int_equal(fd.n, 1);
    assert_int_equal(fd.kinds[0], KIVIS_CHECK_MISSING_ENTRY);
    assert_string_equal(fd.table, "user");
    r = run_on(f, "check", NULL);
    assert_int_equal(r.status, 1);
    ASSERT_CONTAINS(r.out, "problem: user.name missing index entry");
    ASSERT_CONTAINS(r.out, line);
    run_free(&r);
}

static void test_tool_dump(void **state)
{
    fixture *f = *state;
    run_result r = run_on(f, "dump", NULL);
    assert_int_equal(r.status, 0);
    ASSERT_CONTAINS(r.out, "user {1} => {name: \"Ann\", email: \"ann@example.com\", age: 31}\n");
    ASSERT_CONTAINS(r.out, "user {2} => {name: \"Bob \\\"B\\\"\", email: \"bob\\n\", age: 40}\n");
    ASSERT_CONTAINS(r.out, "toy {TOY_MOUSE, 2} => {kind: TOY_MOUSE, color: 2}\n");
    ASSERT_CONTAINS(r.out, "pet {1} => {name: \"Rex\", owner: user_key{1}, "
                           "favourite_toy: toy_key{TOY_MOUSE, 2}}\n");
    ASSERT_CONTAINS(r.out, "=> {data: x'dead0001'}\n");
    run_free(&r);

    r = run_on(f, "dump", "pet");
    assert_int_equal(r.status, 0);
    assert_null(strstr(r.out, "user {"));
    ASSERT_CONTAINS(r.out, "pet {1}");
    run_free(&r);

    r = run_on(f, "dump", "nosuch");
    assert_int_equal(r.status, 2);
    ASSERT_CONTAINS(r.err, "no table 'nosuch'");
    run_free(&r);
}

static void test_tool_stats(void **state)
{
    fixture *f = *state;
    run_result r = run_on(f, "stats", NULL);
    assert_int_equal(r.status, 0);
    ASSERT_CONTAINS(r.out, "schema   pets, 4 tables\n");
    ASSERT_CONTAINS(r.out, "map size ");
    ASSERT_CONTAINS(r.out, "table               records  index entries");
    ASSERT_CONTAINS(r.out, "\nuser                      2              2 ");
    ASSERT_CONTAINS(r.out, "\ntotal                     5              3 ");
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
    ASSERT_CONTAINS(r.err, "kivis: ");
    ASSERT_CONTAINS(r.err, "/none: no such file or directory\n");
    struct stat sb;
    assert_int_not_equal(stat(missing, &sb), 0); /* not created */
    run_free(&r);

    r = run_tool((const char *const[]){"dump", dir, NULL}); /* empty directory */
    assert_int_equal(r.status, 2);
    ASSERT_CONTAINS(r.err, "is not a kivis store");
    run_free(&r);

    snprintf(data, sizeof data, "%s/data.mdb", dir); /* not LMDB */
    FILE *fp = fopen(data, "wb");
    for (int i = 0; i < 4096; i++)
        fputc('x', fp);
    fclose(fp);
    r = run_tool((const char *const[]){"stats", dir, NULL});
    assert_int_equal(r.status, 2);
    ASSERT_CONTAINS(r.err, "is not a kivis store");
    run_free(&r);
    kt_rmdir(dir);

    kt_tempdir(dir, sizeof dir); /* LMDB, but no kivis schema */
    kivis_storage *st;
    assert_int_equal(kivis_lmdb_open(dir, NULL, &st), KIVIS_OK);
    kivis_storage_close(st);
    r = run_tool((const char *const[]){"check", dir, NULL});
    assert_int_equal(r.status, 2);
    ASSERT_CONTAINS(r.err, "is not a kivis store (no stored schema)\n");
    run_free(&r);

    assert_int_equal(kivis_lmdb_open(dir, NULL, &st), KIVIS_OK); /* damaged schema */
    static const uint8_t key[] = {0, 0, 's', 'c', 'h', 'e', 'm', 'a'};
    raw_put(st, key, sizeof key, "KVS\x01", 4);
    kivis_storage_close(st);
    r = run_tool((const char *const[]){"check", dir, NULL});
    assert_int_equal(r.status, 2);
    ASSERT_CONTAINS(r.err, "damaged store");
    run_free(&r);
    kt_rmdir(dir);
}

static void test_tool_usage(void **state)
{
    (void)state;
    run_result r = run_tool((const char *const[]){"--help", NULL});
    assert_int_equal(r.status, 0);
    ASSERT_CONTAINS(r.out, "usage: kivis <command>");
    run_free(&r);
    r = run_tool((const char *const[]){"check", "--help", NULL});
    assert_int_equal(r.status, 0);
    ASSERT_CONTAINS(r.out, "usage: kivis check <store>");
    run_free(&r);
    r = run_tool((const char *const[]){"--version", NULL});
    assert_int_equal(r.status, 0);
    ASSERT_CONTAINS(r.out, "kivis 0.1.0\n");
    run_free(&r);
    r = run_tool((const char *const[]){"frobnicate", NULL});
    assert_int_equal(r.status, 2);
    ASSERT_CONTAINS(r.err, "unknown command 'frobnicate'");
    run_free(&r);
    r = run_tool((const char *const[]){"stats", NULL});
    assert_int_equal(r.status, 2);
    ASSERT_CONTAINS(r.err, "no store given");
    run_free(&r);
    r = run_tool((const char *const[]){NULL});
    assert_int_equal(r.status, 2);
    run_free(&r);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest lib[] = {
        cmocka_unit_test_setup_teardown(test_schema_load_matches_compiled, setup, teardown),
        cmocka_unit_test_setup_teardown(test_schema_load_reads_records, setup, teardown),
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
        cmocka_unit_test_setup_teardown(test_tool_check_agrees_with_api, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tool_dump, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tool_stats, setup, teardown),
        cmocka_unit_test(test_tool_errors),
        cmocka_unit_test(test_tool_usage),
    };
    if (argc > 1) {
        kivis_tool = argv[1];
        return cmocka_run_group_tests_name("kivis tool", tool, NULL, NULL);
    }
    return cmocka_run_group_tests_name("inspect", lib, NULL, NULL);
}
