/*
 * test_evolve - declared schema changes applied by kivis_open: a store
 * written with schema v1 (table item, and table log) is opened with a v2
 * that renames, drops, reorders, widens, makes optional, adds enum values
 * or changes indexes; every record must read back right through v2 and
 * its indexes answer right (kivis_check finds nothing amiss).  Changes the
 * store cannot take (narrowing, another type, a unique index the records
 * violate) are refused, leave the store byte for byte as it was and v1
 * still opens it.  The same changes declared in a schema file
 * (tests/gen/evolve.kvs, [[was]] and [[dropped]]) reach kivis_open through
 * kivis-gen.  A migration killed with SIGKILL halfway leaves the old
 * store or the new one, never a mix.  Every backend (kt_main), an etcd
 * cluster included, whose bounded transactions refuse a migration too large
 * for one; the kill on LMDB, SQLite and RocksDB.
 */
#define KT_WITH_ETCD /* the programs that run on etcd too */
#include "backends.h"
#include <kivis/etcd.h>
#include "g_shop.kivis.h" /* tests/gen/evolve.kvs: v2 from kivis-gen */

#include <kivis/inspect.h>
#include <kivis/layered.h>
#include <kivis/lmdb.h>
#include <kivis/memory.h>
#include <kivis/postgres.h>
#include <kivis/rocksdb.h>
#include <kivis/sqlite.h>

#include <unistd.h>

/* ---- schema v1 --------------------------------------------------------- */

typedef enum color { RED, GREEN, BLUE } color; /* v1 knows RED and GREEN */

typedef struct item_key { uint32_t id; } item_key;

/* Every v2 below that keeps the layout reads into this struct too: its
 * descriptor may name, order or leave out its members differently. */
typedef struct item {
    uint32_t id;
    char name[8];
    int32_t stars;
    float weight;
    uint16_t count;
    char code[4];
    char *note;
    color kind;
    uint32_t tag;
    uint8_t legacy;
} item;

typedef struct log_key { uint64_t id; } log_key;
typedef struct log_rec { char *text; } log_rec;

#define F(st, m, k, sz, sub, en, fl) {#m, k, 0, offsetof(st, m), sz, sub, en, fl}

static const char *const color_names[] = {"RED", "GREEN", "BLUE"};
static const int32_t color_values[] = {0, 1, 2};
static const kivis_enum_desc color_v1 = {"color", 2, color_names, color_values};
static const kivis_enum_desc color_v2 = {"color", 3, color_names, color_values};

static const kivis_field item_key_fields[] = {
    F(item_key, id, KIVIS_U32, 4, NULL, NULL, 0)};
static const kivis_struct_desc item_key_desc = {"item_key", sizeof(item_key), 1,
                                                item_key_fields, NULL};
static const uint32_t item_key_map[] = {0};

enum { F_ID, F_NAME, F_STARS, F_WEIGHT, F_COUNT, F_CODE, F_NOTE, F_KIND,
       F_TAG, F_LEGACY, NFIELDS };

static const kivis_field item_fields[NFIELDS] = {
    F(item, id, KIVIS_U32, 4, NULL, NULL, KIVIS_FIELD_KEY),
    F(item, name, KIVIS_CHARS, 8, NULL, NULL, 0),
    F(item, stars, KIVIS_I32, 4, NULL, NULL, 0),
    F(item, weight, KIVIS_F32, 4, NULL, NULL, 0),
    F(item, count, KIVIS_U16, 2, NULL, NULL, 0),
    F(item, code, KIVIS_CHARS, 4, NULL, NULL, 0),
    F(item, note, KIVIS_STRING, sizeof(char *), NULL, NULL, 0),
    F(item, kind, KIVIS_ENUM, sizeof(color), NULL, &color_v1, 0),
    F(item, tag, KIVIS_U32, 4, NULL, NULL, 0),
    F(item, legacy, KIVIS_U8, 1, NULL, NULL, 0),
};
static const kivis_struct_desc item_desc = {"item", sizeof(item), NFIELDS,
                                            item_fields, NULL};
static const kivis_index_desc item_indexes[] = {{"stars", F_STARS, 0},
                                                {"tag", F_TAG, 0}};

static const kivis_field log_key_fields[] = {F(log_key, id, KIVIS_U64, 8, NULL, NULL, 0)};
static const kivis_struct_desc log_key_desc = {"log_key", sizeof(log_key), 1,
                                               log_key_fields, NULL};
static const kivis_field log_fields[] = {
    F(log_rec, text, KIVIS_STRING, sizeof(char *), NULL, NULL, 0)};
static const kivis_struct_desc log_desc = {"log", sizeof(log_rec), 1, log_fields, NULL};

static const kivis_table_desc v1_tables[] = {
    {"item", &item_desc, &item_key_desc, KIVIS_KEY_FIELDS, item_key_map, NULL, 2,
     item_indexes},
    {"log", &log_desc, &log_key_desc, KIVIS_KEY_AUTO, NULL, NULL, 0, NULL},
};
static const kivis_schema_desc v1 = {"shop", 2, v1_tables, 0, NULL, 0, NULL};

/* A v2 built by a test: copies of v1's descriptors to change. */
typedef struct v2 {
    kivis_field fields[NFIELDS];
    kivis_field key_fields[1];
    uint32_t key_map[1];
    kivis_struct_desc rec, key;
    kivis_index_desc indexes[4];
    kivis_table_desc tables[2];
    kivis_schema_change changes[4];
    kivis_schema_desc schema;
} v2;

static void v2_init(v2 *s)
{
    memcpy(s->fields, item_fields, sizeof s->fields);
    memcpy(s->key_fields, item_key_fields, sizeof s->key_fields);
    s->rec = item_desc;
    s->rec.fields = s->fields;
    s->key = item_key_desc;
    s->key.fields = s->key_fields;
    memcpy(s->indexes, item_indexes, sizeof item_indexes);
    memcpy(s->tables, v1_tables, sizeof s->tables);
    s->tables[0].record = &s->rec;
    s->tables[0].key = &s->key;
    s->tables[0].indexes = s->indexes;
    s->key_map[0] = item_key_map[0];
    s->tables[0].key_fields = s->key_map;
    s->schema = v1;
    s->schema.tables = s->tables;
    s->schema.changes = s->changes;
}

static void v2_change(v2 *s, uint32_t kind, const char *table, const char *field,
                      const char *was)
{
    kivis_schema_change c = {kind, table, field, was};
    s->changes[s->schema.nchanges++] = c;
}

/* ---- the records v1 writes ------------------------------------------- */

#define NITEMS 40u
#define NLOGS 5u

static int32_t stars_of(uint32_t i) { return -(int32_t)(i % 7) * 100000; }

static void expected(uint32_t i, item *r)
{
    memset(r, 0, sizeof *r);
    r->id = i;
    snprintf(r->name, sizeof r->name, "n%u", i % 1000000u);
    r->stars = stars_of(i);
    r->weight = (float)i * 0.5f;
    r->count = (uint16_t)(i * 1000u);
    snprintf(r->code, sizeof r->code, "c%u", i % 100u);
    r->note = NULL; /* compared by note_of */
    r->kind = i % 2 ? GREEN : RED;
    r->tag = i % 5;
    r->legacy = (uint8_t)(i + 1);
}

static void note_of(uint32_t i, char *buf, size_t n)
{
    snprintf(buf, n, "note %u", i);
}

typedef struct efx {
    char dir[256];
    kivis_storage *st;
    char msg[256];
    uint64_t calls, last_done, last_total; /* rewrite progress seen */
    /* index build progress seen: reports, the last one, and the indexes
     * the finished builds wrote */
    uint64_t built_calls, built_done, built_total, built_indexes;
} efx;

static void fill_v1(kivis_storage *st, uint32_t n)
{
    kivis_db *db;
    char note[32];
    assert_int_equal(kivis_open(st, &v1, NULL, &db), KIVIS_OK);
    assert_int_equal(kivis_begin(db), KIVIS_OK);
    for (uint32_t i = 1; i <= n; i++) {
        item r;
        expected(i, &r);
        note_of(i, note, sizeof note);
        r.note = note;
        assert_int_equal(kivis_put(db, 0, &r, NULL), KIVIS_OK);
    }
    for (uint32_t i = 0; i < NLOGS; i++) {
        log_rec l = {"entry"};
        assert_int_equal(kivis_put(db, 1, &l, NULL), KIVIS_OK);
    }
    assert_int_equal(kivis_commit(db), KIVIS_OK);
    kivis_close(db);
}

static int setup(void **state)
{
    efx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    kt_tempdir(f->dir, sizeof f->dir);
    assert_int_equal(kt_backend_open(f->dir, &f->st), KIVIS_OK);
    fill_v1(f->st, NITEMS);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    efx *f = *state;
    assert_int_equal(kivis_storage_close(f->st), KIVIS_OK);
    kt_rmdir(f->dir);
    free(f);
    return 0;
}

static void progress(void *ctx, const kivis_progress *p)
{
    efx *f = ctx;
    assert_non_null(p->table);
    assert_true(p->done <= p->total);
    if (p->phase == KIVIS_PROGRESS_REWRITE) {
        assert_int_equal(p->indexes, 0);
        f->calls++;
        f->last_done = p->done;
        f->last_total = p->total;
        return;
    }
    assert_int_equal(p->phase, KIVIS_PROGRESS_INDEX);
    assert_true(p->indexes > 0);
    f->built_calls++;
    f->built_done = p->done;
    f->built_total = p->total;
    if (p->done == p->total && p->done)
        f->built_indexes += p->indexes;
}

static int open_v(efx *f, const kivis_schema_desc *s, kivis_db **db)
{
    kivis_options o = {.errbuf = f->msg, .errbuf_size = sizeof f->msg,
                       .progress = progress, .progress_ctx = f};
    f->msg[0] = '\0';
    return kivis_open(f->st, s, &o, db);
}

static kivis_db *open_ok(efx *f, const kivis_schema_desc *s)
{
    kivis_db *db = NULL;
    int rc = open_v(f, s, &db);
    if (rc)
        fail_msg("open: %s: %s", kivis_strerror(rc), f->msg);
    return db;
}

/* Records read through a descriptor over struct item: as v1 wrote them,
 * except for the members `skip` names (bit per field). */
static void assert_items(kivis_db *db, unsigned skip)
{
    char note[32];
    for (uint32_t i = 1; i <= NITEMS; i++) {
        item want, got;
        item_key k = {i};
        expected(i, &want);
        note_of(i, note, sizeof note);
        assert_int_equal(kivis_get(db, 0, &k, &got), KIVIS_OK);
        assert_int_equal(got.id, i);
        if (!(skip & 1u << F_NAME))
            assert_string_equal(got.name, want.name);
        if (!(skip & 1u << F_STARS))
            assert_int_equal(got.stars, want.stars);
        assert_true(got.weight == want.weight);
        assert_int_equal(got.count, want.count);
        assert_string_equal(got.code, want.code);
        assert_string_equal(got.note, note);
        assert_int_equal(got.kind, want.kind);
        assert_int_equal(got.tag, want.tag);
        assert_int_equal(got.legacy, skip & 1u << F_LEGACY ? 0 : want.legacy);
        kivis_record_clear(db, 0, &got);
    }
}

/* How many records index `index` holds with value *value. */
static uint64_t count_eq(kivis_db *db, const char *index, const void *value)
{
    int ix = kivis_index(db, 0, index);
    assert_true(ix >= 0);
    kivis_query q = {.table = 0, .index = ix, .mode = KIVIS_Q_EQ, .lo = value};
    uint64_t n = 0;
    assert_int_equal(kivis_count(db, &q, &n), KIVIS_OK);
    return n;
}

static uint64_t with_stars(int32_t stars)
{
    uint64_t n = 0;
    for (uint32_t i = 1; i <= NITEMS; i++)
        n += stars_of(i) == stars;
    return n;
}

/* Open must fail with rc and a message holding `msg`, changing nothing,
 * and v1 must still open the store and read it whole. */
static void assert_refused(efx *f, const kivis_schema_desc *s, int rc,
                           const char *msg)
{
    char *before = kt_dump(f->st);
    kivis_db *db = (kivis_db *)1;
    assert_int_equal(open_v(f, s, &db), rc);
    assert_null(db);
    if (!strstr(f->msg, msg))
        fail_msg("message '%s' lacks '%s'", f->msg, msg);
    char *after = kt_dump(f->st);
    assert_string_equal(before, after);
    free(after);
    free(before);
    db = open_ok(f, &v1);
    assert_items(db, 0);
    kivis_close(db);
}

/* ---- each change kind -------------------------------------------------- */

static void test_rename_field_key_and_table(void **state)
{
    efx *f = *state;
    v2 s;
    v2_init(&s);
    s.tables[0].name = "article";
    s.fields[F_ID].name = s.key_fields[0].name = "item_id";
    s.fields[F_STARS].name = "rating";
    s.indexes[0].name = "rating";
    v2_change(&s, KIVIS_EVOLVE_RENAME, "article", NULL, "item");
    v2_change(&s, KIVIS_EVOLVE_RENAME, "article", "item_id", "id");
    v2_change(&s, KIVIS_EVOLVE_RENAME, "article", "rating", "stars");
    kivis_db *db = open_ok(f, &s.schema);
    assert_int_equal(f->calls, 0); /* renames rewrite only the schema */
    assert_int_equal(kivis_kept_tables(db, NULL), 0);
    assert_items(db, 0);
    int32_t stars = stars_of(3);
    assert_int_equal(count_eq(db, "rating", &stars), with_stars(stars));
    kt_check_clean(db);
    kivis_close(db);
    /* The store now says article and rating: v2 opens it again as is. */
    db = open_ok(f, &s.schema);
    assert_items(db, 0);
    kivis_close(db);
}

static void test_drop_field_declared(void **state)
{
    efx *f = *state;
    v2 s;
    v2_init(&s);
    s.rec.nfields = F_LEGACY; /* the last one left out */
    assert_refused(f, &s.schema, KIVIS_ESCHEMA,
                   "table item: stored field 'legacy' is missing from the "
                   "schema (declare [[dropped(legacy)]] to delete it)");
    v2_change(&s, KIVIS_EVOLVE_DROP, "item", "legacy", NULL);
    kivis_db *db = open_ok(f, &s.schema);
    assert_true(f->calls > 0);
    assert_int_equal(f->last_done, NITEMS);
    assert_int_equal(f->last_total, NITEMS);
    /* Rewritten records get both their indexes built again. */
    assert_int_equal(f->built_done, NITEMS);
    assert_int_equal(f->built_indexes, 2);
    assert_items(db, 1u << F_LEGACY);
    kt_check_clean(db);
    kivis_close(db);
    /* v1 takes legacy back as a field appended since: zero everywhere,
     * so the values really went. */
    db = open_ok(f, &v1);
    assert_items(db, 1u << F_LEGACY);
    kivis_close(db);
}

static void test_drop_record_declared(void **state)
{
    efx *f = *state;
    v2 s;
    v2_init(&s);
    s.schema.ntables = 1;
    kivis_db *db = open_ok(f, &s.schema); /* by omission: kept */
    assert_int_equal(kivis_kept_tables(db, NULL), 1);
    kivis_close(db);
    v2_change(&s, KIVIS_EVOLVE_DROP, "log", NULL, NULL);
    db = open_ok(f, &s.schema);
    assert_int_equal(kivis_kept_tables(db, NULL), 0);
    assert_items(db, 0);
    kt_check_clean(db); /* no key of the old table left */
    kivis_close(db);
    /* v1 gets an empty log table under a new id. */
    db = open_ok(f, &v1);
    kivis_query q = {.table = 1, .index = -1, .mode = KIVIS_Q_ALL};
    uint64_t n = 1;
    assert_int_equal(kivis_count(db, &q, &n), KIVIS_OK);
    assert_int_equal(n, 0);
    kivis_close(db);
}

static void test_reorder_fields(void **state)
{
    efx *f = *state;
    v2 s;
    v2_init(&s);
    for (uint32_t i = 0; i < NFIELDS; i++)
        s.fields[i] = item_fields[NFIELDS - 1 - i];
    s.key_map[0] = NFIELDS - 1 - F_ID;
    s.indexes[0].field = NFIELDS - 1 - F_STARS;
    s.indexes[1].field = NFIELDS - 1 - F_TAG;
    kivis_db *db = open_ok(f, &s.schema);
    assert_true(f->calls > 0);
    assert_items(db, 0);
    int32_t stars = stars_of(5);
    assert_int_equal(count_eq(db, "stars", &stars), with_stars(stars));
    uint32_t tag = 2;
    assert_int_equal(count_eq(db, "tag", &tag), NITEMS / 5);
    kt_check_clean(db);
    kivis_close(db);
}

/* v1 widened: int32 -> int64, uint16 -> uint64, float -> double,
 * char[8] -> char[16], char[4] -> char *. */
typedef struct item_wide {
    uint32_t id;
    char name[16];
    int64_t stars;
    double weight;
    uint64_t count;
    char *code;
    char *note;
    color kind;
    uint32_t tag;
    uint8_t legacy;
} item_wide;

static const kivis_field wide_fields[NFIELDS] = {
    F(item_wide, id, KIVIS_U32, 4, NULL, NULL, KIVIS_FIELD_KEY),
    F(item_wide, name, KIVIS_CHARS, 16, NULL, NULL, 0),
    F(item_wide, stars, KIVIS_I64, 8, NULL, NULL, 0),
    F(item_wide, weight, KIVIS_F64, 8, NULL, NULL, 0),
    F(item_wide, count, KIVIS_U64, 8, NULL, NULL, 0),
    F(item_wide, code, KIVIS_STRING, sizeof(char *), NULL, NULL, 0),
    F(item_wide, note, KIVIS_STRING, sizeof(char *), NULL, NULL, 0),
    F(item_wide, kind, KIVIS_ENUM, sizeof(color), NULL, &color_v1, 0),
    F(item_wide, tag, KIVIS_U32, 4, NULL, NULL, 0),
    F(item_wide, legacy, KIVIS_U8, 1, NULL, NULL, 0),
};

static void wide_schema(v2 *s)
{
    v2_init(s);
    memcpy(s->fields, wide_fields, sizeof s->fields);
    s->rec.size = sizeof(item_wide);
}

static void assert_wide(kivis_db *db, uint32_t n)
{
    char note[32];
    for (uint32_t i = 1; i <= n; i++) {
        item want;
        item_wide got;
        item_key k = {i};
        expected(i, &want);
        note_of(i, note, sizeof note);
        assert_int_equal(kivis_get(db, 0, &k, &got), KIVIS_OK);
        assert_string_equal(got.name, want.name);
        assert_true(got.stars == want.stars);
        assert_true(got.weight == (double)want.weight);
        assert_true(got.count == want.count);
        assert_string_equal(got.code, want.code);
        assert_string_equal(got.note, note);
        assert_int_equal(got.kind, want.kind);
        assert_int_equal(got.legacy, want.legacy);
        kivis_record_clear(db, 0, &got);
    }
}

static void test_widen_types(void **state)
{
    efx *f = *state;
    v2 s;
    wide_schema(&s);
    kivis_db *db = open_ok(f, &s.schema);
    assert_int_equal(f->last_done, NITEMS);
    assert_wide(db, NITEMS);
    int64_t stars = stars_of(6); /* the index holds int64 values now */
    assert_int_equal(count_eq(db, "stars", &stars), with_stars(stars_of(6)));
    kt_check_clean(db);
    kivis_close(db);
}

static void test_enum_gains_values(void **state)
{
    efx *f = *state;
    v2 s;
    v2_init(&s);
    s.fields[F_KIND].enm = &color_v2;
    kivis_db *db = open_ok(f, &s.schema);
    assert_int_equal(f->calls, 0); /* values stored by number: no rewrite */
    assert_items(db, 0);
    item r, got;
    expected(NITEMS + 1, &r);
    r.kind = BLUE;
    r.note = "blue";
    assert_int_equal(kivis_put(db, 0, &r, NULL), KIVIS_OK);
    item_key k = {NITEMS + 1};
    assert_int_equal(kivis_get(db, 0, &k, &got), KIVIS_OK);
    assert_int_equal(got.kind, BLUE);
    kivis_record_clear(db, 0, &got);
    kivis_close(db);
}

/* v1 with tag [[optional]]: a presence flag before it. */
typedef struct item_opt {
    uint32_t id;
    char name[8];
    int32_t stars;
    float weight;
    uint16_t count;
    char code[4];
    char *note;
    color kind;
    bool has_tag;
    uint32_t tag;
    uint8_t legacy;
} item_opt;

static void test_field_becomes_optional(void **state)
{
    efx *f = *state;
    static const kivis_field opt_fields[NFIELDS] = {
        F(item_opt, id, KIVIS_U32, 4, NULL, NULL, KIVIS_FIELD_KEY),
        F(item_opt, name, KIVIS_CHARS, 8, NULL, NULL, 0),
        F(item_opt, stars, KIVIS_I32, 4, NULL, NULL, 0),
        F(item_opt, weight, KIVIS_F32, 4, NULL, NULL, 0),
        F(item_opt, count, KIVIS_U16, 2, NULL, NULL, 0),
        F(item_opt, code, KIVIS_CHARS, 4, NULL, NULL, 0),
        F(item_opt, note, KIVIS_STRING, sizeof(char *), NULL, NULL,
          KIVIS_FIELD_OPTIONAL),
        F(item_opt, kind, KIVIS_ENUM, sizeof(color), NULL, &color_v1, 0),
        F(item_opt, tag, KIVIS_U32, 4, NULL, NULL, KIVIS_FIELD_OPTIONAL),
        F(item_opt, legacy, KIVIS_U8, 1, NULL, NULL, 0),
    };
    v2 s;
    v2_init(&s);
    memcpy(s.fields, opt_fields, sizeof s.fields);
    s.rec.size = sizeof(item_opt);
    kivis_db *db = open_ok(f, &s.schema);
    assert_true(f->calls > 0);
    for (uint32_t i = 1; i <= NITEMS; i++) {
        item want;
        item_opt got;
        item_key k = {i};
        char note[32];
        expected(i, &want);
        note_of(i, note, sizeof note);
        assert_int_equal(kivis_get(db, 0, &k, &got), KIVIS_OK);
        assert_true(got.has_tag);
        assert_int_equal(got.tag, want.tag);
        assert_non_null(got.note);
        assert_string_equal(got.note, note);
        assert_int_equal(got.stars, want.stars);
        assert_int_equal(got.legacy, want.legacy);
        kivis_record_clear(db, 0, &got);
    }
    int ix = kivis_index(db, 0, "tag");
    kivis_query q = {.table = 0, .index = ix, .mode = KIVIS_Q_ABSENT};
    uint64_t n = 1;
    assert_int_equal(kivis_count(db, &q, &n), KIVIS_OK);
    assert_int_equal(n, 0);
    uint32_t tag = 4;
    assert_int_equal(count_eq(db, "tag", &tag), NITEMS / 5);
    kt_check_clean(db);
    kivis_close(db);
}

static void test_indexes_and_unique_added_dropped(void **state)
{
    efx *f = *state;
    v2 s;
    v2_init(&s);
    /* stars kept, tag dropped, count added, name added unique. */
    kivis_index_desc ix[] = {{"stars", F_STARS, 0}, {"count", F_COUNT, 0},
                             {"name", F_NAME, KIVIS_INDEX_UNIQUE}};
    memcpy(s.indexes, ix, sizeof ix);
    s.tables[0].nindexes = 3;
    kivis_db *db = open_ok(f, &s.schema);
    /* No rewrite; one pass over the records builds count and name, told
     * from 0 to every record. */
    assert_int_equal(f->calls, 0);
    assert_true(f->built_calls >= 2);
    assert_int_equal(f->built_done, NITEMS);
    assert_int_equal(f->built_total, NITEMS);
    assert_int_equal(f->built_indexes, 2);
    assert_int_equal(kivis_index(db, 0, "tag"), -1);
    uint16_t count = 7000;
    assert_int_equal(count_eq(db, "count", &count), 1);
    char name[8] = "n12";
    assert_int_equal(count_eq(db, "name", name), 1);
    item r;
    expected(NITEMS + 1, &r);
    memcpy(r.name, "n12", 4);
    r.note = "dup";
    assert_int_equal(kivis_put(db, 0, &r, NULL), KIVIS_ECONSTRAINT);
    kt_check_clean(db);
    kivis_close(db);
    /* The unique constraint dropped again: name becomes a plain index. */
    s.indexes[2].flags = 0;
    db = open_ok(f, &s.schema);
    assert_int_equal(kivis_put(db, 0, &r, NULL), KIVIS_OK);
    assert_int_equal(count_eq(db, "name", name), 2);
    kt_check_clean(db);
    kivis_close(db);
}

static void test_violated_unique_is_refused(void **state)
{
    efx *f = *state;
    v2 s;
    v2_init(&s);
    s.indexes[2] = (kivis_index_desc){"stars_once", F_STARS, KIVIS_INDEX_UNIQUE};
    s.tables[0].nindexes = 3;
    /* Every record shares its stars with another: 40 of them; the first
     * keys in index order are those with stars -600000. */
    assert_refused(f, &s.schema, KIVIS_ECONSTRAINT,
                   "table item: unique index stars_once: 40 records hold a "
                   "value another record holds too ((id=6), (id=13), "
                   "(id=20), (id=27), ...); nothing was changed");
    /* Making an existing index unique is checked alike. */
    s.tables[0].nindexes = 2;
    s.indexes[0].flags = KIVIS_INDEX_UNIQUE;
    assert_refused(f, &s.schema, KIVIS_ECONSTRAINT,
                   "table item: unique index stars: 40 records");
}

static void test_narrowing_and_other_types_refused(void **state)
{
    efx *f = *state;
    v2 s;
    v2_init(&s);
    s.fields[F_STARS].kind = KIVIS_I16;
    s.fields[F_STARS].size = 2;
    assert_refused(f, &s.schema, KIVIS_ESCHEMA,
                   "table item: field 'stars' was int32_t, now int16_t");
    v2_init(&s);
    s.fields[F_NAME].size = 4;
    assert_refused(f, &s.schema, KIVIS_ESCHEMA,
                   "table item: field 'name' was char[8], now char[4]");
    v2_init(&s);
    s.fields[F_COUNT].kind = KIVIS_I32; /* unsigned to signed: not a widening */
    s.fields[F_COUNT].size = 4;
    assert_refused(f, &s.schema, KIVIS_ESCHEMA,
                   "table item: field 'count' was uint16_t, now int32_t");
    v2_init(&s);
    s.fields[F_NOTE].kind = KIVIS_BYTES;
    assert_refused(f, &s.schema, KIVIS_ESCHEMA,
                   "table item: field 'note' was char *, now kivis_bytes");
    v2_init(&s);
    s.fields[F_ID].kind = s.key_fields[0].kind = KIVIS_U64;
    s.fields[F_ID].size = s.key_fields[0].size = 8;
    assert_refused(f, &s.schema, KIVIS_ESCHEMA,
                   "table item: key field 'id' was uint32_t, now uint64_t (a "
                   "key field's type cannot change)");
    v2_init(&s);
    s.fields[F_KIND].enm = &(kivis_enum_desc){"color", 1, color_names, color_values};
    assert_refused(f, &s.schema, KIVIS_ESCHEMA,
                   "table item: field 'kind': enum 'color' lost value 'GREEN' "
                   "(1); an enum may only gain values");
}

/* A migration runs in one write transaction of the backend.  Where that
 * transaction is bounded (an etcd cluster's --max-txn-ops, 1024 in the
 * test cluster), a table too large for it is refused with the backend's
 * reason and the store left as it was; everywhere else it goes through. */
static void test_migration_larger_than_one_txn(void **state)
{
    efx *f = *state;
    enum { MORE = 600, PER_TXN = 100 };
    kivis_db *db;
    char note[32];
    assert_int_equal(kivis_open(f->st, &v1, NULL, &db), KIVIS_OK);
    for (uint32_t i = NITEMS + 1; i <= NITEMS + MORE; i++) {
        if ((i - NITEMS - 1) % PER_TXN == 0)
            assert_int_equal(kivis_begin(db), KIVIS_OK);
        item r;
        expected(i, &r);
        note_of(i, note, sizeof note);
        r.note = note;
        assert_int_equal(kivis_put(db, 0, &r, NULL), KIVIS_OK);
        if ((i - NITEMS) % PER_TXN == 0)
            assert_int_equal(kivis_commit(db), KIVIS_OK);
    }
    kivis_close(db);
    v2 s;
    wide_schema(&s);
    if (kt_backend_open == kt_open_etcd) {
        assert_refused(f, &s.schema, KIVIS_EINVAL, "writing the schema: invalid argument");
        assert_non_null(strstr(kivis_etcd_errmsg(), "--max-txn-ops"));
        return;
    }
    db = open_ok(f, &s.schema);
    assert_int_equal(f->last_done, NITEMS + MORE);
    assert_wide(db, NITEMS + MORE);
    kt_check_clean(db);
    kivis_close(db);
}

/* ---- the same, declared in a schema file -------------------------------- */

static void test_generated_schema_declares_them(void **state)
{
    efx *f = *state;
    kivis_db *db = open_ok(f, &g_shop_schema);
    assert_int_equal(kivis_kept_tables(db, NULL), 0); /* log dropped */
    assert_int_equal(f->last_done, NITEMS);
    kt_check_clean(db);
    kivis_close(db);
    g_shop_db *g;
    assert_int_equal(g_shop_open(f->st, NULL, &g), KIVIS_OK);
    char note[32];
    for (uint32_t i = 1; i <= NITEMS; i++) {
        item want;
        g_article got;
        expected(i, &want);
        note_of(i, note, sizeof note);
        assert_int_equal(g_article_get(g, (g_article_key){i}, &got), KIVIS_OK);
        assert_int_equal(got.item_id, i);
        assert_string_equal(got.name, want.name);
        assert_true(got.rating == want.stars);
        assert_true(got.weight == (double)want.weight);
        assert_true(got.count == want.count);
        assert_string_equal(got.code, want.code);
        assert_int_equal(got.kind, (int)want.kind);
        assert_string_equal(got.note, note);
        assert_int_equal(got.tag, want.tag);
        g_article_clear(g, &got);
    }
    uint64_t n = 0;
    assert_int_equal(g_article_count_by_rating(g, stars_of(2), &n), KIVIS_OK);
    assert_int_equal(n, with_stars(stars_of(2)));
    g_shop_close(g);
}

/* ---- killed midway ----------------------------------------------------- */

#define NKILL 20000u

typedef struct kill_arg {
    const char *dir;
    const kivis_schema_desc *schema;
} kill_arg;

/* kt_kill_halfway's child: the migrating open. */
static void open_in_child(void *arg, kivis_progress_fn progress, void *ctx)
{
    const kill_arg *a = arg;
    kivis_options o = {.progress = progress, .progress_ctx = ctx};
    kivis_storage *st;
    kivis_db *db;
    if (kt_backend_open(a->dir, &st) || kivis_open(st, a->schema, &o, &db))
        _exit(2);
}

static void test_sigkill_midway_leaves_old_or_new(void **state)
{
    efx *f = *state;
    /* A bigger store, written in a directory of its own. */
    char dir[256];
    kivis_storage *st;
    kt_tempdir(dir, sizeof dir);
    assert_int_equal(kt_backend_open(dir, &st), KIVIS_OK);
    fill_v1(st, NKILL);
    assert_int_equal(kivis_storage_close(st), KIVIS_OK);
    v2 s;
    wide_schema(&s);
    kill_arg arg = {dir, &s.schema};
    kt_kill_halfway(open_in_child, &arg);

    assert_int_equal(kt_backend_open(dir, &st), KIVIS_OK);
    kivis_storage *keep = f->st;
    f->st = st;
    kivis_db *db = NULL;
    if (open_v(f, &v1, &db) == KIVIS_OK) { /* the old store, whole */
        kivis_query q = {.table = 0, .index = -1, .mode = KIVIS_Q_ALL};
        uint64_t n = 0;
        assert_int_equal(kivis_count(db, &q, &n), KIVIS_OK);
        assert_int_equal(n, NKILL);
        kt_check_clean(db);
        kivis_close(db);
        db = open_ok(f, &s.schema); /* and the migration still runs */
    } else {
        db = open_ok(f, &s.schema);
    }
    assert_wide(db, NKILL);
    kt_check_clean(db);
    kivis_close(db);
    f->st = keep;
    assert_int_equal(kivis_storage_close(st), KIVIS_OK);
    kt_rmdir(dir);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        T(test_rename_field_key_and_table),
        T(test_drop_field_declared),
        T(test_drop_record_declared),
        T(test_reorder_fields),
        T(test_widen_types),
        T(test_enum_gains_values),
        T(test_field_becomes_optional),
        T(test_indexes_and_unique_added_dropped),
        T(test_violated_unique_is_refused),
        T(test_narrowing_and_other_types_refused),
        T(test_migration_larger_than_one_txn),
        T(test_generated_schema_declares_them),
    };
    int rc = kt_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
    const struct CMUnitTest kill[] = {T(test_sigkill_midway_leaves_old_or_new)};
    return rc == 2 ? rc : kt_run_durable(argc, argv, kill, 1) || rc ? 1 : 0;
}
