/*
 * tools/kvsload.c - a .kvs file as a runtime schema descriptor, for
 * `kivis migrate`.
 *
 * kivis_genlib parses and checks the file (its diagnostics are kivis-gen's,
 * word for word); the descriptor then gets what kivis-gen would emit for
 * it, in the same order (the key fields and indexes of gen/shape.c, the
 * declared [[was]]/[[dropped]] changes), and kivis_schema_layout lays it
 * out as kivis_schema_load lays out a stored schema.  The descriptor
 * points into the checked model, which lives as long as it does.
 */
#include "cli.h"

#include <model.h>

#include <kivis/inspect.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* kivis-gen's kinds are the runtime's, in the same order; a foreign key
 * is a nested struct (the referenced table's key struct). */
_Static_assert(KG_U8 == (int)KIVIS_U8 && KG_I64 == (int)KIVIS_I64 &&
                   KG_ENUM == (int)KIVIS_ENUM && KG_STRUCT == (int)KIVIS_STRUCT,
               "kg_kind and kivis_kind agree");

/* Every allocation of one built descriptor, freed together. */
typedef struct piece {
    struct piece *next;
    max_align_t align;
} piece;

typedef struct built {
    kivis_schema_desc desc; /* first: cli_kvs_free casts back to this */
    kg_schema *model;
    piece *pieces;
    /* Per declaration, in the model's order. */
    kivis_enum_desc *enums;
    kivis_struct_desc *structs, *keys, *records;
} built;

static void *take(built *b, size_t count, size_t size)
{
    size_t n = count ? count : 1;
    if (size && n > (SIZE_MAX - sizeof(piece)) / size)
        return NULL;
    piece *p = calloc(1, sizeof(piece) + n * size);
    if (!p)
        return NULL;
    p->next = b->pieces;
    b->pieces = p;
    return p + 1;
}

static int build_enum(built *b, const kg_enum *ke, kivis_enum_desc *e)
{
    int32_t *values = take(b, ke->count, sizeof *values);
    if (!values)
        return KIVIS_ENOMEM;
    for (size_t i = 0; i < ke->count; i++)
        values[i] = (int32_t)ke->values[i]; /* the checker kept them in range */
    e->name = ke->name;
    e->count = (uint32_t)ke->count;
    e->names = (const char *const *)ke->names;
    e->values = values;
    return KIVIS_OK;
}

/* A record field's flags; a key struct's and a plain struct's fields have
 * none, as kivis-gen emits them. */
static uint32_t field_flags(const kg_field *kf, bool in_record)
{
    if (!in_record)
        return 0;
    if (kf->attrs & KG_ATTR_KEY)
        return KIVIS_FIELD_KEY;
    return kf->attrs & KG_ATTR_OPTIONAL ? KIVIS_FIELD_OPTIONAL : 0;
}

static void build_field(const built *b, const kg_field *kf, bool in_record,
                        kivis_field *f)
{
    const kg_schema *s = b->model;
    const kg_type *t = &kf->type;
    f->name = kf->name;
    f->kind = t->kind == KG_KEY ? KIVIS_STRUCT : (uint32_t)t->kind;
    f->count = t->array;
    f->size = t->kind == KG_CHARS ? t->chars : 0; /* the others: the layout */
    if (t->kind == KG_STRUCT)
        f->type = &b->structs[t->strct - s->structs];
    else if (t->kind == KG_KEY)
        f->type = &b->keys[t->record - s->records];
    else if (t->kind == KG_ENUM)
        f->enm = &b->enums[t->enm - s->enums];
    f->flags = field_flags(kf, in_record);
}

/* A struct of n fields, each from field(owner, i). */
static int build_struct(built *b, const char *name, size_t n,
                        const kg_field *(*field)(const void *, size_t),
                        const void *owner, bool in_record, kivis_struct_desc *sd)
{
    kivis_field *fields = take(b, n, sizeof *fields);
    if (!fields)
        return KIVIS_ENOMEM;
    for (size_t i = 0; i < n; i++)
        build_field(b, field(owner, i), in_record, &fields[i]);
    sd->name = name;
    sd->nfields = (uint32_t)n;
    sd->fields = fields;
    return KIVIS_OK;
}

static const kg_field *struct_field(const void *owner, size_t i)
{
    return &((const kg_struct *)owner)->fields[i];
}

static const kg_field *record_field(const void *owner, size_t i)
{
    return &((const kg_record *)owner)->fields[i];
}

static const kg_field *key_field(const void *owner, size_t i)
{
    size_t pos;
    return kg_key_field(owner, i, &pos);
}

static int build_indexes(built *b, const kg_record *r, kivis_table_desc *td)
{
    static const uint32_t actions[] = {0, KIVIS_INDEX_RESTRICT, KIVIS_INDEX_CASCADE,
                                       KIVIS_INDEX_NULLIFY};
    size_t n = kg_index_count(r);
    kivis_index_desc *ix = take(b, n, sizeof *ix);
    if (!ix)
        return KIVIS_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        size_t pos;
        const kg_field *f = kg_index_field(r, i, &pos);
        ix[i].name = f->name;
        ix[i].field = (uint32_t)pos;
        ix[i].flags = (f->attrs & KG_ATTR_UNIQUE ? KIVIS_INDEX_UNIQUE : 0) |
                      actions[f->action] | (kg_is_indexed(f) ? 0 : KIVIS_INDEX_HIDDEN);
    }
    td->nindexes = (uint32_t)n;
    td->indexes = ix;
    return KIVIS_OK;
}

static int build_table(built *b, size_t i, kivis_table_desc *td)
{
    const kg_record *r = &b->model->records[i];
    td->name = r->name;
    td->record = &b->records[i];
    td->key = &b->keys[i];
    td->key_kind = (uint32_t)r->key_kind; /* KG_KEY_* are KIVIS_KEY_* */
    size_t nkey = kg_key_nfields(r);
    if (r->key_kind == KG_KEY_FIELDS) {
        uint32_t *map = take(b, nkey, sizeof *map);
        if (!map)
            return KIVIS_ENOMEM;
        for (size_t k = 0; k < nkey; k++) {
            size_t pos;
            kg_key_field(r, k, &pos);
            map[k] = (uint32_t)pos;
        }
        td->key_fields = map;
    }
    return build_indexes(b, r, td);
}

/* One declared change, appended at *ctx. */
static void add_change(void *ctx, enum kg_change_kind kind, const kg_record *r,
                       const char *table, const char *field, const char *was)
{
    kivis_schema_change **next = ctx;
    (void)r;
    *(*next)++ = (kivis_schema_change){
        kind == KG_CHANGE_RENAME ? KIVIS_EVOLVE_RENAME : KIVIS_EVOLVE_DROP, table,
        field, was};
}

/* The declared renames and drops, in the order kivis-gen lists them. */
static int build_changes(built *b)
{
    size_t n = kg_each_change(b->model, NULL, NULL);
    kivis_schema_change *c = take(b, n, sizeof *c), *next = c;
    if (!c)
        return KIVIS_ENOMEM;
    kg_each_change(b->model, add_change, &next);
    b->desc.nchanges = (uint32_t)n;
    b->desc.changes = c;
    return KIVIS_OK;
}

static char *key_struct_name(built *b, const char *record)
{
    size_t n = strlen(record);
    char *name = take(b, n + sizeof "_key", 1);
    if (name) {
        memcpy(name, record, n);
        memcpy(name + n, "_key", sizeof "_key");
    }
    return name;
}

static int build(built *b)
{
    const kg_schema *s = b->model;
    kivis_table_desc *tables = take(b, s->nrecords, sizeof *tables);
    b->enums = take(b, s->nenums, sizeof *b->enums);
    b->structs = take(b, s->nstructs, sizeof *b->structs);
    b->keys = take(b, s->nrecords, sizeof *b->keys);
    b->records = take(b, s->nrecords, sizeof *b->records);
    if (!tables || !b->enums || !b->structs || !b->keys || !b->records)
        return KIVIS_ENOMEM;
    int rc = KIVIS_OK;
    for (size_t i = 0; !rc && i < s->nenums; i++)
        rc = build_enum(b, &s->enums[i], &b->enums[i]);
    for (size_t i = 0; !rc && i < s->nstructs; i++)
        rc = build_struct(b, s->structs[i].name, s->structs[i].nfields, struct_field,
                          &s->structs[i], false, &b->structs[i]);
    for (size_t i = 0; !rc && i < s->nrecords; i++) {
        const kg_record *r = &s->records[i];
        const char *key_name = key_struct_name(b, r->name);
        rc = key_name ? build_struct(b, key_name, kg_key_nfields(r), key_field, r, false,
                                     &b->keys[i])
                      : KIVIS_ENOMEM;
        if (!rc)
            rc = build_struct(b, r->name, r->nfields, record_field, r, true,
                              &b->records[i]);
        if (!rc)
            rc = build_table(b, i, &tables[i]);
    }
    b->desc.name = s->name;
    b->desc.ntables = (uint32_t)s->nrecords;
    b->desc.tables = tables;
    if (!rc)
        rc = build_changes(b);
    return rc ? rc : kivis_schema_layout(&b->desc);
}

void cli_kvs_free(kivis_schema_desc *schema)
{
    built *b = (built *)schema;
    if (!b)
        return;
    while (b->pieces) {
        piece *next = b->pieces->next;
        free(b->pieces);
        b->pieces = next;
    }
    kg_schema_free(b->model);
    free(b);
}

int cli_kvs_load(const char *path, kivis_schema_desc **out)
{
    *out = NULL;
    built *b = calloc(1, sizeof *b);
    if (!b)
        return cli_fail("out of memory");
    int errors = kg_compile_file(path, stderr, &b->model);
    if (errors) {
        int saved = errno;
        free(b);
        return errors < 0 ? cli_fail("%s: cannot read: %s", path, strerror(saved))
                          : cli_fail("%s: %d error%s: nothing was changed", path, errors,
                                     errors == 1 ? "" : "s");
    }
    int rc = build(b);
    if (rc) {
        cli_kvs_free(&b->desc);
        return cli_fail("%s: building its descriptor: %s", path, kivis_strerror(rc));
    }
    *out = &b->desc;
    return 0;
}
