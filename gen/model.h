/*
 * gen/model.h - the checked schema model inside kivis-gen: the front end
 * (lexer, parser, checker) builds it, the emitter reads it.
 *
 * Every name and array is owned by the kg_schema and freed with
 * kg_schema_free.  After kg_check succeeds every reference is resolved:
 * kg_type.enm / .strct / .record point into the same schema.
 */
#ifndef KIVIS_GEN_MODEL_H
#define KIVIS_GEN_MODEL_H

#include <stddef.h>
#include <stdint.h>

typedef struct kg_loc {
    const char *file; /* the schema's path as given; not owned */
    int line;         /* 1-based */
    int col;          /* 1-based, in bytes */
} kg_loc;

typedef enum kg_kind {
    KG_U8 = 1, KG_U16, KG_U32, KG_U64,
    KG_I8, KG_I16, KG_I32, KG_I64,
    KG_BOOL, KG_F32, KG_F64,
    KG_ENUM,   /* enum <name> declared in the schema */
    KG_STRING, /* char *          */
    KG_CHARS,  /* char name[N]    */
    KG_BYTES,  /* kivis_bytes     */
    KG_STRUCT, /* struct <name>: a plain struct declared in the schema */
    KG_KEY     /* <record>_key: a foreign key to that record */
} kg_kind;

typedef struct kg_enum kg_enum;
typedef struct kg_struct kg_struct;
typedef struct kg_record kg_record;

typedef struct kg_type {
    kg_kind kind;
    char *name;        /* as written for ENUM/STRUCT/KEY ("toy_kind", "point", "user_key") */
    uint32_t chars;    /* KG_CHARS: N of char name[N] */
    uint32_t array;    /* 0, or N of T name[N] (never for KG_CHARS) */
    kg_enum *enm;      /* resolved KG_ENUM */
    kg_struct *strct;  /* resolved KG_STRUCT */
    kg_record *record; /* resolved KG_KEY: the referenced record */
} kg_type;

/* Field attributes */
#define KG_ATTR_KEY 0x1u    /* [[key]] */
#define KG_ATTR_INDEX 0x2u  /* [[index]] */
#define KG_ATTR_UNIQUE 0x4u /* [[unique]] (implies an index) */
#define KG_ATTR_OPTIONAL 0x8u /* [[optional]]: the field may be absent */

/* [[references(...)]]: what removing the record a foreign key names does */
typedef enum kg_action {
    KG_REF_NONE = 0,
    KG_REF_RESTRICT,
    KG_REF_CASCADE,
    KG_REF_NULLIFY
} kg_action;

typedef struct kg_field {
    char *name;
    kg_loc loc;
    kg_type type;
    unsigned attrs;
    kg_action action;  /* KG_REF_NONE without [[references(...)]] */
    kg_loc action_loc; /* of the attribute */
    char *was;         /* [[was(old)]]: its name in the store, or NULL */
} kg_field;

/* An [[optional]] field other than a single char * or kivis_bytes (whose
 * NULL says absent) gets `bool has_<name>;` right before it. */
static inline int kg_has_presence_flag(const kg_field *f)
{
    return (f->attrs & KG_ATTR_OPTIONAL) &&
           (f->type.array || (f->type.kind != KG_STRING && f->type.kind != KG_BYTES));
}

struct kg_enum {
    char *name;
    kg_loc loc;
    size_t count;
    char **names;   /* TOY_BALL, ... */
    int64_t *values; /* explicit or implicit (previous + 1, from 0) */
};

struct kg_struct {
    char *name;
    kg_loc loc;
    size_t nfields;
    kg_field *fields;
};

typedef enum kg_key_kind { KG_KEY_AUTO = 1, KG_KEY_FIELDS, KG_KEY_DERIVED } kg_key_kind;

struct kg_record {
    char *name;
    kg_loc loc;
    kg_key_kind key_kind;
    size_t nfields;
    kg_field *fields;
    /* KG_KEY_DERIVED: the key struct's fields, from [[derived_key(...)]] */
    size_t nderived;
    kg_field *derived;
    uint32_t table; /* position among records, declaration order */
    char *was;         /* [[was(old)]]: its name in the store, or NULL */
    size_t ndropped;   /* [[dropped(f, ...)]]: stored fields to delete */
    char **dropped;
    /* kivis-gen --previous: in this schema, the previous schema's record
     * this one migrates from (NULL: none); in the previous schema, a
     * record something migrates from is renamed R_old and `stored` keeps
     * the name the store has it under. */
    kg_record *migrates_from;
    char *stored;
};

/* Everything declared, in declaration order. */
typedef struct kg_schema {
    char *name; /* from `schema <name>;` (with the prefix, after kg_prefix) */
    char *prefix; /* NULL, or what kg_prefix put before every name */
    kg_loc loc;
    size_t nenums, nstructs, nrecords;
    kg_enum *enums;
    kg_struct *structs;
    kg_record *records;
    size_t ndropped;   /* `[[dropped]] struct old;`: stored records to delete */
    char **dropped;
    struct kg_schema *previous; /* kivis-gen --previous: owned, or NULL */
} kg_schema;

/* Diagnostics: "file:line:col: error: message", the source line, a caret.
 * The front end reports every error it finds, not only the first. */
typedef struct kg_diag kg_diag;

/*
 * Parse and check `src` (len bytes, need not be NUL-terminated) read from
 * `file`.  Diagnostics go to `err` (a FILE *, typically stderr).
 * @return 0 and *out set (free with kg_schema_free) when the schema is
 *         valid; otherwise the number of errors (> 0) and *out = NULL.
 */
int kg_compile(const char *file, const char *src, size_t len, void *err,
               kg_schema **out);

void kg_schema_free(kg_schema *s);

/*
 * kg_compile of the file at `path`, as kivis-gen compiles it.
 * @return as kg_compile, or -1 when the file cannot be read (errno set,
 *         nothing printed, *out = NULL).
 */
int kg_compile_file(const char *path, void *err, kg_schema **out);

/* Read a whole file.  @return its bytes (malloc'd, *len of them) or NULL,
 * errno set. */
char *kg_read_file(const char *path, size_t *len);

/* ---- the descriptor's shape (shape.c) ----------------------------------
 * What kivis-gen emits for a checked record, for anyone building the same
 * descriptor: its key struct's fields (AUTO: one uint64_t id; FIELDS: the
 * [[key]] fields in order; DERIVED: the [[derived_key(...)]] fields) and
 * its indexes (the [[index]]/[[unique]] fields in order, then one per
 * field with a referential action but no [[index]]). */
size_t kg_key_nfields(const kg_record *r);
/* The i-th key field; *pos gets its position in the record (FIELDS). */
const kg_field *kg_key_field(const kg_record *r, size_t i, size_t *pos);
/* Whether f has [[index]] or [[unique]]. */
int kg_is_indexed(const kg_field *f);
size_t kg_index_count(const kg_record *r);
/* The field of the i-th index (i < kg_index_count); *pos gets its position
 * in the record. */
const kg_field *kg_index_field(const kg_record *r, size_t i, size_t *pos);

/* The changes a schema declares ([[was]], [[dropped]]), in the order both
 * the generated descriptor and `kivis migrate` list them: per record its
 * own rename, its fields' renames, its dropped fields; then the dropped
 * records.  `r` is the record a change belongs to, NULL for a dropped
 * record, whose name is then `table` (otherwise r->name); `field` is NULL
 * for a record's rename or drop, `was` NULL for a drop. */
enum kg_change_kind { KG_CHANGE_RENAME, KG_CHANGE_DROP };
typedef void (*kg_change_fn)(void *ctx, enum kg_change_kind kind, const kg_record *r,
                             const char *table, const char *field, const char *was);
/* Call fn (when not NULL) for each declared change.  @return how many. */
size_t kg_each_change(const kg_schema *s, kg_change_fn fn, void *ctx);

/* Whether prefix can start C identifiers: [A-Za-z_][A-Za-z0-9_]*. */
int kg_prefix_valid(const char *prefix);

/*
 * Put `prefix` before every name the generated files declare (types,
 * functions, constants, upper-cased for enum constants and table
 * constants); the names stored in the database stay as written.  Once per
 * schema, after kg_compile.  @return 0, or -1 (invalid prefix, no memory).
 */
int kg_prefix(kg_schema *s, const char *prefix);

/*
 * kivis-gen --previous: compare `now` (checked from NEW.kvs, whose `len`
 * bytes `src` are, read from `file`) with `old` (checked from OLD.kvs,
 * the schema that wrote the store), both without a prefix yet.  Each
 * record of `now` whose fields are not the old record's (by its name, or
 * its [[was]] name) with fields appended gets a typed migration: its old
 * record, renamed R_old, in r->migrates_from.  What cannot be migrated
 * (a changed key, an old field whose enum or struct changed, a name
 * R_old or R_migrate taken) is reported on `err` at its position in
 * NEW.kvs.  On success `now` owns `old` (now->previous).
 * @return 0, or the number of errors (`old` then still the caller's).
 */
int kg_previous(kg_schema *now, kg_schema *old, const char *file,
                const char *src, size_t len, void *err);

/*
 * Write <dir>/<schema>.kivis.h and <dir>/<schema>.kivis.c for `s`.
 * @return 0, or -1 with a message on `err` (errno kept).
 */
int kg_emit(const kg_schema *s, const char *dir, void *err);

#endif /* KIVIS_GEN_MODEL_H */
