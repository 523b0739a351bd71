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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    union {
        fz_record rec;
        fz_named named;
        fz_blobs blobs;
    } obj;
    if (size < 1)
        return 0;
    const kivis_struct_desc *sd = fz_descs[data[0] % FZ_NDESCS];
    kivis_slice in = kivis_slice_make(data + 1, size - 1);
    kivis_reader r = kivis__reader(in);
    if (kivis__key_get_struct(&r, sd, &obj, NULL) != KIVIS_OK)
        return 0;
    size_t used = (size_t)(r.p - (data + 1));
    check_canonical(sd, &obj, data + 1, used);
    check_skip(sd, in, used);
    kivis__struct_free(sd, &obj, NULL);
    return 0;
}
