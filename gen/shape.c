/*
 * gen/shape.c - the shape of the descriptor a checked record gets: the
 * fields of its key struct and its indexes, in the order kivis-gen emits
 * them, and the schema's declared changes in theirs.  The emitter writes them as C; the kivis tool builds a runtime
 * descriptor from them (`kivis migrate`), so both see one order.
 */
#include "model.h"

/* The key struct of an AUTO record: { uint64_t id; }. */
static const kg_field auto_key_field = {.name = (char *)"id",
                                        .type = {.kind = KG_U64}};

size_t kg_key_nfields(const kg_record *r)
{
    size_t n = 0;
    switch (r->key_kind) {
    case KG_KEY_AUTO:
        return 1;
    case KG_KEY_DERIVED:
        return r->nderived;
    case KG_KEY_FIELDS:
        for (size_t i = 0; i < r->nfields; i++)
            n += (r->fields[i].attrs & KG_ATTR_KEY) != 0;
        return n;
    }
    return 0;
}

const kg_field *kg_key_field(const kg_record *r, size_t i, size_t *pos)
{
    *pos = 0;
    if (r->key_kind == KG_KEY_AUTO)
        return &auto_key_field;
    if (r->key_kind == KG_KEY_DERIVED)
        return &r->derived[i];
    for (size_t j = 0; j < r->nfields; j++) {
        if (!(r->fields[j].attrs & KG_ATTR_KEY))
            continue;
        if (i-- == 0) {
            *pos = j;
            return &r->fields[j];
        }
    }
    return NULL;
}

int kg_is_indexed(const kg_field *f)
{
    return (f->attrs & (KG_ATTR_INDEX | KG_ATTR_UNIQUE)) != 0;
}

/* A field with a referential action but no [[index]] gets the engine's
 * reverse lookup, an index the generated API does not name. */
static int has_index(const kg_field *f)
{
    return kg_is_indexed(f) || f->action;
}

size_t kg_index_count(const kg_record *r)
{
    size_t n = 0;
    for (size_t i = 0; i < r->nfields; i++)
        n += has_index(&r->fields[i]);
    return n;
}

const kg_field *kg_index_field(const kg_record *r, size_t i, size_t *pos)
{
    for (int declared = 1; declared >= 0; declared--)
        for (size_t j = 0; j < r->nfields; j++) {
            const kg_field *f = &r->fields[j];
            if (!has_index(f) || kg_is_indexed(f) != declared || i-- != 0)
                continue;
            *pos = j;
            return f;
        }
    return NULL;
}

/* fn, unless NULL (a count), for one change. */
static void tell_change(kg_change_fn fn, void *ctx, enum kg_change_kind kind,
                        const kg_record *r, const char *table, const char *field,
                        const char *was)
{
    if (fn)
        fn(ctx, kind, r, table, field, was);
}

size_t kg_each_change(const kg_schema *s, kg_change_fn fn, void *ctx)
{
    size_t n = 0;
    for (size_t i = 0; i < s->nrecords; i++) {
        const kg_record *r = &s->records[i];
        if (r->was) {
            tell_change(fn, ctx, KG_CHANGE_RENAME, r, r->name, NULL, r->was);
            n++;
        }
        for (size_t j = 0; j < r->nfields; j++) {
            if (!r->fields[j].was)
                continue;
            tell_change(fn, ctx, KG_CHANGE_RENAME, r, r->name, r->fields[j].name,
                        r->fields[j].was);
            n++;
        }
        for (size_t j = 0; j < r->ndropped; j++, n++)
            tell_change(fn, ctx, KG_CHANGE_DROP, r, r->name, r->dropped[j], NULL);
    }
    for (size_t i = 0; i < s->ndropped; i++, n++)
        tell_change(fn, ctx, KG_CHANGE_DROP, NULL, s->dropped[i], NULL, NULL);
    return n;
}
