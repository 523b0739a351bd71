/*
 * test_cli_migrate - `kivis migrate STORE SCHEMA.kvs`, running the built
 * tool (KIVIS_TOOL_PATH) on LMDB and SQLite stores that a v1 descriptor
 * wrote: a v2 file declaring a rename, a widening and a new index migrates
 * them (kivis check then finds nothing, kivis schema prints v2, a second
 * run changes nothing); a schema file with an error gets kivis-gen's
 * positioned diagnostic and a narrowing the engine's refusal, and both
 * leave the store byte for byte as it was; the bar is drawn on a terminal
 * (a pseudo-terminal here) and never into a pipe.
 */
#define _XOPEN_SOURCE 700 /* posix_openpt, grantpt, unlockpt, ptsname */

#include "testutil.h"

#include <kivis.h>
#include <kivis/lmdb.h>
#include <kivis/sqlite.h>

#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- schema v1, written by a descriptor -------------------------------- */

typedef struct item_key { uint32_t id; } item_key;
typedef struct item {
    uint32_t id;
    char name[8];
    int32_t stars;
    uint32_t tag;
} item;

#define F(m, k, sz, fl) {#m, k, 0, offsetof(item, m), sz, NULL, NULL, fl}

static const kivis_field item_key_fields[] = {
    {"id", KIVIS_U32, 0, offsetof(item_key, id), 4, NULL, NULL, 0}};
static const kivis_struct_desc item_key_desc = {"item_key", sizeof(item_key), 1,
                                                item_key_fields, NULL};
static const uint32_t item_key_map[] = {0};
static const kivis_field item_fields[] = {
    F(id, KIVIS_U32, 4, KIVIS_FIELD_KEY), F(name, KIVIS_CHARS, 8, 0),
    F(stars, KIVIS_I32, 4, 0), F(tag, KIVIS_U32, 4, 0)};
static const kivis_struct_desc item_desc = {"item", sizeof(item), 4, item_fields, NULL};
static const kivis_index_desc item_indexes[] = {{"tag", 3, 0}};
static const kivis_table_desc v1_tables[] = {
    {"item", &item_desc, &item_key_desc, KIVIS_KEY_FIELDS, item_key_map, NULL, 1,
     item_indexes}};
static const kivis_schema_desc v1 = {"shop", 1, v1_tables, 0, NULL, 0, NULL};

/* The line `kivis schema` starts with. */
#define STORED "/* the schema stored in this store, as kivis-gen reads it */\n"

/* name renamed to title and widened, stars widened and indexed. */
static const char v2_kvs[] = "schema shop;\n"
                             "\n"
                             "struct item {\n"
                             "    [[key]] uint32_t id;\n"
                             "    [[was(name)]] char title[16];\n"
                             "    [[index]] int64_t stars;\n"
                             "    [[index]] uint32_t tag;\n"
                             "};\n";

/* Line 5 lacks its ';'. */
static const char bad_kvs[] = "schema shop;\n"
                              "\n"
                              "struct item {\n"
                              "    [[key]] uint32_t id;\n"
                              "    [[was(name)]] char title[16]\n"
                              "    int32_t stars;\n"
                              "};\n";

/* stars narrowed: the engine refuses it. */
static const char narrow_kvs[] = "schema shop;\n"
                                 "\n"
                                 "struct item {\n"
                                 "    [[key]] uint32_t id;\n"
                                 "    char name[8];\n"
                                 "    int16_t stars;\n"
                                 "    [[index]] uint32_t tag;\n"
                                 "};\n";

#define NITEMS 50u

/* ---- the fixture: a v1 store and the schema files ---------------------- */

enum backend { LMDB, SQLITE };

typedef struct fixture {
    char dir[256];
    char store[320]; /* as the tool is given it */
    char path[300];  /* the backend's path */
    enum backend backend;
} fixture;

static kivis_storage *open_store(const fixture *f)
{
    kivis_storage *st = NULL;
    int rc = f->backend == SQLITE ? kivis_sqlite_open(f->path, NULL, &st)
                                  : kivis_lmdb_open(f->path, NULL, &st);
    assert_int_equal(rc, KIVIS_OK);
    return st;
}

static void write_v1(const fixture *f)
{
    kivis_storage *st = open_store(f);
    kivis_db *db;
    assert_int_equal(kivis_open(st, &v1, NULL, &db), KIVIS_OK);
    assert_int_equal(kivis_begin(db), KIVIS_OK);
    for (uint32_t i = 1; i <= NITEMS; i++) {
        item r = {i, "", -(int32_t)i * 1000, i % 5};
        snprintf(r.name, sizeof r.name, "n%u", i);
        assert_int_equal(kivis_put(db, 0, &r, NULL), KIVIS_OK);
    }
    assert_int_equal(kivis_commit(db), KIVIS_OK);
    kivis_close(db);
    assert_int_equal(kivis_storage_close(st), KIVIS_OK);
}

static void write_text(const fixture *f, const char *name, const char *text)
{
    char path[400];
    snprintf(path, sizeof path, "%s/%s", f->dir, name);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    assert_int_equal(fputs(text, fp) >= 0, 1);
    assert_int_equal(fclose(fp), 0);
}

static int setup_backend(void **state, enum backend b)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    kt_tempdir(f->dir, sizeof f->dir);
    f->backend = b;
    if (b == SQLITE) {
        snprintf(f->path, sizeof f->path, "%s/shop.db", f->dir);
        snprintf(f->store, sizeof f->store, "sqlite:%s", f->path);
    } else {
        snprintf(f->path, sizeof f->path, "%s/shop", f->dir);
        assert_int_equal(mkdir(f->path, 0700), 0);
        snprintf(f->store, sizeof f->store, "lmdb:%s", f->path);
    }
    write_v1(f);
    write_text(f, "v2.kvs", v2_kvs);
    write_text(f, "bad.kvs", bad_kvs);
    write_text(f, "narrow.kvs", narrow_kvs);
    *state = f;
    return 0;
}

static int setup_lmdb(void **state)
{
    return setup_backend(state, LMDB);
}

static int setup_sqlite(void **state)
{
    return setup_backend(state, SQLITE);
}

static int teardown(void **state)
{
    fixture *f = *state;
    if (f->backend == LMDB)
        kt_rmdir(f->path);
    kt_rmdir(f->dir);
    free(f);
    return 0;
}

/* Every key and value of the store, to compare before and after. */
static char *dump(const fixture *f)
{
    kivis_storage *st = open_store(f);
    char *d = kt_dump(st);
    assert_int_equal(kivis_storage_close(st), KIVIS_OK);
    return d;
}

/* ---- running the tool ------------------------------------------------- */

typedef struct run_result {
    int status;
    char out[16384], err[16384];
} run_result;

/* Read fd to its end (or EIO: a pseudo-terminal whose other side closed). */
static void read_all(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    ssize_t got;
    while (n + 1 < cap && (got = read(fd, buf + n, cap - 1 - n)) > 0)
        n += (size_t)got;
    buf[n] = '\0';
}

/* Run `kivis args...` with stdout a pipe and stderr a pipe, or the slave
 * of a pseudo-terminal when `tty`. */
static void run_tool(run_result *r, bool tty, const char *const *args)
{
    int out[2], err[2];
    assert_int_equal(pipe(out), 0);
    if (tty) {
        err[0] = posix_openpt(O_RDWR | O_NOCTTY);
        assert_true(err[0] >= 0);
        assert_int_equal(grantpt(err[0]), 0);
        assert_int_equal(unlockpt(err[0]), 0);
        err[1] = open(ptsname(err[0]), O_RDWR | O_NOCTTY);
        assert_true(err[1] >= 0);
    } else {
        assert_int_equal(pipe(err), 0);
    }
    char *argv[8] = {(char *)KIVIS_TOOL_PATH};
    for (int i = 0; args[i] && i < 6; i++)
        argv[i + 1] = (char *)args[i];
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (dup2(out[1], 1) < 0 || dup2(err[1], 2) < 0)
            _exit(127);
        close(out[0]);
        close(err[0]);
        execv(KIVIS_TOOL_PATH, argv);
        _exit(127);
    }
    close(out[1]);
    close(err[1]);
    /* The outputs are short: stdout fits its pipe while stderr is read. */
    read_all(err[0], r->err, sizeof r->err);
    read_all(out[0], r->out, sizeof r->out);
    close(out[0]);
    close(err[0]);
    int ws;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    assert_true(WIFEXITED(ws));
    r->status = WEXITSTATUS(ws);
}

/* On the caller's stack: a failed assertion leaks nothing. */
#define RUN(r, tty, ...) run_tool(&(r), (tty), (const char *const[]){__VA_ARGS__, NULL})

static void file_in(const fixture *f, const char *name, char *buf, size_t n)
{
    snprintf(buf, n, "%s/%s", f->dir, name);
}

/* ---- tests --------------------------------------------------------------- */

static void test_migrates_to_v2(void **state)
{
    fixture *f = *state;
    char v2[400], line[512];
    file_in(f, "v2.kvs", v2, sizeof v2);
    run_result r;
    RUN(r, false, "migrate", f->store, v2);
    assert_int_equal(r.status, 0);
    snprintf(line, sizeof line, "migrated %s to schema shop in ", f->store);
    KT_ASSERT_CONTAINS(r.out, line);
    /* Rewritten for the rename and widenings, then both indexes built
     * (stars new, tag again over the rewritten records). */
    KT_ASSERT_CONTAINS(r.out, " s: 1 table changed, 50 records rewritten, 2 indexes "
                            "built over 50 records\n");
    assert_string_equal(r.err, ""); /* a pipe: no bar */

    RUN(r, false, "check", f->store);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "ok: 0 problems in 50 records and 100 index entries "
                                "of 1 tables\n");
    RUN(r, false, "schema", f->store);
    assert_int_equal(r.status, 0);
    /* v2 as stored: the declared rename is history now. */
    assert_string_equal(r.out, STORED "schema shop;\n"
                                "\n"
                                "struct item {\n"
                                "    [[key]] uint32_t id;\n"
                                "    char title[16];\n"
                                "    [[index]] int64_t stars;\n"
                                "    [[index]] uint32_t tag;\n"
                                "};\n\n");
    RUN(r, false, "get", f->store, "item", "7");
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "item {7} => {id: 7, title: \"n7\", stars: -7000, "
                                "tag: 2}\n");

    /* Once more: the store holds v2 already. */
    char *before = dump(f);
    RUN(r, false, "migrate", f->store, v2);
    assert_int_equal(r.status, 0);
    snprintf(line, sizeof line, "%s is already at schema shop: nothing changed\n",
             f->store);
    assert_string_equal(r.out, line);
    char *after = dump(f);
    assert_string_equal(before, after);
    free(before);
    free(after);
}

/* The tool fails with `message` in its stderr and the store is as it was. */
static void assert_untouched(const fixture *f, const char *kvs, const char *err)
{
    char path[400];
    file_in(f, kvs, path, sizeof path);
    char *before = dump(f);
    run_result r;
    RUN(r, false, "migrate", f->store, path);
    assert_int_equal(r.status, 2);
    assert_string_equal(r.out, "");
    assert_string_equal(r.err, err);
    char *after = dump(f);
    assert_string_equal(before, after);
    free(before);
    free(after);
    RUN(r, false, "schema", f->store);
    assert_string_equal(r.out, STORED "schema shop;\n"
                               "\n"
                               "struct item {\n"
                               "    [[key]] uint32_t id;\n"
                               "    char name[8];\n"
                               "    int32_t stars;\n"
                               "    [[index]] uint32_t tag;\n"
                               "};\n\n");
}

static void test_bad_schema_file(void **state)
{
    fixture *f = *state;
    char err[1024];
    /* kivis-gen's diagnostic (file:line:col, the line, a caret), then the
     * tool's line; the store is never opened. */
    snprintf(err, sizeof err,
             "%s/bad.kvs:5:33: error: expected ';' after field 'title', found "
             "'int32_t'\n"
             "    [[was(name)]] char title[16]\n"
             "                                ^\n"
             "kivis: %s/bad.kvs: 1 error: nothing was changed\n",
             f->dir, f->dir);
    assert_untouched(f, "bad.kvs", err);
}

static void test_narrowing_refused(void **state)
{
    fixture *f = *state;
    char err[1024];
    snprintf(err, sizeof err,
             "kivis: %s: cannot migrate to %s/narrow.kvs: schema does not match the "
             "stored schema: table item: field 'stars' was int32_t, now int16_t (a "
             "typed migration can convert it: kivis-gen --previous); nothing was "
             "changed\n",
             f->store, f->dir);
    assert_untouched(f, "narrow.kvs", err);
}

static void test_bar_on_terminal_only(void **state)
{
    fixture *f = *state;
    char v2[400];
    file_in(f, "v2.kvs", v2, sizeof v2);
    run_result r;
    RUN(r, true, "migrate", f->store, v2);
    assert_int_equal(r.status, 0);
    KT_ASSERT_CONTAINS(r.err, "\r[");
    KT_ASSERT_CONTAINS(r.err, "] 100% 50/50 records of item rewritten");
    KT_ASSERT_CONTAINS(r.err, "] 100% 50/50 records of item indexed");
    KT_ASSERT_CONTAINS(r.err, "\r\033[K"); /* erased at the end */
    KT_ASSERT_CONTAINS(r.out, "1 table changed");
}

static void test_no_progress_on_terminal(void **state)
{
    fixture *f = *state;
    char v2[400];
    file_in(f, "v2.kvs", v2, sizeof v2);
    run_result r;
    RUN(r, true, "migrate", "--no-progress", f->store,
                                                    v2);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.err, "");
    KT_ASSERT_CONTAINS(r.out, "50 records rewritten");
}

static void test_usage(void **state)
{
    fixture *f = *state;
    run_result r;
    RUN(r, false, "--help");
    assert_int_equal(r.status, 0);
    KT_ASSERT_CONTAINS(r.out, "  migrate <store> <schema.kvs>    migrate the store to the "
                           "schema of a\n");
    RUN(r, false, "migrate", "--help");
    assert_int_equal(r.status, 0);
    KT_ASSERT_CONTAINS(r.out, "usage: kivis migrate [--no-progress] <store> <schema.kvs>\n");
    RUN(r, false, "migrate", f->store);
    assert_int_equal(r.status, 2);
    KT_ASSERT_CONTAINS(r.err, "kivis: too few arguments\n");
    /* A schema file that is not there: said before the store is opened. */
    RUN(r, false, "migrate", f->store, "/nonexistent/v2.kvs");
    assert_int_equal(r.status, 2);
    assert_string_equal(r.err, "kivis: /nonexistent/v2.kvs: cannot read: No such file "
                               "or directory\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_migrates_to_v2, setup_lmdb, teardown),
        cmocka_unit_test_setup_teardown(test_migrates_to_v2, setup_sqlite, teardown),
        cmocka_unit_test_setup_teardown(test_bad_schema_file, setup_lmdb, teardown),
        cmocka_unit_test_setup_teardown(test_bad_schema_file, setup_sqlite, teardown),
        cmocka_unit_test_setup_teardown(test_narrowing_refused, setup_lmdb, teardown),
        cmocka_unit_test_setup_teardown(test_narrowing_refused, setup_sqlite, teardown),
        cmocka_unit_test_setup_teardown(test_bar_on_terminal_only, setup_lmdb, teardown),
        cmocka_unit_test_setup_teardown(test_no_progress_on_terminal, setup_lmdb,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_usage, setup_lmdb, teardown),
    };
    return cmocka_run_group_tests_name("kivis migrate", tests, NULL, NULL);
}
