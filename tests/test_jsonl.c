/*
 * test_jsonl - JSON Lines export and import (kivis/jsonl.h) over
 * tests/gen/alltypes.kvs, which has every field kind and key strategy:
 *
 *   round trip   LMDB -> export -> SQLite -> export -> RocksDB -> export:
 *                the three texts and the three stores' bytes are equal
 *   format       the spelling of the values that need care (uint64 above
 *                INT64_MAX, NaN payloads, -0.0, shortest floats, base64)
 *   bad input    each kind of error names its line, table and field, and
 *                nothing of its batch is written
 *   skip_bad     bad lines reported and left out, the rest written
 *
 *   test_jsonl <kivis-path>  also runs the tool's export and import
 */
#include "testutil.h"

#include "alltypes.kivis.h"

#include <kivis/jsonl.h>
#include <kivis/lmdb.h>
#include <kivis/memory.h>
#include <kivis/rocksdb.h>
#include <kivis/sqlite.h>

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

static const char *kivis_tool;

/* ---- helpers ------------------------------------------------------------ */

static char *export_all(kivis_db *db)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    assert_non_null(out);
    kivis_jsonl_report r;
    assert_int_equal(kivis_export_jsonl(db, NULL, 0, out, NULL, &r), KIVIS_OK);
    assert_int_equal(fclose(out), 0);
    return text;
}

static int import_text(kivis_db *db, const char *text, const kivis_jsonl_options *o,
                       kivis_jsonl_report *r)
{
    FILE *in = fmemopen((void *)text, strlen(text), "r");
    assert_non_null(in);
    int rc = kivis_import_jsonl(db, in, o, r);
    fclose(in);
    return rc;
}

static void import_ok(kivis_db *db, const char *text, const kivis_jsonl_options *o,
                      kivis_jsonl_report *r)
{
    int rc = import_text(db, text, o, r);
    if (rc)
        fail_msg("import: %s at line %llu, %s %s: %s", kivis_errname(rc),
                 (unsigned long long)r->line, r->table, r->field, r->message);
}

static float f32_bits(uint32_t bits)
{
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static double f64_bits(uint64_t bits)
{
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
}

/* Records with every kind at its edges. */
static void fill(kivis_db *db)
{
    owner o1 = {"zo\xc3\xab@example.org", 1}, o2 = {"q\"b\\c\n\t\x01@x", UINT32_MAX},
          o3 = {"", 0};
    assert_int_equal(kivis_put(db, ALLTYPES_OWNER, &o1, NULL), KIVIS_OK);
    assert_int_equal(kivis_put(db, ALLTYPES_OWNER, &o2, NULL), KIVIS_OK);
    assert_int_equal(kivis_put(db, ALLTYPES_OWNER, &o3, NULL), KIVIS_OK);

    static uint8_t all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (uint8_t)i;
    sample s1 = {UINT8_MAX, UINT16_MAX, UINT32_MAX, UINT64_MAX, INT8_MIN, INT16_MIN,
                 INT32_MIN, INT64_MIN, true, f32_bits(0x7fc00001), -0.0, BLUE,
                 "q \" b \\ n \n t \t c \x1f \xc3\xa9 \xe6\x97\xa5 \xf0\x9f\x8e\x89",
                 "CODE-15-bytes!!", {all, sizeof all}, {0, 1, UINT16_MAX, 7},
                 {INT32_MIN, INT32_MAX}, {{-1, 1}, {2, -2}}, {1}, {{2}, {3}}};
    sample s2 = {0, 0, 0, (uint64_t)INT64_MAX + 1, INT8_MAX, INT16_MAX, INT32_MAX,
                 INT64_MAX, false, FLT_TRUE_MIN, DBL_TRUE_MIN, RED, "", "", {NULL, 0},
                 {0}, {0, 0}, {{0, 0}, {0, 0}}, {0}, {{0}, {0}}};
    sample s3 = {1, 2, 3, (uint64_t)INT64_MAX, -1, -2, -3, -4, true, -INFINITY,
                 f64_bits(0x7ff0000000000001ull), GREEN, "three", "c3", {all, 1},
                 {1, 2, 3, 4}, {5, 6}, {{7, 8}, {9, 10}}, {2}, {{1}, {1}}};
    sample s4 = {4, 5, 6, 7, 8, 9, 10, 11, false, 0.1f, 0.1, GREEN, "four", "c4",
                 {all, 2}, {0}, {0, 0}, {{0, 0}, {0, 0}}, {3}, {{0}, {0}}};
    sample s5 = {0}, s6 = {0};
    s5.f32 = FLT_MAX, s5.f64 = DBL_MAX, s5.colour = RED, s5.label = "five";
    strcpy(s5.code, "c5");
    s6.f32 = NAN, s6.f64 = -INFINITY, s6.colour = RED, s6.label = "six";
    s6.f64 = NAN;
    strcpy(s6.code, "c6");
    const sample *samples[] = {&s1, &s2, &s3, &s4, &s5, &s6};
    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++)
        assert_int_equal(kivis_put(db, ALLTYPES_SAMPLE, samples[i], NULL), KIVIS_OK);

    cell c1 = {"", -1, "a", 1e300}, c2 = {"sheet \xe2\x82\xac", 7, "zzz", -1.5},
         c3 = {"sheet \xe2\x82\xac", 7, "", 123456789.0};
    assert_int_equal(kivis_put(db, ALLTYPES_CELL, &c1, NULL), KIVIS_OK);
    assert_int_equal(kivis_put(db, ALLTYPES_CELL, &c2, NULL), KIVIS_OK);
    assert_int_equal(kivis_put(db, ALLTYPES_CELL, &c3, NULL), KIVIS_OK);

    for (size_t n = 0; n <= 4; n++) { /* every base64 padding */
        chunk c = {{all + 10, n}, "t"};
        c.tag[1] = (char)('0' + n);
        assert_int_equal(kivis_put(db, ALLTYPES_CHUNK, &c, NULL), KIVIS_OK);
    }
}

/* An empty alltypes db on a new memory store; *st to close after it. */
static kivis_db *open_memory(kivis_storage **st)
{
    kivis_db *db;
    assert_int_equal(kivis_memory_open(NULL, st), KIVIS_OK);
    assert_int_equal(kivis_open(*st, &alltypes_schema, NULL, &db), KIVIS_OK);
    return db;
}

typedef struct stores {
    char dir[3][256];
    char sqlite_path[300];
} stores;

static kivis_storage *open_store(const stores *s, int which)
{
    kivis_storage *st = NULL;
    int rc = which == 0   ? kivis_lmdb_open(s->dir[0], NULL, &st)
             : which == 1 ? kivis_sqlite_open(s->sqlite_path, NULL, &st)
                          : kivis_rocksdb_open(s->dir[2], NULL, &st);
    assert_int_equal(rc, KIVIS_OK);
    return st;
}

static void make_stores(stores *s)
{
    for (int i = 0; i < 3; i++)
        kt_tempdir(s->dir[i], sizeof s->dir[i]);
    snprintf(s->sqlite_path, sizeof s->sqlite_path, "%s/store.db", s->dir[1]);
}

static void remove_stores(const stores *s)
{
    for (int i = 0; i < 3; i++)
        kt_rmdir(s->dir[i]);
}

/* A store of alltypes_schema with no records (the tool opens existing
 * stores only, and a loaded schema needs one stored). */
static void create_empty(const stores *s, int which)
{
    kivis_storage *st = open_store(s, which);
    kivis_db *db;
    assert_int_equal(kivis_open(st, &alltypes_schema, NULL, &db), KIVIS_OK);
    kivis_close(db);
    kivis_storage_close(st);
}

static void fill_lmdb(const stores *s)
{
    kivis_storage *st = open_store(s, 0);
    kivis_db *db;
    assert_int_equal(kivis_open(st, &alltypes_schema, NULL, &db), KIVIS_OK);
    fill(db);
    kivis_close(db);
    kivis_storage_close(st);
}

/* ---- round trip ----------------------------------------------------------- */

static void round_trip_lmdb_sqlite_rocksdb(void **state)
{
    (void)state;
    stores s;
    make_stores(&s);
    fill_lmdb(&s);

    /* LMDB, read through its stored schema as the tool reads it. */
    kivis_storage *lmdb = open_store(&s, 0);
    kivis_db *db;
    assert_int_equal(kivis_jsonl_open(lmdb, NULL, &db), KIVIS_OK);
    char *a = export_all(db);
    kivis_jsonl_close(db);
    char *lmdb_bytes = kt_dump(lmdb);
    kivis_storage_close(lmdb);

    /* SQLite through the compiled schema: derived keys recomputed and
     * checked against the lines'. */
    kivis_storage *sqlite = open_store(&s, 1);
    assert_int_equal(kivis_open(sqlite, &alltypes_schema, NULL, &db), KIVIS_OK);
    kivis_jsonl_options o = {0};
    o.batch = 2; /* several batches */
    kivis_jsonl_report r;
    import_ok(db, a, &o, &r);
    assert_int_equal(r.records, 3 + 6 + 3 + 5);
    assert_int_equal(r.lines, r.records);
    assert_int_equal(r.rejected, 0);
    char *b = export_all(db);
    assert_string_equal(a, b);
    kivis_close(db);
    char *sqlite_bytes = kt_dump(sqlite);
    kivis_storage_close(sqlite);
    assert_string_equal(lmdb_bytes, sqlite_bytes);

    /* RocksDB through its stored schema: derived keys taken from the lines. */
    create_empty(&s, 2);
    kivis_storage *rocks = open_store(&s, 2);
    assert_int_equal(kivis_jsonl_open(rocks, NULL, &db), KIVIS_OK);
    import_ok(db, a, NULL, &r);
    char *c = export_all(db);
    assert_string_equal(a, c);
    /* Outside an import, a loaded derived-key table stays read-only. */
    chunk ch = {{NULL, 0}, "x"};
    assert_int_equal(kivis_put(db, ALLTYPES_CHUNK, &ch, NULL), KIVIS_ENOTSUP);
    kivis_jsonl_close(db);
    char *rocks_bytes = kt_dump(rocks);
    kivis_storage_close(rocks);
    assert_string_equal(lmdb_bytes, rocks_bytes);

    free(a), free(b), free(c);
    free(lmdb_bytes), free(sqlite_bytes), free(rocks_bytes);
    remove_stores(&s);
}

/* The spellings that have to be exact, pinned. */
static void format_of_values(void **state)
{
    (void)state;
    kivis_storage *st;
    kivis_db *db = open_memory(&st);
    fill(db);
    char *text = export_all(db);
    static const char *const want[] = {
        "{\"table\":\"owner\",\"key\":{\"id\":1},\"record\":{\"email\":\"zo\xc3\xab"
        "@example.org\",\"level\":1}}\n",
        "\"email\":\"q\\\"b\\\\c\\n\\t\\u0001@x\",\"level\":4294967295}",
        "{\"table\":\"sample\",\"key\":{\"id\":1},\"record\":{\"u8\":255,\"u16\":65535,"
        "\"u32\":4294967295,\"u64\":\"18446744073709551615\",\"i8\":-128,"
        "\"i16\":-32768,\"i32\":-2147483648,\"i64\":-9223372036854775808,"
        "\"flag\":true,\"f32\":\"NaN:0x7fc00001\",\"f64\":-0.0,\"colour\":\"BLUE\",",
        "\"u64\":\"9223372036854775808\"",
        "\"u64\":9223372036854775807",
        "\"f32\":1e-45,\"f64\":5e-324",
        "\"f32\":\"-Infinity\",\"f64\":\"NaN:0x7ff0000000000001\"",
        "\"f32\":0.1,\"f64\":0.1,",
        "\"f32\":3.4028235e+38,\"f64\":1.7976931348623157e+308",
        "\"f32\":\"NaN\",\"f64\":\"NaN\"",
        "\"samples\":[0,1,65535,7],\"where\":{\"x\":-2147483648,\"y\":2147483647},"
        "\"corners\":[{\"x\":-1,\"y\":1},{\"x\":2,\"y\":-2}],\"owner\":{\"id\":1},"
        "\"friends\":[{\"id\":2},{\"id\":3}]}}\n",
        "\"payload\":\"AA==\"", "\"payload\":\"AAE=\"", "\"payload\":\"\"",
        "\"payload\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKiss",
        "{\"table\":\"cell\",\"key\":{\"sheet\":\"\",\"row\":-1,\"col\":\"a\"},"
        "\"record\":{\"sheet\":\"\",\"row\":-1,\"col\":\"a\",\"value\":1e+300}}\n",
        "\"value\":123456789.0}", "\"value\":-1.5}",
        "\"record\":{\"data\":\"CgsMDQ==\",\"tag\":\"t4\"}}\n",
        "\"record\":{\"data\":\"\",\"tag\":\"t0\"}}\n",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (!strstr(text, want[i]))
            fail_msg("the export lacks %s\nit is:\n%s", want[i], text);
    /* Tables in schema order. */
    assert_true(strstr(text, "\"owner\"") < strstr(text, "\"table\":\"sample\""));
    assert_true(strstr(text, "\"table\":\"sample\"") < strstr(text, "\"table\":\"cell\""));
    assert_true(strstr(text, "\"table\":\"cell\"") < strstr(text, "\"table\":\"chunk\""));
    free(text);

    /* One table, by name; an unknown one writes nothing. */
    char *one = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&one, &len);
    const char *names[] = {"cell"}, *bad_names[] = {"cell", "nope"};
    kivis_jsonl_report r;
    assert_int_equal(kivis_export_jsonl(db, names, 1, out, NULL, &r), KIVIS_OK);
    assert_int_equal(r.records, 3);
    assert_int_equal(kivis_export_jsonl(db, bad_names, 2, out, NULL, &r), KIVIS_NOTFOUND);
    assert_non_null(strstr(r.message, "no table 'nope'"));
    fclose(out);
    assert_null(strstr(one, "\"owner\""));
    assert_int_equal(strlen(one) > 0, 1);
    free(one);
    kivis_close(db);
    kivis_storage_close(st);
}

/* ---- bad input ------------------------------------------------------------ */

typedef struct bad_case {
    const char *line;  /* the template: "owner", "sample", or a line itself */
    const char *from;  /* replaced in the template by `to` */
    const char *to;
    int rc;
    const char *table; /* what the report names */
    const char *field;
    const char *message; /* a part of the message */
} bad_case;

static const bad_case bad_cases[] = {
    {"not json", NULL, NULL, KIVIS_EINVAL, "", "", "not JSON"},
    {"[1]", NULL, NULL, KIVIS_EINVAL, "", "", "expected an object"},
    {"{\"table\":\"nope\",\"key\":{},\"record\":{}}", NULL, NULL, KIVIS_EINVAL, "", "",
     "no table \"nope\""},
    {"owner", ",\"record\"", ",\"other\"", KIVIS_EINVAL, "owner", "", "no \"record\""},
    {"owner", "}}\n", "},\"x\":1}\n", KIVIS_EINVAL, "owner", "", "nothing else"},
    {"owner", ",\"level\":1", "", KIVIS_EINVAL, "owner", "level", "missing"},
    {"owner", "\"level\":1", "\"level\":1,\"rank\":2", KIVIS_EINVAL, "owner", "rank",
     "no such field"},
    {"owner", "\"level\":1", "\"level\":\"1\"", KIVIS_EINVAL, "owner", "level",
     "expected an integer"},
    {"owner", "\"level\":1", "\"level\":-1", KIVIS_EINVAL, "owner", "level",
     "out of range for uint32_t"},
    {"owner", "\"level\":1", "\"level\":4294967296", KIVIS_EINVAL, "owner", "level",
     "out of range"},
    {"owner", "\"id\":1", "\"id\":-1", KIVIS_EINVAL, "owner", "key.id",
     "non-negative integer"},
    {"owner", "\"id\":1", "\"id\":\"18446744073709551616\"", KIVIS_EINVAL, "owner",
     "key.id", "out of range"},
    {"owner", "\"id\":1", "\"id\":\"012\"", KIVIS_EINVAL, "owner", "key.id",
     "non-negative integer"},
    {"owner", "\"id\":1", "\"id\":18446744073709551615", KIVIS_EINVAL, "", "",
     "not JSON"},
    {"owner", "\"email\":\"", "\"email\":5,\"x\":\"", KIVIS_EINVAL, "owner", "email",
     "expected a string"},
    {"owner", "@example", "\xff@example", KIVIS_EINVAL, "", "", "not JSON"},
    {"owner", "@example", "\\u0000@example", KIVIS_EINVAL, "", "", "not JSON"},
    {"owner", "\"level\":1", "\"level\":1,\"level\":2", KIVIS_EINVAL, "", "",
     "duplicate"},
    {"owner", "\"email\":\"zo\xc3\xab@example.org\"", "\"email\":\"q\\\"b\\\\c\\n\\t\\u0001@x\"",
     KIVIS_ECONSTRAINT, "owner", "", "constraint"},
    {"sample", "\"colour\":\"BLUE\"", "\"colour\":\"PURPLE\"", KIVIS_EINVAL, "sample",
     "colour", "not a value of enum shade"},
    {"sample", "\"colour\":\"BLUE\"", "\"colour\":2", KIVIS_EINVAL, "sample", "colour",
     "expected a name of enum shade"},
    {"sample", "\"code\":\"CODE-15-bytes!!\"", "\"code\":\"CODE-16-bytes!!!\"",
     KIVIS_EINVAL, "sample", "code", "does not fit char[16]"},
    {"sample", "\"payload\":\"AAEC", "\"payload\":\"AAE", KIVIS_EINVAL, "sample",
     "payload", "base64"},
    {"sample", "\"payload\":\"AAEC", "\"payload\":\"AAF=AAEC", KIVIS_EINVAL, "sample",
     "payload", "base64"},
    {"sample", "\"samples\":[0,1,65535,7]", "\"samples\":[0,1,65535]", KIVIS_EINVAL,
     "sample", "samples", "expected 4 elements, found 3"},
    {"sample", "\"samples\":[0,1,65535,7]", "\"samples\":[0,1,65536,7]", KIVIS_EINVAL,
     "sample", "samples[2]", "out of range for uint16_t"},
    {"sample", "\"y\":2147483647}", "\"z\":2147483647}", KIVIS_EINVAL, "sample",
     "where.y", "missing"},
    {"sample", "{\"id\":3}]", "{\"id\":\"a\"}]", KIVIS_EINVAL, "sample", "friends[1].id",
     "non-negative integer"},
    {"sample", "\"f32\":\"NaN:0x7fc00001\"", "\"f32\":1e39", KIVIS_EINVAL, "sample",
     "f32", "out of range for float"},
    {"sample", "\"f64\":-0.0", "\"f64\":\"nan\"", KIVIS_EINVAL, "sample", "f64",
     "expected a number"},
    {"sample", "\"f64\":-0.0", "\"f64\":\"NaN:0x7ff0000000000000\"", KIVIS_EINVAL,
     "sample", "f64", "expected a number"},
    {"sample", "\"f64\":-0.0", "\"f64\":null", KIVIS_EINVAL, "sample", "f64",
     "found null"},
    {"sample", "\"flag\":true", "\"flag\":1", KIVIS_EINVAL, "sample", "flag",
     "expected true or false"},
    {"sample", "\"i8\":-128", "\"i8\":-129", KIVIS_EINVAL, "sample", "i8",
     "out of range for int8_t"},
    {"sample", "\"where\":{", "\"where\":[{", KIVIS_EINVAL, "", "", "not JSON"},
    {"sample", "\"where\":{\"x\":-2147483648,\"y\":2147483647}", "\"where\":7",
     KIVIS_EINVAL, "sample", "where", "expected an object (point)"},
    {"{\"table\":\"cell\",\"key\":{\"sheet\":\"a\",\"row\":1,\"col\":\"b\"},"
     "\"record\":{\"sheet\":\"a\",\"row\":2,\"col\":\"b\",\"value\":0.0}}",
     NULL, NULL, KIVIS_EINVAL, "cell", "", "differs from the key"},
    {"{\"table\":\"chunk\",\"key\":{\"hash\":1,\"len\":0},"
     "\"record\":{\"data\":\"\",\"tag\":\"x\"}}",
     NULL, NULL, KIVIS_EINVAL, "chunk", "", "differs from the key"},
};

/* The first line of table t in text, newline included (malloc'd). */
static char *first_line(const char *text, const char *table)
{
    char head[64];
    snprintf(head, sizeof head, "{\"table\":\"%s\"", table);
    const char *p = strstr(text, head);
    assert_non_null(p);
    size_t n = (size_t)(strchr(p, '\n') - p) + 1;
    char *line = malloc(n + 1);
    memcpy(line, p, n);
    line[n] = '\0';
    return line;
}

static char *replace(const char *s, const char *from, const char *to)
{
    const char *at = strstr(s, from);
    if (!at)
        fail_msg("'%s' is not in %s", from, s);
    size_t n = strlen(s) - strlen(from) + strlen(to);
    char *out = malloc(n + 1);
    size_t head = (size_t)(at - s);
    memcpy(out, s, head);
    strcpy(out + head, to);
    strcat(out, at + strlen(from));
    return out;
}

/* The bad line of a case, newline-terminated. */
static char *bad_line(const bad_case *bc, const char *exported)
{
    if (strcmp(bc->line, "owner") && strcmp(bc->line, "sample")) {
        char *line = malloc(strlen(bc->line) + 2);
        sprintf(line, "%s\n", bc->line);
        return line;
    }
    char *tmpl = first_line(exported, bc->line);
    char *line = replace(tmpl, bc->from, bc->to);
    free(tmpl);
    return line;
}

static const char new_owner[] =
    "{\"table\":\"owner\",\"key\":{\"id\":10},\"record\":{\"email\":\"new@x\","
    "\"level\":3}}\n";

static void each_error_names_line_table_field(void **state)
{
    (void)state;
    kivis_storage *st;
    kivis_db *db = open_memory(&st);
    fill(db);
    char *exported = export_all(db);
    char *before = kt_dump(st);
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const bad_case *bc = &bad_cases[i];
        char *line = bad_line(bc, exported);
        /* A new record, then the bad line, in one batch. */
        char *input = malloc(sizeof new_owner + strlen(line));
        strcpy(input, new_owner);
        strcat(input, line);
        kivis_jsonl_report r;
        int rc = import_text(db, input, NULL, &r);
        if (rc != bc->rc || r.line != 2 || strcmp(r.table, bc->table) ||
            strcmp(r.field, bc->field) || !strstr(r.message, bc->message))
            fail_msg("case %zu (%s): rc %s, line %llu, table '%s', field '%s': %s\n"
                     "wanted %s, line 2, table '%s', field '%s': ...%s...",
                     i, line, kivis_errname(rc), (unsigned long long)r.line, r.table,
                     r.field, r.message, kivis_errname(bc->rc), bc->table, bc->field,
                     bc->message);
        assert_int_equal(r.records, 0);
        assert_int_equal(r.rejected, 1);
        char *after = kt_dump(st);
        assert_string_equal(before, after); /* not even the good first line */
        free(after);
        free(input);
        free(line);
    }
    free(before);
    free(exported);
    kivis_close(db);
    kivis_storage_close(st);
}

/* Batches before the bad one stay; the bad one is all gone. */
static void earlier_batches_stay(void **state)
{
    (void)state;
    kivis_storage *st;
    kivis_db *db = open_memory(&st);
    char text[1024] = "";
    for (int i = 1; i <= 5; i++)
        snprintf(text + strlen(text), sizeof text - strlen(text),
                 "{\"table\":\"owner\",\"key\":{\"id\":%d},\"record\":{\"email\":"
                 "\"%d@x\",\"level\":%d}}\n",
                 i, i, i == 4 ? -4 : i);
    kivis_jsonl_options o = {0};
    o.batch = 2;
    kivis_jsonl_report r;
    assert_int_equal(import_text(db, text, &o, &r), KIVIS_EINVAL);
    assert_int_equal(r.line, 4);
    assert_string_equal(r.field, "level");
    assert_int_equal(r.records, 2);
    assert_int_equal(r.lines, 4); /* stopped there */
    owner got;
    owner_key k1 = {2}, k3 = {3};
    assert_int_equal(kivis_get(db, ALLTYPES_OWNER, &k1, &got), KIVIS_OK);
    kivis_record_clear(db, ALLTYPES_OWNER, &got);
    assert_int_equal(kivis_get(db, ALLTYPES_OWNER, &k3, &got), KIVIS_NOTFOUND);
    kivis_close(db);
    kivis_storage_close(st);
}

typedef struct seen {
    int count;
    uint64_t lines[8];
    char fields[8][32];
} seen;

static void on_error(void *ctx, const kivis_jsonl_error *e)
{
    seen *s = ctx;
    if (s->count < 8) {
        s->lines[s->count] = e->line;
        snprintf(s->fields[s->count], sizeof s->fields[0], "%s", e->field);
    }
    s->count++;
}

static void skip_bad_lines(void **state)
{
    (void)state;
    kivis_storage *st;
    kivis_db *db = open_memory(&st);
    const char *text =
        "{\"table\":\"owner\",\"key\":{\"id\":1},\"record\":{\"email\":\"a\",\"level\":1}}\n"
        "\n"
        "{\"table\":\"owner\",\"key\":{\"id\":2},\"record\":{\"email\":\"b\",\"level\":true}}\n"
        "{\"table\":\"owner\",\"key\":{\"id\":3},\"record\":{\"email\":\"a\",\"level\":3}}\n"
        "{\"table\":\"owner\",\"key\":{\"id\":4},\"record\":{\"email\":\"d\",\"level\":4}}\n";
    seen s = {0};
    kivis_jsonl_options o = {0};
    o.skip_bad = true;
    o.error = on_error;
    o.ctx = &s;
    kivis_jsonl_report r;
    import_ok(db, text, &o, &r);
    assert_int_equal(r.lines, 5);
    assert_int_equal(r.records, 2);
    assert_int_equal(r.rejected, 2);
    assert_int_equal(s.count, 2);
    assert_int_equal(s.lines[0], 3);
    assert_string_equal(s.fields[0], "level");
    assert_int_equal(s.lines[1], 4); /* the unique email, refused by the engine */
    assert_int_equal(r.line, 3);     /* the report keeps the first */
    owner got;
    owner_key k4 = {4};
    assert_int_equal(kivis_get(db, ALLTYPES_OWNER, &k4, &got), KIVIS_OK);
    kivis_record_clear(db, ALLTYPES_OWNER, &got);
    kivis_close(db);
    kivis_storage_close(st);
}

/* ---- the tool -------------------------------------------------------------- */

static int run_tool(const char *args, const char *stderr_path)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' %s 2>'%s'", kivis_tool, args, stderr_path);
    int ws = system(cmd);
    return WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void tool_export_import(void **state)
{
    (void)state;
    if (!kivis_tool)
        skip();
    stores s;
    make_stores(&s);
    fill_lmdb(&s);
    create_empty(&s, 1);
    char a[300], b[300], err[300], args[1200], bad[300];
    snprintf(a, sizeof a, "%s/a.jsonl", s.dir[2]);
    snprintf(b, sizeof b, "%s/b.jsonl", s.dir[2]);
    snprintf(err, sizeof err, "%s/stderr", s.dir[2]);
    snprintf(bad, sizeof bad, "%s/bad.jsonl", s.dir[2]);

    snprintf(args, sizeof args, "export lmdb:%s -o %s", s.dir[0], a);
    assert_int_equal(run_tool(args, err), 0);
    snprintf(args, sizeof args, "import --batch 3 sqlite:%s %s", s.sqlite_path, a);
    assert_int_equal(run_tool(args, err), 0);
    char *msg = slurp(err);
    assert_non_null(strstr(msg, "imported 17 records"));
    free(msg);
    snprintf(args, sizeof args, "export %s >%s", s.sqlite_path, b);
    assert_int_equal(run_tool(args, err), 0);
    char *ta = slurp(a), *tb = slurp(b);
    assert_string_equal(ta, tb);
    free(tb);

    /* One table. */
    snprintf(args, sizeof args, "export %s cell chunk -o %s", s.dir[0], b);
    assert_int_equal(run_tool(args, err), 0);
    tb = slurp(b);
    assert_null(strstr(tb, "\"table\":\"owner\""));
    assert_non_null(strstr(tb, "\"table\":\"cell\""));
    assert_non_null(strstr(tb, "\"table\":\"chunk\""));
    free(tb);

    /* A bad line: exit 2, the line, table and field named. */
    FILE *f = fopen(bad, "w");
    fputs(new_owner, f);
    fputs("{\"table\":\"owner\",\"key\":{\"id\":11},\"record\":{\"email\":\"z\","
          "\"level\":-1}}\n", f);
    fclose(f);
    snprintf(args, sizeof args, "import %s %s", s.sqlite_path, bad);
    assert_int_equal(run_tool(args, err), 2);
    msg = slurp(err);
    if (!strstr(msg, "bad.jsonl:2: owner.level: -1 is out of range for uint32_t"))
        fail_msg("stderr: %s", msg);
    free(msg);
    snprintf(args, sizeof args, "import --skip-bad %s %s", s.sqlite_path, bad);
    assert_int_equal(run_tool(args, err), 1);
    snprintf(args, sizeof args, "export nowhere-%s", s.sqlite_path);
    assert_int_equal(run_tool(args, err), 2);
    snprintf(args, sizeof args, "export %s nosuchtable", s.sqlite_path);
    assert_int_equal(run_tool(args, err), 2);
    free(ta);
    remove_stores(&s);
}

int main(int argc, char **argv)
{
    kivis_tool = argc > 1 ? argv[1] : NULL;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trip_lmdb_sqlite_rocksdb),
        cmocka_unit_test(format_of_values),
        cmocka_unit_test(each_error_names_line_table_field),
        cmocka_unit_test(earlier_batches_stay),
        cmocka_unit_test(skip_bad_lines),
        cmocka_unit_test(tool_export_import),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
