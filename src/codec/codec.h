/*
 * src/codec/codec.h - order-preserving key encoding and compact value
 * encoding (internal to libkivis; see docs/encoding.md for the formats).
 *
 * The codec knows types and descriptors, never storage.  Encoders append to
 * a growable kivis_buf; decoders read through a bounds-checked kivis_reader
 * and return KIVIS_ECORRUPT on any malformed input, never reading past the
 * end.  Whatever a decoder allocated is freed again when it fails, and its
 * output object is left zeroed.
 *
 * Key order: for any two values a, b of one type, a < b exactly when
 * memcmp(enc(a), enc(b)) < 0 (shorter first on a common prefix), and every
 * encoding is prefix-free within its type, so composites concatenate.
 *   unsigned   big-endian, the type's width
 *   signed     two's complement with the sign bit flipped, big-endian
 *   float      IEEE bits; negative: all bits flipped, else sign bit flipped.
 *              Total order: -NaN < -inf < ... < -0.0 < +0.0 < ... < +inf < +NaN
 *   bool       one byte, 0 or 1
 *   enum       as int32
 *   string / char[N] / bytes
 *              each 0x00 byte written as 0x01 0x01 and each 0x01 as
 *              0x01 0x02, then a 0x00 terminator (no 0x00 inside the body,
 *              so the first 0x00 ends the item whatever field follows;
 *              FoundationDB's 0x00 0xFF needs the type byte kivis lacks)
 *   struct     its fields in order; array: its elements in order
 */
#ifndef KIVIS_CODEC_H
#define KIVIS_CODEC_H

#include <kivis/common.h>
#include <kivis/schema.h>

#include <stdbool.h>

/* A growable byte buffer.  Zero it and set `alloc` before first use. */
typedef struct kivis_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
    const kivis_allocator *alloc;
} kivis_buf;

void kivis__buf_init(kivis_buf *b, const kivis_allocator *alloc);
void kivis__buf_free(kivis_buf *b);
/* Make room for `extra` more bytes.  KIVIS_OK or KIVIS_ENOMEM (b unchanged). */
int kivis__buf_reserve(kivis_buf *b, size_t extra);
int kivis__buf_append(kivis_buf *b, const void *p, size_t n);
int kivis__buf_byte(kivis_buf *b, uint8_t byte);

/* kivis_reader, a bounds-checked read position over borrowed bytes, and
 * the steps of a value decode are kivis/decode.h's: generated decoders
 * share them. */

static inline kivis_reader kivis__reader(kivis_slice s)
{
    kivis_reader r;
    r.p = (const uint8_t *)s.data;
    r.end = s.len ? r.p + s.len : r.p; /* NULL + 0 is undefined */
    return r;
}

/* ---- order-preserving ids (table id, index slot) ----------------------
 * 0..0x7F in one byte; 0x80..0x7FFF as 0x80|hi, lo.  Prefix-free and
 * order-preserving.  KIVIS_ERANGE above 0x7FFF. */
#define KIVIS_ID_MAX 0x7FFFu
#define KIVIS_ID_BYTES 2 /* the most an id takes */
int kivis__id_put(kivis_buf *b, uint32_t id);
/* b's contents replaced by the ids first and second (a table's key
 * prefix), in one reservation: cheaper than two kivis__id_put. */
int kivis__id_pair(kivis_buf *b, uint32_t first, uint32_t second);
int kivis__id_get(kivis_reader *r, uint32_t *id);

/* ---- key primitives --------------------------------------------------- */
int kivis__key_put_uint(kivis_buf *b, uint64_t v, unsigned width);
int kivis__key_put_int(kivis_buf *b, int64_t v, unsigned width);
int kivis__key_put_f32(kivis_buf *b, float v);
int kivis__key_put_f64(kivis_buf *b, double v);
int kivis__key_put_bytes(kivis_buf *b, const void *p, size_t n);

int kivis__key_get_uint(kivis_reader *r, unsigned width, uint64_t *v);
int kivis__key_get_int(kivis_reader *r, unsigned width, int64_t *v);
int kivis__key_get_f32(kivis_reader *r, float *v);
int kivis__key_get_f64(kivis_reader *r, double *v);
/* Unescape one string/bytes item into a buffer from `alloc` holding n bytes
 * plus a NUL (so it serves char * too).  *out = NULL when n == 0 and
 * !want_nul.  ECORRUPT on a bad escape or missing terminator. */
int kivis__key_get_bytes(kivis_reader *r, const kivis_allocator *alloc,
                         bool want_nul, uint8_t **out, size_t *n);
/* Skip one string/bytes item without allocating. */
int kivis__key_skip_bytes(kivis_reader *r);

/* ---- descriptor-driven keys -------------------------------------------
 * Append the key encoding of one field of the struct at `obj` (all its
 * elements for an array).  Strings are checked: KIVIS_EUTF8 for invalid
 * UTF-8, KIVIS_ERANGE for a char[N] without a NUL, an enum value not
 * declared, or a bool byte other than 0/1. */
int kivis__key_put_field(kivis_buf *b, const kivis_field *f, const void *obj);
/* Append every field of the struct `sd` at `obj`, in order. */
int kivis__key_put_struct(kivis_buf *b, const kivis_struct_desc *sd,
                          const void *obj);
/* Decode one field into the struct at `obj`; owned members from `alloc`. */
int kivis__key_get_field(kivis_reader *r, const kivis_field *f, void *obj,
                         const kivis_allocator *alloc);
/* Decode a whole struct (zeroed first).  On error `obj` is zeroed and
 * nothing stays allocated. */
int kivis__key_get_struct(kivis_reader *r, const kivis_struct_desc *sd,
                          void *obj, const kivis_allocator *alloc);
/* The width of the one unsigned integer field of a key struct it fills
 * (an auto-increment key, most integer keys), else 0: what
 * kivis__key_get_whole can decode without walking the descriptor. */
unsigned kivis__key_uint_width(const kivis_struct_desc *sd);
/* Append the key encoding of the struct at `obj`, as kivis__key_put_struct;
 * uint_width is kivis__key_uint_width(sd), looked up once by the caller,
 * or 0 to walk the descriptor. */
int kivis__key_put_whole(kivis_buf *b, const kivis_struct_desc *sd,
                         unsigned uint_width, const void *obj);
/* Decode the struct from all of `in` (bytes left over are KIVIS_ECORRUPT);
 * uint_width is kivis__key_uint_width(sd), looked up once by the caller
 * (a scan), or 0 to walk the descriptor.
 * On error `obj` is zeroed and nothing stays allocated. */
int kivis__key_get_whole(kivis_slice in, const kivis_struct_desc *sd,
                         unsigned uint_width, void *obj,
                         const kivis_allocator *alloc);
/* Skip one encoded field / struct. */
int kivis__key_skip_field(kivis_reader *r, const kivis_field *f);
int kivis__key_skip_struct(kivis_reader *r, const kivis_struct_desc *sd);

/* ---- values ------------------------------------------------------------
 * Layout: format byte KIVIS_VALUE_FORMAT, varint schema_version,
 * varint nfields, then each field in descriptor order:
 *   u8/i8/bool raw byte; wider ints LEB128 varint (signed: zigzag);
 *   enum zigzag varint; f32/f64 little-endian IEEE bits;
 *   string/char[N]/bytes varint length + bytes; array: its elements;
 *   struct: its fields in order; an optional field behind its tag (below).
 * A value holding fewer fields than the descriptor decodes the missing
 * trailing fields as zero, and so optional ones as absent (fields appended
 * to a schema); more fields than
 * the descriptor is KIVIS_ECORRUPT. */
/* KIVIS_VALUE_FORMAT is kivis/decode.h's. */
int kivis__value_encode(kivis_buf *b, const kivis_struct_desc *sd,
                        uint32_t schema_version, const void *rec);

/* Where an encode failed: the fields from the failing one outwards
 * (step[0] is the innermost), each with its array element index.  Paths
 * deeper than KIVIS_PATH_MAX keep their innermost steps and note the cut. */
#define KIVIS_PATH_MAX 8
typedef struct kivis_value_path {
    uint32_t depth;
    bool cut;
    struct {
        const kivis_field *field;
        uint32_t index; /* the element, when field->count (an array) */
    } step[KIVIS_PATH_MAX];
} kivis_value_path;

/* kivis__value_encode that, on a failure other than KIVIS_ENOMEM, says in
 * *where which field (and element) could not be encoded. */
int kivis__value_encode_at(kivis_buf *b, const kivis_struct_desc *sd,
                           uint32_t schema_version, const void *rec,
                           kivis_value_path *where);

/* The path as ".pos.tags[2]" (outermost first) into out, cut to n. */
void kivis__value_path_format(const kivis_value_path *where, char *out,
                              size_t n);
/* Decode into `rec` (zeroed first).  *schema_version may be NULL. */
int kivis__value_decode(kivis_slice in, const kivis_struct_desc *sd,
                        void *rec, const kivis_allocator *alloc,
                        uint32_t *schema_version);

/* Unsigned LEB128 varints, for values and metadata. */
int kivis__varint_put(kivis_buf *b, uint64_t v);
static inline int kivis__varint_get(kivis_reader *r, uint64_t *v)
{
    return kivis_dec_varint(r, v);
}

/* ---- optional fields (KIVIS_FIELD_OPTIONAL, see kivis/schema.h) -------
 * In a value an optional field is a tag byte, 00 absent (nothing follows)
 * or 01 present (the field's encoding follows).  In an index value the
 * same tag precedes the key encoding, so absent values sort first;
 * kivis__key_get_field and kivis__key_skip_field read it (an absent value
 * decodes as zero), kivis__key_put_field never writes it. */
#define KIVIS_TAG_ABSENT 0x00u
#define KIVIS_TAG_PRESENT 0x01u

/* A single char * or kivis_bytes says absence by its NULL pointer; every
 * other optional field has a bool presence flag before it. */
static inline bool kivis__absent_by_null(const kivis_field *f)
{
    return (f->flags & KIVIS_FIELD_OPTIONAL) && f->count == 0 &&
           (f->kind == KIVIS_STRING || f->kind == KIVIS_BYTES);
}

static inline bool kivis__has_presence_flag(const kivis_field *f)
{
    return (f->flags & KIVIS_FIELD_OPTIONAL) && !kivis__absent_by_null(f);
}

/* Where field i's presence flag is: a bool has alignment 1, so C puts it
 * at the first byte after the member before it. */
static inline size_t kivis__presence_offset(const kivis_struct_desc *sd,
                                            uint32_t i)
{
    if (i == 0)
        return 0;
    const kivis_field *prev = &sd->fields[i - 1];
    return prev->offset + prev->size * (prev->count ? prev->count : 1);
}

/* Whether field i of sd holds a value in the struct at obj (always, for a
 * field that is not optional). */
bool kivis__field_present(const kivis_struct_desc *sd, uint32_t i,
                          const void *obj);

/* Append the index value of field i of the record at obj: for an optional
 * field the tag, then the key encoding when present. */
int kivis__key_put_index(kivis_buf *b, const kivis_struct_desc *sd, uint32_t i,
                         const void *obj);

/* Free every owned member (char *, kivis_bytes, recursively) of the struct
 * at `obj` and zero the whole struct. */
void kivis__struct_free(const kivis_struct_desc *sd, void *obj,
                        const kivis_allocator *alloc);

/* Deep-copy the struct at `src` into `dst` (overwritten): owned members
 * get their own memory from `alloc`.  KIVIS_OK, or KIVIS_ENOMEM with dst
 * zeroed and nothing allocated. */
int kivis__struct_copy(const kivis_struct_desc *sd, void *dst, const void *src,
                       const kivis_allocator *alloc);

/* Deep-equal two structs of layout `sd` (strings by content, floats by bits). */
bool kivis__struct_equal(const kivis_struct_desc *sd, const void *a,
                         const void *b);

/* KIVIS_OK when the n bytes are well-formed UTF-8, else KIVIS_EUTF8. */
int kivis__utf8_check(const uint8_t *p, size_t n);

/* As kivis__utf8_check, and KIVIS_EUTF8 for a NUL byte too: text that a
 * C string can hold. */
int kivis__utf8_check_text(const uint8_t *p, size_t n);

#endif /* KIVIS_CODEC_H */
