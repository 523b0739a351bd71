/* Order-preserving key encoding (docs/encoding.md, "Keys"). */
#include "codec_int.h"

static bool width_valid(unsigned w)
{
    return w == 1 || w == 2 || w == 4 || w == 8;
}

static uint64_t sign_bit(unsigned w)
{
    return UINT64_C(1) << (8 * w - 1);
}

/* ---- primitives -------------------------------------------------------- */

static int put_be(kivis_buf *b, uint64_t v, unsigned w)
{
    if (!width_valid(w))
        return KIVIS_EINVAL;
    int rc = kivis__room(b, w);
    if (rc)
        return rc;
    /* the value's w bytes first in memory; a constant size per width is a
     * register store, not a memcpy call */
    uint64_t be = kivis__to_be64(v << (64 - 8 * w));
    uint8_t *o = b->data + b->len;
    switch (w) {
    case 1: memcpy(o, &be, 1); break;
    case 2: memcpy(o, &be, 2); break;
    case 4: memcpy(o, &be, 4); break;
    default: memcpy(o, &be, 8); break;
    }
    b->len += w;
    return KIVIS_OK;
}

/* The big-endian integer of valid width w at p. */
static inline uint64_t load_be(const uint8_t *p, unsigned w)
{
    uint64_t be = 0;
    switch (w) {
    case 1: memcpy(&be, p, 1); break;
    case 2: memcpy(&be, p, 2); break;
    case 4: memcpy(&be, p, 4); break;
    default: memcpy(&be, p, 8); break;
    }
    return kivis__to_be64(be) >> (64 - 8 * w);
}

static int get_be(kivis_reader *r, unsigned w, uint64_t *v)
{
    const uint8_t *p;
    *v = 0;
    if (!width_valid(w) || kivis__take(r, w, &p))
        return KIVIS_ECORRUPT;
    *v = load_be(p, w);
    return KIVIS_OK;
}

int kivis__key_put_uint(kivis_buf *b, uint64_t v, unsigned width)
{
    if (!width_valid(width))
        return KIVIS_EINVAL;
    if (!kivis__uint_fits(v, width))
        return KIVIS_ERANGE;
    return put_be(b, v, width);
}

/* Flipping the sign bit maps two's complement onto offset binary, whose
 * byte order is the numeric order. */
int kivis__key_put_int(kivis_buf *b, int64_t v, unsigned width)
{
    if (!width_valid(width))
        return KIVIS_EINVAL;
    if (!kivis__int_fits(v, width))
        return KIVIS_ERANGE;
    return put_be(b, (uint64_t)v ^ sign_bit(width), width);
}

int kivis__key_get_uint(kivis_reader *r, unsigned width, uint64_t *v)
{
    if (!width_valid(width)) {
        *v = 0;
        return KIVIS_EINVAL;
    }
    return get_be(r, width, v);
}

int kivis__key_get_int(kivis_reader *r, unsigned width, int64_t *v)
{
    uint64_t u;
    *v = 0;
    if (!width_valid(width))
        return KIVIS_EINVAL;
    if (get_be(r, width, &u))
        return KIVIS_ECORRUPT;
    u ^= sign_bit(width);
    if (width < 8 && (u & sign_bit(width))) /* sign-extend */
        u |= ~UINT64_C(0) << (8 * width);
    *v = (int64_t)u;
    return KIVIS_OK;
}

/* IEEE total order: negatives reverse (flip every bit), non-negatives
 * move above them (flip the sign bit). */
static uint64_t float_to_key(uint64_t bits, unsigned w)
{
    return bits & sign_bit(w) ? ~bits : bits ^ sign_bit(w);
}

static uint64_t float_from_key(uint64_t k, unsigned w)
{
    return k & sign_bit(w) ? k ^ sign_bit(w) : ~k;
}

int kivis__key_put_f32(kivis_buf *b, float v)
{
    uint32_t bits;
    memcpy(&bits, &v, 4);
    return put_be(b, float_to_key(bits, 4), 4);
}

int kivis__key_put_f64(kivis_buf *b, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, 8);
    return put_be(b, float_to_key(bits, 8), 8);
}

int kivis__key_get_f32(kivis_reader *r, float *v)
{
    uint64_t k;
    *v = 0;
    if (get_be(r, 4, &k))
        return KIVIS_ECORRUPT;
    uint32_t bits = (uint32_t)float_from_key(k, 4);
    memcpy(v, &bits, 4);
    return KIVIS_OK;
}

int kivis__key_get_f64(kivis_reader *r, double *v)
{
    uint64_t k;
    *v = 0;
    if (get_be(r, 8, &k))
        return KIVIS_ECORRUPT;
    uint64_t bits = float_from_key(k, 8);
    memcpy(v, &bits, 8);
    return KIVIS_OK;
}

static bool needs_escape(uint8_t c)
{
    return c <= KIVIS_KEY_ESC;
}

int kivis__key_put_bytes(kivis_buf *b, const void *p, size_t n)
{
    const uint8_t *s = p;
    size_t esc = 0;
    for (size_t i = 0; i < n; i++)
        esc += needs_escape(s[i]);
    if (n > SIZE_MAX / 2 - 1)
        return KIVIS_ENOMEM;
    int rc = kivis__room(b, n + esc + 1);
    if (rc)
        return rc;
    uint8_t *o = b->data + b->len;
    if (esc == 0) {
        if (n)
            memcpy(o, s, n);
        o += n;
    } else {
        for (size_t i = 0; i < n; i++) {
            if (needs_escape(s[i]))
                *o++ = KIVIS_KEY_ESC;
            *o++ = needs_escape(s[i]) ? (uint8_t)(s[i] + 1) : s[i];
        }
    }
    *o++ = KIVIS_KEY_END;
    b->len = (size_t)(o - b->data);
    return KIVIS_OK;
}

/* Measure the escaped item at r->p: `body` bytes before its terminator,
 * `n` bytes once unescaped.  Only the two defined escapes are accepted. */
static int scan_escaped(const kivis_reader *r, size_t *body, size_t *n)
{
    size_t left = kivis__reader_left(r);
    const uint8_t *z = left ? memchr(r->p, KIVIS_KEY_END, left) : NULL;
    if (!z)
        return KIVIS_ECORRUPT;
    size_t len = (size_t)(z - r->p), esc = 0;
    const uint8_t *e = r->p;
    while ((e = memchr(e, KIVIS_KEY_ESC, (size_t)(z - e))) != NULL) {
        if (e[1] != 0x01 && e[1] != 0x02) /* e[1] is at most the terminator */
            return KIVIS_ECORRUPT;
        esc++;
        e += 2;
        if (e >= z)
            break;
    }
    *body = len;
    *n = len - esc;
    return KIVIS_OK;
}

static void unescape(const uint8_t *s, size_t body, size_t n, uint8_t *out)
{
    if (body == n) {
        if (n)
            memcpy(out, s, n);
        return;
    }
    for (const uint8_t *end = s + body; s < end; s++)
        *out++ = *s == KIVIS_KEY_ESC ? (uint8_t)(*++s - 1) : *s;
}

int kivis__key_get_bytes(kivis_reader *r, const kivis_allocator *alloc,
                         bool want_nul, uint8_t **out, size_t *n)
{
    size_t body, len;
    *out = NULL;
    *n = 0;
    if (scan_escaped(r, &body, &len))
        return KIVIS_ECORRUPT;
    uint8_t *d = NULL;
    if (len || want_nul) {
        const kivis_allocator *a = kivis__alloc_or_default(alloc);
        d = a->malloc(a->ctx, len + 1);
        if (!d)
            return KIVIS_ENOMEM;
        unescape(r->p, body, len, d);
        d[len] = '\0';
    }
    r->p += body + 1;
    *out = d;
    *n = len;
    return KIVIS_OK;
}

int kivis__key_skip_bytes(kivis_reader *r)
{
    size_t body, len;
    if (scan_escaped(r, &body, &len))
        return KIVIS_ECORRUPT;
    r->p += body + 1;
    return KIVIS_OK;
}

/* ---- one element of a field -------------------------------------------- */

static int key_put_fields(kivis_buf *b, const kivis_struct_desc *sd,
                          const void *obj);

static int put_elem(kivis_buf *b, const kivis_field *f, const uint8_t *p)
{
    unsigned w = kivis__kind_width(f->kind);
    int64_t e;
    float f32;
    double f64;
    const void *run;
    size_t n;
    int rc;
    switch (f->kind) {
    case KIVIS_U8: case KIVIS_U16: case KIVIS_U32: case KIVIS_U64:
        return put_be(b, kivis__load_uint(p, w), w);
    case KIVIS_I8: case KIVIS_I16: case KIVIS_I32: case KIVIS_I64:
        return put_be(b, (uint64_t)kivis__load_int(p, w) ^ sign_bit(w), w);
    case KIVIS_BOOL:
        return *p > 1 ? KIVIS_ERANGE : kivis__buf_byte(b, *p);
    case KIVIS_F32:
        memcpy(&f32, p, 4);
        return kivis__key_put_f32(b, f32);
    case KIVIS_F64:
        memcpy(&f64, p, 8);
        return kivis__key_put_f64(b, f64);
    case KIVIS_ENUM:
        rc = kivis__enum_checked(f, p, &e);
        return rc ? rc : put_be(b, (uint64_t)e ^ sign_bit(4), 4);
    case KIVIS_STRING: case KIVIS_CHARS: case KIVIS_BYTES:
        rc = kivis__run_of(f, p, &run, &n);
        return rc ? rc : kivis__key_put_bytes(b, run, n);
    case KIVIS_STRUCT:
        return f->type ? key_put_fields(b, f->type, p) : KIVIS_EINVAL;
    default:
        return KIVIS_EINVAL;
    }
}

static int key_put_field_at(kivis_buf *b, const kivis_field *f,
                            const void *obj)
{
    const uint8_t *p = kivis__field_cptr(f, obj);
    for (uint32_t i = 0, n = kivis__field_elems(f); i < n; i++, p += f->size) {
        int rc = put_elem(b, f, p);
        if (rc)
            return rc;
    }
    return KIVIS_OK;
}

static int key_put_fields(kivis_buf *b, const kivis_struct_desc *sd,
                          const void *obj)
{
    for (uint32_t i = 0; i < sd->nfields; i++) {
        int rc = key_put_field_at(b, &sd->fields[i], obj);
        if (rc)
            return rc;
    }
    return KIVIS_OK;
}

/* A failed encode leaves b as it was, so callers may reuse the buffer. */
int kivis__key_put_field(kivis_buf *b, const kivis_field *f, const void *obj)
{
    size_t mark = b->len;
    int rc = key_put_field_at(b, f, obj);
    if (rc)
        b->len = mark;
    return rc;
}

int kivis__key_put_index(kivis_buf *b, const kivis_struct_desc *sd, uint32_t i,
                         const void *obj)
{
    const kivis_field *f = &sd->fields[i];
    if (!(f->flags & KIVIS_FIELD_OPTIONAL))
        return kivis__key_put_field(b, f, obj);
    int present = kivis__field_presence(sd, i, obj);
    if (present < 0)
        return present;
    int rc = kivis__buf_byte(b, present ? KIVIS_TAG_PRESENT : KIVIS_TAG_ABSENT);
    if (!rc && present) {
        rc = kivis__key_put_field(b, f, obj);
        if (rc)
            b->len--; /* the tag */
    }
    return rc;
}

/* An optional field's index tag: *present false when absent. */
static int get_index_tag(kivis_reader *r, const kivis_field *f, bool *present)
{
    const uint8_t *t;
    *present = true;
    if (!(f->flags & KIVIS_FIELD_OPTIONAL))
        return KIVIS_OK;
    if (kivis__take(r, 1, &t) || *t > KIVIS_TAG_PRESENT)
        return KIVIS_ECORRUPT;
    *present = *t == KIVIS_TAG_PRESENT;
    return KIVIS_OK;
}

/* The commonest key is one unsigned integer (every auto-increment id):
 * its big-endian bytes go out without the walk over fields and kinds. */
static bool single_uint(const kivis_struct_desc *sd)
{
    if (sd->nfields != 1 || kivis__field_elems(&sd->fields[0]) != 1)
        return false;
    switch (sd->fields[0].kind) {
    case KIVIS_U8: case KIVIS_U16: case KIVIS_U32: case KIVIS_U64:
        return true;
    default:
        return false;
    }
}

int kivis__key_put_struct(kivis_buf *b, const kivis_struct_desc *sd,
                          const void *obj)
{
    if (single_uint(sd)) { /* put_be leaves b as it was when it fails */
        const kivis_field *f = &sd->fields[0];
        unsigned w = kivis__kind_width(f->kind);
        return put_be(b, kivis__load_uint(kivis__field_cptr(f, obj), w), w);
    }
    size_t mark = b->len;
    int rc = key_put_fields(b, sd, obj);
    if (rc)
        b->len = mark;
    return rc;
}

/* ---- decoding into zeroed storage ---------------------------------------
 * Each step writes only into storage the caller zeroed, so a failure can
 * always be undone by freeing the whole field or struct. */

static int key_get_fields(kivis_reader *r, const kivis_struct_desc *sd,
                          void *obj, const kivis_allocator *a);

static int get_string(kivis_reader *r, uint8_t *p, const kivis_allocator *a)
{
    uint8_t *s;
    size_t n;
    int rc = kivis__key_get_bytes(r, a, true, &s, &n);
    if (rc)
        return rc;
    if (!kivis__text_decodable(s, n)) {
        a->free(a->ctx, s);
        return KIVIS_ECORRUPT;
    }
    memcpy(p, &s, sizeof s);
    return KIVIS_OK;
}

static int get_chars(kivis_reader *r, const kivis_field *f, uint8_t *p)
{
    size_t body, n;
    if (scan_escaped(r, &body, &n) || n >= f->size)
        return KIVIS_ECORRUPT;
    unescape(r->p, body, n, p);
    p[n] = '\0';
    if (!kivis__text_decodable(p, n))
        return KIVIS_ECORRUPT;
    r->p += body + 1;
    return KIVIS_OK;
}

static int get_bytes(kivis_reader *r, uint8_t *p, const kivis_allocator *a)
{
    kivis_bytes v;
    int rc = kivis__key_get_bytes(r, a, false, &v.data, &v.len);
    if (!rc)
        memcpy(p, &v, sizeof v);
    return rc;
}

static int get_enum(kivis_reader *r, const kivis_field *f, uint8_t *p)
{
    int64_t v;
    if (f->size != 1 && f->size != 2 && f->size != 4)
        return KIVIS_EINVAL;
    if (kivis__key_get_int(r, 4, &v) || !kivis__enum_valid(f, v))
        return KIVIS_ECORRUPT;
    kivis__store_int(p, (unsigned)f->size, v);
    return KIVIS_OK;
}

static int get_elem(kivis_reader *r, const kivis_field *f, uint8_t *p,
                    const kivis_allocator *a)
{
    unsigned w = kivis__kind_width(f->kind);
    uint64_t u;
    const uint8_t *c;
    switch (f->kind) {
    case KIVIS_U8: case KIVIS_U16: case KIVIS_U32: case KIVIS_U64:
    case KIVIS_I8: case KIVIS_I16: case KIVIS_I32: case KIVIS_I64:
        if (get_be(r, w, &u))
            return KIVIS_ECORRUPT;
        /* the low w bytes are the stored value in either signedness */
        kivis__store_uint(p, w, kivis__kind_signed(f->kind) ? u ^ sign_bit(w) : u);
        return KIVIS_OK;
    case KIVIS_BOOL:
        if (kivis__take(r, 1, &c) || *c > 1)
            return KIVIS_ECORRUPT;
        *p = *c;
        return KIVIS_OK;
    case KIVIS_F32: case KIVIS_F64:
        if (get_be(r, w, &u))
            return KIVIS_ECORRUPT;
        kivis__store_uint(p, w, float_from_key(u, w));
        return KIVIS_OK;
    case KIVIS_ENUM:
        return get_enum(r, f, p);
    case KIVIS_STRING:
        return get_string(r, p, a);
    case KIVIS_CHARS:
        return get_chars(r, f, p);
    case KIVIS_BYTES:
        return get_bytes(r, p, a);
    case KIVIS_STRUCT:
        return f->type ? key_get_fields(r, f->type, p, a) : KIVIS_EINVAL;
    default:
        return KIVIS_EINVAL;
    }
}

static int key_get_field_at(kivis_reader *r, const kivis_field *f, void *obj,
                            const kivis_allocator *a)
{
    uint8_t *p = kivis__field_ptr(f, obj);
    for (uint32_t i = 0, n = kivis__field_elems(f); i < n; i++, p += f->size) {
        int rc = get_elem(r, f, p, a);
        if (rc)
            return rc;
    }
    return KIVIS_OK;
}

static int key_get_fields(kivis_reader *r, const kivis_struct_desc *sd,
                          void *obj, const kivis_allocator *a)
{
    for (uint32_t i = 0; i < sd->nfields; i++) {
        int rc = key_get_field_at(r, &sd->fields[i], obj, a);
        if (rc)
            return rc;
    }
    return KIVIS_OK;
}

/* On failure the reader is left where it was, as well as the output. */
int kivis__key_get_field(kivis_reader *r, const kivis_field *f, void *obj,
                         const kivis_allocator *alloc)
{
    const kivis_allocator *a = kivis__alloc_or_default(alloc);
    const uint8_t *start = r->p;
    memset(kivis__field_ptr(f, obj), 0, kivis__field_bytes(f));
    bool present;
    int rc = get_index_tag(r, f, &present);
    if (!rc && present)
        rc = key_get_field_at(r, f, obj, a);
    if (rc) {
        kivis__field_free(f, obj, a);
        r->p = start;
    }
    return rc;
}

int kivis__key_get_struct(kivis_reader *r, const kivis_struct_desc *sd,
                          void *obj, const kivis_allocator *alloc)
{
    const kivis_allocator *a = kivis__alloc_or_default(alloc);
    const uint8_t *start = r->p;
    if (single_uint(sd)) { /* get_be leaves r as it was when it fails */
        const kivis_field *f = &sd->fields[0];
        unsigned w = kivis__kind_width(f->kind);
        uint64_t u;
        int rc = get_be(r, w, &u);
        if (rc || sd->size != w) /* a struct the one field fills: no zeroing */
            memset(obj, 0, sd->size);
        if (!rc)
            kivis__store_uint(kivis__field_ptr(f, obj), w, u);
        return rc;
    }
    memset(obj, 0, sd->size);
    int rc = key_get_fields(r, sd, obj, a);
    if (rc) {
        kivis__struct_free(sd, obj, a);
        r->p = start;
    }
    return rc;
}

unsigned kivis__key_uint_width(const kivis_struct_desc *sd)
{
    if (!single_uint(sd))
        return 0;
    unsigned w = kivis__kind_width(sd->fields[0].kind);
    return sd->size == w ? w : 0;
}

int kivis__key_put_whole(kivis_buf *b, const kivis_struct_desc *sd,
                         unsigned uint_width, const void *obj)
{
    if (uint_width) /* the field is the struct */
        return put_be(b, kivis__load_uint(obj, uint_width), uint_width);
    return kivis__key_put_struct(b, sd, obj);
}

int kivis__key_get_whole(kivis_slice in, const kivis_struct_desc *sd,
                         unsigned uint_width, void *obj,
                         const kivis_allocator *alloc)
{
    if (uint_width && in.len == uint_width) { /* the field is the struct */
        kivis__store_uint(obj, uint_width, load_be(in.data, uint_width));
        return KIVIS_OK;
    }
    kivis_reader r = kivis__reader(in);
    int rc = kivis__key_get_struct(&r, sd, obj, alloc);
    if (!rc && r.p != r.end) {
        kivis__struct_free(sd, obj, alloc); /* fields decoded so far */
        rc = KIVIS_ECORRUPT;
    }
    return rc;
}

/* ---- skipping ---------------------------------------------------------- */

static int skip_elem(kivis_reader *r, const kivis_field *f)
{
    const uint8_t *p;
    switch (f->kind) {
    case KIVIS_STRING: case KIVIS_CHARS: case KIVIS_BYTES:
        return kivis__key_skip_bytes(r);
    case KIVIS_STRUCT:
        return f->type ? kivis__key_skip_struct(r, f->type) : KIVIS_EINVAL;
    case KIVIS_ENUM:
        return kivis__take(r, 4, &p);
    default:
        if (!kivis__kind_width(f->kind))
            return KIVIS_EINVAL;
        return kivis__take(r, kivis__kind_width(f->kind), &p);
    }
}

/* Every element of f, as a key struct holds it (no tag). */
static int skip_elems(kivis_reader *r, const kivis_field *f)
{
    for (uint32_t i = 0, n = kivis__field_elems(f); i < n; i++) {
        int rc = skip_elem(r, f);
        if (rc)
            return rc;
    }
    return KIVIS_OK;
}

int kivis__key_skip_field(kivis_reader *r, const kivis_field *f)
{
    bool present;
    if (get_index_tag(r, f, &present))
        return KIVIS_ECORRUPT;
    return present ? skip_elems(r, f) : KIVIS_OK;
}

int kivis__key_skip_struct(kivis_reader *r, const kivis_struct_desc *sd)
{
    for (uint32_t i = 0; i < sd->nfields; i++) {
        int rc = skip_elems(r, &sd->fields[i]);
        if (rc)
            return rc;
    }
    return KIVIS_OK;
}
