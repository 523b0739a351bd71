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

static const char *const builtin_types[] = {
    "uint8_t", "uint16_t", "uint32_t", "uint64_t", "int8_t", "int16_t",
    "int32_t", "int64_t", "size_t"};

static int in_list(const char *name, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(name, list[i]) == 0)
            return 1;
    return 0;
}

#define IN(name, list) in_list(name, list, sizeof list / sizeof list[0])

/* @return why `name` may not be declared as `kind`, or NULL */
static const char *reserved_reason(const char *name, name_kind kind)
{
    if (IN(name, c_keywords))
        return "it is a C keyword";
    if (IN(name, builtin_types))
        return "it is a built-in type";
    if (strncmp(name, "kivis_", 6) == 0 || strncmp(name, "KIVIS_", 6) == 0)
        return "names starting with kivis_ belong to the library";
    if (name[0] == '_')
        return "names starting with '_' are reserved in C";
    if ((kind == N_ENUM || kind == N_STRUCT || kind == N_RECORD ||
         kind == N_SCHEMA) && ends_with_key(name))
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
        declare(c, &c->global, (entry){name, kind, decl, loc});
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
    declare(c, &c->global, (entry){key, N_KEY, r, r->loc});
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
 * A type or enumerator named like a generated function (record `user`
 * gets user_put, user_get, user_by_name, ...) would make the generated C
 * fail to compile, so it is refused here, at its declaration. */

static const char *const record_suffixes[] = {
    "_put", "_update", "_insert", "_get", "_remove", "_clear", "_key_clear",
    "_cursor", "_scan", "_scan_prefix", "_next", "_close", "_derive_key",
    "_cache", "_cache_stats", "_cache_clear", "_get_into", "_next_into"};
static const char *const index_suffixes[] = {"", "_range", "_prefix"};
static const char *const schema_suffixes[] = {
    "_get", "_remove", "_clear", "_schema", "_tables", "_indexes"};

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

/* Report the declaration that takes the generated name `name` (owned). */
static void refuse_declared(checker *c, char *name, const char *what,
                            const char *owner)
{
    if (!name) {
        kg_oom(c->d);
        return;
    }
    const entry *e = lookup(&c->global, name);
    if (e && e->kind != N_KEY)
        kg_error(c->d, e->loc,
                 "'%s' is a name kivis-gen generates for %s '%s'; choose "
                 "another",
                 name, what, owner);
    free(name);
}

/* Each generated name is looked up once: linear in the schema's size. */
static void check_record_names(checker *c, const kg_record *r)
{
    const char *schema = c->s->name;
    for (size_t j = 0; j < COUNT(record_suffixes); j++)
        refuse_declared(c, join(r->name, record_suffixes[j], "", "", 0),
                        "record", r->name);
    refuse_declared(c, join(schema, "_", r->name, "", 1), "record", r->name);
    for (size_t f = 0; f < r->nfields; f++) {
        if (!(r->fields[f].attrs & KG_ATTR_INDEX))
            continue;
        for (size_t j = 0; j < COUNT(index_suffixes); j++)
            refuse_declared(c, join(r->name, "_by_", r->fields[f].name,
                                    index_suffixes[j], 0),
                            "record", r->name);
        char *base = join(schema, "_", r->name, "_by_", 0);
        if (base)
            refuse_declared(c, join(base, r->fields[f].name, "", "", 1),
                            "record", r->name);
        free(base);
    }
}

static void check_generated_names(checker *c)
{
    const kg_schema *s = c->s;
    if (!s->name)
        return;
    for (size_t i = 0; i < s->nrecords; i++)
        check_record_names(c, &s->records[i]);
    for (size_t j = 0; j < COUNT(schema_suffixes); j++)
        refuse_declared(c, join(s->name, schema_suffixes[j], "", "", 0),
                        "schema", s->name);
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
                                            f[i].loc}, &oom);
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
        if (r->fields[i].attrs & KG_ATTR_INDEX && ++nindexes == KG_MAX_INDEXES + 1)
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
    c->color[node] = 2;
}

static void walk_graph(checker *c)
{
    size_t nodes = c->s->nstructs + c->s->nrecords;
    c->graph_ok = 1;
    c->has = calloc(nodes + 1, sizeof *c->has);
    c->color = calloc(nodes + 1, 1);
    c->path = calloc(KG_MAX_NESTING + 1, sizeof *c->path);
    if (!c->has || !c->color || !c->path) {
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
        for (size_t j = 0; j < r->nfields; j++)
            check_keyable(c, &r->fields[j]);
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
    check_contents(&c);
    for (size_t i = 0; i < s->nrecords; i++)
        free(c.keynames[i]);
    free(c.keynames);
    free(c.global.slots);
    free(c.has);
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
