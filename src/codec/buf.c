/* Growable buffers, LEB128 varints and order-preserving ids. */
#include "codec_int.h"

#define BUF_MIN_CAP 64u

void kivis__buf_init(kivis_buf *b, const kivis_allocator *alloc)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->alloc = alloc;
}

void kivis__buf_free(kivis_buf *b)
{
    const kivis_allocator *a = kivis__alloc_or_default(b->alloc);
    a->free(a->ctx, b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

int kivis__buf_reserve(kivis_buf *b, size_t extra)
{
    if (extra <= b->cap - b->len)
        return KIVIS_OK;
    if (extra > SIZE_MAX - b->len)
        return KIVIS_ENOMEM;
    size_t need = b->len + extra;
    size_t cap = b->cap ? b->cap : BUF_MIN_CAP;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    const kivis_allocator *a = kivis__alloc_or_default(b->alloc);
    uint8_t *p = a->realloc(a->ctx, b->data, cap);
    if (!p)
        return KIVIS_ENOMEM;
    b->data = p;
    b->cap = cap;
    return KIVIS_OK;
}

int kivis__buf_append(kivis_buf *b, const void *p, size_t n)
{
    if (n == 0)
        return KIVIS_OK;
    int rc = kivis__room(b, n);
    if (rc)
        return rc;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return KIVIS_OK;
}

int kivis__buf_byte(kivis_buf *b, uint8_t byte)
{
    int rc = kivis__room(b, 1);
    if (rc)
        return rc;
    b->data[b->len++] = byte;
    return KIVIS_OK;
}

int kivis__varint_put(kivis_buf *b, uint64_t v)
{
    int rc = kivis__room(b, 10);
    if (rc)
        return rc;
    uint8_t *o = b->data + b->len;
    while (v >= 0x80) {
        *o++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *o++ = (uint8_t)v;
    b->len = (size_t)(o - b->data);
    return KIVIS_OK;
}

/* Only the shortest encoding is accepted, so every value has exactly one
 * byte form (values are compared and hashed as bytes further up). */
int kivis_dec_varint_any(kivis_reader *r, uint64_t *v)
{
    const uint8_t *p = r->p;
    uint64_t x = 0;
    *v = 0;
    for (unsigned shift = 0;; shift += 7) {
        if (p == r->end)
            return KIVIS_ECORRUPT;
        uint8_t c = *p++;
        if (shift == 63 && c > 1)
            return KIVIS_ECORRUPT; /* more than 64 bits */
        x |= (uint64_t)(c & 0x7F) << shift;
        if (c < 0x80) {
            if (c == 0 && shift)
                return KIVIS_ECORRUPT; /* overlong */
            break;
        }
    }
    r->p = p;
    *v = x;
    return KIVIS_OK;
}

/* The bytes of id (at most KIVIS_ID_MAX) at out; returns how many. */
static size_t id_encode(uint32_t id, uint8_t *out)
{
    if (id < 0x80) {
        out[0] = (uint8_t)id;
        return 1;
    }
    out[0] = (uint8_t)(0x80 | id >> 8);
    out[1] = (uint8_t)id;
    return 2;
}

int kivis__id_put(kivis_buf *b, uint32_t id)
{
    if (id > KIVIS_ID_MAX)
        return KIVIS_ERANGE;
    int rc = kivis__room(b, KIVIS_ID_BYTES);
    if (!rc)
        b->len += id_encode(id, b->data + b->len);
    return rc;
}

int kivis__id_pair(kivis_buf *b, uint32_t first, uint32_t second)
{
    b->len = 0;
    if (first > KIVIS_ID_MAX || second > KIVIS_ID_MAX)
        return KIVIS_ERANGE;
    int rc = kivis__room(b, 2 * KIVIS_ID_BYTES);
    if (rc)
        return rc;
    b->len = id_encode(first, b->data);
    b->len += id_encode(second, b->data + b->len);
    return KIVIS_OK;
}

int kivis__id_get(kivis_reader *r, uint32_t *id)
{
    const uint8_t *p;
    *id = 0;
    if (kivis__take(r, 1, &p))
        return KIVIS_ECORRUPT;
    if (p[0] < 0x80) {
        *id = p[0];
        return KIVIS_OK;
    }
    const uint8_t *lo;
    if (kivis__take(r, 1, &lo)) {
        r->p = p;
        return KIVIS_ECORRUPT;
    }
    uint32_t v = (uint32_t)(p[0] & 0x7F) << 8 | lo[0];
    if (v < 0x80) {
        r->p = p; /* a one-byte id written long */
        return KIVIS_ECORRUPT;
    }
    *id = v;
    return KIVIS_OK;
}
