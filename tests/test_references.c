/*
 * test_references.c - referential actions ([[references(...)]]) end to
 * end, through the descriptor kivis-gen emits for tests/gen/refs.kvs: a
 * write naming a missing record fails and writes nothing, restrict blocks
 * a remove (even deep inside a cascade), cascade removes children and
 * grandchildren with their index entries, a cycle of references ends, a
 * store written before the attribute gets its reverse index at open, and
 * kivis_check reports dangling references.  On memory, LMDB, SQLite,
 * RocksDB, PostgreSQL and an etcd cluster, the last two on servers the
 * program starts (argv[1] picks one backend).
 */
#define KT_WITH_ETCD
#include "openers.h"
#include "refs.kivis.h"
#include "testutil.h"

#include <kivis.h>
#include <kivis/etcd.h>
#include <kivis/inspect.h>
#include <kivis/layered.h>
#include <kivis/lmdb.h>
#include <kivis/memory.h>
#include <kivis/postgres.h>
#include <kivis/rocksdb.h>
#include <kivis/sqlite.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- backends and fixture ------------------------------------------- */

static kt_open_fn backend_open;

typedef struct fx {
    char dir[256];
    kivis_storage *st;
    kivis_db *db;
} fx;

/* A fresh store of the current backend, a db of the refs schema on it. */
static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    kt_tempdir(f->dir, sizeof f->dir);
    assert_int_equal(backend_open(f->dir, &f->st), KIVIS_OK);
    assert_int_equal(kivis_open(f->st, &refs_schema, NULL, &f->db), KIVIS_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    kivis_close(f->db);
    assert_int_equal(kivis_storage_close(f->st), KIVIS_OK);
    kt_rmdir(f->dir);
    free(f);
    return 0;
}

#define NTABLES (REFS_MEMO + 1)

/* ---- the schema as it was before the attribute ---------------------- */

/* refs_schema with every referential action taken away: the indexes that
 * exist only for an action dropped, the others plain. */
static kivis_table_desc old_tables[NTABLES];
static kivis_index_desc old_indexes[NTABLES][4];
static kivis_schema_desc old_schema;

static const kivis_schema_desc *schema_before_references(void)
{
    old_schema = refs_schema;
    old_schema.tables = old_tables;
    for (uint32_t t = 0; t < refs_schema.ntables; t++) {
        const kivis_table_desc *td = &refs_schema.tables[t];
        old_tables[t] = *td;
        old_tables[t].nindexes = 0;
        old_tables[t].indexes = old_indexes[t];
        for (uint32_t i = 0; i < td->nindexes; i++) {
            kivis_index_desc ix = td->indexes[i];
            bool declared = (t == REFS_FOLDER && i == REFS_FOLDER_BY_NAME) ||
                            (t == REFS_DOC && i == REFS_DOC_BY_FOLDER) ||
                            (t == REFS_MEMO && i == REFS_MEMO_BY_AUTHOR);
            ix.flags &= ~KIVIS_INDEX_ACTION;
            if (declared)
                old_indexes[t][old_tables[t].nindexes++] = ix;
        }
    }
    return &old_schema;
}

/* Close f->db and open the store again with `schema`. */
static void reopen(fx *f, const kivis_schema_desc *schema)
{
    kivis_close(f->db);
    char msg[256] = "";
    kivis_options o = {0};
    o.errbuf = msg;
    o.errbuf_size = sizeof msg;
    o.durability = KIVIS_SYNC;
    int rc = kivis_open(f->st, schema, &o, &f->db);
    if (rc)
        fail_msg("reopen: %s: %s", kivis_strerror(rc), msg);
}

/* ---- helpers -------------------------------------------------------- */

static user_key put_user(kivis_db *db, const char *name)
{
    user u = {{0}};
    snprintf(u.name, sizeof u.name, "%s", name);
    user_key k;
    assert_int_equal(kivis_put(db, REFS_USER, &u, &k), KIVIS_OK);
    return k;
}

static folder_key put_folder(kivis_db *db, const char *name, user_key owner)
{
    folder r = {{0}, owner};
    snprintf(r.name, sizeof r.name, "%s", name);
    folder_key k;
    int rc = kivis_put(db, REFS_FOLDER, &r, &k);
    if (rc)
        fail_msg("put folder: %s", kivis_errmsg(db));
    return k;
}

static doc_key put_doc(kivis_db *db, const char *title, folder_key folder)
{
    doc r = {{0}, folder};
    snprintf(r.title, sizeof r.title, "%s", title);
    doc_key k;
    int rc = kivis_put(db, REFS_DOC, &r, &k);
    if (rc)
        fail_msg("put doc: %s", kivis_errmsg(db));
    return k;
}

static uint64_t count(kivis_db *db, uint32_t table, int32_t index)
{
    kivis_query q = {table, index, KIVIS_Q_ALL, NULL, NULL, NULL, 0, 0};
    uint64_t n = 0;
    assert_int_equal(kivis_count(db, &q, &n), KIVIS_OK);
    return n;
}

/* kivis_check: the problems it reports, the warnings it counts. */
static void check(kivis_db *db, uint64_t problems, uint64_t warnings)
{
    kivis_check_stats st;
    memset(&st, 0, sizeof st);
    int rc = kivis_check(db, NULL, NULL, &st);
    assert_int_equal(st.problems, problems);
    assert_int_equal(st.warnings, warnings);
    assert_int_equal(rc, problems ? KIVIS_ECORRUPT : KIVIS_OK);
    kivis_stats_free(db, &st);
}

static void assert_errmsg_has(kivis_db *db, const char *want)
{
    if (!strstr(kivis_errmsg(db), want))
        fail_msg("error message '%s' lacks '%s'", kivis_errmsg(db), want);
}

/* ---- writes --------------------------------------------------------- */

static void test_put_missing_target(void **state)
{
    fx *f = *state;
    folder r = {"f", {42}};
    folder_key k;
    assert_int_equal(kivis_put(f->db, REFS_FOLDER, &r, &k), KIVIS_ECONSTRAINT);
    assert_errmsg_has(f->db, "folder.owner");
    assert_int_equal(count(f->db, REFS_FOLDER, -1), 0);
    assert_int_equal(count(f->db, REFS_FOLDER, REFS_FOLDER_BY_NAME), 0);
    /* insert and update check as put does; inside a transaction too, and
     * the transaction stays usable */
    user_key u = put_user(f->db, "ann");
    folder_key fk = put_folder(f->db, "f", u);
    assert_int_equal(kivis_begin(f->db), KIVIS_OK);
    r.owner = (user_key){u.id + 7};
    assert_int_equal(kivis_update(f->db, REFS_FOLDER, &fk, &r), KIVIS_ECONSTRAINT);
    assert_int_equal(kivis_insert(f->db, REFS_FOLDER, &(folder_key){9}, &r),
                     KIVIS_ECONSTRAINT);
    r.owner = u;
    assert_int_equal(kivis_update(f->db, REFS_FOLDER, &fk, &r), KIVIS_OK);
    assert_int_equal(kivis_commit(f->db), KIVIS_OK);
    assert_int_equal(count(f->db, REFS_FOLDER, -1), 1);
    /* a field without an action checks nothing */
    note n = {"n", {77}};
    assert_int_equal(kivis_put(f->db, REFS_NOTE, &n, NULL), KIVIS_OK);
    check(f->db, 0, 1);
}

/* ---- removes -------------------------------------------------------- */

static void test_restrict_blocks_remove(void **state)
{
    fx *f = *state;
    user_key u = put_user(f->db, "ann");
    folder_key fk = put_folder(f->db, "f", u);
    doc_key d = put_doc(f->db, "d", fk);
    lock l = {d};
    lock_key lk;
    assert_int_equal(kivis_put(f->db, REFS_LOCK, &l, &lk), KIVIS_OK);
    /* directly */
    assert_int_equal(kivis_remove(f->db, REFS_DOC, &d), KIVIS_ECONSTRAINT);
    assert_errmsg_has(f->db, "lock.doc");
    /* two cascades down: the whole remove fails, nothing is removed, and
     * a transaction it ran in goes on */
    assert_int_equal(kivis_begin(f->db), KIVIS_OK);
    assert_int_equal(kivis_remove(f->db, REFS_USER, &u), KIVIS_ECONSTRAINT);
    assert_errmsg_has(f->db, "lock.doc");
    assert_int_equal(kivis_commit(f->db), KIVIS_OK);
    assert_int_equal(count(f->db, REFS_USER, -1), 1);
    assert_int_equal(count(f->db, REFS_FOLDER, -1), 1);
    assert_int_equal(count(f->db, REFS_DOC, -1), 1);
    /* without the lock it goes through */
    assert_int_equal(kivis_remove(f->db, REFS_LOCK, &lk), KIVIS_OK);
    assert_int_equal(kivis_remove(f->db, REFS_USER, &u), KIVIS_OK);
    assert_int_equal(count(f->db, REFS_DOC, -1), 0);
    check(f->db, 0, 0);
}

static void test_cascade_removes_descendants(void **state)
{
    fx *f = *state;
    user_key ann = put_user(f->db, "ann"), bob = put_user(f->db, "bob");
    for (int i = 0; i < 3; i++) {
        folder_key a = put_folder(f->db, "a", ann), b = put_folder(f->db, "b", bob);
        for (int j = 0; j < 4; j++) {
            put_doc(f->db, "x", a);
            put_doc(f->db, "y", b);
        }
    }
    note n = {"about ann", ann};
    assert_int_equal(kivis_put(f->db, REFS_NOTE, &n, NULL), KIVIS_OK);
    assert_int_equal(kivis_remove(f->db, REFS_USER, &ann), KIVIS_OK);
    /* ann's 3 folders and 12 docs went, with their index entries */
    assert_int_equal(count(f->db, REFS_USER, -1), 1);
    assert_int_equal(count(f->db, REFS_FOLDER, -1), 3);
    assert_int_equal(count(f->db, REFS_FOLDER, REFS_FOLDER_BY_NAME), 3);
    assert_int_equal(count(f->db, REFS_DOC, -1), 12);
    assert_int_equal(count(f->db, REFS_DOC, REFS_DOC_BY_FOLDER), 12);
    kivis_scan *s;
    kivis_query q = {REFS_DOC, -1, KIVIS_Q_ALL, NULL, NULL, NULL, 0, 0};
    assert_int_equal(kivis_scan_open(f->db, &q, &s), KIVIS_OK);
    doc d;
    doc_key dk;
    folder fr;
    int rc;
    while ((rc = kivis_scan_next(s, &dk, &d)) == KIVIS_OK) {
        assert_string_equal(d.title, "y");
        assert_int_equal(kivis_get(f->db, REFS_FOLDER, &d.folder, &fr), KIVIS_OK);
        assert_true(fr.owner.id == bob.id);
    }
    assert_int_equal(rc, KIVIS_NOTFOUND);
    kivis_scan_close(s);
    /* the note about ann has no action: it stays, and check warns of it */
    assert_int_equal(count(f->db, REFS_NOTE, -1), 1);
    check(f->db, 0, 1);
    /* a record nobody refers to, a missing one */
    assert_int_equal(kivis_remove(f->db, REFS_DOC, &dk), KIVIS_NOTFOUND);
    assert_int_equal(kivis_remove(f->db, REFS_USER, &ann), KIVIS_NOTFOUND);
}

/* n1 <- n2 <- n3 <- n1: removing any one removes the three, each once. */
static void test_cycle_terminates(void **state)
{
    fx *f = *state;
    node_key k1, k2, k3, lone;
    node n = {1, {1}}; /* the first node refers to itself */
    assert_int_equal(kivis_put(f->db, REFS_NODE, &n, &k1), KIVIS_OK);
    assert_int_equal(k1.id, 1);
    n = (node){2, k1};
    assert_int_equal(kivis_put(f->db, REFS_NODE, &n, &k2), KIVIS_OK);
    n = (node){3, k2};
    assert_int_equal(kivis_put(f->db, REFS_NODE, &n, &k3), KIVIS_OK);
    n = (node){1, k3};
    assert_int_equal(kivis_update(f->db, REFS_NODE, &k1, &n), KIVIS_OK);
    n = (node){4, {4}};
    assert_int_equal(kivis_put(f->db, REFS_NODE, &n, &lone), KIVIS_OK);
    assert_int_equal(lone.id, 4);
    check(f->db, 0, 0);
    assert_int_equal(kivis_remove(f->db, REFS_NODE, &k2), KIVIS_OK);
    assert_int_equal(count(f->db, REFS_NODE, -1), 1);
    /* a record that refers to itself alone */
    assert_int_equal(kivis_remove(f->db, REFS_NODE, &lone), KIVIS_OK);
    assert_int_equal(count(f->db, REFS_NODE, -1), 0);
    check(f->db, 0, 0);
}

/* ---- stores older than the attribute -------------------------------- */

static void test_old_store_gets_reverse_index(void **state)
{
    fx *f = *state;
    reopen(f, schema_before_references());
    user_key u = put_user(f->db, "ann");
    folder_key fk = put_folder(f->db, "f", u);
    put_doc(f->db, "d", fk);
    put_doc(f->db, "e", fk);
    reopen(f, &refs_schema);
    check(f->db, 0, 0); /* the reverse indexes are whole */
    assert_int_equal(kivis_remove(f->db, REFS_USER, &u), KIVIS_OK);
    assert_int_equal(count(f->db, REFS_FOLDER, -1), 0);
    assert_int_equal(count(f->db, REFS_DOC, -1), 0);
    assert_int_equal(count(f->db, REFS_DOC, REFS_DOC_BY_FOLDER), 0);
    check(f->db, 0, 0);
    /* and back: the indexes only an action needed are dropped */
    reopen(f, schema_before_references());
    check(f->db, 0, 0);
}

/* ---- check ---------------------------------------------------------- */

typedef struct seen {
    int dangling;
    char message[256];
} seen;

static void on_problem(void *ctx, const kivis_check_problem *p)
{
    seen *s = ctx;
    if (p->kind == KIVIS_CHECK_DANGLING_REF) {
        s->dangling++;
        snprintf(s->message, sizeof s->message, "%s: %s", p->table, p->message);
    }
}

static void test_check_reports_dangling(void **state)
{
    fx *f = *state;
    /* written without the constraints, as an old store could be */
    reopen(f, schema_before_references());
    user_key u = put_user(f->db, "ann");
    put_folder(f->db, "f", u);
    put_doc(f->db, "lost", (folder_key){99});
    note n = {"n", {98}};
    assert_int_equal(kivis_put(f->db, REFS_NOTE, &n, NULL), KIVIS_OK);
    check(f->db, 0, 2); /* no field has an action: both only warnings */
    reopen(f, &refs_schema);
    seen s = {0, ""};
    kivis_check_stats st;
    memset(&st, 0, sizeof st);
    assert_int_equal(kivis_check(f->db, on_problem, &s, &st), KIVIS_ECORRUPT);
    assert_int_equal(st.problems, 1);
    assert_int_equal(st.warnings, 1);
    assert_int_equal(s.dangling, 1);
    assert_string_equal(s.message, "doc: its folder names no stored folder");
    kivis_stats_free(f->db, &st);
    /* the same verdict through the stored schema, as the kivis tool has it */
    kivis_schema_desc *stored;
    kivis_db *db;
    assert_int_equal(kivis_schema_load(f->st, NULL, &stored), KIVIS_OK);
    assert_int_equal(kivis_open(f->st, stored, NULL, &db), KIVIS_OK);
    check(db, 1, 1);
    /* and its handle enforces the actions too */
    folder r = {"g", {55}};
    assert_int_equal(kivis_put(db, 1, &r, NULL), KIVIS_ECONSTRAINT);
    kivis_close(db);
    kivis_schema_free(stored, NULL);
}

/* ---- descriptors kivis_open refuses -------------------------------- */

/* An optional foreign key with an action: absent, it names nothing and
 * checks nothing; present, it is found and acted on like any other (the
 * index entry of a present optional value starts with its tag). */
static void test_optional_reference(void **state)
{
    fx *f = *state;
    user_key u = put_user(f->db, "ann");
    doc_key d = put_doc(f->db, "d", put_folder(f->db, "f", u));
    tag loose = {"loose", false, {0}}, tied = {"tied", true, d};
    assert_int_equal(kivis_put(f->db, REFS_TAG, &loose, NULL), KIVIS_OK);
    assert_int_equal(kivis_put(f->db, REFS_TAG, &tied, NULL), KIVIS_OK);
    tag wrong = {"wrong", true, {d.id + 9}};
    assert_int_equal(kivis_put(f->db, REFS_TAG, &wrong, NULL), KIVIS_ECONSTRAINT);
    assert_int_equal(kivis_remove(f->db, REFS_USER, &u), KIVIS_OK);
    assert_int_equal(count(f->db, REFS_DOC, -1), 0);
    assert_int_equal(count(f->db, REFS_TAG, -1), 1); /* the tied one went */
    kivis_scan *s;
    kivis_query q = {REFS_TAG, -1, KIVIS_Q_ALL, NULL, NULL, NULL, 0, 0};
    assert_int_equal(kivis_scan_open(f->db, &q, &s), KIVIS_OK);
    tag t;
    assert_int_equal(kivis_scan_next(s, NULL, &t), KIVIS_OK);
    assert_string_equal(t.name, "loose");
    kivis_scan_close(s);
    check(f->db, 0, 0);
}

/* nullify: removing the record makes the field of its referrers absent
 * (their index entries move to the absent ones), leaves the others, and
 * a referrer that the same remove takes away by cascade is just removed. */
static void test_nullify_makes_the_field_absent(void **state)
{
    fx *f = *state;
    user_key ann = put_user(f->db, "ann"), bob = put_user(f->db, "bob");
    memo by_ann = {"by ann", true, ann}, by_bob = {"by bob", true, bob},
         nobody = {"nobody", false, {0}};
    memo_key ka, kb, kn;
    assert_int_equal(kivis_put(f->db, REFS_MEMO, &by_ann, &ka), KIVIS_OK);
    assert_int_equal(kivis_put(f->db, REFS_MEMO, &by_bob, &kb), KIVIS_OK);
    assert_int_equal(kivis_put(f->db, REFS_MEMO, &nobody, &kn), KIVIS_OK);
    memo bad = {"bad", true, {ann.id + 9}};
    assert_int_equal(kivis_put(f->db, REFS_MEMO, &bad, NULL), KIVIS_ECONSTRAINT);
    assert_errmsg_has(f->db, "references(nullify)");
    assert_int_equal(kivis_remove(f->db, REFS_USER, &ann), KIVIS_OK);
    memo m;
    assert_int_equal(kivis_get(f->db, REFS_MEMO, &ka, &m), KIVIS_OK);
    assert_string_equal(m.text, "by ann");
    assert_false(m.has_author);
    assert_int_equal(kivis_get(f->db, REFS_MEMO, &kb, &m), KIVIS_OK);
    assert_true(m.has_author);
    assert_int_equal(m.author.id, bob.id);
    kivis_query absent = {REFS_MEMO, REFS_MEMO_BY_AUTHOR, KIVIS_Q_ABSENT, NULL,
                          NULL, NULL, 0, 0};
    uint64_t n = 0;
    assert_int_equal(kivis_count(f->db, &absent, &n), KIVIS_OK);
    assert_int_equal(n, 2);
    assert_int_equal(count(f->db, REFS_MEMO, REFS_MEMO_BY_AUTHOR), 3);
    check(f->db, 0, 0);
    /* and inside a transaction that then aborts: nothing of it stays */
    assert_int_equal(kivis_begin(f->db), KIVIS_OK);
    assert_int_equal(kivis_remove(f->db, REFS_USER, &bob), KIVIS_OK);
    kivis_abort(f->db);
    assert_int_equal(kivis_get(f->db, REFS_MEMO, &kb, &m), KIVIS_OK);
    assert_true(m.has_author);
}

static void test_open_refuses_bad_action(void **state)
{
    fx *f = *state;
    kivis_close(f->db);
    f->db = NULL;
    kivis_table_desc tables[NTABLES];
    memcpy(tables, refs_schema.tables, sizeof tables);
    kivis_schema_desc s = {refs_schema.name, NTABLES, tables, 0, NULL, 0, NULL};
    kivis_index_desc ix = {"owner", 1, KIVIS_INDEX_NULLIFY};
    tables[REFS_FOLDER].nindexes = 1;
    tables[REFS_FOLDER].indexes = &ix;
    /* nullify on a field that is not optional: it cannot be made absent */
    assert_int_equal(kivis_open(f->st, &s, NULL, &f->db), KIVIS_EINVAL);
    ix = (kivis_index_desc){"name", 0, KIVIS_INDEX_CASCADE}; /* char[16] */
    assert_int_equal(kivis_open(f->st, &s, NULL, &f->db), KIVIS_EINVAL);
    assert_int_equal(kivis_open(f->st, &refs_schema, NULL, &f->db), KIVIS_OK);
}

#define REFS_TEST(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        kt_open_fn open;
    } backends[] = {
        {"memory", kt_open_memory},     {"lmdb", kt_open_lmdb},
        {"sqlite", kt_open_sqlite},     {"rocksdb", kt_open_rocksdb},
        {"postgres", kt_open_postgres}, {"etcd", kt_open_etcd},
    };
    const struct CMUnitTest tests[] = {
        REFS_TEST(test_put_missing_target),
        REFS_TEST(test_restrict_blocks_remove),
        REFS_TEST(test_cascade_removes_descendants),
        REFS_TEST(test_cycle_terminates),
        REFS_TEST(test_old_store_gets_reverse_index),
        REFS_TEST(test_check_reports_dangling),
        REFS_TEST(test_optional_reference),
        REFS_TEST(test_nullify_makes_the_field_absent),
        REFS_TEST(test_open_refuses_bad_action),
    };
    int failed = 0, ran = 0;
    for (size_t i = 0; i < sizeof backends / sizeof backends[0]; i++)
        if (argc < 2 || !strcmp(argv[1], backends[i].name)) {
            backend_open = backends[i].open;
            failed += _cmocka_run_group_tests(backends[i].name, tests,
                                              sizeof tests / sizeof tests[0],
                                              NULL, NULL);
            ran++;
        }
    return !ran ? 2 : failed ? 1 : 0;
}
