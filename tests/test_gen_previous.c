/*
 * test_gen_previous.c - kivis-gen --previous (gen/previous.c): which
 * records of the new schema get a typed migration from the previous one
 * (changed other than by fields appended, found by name or [[was]]), the
 * old record renamed R_old with its stored name kept, and a positioned
 * diagnostic in NEW.kvs for each change a migration cannot make: a
 * changed key or key strategy, an enum, struct or key the old record uses
 * that the new schema changed, the names R_old and R_migrate taken.
 */
#include "model.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static kg_schema *compile_ok(const char *file, const char *src)
{
    kg_schema *s = NULL;
    assert_int_equal(kg_compile(file, src, strlen(src), NULL, &s), 0);
    assert_non_null(s);
    return s;
}

/* kg_previous of new_src against old_src: its diagnostics (free them) and
 * error count; *out the new schema (owning the old one) when 0 errors. */
static char *previous(const char *old_src, const char *new_src, int *errors,
                      kg_schema **out)
{
    kg_schema *old = compile_ok("old.kvs", old_src);
    kg_schema *now = compile_ok("new.kvs", new_src);
    char *text = NULL;
    size_t size = 0;
    FILE *err = open_memstream(&text, &size);
    assert_non_null(err);
    *errors = kg_previous(now, old, "new.kvs", new_src, strlen(new_src), err);
    fclose(err);
    if (*errors)
        kg_schema_free(old);
    *out = now;
    return text;
}

static void expect_errors(const char *old_src, const char *new_src, int count,
                          const char *want)
{
    int errors;
    kg_schema *now;
    char *got = previous(old_src, new_src, &errors, &now);
    assert_string_equal(got, want);
    assert_int_equal(errors, count);
    free(got);
    kg_schema_free(now);
}

static void expect_error(const char *old_src, const char *new_src,
                         const char *want)
{
    expect_errors(old_src, new_src, 1, want);
}

static kg_schema *expect_ok(const char *old_src, const char *new_src)
{
    int errors;
    kg_schema *now;
    char *got = previous(old_src, new_src, &errors, &now);
    assert_string_equal(got, "");
    assert_int_equal(errors, 0);
    free(got);
    return now;
}

static void changed_records_get_a_migration(void **state)
{
    (void)state;
    kg_schema *s = expect_ok(
        "schema s;\n"
        "enum color { RED, GREEN };\n"
        "[[embedded]] struct point { int32_t x; int32_t y; };\n"
        "struct user { [[key]] uint32_t id; char name[64]; color c; point p; };\n"
        "struct item { char *title; };\n"
        "struct log { char *text; };\n",
        "schema s;\n"
        "enum color { RED, GREEN };\n"
        "[[embedded]] struct point { int32_t x; int32_t y; };\n"
        "struct user { [[key]] uint32_t id; char first[32]; char last[32];\n"
        "              color c; point p; };\n"
        "[[was(item)]] struct article { char *title; int8_t stars; char *note; };\n"
        "struct log { char *text; uint32_t level; };\n");
    const kg_record *user = &s->records[0], *article = &s->records[1];
    assert_non_null(user->migrates_from);
    assert_string_equal(user->migrates_from->name, "user_old");
    assert_string_equal(user->migrates_from->stored, "user");
    assert_int_equal(user->migrates_from->nfields, 4);
    /* The old record's types are the new schema's (unchanged). */
    assert_ptr_equal(user->migrates_from->fields[2].type.enm, &s->enums[0]);
    assert_ptr_equal(user->migrates_from->fields[3].type.strct, &s->structs[0]);
    /* A rename and fields appended: the runtime's declared changes. */
    assert_null(article->migrates_from);
    assert_null(s->records[2].migrates_from);
    kg_schema_free(s);
    /* A renamed record that changed otherwise: found by its old name. */
    s = expect_ok("schema s;\nstruct item { char *title; int64_t stars; };\n",
                  "schema s;\n[[was(item)]] struct article { int32_t stars; "
                  "char *title; };\n");
    assert_string_equal(s->records[0].migrates_from->name, "article_old");
    assert_string_equal(s->records[0].migrates_from->stored, "item");
    kg_schema_free(s);
}

static void changed_key_is_refused(void **state)
{
    (void)state;
    expect_error("schema s;\nstruct user { [[key]] uint32_t id; char name[8]; };\n",
                 "schema s;\nstruct user { [[key]] uint64_t id; char *name; };\n",
                 "new.kvs:2:32: error: record 'user': its key is not the previous schema's (strategy, or its fields' "
                 "names, types or order): a typed migration keeps every "
                 "record's key\n"
                 "struct user { [[key]] uint64_t id; char *name; };\n"
                 "                               ^\n");
}

static void changed_key_strategy_is_refused(void **state)
{
    (void)state;
    expect_error("schema s;\nstruct user { char name[8]; };\n",
                 "schema s;\n\nstruct user {\n    [[key]] char name[16];\n};\n",
                 "new.kvs:3:8: error: record 'user': its key is not the previous schema's (strategy, or its fields' "
                 "names, types or order): a typed migration keeps every "
                 "record's key\n"
                 "struct user {\n"
                 "       ^\n");
}

static void changed_type_of_old_field_is_refused(void **state)
{
    (void)state;
    expect_error("schema s;\nenum color { RED, GREEN };\n"
                 "struct user { color c; int64_t n; };\n",
                 "schema s;\nenum color { RED, GREEN, BLUE };\n"
                 "struct user { color c; int32_t n; };\n",
                 "new.kvs:3:8: error: record 'user': field 'c' of the previous "
                 "schema has type 'color', which this schema does not have "
                 "unchanged: a typed migration needs the enums, structs and "
                 "keys of the old record as they were\n"
                 "struct user { color c; int32_t n; };\n"
                 "       ^\n");
    /* pet's key changed: pet itself cannot migrate, nor user with it. */
    expect_errors("schema s;\nstruct pet { [[key]] uint32_t id; };\n"
                 "struct user { pet_key pet; int64_t n; };\n",
                 "schema s;\nstruct pet { [[key]] uint64_t id; };\n"
                 "struct user { pet_key pet; int32_t n; };\n", 2,
                 "new.kvs:2:31: error: record 'pet': its key is not the previous schema's (strategy, or its fields' "
                 "names, types or order): a typed migration keeps every "
                 "record's key\n"
                 "struct pet { [[key]] uint64_t id; };\n"
                 "                              ^\n"
                 "new.kvs:3:8: error: record 'user': field 'pet' of the previous "
                 "schema has type 'pet_key', which this schema does not have "
                 "unchanged: a typed migration needs the enums, structs and "
                 "keys of the old record as they were\n"
                 "struct user { pet_key pet; int32_t n; };\n"
                 "       ^\n");
}

static void taken_names_are_refused(void **state)
{
    (void)state;
    expect_error("schema s;\nstruct user { int64_t n; };\n",
                 "schema s;\nstruct user { int32_t n; };\n"
                 "struct user_old { int64_t n; };\n",
                 "new.kvs:2:8: error: record 'user': its typed migration needs "
                 "the names 'user_old' and 'user_migrate', which this schema "
                 "declares\n"
                 "struct user { int32_t n; };\n"
                 "       ^\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(changed_records_get_a_migration),
        cmocka_unit_test(changed_key_is_refused),
        cmocka_unit_test(changed_key_strategy_is_refused),
        cmocka_unit_test(changed_type_of_old_field_is_refused),
        cmocka_unit_test(taken_names_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
