/*
 * tools/kvs.c - the stored schema printed back as .kvs source, the
 * language of docs/schema.md, so kivis-gen can regenerate the C API of a
 * store from the store alone.
 *
 * The stored schema keeps what the source said: record, field, enum and
 * embedded struct names, kinds, array counts, char[N] sizes, enum values,
 * key strategies with their fields, and indexes.  Tables print in stored
 * order, which is the order kivis-gen numbers them in; enums and embedded
 * structs first, in the order the records first use them.
 */
#include "cli.h"

#include <inttypes.h>
#include <string.h>

enum { MAX_TYPES = 1024 };

/* Enums and embedded structs to declare, each once, by name (the loaded
 * descriptor gives each field its own copy). */
typedef struct decls {
    const kivis_enum_desc *enums[MAX_TYPES];
    const kivis_struct_desc *structs[MAX_TYPES];
    unsigned nenums, nstructs;
    bool overflow;
} decls;

static void collect(const kivis_schema_desc *schema, const kivis_struct_desc *sd, decls *d)
{
    for (uint32_t i = 0; i < sd->nfields; i++) {
        const kivis_field *f = &sd->fields[i];
        if (f->kind == KIVIS_ENUM) {
            unsigned j = 0;
            while (j < d->nenums && strcmp(d->enums[j]->name, f->enm->name))
                j++;
            if (j == d->nenums && j < MAX_TYPES)
                d->enums[d->nenums++] = f->enm;
            d->overflow |= j == MAX_TYPES;
        } else if (f->kind == KIVIS_STRUCT && !cli_is_key_type(schema, f->type->name)) {
            unsigned j = 0;
            while (j < d->nstructs && strcmp(d->structs[j]->name, f->type->name))
                j++;
            if (j == d->nstructs && j < MAX_TYPES) {
                d->structs[d->nstructs++] = f->type;
                collect(schema, f->type, d);
            }
            d->overflow |= j == MAX_TYPES;
        }
    }
}

static void print_enum(FILE *out, const kivis_enum_desc *e)
{
    fprintf(out, "enum %s {", e->name);
    int64_t next = 0;
    for (uint32_t i = 0; i < e->count; i++) {
        fprintf(out, "%s %s", i ? "," : "", e->names[i]);
        if (e->values[i] != next)
            fprintf(out, " = %" PRId32, e->values[i]);
        next = (int64_t)e->values[i] + 1;
    }
    fputs(" };\n\n", out);
}

static const char *scalar_type(uint32_t kind)
{
    static const char *const names[] = {
        [KIVIS_U8] = "uint8_t",  [KIVIS_U16] = "uint16_t", [KIVIS_U32] = "uint32_t",
        [KIVIS_U64] = "uint64_t", [KIVIS_I8] = "int8_t",   [KIVIS_I16] = "int16_t",
        [KIVIS_I32] = "int32_t", [KIVIS_I64] = "int64_t",  [KIVIS_BOOL] = "bool",
        [KIVIS_F32] = "float",   [KIVIS_F64] = "double",   [KIVIS_BYTES] = "kivis_bytes",
    };
    return kind < sizeof names / sizeof names[0] && names[kind] ? names[kind] : NULL;
}

/* "uint32_t age", "char *name", "char name[32]", "point corners[2]". */
static void print_decl(FILE *out, const kivis_field *f)
{
    switch (f->kind) {
    case KIVIS_STRING: fprintf(out, "char *%s", f->name); break;
    case KIVIS_CHARS: fprintf(out, "char %s[%zu]", f->name, f->size); break;
    case KIVIS_ENUM: fprintf(out, "enum %s %s", f->enm->name, f->name); break;
    case KIVIS_STRUCT: fprintf(out, "%s %s", f->type->name, f->name); break;
    default: fprintf(out, "%s %s", scalar_type(f->kind), f->name); break;
    }
    if (f->count)
        fprintf(out, "[%" PRIu32 "]", f->count);
}

/* The index of record field `field`, if one; a second one on the same
 * field, or one named otherwise than its field, has no .kvs spelling. */
static const kivis_index_desc *index_of(const kivis_table_desc *td, uint32_t field,
                                        int *unwritable)
{
    const kivis_index_desc *found = NULL;
    for (uint32_t i = 0; i < td->nindexes; i++) {
        const kivis_index_desc *ix = &td->indexes[i];
        if (ix->field != field)
            continue;
        if (found || strcmp(ix->name, td->record->fields[field].name) ||
            (ix->flags & ~(KIVIS_INDEX_UNIQUE | KIVIS_INDEX_ACTION | KIVIS_INDEX_HIDDEN)))
            *unwritable = 1;
        if (!found)
            found = ix;
    }
    return found;
}

static int print_record(FILE *out, const kivis_table_desc *td)
{
    int unwritable = 0;
    if (td->key_kind == KIVIS_KEY_DERIVED) {
        fputs("[[derived_key(", out);
        for (uint32_t i = 0; i < td->key->nfields; i++) {
            fputs(i ? ", " : "", out);
            print_decl(out, &td->key->fields[i]);
        }
        fputs(")]]\n", out);
    }
    /* kivis-gen orders a composite key by declaration: the key fields
     * must come in record order. */
    for (uint32_t i = 1; td->key_kind == KIVIS_KEY_FIELDS && i < td->key->nfields; i++)
        if (td->key_fields[i] <= td->key_fields[i - 1])
            unwritable = 1;
    fprintf(out, "struct %s {\n", td->name);
    for (uint32_t i = 0; i < td->record->nfields; i++) {
        const kivis_field *f = &td->record->fields[i];
        const kivis_index_desc *ix = index_of(td, i, &unwritable);
        fputs("    ", out);
        if (td->key_kind == KIVIS_KEY_FIELDS && (f->flags & KIVIS_FIELD_KEY))
            fputs("[[key]] ", out);
        if (ix && !(ix->flags & KIVIS_INDEX_HIDDEN))
            fputs(ix->flags & KIVIS_INDEX_UNIQUE ? "[[unique]] " : "[[index]] ", out);
        if (ix && (ix->flags & KIVIS_INDEX_ACTION))
            fprintf(out, "[[references(%s)]] ", kivis_action_name(ix->flags));
        if (f->flags & KIVIS_FIELD_OPTIONAL)
            fputs("[[optional]] ", out);
        print_decl(out, f);
        fputs(";\n", out);
    }
    fputs("};\n", out);
    if (unwritable)
        fprintf(out, "/* kivis: record %s has a key order or an index (another name, a "
                     "second index on one field) that .kvs cannot write; printed "
                     "as near as it goes */\n", td->name);
    fputc('\n', out);
    return unwritable;
}

int cli_print_kvs(FILE *out, const kivis_schema_desc *schema)
{
    static decls d; /* large; the tool prints one schema at a time */
    memset(&d, 0, sizeof d);
    for (uint32_t t = 0; t < schema->ntables; t++) {
        collect(schema, schema->tables[t].record, &d);
        collect(schema, schema->tables[t].key, &d);
    }
    fprintf(out, "/* the schema stored in this store, as kivis-gen reads it */\n"
                 "schema %s;\n\n", schema->name);
    for (unsigned i = 0; i < d.nenums; i++)
        print_enum(out, d.enums[i]);
    for (unsigned i = 0; i < d.nstructs; i++) {
        fprintf(out, "[[embedded]]\nstruct %s {\n", d.structs[i]->name);
        for (uint32_t j = 0; j < d.structs[i]->nfields; j++) {
            fputs("    ", out);
            print_decl(out, &d.structs[i]->fields[j]);
            fputs(";\n", out);
        }
        fputs("};\n\n", out);
    }
    int unwritable = d.overflow;
    for (uint32_t t = 0; t < schema->ntables; t++)
        unwritable |= print_record(out, &schema->tables[t]);
    return unwritable;
}
