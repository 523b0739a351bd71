/*
 * tests/test_codec.c - the key and value codec.
 *
 * The property tests are driven by descriptors: a random generator and a
 * model order written from the spec (numbers numerically, floats in IEEE
 * total order, strings as bytes with the shorter first), so every key type,
 * scalar or composite, is checked the same way: for random pairs a, b the
 * encodings compare as the model says, are equal exactly when the values
 * are, and decode back to the value consuming exactly the encoding.
 * Set KIVIS_TEST_SEED to vary the pairs; a failure prints its seed.
 */
#include "codec/codec.h"
#include "testutil.h"

#include "../fuzz/fuzz_schema.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAIRS 100000ul

/* ---- small helpers ------------------------------------------------------ */

static int sign_of(long long v)
{
    return (v > 0) - (v < 0);
}

static int cmp_u64(uint64_t a, uint64_t b)
{
    return (a > b) - (a < b);
}

static int cmp_i64(int64_t a, int64_t b)
{
    return (a > b) - (a < b);
}

/* Byte strings: memcmp order, the shorter first on a common prefix. */
static int cmp_run(const void *a, size_t an, const void *b, size_t bn)
{
    size_t n = an < bn ? an : bn;
    int c = n ? memcmp(a, b, n) : 0;
    return c ? sign_of(c) : cmp_u64(an, bn);
}

static uint64_t test_seed(void)
{
    const char *s = getenv("KIVIS_TEST_SEED");
    return s ? strtoull(s, NULL, 0) : 0x5EED0C0DEC0FFEEull;
}

static uint64_t rnd(uint64_t *rng, uint64_t n)
{
    return kt_rand(rng) % n;
}

static kivis_slice buf_slice(const kivis_buf *b)
{
    return kivis_slice_make(b->data, b->len);
}

static bool all_zero(const void *p, size_t n)
{
    const uint8_t *c = p;
    for (size_t i = 0; i < n; i++)
        if (c[i])
            return false;
    return true;
}

static unsigned kind_width(uint32_t kind)
{
    static const unsigned w[] = {
        [KIVIS_U8] = 1, [KIVIS_U16] = 2, [KIVIS_U32] = 4, [KIVIS_U64] = 8,
        [KIVIS_I8] = 1, [KIVIS_I16] = 2, [KIVIS_I32] = 4, [KIVIS_I64] = 8,
        [KIVIS_BOOL] = 1, [KIVIS_F32] = 4, [KIVIS_F64] = 8};
    return kind < sizeof w / sizeof w[0] ? w[kind] : 0;
}

static bool kind_signed(uint32_t kind)
{
    return kind >= KIVIS_I8 && kind <= KIVIS_I64;
}

static uint64_t load_u(const uint8_t *p, unsigned w)
{
    uint8_t a; uint16_t b; uint32_t c; uint64_t d;
    switch (w) {
    case 1: memcpy(&a, p, 1); return a;
    case 2: memcpy(&b, p, 2); return b;
    case 4: memcpy(&c, p, 4); return c;
    default: memcpy(&d, p, 8); return d;
    }
}

static int64_t load_i(const uint8_t *p, unsigned w)
{
    int8_t a; int16_t b; int32_t c; int64_t d;
    switch (w) {
    case 1: memcpy(&a, p, 1); return a;
    case 2: memcpy(&b, p, 2); return b;
    case 4: memcpy(&c, p, 4); return c;
    default: memcpy(&d, p, 8); return d;
    }
}

/* Store the low w bytes of v (little- or big-endian host alike). */
static void store_w(uint8_t *p, unsigned w, uint64_t v)
{
    uint8_t a = (uint8_t)v; uint16_t b = (uint16_t)v; uint32_t c = (uint32_t)v;
    switch (w) {
    case 1: memcpy(p, &a, 1); break;
    case 2: memcpy(p, &b, 2); break;
    case 4: memcpy(p, &c, 4); break;
    default: memcpy(p, &v, 8); break;
    }
}

static void *tmalloc(const kivis_allocator *a, size_t n)
{
    void *p = a->malloc(a->ctx, n);
    assert_non_null(p);
    return p;
}

/* ---- random values, biased toward the edges ---------------------------- */

/* w-byte patterns: zero, one, all ones (-1 / max), the sign boundaries
 * (min, max signed), byte boundaries, small numbers around 0 and the sign
 * bit, and uniformly random ones of random bit length. */
static uint64_t gen_int_bits(uint64_t *rng, unsigned w)
{
    uint64_t top = UINT64_C(1) << (8 * w - 1);
    uint64_t mask = top | (top - 1);
    static const uint64_t pool[] = {0, 1, 2, 0x7F, 0x80, 0xFF, 0x100,
                                    0x7FFF, 0x8000, 0xFFFF, 0x10000,
                                    0x7FFFFFFF, 0x80000000, 0xFFFFFFFF};
    int64_t small = (int64_t)rnd(rng, 17) - 8;
    switch (rnd(rng, 8)) {
    case 0: return pool[rnd(rng, sizeof pool / sizeof pool[0])] & mask;
    case 1: return (uint64_t)small & mask;
    case 2: return (top + (uint64_t)small) & mask;
    case 3: return (kt_rand(rng) >> rnd(rng, 64)) & mask;
    case 4: return ~(kt_rand(rng) >> rnd(rng, 64)) & mask;
    case 5: return rnd(rng, 2) ? mask : top;
    default: return kt_rand(rng) & mask;
    }
}

static uint64_t f64_bits(double d)
{
    uint64_t u;
    memcpy(&u, &d, 8);
    return u;
}

/* Float bit patterns: both zeros, infinities, denormals (smallest and
 * largest), the normal range ends, NaNs of both signs with assorted
 * payloads (quiet, signalling, all ones), ordinary numbers, random bits. */
static uint64_t gen_float_bits(uint64_t *rng, unsigned w)
{
    bool f32 = w == 4;
    uint64_t sign = f32 ? 0x80000000u : UINT64_C(1) << 63;
    uint64_t exp = f32 ? 0x7F800000u : UINT64_C(0x7FF0000000000000);
    uint64_t mant = exp ? (f32 ? 0x7FFFFFu : (UINT64_C(1) << 52) - 1) : 0;
    uint64_t quiet = f32 ? 0x400000u : UINT64_C(1) << 51;
    uint64_t one = f32 ? 0x3F800000u : f64_bits(1.0);
    const uint64_t pool[] = {0, exp, 1, mant, mant + 1, exp - 1, one,
                             exp | 1, exp | quiet, exp | mant,
                             exp | quiet | 1, exp | (quiet >> 1)};
    uint64_t s = rnd(rng, 2) ? sign : 0;
    uint64_t r = kt_rand(rng);
    switch (rnd(rng, 6)) {
    case 0: case 1: return s | pool[rnd(rng, sizeof pool / sizeof pool[0])];
    case 2: return s | (exp + ((r & mant) | 1)); /* NaN, random payload */
    case 3: return s | (r & mant);               /* denormal */
    case 4: return s | ((one + (r % 64) * (mant + 1) / 4) & (exp | mant));
    default: return f32 ? (r & 0xFFFFFFFFu) : r;
    }
}

/* Code points across every UTF-8 length and around its boundaries. */
static uint32_t gen_code_point(uint64_t *rng)
{
    static const uint32_t edge[] = {0x01, 0x7F, 0x80, 0x7FF, 0x800, 0xD7FF,
                                    0xE000, 0xFFFD, 0xFFFF, 0x10000, 0x10FFFF};
    switch (rnd(rng, 8)) {
    case 0: return edge[rnd(rng, sizeof edge / sizeof edge[0])];
    case 1: return 0x80 + (uint32_t)rnd(rng, 0x780);
    case 2: {
        uint32_t c = 0x800 + (uint32_t)rnd(rng, 0xF800);
        return c >= 0xD800 && c < 0xE000 ? c + 0x800 : c;
    }
    case 3: return 0x10000 + (uint32_t)rnd(rng, 0x100000);
    default: return "ab\x01z"[rnd(rng, 4)]; /* few letters: shared prefixes */
    }
}

static size_t put_utf8(uint8_t *o, uint32_t c)
{
    if (c < 0x80) {
        o[0] = (uint8_t)c;
        return 1;
    }
    if (c < 0x800) {
        o[0] = (uint8_t)(0xC0 | c >> 6);
        o[1] = (uint8_t)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        o[0] = (uint8_t)(0xE0 | c >> 12);
        o[1] = (uint8_t)(0x80 | (c >> 6 & 0x3F));
        o[2] = (uint8_t)(0x80 | (c & 0x3F));
        return 3;
    }
    o[0] = (uint8_t)(0xF0 | c >> 18);
    o[1] = (uint8_t)(0x80 | (c >> 12 & 0x3F));
    o[2] = (uint8_t)(0x80 | (c >> 6 & 0x3F));
    o[3] = (uint8_t)(0x80 | (c & 0x3F));
    return 4;
}

/* UTF-8 text of at most max bytes (no NUL); mostly short, so pairs often
 * share prefixes or are equal. */
static size_t gen_text(uint64_t *rng, uint8_t *o, size_t max)
{
    size_t n = 0, want = rnd(rng, 4) ? rnd(rng, 5) : rnd(rng, max + 1);
    while (n < want) {
        uint8_t tmp[4];
        size_t k = put_utf8(tmp, gen_code_point(rng));
        if (n + k > max)
            break;
        memcpy(o + n, tmp, k);
        n += k;
    }
    return n;
}

/* Binary data dense in the bytes escaping treats specially. */
static size_t gen_binary(uint64_t *rng, uint8_t *o, size_t max)
{
    static const uint8_t alpha[] = {0x00, 0x01, 0x02, 0xFF, 0xFE, 'a'};
    size_t n = rnd(rng, 4) ? rnd(rng, 6) : rnd(rng, max + 1);
    for (size_t i = 0; i < n; i++)
        o[i] = rnd(rng, 4) ? alpha[rnd(rng, sizeof alpha)] : (uint8_t)kt_rand(rng);
    return n;
}

static void gen_struct(const kivis_struct_desc *sd, uint64_t *rng, void *obj,
                       const kivis_allocator *a);

static void gen_elem(const kivis_field *f, uint64_t *rng, uint8_t *p,
                     const kivis_allocator *a)
{
    uint8_t tmp[64];
    size_t n;
    char *s;
    kivis_bytes b;
    switch (f->kind) {
    case KIVIS_BOOL:
        *p = (uint8_t)rnd(rng, 2);
        break;
    case KIVIS_F32: case KIVIS_F64:
        store_w(p, kind_width(f->kind), gen_float_bits(rng, kind_width(f->kind)));
        break;
    case KIVIS_ENUM:
        store_w(p, (unsigned)f->size,
                (uint64_t)(int64_t)f->enm->values[rnd(rng, f->enm->count)]);
        break;
    case KIVIS_STRING:
        if (rnd(rng, 16) == 0) { /* NULL stores as "" */
            s = NULL;
        } else {
            n = gen_text(rng, tmp, sizeof tmp);
            s = tmalloc(a, n + 1);
            memcpy(s, tmp, n);
            s[n] = '\0';
        }
        memcpy(p, &s, sizeof s);
        break;
    case KIVIS_CHARS:
        memset(p, (int)(kt_rand(rng) | 0x80), f->size); /* junk after NUL */
        n = gen_text(rng, p, f->size - 1);
        p[n] = '\0';
        break;
    case KIVIS_BYTES:
        b.len = gen_binary(rng, tmp, sizeof tmp);
        b.data = b.len ? tmalloc(a, b.len) : NULL;
        if (b.len)
            memcpy(b.data, tmp, b.len);
        memcpy(p, &b, sizeof b);
        break;
    case KIVIS_STRUCT:
        gen_struct(f->type, rng, p, a);
        break;
    default:
        store_w(p, kind_width(f->kind), gen_int_bits(rng, kind_width(f->kind)));
        break;
    }
}

static void gen_struct(const kivis_struct_desc *sd, uint64_t *rng, void *obj,
                       const kivis_allocator *a)
{
    for (uint32_t i = 0; i < sd->nfields; i++) {
        const kivis_field *f = &sd->fields[i];
        uint8_t *p = (uint8_t *)obj + f->offset;
        for (uint32_t j = 0; j < (f->count ? f->count : 1); j++, p += f->size)
            gen_elem(f, rng, p, a);
    }
}

/* ---- the model order ---------------------------------------------------- */

/* IEEE total order on bit patterns: sign first (negative below), then the
 * magnitude, reversed for negatives. */
static int cmp_float_bits(uint64_t x, uint64_t y, unsigned w)
{
    uint64_t sign = UINT64_C(1) << (8 * w - 1);
    bool nx = x & sign, ny = y & sign;
    if (nx != ny)
        return nx ? -1 : 1;
    int c = cmp_u64(x & ~sign, y & ~sign);
    return nx ? -c : c;
}

/* The model must agree with C's own comparison wherever that is defined. */
static void check_float_model(const uint8_t *x, const uint8_t *y, unsigned w,
                              int model)
{
    double a, b;
    float fa, fb;
    if (w == 4) {
        memcpy(&fa, x, 4);
        memcpy(&fb, y, 4);
        a = fa;
        b = fb;
    } else {
        memcpy(&a, x, 8);
        memcpy(&b, y, 8);
    }
    if (!isnan(a) && !isnan(b) && a != b)
        assert_int_equal(model, a < b ? -1 : 1);
}

static int model_cmp_struct(const kivis_struct_desc *sd, const void *x,
                            const void *y);

static int model_cmp_elem(const kivis_field *f, const uint8_t *x,
                          const uint8_t *y)
{
    unsigned w = kind_width(f->kind);
    const char *sx, *sy;
    kivis_bytes bx, by;
    int c;
    switch (f->kind) {
    case KIVIS_F32: case KIVIS_F64:
        c = cmp_float_bits(load_u(x, w), load_u(y, w), w);
        check_float_model(x, y, w, c);
        return c;
    case KIVIS_ENUM:
        return cmp_i64(load_i(x, (unsigned)f->size), load_i(y, (unsigned)f->size));
    case KIVIS_STRING:
        memcpy(&sx, x, sizeof sx);
        memcpy(&sy, y, sizeof sy);
        sx = sx ? sx : "";
        sy = sy ? sy : "";
        return cmp_run(sx, strlen(sx), sy, strlen(sy));
    case KIVIS_CHARS:
        return cmp_run(x, strnlen((const char *)x, f->size), y,
                       strnlen((const char *)y, f->size));
    case KIVIS_BYTES:
        memcpy(&bx, x, sizeof bx);
        memcpy(&by, y, sizeof by);
        return cmp_run(bx.data, bx.len, by.data, by.len);
    case KIVIS_STRUCT:
        return model_cmp_struct(f->type, x, y);
    default:
        if (kind_signed(f->kind))
            return cmp_i64(load_i(x, w), load_i(y, w));
        return cmp_u64(load_u(x, w), load_u(y, w));
    }
}

static int model_cmp_struct(const kivis_struct_desc *sd, const void *x,
                            const void *y)
{
    for (uint32_t i = 0; i < sd->nfields; i++) {
        const kivis_field *f = &sd->fields[i];
        const uint8_t *a = (const uint8_t *)x + f->offset;
        const uint8_t *b = (const uint8_t *)y + f->offset;
        for (uint32_t j = 0; j < (f->count ? f->count : 1); j++) {
            int c = model_cmp_elem(f, a + j * f->size, b + j * f->size);
            if (c)
                return c;
        }
    }
    return 0;
}

/* ---- key property driver ------------------------------------------------ */

typedef struct key_run {
    const kivis_struct_desc *sd;
    kt_alloc alloc;
    kivis_buf ea, eb;
    void *a, *b, *back;
    uint64_t seed, rng;
} key_run;

static void key_run_open(key_run *kr, const kivis_struct_desc *sd)
{
    kr->sd = sd;
    kt_alloc_init(&kr->alloc);
    kivis__buf_init(&kr->ea, &kr->alloc.iface);
    kivis__buf_init(&kr->eb, &kr->alloc.iface);
    kr->a = calloc(1, sd->size);
    kr->b = calloc(1, sd->size);
    kr->back = calloc(1, sd->size);
    assert_true(kr->a && kr->b && kr->back);
    uint64_t h = 1469598103934665603ull; /* FNV-1a of the name */
    for (const char *c = sd->name; *c; c++)
        h = (h ^ (uint8_t)*c) * 1099511628211ull;
    kr->seed = kr->rng = test_seed() ^ h;
}

static void key_run_close(key_run *kr)
{
    kivis__buf_free(&kr->ea);
    kivis__buf_free(&kr->eb);
    free(kr->a);
    free(kr->b);
    free(kr->back);
    assert_int_equal(kr->alloc.live_blocks, 0);
}

/* decode(encode(x)) == x, consuming all of it; skip agrees. */
static void check_key_back(key_run *kr, const void *x, const kivis_buf *enc)
{
    kivis_reader r = kivis__reader(buf_slice(enc));
    assert_int_equal(kivis__key_get_struct(&r, kr->sd, kr->back,
                                           &kr->alloc.iface), KIVIS_OK);
    assert_ptr_equal(r.p, r.end);
    assert_true(kivis__struct_equal(kr->sd, x, kr->back));
    assert_int_equal(model_cmp_struct(kr->sd, x, kr->back), 0);
    kivis__struct_free(kr->sd, kr->back, &kr->alloc.iface);
    r = kivis__reader(buf_slice(enc));
    assert_int_equal(kivis__key_skip_struct(&r, kr->sd), KIVIS_OK);
    assert_ptr_equal(r.p, r.end);
}

static void key_encode(key_run *kr, kivis_buf *b, const void *x)
{
    b->len = 0;
    assert_int_equal(kivis__key_put_struct(b, kr->sd, x), KIVIS_OK);
}

static void key_pair(key_run *kr, unsigned long i)
{
    uint64_t again = kr->rng;
    gen_struct(kr->sd, &kr->rng, kr->a, &kr->alloc.iface);
    if (rnd(&kr->rng, 8) == 0) /* replay the generator: b == a */
        gen_struct(kr->sd, &again, kr->b, &kr->alloc.iface);
    else
        gen_struct(kr->sd, &kr->rng, kr->b, &kr->alloc.iface);
    key_encode(kr, &kr->ea, kr->a);
    key_encode(kr, &kr->eb, kr->b);
    int want = model_cmp_struct(kr->sd, kr->a, kr->b);
    int got = cmp_run(kr->ea.data, kr->ea.len, kr->eb.data, kr->eb.len);
    if (want != got)
        fail_msg("%s: pair %lu (seed %#llx): model %d, keys %d", kr->sd->name, i,
                 (unsigned long long)kr->seed, want, got);
    assert_int_equal(kivis__struct_equal(kr->sd, kr->a, kr->b), want == 0);
    check_key_back(kr, kr->a, &kr->ea);
    check_key_back(kr, kr->b, &kr->eb);
    kivis__struct_free(kr->sd, kr->a, &kr->alloc.iface);
    kivis__struct_free(kr->sd, kr->b, &kr->alloc.iface);
}

static void run_key_pairs(const kivis_struct_desc *sd, unsigned long pairs)
{
    key_run kr;
    key_run_open(&kr, sd);
    for (unsigned long i = 0; i < pairs; i++)
        key_pair(&kr, i);
    key_run_close(&kr);
}

/* ---- key types under test ----------------------------------------------- */

/* Room for any single scalar field at offset 0. */
typedef union slot {
    uint64_t u;
    double d;
    void *p;
    kivis_bytes b;
    char c[16];
} slot;

static const int32_t small_enum_values[] = {-128, -1, 0, 1, 5, 127};
static const char *const small_enum_names[] = {"a", "b", "c", "d", "e", "f"};
static const kivis_enum_desc small_enum = {"small", 6, small_enum_names,
                                           small_enum_values};

#define SCALAR_DESC(name, kind, size, enm)                                    \
    static const kivis_field name##_fields[] = {                              \
        {#name, kind, 0, 0, size, NULL, enm, 0}};                             \
    static const kivis_struct_desc name##_desc = {#name, sizeof(slot), 1,     \
                                                  name##_fields, NULL};

SCALAR_DESC(u8, KIVIS_U8, 1, NULL)
SCALAR_DESC(u16, KIVIS_U16, 2, NULL)
SCALAR_DESC(u32, KIVIS_U32, 4, NULL)
SCALAR_DESC(u64, KIVIS_U64, 8, NULL)
SCALAR_DESC(i8, KIVIS_I8, 1, NULL)
SCALAR_DESC(i16, KIVIS_I16, 2, NULL)
SCALAR_DESC(i32, KIVIS_I32, 4, NULL)
SCALAR_DESC(i64, KIVIS_I64, 8, NULL)
SCALAR_DESC(f32, KIVIS_F32, 4, NULL)
SCALAR_DESC(f64, KIVIS_F64, 8, NULL)
SCALAR_DESC(boolean, KIVIS_BOOL, 1, NULL)
SCALAR_DESC(enum32, KIVIS_ENUM, 4, &fz_color)
SCALAR_DESC(enum8, KIVIS_ENUM, 1, &small_enum)
SCALAR_DESC(string, KIVIS_STRING, sizeof(char *), NULL)
SCALAR_DESC(chars, KIVIS_CHARS, 8, NULL)
SCALAR_DESC(bytes, KIVIS_BYTES, sizeof(kivis_bytes), NULL)

/* {u8, bytes, f64} */
typedef struct mixed {
    uint8_t u;
    kivis_bytes b;
    double d;
} mixed;
static const kivis_field mixed_fields[] = {
    FZ_FIELD(mixed, u, KIVIS_U8, 0),
    FZ_FIELD(mixed, b, KIVIS_BYTES, 0),
    FZ_FIELD(mixed, d, KIVIS_F64, 0),
};
static const kivis_struct_desc mixed_desc = {"mixed", sizeof(mixed), 3,
                                             mixed_fields, NULL};

/* {string, string}: prefixes and ties in both. */
typedef struct two_strings {
    char *a;
    char *b;
} two_strings;
static const kivis_field two_strings_fields[] = {
    FZ_FIELD(two_strings, a, KIVIS_STRING, 0),
    FZ_FIELD(two_strings, b, KIVIS_STRING, 0),
};
static const kivis_struct_desc two_strings_desc = {
    "two_strings", sizeof(two_strings), 2, two_strings_fields, NULL};

/* Arrays, and a char[N] array between them. */
typedef struct arrays {
    int16_t v[3];
    char names[2][5];
    kivis_bytes blobs[2];
    bool flags[2];
} arrays;
static const kivis_field arrays_fields[] = {
    FZ_FIELD(arrays, v, KIVIS_I16, 3),
    FZ_FIELD(arrays, names, KIVIS_CHARS, 2),
    FZ_FIELD(arrays, blobs, KIVIS_BYTES, 2),
    FZ_FIELD(arrays, flags, KIVIS_BOOL, 2),
};
static const kivis_struct_desc arrays_desc = {"arrays", sizeof(arrays), 4,
                                              arrays_fields, NULL};

/* A nested struct, an array of them, then more fields. */
typedef struct nested {
    fz_point at;
    fz_point trail[2];
    int64_t when;
    int32_t color;
} nested;
static const kivis_field nested_fields[] = {
    FZ_NESTED(nested, at, fz_point_desc, 0),
    FZ_NESTED(nested, trail, fz_point_desc, 2),
    FZ_FIELD(nested, when, KIVIS_I64, 0),
    FZ_ENUM(nested, color, fz_color, 0),
};
static const kivis_struct_desc nested_desc = {"nested", sizeof(nested), 4,
                                              nested_fields, NULL};

#define KEY_PROPERTY(name)                                                    \
    static void test_key_order_##name(void **state)                           \
    {                                                                         \
        (void)state;                                                          \
        run_key_pairs(&name##_desc, PAIRS);                                   \
    }

KEY_PROPERTY(u8)
KEY_PROPERTY(u16)
KEY_PROPERTY(u32)
KEY_PROPERTY(u64)
KEY_PROPERTY(i8)
KEY_PROPERTY(i16)
KEY_PROPERTY(i32)
KEY_PROPERTY(i64)
KEY_PROPERTY(f32)
KEY_PROPERTY(f64)
KEY_PROPERTY(boolean)
KEY_PROPERTY(enum32)
KEY_PROPERTY(enum8)
KEY_PROPERTY(string)
KEY_PROPERTY(chars)
KEY_PROPERTY(bytes)
KEY_PROPERTY(mixed)
KEY_PROPERTY(two_strings)
KEY_PROPERTY(arrays)
KEY_PROPERTY(nested)

static void test_key_order_named(void **state)
{
    (void)state;
    run_key_pairs(&fz_named_desc, PAIRS);
}

/* {bytes, bytes, u8}: with a 0x00 0xFF escape and a one-byte terminator,
 * ("a", "\xFF\0") and ("a\0", "\xFF") would encode alike. */
static void test_key_order_blobs(void **state)
{
    (void)state;
    run_key_pairs(&fz_blobs_desc, PAIRS);
}

static void test_key_order_record(void **state)
{
    (void)state;
    run_key_pairs(&fz_record_desc, PAIRS / 10);
}

/* ---- key primitives ----------------------------------------------------- */

/* The primitive encoders agree with the descriptor-driven ones and
 * decode what they encode. */
static void check_int_primitive(unsigned w, bool is_signed, uint64_t bits,
                                const kivis_struct_desc *sd, kivis_buf *x,
                                kivis_buf *y)
{
    slot s = {0};
    uint64_t top = UINT64_C(1) << (8 * w - 1);
    int64_t sv = (int64_t)((bits ^ top) - top); /* sign-extend */
    store_w((uint8_t *)&s, w, bits);
    x->len = y->len = 0;
    assert_int_equal(kivis__key_put_struct(x, sd, &s), KIVIS_OK);
    if (is_signed)
        assert_int_equal(kivis__key_put_int(y, sv, w), KIVIS_OK);
    else
        assert_int_equal(kivis__key_put_uint(y, bits, w), KIVIS_OK);
    assert_int_equal(x->len, w);
    assert_memory_equal(x->data, y->data, w);
    kivis_reader r = kivis__reader(buf_slice(y));
    if (is_signed) {
        int64_t v;
        assert_int_equal(kivis__key_get_int(&r, w, &v), KIVIS_OK);
        assert_int_equal(v, sv);
    } else {
        uint64_t v;
        assert_int_equal(kivis__key_get_uint(&r, w, &v), KIVIS_OK);
        assert_int_equal(v, bits);
    }
    assert_ptr_equal(r.p, r.end);
}

static void test_key_primitives_match_fields(void **state)
{
    (void)state;
    static const kivis_struct_desc *const descs[] = {
        &u8_desc, &u16_desc, &u32_desc, &u64_desc,
        &i8_desc, &i16_desc, &i32_desc, &i64_desc};
    kivis_buf x, y;
    kivis__buf_init(&x, NULL);
    kivis__buf_init(&y, NULL);
    uint64_t rng = test_seed();
    for (unsigned k = 0; k < 8; k++) {
        unsigned w = kind_width(descs[k]->fields[0].kind);
        for (unsigned long i = 0; i < PAIRS / 10; i++)
            check_int_primitive(w, k >= 4, gen_int_bits(&rng, w), descs[k], &x, &y);
    }
    kivis__buf_free(&x);
    kivis__buf_free(&y);
}

static void test_key_primitive_errors(void **state)
{
    (void)state;
    kivis_buf b;
    kivis__buf_init(&b, NULL);
    assert_int_equal(kivis__key_put_uint(&b, 256, 1), KIVIS_ERANGE);
    assert_int_equal(kivis__key_put_uint(&b, 1, 3), KIVIS_EINVAL);
    assert_int_equal(kivis__key_put_int(&b, 128, 1), KIVIS_ERANGE);
    assert_int_equal(kivis__key_put_int(&b, -129, 1), KIVIS_ERANGE);
    assert_int_equal(kivis__key_put_int(&b, INT32_MIN, 4), KIVIS_OK);
    assert_int_equal(kivis__key_put_int(&b, 0, 0), KIVIS_EINVAL);
    assert_int_equal(b.len, 4);
    uint8_t two[] = {0x80, 0x00};
    kivis_reader r = kivis__reader(kivis_slice_make(two, 2));
    uint64_t u;
    float f;
    double d;
    assert_int_equal(kivis__key_get_uint(&r, 4, &u), KIVIS_ECORRUPT);
    assert_ptr_equal(r.p, two);
    assert_int_equal(kivis__key_get_f32(&r, &f), KIVIS_ECORRUPT);
    assert_int_equal(kivis__key_get_f64(&r, &d), KIVIS_ECORRUPT);
    int64_t v;
    assert_int_equal(kivis__key_get_int(&r, 2, &v), KIVIS_OK);
    assert_int_equal(v, 0);
    kivis__buf_free(&b);
}

/* Worked examples of docs/encoding.md, byte for byte. */
static void expect_hex(const kivis_buf *b, const char *hex)
{
    char got[256] = "";
    for (size_t i = 0; i < b->len && 2 * i + 2 < sizeof got; i++)
        snprintf(got + 2 * i, 3, "%02x", b->data[i]);
    assert_string_equal(got, hex);
}

static void expect_key(const kivis_struct_desc *sd, const void *obj,
                       const char *hex)
{
    kivis_buf b;
    kivis__buf_init(&b, NULL);
    assert_int_equal(kivis__key_put_struct(&b, sd, obj), KIVIS_OK);
    expect_hex(&b, hex);
    kivis__buf_free(&b);
}

static void test_key_golden(void **state)
{
    (void)state;
    static const struct {
        uint64_t bits;
        const char *hex;
    } f64s[] = {
        {UINT64_C(0xFFF8000000000000), "0007ffffffffffff"}, /* -NaN */
        {UINT64_C(0xFFF0000000000000), "000fffffffffffff"}, /* -inf */
        {UINT64_C(0xBFF0000000000000), "400fffffffffffff"}, /* -1.0 */
        {UINT64_C(0x8000000000000000), "7fffffffffffffff"}, /* -0.0 */
        {0, "8000000000000000"},                            /* +0.0 */
        {1, "8000000000000001"},                            /* denormal */
        {UINT64_C(0x3FF0000000000000), "bff0000000000000"}, /* 1.0 */
        {UINT64_C(0x7FF0000000000000), "fff0000000000000"}, /* +inf */
        {UINT64_C(0x7FF8000000000000), "fff8000000000000"}, /* +NaN */
    };
    slot s = {0};
    for (size_t i = 0; i < sizeof f64s / sizeof f64s[0]; i++) {
        s.u = f64s[i].bits;
        expect_key(&f64_desc, &s, f64s[i].hex);
    }
    s.u = 0;
    store_w((uint8_t *)&s, 4, 0x3F800000u);
    expect_key(&f32_desc, &s, "bf800000");
    store_w((uint8_t *)&s, 2, 0x1234);
    expect_key(&u16_desc, &s, "1234");
    store_w((uint8_t *)&s, 1, 0x80);
    expect_key(&i8_desc, &s, "00");
    store_w((uint8_t *)&s, 4, (uint64_t)-1);
    expect_key(&i32_desc, &s, "7fffffff");
    store_w((uint8_t *)&s, 4, 1);
    expect_key(&i32_desc, &s, "80000001");
    s.b.data = (uint8_t *)"a\0\1b";
    s.b.len = 4;
    expect_key(&bytes_desc, &s, "61010101026200");
    s.b.len = 2;
    expect_key(&bytes_desc, &s, "61010100");
    fz_named n = {"ab", 7};
    expect_key(&fz_named_desc, &n, "61620080000007");
    n.name = NULL;
    n.n = -2;
    expect_key(&fz_named_desc, &n, "007ffffffe");
    kivis_buf b;
    kivis__buf_init(&b, NULL);
    assert_int_equal(kivis__id_put(&b, 5), KIVIS_OK);
    assert_int_equal(kivis__id_put(&b, 300), KIVIS_OK);
    expect_hex(&b, "05812c");
    kivis__buf_free(&b);
}

typedef struct user {
    char *name;
    char *email;
    uint32_t age;
    int32_t delta;
    double score;
    bool admin;
} user;
static const kivis_field user_fields[] = {
    FZ_FIELD(user, name, KIVIS_STRING, 0),
    FZ_FIELD(user, email, KIVIS_STRING, 0),
    FZ_FIELD(user, age, KIVIS_U32, 0),
    FZ_FIELD(user, delta, KIVIS_I32, 0),
    FZ_FIELD(user, score, KIVIS_F64, 0),
    FZ_FIELD(user, admin, KIVIS_BOOL, 0),
};

/* docs/encoding.md 2.2 and 2.4: written with five fields, read with six. */
static void test_value_golden(void **state)
{
    (void)state;
    kivis_struct_desc v1 = {"user", sizeof(user), 5, user_fields, NULL};
    kivis_struct_desc v2 = {"user", sizeof(user), 6, user_fields, NULL};
    user u = {"Ann", NULL, 300, -3, 1.0, true}, back;
    kivis_buf b;
    kivis__buf_init(&b, NULL);
    assert_int_equal(kivis__value_encode(&b, &v1, 1, &u), KIVIS_OK);
    expect_hex(&b, "010105" "03416e6e" "00" "ac02" "05" "000000000000f03f");
    uint32_t version;
    assert_int_equal(kivis__value_decode(buf_slice(&b), &v2, &back, NULL, &version),
                     KIVIS_OK);
    assert_int_equal(version, 1);
    assert_false(back.admin);
    assert_true(kivis__struct_equal(&v1, &u, &back));
    kivis__struct_free(&v2, &back, NULL);
    b.len = 0;
    assert_int_equal(kivis__key_put_struct(&b, &v1, &u), KIVIS_OK);
    expect_hex(&b, "416e6e0000000001" "2c7ffffffdbff0000000000000");
    kivis__buf_free(&b);
}

/* ---- key errors ---------------------------------------------------------- */

static void expect_key_put(const kivis_struct_desc *sd, const void *obj,
                           int rc)
{
    kivis_buf b;
    kivis__buf_init(&b, NULL);
    assert_int_equal(kivis__buf_byte(&b, 0xAA), KIVIS_OK);
    assert_int_equal(kivis__key_put_struct(&b, sd, obj), rc);
    assert_int_equal(b.len, 1); /* a failed encode leaves the buffer alone */
    assert_int_equal(kivis__key_put_field(&b, &sd->fields[0], obj), rc);
    assert_int_equal(b.len, 1);
    kivis__buf_free(&b);
}

static void expect_key_get(const kivis_struct_desc *sd, const void *in,
                           size_t n, int rc)
{
    kt_alloc al;
    kt_alloc_init(&al);
    slot s;
    memset(&s, 0x5A, sizeof s);
    kivis_reader r = kivis__reader(kivis_slice_make(in, n));
    assert_int_equal(kivis__key_get_struct(&r, sd, &s, &al.iface), rc);
    if (rc) {
        assert_ptr_equal(r.p, in);
        assert_true(all_zero(&s, sizeof s));
    } else {
        kivis__struct_free(sd, &s, &al.iface);
    }
    assert_int_equal(al.live_blocks, 0);
}

static const char *const bad_utf8[] = {
    "\x80",             /* stray continuation */
    "\xC0\xAF",         /* overlong '/' */
    "\xC1\xBF",         /* overlong */
    "\xE0\x9F\xBF",     /* overlong below U+0800 */
    "\xED\xA0\x80",     /* surrogate U+D800 */
    "\xED\xBF\xBF",     /* surrogate U+DFFF */
    "\xF0\x8F\xBF\xBF", /* overlong below U+10000 */
    "\xF4\x90\x80\x80", /* above U+10FFFF */
    "\xF5\x80\x80\x80", /* bad lead */
    "\xFF",             /* bad lead */
    "ab\xE2\x82",       /* truncated */
    "\xE2\x28\xA1",     /* bad continuation */
    "abcdefgh\xC3",     /* truncated after the ASCII fast path */
};

typedef void (*expect_put_fn)(const kivis_struct_desc *sd, const void *obj,
                              int rc);

/* Bad field contents are refused alike by the key and value encoders. */
static void check_encode_errors(expect_put_fn expect_put)
{
    slot s = {0};
    store_w((uint8_t *)&s, 4, 3); /* enum value not declared */
    expect_put(&enum32_desc, &s, KIVIS_ERANGE);
    s.u = 0;
    memset(&s, 2, 1); /* bool byte other than 0/1 */
    expect_put(&boolean_desc, &s, KIVIS_ERANGE);
    memcpy(s.c, "12345678", 8); /* char[8] without a NUL */
    expect_put(&chars_desc, &s, KIVIS_ERANGE);
    memcpy(s.c, "\xC0\xAF\0", 3);
    expect_put(&chars_desc, &s, KIVIS_EUTF8);
    s.b.data = NULL; /* a blob with a length but no data */
    s.b.len = 1;
    expect_put(&bytes_desc, &s, KIVIS_EINVAL);
    for (size_t i = 0; i < sizeof bad_utf8 / sizeof bad_utf8[0]; i++) {
        s.p = (void *)bad_utf8[i];
        expect_put(&string_desc, &s, KIVIS_EUTF8);
    }
    /* descriptor errors: an unknown kind, an enum of 8 bytes */
    static const kivis_field odd_f[] = {{"odd", 99, 0, 0, 1, NULL, NULL, 0}};
    static const kivis_struct_desc odd = {"odd", sizeof(slot), 1, odd_f, NULL};
    expect_put(&odd, &s, KIVIS_EINVAL);
    static const kivis_field wide_f[] = {
        {"wide", KIVIS_ENUM, 0, 0, 8, NULL, &fz_color, 0}};
    static const kivis_struct_desc wide = {"wide", sizeof(slot), 1, wide_f, NULL};
    s.u = 0;
    expect_put(&wide, &s, KIVIS_EINVAL);
}

static void test_key_errors(void **state)
{
    (void)state;
    check_encode_errors(expect_key_put);
}

static void test_key_decode_errors(void **state)
{
    (void)state;
    /* undeclared enum value (3), bool 2, truncated ints */
    expect_key_get(&enum32_desc, "\x80\x00\x00\x03", 4, KIVIS_ECORRUPT);
    expect_key_get(&enum32_desc, "\x80\x00\x00\x07", 4, KIVIS_OK);
    expect_key_get(&enum8_desc, "\x80\x00\x00\x80", 4, KIVIS_ECORRUPT);
    expect_key_get(&boolean_desc, "\x02", 1, KIVIS_ECORRUPT);
    expect_key_get(&boolean_desc, "\x01", 1, KIVIS_OK);
    expect_key_get(&u64_desc, "\x01\x02\x03\x04\x05\x06\x07", 7, KIVIS_ECORRUPT);
    expect_key_get(&u8_desc, "", 0, KIVIS_ECORRUPT);
    expect_key_get(&u16_desc, "\x01", 1, KIVIS_ECORRUPT);
    expect_key_get(&u32_desc, "\x01\x02\x03", 3, KIVIS_ECORRUPT);
    /* escapes: a bad second byte, an escape at the end, no terminator */
    expect_key_get(&bytes_desc, "a\x01\x03\x00", 4, KIVIS_ECORRUPT);
    expect_key_get(&bytes_desc, "a\x01\x00", 3, KIVIS_ECORRUPT);
    expect_key_get(&bytes_desc, "a\x01", 2, KIVIS_ECORRUPT);
    expect_key_get(&bytes_desc, "abc", 3, KIVIS_ECORRUPT);
    expect_key_get(&bytes_desc, "a\x01\x01\x01\x02\x00", 6, KIVIS_OK);
    /* strings: an escaped NUL cannot be a C string; bad UTF-8 */
    expect_key_get(&string_desc, "a\x01\x01\x00", 4, KIVIS_ECORRUPT);
    expect_key_get(&string_desc, "\xC0\xAF\x00", 3, KIVIS_ECORRUPT);
    expect_key_get(&chars_desc, "\xED\xA0\x80\x00", 4, KIVIS_ECORRUPT);
    expect_key_get(&chars_desc, "a\x01\x01\x00", 4, KIVIS_ECORRUPT);
    /* char[8]: 7 bytes fit, 8 do not */
    expect_key_get(&chars_desc, "1234567\x00", 8, KIVIS_OK);
    expect_key_get(&chars_desc, "12345678\x00", 9, KIVIS_ECORRUPT);
    /* a failure in a later field frees the earlier ones */
    expect_key_get(&fz_named_desc, "ab\x00\x80\x00", 5, KIVIS_ECORRUPT);
}

static void test_key_bytes_api(void **state)
{
    (void)state;
    kt_alloc al;
    kt_alloc_init(&al);
    uint8_t *out;
    size_t n;
    kivis_reader r = kivis__reader(kivis_slice_make("\x00\x00", 2));
    assert_int_equal(kivis__key_get_bytes(&r, &al.iface, false, &out, &n), KIVIS_OK);
    assert_null(out); /* empty blob: no allocation */
    assert_int_equal(al.live_blocks, 0);
    assert_int_equal(kivis__key_get_bytes(&r, &al.iface, true, &out, &n), KIVIS_OK);
    assert_non_null(out);
    assert_string_equal((char *)out, "");
    al.iface.free(al.iface.ctx, out);
    r = kivis__reader(kivis_slice_make("x\x01\x02y\x00z", 6));
    assert_int_equal(kivis__key_skip_bytes(&r), KIVIS_OK);
    assert_int_equal(*r.p, 'z');
    assert_int_equal(kivis__key_skip_bytes(&r), KIVIS_ECORRUPT);
    kt_alloc_fail_at(&al, 1);
    r = kivis__reader(kivis_slice_make("x\x00", 2));
    assert_int_equal(kivis__key_get_bytes(&r, &al.iface, false, &out, &n), KIVIS_ENOMEM);
    assert_null(out);
    assert_int_equal(al.live_blocks, 0);
}

/* ---- ids, varints, UTF-8 ------------------------------------------------- */

static void test_ids(void **state)
{
    (void)state;
    kivis_buf prev, cur;
    kivis__buf_init(&prev, NULL);
    kivis__buf_init(&cur, NULL);
    for (uint32_t id = 0; id <= KIVIS_ID_MAX; id++) {
        cur.len = 0;
        assert_int_equal(kivis__id_put(&cur, id), KIVIS_OK);
        assert_int_equal(cur.len, id < 0x80 ? 1 : 2);
        if (id)
            assert_true(cmp_run(prev.data, prev.len, cur.data, cur.len) < 0);
        kivis_reader r = kivis__reader(buf_slice(&cur));
        uint32_t back;
        assert_int_equal(kivis__id_get(&r, &back), KIVIS_OK);
        assert_int_equal(back, id);
        assert_ptr_equal(r.p, r.end);
        prev.len = 0;
        assert_int_equal(kivis__buf_append(&prev, cur.data, cur.len), KIVIS_OK);
    }
    assert_int_equal(kivis__id_put(&cur, KIVIS_ID_MAX + 1), KIVIS_ERANGE);
    uint32_t id;
    kivis_reader r = kivis__reader(kivis_slice_make("\x80\x7F", 2));
    assert_int_equal(kivis__id_get(&r, &id), KIVIS_ECORRUPT); /* overlong */
    r = kivis__reader(kivis_slice_make("\x81", 1));
    assert_int_equal(kivis__id_get(&r, &id), KIVIS_ECORRUPT);
    kivis__buf_free(&prev);
    kivis__buf_free(&cur);
}

static size_t varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >>= 7)
        n++;
    return n;
}

static void test_varints(void **state)
{
    (void)state;
    kivis_buf b;
    kivis__buf_init(&b, NULL);
    uint64_t rng = test_seed();
    for (unsigned long i = 0; i < PAIRS; i++) {
        uint64_t v = gen_int_bits(&rng, 8), back;
        b.len = 0;
        assert_int_equal(kivis__varint_put(&b, v), KIVIS_OK);
        assert_int_equal(b.len, varint_len(v));
        kivis_reader r = kivis__reader(buf_slice(&b));
        assert_int_equal(kivis__varint_get(&r, &back), KIVIS_OK);
        assert_int_equal(back, v);
        assert_ptr_equal(r.p, r.end);
    }
    static const struct {
        const char *in;
        size_t n;
    } bad[] = {
        {"", 0},
        {"\x80", 1},
        {"\x80\x00", 2},                                          /* overlong */
        {"\xFF\x80\x00", 3},                                      /* overlong */
        {"\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\x02", 10},         /* 65 bits */
        {"\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\x81\x00", 11},     /* 11 bytes */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t v = 1;
        kivis_reader r = kivis__reader(kivis_slice_make(bad[i].in, bad[i].n));
        assert_int_equal(kivis__varint_get(&r, &v), KIVIS_ECORRUPT);
        assert_int_equal(v, 0);
        assert_ptr_equal(r.p, bad[i].in);
    }
    kivis__buf_free(&b);
}

/* A reference validator written the other way round: decode a code point,
 * then judge it. */
static bool ref_utf8_ok(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n;) {
        uint8_t c = p[i];
        size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3
                                                  : (c >> 3) == 30 ? 4 : 0;
        if (!len || i + len > n)
            return false;
        uint32_t cp = len == 1 ? c : c & (0x7F >> len);
        for (size_t k = 1; k < len; k++) {
            if ((p[i + k] & 0xC0) != 0x80)
                return false;
            cp = cp << 6 | (p[i + k] & 0x3F);
        }
        static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += len;
    }
    return true;
}

static void test_utf8(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad_utf8 / sizeof bad_utf8[0]; i++)
        assert_int_equal(kivis__utf8_check((const uint8_t *)bad_utf8[i],
                                           strlen(bad_utf8[i])), KIVIS_EUTF8);
    uint8_t buf[16];
    for (uint32_t cp = 0; cp <= 0x10FFFF; cp++) {
        size_t n = put_utf8(buf, cp);
        bool ok = cp < 0xD800 || cp > 0xDFFF;
        assert_int_equal(kivis__utf8_check(buf, n), ok ? KIVIS_OK : KIVIS_EUTF8);
    }
    assert_int_equal(kivis__utf8_check(NULL, 0), KIVIS_OK);
    uint64_t rng = test_seed();
    for (unsigned long i = 0; i < PAIRS; i++) {
        size_t n = rnd(&rng, sizeof buf + 1);
        for (size_t k = 0; k < n; k++)
            buf[k] = rnd(&rng, 2) ? (uint8_t)kt_rand(&rng)
                                  : (uint8_t)(0x80 + rnd(&rng, 0x40));
        if (n && rnd(&rng, 2))
            buf[0] = (uint8_t)(0xC0 + rnd(&rng, 0x40));
        assert_int_equal(kivis__utf8_check(buf, n) == KIVIS_OK, ref_utf8_ok(buf, n));
    }
}

/* kivis_dec_text_copy judges n bytes as kivis_dec_text does, and on
 * KIVIS_OK has copied exactly them: nothing past n is written. */
static void expect_text_copy(const uint8_t *src, size_t n)
{
    char dst[48];
    memset(dst, 0x5A, sizeof dst);
    int want = kivis_dec_text(src, n);
    assert_int_equal(kivis_dec_text_copy(dst, src, n), want);
    if (want == KIVIS_OK && n)
        assert_memory_equal(dst, src, n);
    for (size_t i = n; i < sizeof dst; i++)
        assert_int_equal(dst[i], 0x5A);
}

/* ASCII text is checked a word at a time with the last word overlapping
 * (and copied so by kivis_dec_text_copy, byte by byte below 8 bytes):
 * one bad byte (a stray continuation, a byte no UTF-8 has, a NUL, a lead
 * without its tail) must be found at every position of every length. */
static void test_utf8_words(void **state)
{
    (void)state;
    static const uint8_t bad[] = {0x80, 0xFF, 0x00, 0xC3};
    uint8_t buf[40];
    for (size_t n = 1; n <= sizeof buf; n++) {
        memset(buf, 'a', n);
        assert_int_equal(kivis__utf8_check(buf, n), KIVIS_OK);
        assert_int_equal(kivis__utf8_check_text(buf, n), KIVIS_OK);
        expect_text_copy(buf, n);
        for (size_t at = 0; at < n; at++) {
            for (size_t b = 0; b < sizeof bad; b++) {
                buf[at] = bad[b];
                int want = bad[b] == 0x00 ? KIVIS_OK : KIVIS_EUTF8;
                assert_int_equal(kivis__utf8_check(buf, n), want);
                assert_int_equal(kivis__utf8_check_text(buf, n), KIVIS_EUTF8);
                expect_text_copy(buf, n);
                assert_int_equal(kivis_dec_text(buf, n), KIVIS_ECORRUPT);
                buf[at] = 'a';
            }
        }
        if (n >= 2) { /* a good two-byte sequence anywhere stays good */
            buf[n - 2] = 0xC3, buf[n - 1] = 0xA9;
            assert_int_equal(kivis__utf8_check_text(buf, n), KIVIS_OK);
            expect_text_copy(buf, n);
        }
    }
}

/* kivis_dec_text_copy on nothing, and on random bytes (mostly
 * printable) against the reference validator. */
static void test_text_copy(void **state)
{
    (void)state;
    expect_text_copy(NULL, 0);
    uint8_t buf[40];
    uint64_t rng = test_seed();
    for (unsigned long i = 0; i < PAIRS; i++) {
        size_t n = rnd(&rng, sizeof buf + 1);
        for (size_t k = 0; k < n; k++)
            buf[k] = rnd(&rng, 4) ? (uint8_t)(0x20 + rnd(&rng, 0x60))
                                  : (uint8_t)kt_rand(&rng);
        expect_text_copy(buf, n);
        bool nul = memchr(buf, 0, n) != NULL;
        assert_int_equal(kivis_dec_text(buf, n) == KIVIS_OK,
                         ref_utf8_ok(buf, n) && !nul);
    }
}

static void test_buffers(void **state)
{
    (void)state;
    kt_alloc al;
    kt_alloc_init(&al);
    kivis_buf b;
    kivis__buf_init(&b, &al.iface);
    kt_alloc_fail_at(&al, 1);
    assert_int_equal(kivis__buf_byte(&b, 1), KIVIS_ENOMEM);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(kivis__buf_byte(&b, (uint8_t)i), KIVIS_OK);
    size_t cap = b.cap;
    kt_alloc_fail_at(&al, 1);
    assert_int_equal(kivis__buf_reserve(&b, cap), KIVIS_ENOMEM);
    assert_int_equal(b.len, 1000);
    assert_int_equal(b.cap, cap);
    assert_int_equal(kivis__buf_reserve(&b, SIZE_MAX), KIVIS_ENOMEM);
    assert_int_equal(b.data[999], (uint8_t)999);
    assert_int_equal(kivis__buf_append(&b, NULL, 0), KIVIS_OK);
    kivis__buf_free(&b);
    assert_int_equal(al.live_blocks, 0);
}

/* ---- values -------------------------------------------------------------- */

typedef struct value_run {
    kt_alloc alloc;
    kivis_buf enc;
    fz_record rec, back;
    uint64_t rng;
} value_run;

static void value_run_open(value_run *vr)
{
    kt_alloc_init(&vr->alloc);
    kivis__buf_init(&vr->enc, &vr->alloc.iface);
    vr->rng = test_seed() ^ 0xBADC0DE;
}

static void value_run_close(value_run *vr)
{
    kivis__buf_free(&vr->enc);
    assert_int_equal(vr->alloc.live_blocks, 0);
}

/* A random record, encoded into vr->enc. */
static void value_make(value_run *vr, const kivis_struct_desc *sd,
                       uint32_t version)
{
    memset(&vr->rec, 0, sizeof vr->rec);
    gen_struct(sd, &vr->rng, &vr->rec, &vr->alloc.iface);
    vr->enc.len = 0;
    assert_int_equal(kivis__value_encode(&vr->enc, sd, version, &vr->rec), KIVIS_OK);
}

static void value_drop(value_run *vr)
{
    kivis__struct_free(&fz_record_desc, &vr->rec, &vr->alloc.iface);
}

static int value_decode(value_run *vr, const void *p, size_t n, uint32_t *ver)
{
    return kivis__value_decode(kivis_slice_make(p, n), &fz_record_desc,
                               &vr->back, &vr->alloc.iface, ver);
}

static void test_value_roundtrip(void **state)
{
    (void)state;
    value_run vr;
    value_run_open(&vr);
    for (unsigned long i = 0; i < PAIRS; i++) {
        uint32_t version = (uint32_t)gen_int_bits(&vr.rng, 4), got;
        value_make(&vr, &fz_record_desc, version);
        assert_int_equal(value_decode(&vr, vr.enc.data, vr.enc.len, &got), KIVIS_OK);
        assert_int_equal(got, version);
        assert_true(kivis__struct_equal(&fz_record_desc, &vr.rec, &vr.back));
        kivis__struct_free(&fz_record_desc, &vr.back, &vr.alloc.iface);
        value_drop(&vr);
    }
    value_run_close(&vr);
}

static void test_value_scalars_roundtrip(void **state)
{
    (void)state;
    static const kivis_struct_desc *const descs[] = {
        &u8_desc, &u16_desc, &u32_desc, &u64_desc, &i8_desc, &i16_desc,
        &i32_desc, &i64_desc, &f32_desc, &f64_desc, &boolean_desc,
        &enum32_desc, &enum8_desc, &string_desc, &chars_desc, &bytes_desc,
        &mixed_desc, &two_strings_desc, &arrays_desc, &nested_desc};
    kt_alloc al;
    kt_alloc_init(&al);
    kivis_buf b;
    kivis__buf_init(&b, &al.iface);
    uint64_t rng = test_seed();
    for (size_t k = 0; k < sizeof descs / sizeof descs[0]; k++) {
        const kivis_struct_desc *sd = descs[k];
        void *x = calloc(1, sd->size), *y = calloc(1, sd->size);
        for (unsigned long i = 0; i < PAIRS / 10; i++) {
            gen_struct(sd, &rng, x, &al.iface);
            b.len = 0;
            assert_int_equal(kivis__value_encode(&b, sd, 1, x), KIVIS_OK);
            assert_int_equal(kivis__value_decode(buf_slice(&b), sd, y, &al.iface,
                                                 NULL), KIVIS_OK);
            assert_true(kivis__struct_equal(sd, x, y));
            kivis__struct_free(sd, x, &al.iface);
            kivis__struct_free(sd, y, &al.iface);
        }
        free(x);
        free(y);
    }
    kivis__buf_free(&b);
    assert_int_equal(al.live_blocks, 0);
}

static void test_value_truncated(void **state)
{
    (void)state;
    value_run vr;
    value_run_open(&vr);
    for (int i = 0; i < 300; i++) {
        value_make(&vr, &fz_record_desc, 3);
        for (size_t n = 0; n < vr.enc.len; n++) {
            assert_int_equal(value_decode(&vr, vr.enc.data, n, NULL), KIVIS_ECORRUPT);
            assert_true(all_zero(&vr.back, sizeof vr.back));
        }
        /* one byte too many */
        assert_int_equal(kivis__buf_byte(&vr.enc, 0), KIVIS_OK);
        assert_int_equal(value_decode(&vr, vr.enc.data, vr.enc.len, NULL), KIVIS_ECORRUPT);
        value_drop(&vr);
    }
    assert_int_equal(value_decode(&vr, NULL, 0, NULL), KIVIS_ECORRUPT);
    value_run_close(&vr);
}

/* Whatever a corrupted value decodes to must be canonical. */
static void check_decoded_canonical(value_run *vr, uint32_t version)
{
    kivis_buf again;
    fz_record third;
    kivis__buf_init(&again, &vr->alloc.iface);
    assert_int_equal(kivis__value_encode(&again, &fz_record_desc, version, &vr->back),
                     KIVIS_OK);
    assert_int_equal(kivis__value_decode(buf_slice(&again), &fz_record_desc,
                                         &third, &vr->alloc.iface, NULL), KIVIS_OK);
    assert_true(kivis__struct_equal(&fz_record_desc, &vr->back, &third));
    kivis__struct_free(&fz_record_desc, &third, &vr->alloc.iface);
    kivis__buf_free(&again);
}

static void test_value_corrupted(void **state)
{
    (void)state;
    value_run vr;
    value_run_open(&vr);
    unsigned long ok = 0;
    for (unsigned long i = 0; i < PAIRS / 2; i++) {
        value_make(&vr, &fz_record_desc, 9);
        for (uint64_t k = 1 + rnd(&vr.rng, 3); k > 0; k--) {
            size_t at = rnd(&vr.rng, vr.enc.len);
            vr.enc.data[at] = rnd(&vr.rng, 2) ? (uint8_t)kt_rand(&vr.rng)
                                              : vr.enc.data[at] ^ (uint8_t)(1u << rnd(&vr.rng, 8));
        }
        uint32_t version;
        int rc = value_decode(&vr, vr.enc.data, vr.enc.len, &version);
        if (rc == KIVIS_OK) {
            ok++;
            check_decoded_canonical(&vr, version);
            kivis__struct_free(&fz_record_desc, &vr.back, &vr.alloc.iface);
        } else {
            assert_int_equal(rc, KIVIS_ECORRUPT);
            assert_true(all_zero(&vr.back, sizeof vr.back));
        }
        value_drop(&vr);
    }
    assert_true(ok > 0); /* some corruptions (a float's bits) still decode */
    value_run_close(&vr);
}

/* A value written before fields were appended to the schema. */
static void test_value_fewer_fields(void **state)
{
    (void)state;
    value_run vr;
    value_run_open(&vr);
    for (uint32_t k = 0; k <= fz_record_desc.nfields; k++) {
        kivis_struct_desc old = fz_record_desc;
        old.nfields = k;
        for (int i = 0; i < 200; i++) {
            value_make(&vr, &old, 2);
            assert_int_equal(value_decode(&vr, vr.enc.data, vr.enc.len, NULL), KIVIS_OK);
            assert_true(kivis__struct_equal(&old, &vr.rec, &vr.back));
            for (uint32_t f = k; f < fz_record_desc.nfields; f++) {
                const kivis_field *fd = &fz_record_desc.fields[f];
                assert_true(all_zero((uint8_t *)&vr.back + fd->offset,
                                     fd->size * (fd->count ? fd->count : 1)));
            }
            kivis__struct_free(&fz_record_desc, &vr.back, &vr.alloc.iface);
            value_drop(&vr);
        }
    }
    value_run_close(&vr);
}

/* Decode `in` as a value of sd and expect rc (output zeroed on failure). */
static void expect_value_get(const kivis_struct_desc *sd, const void *in,
                             size_t n, int rc)
{
    kt_alloc al;
    kt_alloc_init(&al);
    fz_record out; /* large enough for every test layout */
    memset(&out, 0x5A, sizeof out);
    assert_true(sd->size <= sizeof out);
    uint32_t ver = 77;
    assert_int_equal(kivis__value_decode(kivis_slice_make(in, n), sd, &out,
                                         &al.iface, &ver), rc);
    if (rc) {
        assert_true(all_zero(&out, sd->size));
        assert_int_equal(ver, 0);
    } else {
        kivis__struct_free(sd, &out, &al.iface);
    }
    assert_int_equal(al.live_blocks, 0);
}

static void expect_value_put(const kivis_struct_desc *sd, const void *obj,
                             int rc)
{
    kivis_buf b;
    kivis__buf_init(&b, NULL);
    assert_int_equal(kivis__buf_byte(&b, 0xAA), KIVIS_OK);
    assert_int_equal(kivis__value_encode(&b, sd, 1, obj), rc);
    assert_int_equal(b.len, 1);
    kivis__buf_free(&b);
}

#define V(s) s, sizeof s - 1

static void test_value_errors(void **state)
{
    (void)state;
    check_encode_errors(expect_value_put);
    /* header: format, version beyond 32 bits, field count, trailing bytes */
    expect_value_get(&u8_desc, V("\x01\x00\x01\x05"), KIVIS_OK);
    expect_value_get(&u8_desc, V("\x02\x00\x01\x05"), KIVIS_ECORRUPT);
    expect_value_get(&u8_desc, V("\x01\x80\x80\x80\x80\x10\x01\x05"), KIVIS_ECORRUPT);
    expect_value_get(&u8_desc, V("\x01\xFF\xFF\xFF\xFF\x0F\x01\x05"), KIVIS_OK);
    expect_value_get(&u8_desc, V("\x01\x00\x02\x05\x05"), KIVIS_ECORRUPT);
    expect_value_get(&u8_desc, V("\x01\x00\x01\x05\x05"), KIVIS_ECORRUPT);
    expect_value_get(&u8_desc, V("\x01\x00\x00"), KIVIS_OK);
    expect_value_get(&u8_desc, V("\x01\x00\x80\x00"), KIVIS_ECORRUPT);
    /* varints: overlong, past 64 bits, out of the field's range */
    expect_value_get(&u16_desc, V("\x01\x00\x01\xFF\xFF\x03"), KIVIS_OK);
    expect_value_get(&u16_desc, V("\x01\x00\x01\x80\x80\x04"), KIVIS_ECORRUPT);
    expect_value_get(&u16_desc, V("\x01\x00\x01\x85\x00"), KIVIS_ECORRUPT);
    expect_value_get(&u64_desc, V("\x01\x00\x01\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\x01"),
                     KIVIS_OK);
    expect_value_get(&u64_desc, V("\x01\x00\x01\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\x02"),
                     KIVIS_ECORRUPT);
    expect_value_get(&i16_desc, V("\x01\x00\x01\xFF\xFF\x03"), KIVIS_OK);  /* -32768 */
    expect_value_get(&i16_desc, V("\x01\x00\x01\x80\x80\x04"), KIVIS_ECORRUPT);
    expect_value_get(&u32_desc, V("\x01\x00\x01\x80\x80\x80\x80\x10"), KIVIS_ECORRUPT);
    /* bool, enums */
    expect_value_get(&boolean_desc, V("\x01\x00\x01\x02"), KIVIS_ECORRUPT);
    expect_value_get(&enum32_desc, V("\x01\x00\x01\x06"), KIVIS_ECORRUPT); /* 3 */
    expect_value_get(&enum32_desc, V("\x01\x00\x01\x05"), KIVIS_OK);       /* -3 */
    expect_value_get(&enum8_desc, V("\x01\x00\x01\x80\x02"), KIVIS_ECORRUPT); /* 128 */
    /* strings: NUL inside, bad UTF-8, length past the end, char[8] too long */
    expect_value_get(&string_desc, V("\x01\x00\x01\x03" "a\0b"), KIVIS_ECORRUPT);
    expect_value_get(&string_desc, V("\x01\x00\x01\x02\xC0\xAF"), KIVIS_ECORRUPT);
    expect_value_get(&string_desc, V("\x01\x00\x01\x05" "abc"), KIVIS_ECORRUPT);
    expect_value_get(&string_desc, V("\x01\x00\x01\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\x01"),
                     KIVIS_ECORRUPT);
    expect_value_get(&chars_desc, V("\x01\x00\x01\x07" "1234567"), KIVIS_OK);
    expect_value_get(&chars_desc, V("\x01\x00\x01\x08" "12345678"), KIVIS_ECORRUPT);
    expect_value_get(&chars_desc, V("\x01\x00\x01\x02" "a\0"), KIVIS_ECORRUPT);
    expect_value_get(&bytes_desc, V("\x01\x00\x01\x02" "\0\0"), KIVIS_OK);
    /* a failure in a later field frees the earlier ones */
    expect_value_get(&fz_named_desc, V("\x01\x00\x02\x02" "ab" "\x80"), KIVIS_ECORRUPT);
}

static void test_value_empty_members(void **state)
{
    (void)state;
    kt_alloc al;
    kt_alloc_init(&al);
    fz_blobs in = {{NULL, 0}, {(uint8_t *)"x", 1}, 9}, out;
    fz_named nin = {NULL, 5}, nout;
    kivis_buf b;
    kivis__buf_init(&b, NULL);
    assert_int_equal(kivis__value_encode(&b, &fz_blobs_desc, 0, &in), KIVIS_OK);
    assert_int_equal(kivis__value_decode(buf_slice(&b), &fz_blobs_desc, &out,
                                         &al.iface, NULL), KIVIS_OK);
    assert_null(out.a.data); /* an empty blob allocates nothing */
    assert_int_equal(al.live_blocks, 1);
    kivis__struct_free(&fz_blobs_desc, &out, &al.iface);
    b.len = 0;
    assert_int_equal(kivis__value_encode(&b, &fz_named_desc, 0, &nin), KIVIS_OK);
    assert_int_equal(kivis__value_decode(buf_slice(&b), &fz_named_desc, &nout,
                                         &al.iface, NULL), KIVIS_OK);
    assert_non_null(nout.name); /* a string always decodes to a C string */
    assert_string_equal(nout.name, "");
    kivis__struct_free(&fz_named_desc, &nout, &al.iface);
    assert_int_equal(al.live_blocks, 0);
    kivis__buf_free(&b);
}

/* ---- out of memory --------------------------------------------------------- */

typedef int (*decode_fn)(const kivis_buf *in, void *out, kt_alloc *al);

static int decode_value(const kivis_buf *in, void *out, kt_alloc *al)
{
    return kivis__value_decode(buf_slice(in), &fz_record_desc, out, &al->iface, NULL);
}

static int decode_key(const kivis_buf *in, void *out, kt_alloc *al)
{
    kivis_reader r = kivis__reader(buf_slice(in));
    return kivis__key_get_struct(&r, &fz_record_desc, out, &al->iface);
}

/* Fail each allocation in turn: ENOMEM, nothing leaked, output zeroed;
 * then the first run with no failure succeeds. */
static void oom_loop(decode_fn decode, const kivis_buf *in, kt_alloc *al)
{
    fz_record out;
    long base = al->live_blocks;
    for (unsigned long n = 1;; n++) {
        kt_alloc_fail_at(al, n);
        int rc = decode(in, &out, al);
        if (al->failures == 0) {
            assert_int_equal(rc, KIVIS_OK);
            kivis__struct_free(&fz_record_desc, &out, &al->iface);
            break;
        }
        assert_int_equal(rc, KIVIS_ENOMEM);
        assert_int_equal(al->live_blocks, base);
        assert_true(all_zero(&out, sizeof out));
        al->failures = 0;
    }
    kt_alloc_fail_at(al, 0);
}

static void test_oom(void **state)
{
    (void)state;
    value_run vr;
    value_run_open(&vr);
    kivis_buf key;
    kivis__buf_init(&key, &vr.alloc.iface);
    for (int i = 0; i < 200; i++) {
        value_make(&vr, &fz_record_desc, 1);
        key.len = 0;
        assert_int_equal(kivis__key_put_struct(&key, &fz_record_desc, &vr.rec), KIVIS_OK);
        oom_loop(decode_value, &vr.enc, &vr.alloc);
        oom_loop(decode_key, &key, &vr.alloc);
        value_drop(&vr);
    }
    /* encoders: a buffer that cannot grow */
    value_make(&vr, &fz_record_desc, 1);
    kivis_buf small;
    kivis__buf_init(&small, &vr.alloc.iface);
    kt_alloc_fail_at(&vr.alloc, 1);
    assert_int_equal(kivis__value_encode(&small, &fz_record_desc, 1, &vr.rec), KIVIS_ENOMEM);
    kt_alloc_fail_at(&vr.alloc, 1);
    assert_int_equal(kivis__key_put_struct(&small, &fz_record_desc, &vr.rec), KIVIS_ENOMEM);
    assert_int_equal(small.len, 0);
    kt_alloc_fail_at(&vr.alloc, 0);
    value_drop(&vr);
    kivis__buf_free(&key);
    value_run_close(&vr);
}

/* ---- struct helpers -------------------------------------------------------- */

static void test_struct_equal_and_free(void **state)
{
    (void)state;
    kt_alloc al;
    kt_alloc_init(&al);
    fz_named a = {NULL, 1}, b = {"", 1};
    assert_true(kivis__struct_equal(&fz_named_desc, &a, &b)); /* NULL == "" */
    b.n = 2;
    assert_false(kivis__struct_equal(&fz_named_desc, &a, &b));
    slot x = {0}, y = {0};
    x.d = 0.0;
    y.d = -0.0;
    assert_false(kivis__struct_equal(&f64_desc, &x, &y)); /* floats by bits */
    memcpy(x.c, "ab\0zz", 5);
    memcpy(y.c, "ab\0qq", 5);
    assert_true(kivis__struct_equal(&chars_desc, &x, &y)); /* junk after NUL */
    fz_record r;
    memset(&r, 0, sizeof r);
    uint64_t rng = 1;
    gen_struct(&fz_record_desc, &rng, &r, &al.iface);
    kivis__struct_free(&fz_record_desc, &r, &al.iface);
    assert_true(all_zero(&r, sizeof r));
    assert_int_equal(al.live_blocks, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_order_u8),
        cmocka_unit_test(test_key_order_u16),
        cmocka_unit_test(test_key_order_u32),
        cmocka_unit_test(test_key_order_u64),
        cmocka_unit_test(test_key_order_i8),
        cmocka_unit_test(test_key_order_i16),
        cmocka_unit_test(test_key_order_i32),
        cmocka_unit_test(test_key_order_i64),
        cmocka_unit_test(test_key_order_f32),
        cmocka_unit_test(test_key_order_f64),
        cmocka_unit_test(test_key_order_boolean),
        cmocka_unit_test(test_key_order_enum32),
        cmocka_unit_test(test_key_order_enum8),
        cmocka_unit_test(test_key_order_string),
        cmocka_unit_test(test_key_order_chars),
        cmocka_unit_test(test_key_order_bytes),
        cmocka_unit_test(test_key_order_mixed),
        cmocka_unit_test(test_key_order_two_strings),
        cmocka_unit_test(test_key_order_named),
        cmocka_unit_test(test_key_order_blobs),
        cmocka_unit_test(test_key_order_arrays),
        cmocka_unit_test(test_key_order_nested),
        cmocka_unit_test(test_key_order_record),
        cmocka_unit_test(test_key_primitives_match_fields),
        cmocka_unit_test(test_key_primitive_errors),
        cmocka_unit_test(test_key_golden),
        cmocka_unit_test(test_value_golden),
        cmocka_unit_test(test_key_errors),
        cmocka_unit_test(test_key_decode_errors),
        cmocka_unit_test(test_key_bytes_api),
        cmocka_unit_test(test_ids),
        cmocka_unit_test(test_varints),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_utf8_words),
        cmocka_unit_test(test_text_copy),
        cmocka_unit_test(test_buffers),
        cmocka_unit_test(test_value_roundtrip),
        cmocka_unit_test(test_value_scalars_roundtrip),
        cmocka_unit_test(test_value_truncated),
        cmocka_unit_test(test_value_corrupted),
        cmocka_unit_test(test_value_fewer_fields),
        cmocka_unit_test(test_value_errors),
        cmocka_unit_test(test_value_empty_members),
        cmocka_unit_test(test_oom),
        cmocka_unit_test(test_struct_equal_and_free),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
