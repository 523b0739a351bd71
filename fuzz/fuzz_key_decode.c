/*
 * Decode arbitrary bytes as a key; whatever decodes must re-encode to
 * exactly the bytes consumed (keys are canonical), and skipping must
 * consume the same bytes as decoding.  Byte 0 picks the key type.
 */
#include "fuzz_schema.h"

#include <stdlib.h>
#include <string.h>

static void check_canonical(const kivis_struct_desc *sd, const void *obj,
                            const uint8_t *in, size_t used)
{
    kivis_buf b;
    kivis__buf_init(&b, NULL);
    if (kivis__key_put_struct(&b, sd, obj) != KIVIS_OK || b.len != used ||
        memcmp(b.data, in, used) != 0)
        abort();
    kivis__buf_free(&b);
}

static void check_skip(const kivis_struct_desc *sd, kivis_slice in,
                       size_t used)
{
    kivis_reader r = kivis__reader(in);
    if (kivis__key_skip_struct(&r, sd) != KIVIS_OK ||
        (size_t)(r.p - (const uint8_t *)in.data) != used)
        abort();
}

/* The whole of `in` as one key. */
static int decode_key(kivis_slice in, const kivis_struct_desc *sd, void *out,
                      const kivis_allocator *a)
{
    kivis_reader r = kivis__reader(in);
    memset(out, 0, sd->size);
    int rc = kivis__key_get_struct(&r, sd, out, a);
    if (rc == KIVIS_OK && r.p != r.end)
        rc = KIVIS_ECORRUPT;
    if (rc) /* as a scan does with a key it could not decode */
        kivis__struct_free(sd, out, a);
    return rc;
}

/* Each field of an optional descriptor as an index value (a tag, then the
 * key when present): decoding and skipping consume the same bytes, and a
 * decoded present value re-encodes to them behind its tag. */
static void check_index_values(const kivis_struct_desc *sd, kivis_slice in)
{
    kivis_reader r = kivis__reader(in), s = r;
    fz_any obj;
    memset(&obj, 0, sizeof obj);
    for (uint32_t i = 0; i < sd->nfields; i++) {
        const kivis_field *f = &sd->fields[i];
        const uint8_t *start = r.p;
        if (kivis__key_get_field(&r, f, &obj, NULL) != KIVIS_OK)
            break;
        if (kivis__key_skip_field(&s, f) != KIVIS_OK || s.p != r.p)
            abort();
        kivis_buf b;
        kivis__buf_init(&b, NULL);
        bool absent = (f->flags & KIVIS_FIELD_OPTIONAL) && *start == KIVIS_TAG_ABSENT;
        if (absent ? r.p != start + 1
                   : (kivis__key_put_field(&b, f, &obj) != KIVIS_OK ||
                      b.len != (size_t)(r.p - start) -
                                   ((f->flags & KIVIS_FIELD_OPTIONAL) != 0) ||
                      memcmp(b.data, r.p - b.len, b.len) != 0))
            abort();
        kivis__buf_free(&b);
    }
    kivis__struct_free(sd, &obj, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_any obj;
    if (size < 1)
        return 0;
    const kivis_struct_desc *sd = fz_descs[data[0] % FZ_NDESCS];
    kivis_slice in = kivis_slice_make(data + 1, size - 1);
    if (sd == &fz_optional_desc)
        check_index_values(sd, in);
    kivis_reader r = kivis__reader(in);
    if (kivis__key_get_struct(&r, sd, &obj, NULL) != KIVIS_OK)
        return 0;
    size_t used = (size_t)(r.p - (data + 1));
    check_canonical(sd, &obj, data + 1, used);
    check_skip(sd, in, used);
    fz_check_into(kivis_slice_make(data + 1, used), sd, &obj, size,
                  decode_key);
    kivis__struct_free(sd, &obj, NULL);
    return 0;
}
