/* Record-level helpers over the pets descriptor (petsutil.h). */
#include "petsutil.h"
#include "testutil.h"

#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

kivis_schema_desc kt_pets_without_cascade(kivis_table_desc tables[4])
{
    memcpy(tables, pets_schema.tables, 4 * sizeof *tables);
    /* the owner index is the last one, so dropping it is a shorter list */
    assert_int_equal(tables[PETS_PET].nindexes, PET_BY_OWNER + 1);
    assert_int_equal(tables[PETS_PET].indexes[PET_BY_OWNER].flags & KIVIS_INDEX_ACTION,
                     KIVIS_INDEX_CASCADE);
    tables[PETS_PET].nindexes = PET_BY_OWNER;
    return (kivis_schema_desc){"pets", 4, tables, 0, NULL, 0, NULL};
}

user_key kt_put_user(kivis_db *db, const char *name, uint32_t age)
{
    user u = {(char *)name, "x@example.org", age};
    user_key k;
    assert_int_equal(kivis_put(db, PETS_USER, &u, &k), KIVIS_OK);
    return k;
}

size_t kt_users_named(kivis_db *db, const char *name)
{
    kivis_query q = {PETS_USER, USER_BY_NAME, KIVIS_Q_EQ, &name, NULL, NULL, 0, 0};
    kivis_scan *s;
    assert_int_equal(kivis_scan_open(db, &q, &s), KIVIS_OK);
    size_t n = 0;
    user u;
    while (kivis_scan_next(s, NULL, &u) == KIVIS_OK) {
        assert_string_equal(u.name, name);
        kivis_record_clear(db, PETS_USER, &u);
        n++;
    }
    kivis_scan_close(s);
    return n;
}

int kt_increment(kivis_db *db, user_key k)
{
    user u;
    int rc = kivis_begin(db);
    if (rc == KIVIS_OK)
        rc = kivis_get(db, PETS_USER, &k, &u);
    if (rc == KIVIS_OK) {
        u.age++;
        rc = kivis_insert(db, PETS_USER, &k, &u);
        kivis_record_clear(db, PETS_USER, &u);
    }
    if (rc == KIVIS_OK)
        return kivis_commit(db);
    kivis_abort(db);
    return rc;
}

int kt_increments(kivis_db *db, user_key k, int n)
{
    for (int i = 0; i < n; i++) {
        int rc;
        while ((rc = kt_increment(db, k)) == KIVIS_ECONFLICT)
            ;
        if (rc != KIVIS_OK) {
            fprintf(stderr, "increment: %s: %s\n", kivis_errname(rc), kivis_errmsg(db));
            return rc;
        }
    }
    return KIVIS_OK;
}

/* A child of kt_increments_in_processes: never returns. */
static void increment_child(kivis_storage *(*open_store)(void *arg), void *arg,
                            user_key k, int n)
{
    kivis_storage *st = open_store(arg);
    kivis_db *db;
    if (!st || kivis_open(st, &pets_schema, NULL, &db) != KIVIS_OK)
        _exit(1);
    int rc = kt_increments(db, k, n);
    kivis_close(db);
    kivis_storage_close(st);
    _exit(rc == KIVIS_OK ? 0 : 1);
}

void kt_increments_in_processes(kivis_storage *(*open_store)(void *arg), void *arg,
                                user_key k, int procs, int n)
{
    pid_t kids[8];
    assert_true(procs > 0 && procs <= 8);
    for (int i = 0; i < procs; i++) {
        kids[i] = fork();
        assert_true(kids[i] >= 0);
        if (kids[i] == 0)
            increment_child(open_store, arg, k, n);
    }
    for (int i = 0; i < procs; i++) {
        int status;
        assert_int_equal(waitpid(kids[i], &status, 0), kids[i]);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
}

void *kt_hold_read_txn(void *arg)
{
    kt_held_reader *r = arg;
    user_key k = {1};
    user u;
    r->rc = kivis_begin_read(r->db);
    if (r->rc == KIVIS_OK && (r->rc = kivis_get(r->db, PETS_USER, &k, &u)) == KIVIS_OK)
        kivis_record_clear(r->db, PETS_USER, &u);
    __atomic_store_n(&r->holding, 1, __ATOMIC_RELEASE);
    struct timespec ts = {r->hold_ms / 1000, (r->hold_ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    kivis_abort(r->db);
    return NULL;
}

void kt_wait_holding(kt_held_reader *r)
{
    while (!__atomic_load_n(&r->holding, __ATOMIC_ACQUIRE))
        sched_yield();
}
