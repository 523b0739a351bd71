/* SPDX-License-Identifier: MIT */
/*
 * kivis/decode.h - the steps a stored value is decoded with
 * (docs/encoding.md, "Values").
 *
 * kivis-gen emits, for each record, a decoder specialised to its fields
 * (kivis_struct_desc.decode) out of these steps; the descriptor walk in
 * libkivis decodes with the very same ones, so that both read every input
 * alike, malformed ones included.  They are public because generated code
 * is compiled into the program that uses it; a program has no reason to
 * call them itself.
 *
 * Every step reads from a kivis_reader, never past its end, and writes into
 * storage the caller zeroed.  It returns KIVIS_OK, KIVIS_ECORRUPT for
 * malformed bytes (the reader is then somewhere inside the item), or
 * KIVIS_ENOMEM when the allocator returned NULL.  What a failed decode
 * allocated is the caller's to free (its output then holds it).
 */
#ifndef KIVIS_DECODE_H
#define KIVIS_DECODE_H

#include "common.h"

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A bounds-checked read position over borrowed bytes [p, end). */
typedef struct kivis_reader {
    const uint8_t *p;
    const uint8_t *end;
} kivis_reader;

/**
 * Decode the first `nfields` fields of a value's body (what follows its
 * header) from r into the struct at `rec`, zeroed by the caller; owned
 * members (char *, kivis_bytes) from `alloc`.  Fields past nfields stay
 * zero (fields appended to the schema).  The caller reads the header and
 * checks that nothing follows.  @return as the steps below.
 */
typedef int (*kivis_decode_fn)(kivis_reader *r, void *rec, uint32_t nfields,
                               const kivis_allocator *alloc);

/** Borrow the next n bytes at *p.  @return KIVIS_OK, KIVIS_ECORRUPT. */
static inline int kivis_dec_take(kivis_reader *r, size_t n, const uint8_t **p)
{
    if ((size_t)(r->end - r->p) < n)
        return KIVIS_ECORRUPT;
    *p = r->p;
    r->p += n;
    return KIVIS_OK;
}

/**
 * An unsigned LEB128 varint in its shortest form (anything else, or more
 * than 64 bits, is KIVIS_ECORRUPT).  kivis_dec_varint is its inline one-byte
 * case.
 */
int kivis_dec_varint_any(kivis_reader *r, uint64_t *v);

static inline int kivis_dec_varint(kivis_reader *r, uint64_t *v)
{
    if (r->p != r->end && *r->p < 0x80) {
        *v = *r->p++;
        return KIVIS_OK;
    }
    return kivis_dec_varint_any(r, v);
}

/** An unsigned integer field: a varint no greater than max. */
static inline int kivis_dec_uint(kivis_reader *r, uint64_t max, uint64_t *v)
{
    if (kivis_dec_varint(r, v) || *v > max)
        return KIVIS_ECORRUPT;
    return KIVIS_OK;
}

/** A signed integer or enum: a zigzag varint within [min, max]. */
static inline int kivis_dec_int(kivis_reader *r, int64_t min, int64_t max,
                                int64_t *v)
{
    uint64_t u;
    if (kivis_dec_varint(r, &u))
        return KIVIS_ECORRUPT;
    *v = (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
    return *v < min || *v > max ? KIVIS_ECORRUPT : KIVIS_OK;
}

/** A float's IEEE bits: w (4 or 8) bytes, little-endian. */
static inline int kivis_dec_le(kivis_reader *r, unsigned w, uint64_t *v)
{
    const uint8_t *p;
    if (kivis_dec_take(r, w, &p))
        return KIVIS_ECORRUPT;
    uint64_t x = 0;
    for (unsigned i = w; i-- > 0;)
        x = x << 8 | p[i];
    *v = x;
    return KIVIS_OK;
}

/** A bool: one byte, 0 or 1. */
static inline int kivis_dec_bool(kivis_reader *r, bool *v)
{
    const uint8_t *c;
    if (kivis_dec_take(r, 1, &c) || *c > 1)
        return KIVIS_ECORRUPT;
    *v = *c == 1;
    return KIVIS_OK;
}

/** An optional field's tag: one byte, 0 absent or 1 present. */
static inline int kivis_dec_tag(kivis_reader *r, bool *present)
{
    return kivis_dec_bool(r, present);
}

/**
 * A value's header: the format byte, the schema version (at most
 * UINT32_MAX) and the number of fields stored, at most max_fields.
 */
int kivis_dec_header(kivis_reader *r, uint32_t max_fields, uint32_t *version,
                     uint32_t *nfields);

/**
 * A char * field: a length-prefixed run of UTF-8 without NUL, copied with
 * a NUL into memory from alloc; the pointer is stored at dst (a char *,
 * which need not be aligned).
 */
int kivis_dec_string(kivis_reader *r, void *dst, const kivis_allocator *alloc);

/** A char[size] field: a run of UTF-8 without NUL shorter than size, copied
 * to dst with its NUL. */
int kivis_dec_chars(kivis_reader *r, void *dst, size_t size);

/**
 * A kivis_bytes field, stored at dst (need not be aligned): a run copied
 * into memory from alloc.  An empty run stays data NULL, unless keep_empty
 * (an optional blob, whose NULL would say absent): then one byte is
 * allocated and len is 0.
 */
int kivis_dec_bytes(kivis_reader *r, void *dst, bool keep_empty,
                    const kivis_allocator *alloc);

#ifdef __cplusplus
}
#endif

#endif /* KIVIS_DECODE_H */
