/*
 * test_schema_open - what kivis_open does with a store whose stored schema
 * differs from the compiled one: another schema's name is refused unless
 * renaming is asked for, tables the compiled schema no longer names are
 * kept, listed and still verified by kivis_check, and a changed field is
 * refused with a message saying what changed.  Memory backend.
 */
#include "testutil.h"
#include "petsutil.h"

#include <kivis.h>
#include <kivis/inspect.h>
#include <kivis/memory.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- a second application's schema: "conc", one table ------------------ */

typedef struct counter_key { uint64_t id; } counter_key;
typedef struct counter { char *name; uint64_t n; } counter;

#define F(st, m, k, sz, sub, en, fl) {#m, k, 0, offsetof(st, m), sz, sub, en, fl}
static const kivis_field counter_key_fields[] = {
    F(counter_key, id, KIVIS_U64, 8, NULL, NULL, 0)};
static const kivis_struct_desc counter_key_desc = {"counter_key", sizeof(counter_key),
                                                   1, counter_key_fields, NULL};
static const kivis_field counter_fields[] = {
    F(counter, name, KIVIS_STRING, sizeof(char *), NULL, NULL, 0),
    F(counter, n, KIVIS_U64, 8, NULL, NULL, 0)};
static const kivis_struct_desc counter_desc = {"counter", sizeof(counter), 2,
                                               counter_fields, NULL};
static const kivis_table_desc conc_tables[] = {
    {"counter", &counter_desc, &counter_key_desc, KIVIS_KEY_AUTO, NULL, NULL, 0, NULL}};
static const kivis_schema_desc conc_schema = {"conc", 1, conc_tables, 0, NULL, 0, NULL};

/* ---- a schema with a nested struct: "shapes" ---------------------------- */

typedef struct point { int32_t x, y; } point;
typedef struct point64 { int64_t x; int32_t y; } point64;
typedef struct point3 { int32_t x, y, z; } point3;
typedef struct shape_key { uint64_t id; } shape_key;
typedef struct shape { char label[8]; point pos; } shape;

static const kivis_field point_fields[] = {F(point, x, KIVIS_I32, 4, NULL, NULL, 0),
                                           F(point, y, KIVIS_I32, 4, NULL, NULL, 0)};
static const kivis_struct_desc point_desc = {"point", sizeof(point), 2, point_fields, NULL};
static const kivis_field point64_fields[] = {F(point64, x, KIVIS_I64, 8, NULL, NULL, 0),
                                             F(point64, y, KIVIS_I32, 4, NULL, NULL, 0)};
static const kivis_struct_desc point64_desc = {"point", sizeof(point64), 2,
                                               point64_fields, NULL};
static const kivis_field point3_fields[] = {F(point3, x, KIVIS_I32, 4, NULL, NULL, 0),
                                            F(point3, y, KIVIS_I32, 4, NULL, NULL, 0),
                                            F(point3, z, KIVIS_I32, 4, NULL, NULL, 0)};
static const kivis_struct_desc point3_desc = {"point", sizeof(point3), 3, point3_fields, NULL};
static const kivis_field shape_key_fields[] = {F(shape_key, id, KIVIS_U64, 8, NULL, NULL, 0)};
static const kivis_struct_desc shape_key_desc = {"shape_key", sizeof(shape_key), 1,
                                                 shape_key_fields, NULL};
static const kivis_field shape_fields[] = {
    F(shape, label, KIVIS_CHARS, 8, NULL, NULL, 0),
    F(shape, pos, KIVIS_STRUCT, sizeof(point), &point_desc, NULL, 0)};
static const kivis_struct_desc shape_desc = {"shape", sizeof(shape), 2, shape_fields, NULL};
static const kivis_table_desc shapes_tables[] = {
    {"shape", &shape_desc, &shape_key_desc, KIVIS_KEY_AUTO, NULL, NULL, 0, NULL}};
static const kivis_schema_desc shapes_schema = {"shapes", 1, shapes_tables, 0, NULL, 0, NULL};

/* ---- fixture: a memory store, a counting allocator ---------------------- */

typedef struct fx {
    kt_alloc a;
    kivis_storage *st;
    char msg[256];
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    kt_alloc_init(&f->a);
    kivis_memory_options mo = {.allocator = &f->a.iface};
    assert_int_equal(kivis_memory_open(&mo, &f->st), KIVIS_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    kivis_storage_close(f->st);
    assert_int_equal(f->a.live_blocks, 0); /* no leak */
    free(f);
    return 0;
}

/* kivis_open with the fixture's allocator, flags and message buffer. */
static int open_with(fx *f, const kivis_schema_desc *s, unsigned flags, kivis_db **db)
{
    f->msg[0] = '\0';
    kivis_options o = {.allocator = &f->a.iface, .durability = KIVIS_SYNC,
                       .errbuf = f->msg, .errbuf_size = sizeof f->msg, .flags = flags};
    return kivis_open(f->st, s, &o, db);
}

static kivis_db *open_ok(fx *f, const kivis_schema_desc *s)
{
    kivis_db *db = NULL;
    int rc = open_with(f, s, 0, &db);
    if (rc)
        fail_msg("open %s: %s: %s", s->name, kivis_strerror(rc), f->msg);
    return db;
}

/* Open must fail with KIVIS_ESCHEMA and the exact message, writing nothing. */
static void assert_refused(fx *f, const kivis_schema_desc *s, const char *msg)
{
    char *before = kt_dump(f->st);
    kivis_db *db = (kivis_db *)1;
    assert_int_equal(open_with(f, s, 0, &db), KIVIS_ESCHEMA);
    assert_null(db);
    assert_string_equal(f->msg, msg);
    char *after = kt_dump(f->st);
    assert_string_equal(before, after);
    free(after);
    free(before);
}

static void fill_pets(fx *f)
{
    kivis_db *db = open_ok(f, &pets_schema);
    user ann = {"Ann", "a@x", 31}, bob = {"Bob", "b@x", 40};
    assert_int_equal(kivis_put(db, PETS_USER, &ann, NULL), KIVIS_OK);
    assert_int_equal(kivis_put(db, PETS_USER, &bob, NULL), KIVIS_OK);
    toy t = {TOY_MOUSE, 2};
    assert_int_equal(kivis_put(db, PETS_TOY, &t, NULL), KIVIS_OK);
    pet p = {"Rex", {1}, {TOY_MOUSE, 2}, false, 0};
    assert_int_equal(kivis_put(db, PETS_PET, &p, NULL), KIVIS_OK);
    uint8_t bytes[] = {1, 2, 3};
    blob b = {{bytes, sizeof bytes}};
    assert_int_equal(kivis_put(db, PETS_BLOB, &b, NULL), KIVIS_OK);
    kivis_close(db);
}

/* ---- the schema's name ---------------------------------------------------- */

/* A store written by the other application. */
static void fill_conc(fx *f)
{
    kivis_db *db = open_ok(f, &conc_schema);
    counter c = {"hits", 7};
    assert_int_equal(kivis_put(db, 0, &c, NULL), KIVIS_OK);
    kivis_close(db);
}

static void test_other_schema_name_is_refused(void **state)
{
    fx *f = *state;
    fill_conc(f);
    assert_refused(f, &pets_schema,
                   "the store holds schema 'conc', not 'pets' (opening with "
                   "KIVIS_OPEN_RENAME_SCHEMA renames it)");
    /* Still conc's: its own schema opens it. */
    kivis_db *db = open_ok(f, &conc_schema);
    assert_int_equal(kivis_kept_tables(db, NULL), 0);
    kivis_close(db);
}

static void test_rename_schema_on_request(void **state)
{
    fx *f = *state;
    kivis_db *db;
    fill_conc(f);
    assert_int_equal(open_with(f, &pets_schema, KIVIS_OPEN_RENAME_SCHEMA, &db), KIVIS_OK);
    const char *const *names;
    assert_int_equal(kivis_kept_tables(db, &names), 1);
    assert_string_equal(names[0], "counter");
    kivis_close(db);
    /* The store is pets' now: it opens without the flag, conc's is refused. */
    db = open_ok(f, &pets_schema);
    kivis_close(db);
    assert_refused(f, &conc_schema,
                   "the store holds schema 'pets', not 'conc' (opening with "
                   "KIVIS_OPEN_RENAME_SCHEMA renames it)");
    kivis_schema_desc *stored;
    assert_int_equal(kivis_schema_load(f->st, &f->a.iface, &stored), KIVIS_OK);
    assert_string_equal(stored->name, "pets");
    kivis_schema_free(stored, &f->a.iface);
}

/* ---- tables the compiled schema does not name --------------------------- */

typedef struct found {
    int n;
    kivis_check_kind kind;
    char table[32], index[32];
} found;

static void collect(void *ctx, const kivis_check_problem *p)
{
    found *fd = ctx;
    if (fd->n++ == 0) {
        fd->kind = p->kind;
        snprintf(fd->table, sizeof fd->table, "%s", p->table ? p->table : "?");
        snprintf(fd->index, sizeof fd->index, "%s", p->index ? p->index : "");
    }
}

/* What a kivis_check says: its status, its first problem, its totals. */
typedef struct verdict {
    int rc;
    found fd;
    uint64_t records, entries;
    uint32_t ntables;
} verdict;

static verdict check_db(kivis_db *db)
{
    verdict v;
    kivis_check_stats st;
    memset(&v, 0, sizeof v);
    memset(&st, 0, sizeof st);
    v.rc = kivis_check(db, collect, &v.fd, &st);
    for (uint32_t i = 0; i < st.ntables; i++)
        v.records += st.tables[i].records, v.entries += st.tables[i].index_entries;
    v.ntables = st.ntables;
    kivis_stats_free(db, &st);
    return v;
}

/* The store checked through the stored schema, as the kivis tool does. */
static verdict check_stored(fx *f)
{
    kivis_schema_desc *s;
    assert_int_equal(kivis_schema_load(f->st, &f->a.iface, &s), KIVIS_OK);
    kivis_db *db = open_ok(f, s);
    verdict v = check_db(db);
    kivis_close(db);
    kivis_schema_free(s, &f->a.iface);
    return v;
}

static void assert_same_verdict(const verdict *a, const verdict *b)
{
    assert_int_equal(a->rc, b->rc);
    assert_int_equal(a->fd.n, b->fd.n);
    assert_int_equal(a->fd.kind, b->fd.kind);
    assert_string_equal(a->fd.table, b->fd.table);
    assert_string_equal(a->fd.index, b->fd.index);
    assert_int_equal(a->records, b->records);
    assert_int_equal(a->entries, b->entries);
    assert_int_equal(a->ntables, b->ntables);
}

/* pets over a copy of its tables, to change. */
static kivis_schema_desc pets_copy(kivis_table_desc *tables)
{
    memcpy(tables, pets_schema.tables, 4 * sizeof *tables);
    return (kivis_schema_desc){"pets", 4, tables, 0, NULL, 0, NULL};
}

/* A pets store, and the schema of an application that then renamed table
 * user to member (over `tables`), without the cascade of pet.owner: the
 * pet's owner stays in the kept table user, and is no member. */
static kivis_schema_desc pets_member(fx *f, kivis_table_desc *tables)
{
    fill_pets(f);
    kivis_schema_desc s = kt_pets_without_cascade(tables);
    tables[PETS_USER].name = "member";
    return s;
}

static void test_renamed_table_is_kept_and_checked(void **state)
{
    fx *f = *state;
    kivis_table_desc tables[4];
    kivis_schema_desc renamed = pets_member(f, tables);
    kivis_db *db = open_ok(f, &renamed);
    const char *const *names;
    assert_int_equal(kivis_kept_tables(db, &names), 1);
    assert_string_equal(names[0], "user");
    /* The new name starts empty; the old records stay where they were. */
    user_key k = {1};
    user u;
    assert_int_equal(kivis_get(db, PETS_USER, &k, &u), KIVIS_NOTFOUND);

    verdict api = check_db(db);
    assert_int_equal(api.rc, KIVIS_OK);
    assert_int_equal(api.fd.n, 0);
    kivis_check_stats st;
    memset(&st, 0, sizeof st);
    assert_int_equal(kivis_stats(db, &st), KIVIS_OK);
    assert_int_equal(st.ntables, 5); /* member, toy, pet, blob + kept user */
    assert_false(st.tables[PETS_USER].kept);
    assert_int_equal(st.tables[PETS_USER].records, 0);
    assert_true(st.tables[4].kept);
    assert_string_equal(st.tables[4].name, "user");
    assert_int_equal(st.tables[4].records, 2);
    assert_int_equal(st.tables[4].index_entries, 2);
    kivis_stats_free(db, &st);
    kivis_close(db);
    verdict cli = check_stored(f);
    assert_same_verdict(&api, &cli);
}

/* Damage in a kept table is found through either schema, the same way. */
static void test_damage_in_kept_table_found_by_both(void **state)
{
    fx *f = *state;
    kivis_table_desc tables[4];
    kivis_schema_desc renamed = pets_member(f, tables);
    kivis_db *db = open_ok(f, &renamed);
    kivis_close(db);
    /* Delete the first entry of the kept user table's name index (id 1,
     * slot 2). */
    kivis_storage_txn *txn;
    kivis_storage_cursor *cur;
    kivis_slice k, v;
    static const uint8_t lo[] = {0x01, 0x02}, hi[] = {0x01, 0x03};
    assert_int_equal(kivis_storage_begin(f->st, 0, &txn), KIVIS_OK);
    assert_int_equal(kivis_txn_cursor(txn, kivis_slice_make(lo, 2),
                                      kivis_slice_make(hi, 2), &cur),
                     KIVIS_OK);
    assert_int_equal(kivis_cursor_get(cur, KIVIS_FIRST, &k, &v), KIVIS_OK);
    uint8_t key[64];
    size_t klen = k.len;
    memcpy(key, k.data, klen);
    kivis_cursor_close(cur);
    assert_int_equal(kivis_txn_del(txn, kivis_slice_make(key, klen)), KIVIS_OK);
    assert_int_equal(kivis_txn_commit(txn, KIVIS_SYNC), KIVIS_OK);

    db = open_ok(f, &renamed);
    verdict api = check_db(db);
    kivis_close(db);
    assert_int_equal(api.rc, KIVIS_ECORRUPT);
    assert_int_equal(api.fd.n, 1);
    assert_int_equal(api.fd.kind, KIVIS_CHECK_MISSING_ENTRY);
    assert_string_equal(api.fd.table, "user");
    assert_string_equal(api.fd.index, "name");
    verdict cli = check_stored(f);
    assert_same_verdict(&api, &cli);
}

static void test_dropped_table_is_kept(void **state)
{
    fx *f = *state;
    fill_pets(f);
    kivis_schema_desc fewer = {"pets", 3, pets_schema.tables, 0, NULL, 0, NULL}; /* no blob */
    kivis_db *db = open_ok(f, &fewer);
    const char *const *names;
    assert_int_equal(kivis_kept_tables(db, &names), 1);
    assert_string_equal(names[0], "blob"); /* a derived key: read, not written */
    verdict api = check_db(db);
    kivis_close(db);
    assert_int_equal(api.rc, KIVIS_OK);
    assert_int_equal(api.records, 5);
    assert_int_equal(api.ntables, 4);
    verdict cli = check_stored(f);
    assert_same_verdict(&api, &cli);
    /* Declared again, the table comes back with its record. */
    db = open_ok(f, &pets_schema);
    assert_int_equal(kivis_kept_tables(db, NULL), 0);
    uint8_t bytes[] = {1, 2, 3};
    blob b = {{bytes, sizeof bytes}};
    blob_key bk;
    assert_int_equal(blob_derive_key(&b, &bk), KIVIS_OK);
    blob got;
    assert_int_equal(kivis_get(db, PETS_BLOB, &bk, &got), KIVIS_OK);
    assert_int_equal(got.data.len, 3);
    kivis_record_clear(db, PETS_BLOB, &got);
    kivis_close(db);
}

/* ---- what changed in a field ------------------------------------------- */

static void test_changed_type_says_old_and_new(void **state)
{
    fx *f = *state;
    kivis_close(open_ok(f, &pets_schema));
    kivis_field uf[3];
    memcpy(uf, pets_schema.tables[PETS_USER].record->fields, sizeof uf);
    uf[2].kind = KIVIS_I64;
    uf[2].size = 8;
    kivis_struct_desc ud = *pets_schema.tables[PETS_USER].record;
    ud.fields = uf;
    kivis_table_desc tables[4];
    kivis_schema_desc changed = pets_copy(tables);
    tables[PETS_USER].record = &ud;
    assert_refused(f, &changed, "table user: field 'age' was uint32_t, now int64_t"
                   " (a typed migration can convert it: kivis-gen --previous)");
    uf[2] = pets_schema.tables[PETS_USER].record->fields[2];
    uf[1].kind = KIVIS_BYTES;
    uf[1].size = sizeof(kivis_bytes);
    assert_refused(f, &changed, "table user: field 'email' was char *, now kivis_bytes"
                   " (a typed migration can convert it: kivis-gen --previous)");
}

static void test_changed_enum_says_what_changed(void **state)
{
    fx *f = *state;
    kivis_close(open_ok(f, &pets_schema));
    static const char *const gained_names[] = {"TOY_BALL", "TOY_MOUSE", "TOY_BONE"};
    static const int32_t gained_values[] = {0, 1, 2};
    static const char *const renumbered_names[] = {"TOY_BALL", "TOY_MOUSE"};
    static const int32_t renumbered_values[] = {0, 5};
    kivis_enum_desc e = {"toy_kind", 3, gained_names, gained_values};
    kivis_field key_fields[2], rec_fields[2];
    memcpy(key_fields, pets_schema.tables[PETS_TOY].key->fields, sizeof key_fields);
    memcpy(rec_fields, pets_schema.tables[PETS_TOY].record->fields, sizeof rec_fields);
    key_fields[0].enm = rec_fields[0].enm = &e;
    kivis_struct_desc kd = *pets_schema.tables[PETS_TOY].key;
    kivis_struct_desc rd = *pets_schema.tables[PETS_TOY].record;
    kd.fields = key_fields;
    rd.fields = rec_fields;
    kivis_table_desc tables[4];
    kivis_schema_desc changed = pets_copy(tables);
    tables[PETS_TOY].key = &kd;
    tables[PETS_TOY].record = &rd;
    /* Gaining a value is accepted, even in a key: values are stored by
     * number (test_evolve). */
    kivis_close(open_ok(f, &changed));
    e.count = 1;
    assert_refused(f, &changed,
                   "table toy: key field 'kind': enum 'toy_kind' lost value "
                   "'TOY_MOUSE' (1); an enum may only gain values");
    e.count = 2;
    e.names = renumbered_names;
    e.values = renumbered_values;
    assert_refused(f, &changed,
                   "table toy: key field 'kind': enum 'toy_kind' value "
                   "'TOY_MOUSE' was 1, now 5; an enum may only gain values");
}

static void test_changed_nested_field_names_its_path(void **state)
{
    fx *f = *state;
    kivis_close(open_ok(f, &shapes_schema));
    kivis_field sf[2];
    memcpy(sf, shape_fields, sizeof sf);
    kivis_struct_desc sd = shape_desc;
    sd.fields = sf;
    kivis_table_desc table = shapes_tables[0];
    table.record = &sd;
    kivis_schema_desc changed = {"shapes", 1, &table, 0, NULL, 0, NULL};
    sf[1].type = &point3_desc;
    assert_refused(f, &changed, "table shape: field 'pos': struct 'point' gained field 'z'"
                   " (a typed migration can convert it: kivis-gen --previous)");
    sf[1].type = &point_desc;
    sf[0].size = 4;
    assert_refused(f, &changed, "table shape: field 'label' was char[8], now char[4]"
                   " (a typed migration can convert it: kivis-gen --previous)");
    /* Widening inside a nested struct is applied (test_evolve). */
    sf[0].size = 8;
    sf[1].type = &point64_desc;
    kivis_close(open_ok(f, &changed));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_other_schema_name_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rename_schema_on_request, setup, teardown),
        cmocka_unit_test_setup_teardown(test_renamed_table_is_kept_and_checked, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_damage_in_kept_table_found_by_both, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_dropped_table_is_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_changed_type_says_old_and_new, setup, teardown),
        cmocka_unit_test_setup_teardown(test_changed_enum_says_what_changed, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_changed_nested_field_names_its_path, setup,
                                        teardown),
    };
    return cmocka_run_group_tests_name("schema on open", tests, NULL, NULL);
}
