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
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

/** The first byte of every value: its format. */
#define KIVIS_VALUE_FORMAT 0x01

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
static inline int kivis_dec_header(kivis_reader *r, uint32_t max_fields,
                                   uint32_t *version, uint32_t *nfields)
{
    const uint8_t *fmt;
    uint64_t v, n;
    if (kivis_dec_take(r, 1, &fmt) || *fmt != KIVIS_VALUE_FORMAT ||
        kivis_dec_varint(r, &v) || v > UINT32_MAX ||
        kivis_dec_varint(r, &n) || n > max_fields)
        return KIVIS_ECORRUPT;
    *version = (uint32_t)v;
    *nfields = (uint32_t)n;
    return KIVIS_OK;
}

/** A length-prefixed run, its length checked against the bytes left
 * before anything is allocated for it. */
static inline int kivis_dec_run(kivis_reader *r, const uint8_t **p, size_t *n)
{
    uint64_t len;
    if (kivis_dec_varint(r, &len) || len > (uint64_t)(r->end - r->p))
        return KIVIS_ECORRUPT;
    *n = (size_t)len;
    *p = r->p;
    r->p += len;
    return KIVIS_OK;
}

/** Whether n bytes are text a C string can hold: well-formed UTF-8
 * without NUL (KIVIS_OK), else KIVIS_ECORRUPT. */
int kivis_dec_text(const uint8_t *p, size_t n);

/** Copy n bytes from s to d (room for n) if they are what kivis_dec_text
 * accepts: KIVIS_OK, else KIVIS_ECORRUPT, with d's n bytes then
 * unspecified.  ASCII text, the common case, is checked word by word as
 * it is copied, in one pass instead of a check and then a copy. */
int kivis_dec_text_copy(char *d, const uint8_t *s, size_t n);

/**
 * A char * field: a run of text (kivis_dec_text) copied with a NUL into
 * memory from alloc; the pointer is stored at dst (a char *, which need
 * not be aligned).
 */
static inline int kivis_dec_string(kivis_reader *r, void *dst,
                                   const kivis_allocator *alloc)
{
    const uint8_t *s;
    size_t n;
    if (kivis_dec_run(r, &s, &n))
        return KIVIS_ECORRUPT;
    char *d = (char *)alloc->malloc(alloc->ctx, n + 1);
    if (!d) /* bad text is still reported as such, before the memory */
        return kivis_dec_text(s, n) ? KIVIS_ECORRUPT : KIVIS_ENOMEM;
    if (kivis_dec_text_copy(d, s, n)) {
        alloc->free(alloc->ctx, d);
        return KIVIS_ECORRUPT;
    }
    d[n] = '\0';
    memcpy(dst, &d, sizeof d);
    return KIVIS_OK;
}

/** A char[size] field: a run of text shorter than size, copied to dst with
 * its NUL. */
static inline int kivis_dec_chars(kivis_reader *r, void *dst, size_t size)
{
    const uint8_t *s;
    size_t n;
    if (kivis_dec_run(r, &s, &n) || n >= size ||
        kivis_dec_text_copy((char *)dst, s, n))
        return KIVIS_ECORRUPT;
    ((char *)dst)[n] = '\0';
    return KIVIS_OK;
}

/**
 * A kivis_bytes field, stored at dst (need not be aligned): a run copied
 * into memory from alloc.  An empty run stays data NULL, unless keep_empty
 * (an optional blob, whose NULL would say absent): then one byte is
 * allocated and len is 0.
 */
static inline int kivis_dec_bytes(kivis_reader *r, void *dst, bool keep_empty,
                                  const kivis_allocator *alloc)
{
    kivis_bytes v = {NULL, 0};
    const uint8_t *s;
    if (kivis_dec_run(r, &s, &v.len))
        return KIVIS_ECORRUPT;
    if (v.len || keep_empty) {
        v.data = (uint8_t *)alloc->malloc(alloc->ctx, v.len ? v.len : 1);
        if (!v.data)
            return KIVIS_ENOMEM;
        if (v.len)
            memcpy(v.data, s, v.len);
    }
    memcpy(dst, &v, sizeof v);
    return KIVIS_OK;
}

#ifdef __cplusplus
}
#endif

#endif /* KIVIS_DECODE_H */
