/*
 * src/codec/codec_int.h - helpers shared by the codec's own files (never
 * included outside src/codec).  Field storage is always accessed through
 * memcpy: records are laid out by the user's compiler, so a field's address
 * need not be aligned for our loads, and a bool byte other than 0/1 must be
 * read as a byte to be rejected instead of being undefined behaviour.
 */
#ifndef KIVIS_CODEC_INT_H
#define KIVIS_CODEC_INT_H

#include "codec.h"

#include <string.h>

_Static_assert(sizeof(bool) == 1, "KIVIS_BOOL fields are stored as one byte");

/* Key strings: 0x00 -> 0x01 0x01, 0x01 -> 0x01 0x02, then 0x00 ends the
 * item.  The body never holds 0x00, so the first 0x00 is the terminator
 * whatever field follows (see docs/encoding.md for why not 0x00 0xFF). */
#define KIVIS_KEY_END 0x00u
#define KIVIS_KEY_ESC 0x01u

static inline const kivis_allocator *kivis__alloc_or_default(
    const kivis_allocator *a)
{
    return a ? a : kivis_default_allocator();
}

/* The slow path of kivis__room lives in buf.c. */
static inline int kivis__room(kivis_buf *b, size_t extra)
{
    if (extra <= b->cap - b->len)
        return KIVIS_OK;
    return kivis__buf_reserve(b, extra);
}

static inline size_t kivis__reader_left(const kivis_reader *r)
{
    return (size_t)(r->end - r->p);
}

/* Borrow the next n bytes of r, or KIVIS_ECORRUPT when fewer are left. */
static inline int kivis__take(kivis_reader *r, size_t n, const uint8_t **p)
{
    return kivis_dec_take(r, n, p);
}

static inline uint32_t kivis__field_elems(const kivis_field *f)
{
    return f->count ? f->count : 1;
}

static inline size_t kivis__field_bytes(const kivis_field *f)
{
    return f->size * kivis__field_elems(f);
}

static inline uint8_t *kivis__field_ptr(const kivis_field *f, void *obj)
{
    return (uint8_t *)obj + f->offset;
}

static inline const uint8_t *kivis__field_cptr(const kivis_field *f,
                                               const void *obj)
{
    return (const uint8_t *)obj + f->offset;
}

/* Bytes of one element of a fixed-width integer, bool or float kind;
 * 0 for every other kind. */
static inline unsigned kivis__kind_width(uint32_t kind)
{
    switch (kind) {
    case KIVIS_U8: case KIVIS_I8: case KIVIS_BOOL:
        return 1;
    case KIVIS_U16: case KIVIS_I16:
        return 2;
    case KIVIS_U32: case KIVIS_I32: case KIVIS_F32:
        return 4;
    case KIVIS_U64: case KIVIS_I64: case KIVIS_F64:
        return 8;
    default:
        return 0;
    }
}

static inline bool kivis__kind_signed(uint32_t kind)
{
    return kind >= KIVIS_I8 && kind <= KIVIS_I64;
}

/* v's bytes in big-endian (most significant first) order in memory: one
 * byte swap on the usual little-endian machine. */
static inline uint64_t kivis__to_be64(uint64_t v)
{
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && \
    __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    return __builtin_bswap64(v);
#elif defined(__GNUC__) && defined(__BYTE_ORDER__) && \
    __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    return v;
#else
    uint8_t b[8];
    uint64_t r;
    for (unsigned i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (56 - 8 * i));
    memcpy(&r, b, 8);
    return r;
#endif
}

static inline uint64_t kivis__load_uint(const uint8_t *p, unsigned w)
{
    uint8_t u8; uint16_t u16; uint32_t u32; uint64_t u64;
    switch (w) {
    case 1: memcpy(&u8, p, 1); return u8;
    case 2: memcpy(&u16, p, 2); return u16;
    case 4: memcpy(&u32, p, 4); return u32;
    default: memcpy(&u64, p, 8); return u64;
    }
}

static inline int64_t kivis__load_int(const uint8_t *p, unsigned w)
{
    int8_t i8; int16_t i16; int32_t i32; int64_t i64;
    switch (w) {
    case 1: memcpy(&i8, p, 1); return i8;
    case 2: memcpy(&i16, p, 2); return i16;
    case 4: memcpy(&i32, p, 4); return i32;
    default: memcpy(&i64, p, 8); return i64;
    }
}

/* Store the low w bytes' worth of v (the caller checked the range). */
static inline void kivis__store_uint(uint8_t *p, unsigned w, uint64_t v)
{
    uint8_t u8 = (uint8_t)v; uint16_t u16 = (uint16_t)v;
    uint32_t u32 = (uint32_t)v;
    switch (w) {
    case 1: memcpy(p, &u8, 1); break;
    case 2: memcpy(p, &u16, 2); break;
    case 4: memcpy(p, &u32, 4); break;
    default: memcpy(p, &v, 8); break;
    }
}

static inline void kivis__store_int(uint8_t *p, unsigned w, int64_t v)
{
    int8_t i8 = (int8_t)v; int16_t i16 = (int16_t)v; int32_t i32 = (int32_t)v;
    switch (w) {
    case 1: memcpy(p, &i8, 1); break;
    case 2: memcpy(p, &i16, 2); break;
    case 4: memcpy(p, &i32, 4); break;
    default: memcpy(p, &v, 8); break;
    }
}

static inline bool kivis__uint_fits(uint64_t v, unsigned w)
{
    return w >= 8 || v >> (8 * w) == 0;
}

static inline bool kivis__int_fits(int64_t v, unsigned w)
{
    if (w >= 8)
        return true;
    int64_t lim = INT64_C(1) << (8 * w - 1);
    return v >= -lim && v < lim;
}

/* An enum field's stored value.  KIVIS_EINVAL for a size not 1, 2 or 4. */
static inline int kivis__enum_load(const kivis_field *f, const uint8_t *p,
                                   int64_t *v)
{
    if (f->size != 1 && f->size != 2 && f->size != 4)
        return KIVIS_EINVAL;
    *v = kivis__load_int(p, (unsigned)f->size);
    return KIVIS_OK;
}

/* Whether v is a declared value of f's enum that fits its storage. */
bool kivis__enum_valid(const kivis_field *f, int64_t v);

/* Length of the char[N] string at p: KIVIS_ERANGE without a NUL in N. */
static inline int kivis__chars_len(const kivis_field *f, const uint8_t *p,
                                   size_t *n)
{
    const uint8_t *z = memchr(p, 0, f->size);
    if (!z)
        return KIVIS_ERANGE;
    *n = (size_t)(z - p);
    return KIVIS_OK;
}

/* Check text for a C string field before storing it: well-formed UTF-8
 * (KIVIS_EUTF8 on encode) and, on decode, no embedded NUL. */
static inline bool kivis__text_decodable(const uint8_t *p, size_t n)
{
    return kivis__utf8_check_text(p, n) == KIVIS_OK;
}

static inline const char *kivis__string_load(const uint8_t *p)
{
    const char *s;
    memcpy(&s, p, sizeof s);
    return s ? s : "";
}

/* The checked value of one enum element: KIVIS_EINVAL for a bad size,
 * KIVIS_ERANGE for a value not declared. */
int kivis__enum_checked(const kivis_field *f, const uint8_t *p, int64_t *v);

/* The bytes one string, char[N] or bytes element stores, checked:
 * KIVIS_EUTF8, KIVIS_ERANGE (char[N] without NUL), KIVIS_EINVAL (a NULL
 * blob with a length). */
int kivis__run_of(const kivis_field *f, const uint8_t *p, const void **data,
                  size_t *n);

/* Free the owned members of field f in obj and zero its storage. */
void kivis__field_free(const kivis_field *f, void *obj,
                       const kivis_allocator *alloc);

/* ---- optional fields (kivis/schema.h) ----------------------------------- */

/* Read field i's presence: 0 absent, 1 present, KIVIS_ERANGE for a flag
 * byte other than 0/1 (true for a field that is not optional). */
int kivis__field_presence(const kivis_struct_desc *sd, uint32_t i,
                          const void *obj);

#endif /* KIVIS_CODEC_INT_H */
