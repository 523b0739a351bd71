/*
 * fuzz/fuzz_schema.h - a record type with a field of every kind (arrays,
 * nested structs, enums of every storage width), shared by the codec
 * fuzzers and tests/test_codec.c.  Descriptors only: nothing allocates.
 */
#ifndef KIVIS_FUZZ_SCHEMA_H
#define KIVIS_FUZZ_SCHEMA_H

#include "codec/codec.h"
#include "core/engine.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

typedef struct fz_point {
    int16_t x;
    uint8_t tag;
    char *label;
} fz_point;

typedef struct fz_record {
    uint8_t u8;
    uint16_t u16;
    uint32_t u32;
    uint64_t u64;
    int8_t i8;
    int16_t i16;
    int32_t i32;
    int64_t i64;
    bool flag;
    float f32;
    double f64;
    int32_t color; /* enum, 4 bytes */
    int16_t mood;  /* enum, 2 bytes */
    int8_t level;  /* enum, 1 byte */
    char *name;
    char code[6];
    kivis_bytes blob;
    fz_point origin;
    fz_point path[2];
    uint16_t ids[3];
    char *tags[2];
    double pair[2];
    bool bits[2];
    kivis_bytes chunks[2];
    char codes[2][4];
    int32_t colors[2];
} fz_record;

static const int32_t fz_color_values[] = {0, 1, 2, 7, -3, INT32_MAX, INT32_MIN};
static const char *const fz_color_names[] = {"red", "green", "blue", "seven",
                                             "neg", "max", "min"};
static const kivis_enum_desc fz_color = {"color", 7, fz_color_names,
                                         fz_color_values};

static const int32_t fz_mood_values[] = {-300, 0, 300};
static const char *const fz_mood_names[] = {"sad", "meh", "glad"};
static const kivis_enum_desc fz_mood = {"mood", 3, fz_mood_names,
                                        fz_mood_values};

static const int32_t fz_level_values[] = {0, 1, -1, 127};
static const char *const fz_level_names[] = {"zero", "one", "minus", "top"};
static const kivis_enum_desc fz_level = {"level", 4, fz_level_names,
                                         fz_level_values};

#define FZ_FIELD(T, m, kind, n)                                              \
    { #m, kind, n, offsetof(T, m), sizeof(((T *)0)->m) / ((n) ? (n) : 1),     \
      NULL, NULL, 0 }
#define FZ_ENUM(T, m, e, n)                                                  \
    { #m, KIVIS_ENUM, n, offsetof(T, m),                                     \
      sizeof(((T *)0)->m) / ((n) ? (n) : 1), NULL, &e, 0 }
#define FZ_NESTED(T, m, d, n)                                                \
    { #m, KIVIS_STRUCT, n, offsetof(T, m),                                   \
      sizeof(((T *)0)->m) / ((n) ? (n) : 1), &d, NULL, 0 }

static const kivis_field fz_point_fields[] = {
    FZ_FIELD(fz_point, x, KIVIS_I16, 0),
    FZ_FIELD(fz_point, tag, KIVIS_U8, 0),
    FZ_FIELD(fz_point, label, KIVIS_STRING, 0),
};
static const kivis_struct_desc fz_point_desc = {"point", sizeof(fz_point), 3,
                                                fz_point_fields, NULL};

static const kivis_field fz_record_fields[] = {
    FZ_FIELD(fz_record, u8, KIVIS_U8, 0),
    FZ_FIELD(fz_record, u16, KIVIS_U16, 0),
    FZ_FIELD(fz_record, u32, KIVIS_U32, 0),
    FZ_FIELD(fz_record, u64, KIVIS_U64, 0),
    FZ_FIELD(fz_record, i8, KIVIS_I8, 0),
    FZ_FIELD(fz_record, i16, KIVIS_I16, 0),
    FZ_FIELD(fz_record, i32, KIVIS_I32, 0),
    FZ_FIELD(fz_record, i64, KIVIS_I64, 0),
    FZ_FIELD(fz_record, flag, KIVIS_BOOL, 0),
    FZ_FIELD(fz_record, f32, KIVIS_F32, 0),
    FZ_FIELD(fz_record, f64, KIVIS_F64, 0),
    FZ_ENUM(fz_record, color, fz_color, 0),
    FZ_ENUM(fz_record, mood, fz_mood, 0),
    FZ_ENUM(fz_record, level, fz_level, 0),
    FZ_FIELD(fz_record, name, KIVIS_STRING, 0),
    FZ_FIELD(fz_record, code, KIVIS_CHARS, 0),
    FZ_FIELD(fz_record, blob, KIVIS_BYTES, 0),
    FZ_NESTED(fz_record, origin, fz_point_desc, 0),
    FZ_NESTED(fz_record, path, fz_point_desc, 2),
    FZ_FIELD(fz_record, ids, KIVIS_U16, 3),
    FZ_FIELD(fz_record, tags, KIVIS_STRING, 2),
    FZ_FIELD(fz_record, pair, KIVIS_F64, 2),
    FZ_FIELD(fz_record, bits, KIVIS_BOOL, 2),
    FZ_FIELD(fz_record, chunks, KIVIS_BYTES, 2),
    FZ_FIELD(fz_record, codes, KIVIS_CHARS, 2),
    FZ_ENUM(fz_record, colors, fz_color, 2),
};
static const kivis_struct_desc fz_record_desc = {
    "record", sizeof(fz_record),
    sizeof fz_record_fields / sizeof fz_record_fields[0], fz_record_fields, NULL};

/* Two small composites whose keys are short, so a fuzzer reaches valid
 * inputs quickly: a string then an int, and two blobs then a byte. */
typedef struct fz_named {
    char *name;
    int32_t n;
} fz_named;

static const kivis_field fz_named_fields[] = {
    FZ_FIELD(fz_named, name, KIVIS_STRING, 0),
    FZ_FIELD(fz_named, n, KIVIS_I32, 0),
};
static const kivis_struct_desc fz_named_desc = {"named", sizeof(fz_named), 2,
                                                fz_named_fields, NULL};

typedef struct fz_blobs {
    kivis_bytes a;
    kivis_bytes b;
    uint8_t tail;
} fz_blobs;

static const kivis_field fz_blobs_fields[] = {
    FZ_FIELD(fz_blobs, a, KIVIS_BYTES, 0),
    FZ_FIELD(fz_blobs, b, KIVIS_BYTES, 0),
    FZ_FIELD(fz_blobs, tail, KIVIS_U8, 0),
};
static const kivis_struct_desc fz_blobs_desc = {"blobs", sizeof(fz_blobs), 3,
                                                fz_blobs_fields, NULL};

/* [[optional]] fields of each shape: absent by NULL (a string, a blob),
 * by a presence flag (a scalar, an array, a nested struct, a char[N]). */
typedef struct fz_optional {
    char *name;
    kivis_bytes blob;
    bool has_n;
    uint32_t n;
    bool has_ids;
    int16_t ids[2];
    bool has_at;
    fz_point at;
    bool has_code;
    char code[4];
    uint8_t tail;
} fz_optional;

static const kivis_field fz_optional_fields[] = {
    {"name", KIVIS_STRING, 0, offsetof(fz_optional, name), sizeof(char *), NULL,
     NULL, KIVIS_FIELD_OPTIONAL},
    {"blob", KIVIS_BYTES, 0, offsetof(fz_optional, blob), sizeof(kivis_bytes),
     NULL, NULL, KIVIS_FIELD_OPTIONAL},
    {"n", KIVIS_U32, 0, offsetof(fz_optional, n), 4, NULL, NULL,
     KIVIS_FIELD_OPTIONAL},
    {"ids", KIVIS_I16, 2, offsetof(fz_optional, ids), 2, NULL, NULL,
     KIVIS_FIELD_OPTIONAL},
    {"at", KIVIS_STRUCT, 0, offsetof(fz_optional, at), sizeof(fz_point),
     &fz_point_desc, NULL, KIVIS_FIELD_OPTIONAL},
    {"code", KIVIS_CHARS, 0, offsetof(fz_optional, code), 4, NULL, NULL,
     KIVIS_FIELD_OPTIONAL},
    FZ_FIELD(fz_optional, tail, KIVIS_U8, 0),
};
static const kivis_struct_desc fz_optional_desc = {
    "optional", sizeof(fz_optional), 7, fz_optional_fields, NULL};

/* The fuzzers' first input byte picks one of these. */
static const kivis_struct_desc *const fz_descs[] = {
    &fz_record_desc, &fz_named_desc, &fz_blobs_desc, &fz_optional_desc};
#define FZ_NDESCS 4u

/* Room for a decoded record of any of the descriptors. */
typedef union fz_any {
    fz_record rec;
    fz_named named;
    fz_blobs blobs;
    fz_optional optional;
} fz_any;

/* A decoder of the codec: value or key, into zeroed storage. */
typedef int (*fz_decoder)(kivis_slice in, const kivis_struct_desc *sd,
                          void *out, const kivis_allocator *a);

/* Decode `in` into `room` bytes (at most 256) through the bump allocator
 * of kivis_get_into (strings and blobs in a caller's buffer, a free that
 * does nothing): the record must equal `want`, or the buffer must have run
 * out (KIVIS_ENOMEM) and the output be all zero, whatever the decoder had
 * filled in before.  *asked: the bytes the decoder asked for. */
static inline int fz_into(kivis_slice in, const kivis_struct_desc *sd,
                          const void *want, size_t room, fz_decoder dec,
                          size_t *asked)
{
    unsigned char buf[256];
    fz_any out;
    static const fz_any zero;
    kivis_bump b;
    kivis__bump_init(&b, buf, room < sizeof buf ? room : sizeof buf);
    int rc = dec(in, sd, &out, &b.iface);
    *asked = b.want;
    if (rc == KIVIS_OK) {
        if (!kivis__struct_equal(sd, want, &out) || b.want > room)
            abort();
    } else if (rc != KIVIS_ENOMEM || b.want <= room ||
               memcmp(&out, &zero, sd->size) != 0) {
        abort();
    }
    return rc;
}

/* With room enough, decoding into a buffer gives `want`; with `cut` modulo
 * the bytes it needed, less than that, it runs out cleanly. */
static inline void fz_check_into(kivis_slice in, const kivis_struct_desc *sd,
                                 const void *want, size_t cut, fz_decoder dec)
{
    size_t need, asked;
    if (fz_into(in, sd, want, 256, dec, &need) != KIVIS_OK || need == 0)
        return; /* longer than 256 bytes, or nothing to place */
    if (fz_into(in, sd, want, cut % need, dec, &asked) != KIVIS_ENOMEM)
        abort();
}

#endif /* KIVIS_FUZZ_SCHEMA_H */
