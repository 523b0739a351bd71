/*
 * test_gen_decode.c - the value decoders kivis-gen emits (one per record,
 * kivis_struct_desc.decode): every record of alltypes.kvs and opt.kvs has
 * one, it agrees with the descriptor walk on valid values and on every
 * truncation and byte mutation of them (decode_diff.c), and the engine
 * decodes through it on get and scan.
 */
#include "alltypes.kivis.h"
#include "opt.kivis.h"
#include "decode_diff.h"

#include "codec/codec.h"

#include <kivis/memory.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

static uint8_t blob_bytes[] = {0, 1, 2, 0xff};

static sample make_sample(void)
{
    sample s;
    memset(&s, 0, sizeof s);
    s.u8 = 200;
    s.u16 = 60000;
    s.u32 = 4000000000u;
    s.u64 = 10000000000ull;
    s.i8 = -100;
    s.i16 = -30000;
    s.i32 = -2000000000;
    s.i64 = -9000000000000ll;
    s.flag = true;
    s.f32 = 1.5f;
    s.f64 = -2.25;
    s.colour = GREEN;
    s.label = "l\xc3\xa9vel"; /* two-byte UTF-8 */
    strcpy(s.code, "C-123456789abcd"); /* 15 of 16: full */
    s.payload.data = blob_bytes;
    s.payload.len = sizeof blob_bytes;
    for (int i = 0; i < 4; i++)
        s.samples[i] = (uint16_t)(300 * i);
    s.where.x = -7;
    s.where.y = 70000;
    s.corners[1].x = 1;
    s.owner.id = 129; /* a two-byte varint */
    s.friends[0].id = 1;
    s.friends[1].id = UINT64_MAX;
    return s;
}

static person make_person(bool present)
{
    static const int16_t dims[3] = {-1, 0, 300};
    person p;
    memset(&p, 0, sizeof p);
    p.plain = 5;
    p.name = "pat";
    if (!present)
        return p;
    p.email = "";
    p.nick = "p";
    p.photo.data = blob_bytes; /* a present empty blob */
    p.has_age = p.has_badge = p.has_admin = p.has_score = true;
    p.age = 40;
    p.badge = -3;
    p.admin = true;
    p.score = 0.5;
    p.has_hue = p.has_tag = p.has_dims = p.has_at = p.has_mentor = true;
    p.hue = HUE_BLUE;
    strcpy(p.tag, "t234567"); /* full */
    memcpy(p.dims, dims, sizeof dims);
    p.at.y = -9;
    p.mentor.id = 2;
    return p;
}

typedef struct tally {
    size_t ok, failed, into_failed;
} tally;

/* One input through both decoders; a disagreement fails the test. */
static void check(const kivis_struct_desc *sd, const uint8_t *in, size_t len,
                  size_t buf_size, tally *t)
{
    int into_rc;
    int rc = decode_diff(sd, in, len, buf_size, &into_rc);
    assert_int_not_equal(rc, DECODE_DIFF_MISMATCH);
    t->ok += rc == KIVIS_OK;
    t->failed += rc != KIVIS_OK;
    t->into_failed += into_rc == KIVIS_ENOMEM;
}

/* v with the byte at i read as a run's length grown by one (an 'A' put
 * after the run) or, when shrink, cut by one (the run's last byte gone). */
static size_t resize_run(const uint8_t *v, size_t len, size_t i, bool shrink,
                         uint8_t *out)
{
    size_t run = v[i], end = i + 1 + run;
    if (end > len || (shrink && run == 0) || (!shrink && run == 0xff))
        return 0;
    memcpy(out, v, end);
    out[i] = (uint8_t)(shrink ? run - 1 : run + 1);
    if (shrink) {
        memcpy(out + end - 1, v + end, len - end);
        return len - 1;
    }
    out[end] = 'A';
    memcpy(out + end + 1, v + end, len - end);
    return len + 1;
}

/* The value of rec, every truncation of it, a byte past its end, each
 * byte replaced by every other value, and every byte read as a run length
 * one longer or shorter; buffers of every small size for the strings. */
static void check_mutations(const kivis_struct_desc *sd, const void *rec,
                            tally *t)
{
    kivis_buf b;
    kivis__buf_init(&b, NULL);
    assert_int_equal(kivis__value_encode(&b, sd, 3, rec), KIVIS_OK);
    assert_int_equal(kivis__buf_byte(&b, 0), KIVIS_OK); /* the byte past */
    uint8_t *v = b.data, resized[512];
    size_t len = b.len - 1, n = 0;
    assert_true(len < sizeof resized - 1);
    for (size_t cut = 0; cut <= len + 1; cut++)
        check(sd, v, cut, n++ % 48, t);
    for (size_t i = 0; i < len; i++) {
        uint8_t keep = v[i];
        for (unsigned x = 0; x < 256; x++) {
            v[i] = (uint8_t)x;
            check(sd, v, len, n++ % 48, t);
        }
        v[i] = keep;
        for (int shrink = 0; shrink < 2; shrink++) {
            size_t m = resize_run(v, len, i, shrink, resized);
            if (m)
                check(sd, resized, m, n++ % 48, t);
        }
    }
    check(sd, v, len, 4096, t);
    kivis__buf_free(&b);
}

static void every_record_has_a_decoder(void **state)
{
    (void)state;
    const kivis_schema_desc *schemas[] = {&alltypes_schema, &opt_schema};
    for (size_t s = 0; s < 2; s++)
        for (uint32_t i = 0; i < schemas[s]->ntables; i++) {
            const kivis_table_desc *td = &schemas[s]->tables[i];
            assert_non_null(td->record->decode);
            assert_null(td->key->decode); /* keys keep their own codec */
        }
}

static void generated_agrees_with_walk(void **state)
{
    (void)state;
    tally t = {0, 0, 0};
    const kivis_table_desc *at = alltypes_schema.tables;
    sample s = make_sample();
    owner o = {"o@x", 3};
    cell c = {"sheet", -4, "B2C", 1e300}; /* col full */
    chunk k = {{blob_bytes, 3}, "tag4567"}; /* tag full */
    person absent = make_person(false), present = make_person(true);
    check_mutations(at[ALLTYPES_SAMPLE].record, &s, &t);
    check_mutations(at[ALLTYPES_OWNER].record, &o, &t);
    check_mutations(at[ALLTYPES_CELL].record, &c, &t);
    check_mutations(at[ALLTYPES_CHUNK].record, &k, &t);
    check_mutations(opt_schema.tables[OPT_PERSON].record, &absent, &t);
    check_mutations(opt_schema.tables[OPT_PERSON].record, &present, &t);
    /* the inputs reached both outcomes, and buffers that ran out */
    assert_true(t.ok > 100);
    assert_true(t.failed > 100);
    assert_true(t.into_failed > 10);
}

/* ---- the engine calls the decoder ------------------------------------ */

static kivis_decode_fn sample_generated;
static unsigned decoder_calls;

static int counting_decode(kivis_reader *r, void *rec, uint32_t nfields,
                           const kivis_allocator *a)
{
    decoder_calls++;
    return sample_generated(r, rec, nfields, a);
}

static void engine_decodes_with_it(void **state)
{
    (void)state;
    kivis_table_desc tables[4];
    memcpy(tables, alltypes_schema.tables, sizeof tables);
    kivis_struct_desc rec = *tables[ALLTYPES_SAMPLE].record;
    sample_generated = rec.decode;
    rec.decode = counting_decode;
    tables[ALLTYPES_SAMPLE].record = &rec;
    kivis_schema_desc schema = {"alltypes", 4, tables, 0, NULL, 0, NULL};

    kivis_storage *st;
    kivis_db *db;
    assert_int_equal(kivis_memory_open(NULL, &st), KIVIS_OK);
    assert_int_equal(kivis_open(st, &schema, NULL, &db), KIVIS_OK);
    sample s = make_sample(), got;
    sample_key key;
    assert_int_equal(kivis_put(db, ALLTYPES_SAMPLE, &s, &key), KIVIS_OK);
    unsigned before = decoder_calls;
    char buf[256];
    assert_int_equal(kivis_get_into(db, ALLTYPES_SAMPLE, &key, &got, buf, sizeof buf),
                     KIVIS_OK);
    assert_true(kivis__struct_equal(&rec, &s, &got));
    assert_int_equal(decoder_calls, before + 1);

    kivis_query q;
    memset(&q, 0, sizeof q);
    q.table = ALLTYPES_SAMPLE;
    q.index = -1;
    kivis_scan *scan;
    assert_int_equal(kivis_scan_open(db, &q, &scan), KIVIS_OK);
    assert_int_equal(kivis_scan_next_into(scan, NULL, &got, buf, sizeof buf), KIVIS_OK);
    assert_true(kivis__struct_equal(&rec, &s, &got));
    assert_int_equal(decoder_calls, before + 2);
    kivis_scan_close(scan);
    kivis_close(db);
    kivis_storage_close(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_record_has_a_decoder),
        cmocka_unit_test(generated_agrees_with_walk),
        cmocka_unit_test(engine_decodes_with_it),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
