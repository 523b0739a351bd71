/*
 * The writes, on every backend (memory, LMDB, SQLite, RocksDB, PostgreSQL
 * and an etcd cluster, the servers started by the program):
 * - kivis_add never replaces, kivis_put replaces or creates, kivis_update
 *   never creates, alike for auto, field and derived keys;
 * - auto-increment ids are never issued twice: not after the highest
 *   record is removed, not across reopening; and stores written before the
 *   counter existed (tests/data, by kivis at b878dd0) open and continue
 *   from their highest id, with the referential action added since;
 * - a transaction writes its counter once, at its commit, not at each put,
 *   and a failure of that write fails the commit with nothing applied.
 */
#define KT_WITH_ETCD
#include "openers.h"
#include "pets_schema.h"
#include "testutil.h"

#include <kivis.h>
#include <kivis/etcd.h>
#include <kivis/faulty.h>
#include <kivis/inspect.h>
#include <kivis/layered.h>
#include <kivis/lmdb.h>
#include <kivis/memory.h>
#include <kivis/postgres.h>
#include <kivis/rocksdb.h>
#include <kivis/sqlite.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int (*open_fn)(const char *dir, kivis_storage **out);

static int open_memory(const char *dir, kivis_storage **out)
{
    (void)dir;
    return kivis_memory_open(NULL, out);
}

static int open_lmdb(const char *dir, kivis_storage **out)
{
    return kivis_lmdb_open(dir, NULL, out);
}

static int open_sqlite(const char *dir, kivis_storage **out)
{
    char path[512];
    snprintf(path, sizeof path, "%s/pets.sqlite", dir);
    return kivis_sqlite_open(path, NULL, out);
}

static kivis_db *open_db(kivis_storage *st)
{
    kivis_db *db;
    assert_int_equal(kivis_open(st, &pets_schema, NULL, &db), KIVIS_OK);
    return db;
}

static uint64_t put_user(kivis_db *db, const char *name)
{
    user u = {(char *)name, "x@example.org", 1};
    user_key k;
    int rc = kivis_put(db, PETS_USER, &u, &k);
    if (rc)
        fail_msg("put %s: %s", name, kivis_errmsg(db));
    return k.id;
}

static void remove_user(kivis_db *db, uint64_t id)
{
    user_key k = {id};
    assert_int_equal(kivis_remove(db, PETS_USER, &k), KIVIS_OK);
}

/* ---- a new store -------------------------------------------------------- */

static void removed_ids_stay_used(open_fn open, bool reopen_storage)
{
    char dir[256];
    kt_tempdir(dir, sizeof dir);
    kivis_storage *st;
    assert_int_equal(open(dir, &st), KIVIS_OK);
    kivis_db *db = open_db(st);
    for (uint64_t i = 1; i <= 3; i++)
        assert_int_equal(put_user(db, "ann"), i);
    remove_user(db, 3);
    assert_int_equal(put_user(db, "bob"), 4);

    /* Across closing the handle (and the storage, where it persists). */
    remove_user(db, 4);
    kivis_close(db);
    if (reopen_storage) {
        kivis_storage_close(st);
        assert_int_equal(open(dir, &st), KIVIS_OK);
    }
    db = open_db(st);
    assert_int_equal(put_user(db, "cat"), 5);

    /* Inside one transaction: remove the highest, then put. */
    assert_int_equal(kivis_begin(db), KIVIS_OK);
    remove_user(db, 5);
    assert_int_equal(put_user(db, "dan"), 6);
    assert_int_equal(kivis_commit(db), KIVIS_OK);

    /* An explicit key above the counter uses that id too. */
    user u = {"eve", "e@x", 2};
    user_key ten = {10};
    assert_int_equal(kivis_insert(db, PETS_USER, &ten, &u), KIVIS_OK);
    remove_user(db, 10);
    assert_int_equal(put_user(db, "fay"), 11);

    /* An aborted put issued nothing: the counter rolls back with it. */
    assert_int_equal(kivis_begin(db), KIVIS_OK);
    assert_int_equal(put_user(db, "gus"), 12);
    kivis_abort(db);
    assert_int_equal(put_user(db, "gus"), 12);

    kt_check_clean(db);
    kivis_close(db);
    kivis_storage_close(st);
    kt_rmdir(dir);
}

static void test_memory_never_reuses_ids(void **state)
{
    (void)state;
    removed_ids_stay_used(open_memory, false);
}

static void test_lmdb_never_reuses_ids(void **state)
{
    (void)state;
    removed_ids_stay_used(open_lmdb, true);
}

static void test_sqlite_never_reuses_ids(void **state)
{
    (void)state;
    removed_ids_stay_used(open_sqlite, true);
}

static void test_rocksdb_never_reuses_ids(void **state)
{
    (void)state;
    removed_ids_stay_used(kt_open_rocksdb, true);
}

/* The server openers empty their store at every open: the handle is
 * reopened, the storage kept. */
static void test_postgres_never_reuses_ids(void **state)
{
    (void)state;
    removed_ids_stay_used(kt_open_postgres, false);
}

static void test_etcd_never_reuses_ids(void **state)
{
    (void)state;
    removed_ids_stay_used(kt_open_etcd, false);
}

/* ---- add, put, update ---------------------------------------------------- */

static void assert_errmsg_has(kivis_db *db, const char *part)
{
    if (!strstr(kivis_errmsg(db), part))
        fail_msg("errmsg \"%s\" lacks \"%s\"", kivis_errmsg(db), part);
}

/* An auto-increment table: add and put take a new id; update of an absent
 * id creates nothing (and so moves no id). */
static void auto_key_writes(kivis_db *db)
{
    user u = {"ann", "a@x", 1};
    user_key k1, k2;
    assert_int_equal(kivis_add(db, PETS_USER, &u, &k1), KIVIS_OK);
    user_key absent = {999};
    assert_int_equal(kivis_update(db, PETS_USER, &absent, &u), KIVIS_NOTFOUND);
    assert_errmsg_has(db, "user: no record with this key to update");
    user got;
    assert_int_equal(kivis_get(db, PETS_USER, &absent, &got), KIVIS_NOTFOUND);
    assert_int_equal(kivis_put(db, PETS_USER, &u, &k2), KIVIS_OK);
    assert_int_equal(k2.id, k1.id + 1);
    u.age = 2;
    assert_int_equal(kivis_update(db, PETS_USER, &k1, &u), KIVIS_OK);
    assert_int_equal(kivis_get(db, PETS_USER, &k1, &got), KIVIS_OK);
    assert_int_equal(got.age, 2);
    kivis_record_clear(db, PETS_USER, &got);
    assert_int_equal(kivis_update(db, PETS_USER, NULL, &u), KIVIS_EINVAL);
}

/* A table keyed by its fields: add refuses a taken key, put replaces,
 * update needs the record there (the key from the record, or given). */
static void field_key_writes(kivis_db *db)
{
    toy t = {TOY_BALL, 3};
    toy_key k = {TOY_BALL, 3}, other = {TOY_MOUSE, 3};
    assert_int_equal(kivis_update(db, PETS_TOY, NULL, &t), KIVIS_NOTFOUND);
    assert_int_equal(kivis_get(db, PETS_TOY, &k, &t), KIVIS_NOTFOUND);
    t = (toy){TOY_BALL, 3};
    assert_int_equal(kivis_add(db, PETS_TOY, &t, NULL), KIVIS_OK);
    toy_key zeroed = {TOY_MOUSE, 9};
    assert_int_equal(kivis_add(db, PETS_TOY, &t, &zeroed), KIVIS_EEXIST);
    assert_errmsg_has(db, "toy: a record with this key already exists");
    assert_int_equal(zeroed.color, 0);
    assert_int_equal(kivis_put(db, PETS_TOY, &t, NULL), KIVIS_OK);
    assert_int_equal(kivis_update(db, PETS_TOY, NULL, &t), KIVIS_OK);
    assert_int_equal(kivis_update(db, PETS_TOY, &k, &t), KIVIS_OK);
    assert_int_equal(kivis_update(db, PETS_TOY, &other, &t), KIVIS_EINVAL);
}

/* A derived key: a second record deriving the same key is a collision
 * that add reports instead of overwriting the first. */
static void derived_key_writes(kivis_db *db)
{
    uint8_t bytes[] = {1, 2, 3};
    blob b = {{bytes, sizeof bytes}};
    blob_key k;
    assert_int_equal(kivis_update(db, PETS_BLOB, NULL, &b), KIVIS_NOTFOUND);
    assert_int_equal(kivis_add(db, PETS_BLOB, &b, &k), KIVIS_OK);
    assert_int_equal(kivis_add(db, PETS_BLOB, &b, NULL), KIVIS_EEXIST);
    assert_errmsg_has(db, "blob: a record with this derived key already exists");
    assert_int_equal(kivis_update(db, PETS_BLOB, NULL, &b), KIVIS_OK);
    assert_int_equal(kivis_put(db, PETS_BLOB, &b, NULL), KIVIS_OK);
}

/* EEXIST and NOTFOUND are found before any write: a user transaction
 * goes on, and nothing of the refused writes lands. */
static void refusals_keep_the_transaction(kivis_storage *st, kivis_db *db)
{
    char *before = kt_dump(st);
    assert_int_equal(kivis_begin(db), KIVIS_OK);
    toy t = {TOY_BALL, 3};
    assert_int_equal(kivis_add(db, PETS_TOY, &t, NULL), KIVIS_EEXIST);
    toy absent = {TOY_MOUSE, 200};
    assert_int_equal(kivis_update(db, PETS_TOY, NULL, &absent), KIVIS_NOTFOUND);
    assert_int_equal(kivis_commit(db), KIVIS_OK);
    char *after = kt_dump(st);
    assert_string_equal(before, after);
    free(before);
    free(after);
}

static void write_meanings(open_fn open)
{
    char dir[256];
    kt_tempdir(dir, sizeof dir);
    kivis_storage *st;
    assert_int_equal(open(dir, &st), KIVIS_OK);
    kivis_db *db = open_db(st);
    auto_key_writes(db);
    field_key_writes(db);
    derived_key_writes(db);
    refusals_keep_the_transaction(st, db);
    kt_check_clean(db);
    kivis_close(db);
    kivis_storage_close(st);
    kt_rmdir(dir);
}

static void test_memory_write_meanings(void **state)
{
    (void)state;
    write_meanings(open_memory);
}

static void test_lmdb_write_meanings(void **state)
{
    (void)state;
    write_meanings(open_lmdb);
}

static void test_sqlite_write_meanings(void **state)
{
    (void)state;
    write_meanings(open_sqlite);
}

static void test_rocksdb_write_meanings(void **state)
{
    (void)state;
    write_meanings(kt_open_rocksdb);
}

static void test_postgres_write_meanings(void **state)
{
    (void)state;
    write_meanings(kt_open_postgres);
}

static void test_etcd_write_meanings(void **state)
{
    (void)state;
    write_meanings(kt_open_etcd);
}

/* ---- the counter, once a transaction ------------------------------------ */

/* Memory wrapped in the faulty backend, which counts the writes. */
static kivis_db *counted_db(kivis_storage **st)
{
    kivis_storage *mem;
    assert_int_equal(kivis_memory_open(NULL, &mem), KIVIS_OK);
    assert_int_equal(kivis_faulty_open(mem, NULL, st), KIVIS_OK);
    return open_db(*st);
}

/* The storage writes of one transaction of n puts of users. */
static unsigned long writes_of_puts(kivis_db *db, kivis_storage *st, int n)
{
    unsigned long before = kivis_faulty_count(st, KIVIS_FAULT_WRITE);
    assert_int_equal(kivis_begin(db), KIVIS_OK);
    for (int i = 0; i < n; i++)
        put_user(db, "ann");
    assert_int_equal(kivis_commit(db), KIVIS_OK);
    return kivis_faulty_count(st, KIVIS_FAULT_WRITE) - before;
}

/* A user is two writes (the record, its name's index entry); a
 * transaction adds its counter and its commit, whatever its size. */
static void test_counter_written_once_a_txn(void **state)
{
    (void)state;
    kivis_storage *st;
    kivis_db *db = counted_db(&st);
    assert_int_equal(writes_of_puts(db, st, 1), 2 + 2);
    assert_int_equal(writes_of_puts(db, st, 10), 10 * 2 + 2);
    /* An explicit key above the counter raises it, once too. */
    unsigned long before = kivis_faulty_count(st, KIVIS_FAULT_WRITE);
    user u = {"eve", "e@x", 2};
    assert_int_equal(kivis_begin(db), KIVIS_OK);
    for (uint64_t id = 100; id < 105; id++)
        assert_int_equal(kivis_insert(db, PETS_USER, &(user_key){id}, &u), KIVIS_OK);
    assert_int_equal(kivis_commit(db), KIVIS_OK);
    assert_int_equal(kivis_faulty_count(st, KIVIS_FAULT_WRITE) - before, 5 * 2 + 2);
    assert_int_equal(put_user(db, "fay"), 105);
    kt_check_clean(db);
    kivis_close(db);
    kivis_storage_close(st);
}

/* The counter's write fails: the commit reports it, nothing of the
 * transaction is stored, and its ids are issued again. */
static void test_counter_write_fails_the_commit(void **state)
{
    (void)state;
    kivis_storage *st;
    kivis_db *db = counted_db(&st);
    assert_int_equal(put_user(db, "ann"), 1);
    assert_int_equal(kivis_begin(db), KIVIS_OK);
    kivis_faulty_fail(st, KIVIS_FAULT_WRITE, 3 * 2 + 1, KIVIS_EIO);
    for (uint64_t i = 2; i <= 4; i++)
        assert_int_equal(put_user(db, "bob"), i);
    assert_int_equal(kivis_commit(db), KIVIS_EIO);
    assert_non_null(strstr(kivis_errmsg(db), "counter"));
    user_key k = {2};
    user u;
    assert_int_equal(kivis_get(db, PETS_USER, &k, &u), KIVIS_NOTFOUND);
    assert_int_equal(put_user(db, "cat"), 2);
    /* The same in an operation that commits itself. */
    kivis_faulty_fail(st, KIVIS_FAULT_WRITE, 2 + 1, KIVIS_EIO);
    user v = {"dan", "d@x", 3};
    user_key out;
    assert_int_equal(kivis_put(db, PETS_USER, &v, &out), KIVIS_EIO);
    assert_int_equal(put_user(db, "dan"), 3);
    kt_check_clean(db);
    kivis_close(db);
    kivis_storage_close(st);
}

/* ---- stores written by kivis at b878dd0, before the counter ------------- */

static void copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb");
    if (!in)
        fail_msg("cannot open %s", from);
    FILE *out = fopen(to, "wb");
    assert_non_null(out);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        assert_int_equal(fwrite(buf, 1, n, out), n);
    fclose(in);
    assert_int_equal(fclose(out), 0);
}

/* The pets schema has gained pet.owner's cascade since b878dd0: opening
 * the old store built the owner index, so a pet must name a stored user
 * (3 is gone) and goes when she does. */
static void old_store_has_the_cascade(kivis_db *db)
{
    pet rex, stray;
    memset(&rex, 0, sizeof rex);
    strcpy(rex.name, "rex");
    rex.owner.id = 2;
    stray = rex;
    stray.owner.id = 3;
    pet_key k;
    assert_int_equal(kivis_put(db, PETS_PET, &rex, &k), KIVIS_OK);
    assert_int_equal(kivis_put(db, PETS_PET, &stray, NULL), KIVIS_ECONSTRAINT);
    remove_user(db, 2);
    assert_int_equal(kivis_get(db, PETS_PET, &k, &rex), KIVIS_NOTFOUND);
}

/* The old store holds users 1, 2 and 4 (5 and 3 were removed; nothing
 * recorded 5, so it is issued again, once): new ids continue from the
 * highest stored, and from the first put on the counter keeps them. */
static void old_store_continues(open_fn open, const char *file, const char *as)
{
    char dir[256], from[512], to[512];
    kt_tempdir(dir, sizeof dir);
    snprintf(from, sizeof from, "%s/%s", KIVIS_TEST_DATA, file);
    snprintf(to, sizeof to, "%s/%s", dir, as);
    copy_file(from, to);
    kivis_storage *st;
    assert_int_equal(open(dir, &st), KIVIS_OK);
    kivis_db *db = open_db(st);
    kt_check_clean(db);
    user u;
    for (uint64_t id = 1; id <= 5; id++) {
        user_key k = {id};
        assert_int_equal(kivis_get(db, PETS_USER, &k, &u),
                         id == 3 || id == 5 ? KIVIS_NOTFOUND : KIVIS_OK);
        kivis_record_clear(db, PETS_USER, &u);
    }
    assert_int_equal(put_user(db, "new"), 5);
    remove_user(db, 5);
    assert_int_equal(put_user(db, "newer"), 6);
    remove_user(db, 6);
    kivis_close(db);
    kivis_storage_close(st);

    assert_int_equal(open(dir, &st), KIVIS_OK);
    db = open_db(st);
    assert_int_equal(put_user(db, "newest"), 7);
    old_store_has_the_cascade(db);
    kt_check_clean(db);
    kivis_close(db);
    kivis_storage_close(st);
    kt_rmdir(dir);
}

static void test_old_lmdb_store_continues(void **state)
{
    (void)state;
    old_store_continues(open_lmdb, "pets-b878dd0.lmdb/data.mdb", "data.mdb");
}

static void test_old_sqlite_store_continues(void **state)
{
    (void)state;
    old_store_continues(open_sqlite, "pets-b878dd0.sqlite", "pets.sqlite");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_memory_write_meanings),
        cmocka_unit_test(test_lmdb_write_meanings),
        cmocka_unit_test(test_sqlite_write_meanings),
        cmocka_unit_test(test_rocksdb_write_meanings),
        cmocka_unit_test(test_postgres_write_meanings),
        cmocka_unit_test(test_etcd_write_meanings),
        cmocka_unit_test(test_memory_never_reuses_ids),
        cmocka_unit_test(test_lmdb_never_reuses_ids),
        cmocka_unit_test(test_sqlite_never_reuses_ids),
        cmocka_unit_test(test_rocksdb_never_reuses_ids),
        cmocka_unit_test(test_postgres_never_reuses_ids),
        cmocka_unit_test(test_etcd_never_reuses_ids),
        cmocka_unit_test(test_counter_written_once_a_txn),
        cmocka_unit_test(test_counter_write_fails_the_commit),
        cmocka_unit_test(test_old_lmdb_store_continues),
        cmocka_unit_test(test_old_sqlite_store_continues),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
