/*
 * Decode arbitrary bytes as a value; whatever decodes must re-encode to a
 * value that decodes deep-equal, and, when every field was stored, to the
 * very same bytes (values are canonical).  Byte 0 picks the record type.
 */
#include "fuzz_schema.h"

#include <stdlib.h>
#include <string.h>

/* The stored field count, read back from the header we just accepted. */
static uint64_t stored_nfields(kivis_slice in)
{
    kivis_reader r = kivis__reader(in);
    uint64_t v = 0;
    r.p++; /* format byte */
    if (kivis__varint_get(&r, &v) || kivis__varint_get(&r, &v))
        abort();
    return v;
}

static void check_reencode(const kivis_struct_desc *sd, const fz_any *obj,
                           kivis_slice in, uint32_t version)
{
    fz_any again;
    kivis_buf b;
    kivis__buf_init(&b, NULL);
    if (kivis__value_encode(&b, sd, version, obj) != KIVIS_OK)
        abort();
    if (stored_nfields(in) == sd->nfields &&
        (b.len != in.len || memcmp(b.data, in.data, in.len) != 0))
        abort();
    uint32_t v2;
    if (kivis__value_decode(kivis_slice_make(b.data, b.len), sd, &again, NULL,
                            &v2) != KIVIS_OK ||
        v2 != version || !kivis__struct_equal(sd, obj, &again))
        abort();
    kivis__struct_free(sd, &again, NULL);
    kivis__buf_free(&b);
}

static int decode_value(kivis_slice in, const kivis_struct_desc *sd,
                        void *out, const kivis_allocator *a)
{
    return kivis__value_decode(in, sd, out, a, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_any obj;
    uint32_t version;
    if (size < 1)
        return 0;
    const kivis_struct_desc *sd = fz_descs[data[0] % FZ_NDESCS];
    kivis_slice in = kivis_slice_make(data + 1, size - 1);
    if (kivis__value_decode(in, sd, &obj, NULL, &version) != KIVIS_OK)
        return 0;
    check_reencode(sd, &obj, in, version);
    fz_check_into(in, sd, &obj, size, decode_value);
    kivis__struct_free(sd, &obj, NULL);
    return 0;
}
