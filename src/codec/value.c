/* Compact value encoding (docs/encoding.md, "Values"). */
#include "codec_int.h"

#include <stdio.h>

static uint64_t zigzag(int64_t v)
{
    return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

/* ---- encoding ------------------------------------------------------------ */

static int value_put_fields(kivis_buf *b, const kivis_struct_desc *sd,
                            const void *obj, kivis_value_path *where);

static int put_le(kivis_buf *b, uint64_t v, unsigned w)
{
    int rc = kivis__room(b, w);
    if (rc)
        return rc;
    uint8_t *o = b->data + b->len;
    for (unsigned i = 0; i < w; i++, v >>= 8)
        o[i] = (uint8_t)v;
    b->len += w;
    return KIVIS_OK;
}

static int put_run(kivis_buf *b, const void *p, size_t n)
{
    int rc = kivis__varint_put(b, n);
    return rc ? rc : kivis__buf_append(b, p, n);
}

static int put_elem(kivis_buf *b, const kivis_field *f, const uint8_t *p,
                    kivis_value_path *where)
{
    unsigned w = kivis__kind_width(f->kind);
    int64_t e;
    const void *run;
    size_t n;
    int rc;
    switch (f->kind) {
    case KIVIS_U8: case KIVIS_I8:
        return kivis__buf_byte(b, *p);
    case KIVIS_BOOL:
        return *p > 1 ? KIVIS_ERANGE : kivis__buf_byte(b, *p);
    case KIVIS_U16: case KIVIS_U32: case KIVIS_U64:
        return kivis__varint_put(b, kivis__load_uint(p, w));
    case KIVIS_I16: case KIVIS_I32: case KIVIS_I64:
        return kivis__varint_put(b, zigzag(kivis__load_int(p, w)));
    case KIVIS_F32: case KIVIS_F64:
        return put_le(b, kivis__load_uint(p, w), w);
    case KIVIS_ENUM:
        rc = kivis__enum_checked(f, p, &e);
        return rc ? rc : kivis__varint_put(b, zigzag(e));
    case KIVIS_STRING: case KIVIS_CHARS: case KIVIS_BYTES:
        rc = kivis__run_of(f, p, &run, &n);
        return rc ? rc : put_run(b, run, n);
    case KIVIS_STRUCT:
        return f->type ? value_put_fields(b, f->type, p, where) : KIVIS_EINVAL;
    default:
        return KIVIS_EINVAL;
    }
}

/* Note one more field on the way out of a failed encode. */
static void path_step(kivis_value_path *where, const kivis_field *f,
                      uint32_t index)
{
    if (where->depth == KIVIS_PATH_MAX) {
        where->cut = true;
        return;
    }
    where->step[where->depth].field = f;
    where->step[where->depth].index = index;
    where->depth++;
}

/* An optional field's tag: false when it is absent (nothing follows). */
static int put_tag(kivis_buf *b, const kivis_struct_desc *sd, uint32_t i,
                   const void *obj, bool *present)
{
    *present = true;
    if (!(sd->fields[i].flags & KIVIS_FIELD_OPTIONAL))
        return KIVIS_OK;
    int p = kivis__field_presence(sd, i, obj);
    if (p < 0)
        return p; /* a presence flag that is not a bool */
    *present = p == 1;
    return kivis__buf_byte(b, *present ? KIVIS_TAG_PRESENT : KIVIS_TAG_ABSENT);
}

static int value_put_fields(kivis_buf *b, const kivis_struct_desc *sd,
                            const void *obj, kivis_value_path *where)
{
    for (uint32_t i = 0; i < sd->nfields; i++) {
        const kivis_field *f = &sd->fields[i];
        const uint8_t *p = kivis__field_cptr(f, obj);
        bool present;
        int trc = put_tag(b, sd, i, obj, &present);
        if (trc && trc != KIVIS_ENOMEM)
            path_step(where, f, 0);
        if (trc)
            return trc;
        if (!present)
            continue;
        for (uint32_t j = 0, n = kivis__field_elems(f); j < n; j++, p += f->size) {
            int rc = put_elem(b, f, p, where);
            if (rc && rc != KIVIS_ENOMEM)
                path_step(where, f, j);
            if (rc)
                return rc;
        }
    }
    return KIVIS_OK;
}

static int put_header(kivis_buf *b, const kivis_struct_desc *sd,
                      uint32_t schema_version)
{
    int rc = kivis__buf_byte(b, KIVIS_VALUE_FORMAT);
    if (!rc)
        rc = kivis__varint_put(b, schema_version);
    if (!rc)
        rc = kivis__varint_put(b, sd->nfields);
    return rc;
}

int kivis__value_encode_at(kivis_buf *b, const kivis_struct_desc *sd,
                           uint32_t schema_version, const void *rec,
                           kivis_value_path *where)
{
    size_t mark = b->len;
    where->depth = 0;
    where->cut = false;
    int rc = put_header(b, sd, schema_version);
    if (!rc)
        rc = value_put_fields(b, sd, rec, where);
    if (rc)
        b->len = mark;
    return rc;
}

int kivis__value_encode(kivis_buf *b, const kivis_struct_desc *sd,
                        uint32_t schema_version, const void *rec)
{
    kivis_value_path where;
    return kivis__value_encode_at(b, sd, schema_version, rec, &where);
}

void kivis__value_path_format(const kivis_value_path *where, char *out,
                              size_t n)
{
    size_t len = 0;
    out[0] = '\0';
    if (where->cut)
        len += (size_t)snprintf(out, n, "(...)");
    for (uint32_t i = where->depth; i-- > 0 && len < n;) {
        const kivis_field *f = where->step[i].field;
        len += (size_t)(f->count ? snprintf(out + len, n - len, ".%s[%u]", f->name,
                                            (unsigned)where->step[i].index)
                                 : snprintf(out + len, n - len, ".%s", f->name));
    }
}

/* ---- decoding into zeroed storage ----------------------------------------
 * The steps are kivis/decode.h's, shared with the decoders kivis-gen emits;
 * the walk below strings them together by the descriptor. */

static int value_get_fields(kivis_reader *r, const kivis_struct_desc *sd,
                            uint32_t nfields, void *obj,
                            const kivis_allocator *a);

static int get_uint(kivis_reader *r, unsigned w, uint8_t *p)
{
    uint64_t u;
    if (kivis_dec_uint(r, w >= 8 ? UINT64_MAX : (UINT64_C(1) << (8 * w)) - 1, &u))
        return KIVIS_ECORRUPT;
    kivis__store_uint(p, w, u);
    return KIVIS_OK;
}

static int get_int(kivis_reader *r, unsigned w, uint8_t *p)
{
    int64_t lim = w >= 8 ? INT64_MAX : (INT64_C(1) << (8 * w - 1)) - 1;
    int64_t v;
    if (kivis_dec_int(r, -lim - 1, lim, &v))
        return KIVIS_ECORRUPT;
    kivis__store_int(p, w, v);
    return KIVIS_OK;
}

static int get_enum(kivis_reader *r, const kivis_field *f, uint8_t *p)
{
    int64_t v;
    if (f->size != 1 && f->size != 2 && f->size != 4)
        return KIVIS_EINVAL;
    if (kivis_dec_int(r, INT64_MIN, INT64_MAX, &v) || !kivis__enum_valid(f, v))
        return KIVIS_ECORRUPT;
    kivis__store_int(p, (unsigned)f->size, v);
    return KIVIS_OK;
}

static int get_elem(kivis_reader *r, const kivis_field *f, uint8_t *p,
                    const kivis_allocator *a)
{
    unsigned w = kivis__kind_width(f->kind);
    const uint8_t *c;
    uint64_t u;
    bool b;
    switch (f->kind) {
    case KIVIS_U8: case KIVIS_I8:
        if (kivis_dec_take(r, 1, &c))
            return KIVIS_ECORRUPT;
        *p = *c;
        return KIVIS_OK;
    case KIVIS_BOOL:
        if (kivis_dec_bool(r, &b))
            return KIVIS_ECORRUPT;
        *p = b;
        return KIVIS_OK;
    case KIVIS_U16: case KIVIS_U32: case KIVIS_U64:
        return get_uint(r, w, p);
    case KIVIS_I16: case KIVIS_I32: case KIVIS_I64:
        return get_int(r, w, p);
    case KIVIS_F32: case KIVIS_F64:
        if (kivis_dec_le(r, w, &u))
            return KIVIS_ECORRUPT;
        kivis__store_uint(p, w, u);
        return KIVIS_OK;
    case KIVIS_ENUM:
        return get_enum(r, f, p);
    case KIVIS_STRING:
        return kivis_dec_string(r, p, a);
    case KIVIS_CHARS:
        return kivis_dec_chars(r, p, f->size);
    case KIVIS_BYTES:
        return kivis_dec_bytes(r, p, kivis__absent_by_null(f), a);
    case KIVIS_STRUCT:
        return f->type ? value_get_fields(r, f->type, f->type->nfields, p, a)
                       : KIVIS_EINVAL;
    default:
        return KIVIS_EINVAL;
    }
}

/* An optional field's tag: false when it is absent, which the zeroed
 * storage already says; a present one with a flag gets it set. */
static int get_tag(kivis_reader *r, const kivis_struct_desc *sd, uint32_t i,
                   void *obj, bool *present)
{
    *present = true;
    if (!(sd->fields[i].flags & KIVIS_FIELD_OPTIONAL))
        return KIVIS_OK;
    if (kivis_dec_tag(r, present))
        return KIVIS_ECORRUPT;
    if (*present && kivis__has_presence_flag(&sd->fields[i]))
        *((uint8_t *)obj + kivis__presence_offset(sd, i)) = 1;
    return KIVIS_OK;
}

/* The first nfields fields of sd, into obj. */
static int value_get_fields(kivis_reader *r, const kivis_struct_desc *sd,
                            uint32_t nfields, void *obj,
                            const kivis_allocator *a)
{
    for (uint32_t i = 0; i < nfields; i++) {
        const kivis_field *f = &sd->fields[i];
        uint8_t *p = kivis__field_ptr(f, obj);
        bool present;
        if (get_tag(r, sd, i, obj, &present))
            return KIVIS_ECORRUPT;
        if (!present)
            continue;
        for (uint32_t j = 0, n = kivis__field_elems(f); j < n; j++, p += f->size) {
            int rc = get_elem(r, f, p, a);
            if (rc)
                return rc;
        }
    }
    return KIVIS_OK;
}

/* Fields past the stored count keep the zero they were given: that is how
 * a value written before fields were appended to the schema reads.  A
 * record with a generated decoder (sd->decode) is read by it, the header
 * and the check that nothing follows staying here. */
int kivis__value_decode(kivis_slice in, const kivis_struct_desc *sd,
                        void *rec, const kivis_allocator *alloc,
                        uint32_t *schema_version)
{
    const kivis_allocator *a = kivis__alloc_or_default(alloc);
    uint32_t version = 0, nfields = 0;
    memset(rec, 0, sd->size);
    if (schema_version)
        *schema_version = 0;
    if (in.len == 0)
        return KIVIS_ECORRUPT; /* also keeps NULL data out of the reader */
    kivis_reader r = kivis__reader(in);
    int rc = kivis_dec_header(&r, sd->nfields, &version, &nfields);
    if (!rc)
        rc = sd->decode ? sd->decode(&r, rec, nfields, a)
                        : value_get_fields(&r, sd, nfields, rec, a);
    if (!rc && r.p != r.end)
        rc = KIVIS_ECORRUPT;
    if (rc) {
        kivis__struct_free(sd, rec, a);
        return rc;
    }
    if (schema_version)
        *schema_version = version;
    return KIVIS_OK;
}
