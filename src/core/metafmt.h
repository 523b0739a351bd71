/*
 * src/core/metafmt.h - readers of the stored schema format (table 0),
 * shared by meta.c, which compares it with a compiled schema, and
 * stored.c, which builds a runtime descriptor from it.  The format itself
 * is documented at the top of meta.c.
 */
#ifndef KIVIS_METAFMT_H
#define KIVIS_METAFMT_H

#include "engine.h"

#include <string.h>

#define KIVIS_META_FORMAT 1u

/* The key of the stored schema: table 0, slot 0, "schema". */
extern const uint8_t kivis__schema_key[8];

static inline kivis_slice kivis__schema_key_slice(void)
{
    return kivis_slice_make(kivis__schema_key, sizeof kivis__schema_key);
}

/* A varint that must fit 32 bits, else KIVIS_ECORRUPT. */
static inline int kivis__meta_u32(kivis_reader *r, uint32_t *v)
{
    uint64_t x;
    int rc = kivis__varint_get(r, &x);
    if (!rc && x > UINT32_MAX)
        rc = KIVIS_ECORRUPT;
    *v = (uint32_t)x;
    return rc;
}

/* A varint length and that many bytes, borrowed from the reader. */
static inline int kivis__meta_str(kivis_reader *r, kivis_slice *s)
{
    uint64_t n;
    int rc = kivis__varint_get(r, &n);
    if (rc)
        return rc;
    if (n > (uint64_t)(r->end - r->p))
        return KIVIS_ECORRUPT;
    *s = kivis_slice_make(r->p, (size_t)n);
    r->p += n;
    return KIVIS_OK;
}

static inline bool kivis__meta_str_is(kivis_slice s, const char *c)
{
    return s.len == strlen(c) && !memcmp(s.data, c, s.len);
}

/* The schema header: "KVS" format name next_table_id ntables.  Returns
 * KIVIS_EVERSION (with *format set) for a format this build cannot read,
 * KIVIS_ECORRUPT for anything malformed. */
typedef struct kivis_meta_header {
    uint32_t format, next_table, ntables;
    kivis_slice name;
} kivis_meta_header;

int kivis__meta_header(kivis_reader *r, kivis_meta_header *h);

/* One stored table, parsed in place: readers positioned at the first
 * entry of its key fields, fields and indexes. */
typedef struct kivis_meta_table {
    uint32_t id, key_kind, version, next_index;
    kivis_slice name;
    kivis_reader keys, fields, indexes; /* each at its first entry */
    uint32_t nkeys, nfields, nindexes;
    kivis_slice span; /* the whole entry, to copy it unchanged */
} kivis_meta_table;

int kivis__meta_table(kivis_reader *r, kivis_meta_table *t);

/* One stored index entry: id name field flags. */
typedef struct kivis_meta_index {
    uint32_t id, flags;
    kivis_slice name, field;
} kivis_meta_index;

int kivis__meta_index(kivis_reader *r, kivis_meta_index *ix);

/* The stored schema blob as a descriptor, as kivis_schema_load builds it
 * (stored.c), and one table state per table in stored order (desc, stored
 * id, layout version, index ids), living as long as the descriptor: what
 * kivis_check walks the tables the compiled schema lacks with.  Free with
 * kivis_schema_free. */
int kivis__schema_parse(kivis_slice stored, const kivis_allocator *alloc,
                        kivis_schema_desc **out, kivis_table_state **states);

#endif /* KIVIS_METAFMT_H */
