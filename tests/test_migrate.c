/*
 * test_migrate - typed migrations (kivis-gen --previous): a store written
 * with examples/migrate/people_v1.kvs (generated with the prefix v1_) is
 * opened with people_v2.kvs generated with --previous people_v1.kvs, whose
 * person_migrate this file defines: every person is converted (name split,
 * balance narrowed), its indexes rebuilt (kivis_check finds nothing amiss),
 * the unchanged note table left as it was.  A migration that fails, or
 * changes a record's key, leaves the store byte for byte as v1 wrote it;
 * a store in a layout neither v2 nor its migration knows is refused
 * saying so; a SIGKILL halfway leaves wholly v1 or wholly v2.  Every
 * backend (kt_main); the kill on LMDB, SQLite and RocksDB.
 */
#include "backends.h"
#include "people.kivis.h"    /* v2 with the typed migration */
#include "v1_people.kivis.h" /* v1 */

#include <kivis/inspect.h>
#include <kivis/layered.h>
#include <kivis/lmdb.h>
#include <kivis/memory.h>
#include <kivis/postgres.h>
#include <kivis/rocksdb.h>
#include <kivis/sqlite.h>

#include <unistd.h>

#define NPEOPLE 300u
#define NLAST 7u /* distinct last names */

/* How person_migrate behaves, through kivis_options.migrate_ctx. */
typedef struct mctx {
    uint32_t fail_id;  /* return KIVIS_ERANGE for this id (0: none) */
    uint32_t rekey_id; /* give this id's record another key (0: none) */
    uint64_t calls;
} mctx;

int person_migrate(const person_old *old, person *out, void *ctx)
{
    mctx *m = ctx;
    m->calls++;
    if (old->id == m->fail_id)
        return KIVIS_ERANGE;
    const char *space = strchr(old->name, ' ');
    assert_non_null(space);
    snprintf(out->first, sizeof out->first, "%.*s", (int)(space - old->name),
             old->name);
    snprintf(out->last, sizeof out->last, "%s", space + 1);
    out->id = old->id == m->rekey_id ? old->id + 100000 : old->id;
    out->balance = (int32_t)old->balance;
    out->role = old->role;
    return KIVIS_OK;
}

/* ---- the store v1 writes ----------------------------------------------- */

static int64_t balance_of(uint32_t i) { return (int64_t)i * 1000 - 50000; }

static void fill_v1(kivis_storage *st, uint32_t n)
{
    v1_people_db *db;
    assert_int_equal(v1_people_open(st, NULL, &db), KIVIS_OK);
    assert_int_equal(v1_people_begin(db), KIVIS_OK);
    for (uint32_t i = 1; i <= n; i++) {
        v1_person p = {i, "", balance_of(i), (v1_role)(i % 3)};
        snprintf(p.name, sizeof p.name, "First%u Last%u", i, i % NLAST);
        assert_int_equal(v1_person_put(db, &p, NULL), KIVIS_OK);
        v1_note note = {{i}, "hello"};
        assert_int_equal(v1_note_put(db, &note, NULL), KIVIS_OK);
    }
    assert_int_equal(v1_people_commit(db), KIVIS_OK);
    v1_people_close(db);
}

typedef struct mfx {
    char dir[256];
    kivis_storage *st;
    char msg[256];
    mctx m;
    uint64_t last_done, last_total; /* progress seen */
} mfx;

static int setup(void **state)
{
    mfx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    kt_tempdir(f->dir, sizeof f->dir);
    assert_int_equal(kt_backend_open(f->dir, &f->st), KIVIS_OK);
    fill_v1(f->st, NPEOPLE);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    mfx *f = *state;
    assert_int_equal(kivis_storage_close(f->st), KIVIS_OK);
    kt_rmdir(f->dir);
    free(f);
    return 0;
}

static void progress(void *ctx, const kivis_progress *p)
{
    mfx *f = ctx;
    assert_string_equal(p->table, "person"); /* note is not rewritten */
    assert_true(p->done <= p->total);
    if (p->phase != KIVIS_PROGRESS_REWRITE)
        return;
    f->last_done = p->done;
    f->last_total = p->total;
}

static int open_v2(mfx *f, people_db **db)
{
    kivis_options o = {.errbuf = f->msg, .errbuf_size = sizeof f->msg,
                       .progress = progress, .progress_ctx = f,
                       .migrate_ctx = &f->m};
    f->msg[0] = '\0';
    f->m.calls = 0;
    return people_open(f->st, &o, db);
}

/* Every person as v1 wrote it, read with v1. */
static void assert_v1_whole(kivis_storage *st, uint32_t n)
{
    v1_people_db *db;
    assert_int_equal(v1_people_open(st, NULL, &db), KIVIS_OK);
    for (uint32_t i = 1; i <= n; i++) {
        v1_person p;
        char name[64];
        snprintf(name, sizeof name, "First%u Last%u", i, i % NLAST);
        assert_int_equal(v1_person_get(db, (v1_person_key){i}, &p), KIVIS_OK);
        assert_string_equal(p.name, name);
        assert_true(p.balance == balance_of(i));
        v1_person_clear(db, &p);
    }
    kt_check_clean(v1_people_kivis_db(db));
    v1_people_close(db);
}

/* Every person converted, the last-name index answering for each name,
 * the notes and their index as they were. */
static void assert_v2_whole(people_db *db, uint32_t n)
{
    for (uint32_t i = 1; i <= n; i++) {
        person p;
        char first[32], last[32];
        snprintf(first, sizeof first, "First%u", i);
        snprintf(last, sizeof last, "Last%u", i % NLAST);
        assert_int_equal(person_get(db, (person_key){i}, &p), KIVIS_OK);
        assert_string_equal(p.first, first);
        assert_string_equal(p.last, last);
        assert_int_equal(p.balance, (int32_t)balance_of(i));
        assert_int_equal(p.role, (role)(i % 3));
        person_clear(db, &p);
    }
    for (uint32_t l = 0; l < NLAST; l++) {
        char last[32];
        uint64_t count = 0, want = 0;
        snprintf(last, sizeof last, "Last%u", l);
        for (uint32_t i = 1; i <= n; i++)
            want += i % NLAST == l;
        assert_int_equal(person_count_by_last(db, last, &count), KIVIS_OK);
        assert_int_equal(count, want);
    }
    uint64_t notes = 0;
    assert_int_equal(note_count_by_who(db, (person_key){n}, &notes), KIVIS_OK);
    assert_int_equal(notes, 1);
    assert_int_equal(person_count(db, &notes), KIVIS_OK);
    assert_int_equal(notes, n);
    kt_check_clean(people_kivis_db(db));
}

/* The open must fail with rc and a message holding `msg`, changing
 * nothing: v1 still reads the store whole. */
static void assert_refused(mfx *f, int rc, const char *msg)
{
    char *before = kt_dump(f->st);
    people_db *db = (people_db *)1;
    assert_int_equal(open_v2(f, &db), rc);
    assert_null(db);
    if (!strstr(f->msg, msg))
        fail_msg("message '%s' lacks '%s'", f->msg, msg);
    char *after = kt_dump(f->st);
    assert_string_equal(before, after);
    free(after);
    free(before);
    assert_v1_whole(f->st, NPEOPLE);
}

/* ---- the tests --------------------------------------------------------- */

static void test_every_record_converted(void **state)
{
    mfx *f = *state;
    people_db *db = NULL;
    if (open_v2(f, &db))
        fail_msg("people_open: %s", f->msg);
    assert_int_equal(f->m.calls, NPEOPLE);
    assert_int_equal(f->last_done, NPEOPLE);
    assert_int_equal(f->last_total, NPEOPLE);
    assert_v2_whole(db, NPEOPLE);
    people_close(db);
    /* The store is v2's now: no migration at the next open. */
    assert_int_equal(open_v2(f, &db), KIVIS_OK);
    assert_int_equal(f->m.calls, 0);
    assert_v2_whole(db, NPEOPLE);
    people_close(db);
    /* And v1's layout is refused from now on. */
    v1_people_db *v1 = (v1_people_db *)1;
    assert_int_equal(v1_people_open(f->st, NULL, &v1), KIVIS_ESCHEMA);
}

static void test_failing_migration_changes_nothing(void **state)
{
    mfx *f = *state;
    f->m.fail_id = 123;
    assert_refused(f, KIVIS_ERANGE,
                   "table person: the typed migration of record (id=123) "
                   "returned -14 (KIVIS_ERANGE); nothing was changed");
    assert_int_equal(f->m.calls, 123); /* stopped at the failure */
    f->m.fail_id = 0;
    people_db *db;
    assert_int_equal(open_v2(f, &db), KIVIS_OK);
    assert_v2_whole(db, NPEOPLE);
    people_close(db);
}

static void test_migration_changing_a_key_is_refused(void **state)
{
    mfx *f = *state;
    f->m.rekey_id = 7;
    assert_refused(f, KIVIS_ESCHEMA,
                   "table person: the typed migration changed the key of "
                   "record (id=7) (a migration keeps every record's key); "
                   "nothing was changed");
}

/* v2's schema with its migration left out, or converting from a layout
 * the store does not have: the refusal says a migration is needed. */
static void test_layout_of_neither_is_refused(void **state)
{
    mfx *f = *state;
    kivis_schema_desc s = people_schema;
    s.nmigrations = 0;
    s.migrations = NULL;
    char *before = kt_dump(f->st);
    kivis_options o = {.errbuf = f->msg, .errbuf_size = sizeof f->msg};
    kivis_db *db = (kivis_db *)1;
    assert_int_equal(kivis_open(f->st, &s, &o, &db), KIVIS_ESCHEMA);
    assert_non_null(strstr(f->msg, "(a typed migration can convert it: "
                                   "kivis-gen --previous)"));
    /* from: v1's person without its last field, role */
    kivis_migration m = people_schema.migrations[0];
    kivis_table_desc from = *m.from;
    kivis_struct_desc rec = *from.record;
    rec.nfields--;
    rec.decode = NULL;
    from.record = &rec;
    m.from = &from;
    s.nmigrations = 1;
    s.migrations = &m;
    assert_int_equal(kivis_open(f->st, &s, &o, &db), KIVIS_ESCHEMA);
    assert_null(db);
    assert_non_null(strstr(f->msg, "(the store's layout is not the one its "
                                   "typed migration converts from either)"));
    char *after = kt_dump(f->st);
    assert_string_equal(before, after);
    free(after);
    free(before);
}

/* ---- killed midway ----------------------------------------------------- */

#define NKILL 20000u

typedef struct kill_arg {
    const char *dir;
    mctx *m;
} kill_arg;

/* kt_kill_halfway's child: the migrating open. */
static void open_in_child(void *arg, kivis_progress_fn progress, void *ctx)
{
    const kill_arg *a = arg;
    kivis_options o = {.progress = progress, .progress_ctx = ctx,
                       .migrate_ctx = a->m};
    kivis_storage *st;
    people_db *db;
    if (kt_backend_open(a->dir, &st) || people_open(st, &o, &db))
        _exit(2);
}

static void test_sigkill_midway_leaves_v1_or_v2(void **state)
{
    mfx *f = *state;
    char dir[256];
    kivis_storage *st;
    kt_tempdir(dir, sizeof dir);
    assert_int_equal(kt_backend_open(dir, &st), KIVIS_OK);
    fill_v1(st, NKILL);
    assert_int_equal(kivis_storage_close(st), KIVIS_OK);
    kill_arg arg = {dir, &f->m};
    kt_kill_halfway(open_in_child, &arg);

    assert_int_equal(kt_backend_open(dir, &st), KIVIS_OK);
    kivis_storage *keep = f->st;
    f->st = st;
    v1_people_db *v1 = NULL;
    if (v1_people_open(st, NULL, &v1) == KIVIS_OK) { /* wholly v1 */
        v1_people_close(v1);
        assert_v1_whole(st, NKILL);
    }
    people_db *db = NULL; /* v2, migrated now or before the kill */
    if (open_v2(f, &db))
        fail_msg("people_open: %s", f->msg);
    assert_v2_whole(db, NKILL);
    people_close(db);
    f->st = keep;
    assert_int_equal(kivis_storage_close(st), KIVIS_OK);
    kt_rmdir(dir);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        T(test_every_record_converted),
        T(test_failing_migration_changes_nothing),
        T(test_migration_changing_a_key_is_refused),
        T(test_layout_of_neither_is_refused),
    };
    int rc = kt_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
    const struct CMUnitTest kill[] = {T(test_sigkill_midway_leaves_v1_or_v2)};
    return rc == 2 ? rc : kt_run_durable(argc, argv, kill, 1) || rc ? 1 : 0;
}
