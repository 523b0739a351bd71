/*
 * gen/prefix.c - kg_prefix: put a prefix before every name the generated
 * files declare, so that two schemas (or two versions of one) that both
 * have a record `user` can live in one program.
 *
 * The model's names are the C identifiers the emitter writes, so the
 * prefix goes into the model itself: records, structs, enums and their
 * constants (upper-cased prefix), type references, and the schema's own
 * name (pets_db, PETS_USER and the file names follow from it).  The names
 * stored in the database must not change with it: the emitter writes
 * those strings with the prefix cut off again (s->prefix says how much).
 */
#include "model.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

int kg_prefix_valid(const char *prefix)
{
    if (!prefix || !(isalpha((unsigned char)prefix[0]) || prefix[0] == '_'))
        return 0;
    for (const char *p = prefix; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '_')
            return 0;
    return 1;
}

/* *name = pre + *name, upper-casing pre when upper. */
static int prepend(char **name, const char *pre, int upper)
{
    size_t n = strlen(pre), m = strlen(*name);
    char *s = malloc(n + m + 1);
    if (!s)
        return -1;
    for (size_t i = 0; i < n; i++)
        s[i] = upper ? (char)toupper((unsigned char)pre[i]) : pre[i];
    memcpy(s + n, *name, m + 1);
    free(*name);
    *name = s;
    return 0;
}

/* Type references name an enum, a struct or a key of the schema. */
static int prefix_fields(kg_field *f, size_t n, const char *pre)
{
    for (size_t i = 0; i < n; i++) {
        kg_type *t = &f[i].type;
        if ((t->kind == KG_ENUM || t->kind == KG_STRUCT || t->kind == KG_KEY) &&
            t->name && prepend(&t->name, pre, 0))
            return -1;
    }
    return 0;
}

int kg_prefix(kg_schema *s, const char *prefix)
{
    if (!kg_prefix_valid(prefix) || s->prefix)
        return -1;
    if (!(s->prefix = malloc(strlen(prefix) + 1)))
        return -1;
    strcpy(s->prefix, prefix);
    int rc = prepend(&s->name, prefix, 0);
    for (size_t i = 0; !rc && i < s->nenums; i++) {
        rc = prepend(&s->enums[i].name, prefix, 0);
        for (size_t j = 0; !rc && j < s->enums[i].count; j++)
            rc = prepend(&s->enums[i].names[j], prefix, 1);
    }
    for (size_t i = 0; !rc && i < s->nstructs; i++)
        rc = prepend(&s->structs[i].name, prefix, 0) ||
             prefix_fields(s->structs[i].fields, s->structs[i].nfields, prefix);
    for (size_t i = 0; !rc && i < s->nrecords; i++) {
        kg_record *r = &s->records[i];
        rc = prepend(&r->name, prefix, 0) ||
             prefix_fields(r->fields, r->nfields, prefix) ||
             prefix_fields(r->derived, r->nderived, prefix);
    }
    /* The previous schema's records refer to this one's types. */
    if (!rc && s->previous)
        rc = kg_prefix(s->previous, prefix);
    return rc ? -1 : 0;
}
