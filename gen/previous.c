/*
 * gen/previous.c - kg_previous: kivis-gen --previous OLD.kvs, the typed
 * migrations from the schema that wrote a store to the one being compiled.
 *
 * A record that changed in any other way than fields appended gets one:
 * the old record's type, renamed R_old, goes into the generated files with
 * its descriptor, and the user writes R_migrate.  Its fields may use only
 * types this schema still has unchanged (the generated R_old refers to
 * them), and its key must be the new record's: kivis_open writes each
 * migrated record back under the key it had.  Every mismatch is reported
 * at its place in NEW.kvs.
 */
#include "front.h"

#include <stdlib.h>
#include <string.h>

/* Types are compared by what they make in C and in the store. */
static int same_type(const kg_type *a, const kg_type *b)
{
    return a->kind == b->kind && a->chars == b->chars && a->array == b->array &&
           !a->name == !b->name && (!a->name || !strcmp(a->name, b->name));
}

static int same_field(const kg_field *a, const kg_field *b)
{
    unsigned layout = KG_ATTR_KEY | KG_ATTR_OPTIONAL;
    return !strcmp(a->name, b->name) && same_type(&a->type, &b->type) &&
           (a->attrs & layout) == (b->attrs & layout);
}

static int same_fields(const kg_field *a, size_t na, const kg_field *b, size_t nb)
{
    if (na != nb)
        return 0;
    for (size_t i = 0; i < na; i++)
        if (!same_field(&a[i], &b[i]))
            return 0;
    return 1;
}

/* Whether `now` is `old` or `old` with fields appended: a change the
 * runtime applies without rewriting a record. */
static int layout_kept(const kg_record *old, const kg_record *now)
{
    return old->nfields <= now->nfields &&
           same_fields(old->fields, old->nfields, now->fields, old->nfields);
}

static kg_record *find_record(const kg_schema *s, const char *name)
{
    for (size_t i = 0; name && i < s->nrecords; i++)
        if (!strcmp(s->records[i].name, name))
            return &s->records[i];
    return NULL;
}

/* The key fields of r, in key order, into out (room for r->nfields, or
 * r->nderived); @return how many. */
static size_t key_fields(const kg_record *r, const kg_field **out)
{
    size_t n = 0;
    if (r->key_kind == KG_KEY_DERIVED) {
        for (; n < r->nderived; n++)
            out[n] = &r->derived[n];
        return n;
    }
    for (size_t i = 0; r->key_kind == KG_KEY_FIELDS && i < r->nfields; i++)
        if (r->fields[i].attrs & KG_ATTR_KEY)
            out[n++] = &r->fields[i];
    return n;
}

/* A record's key as the store has it: strategy, then its fields' names
 * and types in order.  *where (may be NULL) gets the first key field of
 * `now` that differs from the old one at its place, else now's loc. */
static int same_key(const kg_record *old, const kg_record *now, kg_loc *where)
{
    size_t cap = old->nfields + old->nderived + now->nfields + now->nderived + 1;
    const kg_field **a = malloc(cap * sizeof *a), **b = malloc(cap * sizeof *b);
    size_t na = a && b ? key_fields(old, a) : 0, nb = a && b ? key_fields(now, b) : 0;
    int same = a && b && old->key_kind == now->key_kind && na == nb;
    if (where)
        *where = now->loc;
    for (size_t i = 0; a && b && old->key_kind == now->key_kind && i < nb; i++)
        if (i >= na || strcmp(a[i]->name, b[i]->name) ||
            !same_type(&a[i]->type, &b[i]->type)) {
            same = 0;
            if (where)
                *where = b[i]->loc;
            break;
        }
    free(a);
    free(b);
    return same;
}

static kg_enum *find_enum(const kg_schema *s, const char *name)
{
    for (size_t i = 0; i < s->nenums; i++)
        if (!strcmp(s->enums[i].name, name))
            return &s->enums[i];
    return NULL;
}

static kg_struct *find_struct(const kg_schema *s, const char *name)
{
    for (size_t i = 0; i < s->nstructs; i++)
        if (!strcmp(s->structs[i].name, name))
            return &s->structs[i];
    return NULL;
}

static int same_enum(const kg_enum *a, const kg_enum *b)
{
    if (!b || a->count != b->count)
        return 0;
    for (size_t i = 0; i < a->count; i++)
        if (strcmp(a->names[i], b->names[i]) || a->values[i] != b->values[i])
            return 0;
    return 1;
}

static int type_kept(const kg_schema *now, const kg_type *t, int depth);

static int fields_kept(const kg_schema *now, const kg_field *f, size_t n,
                       int depth)
{
    for (size_t i = 0; i < n; i++)
        if (!type_kept(now, &f[i].type, depth))
            return 0;
    return 1;
}

/* Whether the enum, struct or key an old field's type names is in `now`
 * as it was, all the way down; and if so, point t at it there. */
static int type_kept(const kg_schema *now, const kg_type *t, int depth)
{
    if (depth > KG_MAX_NESTING)
        return 0;
    kg_type *w = (kg_type *)t;
    if (t->kind == KG_ENUM) {
        kg_enum *is = find_enum(now, t->name);
        if (!same_enum(t->enm, is))
            return 0;
        w->enm = is;
        return 1;
    }
    if (t->kind == KG_STRUCT) {
        const kg_struct *was = t->strct;
        kg_struct *is = find_struct(now, t->name);
        if (!is || !same_fields(was->fields, was->nfields, is->fields, is->nfields) ||
            !fields_kept(now, was->fields, was->nfields, depth + 1))
            return 0;
        w->strct = is;
        return 1;
    }
    if (t->kind == KG_KEY) {
        const kg_record *was = t->record;
        kg_record *is = find_record(now, was->name);
        if (!is || !same_key(was, is, NULL))
            return 0;
        w->record = is;
        return 1;
    }
    return 1;
}

/* Whether `now` declares a type named `name`. */
static int name_taken(const kg_schema *now, const char *name)
{
    return find_record(now, name) || find_enum(now, name) || find_struct(now, name);
}

static char *concat(const char *a, const char *b)
{
    size_t n = strlen(a), m = strlen(b);
    char *s = malloc(n + m + 1);
    if (s) {
        memcpy(s, a, n);
        memcpy(s + n, b, m + 1);
    }
    return s;
}

/* Record `now` against its previous self `old`: what blocks a migration
 * is reported; else old is renamed R_old and noted as its source. */
static void plan_record(kg_diag *d, kg_schema *s, kg_record *now, kg_record *old)
{
    kg_loc where;
    if (!same_key(old, now, &where)) {
        kg_error(d, where, "record '%s': its key is not the previous "
                              "schema's (strategy, or its fields' names, types "
                              "or order): a typed migration keeps every "
                              "record's key",
                 now->name);
        return;
    }
    for (size_t i = 0; i < old->nfields; i++)
        if (!type_kept(s, &old->fields[i].type, 0)) {
            kg_error(d, now->loc, "record '%s': field '%s' of the previous "
                                  "schema has type '%s', which this schema "
                                  "does not have unchanged: a typed migration "
                                  "needs the enums, structs and keys of the "
                                  "old record as they were",
                     now->name, old->fields[i].name, old->fields[i].type.name);
            return;
        }
    char *old_name = concat(now->name, "_old");
    char *fn_name = concat(now->name, "_migrate");
    if (!old_name || !fn_name) {
        kg_oom(d);
    } else if (name_taken(s, old_name) || name_taken(s, fn_name)) {
        kg_error(d, now->loc, "record '%s': its typed migration needs the "
                              "names '%s' and '%s', which this schema "
                              "declares",
                 now->name, old_name, fn_name);
    } else {
        free(old->stored);
        old->stored = old->name;
        old->name = old_name;
        old_name = NULL;
        now->migrates_from = old;
    }
    free(old_name);
    free(fn_name);
}

int kg_previous(kg_schema *now, kg_schema *old, const char *file,
                const char *src, size_t len, void *err)
{
    kg_diag d;
    kg_diag_init(&d, file, src, len, err);
    for (size_t i = 0; i < now->nrecords && !kg_diag_full(&d); i++) {
        kg_record *r = &now->records[i];
        kg_record *was = find_record(old, r->was);
        if (!was)
            was = find_record(old, r->name);
        if (was && !was->stored && !layout_kept(was, r))
            plan_record(&d, now, r, was);
    }
    int errors = kg_diag_finish(&d);
    if (!errors)
        now->previous = old;
    return errors;
}
