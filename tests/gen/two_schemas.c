/*
 * two_schemas.c - two generated schemas with the same record names in one
 * program: examples/pets/pets.kvs as it is, and again through
 * `kivis-gen --prefix v2_` (v2_user, v2_pets_db, V2_TOY_BALL, ...).  The
 * prefix changes the C names only, so both read one store alike.
 */
#include "pets.kivis.h"
#include "v2_pets.kivis.h"

#include <kivis/memory.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

blob_key blob_derive_key(const blob *rec)
{
    blob_key k;
    k.hash = rec->data.len;
    return k;
}

v2_blob_key v2_blob_derive_key(const v2_blob *rec)
{
    v2_blob_key k;
    k.hash = rec->data.len;
    return k;
}

static void both_in_one_program_on_one_store(void **state)
{
    (void)state;
    kivis_storage *st;
    assert_int_equal(kivis_memory_open(NULL, &st), KIVIS_OK);
    pets_db *db;
    v2_pets_db *db2;
    assert_int_equal(pets_open(st, NULL, &db), KIVIS_OK);
    assert_int_equal(v2_pets_open(st, NULL, &db2), KIVIS_OK);

    user u = {"ann", "ann@example.org", 30};
    user_key k;
    assert_int_equal(user_put(db, &u, &k), KIVIS_OK);
    v2_user_key k2 = {k.id};
    v2_user u2;
    assert_int_equal(v2_user_get(db2, k2, &u2), KIVIS_OK);
    assert_string_equal(u2.name, "ann");
    v2_user_clear(db2, &u2);

    v2_toy t2 = {V2_TOY_MOUSE, 7};
    assert_int_equal(v2_toy_put(db2, &t2, NULL), KIVIS_OK);
    toy t;
    toy_key tk = {TOY_MOUSE, 7};
    assert_int_equal(toy_get(db, tk, &t), KIVIS_OK);
    assert_int_equal(t.kind, TOY_MOUSE);
    assert_int_equal((int)V2_TOY_MOUSE, (int)TOY_MOUSE);

    /* Each handle type belongs to its own functions: a cast one is
     * refused at run time. */
    assert_int_equal(v2_user_get((v2_pets_db *)(void *)db, k2, &u2), KIVIS_ESCHEMA);
    assert_int_equal(strcmp(v2_pets_schema.name, pets_schema.name), 0);

    v2_pets_close(db2);
    pets_close(db);
    assert_int_equal(kivis_storage_close(st), KIVIS_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(both_in_one_program_on_one_store),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
