/*
 * tests/support/backends.h - the record engine's tests run on every
 * backend: memory, LMDB, SQLite, RocksDB, a memory tier over LMDB
 * (layered) and PostgreSQL (on a private server, pgserver.h).  A fixture
 * opens a fresh store and a kivis_db of the pets schema on it; kt_main
 * runs a program's tests once per backend, or on the one named by argv[1].
 *
 * Header-only: the test program that includes it must include
 * <kivis/layered.h>, <kivis/lmdb.h>, <kivis/memory.h>, <kivis/postgres.h>,
 * <kivis/rocksdb.h> and <kivis/sqlite.h> itself, which is how the build
 * sees which backends to link it with (tests/CMakeLists.txt).
 */
#ifndef KT_BACKENDS_H
#define KT_BACKENDS_H

#include "openers.h"
#include "petsutil.h"
#include "testutil.h"

#include <kivis.h>
#include <kivis/layered.h>
#include <kivis/lmdb.h>
#include <kivis/memory.h>
#include <kivis/postgres.h>
#include <kivis/rocksdb.h>
#include <kivis/sqlite.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The backend the running group of tests uses (set by kt_main). */
static kt_open_fn kt_backend_open;

typedef struct fx {
    char dir[256];
    kivis_storage *st;
    kivis_db *db;
} fx;

/* cmocka setup: a fresh store of the current backend, a db on it. */
static inline int kt_backend_setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    kt_tempdir(f->dir, sizeof f->dir);
    assert_int_equal(kt_backend_open(f->dir, &f->st), KIVIS_OK);
    assert_int_equal(kivis_open(f->st, &pets_schema, NULL, &f->db), KIVIS_OK);
    *state = f;
    return 0;
}

static inline int kt_backend_teardown(void **state)
{
    fx *f = *state;
    kivis_close(f->db);
    assert_int_equal(kivis_storage_close(f->st), KIVIS_OK);
    kt_rmdir(f->dir);
    free(f);
    return 0;
}

/* Run `tests` (n of them) with kt_backend_setup/teardown on every backend,
 * or on the one argv[1] names.  @return main's exit status: 0, 1 when a
 * test failed, 2 for an unknown backend. */
static inline int kt_main(int argc, char **argv, const struct CMUnitTest *tests,
                          size_t n)
{
    static const struct {
        const char *name;
        kt_open_fn open;
    } backends[] = {
        {"memory", kt_open_memory},   {"lmdb", kt_open_lmdb},
        {"sqlite", kt_open_sqlite},   {"rocksdb", kt_open_rocksdb},
        {"layered", kt_open_layered}, {"postgres", kt_open_postgres},
#ifdef KT_WITH_ETCD
        {"etcd", kt_open_etcd},
#endif
    };
    int failed = 0, ran = 0;
    for (size_t i = 0; i < sizeof backends / sizeof backends[0]; i++)
        if (argc < 2 || !strcmp(argv[1], backends[i].name)) {
            kt_backend_open = backends[i].open;
            failed += _cmocka_run_group_tests(backends[i].name, tests, n, NULL,
                                              NULL);
            ran++;
        }
    if (!ran) {
        fprintf(stderr, "%s: unknown backend '%s'\n", argv[0], argv[1]);
        return 2;
    }
    return failed ? 1 : 0;
}

/* Run `tests` (n of them, with their own setup) on the backends whose
 * store outlives the process, LMDB, SQLite and RocksDB (or on the one
 * argv[1] names, when it is one of them): what a kill or a crash needs.
 * @return how many tests failed. */
static inline int kt_run_durable(int argc, char **argv,
                                 const struct CMUnitTest *tests, size_t n)
{
    static const struct {
        const char *name;
        kt_open_fn open;
    } stores[] = {{"lmdb", kt_open_lmdb}, {"sqlite", kt_open_sqlite},
                  {"rocksdb", kt_open_rocksdb}};
    int failed = 0;
    for (size_t i = 0; i < sizeof stores / sizeof stores[0]; i++)
        if (argc < 2 || !strcmp(argv[1], stores[i].name)) {
            kt_backend_open = stores[i].open;
            failed += _cmocka_run_group_tests(stores[i].name, tests, n, NULL, NULL);
        }
    return failed;
}

#define KT_BACKEND_TEST(fn) \
    cmocka_unit_test_setup_teardown(fn, kt_backend_setup, kt_backend_teardown)

#endif
