/*
 * The SQLite backend beyond the conformance suite: persistence across
 * reopen and across a process that dies without closing, damaged and
 * foreign files, a full disk, key limits, writers in other threads and
 * processes, allocation failures, and the record engine on top.
 */
#include "testutil.h"
#include "petsutil.h"

#include <kivis.h>
#include <kivis/sqlite.h>

#include <sqlite3.h>

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct fx {
    char dir[256], path[300];
    kivis_storage *st;
} fx;

static int open_path(const char *path, size_t max_key, int busy_ms, kivis_storage **st)
{
    kivis_sqlite_options o = {NULL, max_key, busy_ms, 0, 0};
    return kivis_sqlite_open(path, &o, st);
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    kt_tempdir(f->dir, sizeof f->dir);
    snprintf(f->path, sizeof f->path, "%s/kv.db", f->dir);
    assert_int_equal(open_path(f->path, 0, 0, &f->st), KIVIS_OK);
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

static void reopen(fx *f)
{
    kivis_storage_close(f->st);
    f->st = NULL;
    assert_int_equal(open_path(f->path, 0, 0, &f->st), KIVIS_OK);
}

static kivis_slice str(const char *s)
{
    return kivis_slice_make(s, strlen(s));
}

/* Keys k<from> .. k<from+n-1>, values of vlen bytes, one transaction. */
static int put_n(kivis_storage *st, int from, int n, size_t vlen, int durability)
{
    kivis_storage_txn *t;
    int rc = kivis_storage_begin(st, 0, &t);
    if (rc)
        return rc;
    char *val = calloc(1, vlen ? vlen : 1);
    assert_non_null(val);
    for (int i = from; i < from + n && rc == KIVIS_OK; i++) {
        char key[32];
        snprintf(key, sizeof key, "k%08d", i);
        memset(val, 'a' + i % 26, vlen);
        rc = kivis_txn_put(t, str(key), kivis_slice_make(val, vlen));
    }
    free(val);
    if (rc) {
        kivis_txn_abort(t);
        return rc;
    }
    return kivis_txn_commit(t, durability);
}

static char *read_file(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    char *buf = malloc(1 << 16);
    assert_non_null(buf);
    *len = fread(buf, 1, 1 << 16, fp);
    fclose(fp);
    return buf;
}

static void write_file(const char *path, long offset, const void *data, size_t len)
{
    FILE *fp = fopen(path, offset ? "r+b" : "wb");
    assert_non_null(fp);
    assert_int_equal(fseek(fp, offset, SEEK_SET), 0);
    assert_int_equal(fwrite(data, 1, len, fp), len);
    fclose(fp);
}

/* ---- persistence -------------------------------------------------------- */

static void test_commits_persist_across_reopen(void **state)
{
    fx *f = *state;
    assert_int_equal(put_n(f->st, 0, 300, 100, KIVIS_SYNC), KIVIS_OK);
    assert_int_equal(put_n(f->st, 300, 300, 100, KIVIS_NOSYNC), KIVIS_OK);
    kivis_storage_txn *t;
    assert_int_equal(kivis_storage_begin(f->st, 0, &t), KIVIS_OK);
    assert_int_equal(kivis_txn_del(t, str("k00000007")), KIVIS_OK);
    assert_int_equal(kivis_txn_put(t, str("k00000008"), str("new")), KIVIS_OK);
    assert_int_equal(kivis_txn_commit(t, KIVIS_SYNC), KIVIS_OK);
    assert_int_equal(kivis_storage_begin(f->st, 0, &t), KIVIS_OK);
    assert_int_equal(kivis_txn_put(t, str("aborted"), str("x")), KIVIS_OK);
    kivis_txn_abort(t);
    char *before = kt_dump(f->st);
    reopen(f);
    char *after = kt_dump(f->st);
    assert_string_equal(before, after);
    assert_int_equal(kt_count(f->st), 599);
    free(after);
    free(before);
}

/* A child commits (NOSYNC, then SYNC: the flush-after-commit path) and
 * dies without closing anything; both commits are there afterwards. */
static void test_sync_commit_survives_a_dying_process(void **state)
{
    fx *f = *state;
    kivis_storage_close(f->st);
    f->st = NULL;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        kivis_storage *st;
        int ok = open_path(f->path, 0, 0, &st) == KIVIS_OK &&
                 put_n(st, 0, 50, 64, KIVIS_NOSYNC) == KIVIS_OK &&
                 put_n(st, 50, 50, 64, KIVIS_SYNC) == KIVIS_OK;
        _exit(ok ? 0 : 1); /* no close, no checkpoint (valgrind: a leak) */
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(open_path(f->path, 0, 0, &f->st), KIVIS_OK);
    assert_int_equal(kt_count(f->st), 100);
}

/* ---- flushes at commit ------------------------------------------------- */

/* A VFS over the default one that counts xSync calls on WAL files, so the
 * test sees which commits were flushed, and the statement journals opened
 * as files.  Registered as the default VFS for this test program only. */
static sqlite3_vfs *base_vfs;
static sqlite3_vfs counting_vfs;
static const sqlite3_io_methods *base_wal_methods;
static sqlite3_io_methods counting_wal_methods;
static int wal_syncs;
static int journal_files;

static int counting_sync(sqlite3_file *f, int flags)
{
    wal_syncs++;
    return base_wal_methods->xSync(f, flags);
}

static int counting_open(sqlite3_vfs *vfs, sqlite3_filename name, sqlite3_file *f,
                         int flags, int *out_flags)
{
    (void)vfs;
    if (flags & SQLITE_OPEN_SUBJOURNAL)
        journal_files++;
    int rc = base_vfs->xOpen(base_vfs, name, f, flags, out_flags);
    if (rc == SQLITE_OK && (flags & SQLITE_OPEN_WAL) && f->pMethods) {
        if (!base_wal_methods) {
            base_wal_methods = f->pMethods;
            counting_wal_methods = *f->pMethods;
            counting_wal_methods.xSync = counting_sync;
        }
        assert_ptr_equal(f->pMethods, base_wal_methods);
        f->pMethods = &counting_wal_methods;
    }
    return rc;
}

static void install_counting_vfs(void)
{
    if (base_vfs)
        return;
    base_vfs = sqlite3_vfs_find(NULL);
    counting_vfs = *base_vfs;
    counting_vfs.zName = "kivis-test-counting";
    counting_vfs.xOpen = counting_open;
    assert_int_equal(sqlite3_vfs_register(&counting_vfs, 1), SQLITE_OK);
}

/* Syncs of the WAL during one committed write transaction. */
static int syncs_of_commit(kivis_storage *st, int durability)
{
    static int n;
    int before = wal_syncs;
    assert_int_equal(put_n(st, n++, 1, 8, durability), KIVIS_OK);
    return wal_syncs - before;
}

/* Every KIVIS_SYNC commit flushes the WAL, whatever came before it (the
 * connection may have begun with synchronous=NORMAL), and a KIVIS_NOSYNC
 * commit after another one does not. */
static void test_sync_commits_flush_the_wal(void **state)
{
    fx *f = *state;
    install_counting_vfs();
    kivis_storage_close(f->st);
    assert_int_equal(open_path(f->path, 0, 0, &f->st), KIVIS_OK);
    assert_true(syncs_of_commit(f->st, KIVIS_SYNC) >= 1);
    syncs_of_commit(f->st, KIVIS_NOSYNC); /* began FULL: flushed anyway */
    assert_int_equal(syncs_of_commit(f->st, KIVIS_NOSYNC), 0);
    assert_int_equal(syncs_of_commit(f->st, KIVIS_NOSYNC), 0);
    assert_true(syncs_of_commit(f->st, KIVIS_SYNC) >= 1); /* began NORMAL */
    assert_true(syncs_of_commit(f->st, KIVIS_SYNC) >= 1);
    assert_true(syncs_of_commit(f->st, KIVIS_SYNC) >= 1);
    assert_int_equal(kt_count(f->st), 7);
}

/* ---- damaged and foreign files ------------------------------------------ */

static void test_not_a_database_is_ecorrupt_and_untouched(void **state)
{
    fx *f = *state;
    char path[320], junk[8192];
    snprintf(path, sizeof path, "%s/junk.db", f->dir);
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (char)(i * 7 + 3);
    write_file(path, 0, junk, sizeof junk);
    kivis_storage *st = (kivis_storage *)1;
    assert_int_equal(open_path(path, 0, 0, &st), KIVIS_ECORRUPT);
    assert_null(st);
    size_t len;
    char *after = read_file(path, &len);
    assert_int_equal(len, sizeof junk);
    assert_memory_equal(after, junk, sizeof junk);
    free(after);
}

/* A database whose kv table page is overwritten opens (the schema page is
 * sound) and reports KIVIS_ECORRUPT when the table is read. */
static void test_damaged_table_is_ecorrupt(void **state)
{
    fx *f = *state;
    assert_int_equal(put_n(f->st, 0, 20, 10, KIVIS_SYNC), KIVIS_OK);
    kivis_storage_close(f->st); /* the last close checkpoints into kv.db */
    f->st = NULL;
    char garbage[4096];
    memset(garbage, 0xa5, sizeof garbage);
    write_file(f->path, 4096, garbage, sizeof garbage); /* page 2: kv's root */
    assert_int_equal(open_path(f->path, 0, 0, &f->st), KIVIS_OK);
    kivis_storage_txn *t;
    assert_int_equal(kivis_storage_begin(f->st, KIVIS_TXN_RDONLY, &t), KIVIS_OK);
    kivis_slice v;
    assert_int_equal(kivis_txn_get(t, str("k00000001"), &v), KIVIS_ECORRUPT);
    kivis_storage_cursor *c;
    kivis_slice none = {NULL, 0}, k;
    assert_int_equal(kivis_txn_cursor(t, none, none, &c), KIVIS_OK);
    assert_int_equal(kivis_cursor_get(c, KIVIS_FIRST, &k, &v), KIVIS_ECORRUPT);
    kivis_cursor_close(c);
    kivis_txn_abort(t);
}

static void test_bad_paths(void **state)
{
    fx *f = *state;
    kivis_storage *st = (kivis_storage *)1;
    assert_int_equal(kivis_sqlite_open(NULL, NULL, &st), KIVIS_EINVAL);
    assert_null(st);
    assert_int_equal(kivis_sqlite_open("", NULL, &st), KIVIS_EINVAL);
    assert_int_equal(kivis_sqlite_open(":memory:", NULL, &st), KIVIS_EINVAL);
    assert_int_equal(kivis_sqlite_open(f->dir, NULL, &st), KIVIS_EIO); /* a directory */
    char path[320];
    snprintf(path, sizeof path, "%s/missing/kv.db", f->dir);
    assert_int_equal(kivis_sqlite_open(path, NULL, &st), KIVIS_EIO);
    assert_null(st);
    kivis_sqlite_options o = {NULL, (size_t)1 << 40, 0, 0, 0};
    snprintf(path, sizeof path, "%s/other.db", f->dir);
    assert_int_equal(kivis_sqlite_open(path, &o, &st), KIVIS_EINVAL);
    assert_null(st);
}

/* ---- a full disk -------------------------------------------------------- */

/* A 2 MiB tmpfs mounted on a new directory, and the path of a database
 * in it.  Needs root and mount(2): skips the test where either is missing. */
static void small_disk(char *dir, size_t dir_size, char *path, size_t path_size)
{
    kt_tempdir(dir, dir_size);
    if (geteuid() != 0 || mount("tmpfs", dir, "tmpfs", 0, "size=2m") != 0) {
        kt_rmdir(dir);
        skip();
    }
    snprintf(path, path_size, "%s/kv.db", dir);
}

static void test_full_disk_is_efull_and_loses_nothing(void **state)
{
    (void)state;
    char dir[256], path[300];
    small_disk(dir, sizeof dir, path, sizeof path);
    kivis_storage *st;
    assert_int_equal(open_path(path, 0, 0, &st), KIVIS_OK);
    int rc = KIVIS_OK, batches = 0;
    char *before = NULL;
    while (rc == KIVIS_OK && batches < 100) {
        free(before);
        before = kt_dump(st);
        rc = put_n(st, batches * 64, 64, 4096, KIVIS_SYNC);
        batches += rc == KIVIS_OK;
    }
    assert_int_equal(rc, KIVIS_EFULL);
    assert_true(batches > 0);
    char *after = kt_dump(st);
    assert_string_equal(before, after);
    free(after);
    assert_int_equal(put_n(st, 90000, 1, 16, KIVIS_SYNC), KIVIS_OK); /* small still fits */
    free(before);
    before = kt_dump(st);
    kivis_storage_close(st);
    assert_int_equal(open_path(path, 0, 0, &st), KIVIS_OK);
    after = kt_dump(st);
    assert_string_equal(before, after); /* openable, and all that was committed */
    free(after);
    free(before);
    kivis_storage_close(st);
    umount(dir);
    kt_rmdir(dir);
}

/* Puts queued in a transaction that cannot all be written (a disk too
 * small for the transaction's pages, spilled before commit) kill it: a put
 * or a read reports KIVIS_EFULL, every later call fails the same way, and
 * commit applies nothing.  Needs root and mount(2), like the test above. */
static void test_lost_queued_puts_fail_the_transaction(void **state)
{
    (void)state;
    char dir[256], path[300];
    small_disk(dir, sizeof dir, path, sizeof path);
    kivis_storage *st;
    assert_int_equal(open_path(path, 0, 0, &st), KIVIS_OK);
    assert_int_equal(put_n(st, 0, 8, 16, KIVIS_SYNC), KIVIS_OK);
    char *before = kt_dump(st);
    kivis_storage_txn *t;
    assert_int_equal(kivis_storage_begin(st, 0, &t), KIVIS_OK);
    char val[4096];
    memset(val, 'v', sizeof val);
    int rc = KIVIS_OK, i;
    for (i = 100; rc == KIVIS_OK && i < 2000; i++) { /* 8 MB: past cache and disk */
        char key[32];
        snprintf(key, sizeof key, "k%08d", i);
        rc = kivis_txn_put(t, str(key), kivis_slice_make(val, sizeof val));
        kivis_slice v;
        if (rc == KIVIS_OK && i % 100 == 0) /* a read writes the queue too */
            rc = kivis_txn_get(t, str(key), &v);
    }
    assert_int_equal(rc, KIVIS_EFULL);
    kivis_slice v;
    assert_int_equal(kivis_txn_get(t, str("k00000001"), &v), KIVIS_EFULL);
    assert_int_equal(kivis_txn_put(t, str("x"), str("y")), KIVIS_EFULL);
    assert_int_equal(kivis_txn_commit(t, KIVIS_SYNC), KIVIS_EFULL);
    char *after = kt_dump(st);
    assert_string_equal(before, after);
    free(after);
    free(before);
    kivis_storage_close(st);
    umount(dir);
    kt_rmdir(dir);
}

/* ---- queued puts -------------------------------------------------------- */

/* Statements run whose SQL starts with `counted` (NULL: every one). */
static const char *counted;
static int counted_runs;

/* SQLITE_TRACE_STMT: a statement starts to run. */
static int count_statements(unsigned type, void *ctx, void *stmt, void *sql)
{
    (void)type, (void)ctx, (void)stmt;
    if (!counted || strncmp(sql, counted, strlen(counted)) == 0)
        counted_runs++;
    return 0;
}

/* Every connection opened from here on counts its statements. */
static int trace_statements(sqlite3 *db, const char **err, const void *api)
{
    (void)err, (void)api;
    return sqlite3_trace_v2(db, SQLITE_TRACE_STMT, count_statements, NULL);
}

static void expect(kivis_storage_txn *t, const char *key, const char *want)
{
    kivis_slice v;
    int rc = kivis_txn_get(t, str(key), &v);
    kt_expect_answer(rc, v, want);
}

/* The keys a cursor over the whole store meets going `op` (FIRST/NEXT or
 * LAST/PREV), concatenated. */
static void walk(kivis_storage_txn *t, int first, int step, char *out, size_t n)
{
    kivis_storage_cursor *c;
    kivis_slice k, v;
    assert_int_equal(kivis_txn_cursor(t, kivis_slice_make(NULL, 0),
                                      kivis_slice_make(NULL, 0), &c), KIVIS_OK);
    out[0] = '\0';
    for (int rc = kivis_cursor_get(c, first, &k, &v); rc == KIVIS_OK;
         rc = kivis_cursor_get(c, step, &k, &v))
        snprintf(out + strlen(out), n - strlen(out), "%.*s ", (int)k.len,
                 (const char *)k.data);
    kivis_cursor_close(c);
}

/* A thousand puts in a transaction run a few multi-row INSERTs, not one
 * each; and what the transaction reads (gets, cursors both ways, deletes)
 * sees its queued puts in the order they were made. */
static void test_puts_share_statements(void **state)
{
    fx *f = *state;
    kivis_storage *st;
    assert_int_equal(sqlite3_auto_extension((void (*)(void))trace_statements), SQLITE_OK);
    assert_int_equal(open_path(f->path, 0, 0, &st), KIVIS_OK);
    counted = "INSERT";
    counted_runs = 0;
    assert_int_equal(put_n(st, 0, 1000, 8, KIVIS_NOSYNC), KIVIS_OK);
    assert_int_equal(counted_runs, 15 + 2 + 8); /* of 64 rows, 16 and 1: not 1,000 */

    kivis_storage_txn *t;
    assert_int_equal(kivis_storage_begin(st, 0, &t), KIVIS_OK);
    assert_int_equal(kivis_txn_put(t, str("b"), str("1")), KIVIS_OK);
    assert_int_equal(kivis_txn_put(t, str("a"), str("2")), KIVIS_OK);
    assert_int_equal(kivis_txn_put(t, str("b"), str("3")), KIVIS_OK); /* later wins */
    expect(t, "b", "3");
    assert_int_equal(kivis_txn_put(t, str("c"), str("4")), KIVIS_OK);
    char keys[16384];
    walk(t, KIVIS_LAST, KIVIS_PREV, keys, sizeof keys);
    assert_int_equal(strncmp(keys, "k00000999 k00000998 ", 20), 0);
    assert_int_equal(kivis_txn_put(t, str("d"), str("5")), KIVIS_OK);
    assert_int_equal(kivis_txn_del(t, str("a")), KIVIS_OK); /* queued, then deleted */
    assert_int_equal(kivis_txn_put(t, str("e"), str("6")), KIVIS_OK);
    walk(t, KIVIS_FIRST, KIVIS_NEXT, keys, sizeof keys);
    assert_int_equal(strncmp(keys, "b c d e k00000000 ", 18), 0);
    assert_int_equal(kivis_txn_put(t, str("a"), str("7")), KIVIS_OK);
    assert_int_equal(kivis_txn_del(t, str("e")), KIVIS_OK);
    assert_int_equal(kivis_txn_del(t, str("e")), KIVIS_NOTFOUND);
    expect(t, "a", "7");
    assert_int_equal(kivis_txn_commit(t, KIVIS_SYNC), KIVIS_OK);

    assert_int_equal(kivis_storage_begin(st, KIVIS_TXN_RDONLY, &t), KIVIS_OK);
    expect(t, "a", "7");
    expect(t, "b", "3");
    expect(t, "c", "4");
    expect(t, "d", "5");
    expect(t, "e", NULL);
    kivis_txn_abort(t);
    kivis_storage_close(st);
    sqlite3_cancel_auto_extension((void (*)(void))trace_statements);
}

/* A multi-row INSERT of queued puts keeps its statement journal (the
 * pages it changes, for a rollback of the statement alone) in memory:
 * overwriting a thousand values of 1 KB, 64 to a statement, opens no
 * temporary file, where SQLite's default spills a journal past 64 KiB to
 * one; and still none after a vacuum, which runs with SQLite's default. */
static void test_statement_journals_stay_in_memory(void **state)
{
    fx *f = *state;
    char path[400];
    kivis_storage *st;
    snprintf(path, sizeof path, "%s/journal.db", f->dir);
    install_counting_vfs(); /* for connections opened from here on */
    journal_files = 0;
    assert_int_equal(open_path(path, 0, 0, &st), KIVIS_OK);
    assert_int_equal(put_n(st, 0, 1000, 1000, KIVIS_NOSYNC), KIVIS_OK);
    assert_int_equal(put_n(st, 0, 1000, 1000, KIVIS_NOSYNC), KIVIS_OK); /* over pages there */
    assert_int_equal(kivis_sqlite_vacuum(st), KIVIS_OK); /* on file, then back */
    assert_int_equal(put_n(st, 0, 1000, 1000, KIVIS_NOSYNC), KIVIS_OK);
    int journals = journal_files;
    kivis_storage_txn *t;
    kivis_slice v;
    assert_int_equal(kivis_storage_begin(st, KIVIS_TXN_RDONLY, &t), KIVIS_OK);
    assert_int_equal(kivis_txn_get(t, str("k00000999"), &v), KIVIS_OK);
    assert_int_equal(v.len, 1000);
    assert_int_equal(((const char *)v.data)[0], 'a' + 999 % 26);
    kivis_txn_abort(t);
    kivis_storage_close(st);
    assert_int_equal(journals, 0);
}

/* ---- following cursors -------------------------------------------------- */

/* A byte string literal with its NULs. */
#define B(lit) kivis_slice_make(lit, sizeof lit - 1)

/* What a transaction holds under "r" (the rows index entries name by
 * their last two bytes) and the answer a get must give: NULL absent. */
typedef struct row {
    kivis_slice key;
    const char *value;
} row;

/* Index entries under "i": a followed row, one with an empty value, a
 * missing one, an entry shorter than the tail, 00 and ff/80 bytes. */
static const char *const entries[][2] = {
    {"ia\x00\x01", "4"}, {"ib\xff\x80", "4"}, {"ic\x00\x00", "4"}, {"i", "1"},
    {"ie\x01\x02", "4"}, {"if\x02\x03", "4"}, {"ig\x03\x04", "4"},
    {"i\x80\x00\xff", "4"}, {"ir\x00\x01", "4"}, {"h1", "2"}, {"j1", "2"},
};

static void load_follow_store(kivis_storage *st)
{
    kivis_storage_txn *t;
    assert_int_equal(kivis_storage_begin(st, 0, &t), KIVIS_OK);
    for (size_t i = 0; i < sizeof entries / sizeof entries[0]; i++)
        assert_int_equal(kivis_txn_put(t, kivis_slice_make(entries[i][0],
                                                           (size_t)(entries[i][1][0] - '0')),
                                       str("entry")),
                         KIVIS_OK);
    assert_int_equal(kivis_txn_put(t, B("r\x00\x01"), str("v1")), KIVIS_OK);
    assert_int_equal(kivis_txn_put(t, B("r\xff\x80"), str("")), KIVIS_OK);
    assert_int_equal(kivis_txn_put(t, B("r\x01\x02"), str("old5")), KIVIS_OK);
    assert_int_equal(kivis_txn_put(t, B("r\x03\x04"), str("old7")), KIVIS_OK);
    assert_int_equal(kivis_txn_put(t, B("r\x00\xff"), str("v8")), KIVIS_OK);
    assert_int_equal(kivis_txn_commit(t, KIVIS_NOSYNC), KIVIS_OK);
}

static const char *model_answer(const row *model, size_t n, kivis_slice key)
{
    for (size_t i = 0; i < n; i++)
        if (model[i].key.len == key.len && memcmp(model[i].key.data, key.data, key.len) == 0)
            return model[i].value;
    return NULL;
}

typedef struct follow_walk {
    kivis_storage_txn *t;
    kivis_storage_cursor *plain, *follow;
    kivis_slice prefix;
    size_t tail;
    bool free_gets; /* the followed gets must run no statement */
    const row *model;
    size_t nmodel;
    kivis_slice last_value; /* the last followed get's answer ... */
    const char *last_want;  /* ... which must outlive the next step */
} follow_walk;

/* Get the row the follow cursor's entry `k` names, and check it against
 * the model (and that it ran no statement where it must not). */
static void get_followed(follow_walk *w, kivis_slice k)
{
    if (k.len < w->tail || !w->tail)
        return;
    unsigned char key[256];
    assert_true(w->prefix.len + w->tail <= sizeof key);
    memcpy(key, w->prefix.data, w->prefix.len);
    memcpy(key + w->prefix.len, (const unsigned char *)k.data + k.len - w->tail, w->tail);
    kivis_slice fk = kivis_slice_make(key, w->prefix.len + w->tail), v;
    counted = NULL;
    int before = counted_runs;
    int rc = kivis_txn_get(w->t, fk, &v);
    if (w->free_gets)
        assert_int_equal(counted_runs, before);
    const char *want = model_answer(w->model, w->nmodel, fk);
    kt_expect_answer(rc, v, want);
    w->last_value = v;
    w->last_want = want;
}

/* Move both cursors by op: the same answer, then the followed get. */
static int step_both(follow_walk *w, int op, const char *seek)
{
    kivis_slice k1 = seek ? str(seek) : str(""), v1, k2 = k1, v2;
    int rc = kivis_cursor_get(w->plain, op, &k1, &v1);
    assert_int_equal(kivis_cursor_get(w->follow, op, &k2, &v2), rc);
    if (w->last_want) /* the previous get's answer survives a step */
        assert_memory_equal(w->last_value.data, w->last_want, w->last_value.len);
    if (rc)
        return rc;
    assert_int_equal(k1.len, k2.len);
    assert_memory_equal(k1.data, k2.data, k1.len);
    assert_int_equal(v1.len, v2.len);
    assert_memory_equal(v1.data, v2.data, v1.len);
    get_followed(w, k2);
    return rc;
}

/* Forward to the end, back to the start, seeks and steps both ways, past
 * the end and sticky there: a following cursor over [lo, hi) must move as
 * a plain one does, and answer each followed get as the model says. */
static void walk_following(follow_walk *w, kivis_slice lo, kivis_slice hi)
{
    assert_int_equal(kivis_txn_cursor(w->t, lo, hi, &w->plain), KIVIS_OK);
    assert_int_equal(kivis_txn_cursor_follow(w->t, lo, hi, w->prefix, w->tail, &w->follow),
                     KIVIS_OK);
    w->last_want = NULL;
    int n = 0;
    for (int rc = step_both(w, KIVIS_FIRST, NULL); rc == KIVIS_OK;
         rc = step_both(w, KIVIS_NEXT, NULL))
        n++;
    assert_true(n > 3);
    for (int rc = step_both(w, KIVIS_LAST, NULL); rc == KIVIS_OK;
         rc = step_both(w, KIVIS_PREV, NULL))
        n--;
    assert_int_equal(n, 0);
    static const struct { int op; const char *seek; } script[] = {
        {KIVIS_SEEK_GE, "ib"}, {KIVIS_NEXT, NULL}, {KIVIS_NEXT, NULL},
        {KIVIS_SEEK_LE, "if"}, {KIVIS_PREV, NULL}, {KIVIS_NEXT, NULL},
        {KIVIS_PREV, NULL}, {KIVIS_SEEK_GE, "i\x80"}, {KIVIS_PREV, NULL},
        {KIVIS_SEEK_GE, "zz"}, {KIVIS_NEXT, NULL}, {KIVIS_SEEK_LE, ""},
        {KIVIS_LAST, NULL}, {KIVIS_PREV, NULL},
    };
    for (size_t i = 0; i < sizeof script / sizeof script[0]; i++)
        step_both(w, script[i].op, script[i].seek);
    kivis_cursor_close(w->plain);
    kivis_cursor_close(w->follow);
}

/* Every walk with the prefix and tail given, over the index entries and
 * over the whole store. */
static void walk_all(follow_walk *w, kivis_slice prefix, size_t tail, bool free_gets)
{
    w->prefix = prefix;
    w->tail = tail;
    w->free_gets = free_gets;
    walk_following(w, str("i"), str("j"));
    walk_following(w, kivis_slice_make(NULL, 0), kivis_slice_make(NULL, 0));
}

static void check_model(kivis_storage_txn *t, const row *model, size_t n)
{
    for (size_t i = 0; i < n; i++) { /* plain gets: the model is the store */
        kivis_slice v;
        kt_expect_answer(kivis_txn_get(t, model[i].key, &v), v, model[i].value);
    }
}

/* A following cursor steps as a plain one does, and the gets of the rows
 * its entries name run no statement yet answer as plain gets do: found,
 * empty, missing, a missing prefix, keys shorter than the tail, bytes 00
 * and ff, rows deleted, put and overwritten earlier in the same write
 * transaction (queued puts included) and after the step.  A tail of 0 or
 * a followed key too long to remember gives a plain cursor. */
static void test_following_cursor_gets_run_no_statement(void **state)
{
    fx *f = *state;
    kivis_storage *st;
    assert_int_equal(sqlite3_auto_extension((void (*)(void))trace_statements), SQLITE_OK);
    assert_int_equal(open_path(f->path, 0, 0, &st), KIVIS_OK);
    load_follow_store(st);
    follow_walk w = {0};
    char long_prefix[80];
    memset(long_prefix, 'r', sizeof long_prefix);

    const row committed[] = {
        {B("r\x00\x01"), "v1"}, {B("r\xff\x80"), ""}, {B("r\x00\x00"), NULL},
        {B("r\x01\x02"), "old5"}, {B("r\x02\x03"), NULL}, {B("r\x03\x04"), "old7"},
        {B("r\x00\xff"), "v8"},
    };
    assert_int_equal(kivis_storage_begin(st, KIVIS_TXN_RDONLY, &w.t), KIVIS_OK);
    w.model = committed;
    w.nmodel = sizeof committed / sizeof committed[0];
    check_model(w.t, w.model, w.nmodel);
    walk_all(&w, str("r"), 2, true);
    walk_all(&w, str("q"), 2, true); /* the prefix names nothing */
    walk_all(&w, str(""), 3, true);  /* "ir\0\1" names "r\0\1" */
    walk_all(&w, str("r"), 0, false);
    walk_all(&w, kivis_slice_make(long_prefix, sizeof long_prefix), 2, false);
    kivis_txn_abort(w.t);

    const row written[] = {
        {B("r\x00\x01"), "v1"}, {B("r\xff\x80"), ""}, {B("r\x00\x00"), NULL},
        {B("r\x01\x02"), NULL}, {B("r\x02\x03"), "new6"}, {B("r\x03\x04"), "new7"},
        {B("r\x00\xff"), "v8"},
    };
    assert_int_equal(kivis_storage_begin(st, 0, &w.t), KIVIS_OK);
    assert_int_equal(kivis_txn_del(w.t, B("r\x01\x02")), KIVIS_OK);
    assert_int_equal(kivis_txn_put(w.t, B("r\x02\x03"), str("new6")), KIVIS_OK);
    assert_int_equal(kivis_txn_put(w.t, B("r\x03\x04"), str("new7")), KIVIS_OK);
    w.model = written;
    w.nmodel = sizeof written / sizeof written[0];
    walk_all(&w, str("r"), 2, true); /* its first step writes the queue */
    check_model(w.t, w.model, w.nmodel);

    /* A write after a step ends the answer the step kept. */
    kivis_storage_cursor *c;
    kivis_slice k = str("ia"), v;
    assert_int_equal(kivis_txn_cursor_follow(w.t, str("i"), str("j"), str("r"), 2, &c),
                     KIVIS_OK);
    assert_int_equal(kivis_cursor_get(c, KIVIS_SEEK_GE, &k, &v), KIVIS_OK);
    assert_int_equal(kivis_txn_get(w.t, B("r\x00\x01"), &v), KIVIS_OK);
    assert_int_equal(kivis_txn_put(w.t, B("r\x00\x01"), str("changed")), KIVIS_OK);
    kt_expect_answer(kivis_txn_get(w.t, B("r\x00\x01"), &v), v, "changed");
    assert_int_equal(kivis_cursor_get(c, KIVIS_PREV, &k, &v), KIVIS_OK); /* "i" */
    assert_int_equal(kivis_cursor_get(c, KIVIS_NEXT, &k, &v), KIVIS_OK);
    counted_runs = 0;
    kt_expect_answer(kivis_txn_get(w.t, B("r\x00\x01"), &v), v, "changed");
    assert_int_equal(counted_runs, 0);
    assert_int_equal(kivis_txn_del(w.t, B("r\x00\x01")), KIVIS_OK);
    kt_expect_answer(kivis_txn_get(w.t, B("r\x00\x01"), &v), v, NULL);
    kivis_cursor_close(c);
    kivis_txn_abort(w.t);
    kivis_storage_close(st);
    sqlite3_cancel_auto_extension((void (*)(void))trace_statements);
}

/* ---- keys --------------------------------------------------------------- */

static void test_key_size_limit(void **state)
{
    fx *f = *state;
    assert_int_equal(kivis_storage_max_key(f->st), KIVIS_SQLITE_MAX_KEY);
    kivis_storage_close(f->st);
    assert_int_equal(open_path(f->path, 100, 0, &f->st), KIVIS_OK);
    assert_int_equal(kivis_storage_max_key(f->st), 100);
    char key[101];
    memset(key, 'k', sizeof key);
    kivis_storage_txn *t;
    assert_int_equal(kivis_storage_begin(f->st, 0, &t), KIVIS_OK);
    assert_int_equal(kivis_txn_put(t, kivis_slice_make(key, 101), str("v")), KIVIS_EKEYSIZE);
    assert_int_equal(kivis_txn_del(t, kivis_slice_make(key, 101)), KIVIS_EKEYSIZE);
    kivis_slice v;
    assert_int_equal(kivis_txn_get(t, kivis_slice_make(key, 101), &v), KIVIS_NOTFOUND);
    assert_int_equal(kivis_txn_put(t, kivis_slice_make(key, 100), str("v")), KIVIS_OK);
    assert_int_equal(kivis_txn_commit(t, KIVIS_SYNC), KIVIS_OK);
    assert_int_equal(kt_count(f->st), 1);
}

/* ---- writers ------------------------------------------------------------ */

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

typedef struct contender {
    kivis_storage *st;
    int rc;
    double waited_ms;
} contender;

static void *begin_writer(void *arg)
{
    contender *c = arg;
    double t0 = now_ms();
    kivis_storage_txn *t = NULL;
    c->rc = kivis_storage_begin(c->st, 0, &t);
    c->waited_ms = now_ms() - t0;
    if (t) {
        kivis_txn_put(t, str("second"), str("2"));
        kivis_txn_commit(t, KIVIS_SYNC);
    }
    return NULL;
}

/* Same thread: KIVIS_EBUSY at once.  Another thread: waits for the writer,
 * and gets KIVIS_EBUSY when the wait runs out.  Readers run beside. */
static void test_second_writer_in_this_process(void **state)
{
    fx *f = *state;
    kivis_storage_close(f->st);
    assert_int_equal(open_path(f->path, 0, 200, &f->st), KIVIS_OK);
    kivis_storage_txn *t, *t2 = (kivis_storage_txn *)1, *r;
    assert_int_equal(kivis_storage_begin(f->st, 0, &t), KIVIS_OK);
    assert_int_equal(kivis_storage_begin(f->st, 0, &t2), KIVIS_EBUSY);
    assert_null(t2);
    assert_int_equal(kivis_txn_put(t, str("first"), str("1")), KIVIS_OK);
    assert_int_equal(kivis_storage_begin(f->st, KIVIS_TXN_RDONLY, &r), KIVIS_OK);
    kivis_slice v;
    assert_int_equal(kivis_txn_get(r, str("first"), &v), KIVIS_NOTFOUND);
    kivis_txn_abort(r);

    contender c = {f->st, 0, 0};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, begin_writer, &c), 0);
    pthread_join(th, NULL);
    assert_int_equal(c.rc, KIVIS_EBUSY);
    assert_true(c.waited_ms >= 150);

    assert_int_equal(pthread_create(&th, NULL, begin_writer, &c), 0);
    struct timespec pause = {0, 50 * 1000 * 1000};
    nanosleep(&pause, NULL); /* let it wait, then make way */
    assert_int_equal(kivis_txn_commit(t, KIVIS_SYNC), KIVIS_OK);
    pthread_join(th, NULL);
    assert_int_equal(c.rc, KIVIS_OK);
    assert_int_equal(kt_count(f->st), 2);
}

/* A writer in another process holds SQLite's write lock: this one waits
 * busy_timeout_ms and gets KIVIS_EBUSY, and gets in once it is gone. */
static void test_second_writer_in_another_process(void **state)
{
    fx *f = *state;
    kivis_storage_close(f->st);
    assert_int_equal(open_path(f->path, 0, 200, &f->st), KIVIS_OK);
    int to_child[2], to_parent[2];
    assert_int_equal(pipe(to_child), 0);
    assert_int_equal(pipe(to_parent), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) { /* hold a write transaction until told to commit */
        kivis_storage *st;
        kivis_storage_txn *t;
        char b = 0;
        int ok = open_path(f->path, 0, 0, &st) == KIVIS_OK &&
                 kivis_storage_begin(st, 0, &t) == KIVIS_OK &&
                 kivis_txn_put(t, str("child"), str("c")) == KIVIS_OK;
        ok = ok && write(to_parent[1], "r", 1) == 1 && read(to_child[0], &b, 1) == 1;
        ok = ok && kivis_txn_commit(t, KIVIS_SYNC) == KIVIS_OK;
        if (ok) /* committed: nothing is open but the storage */
            kivis_storage_close(st);
        _exit(ok ? 0 : 1);
    }
    char b;
    assert_int_equal(read(to_parent[0], &b, 1), 1);
    kivis_storage_txn *t = (kivis_storage_txn *)1;
    double t0 = now_ms();
    assert_int_equal(kivis_storage_begin(f->st, 0, &t), KIVIS_EBUSY);
    assert_true(now_ms() - t0 >= 150);
    assert_null(t);
    assert_int_equal(write(to_child[1], "c", 1), 1);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(put_n(f->st, 0, 1, 1, KIVIS_SYNC), KIVIS_OK);
    assert_int_equal(kt_count(f->st), 2);
    for (int i = 0; i < 2; i++) {
        close(to_child[i]);
        close(to_parent[i]);
    }
}

/* ---- allocation failures ------------------------------------------------ */

/* Open, write, read (get and cursor) and commit with the n-th allocation
 * failing: each step succeeds or says KIVIS_ENOMEM, and every byte comes
 * back.  @return true when nothing failed (n is past the last allocation). */
static bool workload_with_failure(const char *path, unsigned long n)
{
    kt_alloc a;
    kt_alloc_init(&a);
    kt_alloc_fail_at(&a, n);
    kivis_sqlite_options o = {&a.iface, 0, 0, 0, 0};
    kivis_storage *st = NULL;
    int rc = kivis_sqlite_open(path, &o, &st);
    kivis_storage_txn *t = NULL;
    if (!rc)
        rc = kivis_storage_begin(st, 0, &t);
    kivis_slice v, k, none = {NULL, 0};
    for (int i = 0; i < 3 && !rc; i++) {
        rc = kivis_txn_put(t, str(i ? "b" : "a"), str("value"));
        for (int j = 0; j < 3 && !rc; j++) /* enough gets to need a chunk */
            rc = kivis_txn_get(t, str("a"), &v);
    }
    kivis_storage_cursor *c = NULL;
    if (!rc)
        rc = kivis_txn_cursor(t, none, none, &c);
    while (!rc)
        rc = kivis_cursor_get(c, KIVIS_NEXT, &k, &v);
    rc = rc == KIVIS_NOTFOUND ? KIVIS_OK : rc;
    kivis_cursor_close(c);
    if (t)
        rc = rc ? (kivis_txn_abort(t), rc) : kivis_txn_commit(t, KIVIS_SYNC);
    kivis_storage_close(st);
    assert_true(rc == KIVIS_OK || rc == KIVIS_ENOMEM);
    assert_int_equal(a.live_blocks, 0);
    assert_int_equal(a.live_bytes, 0);
    return a.failures == 0;
}

static void test_allocation_failures(void **state)
{
    fx *f = *state;
    unsigned long n = 1;
    while (!workload_with_failure(f->path, n))
        n++;
    assert_true(n > 5); /* storage, path, connection, txn, arena, cursor ... */
}

/* ---- the record engine on SQLite ---------------------------------------- */

/* Get every key k<0> .. k<n-1> in one read transaction of st; returns
 * how many bytes SQLite's allocations grew by meanwhile (its page cache)
 * and whether the database file at path was memory-mapped meanwhile. */
static long long read_all(kivis_storage *st, int n, const char *path, bool *mapped)
{
    kivis_storage_txn *t;
    assert_int_equal(kivis_storage_begin(st, KIVIS_TXN_RDONLY, &t), KIVIS_OK);
    sqlite3_int64 before = sqlite3_memory_used();
    for (int i = 0; i < n; i++) {
        char key[32];
        kivis_slice v;
        snprintf(key, sizeof key, "k%08d", i);
        assert_int_equal(kivis_txn_get(t, str(key), &v), KIVIS_OK);
    }
    long long grew = (long long)(sqlite3_memory_used() - before);
    /* a mapping of the file itself: its line in maps ends with the path */
    *mapped = false;
    FILE *maps = fopen("/proc/self/maps", "r");
    assert_non_null(maps);
    char line[4096];
    size_t pl = strlen(path);
    while (fgets(line, sizeof line, maps)) {
        size_t ll = strcspn(line, "\n");
        if (ll >= pl && !memcmp(line + ll - pl, path, pl) && line[ll - pl - 1] == ' ')
            *mapped = true;
    }
    fclose(maps);
    kivis_txn_abort(t);
    return grew;
}

/* cache_size and mmap_size reach every pooled connection: 8 MB of records
 * read through a 32 MiB page cache fill it past SQLite's default of 2 MiB,
 * and with a memory map the file is mapped (then the page cache stays
 * small, the pages being read in place). */
static void test_cache_and_mmap_options(void **state)
{
    fx *f = *state;
    enum { N = 8000, VLEN = 1000 };
    assert_int_equal(put_n(f->st, 0, N, VLEN, KIVIS_NOSYNC), KIVIS_OK);
    bool mapped;
    long long grew = read_all(f->st, N, f->path, &mapped); /* the defaults */
    assert_true(grew < 3LL << 20);
    assert_false(mapped);

    kivis_storage *big;
    kivis_sqlite_options o = {NULL, 0, 0, (size_t)32 << 20, 0};
    assert_int_equal(kivis_sqlite_open(f->path, &o, &big), KIVIS_OK);
    grew = read_all(big, N, f->path, &mapped);
    assert_true(grew > 6LL << 20);
    assert_false(mapped);
    kivis_storage_close(big);

    kivis_storage *mm;
    kivis_sqlite_options m = {NULL, 0, 0, 0, (size_t)64 << 20};
    assert_int_equal(kivis_sqlite_open(f->path, &m, &mm), KIVIS_OK);
    grew = read_all(mm, N, f->path, &mapped);
    assert_true(mapped);
    assert_true(grew < 3LL << 20);
    kivis_storage_close(mm);
}

static void test_record_engine_end_to_end(void **state)
{
    fx *f = *state;
    kivis_db *db;
    assert_int_equal(kivis_open(f->st, &pets_schema, NULL, &db), KIVIS_OK);
    for (int i = 0; i < 60; i++)
        kt_put_user(db, i % 3 ? "many" : "few", (uint32_t)i);
    user_key gone = {60};
    assert_int_equal(kivis_remove(db, PETS_USER, &gone), KIVIS_OK);
    user u;
    user_key k = {8};
    assert_int_equal(kivis_get(db, PETS_USER, &k, &u), KIVIS_OK);
    assert_string_equal(u.name, "many");
    assert_int_equal(u.age, 7);
    kivis_record_clear(db, PETS_USER, &u);
    assert_int_equal(kt_users_named(db, "few"), 20);
    assert_int_equal(kt_users_named(db, "many"), 39);
    kivis_close(db);

    reopen(f);
    assert_int_equal(kivis_open(f->st, &pets_schema, NULL, &db), KIVIS_OK);
    assert_int_equal(kt_users_named(db, "few"), 20);
    assert_int_equal(kt_users_named(db, "many"), 39);
    assert_int_equal(kivis_get(db, PETS_USER, &gone, &u), KIVIS_NOTFOUND);
    assert_int_equal(kt_put_user(db, "new", 1).id, 61); /* 60 was issued */
    kivis_close(db);
}

/* A read-only index scan follows its entries to their records (user
 * keys are auto-increment): no get statement a record, and the records
 * are the ones a get gives. */
static void test_index_scans_follow_their_records(void **state)
{
    fx *f = *state;
    kivis_storage *st;
    kivis_db *db;
    assert_int_equal(sqlite3_auto_extension((void (*)(void))trace_statements), SQLITE_OK);
    assert_int_equal(open_path(f->path, 0, 0, &st), KIVIS_OK);
    assert_int_equal(kivis_open(st, &pets_schema, NULL, &db), KIVIS_OK);
    for (int i = 0; i < 30; i++)
        kt_put_user(db, i % 3 ? "many" : "few", (uint32_t)i);
    counted = "SELECT v FROM kv WHERE k = ?1";
    counted_runs = 0;
    assert_int_equal(kt_users_named(db, "few"), 10);
    assert_int_equal(kt_users_named(db, "many"), 20);
    assert_int_equal(counted_runs, 0);
    kivis_close(db);
    kivis_storage_close(st);
    sqlite3_cancel_auto_extension((void (*)(void))trace_statements);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_commits_persist_across_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sync_commit_survives_a_dying_process, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_sync_commits_flush_the_wal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_a_database_is_ecorrupt_and_untouched, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_damaged_table_is_ecorrupt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_paths, setup, teardown),
        cmocka_unit_test(test_full_disk_is_efull_and_loses_nothing),
        cmocka_unit_test(test_lost_queued_puts_fail_the_transaction),
        cmocka_unit_test_setup_teardown(test_puts_share_statements, setup, teardown),
        cmocka_unit_test_setup_teardown(test_statement_journals_stay_in_memory, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_following_cursor_gets_run_no_statement, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_key_size_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_second_writer_in_this_process, setup, teardown),
        cmocka_unit_test_setup_teardown(test_second_writer_in_another_process, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_allocation_failures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_and_mmap_options, setup, teardown),
        cmocka_unit_test_setup_teardown(test_record_engine_end_to_end, setup, teardown),
        cmocka_unit_test_setup_teardown(test_index_scans_follow_their_records, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
