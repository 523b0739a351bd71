/* SPDX-License-Identifier: MIT */
/*
 * kivis/schema.h - the constant schema descriptor that drives the runtime.
 *
 * kivis-gen emits one kivis_schema_desc per schema file, and with each
 * record a decoder of its values (kivis_struct_desc.decode); tests and
 * tools also write descriptors by hand, or build them at run time, with
 * no decoder: the runtime then walks the fields.  The structs only grow at
 * their end, so a descriptor initialised positionally by an older header
 * still reads as one without the newer members.  Descriptors are read-only
 * and must outlive every db opened with them (static storage in practice).
 * Nothing here allocates.
 */
#ifndef KIVIS_SCHEMA_H
#define KIVIS_SCHEMA_H

#include "common.h"
#include "decode.h"

#ifdef __cplusplus
extern "C" {
#endif

/** The C type of one field element. */
typedef enum kivis_kind {
    KIVIS_U8 = 1, /* uint8_t  */
    KIVIS_U16,    /* uint16_t */
    KIVIS_U32,    /* uint32_t */
    KIVIS_U64,    /* uint64_t */
    KIVIS_I8,     /* int8_t   */
    KIVIS_I16,    /* int16_t  */
    KIVIS_I32,    /* int32_t  */
    KIVIS_I64,    /* int64_t  */
    KIVIS_BOOL,   /* bool     */
    KIVIS_F32,    /* float    */
    KIVIS_F64,    /* double   */
    KIVIS_ENUM,   /* an enum declared in the schema; size is sizeof the enum */
    KIVIS_STRING, /* char *: owned, NUL-terminated UTF-8; NULL stores ""
                     (absent, when the field is optional) */
    KIVIS_CHARS,  /* char name[N]: inline NUL-terminated UTF-8; size is N */
    KIVIS_BYTES,  /* kivis_bytes: owned blob */
    KIVIS_STRUCT  /* a nested plain struct or another record's key struct */
} kivis_kind;

typedef struct kivis_struct_desc kivis_struct_desc;

/** An enum declared in the schema: its names and values, in order. */
typedef struct kivis_enum_desc {
    const char *name;
    uint32_t count;
    const char *const *names;
    const int32_t *values;
} kivis_enum_desc;

/** Field flags */
#define KIVIS_FIELD_KEY 0x1u      /* part of the record's key ([[key]]) */
#define KIVIS_FIELD_OPTIONAL 0x2u /* [[optional]]: the field may be absent */

/*
 * An optional field (KIVIS_FIELD_OPTIONAL, top-level record fields only,
 * never a key field) says whether it holds a value:
 *  - a single char *: NULL is absent ("" is a present empty string);
 *  - a single kivis_bytes: data == NULL is absent (a present empty blob
 *    has data != NULL and len 0);
 *  - any other field, arrays included: a `bool` presence flag declared
 *    immediately before the field in the C struct (`bool has_age;
 *    uint32_t age;`), so at the first byte after the previous field's
 *    last element (offset 0 for the first field).  It has no descriptor
 *    entry of its own: kivis-gen checks that layout when the generated
 *    source is compiled.  false is absent, and the field's bytes are then
 *    ignored (written as zero by every read).
 * Absent values are stored in one byte and left out of unique indexes
 * (docs/encoding.md, docs/schema.md).
 */

/** One member of a struct.  A fixed array T name[N] has count = N. */
typedef struct kivis_field {
    const char *name;
    uint32_t kind;                  /* kivis_kind of one element */
    uint32_t count;                 /* 0 for a single value, N for T name[N] */
    size_t offset;                  /* offsetof(struct, name) */
    size_t size;                    /* sizeof one element (CHARS: N) */
    const kivis_struct_desc *type;  /* KIVIS_STRUCT: the element's layout */
    const kivis_enum_desc *enm;     /* KIVIS_ENUM: the enum */
    uint32_t flags;                 /* KIVIS_FIELD_* */
} kivis_field;

/**
 * A C struct: a record, a key struct or a nested plain struct.  `decode`
 * comes last so that a descriptor written by hand, positionally, leaves it
 * NULL.
 */
struct kivis_struct_desc {
    const char *name; /* "user", "user_key", "point" */
    size_t size;      /* sizeof the C struct */
    uint32_t nfields;
    const kivis_field *fields;
    /* A record's value decoder specialised to these fields (kivis-gen
     * emits one per record, out of kivis/decode.h's steps), which every
     * decode of the table's values then calls instead of walking `fields`.
     * It must read exactly what the walk reads and fail where it fails,
     * with the same status.  NULL: the walk. */
    kivis_decode_fn decode;
};

/** How a table's primary key is made. */
typedef enum kivis_key_kind {
    KIVIS_KEY_AUTO = 1, /* key struct { uint64_t id; }, numbered from 1 */
    KIVIS_KEY_FIELDS,   /* the [[key]] fields of the record, in key order */
    KIVIS_KEY_DERIVED   /* computed by derive_key from the whole record */
} kivis_key_kind;

/**
 * Compute a derived key.  Writes a complete key struct to key_out (any
 * owned members allocated with malloc are not supported: derived keys are
 * made of fixed-size fields).  @return KIVIS_OK or a negative status, which
 * the failing operation then returns.
 */
typedef int (*kivis_derive_fn)(const void *record, void *key_out);

/** Index flags */
#define KIVIS_INDEX_UNIQUE 0x1u /* [[unique]]: at most one record per value */

/*
 * Referential actions ([[references(...)]] in the schema).  An index over
 * a foreign-key field (a single KIVIS_STRUCT field whose type is another
 * table's key struct, or its own) may carry one in the bits of
 * KIVIS_INDEX_ACTION.  Its entries (referenced key, referencing record key)
 * are then also the reverse lookup the engine needs: every write of the
 * record fails with KIVIS_ECONSTRAINT unless the record the field names
 * exists, and removing that record does the action to the records whose
 * entries the index holds under its key, in the same transaction.
 * kivis-gen emits such an index for each field with the attribute: at the
 * position of its [[index]] when the field has one, else after the
 * table's other indexes, named after the field.
 */
#define KIVIS_INDEX_ACTION 0xF0u
#define KIVIS_INDEX_RESTRICT 0x10u /* the remove fails, nothing removed */
#define KIVIS_INDEX_CASCADE 0x20u  /* the referrers are removed too */
#define KIVIS_INDEX_NULLIFY 0x30u  /* the referrers' field is made absent:
                                      an optional field only (KIVIS_EINVAL
                                      at kivis_open otherwise) */

/* kivis-gen's reverse lookup for a [[references(...)]] field that has no
 * [[index]]: the generated API does not name it, and `kivis schema` prints
 * the field without [[index]].  It comes after the declared indexes. */
#define KIVIS_INDEX_HIDDEN 0x100u

/**
 * The schema word of the referential action in an index's `flags`:
 * "restrict", "cascade" or "nullify", or NULL when the flags carry none.
 * The string is static.
 */
const char *kivis_action_name(uint32_t index_flags);

/** A secondary index over one field of a record. */
typedef struct kivis_index_desc {
    const char *name; /* the indexed field's name, or a chosen index name */
    uint32_t field;   /* position of the indexed field in record->fields */
    uint32_t flags;   /* KIVIS_INDEX_UNIQUE, at most one of
                         KIVIS_INDEX_RESTRICT, _CASCADE, _NULLIFY, and
                         KIVIS_INDEX_HIDDEN */
} kivis_index_desc;

/** One record type, stored as one table. */
typedef struct kivis_table_desc {
    const char *name;
    const kivis_struct_desc *record;
    const kivis_struct_desc *key;
    uint32_t key_kind;          /* kivis_key_kind */
    const uint32_t *key_fields; /* KEY_FIELDS: for each key-struct field,
                                   the position of its record field */
    kivis_derive_fn derive_key; /* KEY_DERIVED only */
    uint32_t nindexes;
    const kivis_index_desc *indexes;
} kivis_table_desc;

/**
 * Whether field i of the struct `sd` at `obj` holds a value: 1, or 0 when
 * it is an optional field that is absent (always 1 for a field that is not
 * optional).  A presence flag byte other than 0/1 counts as present.
 */
int kivis_field_present(const kivis_struct_desc *sd, uint32_t i, const void *obj);

/**
 * The offset of field i's `bool` presence flag in its struct, or SIZE_MAX
 * when it has none (not optional, or a single char * / kivis_bytes, whose
 * NULL says absent).  Setting the flag true makes the field present.
 */
size_t kivis_presence_offset(const kivis_struct_desc *sd, uint32_t i);

/** What a kivis_schema_change declares. */
typedef enum kivis_evolve_kind {
    KIVIS_EVOLVE_RENAME = 1, /* [[was(old)]]: the store calls it `was` */
    KIVIS_EVOLVE_DROP        /* [[dropped(...)]]: delete it from the store */
} kivis_evolve_kind;

/**
 * One declared schema change, applied by kivis_open to a store written
 * under the earlier schema (docs/schema.md, "Evolving a schema"):
 *  - RENAME, field NULL: table `table` was stored as table `was`;
 *  - RENAME, field set: field `field` of table `table` (its new name) was
 *    stored as `was` (top-level record fields; a key field is renamed in
 *    the key struct too);
 *  - DROP, field NULL: stored table `table`, which the schema no longer
 *    declares, is deleted with its records and indexes;
 *  - DROP, field set: stored field `field` of table `table` is deleted
 *    from every record (never a key field).
 * Without a declaration a stored table the schema lacks is kept untouched
 * and a stored field it lacks is refused: nothing is dropped by omission.
 */
typedef struct kivis_schema_change {
    uint32_t kind;     /* kivis_evolve_kind */
    const char *table; /* the table's name in this schema (DROP of a
                          table: its stored name) */
    const char *field; /* the field's name in this schema, or NULL */
    const char *was;   /* RENAME: the stored name; DROP: NULL */
} kivis_schema_change;

/**
 * A typed migration's function, written by the application: fill `out`
 * (a record of the table in this schema, zeroed) from `old` (the record as
 * the previous schema stored it, decoded with kivis_migration.from), with
 * `ctx` the kivis_options.migrate_ctx of the open.  Strings and blobs put
 * in `out` must come from the db's allocator (malloc by default) or be
 * moved out of `old` (set its pointer to NULL): the runtime frees both
 * records after each call.  The record's key must stay what it was.
 * @return KIVIS_OK, or any other value, which aborts the open with
 * nothing changed (the message names table, record key and the value).
 */
typedef int (*kivis_migrate_fn)(const void *old, void *out, void *ctx);

/**
 * A typed migration (kivis-gen --previous; docs/schema.md, "Typed
 * migrations"): when table `table` of this schema is stored with exactly
 * the layout of `from` (its key and record fields, as the stored schema
 * describes them), kivis_open decodes every record with `from->record`,
 * hands it to `fn` and writes what it returns under the same key, then
 * builds the table's indexes again; all of it in the open's one write
 * transaction.  `from->name` is the table's stored name; its key must be
 * the one `table` has (a migration never changes keys); its indexes,
 * key_fields and derive_key are not used.
 */
typedef struct kivis_migration {
    const kivis_table_desc *from; /* the table as the previous schema had it */
    uint32_t table;               /* position of the table in `tables` */
    kivis_migrate_fn fn;
} kivis_migration;

/**
 * A whole schema: the manifest of tables.
 *
 * Descriptors only grow at the end, each new member zero by default (a
 * descriptor written for an earlier version, its trailing members left
 * out, keeps its meaning; a compiler with -Wmissing-field-initializers
 * asks for them spelled out).  Version 1: name, ntables, tables; version
 * 2 adds the declared changes; version 3 the typed migrations.
 */
typedef struct kivis_schema_desc {
    const char *name;
    uint32_t ntables;
    const kivis_table_desc *tables;
    uint32_t nchanges;                   /* 0 when none are declared */
    const kivis_schema_change *changes;  /* in any order */
    uint32_t nmigrations;                /* 0 when there are none */
    const kivis_migration *migrations;   /* at most one per table */
} kivis_schema_desc;

#ifdef __cplusplus
}
#endif

#endif /* KIVIS_SCHEMA_H */
