/* One input through both decoders (decode_diff.h). */
#include "decode_diff.h"

#include "codec/codec.h"
#include "core/engine.h"

#include <stdlib.h>
#include <string.h>

#define MAX_BUF 4096

static bool all_zero(const void *p, size_t n)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        if (c[i])
            return false;
    return true;
}

/* Deep-equal, and every optional field present in both or in neither
 * (kivis__struct_equal leaves presence flags and NULL blobs aside). */
static bool same_record(const kivis_struct_desc *sd, const void *a,
                        const void *b)
{
    if (!kivis__struct_equal(sd, a, b))
        return false;
    for (uint32_t i = 0; i < sd->nfields; i++)
        if (kivis__field_present(sd, i, a) != kivis__field_present(sd, i, b))
            return false;
    return true;
}

/* rc and outputs of the two decodes agree. */
static bool same_outcome(const kivis_struct_desc *sd, int rc_gen, int rc_walk,
                         const void *gen, const void *walk)
{
    if (rc_gen != rc_walk)
        return false;
    if (rc_gen != KIVIS_OK)
        return all_zero(gen, sd->size) && all_zero(walk, sd->size);
    return same_record(sd, gen, walk);
}

static int decode(const kivis_struct_desc *sd, kivis_slice in, void *out,
                  const kivis_allocator *a, uint32_t *version)
{
    return kivis__value_decode(in, sd, out, a, version);
}

/* Both into buffers of size bytes: same status, same bytes asked for. */
static int diff_into(const kivis_struct_desc *sd, const kivis_struct_desc *walk,
                     kivis_slice in, size_t size, void *gen_rec, void *walk_rec)
{
    static unsigned char gen_buf[MAX_BUF], walk_buf[MAX_BUF];
    kivis_bump bg, bw;
    size = size < MAX_BUF ? size : MAX_BUF;
    kivis__bump_init(&bg, gen_buf, size);
    kivis__bump_init(&bw, walk_buf, size);
    int rg = decode(sd, in, gen_rec, &bg.iface, NULL);
    int rw = decode(walk, in, walk_rec, &bw.iface, NULL);
    if (!same_outcome(sd, rg, rw, gen_rec, walk_rec) || bg.want != bw.want)
        return DECODE_DIFF_MISMATCH;
    return rg;
}

int decode_diff(const kivis_struct_desc *sd, const uint8_t *bytes, size_t len,
                size_t buf_size, int *into_rc)
{
    kivis_struct_desc walk = *sd;
    walk.decode = NULL;
    void *gen_rec = calloc(1, sd->size), *walk_rec = calloc(1, sd->size);
    if (!gen_rec || !walk_rec)
        abort();
    kivis_slice in = kivis_slice_make(bytes, len);
    uint32_t vg = 0, vw = 0;
    int rg = decode(sd, in, gen_rec, NULL, &vg);
    int rw = decode(&walk, in, walk_rec, NULL, &vw);
    int rc = same_outcome(sd, rg, rw, gen_rec, walk_rec) && vg == vw
                 ? rg
                 : DECODE_DIFF_MISMATCH;
    kivis__struct_free(sd, gen_rec, NULL);
    kivis__struct_free(sd, walk_rec, NULL);
    *into_rc = diff_into(sd, &walk, in, buf_size, gen_rec, walk_rec);
    free(gen_rec);
    free(walk_rec);
    return *into_rc == DECODE_DIFF_MISMATCH ? DECODE_DIFF_MISMATCH : rc;
}
