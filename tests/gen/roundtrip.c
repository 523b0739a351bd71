/*
 * roundtrip.c - tests/gen/alltypes.kvs through every function kivis-gen
 * emits, on the memory backend: add/put/update, get and a field-by-field
 * comparison, key scans both ways, every index lookup (exact, range,
 * prefix), unique violations, removal, the _Generic helpers, and the
 * counts, existence, key-only scans and distinct values.
 */
#include "alltypes.kivis.h"
#include "pets.kivis.h" /* a second schema, for handles of the wrong one */

#include <kivis/memory.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

/* pets' derived key, which a pets program writes: unused here. */
blob_key blob_derive_key(const blob *rec)
{
    blob_key k;
    k.hash = rec->data.len;
    return k;
}

typedef struct fixture {
    kivis_storage *st;
    alltypes_db *db;
} fixture;

static int setup(void **state)
{
    static fixture f;
    assert_int_equal(kivis_memory_open(NULL, &f.st), KIVIS_OK);
    assert_int_equal(alltypes_open(f.st, NULL, &f.db), KIVIS_OK);
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    alltypes_close(f->db);
    kivis_storage_close(f->st);
    return 0;
}

static uint8_t blob_bytes[] = {0, 1, 2, 0xff};

static sample make_sample(int i, owner_key o)
{
    sample s;
    memset(&s, 0, sizeof s);
    s.u8 = (uint8_t)(200 + i);
    s.u16 = (uint16_t)(60000 + i);
    s.u32 = 4000000000u + (uint32_t)i;
    s.u64 = 10000000000ull * (uint64_t)(i + 1);
    s.i8 = (int8_t)(-100 - i);
    s.i16 = (int16_t)(-30000 + i);
    s.i32 = -2000000 + i * 1000;
    s.i64 = -9000000000000ll - i;
    s.flag = i % 2 == 0;
    s.f32 = 1.5f * (float)i;
    s.f64 = -0.25 * i;
    s.colour = i == 0 ? RED : i == 1 ? GREEN : BLUE;
    static char *labels[] = {"apple", "apricot", "banana"};
    s.label = labels[i % 3];
    snprintf(s.code, sizeof s.code, "CODE-%d", i);
    s.payload.data = blob_bytes;
    s.payload.len = (size_t)i + 1;
    for (int j = 0; j < 4; j++)
        s.samples[j] = (uint16_t)(i * 10 + j);
    s.where.x = i;
    s.where.y = -i;
    s.corners[1].x = 7 * i;
    s.owner = o;
    s.friends[0] = o;
    s.friends[1].id = 99;
    return s;
}

static void assert_sample_equal(const sample *a, const sample *b)
{
    assert_int_equal(a->u8, b->u8);
    assert_int_equal(a->u16, b->u16);
    assert_int_equal(a->u32, b->u32);
    assert_int_equal(a->u64, b->u64);
    assert_int_equal(a->i8, b->i8);
    assert_int_equal(a->i16, b->i16);
    assert_int_equal(a->i32, b->i32);
    assert_true(a->i64 == b->i64);
    assert_int_equal(a->flag, b->flag);
    assert_true(a->f32 == b->f32);
    assert_true(a->f64 == b->f64);
    assert_int_equal(a->colour, b->colour);
    assert_string_equal(a->label, b->label);
    assert_string_equal(a->code, b->code);
    assert_int_equal(a->payload.len, b->payload.len);
    assert_memory_equal(a->payload.data, b->payload.data, a->payload.len);
    assert_memory_equal(a->samples, b->samples, sizeof a->samples);
    assert_memory_equal(&a->where, &b->where, sizeof a->where);
    assert_memory_equal(a->corners, b->corners, sizeof a->corners);
    assert_true(a->owner.id == b->owner.id);
    assert_memory_equal(a->friends, b->friends, sizeof a->friends);
}

/* Drain a cursor; collects the primary keys' ids, returns the count. */
static int drain(alltypes_db *db, sample_cursor *c, uint64_t *ids, int max)
{
    sample_key k;
    sample s;
    int n = 0, rc;
    while ((rc = sample_next(c, &k, &s)) == KIVIS_OK) {
        if (n < max)
            ids[n] = k.id;
        n++;
        sample_clear(db, &s);
    }
    assert_int_equal(rc, KIVIS_NOTFOUND);
    sample_close(c);
    return n;
}

static owner_key add_owner(alltypes_db *db, const char *email, uint32_t level)
{
    owner o = {(char *)email, level};
    owner_key k;
    assert_int_equal(owner_put(db, &o, &k), KIVIS_OK);
    return k;
}

static void samples_round_trip(void **state)
{
    fixture *f = *state;
    alltypes_db *db = f->db;
    owner_key o = add_owner(db, "ann@example.org", 3);
    sample in[3];
    sample_key keys[3];
    for (int i = 0; i < 3; i++) {
        in[i] = make_sample(i, o);
        assert_int_equal(sample_put(db, &in[i], &keys[i]), KIVIS_OK);
        assert_true(keys[i].id == (uint64_t)i + 1);
    }
    for (int i = 0; i < 3; i++) {
        sample out;
        assert_int_equal(sample_get(db, keys[i], &out), KIVIS_OK);
        assert_sample_equal(&in[i], &out);
        sample_clear(db, &out);
    }

    sample_cursor c;
    uint64_t ids[8];
    assert_int_equal(sample_scan(db, NULL, NULL, 0, &c), KIVIS_OK);
    assert_int_equal(drain(db, &c, ids, 8), 3);
    assert_true(ids[0] == 1 && ids[2] == 3);
    assert_int_equal(sample_scan(db, NULL, NULL, KIVIS_REVERSE, &c), KIVIS_OK);
    assert_int_equal(drain(db, &c, ids, 8), 3);
    assert_true(ids[0] == 3 && ids[2] == 1);
    assert_int_equal(sample_scan(db, &keys[1], &keys[2], 0, &c), KIVIS_OK);
    assert_int_equal(drain(db, &c, ids, 8), 1);
    assert_true(ids[0] == 2);

    /* update at an explicit key moves the index entries with the record */
    sample changed = in[1];
    changed.label = (char *)"cherry";
    assert_int_equal(sample_update(db, keys[1], &changed), KIVIS_OK);
    assert_int_equal(sample_by_label(db, "apricot", 0, &c), KIVIS_OK);
    assert_int_equal(drain(db, &c, ids, 8), 0);
    assert_int_equal(sample_by_label(db, "cherry", 0, &c), KIVIS_OK);
    assert_int_equal(drain(db, &c, ids, 8), 1);
    assert_int_equal(sample_update(db, keys[1], &in[1]), KIVIS_OK);
}

static void sample_indexes(void **state)
{
    fixture *f = *state;
    alltypes_db *db = f->db;
    sample_cursor c;
    uint64_t ids[8];
    sample s1 = make_sample(1, (owner_key){1});

    /* exact lookups on every indexed type */
    assert_int_equal(sample_by_u64(db, s1.u64, 0, &c), KIVIS_OK);
    assert_int_equal(drain(db, &c, ids, 8), 1);
    assert_true(ids[0] == 2);
    assert_int_equal(sample_by_i32(db, s1.i32, 0, &c), KIVIS_OK);
    assert_int_equal(drain(db, &c, ids, 8), 1);
    assert_int_equal(sample_by_flag(db, true, 0, &c), KIVIS_OK);
    assert_int_equal(drain(db, &c, ids, 8), 2); /* samples 0 and 2 */
    assert_int_equal(sample_by_f64(db, -0.25, 0, &c), KIVIS_OK);
    assert_int_equal(drain(db, &c, ids, 8), 1);
    assert_int_equal(sample_by_colour(db, GREEN, 0, &c), KIVIS_OK);
    assert_int_equal(drain(db, &c, ids, 8), 1);
    assert_int_equal(sample_by_label(db, "banana", 0, &c), KIVIS_OK);
    assert_int_equal(drain(db, &c, ids, 8), 1);
    assert_true(ids[0] == 3);
    assert_int_equal(sample_by_code(db, "CODE-2", 0, &c), KIVIS_OK);
    assert_int_equal(drain(db, &c, ids, 8), 1);
    assert_true(ids[0] == 3);
    assert_int_equal(sample_by_where(db, s1.where, 0, &c), KIVIS_OK);
    assert_int_equal(drain(db, &c, ids, 8), 1);
    assert_true(ids[0] == 2);
    assert_int_equal(sample_by_owner(db, s1.owner, 0, &c), KIVIS_OK);
    assert_int_equal(drain(db, &c, ids, 8), 3);
    /* an array index takes an array of exactly its length */
    assert_int_equal(sample_by_samples(db, s1.samples, 0, &c), KIVIS_OK);
    assert_int_equal(drain(db, &c, ids, 8), 1);
    assert_true(ids[0] == 2);
    const uint16_t none[4] = {9, 9, 9, 9};
    assert_int_equal(sample_by_samples(db, none, 0, &c), KIVIS_OK);
    assert_int_equal(drain(db, &c, ids, 8), 0);
    /* what converts without loss is accepted: narrower integers, int */
    uint8_t small = (uint8_t)s1.i32;
    assert_int_equal(sample_by_i32(db, small, 0, &c), KIVIS_OK);
    drain(db, &c, ids, 8);
    assert_int_equal(sample_by_u64(db, (uint32_t)s1.u64, 0, &c), KIVIS_OK);
    drain(db, &c, ids, 8);
    assert_int_equal(sample_by_f64(db, -0.25f, 0, &c), KIVIS_OK);
    assert_int_equal(drain(db, &c, ids, 8), 1);

    /* ranges: [lo, hi), open ends, reverse */
    int32_t lo = -2000000, hi = -1999000;
    assert_int_equal(sample_by_i32_range(db, &lo, &hi, 0, &c), KIVIS_OK);
    assert_int_equal(drain(db, &c, ids, 8), 1);
    assert_int_equal(sample_by_i32_range(db, &lo, NULL, KIVIS_REVERSE, &c),
                     KIVIS_OK);
    assert_int_equal(drain(db, &c, ids, 8), 3);
    assert_true(ids[0] == 3 && ids[2] == 1);
    assert_int_equal(sample_by_label_range(db, "apricot", "banana", 0, &c),
                     KIVIS_OK);
    assert_int_equal(drain(db, &c, ids, 8), 1);
    assert_true(ids[0] == 2);
    assert_int_equal(sample_by_label_range(db, NULL, "b", 0, &c), KIVIS_OK);
    assert_int_equal(drain(db, &c, ids, 8), 2);
    assert_int_equal(sample_by_code_range(db, "CODE-1", NULL, 0, &c), KIVIS_OK);
    assert_int_equal(drain(db, &c, ids, 8), 2);
    point plo = {1, -100}, phi = {2, -5}; /* {1,-1} in, {2,-2} out */
    assert_int_equal(sample_by_where_range(db, &plo, &phi, 0, &c), KIVIS_OK);
    assert_int_equal(drain(db, &c, ids, 8), 1);
    double dlo = -0.3;
    assert_int_equal(sample_by_f64_range(db, &dlo, NULL, 0, &c), KIVIS_OK);
    assert_int_equal(drain(db, &c, ids, 8), 2); /* -0.25 and 0 */

    /* prefixes on strings */
    assert_int_equal(sample_by_label_prefix(db, "ap", 2, 0, &c), KIVIS_OK);
    assert_int_equal(drain(db, &c, ids, 8), 2);
    assert_int_equal(sample_by_code_prefix(db, "CODE", 4, KIVIS_REVERSE, &c),
                     KIVIS_OK);
    assert_int_equal(drain(db, &c, ids, 8), 3);
    assert_true(ids[0] == 3);
}

static void unique_violations(void **state)
{
    fixture *f = *state;
    alltypes_db *db = f->db;
    sample dup = make_sample(0, (owner_key){1});
    sample_key k;
    assert_int_equal(sample_put(db, &dup, &k), KIVIS_ECONSTRAINT);
    owner o = {(char *)"ann@example.org", 1};
    assert_int_equal(owner_put(db, &o, NULL), KIVIS_ECONSTRAINT);
    /* the same value under the same key is no violation */
    assert_int_equal(sample_update(db, (sample_key){1}, &dup), KIVIS_OK);

    owner_cursor c;
    owner_key ok;
    owner got;
    assert_int_equal(owner_by_email(db, "ann@example.org", 0, &c), KIVIS_OK);
    assert_int_equal(owner_next(&c, &ok, &got), KIVIS_OK);
    assert_string_equal(got.email, "ann@example.org");
    owner_clear(db, &got);
    assert_int_equal(owner_next(&c, NULL, NULL), KIVIS_NOTFOUND);
    owner_close(&c);
    uint32_t level = 3;
    assert_int_equal(owner_by_level_range(db, &level, NULL, 0, &c), KIVIS_OK);
    assert_int_equal(owner_next(&c, &ok, NULL), KIVIS_OK);
    owner_close(&c);
    assert_int_equal(owner_by_email_prefix(db, "ann", 3, 0, &c), KIVIS_OK);
    assert_int_equal(owner_next(&c, NULL, NULL), KIVIS_OK);
    owner_close(&c);
    assert_int_equal(owner_by_level(db, 3, 0, &c), KIVIS_OK);
    assert_int_equal(owner_next(&c, NULL, NULL), KIVIS_OK);
    owner_close(&c);
}

/* The value of the cell stored under k, which must exist. */
static double cell_value(alltypes_db *db, cell_key k)
{
    cell got;
    assert_int_equal(cell_get(db, k, &got), KIVIS_OK);
    double v = got.value;
    cell_clear(db, &got);
    return v;
}

static void composite_keys(void **state)
{
    fixture *f = *state;
    alltypes_db *db = f->db;
    const char *sheets[] = {"alpha", "alpine", "beta"};
    for (int i = 0; i < 3; i++) {
        cell c = {(char *)sheets[i], i, "B", 0.5 * i};
        cell_key k;
        assert_int_equal(cell_put(db, &c, &k), KIVIS_OK);
        assert_string_equal(k.sheet, sheets[i]);
        assert_int_equal(k.row, i);
        assert_string_equal(k.col, "B");
    }
    /* overwrite under the same key */
    cell again = {(char *)"beta", 2, "B", 42.0};
    assert_int_equal(cell_put(db, &again, NULL), KIVIS_OK);
    cell_key key = {(char *)"beta", 2, "B"};
    assert_true(cell_value(db, key) == 42.0);

    cell_cursor cur;
    cell_key k;
    int n = 0;
    assert_int_equal(cell_scan_prefix(db, "alp", 3, KIVIS_REVERSE, &cur),
                     KIVIS_OK);
    while (cell_next(&cur, &k, NULL) == KIVIS_OK) {
        assert_string_equal(k.sheet, n == 0 ? "alpine" : "alpha");
        cell_key_clear(db, &k);
        n++;
    }
    cell_close(&cur);
    assert_int_equal(n, 2);
    assert_int_equal(cell_remove(db, key), KIVIS_OK);
    cell got;
    assert_int_equal(cell_get(db, key, &got), KIVIS_NOTFOUND);
}

/* The generated watch reports cell inserts, updates and removes with
 * their decoded composite keys, after commit, not an aborted insert. */
static void watched_cells(void **state)
{
    fixture *f = *state;
    alltypes_db *db = f->db;
    cell_watch w;
    assert_int_equal(cell_watch_open(db, KIVIS_FEED_NOW, &w), KIVIS_OK);
    assert_true(cell_watch_fd(&w) >= 0);
    cell c = {(char *)"watched", 7, "Z", 1.0};
    assert_int_equal(cell_put(db, &c, NULL), KIVIS_OK);
    c.value = 2.0;
    assert_int_equal(cell_put(db, &c, NULL), KIVIS_OK);
    assert_int_equal(alltypes_begin(db), KIVIS_OK);
    cell lost = {(char *)"aborted", 1, "A", 0};
    assert_int_equal(cell_put(db, &lost, NULL), KIVIS_OK);
    alltypes_abort(db);
    cell_key key = {(char *)"watched", 7, "Z"};
    assert_int_equal(cell_remove(db, key), KIVIS_OK);
    static const int kinds[] = {KIVIS_CHANGE_INSERT, KIVIS_CHANGE_UPDATE,
                                KIVIS_CHANGE_DELETE};
    for (int i = 0; i < 3; i++) {
        kivis_watch_event ev;
        cell_key k;
        assert_int_equal(cell_watch_next(&w, 1000, &ev, &k), KIVIS_OK);
        assert_int_equal(ev.kind, kinds[i]);
        assert_string_equal(k.sheet, "watched");
        assert_int_equal(k.row, 7);
        assert_string_equal(k.col, "Z");
        cell_key_clear(db, &k);
    }
    kivis_watch_event ev;
    assert_int_equal(cell_watch_next(&w, 0, &ev, NULL), KIVIS_NOTFOUND);
    cell_watch_close(&w);
}

/* add never replaces, put replaces or creates, update never creates: the
 * same for an auto-increment, a composite and a derived key. */
static void write_meanings(void **state)
{
    fixture *f = *state;
    alltypes_db *db = f->db;
    owner o = {(char *)"writes@example.org", 5};
    owner_key k1, k2, absent = {999};
    assert_int_equal(owner_add(db, &o, &k1), KIVIS_OK);
    assert_int_equal(owner_update(db, absent, &o), KIVIS_NOTFOUND);
    owner og;
    assert_int_equal(owner_get(db, absent, &og), KIVIS_NOTFOUND);
    o.email = (char *)"writes2@example.org";
    assert_int_equal(owner_put(db, &o, &k2), KIVIS_OK);
    assert_true(k2.id == k1.id + 1); /* not 1000: the update created nothing */
    o.level = 6;
    assert_int_equal(owner_update(db, k2, &o), KIVIS_OK);
    assert_int_equal(owner_get(db, k2, &og), KIVIS_OK);
    assert_int_equal(og.level, 6);
    owner_clear(db, &og);

    cell c = {(char *)"writes", 1, "A", 1.0};
    assert_int_equal(cell_update(db, &c), KIVIS_NOTFOUND);
    assert_int_equal(cell_add(db, &c, NULL), KIVIS_OK);
    c.value = 2.0;
    assert_int_equal(cell_add(db, &c, NULL), KIVIS_EEXIST);
    cell_key ck = {(char *)"writes", 1, "A"};
    assert_true(cell_value(db, ck) == 1.0);
    assert_int_equal(cell_update(db, &c), KIVIS_OK);
    c.value = 3.0;
    assert_int_equal(cell_put(db, &c, NULL), KIVIS_OK);
    assert_int_equal(cell_remove(db, ck), KIVIS_OK);

    static uint8_t bytes[] = {9, 8, 7};
    chunk a = {{bytes, sizeof bytes}, "first"}, b = {{bytes, sizeof bytes}, "second"};
    chunk_key kk;
    assert_int_equal(chunk_update(db, &a), KIVIS_NOTFOUND);
    assert_int_equal(chunk_add(db, &a, &kk), KIVIS_OK);
    assert_int_equal(chunk_add(db, &b, NULL), KIVIS_EEXIST); /* same derived key */
    assert_non_null(strstr(alltypes_errmsg(db), "chunk: a record with this derived key"));
    chunk cg2;
    assert_int_equal(chunk_get(db, kk, &cg2), KIVIS_OK);
    assert_string_equal(cg2.tag, "first");
    chunk_clear(db, &cg2);
    assert_int_equal(chunk_update(db, &b), KIVIS_OK);
    assert_int_equal(chunk_remove(db, kk), KIVIS_OK);
}

static void derived_keys(void **state)
{
    fixture *f = *state;
    alltypes_db *db = f->db;
    chunk c = {{blob_bytes, sizeof blob_bytes}, "tagged"};
    chunk_key k;
    assert_int_equal(chunk_put(db, &c, &k), KIVIS_OK);
    chunk_key want = chunk_derive_key(&c);
    assert_true(k.hash == want.hash && k.len == 4);
    chunk got;
    assert_int_equal(chunk_get(db, k, &got), KIVIS_OK);
    assert_int_equal(got.data.len, 4);
    assert_string_equal(got.tag, "tagged");
    chunk_clear(db, &got);

    chunk_cursor cur;
    assert_int_equal(chunk_by_tag_prefix(db, "tag", 3, 0, &cur), KIVIS_OK);
    assert_int_equal(chunk_next(&cur, NULL, NULL), KIVIS_OK);
    assert_int_equal(chunk_next(&cur, NULL, NULL), KIVIS_NOTFOUND);
    chunk_close(&cur);
    assert_int_equal(chunk_by_tag(db, "tagged", 0, &cur), KIVIS_OK);
    assert_int_equal(chunk_next(&cur, NULL, NULL), KIVIS_OK);
    chunk_close(&cur);
    assert_int_equal(chunk_by_tag_range(db, "a", "z", 0, &cur), KIVIS_OK);
    assert_int_equal(chunk_next(&cur, NULL, NULL), KIVIS_OK);
    chunk_close(&cur);
    assert_int_equal(chunk_scan(db, &k, NULL, 0, &cur), KIVIS_OK);
    assert_int_equal(chunk_next(&cur, NULL, NULL), KIVIS_OK);
    chunk_close(&cur);
}

static void generic_helpers_and_remove(void **state)
{
    fixture *f = *state;
    alltypes_db *db = f->db;
    sample s;
    owner o;
    sample_key sk = {2};
    assert_int_equal(alltypes_get(db, sk, &s), KIVIS_OK);
    assert_int_equal(alltypes_get(db, s.owner, &o), KIVIS_OK); /* follow the foreign key */
    assert_string_equal(o.email, "ann@example.org");
    alltypes_clear(db, &o);
    alltypes_clear(db, &s);

    assert_int_equal(alltypes_remove(db, sk), KIVIS_OK);
    assert_int_equal(alltypes_get(db, sk, &s), KIVIS_NOTFOUND);
    assert_int_equal(sample_remove(db, sk), KIVIS_NOTFOUND);
    /* its index entries went with it */
    sample_cursor c;
    uint64_t ids[8];
    assert_int_equal(sample_by_label(db, "apricot", 0, &c), KIVIS_OK);
    assert_int_equal(drain(db, &c, ids, 8), 0);
    assert_int_equal(sample_by_code_prefix(db, "CODE", 4, 0, &c), KIVIS_OK);
    assert_int_equal(drain(db, &c, ids, 8), 2);
    /* the unique value is free again */
    sample back = make_sample(1, (owner_key){1});
    assert_int_equal(sample_put(db, &back, NULL), KIVIS_OK);
}

/* The generated record cache hands back deep copies of every field type. */
static void cached_round_trip(void **state)
{
    fixture *f = *state;
    alltypes_db *db = f->db;
    owner_key o = add_owner(db, "cache@example.org", 1);
    sample in = make_sample(3, o); /* its unique code is new to the group */
    sample_key k;
    assert_int_equal(sample_put(db, &in, &k), KIVIS_OK);
    assert_int_equal(sample_cache(db, 8), KIVIS_OK);
    for (int i = 0; i < 3; i++) {
        sample out;
        assert_int_equal(sample_get(db, k, &out), KIVIS_OK);
        assert_sample_equal(&in, &out);
        sample_clear(db, &out);
    }
    /* a hit copies into the caller's buffer too, or finds it short */
    unsigned char buf[64];
    sample out;
    assert_int_equal(sample_get_into(db, k, &out, buf, sizeof buf), KIVIS_OK);
    assert_sample_equal(&in, &out);
    assert_true((unsigned char *)out.label >= buf && (unsigned char *)out.label < buf + sizeof buf);
    assert_int_equal(sample_get_into(db, k, &out, buf, 3), KIVIS_ETOOSMALL);
    assert_null(out.label);
    kivis_cache_stats st;
    assert_int_equal(sample_cache_stats(db, &st), KIVIS_OK);
    assert_true(st.hits == 4 && st.misses == 1 && st.records == 1);
    assert_int_equal(sample_remove(db, k), KIVIS_OK);
    assert_int_equal(sample_cache_stats(db, &st), KIVIS_OK);
    assert_true(st.invalidations == 1 && st.records == 0);
    sample_cache_clear(db);
    assert_int_equal(sample_cache(db, 0), KIVIS_OK);
}

/* _get_into and _next_into: strings and blobs in the caller's buffer, which
 * must be exactly as long as they are, and a scan that keeps its place when
 * the buffer is short. */
static void into_round_trip(void **state)
{
    fixture *f = *state;
    alltypes_db *db = f->db;
    owner_key o = add_owner(db, "into@example.org", 2);
    sample in[3];
    sample_key keys[3];
    for (int i = 0; i < 3; i++) {
        in[i] = make_sample(i, o);
        in[i].label = (char *)"into";
        snprintf(in[i].code, sizeof in[i].code, "INTO-%d", i);
        assert_int_equal(sample_put(db, &in[i], &keys[i]), KIVIS_OK);
    }
    unsigned char buf[64], tiny[2];
    sample out;
    for (int i = 0; i < 3; i++) {
        size_t need = strlen("into") + 1 + in[i].payload.len;
        assert_int_equal(sample_get_into(db, keys[i], &out, buf, need - 1), KIVIS_ETOOSMALL);
        assert_null(out.label);
        assert_null(out.payload.data);
        assert_int_equal(out.u8, 0);
        char want[64];
        snprintf(want, sizeof want, "needs at least %zu", need);
        assert_non_null(strstr(alltypes_errmsg(db), want));
        assert_int_equal(sample_get_into(db, keys[i], &out, buf, need), KIVIS_OK);
        assert_sample_equal(&in[i], &out);
        assert_true((unsigned char *)out.label >= buf && (unsigned char *)out.label < buf + need);
        assert_true(out.payload.data > buf && out.payload.data < buf + need);
    }
    assert_int_equal(sample_get_into(db, keys[0], &out, NULL, 0), KIVIS_ETOOSMALL);
    assert_int_equal(sample_get_into(db, keys[0], &out, NULL, 8), KIVIS_EINVAL);
    assert_int_equal(sample_get_into(db, (sample_key){12345}, &out, buf, sizeof buf),
                     KIVIS_NOTFOUND);

    sample_cursor c;
    sample_key k;
    assert_int_equal(sample_by_label(db, "into", 0, &c), KIVIS_OK);
    assert_int_equal(sample_next_into(&c, &k, &out, buf, sizeof buf), KIVIS_OK);
    assert_true(k.id == keys[0].id);
    /* short, and short again: the scan stays on the second entry */
    for (int again = 0; again < 2; again++) {
        assert_int_equal(sample_next_into(&c, &k, &out, tiny, sizeof tiny), KIVIS_ETOOSMALL);
        assert_true(k.id == 0 && out.label == NULL);
    }
    assert_int_equal(sample_next_into(&c, &k, &out, buf, sizeof buf), KIVIS_OK);
    assert_true(k.id == keys[1].id);
    assert_sample_equal(&in[1], &out);
    /* short on the third, which is then removed: the retry goes past it */
    assert_int_equal(sample_next_into(&c, &k, &out, tiny, sizeof tiny), KIVIS_ETOOSMALL);
    assert_int_equal(sample_remove(db, keys[2]), KIVIS_OK);
    assert_int_equal(sample_next_into(&c, &k, &out, buf, sizeof buf), KIVIS_NOTFOUND);
    sample_close(&c);

    /* backwards over the records, retried the same way */
    assert_int_equal(sample_scan(db, &keys[0], &keys[2], KIVIS_REVERSE, &c), KIVIS_OK);
    assert_int_equal(sample_next_into(&c, &k, &out, tiny, sizeof tiny), KIVIS_ETOOSMALL);
    assert_int_equal(sample_next_into(&c, &k, &out, buf, sizeof buf), KIVIS_OK);
    assert_true(k.id == keys[1].id);
    assert_int_equal(sample_next_into(&c, &k, &out, buf, sizeof buf), KIVIS_OK);
    assert_true(k.id == keys[0].id);
    assert_sample_equal(&in[0], &out);
    assert_int_equal(sample_next_into(&c, &k, &out, buf, sizeof buf), KIVIS_NOTFOUND);
    sample_close(&c);
    for (int i = 0; i < 2; i++)
        assert_int_equal(sample_remove(db, keys[i]), KIVIS_OK);
}

/* A pets handle cast to alltypes_db (what the compiler refuses without
 * the cast): every generated function refuses it before the engine reads
 * a record of the wrong layout, and the store is left as it was. */
static void cast_handle_of_another_schema(void **state)
{
    (void)state;
    kivis_storage *st; /* a store of its own: it holds schema pets */
    assert_int_equal(kivis_memory_open(NULL, &st), KIVIS_OK);
    pets_db *pdb;
    assert_int_equal(pets_open(st, NULL, &pdb), KIVIS_OK);
    alltypes_db *wrong = (alltypes_db *)(void *)pdb;
    owner o = {(char *)"cast@example.org", 1};
    owner_key ok;
    owner_key k = {1};
    owner out;
    memset(&ok, 0xAB, sizeof ok);
    assert_int_equal(owner_put(wrong, &o, &ok), KIVIS_ESCHEMA);
    assert_non_null(strstr(pets_errmsg(pdb), "schema 'pets'"));
    assert_non_null(strstr(pets_errmsg(pdb), "'alltypes'"));
    assert_int_equal(owner_get(wrong, k, &out), KIVIS_ESCHEMA);
    assert_int_equal(owner_remove(wrong, k), KIVIS_ESCHEMA);
    assert_int_equal(owner_cache(wrong, 8), KIVIS_ESCHEMA);
    assert_int_equal(alltypes_begin(wrong), KIVIS_ESCHEMA);
    sample_cursor c;
    assert_int_equal(sample_by_label(wrong, "x", 0, &c), KIVIS_ESCHEMA);
    assert_null(c.scan);
    sample_close(&c);
    uint64_t n = 7;
    assert_int_equal(sample_count(wrong, &n), KIVIS_ESCHEMA);
    assert_int_equal(n, 0);
    assert_int_equal(sample_count_by_label(wrong, "x", &n), KIVIS_ESCHEMA);
    assert_int_equal(owner_exists(wrong, k), KIVIS_ESCHEMA);
    sample_distinct_label_cursor dc;
    assert_int_equal(sample_distinct_label(wrong, 0, &dc), KIVIS_ESCHEMA);
    assert_null(dc.distinct);
    sample_distinct_label_close(&dc);
    owner_clear(wrong, &o); /* refused: frees nothing of the caller's */
    assert_string_equal(o.email, "cast@example.org");
    /* The right handle works, and the pets tables stay empty. */
    user_cursor uc;
    assert_int_equal(user_scan(pdb, NULL, NULL, 0, &uc), KIVIS_OK);
    assert_int_equal(user_next(&uc, NULL, NULL), KIVIS_NOTFOUND);
    user_close(&uc);
    assert_int_equal(owner_put(wrong, NULL, NULL), KIVIS_ESCHEMA);
    assert_int_equal(alltypes_check_(NULL), KIVIS_EINVAL);
    pets_close(pdb);
    assert_int_equal(kivis_storage_close(st), KIVIS_OK);
}

/* The count, exists, key-only and distinct functions, on a store of
 * their own (the group's accumulates records): every figure exact, on
 * an empty table, in ranges, and in a transaction that sees its writes. */
static void counts_and_distinct(void **state)
{
    (void)state;
    kivis_storage *st;
    alltypes_db *db;
    assert_int_equal(kivis_memory_open(NULL, &st), KIVIS_OK);
    assert_int_equal(alltypes_open(st, NULL, &db), KIVIS_OK);
    uint64_t n = 99;
    assert_int_equal(owner_count(db, &n), KIVIS_OK);
    assert_int_equal(n, 0);
    assert_int_equal(owner_count_by_level(db, 3, &n), KIVIS_OK);
    assert_int_equal(n, 0);
    owner_distinct_level_cursor lc;
    uint32_t level;
    assert_int_equal(owner_distinct_level(db, 0, &lc), KIVIS_OK);
    assert_int_equal(owner_distinct_level_next(&lc, &level, &n), KIVIS_NOTFOUND);
    owner_distinct_level_close(&lc);

    static const char *const emails[] = {"a@x", "b@x", "c@x", "d@x"};
    static const uint32_t levels[] = {1, 3, 3, 5};
    owner_key ok[4];
    for (int i = 0; i < 4; i++)
        ok[i] = add_owner(db, emails[i], levels[i]);
    assert_int_equal(owner_count(db, &n), KIVIS_OK);
    assert_int_equal(n, 4);
    assert_int_equal(owner_count_by_level(db, 3, &n), KIVIS_OK);
    assert_int_equal(n, 2);
    uint32_t lo = 2, hi = 5;
    assert_int_equal(owner_count_by_level_range(db, &lo, &hi, &n), KIVIS_OK);
    assert_int_equal(n, 2);
    assert_int_equal(owner_count_by_level_range(db, &lo, NULL, &n), KIVIS_OK);
    assert_int_equal(n, 3);
    assert_int_equal(owner_count_by_email(db, "b@x", &n), KIVIS_OK);
    assert_int_equal(n, 1);
    assert_int_equal(owner_count_by_email_range(db, "b", "d", &n), KIVIS_OK);
    assert_int_equal(n, 2);
    assert_int_equal(owner_count_by_email_prefix(db, "c", 1, &n), KIVIS_OK);
    assert_int_equal(n, 1);
    assert_int_equal(owner_exists(db, ok[2]), KIVIS_OK);
    owner_key none = {ok[3].id + 1};
    assert_int_equal(owner_exists(db, none), KIVIS_NOTFOUND);

    /* distinct levels both ways, and strings owned by the cursor */
    static const uint32_t want_level[] = {1, 3, 5}, want_n[] = {1, 2, 1};
    for (int rev = 0; rev < 2; rev++) {
        assert_int_equal(owner_distinct_level(db, rev ? KIVIS_REVERSE : 0, &lc), KIVIS_OK);
        for (int i = 0; i < 3; i++) {
            int j = rev ? 2 - i : i;
            assert_int_equal(owner_distinct_level_next(&lc, &level, &n), KIVIS_OK);
            assert_int_equal(level, want_level[j]);
            assert_int_equal(n, want_n[j]);
        }
        assert_int_equal(owner_distinct_level_next(&lc, &level, &n), KIVIS_NOTFOUND);
        owner_distinct_level_close(&lc);
    }
    owner_distinct_email_cursor ec;
    const char *email;
    assert_int_equal(owner_distinct_email(db, 0, &ec), KIVIS_OK);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(owner_distinct_email_next(&ec, &email, &n), KIVIS_OK);
        assert_string_equal(email, emails[i]);
        assert_int_equal(n, 1);
    }
    assert_int_equal(owner_distinct_email_next(&ec, &email, NULL), KIVIS_NOTFOUND);
    owner_distinct_email_close(&ec);

    /* samples: labels apple, apricot, banana, apple, apricot */
    for (int i = 0; i < 5; i++) {
        sample s = make_sample(i, ok[0]);
        s.payload.len = 1; /* blob_bytes has room for make_sample(3) */
        assert_int_equal(sample_put(db, &s, NULL), KIVIS_OK);
    }
    sample_distinct_label_cursor sc;
    const char *label;
    assert_int_equal(sample_distinct_label(db, 0, &sc), KIVIS_OK);
    static const char *const labels[] = {"apple", "apricot", "banana"};
    static const uint64_t per_label[] = {2, 2, 1};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(sample_distinct_label_next(&sc, &label, &n), KIVIS_OK);
        assert_string_equal(label, labels[i]);
        assert_int_equal(n, per_label[i]);
    }
    assert_int_equal(sample_distinct_label_next(&sc, &label, &n), KIVIS_NOTFOUND);
    sample_distinct_label_close(&sc);
    sample_distinct_colour_cursor cc;
    shade colour;
    assert_int_equal(sample_distinct_colour(db, 0, &cc), KIVIS_OK);
    assert_int_equal(sample_distinct_colour_next(&cc, &colour, &n), KIVIS_OK);
    assert_true(colour == RED && n == 1);
    assert_int_equal(sample_distinct_colour_next(&cc, &colour, &n), KIVIS_OK);
    assert_true(colour == GREEN && n == 1);
    assert_int_equal(sample_distinct_colour_next(&cc, &colour, &n), KIVIS_OK);
    assert_true(colour == BLUE && n == 3);
    sample_distinct_colour_close(&cc);
    /* fixed strings, arrays and structs come whole */
    sample_distinct_code_cursor kc;
    char code[16];
    assert_int_equal(sample_distinct_code(db, KIVIS_REVERSE, &kc), KIVIS_OK);
    assert_int_equal(sample_distinct_code_next(&kc, code, &n), KIVIS_OK);
    assert_string_equal(code, "CODE-4");
    sample_distinct_code_close(&kc);
    sample_distinct_samples_cursor ac;
    uint16_t samples[4];
    assert_int_equal(sample_distinct_samples(db, 0, &ac), KIVIS_OK);
    assert_int_equal(sample_distinct_samples_next(&ac, samples, &n), KIVIS_OK);
    assert_int_equal(sample_distinct_samples_next(&ac, samples, &n), KIVIS_OK);
    assert_true(samples[0] == 10 && samples[3] == 13 && n == 1);
    sample_distinct_samples_close(&ac);
    sample_distinct_where_cursor wc;
    point where;
    assert_int_equal(sample_distinct_where(db, KIVIS_REVERSE, &wc), KIVIS_OK);
    assert_int_equal(sample_distinct_where_next(&wc, &where, &n), KIVIS_OK);
    assert_true(where.x == 4 && where.y == -4 && n == 1);
    sample_distinct_where_close(&wc);
    assert_int_equal(sample_count_by_flag(db, true, &n), KIVIS_OK);
    assert_int_equal(n, 3);
    assert_int_equal(sample_count_by_code_prefix(db, "CODE-", 5, &n), KIVIS_OK);
    assert_int_equal(n, 5);

    /* keys alone, in primary key order within the value */
    sample_cursor c;
    sample_key k;
    assert_int_equal(sample_by_label(db, "apple", 0, &c), KIVIS_OK);
    assert_int_equal(sample_next_key(&c, &k), KIVIS_OK);
    assert_true(k.id == 1);
    assert_int_equal(sample_next_key(&c, &k), KIVIS_OK);
    assert_true(k.id == 4);
    assert_int_equal(sample_next_key(&c, &k), KIVIS_NOTFOUND);
    sample_close(&c);

    /* a transaction counts its own writes */
    assert_int_equal(alltypes_begin(db), KIVIS_OK);
    sample extra = make_sample(2, ok[0]); /* banana */
    extra.code[0] = 'X';
    sample_key ek;
    assert_int_equal(sample_put(db, &extra, &ek), KIVIS_OK);
    assert_int_equal(sample_count(db, &n), KIVIS_OK);
    assert_int_equal(n, 6);
    assert_int_equal(sample_count_by_label(db, "banana", &n), KIVIS_OK);
    assert_int_equal(n, 2);
    assert_int_equal(sample_exists(db, ek), KIVIS_OK);
    alltypes_abort(db);
    assert_int_equal(sample_count(db, &n), KIVIS_OK);
    assert_int_equal(n, 5);
    assert_int_equal(sample_exists(db, ek), KIVIS_NOTFOUND);
    alltypes_close(db);
    assert_int_equal(kivis_storage_close(st), KIVIS_OK);
}

/* Scan flags other than KIVIS_REVERSE are refused, not ignored. */
static void unknown_scan_flags(void **state)
{
    fixture *f = *state;
    sample_cursor c;
    assert_int_equal(sample_scan(f->db, NULL, NULL, 0x80, &c), KIVIS_EINVAL);
    assert_non_null(strstr(alltypes_errmsg(f->db), "unknown scan flags 0x80"));
    assert_int_equal(sample_scan(f->db, NULL, NULL, KIVIS_REVERSE, &c), KIVIS_OK);
    sample_close(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(samples_round_trip),
        cmocka_unit_test(sample_indexes),
        cmocka_unit_test(unique_violations),
        cmocka_unit_test(composite_keys),
        cmocka_unit_test(watched_cells),
        cmocka_unit_test(write_meanings),
        cmocka_unit_test(derived_keys),
        cmocka_unit_test(generic_helpers_and_remove),
        cmocka_unit_test(cached_round_trip),
        cmocka_unit_test(into_round_trip),
        cmocka_unit_test(cast_handle_of_another_schema),
        cmocka_unit_test(unknown_scan_flags),
        cmocka_unit_test(counts_and_distinct),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
