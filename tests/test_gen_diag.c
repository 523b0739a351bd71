/*
 * test_gen_diag.c - the kivis-gen front end: every mistake a user can make
 * in a schema gets its own exact diagnostic (position, message, source
 * line, caret), several mistakes are all reported in one run, and valid
 * schemas (examples/pets/pets.kvs, one with every field type) yield the
 * expected model.
 */
#include "model.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/* Compile `len` bytes; @return the diagnostics text (free it). */
static char *compile_n(const char *src, size_t len, int *errors,
                       kg_schema **out)
{
    char *text = NULL;
    size_t size = 0;
    FILE *err = open_memstream(&text, &size);
    assert_non_null(err);
    *errors = kg_compile("t.kvs", src, len, err, out);
    fclose(err);
    return text;
}

static char *compile(const char *src, int *errors, kg_schema **out)
{
    return compile_n(src, strlen(src), errors, out);
}

/* `src` must fail with exactly `want` as its diagnostics. */
static void expect_errors(const char *src, int count, const char *want)
{
    int errors;
    kg_schema *s = (kg_schema *)1;
    char *got = compile(src, &errors, &s);
    assert_null(s);
    assert_string_equal(got, want);
    assert_int_equal(errors, count);
    free(got);
}

static void expect_error(const char *src, const char *want)
{
    expect_errors(src, 1, want);
}

static kg_schema *expect_valid(const char *src)
{
    int errors;
    kg_schema *s = NULL;
    char *got = compile(src, &errors, &s);
    assert_string_equal(got, "");
    assert_int_equal(errors, 0);
    assert_non_null(s);
    free(got);
    return s;
}

/* ---- one mistake each --------------------------------------------------- */

static void test_unknown_type(void **state)
{
    (void)state;
    expect_error("schema s;\n"
                 "struct a {\n"
                 "    uint33_t age;\n"
                 "};\n",
                 "t.kvs:3:5: error: unknown type 'uint33_t'\n"
                 "    uint33_t age;\n"
                 "    ^\n");
}

static void test_duplicate_record(void **state)
{
    (void)state;
    expect_error("schema s;\n"
                 "struct a { int32_t x; };\n"
                 "struct a { int32_t y; };\n",
                 "t.kvs:3:8: error: duplicate name 'a': first declared at "
                 "line 2 as a record\n"
                 "struct a { int32_t y; };\n"
                 "       ^\n");
}

static void test_name_of_a_generated_function(void **state)
{
    (void)state;
    /* user_put and user_by_name are functions generated for record user */
    expect_error("schema s;\n"
                 "struct user { [[index]] char *name; };\n"
                 "struct user_put { int32_t x; };\n",
                 "t.kvs:3:8: error: 'user_put' is a name kivis-gen generates "
                 "for record 'user'; choose another\n"
                 "struct user_put { int32_t x; };\n"
                 "       ^\n");
    expect_error("schema s;\n"
                 "enum user_by_name { A };\n"
                 "struct user { [[index]] char *name; };\n",
                 "t.kvs:2:6: error: 'user_by_name' is a name kivis-gen "
                 "generates for field 'name' of record 'user'; choose "
                 "another\n"
                 "enum user_by_name { A };\n"
                 "     ^\n");
    /* S_USER is the table constant of record user in schema s */
    expect_error("schema s;\n"
                 "enum e { S_USER };\n"
                 "struct user { int32_t x; };\n",
                 "t.kvs:2:10: error: 'S_USER' is a name kivis-gen generates "
                 "for record 'user'; choose another\n"
                 "enum e { S_USER };\n"
                 "         ^\n");
}

static void test_duplicate_enum_vs_record(void **state)
{
    (void)state;
    /* the later declaration is the one reported, even across kinds */
    expect_error("schema s;\n"
                 "struct color { int32_t x; };\n"
                 "enum color { RED };\n",
                 "t.kvs:3:6: error: duplicate name 'color': first declared "
                 "at line 2 as a record\n"
                 "enum color { RED };\n"
                 "     ^\n");
}

static void test_duplicate_field(void **state)
{
    (void)state;
    expect_error("schema s;\n"
                 "struct a { int32_t x; double y, x; };\n",
                 "t.kvs:2:33: error: duplicate field 'x' in record 'a' "
                 "(first declared at line 2)\n"
                 "struct a { int32_t x; double y, x; };\n"
                 "                                ^\n");
}

static void test_duplicate_enumerator(void **state)
{
    (void)state;
    expect_error("schema s;\n"
                 "enum a { RED, GREEN };\n"
                 "enum b { BLUE, RED };\n",
                 "t.kvs:3:16: error: duplicate name 'RED': first declared "
                 "at line 2 as an enumerator\n"
                 "enum b { BLUE, RED };\n"
                 "               ^\n");
}

static void test_two_key_strategies(void **state)
{
    (void)state;
    expect_error("schema s;\n"
                 "[[derived_key(uint64_t hash)]]\n"
                 "struct blob {\n"
                 "    [[key]] uint32_t id;\n"
                 "};\n",
                 "t.kvs:4:22: error: record 'blob' has both [[key]] fields "
                 "and a derived_key: use one key strategy\n"
                 "    [[key]] uint32_t id;\n"
                 "                     ^\n");
}

static void test_index_on_bytes(void **state)
{
    (void)state;
    expect_error("schema s;\n"
                 "struct blob { [[index]] kivis_bytes data; };\n",
                 "t.kvs:2:37: error: [[index]] on field 'data': kivis_bytes "
                 "cannot be a key or indexed\n"
                 "struct blob { [[index]] kivis_bytes data; };\n"
                 "                                    ^\n");
}

static void test_key_on_struct_with_bytes(void **state)
{
    (void)state;
    expect_error("schema s;\n"
                 "[[embedded]] struct part { kivis_bytes b; };\n"
                 "struct a { [[key]] part p; };\n",
                 "t.kvs:3:25: error: [[key]] on field 'p': its type 'part' "
                 "contains kivis_bytes, which cannot be a key or indexed\n"
                 "struct a { [[key]] part p; };\n"
                 "                        ^\n");
}

static void test_missing_record(void **state)
{
    (void)state;
    expect_error("schema s;\n"
                 "struct pet { ghost_key owner; };\n",
                 "t.kvs:2:14: error: 'ghost_key' refers to an undeclared "
                 "record 'ghost'\n"
                 "struct pet { ghost_key owner; };\n"
                 "             ^\n");
}

static void test_record_by_value(void **state)
{
    (void)state;
    expect_error("schema s;\n"
                 "struct user { char *name; };\n"
                 "struct pet { struct user owner; };\n",
                 "t.kvs:3:21: error: record 'user' cannot be a field type: "
                 "use 'user_key' to refer to one\n"
                 "struct pet { struct user owner; };\n"
                 "                    ^\n");
}

static void test_embedded_has_no_key(void **state)
{
    (void)state;
    expect_error("schema s;\n"
                 "[[embedded]] struct point { int32_t x, y; };\n"
                 "struct a { point_key p; };\n",
                 "t.kvs:3:12: error: 'point_key': 'point' is an [[embedded]] "
                 "struct, not a record, so it has no key\n"
                 "struct a { point_key p; };\n"
                 "           ^\n");
}

static void test_unterminated_comment(void **state)
{
    (void)state;
    expect_error("schema s;\n"
                 "struct a { int32_t x; }; /* the end\n"
                 "\n",
                 "t.kvs:2:26: error: unterminated /* comment\n"
                 "struct a { int32_t x; }; /* the end\n"
                 "                         ^\n");
}

static void test_missing_schema(void **state)
{
    (void)state;
    expect_error("// no manifest\n"
                 "struct a { int32_t x; };\n",
                 "t.kvs:2:1: error: expected 'schema NAME;' as the first "
                 "declaration\n"
                 "struct a { int32_t x; };\n"
                 "^\n");
}

static void test_keyword_name(void **state)
{
    (void)state;
    expect_error("schema s;\n"
                 "struct a { int32_t default; };\n",
                 "t.kvs:2:20: error: 'default' cannot be used as a name: it "
                 "is a C keyword\n"
                 "struct a { int32_t default; };\n"
                 "                   ^\n");
}

static void test_library_prefix(void **state)
{
    (void)state;
    expect_error("schema s;\n"
                 "enum kivis_mode { ON };\n",
                 "t.kvs:2:6: error: 'kivis_mode' cannot be used as a name: "
                 "names starting with kivis_ belong to the library\n"
                 "enum kivis_mode { ON };\n"
                 "     ^\n");
}

static void test_key_suffix_reserved(void **state)
{
    (void)state;
    /* a record named x_key would collide with the key type of record x */
    expect_error("schema s;\n"
                 "struct x { int32_t a; };\n"
                 "struct x_key { int32_t b; };\n",
                 "t.kvs:3:8: error: 'x_key' cannot be used as a name: names "
                 "ending in _key are the key types of records\n"
                 "struct x_key { int32_t b; };\n"
                 "       ^\n");
}

static void test_record_named_like_schema(void **state)
{
    (void)state;
    expect_error("schema pets;\n"
                 "struct pets { int32_t n; };\n",
                 "t.kvs:2:8: error: duplicate name 'pets': first declared at "
                 "line 1 as the schema\n"
                 "struct pets { int32_t n; };\n"
                 "       ^\n");
}

static void test_array_size_zero(void **state)
{
    (void)state;
    expect_error("schema s;\n"
                 "struct a { int32_t v[0]; };\n",
                 "t.kvs:2:22: error: array size must be at least 1\n"
                 "struct a { int32_t v[0]; };\n"
                 "                     ^\n");
}

static void test_array_too_large(void **state)
{
    (void)state;
    expect_error("schema s;\n"
                 "struct a { uint8_t v[0x10000]; };\n",
                 "t.kvs:2:22: error: array size 65536 is too large (at most "
                 "65535)\n"
                 "struct a { uint8_t v[0x10000]; };\n"
                 "                     ^\n");
}

static void test_char_array_too_small(void **state)
{
    (void)state;
    expect_error("schema s;\n"
                 "struct a { char c[1]; };\n",
                 "t.kvs:2:19: error: char array size must be at least 2 (one "
                 "character and the terminating NUL)\n"
                 "struct a { char c[1]; };\n"
                 "                  ^\n");
}

static void test_bare_char(void **state)
{
    (void)state;
    expect_error("schema s;\n"
                 "struct a { char c; };\n",
                 "t.kvs:2:17: error: char field 'c' needs a size: char c[N] "
                 "for an inline string, or char *c for an owned one\n"
                 "struct a { char c; };\n"
                 "                ^\n");
}

static void test_embedded_cycle(void **state)
{
    (void)state;
    expect_error("schema s;\n"
                 "[[embedded]] struct a { struct b inner; };\n"
                 "[[embedded]] struct b { a back; };\n",
                 "t.kvs:2:21: error: type 'a' contains itself: a -> b -> a\n"
                 "[[embedded]] struct a { struct b inner; };\n"
                 "                    ^\n");
}

static void test_key_cycle(void **state)
{
    (void)state;
    expect_error("schema s;\n"
                 "struct a { [[key]] b_key up; };\n"
                 "struct b { [[key]] a_key down; };\n",
                 "t.kvs:2:8: error: type 'a_key' contains itself: a_key -> "
                 "b_key -> a_key\n"
                 "struct a { [[key]] b_key up; };\n"
                 "       ^\n");
}

static void test_unknown_attribute(void **state)
{
    (void)state;
    expect_error("schema s;\n"
                 "struct a { [[indexed]] int32_t x; };\n",
                 "t.kvs:2:14: error: unknown attribute 'indexed'\n"
                 "struct a { [[indexed]] int32_t x; };\n"
                 "             ^\n");
}

static void test_duplicate_attribute(void **state)
{
    (void)state;
    expect_error("schema s;\n"
                 "struct a { [[index]] [[index]] int32_t x; };\n",
                 "t.kvs:2:24: error: duplicate attribute 'index'\n"
                 "struct a { [[index]] [[index]] int32_t x; };\n"
                 "                       ^\n");
}

static void test_attribute_on_wrong_thing(void **state)
{
    (void)state;
    expect_error("schema s;\n"
                 "[[key]] struct a { int32_t x; };\n",
                 "t.kvs:2:3: error: attribute 'key' cannot be used on a "
                 "struct\n"
                 "[[key]] struct a { int32_t x; };\n"
                 "  ^\n");
}

static void test_attribute_args(void **state)
{
    (void)state;
    expect_error("schema s;\n"
                 "struct a { [[unique(1)]] int32_t x; };\n",
                 "t.kvs:2:20: error: attribute 'unique' takes no arguments\n"
                 "struct a { [[unique(1)]] int32_t x; };\n"
                 "                   ^\n");
}

/* [[was(old)]] names one field, [[dropped]] alone declares a dropped
 * record, and both stay off enums and embedded structs. */
static void test_evolution_attributes(void **state)
{
    (void)state;
    kg_schema *s = expect_valid("schema s;\n"
                                "[[was(b), dropped(y, z)]] struct a "
                                "{ [[was(w)]] int32_t x; };\n"
                                "[[dropped]] struct old;\n");
    assert_string_equal(s->records[0].was, "b");
    assert_int_equal(s->records[0].ndropped, 2);
    assert_string_equal(s->records[0].dropped[1], "z");
    assert_string_equal(s->records[0].fields[0].was, "w");
    assert_int_equal(s->ndropped, 1);
    assert_string_equal(s->dropped[0], "old");
    kg_schema_free(s);
    expect_error("schema s;\n"
                 "struct a { [[was(w)]] int32_t x, y; };\n",
                 "t.kvs:2:14: error: [[was(...)]] names one field's old name: "
                 "declare the field alone\n"
                 "struct a { [[was(w)]] int32_t x, y; };\n"
                 "             ^\n");
    expect_error("schema s;\n"
                 "[[dropped]] struct a { int32_t x; };\n",
                 "t.kvs:2:3: error: [[dropped]] without names declares a "
                 "dropped record: [[dropped]] struct a; (fields: "
                 "[[dropped(f, ...)]])\n"
                 "[[dropped]] struct a { int32_t x; };\n"
                 "  ^\n");
    expect_error("schema s;\n"
                 "[[was(e)]] enum f { F };\n",
                 "t.kvs:2:3: error: attribute 'was' cannot be used on an enum\n"
                 "[[was(e)]] enum f { F };\n"
                 "  ^\n");
}

static void test_optional_key(void **state)
{
    (void)state;
    expect_error("schema s;\n"
                 "struct a { [[key, optional]] int32_t x; };\n",
                 "t.kvs:2:38: error: [[optional]] on field 'x': a [[key]] "
                 "field cannot be optional (every record has its key)\n"
                 "struct a { [[key, optional]] int32_t x; };\n"
                 "                                     ^\n");
}

static void test_optional_flag_name_taken(void **state)
{
    (void)state;
    expect_error("schema s;\n"
                 "struct a { bool has_x; [[optional]] int32_t x; };\n",
                 "t.kvs:2:45: error: [[optional]] field 'x' needs the presence "
                 "flag 'has_x', which is already a field of record 'a'\n"
                 "struct a { bool has_x; [[optional]] int32_t x; };\n"
                 "                                            ^\n");
}

static void test_optional_in_embedded(void **state)
{
    (void)state;
    expect_error("schema s;\n"
                 "[[embedded]] struct p { [[optional]] int32_t x; };\n",
                 "t.kvs:2:27: error: attribute 'optional' cannot be used in an "
                 "[[embedded]] struct (it has no table)\n"
                 "[[embedded]] struct p { [[optional]] int32_t x; };\n"
                 "                          ^\n");
}

/* A string or blob needs no flag (NULL says absent): has_x stays free. */
static void test_optional_valid(void **state)
{
    (void)state;
    kg_schema *s = expect_valid("schema s;\n"
                                "struct a { bool has_x; [[optional]] char *x;\n"
                                "  [[index, optional]] a_key up; };\n");
    assert_int_equal(s->records[0].fields[1].attrs, KG_ATTR_OPTIONAL);
    assert_int_equal(s->records[0].fields[2].attrs,
                     KG_ATTR_OPTIONAL | KG_ATTR_INDEX);
    assert_false(kg_has_presence_flag(&s->records[0].fields[1]));
    assert_true(kg_has_presence_flag(&s->records[0].fields[2]));
    kg_schema_free(s);
}

static void test_index_in_embedded(void **state)
{
    (void)state;
    expect_error("schema s;\n"
                 "[[embedded]] struct p { [[index]] int32_t x; };\n",
                 "t.kvs:2:27: error: attribute 'index' cannot be used in an "
                 "[[embedded]] struct (it has no table)\n"
                 "[[embedded]] struct p { [[index]] int32_t x; };\n"
                 "                          ^\n");
}

static void test_enum_out_of_range(void **state)
{
    (void)state;
    expect_error("schema s;\n"
                 "enum big { LOW = -2147483649 };\n",
                 "t.kvs:2:18: error: enum value -2147483649 is out of range "
                 "for int32_t\n"
                 "enum big { LOW = -2147483649 };\n"
                 "                 ^\n");
}

static void test_enum_implicit_overflow(void **state)
{
    (void)state;
    expect_error("schema s;\n"
                 "enum big { TOP = 2147483647, OVER };\n",
                 "t.kvs:2:30: error: value of 'OVER' (previous + 1) is out "
                 "of range for int32_t\n"
                 "enum big { TOP = 2147483647, OVER };\n"
                 "                             ^\n");
}

static void test_derived_key_not_fixed(void **state)
{
    (void)state;
    expect_error("schema s;\n"
                 "[[derived_key(char *id)]] struct doc { char *text; };\n",
                 "t.kvs:2:21: error: derived_key field 'id' must have a "
                 "fixed size: char * is not allowed\n"
                 "[[derived_key(char *id)]] struct doc { char *text; };\n"
                 "                    ^\n");
}

static void test_missing_semicolon(void **state)
{
    (void)state;
    expect_error("schema s;\n"
                 "struct a {\n"
                 "\tint32_t x\n"
                 "\tint32_t y;\n"
                 "};\n",
                 "t.kvs:3:11: error: expected ';' after field 'x', found "
                 "'int32_t'\n"
                 "\tint32_t x\n"
                 "\t         ^\n");
}

static void test_stray_character_keeps_tabs(void **state)
{
    (void)state;
    expect_error("schema s;\n"
                 "struct a {\n"
                 "\t\tint32_t x; @\n"
                 "};\n",
                 "t.kvs:3:14: error: unexpected character '@'\n"
                 "\t\tint32_t x; @\n"
                 "\t\t           ^\n");
}

static void test_bad_integer(void **state)
{
    (void)state;
    expect_error("schema s;\n"
                 "struct a { int32_t v[99999999999999999999]; };\n",
                 "t.kvs:2:22: error: integer is too large\n"
                 "struct a { int32_t v[99999999999999999999]; };\n"
                 "                     ^\n");
}

static void test_pointer_not_char(void **state)
{
    (void)state;
    expect_error("schema s;\n"
                 "struct a { int32_t *p; };\n",
                 "t.kvs:2:20: error: pointer field 'p': only 'char *' (a "
                 "string) is supported\n"
                 "struct a { int32_t *p; };\n"
                 "                   ^\n");
}

static void test_empty_struct(void **state)
{
    (void)state;
    expect_error("schema s;\n"
                 "struct a { };\n",
                 "t.kvs:2:8: error: struct 'a' has no fields\n"
                 "struct a { };\n"
                 "       ^\n");
}

/* 0x7FFE tables fit; one more does not. */
static void test_too_many_tables(void **state)
{
    (void)state;
    size_t n = 0x7FFF, cap = 32 + n * 40;
    char *src = malloc(cap);
    assert_non_null(src);
    size_t len = (size_t)snprintf(src, cap, "schema s;\n");
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(src + len, cap - len,
                                "struct t%zu { int32_t x; };\n", i);
    int errors;
    kg_schema *s = (kg_schema *)1;
    char *got = compile_n(src, len, &errors, &s);
    assert_null(s);
    assert_int_equal(errors, 1);
    assert_string_equal(got,
                        "t.kvs:32768:8: error: too many records: a schema "
                        "holds at most 32766 tables\n"
                        "struct t32766 { int32_t x; };\n"
                        "       ^\n");
    free(got);
    /* without the last one the schema is fine */
    len -= strlen("struct t32766 { int32_t x; };\n");
    got = compile_n(src, len, &errors, &s);
    assert_int_equal(errors, 0);
    assert_int_equal(s->nrecords, 0x7FFE);
    assert_int_equal(s->records[0x7FFD].table, 0x7FFD);
    kg_schema_free(s);
    free(got);
    free(src);
}

/* ---- many mistakes, one run --------------------------------------------- */

/* ---- names the generated C or C++ cannot declare ------------------------ */

/* A type larger than any C compiler lays out is refused by kivis-gen, not
 * by the compiler of the generated header (the fuzz-header step found
 * four nested 65535-element arrays). */
static void test_type_too_large(void **state)
{
    (void)state;
    expect_errors("schema s;\n"
                  "[[embedded]] struct a { uint64_t x[65535]; };\n"
                  "[[embedded]] struct b { a y[65535]; };\n"
                  "struct c { b z[2]; };\n",
                  2,
                  "t.kvs:3:21: error: struct 'b' is too large (more than 16 "
                  "MiB in C)\n"
                  "[[embedded]] struct b { a y[65535]; };\n"
                  "                    ^\n"
                  "t.kvs:4:8: error: record 'c' is too large (more than 16 "
                  "MiB in C, with its key)\n"
                  "struct c { b z[2]; };\n"
                  "       ^\n");
}

/* Nesting deeper than the runtime's descriptor check allows is refused
 * here rather than by kivis_open. */
static void test_nesting_as_deep_as_the_runtime(void **state)
{
    (void)state;
    char src[4096];
    size_t n = (size_t)snprintf(src, sizeof src, "schema s;\n");
    for (int i = 0; i < 17; i++)
        n += (size_t)snprintf(src + n, sizeof src - n,
                              "[[embedded]] struct t%d { %s%d x; };\n", i,
                              i < 16 ? "t" : "int", i < 16 ? i + 1 : 32);
    n += (size_t)snprintf(src + n, sizeof src - n, "struct r { t0 v; };\n");
    kg_schema *sch = NULL;
    FILE *err = tmpfile();
    assert_non_null(err);
    assert_true(kg_compile("t.kvs", src, n, err, &sch) > 0);
    fflush(err);
    rewind(err);
    char out[8192];
    size_t got = fread(out, 1, sizeof out - 1, err);
    out[got] = '\0';
    fclose(err);
    assert_non_null(strstr(out, "nested more than 16 levels deep"));
}

static void test_cxx_keyword_name(void **state)
{
    (void)state;
    expect_errors("schema s;\n"
                  "struct a { uint32_t new; char *class; };\n"
                  "[[embedded]] struct private { int8_t x; };\n",
                  3,
                  "t.kvs:2:21: error: 'new' cannot be used as a name: it is "
                  "a C++ keyword\n"
                  "struct a { uint32_t new; char *class; };\n"
                  "                    ^\n"
                  "t.kvs:2:32: error: 'class' cannot be used as a name: it is "
                  "a C++ keyword\n"
                  "struct a { uint32_t new; char *class; };\n"
                  "                               ^\n"
                  "t.kvs:3:21: error: 'private' cannot be used as a name: it "
                  "is a C++ keyword\n"
                  "[[embedded]] struct private { int8_t x; };\n"
                  "                    ^\n");
}

/* The header includes <stdint.h>: its macros would replace an enumerator
 * or a generated constant (schema size, record max: SIZE_MAX). */
static void test_stdint_name(void **state)
{
    (void)state;
    expect_errors("schema size;\n"
                  "enum e { INT8_MAX, INTERVAL_MAX };\n"
                  "struct max { uint32_t uint_least8_t; };\n",
                  3,
                  "t.kvs:2:10: error: 'INT8_MAX' cannot be used as a name: "
                  "<stdint.h> declares it\n"
                  "enum e { INT8_MAX, INTERVAL_MAX };\n"
                  "         ^\n"
                  "t.kvs:3:8: error: kivis-gen would generate 'SIZE_MAX' for "
                  "record 'max', which cannot be used as a name: <stdint.h> "
                  "declares it\n"
                  "struct max { uint32_t uint_least8_t; };\n"
                  "       ^\n"
                  "t.kvs:3:23: error: 'uint_least8_t' cannot be used as a "
                  "name: <stdint.h> declares it\n"
                  "struct max { uint32_t uint_least8_t; };\n"
                  "                      ^\n");
}

static void test_name_generated_twice(void **state)
{
    (void)state;
    /* constants are upper-cased: records A and a both give S_A */
    expect_error("schema s;\n"
                 "struct A { int32_t x; };\n"
                 "struct a { int32_t x; };\n",
                 "t.kvs:3:8: error: 'S_A' would be generated twice: for "
                 "record 'A' (line 2) and for record 'a'; rename one\n"
                 "struct a { int32_t x; };\n"
                 "       ^\n");
    /* the range lookup of x is named like the exact lookup of x_range */
    expect_error("schema s;\n"
                 "struct a {\n"
                 "    [[index]] char *x;\n"
                 "    [[index]] char *x_range;\n"
                 "};\n",
                 "t.kvs:4:21: error: 'a_by_x_range' would be generated twice: "
                 "for field 'x' of record 'a' (line 3) and for field "
                 "'x_range' of record 'a'; rename one\n"
                 "    [[index]] char *x_range;\n"
                 "                    ^\n");
    /* the key type of b_derive is named like b's derive_key function */
    expect_error("schema s;\n"
                 "[[derived_key(uint32_t h)]]\n"
                 "struct b { int32_t y; };\n"
                 "struct b_derive { int32_t z; };\n",
                 "t.kvs:4:8: error: 'b_derive_key' would be generated twice: "
                 "for record 'b' (line 3) and for record 'b_derive'; rename "
                 "one\n"
                 "struct b_derive { int32_t z; };\n"
                 "       ^\n");
}

/* The count, exists and distinct functions are generated names: a
 * declaration or another field that spells one is refused (R_next_key
 * ends in _key, which only key types may). */
static void test_count_and_distinct_names(void **state)
{
    (void)state;
    expect_errors("schema s;\n"
                  "struct user { [[index]] char *name; };\n"
                  "struct user_count { int32_t x; };\n"
                  "enum user_distinct_name_cursor { A };\n"
                  "enum s_count_ { B };\n",
                  3,
                  "t.kvs:3:8: error: 'user_count' is a name kivis-gen "
                  "generates for record 'user'; choose another\n"
                  "struct user_count { int32_t x; };\n"
                  "       ^\n"
                  "t.kvs:4:6: error: 'user_distinct_name_cursor' is a name "
                  "kivis-gen generates for field 'name' of record 'user'; "
                  "choose another\n"
                  "enum user_distinct_name_cursor { A };\n"
                  "     ^\n"
                  "t.kvs:5:6: error: 's_count_' is a name kivis-gen generates "
                  "for schema 's'; choose another\n"
                  "enum s_count_ { B };\n"
                  "     ^\n");
    /* x's distinct cursor reads its values with a_distinct_x_next, which
     * is also what the distinct values of a field x_next are opened with */
    expect_error("schema s;\n"
                 "struct a {\n"
                 "    [[index]] int32_t x;\n"
                 "    [[index]] int32_t x_next;\n"
                 "};\n",
                 "t.kvs:4:23: error: 'a_distinct_x_next' would be generated "
                 "twice: for field 'x' of record 'a' (line 3) and for field "
                 "'x_next' of record 'a'; rename one\n"
                 "    [[index]] int32_t x_next;\n"
                 "                      ^\n");
}

/* The handle type and functions of the schema, and the descriptors of
 * <schema>.kivis.c, are generated names too. */
static void test_schema_and_source_names(void **state)
{
    (void)state;
    expect_errors("schema pets;\n"
                  "struct pets_db { int32_t x; };\n"
                  "struct user_key_map_ { int32_t x; };\n"
                  "struct user { int32_t x; };\n",
                  2,
                  "t.kvs:2:8: error: 'pets_db' is a name kivis-gen generates "
                  "for schema 'pets'; choose another\n"
                  "struct pets_db { int32_t x; };\n"
                  "       ^\n"
                  "t.kvs:3:8: error: 'user_key_map_' is a name kivis-gen "
                  "generates for record 'user'; choose another\n"
                  "struct user_key_map_ { int32_t x; };\n"
                  "       ^\n");
    /* schema kivis would declare kivis_db, kivis_open, ...: one message */
    expect_error("schema kivis;\n",
                 "t.kvs:1:8: error: kivis-gen would generate 'kivis_db' for "
                 "schema 'kivis', which cannot be used as a name: names "
                 "starting with kivis_ belong to the library\n"
                 "schema kivis;\n"
                 "       ^\n");
}

/* A type named like a parameter that comes before it in a generated
 * prototype (user_get(s_db *db, user_key key, user *out)); names a global
 * may not take although C allows them. */
static void test_global_only_names(void **state)
{
    (void)state;
    expect_errors("schema s;\n"
                  "struct key { int32_t x; };\n"
                  "enum lo { L };\n"
                  "struct std { int32_t main; };\n"
                  "enum e { main, linux };\n",
                  5,
                  "t.kvs:2:8: error: 'key' cannot be used as a name: "
                  "generated functions have a parameter of that name\n"
                  "struct key { int32_t x; };\n"
                  "       ^\n"
                  "t.kvs:3:6: error: 'lo' cannot be used as a name: "
                  "generated functions have a parameter of that name\n"
                  "enum lo { L };\n"
                  "     ^\n"
                  "t.kvs:4:8: error: 'std' cannot be used as a name: it is the "
                  "C++ library's namespace\n"
                  "struct std { int32_t main; };\n"
                  "       ^\n"
                  "t.kvs:5:10: error: 'main' cannot be used as a name: it is "
                  "the program's main function\n"
                  "enum e { main, linux };\n"
                  "         ^\n"
                  "t.kvs:5:16: error: 'linux' cannot be used as a name: gcc "
                  "and clang predefine it as a macro\n"
                  "enum e { main, linux };\n"
                  "               ^\n");
}

/* Accepted: a manifest with no records (its header has no table enum), and
 * fields named like the types their struct uses (the header tags them). */
static void test_edge_schemas_valid(void **state)
{
    (void)state;
    kg_schema *s = expect_valid("schema e;\n");
    assert_int_equal(s->nrecords, 0);
    kg_schema_free(s);
    s = expect_valid("schema s;\n"
                     "enum color { RED };\n"
                     "[[embedded]] struct point { int32_t x; };\n"
                     "struct tile { [[key]] color color; point at; "
                     "int32_t point; };\n");
    assert_int_equal(s->nrecords, 1);
    kg_schema_free(s);
}

static void test_every_error_reported(void **state)
{
    (void)state;
    expect_errors("schema s;\n"
                  "struct user {\n"
                  "    uint33_t age;\n"
                  "    int32_t x y;\n"
                  "    [[index]] kivis_bytes b;\n"
                  "};\n"
                  "struct pet { ghost_key owner; user_key ok; }\n"
                  "enum e { A = 99999999999, B };\n",
                  6,
                  "t.kvs:3:5: error: unknown type 'uint33_t'\n"
                  "    uint33_t age;\n"
                  "    ^\n"
                  "t.kvs:4:14: error: expected ';' after field 'x', found "
                  "'y'\n"
                  "    int32_t x y;\n"
                  "             ^\n"
                  "t.kvs:5:27: error: [[index]] on field 'b': kivis_bytes "
                  "cannot be a key or indexed\n"
                  "    [[index]] kivis_bytes b;\n"
                  "                          ^\n"
                  "t.kvs:7:14: error: 'ghost_key' refers to an undeclared "
                  "record 'ghost'\n"
                  "struct pet { ghost_key owner; user_key ok; }\n"
                  "             ^\n"
                  "t.kvs:7:45: error: expected ';' after struct 'pet', found "
                  "'enum'\n"
                  "struct pet { ghost_key owner; user_key ok; }\n"
                  "                                            ^\n"
                  "t.kvs:8:14: error: enum value 99999999999 is out of "
                  "range for int32_t\n"
                  "enum e { A = 99999999999, B };\n"
                  "             ^\n");
}

/* ---- valid schemas ------------------------------------------------------ */

/* `rel` from the source tree, found next to this file (CMake passes
 * sources by absolute path). */
static char *read_source(const char *rel, size_t *len)
{
    char path[4096];
    const char *slash = strrchr(__FILE__, '/');
    int dir = slash ? (int)(slash - __FILE__) : 1;
    snprintf(path, sizeof path, "%.*s/../%s", dir, slash ? __FILE__ : ".",
             rel);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char *buf = malloc(1 << 16);
    assert_non_null(buf);
    *len = fread(buf, 1, (1 << 16) - 1, f);
    fclose(f);
    buf[*len] = '\0';
    return buf;
}

static const kg_field *field_named(const kg_field *f, size_t n,
                                   const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(f[i].name, name) == 0)
            return &f[i];
    fail_msg("no field %s", name);
    return NULL;
}

static void test_pets_schema(void **state)
{
    (void)state;
    size_t len;
    char *src = read_source("examples/pets/pets.kvs", &len);
    kg_schema *s = expect_valid(src);
    assert_string_equal(s->name, "pets");
    assert_int_equal(s->nenums, 1);
    assert_string_equal(s->enums[0].names[1], "TOY_MOUSE");
    assert_int_equal(s->enums[0].values[1], 1);
    assert_int_equal(s->nstructs, 0);
    assert_int_equal(s->nrecords, 4);

    const kg_record *user = &s->records[0], *toy = &s->records[1],
                    *pet = &s->records[2], *blob = &s->records[3];
    assert_string_equal(pet->name, "pet");
    assert_int_equal(pet->table, 2);
    assert_int_equal(user->key_kind, KG_KEY_AUTO);
    assert_int_equal(toy->key_kind, KG_KEY_FIELDS);
    assert_int_equal(pet->key_kind, KG_KEY_AUTO);
    assert_int_equal(blob->key_kind, KG_KEY_DERIVED);

    assert_int_equal(user->nfields, 3);
    assert_int_equal(user->fields[0].type.kind, KG_STRING);
    assert_int_equal(user->fields[0].attrs, KG_ATTR_INDEX);
    assert_int_equal(user->fields[2].type.kind, KG_U32);
    assert_int_equal(user->fields[2].loc.line, 9);

    assert_int_equal(toy->fields[0].type.kind, KG_ENUM);
    assert_ptr_equal(toy->fields[0].type.enm, &s->enums[0]);
    assert_int_equal(toy->fields[0].attrs, KG_ATTR_KEY);
    assert_int_equal(toy->fields[1].type.kind, KG_U8);

    const kg_field *name = field_named(pet->fields, pet->nfields, "name");
    assert_int_equal(name->type.kind, KG_CHARS);
    assert_int_equal(name->type.chars, 32);
    assert_int_equal(name->type.array, 0);
    const kg_field *owner = field_named(pet->fields, pet->nfields, "owner");
    assert_int_equal(owner->type.kind, KG_KEY);
    assert_ptr_equal(owner->type.record, user);
    assert_string_equal(owner->type.name, "user_key");
    const kg_field *fav =
        field_named(pet->fields, pet->nfields, "favourite_toy");
    assert_ptr_equal(fav->type.record, toy);
    assert_int_equal(fav->attrs, KG_ATTR_INDEX);

    assert_int_equal(blob->nderived, 1);
    assert_string_equal(blob->derived[0].name, "hash");
    assert_int_equal(blob->derived[0].type.kind, KG_U64);
    assert_int_equal(blob->fields[0].type.kind, KG_BYTES);
    kg_schema_free(s);
    free(src);
}

static void test_every_field_type(void **state)
{
    (void)state;
    kg_schema *s = expect_valid(
        "schema every;\n"
        "enum color { RED, GREEN = 0x10, BLUE = -3, };\n"
        "[[embedded]] struct point { int32_t x, y; double w[2]; };\n"
        "struct thing {\n"
        "    [[key]] uint64_t id;\n"
        "    uint8_t a; uint16_t b; uint32_t c; int8_t d; int16_t e;\n"
        "    int32_t f; int64_t g; [[index]] bool h; [[unique]] float i;\n"
        "    double j; enum color k; color k2[3];\n"
        "    char *s; char *ss[2]; char fixed[8];\n"
        "    kivis_bytes blob; kivis_bytes blobs[2];\n"
        "    struct point p; point ps[4];\n"
        "    other_key o; // declared below\n"
        "};\n"
        "[[derived_key(uint64_t hash, char tag[4], struct point at)]]\n"
        "struct other { thing_key t; };\n");
    static const kg_kind kinds[] = {
        KG_U64, KG_U8, KG_U16, KG_U32, KG_I8, KG_I16, KG_I32, KG_I64,
        KG_BOOL, KG_F32, KG_F64, KG_ENUM, KG_ENUM, KG_STRING, KG_STRING,
        KG_CHARS, KG_BYTES, KG_BYTES, KG_STRUCT, KG_STRUCT, KG_KEY};
    static const uint32_t arrays[] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                      0, 3, 0, 2, 0, 0, 2, 0, 4, 0};
    const kg_record *thing = &s->records[0], *other = &s->records[1];
    assert_int_equal(thing->nfields, sizeof kinds / sizeof kinds[0]);
    for (size_t i = 0; i < thing->nfields; i++) {
        assert_int_equal(thing->fields[i].type.kind, kinds[i]);
        assert_int_equal(thing->fields[i].type.array, arrays[i]);
    }
    assert_int_equal(thing->key_kind, KG_KEY_FIELDS);
    assert_int_equal(thing->fields[9].attrs, KG_ATTR_UNIQUE | KG_ATTR_INDEX);
    assert_int_equal(thing->fields[15].type.chars, 8);
    assert_ptr_equal(thing->fields[19].type.strct, &s->structs[0]);
    assert_ptr_equal(thing->fields[20].type.record, other);
    assert_ptr_equal(other->fields[0].type.record, thing);
    assert_int_equal(s->enums[0].values[1], 16);
    assert_int_equal(s->enums[0].values[2], -3);
    assert_int_equal(s->structs[0].nfields, 3);
    assert_int_equal(other->key_kind, KG_KEY_DERIVED);
    assert_int_equal(other->nderived, 3);
    assert_int_equal(other->derived[1].type.kind, KG_CHARS);
    assert_ptr_equal(other->derived[2].type.strct, &s->structs[0]);
    kg_schema_free(s);
}

/* Garbage in: errors out, no crash, the count matches the report. */
static void test_binary_input(void **state)
{
    (void)state;
    static const char junk[] = "schema \0s;\nstruct \xff\xfe { [[ ]] }}}";
    int errors;
    kg_schema *s = (kg_schema *)1;
    char *got = compile_n(junk, sizeof junk - 1, &errors, &s);
    assert_null(s);
    assert_true(errors > 0);
    assert_non_null(strstr(got, "t.kvs:1:8: error: unexpected byte 0x00"));
    free(got);
}

/* ---- referential actions ------------------------------------------------ */

static void test_references_not_a_key(void **state)
{
    (void)state;
    expect_errors("schema s;\n"
                  "struct user { char name[8]; };\n"
                  "struct pet {\n"
                  "    [[references(cascade)]] uint64_t owner;\n"
                  "    [[references(restrict)]] user_key owners[2];\n"
                  "};\n",
                  2,
                  "t.kvs:4:7: error: [[references]] on field 'owner': its type "
                  "is not another record's key type (<record>_key)\n"
                  "    [[references(cascade)]] uint64_t owner;\n"
                  "      ^\n"
                  "t.kvs:5:7: error: [[references]] on field 'owners': an array "
                  "of keys cannot carry a referential action\n"
                  "    [[references(restrict)]] user_key owners[2];\n"
                  "      ^\n");
}

static void test_references_nullify(void **state)
{
    (void)state;
    expect_error("schema s;\n"
                 "struct user { char name[8]; };\n"
                 "struct pet { [[references(nullify)]] user_key owner; };\n",
                 "t.kvs:3:16: error: [[references(nullify)]] on field 'owner': "
                 "nullify makes the field absent, so it must be [[optional]]\n"
                 "struct pet { [[references(nullify)]] user_key owner; };\n"
                 "               ^\n");
}

static void test_references_needs_an_action(void **state)
{
    (void)state;
    expect_errors("schema s;\n"
                  "struct user { char name[8]; };\n"
                  "struct pet { [[references]] user_key owner; };\n"
                  "struct toy { [[references(delete)]] user_key owner; };\n",
                  2,
                  "t.kvs:3:16: error: references needs an action: "
                  "[[references(restrict)]], [[references(cascade)]] or "
                  "[[references(nullify)]]\n"
                  "struct pet { [[references]] user_key owner; };\n"
                  "               ^\n"
                  "t.kvs:4:27: error: references takes restrict, cascade or "
                  "nullify, not 'delete'\n"
                  "struct toy { [[references(delete)]] user_key owner; };\n"
                  "                          ^\n");
}

static void test_references_valid(void **state)
{
    (void)state;
    kg_schema *s = expect_valid("schema s;\n"
                                "struct node {\n"
                                "    [[references(cascade)]] node_key parent;\n"
                                "    [[index, references(restrict)]] node_key next;\n"
                                "    node_key plain;\n"
                                "};\n");
    assert_int_equal(s->records[0].fields[0].action, KG_REF_CASCADE);
    assert_int_equal(s->records[0].fields[1].action, KG_REF_RESTRICT);
    assert_int_equal(s->records[0].fields[1].attrs, KG_ATTR_INDEX);
    assert_int_equal(s->records[0].fields[2].action, KG_REF_NONE);
    kg_schema_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unknown_type),
        cmocka_unit_test(test_references_not_a_key),
        cmocka_unit_test(test_references_nullify),
        cmocka_unit_test(test_references_needs_an_action),
        cmocka_unit_test(test_references_valid),
        cmocka_unit_test(test_duplicate_record),
        cmocka_unit_test(test_name_of_a_generated_function),
        cmocka_unit_test(test_duplicate_enum_vs_record),
        cmocka_unit_test(test_duplicate_field),
        cmocka_unit_test(test_duplicate_enumerator),
        cmocka_unit_test(test_two_key_strategies),
        cmocka_unit_test(test_index_on_bytes),
        cmocka_unit_test(test_key_on_struct_with_bytes),
        cmocka_unit_test(test_missing_record),
        cmocka_unit_test(test_record_by_value),
        cmocka_unit_test(test_embedded_has_no_key),
        cmocka_unit_test(test_unterminated_comment),
        cmocka_unit_test(test_missing_schema),
        cmocka_unit_test(test_keyword_name),
        cmocka_unit_test(test_library_prefix),
        cmocka_unit_test(test_key_suffix_reserved),
        cmocka_unit_test(test_record_named_like_schema),
        cmocka_unit_test(test_array_size_zero),
        cmocka_unit_test(test_array_too_large),
        cmocka_unit_test(test_char_array_too_small),
        cmocka_unit_test(test_bare_char),
        cmocka_unit_test(test_embedded_cycle),
        cmocka_unit_test(test_key_cycle),
        cmocka_unit_test(test_unknown_attribute),
        cmocka_unit_test(test_duplicate_attribute),
        cmocka_unit_test(test_attribute_on_wrong_thing),
        cmocka_unit_test(test_attribute_args),
        cmocka_unit_test(test_evolution_attributes),
        cmocka_unit_test(test_index_in_embedded),
        cmocka_unit_test(test_optional_key),
        cmocka_unit_test(test_optional_flag_name_taken),
        cmocka_unit_test(test_optional_in_embedded),
        cmocka_unit_test(test_optional_valid),
        cmocka_unit_test(test_enum_out_of_range),
        cmocka_unit_test(test_enum_implicit_overflow),
        cmocka_unit_test(test_derived_key_not_fixed),
        cmocka_unit_test(test_missing_semicolon),
        cmocka_unit_test(test_stray_character_keeps_tabs),
        cmocka_unit_test(test_bad_integer),
        cmocka_unit_test(test_pointer_not_char),
        cmocka_unit_test(test_empty_struct),
        cmocka_unit_test(test_too_many_tables),
        cmocka_unit_test(test_cxx_keyword_name),
        cmocka_unit_test(test_type_too_large),
        cmocka_unit_test(test_nesting_as_deep_as_the_runtime),
        cmocka_unit_test(test_stdint_name),
        cmocka_unit_test(test_name_generated_twice),
        cmocka_unit_test(test_schema_and_source_names),
        cmocka_unit_test(test_count_and_distinct_names),
        cmocka_unit_test(test_global_only_names),
        cmocka_unit_test(test_edge_schemas_valid),
        cmocka_unit_test(test_every_error_reported),
        cmocka_unit_test(test_pets_schema),
        cmocka_unit_test(test_every_field_type),
        cmocka_unit_test(test_binary_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
