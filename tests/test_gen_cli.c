/*
 * test_gen_cli.c - the kivis-gen program itself (KIVIS_GEN_PATH, set by
 * the build): -o DIR creates DIR with its parents, and says why when it
 * cannot; --previous OLD.kvs writes a typed migration, or refuses what
 * cannot be migrated at its place in the schema.
 */
#include "testutil.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef KIVIS_GEN_PATH
#error "KIVIS_GEN_PATH names the kivis-gen under test (tests/CMakeLists.txt)"
#endif

static const char schema[] = "schema notes;\n"
                             "struct note { [[index]] char *title; uint32_t stars; };\n";

typedef struct fixture {
    char dir[256];
    char schema[300];
    char err[300]; /* kivis-gen's stderr */
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    kt_tempdir(f->dir, sizeof f->dir);
    snprintf(f->schema, sizeof f->schema, "%s/notes.kvs", f->dir);
    snprintf(f->err, sizeof f->err, "%s/stderr", f->dir);
    FILE *fp = fopen(f->schema, "w");
    assert_non_null(fp);
    fputs(schema, fp);
    assert_int_equal(fclose(fp), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    kt_rmdir(f->dir);
    free(f);
    return 0;
}

/* Run kivis-gen -o out [--previous previous] the schema; its stderr goes
 * to f->err.  @return its exit status. */
static int run_gen_previous(fixture *f, const char *out, const char *previous)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int e = open(f->err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (e < 0 || dup2(e, 2) < 0)
            _exit(127);
        if (previous)
            execl(KIVIS_GEN_PATH, "kivis-gen", "-o", out, "--previous", previous,
                  f->schema, (char *)NULL);
        else
            execl(KIVIS_GEN_PATH, "kivis-gen", "-o", out, f->schema, (char *)NULL);
        _exit(127);
    }
    int ws;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    assert_true(WIFEXITED(ws));
    return WEXITSTATUS(ws);
}

static int run_gen(fixture *f, const char *out)
{
    return run_gen_previous(f, out, NULL);
}

/* The whole of a file (free it); NULL when it cannot be read. */
static char *slurp(const char *path)
{
    FILE *fp = fopen(path, "r");
    if (!fp)
        return NULL;
    char *text = calloc(1, 1 << 20);
    assert_non_null(text);
    size_t n = fread(text, 1, (1 << 20) - 1, fp);
    text[n] = '\0';
    fclose(fp);
    return text;
}

/* f->dir/old.kvs holding `src`; its path in path. */
static void write_old(fixture *f, const char *src, char *path, size_t n)
{
    snprintf(path, n, "%s/old.kvs", f->dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(src, fp);
    assert_int_equal(fclose(fp), 0);
}

static int is_file(const char *dir, const char *name)
{
    char path[512];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static void test_out_dir_created_with_parents(void **state)
{
    fixture *f = *state;
    char a[300], b[320], c[340];
    snprintf(a, sizeof a, "%s/a", f->dir);
    snprintf(b, sizeof b, "%s/b", a);
    snprintf(c, sizeof c, "%s/c", b);

    assert_int_equal(run_gen(f, c), 0);
    assert_true(is_file(c, "notes.kivis.h"));
    assert_true(is_file(c, "notes.kivis.c"));
    /* Again into the directory that now exists. */
    assert_int_equal(run_gen(f, c), 0);

    kt_rmdir(c);
    assert_int_equal(rmdir(b), 0);
    assert_int_equal(rmdir(a), 0);
}

static void test_out_dir_under_a_file_refused(void **state)
{
    fixture *f = *state;
    char out[320];
    snprintf(out, sizeof out, "%s/notes.kvs/gen", f->dir);

    assert_int_equal(run_gen(f, out), 2);
    FILE *fp = fopen(f->err, "r");
    assert_non_null(fp);
    char msg[512] = "";
    size_t n = fread(msg, 1, sizeof msg - 1, fp);
    fclose(fp);
    msg[n] = '\0';
    if (!strstr(msg, "cannot create") || !strstr(msg, "Not a directory"))
        fail_msg("unexpected diagnostic: %s", msg);
}

static void test_out_dir_that_is_a_file_refused(void **state)
{
    fixture *f = *state;
    assert_int_equal(run_gen(f, f->schema), 2);
    assert_false(is_file(f->dir, "notes.kivis.h"));
}

static void test_previous_writes_a_migration(void **state)
{
    fixture *f = *state;
    char old[320], header[320];
    write_old(f, "schema notes;\nstruct note { [[index]] char *title; "
                 "uint64_t stars; };\n", old, sizeof old);
    assert_int_equal(run_gen_previous(f, f->dir, old), 0);
    snprintf(header, sizeof header, "%s/notes.kivis.h", f->dir);
    char *h = slurp(header);
    assert_non_null(h);
    assert_non_null(strstr(h, "    uint64_t stars;\n} note_old;"));
    assert_non_null(strstr(h, "int note_migrate(const note_old *old, note *out, "
                              "void *ctx);"));
    free(h);
}

static void test_previous_refuses_a_changed_key(void **state)
{
    fixture *f = *state;
    char old[320];
    write_old(f, "schema notes;\nstruct note { [[key]] char title[8]; "
                 "uint32_t stars; };\n", old, sizeof old);
    assert_int_equal(run_gen_previous(f, f->dir, old), 1);
    char *err = slurp(f->err);
    assert_non_null(err);
    char want[400];
    snprintf(want, sizeof want, "%s:2:8: error: record 'note': its key is not "
             "the previous schema's", f->schema);
    if (!strstr(err, want))
        fail_msg("stderr '%s' lacks '%s'", err, want);
    free(err);
    assert_false(is_file(f->dir, "notes.kivis.h"));
    /* An OLD.kvs that cannot be read is a usage error. */
    strcat(old, ".missing");
    assert_int_equal(run_gen_previous(f, f->dir, old), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_out_dir_created_with_parents, setup, teardown),
        cmocka_unit_test_setup_teardown(test_out_dir_under_a_file_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_out_dir_that_is_a_file_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_previous_writes_a_migration, setup, teardown),
        cmocka_unit_test_setup_teardown(test_previous_refuses_a_changed_key, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
