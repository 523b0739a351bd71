/*
 * test_pets_servers.c - examples/pets over the server backends: the
 * example's whole session on PostgreSQL (the test's private server) and on
 * etcd (the test's private three-member cluster) must print exactly what
 * it prints on the memory backend, but for the lines naming the store.
 * The example is run as a program (its path: argv[1]).
 */
#include "etcdcluster.h"
#include "pgserver.h"
#include "testutil.h"

/* Built only where both backends are (and examples/pets with them). */
#include <kivis/etcd.h>
#include <kivis/postgres.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *example; /* examples/pets' program */

/* The output of `example ARGS`, less the lines naming the store, one of
 * which must start with `store`; its exit status must be 0.  The caller
 * frees it. */
static char *session(const char *args, const char *store)
{
    bool named = false;
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' %s", example, args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t len = 0, cap = 1 << 16;
    char *out = malloc(cap), line[1024];
    assert_non_null(out);
    out[0] = '\0';
    while (fgets(line, sizeof line, p)) {
        if (!strncmp(line, "store: ", 7) || strstr(line, " backend\n")) {
            named |= !strncmp(line, store, strlen(store));
            continue;
        }
        size_t n = strlen(line);
        assert_true(len + n < cap);
        memcpy(out + len, line, n + 1);
        len += n;
    }
    int status = pclose(p);
    if (status != 0)
        fail_msg("%s exited with status %d", cmd, status);
    assert_true(len > 1000); /* the whole session, not an early stop */
    if (!named)
        fail_msg("%s: no line \"%s\"", cmd, store);
    return out;
}

static void same_session_as_memory(const char *args, const char *store)
{
    char *want = session("--memory", "store: in memory"), *got = session(args, store);
    assert_string_equal(got, want);
    free(want);
    free(got);
}

static void test_pets_on_postgres(void **state)
{
    (void)state;
    const char *conninfo = kt_pg_start();
    kt_pg_exec("DROP TABLE IF EXISTS kivis_kv");
    char args[1024];
    snprintf(args, sizeof args, "--postgres '%s'", conninfo);
    same_session_as_memory(args, "store: PostgreSQL");
    kt_pg_exec("DROP TABLE IF EXISTS kivis_kv");
}

static void test_pets_on_etcd(void **state)
{
    (void)state;
    const char *endpoints = kt_etcd_start();
    kt_etcd_wipe("kivis/");
    char args[1024];
    snprintf(args, sizeof args, "--etcd '%s'", endpoints);
    same_session_as_memory(args, "store: etcd");
    kt_etcd_wipe("kivis/");
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s EXAMPLE_PETS\n", argv[0]);
        return 2;
    }
    example = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pets_on_postgres),
        cmocka_unit_test(test_pets_on_etcd),
    };
    return cmocka_run_group_tests_name("pets_servers", tests, NULL, NULL);
}
