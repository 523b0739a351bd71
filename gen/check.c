/*
 * gen/check.c - semantic checks of a parsed schema, and kg_compile.
 *
 * Order matters: names are declared first (so declarations may come in
 * any order), then field types are resolved, then key strategies are
 * settled, then the type graph (embedded structs and key types) is walked
 * once for cycles, nesting depth and what each type contains, and only
 * then are the rules that depend on contents (what may be a key, an index,
 * a derived key field) applied.
 */
#include "front.h"

#include <stdlib.h>
#include <string.h>

/* ---- a hash table of names ---------------------------------------------- */

typedef enum name_kind {
    N_SCHEMA, N_ENUM, N_ENUMERATOR, N_STRUCT, N_RECORD, N_KEY, N_FIELD
} name_kind;

typedef struct entry {
    const char *name; /* NULL: empty slot */
    name_kind kind;
    void *decl;       /* kg_enum, kg_struct or kg_record */
    kg_loc loc;
    const char *owner; /* a generated name's: what it is made from */
} entry;

typedef struct names {
    entry *slots;
    size_t cap, n;    /* cap is a power of two */
} names;

static size_t hash(const char *s)
{
    size_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

static entry *slot_of(const names *t, const char *name)
{
    size_t i = hash(name) & (t->cap - 1);
    while (t->slots[i].name && strcmp(t->slots[i].name, name) != 0)
        i = (i + 1) & (t->cap - 1);
    return &t->slots[i];
}

static entry *lookup(const names *t, const char *name)
{
    if (!t->cap)
        return NULL;
    entry *e = slot_of(t, name);
    return e->name ? e : NULL;
}

static int grow_names(names *t)
{
    size_t cap = t->cap ? t->cap * 2 : 64;
    entry *old = t->slots;
    size_t oldcap = t->cap;
    if (!(t->slots = calloc(cap, sizeof *t->slots))) {
        t->slots = old;
        return -1;
    }
    t->cap = cap;
    for (size_t i = 0; i < oldcap; i++)
        if (old[i].name)
            *slot_of(t, old[i].name) = old[i];
    free(old);
    return 0;
}

/* @return the earlier entry of the same name, or NULL once `e` is added */
static entry *insert(names *t, entry e, int *oom)
{
    if (2 * (t->n + 1) > t->cap && grow_names(t) < 0) {
        *oom = 1;
        return NULL;
    }
    entry *slot = slot_of(t, e.name);
    if (slot->name)
        return slot;
    *slot = e;
    t->n++;
    return NULL;
}

/* ---- the checker's state ------------------------------------------------ */

typedef struct checker {
    kg_schema *s;
    kg_diag *d;
    names global;     /* types, enumerators, key types, the schema */
    char **keynames;  /* "<record>_key", owned */
    unsigned *has;    /* per graph node: HAS_* of what the type contains */
    uint64_t *bytes;  /* per graph node: its C size, bounded above */
    unsigned char *color;
    size_t *path;     /* the DFS stack, for cycle messages */
    int graph_ok;     /* no cycle and no excess nesting: `has` is complete */
    kg_loc field_loc; /* of the field being checked, for unmarked types */
} checker;

#define HAS_BYTES 0x1u  /* a kivis_bytes somewhere inside */
#define HAS_STRING 0x2u /* a char * somewhere inside */

static int loc_before(kg_loc a, kg_loc b)
{
    return a.line < b.line || (a.line == b.line && a.col < b.col);
}

static int ends_with_key(const char *name)
{
    size_t n = strlen(name);
    return n > 4 && strcmp(name + n - 4, "_key") == 0;
}

static const char *describe(name_kind k)
{
    static const char *const text[] = {
        "the schema", "an enum", "an enumerator", "an [[embedded]] struct",
        "a record", "a record's key type", "a field"};
    return text[k];
}

/* ---- reserved names ----------------------------------------------------- */

static const char *const c_keywords[] = {
    "auto", "break", "case", "char", "const", "continue", "default", "do",
    "double", "else", "enum", "extern", "float", "for", "goto", "if",
    "inline", "int", "long", "register", "restrict", "return", "short",
    "signed", "sizeof", "static", "struct", "switch", "typedef", "union",
    "unsigned", "void", "volatile", "while", "alignas", "alignof", "bool",
    "constexpr", "false", "nullptr", "static_assert", "thread_local", "true",
    "typeof", "typeof_unqual", "asm", "fortran"};

/* C++17 keywords and alternative tokens, and C++20's: the header is C++ too. */
static const char *const cxx_keywords[] = {
    "and", "and_eq", "bitand", "bitor", "catch", "char8_t", "char16_t",
    "char32_t", "class", "co_await", "co_return", "co_yield", "compl",
    "concept", "consteval", "constinit", "const_cast", "decltype", "delete",
    "dynamic_cast", "explicit", "export", "friend", "mutable", "namespace",
    "new", "noexcept", "not", "not_eq", "operator", "or", "or_eq", "private",
    "protected", "public", "reinterpret_cast", "requires", "static_cast",
    "template", "this", "throw", "try", "typeid", "typename", "using",
    "virtual", "wchar_t", "xor", "xor_eq"};

static const char *const builtin_types[] = {
    "uint8_t", "uint16_t", "uint32_t", "uint64_t", "int8_t", "int16_t",
    "int32_t", "int64_t", "size_t"};

/* What <stddef.h> declares besides size_t (C11, C23 and C++). */
static const char *const stddef_names[] = {
    "NULL", "offsetof", "ptrdiff_t", "max_align_t", "nullptr_t"};

/* Names a file-scope declaration of the header may not take although C
 * allows them: the C++ library's namespace, the program's main, and
 * macros gcc and clang predefine in their GNU modes (-std=gnu17). */
static const char *const other_globals[] = {"std", "main", "linux", "unix",
                                            "i386"};

/* Parameters of generated functions that come before a use of a type in
 * the same prototype or body (`user_get(pets_db *db, user_key key,
 * user *out)`, `pets_by_x(..., point *lo, point *hi)`, the _Generic
 * macro's `rec *`, derive_key's adapter `(const r *)r`): a type of that
 * name would be hidden by the parameter. */
static const char *const param_names[] = {"db", "key", "cur", "rec", "lo",
                                          "r", "k"};

static int in_list(const char *name, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(name, list[i]) == 0)
            return 1;
    return 0;
}

#define IN(name, list) in_list(name, list, sizeof list / sizeof list[0])

/* @return the rest of s after the first of `alts` that starts it, or NULL */
static const char *after_one(const char *s, const char *const *alts, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strncmp(s, alts[i], strlen(alts[i])) == 0)
            return s + strlen(alts[i]);
    return NULL;
}

#define AFTER(s, list) after_one(s, list, sizeof list / sizeof list[0])

/*
 * The macros and typedefs of <stdint.h>: INT8_MAX, UINT_LEAST16_C,
 * INTPTR_WIDTH, SIZE_MAX, WCHAR_MIN, ..., int_fast32_t, uintmax_t.  An
 * enumerator or type named so would be replaced by the macro or clash
 * with the typedef.
 */
static int is_stdint_name(const char *name)
{
    static const char *const up_width[] = {"8", "16", "32", "64", "MAX",
                                           "PTR"};
    static const char *const lo_width[] = {"8", "16", "32", "64", "max",
                                           "ptr"};
    static const char *const up_kind[] = {"_LEAST", "_FAST"};
    static const char *const lo_kind[] = {"_least", "_fast"};
    static const char *const limits[] = {"PTRDIFF", "SIG_ATOMIC", "SIZE",
                                         "WCHAR", "WINT"};
    static const char *const up_tail[] = {"_MAX", "_MIN", "_WIDTH", "_C"};
    const char *p = NULL, *rest;
    int upper = name[0] == 'U' || name[0] == 'I';
    if (strncmp(name + (name[0] == 'U' || name[0] == 'u'),
                upper ? "INT" : "int", 3) == 0) {
        p = name + (name[0] == 'U' || name[0] == 'u') + 3;
        if ((rest = upper ? AFTER(p, up_kind) : AFTER(p, lo_kind)))
            p = rest;
        p = upper ? AFTER(p, up_width) : AFTER(p, lo_width);
    } else if ((rest = AFTER(name, limits))) {
        p = rest; /* no _C: SIZE_C is not a macro */
        return strcmp(p, "_MAX") == 0 || strcmp(p, "_MIN") == 0 ||
               strcmp(p, "_WIDTH") == 0;
    }
    if (!p)
        return 0;
    return upper ? in_list(p, up_tail, 4) : strcmp(p, "_t") == 0;
}

static int is_type_kind(name_kind kind)
{
    return kind == N_ENUM || kind == N_STRUCT || kind == N_RECORD;
}

/* @return why `name` may not be declared as `kind`, or NULL */
static const char *reserved_reason(const char *name, name_kind kind)
{
    if (IN(name, c_keywords))
        return "it is a C keyword";
    if (IN(name, cxx_keywords))
        return "it is a C++ keyword";
    if (IN(name, builtin_types))
        return "it is a built-in type";
    if (IN(name, stddef_names))
        return "<stddef.h> declares it";
    if (is_stdint_name(name))
        return "<stdint.h> declares it";
    if (strncmp(name, "kivis_", 6) == 0 || strncmp(name, "KIVIS_", 6) == 0)
        return "names starting with kivis_ belong to the library";
    if (name[0] == '_')
        return "names starting with '_' are reserved in C";
    if (kind != N_FIELD && IN(name, other_globals))
        return strcmp(name, "std") == 0    ? "it is the C++ library's namespace"
               : strcmp(name, "main") == 0 ? "it is the program's main function"
                                           : "gcc and clang predefine it as a "
                                             "macro";
    if (is_type_kind(kind) && IN(name, param_names))
        return "generated functions have a parameter of that name";
    if ((is_type_kind(kind) || kind == N_SCHEMA) && ends_with_key(name))
        return "names ending in _key are the key types of records";
    return NULL;
}

/* @return 0 when `name` is usable as a `kind` declaration */
static int check_reserved(checker *c, const char *name, kg_loc loc,
                          name_kind kind)
{
    const char *why = reserved_reason(name, kind);
    if (!why)
        return 0;
    kg_error(c->d, loc, "'%s' cannot be used as a name: %s", name, why);
    return -1;
}

/* ---- declarations ------------------------------------------------------- */

/*
 * Add a name to `t`; on a clash report the one that comes later in the
 * source, so the message reads top to bottom.
 */
static void declare(checker *c, names *t, entry e)
{
    int oom = 0;
    entry *old = insert(t, e, &oom);
    if (oom) {
        kg_oom(c->d);
        return;
    }
    if (!old)
        return;
    entry first = *old, later = e;
    if (loc_before(e.loc, old->loc)) {
        first = e;
        later = *old;
        *old = e;
    }
    if (first.kind == N_KEY)
        kg_error(c->d, later.loc,
                 "'%s' is already the key type of record '%s' (line %d)",
                 later.name, ((kg_record *)first.decl)->name,
                 first.loc.line);
    else
        kg_error(c->d, later.loc,
                 "duplicate name '%s': first declared at line %d as %s",
                 later.name, first.loc.line, describe(first.kind));
}

static void declare_name(checker *c, const char *name, kg_loc loc,
                         name_kind kind, void *decl)
{
    if (check_reserved(c, name, loc, kind) == 0)
        declare(c, &c->global, (entry){name, kind, decl, loc, NULL});
}

static void declare_key(checker *c, kg_record *r, size_t i)
{
    entry *e = lookup(&c->global, r->name);
    if (e && e->decl != r && e->kind == N_RECORD)
        return; /* a duplicate record: its key is no news */
    size_t n = strlen(r->name);
    char *key = malloc(n + sizeof "_key");
    if (!key) {
        kg_oom(c->d);
        return;
    }
    memcpy(key, r->name, n);
    memcpy(key + n, "_key", sizeof "_key");
    c->keynames[i] = key;
    declare(c, &c->global, (entry){key, N_KEY, r, r->loc, NULL});
}

static void declare_all(checker *c)
{
    kg_schema *s = c->s;
    if (s->name)
        declare_name(c, s->name, s->loc, N_SCHEMA, NULL);
    for (size_t i = 0; i < s->nenums; i++) {
        kg_enum *e = &s->enums[i];
        declare_name(c, e->name, e->loc, N_ENUM, e);
        for (size_t j = 0; j < e->count; j++)
            declare_name(c, e->names[j], kg_where(c->d, e->names[j], e->loc),
                         N_ENUMERATOR, e);
    }
    for (size_t i = 0; i < s->nstructs; i++)
        declare_name(c, s->structs[i].name, s->structs[i].loc, N_STRUCT,
                     &s->structs[i]);
    for (size_t i = 0; i < s->nrecords; i++) {
        declare_name(c, s->records[i].name, s->records[i].loc, N_RECORD,
                     &s->records[i]);
        if (!reserved_reason(s->records[i].name, N_RECORD))
            declare_key(c, &s->records[i], i);
    }
}

/* ---- names the emitter generates ------------------------------------------
 * Every file-scope name of <schema>.kivis.h and <schema>.kivis.c that
 * kivis-gen makes up (user_put, user_by_name, PETS_USER, pets_db,
 * user_desc_, ...) goes into one table, with what it is made from.  A
 * declared type or enumerator of that name, a name made twice (records
 * `A` and `a` both give the constant S_A; indexed fields `x` and
 * `x_range` both give user_by_x_range) and a made-up name that a header
 * owns (schema `size`, record `max`: SIZE_MAX; schema `kivis`:
 * kivis_open) would not compile, so each is refused where it comes from.
 * Each name is looked up once: linear in the schema's size. */

static const char *const schema_suffixes[] = {
    "_db", "_kivis_db", "_check_", "_open", "_close", "_begin", "_begin_read",
    "_commit", "_abort", "_errmsg", "_open_scan_", "_get", "_remove",
    "_clear", "_schema", "_tables", "_indexes", "_tables_", "_query_",
    "_count_"};
static const char *const record_suffixes[] = {
    "_put", "_add", "_update", "_get", "_get_into", "_remove", "_clear",
    "_key_clear", "_cache", "_cache_stats", "_cache_clear", "_cursor",
    "_scan", "_scan_prefix", "_next", "_next_into", "_close", "_derive_key",
    "_fields_", "_desc_", "_key_fields_", "_key_desc_", "_indexes_",
    "_key_map_", "_derive_", "_count", "_exists", "_next_key", "_prefetch"};
/* after R_by_F and R_count_by_F */
static const char *const index_suffixes[] = {"", "_range", "_prefix", "_absent"};
/* after R_distinct_F */
static const char *const distinct_suffixes[] = {"", "_cursor", "_next",
                                                "_close"};
static const char *const enum_suffixes[] = {"_names_", "_values_", "_desc_"};
static const char *const struct_suffixes[] = {"_fields_", "_desc_"};

#define COUNT(a) (sizeof a / sizeof a[0])

/* a + b + c + d in a new string (NULL when out of memory); upper != 0
 * upper-cases it, for the emitted table and index constants. */
static char *join(const char *a, const char *b, const char *c, const char *d,
                  int upper)
{
    size_t n = strlen(a) + strlen(b) + strlen(c) + strlen(d) + 1;
    char *s = malloc(n);
    if (!s)
        return NULL;
    snprintf(s, n, "%s%s%s%s", a, b, c, d);
    for (char *p = s; upper && *p; p++)
        if (*p >= 'a' && *p <= 'z')
            *p = (char)(*p - 'a' + 'A');
    return s;
}

/* "record 'user'", "field 'name' of record 'user'" (malloc'd, or NULL) */
static char *owner_text(const entry *o)
{
    static const char *const noun[] = {
        "schema", "enum", "enumerator", "[[embedded]] struct", "record",
        "record", "field"};
    const char *record = o->kind == N_FIELD ? ((kg_record *)o->decl)->name
                                            : "";
    size_t n = strlen(o->owner) + strlen(record) + 40;
    char *s = malloc(n);
    if (s && o->kind == N_FIELD)
        snprintf(s, n, "field '%s' of record '%s'", o->owner, record);
    else if (s)
        snprintf(s, n, "%s '%s'", noun[o->kind], o->owner);
    return s;
}

/* Two owners of one generated name: a duplicate declaration (reported as
 * such) makes the same names again, nothing new to say. */
static int same_owner(const entry *a, const entry *b)
{
    return a->kind == b->kind && strcmp(a->owner, b->owner) == 0 &&
           (a->kind != N_FIELD || a->decl == b->decl);
}

static void made_twice(checker *c, const entry *old, const entry *o)
{
    const entry *first = old, *later = o;
    if (loc_before(o->loc, old->loc)) {
        first = o;
        later = old;
    }
    char *a = owner_text(first), *b = owner_text(later);
    if (a && b)
        kg_error(c->d, later->loc,
                 "'%s' would be generated twice: for %s (line %d) and for "
                 "%s; rename one", o->name, a, first->loc.line, b);
    else
        kg_oom(c->d);
    free(a);
    free(b);
}

/* Add the generated `name` (owned; NULL when out of memory) made from `o`. */
static void generate(checker *c, names *gen, char *name, entry o)
{
    if (!name) {
        kg_oom(c->d);
        return;
    }
    o.name = name;
    const char *why = reserved_reason(name, N_KEY);
    const entry *declared = lookup(&c->global, name);
    char *text = owner_text(&o);
    int oom = 0;
    entry *old = NULL;
    if (!text)
        kg_oom(c->d);
    else if (why)
        kg_error(c->d, o.loc,
                 "kivis-gen would generate '%s' for %s, which cannot be used "
                 "as a name: %s", name, text, why);
    else if (declared && declared->kind != N_KEY)
        kg_error(c->d, declared->loc,
                 "'%s' is a name kivis-gen generates for %s; choose another",
                 name, text);
    else if ((old = insert(gen, o, &oom)) == NULL && !oom)
        name = NULL; /* the table owns it now */
    else if (oom)
        kg_oom(c->d);
    else if (!same_owner(old, &o))
        made_twice(c, old, &o);
    free(text);
    free(name);
}

/* Each of `suffixes` after `base`, made from `o`. */
static void generate_all(checker *c, names *gen, const char *base,
                         const char *const *suffixes, size_t n, entry o)
{
    for (size_t i = 0; i < n; i++)
        generate(c, gen, join(base, suffixes[i], "", "", 0), o);
}

/* The declaration `name` stands for is `decl` (not a duplicate) and its
 * name is usable: the names made from it are worth checking. */
static int first_and_usable(const checker *c, const char *name, name_kind k,
                            const void *decl)
{
    const entry *e = lookup(&c->global, name);
    return !reserved_reason(name, k) && e && e->decl == decl && e->kind == k;
}

/* The source's names for an enum or embedded struct `o`. */
static void generate_decl(checker *c, names *gen, entry o,
                          const char *const *suffixes, size_t n)
{
    if (first_and_usable(c, o.owner, o.kind, o.decl))
        generate_all(c, gen, o.owner, suffixes, n, o);
}

/* The names of an indexed field `of`: record + family + field + each of
 * `suffixes` (user_by_name_range, user_count_by_name, user_distinct_name_next). */
static void generate_family(checker *c, names *gen, const char *record,
                            const char *family, const char *const *suffixes,
                            size_t n, entry of)
{
    char *base = join(record, family, of.owner, "", 0);
    if (base)
        generate_all(c, gen, base, suffixes, n, of);
    else
        kg_oom(c->d);
    free(base);
}

static void generate_record(checker *c, names *gen, kg_record *r)
{
    const char *schema = c->s->name;
    entry o = {NULL, N_RECORD, r, r->loc, r->name};
    generate(c, gen, join(r->name, "_key", "", "", 0), o);
    generate_all(c, gen, r->name, record_suffixes, COUNT(record_suffixes), o);
    generate(c, gen, join(schema, "_", r->name, "", 1), o);
    for (size_t f = 0; f < r->nfields; f++) {
        const kg_field *fd = &r->fields[f];
        if (!(fd->attrs & KG_ATTR_INDEX) || reserved_reason(fd->name, N_FIELD))
            continue;
        entry of = {NULL, N_FIELD, r, fd->loc, fd->name};
        generate_family(c, gen, r->name, "_by_", index_suffixes,
                        COUNT(index_suffixes), of);
        generate_family(c, gen, r->name, "_count_by_", index_suffixes,
                        COUNT(index_suffixes), of);
        generate_family(c, gen, r->name, "_distinct_", distinct_suffixes,
                        COUNT(distinct_suffixes), of);
        char *base = join(schema, "_", r->name, "_by_", 0);
        if (base)
            generate(c, gen, join(base, fd->name, "", "", 1), of);
        free(base);
    }
}

static void check_generated_names(checker *c)
{
    kg_schema *s = c->s;
    names gen = {0};
    if (!s->name || !first_and_usable(c, s->name, N_SCHEMA, NULL))
        return;
    entry o = {NULL, N_SCHEMA, NULL, s->loc, s->name};
    generate_all(c, &gen, s->name, schema_suffixes, COUNT(schema_suffixes), o);
    generate(c, &gen, join(s->name, "_kivis_h", "", "", 1), o);
    for (size_t i = 0; i < s->nenums; i++) {
        kg_enum *e = &s->enums[i];
        generate_decl(c, &gen, (entry){NULL, N_ENUM, e, e->loc, e->name},
                      enum_suffixes, COUNT(enum_suffixes));
    }
    for (size_t i = 0; i < s->nstructs; i++) {
        kg_struct *st = &s->structs[i];
        generate_decl(c, &gen, (entry){NULL, N_STRUCT, st, st->loc, st->name},
                      struct_suffixes, COUNT(struct_suffixes));
    }
    for (size_t i = 0; i < s->nrecords; i++)
        if (first_and_usable(c, s->records[i].name, N_RECORD, &s->records[i]))
            generate_record(c, &gen, &s->records[i]);
    for (size_t i = 0; i < gen.cap; i++)
        free((char *)gen.slots[i].name);
    free(gen.slots);
}

/* Field names are checked per struct: duplicates and reserved words. */
static void check_field_names(checker *c, kg_field *f, size_t n,
                              const char *what, const char *owner)
{
    names local = {0};
    for (size_t i = 0; i < n && !c->d->oom; i++) {
        if (check_reserved(c, f[i].name, f[i].loc, N_FIELD) < 0)
            continue;
        int oom = 0;
        entry *old = insert(&local, (entry){f[i].name, N_FIELD, &f[i],
                                            f[i].loc, NULL}, &oom);
        if (oom)
            kg_oom(c->d);
        else if (old)
            kg_error(c->d, f[i].loc,
                     "duplicate field '%s' in %s '%s' (first declared at "
                     "line %d)", f[i].name, what, owner, old->loc.line);
    }
    free(local.slots);
}

/* ---- type resolution ---------------------------------------------------- */

static kg_loc type_loc(const checker *c, const kg_type *t)
{
    return kg_where(c->d, t->name, c->field_loc);
}

static void not_a_field_type(checker *c, const kg_type *t)
{
    kg_error(c->d, type_loc(c, t),
             "record '%s' cannot be a field type: use '%s_key' to refer to "
             "one", t->name, t->name);
}

/* A `<name>_key` that names no record. */
static void no_such_record(checker *c, const kg_type *t)
{
    size_t n = strlen(t->name) - 4;
    entry *e = NULL;
    char *base = malloc(n + 1);
    if (base) {
        memcpy(base, t->name, n);
        base[n] = '\0';
        e = lookup(&c->global, base);
        free(base);
    }
    if (e && e->kind == N_STRUCT)
        kg_error(c->d, type_loc(c, t),
                 "'%s': '%.*s' is an [[embedded]] struct, not a record, "
                 "so it has no key", t->name, (int)n, t->name);
    else if (!c->d->lost_decls)
        kg_error(c->d, type_loc(c, t), "'%s' refers to an undeclared record '%.*s'",
                 t->name, (int)n, t->name);
}

static void resolve_bare(checker *c, kg_type *t)
{
    entry *e = lookup(&c->global, t->name);
    if (e && e->kind == N_ENUM) {
        t->kind = KG_ENUM;
        t->enm = e->decl;
    } else if (e && e->kind == N_STRUCT) {
        t->kind = KG_STRUCT;
        t->strct = e->decl;
    } else if (e && e->kind == N_KEY) {
        t->kind = KG_KEY;
        t->record = e->decl;
    } else if (e && e->kind == N_RECORD) {
        not_a_field_type(c, t);
    } else if (e) {
        kg_error(c->d, type_loc(c, t), "'%s' is %s, not a type", t->name,
                 describe(e->kind));
    } else if (ends_with_key(t->name)) {
        no_such_record(c, t);
    } else if (!c->d->lost_decls) {
        kg_error(c->d, type_loc(c, t), "unknown type '%s'", t->name);
    }
}

/* `enum X` or `struct X` as written */
static void resolve_tagged(checker *c, kg_type *t)
{
    entry *e = lookup(&c->global, t->name);
    int want = t->kind == KG_ENUM ? N_ENUM : N_STRUCT;
    const char *tag = t->kind == KG_ENUM ? "enum" : "struct";
    if (e && (int)e->kind == want) {
        t->enm = t->kind == KG_ENUM ? e->decl : NULL;
        t->strct = t->kind == KG_STRUCT ? e->decl : NULL;
    } else if (e && e->kind == N_RECORD && want == N_STRUCT) {
        not_a_field_type(c, t);
    } else if (e) {
        kg_error(c->d, type_loc(c, t), "'%s %s': '%s' is %s", tag, t->name, t->name,
                 describe(e->kind));
    } else if (!c->d->lost_decls) {
        kg_error(c->d, type_loc(c, t), "unknown %s '%s'", tag, t->name);
    }
}

static void resolve_fields(checker *c, kg_field *f, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        kg_type *t = &f[i].type;
        c->field_loc = f[i].loc;
        if (t->kind == 0)
            resolve_bare(c, t);
        else if (t->name && (t->kind == KG_ENUM || t->kind == KG_STRUCT))
            resolve_tagged(c, t);
    }
}

static int resolved(const kg_type *t)
{
    if (t->kind == KG_ENUM)
        return t->enm != NULL;
    if (t->kind == KG_STRUCT)
        return t->strct != NULL;
    if (t->kind == KG_KEY)
        return t->record != NULL;
    return t->kind != 0;
}

/* ---- keys and tables ---------------------------------------------------- */

static void settle_key(checker *c, kg_record *r)
{
    const kg_field *first_key = NULL;
    size_t nindexes = 0;
    for (size_t i = 0; i < r->nfields; i++) {
        if ((r->fields[i].attrs & KG_ATTR_KEY) && !first_key)
            first_key = &r->fields[i];
        /* a referential action is kept in an index of its own */
        if ((r->fields[i].attrs & KG_ATTR_INDEX || r->fields[i].action) &&
            ++nindexes == KG_MAX_INDEXES + 1)
            kg_error(c->d, r->fields[i].loc,
                     "too many indexes in record '%s' (at most %u)", r->name,
                     KG_MAX_INDEXES);
    }
    if (first_key && r->key_kind == KG_KEY_DERIVED)
        kg_error(c->d, first_key->loc,
                 "record '%s' has both [[key]] fields and a derived_key: "
                 "use one key strategy", r->name);
    else if (first_key)
        r->key_kind = KG_KEY_FIELDS;
}

static void number_tables(checker *c)
{
    for (size_t i = 0; i < c->s->nrecords; i++) {
        kg_record *r = &c->s->records[i];
        r->table = (uint32_t)i;
        if (i == KG_MAX_TABLES)
            kg_error(c->d, r->loc,
                     "too many records: a schema holds at most %u tables",
                     KG_MAX_TABLES);
    }
}

/* ---- the type graph ----------------------------------------------------- */

/*
 * Nodes are the embedded structs (0 .. nstructs-1), then the records' key
 * types.  A struct points at the types of its fields; a key type at the
 * types of its record's key fields (or derived key fields).  A cycle is a
 * type that would contain itself; C cannot lay that out.
 */
static size_t node_of(const checker *c, const kg_type *t)
{
    if (t->kind == KG_STRUCT && t->strct)
        return (size_t)(t->strct - c->s->structs);
    if (t->kind == KG_KEY && t->record)
        return c->s->nstructs + (size_t)(t->record - c->s->records);
    return SIZE_MAX;
}

static void node_fields(const checker *c, size_t node, const kg_field **f,
                        size_t *n, int *keys_only)
{
    *keys_only = 0;
    if (node < c->s->nstructs) {
        *f = c->s->structs[node].fields;
        *n = c->s->structs[node].nfields;
        return;
    }
    const kg_record *r = &c->s->records[node - c->s->nstructs];
    *f = r->key_kind == KG_KEY_DERIVED ? r->derived : r->fields;
    *n = r->key_kind == KG_KEY_DERIVED ? r->nderived
         : r->key_kind == KG_KEY_FIELDS ? r->nfields : 0;
    *keys_only = r->key_kind == KG_KEY_FIELDS;
}

static kg_loc node_loc(const checker *c, size_t node)
{
    return node < c->s->nstructs ? c->s->structs[node].loc
                                 : c->s->records[node - c->s->nstructs].loc;
}

static void append(char **buf, size_t *len, const char *s, int add_key)
{
    size_t n = strlen(s), extra = add_key ? 4 : 0;
    char *b = realloc(*buf, *len + n + extra + 5);
    if (!b)
        return;
    memcpy(b + *len, s, n);
    memcpy(b + *len + n, "_key", extra);
    *len += n + extra;
    b[*len] = '\0';
    *buf = b;
}

static void node_name(const checker *c, size_t node, char **buf, size_t *len)
{
    if (node < c->s->nstructs)
        append(buf, len, c->s->structs[node].name, 0);
    else
        append(buf, len, c->s->records[node - c->s->nstructs].name, 1);
}

/* "a -> b -> a" for the cycle from path[from] back to it */
static void report_cycle(checker *c, size_t depth, size_t from)
{
    char *buf = NULL;
    size_t len = 0;
    for (size_t i = from; i < depth; i++) {
        node_name(c, c->path[i], &buf, &len);
        append(&buf, &len, " -> ", 0);
    }
    node_name(c, c->path[from], &buf, &len);
    char *first = NULL;
    size_t flen = 0;
    node_name(c, c->path[from], &first, &flen);
    kg_error(c->d, node_loc(c, c->path[from]), "type '%s' contains itself: %s",
             first ? first : "?", buf ? buf : "?");
    free(first);
    free(buf);
    c->graph_ok = 0;
}

static unsigned kind_bits(kg_kind k)
{
    return k == KG_BYTES ? HAS_BYTES : k == KG_STRING ? HAS_STRING : 0;
}

static uint64_t add_sat(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static uint64_t mul_sat(uint64_t a, uint64_t b)
{
    return b && a > UINT64_MAX / b ? UINT64_MAX : a * b;
}

/* An upper bound on a field's C size (each element padded by up to 8
 * bytes), saturating: enough to refuse a type no compiler can lay out. */
static uint64_t field_bytes(const checker *c, const kg_type *t)
{
    static const unsigned char scalar[] = {
        [KG_U8] = 1, [KG_U16] = 2, [KG_U32] = 4, [KG_U64] = 8,
        [KG_I8] = 1, [KG_I16] = 2, [KG_I32] = 4, [KG_I64] = 8,
        [KG_BOOL] = 1, [KG_F32] = 4, [KG_F64] = 8, [KG_ENUM] = 4,
        [KG_STRING] = 8, [KG_BYTES] = 16};
    size_t node = node_of(c, t);
    uint64_t elem = t->kind == KG_CHARS ? t->chars
                    : node != SIZE_MAX  ? c->bytes[node]
                    : (size_t)t->kind < sizeof scalar ? scalar[t->kind] : 8;
    return mul_sat(add_sat(elem, 8), t->array ? t->array : 1);
}

static void visit(checker *c, size_t node, size_t depth)
{
    const kg_field *f;
    size_t n;
    int keys_only;
    if (depth == KG_MAX_NESTING) {
        kg_error(c->d, node_loc(c, node),
                 "types are nested more than %d levels deep here",
                 KG_MAX_NESTING);
        c->graph_ok = 0;
        return;
    }
    c->color[node] = 1;
    c->path[depth] = node;
    node_fields(c, node, &f, &n, &keys_only);
    for (size_t i = 0; i < n && c->graph_ok; i++) {
        if (keys_only && !(f[i].attrs & KG_ATTR_KEY))
            continue;
        size_t to = node_of(c, &f[i].type);
        c->has[node] |= kind_bits(f[i].type.kind);
        if (to == SIZE_MAX)
            continue;
        if (c->color[to] == 1) {
            size_t from = 0;
            while (c->path[from] != to)
                from++;
            report_cycle(c, depth + 1, from);
            break;
        }
        if (c->color[to] == 0)
            visit(c, to, depth + 1);
        c->has[node] |= c->has[to];
    }
    for (size_t i = 0; i < n; i++)
        if (!keys_only || (f[i].attrs & KG_ATTR_KEY))
            c->bytes[node] = add_sat(c->bytes[node], field_bytes(c, &f[i].type));
    c->color[node] = 2;
}

static void walk_graph(checker *c)
{
    size_t nodes = c->s->nstructs + c->s->nrecords;
    c->graph_ok = 1;
    c->has = calloc(nodes + 1, sizeof *c->has);
    c->bytes = calloc(nodes + 1, sizeof *c->bytes);
    c->color = calloc(nodes + 1, 1);
    c->path = calloc(KG_MAX_NESTING + 1, sizeof *c->path);
    if (!c->has || !c->bytes || !c->color || !c->path) {
        kg_oom(c->d);
        c->graph_ok = 0;
        return;
    }
    for (size_t i = 0; i < nodes && c->graph_ok; i++)
        if (c->color[i] == 0)
            visit(c, i, 0);
}

/* What a type contains; only what is direct when the graph is broken. */
static unsigned type_has(const checker *c, const kg_type *t)
{
    size_t node = node_of(c, t);
    if (node == SIZE_MAX || !c->graph_ok)
        return kind_bits(t->kind);
    return kind_bits(t->kind) | c->has[node];
}

/* ---- rules on contents -------------------------------------------------- */

static const char *first_attr(unsigned attrs)
{
    return attrs & KG_ATTR_KEY      ? "key"
           : attrs & KG_ATTR_UNIQUE ? "unique"
                                    : "index";
}

static void check_keyable(checker *c, const kg_field *f)
{
    if (!(f->attrs & (KG_ATTR_KEY | KG_ATTR_INDEX)) || !resolved(&f->type))
        return;
    if (f->type.kind == KG_BYTES)
        kg_error(c->d, f->loc,
                 "[[%s]] on field '%s': kivis_bytes cannot be a key or "
                 "indexed", first_attr(f->attrs), f->name);
    else if (type_has(c, &f->type) & HAS_BYTES)
        kg_error(c->d, f->loc,
                 "[[%s]] on field '%s': its type '%s' contains kivis_bytes, "
                 "which cannot be a key or indexed", first_attr(f->attrs),
                 f->name, f->type.name);
}

/* [[references(...)]] needs a single foreign key: a <record>_key field. */
static void check_reference(checker *c, const kg_field *f)
{
    if (!f->action || !resolved(&f->type))
        return;
    if (f->type.kind != KG_KEY)
        kg_error(c->d, f->action_loc,
                 "[[references]] on field '%s': its type is not another "
                 "record's key type (<record>_key)", f->name);
    else if (f->type.array)
        kg_error(c->d, f->action_loc,
                 "[[references]] on field '%s': an array of keys cannot "
                 "carry a referential action", f->name);
    else if (f->action == KG_REF_NULLIFY && !(f->attrs & KG_ATTR_OPTIONAL))
        kg_error(c->d, f->action_loc,
                 "[[references(nullify)]] on field '%s': nullify makes the "
                 "field absent, so it must be [[optional]]", f->name);
}

/* Every record has its key, and a presence flag needs a free name. */
static void check_optional(checker *c, const kg_record *r, const kg_field *f)
{
    if (!(f->attrs & KG_ATTR_OPTIONAL))
        return;
    if (f->attrs & KG_ATTR_KEY) {
        kg_error(c->d, f->loc,
                 "[[optional]] on field '%s': a [[key]] field cannot be "
                 "optional (every record has its key)", f->name);
        return;
    }
    if (!kg_has_presence_flag(f))
        return;
    for (size_t i = 0; i < r->nfields; i++)
        if (!strncmp(r->fields[i].name, "has_", 4) &&
            !strcmp(r->fields[i].name + 4, f->name))
            kg_error(c->d, f->loc,
                     "[[optional]] field '%s' needs the presence flag "
                     "'has_%s', which is already a field of record '%s'",
                     f->name, f->name, r->name);
}

/* derive_key writes a plain struct: nothing in it may own memory. */
static void check_derived_field(checker *c, const kg_field *f)
{
    c->field_loc = f->loc;
    if (!resolved(&f->type))
        return;
    if (f->type.kind == KG_STRING || f->type.kind == KG_BYTES)
        kg_error(c->d, type_loc(c, &f->type),
                 "derived_key field '%s' must have a fixed size: %s is not "
                 "allowed", f->name,
                 f->type.kind == KG_STRING ? "char *" : "kivis_bytes");
    else if (type_has(c, &f->type))
        kg_error(c->d, type_loc(c, &f->type),
                 "derived_key field '%s' must have a fixed size: '%s' "
                 "contains char * or kivis_bytes", f->name, f->type.name);
}

static void check_contents(checker *c)
{
    kg_schema *s = c->s;
    for (size_t i = 0; i < s->nrecords; i++) {
        kg_record *r = &s->records[i];
        for (size_t j = 0; j < r->nfields; j++) {
            check_keyable(c, &r->fields[j]);
            check_reference(c, &r->fields[j]);
            check_optional(c, r, &r->fields[j]);
        }
        for (size_t j = 0; j < r->nderived; j++)
            check_derived_field(c, &r->derived[j]);
    }
}

/* ---- the driver --------------------------------------------------------- */

static void check_all_fields(checker *c)
{
    kg_schema *s = c->s;
    for (size_t i = 0; i < s->nstructs; i++) {
        kg_struct *st = &s->structs[i];
        check_field_names(c, st->fields, st->nfields, "struct", st->name);
        resolve_fields(c, st->fields, st->nfields);
    }
    for (size_t i = 0; i < s->nrecords; i++) {
        kg_record *r = &s->records[i];
        check_field_names(c, r->fields, r->nfields, "record", r->name);
        check_field_names(c, r->derived, r->nderived, "the derived_key of",
                          r->name);
        resolve_fields(c, r->fields, r->nfields);
        resolve_fields(c, r->derived, r->nderived);
        settle_key(c, r);
    }
}

/* Records and structs no C compiler could lay out are refused here, not
 * by the compiler of the generated header. */
static void check_sizes(checker *c)
{
    if (!c->graph_ok)
        return;
    for (size_t i = 0; i < c->s->nstructs; i++)
        if (c->bytes[i] > KG_MAX_TYPE_BYTES)
            kg_error(c->d, c->s->structs[i].loc,
                     "struct '%s' is too large (more than %u MiB in C)",
                     c->s->structs[i].name, KG_MAX_TYPE_BYTES >> 20);
    for (size_t i = 0; i < c->s->nrecords; i++) {
        const kg_record *r = &c->s->records[i];
        uint64_t total = c->bytes[c->s->nstructs + i];
        for (size_t j = 0; j < r->nfields; j++)
            total = add_sat(total, field_bytes(c, &r->fields[j].type));
        if (total > KG_MAX_TYPE_BYTES)
            kg_error(c->d, r->loc,
                     "record '%s' is too large (more than %u MiB in C, "
                     "with its key)", r->name, KG_MAX_TYPE_BYTES >> 20);
    }
}

void kg_check(kg_schema *s, kg_diag *d)
{
    checker c = {0};
    c.s = s;
    c.d = d;
    if (s->nrecords && !(c.keynames = calloc(s->nrecords, sizeof(char *)))) {
        kg_oom(d);
        return;
    }
    declare_all(&c);
    check_generated_names(&c);
    check_all_fields(&c);
    number_tables(&c);
    walk_graph(&c);
    check_sizes(&c);
    check_contents(&c);
    for (size_t i = 0; i < s->nrecords; i++)
        free(c.keynames[i]);
    free(c.keynames);
    free(c.global.slots);
    free(c.has);
    free(c.bytes);
    free(c.color);
    free(c.path);
}

int kg_compile(const char *file, const char *src, size_t len, void *err,
               kg_schema **out)
{
    kg_diag d;
    kg_diag_init(&d, file, src, len, err);
    kg_schema *s = kg_parse(&d);
    if (s && !s->name && d.count == 0)
        kg_error(&d, (kg_loc){d.file, 1, 1}, "missing 'schema NAME;'");
    if (s && !kg_diag_full(&d))
        kg_check(s, &d);
    int errors = kg_diag_finish(&d);
    if (errors) {
        kg_schema_free(s);
        s = NULL;
    }
    if (out)
        *out = s;
    else
        kg_schema_free(s);
    return errors;
}
