/*
 * test_optional.c - [[optional]] fields (tests/gen/opt.kvs) on every
 * backend: absent is told apart from "" and from 0 for each kind of
 * field, a unique index leaves absent values out (two never collide) and
 * a non-unique one finds them (R_by_F_absent), updates move the index
 * entries both ways, a store written before the optional fields were
 * appended opens and reads them as absent, and a field that became
 * optional is refused at open.  The encoded sizes of an absent and a
 * present field are checked against docs/encoding.md.
 */
#define KT_WITH_ETCD /* the programs that run on etcd too */
#include "backends.h"
#include "codec/codec.h"

#include "opt.kivis.h"

#include <kivis.h>
#include <kivis/etcd.h>
#include <kivis/inspect.h>
#include <kivis/layered.h>
#include <kivis/lmdb.h>
#include <kivis/memory.h>
#include <kivis/postgres.h>
#include <kivis/rocksdb.h>
#include <kivis/sqlite.h>

#include <stdlib.h>
#include <string.h>

/* ---- the fixture: an opt database on the current backend ------------ */

typedef struct ofx {
    char dir[256];
    kivis_storage *st;
    opt_db *db;
} ofx;

static int opt_setup(void **state)
{
    ofx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    kt_tempdir(f->dir, sizeof f->dir);
    assert_int_equal(kt_backend_open(f->dir, &f->st), KIVIS_OK);
    assert_int_equal(opt_open(f->st, NULL, &f->db), KIVIS_OK);
    *state = f;
    return 0;
}

static int opt_teardown(void **state)
{
    ofx *f = *state;
    opt_close(f->db);
    assert_int_equal(kivis_storage_close(f->st), KIVIS_OK);
    kt_rmdir(f->dir);
    free(f);
    return 0;
}

#define OPT_TEST(fn) cmocka_unit_test_setup_teardown(fn, opt_setup, opt_teardown)

static person_key add(opt_db *db, const person *p)
{
    person_key k;
    assert_int_equal(person_add(db, p, &k), KIVIS_OK);
    return k;
}

static void expect_clean(opt_db *db)
{
    assert_int_equal(kivis_check((kivis_db *)db, NULL, NULL, NULL), KIVIS_OK);
}

static uint64_t age_absent(opt_db *db)
{
    uint64_t n;
    assert_int_equal(person_count_by_age_absent(db, &n), KIVIS_OK);
    return n;
}

static uint64_t by_age(opt_db *db, uint32_t age)
{
    uint64_t n;
    assert_int_equal(person_count_by_age(db, age, &n), KIVIS_OK);
    return n;
}

/* ---- round trips ------------------------------------------------------ */

static void null_and_empty_strings_differ(void **state)
{
    ofx *f = *state;
    person none = {0}, empty = {0};
    empty.email = "";
    empty.nick = "";
    empty.photo.data = (uint8_t *)"";
    person_key kn = add(f->db, &none), ke = add(f->db, &empty);

    person got;
    assert_int_equal(person_get(f->db, kn, &got), KIVIS_OK);
    assert_null(got.email);
    assert_null(got.nick);
    assert_null(got.photo.data);
    assert_non_null(got.name); /* not optional: NULL still reads as "" */
    assert_string_equal(got.name, "");
    person_clear(f->db, &got);

    assert_int_equal(person_get(f->db, ke, &got), KIVIS_OK);
    assert_non_null(got.email);
    assert_string_equal(got.email, "");
    assert_string_equal(got.nick, "");
    assert_non_null(got.photo.data);
    assert_int_equal(got.photo.len, 0);
    person_clear(f->db, &got);

    /* the no-allocation read says the same */
    char buf[256];
    assert_int_equal(person_get_into(f->db, ke, &got, buf, sizeof buf), KIVIS_OK);
    assert_string_equal(got.email, "");
    assert_non_null(got.photo.data);
    assert_int_equal(person_get_into(f->db, kn, &got, buf, sizeof buf), KIVIS_OK);
    assert_null(got.email);
    assert_null(got.photo.data);
    expect_clean(f->db);
}

static void absent_scalars_differ_from_zero(void **state)
{
    ofx *f = *state;
    person none = {0}, zero = {0};
    zero.has_age = zero.has_badge = zero.has_admin = zero.has_score = true;
    zero.has_hue = zero.has_tag = zero.has_dims = zero.has_at = true;
    zero.hue = HUE_RED;
    person_key kn = add(f->db, &none), kz = add(f->db, &zero);

    person got;
    assert_int_equal(person_get(f->db, kn, &got), KIVIS_OK);
    assert_false(got.has_age || got.has_badge || got.has_admin ||
                 got.has_score || got.has_hue || got.has_tag ||
                 got.has_dims || got.has_at || got.has_mentor);
    person_clear(f->db, &got);
    assert_int_equal(person_get(f->db, kz, &got), KIVIS_OK);
    assert_true(got.has_age && got.has_badge && got.has_admin &&
                got.has_score && got.has_hue && got.has_tag && got.has_dims &&
                got.has_at);
    assert_false(got.has_mentor);
    person_clear(f->db, &got);

    person full = {0};
    full.has_age = true, full.age = 41;
    full.has_badge = true, full.badge = -9;
    full.has_admin = true, full.admin = true;
    full.has_score = true, full.score = 2.5;
    full.has_hue = true, full.hue = HUE_BLUE;
    full.has_tag = true, strcpy(full.tag, "vip");
    full.has_dims = true, full.dims[2] = -3;
    full.has_at = true, full.at.y = 12;
    person_key kf = add(f->db, &full);
    assert_int_equal(person_get(f->db, kf, &got), KIVIS_OK);
    assert_int_equal(got.age, 41);
    assert_int_equal(got.badge, -9);
    assert_true(got.admin);
    assert_true(got.score == 2.5);
    assert_int_equal(got.hue, HUE_BLUE);
    assert_string_equal(got.tag, "vip");
    assert_int_equal(got.dims[2], -3);
    assert_int_equal(got.at.y, 12);
    person_clear(f->db, &got);

    /* an absent field's bytes are not stored: they read back as zero */
    person junk = {0};
    junk.age = 77;
    junk.badge = 5;
    assert_int_equal(person_get(f->db, add(f->db, &junk), &got), KIVIS_OK);
    assert_false(got.has_age);
    assert_int_equal(got.age, 0);
    assert_int_equal(got.badge, 0);
    person_clear(f->db, &got);

    /* a presence flag is a bool: another byte is refused */
    person bad = {0};
    memset(&bad.has_age, 2, 1);
    person_key k;
    assert_int_equal(person_add(f->db, &bad, &k), KIVIS_ERANGE);
    expect_clean(f->db);
}

static void absent_foreign_key(void **state)
{
    ofx *f = *state;
    person boss = {0};
    person_key kb = add(f->db, &boss);
    person staff = {0};
    staff.has_mentor = true;
    staff.mentor = kb;
    person_key ks = add(f->db, &staff);

    person got;
    assert_int_equal(person_get(f->db, ks, &got), KIVIS_OK);
    assert_true(got.has_mentor);
    assert_int_equal(got.mentor.id, kb.id);
    person_clear(f->db, &got);

    uint64_t n;
    assert_int_equal(person_count_by_mentor(f->db, kb, &n), KIVIS_OK);
    assert_int_equal(n, 1);
    person_cursor cur;
    person_key k;
    assert_int_equal(person_by_mentor_absent(f->db, 0, &cur), KIVIS_OK);
    assert_int_equal(person_next(&cur, &k, NULL), KIVIS_OK);
    assert_int_equal(k.id, kb.id); /* boss has no mentor */
    assert_int_equal(person_next(&cur, &k, NULL), KIVIS_NOTFOUND);
    person_close(&cur);
    /* id 0 is a present value, not the absent one */
    person_key zero = {0};
    assert_int_equal(person_count_by_mentor(f->db, zero, &n), KIVIS_OK);
    assert_int_equal(n, 0);
}

/* ---- indexes ------------------------------------------------------------ */

static void unique_leaves_absent_values_out(void **state)
{
    ofx *f = *state;
    person a = {0}, b = {0};
    add(f->db, &a);
    add(f->db, &b); /* email and badge absent in both: no collision */

    person_key k;
    person x = {0};
    x.email = "x@example.org";
    x.has_badge = true;
    add(f->db, &x);
    person y = {0};
    y.email = "x@example.org";
    assert_int_equal(person_add(f->db, &y, &k), KIVIS_ECONSTRAINT);
    person z = {0};
    z.has_badge = true; /* badge 0, present, like x's */
    assert_int_equal(person_add(f->db, &z, &k), KIVIS_ECONSTRAINT);
    /* two present empty strings are equal values */
    person e1 = {0}, e2 = {0};
    e1.email = e2.email = "";
    add(f->db, &e1);
    assert_int_equal(person_add(f->db, &e2, &k), KIVIS_ECONSTRAINT);

    uint64_t n;
    assert_int_equal(person_count_by_email_range(f->db, NULL, NULL, &n), KIVIS_OK);
    assert_int_equal(n, 2); /* only present values are entries */
    /* a unique index holds no absent values to look for */
    kivis_query q = {OPT_PERSON, OPT_PERSON_BY_EMAIL, KIVIS_Q_ABSENT, NULL, NULL,
                     NULL, 0, 0};
    kivis_scan *s;
    assert_int_equal(kivis_scan_open((kivis_db *)f->db, &q, &s), KIVIS_EINVAL);
    expect_clean(f->db);
}

static void index_finds_absent_values(void **state)
{
    ofx *f = *state;
    person p = {0};
    add(f->db, &p); /* age absent */
    p.has_age = true;
    add(f->db, &p); /* age 0 */
    p.age = 30;
    add(f->db, &p);
    p.has_age = false;
    person_key k4 = add(f->db, &p); /* absent again, whatever age holds */

    assert_int_equal(age_absent(f->db), 2);
    assert_int_equal(by_age(f->db, 0), 1);
    assert_int_equal(by_age(f->db, 30), 1);
    uint64_t n;
    assert_int_equal(person_count_by_age_range(f->db, NULL, NULL, &n), KIVIS_OK);
    assert_int_equal(n, 2); /* a range meets present values only */
    assert_int_equal(person_count(f->db, &n), KIVIS_OK);
    assert_int_equal(n, 4);

    /* distinct values: the present ones, 0 included */
    person_distinct_age_cursor dc;
    uint32_t value;
    uint64_t count;
    assert_int_equal(person_distinct_age(f->db, 0, &dc), KIVIS_OK);
    assert_int_equal(person_distinct_age_next(&dc, &value, &count), KIVIS_OK);
    assert_int_equal(value, 0);
    assert_int_equal(count, 1);
    assert_int_equal(person_distinct_age_next(&dc, &value, &count), KIVIS_OK);
    assert_int_equal(value, 30);
    assert_int_equal(person_distinct_age_next(&dc, &value, &count), KIVIS_NOTFOUND);
    person_distinct_age_close(&dc);

    person_cursor cur;
    person_key k;
    person got;
    assert_int_equal(person_by_age_absent(f->db, KIVIS_REVERSE, &cur), KIVIS_OK);
    assert_int_equal(person_next(&cur, &k, &got), KIVIS_OK);
    assert_int_equal(k.id, k4.id);
    assert_false(got.has_age);
    person_clear(f->db, &got);
    assert_int_equal(person_next(&cur, &k, NULL), KIVIS_OK);
    assert_int_equal(k.id, 1);
    assert_int_equal(person_next(&cur, &k, NULL), KIVIS_NOTFOUND);
    person_close(&cur);

    /* strings: NULL is absent, "" a present value with prefix "" */
    person s = {0};
    add(f->db, &s);
    s.nick = "";
    add(f->db, &s);
    s.nick = "bo";
    add(f->db, &s);
    assert_int_equal(person_count_by_nick_absent(f->db, &n), KIVIS_OK);
    assert_int_equal(n, 5);
    assert_int_equal(person_count_by_nick(f->db, "", &n), KIVIS_OK);
    assert_int_equal(n, 1);
    assert_int_equal(person_count_by_nick_prefix(f->db, "", 0, &n), KIVIS_OK);
    assert_int_equal(n, 2);
    expect_clean(f->db);
}

static void updates_move_the_entries(void **state)
{
    ofx *f = *state;
    person p = {0};
    person_key k = add(f->db, &p);
    assert_int_equal(age_absent(f->db), 1);

    p.has_age = true;
    p.age = 50;
    p.email = "me@example.org";
    assert_int_equal(person_update(f->db, k, &p), KIVIS_OK);
    assert_int_equal(age_absent(f->db), 0);
    assert_int_equal(by_age(f->db, 50), 1);
    expect_clean(f->db);

    p.has_age = false;
    p.email = NULL;
    assert_int_equal(person_update(f->db, k, &p), KIVIS_OK);
    assert_int_equal(age_absent(f->db), 1);
    assert_int_equal(by_age(f->db, 50), 0);
    /* the email the record gave up is free again */
    person other = {0};
    other.email = "me@example.org";
    add(f->db, &other);
    expect_clean(f->db);

    assert_int_equal(person_remove(f->db, k), KIVIS_OK);
    assert_int_equal(age_absent(f->db), 1); /* `other` */
    expect_clean(f->db);
}

#ifdef KIVIS_TEST_JSONL
#include <kivis/jsonl.h>

/* An absent field is exported as null and imported as absent; a present
 * "" or 0 stays present. */
static void jsonl_keeps_absent_apart(void **state)
{
    ofx *f = *state;
    person none = {0}, zero = {0};
    zero.email = "";
    zero.photo.data = (uint8_t *)"";
    zero.has_age = zero.has_mentor = zero.has_dims = true;
    person_key kn = add(f->db, &none), kz = add(f->db, &zero);

    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    assert_int_equal(kivis_export_jsonl((kivis_db *)f->db, NULL, 0, out, NULL, NULL),
                     KIVIS_OK);
    fclose(out);
    assert_non_null(strstr(text, "\"email\":null,\"nick\":null,\"photo\":null,"
                                 "\"age\":null"));
    assert_non_null(strstr(text, "\"email\":\"\",\"nick\":null,\"photo\":\"\","
                                 "\"age\":0"));

    kivis_storage *st;
    opt_db *copy;
    assert_int_equal(kivis_memory_open(NULL, &st), KIVIS_OK);
    assert_int_equal(opt_open(st, NULL, &copy), KIVIS_OK);
    FILE *in = fmemopen(text, len, "r");
    assert_int_equal(kivis_import_jsonl((kivis_db *)copy, in, NULL, NULL), KIVIS_OK);
    fclose(in);
    const kivis_struct_desc *sd = opt_schema.tables[OPT_PERSON].record;
    person_key keys[] = {kn, kz};
    for (int i = 0; i < 2; i++) {
        person a, b;
        assert_int_equal(person_get(f->db, keys[i], &a), KIVIS_OK);
        assert_int_equal(person_get(copy, keys[i], &b), KIVIS_OK);
        assert_true(kivis__struct_equal(sd, &a, &b));
        assert_int_equal(a.has_age, b.has_age);
        assert_int_equal(!a.email, !b.email);
        person_clear(f->db, &a);
        person_clear(copy, &b);
    }
    opt_close(copy);
    kivis_storage_close(st);
    free(text);
}
#endif

/* ---- stores and schemas ------------------------------------------------ */

/* person as a store written before the optional fields: plain and name. */
typedef struct old_person {
    uint32_t plain;
    char *name;
} old_person;

static const kivis_field old_person_fields[] = {
    {"plain", KIVIS_U32, 0, offsetof(old_person, plain), sizeof(uint32_t), NULL, NULL, 0},
    {"name", KIVIS_STRING, 0, offsetof(old_person, name), sizeof(char *), NULL, NULL, 0},
};
static const kivis_struct_desc old_person_desc = {"person", sizeof(old_person), 2,
                                                  old_person_fields, NULL};
static const kivis_field old_key_fields[] = {
    {"id", KIVIS_U64, 0, 0, sizeof(uint64_t), NULL, NULL, 0},
};
static const kivis_struct_desc old_key_desc = {"person_key", sizeof(uint64_t), 1,
                                               old_key_fields, NULL};
static const kivis_table_desc old_tables[] = {
    {"person", &old_person_desc, &old_key_desc, KIVIS_KEY_AUTO, NULL, NULL, 0, NULL},
};
static const kivis_schema_desc old_schema = {"opt", 1, old_tables, 0, NULL, 0, NULL};

static void old_store_opens_and_reads(void **state)
{
    ofx *f = *state;
    opt_close(f->db);
    f->db = NULL;
    /* a fresh store, written by the old layout */
    assert_int_equal(kivis_storage_close(f->st), KIVIS_OK);
    kt_rmdir(f->dir);
    kt_tempdir(f->dir, sizeof f->dir);
    assert_int_equal(kt_backend_open(f->dir, &f->st), KIVIS_OK);
    kivis_db *old;
    assert_int_equal(kivis_open(f->st, &old_schema, NULL, &old), KIVIS_OK);
    old_person op = {7, "ann"};
    uint64_t id;
    assert_int_equal(kivis_put(old, 0, &op, &id), KIVIS_OK);
    kivis_close(old);

    assert_int_equal(opt_open(f->st, NULL, &f->db), KIVIS_OK);
    person got;
    person_key k = {id};
    assert_int_equal(person_get(f->db, k, &got), KIVIS_OK);
    assert_int_equal(got.plain, 7);
    assert_string_equal(got.name, "ann");
    assert_null(got.email);
    assert_null(got.photo.data);
    assert_false(got.has_age || got.has_mentor || got.has_at);
    person_clear(f->db, &got);
    /* the indexes built at open hold it as absent */
    assert_int_equal(age_absent(f->db), 1);
    uint64_t n;
    assert_int_equal(person_count_by_email_range(f->db, NULL, NULL, &n), KIVIS_OK);
    assert_int_equal(n, 0);
    person p = {.plain = 7, .name = "ann", .email = "ann@example.org",
                .has_age = true, .age = 3};
    assert_int_equal(person_update(f->db, k, &p), KIVIS_OK);
    assert_int_equal(by_age(f->db, 3), 1);
    expect_clean(f->db);

    /* the stored schema lays the presence flags out as the compiler does */
    kivis_schema_desc *loaded;
    assert_int_equal(kivis_schema_load(f->st, NULL, &loaded), KIVIS_OK);
    const kivis_struct_desc *ld = loaded->tables[0].record;
    const kivis_struct_desc *cd = opt_schema.tables[OPT_PERSON].record;
    assert_int_equal(ld->size, cd->size);
    for (uint32_t i = 0; i < cd->nfields; i++) {
        assert_int_equal(ld->fields[i].offset, cd->fields[i].offset);
        assert_int_equal(ld->fields[i].flags, cd->fields[i].flags);
    }
    kivis_schema_free(loaded, NULL);
}

/* Open the old table with this record and key layout: it must fail with
 * rc and a message holding msg. */
static void expect_refused(ofx *f, const kivis_struct_desc *rec,
                           const kivis_struct_desc *key, int rc, const char *msg)
{
    kivis_table_desc table = old_tables[0];
    table.record = rec;
    table.key = key;
    kivis_schema_desc schema = {"opt", 1, &table, 0, NULL, 0, NULL};
    char got[256] = "";
    kivis_options o = {.durability = KIVIS_SYNC, .errbuf = got,
                       .errbuf_size = sizeof got};
    kivis_db *db = NULL;
    assert_int_equal(kivis_open(f->st, &schema, &o, &db), rc);
    assert_null(db);
    if (!strstr(got, msg))
        fail_msg("'%s' does not say '%s'", got, msg);
}

/* The store has opt's person, whose plain is not optional.  Making it
 * optional is a change open applies (test_evolve); leaving email out
 * undeclared is not, and neither is a presence flag with no room. */
static void undeclared_drop_and_flag_room_are_refused(void **state)
{
    ofx *f = *state;
    opt_close(f->db);
    f->db = NULL;
    typedef struct { bool has_plain; uint32_t plain; char *name; } shifted;
    const kivis_field fields[] = {
        {"plain", KIVIS_U32, 0, offsetof(shifted, plain), sizeof(uint32_t), NULL,
         NULL, KIVIS_FIELD_OPTIONAL},
        {"name", KIVIS_STRING, 0, offsetof(shifted, name), sizeof(char *), NULL,
         NULL, 0},
    };
    kivis_struct_desc rec = {"person", sizeof(shifted), 2, fields, NULL};
    expect_refused(f, &rec, &old_key_desc, KIVIS_ESCHEMA,
                   "table person: stored field 'email' is missing from the "
                   "schema (declare [[dropped(email)]] to delete it)");
    /* at offset 0 its flag would have no byte before it */
    kivis_field unshifted[2] = {fields[0], fields[1]};
    unshifted[0].offset = 0;
    rec.fields = unshifted;
    expect_refused(f, &rec, &old_key_desc, KIVIS_EINVAL,
                   "person.plain: no room for the presence flag before it");
    /* nothing was changed: opt still opens */
    assert_int_equal(opt_open(f->st, NULL, &f->db), KIVIS_OK);
}

static void optional_key_field_is_refused(void **state)
{
    ofx *f = *state;
    kivis_field key = old_key_fields[0];
    key.flags = KIVIS_FIELD_OPTIONAL;
    kivis_struct_desc kd = {"person_key", sizeof(uint64_t), 1, &key, NULL};
    expect_refused(f, &old_person_desc, &kd, KIVIS_EINVAL,
                   "key field id is optional");
}

/* docs/encoding.md: one tag byte, then the value only when present. */
static void encoded_sizes(void **state)
{
    (void)state;
    const kivis_struct_desc *sd = opt_schema.tables[OPT_PERSON].record;
    kivis_buf b;
    kivis__buf_init(&b, NULL);
    person p = {0};
    assert_int_equal(kivis__value_encode(&b, sd, 1, &p), KIVIS_OK);
    /* 01 01 0E | plain 00 | name 00 | 12 absent tags */
    static const uint8_t absent[] = {0x01, 0x01, 0x0E, 0x00, 0x00, 0, 0, 0, 0,
                                     0, 0, 0, 0, 0, 0, 0, 0};
    assert_int_equal(b.len, sizeof absent);
    assert_memory_equal(b.data, absent, sizeof absent);

    b.len = 0;
    p.has_age = true;
    p.age = 300;
    p.email = "";
    assert_int_equal(kivis__value_encode(&b, sd, 1, &p), KIVIS_OK);
    /* email: 01 00 (present, length 0); age: 01 AC 02 */
    assert_int_equal(b.len, sizeof absent + 1 + 2);
    static const uint8_t email[] = {0x01, 0x00};
    static const uint8_t age[] = {0x01, 0xAC, 0x02};
    assert_memory_equal(b.data + 5, email, sizeof email);
    assert_memory_equal(b.data + 9, age, sizeof age);

    person back;
    assert_int_equal(kivis__value_decode(kivis_slice_make(b.data, b.len), sd,
                                         &back, NULL, NULL),
                     KIVIS_OK);
    assert_true(kivis__struct_equal(sd, &p, &back));
    assert_true(back.has_age && back.email && !back.nick);
    kivis__struct_free(sd, &back, NULL);
    /* a tag other than 00 or 01 is corrupt */
    b.data[9] = 0x02;
    assert_int_equal(kivis__value_decode(kivis_slice_make(b.data, b.len), sd,
                                         &back, NULL, NULL),
                     KIVIS_ECORRUPT);
    kivis__buf_free(&b);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        OPT_TEST(null_and_empty_strings_differ),
        OPT_TEST(absent_scalars_differ_from_zero),
        OPT_TEST(absent_foreign_key),
        OPT_TEST(unique_leaves_absent_values_out),
        OPT_TEST(index_finds_absent_values),
        OPT_TEST(updates_move_the_entries),
#ifdef KIVIS_TEST_JSONL
        OPT_TEST(jsonl_keeps_absent_apart),
#endif
        OPT_TEST(old_store_opens_and_reads),
        OPT_TEST(undeclared_drop_and_flag_room_are_refused),
        OPT_TEST(optional_key_field_is_refused),
        cmocka_unit_test(encoded_sizes),
    };
    return kt_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
